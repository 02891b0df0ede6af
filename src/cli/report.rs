//! `onboard report`: completion reports for auditors, from the journals only.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::settings::{Open, Setup};
use super::{CliError, CmdResult, Exit, Printer, emit};
use crate::report::{self, JournalFile, View};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One self-contained page, readable and printable.
    Html,
    /// One row per step, for spreadsheets.
    Csv,
    /// The documented `onboard.report/1` structure.
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ViewArg {
    /// Everything the journals hold (they hold no secrets).
    Full,
    /// For HR: who, what state, when; no DNs, hashes or Message-IDs.
    Hr,
}

/// Report on onboarding: per hire every step, who did it when, what changed and the evidence,
/// what is pending or overdue, and whether each journal's hash chain verified.
///
/// Exit 1 if any journal does not verify (the report still shows it, flagged).
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Hire ids (default: every hire in the state directory).
    hires: Vec<String>,
    /// Only hires starting on or after this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    since: Option<jiff::civil::Date>,
    /// Only hires starting on or before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    until: Option<jiff::civil::Date>,
    #[arg(long, value_enum, default_value = "html")]
    format: Format,
    #[arg(long, value_enum, default_value = "full")]
    view: ViewArg,
    /// Write to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn cmd_report(args: ReportArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let state = setup.store(Open::AsIs)?;
    let state = state.as_ref();
    let hires = if args.hires.is_empty() {
        super::journal::hires(state, Vec::new())?
    } else {
        args.hires.clone()
    };
    let mut journals = Vec::new();
    for hire in hires {
        // A journal that cannot be read is in the report, flagged; it hides no other hire.
        let j = JournalFile::read(state, &hire);
        if report::in_range(&j, args.since, args.until) {
            journals.push(j);
        }
    }
    let view = match args.view {
        ViewArg::Full => View::Full,
        ViewArg::Hr => View::Hr,
    };
    let now = setup.clock.now();
    let report = report::build(&journals, view, now);
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&report).expect("report serializes") + "\n",
        Format::Csv => report::csv(&report),
        Format::Html => report::html(&report).context("cannot render the report")?,
    };
    match &args.output {
        Some(path) => {
            fs_err::write(path, &text)?;
            printer.info(&format!("Report written to {}", path.display()));
        }
        None => emit(printer, &text)?,
    }
    let broken = report.broken();
    for b in &broken {
        printer.error(&format!("journal does not verify: {b}"));
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(CliError::Reported(Exit::Failed))
    }
}
