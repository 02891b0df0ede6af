//! `onboard plan` (and `onboard PLAYBOOK --dry-run`): what a run would do, changing nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::run::{planned, walk};
use super::settings::{Open, Setup};
use super::{CmdResult, InputArgs, Printer, emit, load_playbook};
use crate::diag::SourceMap;
use crate::engine::{Mode, Outcome, Progress, Settings};
use crate::plan::{NowState, Params, Plan, PlannedStep};
use crate::secret::Secret;
use crate::steps::Operator;

/// A dry run shows nothing while it works.
struct Quiet;

impl Progress for Quiet {
    fn started(&mut self, _: &PlannedStep) {}
    fn finished(&mut self, _: &PlannedStep, _: &Outcome) {}
}

impl Operator for Quiet {
    fn can_show_secret(&self) -> bool {
        true
    }
    fn show_password(&mut self, _: &str, _: &str, _: &Secret) -> std::io::Result<()> {
        Err(std::io::Error::other("a dry run shows no password"))
    }
}

/// Show the plan: every step in dependency order with its rendered parameters and what it would do.
///
/// Nothing is changed anywhere. With --preview, the rendered emails are written to a folder
/// so HR can read exactly what the hire will receive.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The playbook.
    pub playbook: PathBuf,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Print the plan as JSON (format `onboard.plan/1`, see PLAYBOOK.md).
    #[arg(long)]
    pub json: bool,

    /// Write each email's rendered text and HTML to this folder.
    #[arg(long, value_name = "DIR")]
    pub preview: Option<PathBuf>,
}

pub fn cmd_plan(args: PlanArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let mut sources = SourceMap::default();
    let (pb, mut plan) = load_playbook(
        args.playbook.clone(),
        &args.input,
        setup,
        &mut sources,
        printer,
    )?;
    if pb.hire.is_some() {
        // The same walk as a run, stopping before apply: what the journal and targets say now.
        let store = setup.store(Open::AsIs)?;
        let local = setup.local(Open::AsIs)?;
        let settings = Settings {
            mode: Mode::DryRun,
            actor: setup.actor(None),
            clock: setup.clock,
            reapply: Vec::new(),
            reconcile: false,
            resend_uncertain: false,
            failpoint: None,
        };
        let servers = setup.servers();
        let report = walk(
            &pb,
            store.as_ref(),
            &local,
            servers,
            &settings,
            None,
            &mut Quiet,
        )
        .and_then(|result| planned(result, &sources, printer))?;
        plan = report.plan;
        for (step, s) in plan.steps.iter_mut().zip(&report.steps) {
            step.now = Some(s.outcome.now());
        }
    }
    if let Some(dir) = &args.output.preview {
        write_previews(&plan, dir).context("cannot write previews")?;
        printer.info(&format!("Email previews written to {}", dir.display()));
    }
    if args.output.json {
        let text = serde_json::to_string_pretty(&plan).expect("plan serializes");
        emit(printer, &(text + "\n"))?;
    } else {
        emit(printer, &human(&plan, &args.playbook))?;
    }
    printer.info("This is a plan: nothing was changed.");
    Ok(())
}

fn write_previews(plan: &Plan, dir: &Path) -> std::io::Result<()> {
    fs_err::create_dir_all(dir)?;
    for step in &plan.steps {
        if let Params::Email(e) = &step.params {
            fs_err::write(dir.join(format!("{}.txt", step.id)), &e.text)?;
            fs_err::write(dir.join(format!("{}.html", step.id)), &e.html)?;
            // The whole message as it would be sent, for any mail client to open.
            let id = format!("<preview.{}.{}@onboard.invalid>", step.id, plan.hire);
            let built = crate::mail::email(e, &id, std::time::SystemTime::now())
                .map_err(std::io::Error::other)?;
            fs_err::write(dir.join(format!("{}.eml", step.id)), &built.bytes)?;
        }
    }
    Ok(())
}

/// The plan for people.
pub fn human(plan: &Plan, path: &Path) -> String {
    let mut out = String::new();
    let hire = if plan.sample_hire {
        "a sample hire (the playbook names none)".to_owned()
    } else {
        format!("hire {}", plan.hire)
    };
    let _ = writeln!(
        out,
        "Plan for {hire}: {} ({}), {} steps\n",
        plan.playbook,
        path.display(),
        plan.steps.len()
    );
    for (i, step) in plan.steps.iter().enumerate() {
        let needs = if step.needs.is_empty() {
            String::new()
        } else {
            format!(", needs {}", step.needs.join(", "))
        };
        let _ = writeln!(
            out,
            "{}. {} [{}{needs}]: {}",
            i + 1,
            step.title,
            step.id,
            step.kind
        );
        let _ = writeln!(out, "   will: {}", step.action);
        if let Some(now) = &step.now {
            let detail = match (now.state, &now.detail) {
                (NowState::WouldDo, _) => format!("would {}", now.changes.join("; ")),
                (NowState::AlreadyDone, None) => "already done".to_owned(),
                (NowState::AlreadyDone, Some(d)) => format!("already done ({d})"),
                (state, Some(d)) => format!("{}: {d}", state.as_str()),
                (state, None) => state.as_str().to_owned(),
            };
            let _ = writeln!(out, "   now:  {detail}");
        }
        params(&mut out, &step.params);
        if !step.known_after_run.is_empty() {
            let _ = writeln!(
                out,
                "   known after it runs: {}",
                step.known_after_run.join(", ")
            );
        }
        out.push('\n');
    }
    out
}

fn params(out: &mut String, params: &Params) {
    for (name, value) in params.fields() {
        let _ = writeln!(out, "     {name}: {value}");
    }
}
