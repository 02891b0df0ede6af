//! `onboard mark-sent`: the operator's decision on an uncertain send.

use clap::Args;

use super::settings::Setup;
use super::{CmdResult, Printer, emit};
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

pub fn cmd_mark_sent(args: MarkSentArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let state = super::journal::with_hire(setup, &args.hire)?;
    let state = state.as_ref();
    let actor = setup.actor(args.actor);
    let id = engine::mark_sent(
        state,
        &args.hire,
        &args.step,
        &actor,
        &args.note,
        setup.clock,
    )?;
    emit(
        printer,
        &format!(
            "{} {}: marked as sent ({id}) by {actor}\n",
            args.hire, args.step
        ),
    )
}
