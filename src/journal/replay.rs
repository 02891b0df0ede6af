//! State derived from the journal: replaying records gives each step's status, outputs and
//! evidence. Pure: the same records always give the same state.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Event, Record, SignOffRequest};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
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
#[derive(Debug, Clone, Default, Serialize)]
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
    /// The link emailed to the signer (`notify`), if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_email: Option<LinkEmail>,
}

/// A link email: its Message-ID, and whether the mail target accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkEmail {
    pub message_id: String,
    pub sent: bool,
    /// When the last message (first or reminder) was journaled as sending or sent.
    pub at: String,
    /// 0 for the first message; n for the n-th reminder.
    pub reminder: u32,
}

/// What the journal says about one hire.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HireState {
    pub hire: String,
    pub playbook: String,
    /// The hire's address, as the last run knew it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
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
/// `serial`, for a hand-off `received_by`, for an acceptance `policy_file`, `policy_version`
/// and `policy_sha256`): one definition for the run and the replay.
pub fn signed_outputs(
    by: &str,
    at: &str,
    asset: &BTreeMap<String, String>,
    handoff: bool,
    policy: Option<&super::PolicyRef>,
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
    if let Some(p) = policy {
        out.insert("policy_file".to_owned(), p.file.clone());
        out.insert("policy_version".to_owned(), p.version.clone());
        out.insert("policy_sha256".to_owned(), p.sha256.clone());
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
        if let Event::StepDone { step, .. } = &r.event
            && state
                .steps
                .get(step)
                .is_some_and(|s| s.status == Status::Running)
        {
            // Done after being started by a run: an automated step.
            state.operators.insert(r.actor.clone());
        }
        match &r.event {
            Event::RunStarted {
                hire,
                playbook,
                start,
                start_at,
                deadlines,
                email,
                ..
            } => {
                state.hire = hire.clone();
                if !email.is_empty() {
                    state.email = email.clone();
                }
                state.playbook = playbook.clone();
                if !start.is_empty() {
                    state.start = start.clone();
                    state.start_at = start_at.clone();
                }
                state.deadlines = deadlines.clone();
                state.runs += 1;
            }
            // A refused request changes nothing about the step.
            Event::RunFinished { .. } | Event::AccessRefused { .. } => {}
            // The link email is the step's own matter: its status stays waiting.
            Event::LinkSending {
                step,
                message_id,
                reminder,
                ..
            } => {
                let s = state.steps.entry(step.clone()).or_default();
                s.link_email = Some(LinkEmail {
                    message_id: message_id.clone(),
                    sent: false,
                    at: r.at.clone(),
                    reminder: *reminder,
                });
            }
            Event::LinkSent {
                step, message_id, ..
            } => {
                let s = state.steps.entry(step.clone()).or_default();
                let reminder = s.link_email.as_ref().map_or(0, |l| l.reminder);
                s.link_email = Some(LinkEmail {
                    message_id: message_id.clone(),
                    sent: true,
                    at: r.at.clone(),
                    reminder,
                });
            }
            event => {
                let step = event.step().expect("every other record is about a step");
                let mut s = state.steps.get(step).cloned().unwrap_or_default();
                s.at = r.at.clone();
                s.actor = r.actor.clone();
                step_event(&mut s, event, &r.at);
                state.steps.insert(step.to_owned(), s);
            }
        }
    }
    state
}

/// What one record about a step does to that step's state.
fn step_event(s: &mut StepState, event: &Event, at: &str) {
    match event {
        Event::StepStarted {
            checksum, intent, ..
        } => {
            s.status = Status::Running;
            s.checksum = checksum.clone();
            s.intent = intent.clone();
            s.detail.clear();
        }
        Event::StepDone {
            checksum,
            changes,
            outputs,
            evidence,
            ..
        } => {
            s.status = Status::Done;
            s.checksum = checksum.clone();
            s.outputs = outputs.clone();
            s.evidence = evidence.clone();
            s.changes = changes.clone();
            s.intent.clear();
            s.detail.clear();
            s.drift = None;
            s.waiting_since = None;
            s.request = None;
        }
        Event::StepFailed {
            checksum,
            error,
            nothing_done,
            ..
        } => {
            // The intent stays: a step can fail after part of its effect exists (an
            // entry created, its password refused), and the next run must know it is ours.
            // Unless it did nothing: then what it meant to do is nobody's.
            if *nothing_done {
                s.intent.clear();
            }
            s.status = Status::Failed;
            s.checksum = checksum.clone();
            s.detail = error.clone();
        }
        Event::StepWaiting {
            on,
            reason,
            request,
            ..
        } => {
            if s.status != Status::Waiting {
                s.waiting_since = Some(at.to_owned());
            }
            s.status = Status::Waiting;
            s.detail = format!("waiting on the {on}: {reason}");
            s.request = request.clone();
        }
        Event::SignedOff { .. } => {
            signed_off(s, event, at);
        }
        Event::StepUncertain { reason, .. } => {
            s.status = Status::Uncertain;
            s.detail = reason.clone();
        }
        Event::StepDrift { drift, .. } => {
            s.drift = Some(drift.clone()).filter(|d| !d.is_empty());
        }
        Event::StepSkipped { because, .. } => {
            s.status = Status::Skipped;
            s.detail = because.clone();
        }
        Event::RunStarted { .. }
        | Event::RunFinished { .. }
        | Event::AccessRefused { .. }
        | Event::LinkSending { .. }
        | Event::LinkSent { .. } => {}
    }
}

/// A signature (or a refusal) recorded for a waiting step.
fn signed_off(s: &mut StepState, event: &Event, at: &str) {
    let Event::SignedOff {
        checksum,
        role,
        by,
        confirmed,
        refused,
        note,
        evidence,
        asset,
        policy,
        how,
        witness,
        ..
    } = event
    else {
        return;
    };
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
    if !how.is_empty() {
        s.evidence
            .insert("how".into(), crate::steps::human::how_given(how, witness));
    }
    if let Some(p) = policy {
        s.evidence
            .insert("policy_version".into(), p.version.clone());
        s.evidence.insert("policy_sha256".into(), p.sha256.clone());
    }
    s.checksum = checksum.clone();
    s.waiting_since = None;
    s.request = None;
    match refused {
        None => {
            s.status = Status::Done;
            s.outputs = signed_outputs(by, at, asset, handoff, policy.as_ref());
            s.changes = vec![format!("signed off by {by}: {}", confirmed.join("; "))];
            s.detail.clear();
        }
        Some(refusal) => {
            s.status = Status::Failed;
            s.detail = format!("{by} refused \"{}\": {}", refusal.item, refusal.reason);
        }
    }
}
