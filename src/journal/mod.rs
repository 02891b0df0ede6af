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

mod file;
mod replay;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use file::{Journal, JournalText, OpenError, Opened, read_text};

pub use replay::{HireState, LinkEmail, OpenRefusal, Status, StepState, replay, signed_outputs};

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
        /// The hire's address (work, else personal), for messages after onboarding (a policy
        /// campaign).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        email: String,
        /// Every step of the run's plan, in order: readiness and completion are over these, so
        /// a step no record mentions yet (the run was killed before it) is not done.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        steps: Vec<String>,
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
        /// Steps it needs that were not done yet: `request` can be signed once all of them are
        /// done (the journal says when), without another run.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        after: Vec<String>,
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
        /// For an `acknowledge`: the policy text accepted, by version and SHA-256.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<PolicyRef>,
        /// How it was given: `terminal`, `link`, `web` (a signed-in member of staff) or
        /// `in person` (with a witness).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        how: String,
        /// Who saw it given in person.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        witness: String,
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
    StepDrift {
        step: String,
        drift: String,
        /// The effect is gone (the entry deleted, a membership removed), not just changed: the
        /// step no longer counts as done until it holds again (or is re-applied).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        lost: bool,
    },
    /// Not attempted because a step it needs is not done.
    StepSkipped { step: String, because: String },
    /// About to email the signer a link for this waiting step (the link itself, a secret, is
    /// never journaled): a resume that finds no `link_sent` after it knows the send may have
    /// happened.
    LinkSending {
        step: String,
        message_id: String,
        to: String,
        /// 0 for the first message; 1, 2, … for reminders.
        #[serde(default, skip_serializing_if = "is_zero")]
        reminder: u32,
    },
    /// The link email was accepted by the mail target, or (with a `note`) the operator found
    /// an interrupted one in the mailbox (`onboard mark-sent`).
    LinkSent {
        step: String,
        message_id: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        note: String,
    },
    /// What a person refused (a `signed_off` with `refused`) was put right: the refusal
    /// stays visible on the step until this record (or a later signature).
    RefusalResolved { step: String, note: String },
    /// A page refused a request about this step (a link for another hire or step); the
    /// record's actor says whose link it was. Changes no state.
    AccessRefused { step: String, reason: String },
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
            | Event::StepSkipped { step, .. }
            | Event::AccessRefused { step, .. }
            | Event::RefusalResolved { step, .. }
            | Event::LinkSending { step, .. }
            | Event::LinkSent { step, .. } => Some(step),
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
            Event::AccessRefused { .. } => "access_refused",
            Event::RefusalResolved { .. } => "refusal_resolved",
            Event::LinkSending { .. } => "link_sending",
            Event::LinkSent { .. } => "link_sent",
            Event::RunFinished { .. } => "run_finished",
        }
    }
}

/// Whom a waiting step's link is emailed to, and from whom.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NotifyParams {
    pub to: String,
    pub from: String,
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
    /// Whom onboard emails a link to sign, once (`notify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyParams>,
    /// For an `acknowledge`: the policy text to accept, by version and SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// Asked by a policy campaign (`onboard policies campaign`), not by the checklist: day-one
    /// readiness does not wait for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub campaign: bool,
    /// Checksum of the step's parameters when it started waiting.
    pub checksum: String,
}

/// A policy document's version and the SHA-256 of its text: what an acceptance is of.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicyRef {
    /// Its file name, e.g. `it-policies.md`.
    pub file: String,
    pub version: String,
    pub sha256: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
/// The end of a hire's chain, for whoever appends to it (a file, a database): makes the next
/// record and its line, exactly as every store writes it.
pub struct Chain {
    seq: u64,
    last_hash: String,
    run: String,
    actor: String,
}

impl Chain {
    /// The chain after `records` (verified), for a run by `actor`.
    pub fn after(records: &[Record], last_hash: Option<&str>, run: &str, actor: &str) -> Chain {
        Chain {
            seq: records.len() as u64,
            last_hash: last_hash.unwrap_or(GENESIS).to_owned(),
            run: run.to_owned(),
            actor: actor.to_owned(),
        }
    }

    /// The next record, its line (with `\n`) and its hash; the chain moves on only when the
    /// store says it is durable ([`Chain::advance`]).
    pub fn next(&self, at: &str, event: Event) -> (Record, String, String) {
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
        (record, line, hash)
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The record with `hash` is durable: the next one follows it.
    pub fn advance(&mut self, hash: String) {
        self.seq += 1;
        self.last_hash = hash;
    }
}

/// The hash of a journal's last line, if it has one.
pub fn last_hash(text: &str) -> Option<&str> {
    text.lines().last().and_then(split_hash).map(|(_, h)| h)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
                email: String::new(),
                steps: Vec::new(),
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
