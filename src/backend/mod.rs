//! Backends: the systems steps change, each a trait with real implementations.
//!
//! - [`directory::Directory`]: the embedded LDIF-file directory ([`directory::ldif`]); a real
//!   LDAP server ([`directory::ldap`]).
//! - [`mail::Mailer`]: the embedded outbox of .eml files ([`mail::outbox`]); a real SMTP
//!   server ([`mail::smtp`]).
//!
//! Backends know nothing about playbooks or journals: steps call them, the engine journals.

pub mod directory;
pub mod mail;
pub mod scim;
pub mod tls;

/// Why a target operation failed, in terms an IT tech acts on.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
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

impl From<std::io::Error> for BackendError {
    fn from(e: std::io::Error) -> Self {
        BackendError::Unavailable(e.to_string())
    }
}

pub type BackendResult<T> = Result<T, BackendError>;
