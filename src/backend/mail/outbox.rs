//! The embedded mail target: an outbox folder of RFC 5322 `.eml` files.
//!
//! Used when no SMTP server is configured. Each message is written atomically under a name
//! derived from its Message-ID, so "was it sent?" has an exact answer: the file exists.
//! Any mail client opens the files; `sendmail -t < file.eml` would send one.

use std::path::{Path, PathBuf};

use super::{Mailer, Outgoing};
use crate::backend::{BackendError, BackendResult};
use crate::state;

pub struct Outbox {
    dir: PathBuf,
    read_only: bool,
}

impl Outbox {
    pub fn open(dir: &Path) -> BackendResult<Outbox> {
        state::private_dir(dir)?;
        Ok(Outbox {
            dir: dir.to_owned(),
            read_only: false,
        })
    }

    /// For a dry run: answers `was_sent`, refuses to send, creates nothing.
    pub fn read_only(dir: &Path) -> Outbox {
        Outbox {
            dir: dir.to_owned(),
            read_only: true,
        }
    }

    /// The file a message is (or would be) stored in.
    pub fn path(&self, message_id: &str) -> PathBuf {
        let name: String = message_id
            .trim_matches(['<', '>'])
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{name}.eml"))
    }
}

impl Mailer for Outbox {
    fn describe(&self) -> String {
        format!("outbox {}", self.dir.display())
    }

    fn keeps_copies(&self) -> Option<String> {
        Some(self.dir.display().to_string())
    }

    fn send(&mut self, message: &Outgoing<'_>) -> BackendResult<()> {
        if self.read_only {
            return Err(BackendError::Other("a dry run sends nothing".into()));
        }
        state::write_atomic(&self.path(message.message_id), message.bytes)?;
        Ok(())
    }

    fn was_sent(&mut self, message_id: &str) -> BackendResult<Option<bool>> {
        Ok(Some(self.path(message_id).exists()))
    }
}
