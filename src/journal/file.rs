//! The journal as a file: opened locked for appending (a torn last record cut off), each record
//! fsync'd; read for people up to a byte that is not UTF-8, never through a symlink.

use std::io::{self, Write};
use std::path::Path;

use super::{Broken, Chain, Event, Record, last_hash, verify};
use crate::state;

/// An open journal, appending records for one run.
pub struct Journal {
    file: fs_err::File,
    chain: Chain,
}

impl Journal {
    /// Opens the journal at `path` (creating it), verifying what it holds.
    ///
    /// A last line without its newline is a record torn by a crash while it was written; since
    /// every record is written before the effect it announces, dropping it loses nothing that
    /// happened, and it is cut off (`Opened::torn_bytes` says how much).
    pub fn open(path: &Path, run: &str, actor: &str) -> Result<Opened, OpenError> {
        let file = state::open_append(path).map_err(OpenError::Io)?;
        let mut text = fs_err::read_to_string(path).map_err(OpenError::Io)?;
        let mut torn_bytes = 0;
        if !text.is_empty() && !text.ends_with('\n') {
            let keep = text.rfind('\n').map_or(0, |i| i + 1);
            torn_bytes = text.len() - keep;
            file.set_len(keep as u64).map_err(OpenError::Io)?;
            file.sync_all().map_err(OpenError::Io)?;
            text.truncate(keep);
        }
        let records = verify(&text).map_err(OpenError::Broken)?;
        let chain = Chain::after(&records, last_hash(&text), run, actor);
        Ok(Opened {
            journal: Journal { file, chain },
            records,
            torn_bytes,
        })
    }

    /// Appends one record and makes it durable before returning.
    pub fn append(&mut self, at: &str, event: Event) -> io::Result<Record> {
        let (record, line, hash) = self.chain.next(at, event);
        // Where the record starts: a write that fails part-way (a full disk) is cut off
        // again, so the journal never holds half a record (cutting needs no space).
        let start = self.file.metadata()?.len();
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let _ = self.file.set_len(start);
            let _ = self.file.sync_data();
            return Err(e);
        }
        self.chain.advance(hash);
        Ok(record)
    }
}

impl crate::store::Log for Journal {
    fn append(&mut self, at: &str, event: Event) -> io::Result<Record> {
        Journal::append(self, at, event)
    }
}

/// A journal opened for appending, with what it already held.
pub struct Opened {
    pub journal: Journal,
    pub records: Vec<Record>,
    /// Bytes of a torn last record that were cut off (0 normally).
    pub torn_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(io::Error),
    #[error("the journal does not verify: {0}")]
    Broken(Broken),
}

/// A journal file as read for people (`status`, `log`, `verify`, `report`): the complete lines
/// before any byte that is not UTF-8, and that byte's place.
pub struct JournalText {
    pub text: String,
    /// An invalid UTF-8 byte: the journal is broken at that line, and `text` stops before it.
    pub unreadable: Option<Broken>,
}

impl JournalText {
    /// The records that verify, up to the first break, and the break if there is one: what
    /// people are shown of a damaged journal.
    pub fn checked(&self) -> (Vec<Record>, Option<Broken>) {
        match self.verify() {
            Ok(records) => (records, None),
            Err(broken) => {
                let good: String = self
                    .text
                    .split_terminator('\n')
                    .take(broken.line - 1)
                    .map(|l| format!("{l}\n"))
                    .collect();
                (verify(&good).unwrap_or_default(), Some(broken))
            }
        }
    }

    /// The records, or where the journal breaks (the earliest problem).
    pub fn verify(&self) -> Result<Vec<Record>, Broken> {
        let records = verify(&self.text)?;
        match &self.unreadable {
            Some(b) => Err(b.clone()),
            None => Ok(records),
        }
    }
}

/// Reads a journal never through a symlink (a journal is a file onboard wrote, never a link
/// to something else), keeping what precedes a non-UTF-8 byte.
pub fn read_text(path: &Path) -> io::Result<JournalText> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::other(format!(
            "{} is a symlink; onboard reads journals only as the files it wrote",
            path.display()
        )));
    }
    let bytes = crate::files::read_regular(path, crate::files::JOURNAL_LIMIT)?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(JournalText {
            text,
            unreadable: None,
        }),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let prefix = std::str::from_utf8(&bytes[..valid]).expect("valid prefix");
            let keep = prefix.rfind('\n').map_or(0, |i| i + 1);
            let (line, column) = crate::diag::utf8_error_at(&bytes, valid);
            let line = line as usize;
            Ok(JournalText {
                text: prefix[..keep].to_owned(),
                unreadable: Some(Broken {
                    line,
                    problem: format!(
                        "byte 0x{:02X} at column {column} is not UTF-8: the file was changed \
                         or damaged",
                        bytes[valid]
                    ),
                }),
            })
        }
    }
}
