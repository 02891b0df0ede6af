//! One step of a run: `decide` says what it needs, this carries it out, journaling before and
//! after each effect.

use std::collections::BTreeMap;

use super::decide::{Decision, Facts, decide};
use super::{EngineError, Outcome, Settings, Writer, signed};
use crate::journal::{Event, Status};
use crate::plan::PlannedStep;
use crate::steps::{self, Ctx, Note};

/// Decides and carries out one step: what it produced, if anything.
pub(super) fn run_step(
    step: &PlannedStep,
    ctx: &mut Ctx<'_>,
    results: &BTreeMap<String, Outcome>,
    settings: &Settings,
    w: &mut Writer<'_>,
) -> Result<(Outcome, Option<BTreeMap<String, String>>), EngineError> {
    let facts = Facts {
        step,
        prior: ctx.prior,
        results,
        apply: w.applying(),
        reapply: settings.reapply.iter().any(|r| r == &step.id),
        reconcile: settings.reconcile,
    };
    let mut decision = decide(&facts, None);
    if decision == Decision::Look {
        decision = decide(&facts, Some(steps::check(step, ctx)));
    }
    Ok(match decision {
        Decision::Look => unreachable!("decided with what was found"),
        Decision::Blocked { outcome, journal } => {
            blocked(step, ctx, results, w, &outcome, journal)?;
            (outcome, None)
        }
        Decision::Report(outcome) => (outcome, None),
        Decision::Done { outputs, note } => {
            w.append(Event::StepDone {
                step: step.id.clone(),
                checksum: step.checksum.clone(),
                changes: Vec::new(),
                outputs: outputs.clone(),
                evidence: note
                    .iter()
                    .map(|n| ("note".to_owned(), n.to_string()))
                    .collect(),
            })?;
            (Outcome::AlreadyDone(note), Some(outputs))
        }
        Decision::StillDone {
            outputs,
            note,
            drift,
        } => {
            if let Some(drift) = drift {
                w.append(Event::StepDrift {
                    step: step.id.clone(),
                    drift,
                    lost: false,
                })?;
            }
            (Outcome::AlreadyDone(note), Some(outputs))
        }
        Decision::Lost {
            error,
            hint,
            finding,
        } => {
            if let Some(drift) = finding {
                w.append(Event::StepDrift {
                    step: step.id.clone(),
                    drift,
                    lost: true,
                })?;
            }
            (Outcome::Failed { error, hint }, None)
        }
        Decision::WouldReconcile { outputs, note } => (
            Outcome::WouldDo(vec![format!("reconcile {note}")]),
            Some(outputs),
        ),
        Decision::Reconcile { outputs, note } => reconcile(step, ctx, w, outputs, note)?,
        Decision::Apply => execute(step, ctx, w)?,
        Decision::Wait {
            on,
            reason,
            request,
        } => return waiting(step, ctx, w, on, reason, request.map(|r| *r)),
        Decision::Uncertain {
            message_id,
            reason,
            journal,
        } => {
            if journal {
                w.append(Event::StepUncertain {
                    step: step.id.clone(),
                    message_id,
                    reason: reason.clone(),
                })?;
            }
            (Outcome::Uncertain(reason), None)
        }
        Decision::Fail { error, hint } => (fail(step, w, error, hint)?, None),
    })
}

/// Journals a step held back by a step it needs (once, until that changes).
fn blocked(
    step: &PlannedStep,
    ctx: &Ctx<'_>,
    results: &BTreeMap<String, Outcome>,
    w: &mut Writer<'_>,
    outcome: &Outcome,
    journal: bool,
) -> Result<(), EngineError> {
    // A person's step held back by steps that wait on people: what it will ask is journaled
    // with them, so it can be signed once they are done, without a run.
    let held = match outcome {
        Outcome::Waiting { .. } => held(step, results),
        _ => None,
    };
    if let Some(event) = held {
        let same = ctx.prior.is_some_and(|p| {
            p.status == Status::Waiting
                && matches!((&p.held, &event), (
                    Some(h),
                    Event::StepWaiting { request: Some(r), after, .. },
                ) if &h.request == r && &h.after == after)
        });
        if !same {
            w.append(event)?;
        }
        return Ok(());
    }
    if !journal {
        return Ok(());
    }
    match outcome {
        Outcome::Waiting { on, reason } => w.append(Event::StepWaiting {
            step: step.id.clone(),
            on: on.clone(),
            reason: reason.clone(),
            request: None,
            after: Vec::new(),
        }),
        Outcome::Skipped(because) => w.append(Event::StepSkipped {
            step: step.id.clone(),
            because: because.clone(),
        }),
        _ => Ok(()),
    }
}

/// The waiting record of a person's step whose needs are not all done: what it will ask, and
/// after which steps. `None` for automated steps, and when what it asks depends on a value a
/// step it needs has not produced yet.
fn held(step: &PlannedStep, results: &BTreeMap<String, Outcome>) -> Option<Event> {
    let (reason, request) = step.params.asks(step)?;
    let params = serde_json::to_string(&step.params).expect("params serialize");
    if params.contains(": known after it runs>") {
        return None;
    }
    let after = step
        .needs
        .iter()
        .filter(|n| !results.get(*n).is_some_and(Outcome::is_done))
        .cloned()
        .collect();
    Some(Event::StepWaiting {
        step: step.id.clone(),
        on: request.role.clone(),
        reason,
        request: Some(request),
        after,
    })
}

/// Corrects a done step's drift (`--reconcile`) and journals what changed.
fn reconcile(
    step: &PlannedStep,
    ctx: &mut Ctx<'_>,
    w: &mut Writer<'_>,
    outputs: BTreeMap<String, String>,
    note: Note,
) -> Result<(Outcome, Option<BTreeMap<String, String>>), EngineError> {
    Ok(match steps::reconcile(step, ctx) {
        Some(Ok(changes)) => {
            w.append(Event::StepDone {
                step: step.id.clone(),
                checksum: step.checksum.clone(),
                changes: changes.clone(),
                outputs: outputs.clone(),
                evidence: BTreeMap::from([("reconciled".to_owned(), note.to_string())]),
            })?;
            (Outcome::Applied(changes), Some(outputs))
        }
        Some(Err(e)) => (
            Outcome::Failed {
                error: e.message,
                hint: e.hint,
            },
            None,
        ),
        None => (Outcome::AlreadyDone(Some(note)), Some(outputs)),
    })
}

fn execute(
    step: &PlannedStep,
    ctx: &mut Ctx<'_>,
    w: &mut Writer<'_>,
) -> Result<(Outcome, Option<BTreeMap<String, String>>), EngineError> {
    // A value only known after an earlier step ran must never reach a target as a placeholder.
    let params = serde_json::to_string(&step.params).expect("params serialize");
    if params.contains(": known after it runs>") {
        let error = "a value it uses is not known yet (an earlier step has not produced it)";
        return Ok((fail(step, w, error.into(), None)?, None));
    }
    let intent = match steps::intent(step, ctx) {
        Ok(i) => i,
        Err(e) => return Ok((fail(step, w, e.message, e.hint)?, None)),
    };
    w.append(Event::StepStarted {
        step: step.id.clone(),
        kind: step.kind.to_owned(),
        checksum: step.checksum.clone(),
        intent: intent.clone(),
    })?;
    // The start just journaled on the lock's own connection proves the run holds the hire;
    // a step with more than one effect asks again between them (`Ctx::still_held`).
    match steps::apply(step, &intent, ctx) {
        Ok(applied) => {
            w.failpoint(&format!("applied:{}", step.id));
            w.append(Event::StepDone {
                step: step.id.clone(),
                checksum: step.checksum.clone(),
                changes: applied.changes.clone(),
                outputs: applied.outputs.clone(),
                evidence: applied.evidence,
            })?;
            Ok((Outcome::Applied(applied.changes), Some(applied.outputs)))
        }
        Err(e) if e.uncertain && intent.contains_key("message_id") => {
            let reason = format!(
                "{}; whether it went out cannot be known (the server may have accepted it)",
                e.message
            );
            w.append(Event::StepUncertain {
                step: step.id.clone(),
                message_id: intent["message_id"].clone(),
                reason: reason.clone(),
            })?;
            Ok((Outcome::Uncertain(reason), None))
        }
        Err(e) => Ok((fail_as(step, w, e.message, e.hint, e.nothing_done)?, None)),
    }
}

fn fail(
    step: &PlannedStep,
    w: &mut Writer<'_>,
    error: String,
    hint: Option<String>,
) -> Result<Outcome, EngineError> {
    fail_as(step, w, error, hint, false)
}

fn fail_as(
    step: &PlannedStep,
    w: &mut Writer<'_>,
    error: String,
    hint: Option<String>,
    nothing_done: bool,
) -> Result<Outcome, EngineError> {
    w.append(Event::StepFailed {
        step: step.id.clone(),
        checksum: step.checksum.clone(),
        error: error.clone(),
        nothing_done,
    })?;
    Ok(Outcome::Failed { error, hint })
}

/// A step waiting on a person: signed now at this terminal if someone can, else journaled as
/// waiting (once, until what it asks changes).
fn waiting(
    step: &PlannedStep,
    ctx: &mut Ctx<'_>,
    w: &mut Writer<'_>,
    on: String,
    reason: String,
    request: Option<crate::journal::SignOffRequest>,
) -> Result<(Outcome, Option<BTreeMap<String, String>>), EngineError> {
    // Someone at this terminal may sign now.
    if w.applying()
        && let Some(request) = &request
        && let Some(signature) = ctx.operator.sign(step, request)
    {
        let operators: Vec<&str> = ctx.operators.iter().map(String::as_str).collect();
        match steps::human::validate(request, &signature, &[], &operators) {
            Ok(()) => {
                let at = w.clock.now().to_string();
                return signed(
                    w,
                    ctx.store,
                    ctx.hire_id,
                    &step.id,
                    request,
                    signature,
                    &at,
                    ctx.outputs,
                );
            }
            Err(problem) => {
                return Ok((
                    Outcome::Waiting {
                        on,
                        reason: format!("the signature was not accepted: {problem}"),
                    },
                    None,
                ));
            }
        }
    }
    let same = ctx
        .prior
        .is_some_and(|p| p.status == Status::Waiting && p.request == request);
    if !same {
        w.append(Event::StepWaiting {
            step: step.id.clone(),
            on: on.clone(),
            reason: reason.clone(),
            request: request.clone(),
            after: Vec::new(),
        })?;
    }
    let reason = match &request {
        Some(r) => match super::notify::link_email(step, ctx, w, r)? {
            Some(note) => format!("{reason}; {note}"),
            None => reason,
        },
        None => reason,
    };
    Ok((Outcome::Waiting { on, reason }, None))
}
