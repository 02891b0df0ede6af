//! What people record from the journal alone, without a playbook: `onboard sign-off` (a
//! signature, its evidence files, a hand-off's receipt) and `onboard mark-sent`.

use std::collections::BTreeMap;

use super::Clock;
use super::{EngineError, Outcome, Settings, Sink, Writer, done_outputs};
use crate::journal::{self, Event, Status};
use crate::plan::Outputs;
use crate::steps;
use crate::store::Store;

/// `onboard mark-sent`: the operator confirms that an interrupted send did go out. Records the
/// step as done with the journaled Message-ID; returns it.
pub fn mark_sent(
    store: &dyn Store,
    hire: &str,
    step: &str,
    actor: &str,
    note: &str,
    clock: Clock,
) -> Result<String, EngineError> {
    let (mut session, state) = session(store, hire, "mark-sent", actor)?;
    // A waiting step's interrupted link email (a sign-off's link, a policy campaign's message).
    if let Some(s) = state
        .steps
        .get(step)
        .filter(|s| s.status == Status::Waiting)
        && let Some(link) = s.link_email.as_ref().filter(|l| !l.sent)
    {
        let message_id = link.message_id.clone();
        session
            .log
            .append(
                &clock.now().to_string(),
                Event::LinkSent {
                    step: step.to_owned(),
                    message_id: message_id.clone(),
                    note: format!("marked as sent by {actor}: {note}"),
                },
            )
            .map_err(|e| EngineError::Io(format!("cannot write the journal: {e}")))?;
        return Ok(message_id);
    }
    let prior = state
        .steps
        .get(step)
        .filter(|s| matches!(s.status, Status::Running | Status::Uncertain))
        .ok_or_else(|| {
            let now = state
                .steps
                .get(step)
                .map_or("unknown", |s| s.status.as_str());
            EngineError::Io(format!(
                "step {step} of hire {hire} is not an interrupted send (it is {now})"
            ))
        })?;
    let message_id = prior.intent.get("message_id").cloned().ok_or_else(|| {
        EngineError::Io(format!("step {step} of hire {hire} is not an email step"))
    })?;
    session
        .log
        .append(
            &clock.now().to_string(),
            Event::StepDone {
                step: step.to_owned(),
                checksum: prior.checksum.clone(),
                changes: vec![format!("marked as sent by {actor}: {note}")],
                outputs: BTreeMap::from([("message_id".to_owned(), message_id.clone())]),
                evidence: BTreeMap::from([
                    ("marked_sent_by".to_owned(), actor.to_owned()),
                    ("note".to_owned(), note.to_owned()),
                ]),
            },
        )
        .map_err(|e| EngineError::Io(format!("cannot write the journal: {e}")))?;
    Ok(message_id)
}

/// The hire's journal opened under its lock for one person's record (`what`, by `actor`),
/// with its state as replayed.
fn session(
    store: &dyn Store,
    hire: &str,
    what: &str,
    actor: &str,
) -> Result<(crate::store::Session, journal::HireState), EngineError> {
    let holder = format!("{what} by {actor} (pid {})", std::process::id());
    let session = store.open(hire, &holder, &crate::secret::random_hex(8), actor)?;
    let state = journal::replay(&session.records);
    Ok((session, state))
}

/// Records a valid signature (and, for a hand-off, writes the receipt).
#[allow(clippy::too_many_arguments)]
pub(super) fn signed(
    w: &mut Writer<'_>,
    store: &dyn Store,
    hire: &str,
    step: &str,
    request: &journal::SignOffRequest,
    signature: steps::human::Signature,
    at: &str,
    outputs: &Outputs,
) -> Result<(Outcome, Option<BTreeMap<String, String>>), EngineError> {
    let steps::human::Signature {
        by,
        confirmed,
        refused,
        note,
        evidence,
        how,
        witness,
    } = signature;
    w.append(Event::SignedOff {
        step: step.to_owned(),
        checksum: request.checksum.clone(),
        role: request.role.clone(),
        by: by.clone(),
        confirmed: confirmed.clone(),
        refused: refused.clone(),
        note,
        evidence,
        asset: request.asset.clone(),
        policy: request.policy.clone(),
        how,
        witness,
    })?;
    if let Some(refusal) = refused {
        return Ok((
            Outcome::Failed {
                error: format!("{by} refused \"{}\": {}", refusal.item, refusal.reason),
                hint: Some("fix what was refused, then run again to sign it off".into()),
            },
            None,
        ));
    }
    let out = journal::signed_outputs(
        &by,
        at,
        &request.asset,
        request.cleaning.is_some(),
        request.policy.as_ref(),
    );
    let mut changes = vec![match &request.policy {
        Some(p) => format!(
            "{by} accepted {} version {} (sha256 {})",
            p.file, p.version, p.sha256
        ),
        None => format!("signed off by {by} ({})", request.role),
    }];
    if let Some(cleaning) = &request.cleaning {
        let receipt = crate::receipt::Receipt {
            hire,
            step,
            request,
            received_by: &by,
            received_at: at,
            cleaning: outputs.get(cleaning),
        };
        if w.applying() {
            let path = store
                .keep_receipt(hire, step, &receipt.text(), &receipt.html())
                .map_err(|e| EngineError::Io(format!("cannot write the receipt: {e}")))?;
            changes.push(format!("receipt {path}"));
        }
    }
    Ok((Outcome::Applied(changes), Some(out)))
}

/// `onboard sign-off` and the sign-off page: records a signature for a waiting step, from the
/// journal alone. Evidence files are kept in the store and recorded with their SHA-256.
/// `settings.actor` is who records it (a sign-in, an OS user, "via link sent to …"); dual
/// control holds against it as well as against the signer's name.
pub fn sign_off(
    store: &dyn Store,
    hire: &str,
    step: &str,
    mut signature: steps::human::Signature,
    evidence_files: &[crate::store::Evidence],
    settings: &Settings,
) -> Result<Outcome, EngineError> {
    let (mut session, state) = session(store, hire, "sign-off", &settings.actor)?;
    let current = state.steps.get(step);
    let request = current
        .filter(|s| s.status == Status::Waiting)
        .and_then(|s| s.request.clone())
        .ok_or_else(|| {
            EngineError::Refused(match current {
                None => format!(
                    "hire {hire} has no step {step} in its journal yet; run the playbook first"
                ),
                Some(s) if s.status == Status::Done => {
                    format!("{step} is already signed off ({} by {})", s.at, s.actor)
                }
                Some(s) => format!(
                    "{step} is not waiting for a signature (it is {}{})",
                    s.status.as_str(),
                    if s.detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", s.detail)
                    }
                ),
            })
        })?;
    let operators: Vec<&str> = state.operators.iter().map(String::as_str).collect();
    for file in evidence_files {
        let sha = crate::digest::sha256(&file.bytes);
        signature
            .evidence
            .insert(format!("file:{}", file.name), sha);
    }
    steps::human::validate(&request, &signature, &[&settings.actor], &operators)
        .map_err(|p| EngineError::Refused(p.0))?;
    // An acceptance is of a text people can read again: the one published under its version.
    if let Some(policy) = &request.policy {
        crate::policy::text_of(store, policy).map_err(EngineError::Refused)?;
    }
    // Kept only once the signature is valid: a refused one leaves nothing behind.
    for file in evidence_files {
        store
            .keep_evidence(hire, &file.name, &file.bytes)
            .map_err(|e| EngineError::Io(format!("cannot keep the evidence file: {e}")))?;
    }
    let mut w = Writer {
        sink: Sink::Journal(&mut *session.log),
        clock: settings.clock,
        failpoint: None,
    };
    let at = settings.clock.now().to_string();
    let outputs = done_outputs(&state);
    let (outcome, _) = signed(
        &mut w, store, hire, step, &request, signature, &at, &outputs,
    )?;
    Ok(outcome)
}

/// Records that a page refused a request for `hire`'s `step` (a link for another hire or step),
/// so the attempt is in the hire's journal, not only in the server's log.
pub fn access_refused(
    store: &dyn Store,
    hire: &str,
    step: &str,
    actor: &str,
    reason: &str,
    clock: Clock,
) -> Result<(), EngineError> {
    let (mut session, _) = session(store, hire, "a page", actor)?;
    session
        .log
        .append(
            &clock.now().to_string(),
            Event::AccessRefused {
                step: step.to_owned(),
                reason: reason.to_owned(),
            },
        )
        .map_err(|e| EngineError::Io(format!("cannot write the journal: {e}")))?;
    Ok(())
}

/// `onboard resolve`: what people refused on a step was put right (the missing dock was
/// delivered). Every open refusal of the step stops showing; the journal keeps them and the
/// resolution. Returns what was refused.
pub fn resolve(
    store: &dyn Store,
    hire: &str,
    step: &str,
    note: &str,
    settings: &Settings,
) -> Result<Vec<journal::OpenRefusal>, EngineError> {
    if note.trim().is_empty() || note.chars().any(char::is_control) {
        return Err(EngineError::Refused(
            "say what was done about it, on one line (--note)".into(),
        ));
    }
    let (mut session, state) = session(store, hire, "resolve", &settings.actor)?;
    let refusal = state
        .steps
        .get(step)
        .map(|s| s.refusals_open.clone())
        .filter(|open| !open.is_empty())
        .ok_or_else(|| {
            EngineError::Refused(format!("{step} of hire {hire} has no refusal to resolve"))
        })?;
    session
        .log
        .append(
            &settings.clock.now().to_string(),
            Event::RefusalResolved {
                step: step.to_owned(),
                note: note.to_owned(),
            },
        )
        .map_err(|e| EngineError::Io(format!("cannot write the journal: {e}")))?;
    Ok(refusal)
}
