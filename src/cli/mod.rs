//! The command line: arguments, one file per subcommand, exit codes, and all output.
//!
//! Exit codes: 0 success (steps waiting on a person are listed, not an error); 1 a step failed
//! or the run could not finish; 2 invalid input (arguments, playbook, hire data).

mod check;
pub(crate) mod cohort;
mod completions;
mod config;
mod config_file;
mod error;
mod journal;
mod mark_sent;
mod output;
mod plan;
mod policies;
mod progress;
mod report;
mod resolve;
mod run;
mod schema;
mod serve;
mod settings;
mod sign_off;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::diag::{Diagnostic, SourceMap};
use crate::engine::Mode;
use crate::load::Playbook;
use crate::plan::{Outputs, Plan, load_and_plan};
pub use output::Printer;
use settings::{Flags, Setup, Talks};

/// Make a new hire's first day reliable: run their IT onboarding checklist.
///
/// `onboard PLAYBOOK` runs every step of the checklist (directory account, groups, device
/// hand-off, cleaning sign-off, welcome email), verifies each, and records it in the hire's
/// journal; a re-run resumes where it stopped. `--dry-run` shows what would change instead.
#[derive(Debug, Parser)]
#[command(
    name = "onboard",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_value_name = "COMMAND",
    after_help = "Exit codes: 0 done (steps waiting on a person are listed), 1 a step failed,\n\
                  2 invalid input (nothing was changed).\n\
                  Playbook format: see PLAYBOOK.md, or `onboard schema` for a JSON Schema."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunArgs,

    #[command(flatten)]
    state: run::StateArgs,

    /// The config file [env: ONBOARD_CONFIG; default: $XDG_CONFIG_HOME/onboard/config.toml,
    /// else /etc/onboard/config.toml].
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// Never use colour (also: the NO_COLOR environment variable).
    #[arg(long, global = true)]
    no_color: bool,
}

/// The main job: run a playbook.
#[derive(Debug, Args)]
struct RunArgs {
    /// The playbook: a self-contained one, a checklist, or a hire file naming a checklist.
    playbook: Option<PathBuf>,

    #[command(flatten)]
    input: InputArgs,

    /// Plan only: show what would change, change nothing (same as `onboard plan`).
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    plan_output: plan::OutputArgs,

    #[command(flatten)]
    options: run::RunOptions,

    /// Onboard a cohort: HR's export as CSV (or a YAML/JSON list of hires), one hire per row.
    #[arg(long, value_name = "FILE")]
    hires: Option<PathBuf>,

    /// With --hires: only these hire ids. Repeatable.
    #[arg(long, value_name = "ID", requires = "hires")]
    only: Vec<String>,

    /// With --hires: leave out these hire ids. Repeatable.
    #[arg(long, value_name = "ID", requires = "hires")]
    exclude: Vec<String>,

    /// With --hires: how many hires to work on at once.
    #[arg(long, short, value_name = "N", default_value_t = 4, requires = "hires")]
    jobs: usize,
}

/// Where the hire comes from.
#[derive(Debug, Args, Clone)]
struct InputArgs {
    /// A hire file whose `hire:` (and `vars:`) replace the playbook's.
    #[arg(long, value_name = "FILE")]
    hire: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    Check(check::CheckArgs),
    Plan(plan::PlanArgs),
    Schema(schema::SchemaArgs),
    Status(journal::StatusArgs),
    Log(journal::LogArgs),
    Verify(journal::VerifyArgs),
    SignOff(sign_off::SignOffArgs),
    Report(report::ReportArgs),
    MarkSent(mark_sent::MarkSentArgs),
    Resolve(resolve::ResolveArgs),
    Config(config::ConfigArgs),
    Store(config::StoreArgs),
    Serve(serve::ServeArgs),
    Link(serve::LinkArgs),
    Policies(policies::PoliciesArgs),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
}

pub use error::{CliError, CmdResult, Exit};

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    let printer =
        Printer::new(cli.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()));
    match run(cli, &printer) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.print(&printer);
            ExitCode::from(e.exit() as u8)
        }
    }
}

fn run(cli: Cli, printer: &Printer) -> CmdResult {
    // Settings are resolved once, before dispatch; commands that only read files need none.
    let talks = match &cli.command {
        Some(Command::Schema(_) | Command::Completions(_) | Command::Man(_)) => None,
        Some(Command::Plan(_) | Command::Config(_) | Command::Serve(_)) | None => {
            Some(Talks::ToServers)
        }
        Some(Command::Policies(p)) if p.sends() => Some(Talks::ToServers),
        Some(_) => Some(Talks::ToStateOnly),
    };
    let setup = match talks {
        Some(talks) => Some(Setup::resolve(
            Flags {
                state_dir: cli.state.state_dir,
                config: cli.config,
            },
            talks,
        )?),
        None => None,
    };
    let setup = || {
        setup
            .as_ref()
            .expect("resolved for commands that use settings")
    };
    match cli.command {
        Some(Command::Check(args)) => check::cmd_check(args, setup(), printer),
        Some(Command::Schema(args)) => schema::cmd_schema(args, printer),
        Some(Command::Completions(args)) => completions::cmd_completions(args, printer),
        Some(Command::Man(args)) => completions::cmd_man(args, printer),
        Some(Command::Plan(args)) => plan::cmd_plan(args, setup(), printer),
        Some(Command::Status(args)) => journal::cmd_status(args, setup(), printer),
        Some(Command::Log(args)) => journal::cmd_log(args, setup(), printer),
        Some(Command::Verify(args)) => journal::cmd_verify(args, setup(), printer),
        Some(Command::Report(args)) => report::cmd_report(args, setup(), printer),
        Some(Command::SignOff(args)) => sign_off::cmd_sign_off(args, setup(), printer),
        Some(Command::MarkSent(args)) => mark_sent::cmd_mark_sent(args, setup(), printer),
        Some(Command::Resolve(args)) => resolve::cmd_resolve(args, setup(), printer),
        Some(Command::Config(args)) => config::cmd_config(args, setup(), printer),
        Some(Command::Store(args)) => config::cmd_store(args, setup(), printer),
        Some(Command::Serve(args)) => serve::cmd_serve(args, setup(), printer),
        Some(Command::Link(args)) => serve::cmd_link(args, setup(), printer),
        Some(Command::Policies(args)) => policies::cmd_policies(args, setup(), printer),
        None => run_main(cli.run, setup(), printer),
    }
}

/// The main job: one hire, a cohort, or a dry run.
fn run_main(args: RunArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let Some(playbook) = args.playbook else {
        return Err(CliError::input("no playbook given").hint(
            "run `onboard PLAYBOOK`, e.g. `onboard playbooks/new-hire.yaml`; see `onboard --help`",
        ));
    };
    if let Some(hires) = args.hires {
        let mut sources = SourceMap::default();
        let req = setup.request(playbook, None);
        let (pb, mut diags) = crate::load::load(&req, &mut sources);
        let Some(pb) = pb.filter(|_| diags.is_empty()) else {
            if diags.is_empty() {
                diags.push(Diagnostic::new("the playbook could not be loaded"));
            }
            report(diags.sorted(), &sources, printer);
            return Err(CliError::Reported(Exit::Input));
        };
        return cohort::cmd_cohort(
            pb,
            sources,
            cohort::Cohort {
                hires,
                only: args.only,
                exclude: args.exclude,
                jobs: args.jobs,
                mode: if args.dry_run {
                    Mode::DryRun
                } else {
                    Mode::Apply
                },
            },
            args.options,
            setup,
            printer,
        );
    }
    if args.dry_run {
        return plan::cmd_plan(
            plan::PlanArgs {
                playbook,
                input: args.input,
                output: args.plan_output,
            },
            setup,
            printer,
        );
    }
    run::cmd_run(playbook, &args.input, args.options, setup, printer)
}

/// Loads and plans a playbook, printing every problem. Used by every command that reads one.
fn load_playbook(
    playbook: PathBuf,
    input: &InputArgs,
    setup: &Setup,
    sources: &mut SourceMap,
    printer: &Printer,
) -> CmdResult<(Playbook, Plan)> {
    let req = setup.request(playbook, input.hire.clone());
    load_and_plan(&req, sources, &Outputs::new()).map_err(|diags| {
        report(diags.sorted(), sources, printer);
        CliError::Reported(Exit::Input)
    })
}

/// Prints diagnostics and the closing count.
fn report(diags: Vec<Diagnostic>, sources: &SourceMap, printer: &Printer) {
    printer.diagnostics(&diags, sources);
    let n = diags.len();
    printer.info(&format!(
        "{n} error{} found; nothing was changed.",
        if n == 1 { "" } else { "s" }
    ));
}

/// Writes to stdout; a closed pipe (`onboard plan … | head`) is not an error.
fn emit(printer: &Printer, text: &str) -> CmdResult {
    match printer.out(text) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failed(format!("cannot write output: {e}"))),
    }
}
