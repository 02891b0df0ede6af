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
    /// One hire's evidence pack: every signature and hand-off with its journal record and hash,
    /// every evidence file's SHA-256, the journal check; written as JSON (--output, default
    /// evidence-HIRE.json) and a printable HTML page beside it, each SHA-256 printed.
    #[arg(long, conflicts_with_all = ["since", "until", "format", "view"])]
    evidence: bool,
}

pub fn cmd_report(args: ReportArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    if args.evidence {
        return evidence_pack(args, setup, printer);
    }
    let state = setup.store(Open::AsIs)?;
    let state = state.as_ref();
    let hires = if args.hires.is_empty() {
        super::journal::hires(state, Vec::new())?
    } else {
        args.hires.clone()
    };
    let mut journals = Vec::new();
    // A journal that cannot be read is in the report, flagged; it hides no other hire.
    for j in JournalFile::read_many(state, &hires) {
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
    deliver(printer, args.output.as_deref(), &text, &report.broken())
}

/// Writes a document for auditors to FILE (or stdout), then names each journal that does not
/// verify: exit 1 if any does (the document shows it, flagged).
pub(super) fn deliver(
    printer: &Printer,
    output: Option<&std::path::Path>,
    text: &str,
    broken: &[String],
) -> CmdResult {
    match output {
        Some(path) => {
            fs_err::write(path, text)?;
            printer.info(&format!("Report written to {}", path.display()));
        }
        None => emit(printer, text)?,
    }
    for b in broken {
        printer.error(&format!("journal does not verify: {b}"));
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(CliError::Reported(Exit::Failed))
    }
}

/// `onboard report HIRE --evidence`: the pack's two files, never over an existing file.
fn evidence_pack(args: ReportArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let [hire] = args.hires.as_slice() else {
        return Err(CliError::input("--evidence is for one hire: name it")
            .hint("e.g. `onboard report E1042 --evidence`"));
    };
    let store = super::journal::with_hire(setup, hire)?;
    let journal = JournalFile::read(store.as_ref(), hire);
    let files: Vec<(String, Vec<u8>)> = store
        .evidence(hire)
        .map_err(|e| CliError::failed(format!("cannot read the evidence files: {e}")))?
        .into_iter()
        .map(|e| (e.name, e.bytes))
        .collect();
    let pack = crate::evidence::build(
        hire,
        &journal.path,
        &journal.journal,
        &files,
        setup.clock.now(),
    );
    let json_path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("evidence-{hire}.json")));
    let html_path = json_path.with_extension("html");
    let json = serde_json::to_string_pretty(&pack).expect("a pack serializes") + "\n";
    let html = crate::evidence::html(&pack).context("cannot render the evidence page")?;
    for (path, text) in [(&json_path, &json), (&html_path, &html)] {
        write_new(path, text)?;
        emit(
            printer,
            &format!(
                "{}  sha256 {}\n",
                path.display(),
                crate::digest::sha256(text)
            ),
        )?;
    }
    if pack.journal.verified {
        printer.info(&format!(
            "{} signatures, {} evidence files; the journal verifies up to {}.",
            pack.signatures.len(),
            pack.files.len(),
            pack.journal.head
        ));
        Ok(())
    } else {
        printer.error(&format!(
            "journal does not verify: {}:{}: {}",
            pack.journal.name,
            pack.journal.broken_line.unwrap_or(0),
            pack.journal.problem.as_deref().unwrap_or("")
        ));
        Err(CliError::Reported(Exit::Failed))
    }
}

/// Writes a file that must not exist yet: a pack is kept, never replaced by accident.
fn write_new(path: &std::path::Path, text: &str) -> CmdResult {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            CliError::input(format!("cannot write {}: {e}", path.display()))
                .hint("name another file with --output FILE.json")
        })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))
}
