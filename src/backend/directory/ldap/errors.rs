//! LDAP result codes, and Active Directory's reasons, as messages an IT tech can act on.

use ldap3::LdapError;

use crate::backend::BackendError;
use crate::secret::{Secret, SecretBytes};

/// Why `LdapDirectory::call` failed.
pub(super) enum Failed {
    /// The server answered with a result code (`true`: after a reconnect).
    Result(LdapError, bool),
    /// It never answered, retries included.
    Unavailable(BackendError),
}

impl Failed {
    pub(super) fn rc(&self) -> Option<u32> {
        match self {
            Failed::Result(e, _) => rc_of(e),
            Failed::Unavailable(_) => None,
        }
    }

    pub(super) fn into_error(self, what: &str) -> BackendError {
        match self {
            Failed::Result(e, _) => result_error(e, what),
            Failed::Unavailable(e) => e,
        }
    }
}

/// A result code as an IT tech would want to read it.
pub(super) fn result_error(e: LdapError, what: &str) -> BackendError {
    let LdapError::LdapResult { result } = e else {
        return BackendError::Unavailable(format!("{what}: {e}"));
    };
    let text = if result.text.is_empty() {
        String::new()
    } else {
        format!(": {}", result.text)
    };
    let ad = ad_diagnostic(&result.text);
    match result.rc {
        8 => BackendError::Refused(format!(
            "the server requires an encrypted connection (LDAP 8, strong authentication required) \
             for {what}{text}: use ldaps:// or StartTLS (ONBOARD_LDAP_STARTTLS=1)"
        )),
        19 if result.text.contains("check_password_restrictions")
            || result.text.contains("0000052D") =>
        {
            BackendError::Refused(format!(
                "the password does not meet the directory's complexity/length policy (LDAP 19) \
                 for {what}{text}: raise `password.length` in the playbook, or ask a directory \
                 admin what the policy requires"
            ))
        }
        // AD also answers 68 for a sAMAccountName or userPrincipalName another entry has.
        68 => BackendError::Refused(format!(
            "{what} already exists (LDAP 68){text}: the DN, or in Active Directory the \
             sAMAccountName or userPrincipalName, is taken; pick a different login in the \
             playbook's vars"
        )),
        49 if ad.is_some() => BackendError::Refused(format!(
            "{} (LDAP 49, data {}) for {what}",
            ad.map_or("", |(_, why)| why),
            ad.map_or("", |(code, _)| code)
        )),
        32 => BackendError::NoSuchObject(what.to_owned()),
        49 => BackendError::Refused(format!(
            "bad credentials (LDAP 49) for {what}: the bind DN or password is wrong{text}"
        )),
        50 => BackendError::Refused(format!(
            "insufficient access (LDAP 50): the bind DN may not {what}{text}"
        )),
        19 => BackendError::Refused(format!(
            "constraint violation (LDAP 19) on {what}{text}: the server's password policy or a schema constraint refused the value"
        )),
        53 => BackendError::Refused(format!(
            "the server is unwilling to perform (LDAP 53) {what}{text}"
        )),
        65 => BackendError::Refused(format!(
            "object class violation (LDAP 65) on {what}{text}: check `object_classes` and the attributes they require"
        )),
        17 | 21 => BackendError::Refused(format!(
            "invalid attribute (LDAP {}) on {what}{text}",
            result.rc
        )),
        rc => BackendError::Refused(format!("LDAP error {rc} on {what}{text}")),
    }
}

/// A password as AD's `unicodePwd` takes it (MS-ADTS 3.1.1.3.1.5.1): in double quotes,
/// UTF-16LE.
pub(super) fn unicode_pwd(password: &Secret) -> SecretBytes {
    let mut quoted = String::with_capacity(password.expose().len() + 2);
    quoted.push('"');
    quoted.push_str(password.expose());
    quoted.push('"');
    let bytes = quoted.encode_utf16().flat_map(u16::to_le_bytes).collect();
    // The temporary text is a secret too.
    drop(Secret::new(quoted));
    SecretBytes::new(bytes)
}

/// Active Directory's reason inside a bind error's text (`…, data 52e, v4563`).
pub(super) fn ad_diagnostic(text: &str) -> Option<(&'static str, &'static str)> {
    const REASONS: &[(&str, &str)] = &[
        ("525", "no such user"),
        ("52e", "bad credentials: the bind DN or password is wrong"),
        ("530", "the account may not log on at this time"),
        ("531", "the account may not log on from this workstation"),
        ("532", "the password has expired"),
        ("533", "the account is disabled"),
        ("701", "the account has expired"),
        ("773", "the user must reset the password before logging on"),
        ("775", "the account is locked out"),
    ];
    let code = text.split("data ").nth(1)?.split([',', ' ']).next()?;
    REASONS
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
        .copied()
}

pub(super) fn rc_of(e: &LdapError) -> Option<u32> {
    match e {
        LdapError::LdapResult { result } => Some(result.rc),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_directory_reasons_are_read_from_the_diagnostic() {
        let text = "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563";
        assert_eq!(
            ad_diagnostic(text),
            Some(("52e", "bad credentials: the bind DN or password is wrong"))
        );
        assert_eq!(
            ad_diagnostic("..., data 773, v2580").map(|(c, _)| c),
            Some("773")
        );
        assert_eq!(ad_diagnostic("no data here"), None);
        assert_eq!(ad_diagnostic("data 999, v1"), None);
    }
}
