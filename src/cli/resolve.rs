//! `onboard resolve`: a refusal was put right.

use clap::Args;

use super::settings::Setup;
use super::{CmdResult, Printer, emit};
use crate::engine::{self, Mode, Settings};

/// Record that what a person refused on a step was put right (e.g. the missing dock was
/// delivered). Until then the refusal shows on `status`, the board, the hire's page and the
/// reports; the journal keeps both. The person can then sign the step.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The hire id.
    hire: String,
    /// The step that was refused, e.g. laptop-handoff.
    step: String,
    /// What was done about it, e.g. "dock delivered to the desk on 2026-12-07".
    #[arg(long)]
    note: String,
    /// Who records it (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    actor: Option<String>,
}

pub fn cmd_resolve(args: ResolveArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let state = super::journal::with_hire(setup, &args.hire)?;
    let settings = Settings {
        mode: Mode::Apply,
        actor: setup.actor(args.actor),
        clock: setup.clock,
        reapply: Vec::new(),
        reconcile: false,
        resend_uncertain: false,
        failpoint: None,
    };
    let refusals = engine::resolve(
        state.as_ref(),
        &args.hire,
        &args.step,
        &args.note,
        &settings,
    )?;
    let mut out = String::new();
    for r in refusals {
        out.push_str(&format!(
            "{} {}: resolved by {}: {} ({})\n",
            args.hire,
            args.step,
            settings.actor,
            r.summary(),
            args.note
        ));
    }
    emit(printer, &out)
}
