//! Targets: the systems steps change. Each is a trait with real implementations.
//!
//! - [`Directory`]: the embedded LDIF-file directory ([`ldif`]); a real LDAP server ([`ldap`]).
//! - [`Mailer`]: the embedded outbox of .eml files ([`outbox`]); a real SMTP server ([`smtp`]).
//!
//! Targets know nothing about playbooks or journals: steps call them, the engine journals.

pub mod ldap;
pub mod ldif;
pub mod outbox;
pub mod smtp;
mod tls;

use crate::secret::Secret;

/// A directory entry: DN and attributes (names compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<String>)>,
}

impl Entry {
    pub fn get(&self, name: &str) -> &[String] {
        self.attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    pub fn has_value(&self, name: &str, value: &str) -> bool {
        self.get(name).iter().any(|v| v.eq_ignore_ascii_case(value))
    }

    pub fn has_object_class(&self, class: &str) -> bool {
        self.has_value("objectClass", class)
    }
}

/// Why a target operation failed, in terms an IT tech acts on.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} does not exist")]
    NoSuchObject(String),
    #[error("refused by the server: {0}")]
    Refused(String),
    #[error("{0}")]
    Unavailable(String),
    /// The connection broke while the server may have been acting on it (a message in
    /// transfer): whether it happened cannot be known.
    #[error("{0}")]
    Uncertain(String),
    #[error("{0}")]
    Other(String),
}

impl From<std::io::Error> for TargetError {
    fn from(e: std::io::Error) -> Self {
        TargetError::Unavailable(e.to_string())
    }
}

pub type TargetResult<T> = Result<T, TargetError>;

pub trait Directory {
    /// For messages: "embedded directory /var/…/directory.ldif", "ldaps://dc1:636".
    fn describe(&self) -> String;
    /// The entry at `dn`, if it exists.
    fn read(&mut self, dn: &str) -> TargetResult<Option<Entry>>;
    /// Entries under `base` whose `attr` equals `value` (case-insensitive).
    fn find(&mut self, base: &str, attr: &str, value: &str) -> TargetResult<Vec<Entry>>;
    /// Every value of `attr` under `base` (for allocating uidNumbers).
    fn values(&mut self, base: &str, attr: &str) -> TargetResult<Vec<String>>;
    /// Adds an entry; `AlreadyExists` if the DN is taken, `NoSuchObject` if the parent is missing.
    fn add(&mut self, entry: &Entry) -> TargetResult<()>;
    /// Adds values to an attribute; values already present are not an error.
    fn add_values(&mut self, dn: &str, attr: &str, values: &[String]) -> TargetResult<()>;
    /// Replaces an attribute's values.
    fn replace(&mut self, dn: &str, attr: &str, values: &[String]) -> TargetResult<()>;
    /// Sets the entry's password (stored hashed).
    fn set_password(&mut self, dn: &str, password: &Secret) -> TargetResult<()>;
    /// Whether `password` is the entry's password: for LDAP, whether a bind succeeds.
    fn check_password(&mut self, dn: &str, password: &Secret) -> TargetResult<bool>;
    /// The entry at `dn` with only `attrs` (a group's `objectClass` without its members).
    fn read_attrs(&mut self, dn: &str, attrs: &[&str]) -> TargetResult<Option<Entry>> {
        Ok(self.read(dn)?.map(|mut e| {
            e.attrs
                .retain(|(n, _)| attrs.iter().any(|a| a.eq_ignore_ascii_case(n)));
            e
        }))
    }
    /// Whether `dn`'s `attr` has `value` (DN-valued attributes compared as DNs), without
    /// fetching every value: a group's member list can be long.
    fn has_value(&mut self, dn: &str, attr: &str, value: &str) -> TargetResult<bool> {
        let Some(entry) = self.read(dn)? else {
            return Err(TargetError::NoSuchObject(dn.to_owned()));
        };
        let dn_valued = ["member", "uniqueMember"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attr));
        Ok(entry.get(attr).iter().any(|v| {
            if dn_valued {
                crate::escape::dn_eq(v, value)
            } else {
                v.eq_ignore_ascii_case(value)
            }
        }))
    }
    /// Makes the user change the password at first login, where the directory can enforce it.
    /// Returns whether it is enforced.
    /// Makes an account usable once its password is set, where the server needs that (Active
    /// Directory creates users disabled); says what it did, or `None` where nothing is needed.
    fn enable_account(&mut self, _dn: &str) -> TargetResult<Option<String>> {
        Ok(None)
    }

    fn require_password_change(&mut self, _dn: &str) -> TargetResult<bool> {
        Ok(false)
    }
}

/// A message ready to send: envelope and the formatted RFC 5322 bytes.
pub struct Outgoing<'a> {
    pub message_id: &'a str,
    pub from: &'a str,
    pub to: &'a [String],
    pub bytes: &'a [u8],
}

pub trait Mailer {
    fn describe(&self) -> String;
    fn send(&mut self, message: &Outgoing<'_>) -> TargetResult<()>;
    /// Whether a message with this Message-ID was sent: `Some` when the target can tell (an
    /// outbox can), `None` when it cannot (an SMTP server gives no way to ask).
    fn was_sent(&mut self, message_id: &str) -> TargetResult<Option<bool>>;
}
