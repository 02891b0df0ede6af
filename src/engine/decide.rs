//! What a step needs, decided without IO: from the journal, the run's settings, the outcomes of
//! the steps it needs and (once looked at) what `check` found, `decide` returns a [`Decision`].
//! `step.rs` carries it out.

use std::collections::BTreeMap;

use super::Outcome;
use crate::journal::{SignOffRequest, Status, StepState};
use crate::plan::PlannedStep;
use crate::steps::{Check, Note, StepResult};

/// What a step needs, decided from what is known about it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// Look at the targets (`steps::check`) and decide again with what was found.
    Look,
    /// A step it needs holds it back (skipped, or waiting too); journaled unless the journal
    /// already says so.
    Blocked { outcome: Outcome, journal: bool },
    /// Nothing to do or journal; report this.
    Report(Outcome),
    /// Found done (a step not done before, or an interrupted one that finished): journal it.
    Done {
        outputs: BTreeMap<String, String>,
        note: Option<Note>,
    },
    /// Done before and still there; `drift` is what to journal when the finding changed
    /// (empty: it matches again).
    StillDone {
        outputs: BTreeMap<String, String>,
        note: Option<Note>,
        drift: Option<String>,
    },
    /// Done before, and its effect is gone: reported as failed, and journaled once per
    /// finding (`lost`), so `status` does not call the hire ready.
    Lost {
        error: String,
        hint: Option<String>,
        /// What to journal (`None`: the journal already says so, or a dry run).
        finding: Option<String>,
    },
    /// Done, but drifted: a dry run says it would be corrected (`--reconcile`).
    WouldReconcile {
        outputs: BTreeMap<String, String>,
        note: Note,
    },
    /// Done, but drifted: correct it (`--reconcile`).
    Reconcile {
        outputs: BTreeMap<String, String>,
        note: Note,
    },
    /// Make the change.
    Apply,
    /// A person must act.
    Wait {
        on: String,
        reason: String,
        request: Option<Box<SignOffRequest>>,
    },
    /// An interrupted send that cannot be checked; journaled unless already so.
    Uncertain {
        message_id: String,
        reason: String,
        journal: bool,
    },
    /// Cannot proceed: journaled as failed.
    Fail { error: String, hint: Option<String> },
}

/// What `decide` knows besides what `check` found.
pub(super) struct Facts<'a> {
    pub step: &'a PlannedStep,
    /// What the journal says about the step.
    pub prior: Option<&'a StepState>,
    /// Outcomes of the steps before it in this run.
    pub results: &'a BTreeMap<String, Outcome>,
    /// A real run (false: a dry run).
    pub apply: bool,
    /// `--reapply` names it.
    pub reapply: bool,
    /// `--reconcile`.
    pub reconcile: bool,
}

/// Decides what a step needs. `found` is `None` before the targets were looked at. Pure.
pub(super) fn decide(f: &Facts<'_>, found: Option<StepResult<Check>>) -> Decision {
    match found {
        None => before_looking(f),
        Some(found) => after_looking(f, found),
    }
}

/// From the journal and the run alone: blocked, refused, reapplied, or look at the targets.
fn before_looking(f: &Facts<'_>) -> Decision {
    let (step, prior) = (f.step, f.prior);
    let done = prior.filter(|p| p.status == Status::Done);
    // A done step stays done whatever happens to its needs in a later run: it is re-checked,
    // never journaled as skipped or waiting (that would undo it, and the next run would do it
    // again). Only a reapplication of it is held back, and that is not journaled.
    if done.is_some() {
        if f.reapply
            && let Some(outcome) = blocked(step, f.results, f.apply)
        {
            return Decision::Report(outcome);
        }
    } else if let Some(outcome) = blocked(step, f.results, f.apply) {
        // A start whose effect may exist (interrupted, uncertain, or failed part-way) keeps
        // its record: a skip journaled over it would lose the intent, and the next run would
        // do it again under a new one.
        let unfinished = prior.is_some_and(|p| {
            matches!(p.status, Status::Running | Status::Uncertain)
                || (p.status == Status::Failed && !p.intent.is_empty())
        });
        let unchanged = unfinished
            || prior.is_some_and(|p| {
                matches!(
                    (&outcome, p.status),
                    (Outcome::Waiting { .. }, Status::Waiting)
                        | (Outcome::Skipped(_), Status::Skipped)
                )
            });
        return Decision::Blocked {
            outcome,
            journal: !unchanged,
        };
    }
    if !f.apply
        && let Some(need) = unknown_until_run(step)
    {
        return Decision::Report(Outcome::WouldDo(vec![format!(
            "(cannot know the details until `{need}` runs)"
        )]));
    }
    match done {
        Some(_) if f.reapply && f.apply => Decision::Apply,
        Some(_) if f.reapply => {
            Decision::Report(Outcome::WouldDo(vec!["apply again (--reapply)".into()]))
        }
        // A message already sent cannot take new parameters: it stays sent, and says so.
        Some(p) if p.checksum != step.checksum && step.params.sent_once() => {
            Decision::Report(Outcome::AlreadyDone(Some(Note::Info(format!(
                "sent {} by {} with earlier parameters (they changed since); --reapply {} sends \
                 the new version as another message",
                p.at, p.actor, step.id
            )))))
        }
        Some(p) if p.checksum != step.checksum => Decision::Report(Outcome::Failed {
            error: format!(
                "its parameters changed since it was done ({} by {}); not applying them silently",
                p.at, p.actor
            ),
            hint: Some(format!(
                "compare with `onboard log`; to apply the new parameters, re-run with --reapply {}",
                step.id
            )),
        }),
        _ => Decision::Look,
    }
}

/// With what `check` found.
fn after_looking(f: &Facts<'_>, found: StepResult<Check>) -> Decision {
    let (step, prior) = (f.step, f.prior);
    let done = prior.filter(|p| p.status == Status::Done);
    match (found, done) {
        (Err(e), Some(_)) => Decision::Report(Outcome::Failed {
            error: e.message,
            hint: e.hint,
        }),
        (Err(e), None) => Decision::Fail {
            error: e.message,
            hint: e.hint,
        },
        (
            Ok(Check::Holds {
                outputs,
                note: Some(note @ Note::Drift(_)),
            }),
            Some(_),
        ) if f.reconcile => match f.apply {
            true => Decision::Reconcile { outputs, note },
            false => Decision::WouldReconcile { outputs, note },
        },
        (Ok(Check::Holds { outputs, note }), Some(p)) => {
            // Drift is journaled once per finding, so `status` and reports show it.
            let finding = match &note {
                Some(n @ Note::Drift(_)) => n.to_string(),
                _ => String::new(),
            };
            let changed = f.apply && p.drift.clone().unwrap_or_default() != finding;
            Decision::StillDone {
                outputs,
                note,
                drift: changed.then_some(finding),
            }
        }
        (Ok(Check::Holds { outputs, note }), None) => Decision::Done { outputs, note },
        (Ok(Check::ToDo(changes)), Some(p)) => {
            let finding = format!("no longer holds: {}", changes.join("; "));
            let known = p.lost && p.drift.as_deref() == Some(finding.as_str());
            Decision::Lost {
                error: format!("it was done ({} by {}), but {finding}", p.at, p.actor),
                hint: Some(format!("to do it again, re-run with --reapply {}", step.id)),
                finding: (f.apply && !known).then_some(finding),
            }
        }
        (Ok(Check::ToDo(changes)), None) if !f.apply => Decision::Report(Outcome::WouldDo(changes)),
        (Ok(Check::ToDo(_)), None) => Decision::Apply,
        (Ok(Check::Waiting { on, reason, .. }), Some(_)) => {
            Decision::Report(Outcome::Waiting { on, reason })
        }
        (
            Ok(Check::Waiting {
                on,
                reason,
                request,
            }),
            None,
        ) => Decision::Wait {
            on,
            reason,
            request,
        },
        (Ok(Check::Uncertain { reason, .. }), Some(_)) => {
            Decision::Report(Outcome::Uncertain(reason))
        }
        (Ok(Check::Uncertain { message_id, reason }), None) => Decision::Uncertain {
            message_id,
            reason,
            journal: !prior.is_some_and(|p| p.status == Status::Uncertain),
        },
    }
}

/// In a dry run: a step it needs whose outputs this step's parameters use, not known yet.
fn unknown_until_run(step: &PlannedStep) -> Option<&String> {
    let params = serde_json::to_string(&step.params).expect("params serialize");
    step.needs
        .iter()
        .find(|n| params.contains(&format!(" of {n}: known after it runs>")))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Params;
    use crate::steps::StepError;
    use crate::steps::sign_off::SignOffParams;

    fn step(needs: &[&str]) -> PlannedStep {
        PlannedStep {
            id: "wipe".into(),
            title: "Wipe".into(),
            kind: "sign_off",
            needs: needs.iter().map(|n| n.to_string()).collect(),
            action: String::new(),
            params: Params::SignOff(SignOffParams::sample()),
            checksum: "c1".into(),
            known_after_run: vec![],
            now: None,
            deadline: None,
        }
    }

    fn state(status: Status, checksum: &str) -> StepState {
        StepState {
            status,
            checksum: checksum.into(),
            at: "2026-11-24T09:00:00Z".into(),
            actor: "alice".into(),
            ..StepState::default()
        }
    }

    fn facts<'a>(
        step: &'a PlannedStep,
        prior: Option<&'a StepState>,
        results: &'a BTreeMap<String, Outcome>,
    ) -> Facts<'a> {
        Facts {
            step,
            prior,
            results,
            apply: true,
            reapply: false,
            reconcile: false,
        }
    }

    fn holds(note: Option<Note>) -> Option<StepResult<Check>> {
        Some(Ok(Check::Holds {
            outputs: BTreeMap::new(),
            note,
        }))
    }

    #[test]
    fn a_failed_need_skips_and_a_waiting_one_waits_journaled_once() {
        let s = step(&["account"]);
        let failed = BTreeMap::from([(
            "account".to_owned(),
            Outcome::Failed {
                error: "x".into(),
                hint: None,
            },
        )]);
        let d = decide(&facts(&s, None, &failed), None);
        assert!(matches!(
            d,
            Decision::Blocked {
                outcome: Outcome::Skipped(_),
                journal: true
            }
        ));
        let skipped = state(Status::Skipped, "c1");
        let d = decide(&facts(&s, Some(&skipped), &failed), None);
        assert!(matches!(d, Decision::Blocked { journal: false, .. }));

        let waiting = BTreeMap::from([(
            "account".to_owned(),
            Outcome::Waiting {
                on: "technician".into(),
                reason: "r".into(),
            },
        )]);
        let d = decide(&facts(&s, None, &waiting), None);
        assert!(matches!(
            d,
            Decision::Blocked {
                outcome: Outcome::Waiting { .. },
                journal: true
            }
        ));
    }

    #[test]
    fn a_done_step_with_new_parameters_is_refused_unless_reapplied() {
        let s = step(&[]);
        let done = state(Status::Done, "c0");
        let none = BTreeMap::new();
        let d = decide(&facts(&s, Some(&done), &none), None);
        assert!(
            matches!(d, Decision::Report(Outcome::Failed { error, .. }) if error.contains("parameters changed"))
        );
        let mut f = facts(&s, Some(&done), &none);
        f.reapply = true;
        assert_eq!(decide(&f, None), Decision::Apply);
        f.apply = false;
        assert_eq!(
            decide(&f, None),
            Decision::Report(Outcome::WouldDo(vec!["apply again (--reapply)".into()]))
        );
    }

    #[test]
    fn drift_is_journaled_once_per_finding_and_reconciled_only_when_asked() {
        let s = step(&[]);
        let none = BTreeMap::new();
        let mut done = state(Status::Done, "c1");
        assert_eq!(decide(&facts(&s, Some(&done), &none), None), Decision::Look);
        let drift = || Some(Note::Drift(vec!["mail differs".into()]));
        let d = decide(&facts(&s, Some(&done), &none), holds(drift()));
        assert!(
            matches!(d, Decision::StillDone { drift: Some(ref f), .. } if f == "drift: mail differs")
        );
        done.drift = Some("drift: mail differs".into());
        let d = decide(&facts(&s, Some(&done), &none), holds(drift()));
        assert!(matches!(d, Decision::StillDone { drift: None, .. }));
        // It matches again: an empty finding is journaled.
        let d = decide(&facts(&s, Some(&done), &none), holds(None));
        assert!(matches!(d, Decision::StillDone { drift: Some(ref f), .. } if f.is_empty()));
        let mut f = facts(&s, Some(&done), &none);
        f.reconcile = true;
        assert!(matches!(
            decide(&f, holds(drift())),
            Decision::Reconcile { .. }
        ));
        f.apply = false;
        assert!(matches!(
            decide(&f, holds(drift())),
            Decision::WouldReconcile { .. }
        ));
    }

    #[test]
    fn what_check_finds_decides_the_rest() {
        let s = step(&[]);
        let none = BTreeMap::new();
        let todo = || Some(Ok(Check::ToDo(vec!["add".into()])));
        assert_eq!(decide(&facts(&s, None, &none), todo()), Decision::Apply);
        let mut dry = facts(&s, None, &none);
        dry.apply = false;
        assert_eq!(
            decide(&dry, todo()),
            Decision::Report(Outcome::WouldDo(vec!["add".into()]))
        );
        // Done before and no longer there: reported, never redone.
        let done = state(Status::Done, "c1");
        let d = decide(&facts(&s, Some(&done), &none), todo());
        assert!(
            matches!(d, Decision::Lost { ref error, finding: Some(_), .. } if error.contains("no longer holds"))
        );
        // An error of a step not done is journaled as failed; of a done one, only reported.
        let err = || Some(Err(StepError::new("down")));
        assert!(matches!(
            decide(&facts(&s, None, &none), err()),
            Decision::Fail { .. }
        ));
        assert!(matches!(
            decide(&facts(&s, Some(&done), &none), err()),
            Decision::Report(Outcome::Failed { .. })
        ));
        // An uncertain send is journaled once.
        let uncertain = || {
            Some(Ok(Check::Uncertain {
                message_id: "<m@x>".into(),
                reason: "cut".into(),
            }))
        };
        assert!(matches!(
            decide(&facts(&s, None, &none), uncertain()),
            Decision::Uncertain { journal: true, .. }
        ));
        let was = state(Status::Uncertain, "c1");
        assert!(matches!(
            decide(&facts(&s, Some(&was), &none), uncertain()),
            Decision::Uncertain { journal: false, .. }
        ));
        assert!(matches!(
            decide(&facts(&s, None, &none), holds(None)),
            Decision::Done { .. }
        ));
    }
}
