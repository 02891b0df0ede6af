//! The store: everything that is state. Each hire's journal (read, append, list), the per-hire
//! lock with its holder, the uidNumber allocation lock, evidence files and receipts.
//!
//! The engine, `status`, `verify`, reports and sign-offs talk to a [`Store`] and never to the
//! file system: the state directory ([`crate::state::StateDir`]) is one implementation, and a
//! PostgreSQL database ([`postgres::PgStore`]) another. The embedded LDIF directory and the
//! outbox are not state (they are targets), so they are not here.
//!
//! Invariants every store keeps:
//! - a journal is only appended to, by the holder of the hire's lock, each record durable
//!   before `Log::append` returns (so before the effect it announces starts);
//! - the records are the same bytes in every store, so one `verify` checks them all, and a
//!   journal copied between stores (`import`) keeps its chain;
//! - a lock is released by the system when its holder dies, and a refusal names the holder;
//! - evidence is kept by its SHA-256, which the journal records;
//! - a policy version, once published, keeps its text (the first publication wins).

pub mod copy;
pub mod postgres;

use std::io;

use crate::journal::{Event, JournalText, OpenError, Record};
use crate::policy::Published;

/// A held lock: released when dropped (and by the system if the process dies).
pub type Guard = Box<dyn std::any::Any + Send>;

/// Says whether this run still holds its hire (`Err`: it lost it, e.g. its connection to
/// PostgreSQL was cut, and another run may have taken the hire). Asked before every effect.
pub type HoldCheck = std::sync::Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// This machine's name, for a lock's holder (runs on several machines share one store).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".to_owned())
}

pub trait Store: Send + Sync {
    /// Where the store is, for messages.
    fn describe(&self) -> String;
    /// Every hire with a journal, sorted.
    fn hires(&self) -> io::Result<Vec<String>>;
    /// Whether `hire` has a journal.
    fn has(&self, hire: &str) -> bool;
    /// Where a hire's journal is, as messages name it (`FILE` for `FILE:LINE: problem`).
    fn journal_name(&self, hire: &str) -> String;
    /// A hire's journal as written, for reading only; `NotFound` when there is none.
    fn read(&self, hire: &str) -> io::Result<JournalText>;
    /// Takes the hire's lock (or says who holds it), then opens its journal for appending,
    /// creating it, cutting off a record torn by a crash, verifying the rest.
    fn open(&self, hire: &str, holder: &str, run: &str, actor: &str)
    -> Result<Session, StoreError>;
    /// Whether a live run holds the hire's lock, found without taking it.
    fn is_locked(&self, hire: &str) -> bool;
    /// Each of `hires`' journals as `read` gives it, in one pass where the store can: `status`,
    /// `verify` and reports read thousands.
    fn read_many(&self, hires: &[String]) -> Vec<io::Result<JournalText>> {
        hires.iter().map(|h| self.read(h)).collect()
    }
    /// Which of `hires` a live run holds, found without taking the locks, in one pass where
    /// the store can.
    fn locked(&self, hires: &[String]) -> std::collections::BTreeSet<String> {
        hires
            .iter()
            .filter(|h| self.is_locked(h))
            .cloned()
            .collect()
    }
    /// Serialises uidNumber allocation among runs sharing this store, until the guard drops.
    fn lock_allocation(&self) -> io::Result<Guard>;
    /// Keeps an evidence file for `hire` under `name`; returns its SHA-256.
    fn keep_evidence(&self, hire: &str, name: &str, bytes: &[u8]) -> io::Result<String>;
    /// The evidence files kept for `hire`.
    fn evidence(&self, hire: &str) -> io::Result<Vec<Evidence>>;
    /// Keeps a hand-off receipt (text and HTML); returns where people find it.
    fn keep_receipt(&self, hire: &str, step: &str, text: &str, html: &str) -> io::Result<String>;
    /// Writes a whole journal (verified by the caller) for a hire that has none here, under
    /// the hire's lock; `AlreadyExists` when it has one.
    fn import(&self, hire: &str, text: &str) -> Result<(), StoreError>;
    /// Publishes a policy text under its file name and version, unless that version is
    /// published already; returns what is published under it (compare the SHA-256: a version
    /// names one text for good).
    fn publish_policy(&self, policy: &Published) -> io::Result<Published>;
    /// Every published policy version, oldest first.
    fn policies(&self) -> io::Result<Vec<Published>>;
}

/// An evidence file: its name as given, its content (its SHA-256 is its address).
pub struct Evidence {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A hire's journal opened for one run: held locked until dropped.
pub struct Session {
    pub log: Box<dyn Log>,
    /// What the journal already held, verified.
    pub records: Vec<Record>,
    /// Bytes of a torn last record that were cut off (0 normally).
    pub torn_bytes: usize,
    /// The hire's lock.
    pub lock: Guard,
}

/// Appending to one hire's journal: each record durable before `append` returns.
pub trait Log: Send {
    fn append(&mut self, at: &str, event: Event) -> io::Result<Record>;
    /// How to ask whether the hire is still held by this run. A kernel file lock is held
    /// until the process dies: always.
    fn hold_check(&self) -> HoldCheck {
        std::sync::Arc::new(|| Ok(()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another run is working on hire {hire} ({holder})")]
    Locked { hire: String, holder: String },
    #[error("journal {name}: {source}")]
    Journal { name: String, source: OpenError },
    #[error("{0}")]
    Io(#[from] io::Error),
}
