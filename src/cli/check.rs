//! `onboard check`: validate playbooks without changing anything.

use std::path::PathBuf;

use clap::Args;

use super::{CliError, CmdResult, Exit, InputArgs, Printer, emit, load_playbook};
use crate::diag::SourceMap;

/// Check playbooks: keys, types, hire data, step graph, and every template rendered.
///
/// Reports every problem at once, each with its file, line and column. Exit code 2 if any
/// playbook is invalid. Nothing is changed anywhere.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Playbooks to check.
    #[arg(required = true, value_name = "PLAYBOOK")]
    playbooks: Vec<PathBuf>,

    #[command(flatten)]
    input: InputArgs,
}

pub fn cmd_check(args: CheckArgs, setup: &super::settings::Setup, printer: &Printer) -> CmdResult {
    let mut failed = false;
    for path in args.playbooks {
        let mut sources = SourceMap::default();
        let shown = crate::diag::visible(&path.display().to_string()).into_owned();
        let Ok((_, p)) = load_playbook(path, &args.input, setup, &mut sources, printer) else {
            failed = true;
            continue;
        };
        let hire = if p.sample_hire {
            "no hire (checklist only)".to_owned()
        } else {
            format!("hire {}", p.hire)
        };
        emit(
            printer,
            &format!("{shown}: ok ({} steps, {hire})\n", p.steps.len()),
        )?;
    }
    if failed {
        Err(CliError::Reported(Exit::Input))
    } else {
        Ok(())
    }
}
