//! The journal: one append-only JSON Lines file per hire, the only source of state.
//!
//! Each line is one record of an explicit, versioned type (not a dump of internal structs):
//!
//! ```text
//! {"v":1,"seq":3,"at":"…","actor":"alice","run":"…","type":"step_done","step":"account",…,"prev":"<hash of line 3>","hash":"<sha256 of this line up to ,"hash">"}
//! ```
//!
//! `hash` is the SHA-256 of the line's text before `,"hash":`; `prev` is the previous line's
//! `hash` (64 zeros for the first). Changing, removing or reordering any line breaks the chain
//! at that line. Each record is written and fsync'd before the effect it announces starts (and
//! before the next one), so a crash loses at most the record being written, which replay then
//! reports. The chain proves the file was not edited line by line; it does not prove the file
//! was not truncated at the end or rewritten whole (see ARCHITECTURE.md).
//!
//! Secrets are never in a record: the types have no field that could hold one.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::state;

/// The record format version this build writes and reads.
pub const VERSION: u32 = 1;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    pub seq: u64,
    /// RFC 3339 UTC timestamp.
    pub at: String,
    /// Who ran it: the OS user, or `--as NAME`.
    pub actor: String,
    /// Identifies the run that wrote it.
    pub run: String,
    #[serde(flatten)]
    pub event: Event,
    pub prev: String,
}

/// What happened. Field names are part of the format: add, never rename.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        hire: String,
        playbook: String,
        checklist: String,
        onboard: String,
        /// When the hire starts: `YYYY-MM-DD HH:MM Area/City`, if known.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        start: String,
        /// The same instant, RFC 3339.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        start_at: String,
        /// Each step's deadline (RFC 3339), where it has one.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        deadlines: BTreeMap<String, String>,
    },
    /// About to act. `intent` names what the effect will be known by (a Message-ID, an
    /// allocated uidNumber) so that an interrupted step can be recognised on resume.
    StepStarted {
        step: String,
        kind: String,
        checksum: String,
        #[serde(default)]
        intent: BTreeMap<String, String>,
    },
    /// The step's effect holds, verified by reading it back.
    StepDone {
        step: String,
        checksum: String,
        /// What this run changed; empty when it was already so.
        changes: Vec<String>,
        outputs: BTreeMap<String, String>,
        #[serde(default)]
        evidence: BTreeMap<String, String>,
    },
    StepFailed {
        step: String,
        checksum: String,
        error: String,
        /// The step changed nothing (it was refused before any effect, e.g. the entry is
        /// another hire's): the intent of its start is void, and no resume may claim it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        nothing_done: bool,
    },
    /// A person must act; `on` names the role. `request` says what they are asked to sign, so
    /// `onboard sign-off` can record it from the journal alone.
    StepWaiting {
        step: String,
        on: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<SignOffRequest>,
    },
    /// A person signed (or refused) a `sign_off` or acknowledged a `device_handoff`.
    SignedOff {
        step: String,
        checksum: String,
        role: String,
        /// The signer's name as given.
        by: String,
        /// The items confirmed, as worded when signed.
        confirmed: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<Refusal>,
        #[serde(default)]
        note: String,
        /// Evidence values (`wipe_certificate_id: WC-1`) and files (`file:NAME: SHA-256`).
        #[serde(default)]
        evidence: BTreeMap<String, String>,
        /// The device it is about (`asset_tag`, `serial`, …), if any.
        #[serde(default)]
        asset: BTreeMap<String, String>,
    },
    /// A send was interrupted and the server cannot be asked whether it went out: the operator
    /// decides (`--resend-uncertain`, or `onboard mark-sent`).
    StepUncertain {
        step: String,
        message_id: String,
        reason: String,
    },
    /// A done step that no longer matches the playbook (an attribute changed by hand): found
    /// by a run, reported, left as it is unless `--reconcile`. Empty: it matches again.
    StepDrift { step: String, drift: String },
    /// Not attempted because a step it needs is not done.
    StepSkipped { step: String, because: String },
    RunFinished {
        done: u32,
        already_done: u32,
        failed: u32,
        waiting: u32,
        skipped: u32,
        #[serde(default)]
        uncertain: u32,
    },
}

impl Event {
    pub fn step(&self) -> Option<&str> {
        match self {
            Event::StepStarted { step, .. }
            | Event::StepDone { step, .. }
            | Event::StepFailed { step, .. }
            | Event::StepWaiting { step, .. }
            | Event::SignedOff { step, .. }
            | Event::StepUncertain { step, .. }
            | Event::StepDrift { step, .. }
            | Event::StepSkipped { step, .. } => Some(step),
            Event::RunStarted { .. } | Event::RunFinished { .. } => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "run_started",
            Event::StepStarted { .. } => "step_started",
            Event::StepDone { .. } => "step_done",
            Event::StepFailed { .. } => "step_failed",
            Event::StepWaiting { .. } => "step_waiting",
            Event::StepUncertain { .. } => "step_uncertain",
            Event::StepDrift { .. } => "step_drift",
            Event::SignedOff { .. } => "signed_off",
            Event::StepSkipped { .. } => "step_skipped",
            Event::RunFinished { .. } => "run_finished",
        }
    }
}

/// What a person is asked to sign: recorded when the step starts waiting.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignOffRequest {
    pub role: String,
    pub items: Vec<String>,
    /// Names of evidence values the signer must give.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// Dual control: the signer may not be an operator of the automated steps.
    #[serde(default)]
    pub not_operator: bool,
    /// If not empty, only these people may sign.
    #[serde(default)]
    pub signers: Vec<String>,
    /// The device, if any (`asset_tag`, `serial`, `model`, `condition`, `accessories`).
    #[serde(default)]
    pub asset: BTreeMap<String, String>,
    /// For a hand-off: the cleaning sign-off step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleaning: Option<String>,
    /// Checksum of the step's parameters when it started waiting.
    pub checksum: String,
}

/// An item the signer would not confirm, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub item: String,
    pub reason: String,
}

/// Where and why a journal does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct Broken {
    /// 1-based line number.
    pub line: usize,
    pub problem: String,
}

/// Parses and verifies a whole journal text. Returns the records, or the first broken line.
pub fn verify(text: &str) -> Result<Vec<Record>, Broken> {
    let mut records = Vec::new();
    let mut prev = GENESIS.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        let line = text.split_terminator('\n').count();
        return Err(Broken {
            line,
            problem: "the last record is incomplete (the run was interrupted while writing it)"
                .into(),
        });
    }
    // Split on `\n` alone: a CR added before a line end is a change to the record, not a
    // line ending (`str::lines` would drop it and the record would still verify).
    for (i, line) in text.split_terminator('\n').enumerate() {
        let n = i + 1;
        let broken = |problem: String| Broken { line: n, problem };
        if line.ends_with('\r') {
            return Err(broken(
                "a carriage return was added at the end of the record".into(),
            ));
        }
        let (body, hash) = split_hash(line)
            .ok_or_else(|| broken("not a journal record (no hash at the end)".into()))?;
        if crate::digest::sha256(body) != hash {
            return Err(broken(
                "the record was changed after it was written (its hash does not match)".into(),
            ));
        }
        let record: Record = serde_json::from_str(&format!("{body}}}"))
            .map_err(|e| broken(format!("not a valid record: {e}")))?;
        if record.v != VERSION {
            return Err(broken(format!(
                "record version {} is not supported",
                record.v
            )));
        }
        if record.prev != prev {
            return Err(broken(
                "the chain is broken here: a record before this one was removed, reordered or changed"
                    .into(),
            ));
        }
        if record.seq != i as u64 {
            return Err(broken(format!(
                "sequence number {} where {i} was expected",
                record.seq
            )));
        }
        prev = hash.to_owned();
        records.push(record);
    }
    Ok(records)
}

/// Splits `…,"hash":"HEX"}` into the body (without the closing brace) and the hash.
fn split_hash(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_suffix("\"}")?;
    let idx = rest.rfind(",\"hash\":\"")?;
    let hash = &rest[idx + 9..];
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some((&rest[..idx], hash))
}

/// An open journal, appending records for one run.
pub struct Journal {
    file: fs_err::File,
    seq: u64,
    last_hash: String,
    run: String,
    actor: String,
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
        let last_hash = text
            .lines()
            .last()
            .and_then(split_hash)
            .map_or_else(|| GENESIS.to_owned(), |(_, h)| h.to_owned());
        Ok(Opened {
            journal: Journal {
                file,
                seq: records.len() as u64,
                last_hash,
                run: run.to_owned(),
                actor: actor.to_owned(),
            },
            records,
            torn_bytes,
        })
    }

    /// Appends one record and makes it durable before returning.
    pub fn append(&mut self, at: &str, event: Event) -> io::Result<Record> {
        let record = Record {
            v: VERSION,
            seq: self.seq,
            at: at.to_owned(),
            actor: self.actor.clone(),
            run: self.run.clone(),
            event,
            prev: self.last_hash.clone(),
        };
        let json = serde_json::to_string(&record).expect("records serialize");
        let body = json.strip_suffix('}').expect("an object");
        let hash = crate::digest::sha256(body);
        let line = format!("{body},\"hash\":\"{hash}\"}}\n");
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
        self.seq += 1;
        self.last_hash = hash;
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
            let line = prefix.matches('\n').count() + 1;
            let column = prefix[keep..].chars().count() + 1;
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

/// Reads a journal file without verifying (for `log` of a broken journal, up to the break).
pub fn read_lines(path: &Path) -> io::Result<Vec<String>> {
    let file = fs_err::File::open(path)?;
    io::BufReader::new(file).lines().collect()
}

// ---------------------------------------------------------------------------------------------
// State derived from the journal.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    /// Started and never finished: the run was interrupted during the step.
    Running,
    Done,
    Failed,
    Skipped,
    Waiting,
    /// An interrupted send whose outcome cannot be known.
    Uncertain,
    /// Started, and a live run holds the hire's lock: it is being worked on right now. Never
    /// replayed from the journal; `status` sets it after looking at the lock.
    InProgress,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "interrupted",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Waiting => "waiting",
            Status::Uncertain => "uncertain",
            Status::InProgress => "running",
        }
    }
}

/// What the journal says about one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepState {
    pub status: Status,
    /// Checksum of the parameters it last ran (or started) with.
    pub checksum: String,
    pub at: String,
    pub actor: String,
    pub outputs: BTreeMap<String, String>,
    pub changes: Vec<String>,
    /// The intent of an unfinished start (interrupted or failed).
    pub intent: BTreeMap<String, String>,
    pub detail: String,
    /// What a waiting step asks a person to sign.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<SignOffRequest>,
    /// Since when it has been waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<String>,
    /// What proves it: policy version and hash, Message-ID, evidence of a sign-off, …
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, String>,
    /// How a done step no longer matches the playbook, as the last run found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
}

/// What the journal says about one hire.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HireState {
    pub hire: String,
    pub playbook: String,
    pub runs: u32,
    /// When the hire starts, as the last run knew it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub start: String,
    /// The same instant, RFC 3339.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub start_at: String,
    /// Deadlines by step (RFC 3339), as the last run computed them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub deadlines: BTreeMap<String, String>,
    pub first_at: Option<String>,
    pub last_at: Option<String>,
    pub steps: BTreeMap<String, StepState>,
    /// Who ran the automated steps (for dual control).
    pub operators: std::collections::BTreeSet<String>,
}

/// The outputs of a signed step (`signed_by`, `signed_at`, the device's `asset_tag` and
/// `serial`, and for a hand-off `received_by`): one definition for the run and the replay.
pub fn signed_outputs(
    by: &str,
    at: &str,
    asset: &BTreeMap<String, String>,
    handoff: bool,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        ("signed_by".to_owned(), by.to_owned()),
        ("signed_at".to_owned(), at.to_owned()),
    ]);
    for key in ["asset_tag", "serial"] {
        if let Some(v) = asset.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    if handoff {
        out.insert("received_by".to_owned(), by.to_owned());
    }
    out
}

impl HireState {
    /// A live run holds the hire's lock: its started steps are running, not interrupted.
    pub fn mark_live(&mut self) {
        for s in self.steps.values_mut() {
            if s.status == Status::Running {
                s.status = Status::InProgress;
            }
        }
    }
}

/// Replays records into state. Pure: the same records always give the same state.
pub fn replay(records: &[Record]) -> HireState {
    let mut state = HireState::default();
    for r in records {
        state.first_at.get_or_insert_with(|| r.at.clone());
        state.last_at = Some(r.at.clone());
        let entry = |state: &mut HireState, step: &str| -> StepState {
            state.steps.get(step).cloned().unwrap_or(StepState {
                status: Status::Pending,
                checksum: String::new(),
                at: String::new(),
                actor: String::new(),
                outputs: BTreeMap::new(),
                changes: Vec::new(),
                intent: BTreeMap::new(),
                detail: String::new(),
                request: None,
                waiting_since: None,
                drift: None,
                evidence: BTreeMap::new(),
            })
        };
        if let Event::StepDone { step, .. } = &r.event
            && state
                .steps
                .get(step)
                .is_some_and(|s| s.status == Status::Running)
        {
            // Done after being started by a run: an automated step.
            state.operators.insert(r.actor.clone());
        }
        let mut set = |step: &str, f: &dyn Fn(&mut StepState)| {
            let mut s = entry(&mut state, step);
            s.at = r.at.clone();
            s.actor = r.actor.clone();
            f(&mut s);
            state.steps.insert(step.to_owned(), s);
        };
        match &r.event {
            Event::RunStarted {
                hire,
                playbook,
                start,
                start_at,
                deadlines,
                ..
            } => {
                state.hire = hire.clone();
                state.playbook = playbook.clone();
                if !start.is_empty() {
                    state.start = start.clone();
                    state.start_at = start_at.clone();
                }
                state.deadlines = deadlines.clone();
                state.runs += 1;
            }
            Event::StepStarted {
                step,
                checksum,
                intent,
                ..
            } => set(step, &|s| {
                s.status = Status::Running;
                s.checksum = checksum.clone();
                s.intent = intent.clone();
                s.detail.clear();
            }),
            Event::StepDone {
                step,
                checksum,
                changes,
                outputs,
                evidence,
            } => set(step, &|s| {
                s.status = Status::Done;
                s.checksum = checksum.clone();
                s.outputs = outputs.clone();
                s.evidence = evidence.clone();
                s.changes = changes.clone();
                s.intent.clear();
                s.detail.clear();
                s.drift = None;
            }),
            Event::StepFailed {
                step,
                checksum,
                error,
                nothing_done,
            } => set(step, &|s| {
                // The intent stays: a step can fail after part of its effect exists (an
                // entry created, its password refused), and the next run must know it is ours.
                // Unless it did nothing: then what it meant to do is nobody's.
                if *nothing_done {
                    s.intent.clear();
                }
                s.status = Status::Failed;
                s.checksum = checksum.clone();
                s.detail = error.clone();
            }),
            Event::StepWaiting {
                step,
                on,
                reason,
                request,
            } => set(step, &|s| {
                if s.status != Status::Waiting {
                    s.waiting_since = Some(r.at.clone());
                }
                s.status = Status::Waiting;
                s.detail = format!("waiting on the {on}: {reason}");
                s.request = request.clone();
            }),
            Event::SignedOff {
                step,
                checksum,
                role,
                by,
                confirmed,
                refused,
                note,
                evidence,
                asset,
            } => set(step, &|s| {
                let handoff = s.request.as_ref().is_some_and(|q| q.cleaning.is_some());
                s.evidence = evidence.clone();
                s.evidence
                    .insert("signed_by".into(), format!("{by} ({role})"));
                for (k, v) in asset {
                    s.evidence.insert(k.clone(), v.clone());
                }
                if !note.is_empty() {
                    s.evidence.insert("note".into(), note.clone());
                }
                s.checksum = checksum.clone();
                s.waiting_since = None;
                s.request = None;
                match refused {
                    None => {
                        s.status = Status::Done;
                        s.outputs = signed_outputs(by, &r.at, asset, handoff);
                        s.changes = vec![format!("signed off by {by}: {}", confirmed.join("; "))];
                        s.detail.clear();
                    }
                    Some(refusal) => {
                        s.status = Status::Failed;
                        s.detail = format!("{by} refused \"{}\": {}", refusal.item, refusal.reason);
                    }
                }
            }),
            Event::StepUncertain { step, reason, .. } => set(step, &|s| {
                s.status = Status::Uncertain;
                s.detail = reason.clone();
            }),
            Event::StepDrift { step, drift } => set(step, &|s| {
                s.drift = Some(drift.clone()).filter(|d| !d.is_empty());
            }),
            Event::StepSkipped { step, because } => set(step, &|s| {
                s.status = Status::Skipped;
                s.detail = because.clone();
            }),
            Event::RunFinished { .. } => {}
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("E1.jsonl");
        let opened = Journal::open(&path, "run1", "alice").unwrap();
        let mut j = opened.journal;
        assert!(opened.records.is_empty());
        j.append(
            "2026-11-23T09:00:00Z",
            Event::RunStarted {
                hire: "E1".into(),
                playbook: "Standard".into(),
                checklist: "new-hire.yaml".into(),
                onboard: "0.1.0".into(),
                start: String::new(),
                start_at: String::new(),
                deadlines: BTreeMap::new(),
            },
        )
        .unwrap();
        j.append(
            "2026-11-23T09:00:01Z",
            Event::StepStarted {
                step: "account".into(),
                kind: "ldap_account".into(),
                checksum: "c1".into(),
                intent: BTreeMap::new(),
            },
        )
        .unwrap();
        j.append(
            "2026-11-23T09:00:02Z",
            Event::StepDone {
                step: "account".into(),
                checksum: "c1".into(),
                changes: vec!["created uid=ada".into()],
                outputs: [("dn".to_owned(), "uid=ada".to_owned())].into(),
                evidence: BTreeMap::new(),
            },
        )
        .unwrap();
        path
    }

    #[test]
    fn replay_derives_step_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let records = verify(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let state = replay(&records);
        assert_eq!(state.hire, "E1");
        assert_eq!(state.runs, 1);
        let account = &state.steps["account"];
        assert_eq!(account.status, Status::Done);
        assert_eq!(account.outputs["dn"], "uid=ada");
        assert_eq!(account.actor, "alice");
    }

    #[test]
    fn appending_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let opened = Journal::open(&path, "run2", "bob").unwrap();
        let mut j = opened.journal;
        assert_eq!(opened.records.len(), 3);
        j.append(
            "2026-11-23T10:00:00Z",
            Event::RunFinished {
                done: 0,
                already_done: 1,
                failed: 0,
                waiting: 0,
                skipped: 0,
                uncertain: 0,
            },
        )
        .unwrap();
        assert_eq!(
            verify(&std::fs::read_to_string(&path).unwrap())
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn any_changed_byte_is_found_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let original = std::fs::read(&path).unwrap();
        let line_of = |pos: usize| original[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
        for pos in 0..original.len() {
            let mut bytes = original.clone();
            bytes[pos] ^= 0x01;
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            let err = verify(&text).expect_err(&format!("byte {pos} changed"));
            // A changed newline merges or splits lines; otherwise the changed line is named.
            if original[pos] != b'\n' && text.as_bytes()[pos] != b'\n' {
                assert_eq!(err.line, line_of(pos), "byte {pos}: {err}");
            }
        }
    }

    #[test]
    fn removed_and_reordered_records_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(sample(dir.path())).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let removed = format!("{}\n{}\n", lines[0], lines[2]);
        assert_eq!(verify(&removed).unwrap_err().line, 2);
        let reordered = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
        assert_eq!(verify(&reordered).unwrap_err().line, 2);
        let torn = &text[..text.len() - 10];
        assert_eq!(verify(torn).unwrap_err().line, 3);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 10]).unwrap();
        let opened = Journal::open(&path, "run2", "bob").unwrap();
        assert_eq!(opened.records.len(), 2);
        assert!(opened.torn_bytes > 0);
        assert_eq!(
            verify(&std::fs::read_to_string(&path).unwrap())
                .unwrap()
                .len(),
            2
        );
    }
}
