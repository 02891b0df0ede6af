//! The journal commands: `status`, `log`, `verify`. They read journals and change nothing.

use std::fmt::Write as _;

use anyhow::Context;
use clap::Args;

use super::settings::{Open, Setup};
use super::{CliError, CmdResult, Exit, Printer, emit};
use crate::journal::HireState;
use crate::journal::{self, Event, Record};
use crate::readiness::{self, Blocker, Readiness};
use crate::store::Store;

/// Show every hire by start time: ready, on track, at risk or late, what blocks them and who
/// must act, then each step (who did what when).
///
/// Exit 1 when any hire is at risk or late, so it can run from cron and alert.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Hire ids (default: every hire in the state directory).
    hires: Vec<String>,

    /// Print JSON instead.
    #[arg(long)]
    json: bool,
}

/// Show a hire's journal, record by record.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The hire id.
    hire: String,

    /// Print the records as JSON Lines instead.
    #[arg(long)]
    json: bool,
}

/// Check journals' hash chains; name the first broken record of each. Exit 1 if any is broken.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Hire ids (default: every hire in the state directory).
    hires: Vec<String>,
}

fn state(setup: &Setup) -> CmdResult<Box<dyn Store>> {
    setup.store(Open::AsIs)
}

/// The state directory, checked to hold a journal for `hire` (commands that act on one hire).
pub fn with_hire(setup: &Setup, hire: &str) -> CmdResult<Box<dyn Store>> {
    let state = state(setup)?;
    hires(state.as_ref(), vec![hire.to_owned()])?;
    Ok(state)
}

/// The hires named, each checked to have a journal, else every hire in the store.
pub fn hires(state: &dyn Store, given: Vec<String>) -> CmdResult<Vec<String>> {
    if !given.is_empty() {
        for h in &given {
            if !state.has(h) {
                return Err(CliError::input(format!(
                    "no journal for hire {h} in {}",
                    state.describe()
                ))
                .hint("hires are named by their `id`; see `onboard status` for the list"));
            }
        }
        return Ok(given);
    }
    Ok(state
        .hires()
        .with_context(|| format!("cannot list the hires in {}", state.describe()))?)
}

/// A hire in `onboard status --json`: its replayed journal plus its readiness.
#[derive(serde::Serialize)]
struct StatusEntry {
    #[serde(flatten)]
    state: HireState,
    readiness: Readiness,
    blockers: Vec<Blocker>,
}

pub fn cmd_status(args: StatusArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let state = state(setup)?;
    let state = state.as_ref();
    let hires = hires(state, args.hires)?;
    let now = setup.clock.now();
    let mut all = Vec::new();
    // One journal that cannot be read hides no other hire: it is flagged, the rest shown.
    let mut broken = Vec::new();
    // In bulk: one read of every journal and one look at the locks (on PostgreSQL, two
    // queries for any number of hires).
    let locked = state.locked(&hires);
    for (hire, read) in hires.iter().zip(state.read_many(&hires)) {
        match crate::engine::state_of(state.journal_name(hire), read) {
            // No complete record (empty, or its only record cut off): nothing says whose it
            // is or where the hire stands, so it is flagged, never shown as on track.
            Ok((s, torn)) if s.hire.is_empty() => broken.push((
                hire.clone(),
                format!(
                    "{}: holds no complete record{}",
                    state.journal_name(hire),
                    if torn > 0 {
                        " (its only record is cut off)"
                    } else {
                        ""
                    }
                ),
            )),
            Ok((mut s, _)) => {
                // A step a live run is working on is not interrupted, and no cause for alarm.
                if locked.contains(hire) {
                    s.mark_live();
                }
                let a = readiness::assess(&s, now);
                all.push(StatusEntry {
                    state: s,
                    readiness: a.readiness,
                    blockers: a.blockers,
                });
            }
            Err(e) => broken.push((hire.clone(), where_broken(&e))),
        }
    }
    // Soonest start first; hires without a start date last.
    all.sort_by(|a, b| {
        (
            a.state.start_at.is_empty(),
            &a.state.start_at,
            &a.state.hire,
        )
            .cmp(&(
                b.state.start_at.is_empty(),
                &b.state.start_at,
                &b.state.hire,
            ))
    });
    let alarming = all.iter().filter(|e| e.readiness.alarming()).count();
    if args.json {
        // A journal that cannot be read is listed too, flagged: a script reading the list must
        // not take a missing hire for one that is fine.
        let mut list: Vec<serde_json::Value> = all
            .iter()
            .map(|e| serde_json::to_value(e).expect("state serializes"))
            .collect();
        list.extend(broken.iter().map(|(hire, problem)| {
            serde_json::json!({
                "hire": hire,
                "readiness": "journal_broken",
                "journal_broken": problem,
            })
        }));
        let text = serde_json::to_string_pretty(&list).expect("state serializes");
        emit(printer, &(text + "\n"))?;
    } else if all.is_empty() && broken.is_empty() {
        printer.info(&format!("No hires in {} yet.", state.describe()));
    } else {
        let mut text = human_status(&all);
        for (hire, problem) in &broken {
            let _ = writeln!(text, "{hire}  JOURNAL BROKEN  {problem}");
        }
        emit(printer, &text)?;
    }
    for (hire, problem) in &broken {
        printer.error(&format!("hire {hire}: journal does not verify: {problem}"));
    }
    if !broken.is_empty() {
        printer.hint("`onboard verify` checks every journal; the others are shown as they are");
        return Err(CliError::Reported(Exit::Failed));
    }
    if alarming > 0 {
        printer.info(&format!(
            "{alarming} hire{} at risk or late.",
            if alarming == 1 { " is" } else { "s are" }
        ));
        return Err(CliError::Reported(Exit::Failed));
    }
    Ok(())
}

/// `FILE:LINE: problem` for a journal that cannot be read, else the error as it is.
fn where_broken(e: &crate::engine::EngineError) -> String {
    match e {
        crate::engine::EngineError::Journal {
            path,
            source: journal::OpenError::Broken(b),
        } => format!("{path}:{}: {}", b.line, b.problem),
        e => e.to_string(),
    }
}

fn human_status(all: &[StatusEntry]) -> String {
    let mut out = String::new();
    for e in all {
        let h = &e.state;
        let starts = match h.start_at.parse::<jiff::Timestamp>() {
            Ok(t) => format!(
                "starts {}",
                readiness::local(t, h.start.split_whitespace().nth(2).unwrap_or("UTC"))
            ),
            Err(_) => "no start date".to_owned(),
        };
        let _ = writeln!(
            out,
            "{}  {}  {starts}  ({}, {} run{}, last {})",
            h.hire,
            e.readiness.label(),
            h.playbook,
            h.runs,
            if h.runs == 1 { "" } else { "s" },
            h.last_at.as_deref().unwrap_or("never")
        );
        for b in &e.blockers {
            let _ = writeln!(out, "    ! {}", b.summary);
        }
        let width = h.steps.keys().map(String::len).max().unwrap_or(0);
        for (id, s) in &h.steps {
            let mut detail = if s.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", s.detail)
            };
            if let Some(since) = &s.waiting_since {
                detail.push_str(&format!(" (since {since})"));
            }
            if let Some(drift) = &s.drift {
                detail.push_str(&format!(" ({drift})"));
            }
            // A step no record mentions yet (the plan named it) has no time or actor.
            let when = match s.at.is_empty() {
                true => s.detail.clone(),
                false => format!("{} by {}{detail}", s.at, s.actor),
            };
            let _ = writeln!(out, "    {id:<width$}  {:<11} {when}", s.status.as_str());
        }
    }
    out
}

pub fn cmd_log(args: LogArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let state = state(setup)?;
    let state = state.as_ref();
    let hire = hires(state, vec![args.hire])?.remove(0);
    let path = state.journal_name(&hire);
    let text = state
        .read(&hire)
        .map_err(|e| CliError::failed(e.to_string()))?;
    // Show what verifies, then say where it stops.
    let (records, broken) = text.checked();
    let mut out = String::new();
    for r in &records {
        if args.json {
            out.push_str(&serde_json::to_string(r).expect("record serializes"));
            out.push('\n');
        } else {
            out.push_str(&describe(r));
        }
    }
    emit(printer, &out)?;
    if let Some(b) = broken {
        return Err(CliError::failed(format!(
            "{path}:{}: {}",
            b.line, b.problem
        )));
    }
    Ok(())
}

/// A `signed_off` record's line: an acceptance, a signature or a refusal, and how it was given.
fn signed_off(e: &Event) -> String {
    let Event::SignedOff {
        step,
        role,
        by,
        confirmed,
        refused,
        evidence,
        policy,
        how,
        witness,
        ..
    } = e
    else {
        unreachable!("called with a signed_off record")
    };
    let how = match crate::steps::human::how_given(how, witness) {
        how if how.is_empty() => how,
        how => format!(" ({how})"),
    };
    let mut s = match (refused, policy) {
        (None, Some(p)) => format!(
            "{step}: {by} accepted {} version {} (sha256 {}){how}",
            p.file, p.version, p.sha256
        ),
        (None, None) => format!(
            "{step}: signed off by {by} ({role}){how}: {}",
            confirmed.join("; ")
        ),
        (Some(r), _) => format!(
            "{step}: {by} ({role}) refused \"{}\": {}{how}",
            r.item, r.reason
        ),
    };
    for (k, v) in evidence {
        let _ = write!(s, "\n{:>34}{k}: {v}", "");
    }
    s
}

/// One record for people.
fn describe(r: &Record) -> String {
    let what = match &r.event {
        Event::RunStarted {
            playbook, onboard, ..
        } => format!("run started: {playbook} (onboard {onboard})"),
        Event::StepStarted { step, intent, .. } => {
            let intent: Vec<String> = intent.iter().map(|(k, v)| format!(" {k}={v}")).collect();
            format!("{step}: started{}", intent.concat())
        }
        Event::StepDone {
            step,
            changes,
            evidence,
            ..
        } => {
            let mut s = if changes.is_empty() {
                format!("{step}: done (already so)")
            } else {
                format!("{step}: done: {}", changes.join("; "))
            };
            for (k, v) in evidence {
                let _ = write!(s, "\n{:>34}{k}: {v}", "");
            }
            s
        }
        Event::StepFailed { step, error, .. } => format!("{step}: failed: {error}"),
        Event::StepWaiting {
            step, on, reason, ..
        } => format!("{step}: waiting on the {on}: {reason}"),
        e @ Event::SignedOff { .. } => signed_off(e),
        Event::StepSkipped { step, because } => format!("{step}: skipped: {because}"),
        Event::RefusalResolved { step, note } => format!("{step}: refusal resolved: {note}"),
        Event::AccessRefused { step, reason } => {
            format!("{step}: refused a page request: {reason}")
        }
        Event::LinkSending {
            step,
            to,
            reminder: 0,
            ..
        } => format!("{step}: emailing a link to {to}"),
        Event::LinkSending {
            step, to, reminder, ..
        } => format!("{step}: emailing reminder {reminder} to {to}"),
        Event::LinkSent {
            step,
            message_id,
            note,
        } if note.is_empty() => format!("{step}: link email sent as {message_id}"),
        Event::LinkSent {
            step,
            message_id,
            note,
        } => format!("{step}: link email {message_id} {note}"),
        Event::StepUncertain { step, reason, .. } => format!("{step}: uncertain: {reason}"),
        Event::StepDrift { step, drift, .. } if drift.is_empty() => {
            format!("{step}: matches the playbook again")
        }
        Event::StepDrift { step, drift, .. } => format!("{step}: {drift}"),
        Event::RunFinished {
            done,
            already_done,
            failed,
            waiting,
            skipped,
            ..
        } => format!(
            "run finished: {done} done, {already_done} already done, {waiting} waiting, {skipped} skipped, {failed} failed"
        ),
    };
    format!("{:>4} {} {:<12} {what}\n", r.seq, r.at, r.actor)
}

pub fn cmd_verify(args: VerifyArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let state = state(setup)?;
    let state = state.as_ref();
    let hires = hires(state, args.hires)?;
    let mut broken = 0;
    let mut out = String::new();
    for (hire, read) in hires.iter().zip(state.read_many(&hires)) {
        let path = state.journal_name(hire);
        let result = read.map_err(|e| e.to_string()).and_then(|t| {
            t.verify()
                .map_err(|b| format!("{path}:{}: {}", b.line, b.problem))
        });
        match result {
            Ok(records) => {
                let _ = writeln!(out, "{hire}: ok ({} records)", records.len());
            }
            Err(problem) => {
                broken += 1;
                let _ = writeln!(out, "{hire}: BROKEN");
                printer.error(&problem);
            }
        }
    }
    emit(printer, &out)?;
    if broken > 0 {
        printer.info(&format!(
            "{broken} of {} journals do not verify.",
            hires.len()
        ));
        Err(CliError::Reported(Exit::Failed))
    } else {
        Ok(())
    }
}
