//! `onboard mark-sent`: the operator's decision on an uncertain send.

use clap::Args;

use super::run::StateArgs;
use super::{CmdResult, Failure, Printer, emit, settings};
use crate::engine;

/// Record that an interrupted email did go out (after checking the recipient's mailbox), so
/// the next run does not send it again. The journal keeps who decided and why.
#[derive(Debug, Args)]
pub struct MarkSentArgs {
    /// The hire id.
    hire: String,
    /// The email step.
    step: String,
    /// Who decides (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    actor: Option<String>,
    /// Why, e.g. "seen in Ada's mailbox".
    #[arg(long, default_value = "confirmed by the operator")]
    note: String,
}

pub fn cmd_mark_sent(args: MarkSentArgs, state_args: StateArgs, printer: &Printer) -> CmdResult {
    let state = super::journal::with_hire(state_args, &args.hire, printer)?;
    let actor = settings::actor(args.actor);
    let id = engine::mark_sent(
        &state,
        &args.hire,
        &args.step,
        &actor,
        &args.note,
        settings::clock(printer)?,
    )
    .map_err(|e| {
        printer.error(&e.to_string());
        Failure::Failed
    })?;
    emit(
        printer,
        &format!(
            "{} {}: marked as sent ({id}) by {actor}\n",
            args.hire, args.step
        ),
    )
}
