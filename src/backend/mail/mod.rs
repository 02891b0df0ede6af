//! The mail server: where welcome and password messages go.

pub mod outbox;
pub mod smtp;

use super::BackendResult;

/// A message ready to send: envelope and the formatted RFC 5322 bytes.
pub struct Outgoing<'a> {
    pub message_id: &'a str,
    pub from: &'a str,
    pub to: &'a [String],
    pub bytes: &'a [u8],
}

pub trait Mailer {
    fn describe(&self) -> String;
    fn send(&mut self, message: &Outgoing<'_>) -> BackendResult<()>;
    /// Whether a message with this Message-ID was sent: `Some` when the target can tell (an
    /// outbox can), `None` when it cannot (an SMTP server gives no way to ask).
    fn was_sent(&mut self, message_id: &str) -> BackendResult<Option<bool>>;
    /// Where this target keeps a copy of every message it takes, if it does (the outbox is
    /// a folder of `.eml` files): a message carrying a password must say so.
    fn keeps_copies(&self) -> Option<String> {
        None
    }
}
