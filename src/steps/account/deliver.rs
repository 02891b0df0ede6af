//! Delivering an initial password: shown once to the operator at the terminal, or sent to the
//! manager in its own message (never with the welcome).

use std::collections::BTreeMap;

use super::{Account, interrupted};
use crate::backend::mail::Outgoing;
use crate::mail;
use crate::model::Deliver;
use crate::secret::Secret;
use crate::steps::{Ctx, StepError, StepResult};

/// Delivers `password` as the playbook says; what it did, for the step's changes.
pub(super) fn deliver(
    ctx: &mut Ctx<'_>,
    a: &Account<'_>,
    password: &Secret,
    must_change: bool,
    evidence: &mut BTreeMap<String, String>,
) -> StepResult<String> {
    let login = a.login();
    if a.password.deliver == Deliver::Operator {
        ctx.operator
            .show_password(ctx.hire_id, &login, password)
            .map_err(|e| {
                StepError::new(format!("cannot show the password on the terminal: {e}"))
            })?;
        evidence.insert("password_delivered_to".into(), "operator".into());
        return Ok("shown to the operator".into());
    }
    let hire = ctx
        .pb
        .hire
        .as_ref()
        .ok_or_else(|| StepError::new("no hire"))?;
    let field = |f: Option<&crate::yaml::Spanned<String>>| f.map(|v| v.value.clone());
    let manager = field(hire.manager_email.as_ref())
        .ok_or_else(|| StepError::new("the hire has no manager_email to send the password to"))?;
    let name = [
        field(hire.preferred_name.as_ref()).or(field(hire.given_name.as_ref())),
        field(hire.family_name.as_ref()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let message_id = mail::new_message_id("password", ctx.hire_id, ctx.from);
    let built = mail::credential(
        &mail::Credential {
            from: ctx.from,
            manager: &manager,
            manager_name: &field(hire.manager.as_ref()).unwrap_or_else(|| manager.clone()),
            hire_name: if name.is_empty() { &login } else { &name },
            login: &login,
            start_date: hire.start_date.as_ref().map(|d| d.value.as_str()),
            must_change,
            copy_kept_in: ctx.mailer.keeps_copies().as_deref(),
            replaces_earlier: interrupted(ctx).is_some(),
        },
        password,
        &message_id,
        ctx.now,
    )
    .map_err(|e| StepError::new(e.to_string()))?;
    ctx.mailer.send(&Outgoing {
        message_id: &message_id,
        from: &built.from,
        to: &built.to,
        bytes: &built.bytes,
    })?;
    evidence.insert(
        "password_delivered_to".into(),
        format!("manager <{manager}>"),
    );
    evidence.insert("password_message_id".into(), message_id);
    Ok(format!(
        "sent to the manager ({manager}) in a separate message"
    ))
}
