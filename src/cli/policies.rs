//! `onboard policies`: who accepted which version of the IT policies (`status`), and a
//! campaign that asks everyone behind to accept a new version (`campaign`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use super::settings::{Open, Setup};
use super::{CliError, CmdResult, Exit, Printer, emit};
use crate::engine::{self, Campaign, Mode, Reached, Settings};
use crate::policy::{self, Published, report};

/// IT policies people acknowledge: who is current, who is behind, and campaigns.
#[derive(Debug, Args)]
pub struct PoliciesArgs {
    #[command(subcommand)]
    command: PoliciesCommand,
}

#[derive(Debug, Subcommand)]
enum PoliciesCommand {
    Status(StatusArgs),
    Campaign(CampaignArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// A line per person, for the terminal.
    Text,
    /// The documented `onboard.policies/1` structure.
    Json,
    /// One row per person and policy, for spreadsheets.
    Csv,
    /// One self-contained page for auditors, printable.
    Html,
}

/// Per person, the version of each policy they accepted and when; who is behind and why
/// (never accepted, an older version, longer ago than `policies.max_age_days`); each
/// acceptance's journal record; each journal's check.
///
/// Exit 1 if any journal does not verify (it is shown, flagged).
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this policy file (its name, e.g. it-policies.md, or a path to it).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Write to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Acceptances older than this many days are behind [default: policies.max_age_days, 365].
    #[arg(long, value_name = "DAYS")]
    max_age: Option<u32>,
}

/// Ask everyone behind on a policy to accept a new version: one message each (what changed,
/// how to accept, the text attached), exactly once per person and version; reminders at
/// `policies.remind_days` until they accept, at most `policies.reminders`. Run it again to send
/// the reminders that are due; it resumes where an interrupted run stopped.
///
/// Exit 1 if a message could not be sent or may not have gone out (listed).
#[derive(Debug, Args)]
pub struct CampaignArgs {
    /// The policy text (Markdown), e.g. templates/it-policies.md. Published under --version the
    /// first time; the same version with other text is refused.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The version people cite, e.g. 2026.2.
    #[arg(long)]
    version: String,
    /// The sender [default: policies.from; env: ONBOARD_POLICIES_FROM].
    #[arg(long, value_name = "ADDRESS")]
    from: Option<String>,
    /// Show who would get a message, and what changed; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Send again a message an interrupted run may or may not have sent (same Message-ID).
    #[arg(long)]
    resend_uncertain: bool,
    /// Acceptances older than this many days are behind [default: policies.max_age_days].
    #[arg(long, value_name = "DAYS")]
    max_age: Option<u32>,
    /// Who runs it (default: the OS user).
    #[arg(long = "as", value_name = "NAME")]
    actor: Option<String>,
}

impl PoliciesArgs {
    /// Whether the command talks to the mail server (a campaign).
    pub fn sends(&self) -> bool {
        matches!(&self.command, PoliciesCommand::Campaign(_))
    }
}

pub fn cmd_policies(args: PoliciesArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    match args.command {
        PoliciesCommand::Status(args) => status(args, setup, printer),
        PoliciesCommand::Campaign(args) => campaign(args, setup, printer),
    }
}

fn status(args: StatusArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let store = setup.store(Open::AsIs)?;
    let store = store.as_ref();
    let published = store
        .policies()
        .map_err(|e| CliError::failed(format!("cannot read the published policies: {e}")))?;
    let only = args.policy.as_ref().map(|p| file_name(p));
    if let Some(name) = &only
        && !published.iter().any(|p| &p.file == name)
    {
        return Err(
            CliError::input(format!("no version of {name} is published in {}", store.describe()))
                .hint("a version is published when a run sends or asks to accept it, or by `onboard policies campaign`"),
        );
    }
    let hires = super::journal::hires(store, Vec::new())?;
    let journals: Vec<report::Journal> = hires
        .into_iter()
        .map(|hire| {
            let text = store
                .read(&hire)
                .unwrap_or_else(|e| crate::journal::JournalText {
                    text: String::new(),
                    unreadable: Some(crate::journal::Broken {
                        line: 1,
                        problem: format!("cannot read it: {e}"),
                    }),
                });
            report::Journal {
                name: store.journal_name(&hire),
                hire,
                text,
            }
        })
        .collect();
    let max_age = args.max_age.unwrap_or(setup.policies.max_age_days);
    let status = report::build(
        &journals,
        &published,
        only.as_deref(),
        max_age,
        setup.clock.now(),
    );
    let format = if args.json { Format::Json } else { args.format };
    let text = match format {
        Format::Text => report::text(&status),
        Format::Json => serde_json::to_string_pretty(&status).expect("status serializes") + "\n",
        Format::Csv => report::csv(&status),
        Format::Html => report::html(&status).context("cannot render the page")?,
    };
    if status.policies.is_empty() {
        printer.info("No policy version is published yet: a run publishes the versions its playbook sends or asks to accept.");
    }
    super::report::deliver(printer, args.output.as_deref(), &text, &status.broken())
}

/// The name a policy file is known by: its file name.
fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn campaign(args: CampaignArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    policy::check_version(&args.version).map_err(CliError::input)?;
    let from = sender(&args, setup)?;
    let (mode, open) = if args.dry_run {
        (Mode::DryRun, Open::AsIs)
    } else {
        (Mode::Apply, Open::ForRun)
    };
    let store = setup.store(open)?;
    let store = store.as_ref();
    let (policy, previous) = publish(&args, store, setup.clock.now())?;
    let previous = previous.as_ref();
    let settings = Settings {
        mode,
        actor: setup.actor(args.actor.clone()),
        clock: setup.clock,
        reapply: Vec::new(),
        reconcile: false,
        resend_uncertain: args.resend_uncertain,
        failpoint: setup.failpoint.clone(),
    };
    let local = setup.local(open)?;
    let (_, mut mailer) = super::run::targets(&local, mode, setup.servers())?;
    let links = setup.links().ok();
    let c = Campaign {
        policy: &policy,
        previous,
        from: &from,
        max_age_days: args.max_age.unwrap_or(setup.policies.max_age_days),
        remind_days: setup.policies.remind_days,
        reminders: setup.policies.reminders,
        links: links.as_ref(),
    };
    if let Some(before) = previous {
        let changes = policy::diff_summary(&before.text, &policy.text);
        printer.info(&format!(
            "{} {} (sha256 {}) after {}: {}",
            policy.file,
            policy.version,
            &policy.sha256[..12],
            before.version,
            if changes.is_empty() {
                "the same text".to_owned()
            } else {
                changes.join("; ")
            }
        ));
    }
    let rows = engine::campaign(store, mailer.as_mut(), &c, &settings)?;
    emit(printer, &campaign_lines(&rows, args.dry_run))?;
    let trouble = rows
        .iter()
        .filter(|r| matches!(r.reached, Reached::Failed(_) | Reached::Uncertain(_)))
        .count();
    if rows
        .iter()
        .any(|r| matches!(r.reached, Reached::Uncertain(_)))
    {
        printer.hint("look for the Message-ID in the recipient's mailbox: if it is there, record it with `onboard mark-sent HIRE STEP`; else run the campaign again with --resend-uncertain");
    }
    if trouble > 0 {
        Err(CliError::Reported(Exit::Failed))
    } else {
        Ok(())
    }
}

/// The campaign's sender: `--from`, else `policies.from`.
fn sender(args: &CampaignArgs, setup: &Setup) -> CmdResult<String> {
    let from = args
        .from
        .clone()
        .or_else(|| setup.policies.from.clone())
        .ok_or_else(|| {
            CliError::input("who sends the campaign? no sender is set").hint(
                "pass --from 'IT Service Desk <it@example.org>', or set policies.from in the config file",
            )
        })?;
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(
            CliError::input(format!("--from: `{from}` is not an email address"))
                .hint("write name@example.org, or Name <name@example.org>"),
        );
    }
    Ok(from)
}

/// Reads the text and publishes it under the version (not in a dry run); the same version with
/// other text is refused. Returns it and the version of the same file before it, if any.
fn publish(
    args: &CampaignArgs,
    store: &dyn crate::store::Store,
    now: jiff::Timestamp,
) -> CmdResult<(Published, Option<Published>)> {
    let bytes = crate::files::read_regular(&args.policy, crate::files::TEMPLATE_LIMIT)
        .map_err(|e| CliError::input(format!("{}: {e}", args.policy.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::input(format!("{} is not UTF-8 text", args.policy.display())))?;
    let name = file_name(&args.policy);
    let wanted = Published::new(&name, &args.version, &text, &now.to_string());
    let published = store
        .policies()
        .map_err(|e| CliError::failed(format!("cannot read the published policies: {e}")))?;
    let kept = published
        .iter()
        .find(|p| p.file == name && p.version == args.version);
    let policy = match kept {
        Some(kept) => kept.clone(),
        None if args.dry_run => wanted.clone(),
        None => store
            .publish_policy(&wanted)
            .map_err(|e| CliError::failed(format!("cannot publish {name}: {e}")))?,
    };
    if let Err(c) = policy::compare(&policy, &wanted.sha256, &published) {
        return Err(
            CliError::input(format!("{}: {}", args.policy.display(), c.message)).hint(c.hint),
        );
    }
    let previous = published
        .into_iter()
        .rfind(|p| p.file == name && p.version != args.version);
    Ok((policy, previous))
}

/// A line per person who was behind, then the counts.
fn campaign_lines(rows: &[engine::Row], dry_run: bool) -> String {
    let mut out = String::new();
    let (mut sent, mut reminded, mut before, mut current, mut trouble) = (0, 0, 0, 0, 0);
    let width = rows.iter().map(|r| r.hire.len()).max().unwrap_or(0);
    for r in rows {
        let what = match &r.reached {
            Reached::Current => {
                current += 1;
                continue;
            }
            Reached::Expired(why) => {
                before += 1;
                format!("not sent: {why}; a campaign for a new version reaches them")
            }
            Reached::Sent => {
                sent += 1;
                format!("sent to {}", r.email)
            }
            Reached::Reminded(n) => {
                reminded += 1;
                format!("reminder {n} sent to {}", r.email)
            }
            Reached::Asked(step) => {
                before += 1;
                format!("not sent: their checklist's step {step} asks them already")
            }
            Reached::AlreadySent => {
                before += 1;
                "sent before; no reminder due".to_owned()
            }
            Reached::WouldSend(0) => {
                sent += 1;
                format!("would send to {}", r.email)
            }
            Reached::WouldSend(n) => {
                reminded += 1;
                format!("would send reminder {n} to {}", r.email)
            }
            Reached::Uncertain(id) => {
                trouble += 1;
                format!("UNCERTAIN: {id} may or may not have gone out (the run was interrupted)")
            }
            Reached::Failed(why) => {
                trouble += 1;
                format!("FAILED: {why}")
            }
        };
        out.push_str(&format!("  {:width$}  {}: {what}\n", r.hire, r.reason));
    }
    let verb = if dry_run { "would be sent" } else { "sent" };
    out.push_str(&format!(
        "{} {}: {current} current; {} behind: {sent} messages {verb}, {reminded} reminders {verb}, {before} reached before, {trouble} with problems\n",
        rows.len(),
        if rows.len() == 1 { "person" } else { "people" },
        rows.len() - current,
    ));
    out
}
