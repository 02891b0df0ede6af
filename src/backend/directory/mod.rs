//! The directory: where accounts and groups live.

pub mod ldap;
pub mod ldif;

use super::{BackendError, BackendResult};
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

pub trait Directory {
    /// For messages: "embedded directory /var/…/directory.ldif", "ldaps://dc1:636".
    fn describe(&self) -> String;
    /// The entry at `dn`, if it exists.
    fn read(&mut self, dn: &str) -> BackendResult<Option<Entry>>;
    /// Entries under `base` whose `attr` equals `value` (case-insensitive).
    fn find(&mut self, base: &str, attr: &str, value: &str) -> BackendResult<Vec<Entry>>;
    /// Every value of `attr` under `base` (for allocating uidNumbers).
    fn values(&mut self, base: &str, attr: &str) -> BackendResult<Vec<String>>;
    /// Adds an entry; `AlreadyExists` if the DN is taken, `NoSuchObject` if the parent is missing.
    fn add(&mut self, entry: &Entry) -> BackendResult<()>;
    /// Adds values to an attribute; values already present are not an error.
    fn add_values(&mut self, dn: &str, attr: &str, values: &[String]) -> BackendResult<()>;
    /// Replaces an attribute's values.
    fn replace(&mut self, dn: &str, attr: &str, values: &[String]) -> BackendResult<()>;
    /// Sets the entry's password (stored hashed).
    fn set_password(&mut self, dn: &str, password: &Secret) -> BackendResult<()>;
    /// Whether `password` is the entry's password: for LDAP, whether a bind succeeds.
    fn check_password(&mut self, dn: &str, password: &Secret) -> BackendResult<bool>;
    /// The entry at `dn` with only `attrs` (a group's `objectClass` without its members).
    fn read_attrs(&mut self, dn: &str, attrs: &[&str]) -> BackendResult<Option<Entry>> {
        Ok(self.read(dn)?.map(|mut e| {
            e.attrs
                .retain(|(n, _)| attrs.iter().any(|a| a.eq_ignore_ascii_case(n)));
            e
        }))
    }
    /// Whether `dn`'s `attr` has `value` (DN-valued attributes compared as DNs), without
    /// fetching every value: a group's member list can be long.
    fn has_value(&mut self, dn: &str, attr: &str, value: &str) -> BackendResult<bool> {
        let Some(entry) = self.read(dn)? else {
            return Err(BackendError::NoSuchObject(dn.to_owned()));
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
    fn enable_account(&mut self, _dn: &str) -> BackendResult<Option<String>> {
        Ok(None)
    }

    fn require_password_change(&mut self, _dn: &str) -> BackendResult<bool> {
        Ok(false)
    }
}
