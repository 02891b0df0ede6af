//! One step of a run: decide from the journal and the targets what it needs (nothing, a
//! re-check, a signature, an apply), then journal before and after its effect.

use std::collections::BTreeMap;

use super::{EngineError, Outcome, Settings, Writer, signed};
use crate::journal::{Event, Status};
use crate::plan::PlannedStep;
use crate::steps::{self, Check, Ctx, Note};

pub(super) fn run_step(
    step: &PlannedStep,
    ctx: &mut Ctx<'_>,
    results: &BTreeMap<String, Outcome>,
    settings: &Settings,
    w: &mut Writer<'_>,
) -> Result<(Outcome, Option<BTreeMap<String, String>>), EngineError> {
    let apply = w.applying();
    let prior = ctx.prior;

    // Dependencies: a failed one skips this step, a waiting one makes it wait too.
    if let Some(outcome) = blocked(step, results, apply) {
        let unchanged = prior.is_some_and(|p| {
            matches!(
                (&outcome, p.status),
                (Outcome::Waiting { .. }, Status::Waiting) | (Outcome::Skipped(_), Status::Skipped)
            )
        });
        if !unchanged {
            match &outcome {
                Outcome::Waiting { on, reason } => w.append(Event::StepWaiting {
                    step: step.id.clone(),
                    on: on.clone(),
                    reason: reason.clone(),
                    request: None,
                })?,
                Outcome::Skipped(because) => w.append(Event::StepSkipped {
                    step: step.id.clone(),
                    because: because.clone(),
                })?,
                _ => {}
            }
        }
        return Ok((outcome, None));
    }

    // A dry run cannot check what depends on values an earlier step has not produced yet.
    if !apply {
        let params = serde_json::to_string(&step.params).expect("params serialize");
        if let Some(need) = step
            .needs
            .iter()
            .find(|n| params.contains(&format!(" of {n}: known after it runs>")))
        {
            return Ok((
                Outcome::WouldDo(vec![format!(
                    "(cannot know the details until `{need}` runs)"
                )]),
                None,
            ));
        }
    }

    let reapply = settings.reapply.iter().any(|r| r == &step.id);
    if let Some(p) = prior.filter(|p| p.status == Status::Done)
        && !reapply
    {
        if p.checksum != step.checksum {
            let outcome = Outcome::Failed {
                error: format!(
                    "its parameters changed since it was done ({} by {}); not applying them silently",
                    p.at, p.actor
                ),
                hint: Some(format!(
                    "compare with `onboard log`; to apply the new parameters, re-run with --reapply {}",
                    step.id
                )),
            };
            return Ok((outcome, None));
        }
        return recheck_done(step, ctx, p, settings, w);
    }

    let check = if reapply && prior.is_some_and(|p| p.status == Status::Done) {
        Ok(Check::ToDo(vec!["apply again (--reapply)".into()]))
    } else {
        steps::check(step, ctx)
    };
    Ok(match check {
        Err(e) => (fail(step, w, e.message, e.hint)?, None),
        Ok(Check::Holds { outputs, note }) => {
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
        Ok(Check::Waiting {
            on,
            reason,
            request,
        }) => return waiting(step, ctx, w, on, reason, request),
        Ok(Check::Uncertain { message_id, reason }) => {
            if !prior.is_some_and(|p| p.status == Status::Uncertain) {
                w.append(Event::StepUncertain {
                    step: step.id.clone(),
                    message_id,
                    reason: reason.clone(),
                })?;
            }
            (Outcome::Uncertain(reason), None)
        }
        Ok(Check::ToDo(changes)) if !apply => (Outcome::WouldDo(changes), None),
        Ok(Check::ToDo(_)) => execute(step, ctx, w)?,
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

/// Whether a step's dependencies hold it back: skipped after a failure, waiting while one
/// waits on a person. Pure.
fn blocked(
    step: &PlannedStep,
    results: &BTreeMap<String, Outcome>,
    apply: bool,
) -> Option<Outcome> {
    step.needs.iter().find_map(|need| match results.get(need) {
        Some(o) if o.is_done() => None,
        Some(Outcome::WouldDo(_)) if !apply => None,
        Some(Outcome::Waiting { on, .. }) => Some(Outcome::Waiting {
            on: on.clone(),
            reason: format!("waits for `{need}`"),
        }),
        _ => Some(Outcome::Skipped(format!(
            "needs `{need}`, which is not done"
        ))),
    })
}

/// A step the journal says is done, with the same parameters: checked again, not applied.
/// Drift is reported (and journaled once per finding), corrected only with `--reconcile`.
fn recheck_done(
    step: &PlannedStep,
    ctx: &mut Ctx<'_>,
    p: &crate::journal::StepState,
    settings: &Settings,
    w: &mut Writer<'_>,
) -> Result<(Outcome, Option<BTreeMap<String, String>>), EngineError> {
    let apply = w.applying();
    Ok(match steps::check(step, ctx) {
        Ok(Check::Holds {
            outputs,
            note: Some(note @ Note::Drift(_)),
        }) if settings.reconcile => {
            if !apply {
                return Ok((
                    Outcome::WouldDo(vec![format!("reconcile {note}")]),
                    Some(outputs),
                ));
            }
            match steps::reconcile(step, ctx) {
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
            }
        }
        Ok(Check::Holds { outputs, note }) => {
            // Drift is journaled (once per finding), so `status` and reports show it.
            // An empty finding says it matches again.
            let drift = match &note {
                Some(n @ Note::Drift(_)) => n.to_string(),
                _ => String::new(),
            };
            if apply && p.drift.clone().unwrap_or_default() != drift {
                w.append(Event::StepDrift {
                    step: step.id.clone(),
                    drift,
                })?;
            }
            (Outcome::AlreadyDone(note), Some(outputs))
        }
        Ok(Check::ToDo(changes)) => (
            Outcome::Failed {
                error: format!(
                    "it was done ({} by {}), but no longer holds: {}",
                    p.at,
                    p.actor,
                    changes.join("; ")
                ),
                hint: Some(format!("to do it again, re-run with --reapply {}", step.id)),
            },
            None,
        ),
        Ok(Check::Waiting { on, reason, .. }) => (Outcome::Waiting { on, reason }, None),
        Ok(Check::Uncertain { reason, .. }) => (Outcome::Uncertain(reason), None),
        Err(e) => (
            Outcome::Failed {
                error: e.message,
                hint: e.hint,
            },
            None,
        ),
    })
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
        match steps::human::validate(request, &signature, &operators) {
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
            request,
        })?;
    }
    Ok((Outcome::Waiting { on, reason }, None))
}
