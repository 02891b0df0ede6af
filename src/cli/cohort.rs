//! `onboard PLAYBOOK --hires FILE`: a whole cohort from HR's export, several hires at once.
//!
//! Every row is checked before anything runs. Then `--jobs` workers take hires from a queue,
//! each with its own directory connection and mail transport; one hire's failure never stops
//! the others, and every hire keeps its own journal (so resume works per hire).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::run::{RunOptions, targets};
use super::settings::{Open, Setup};
use super::{CliError, CmdResult, Exit, Printer, emit, report};
use crate::diag::{Diagnostic, Diagnostics, SourceMap};
use crate::engine::{self, Mode, Outcome, Progress, Settings, Targets};
use crate::load::{Playbook, check_hire};
use crate::model::Hire;
use crate::plan::{Outputs, Params, PlannedStep, plan};
use crate::secret::Secret;
use crate::steps::Operator;

/// The accounts a cohort's rows would get, to find two hires that would share one: the same
/// DN, login or mail, whichever row comes second is reported, naming the first.
#[derive(Default)]
struct Accounts {
    /// (what, value as the directory compares it) → (hire id, where its row is).
    taken: HashMap<(&'static str, String), (String, crate::diag::Span)>,
}

impl Accounts {
    fn add(
        &mut self,
        row: &crate::hires::Row,
        planned: &crate::plan::Plan,
        diags: &mut Diagnostics,
    ) {
        let hire = &row.hire.value;
        let id = hire.id.as_ref().map_or("", |i| i.value.as_str());
        for step in &planned.steps {
            let Params::LdapAccount(crate::steps::account::spec::AccountParams {
                dn,
                rdn,
                attributes,
                ..
            }) = &step.params
            else {
                continue;
            };
            let mut keys = vec![("DN", crate::escape::canonical_dn(dn), row.at)];
            if let Some((_, login)) = crate::steps::account::spec::login(attributes, rdn) {
                keys.push(("login", login.to_lowercase(), row.at));
            }
            for at in attributes
                .iter()
                .filter(|a| a.name.eq_ignore_ascii_case("mail"))
            {
                for mail in &at.values {
                    // At the cell it came from, when it is the hire's work email.
                    let at_cell = hire
                        .work_email
                        .as_ref()
                        .filter(|w| w.value.eq_ignore_ascii_case(mail))
                        .map_or(row.at, |w| w.span);
                    keys.push(("mail", mail.to_lowercase(), at_cell));
                }
            }
            for (what, value, span) in keys {
                match self.taken.get(&(what, value.clone())) {
                    Some((other, first)) if other != id => diags.push(
                        Diagnostic::new(format!(
                            "hire {id} would get the same {what} as hire {other} (row {}): {value}",
                            first.line
                        ))
                        .at(span)
                        .note(*first, format!("hire {other}'s row"))
                        .hint(
                            "two hires would share one account: give one of them a different \
                             login (e.g. a middle initial) in the checklist's vars or a \
                             `custom.` column",
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        self.taken.insert((what, value), (id.to_owned(), span));
                    }
                }
            }
        }
    }
}

/// What to run for a cohort.
pub struct Cohort {
    pub hires: PathBuf,
    pub only: Vec<String>,
    pub exclude: Vec<String>,
    pub jobs: usize,
    pub mode: Mode,
}

/// One hire's result.
struct Done {
    hire: String,
    line: String,
    /// Not complete: a step failed, or a send is uncertain.
    failed: bool,
    /// A send is uncertain (and nothing failed): the operator must decide.
    uncertain: bool,
}

/// Reads HR's export and checks every row before anything runs: hire data, duplicate ids,
/// every template rendered, and accounts two rows would share. Returns the hires, or exit 2
/// with every problem at its row and column.
fn checked_rows(
    pb: Playbook,
    cohort: &Cohort,
    sources: &mut SourceMap,
    printer: &Printer,
) -> CmdResult<(Playbook, Vec<Hire>)> {
    let picked = |id: &str| {
        (cohort.only.is_empty() || cohort.only.iter().any(|o| o == id))
            && !cohort.exclude.iter().any(|e| e == id)
    };
    let (pb, hires, diags, ids) = check_rows(pb, &cohort.hires, sources, &picked);
    if !diags.is_empty() {
        report(diags.sorted(), sources, printer);
        return Err(CliError::Reported(Exit::Input));
    }
    for name in cohort.only.iter().chain(&cohort.exclude) {
        if !ids.contains(name) {
            return Err(CliError::input(format!(
                "--only/--exclude names `{name}`, which is not in {}",
                cohort.hires.display()
            )));
        }
    }
    Ok((pb, hires))
}

/// The rows that pass every check, and every problem at its row and column (HR's preview
/// shows them as the CLI prints them). A row whose id is not `picked` (`--only`, `--exclude`)
/// is not checked, so one bad row can be left out while the others run. Also every id in the
/// file.
pub(crate) fn check_rows(
    pb: Playbook,
    path: &std::path::Path,
    sources: &mut SourceMap,
    picked: &dyn Fn(&str) -> bool,
) -> (
    Playbook,
    Vec<Hire>,
    crate::diag::Diagnostics,
    BTreeSet<String>,
) {
    let (rows, mut diags) = crate::hires::read(path, &pb.hire_columns, sources);
    let mut seen: HashMap<String, crate::diag::Span> = HashMap::new();
    let mut accounts = Accounts::default();
    let mut hires: Vec<Hire> = Vec::new();
    let mut ids = BTreeSet::new();
    let mut pb = pb;
    for row in rows {
        if let Some(id) = &row.hire.id {
            ids.insert(id.value.clone());
            if !picked(&id.value) {
                continue;
            }
        }
        let before = diags.len();
        check_hire(&row.hire, row.at, &pb.required, &mut diags);
        if let Some(id) = &row.hire.id {
            if let Some(first) = seen.get(&id.value) {
                diags.push(
                    Diagnostic::new(format!("hire `{}` appears twice", id.value))
                        .at(id.span)
                        .note(*first, "first")
                        .hint("each hire has one row; ids name their journals"),
                );
            } else {
                seen.insert(id.value.clone(), id.span);
            }
        }
        if diags.len() > before {
            continue;
        }
        pb.hire = Some(row.hire.value.clone());
        let planned = plan(&pb, &Outputs::new());
        if let Ok(planned) = &planned {
            accounts.add(&row, planned, &mut diags);
        }
        if let Err(more) = planned {
            // The template is the playbook's; the row says whose data made it fail.
            let who = row
                .hire
                .id
                .as_ref()
                .map_or("this hire", |i| i.value.as_str());
            for d in more.0 {
                diags.push(d.note(row.at, format!("rendering it for {who}")));
            }
            continue;
        }
        hires.push(row.hire.value);
    }
    (pb, hires, diags, ids)
}

pub fn cmd_cohort(
    pb: Playbook,
    mut sources: SourceMap,
    cohort: Cohort,
    options: RunOptions,
    setup: &Setup,
    printer: &Printer,
) -> CmdResult {
    // Every row is checked (hire data and every template rendered) before anything runs.
    super::run::check_reapply(&pb, &options.reapply)?;
    // Rows left out with --only/--exclude are not checked.
    let (pb, hires) = checked_rows(pb, &cohort, &mut sources, printer)?;
    let id = |h: &Hire| h.id.as_ref().map(|i| i.value.clone()).unwrap_or_default();

    // Resolved once, before the state directory is touched: a bad setting is one error and
    // exit 2, not one per worker.
    let servers = setup.servers();
    let mode = cohort.mode;
    let open = match mode {
        Mode::DryRun => Open::AsIs,
        Mode::Apply => Open::ForRun,
    };
    let store = setup.store(open)?;
    let links = match mode {
        Mode::Apply => Some(setup.links()?),
        Mode::DryRun => None,
    };
    let state = setup.local(open)?;
    // A policy version published with other text stops the whole cohort, located, before any
    // hire starts (each run checks again).
    match crate::policy::publish_playbook(
        store.as_ref(),
        &pb,
        &setup.clock.now().to_string(),
        mode == Mode::Apply,
    ) {
        Err(crate::engine::EngineError::Plan(diags)) => {
            super::report(diags.sorted(), &sources, printer);
            return Err(CliError::Reported(Exit::Input));
        }
        other => other?,
    }
    let settings = Settings {
        mode,
        actor: setup.actor(options.actor.clone()),
        clock: setup.clock,
        reapply: options.reapply.clone(),
        reconcile: options.reconcile,
        resend_uncertain: options.resend_uncertain,
        failpoint: setup.failpoint.clone(),
    };

    let total = hires.len();
    let steps = pb.steps.len();
    let queue = Arc::new(Mutex::new(hires.into_iter().collect::<VecDeque<Hire>>()));
    let results = Arc::new(Mutex::new(Vec::<Done>::new()));
    let bars = Bars::new(total);
    let jobs = cohort.jobs.clamp(1, total.max(1));
    let scim = super::run::scim_apps(servers)?;
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let queue = Arc::clone(&queue);
            let results = Arc::clone(&results);
            let (pb, state, settings, bars, servers) = (&pb, &state, &settings, &bars, &servers);
            let store = store.as_ref();
            let links = links.as_ref();
            let scim = &scim;
            scope.spawn(move || {
                // Each worker has its own connection and transport.
                let (mut directory, mut mailer) = match targets(state, mode, servers) {
                    Ok(t) => t,
                    Err(e) => return e.print(printer),
                };
                let mut pb = pb.clone();
                loop {
                    let next = queue.lock().expect("queue").pop_front();
                    let Some(hire) = next else { break };
                    let hire_id = id(&hire);
                    pb.hire = Some(hire);
                    let mut progress = bars.hire(&hire_id, steps);
                    let result = engine::run(
                        &pb,
                        store,
                        Targets {
                            directory: directory.as_mut(),
                            mailer: mailer.as_mut(),
                            links,
                            scim,
                        },
                        settings,
                        &mut progress,
                    );
                    let done = summarize(&hire_id, result);
                    bars.finished(progress, &done.line);
                    results.lock().expect("results").push(done);
                }
            });
        }
    });
    bars.clear();

    let results = std::mem::take(&mut *results.lock().expect("results"));
    summary(results, total, &cohort.hires, &pb.name, printer)
}

/// The cohort's closing lines: one per hire, the counts, and the exit code.
fn summary(
    mut results: Vec<Done>,
    total: usize,
    hires: &std::path::Path,
    name: &str,
    printer: &Printer,
) -> CmdResult {
    results.sort_by(|a, b| a.hire.cmp(&b.hire));
    let not_ok = results.iter().filter(|r| r.failed).count();
    let uncertain = results.iter().filter(|r| r.uncertain).count();
    let missing = total - results.len();
    let mut out = format!(
        "Cohort {} ({}): {} hires, {} ok, {} failed{}{}\n",
        crate::diag::visible(&hires.display().to_string()),
        name,
        total,
        results.len() - not_ok,
        not_ok - uncertain,
        if uncertain > 0 {
            format!(", {uncertain} uncertain")
        } else {
            String::new()
        },
        if missing > 0 {
            format!(", {missing} not run")
        } else {
            String::new()
        }
    );
    for r in &results {
        out.push_str(&format!("  {}\n", r.line));
    }
    emit(printer, &out)?;
    if uncertain > 0 {
        printer.hint(
            "an uncertain send may or may not have gone out: check the recipient's mailbox; then \
             record it with `onboard mark-sent HIRE STEP`, or re-run with --resend-uncertain",
        );
    }
    if not_ok > 0 || missing > 0 {
        Err(CliError::Reported(Exit::Failed))
    } else {
        Ok(())
    }
}

fn summarize(hire: &str, result: Result<engine::Report, engine::EngineError>) -> Done {
    match result {
        Err(e) => Done {
            hire: hire.to_owned(),
            line: format!("{hire}: FAILED: {e}"),
            failed: true,
            uncertain: false,
        },
        Ok(report) => {
            let c = report.counts();
            let problems: Vec<String> = report
                .steps
                .iter()
                .filter_map(|s| match &s.outcome {
                    Outcome::Failed { error, .. } => Some(format!("{}: {error}", s.id)),
                    _ => None,
                })
                .collect();
            let uncertain: Vec<String> = report
                .steps
                .iter()
                .filter_map(|s| match &s.outcome {
                    Outcome::Uncertain(reason) => Some(format!("{}: {reason}", s.id)),
                    _ => None,
                })
                .collect();
            let state = if !problems.is_empty() {
                format!(
                    "FAILED: {}",
                    [problems.clone(), uncertain.clone()].concat().join("; ")
                )
            } else if !uncertain.is_empty() {
                format!("UNCERTAIN: {}", uncertain.join("; "))
            } else if c.waiting > 0 {
                format!(
                    "{} done, {} waiting on people",
                    c.applied + c.already_done,
                    c.waiting
                )
            } else if c.would_do > 0 {
                format!(
                    "would change {} steps, {} already done",
                    c.would_do, c.already_done
                )
            } else {
                format!(
                    "complete ({} done now, {} already done)",
                    c.applied, c.already_done
                )
            };
            // Done, but no longer as the playbook says: shown, not hidden in "complete".
            let drift: Vec<String> = report
                .steps
                .iter()
                .filter_map(|s| match &s.outcome {
                    Outcome::AlreadyDone(Some(note @ crate::steps::Note::Drift(_))) => {
                        Some(format!("; {}: {note}", s.id))
                    }
                    _ => None,
                })
                .collect();
            Done {
                hire: hire.to_owned(),
                line: format!("{hire}: {state}{}", drift.concat()),
                failed: !problems.is_empty() || !uncertain.is_empty(),
                uncertain: problems.is_empty() && !uncertain.is_empty(),
            }
        }
    }
}

/// The cohort's progress: an overall bar and a line per active hire on a terminal, plain lines
/// otherwise.
struct Bars {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    total: usize,
    finished: Mutex<usize>,
}

impl Bars {
    fn new(total: usize) -> Bars {
        if !std::io::stderr().is_terminal() {
            return Bars {
                multi: None,
                overall: None,
                total,
                finished: Mutex::new(0),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} hires  {per_sec}  ETA {eta}  {elapsed}",
            )
            .expect("valid template"),
        );
        Bars {
            multi: Some(multi),
            overall: Some(overall),
            total,
            finished: Mutex::new(0),
        }
    }

    fn hire(&self, hire: &str, steps: usize) -> HireProgress {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {msg}").expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_message(hire.to_owned());
            bar
        });
        HireProgress {
            hire: hire.to_owned(),
            steps,
            index: 0,
            bar,
        }
    }

    fn finished(&self, progress: HireProgress, line: &str) {
        let mut n = self.finished.lock().expect("count");
        *n += 1;
        match (&self.multi, progress.bar) {
            (Some(multi), Some(bar)) => {
                bar.finish_and_clear();
                multi.remove(&bar);
                if let Some(o) = &self.overall {
                    o.inc(1);
                }
            }
            _ => crate::cli::output::err_line(&format!("[{}/{}] {line}", *n, self.total)),
        }
    }

    fn clear(&self) {
        if let Some(o) = &self.overall {
            o.finish_and_clear();
        }
    }
}

struct HireProgress {
    hire: String,
    steps: usize,
    index: usize,
    bar: Option<ProgressBar>,
}

impl Progress for HireProgress {
    fn started(&mut self, step: &PlannedStep) {
        self.index += 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} [{}/{}] {}",
                self.hire, self.index, self.steps, step.id
            ));
        }
    }

    fn finished(&mut self, _: &PlannedStep, _: &Outcome) {}
}

impl Operator for HireProgress {
    // A cohort never prompts or shows secrets: passwords go to managers, people sign later.
    fn can_show_secret(&self) -> bool {
        false
    }

    fn show_password(&mut self, _: &str, _: &str, _: &Secret) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "a cohort run shows no passwords; use `password.deliver: manager`",
        ))
    }
}
