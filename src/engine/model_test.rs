//! The engine as a state machine, against a model of what may happen.
//!
//! Random sequences of runs, sign-offs, refusals, resolutions and `mark-sent`, over the
//! embedded default (the LDIF directory and the outbox) behind a wrapper that can fail any
//! target call (before or after its effect: a lost reply) or kill the run there (after its
//! effect, too: the step's effect exists and its `step_done` does not). Runs may `--reapply`,
//! `--reconcile`, `--resend-uncertain`, or come with the hire moved to another department. After
//! every operation the invariants are checked:
//!
//! - no effect happens twice unless `--reapply`/`--resend-uncertain` names it: one entry, one
//!   membership per group, one welcome, one message per refusal, and a password message only
//!   for a start of the account step (never for a reapplied account that was done);
//! - a done step stays done, unless a later `--reapply` named it;
//! - `status` is ready only when every step of the plan is done;
//! - the journal verifies;
//! - a refusal is visible (on the step and among the blockers) until it is resolved.
//!
//! `ONBOARD_MODEL_CASES` sets how many sequences (default 1000); a failure prints the minimal
//! sequence, and `PROPTEST_RNG_SEED` replays a whole run of cases.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use proptest::prelude::*;

use super::{Clock, EngineError, Mode, Outcome, Progress, Settings, Targets};
use crate::backend::directory::ldif::{EXAMPLE_DIRECTORY, LdifDirectory};
use crate::backend::directory::{Directory, Entry};
use crate::backend::mail::outbox::Outbox;
use crate::backend::mail::{Mailer, Outgoing};
use crate::backend::{BackendError, BackendResult};
use crate::journal::{self, Refusal, Status};
use crate::load::Playbook;
use crate::plan::PlannedStep;
use crate::secret::Secret;
use crate::state::StateDir;
use crate::steps::Operator;
use crate::steps::human::Signature;
use crate::store::Store;

const HIRE: &str = "E1042";
const STEPS: [&str; 5] = [
    "account",
    "groups",
    "laptop-cleaning",
    "laptop-handoff",
    "welcome",
];
const HANDOFF: &str = "laptop-handoff";

/// What the wrapper does at one target call of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The call fails; nothing happened (a server that is down).
    Fail,
    /// The call happens, and its reply is lost (a timeout after the server acted).
    FailAfter,
    /// The process dies before the call.
    Kill,
    /// The process dies right after the call took effect.
    KillAfter,
}

#[derive(Debug, Clone)]
enum Op {
    Run {
        /// The n-th target call of the run meets the fault.
        fault: Option<(u8, Fault)>,
        reapply: Vec<&'static str>,
        reconcile: bool,
        resend: bool,
        /// The hire moved to Research (the playbook's parameters changed).
        moved: bool,
        /// The mail target cannot say what it received (as SMTP).
        smtp: bool,
    },
    SignCleaning,
    SignHandoff,
    RefuseHandoff,
    Resolve,
    MarkSent(&'static str),
}

fn op() -> impl Strategy<Value = Op> {
    let fault = prop::option::weighted(
        0.7,
        (
            0u8..40,
            prop_oneof![
                Just(Fault::Fail),
                Just(Fault::FailAfter),
                Just(Fault::Kill),
                Just(Fault::KillAfter),
            ],
        ),
    );
    let reapply = prop::sample::subsequence(vec!["account", "groups", "welcome"], 0..=3);
    let run = (
        fault,
        prop_oneof![4 => Just(vec![]), 1 => reapply],
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(fault, reapply, reconcile, resend, moved, smtp)| Op::Run {
            fault,
            reapply,
            reconcile,
            resend,
            moved,
            smtp,
        });
    prop_oneof![
        6 => run,
        2 => Just(Op::SignCleaning),
        2 => Just(Op::SignHandoff),
        1 => Just(Op::RefuseHandoff),
        1 => Just(Op::Resolve),
        1 => prop_oneof![Just(Op::MarkSent("welcome")), Just(Op::MarkSent("account"))],
    ]
}

/// What the targets did, across every run of a sequence.
#[derive(Debug, Default)]
struct Effects {
    /// Entries added, by DN.
    adds: BTreeMap<String, u32>,
    /// Values added, by (DN, attribute, value): group memberships.
    values: BTreeMap<(String, String, String), u32>,
    /// Messages accepted by the mail target, by the step in their Message-ID.
    sent: BTreeMap<String, u32>,
    /// Target calls of the current run, and the fault planned for it.
    calls: u8,
    fault: Option<(u8, Fault)>,
}

/// The panic payload of a simulated kill (`resume_unwind`: no panic message).
struct Killed;

impl Effects {
    /// Runs one target call under the planned fault; `effect` says what it did when it did.
    fn call<T>(
        cell: &RefCell<Effects>,
        op: impl FnOnce() -> BackendResult<T>,
        effect: impl FnOnce(&mut Effects),
    ) -> BackendResult<T> {
        let fault = {
            let mut e = cell.borrow_mut();
            let n = e.calls;
            e.calls = e.calls.saturating_add(1);
            e.fault.filter(|(at, _)| *at == n).map(|(_, f)| f)
        };
        match fault {
            Some(Fault::Fail) => return Err(BackendError::Unavailable("injected: down".into())),
            Some(Fault::Kill) => resume_unwind(Box::new(Killed)),
            _ => {}
        }
        let result = op();
        if result.is_ok() {
            effect(&mut cell.borrow_mut());
        }
        match fault {
            Some(Fault::FailAfter) if result.is_ok() => Err(BackendError::Uncertain(
                "injected: the reply was lost".into(),
            )),
            Some(Fault::KillAfter) => resume_unwind(Box::new(Killed)),
            _ => result,
        }
    }
}

struct FaultyDirectory {
    inner: LdifDirectory,
    effects: Rc<RefCell<Effects>>,
}

impl Directory for FaultyDirectory {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read(&mut self, dn: &str) -> BackendResult<Option<Entry>> {
        let inner = &mut self.inner;
        Effects::call(&self.effects, || inner.read(dn), |_| {})
    }
    fn find(&mut self, base: &str, attr: &str, value: &str) -> BackendResult<Vec<Entry>> {
        let inner = &mut self.inner;
        Effects::call(&self.effects, || inner.find(base, attr, value), |_| {})
    }
    fn values(&mut self, base: &str, attr: &str) -> BackendResult<Vec<String>> {
        let inner = &mut self.inner;
        Effects::call(&self.effects, || inner.values(base, attr), |_| {})
    }
    fn add(&mut self, entry: &Entry) -> BackendResult<()> {
        let inner = &mut self.inner;
        Effects::call(
            &self.effects,
            || inner.add(entry),
            |e| *e.adds.entry(entry.dn.to_lowercase()).or_default() += 1,
        )
    }
    fn add_values(&mut self, dn: &str, attr: &str, values: &[String]) -> BackendResult<()> {
        let inner = &mut self.inner;
        Effects::call(
            &self.effects,
            || inner.add_values(dn, attr, values),
            |e| {
                for v in values {
                    let key = (dn.to_lowercase(), attr.to_lowercase(), v.to_lowercase());
                    *e.values.entry(key).or_default() += 1;
                }
            },
        )
    }
    fn replace(&mut self, dn: &str, attr: &str, values: &[String]) -> BackendResult<()> {
        let inner = &mut self.inner;
        Effects::call(&self.effects, || inner.replace(dn, attr, values), |_| {})
    }
    fn set_password(&mut self, dn: &str, password: &Secret) -> BackendResult<()> {
        let inner = &mut self.inner;
        Effects::call(&self.effects, || inner.set_password(dn, password), |_| {})
    }
    fn check_password(&mut self, dn: &str, password: &Secret) -> BackendResult<bool> {
        let inner = &mut self.inner;
        Effects::call(&self.effects, || inner.check_password(dn, password), |_| {})
    }
    fn has_value(&mut self, dn: &str, attr: &str, value: &str) -> BackendResult<bool> {
        let inner = &mut self.inner;
        Effects::call(&self.effects, || inner.has_value(dn, attr, value), |_| {})
    }
}

struct FaultyMailer {
    inner: Outbox,
    /// Like SMTP: cannot say whether a message was received.
    smtp: bool,
    effects: Rc<RefCell<Effects>>,
}

/// `<hex.STEP.HIRE@domain>` → STEP.
fn step_of(message_id: &str) -> String {
    message_id.split('.').nth(1).unwrap_or("?").to_owned()
}

impl Mailer for FaultyMailer {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn send(&mut self, message: &Outgoing<'_>) -> BackendResult<()> {
        let inner = &mut self.inner;
        Effects::call(
            &self.effects,
            || inner.send(message),
            |e| *e.sent.entry(step_of(message.message_id)).or_default() += 1,
        )
    }
    fn was_sent(&mut self, message_id: &str) -> BackendResult<Option<bool>> {
        if self.smtp {
            return Ok(None);
        }
        let inner = &mut self.inner;
        Effects::call(&self.effects, || inner.was_sent(message_id), |_| {})
    }
}

struct Quiet;

impl Progress for Quiet {
    fn started(&mut self, _: &PlannedStep) {}
    fn finished(&mut self, _: &PlannedStep, _: &Outcome) {}
}

impl Operator for Quiet {
    fn can_show_secret(&self) -> bool {
        false
    }
    fn show_password(&mut self, _: &str, _: &str, _: &Secret) -> std::io::Result<()> {
        Err(std::io::Error::other("no terminal"))
    }
}

/// The shipped standard checklist with a `notify` section, as two hire files: the hire in
/// Engineering, and moved to Research.
struct Files {
    _dir: tempfile::TempDir,
    state: PathBuf,
    playbooks: [Playbook; 2],
}

fn files() -> Files {
    // In memory where the machine has it: thousands of sequences fsync a great deal.
    let dir = match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    for f in std::fs::read_dir(repo.join("templates")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), templates.join(f.file_name())).unwrap();
    }
    let books = dir.path().join("playbooks");
    std::fs::create_dir(&books).unwrap();
    let shipped = std::fs::read_to_string(repo.join("playbooks/new-hire.yaml")).unwrap();
    let notify = "notify:\n  from: \"IT <it@example.org>\"\n  to: \"{{ hire.manager_email }}\"\n  \
                  cc: helpdesk@example.org\n  at_risk:\n    subject: \"{{ hire.given_name }} may not be ready\"\n    \
                  text: notify-at-risk.txt.tera\n    html: notify-at-risk.html.tera\n\nsteps:\n";
    let checklist = shipped.replacen("\nsteps:\n", &format!("\n{notify}"), 1);
    assert_ne!(checklist, shipped, "the shipped checklist has `steps:`");
    let playbooks = ["Engineering", "Research"].map(|department| {
        let text = checklist.replace(
            "department: Engineering",
            &format!("department: {department}"),
        );
        let path = books.join(format!("{department}.yaml"));
        std::fs::write(&path, text).unwrap();
        let req = crate::load::Request {
            playbook: path,
            ..Default::default()
        };
        let mut sources = crate::diag::SourceMap::default();
        crate::plan::load_and_plan(&req, &mut sources, &Default::default())
            .map_err(|d| format!("{d:?}"))
            .expect("the model's playbook loads")
            .0
    });
    Files {
        state: dir.path().join("state"),
        _dir: dir,
        playbooks,
    }
}

/// What the model expects beyond what the journal says.
#[derive(Default)]
struct Model {
    /// Sends of a step the operator allowed again (`--reapply`, `--resend-uncertain`).
    allowed: BTreeMap<String, u32>,
    /// Runs with `--resend-uncertain`: each may send any uncertain message again.
    resends: u32,
    /// Steps seen done and not reapplied since.
    done: BTreeSet<String>,
    /// The hand-off has a refusal nobody resolved.
    refused: bool,
}

struct Machine {
    files: Files,
    store: StateDir,
    effects: Rc<RefCell<Effects>>,
    model: Model,
    log: Vec<String>,
}

impl Machine {
    fn new() -> Machine {
        let files = files();
        let store = StateDir::open(&files.state).unwrap();
        Machine {
            files,
            store,
            effects: Rc::default(),
            model: Model::default(),
            log: Vec::new(),
        }
    }

    fn settings(actor: &str) -> Settings {
        Settings {
            mode: Mode::Apply,
            actor: actor.to_owned(),
            clock: Clock::Fixed("2026-11-23T10:00:00Z".parse().unwrap()),
            reapply: Vec::new(),
            reconcile: false,
            resend_uncertain: false,
            failpoint: None,
        }
    }

    fn state(&self) -> journal::HireState {
        super::read_state(&self.store, HIRE)
            .map(|(s, _)| s)
            .unwrap_or_default()
    }

    fn apply(&mut self, op: &Op) {
        let before = self.state();
        let password_messages = self.sent("password");
        match op {
            Op::Run {
                fault,
                reapply,
                reconcile,
                resend,
                moved,
                smtp,
            } => {
                let mut settings = Self::settings("alice");
                settings.reapply = reapply.iter().map(|s| s.to_string()).collect();
                settings.reconcile = *reconcile;
                settings.resend_uncertain = *resend;
                for step in reapply {
                    *self.model.allowed.entry(step.to_string()).or_default() += 1;
                    self.model.done.remove(*step);
                }
                if *resend {
                    self.model.resends += 1;
                }
                {
                    let mut e = self.effects.borrow_mut();
                    e.calls = 0;
                    e.fault = *fault;
                }
                let result = self.run(&settings, *moved, *smtp);
                self.effects.borrow_mut().fault = None;
                self.log.push(format!("{op:?} -> {result}"));
                // A reapplied account that was done keeps its password.
                if reapply.contains(&"account")
                    && before
                        .steps
                        .get("account")
                        .is_some_and(|s| s.status == Status::Done)
                {
                    assert_eq!(
                        self.sent("password"),
                        password_messages,
                        "a reapplied account that was done set and mailed a new password"
                    );
                }
            }
            Op::SignCleaning => {
                let r = self.sign("laptop-cleaning", "tom", "Tom Tech", None);
                self.log.push(format!("{op:?} -> {r:?}"));
            }
            Op::SignHandoff => {
                let r = self.sign(HANDOFF, "ada", "Ada Lovelace", None);
                if r.as_ref().is_ok_and(|o| o.is_done()) {
                    self.model.refused = false;
                }
                self.log.push(format!("{op:?} -> {r:?}"));
            }
            Op::RefuseHandoff => {
                let r = self.sign(HANDOFF, "ada", "Ada Lovelace", Some("no USB-C dock"));
                if r.as_ref()
                    .is_ok_and(|o| matches!(o, Outcome::Failed { .. }))
                {
                    self.model.refused = true;
                }
                self.log.push(format!("{op:?} -> {r:?}"));
            }
            Op::Resolve => {
                let r = super::resolve(
                    &self.store,
                    HIRE,
                    HANDOFF,
                    "dock delivered",
                    &Self::settings("alice"),
                );
                assert_eq!(r.is_ok(), self.model.refused, "resolve: {r:?}");
                self.model.refused = false;
                self.log.push(format!("{op:?} -> {}", r.is_ok()));
            }
            Op::MarkSent(step) => {
                let r = super::mark_sent(
                    &self.store,
                    HIRE,
                    step,
                    "alice",
                    "seen in the mailbox",
                    Self::settings("alice").clock,
                );
                self.log.push(format!("{op:?} -> {}", r.is_ok()));
            }
        }
        self.check(&before);
    }

    /// One run; a simulated kill ends it where it is.
    fn run(&mut self, settings: &Settings, moved: bool, smtp: bool) -> String {
        let directory = LdifDirectory::open(&self.store.directory_ldif(), EXAMPLE_DIRECTORY);
        let outbox = Outbox::open(&self.store.outbox());
        let (Ok(inner), Ok(outbox)) = (directory, outbox) else {
            panic!("cannot open the embedded targets");
        };
        let mut directory = FaultyDirectory {
            inner,
            effects: self.effects.clone(),
        };
        let mut mailer = FaultyMailer {
            inner: outbox,
            smtp,
            effects: self.effects.clone(),
        };
        let scim = crate::backend::scim::ScimApps::default();
        let pb = &self.files.playbooks[usize::from(moved)];
        let store = &self.store;
        let result = catch_unwind(AssertUnwindSafe(|| {
            super::run(
                pb,
                store,
                Targets {
                    directory: &mut directory,
                    mailer: &mut mailer,
                    links: None,
                    scim: &scim,
                },
                settings,
                &mut Quiet,
            )
        }));
        match result {
            Ok(Ok(report)) => {
                let c = report.counts();
                let failed: Vec<String> = report
                    .steps
                    .iter()
                    .filter_map(|s| match &s.outcome {
                        Outcome::Failed { error, .. } => Some(format!("{}: {error}", s.id)),
                        _ => None,
                    })
                    .collect();
                format!(
                    "applied {} done {} waiting {} failed {} skipped {} uncertain {} {failed:?}",
                    c.applied, c.already_done, c.waiting, c.failed, c.skipped, c.uncertain
                )
            }
            Ok(Err(e)) => format!("error: {e}"),
            Err(payload) if payload.is::<Killed>() => "killed".to_owned(),
            Err(payload) => resume_unwind(payload),
        }
    }

    fn sign(
        &mut self,
        step: &str,
        actor: &str,
        by: &str,
        refuse: Option<&str>,
    ) -> Result<Outcome, EngineError> {
        let state = self.state();
        let items = state
            .steps
            .get(step)
            .and_then(|s| s.request.as_ref())
            .map(|r| r.items.clone())
            .unwrap_or_default();
        let signature = Signature {
            by: by.to_owned(),
            confirmed: if refuse.is_some() {
                Vec::new()
            } else {
                items.clone()
            },
            refused: refuse.map(|reason| Refusal {
                item: items.last().cloned().unwrap_or_default(),
                reason: reason.to_owned(),
            }),
            note: String::new(),
            evidence: BTreeMap::from([("wipe_certificate_id".to_owned(), "WC-1".to_owned())]),
            how: "terminal".to_owned(),
            witness: String::new(),
        };
        super::sign_off(
            &self.store,
            HIRE,
            step,
            signature,
            &[],
            &Self::settings(actor),
        )
    }

    fn sent(&self, step: &str) -> u32 {
        self.effects.borrow().sent.get(step).copied().unwrap_or(0)
    }

    /// The invariants, after every operation.
    fn check(&mut self, before: &journal::HireState) {
        // The journal verifies, whole.
        let text = self.store.read(HIRE).map(|t| t.text).unwrap_or_default();
        journal::verify(&text).expect("the journal verifies");
        let state = self.state();
        let e = self.effects.borrow();

        // Each entry added once; each membership added once.
        for (dn, n) in &e.adds {
            assert_eq!(*n, 1, "{dn} was added {n} times");
        }
        for (v, n) in &e.values {
            assert_eq!(*n, 1, "{v:?} was added {n} times");
        }
        // No message twice unless the operator said so.
        for (step, n) in &e.sent {
            let allowed =
                1 + self.model.resends + self.model.allowed.get(step).copied().unwrap_or(0);
            if step == "password" {
                let starts = text
                    .matches("\"type\":\"step_started\",\"step\":\"account\"")
                    .count();
                assert!(
                    *n as usize <= starts.max(1),
                    "{n} password messages for {starts} starts of the account step"
                );
            } else {
                assert!(
                    *n <= allowed,
                    "{step} was sent {n} times (allowed {allowed})"
                );
            }
        }

        // A done step stays done unless reapplied since.
        for step in &self.model.done {
            let now = state.steps.get(step).map(|s| s.status);
            assert_eq!(
                now,
                Some(Status::Done),
                "{step} was done and is now {now:?} (before: {:?})",
                before.steps.get(step).map(|s| s.status)
            );
        }
        for (id, s) in &state.steps {
            if s.status == Status::Done && STEPS.contains(&id.as_str()) {
                self.model.done.insert(id.clone());
            }
        }

        // Ready only when every step of the plan is done.
        let now = "2026-11-23T10:00:00Z".parse().unwrap();
        let assessment = crate::readiness::assess(&state, now);
        if assessment.readiness == crate::readiness::Readiness::Ready {
            for step in STEPS {
                assert_eq!(
                    state.steps.get(step).map(|s| s.status),
                    Some(Status::Done),
                    "ready, but {step} is not done"
                );
            }
        }

        // A refusal shows until it is resolved.
        let open = state
            .steps
            .get(HANDOFF)
            .map(|s| s.refusals_open.clone())
            .unwrap_or_default();
        assert_eq!(
            !open.is_empty(),
            self.model.refused,
            "the refusal's visibility"
        );
        for r in &open {
            let shown = &state.steps[HANDOFF].detail;
            assert!(shown.contains(&r.reason), "not shown: {shown}");
            assert!(
                assessment
                    .blockers
                    .iter()
                    .any(|b| b.step == HANDOFF && b.summary.contains(&r.reason)),
                "not among the blockers: {:?}",
                assessment.blockers
            );
        }
    }
}

fn cases() -> u32 {
    std::env::var("ONBOARD_MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_engine_keeps_its_promises_under_any_sequence(ops in prop::collection::vec(op(), 1..14)) {
        let mut m = Machine::new();
        for op in &ops {
            let applied = catch_unwind(AssertUnwindSafe(|| m.apply(op)));
            if let Err(payload) = applied {
                let why = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                prop_assert!(false, "{why}\nafter:\n  {}", m.log.join("\n  "));
            }
        }
    }
}
