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
    /// What people refused and nobody has resolved yet, oldest first: each shown until a
    /// `refusal_resolved` record or a later signature.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals_open: Vec<OpenRefusal>,
    /// How many refusals the step has had (each is told to the help desk once).
    #[serde(skip)]
    pub refusals: u32,
    /// A done step whose effect is gone, as the last run found it: not done for readiness.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lost: bool,
    /// Whom a waiting step waits on (a role), as journaled.
    #[serde(skip)]
    pub on: String,
    /// What a person's step will ask once the steps it needs are done (they were not when it
    /// was journaled). While any is not done, `request` is `None`: nobody can sign it yet.
    #[serde(skip)]
    pub held: Option<Box<Held>>,
}

/// A refusal nobody has resolved yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenRefusal {
    pub by: String,
    pub item: String,
    pub reason: String,
    pub at: String,
}

impl OpenRefusal {
    /// `Ada Lovelace refused "With: charger, USB-C dock": no dock in the box`.
    pub fn summary(&self) -> String {
        format!("{} refused \"{}\": {}", self.by, self.item, self.reason)
    }
}

/// A request journaled before the steps it needs were done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub after: Vec<String>,
    pub reason: String,
    pub request: SignOffRequest,
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
                steps,
                ..
            } => {
                if !steps.is_empty() {
                    // The plan as this run knows it: a step no record mentions yet is pending
                    // (not done), and a pending step the plan no longer has is gone.
                    state
                        .steps
                        .retain(|id, s| s.status != Status::Pending || steps.contains(id));
                    for id in steps {
                        state.steps.entry(id.clone()).or_insert_with(|| StepState {
                            detail: "not started yet".to_owned(),
                            ..StepState::default()
                        });
                    }
                }
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
    settle_held(&mut state);
    // A refusal stays in sight whatever the step does next (waits again, is re-run).
    for s in state.steps.values_mut() {
        // The last refusal is the failure's own detail; every other open one is said too.
        let shown: Vec<String> = s
            .refusals_open
            .iter()
            .rev()
            .skip(usize::from(s.status == Status::Failed))
            .rev()
            .map(|r| format!("{} (not resolved)", r.summary()))
            .collect();
        if !shown.is_empty() {
            s.detail = format!("{}; {}", shown.join("; "), s.detail);
        }
    }
    state
}

/// A person's step journaled before the steps it needs were done can be signed once they all
/// are: decided from the journal now, not at the next run.
fn settle_held(state: &mut HireState) {
    let held: Vec<String> = state
        .steps
        .iter()
        .filter(|(_, s)| s.held.is_some() && s.status == Status::Waiting)
        .map(|(id, _)| id.clone())
        .collect();
    for id in held {
        let h = *state.steps[&id].held.clone().expect("filtered on held");
        let not_done = h
            .after
            .iter()
            .find(|a| state.steps.get(*a).is_none_or(|s| s.status != Status::Done));
        let detail = match not_done {
            Some(need) => Err(match state.steps.get(need) {
                Some(n) if n.status == Status::Waiting && !n.on.is_empty() => {
                    format!("waiting on the {}: waits for `{need}`", n.on)
                }
                Some(n) => format!("waits for `{need}`, which is {}", n.status.as_str()),
                None => format!("waits for `{need}`"),
            }),
            None => mismatch(state, &h.request).map_or_else(
                || Ok(format!("waiting on the {}: {}", h.request.role, h.reason)),
                Err,
            ),
        };
        let since = h
            .after
            .iter()
            .filter_map(|a| state.steps.get(a).map(|s| s.at.clone()))
            .max();
        let s = state.steps.get_mut(&id).expect("listed above");
        match detail {
            Err(detail) => s.detail = detail,
            Ok(detail) => {
                s.detail = detail;
                s.on = h.request.role.clone();
                s.request = Some(h.request);
                s.held = None;
                if since > s.waiting_since {
                    s.waiting_since = since;
                }
            }
        }
    }
}

/// For a hand-off: how the cleaning sign-off it names was for another device, if it was.
fn mismatch(state: &HireState, request: &SignOffRequest) -> Option<String> {
    let cleaning = request.cleaning.as_ref()?;
    let cleaned = &state.steps.get(cleaning)?.outputs;
    let ok = ["asset_tag", "serial"]
        .iter()
        .all(|k| cleaned.get(*k) == request.asset.get(*k));
    (!ok).then(|| {
        format!(
            "the cleaning sign-off `{cleaning}` was for asset {} (serial {}), not this device",
            cleaned.get("asset_tag").map_or("(none)", String::as_str),
            cleaned.get("serial").map_or("(none)", String::as_str),
        )
    })
}

/// What one record about a step does to that step's state.
fn step_event(s: &mut StepState, event: &Event, at: &str) {
    let held = match event {
        Event::StepDrift { .. } => None,
        _ => s.held.take(),
    };
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
            s.lost = false;
            s.waiting_since = None;
            s.request = None;
            s.refusals_open.clear();
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
            after,
            ..
        } => {
            if s.status != Status::Waiting {
                s.waiting_since = Some(at.to_owned());
            }
            s.status = Status::Waiting;
            s.on = on.clone();
            s.detail = format!("waiting on the {on}: {reason}");
            match request {
                // Settled once every record is read (`settle_held`).
                Some(r) if !after.is_empty() => {
                    s.held = Some(Box::new(Held {
                        after: after.clone(),
                        reason: reason.clone(),
                        request: r.clone(),
                    }));
                    s.request = None;
                }
                _ => s.request = request.clone(),
            }
        }
        Event::SignedOff { .. } => {
            // Signed once the steps it waited for were done: it asked what was held.
            if s.request.is_none() {
                s.request = held.map(|h| h.request);
            }
            signed_off(s, event, at);
        }
        Event::StepUncertain { reason, .. } => {
            s.status = Status::Uncertain;
            s.detail = reason.clone();
        }
        Event::StepDrift { drift, lost, .. } => {
            s.lost = *lost;
            s.drift = Some(drift.clone()).filter(|d| !d.is_empty());
        }
        Event::StepSkipped { because, .. } => {
            s.status = Status::Skipped;
            s.detail = because.clone();
        }
        Event::RefusalResolved { .. } => s.refusals_open.clear(),
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
            s.refusals_open.clear();
            s.status = Status::Done;
            s.outputs = signed_outputs(by, at, asset, handoff, policy.as_ref());
            s.changes = vec![format!("signed off by {by}: {}", confirmed.join("; "))];
            s.detail.clear();
        }
        Some(refusal) => {
            s.refusals += 1;
            s.refusals_open.push(OpenRefusal {
                by: by.clone(),
                item: refusal.item.clone(),
                reason: refusal.reason.clone(),
                at: at.to_owned(),
            });
            s.status = Status::Failed;
            s.detail = format!("{by} refused \"{}\": {}", refusal.item, refusal.reason);
        }
    }
}
