//! `email`: send a message exactly once. Its Message-ID is journaled before it is sent, so an
//! interrupted send is recognised on resume instead of being repeated blindly.

pub mod spec;

use std::collections::BTreeMap;

use super::{Applied, Check, Ctx, Kind, StepError, StepResult};
use crate::backend::mail::Outgoing;
use crate::journal::Status;
use crate::load::Step;
use crate::mail;
use crate::plan::{Outputs, PlannedStep, Renderer};
use spec::{Email, EmailParams};

impl Kind for Email {
    type Params = Box<EmailParams>;
    const OUTPUTS: &'static [&'static str] = &["message_id"];
    const SENT_ONCE: bool = true;

    fn render(&self, r: &mut Renderer<'_>, step: &Step, _: &Outputs) -> Option<Box<EmailParams>> {
        spec::render(r, step, self).map(Box::new)
    }

    fn describe(p: &Box<EmailParams>) -> String {
        format!("send \"{}\" to {}", p.subject, p.to.join(", "))
    }

    fn fields(p: &Box<EmailParams>) -> Vec<(String, String)> {
        spec::fields(p)
    }

    fn check(_: &PlannedStep, p: &Box<EmailParams>, ctx: &mut Ctx<'_>) -> StepResult<Check> {
        check(p, ctx)
    }

    fn intent(
        step: &PlannedStep,
        p: &Box<EmailParams>,
        ctx: &mut Ctx<'_>,
    ) -> StepResult<BTreeMap<String, String>> {
        Ok(intent(&step.id, p, ctx))
    }

    fn apply(
        _: &PlannedStep,
        p: &Box<EmailParams>,
        intent: &BTreeMap<String, String>,
        ctx: &mut Ctx<'_>,
    ) -> StepResult<Applied> {
        apply(p, intent, ctx)
    }
}

/// The Message-ID of a send that started and did not finish: interrupted, uncertain, or
/// failed after the message may have gone (a failure before it keeps no intent).
fn interrupted_id<'a>(ctx: &'a Ctx<'_>) -> Option<&'a String> {
    ctx.prior
        .filter(|p| {
            matches!(
                p.status,
                Status::Running | Status::Uncertain | Status::Failed
            )
        })
        .and_then(|p| p.intent.get("message_id"))
}

fn outputs(message_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("message_id".to_owned(), message_id.to_owned())])
}

fn check(p: &EmailParams, ctx: &mut Ctx<'_>) -> StepResult<Check> {
    if let Some(done) = ctx.prior.filter(|s| s.status == Status::Done)
        && let Some(id) = done.outputs.get("message_id")
    {
        return match ctx.mailer.was_sent(id)? {
            Some(false) => Err(StepError::new(format!(
                "message {id} was sent, but is no longer in {}",
                ctx.mailer.describe()
            ))),
            _ => Ok(Check::Holds {
                outputs: outputs(id),
                note: None,
            }),
        };
    }
    if let Some(id) = interrupted_id(ctx).cloned() {
        return match ctx.mailer.was_sent(&id)? {
            Some(true) => Ok(Check::Holds {
                outputs: outputs(&id),
                note: Some(super::Note::Info("sent by the interrupted run".into())),
            }),
            Some(false) => Ok(Check::ToDo(vec![format!(
                "send \"{}\" to {} (the interrupted run did not)",
                p.subject,
                p.to.join(", ")
            )])),
            None if ctx.resend_uncertain => Ok(Check::ToDo(vec![format!(
                "send \"{}\" to {} again with the same Message-ID {id} (--resend-uncertain)",
                p.subject,
                p.to.join(", ")
            )])),
            None => Ok(Check::Uncertain {
                reason: format!(
                    "a run was interrupted while sending {id} through {}; whether it went out cannot be known",
                    ctx.mailer.describe()
                ),
                message_id: id,
            }),
        };
    }
    Ok(Check::ToDo(vec![format!(
        "send \"{}\" to {}",
        p.subject,
        p.to.join(", ")
    )]))
}

pub fn intent(step: &str, p: &EmailParams, ctx: &mut Ctx<'_>) -> BTreeMap<String, String> {
    let id = interrupted_id(ctx)
        .cloned()
        .unwrap_or_else(|| mail::new_message_id(step, ctx.hire_id, &p.from));
    let mut intent = outputs(&id);
    if let Some(policies) = &p.policies {
        intent.insert("policy_version".into(), policies.version.clone());
        intent.insert("policy_sha256".into(), policies.sha256.clone());
    }
    intent
}

fn apply(
    p: &EmailParams,
    intent: &BTreeMap<String, String>,
    ctx: &mut Ctx<'_>,
) -> StepResult<Applied> {
    let id = intent
        .get("message_id")
        .ok_or_else(|| StepError::new("no Message-ID was journaled before sending"))?;
    let built =
        mail::email(p, id, ctx.now).map_err(|e| StepError::new(e.to_string()).nothing_done())?;
    ctx.mailer
        .send(&Outgoing {
            message_id: id,
            from: &built.from,
            to: &built.to,
            bytes: &built.bytes,
        })
        .map_err(|e| {
            // A send refused outright went nowhere; one cut off mid-way may have gone.
            let uncertain = matches!(e, crate::backend::BackendError::Uncertain(_));
            let e = StepError::from(e);
            if uncertain { e } else { e.nothing_done() }
        })?;
    // From here the message went out: a failure keeps the intent (its Message-ID), so the next
    // run asks the target about it before sending anything.
    if ctx.mailer.was_sent(id)? == Some(false) {
        return Err(StepError::new(format!(
            "{id} is not in {} after sending",
            ctx.mailer.describe()
        )));
    }
    let mut evidence = BTreeMap::from([
        ("recipients".to_owned(), built.to.join(", ")),
        ("subject".to_owned(), p.subject.clone()),
    ]);
    if let Some(policies) = &p.policies {
        evidence.insert("policy_file".into(), policies.file.clone());
        evidence.insert("policy_version".into(), policies.version.clone());
        evidence.insert("policy_sha256".into(), policies.sha256.clone());
    }
    Ok(Applied {
        changes: vec![format!(
            "sent \"{}\" to {} as {id}",
            p.subject,
            built.to.join(", ")
        )],
        outputs: outputs(id),
        evidence,
    })
}
