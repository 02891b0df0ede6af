//! What each kind of step does against the targets: check (read-only), intent, apply+verify.
//!
//! - `check` looks, never changes: is the effect already there, what would change, or is a
//!   person needed. The dry run is `check` alone.
//! - `intent` decides what the effect will be known by (a Message-ID, a uidNumber) so the engine
//!   can journal it before acting.
//! - `apply` makes the change and verifies it by reading it back.

pub mod account;
pub mod email;
pub mod groups;
pub mod human;

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::backend::{directory::Directory, mail::Mailer};
use crate::journal::{SignOffRequest, StepState};
use crate::load::Playbook;
use crate::plan::{Params, PlannedStep};
use crate::secret::Secret;

/// Where the engine asks for things only the operator's terminal can do.
pub trait Operator {
    /// Whether a secret can be shown to the operator (a terminal is attached).
    fn can_show_secret(&self) -> bool;
    /// Shows an initial password to the operator, once.
    fn show_password(&mut self, hire: &str, login: &str, password: &Secret) -> Result<(), String>;
    /// Asks the person at the terminal to sign `request` now. `None`: not now (no terminal,
    /// `--no-prompt`, or they declined); the step then waits.
    fn sign(&mut self, _step: &PlannedStep, _request: &SignOffRequest) -> Option<human::Signature> {
        None
    }
}

/// Everything a step may use.
pub struct Ctx<'a> {
    pub pb: &'a Playbook,
    pub directory: &'a mut dyn Directory,
    pub mailer: &'a mut dyn Mailer,
    pub operator: &'a mut dyn Operator,
    pub hire_id: &'a str,
    /// What the journal says about this step, if anything.
    pub prior: Option<&'a StepState>,
    pub now: SystemTime,
    /// The `from` address for messages onboard sends on its own (e.g. a password to a manager).
    pub from: &'a str,
    /// Held from allocating a uidNumber until the entry carrying it exists.
    pub held: Option<crate::store::Guard>,
    /// Send again what an interrupted run may or may not have sent (`--resend-uncertain`).
    pub resend_uncertain: bool,
    /// Outputs of the hire's done steps (a hand-off reads its cleaning sign-off's).
    pub outputs: &'a crate::plan::Outputs,
    /// Who ran the hire's automated steps (for dual control).
    pub operators: &'a std::collections::BTreeSet<String>,
    /// Where the hire's record is kept (allocation lock, receipts).
    pub store: &'a dyn crate::store::Store,
}

/// What `check` found.
pub enum Check {
    /// The effect is there; these are the step's outputs.
    Holds {
        outputs: BTreeMap<String, String>,
        note: Option<Note>,
    },
    /// Applying would make these changes.
    ToDo(Vec<String>),
    /// A person must act; `request` is what they would sign.
    Waiting {
        on: String,
        reason: String,
        request: Option<SignOffRequest>,
    },
    /// An interrupted send that cannot be checked: the operator decides.
    Uncertain { message_id: String, reason: String },
}

/// What `apply` did.
pub struct Applied {
    pub changes: Vec<String>,
    pub outputs: BTreeMap<String, String>,
    pub evidence: BTreeMap<String, String>,
}

/// A step that cannot proceed, with what to do about it.
#[derive(Debug)]
pub struct StepError {
    pub message: String,
    pub hint: Option<String>,
    /// The effect may or may not have happened (a send cut off mid-conversation): the step is
    /// recorded as uncertain, for the operator to decide, instead of failed.
    pub uncertain: bool,
    /// Refused before any effect: the journal's intent for the step is void.
    pub nothing_done: bool,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            hint: None,
            uncertain: false,
            nothing_done: false,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> StepError {
        self.hint = Some(hint.into());
        self
    }

    /// Marks the error as a refusal before any effect.
    pub fn nothing_done(mut self) -> StepError {
        self.nothing_done = true;
        self
    }
}

impl From<crate::backend::BackendError> for StepError {
    fn from(e: crate::backend::BackendError) -> Self {
        let uncertain = matches!(e, crate::backend::BackendError::Uncertain(_));
        StepError {
            uncertain,
            ..StepError::new(e.to_string())
        }
    }
}

pub type StepResult<T> = Result<T, StepError>;

/// What a step that holds has to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Done, but the target no longer matches the playbook in these ways.
    Drift(Vec<String>),
    /// Anything else worth saying (e.g. "sent by the interrupted run").
    Info(String),
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Drift(what) => write!(f, "drift: {}", what.join("; ")),
            Note::Info(text) => f.write_str(text),
        }
    }
}

pub fn check(step: &PlannedStep, ctx: &mut Ctx<'_>) -> StepResult<Check> {
    // What a person did is known from the journal alone.
    if let (Params::SignOff { .. } | Params::DeviceHandoff { .. }, Some(prior)) =
        (&step.params, ctx.prior)
        && prior.status == crate::journal::Status::Done
    {
        return Ok(Check::Holds {
            outputs: prior.outputs.clone(),
            note: None,
        });
    }
    match &step.params {
        Params::LdapAccount { .. } => account::check(step, ctx),
        Params::LdapGroups(_) => groups::check(step, ctx),
        Params::Email(p) => email::check(p, ctx),
        Params::SignOff { .. } | Params::DeviceHandoff { .. } => human::check(step, ctx),
    }
}

pub fn intent(step: &PlannedStep, ctx: &mut Ctx<'_>) -> StepResult<BTreeMap<String, String>> {
    match &step.params {
        Params::LdapAccount { .. } => account::intent(step, ctx),
        Params::Email(p) => Ok(email::intent(&step.id, p, ctx)),
        _ => Ok(BTreeMap::new()),
    }
}

/// Brings a done step back to its declared state without redoing it (`--reconcile`). `None`
/// for kinds with nothing to reconcile.
pub fn reconcile(step: &PlannedStep, ctx: &mut Ctx<'_>) -> Option<StepResult<Vec<String>>> {
    match &step.params {
        Params::LdapAccount { .. } => Some(account::reconcile(step, ctx)),
        _ => None,
    }
}

pub fn apply(
    step: &PlannedStep,
    intent: &BTreeMap<String, String>,
    ctx: &mut Ctx<'_>,
) -> StepResult<Applied> {
    match &step.params {
        Params::LdapAccount { .. } => account::apply(step, intent, ctx),
        Params::LdapGroups(_) => groups::apply(step, ctx),
        Params::Email(p) => email::apply(p, intent, ctx),
        Params::SignOff { .. } | Params::DeviceHandoff { .. } => Err(StepError::new(
            "this step is done by a person and cannot be applied automatically",
        )),
    }
}

impl Params {
    /// The parameters as `name: value` lines for people (the dry run's listing).
    pub fn fields(&self) -> Vec<(String, String)> {
        match self {
            Params::LdapAccount(p) => account::spec::fields(p),
            Params::LdapGroups(p) => groups::fields(&p.member_dn, &p.groups),
            Params::SignOff { .. } | Params::DeviceHandoff { .. } => human::fields(self),
            Params::Email(e) => email::spec::fields(e),
        }
    }

    /// Whether onboard itself does it (as opposed to a person signing).
    pub fn is_automated(&self) -> bool {
        !matches!(self, Params::SignOff { .. } | Params::DeviceHandoff { .. })
    }
}
