//! The engine: walks the plan in dependency order, checks each step, applies what is missing,
//! verifies it, and journals every transition before the next effect.
//!
//! A dry run is the same walk with [`Mode::DryRun`]: it checks (read-only) and stops before
//! apply; it writes nothing, not even the journal.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::backend::{directory::Directory, mail::Mailer};
use crate::diag::Diagnostics;
use crate::journal::{self, Event, HireState, Status};
use crate::load::{NOTIFY_AT_RISK, Playbook};
use crate::plan::{Outputs, Params, Plan, PlannedStep, plan};
use crate::steps::{self, Check, Ctx, Note, Operator};
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

/// A point where a test makes the process die (as `kill -9` would) or hang (so the test can
/// kill it), to prove that the journal and resume handle it. Written
/// `[pause:]after:RECORD_TYPE:STEP` (after that record is durable) or
/// `[pause:]applied:STEP` (after the step's effect, before its `step_done` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failpoint {
    pub at: String,
    pub pause: bool,
}

impl Failpoint {
    pub fn parse(text: &str) -> Failpoint {
        match text.strip_prefix("pause:") {
            Some(at) => Failpoint {
                at: at.to_owned(),
                pause: true,
            },
            None => Failpoint {
                at: text.to_owned(),
                pause: false,
            },
        }
    }

    fn hit(&self, at: &str) {
        if self.at == at {
            if self.pause {
                std::thread::sleep(std::time::Duration::from_secs(120));
            }
            std::process::abort();
        }
    }
}

/// What happened to a step in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Changed something, verified.
    Applied(Vec<String>),
    /// Already so; nothing to do. The note reports e.g. drift.
    AlreadyDone(Option<Note>),
    /// Dry run: these changes would be made.
    WouldDo(Vec<String>),
    Waiting {
        on: String,
        reason: String,
    },
    Skipped(String),
    Failed {
        error: String,
        hint: Option<String>,
    },
    /// An interrupted send whose outcome cannot be known; the operator decides.
    Uncertain(String),
}

impl Outcome {
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Applied(_) | Outcome::AlreadyDone(_))
    }

    /// The dry-run view of this outcome, for the plan.
    pub fn now(&self) -> crate::plan::Now {
        use crate::plan::NowState;
        let (state, changes, detail) = match self {
            Outcome::Applied(c) => (NowState::Done, c.clone(), None),
            Outcome::AlreadyDone(note) => (
                NowState::AlreadyDone,
                Vec::new(),
                note.as_ref().map(Note::to_string),
            ),
            Outcome::WouldDo(c) => (NowState::WouldDo, c.clone(), None),
            Outcome::Waiting { on, reason } => (
                NowState::Waiting,
                Vec::new(),
                Some(format!("waiting on the {on}: {reason}")),
            ),
            Outcome::Skipped(because) => (NowState::Skipped, Vec::new(), Some(because.clone())),
            Outcome::Failed { error, .. } => (NowState::Failed, Vec::new(), Some(error.clone())),
            Outcome::Uncertain(reason) => (NowState::Uncertain, Vec::new(), Some(reason.clone())),
        };
        crate::plan::Now {
            state,
            changes,
            detail,
        }
    }
}

/// Told about each step as the run goes; also the operator's terminal for secrets.
pub trait Progress: Operator {
    fn started(&mut self, step: &PlannedStep);
    fn finished(&mut self, step: &PlannedStep, outcome: &Outcome);
}

pub struct StepReport {
    pub id: String,
    pub title: String,
    pub outcome: Outcome,
}

/// The result of a run.
pub struct Report {
    pub hire: String,
    pub mode: Mode,
    pub steps: Vec<StepReport>,
    /// Bytes of a torn last journal record that were cut off when the journal was opened.
    pub torn_bytes: usize,
    pub plan: Plan,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub applied: u32,
    pub already_done: u32,
    pub would_do: u32,
    pub waiting: u32,
    pub skipped: u32,
    pub failed: u32,
    pub uncertain: u32,
}

impl Report {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.steps {
            match s.outcome {
                Outcome::Applied(_) => c.applied += 1,
                Outcome::AlreadyDone(_) => c.already_done += 1,
                Outcome::WouldDo(_) => c.would_do += 1,
                Outcome::Waiting { .. } => c.waiting += 1,
                Outcome::Skipped(_) => c.skipped += 1,
                Outcome::Failed { .. } => c.failed += 1,
                Outcome::Uncertain(_) => c.uncertain += 1,
            }
        }
        c
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
}

/// Reads a hire's journal without changing it: its verified records, replayed.
pub fn read_state(store: &dyn Store, hire: &str) -> Result<(HireState, usize), EngineError> {
    let path = store.journal_name(hire);
    let text = match store.read(hire) {
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

/// Runs (or dry-runs) the playbook for its hire.
pub fn run(
    pb: &Playbook,
    store: &dyn Store,
    targets: Targets<'_>,
    settings: &Settings,
    progress: &mut dyn Progress,
) -> Result<Report, EngineError> {
    let hire = pb
        .hire
        .as_ref()
        .and_then(|h| h.id.as_ref())
        .map(|i| i.value.clone())
        .ok_or(EngineError::NoHire)?;
    let run_id = crate::secret::random_hex(8);

    let (mut session, mut state, torn_bytes) = match settings.mode {
        Mode::DryRun => {
            let (state, torn) = read_state(store, &hire)?;
            (None, state, torn)
        }
        Mode::Apply => {
            let holder = format!(
                "run {run_id} by {} (pid {}) since {}",
                settings.actor,
                std::process::id(),
                settings.clock.now()
            );
            let session = store.open(&hire, &holder, &run_id, &settings.actor)?;
            let state = journal::replay(&session.records);
            let torn = session.torn_bytes;
            (Some(session), state, torn)
        }
    };

    let mut outputs = done_outputs(&state);
    let mut current = plan(pb, &outputs).map_err(EngineError::Plan)?;
    let from = credential_from(&current, pb);

    let mut w = Writer {
        journal: session.as_mut().map(|s| &mut *s.log),
        clock: settings.clock,
        failpoint: settings.failpoint.clone(),
    };
    w.append(Event::RunStarted {
        hire: hire.clone(),
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
        deadlines: current
            .steps
            .iter()
            .filter_map(|s| Some((s.id.clone(), s.deadline.clone()?)))
            .collect(),
    })?;

    let Targets { directory, mailer } = targets;
    let mut results: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut reports = Vec::new();
    for i in 0..current.steps.len() {
        let step = &current.steps[i];
        progress.started(step);
        let prior = state.steps.get(&step.id).cloned();
        let mut ctx = Ctx {
            pb,
            directory: &mut *directory,
            mailer: &mut *mailer,
            operator: &mut *progress,
            hire_id: &hire,
            prior: prior.as_ref(),
            now: SystemTime::try_from(settings.clock.now()).unwrap_or(SystemTime::now()),
            from: &from,
            held: None,
            resend_uncertain: settings.resend_uncertain,
            outputs: &outputs,
            operators: &state.operators,
            store,
        };
        let (outcome, produced) = run_step(step, &mut ctx, &results, settings, &mut w)?;
        progress.finished(step, &outcome);

        if matches!(outcome, Outcome::Applied(_))
            && matches!(step.kind, "ldap_account" | "ldap_groups" | "email")
        {
            state.operators.insert(settings.actor.clone());
        }
        // What this step produced becomes visible to the steps after it.
        if let Some(out) = produced {
            let mut s = prior.unwrap_or_else(|| journal::StepState {
                status: Status::Done,
                checksum: step.checksum.clone(),
                at: String::new(),
                actor: settings.actor.clone(),
                outputs: BTreeMap::new(),
                changes: Vec::new(),
                intent: BTreeMap::new(),
                detail: String::new(),
                request: None,
                waiting_since: None,
                drift: None,
                evidence: BTreeMap::new(),
            });
            s.status = Status::Done;
            s.outputs = out.clone();
            state.steps.insert(step.id.clone(), s);
            if outputs.get(&step.id) != Some(&out) {
                outputs.insert(step.id.clone(), out);
                let id = step.id.clone();
                let title = step.title.clone();
                current = plan(pb, &outputs).map_err(EngineError::Plan)?;
                results.insert(id.clone(), outcome.clone());
                reports.push(StepReport { id, title, outcome });
                continue;
            }
        }
        results.insert(step.id.clone(), outcome.clone());
        reports.push(StepReport {
            id: step.id.clone(),
            title: step.title.clone(),
            outcome,
        });
    }

    // Tell the manager once when the hire becomes at risk or late.
    if let (Some(email), true) = (&pb.at_risk, w.applying()) {
        let mut ctx = steps::Ctx {
            pb,
            directory: &mut *directory,
            mailer: &mut *mailer,
            operator: &mut *progress,
            hire_id: &hire,
            prior: state.steps.get(NOTIFY_AT_RISK),
            now: SystemTime::try_from(settings.clock.now()).unwrap_or(SystemTime::now()),
            from: &from,
            held: None,
            resend_uncertain: settings.resend_uncertain,
            outputs: &outputs,
            operators: &state.operators,
            store,
        };
        if let Some(step) = at_risk_notice(pb, email, &hire, store, settings, &mut ctx)? {
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
    let c = report.counts();
    w.append(Event::RunFinished {
        done: c.applied,
        already_done: c.already_done,
        failed: c.failed,
        waiting: c.waiting,
        skipped: c.skipped,
        uncertain: c.uncertain,
    })?;
    Ok(report)
}

/// Journals through the writer, or not at all in a dry run.
struct Writer<'a> {
    journal: Option<&'a mut (dyn Log + 'static)>,
    clock: Clock,
    failpoint: Option<Failpoint>,
}

impl Writer<'_> {
    fn append(&mut self, event: Event) -> Result<(), EngineError> {
        if let Some(j) = self.journal.as_deref_mut() {
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
        self.journal.is_some()
    }
}

fn run_step(
    step: &PlannedStep,
    ctx: &mut Ctx<'_>,
    results: &BTreeMap<String, Outcome>,
    settings: &Settings,
    w: &mut Writer<'_>,
) -> Result<(Outcome, Option<BTreeMap<String, String>>), EngineError> {
    let apply = w.applying();
    let prior = ctx.prior;

    // Dependencies: a failed one skips this step, a waiting one makes it wait too.
    for need in &step.needs {
        let blocked = match results.get(need) {
            Some(o) if o.is_done() => None,
            Some(Outcome::WouldDo(_)) if !apply => None,
            Some(Outcome::Waiting { on, .. }) => Some(Outcome::Waiting {
                on: on.clone(),
                reason: format!("waits for `{need}`"),
            }),
            _ => Some(Outcome::Skipped(format!(
                "needs `{need}`, which is not done"
            ))),
        };
        let Some(outcome) = blocked else { continue };
        let unchanged = prior.is_some_and(|p| {
            matches!(
                (&outcome, p.status),
                (Outcome::Waiting { .. }, Status::Waiting) | (Outcome::Skipped(_), Status::Skipped)
            )
        });
        if !unchanged {
            match &outcome {
                Outcome::Waiting { on, reason } => w.append(Event::StepWaiting {
                    step: step.id.clone(),
                    on: on.clone(),
                    reason: reason.clone(),
                    request: None,
                })?,
                Outcome::Skipped(because) => w.append(Event::StepSkipped {
                    step: step.id.clone(),
                    because: because.clone(),
                })?,
                _ => {}
            }
        }
        return Ok((outcome, None));
    }

    // A dry run cannot check what depends on values an earlier step has not produced yet.
    if !apply {
        let params = serde_json::to_string(&step.params).expect("params serialize");
        if let Some(need) = step
            .needs
            .iter()
            .find(|n| params.contains(&format!(" of {n}: known after it runs>")))
        {
            return Ok((
                Outcome::WouldDo(vec![format!(
                    "(cannot know the details until `{need}` runs)"
                )]),
                None,
            ));
        }
    }

    let reapply = settings.reapply.iter().any(|r| r == &step.id);
    if let Some(p) = prior.filter(|p| p.status == Status::Done)
        && !reapply
    {
        if p.checksum != step.checksum {
            let outcome = Outcome::Failed {
                error: format!(
                    "its parameters changed since it was done ({} by {}); not applying them silently",
                    p.at, p.actor
                ),
                hint: Some(format!(
                    "compare with `onboard log`; to apply the new parameters, re-run with --reapply {}",
                    step.id
                )),
            };
            return Ok((outcome, None));
        }
        return Ok(match steps::check(step, ctx) {
            Ok(Check::Holds {
                outputs,
                note: Some(note @ Note::Drift(_)),
            }) if settings.reconcile => {
                if !apply {
                    return Ok((
                        Outcome::WouldDo(vec![format!("reconcile {note}")]),
                        Some(outputs),
                    ));
                }
                match steps::reconcile(step, ctx) {
                    Some(Ok(changes)) => {
                        w.append(Event::StepDone {
                            step: step.id.clone(),
                            checksum: step.checksum.clone(),
                            changes: changes.clone(),
                            outputs: outputs.clone(),
                            evidence: BTreeMap::from([("reconciled".to_owned(), note.to_string())]),
                        })?;
                        (Outcome::Applied(changes), Some(outputs))
                    }
                    Some(Err(e)) => (
                        Outcome::Failed {
                            error: e.message,
                            hint: e.hint,
                        },
                        None,
                    ),
                    None => (Outcome::AlreadyDone(Some(note)), Some(outputs)),
                }
            }
            Ok(Check::Holds { outputs, note }) => {
                // Drift is journaled (once per finding), so `status` and reports show it.
                // An empty finding says it matches again.
                let drift = match &note {
                    Some(n @ Note::Drift(_)) => n.to_string(),
                    _ => String::new(),
                };
                if apply && p.drift.clone().unwrap_or_default() != drift {
                    w.append(Event::StepDrift {
                        step: step.id.clone(),
                        drift,
                    })?;
                }
                (Outcome::AlreadyDone(note), Some(outputs))
            }
            Ok(Check::ToDo(changes)) => (
                Outcome::Failed {
                    error: format!(
                        "it was done ({} by {}), but no longer holds: {}",
                        p.at,
                        p.actor,
                        changes.join("; ")
                    ),
                    hint: Some(format!("to do it again, re-run with --reapply {}", step.id)),
                },
                None,
            ),
            Ok(Check::Waiting { on, reason, .. }) => (Outcome::Waiting { on, reason }, None),
            Ok(Check::Uncertain { reason, .. }) => (Outcome::Uncertain(reason), None),
            Err(e) => (
                Outcome::Failed {
                    error: e.message,
                    hint: e.hint,
                },
                None,
            ),
        });
    }

    let check = if reapply && prior.is_some_and(|p| p.status == Status::Done) {
        Ok(Check::ToDo(vec!["apply again (--reapply)".into()]))
    } else {
        steps::check(step, ctx)
    };
    Ok(match check {
        Err(e) => (fail(step, w, e.message, e.hint)?, None),
        Ok(Check::Holds { outputs, note }) => {
            w.append(Event::StepDone {
                step: step.id.clone(),
                checksum: step.checksum.clone(),
                changes: Vec::new(),
                outputs: outputs.clone(),
                evidence: note
                    .iter()
                    .map(|n| ("note".to_owned(), n.to_string()))
                    .collect(),
            })?;
            (Outcome::AlreadyDone(note), Some(outputs))
        }
        Ok(Check::Waiting {
            on,
            reason,
            request,
        }) => {
            // Someone at this terminal may sign now.
            if apply
                && let Some(request) = &request
                && let Some(signature) = ctx.operator.sign(step, request)
            {
                let operators: Vec<&str> = ctx.operators.iter().map(String::as_str).collect();
                match steps::human::validate(request, &signature, &operators) {
                    Ok(()) => {
                        let at = w.clock.now().to_string();
                        return signed(
                            w,
                            ctx.store,
                            ctx.hire_id,
                            &step.id,
                            request,
                            signature,
                            &at,
                            ctx.outputs,
                        );
                    }
                    Err(problem) => {
                        return Ok((
                            Outcome::Waiting {
                                on,
                                reason: format!("the signature was not accepted: {problem}"),
                            },
                            None,
                        ));
                    }
                }
            }
            let same = prior.is_some_and(|p| p.status == Status::Waiting && p.request == request);
            if !same {
                w.append(Event::StepWaiting {
                    step: step.id.clone(),
                    on: on.clone(),
                    reason: reason.clone(),
                    request,
                })?;
            }
            (Outcome::Waiting { on, reason }, None)
        }
        Ok(Check::Uncertain { message_id, reason }) => {
            if !prior.is_some_and(|p| p.status == Status::Uncertain) {
                w.append(Event::StepUncertain {
                    step: step.id.clone(),
                    message_id,
                    reason: reason.clone(),
                })?;
            }
            (Outcome::Uncertain(reason), None)
        }
        Ok(Check::ToDo(changes)) if !apply => (Outcome::WouldDo(changes), None),
        Ok(Check::ToDo(_)) => execute(step, ctx, w)?,
    })
}

fn execute(
    step: &PlannedStep,
    ctx: &mut Ctx<'_>,
    w: &mut Writer<'_>,
) -> Result<(Outcome, Option<BTreeMap<String, String>>), EngineError> {
    // A value only known after an earlier step ran must never reach a target as a placeholder.
    let params = serde_json::to_string(&step.params).expect("params serialize");
    if params.contains(": known after it runs>") {
        let error = "a value it uses is not known yet (an earlier step has not produced it)";
        return Ok((fail(step, w, error.into(), None)?, None));
    }
    let intent = match steps::intent(step, ctx) {
        Ok(i) => i,
        Err(e) => return Ok((fail(step, w, e.message, e.hint)?, None)),
    };
    w.append(Event::StepStarted {
        step: step.id.clone(),
        kind: step.kind.to_owned(),
        checksum: step.checksum.clone(),
        intent: intent.clone(),
    })?;
    match steps::apply(step, &intent, ctx) {
        Ok(applied) => {
            w.failpoint(&format!("applied:{}", step.id));
            w.append(Event::StepDone {
                step: step.id.clone(),
                checksum: step.checksum.clone(),
                changes: applied.changes.clone(),
                outputs: applied.outputs.clone(),
                evidence: applied.evidence,
            })?;
            Ok((Outcome::Applied(applied.changes), Some(applied.outputs)))
        }
        Err(e) if e.uncertain && intent.contains_key("message_id") => {
            let reason = format!(
                "{}; whether it went out cannot be known (the server may have accepted it)",
                e.message
            );
            w.append(Event::StepUncertain {
                step: step.id.clone(),
                message_id: intent["message_id"].clone(),
                reason: reason.clone(),
            })?;
            Ok((Outcome::Uncertain(reason), None))
        }
        Err(e) => Ok((fail_as(step, w, e.message, e.hint, e.nothing_done)?, None)),
    }
}

fn fail(
    step: &PlannedStep,
    w: &mut Writer<'_>,
    error: String,
    hint: Option<String>,
) -> Result<Outcome, EngineError> {
    fail_as(step, w, error, hint, false)
}

fn fail_as(
    step: &PlannedStep,
    w: &mut Writer<'_>,
    error: String,
    hint: Option<String>,
    nothing_done: bool,
) -> Result<Outcome, EngineError> {
    w.append(Event::StepFailed {
        step: step.id.clone(),
        checksum: step.checksum.clone(),
        error: error.clone(),
        nothing_done,
    })?;
    Ok(Outcome::Failed { error, hint })
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

/// `onboard mark-sent`: the operator confirms that an interrupted send did go out. Records the
/// step as done with the journaled Message-ID; returns it.
pub fn mark_sent(
    store: &dyn Store,
    hire: &str,
    step: &str,
    actor: &str,
    note: &str,
    clock: Clock,
) -> Result<String, EngineError> {
    let holder = format!("mark-sent by {actor} (pid {})", std::process::id());
    let mut session = store.open(hire, &holder, &crate::secret::random_hex(8), actor)?;
    let state = journal::replay(&session.records);
    let prior = state
        .steps
        .get(step)
        .filter(|s| matches!(s.status, Status::Running | Status::Uncertain))
        .ok_or_else(|| {
            let now = state
                .steps
                .get(step)
                .map_or("unknown", |s| s.status.as_str());
            EngineError::Io(format!(
                "step {step} of hire {hire} is not an interrupted send (it is {now})"
            ))
        })?;
    let message_id = prior.intent.get("message_id").cloned().ok_or_else(|| {
        EngineError::Io(format!("step {step} of hire {hire} is not an email step"))
    })?;
    session
        .log
        .append(
            &clock.now().to_string(),
            Event::StepDone {
                step: step.to_owned(),
                checksum: prior.checksum.clone(),
                changes: vec![format!("marked as sent by {actor}: {note}")],
                outputs: BTreeMap::from([("message_id".to_owned(), message_id.clone())]),
                evidence: BTreeMap::from([
                    ("marked_sent_by".to_owned(), actor.to_owned()),
                    ("note".to_owned(), note.to_owned()),
                ]),
            },
        )
        .map_err(|e| EngineError::Io(format!("cannot write the journal: {e}")))?;
    Ok(message_id)
}

/// Records a valid signature (and, for a hand-off, writes the receipt).
#[allow(clippy::too_many_arguments)]
fn signed(
    w: &mut Writer<'_>,
    store: &dyn Store,
    hire: &str,
    step: &str,
    request: &journal::SignOffRequest,
    signature: steps::human::Signature,
    at: &str,
    outputs: &Outputs,
) -> Result<(Outcome, Option<BTreeMap<String, String>>), EngineError> {
    let steps::human::Signature {
        by,
        confirmed,
        refused,
        note,
        evidence,
    } = signature;
    w.append(Event::SignedOff {
        step: step.to_owned(),
        checksum: request.checksum.clone(),
        role: request.role.clone(),
        by: by.clone(),
        confirmed: confirmed.clone(),
        refused: refused.clone(),
        note,
        evidence,
        asset: request.asset.clone(),
    })?;
    if let Some(refusal) = refused {
        return Ok((
            Outcome::Failed {
                error: format!("{by} refused \"{}\": {}", refusal.item, refusal.reason),
                hint: Some("fix what was refused, then run again to sign it off".into()),
            },
            None,
        ));
    }
    let out = journal::signed_outputs(&by, at, &request.asset, request.cleaning.is_some());
    let mut changes = vec![format!("signed off by {by} ({})", request.role)];
    if let Some(cleaning) = &request.cleaning {
        let receipt = crate::receipt::Receipt {
            hire,
            step,
            request,
            received_by: &by,
            received_at: at,
            cleaning: outputs.get(cleaning),
        };
        if w.applying() {
            let path = store
                .keep_receipt(hire, step, &receipt.text(), &receipt.html())
                .map_err(|e| EngineError::Io(format!("cannot write the receipt: {e}")))?;
            changes.push(format!("receipt {path}"));
        }
    }
    Ok((Outcome::Applied(changes), Some(out)))
}

/// `onboard sign-off`: records a signature for a waiting step, from the journal alone.
/// Evidence files are copied into the state directory and recorded with their SHA-256.
pub fn sign_off(
    store: &dyn Store,
    hire: &str,
    step: &str,
    mut signature: steps::human::Signature,
    evidence_files: &[std::path::PathBuf],
    settings: &Settings,
) -> Result<Outcome, EngineError> {
    let holder = format!(
        "sign-off by {} (pid {})",
        settings.actor,
        std::process::id()
    );
    let mut session = store.open(
        hire,
        &holder,
        &crate::secret::random_hex(8),
        &settings.actor,
    )?;
    let state = journal::replay(&session.records);
    let current = state.steps.get(step);
    let request = current
        .filter(|s| s.status == Status::Waiting)
        .and_then(|s| s.request.clone())
        .ok_or_else(|| {
            EngineError::Refused(match current {
                None => format!(
                    "hire {hire} has no step {step} in its journal yet; run the playbook first"
                ),
                Some(s) if s.status == Status::Done => {
                    format!("{step} is already signed off ({} by {})", s.at, s.actor)
                }
                Some(s) => format!(
                    "{step} is not waiting for a signature (it is {}{})",
                    s.status.as_str(),
                    if s.detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", s.detail)
                    }
                ),
            })
        })?;
    for file in evidence_files {
        let bytes = crate::files::read_regular(file, crate::files::EVIDENCE_LIMIT)
            .map_err(|e| EngineError::Refused(e.to_string()))?;
        let sha = crate::digest::sha256(&bytes);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "evidence".into());
        store
            .keep_evidence(hire, &name, &bytes)
            .map_err(|e| EngineError::Io(format!("cannot keep the evidence file: {e}")))?;
        signature.evidence.insert(format!("file:{name}"), sha);
    }
    let operators: Vec<&str> = state.operators.iter().map(String::as_str).collect();
    steps::human::validate(&request, &signature, &operators).map_err(EngineError::Refused)?;
    let mut w = Writer {
        journal: Some(&mut *session.log),
        clock: settings.clock,
        failpoint: None,
    };
    let at = settings.clock.now().to_string();
    let outputs = done_outputs(&state);
    let (outcome, _) = signed(
        &mut w, store, hire, step, &request, signature, &at, &outputs,
    )?;
    Ok(outcome)
}

/// The at-risk notice as a step, if the hire is at risk or late now and was not told yet.
fn at_risk_notice(
    pb: &Playbook,
    email: &crate::model::Email,
    hire: &str,
    store: &dyn Store,
    settings: &Settings,
    ctx: &mut steps::Ctx<'_>,
) -> Result<Option<PlannedStep>, EngineError> {
    if ctx.prior.is_some_and(|p| p.status == Status::Done) {
        return Ok(None);
    }
    // The journal as this run left it.
    let (state, _) = read_state(store, hire)?;
    let assessment = crate::readiness::assess(&state, settings.clock.now());
    if !assessment.readiness.alarming() {
        return Ok(None);
    }
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
    let params = crate::plan::render_email(pb, email, &tctx).map_err(EngineError::Plan)?;
    let params = Params::Email(Box::new(params));
    Ok(Some(PlannedStep {
        id: NOTIFY_AT_RISK.to_owned(),
        title: "Tell the manager the hire is at risk".to_owned(),
        kind: "email",
        needs: Vec::new(),
        action: crate::plan::describe(&params),
        checksum: crate::plan::checksum(&params),
        params,
        known_after_run: Vec::new(),
        now: None,
        deadline: None,
    }))
}
