//! How to reach the LDAP server: URL, flavour, TLS, bind, and the refusal of a clear-text
//! password.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConn, LdapConnSettings, LdapError};

use super::errors::result_error;
use crate::backend::{BackendError, BackendResult};
use crate::secret::Secret;

/// How to reach and authenticate to the server (from the CLI's settings, never a playbook).
#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// What kind of server it is (AD sets passwords and enables accounts its own way).
    pub flavor: Flavor,
    /// Upgrade `ldap://` with StartTLS.
    pub starttls: bool,
    /// PEM file of the CA(s) that sign the server's certificate; default: the system's.
    pub ca_file: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
    /// Allow a password over an unencrypted connection to a host other than loopback.
    pub allow_plaintext: bool,
}

/// The kind of directory server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// OpenLDAP and other RFC servers: RFC 3062 password changes, `pwdReset`.
    OpenLdap,
    /// Active Directory (and Samba AD DC): `unicodePwd` over an encrypted connection only,
    /// `userAccountControl`, `pwdLastSet`.
    ActiveDirectory,
}

impl LdapConfig {
    pub(super) fn host(&self) -> String {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let hostport = rest.split('/').next().unwrap_or(rest);
        match hostport.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6).to_owned(),
            None => hostport
                .rsplit_once(':')
                .map_or(hostport, |(h, _)| h)
                .to_owned(),
        }
    }

    /// Whether the server is on this machine (127.0.0.0/8, ::1, localhost).
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    pub(super) fn encrypted(&self) -> bool {
        self.url.starts_with("ldaps://") || self.starttls
    }

    /// Refuses to send a password in clear text over the network.
    pub fn check_transport(&self) -> BackendResult<()> {
        if self.flavor == Flavor::ActiveDirectory && !self.encrypted() {
            // Even where a server would accept it: the bind and every password set by
            // unicodePwd would cross the network in clear text.
            return Err(BackendError::Refused(format!(
                "Active Directory is only used over an encrypted connection, and {} is not: \
                 use ldaps:// (port 636) or StartTLS (ONBOARD_LDAP_STARTTLS=1)",
                self.url
            )));
        }
        if self.password.is_none() || self.encrypted() || self.allow_plaintext {
            return Ok(());
        }
        if self.is_loopback() {
            return Ok(());
        }
        let host = self.host();
        Err(BackendError::Refused(format!(
            "not sending the bind password to {host} in clear text: use ldaps:// or StartTLS \
             (ONBOARD_LDAP_STARTTLS=1), or set ONBOARD_LDAP_ALLOW_PLAINTEXT=1 if this network is trusted"
        )))
    }

    pub(super) fn settings(&self) -> BackendResult<LdapConnSettings> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.starttls && self.url.starts_with("ldap://"));
        if let Some(ca) = &self.ca_file {
            settings = settings.set_config(Arc::new(crate::backend::tls::client_config(Some(ca))?));
        }
        Ok(settings)
    }

    /// A connection bound as the configured DN (anonymous without one).
    pub(super) fn bound(&self) -> BackendResult<LdapConn> {
        let mut conn = self.connect()?;
        if let (Some(dn), Some(pw)) = (&self.bind_dn, &self.password) {
            conn.simple_bind(dn, pw.expose())
                .and_then(|r| r.success())
                .map_err(|e| result_error(e, &format!("binding as {dn}")))?;
        }
        Ok(conn)
    }

    pub(super) fn connect(&self) -> BackendResult<LdapConn> {
        let mut conn = LdapConn::with_settings(self.settings()?, &self.url)
            .map_err(|e| connection_error(&self.url, e))?;
        conn.with_timeout(self.timeout);
        Ok(conn)
    }
}

fn connection_error(url: &str, e: LdapError) -> BackendError {
    let text = e.to_string();
    let hint = if text.contains("Connection refused") {
        "is the server running, and is ONBOARD_LDAP_URL right?"
    } else if text.contains("certificate") || text.contains("tls") || text.contains("TLS") {
        "check the server certificate and ONBOARD_LDAP_CA_FILE"
    } else if matches!(e, LdapError::Timeout { .. }) {
        "the server did not answer in time; check the address and ONBOARD_LDAP_TIMEOUT"
    } else {
        "check ONBOARD_LDAP_URL"
    };
    BackendError::Unavailable(format!("cannot connect to {url}: {text} ({hint})"))
}
