//! `onboard PLAYBOOK`: the main job. Runs every step, verifies it, journals it; a re-run
//! resumes where the last one stopped.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::progress::{StepProgress, outcome_line};
use super::settings::Servers;
use super::settings::{Open, Setup};
use super::{CliError, CmdResult, Exit, InputArgs, Printer, emit, load_playbook, report};
use crate::backend::directory::ldap::{LdapConfig, LdapDirectory};
use crate::backend::directory::ldif::LdifDirectory;
use crate::backend::mail::outbox::Outbox;
use crate::backend::mail::smtp::{SmtpConfig, SmtpDryRun, SmtpMailer};
use crate::backend::{directory::Directory, mail::Mailer};
use crate::diag::SourceMap;
use crate::engine::Progress;
use crate::engine::{self, EngineError, Mode, Outcome, Report, Settings, Targets};
use crate::load::Playbook;
use crate::state::StateDir;
use crate::store::Store;

/// The embedded directory starts as the example organisation of the shipped playbooks.
pub use crate::backend::directory::ldif::EXAMPLE_DIRECTORY;

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

/// The SCIM applications' clients (a CA file that cannot be used is an input error).
pub fn scim_apps(servers: &Servers) -> CmdResult<crate::backend::scim::ScimApps> {
    crate::backend::scim::ScimApps::connect(&servers.scim)
        .map_err(|e| CliError::input(format!("SCIM: {e}")))
}

/// The targets: the configured servers, else the embedded ones in the state directory.
pub fn targets(state: &StateDir, mode: Mode, servers: &Servers) -> CmdResult<TargetPair> {
    Ok((
        directory(state, mode, servers.ldap.clone())?,
        mailer(state, mode, servers.smtp.clone())?,
    ))
}

fn directory(
    state: &StateDir,
    mode: Mode,
    config: Option<LdapConfig>,
) -> CmdResult<Box<dyn Directory>> {
    if let Some(config) = config {
        let url = config.url.clone();
        let directory = LdapDirectory::connect(config, mode == Mode::DryRun)
            .with_context(|| format!("directory {url}"))?;
        return Ok(Box::new(directory));
    }
    let ldif = state.directory_ldif();
    match mode {
        Mode::DryRun => Ok(Box::new(LdifDirectory::read_only(&ldif, EXAMPLE_DIRECTORY))),
        Mode::Apply => Ok(Box::new(
            LdifDirectory::open(&ldif, EXAMPLE_DIRECTORY)
                .context("cannot open the embedded directory")?,
        )),
    }
}

fn mailer(state: &StateDir, mode: Mode, config: Option<SmtpConfig>) -> CmdResult<Box<dyn Mailer>> {
    if let Some(config) = config {
        if mode == Mode::DryRun {
            return Ok(Box::new(SmtpDryRun { url: config.url }));
        }
        let url = config.url.clone();
        let mailer = SmtpMailer::connect(config).with_context(|| format!("mail server {url}"))?;
        return Ok(Box::new(mailer));
    }
    match mode {
        Mode::DryRun => Ok(Box::new(Outbox::read_only(&state.outbox()))),
        Mode::Apply => Ok(Box::new(
            Outbox::open(&state.outbox()).context("cannot open the outbox")?,
        )),
    }
}

pub fn cmd_run(
    playbook: PathBuf,
    input: &InputArgs,
    options: RunOptions,
    setup: &Setup,
    printer: &Printer,
) -> CmdResult {
    let mut sources = SourceMap::default();
    let (pb, plan) = load_playbook(playbook, input, setup, &mut sources, printer)?;
    if pb.hire.is_none() {
        return Err(
            CliError::input(format!("{} names no hire", pb.checklist.display()))
                .hint("give the hire in the playbook's `hire:`, or with --hire FILE"),
        );
    }
    check_reapply(&pb, &options.reapply)?;
    // Every setting is checked before the state directory is touched.
    let servers = setup.servers();
    let store = setup.store(Open::ForRun)?;
    let local = setup.local(Open::ForRun)?;
    let settings = Settings {
        mode: Mode::Apply,
        actor: setup.actor(options.actor.clone()),
        clock: setup.clock,
        reapply: options.reapply,
        reconcile: options.reconcile,
        resend_uncertain: options.resend_uncertain,
        failpoint: setup.failpoint.clone(),
    };
    let mut progress =
        StepProgress::new(plan.steps.len(), !options.no_prompt, options.actor.clone());
    let links = setup.links()?;
    let report = walk(
        &pb,
        store.as_ref(),
        &local,
        servers,
        &settings,
        Some(&links),
        &mut progress,
    )
    .and_then(|result| planned(result, &sources, printer))?;
    if report.torn_bytes > 0 {
        printer.info(&format!(
            "note: the journal's last record was torn by an interrupted run; {} bytes were cut off",
            report.torn_bytes
        ));
    }
    emit(printer, &summary(&report, &pb.name, store.as_ref()))?;
    let counts = report.counts();
    if counts.uncertain > 0 {
        printer.hint("check the recipient's mailbox; then re-run with --resend-uncertain, or record it with `onboard mark-sent HIRE STEP`");
    }
    if counts.failed > 0 || counts.uncertain > 0 {
        Err(CliError::Reported(Exit::Failed))
    } else {
        Ok(())
    }
}

/// `--reapply` names steps of the playbook: a typo would otherwise re-apply nothing, and say
/// "Nothing to change".
pub fn check_reapply(pb: &Playbook, names: &[String]) -> CmdResult {
    let ids: Vec<&str> = pb.steps.iter().map(|s| s.id.value.as_str()).collect();
    for name in names {
        if !ids.contains(&name.as_str()) {
            let mut e = CliError::input(format!("--reapply {name}: the playbook has no such step"));
            e = match crate::diag::suggest(name, ids.iter().copied()) {
                Some(close) => e.hint(format!("did you mean `{close}`?")),
                None => e.hint(format!("its steps are {}", ids.join(", "))),
            };
            return Err(e);
        }
    }
    Ok(())
}

/// Opens the targets for `settings.mode` and walks the playbook (a run, or a dry run).
pub fn walk(
    pb: &Playbook,
    store: &dyn Store,
    state: &StateDir,
    servers: &Servers,
    settings: &Settings,
    links: Option<&crate::web::Links>,
    progress: &mut dyn Progress,
) -> CmdResult<Result<Report, EngineError>> {
    let (mut directory, mut mailer) = targets(state, settings.mode, servers)?;
    let scim = scim_apps(servers)?;
    Ok(engine::run(
        pb,
        store,
        Targets {
            directory: directory.as_mut(),
            mailer: mailer.as_mut(),
            links,
            scim: &scim,
        },
        settings,
        progress,
    ))
}

/// A run's result: a plan that no longer renders is shown located, like a playbook's errors.
pub fn planned(
    result: Result<Report, EngineError>,
    sources: &SourceMap,
    printer: &Printer,
) -> CmdResult<Report> {
    match result {
        Err(EngineError::Plan(diags)) => {
            report(diags.sorted(), sources, printer);
            Err(CliError::Reported(Exit::Input))
        }
        other => Ok(other?),
    }
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
    let journal = state.journal_name(&report.hire);
    out.push_str(&format!("Journal: {}\n", crate::diag::visible(&journal)));
    out
}
