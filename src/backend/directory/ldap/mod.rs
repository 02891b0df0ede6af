//! A real LDAP server through ldap3 (rustls with ring; no OpenSSL).
//!
//! One connection is opened and bound for a run and reused by every step. Password checks
//! bind as the user on a second connection, kept for the next check. Result codes become messages an IT
//! tech can act on. A password is never sent in clear text to anything but loopback unless the
//! operator explicitly allows it.

use std::collections::HashSet;
use std::time::Duration;

use ldap3::exop::PasswordModify;
use ldap3::{LdapConn, LdapError, Mod, Scope, SearchEntry};

mod config;
mod errors;

pub use config::{Flavor, LdapConfig};
use errors::{Failed, rc_of, result_error, unicode_pwd};

use super::{Directory, Entry};
use crate::backend::{BackendError, BackendResult};
use crate::escape;
use crate::secret::Secret;

pub struct LdapDirectory {
    conn: LdapConn,
    /// Password checks bind as the user here, never on `conn` (which stays bound as the
    /// operator's service account). Opened at the first check, kept for the next ones.
    check_conn: Option<LdapConn>,
    config: LdapConfig,
    read_only: bool,
    password_modify: bool,
}

/// Waits before reconnecting when the server stopped answering: bounded, about 3 s in all.
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

fn gave_up(error: String) -> BackendError {
    BackendError::Unavailable(format!(
        "{error} (onboard reconnected and retried {} times over {} s)",
        BACKOFF.len(),
        BACKOFF.iter().sum::<Duration>().as_secs_f32()
    ))
}

/// Whether the connection failed (as opposed to the server answering with a result code).
fn connection_failed(e: &LdapError) -> bool {
    !matches!(e, LdapError::LdapResult { .. })
}

/// userAccountControl bits (MS-ADTS 2.2.16).
const UAC_ACCOUNTDISABLE: u32 = 0x2;
const UAC_PASSWD_NOTREQD: u32 = 0x20;
const UAC_NORMAL_ACCOUNT: u32 = 0x200;

/// OID of the Password Modify extended operation (RFC 3062).
const PASSWORD_MODIFY: &str = "1.3.6.1.4.1.4203.1.11.1";

impl LdapDirectory {
    /// Connects and binds. `read_only` refuses every write (for dry runs).
    pub fn connect(config: LdapConfig, read_only: bool) -> BackendResult<LdapDirectory> {
        config.check_transport()?;
        let mut attempt = 0;
        let conn = loop {
            match config.bound() {
                Err(BackendError::Unavailable(e)) => match BACKOFF.get(attempt) {
                    Some(wait) => {
                        attempt += 1;
                        std::thread::sleep(*wait);
                    }
                    None => return Err(gave_up(e)),
                },
                other => break other?,
            }
        };
        let mut dir = LdapDirectory {
            conn,
            check_conn: None,
            config,
            read_only,
            password_modify: false,
        };
        dir.password_modify = dir
            .search("", Scope::Base, "(objectClass=*)", &["supportedExtension"])?
            .first()
            .is_some_and(|root| root.has_value("supportedExtension", PASSWORD_MODIFY));
        Ok(dir)
    }

    /// Runs `op` on the connection. When the connection fails (the server stopped, restarted
    /// or hung past the timeout), reconnects with backoff and runs it again: every operation
    /// onboard sends is safe to repeat (an add that may have landed is recognised by the
    /// caller). Result codes from the server are returned as they are.
    fn call<T>(
        &mut self,
        what: &str,
        mut op: impl FnMut(&mut LdapConn) -> Result<T, LdapError>,
    ) -> Result<T, Failed> {
        let mut attempt = 0;
        loop {
            match op(&mut self.conn) {
                Err(e) if connection_failed(&e) => {
                    let Some(wait) = BACKOFF.get(attempt) else {
                        return Err(Failed::Unavailable(gave_up(format!(
                            "{what}: the directory stopped answering: {e}"
                        ))));
                    };
                    attempt += 1;
                    std::thread::sleep(*wait);
                    if let Ok(conn) = self.config.bound() {
                        self.conn = conn;
                    }
                }
                Err(e) => return Err(Failed::Result(e, attempt > 0)),
                Ok(v) => return Ok(v),
            }
        }
    }

    fn account_control(&mut self, dn: &str) -> BackendResult<u32> {
        let entry = self
            .read_attrs(dn, &["userAccountControl"])?
            .ok_or_else(|| BackendError::NoSuchObject(dn.to_owned()))?;
        entry
            .get("userAccountControl")
            .first()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BackendError::Other(format!("{dn} has no userAccountControl")))
    }

    fn writable(&self) -> BackendResult<()> {
        if self.read_only {
            Err(BackendError::Other("a dry run changes nothing".into()))
        } else {
            Ok(())
        }
    }

    fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> BackendResult<Vec<Entry>> {
        let what = format!("searching {base}");
        let result = self.call(&what, |conn| {
            conn.search(base, scope, filter, attrs.to_vec())
                .and_then(|r| r.success())
        });
        let (entries, _) = match result {
            Ok(r) => r,
            Err(e) if e.rc() == Some(32) => return Ok(Vec::new()),
            Err(e) => return Err(e.into_error(&what)),
        };
        Ok(entries
            .into_iter()
            // Referrals (as Active Directory returns) are not entries: skip them.
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(|e| {
                let e = SearchEntry::construct(e);
                let mut attrs: Vec<(String, Vec<String>)> = e.attrs.into_iter().collect();
                attrs.sort();
                Entry { dn: e.dn, attrs }
            })
            .collect())
    }
}

impl Directory for LdapDirectory {
    fn describe(&self) -> String {
        self.config.url.clone()
    }

    fn read(&mut self, dn: &str) -> BackendResult<Option<Entry>> {
        Ok(self
            .search(dn, Scope::Base, "(objectClass=*)", &["*"])?
            .into_iter()
            .next())
    }

    fn read_attrs(&mut self, dn: &str, attrs: &[&str]) -> BackendResult<Option<Entry>> {
        Ok(self
            .search(dn, Scope::Base, "(objectClass=*)", attrs)?
            .into_iter()
            .next())
    }

    fn has_value(&mut self, dn: &str, attr: &str, value: &str) -> BackendResult<bool> {
        // The server compares with the attribute's own matching rule (DNs as DNs).
        let filter = format!("({attr}={})", escape::filter_value(value));
        Ok(!self.search(dn, Scope::Base, &filter, &["1.1"])?.is_empty())
    }

    fn find(&mut self, base: &str, attr: &str, value: &str) -> BackendResult<Vec<Entry>> {
        let filter = format!("({attr}={})", escape::filter_value(value));
        self.search(base, Scope::Subtree, &filter, &["*"])
    }

    fn values(&mut self, base: &str, attr: &str) -> BackendResult<Vec<String>> {
        let filter = format!("({attr}=*)");
        Ok(self
            .search(base, Scope::Subtree, &filter, &[attr])?
            .into_iter()
            .flat_map(|e| e.get(attr).to_vec())
            .collect())
    }

    fn add(&mut self, entry: &Entry) -> BackendResult<()> {
        self.writable()?;
        let mut attrs: Vec<(&str, HashSet<&str>)> = entry
            .attrs
            .iter()
            .map(|(n, vs)| (n.as_str(), vs.iter().map(String::as_str).collect()))
            .collect();
        // AD creates a user without a password only as a disabled account; it is enabled
        // once its password is set (`enable_account`).
        let disabled = (UAC_NORMAL_ACCOUNT | UAC_ACCOUNTDISABLE).to_string();
        if self.config.flavor == Flavor::ActiveDirectory
            && entry.has_object_class("user")
            && entry.get("userAccountControl").is_empty()
        {
            attrs.push(("userAccountControl", HashSet::from([disabled.as_str()])));
        }
        let result = self.call(&entry.dn, |conn| {
            conn.add(&entry.dn, attrs.clone()).and_then(|r| r.success())
        });
        match result {
            Ok(_) => Ok(()),
            // The first attempt's reply was lost and it had landed: the entry is there (the
            // step reads it back and compares every attribute).
            Err(Failed::Result(e, true)) if rc_of(&e) == Some(68) => Ok(()),
            // Taken: by whom is for the step to find out (it reads the entry).
            Err(e) if e.rc() == Some(68) => Err(BackendError::AlreadyExists(entry.dn.clone())),
            Err(e) if e.rc() == Some(32) => Err(BackendError::NoSuchObject(format!(
                "the parent entry of {}",
                entry.dn
            ))),
            Err(e) => Err(e.into_error(&entry.dn)),
        }
    }

    fn add_values(&mut self, dn: &str, attr: &str, values: &[String]) -> BackendResult<()> {
        self.writable()?;
        for v in values {
            let what = format!("add {attr} to {dn}");
            let result = self.call(&what, |conn| {
                conn.modify(dn, vec![Mod::Add(attr, HashSet::from([v.as_str()]))])
                    .and_then(|r| r.success())
            });
            match result {
                // 20: attributeOrValueExists, i.e. already a member.
                Ok(_) => {}
                Err(e) if e.rc() == Some(20) => {}
                Err(e) => return Err(e.into_error(&what)),
            }
        }
        Ok(())
    }

    fn replace(&mut self, dn: &str, attr: &str, values: &[String]) -> BackendResult<()> {
        self.writable()?;
        let set: HashSet<&str> = values.iter().map(String::as_str).collect();
        let what = format!("change {attr} of {dn}");
        self.call(&what, |conn| {
            conn.modify(dn, vec![Mod::Replace(attr, set.clone())])
                .and_then(|r| r.success())
        })
        .map(|_| ())
        .map_err(|e| e.into_error(&what))
    }

    fn set_password(&mut self, dn: &str, password: &Secret) -> BackendResult<()> {
        self.writable()?;
        if self.config.flavor == Flavor::ActiveDirectory {
            if !self.config.encrypted() {
                return Err(BackendError::Refused(format!(
                    "not setting the password of {dn} over an unencrypted connection"
                )));
            }
            let quoted = unicode_pwd(password);
            let what = format!("set the password of {dn}");
            return self
                .call(&what, |conn| {
                    conn.modify(
                        dn,
                        vec![Mod::Replace(
                            "unicodePwd".as_bytes(),
                            HashSet::from([quoted.expose()]),
                        )],
                    )
                    .and_then(|r| r.success())
                })
                .map(|_| ())
                .map_err(|e| e.into_error(&what));
        }
        if self.password_modify {
            let what = format!("set the password of {dn}");
            return self
                .call(&what, |conn| {
                    conn.extended(PasswordModify {
                        user_id: Some(dn),
                        old_pass: None,
                        new_pass: Some(password.expose()),
                    })
                    .and_then(|r| r.success())
                })
                .map(|_| ())
                .map_err(|e| e.into_error(&what));
        }
        // No RFC 3062: store a salted hash ourselves.
        let hashed = super::ldif::ssha_hash(password)?;
        self.replace(dn, "userPassword", &[hashed])
    }

    fn check_password(&mut self, dn: &str, password: &Secret) -> BackendResult<bool> {
        // On its own connection (a bind changes who the connection is), kept between checks;
        // a connection that fails (the server restarted) is replaced, with the same backoff
        // as every other operation.
        let what = format!("binding as {dn}");
        let mut attempt = 0;
        loop {
            let conn = match &mut self.check_conn {
                Some(conn) => Ok(conn),
                None => match self.config.connect() {
                    Ok(conn) => Ok(self.check_conn.insert(conn)),
                    Err(e) => Err(e),
                },
            };
            let failure = match conn {
                Ok(conn) => match conn
                    .simple_bind(dn, password.expose())
                    .and_then(|r| r.success())
                {
                    Ok(_) => return Ok(true),
                    Err(e) if rc_of(&e) == Some(49) => return Ok(false),
                    Err(e) if connection_failed(&e) => e.to_string(),
                    Err(e) => return Err(result_error(e, &what)),
                },
                Err(BackendError::Unavailable(e)) => e,
                Err(e) => return Err(e),
            };
            self.check_conn = None;
            let Some(wait) = BACKOFF.get(attempt) else {
                return Err(gave_up(format!(
                    "{what}: the directory stopped answering: {failure}"
                )));
            };
            attempt += 1;
            std::thread::sleep(*wait);
        }
    }

    fn enable_account(&mut self, dn: &str) -> BackendResult<Option<String>> {
        if self.config.flavor != Flavor::ActiveDirectory {
            return Ok(None);
        }
        self.writable()?;
        let uac = self.account_control(dn)?;
        let enabled = (uac & !(UAC_ACCOUNTDISABLE | UAC_PASSWD_NOTREQD)) | UAC_NORMAL_ACCOUNT;
        if enabled != uac {
            self.replace(dn, "userAccountControl", &[enabled.to_string()])?;
        }
        Ok(Some(format!("enabled (userAccountControl {enabled})")))
    }

    fn require_password_change(&mut self, dn: &str) -> BackendResult<bool> {
        self.writable()?;
        if self.config.flavor == Flavor::ActiveDirectory {
            // pwdLastSet 0: must change at next logon.
            self.replace(dn, "pwdLastSet", &["0".to_owned()])?;
            return Ok(true);
        }
        // pwdReset exists where the password policy overlay (ppolicy) is loaded.
        let what = format!("require a password change for {dn}");
        match self.call(&what, |conn| {
            conn.modify(dn, vec![Mod::Replace("pwdReset", HashSet::from(["TRUE"]))])
                .and_then(|r| r.success())
        }) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.rc(), Some(16 | 17 | 21 | 50 | 53 | 65)) => Ok(false),
            Err(e) => Err(e.into_error(&what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, starttls: bool) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            flavor: Flavor::OpenLdap,
            starttls,
            ca_file: None,
            bind_dn: Some("cn=admin,dc=example,dc=org".into()),
            password: Some(Secret::new("secret".into())),
            timeout: Duration::from_secs(5),
            allow_plaintext: false,
        }
    }

    #[test]
    fn active_directory_only_over_encryption_even_on_loopback() {
        let ad = |url: &str, starttls| LdapConfig {
            flavor: Flavor::ActiveDirectory,
            ..config(url, starttls)
        };
        let err = ad("ldap://127.0.0.1:389", false)
            .check_transport()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("only used over an encrypted connection")
        );
        assert!(ad("ldap://127.0.0.1:389", true).check_transport().is_ok());
        assert!(
            ad("ldaps://dc1.example.org", false)
                .check_transport()
                .is_ok()
        );
    }

    #[test]
    fn ad_result_codes_become_clear_messages() {
        let rc = |rc: u32, text: &str| {
            result_error(
                LdapError::LdapResult {
                    result: ldap3::LdapResult {
                        rc,
                        matched: String::new(),
                        text: text.into(),
                        refs: Vec::new(),
                        ctrls: Vec::new(),
                    },
                },
                "set the password of CN=Zoë,CN=Users,DC=x",
            )
            .to_string()
        };
        let weak = rc(
            19,
            "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 40 characters!",
        );
        assert!(
            weak.contains("does not meet the directory's complexity/length policy"),
            "{weak}"
        );
        let taken = rc(
            68,
            "samldb: Account name (sAMAccountName) 'zoe' already in use!",
        );
        assert!(
            taken.contains("sAMAccountName or userPrincipalName, is taken"),
            "{taken}"
        );
        let bad = rc(
            49,
            "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1",
        );
        assert!(
            bad.contains("bad credentials") && bad.contains("data 52e"),
            "{bad}"
        );
        let strong = rc(8, "BindSimple: Transport encryption required.");
        assert!(
            strong.contains("requires an encrypted connection"),
            "{strong}"
        );
        let unwilling = rc(
            53,
            "0000001F: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM)",
        );
        assert!(
            unwilling.contains("unwilling to perform (LDAP 53)"),
            "{unwilling}"
        );
    }

    #[test]
    fn unicode_pwd_is_the_quoted_password_in_utf16le() {
        let encoded = unicode_pwd(&Secret::new("pä1".into()));
        assert_eq!(
            encoded.expose(),
            [b'"', 0, b'p', 0, 0xe4, 0, b'1', 0, b'"', 0]
        );
    }

    #[test]
    fn clear_text_passwords_only_go_to_loopback() {
        assert!(
            config("ldap://127.0.0.1:389", false)
                .check_transport()
                .is_ok()
        );
        assert!(
            config("ldap://localhost:389", false)
                .check_transport()
                .is_ok()
        );
        assert!(config("ldap://[::1]:389", false).check_transport().is_ok());
        let err = config("ldap://10.1.2.3:389", false)
            .check_transport()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("not sending the bind password to 10.1.2.3 in clear text")
        );
        assert!(
            config("ldap://dc1.example.org", false)
                .check_transport()
                .is_err()
        );
        assert!(
            config("ldap://dc1.example.org", true)
                .check_transport()
                .is_ok()
        );
        assert!(
            config("ldaps://dc1.example.org", false)
                .check_transport()
                .is_ok()
        );
        let mut allowed = config("ldap://10.1.2.3", false);
        allowed.allow_plaintext = true;
        assert!(allowed.check_transport().is_ok());
    }
}
