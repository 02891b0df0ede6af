//! The engine: walks the plan in dependency order, checks each step, applies what is missing,
//! verifies it, and journals every transition before the next effect.
//!
//! A dry run is the same walk with [`Mode::DryRun`]: it checks (read-only) and stops before
//! apply; it writes nothing, not even the journal.

mod campaign;
mod decide;
#[cfg(test)]
mod model_test;
mod notify;
mod outcome;
mod people;
mod step;

pub use campaign::{Campaign, Reached, Row, campaign};
pub use outcome::{Counts, Outcome, Progress, Report, StepReport};
use people::signed;
pub use people::{access_refused, mark_sent, resolve, sign_off};
use step::run_step;

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::backend::{directory::Directory, mail::Mailer};
use crate::diag::Diagnostics;
use crate::journal::{self, Event, HireState, Status};
use crate::load::{NOTIFY_AT_RISK, NOTIFY_REFUSED, Playbook};
use crate::plan::{Outputs, Params, Plan, PlannedStep, plan};
use crate::steps::{self, Ctx};
use crate::store::{Log, Store, StoreError};

/// Apply changes, or only show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    DryRun,
}

/// Where time comes from: the system clock, or a fixed instant (tests, reproducible demos).
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(jiff::Timestamp),
}

impl Clock {
    pub fn now(self) -> jiff::Timestamp {
        match self {
            Clock::System => jiff::Timestamp::now(),
            Clock::Fixed(t) => t,
        }
    }
}

/// Everything the CLI resolved before the run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    /// Who runs it: OS user or `--as`.
    pub actor: String,
    pub clock: Clock,
    /// Steps to apply again even though they are done (`--reapply`).
    pub reapply: Vec<String>,
    /// Correct drift in done steps (`--reconcile`).
    pub reconcile: bool,
    /// Send again what an interrupted run may have sent (`--resend-uncertain`).
    pub resend_uncertain: bool,
    /// Test-only: die at a named point, to prove resume (see [`Failpoint`]).
    pub failpoint: Option<Failpoint>,
}

/// A point where a test makes the process die (as `kill -9` would), hang (so the test can
/// kill it) or slow down (so the test can stop a server right there), to prove that the journal
/// and resume handle it. Written `[pause:|slow:]after:RECORD_TYPE:STEP` (after that record is
/// durable) or `[pause:|slow:]applied:STEP` (after the step's effect, before its `step_done`
/// record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failpoint {
    pub at: String,
    pub then: Then,
}

/// What a failpoint does when it is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Die at once.
    Abort,
    /// Hang (for two minutes), then die.
    Pause,
    /// Wait 300 ms and go on, every time it is reached.
    Slow,
}

impl Failpoint {
    pub fn parse(text: &str) -> Failpoint {
        let (then, at) = if let Some(at) = text.strip_prefix("pause:") {
            (Then::Pause, at)
        } else if let Some(at) = text.strip_prefix("slow:") {
            (Then::Slow, at)
        } else {
            (Then::Abort, text)
        };
        Failpoint {
            at: at.to_owned(),
            then,
        }
    }

    fn hit(&self, at: &str) {
        if self.at == at {
            match self.then {
                Then::Slow => std::thread::sleep(std::time::Duration::from_millis(300)),
                Then::Pause => {
                    std::thread::sleep(std::time::Duration::from_secs(120));
                    std::process::abort();
                }
                Then::Abort => std::process::abort(),
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the playbook names no hire")]
    NoHire,
    #[error("another run is working on hire {hire} ({holder})")]
    Locked { hire: String, holder: String },
    #[error("journal {path}: {source}")]
    Journal {
        path: String,
        source: journal::OpenError,
    },
    #[error("{0}")]
    Io(String),
    /// The request cannot be done as asked (e.g. a signature that is not accepted).
    #[error("{0}")]
    Refused(String),
    /// Rendering failed with the journal's outputs (e.g. a value a done step recorded).
    #[error("the playbook does not render")]
    Plan(Diagnostics),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Locked { hire, holder } => EngineError::Locked { hire, holder },
            StoreError::Journal { name, source } => EngineError::Journal { path: name, source },
            StoreError::Io(e) => EngineError::Io(e.to_string()),
        }
    }
}

pub struct Targets<'a> {
    pub directory: &'a mut dyn Directory,
    pub mailer: &'a mut dyn Mailer,
    /// For emailing links to people's steps (`notify`); `None`: no link key, nothing emailed.
    pub links: Option<&'a crate::web::Links>,
    /// The SCIM applications (`scim_user`, `scim_groups`).
    pub scim: &'a crate::backend::scim::ScimApps,
}

/// Reads a hire's journal without changing it: its verified records, replayed.
pub fn read_state(store: &dyn Store, hire: &str) -> Result<(HireState, usize), EngineError> {
    state_of(store.journal_name(hire), store.read(hire))
}

/// A journal as a store read it (`path` names it), verified and replayed.
pub fn state_of(
    path: String,
    read: std::io::Result<journal::JournalText>,
) -> Result<(HireState, usize), EngineError> {
    let text = match read {
        Ok(journal::JournalText {
            unreadable: Some(b),
            ..
        }) => {
            return Err(EngineError::Journal {
                path,
                source: journal::OpenError::Broken(b),
            });
        }
        Ok(t) => t.text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(EngineError::Io(e.to_string())),
    };
    // A torn last record is what a crash leaves; the next real run cuts it off.
    let (text, torn) = match text.rfind('\n') {
        Some(i) if i + 1 < text.len() => (&text[..=i], text.len() - i - 1),
        None if !text.is_empty() => ("", text.len()),
        _ => (text.as_str(), 0),
    };
    let records = journal::verify(text).map_err(|b| EngineError::Journal {
        path,
        source: journal::OpenError::Broken(b),
    })?;
    Ok((journal::replay(&records), torn))
}

fn done_outputs(state: &HireState) -> Outputs {
    state
        .steps
        .iter()
        .filter(|(_, s)| s.status == Status::Done)
        .map(|(id, s)| (id.clone(), s.outputs.clone()))
        .collect()
}

/// The hire's journal for this run: opened under the hire's lock, or only read in a dry run.
/// With its replayed state, and how many bytes of a torn last record were cut off.
fn open(
    store: &dyn Store,
    hire: &str,
    run_id: &str,
    settings: &Settings,
) -> Result<(Option<crate::store::Session>, HireState, usize), EngineError> {
    Ok(match settings.mode {
        Mode::DryRun => {
            let (state, torn) = read_state(store, hire)?;
            (None, state, torn)
        }
        Mode::Apply => {
            let holder = format!(
                "run {run_id} by {} on {} (pid {}) since {}",
                settings.actor,
                crate::store::hostname(),
                std::process::id(),
                settings.clock.now()
            );
            let session = store.open(hire, &holder, run_id, &settings.actor)?;
            let state = journal::replay(&session.records);
            let torn = session.torn_bytes;
            (Some(session), state, torn)
        }
    })
}

/// The record that starts a run: the hire, the playbook, this onboard, the start and deadlines.
fn run_started(pb: &Playbook, hire: &str, plan: &Plan) -> Event {
    Event::RunStarted {
        hire: hire.to_owned(),
        playbook: pb.name.clone(),
        checklist: pb.checklist.display().to_string(),
        onboard: env!("CARGO_PKG_VERSION").to_owned(),
        start: start_of(pb),
        start_at: pb
            .hire
            .as_ref()
            .and_then(crate::deadline::start)
            .map(|z| z.timestamp().to_string())
            .unwrap_or_default(),
        deadlines: plan
            .steps
            .iter()
            .filter_map(|s| Some((s.id.clone(), s.deadline.clone()?)))
            .collect(),
        email: pb
            .hire
            .as_ref()
            .and_then(|h| h.work_email.as_ref().or(h.personal_email.as_ref()))
            .map(|e| e.value.clone())
            .unwrap_or_default(),
        steps: plan.steps.iter().map(|s| s.id.clone()).collect(),
    }
}

/// What the journal recorded about a step: a step a plan named but no record mentions yet is
/// as good as new.
fn recorded(state: &HireState, id: &str) -> Option<journal::StepState> {
    let s = state.steps.get(id)?;
    (s.status != Status::Pending).then(|| s.clone())
}

/// Records a step's outputs as done in the run's state; true when they differ from what the
/// plan was made with.
fn record_outputs(
    state: &mut HireState,
    outputs: &mut Outputs,
    id: &str,
    mut s: journal::StepState,
    out: BTreeMap<String, String>,
) -> bool {
    s.status = Status::Done;
    s.outputs = out.clone();
    state.steps.insert(id.to_owned(), s);
    if outputs.get(id) == Some(&out) {
        return false;
    }
    outputs.insert(id.to_owned(), out);
    true
}

/// What every step of one hire's run shares.
struct HireCtx<'a> {
    pb: &'a Playbook,
    hire: &'a str,
    from: &'a str,
    settings: &'a Settings,
    store: &'a dyn Store,
    links: Option<&'a crate::web::Links>,
    scim: &'a crate::backend::scim::ScimApps,
    /// Whether the run still holds the hire (`None`: a dry run).
    hold: Option<crate::store::HoldCheck>,
}

impl HireCtx<'_> {
    /// The context one step runs with.
    fn step<'b>(
        &'b self,
        directory: &'b mut dyn Directory,
        mailer: &'b mut dyn Mailer,
        operator: &'b mut dyn steps::Operator,
        prior: Option<&'b journal::StepState>,
        outputs: &'b Outputs,
        operators: &'b std::collections::BTreeSet<String>,
    ) -> Ctx<'b> {
        Ctx {
            pb: self.pb,
            directory,
            mailer,
            operator,
            hire_id: self.hire,
            prior,
            now: SystemTime::try_from(self.settings.clock.now()).unwrap_or(SystemTime::now()),
            from: self.from,
            held: None,
            still_held: self.hold.clone(),
            resend_uncertain: self.settings.resend_uncertain,
            outputs,
            operators,
            store: self.store,
            links: self.links,
            scim: self.scim,
        }
    }
}

/// Runs (or dry-runs) the playbook for its hire.
pub fn run(
    pb: &Playbook,
    store: &dyn Store,
    targets: Targets<'_>,
    settings: &Settings,
    progress: &mut dyn Progress,
) -> Result<Report, EngineError> {
    let hire = pb.hire_id().ok_or(EngineError::NoHire)?;
    let run_id = crate::secret::random_hex(8);
    // Before anything is journaled: a policy version names one text.
    crate::policy::publish_playbook(
        store,
        pb,
        &settings.clock.now().to_string(),
        settings.mode == Mode::Apply,
    )?;

    let (mut session, mut state, torn_bytes) = open(store, &hire, &run_id, settings)?;

    let mut outputs = done_outputs(&state);
    let mut current = plan(pb, &outputs).map_err(EngineError::Plan)?;
    let from = credential_from(&current, pb);

    let hold = session.as_ref().map(|s| s.log.hold_check());
    let mut w = Writer::new(session.as_mut().map(|s| &mut *s.log), settings);
    w.append(run_started(pb, &hire, &current))?;

    let Targets {
        directory, mailer, ..
    } = targets;
    let hire_ctx = HireCtx {
        pb,
        hire: &hire,
        from: &from,
        settings,
        store,
        links: targets.links,
        scim: targets.scim,
        hold,
    };
    let mut results: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut reports = Vec::new();
    for i in 0..current.steps.len() {
        let step = &current.steps[i];
        progress.started(step);
        let prior = recorded(&state, &step.id);
        let mut ctx = hire_ctx.step(
            &mut *directory,
            &mut *mailer,
            &mut *progress,
            prior.as_ref(),
            &outputs,
            &state.operators,
        );
        let (outcome, produced) = run_step(step, &mut ctx, &results, settings, &mut w)?;
        progress.finished(step, &outcome);

        if matches!(outcome, Outcome::Applied(_)) && step.params.is_automated() {
            state.operators.insert(settings.actor.clone());
        }
        // What this step produced becomes visible to the steps after it: when that changes
        // what later steps render, the plan is made again.
        let (id, title) = (step.id.clone(), step.title.clone());
        if let Some(out) = produced {
            let fallback = || journal::StepState {
                checksum: step.checksum.clone(),
                actor: settings.actor.clone(),
                ..Default::default()
            };
            if record_outputs(
                &mut state,
                &mut outputs,
                &id,
                prior.unwrap_or_else(fallback),
                out,
            ) {
                current = plan(pb, &outputs).map_err(EngineError::Plan)?;
            }
        }
        results.insert(id.clone(), outcome.clone());
        reports.push(StepReport { id, title, outcome });
    }

    // Tell the manager once when the hire becomes at risk or late, and of each refusal.
    if let (Some(email), true) = (&pb.at_risk, w.applying()) {
        // The journal as this run left it.
        let (now, _) = read_state(store, &hire)?;
        for step in notices(pb, email, &now, settings.clock.now())? {
            let mut ctx = hire_ctx.step(
                &mut *directory,
                &mut *mailer,
                &mut *progress,
                now.steps.get(&step.id),
                &outputs,
                &state.operators,
            );
            let (outcome, _) = run_step(&step, &mut ctx, &results, settings, &mut w)?;
            reports.push(StepReport {
                id: step.id.clone(),
                title: step.title.clone(),
                outcome,
            });
        }
    }

    let report = Report {
        hire,
        mode: settings.mode,
        steps: reports,
        torn_bytes,
        plan: current,
    };
    w.append(report.finished())?;
    Ok(report)
}

/// Where a run's records go: the hire's journal, or nowhere in a dry run.
enum Sink<'a> {
    DryRun,
    Journal(&'a mut (dyn Log + 'static)),
}

/// Journals through the writer, or not at all in a dry run.
struct Writer<'a> {
    sink: Sink<'a>,
    clock: Clock,
    failpoint: Option<Failpoint>,
}

impl<'a> Writer<'a> {
    /// Journals into `log`, or nowhere (a dry run).
    fn new(log: Option<&'a mut (dyn Log + 'static)>, settings: &Settings) -> Writer<'a> {
        Writer {
            sink: log.map_or(Sink::DryRun, Sink::Journal),
            clock: settings.clock,
            failpoint: settings.failpoint.clone(),
        }
    }

    fn append(&mut self, event: Event) -> Result<(), EngineError> {
        if let Sink::Journal(j) = &mut self.sink {
            let at = self.clock.now().to_string();
            let point = format!("after:{}:{}", event.name(), event.step().unwrap_or("-"));
            j.append(&at, event)
                .map_err(|e| EngineError::Io(format!("cannot write the journal: {e}")))?;
            self.failpoint(&point);
        }
        Ok(())
    }

    fn failpoint(&self, at: &str) {
        if let Some(f) = &self.failpoint {
            f.hit(at);
        }
    }

    fn applying(&self) -> bool {
        self.mode() == Mode::Apply
    }

    fn mode(&self) -> Mode {
        match self.sink {
            Sink::DryRun => Mode::DryRun,
            Sink::Journal(_) => Mode::Apply,
        }
    }
}

/// `YYYY-MM-DD HH:MM Area/City` of the hire's first day, or empty.
fn start_of(pb: &Playbook) -> String {
    let Some(h) = &pb.hire else {
        return String::new();
    };
    let Some(date) = &h.start_date else {
        return String::new();
    };
    let time = h.start_time.as_ref().map_or("09:00", |t| t.value.as_str());
    let zone = h.time_zone.as_ref().map_or("", |z| z.value.as_str());
    format!("{} {time} {zone}", date.value)
        .trim_end()
        .to_owned()
}

/// The sender of messages onboard sends on its own: the playbook's first email's `from`, else
/// `onboard@` the manager's domain.
fn credential_from(plan: &Plan, pb: &Playbook) -> String {
    plan.steps
        .iter()
        .find_map(|s| match &s.params {
            Params::Email(e) => Some(e.from.clone()),
            _ => None,
        })
        .or_else(|| {
            let email = pb.hire.as_ref()?.manager_email.as_ref()?;
            let domain = email.value.rsplit_once('@')?.1;
            Some(format!("onboard@{domain}"))
        })
        .unwrap_or_else(|| "onboard@localhost".to_owned())
}

/// The messages about the onboarding that are due (`notify.at_risk`'s templates), each once:
/// the hire became at risk or late, and each refusal nobody was told of yet.
fn notices(
    pb: &Playbook,
    email: &crate::model::Email,
    state: &HireState,
    now: jiff::Timestamp,
) -> Result<Vec<PlannedStep>, EngineError> {
    let done = |id: &str| {
        state
            .steps
            .get(id)
            .is_some_and(|p| p.status == Status::Done)
    };
    let mut notices = Vec::new();
    if !done(NOTIFY_AT_RISK) && crate::readiness::assess(state, now).readiness.alarming() {
        let title = "Tell the manager the hire is at risk".to_owned();
        notices.push(notice(pb, email, NOTIFY_AT_RISK, title, state, now)?);
    }
    for (refused, s) in state
        .steps
        .iter()
        .filter(|(_, s)| !s.refusals_open.is_empty())
    {
        let id = format!("{NOTIFY_REFUSED}{refused}-{}", s.refusals);
        if !done(&id) {
            let title = format!("Tell the help desk `{refused}` was refused");
            let mut step = notice(pb, email, &id, title, state, now)?;
            // Its subject says what happened, so it is not taken for the at-risk message.
            if let (Params::Email(e), Some(r)) = (&mut step.params, s.refusals_open.last()) {
                e.subject = format!("{} refused {refused}: {}", r.by, e.subject);
                step.checksum = crate::plan::checksum(&step.params);
                step.action = step.params.describe();
            }
            notices.push(step);
        }
    }
    Ok(notices)
}

/// A message about the onboarding (`notify.at_risk`'s templates) as a step journaled under
/// `id`, so it goes once; its templates see the readiness of `state` at `now`.
fn notice(
    pb: &Playbook,
    email: &crate::model::Email,
    id: &str,
    title: String,
    state: &HireState,
    now: jiff::Timestamp,
) -> Result<PlannedStep, EngineError> {
    let assessment = crate::readiness::assess(state, now);
    let mut diags = Diagnostics::default();
    let mut tctx = crate::plan::context(pb, &mut diags);
    tctx.insert(
        "readiness",
        &serde_json::json!({
            "state": assessment.readiness.label(),
            "start": state.start,
            "blockers": assessment.blockers,
        }),
    );
    let params =
        crate::steps::email::spec::render_email(pb, email, &tctx).map_err(EngineError::Plan)?;
    let params = Params::Email(Box::new(params));
    Ok(PlannedStep {
        id: id.to_owned(),
        title,
        kind: "email",
        needs: Vec::new(),
        action: params.describe(),
        checksum: crate::plan::checksum(&params),
        params,
        known_after_run: Vec::new(),
        now: None,
        deadline: None,
    })
}
