//! `onboard PLAYBOOK`: the main job. Runs every step, verifies it, journals it; a re-run
//! resumes where the last one stopped.

use std::path::PathBuf;

use clap::Args;

use super::progress::{StepProgress, outcome_line};
use super::settings::Servers;
use super::{CmdResult, Failure, InputArgs, Printer, emit, load_playbook, report, settings};
use crate::backend::directory::ldap::{LdapConfig, LdapDirectory};
use crate::backend::directory::ldif::LdifDirectory;
use crate::backend::mail::outbox::Outbox;
use crate::backend::mail::smtp::{SmtpConfig, SmtpDryRun, SmtpMailer};
use crate::backend::{directory::Directory, mail::Mailer};
use crate::diag::SourceMap;
use crate::engine::{self, EngineError, Mode, Outcome, Report, Settings, Targets};
use crate::state::StateDir;
use crate::store::Store;

/// The embedded directory starts as the example organisation of the shipped playbooks.
pub const EXAMPLE_DIRECTORY: &str = include_str!("../backend/directory/example-directory.ldif");

/// Options of a run.
#[derive(Debug, Args, Clone)]
pub struct RunOptions {
    /// Record actions as done by NAME (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    pub actor: Option<String>,

    /// Apply this step again although it is done (e.g. after its parameters changed). Repeatable.
    #[arg(long, value_name = "STEP")]
    pub reapply: Vec<String>,

    /// Correct drift: where a done account's attributes no longer match the playbook, change
    /// them back (the password is not touched).
    #[arg(long)]
    pub reconcile: bool,

    /// Send again an email whose sending was interrupted and cannot be checked (same
    /// Message-ID). Without it such a step is reported as uncertain and nothing is sent.
    #[arg(long)]
    pub resend_uncertain: bool,

    /// Never ask at the terminal for sign-offs; waiting steps wait (for `onboard sign-off`).
    #[arg(long)]
    pub no_prompt: bool,
}

/// Where state lives.
#[derive(Debug, Args, Clone)]
pub struct StateArgs {
    /// The state directory: journals, the embedded directory and outbox
    /// [env: ONBOARD_STATE_DIR; default: $XDG_STATE_HOME/onboard or ~/.local/state/onboard].
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,
}

/// The directory and mail targets a run uses.
pub type TargetPair = (Box<dyn Directory>, Box<dyn Mailer>);

/// The targets: the configured servers, else the embedded ones in the state directory.
pub fn targets(
    state: &StateDir,
    mode: Mode,
    servers: &Servers,
    printer: &Printer,
) -> Result<TargetPair, Failure> {
    Ok((
        directory(state, mode, servers.ldap.clone(), printer)?,
        mailer(state, mode, servers.smtp.clone(), printer)?,
    ))
}

fn directory(
    state: &StateDir,
    mode: Mode,
    config: Option<LdapConfig>,
    printer: &Printer,
) -> Result<Box<dyn Directory>, Failure> {
    if let Some(config) = config {
        let url = config.url.clone();
        let directory = LdapDirectory::connect(config, mode == Mode::DryRun).map_err(|e| {
            printer.error(&format!("directory {url}: {e}"));
            Failure::Failed
        })?;
        return Ok(Box::new(directory));
    }
    let ldif = state.directory_ldif();
    match mode {
        Mode::DryRun => Ok(Box::new(LdifDirectory::read_only(&ldif, EXAMPLE_DIRECTORY))),
        Mode::Apply => match LdifDirectory::open(&ldif, EXAMPLE_DIRECTORY) {
            Ok(d) => Ok(Box::new(d)),
            Err(e) => {
                printer.error(&format!("cannot open the embedded directory: {e}"));
                Err(Failure::Failed)
            }
        },
    }
}

fn mailer(
    state: &StateDir,
    mode: Mode,
    config: Option<SmtpConfig>,
    printer: &Printer,
) -> Result<Box<dyn Mailer>, Failure> {
    if let Some(config) = config {
        if mode == Mode::DryRun {
            return Ok(Box::new(SmtpDryRun { url: config.url }));
        }
        let url = config.url.clone();
        return match SmtpMailer::connect(config) {
            Ok(m) => Ok(Box::new(m)),
            Err(e) => {
                printer.error(&format!("mail server {url}: {e}"));
                Err(Failure::Failed)
            }
        };
    }
    match mode {
        Mode::DryRun => Ok(Box::new(Outbox::read_only(&state.outbox()))),
        Mode::Apply => match Outbox::open(&state.outbox()) {
            Ok(o) => Ok(Box::new(o)),
            Err(e) => {
                printer.error(&format!("cannot open the outbox: {e}"));
                Err(Failure::Failed)
            }
        },
    }
}

pub fn cmd_run(
    playbook: PathBuf,
    input: &InputArgs,
    options: RunOptions,
    state_args: StateArgs,
    printer: &Printer,
) -> CmdResult {
    let mut sources = SourceMap::default();
    let (pb, plan) = load_playbook(playbook, input, &mut sources, printer)?;
    if pb.hire.is_none() {
        printer.error(&format!("{} names no hire", pb.checklist.display()));
        printer.hint("give the hire in the playbook's `hire:`, or with --hire FILE");
        return Err(Failure::Input);
    }
    // Every setting is checked before the state directory is touched.
    let servers = settings::servers(printer)?;
    let dir = settings::state_dir(state_args.state_dir, printer)?;
    let state = StateDir::open(&dir).map_err(|e| {
        printer.error(&format!(
            "cannot use the state directory {}: {e}",
            dir.display()
        ));
        Failure::Failed
    })?;
    let settings = Settings {
        mode: Mode::Apply,
        actor: settings::actor(options.actor.clone()),
        clock: settings::clock(printer)?,
        reapply: options.reapply,
        reconcile: options.reconcile,
        resend_uncertain: options.resend_uncertain,
        failpoint: settings::failpoint(),
    };
    let (mut directory, mut mailer) = targets(&state, Mode::Apply, &servers, printer)?;
    let mut progress =
        StepProgress::new(plan.steps.len(), !options.no_prompt, options.actor.clone());
    let result = engine::run(
        &pb,
        &state,
        Targets {
            directory: directory.as_mut(),
            mailer: mailer.as_mut(),
        },
        &settings,
        &mut progress,
    );
    let report = engine_result(result, &sources, printer)?;
    if report.torn_bytes > 0 {
        printer.info(&format!(
            "note: the journal's last record was torn by an interrupted run; {} bytes were cut off",
            report.torn_bytes
        ));
    }
    emit(printer, &summary(&report, &pb.name, &state))?;
    let counts = report.counts();
    if counts.uncertain > 0 {
        printer.hint("check the recipient's mailbox; then re-run with --resend-uncertain, or record it with `onboard mark-sent HIRE STEP`");
    }
    if counts.failed > 0 || counts.uncertain > 0 {
        Err(Failure::Failed)
    } else {
        Ok(())
    }
}

/// Maps engine errors to messages and exit codes.
pub fn engine_result(
    result: Result<Report, EngineError>,
    sources: &SourceMap,
    printer: &Printer,
) -> Result<Report, Failure> {
    result.map_err(|e| match e {
        EngineError::Plan(diags) => {
            report(diags.sorted(), sources, printer);
            Failure::Input
        }
        EngineError::NoHire => {
            printer.error("the playbook names no hire");
            Failure::Input
        }
        EngineError::Locked { .. } => {
            printer.error(&e.to_string());
            printer
                .hint("wait for it to finish; a run that was killed releases its lock by itself");
            Failure::Failed
        }
        EngineError::Journal { .. } => {
            printer.error(&e.to_string());
            printer.hint("nothing was changed; see `onboard verify` and `onboard log`");
            Failure::Failed
        }
        EngineError::Io(_) | EngineError::Refused(_) => {
            printer.error(&e.to_string());
            Failure::Failed
        }
    })
}

/// Maps errors of engine operations that do not plan (sign-off, mark-sent).
pub fn engine_result_simple<T>(
    result: Result<T, EngineError>,
    printer: &Printer,
) -> Result<T, Failure> {
    result.map_err(|e| {
        printer.error(&e.to_string());
        match e {
            EngineError::Refused(_) => Failure::Input,
            _ => Failure::Failed,
        }
    })
}

/// The end-of-run summary (stdout: it is the result).
fn summary(report: &Report, playbook: &str, state: &dyn Store) -> String {
    let c = report.counts();
    let mut out = format!(
        "Hire {} ({playbook}): {} done now, {} already done, {} waiting, {} skipped, {} failed{}\n",
        report.hire,
        c.applied,
        c.already_done,
        c.waiting,
        c.skipped,
        c.failed,
        if c.uncertain > 0 {
            format!(", {} uncertain", c.uncertain)
        } else {
            String::new()
        }
    );
    if c.applied == 0 && c.failed == 0 && c.waiting == 0 && c.skipped == 0 {
        out.push_str("Nothing to change: every step was already done.\n");
    }
    for s in &report.steps {
        match &s.outcome {
            Outcome::Waiting { .. }
            | Outcome::Failed { .. }
            | Outcome::Skipped(_)
            | Outcome::Uncertain(_) => {
                out.push_str(&format!("  {}\n", outcome_line(&s.id, &s.outcome)));
            }
            _ => {}
        }
    }
    out.push_str(&format!("Journal: {}\n", state.journal_name(&report.hire)));
    out
}
