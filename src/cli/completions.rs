//! `onboard completions` and `onboard man`: generated from the same clap definition.

use clap::{Args, CommandFactory};

use super::{Cli, CmdResult, Printer, emit};

/// Print a shell completion script, e.g. `onboard completions bash > /etc/bash_completion.d/onboard`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Print the man page (roff), e.g. `onboard man | man -l -`.
#[derive(Debug, Args)]
pub struct ManArgs {}

pub fn cmd_completions(args: CompletionsArgs, printer: &Printer) -> CmdResult {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "onboard", &mut out);
    emit(printer, &String::from_utf8_lossy(&out))
}

pub fn cmd_man(_: ManArgs, printer: &Printer) -> CmdResult {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .expect("writing to a Vec cannot fail");
    emit(printer, &String::from_utf8_lossy(&out))
}
