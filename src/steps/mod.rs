//! Every kind of step, registered once in `kinds!` below, and what they share.
//!
//! A kind is one file (or folder) here implementing [`Kind`]: its YAML type (the kind's own
//! struct), rendered parameters, outputs, description, and what it does against the targets:
//! - `check` looks, never changes: is the effect already there, what would change, or is a
//!   person needed. The dry run is `check` alone.
//! - `intent` decides what the effect will be known by (a Message-ID, a uidNumber) so the engine
//!   can journal it before acting.
//! - `apply` makes the change and verifies it by reading it back.

pub mod account;
pub mod acknowledge;
pub mod device_handoff;
pub mod email;
pub mod groups;
pub mod human;
pub mod scim_groups;
pub mod scim_user;
pub mod sign_off;

use std::collections::BTreeMap;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backend::{directory::Directory, mail::Mailer};
use crate::diag::Span;
use crate::journal::{SignOffRequest, StepState};
use crate::load::{Playbook, Step};
use crate::plan::{Outputs, PlannedStep, Renderer};
use crate::secret::Secret;
use crate::yaml::Spanned;

/// A kind of step. `Self` is what the playbook writes under the kind's key.
pub trait Kind: Clone + std::fmt::Debug {
    /// The rendered parameters: what the plan shows and what its checksum covers.
    type Params: Clone + std::fmt::Debug + Serialize;
    /// Names of the outputs later steps can use (`steps.ID.NAME`).
    const OUTPUTS: &'static [&'static str];
    /// Whether onboard does it itself; `false`: a person signs it (and the journal alone
    /// says whether it is done).
    const AUTOMATED: bool = true;
    /// Whether its effect is a message that, once sent, cannot be changed (only sent again):
    /// a done one whose parameters changed is reported, not failed.
    const SENT_ONCE: bool = false;

    /// A step this one names in its parameters (an implicit `needs`).
    fn names_step(&self) -> Option<StepRef> {
        None
    }
    /// Renders the parameters; problems go to `r` (`None` when nothing could be rendered).
    fn render(&self, r: &mut Renderer<'_>, step: &Step, outputs: &Outputs) -> Option<Self::Params>;
    /// Outputs known from the parameters alone; the others of `OUTPUTS` are pushed on `later`
    /// (known after the step runs).
    fn outputs(_p: &Self::Params, _known: &mut BTreeMap<String, String>, later: &mut Vec<String>) {
        later.extend(Self::OUTPUTS.iter().map(|o| o.to_string()));
    }
    /// One line saying what the step would do.
    fn describe(p: &Self::Params) -> String;
    /// The parameters as `name: value` lines for people (the dry run's listing).
    fn fields(p: &Self::Params) -> Vec<(String, String)>;
    fn check(step: &PlannedStep, p: &Self::Params, ctx: &mut Ctx<'_>) -> StepResult<Check>;
    /// For a kind a person signs: why it waits and what they will sign, from the parameters
    /// alone. A step held back by a step it needs journals it, so it can be signed the moment
    /// that step is done, from the journal alone. `None` for automated kinds.
    fn asks(_step: &PlannedStep, _p: &Self::Params) -> Option<(String, SignOffRequest)> {
        None
    }
    fn intent(
        _step: &PlannedStep,
        _p: &Self::Params,
        _ctx: &mut Ctx<'_>,
    ) -> StepResult<BTreeMap<String, String>> {
        Ok(BTreeMap::new())
    }
    /// Brings a done step back to its declared state without redoing it (`--reconcile`).
    /// `None` for kinds with nothing to reconcile.
    fn reconcile(
        _step: &PlannedStep,
        _p: &Self::Params,
        _ctx: &mut Ctx<'_>,
    ) -> Option<StepResult<Vec<String>>> {
        None
    }
    fn apply(
        _step: &PlannedStep,
        _p: &Self::Params,
        _intent: &BTreeMap<String, String>,
        _ctx: &mut Ctx<'_>,
    ) -> StepResult<Applied> {
        Err(StepError::new(
            "this step is done by a person and cannot be applied automatically",
        ))
    }
}

/// A registered kind's YAML key (implemented by `kinds!`, never by hand).
pub trait Named {
    const NAME: &'static str;
}

/// A step named inside another's parameters (`account:`, `cleaning:`): an implicit `needs`
/// that must be of a given kind.
pub struct StepRef {
    /// The key that names it.
    pub key: &'static str,
    pub step: Spanned<String>,
    /// The kind that step must be (its `Named::NAME`), and the article said before it.
    pub kind: &'static str,
    pub article: &'static str,
    /// What to do when it is not.
    pub hint: &'static str,
}

/// The registry: every kind once, as `yaml_key: Variant(Type)`, with the doc comment the
/// JSON Schema shows. The order is the order of the schema and of "give it one of" hints.
macro_rules! kinds {
    ($( $(#[$meta:meta])* $key:ident: $Variant:ident($Doc:ty), )+) => {
        /// One step of the checklist as written.
        #[derive(Debug, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields, rename = "step")]
        pub struct StepDoc {
            /// Stable identifier: the journal records steps by it, so do not rename a step that has
            /// run. Letters, digits, `_` and `-`.
            pub id: Spanned<String>,
            /// What the step does, for people ("Create the directory account").
            pub title: Option<String>,
            /// Steps that must be done before this one.
            #[serde(default)]
            pub needs: Vec<Spanned<String>>,
            /// When it must be done, relative to the hire's first day: `start`,
            /// `2 working days before start`, `3 days before start` or `09:00 on day one`.
            pub deadline: Option<Spanned<String>>,
            $( $(#[$meta])* pub $key: Option<Spanned<$Doc>>, )+
        }

        /// The step kinds, as their YAML keys.
        pub const STEP_KINDS: &[&str] = &[$(stringify!($key)),+];

        /// Each key with its variant (serde names the plan's `kind` after the variant).
        #[cfg(test)]
        const KEYS_AND_VARIANTS: &[(&str, &str)] = &[$((stringify!($key), stringify!($Variant))),+];

        $( impl Named for $Doc { const NAME: &'static str = stringify!($key); } )+

        /// A loaded step's kind: what the playbook wrote under its key.
        #[derive(Debug, Clone)]
        pub enum StepKind { $($Variant($Doc)),+ }

        /// Rendered parameters of each step kind (`kind` is the YAML key).
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Params { $($Variant(<$Doc as Kind>::Params)),+ }

        impl StepDoc {
            /// Every kind the step is written with, and where (exactly one is valid).
            pub fn kinds(&self) -> Vec<(StepKind, Span)> {
                let mut out = Vec::new();
                $( if let Some(k) = &self.$key {
                    out.push((StepKind::$Variant(k.value.clone()), k.span));
                } )+
                out
            }
        }

        impl StepKind {
            pub fn name(&self) -> &'static str {
                match self { $(StepKind::$Variant(_) => stringify!($key)),+ }
            }

            pub fn output_names(&self) -> &'static [&'static str] {
                match self { $(StepKind::$Variant(_) => <$Doc as Kind>::OUTPUTS),+ }
            }

            pub fn names_step(&self) -> Option<StepRef> {
                match self { $(StepKind::$Variant(k) => k.names_step()),+ }
            }

            pub(crate) fn render(
                &self,
                r: &mut Renderer<'_>,
                step: &Step,
                outputs: &Outputs,
            ) -> Option<Params> {
                match self { $(StepKind::$Variant(k) => k.render(r, step, outputs).map(Params::$Variant)),+ }
            }
        }

        impl Params {
            /// Whether onboard itself does it (as opposed to a person signing).
            pub fn is_automated(&self) -> bool {
                match self { $(Params::$Variant(_) => <$Doc as Kind>::AUTOMATED),+ }
            }

            /// Whether its effect is a message sent once (see `Kind::SENT_ONCE`).
            pub fn sent_once(&self) -> bool {
                match self { $(Params::$Variant(_) => <$Doc as Kind>::SENT_ONCE),+ }
            }

            /// One line saying what the step would do.
            pub fn describe(&self) -> String {
                match self { $(Params::$Variant(p) => <$Doc as Kind>::describe(p)),+ }
            }

            /// The parameters as `name: value` lines for people (the dry run's listing).
            pub fn fields(&self) -> Vec<(String, String)> {
                match self { $(Params::$Variant(p) => <$Doc as Kind>::fields(p)),+ }
            }

            /// The outputs known now, and the names of those known after the step runs.
            pub fn outputs(&self, known: &mut BTreeMap<String, String>, later: &mut Vec<String>) {
                match self { $(Params::$Variant(p) => <$Doc as Kind>::outputs(p, known, later)),+ }
            }

            fn check(&self, step: &PlannedStep, ctx: &mut Ctx<'_>) -> StepResult<Check> {
                match self { $(Params::$Variant(p) => <$Doc as Kind>::check(step, p, ctx)),+ }
            }

            /// Why a person's step waits and what they will sign (see `Kind::asks`).
            pub fn asks(&self, step: &PlannedStep) -> Option<(String, SignOffRequest)> {
                match self { $(Params::$Variant(p) => <$Doc as Kind>::asks(step, p)),+ }
            }

            fn intent(
                &self,
                step: &PlannedStep,
                ctx: &mut Ctx<'_>,
            ) -> StepResult<BTreeMap<String, String>> {
                match self { $(Params::$Variant(p) => <$Doc as Kind>::intent(step, p, ctx)),+ }
            }

            fn reconcile(
                &self,
                step: &PlannedStep,
                ctx: &mut Ctx<'_>,
            ) -> Option<StepResult<Vec<String>>> {
                match self { $(Params::$Variant(p) => <$Doc as Kind>::reconcile(step, p, ctx)),+ }
            }

            fn apply(
                &self,
                step: &PlannedStep,
                intent: &BTreeMap<String, String>,
                ctx: &mut Ctx<'_>,
            ) -> StepResult<Applied> {
                match self { $(Params::$Variant(p) => <$Doc as Kind>::apply(step, p, intent, ctx)),+ }
            }
        }
    };
}

kinds! {
    /// Create the directory account.
    ldap_account: LdapAccount(account::spec::LdapAccount),
    /// Add the account to groups.
    ldap_groups: LdapGroups(groups::LdapGroups),
    /// Hand a device to the hire, after its cleaning sign-off.
    device_handoff: DeviceHandoff(device_handoff::DeviceHandoff),
    /// A person confirms a checklist (e.g. the laptop was wiped).
    sign_off: SignOff(sign_off::SignOff),
    /// Send an email (the welcome).
    email: Email(email::spec::Email),
    /// The hire accepts a policy document (e.g. the IT policies), item by item.
    acknowledge: Acknowledge(acknowledge::Acknowledge),
    /// Create the hire's user in an application over SCIM 2.0.
    scim_user: ScimUser(scim_user::ScimUser),
    /// Add that user to groups of the application (SCIM PATCH).
    scim_groups: ScimGroups(scim_groups::ScimGroups),
}

/// Where the engine asks for things only the operator's terminal can do.
pub trait Operator {
    /// Whether a secret can be shown to the operator (a terminal is attached).
    fn can_show_secret(&self) -> bool;
    /// Shows an initial password to the operator, once.
    fn show_password(&mut self, hire: &str, login: &str, password: &Secret) -> std::io::Result<()>;
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
    /// Whether this run still holds the hire, asked between two effects of one step (a
    /// password set and the message delivering it). `None` in a dry run.
    pub still_held: Option<crate::store::HoldCheck>,
    /// Send again what an interrupted run may or may not have sent (`--resend-uncertain`).
    pub resend_uncertain: bool,
    /// Outputs of the hire's done steps (a hand-off reads its cleaning sign-off's).
    pub outputs: &'a crate::plan::Outputs,
    /// Who ran the hire's automated steps (for dual control).
    pub operators: &'a std::collections::BTreeSet<String>,
    /// Where the hire's record is kept (allocation lock, receipts).
    pub store: &'a dyn crate::store::Store,
    /// For emailing a waiting step's link (`notify`).
    pub links: Option<&'a crate::web::Links>,
    /// The SCIM applications.
    pub scim: &'a crate::backend::scim::ScimApps,
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
        request: Option<Box<SignOffRequest>>,
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
    if !step.params.is_automated()
        && let Some(prior) = ctx.prior
        && prior.status == crate::journal::Status::Done
    {
        return Ok(Check::Holds {
            outputs: prior.outputs.clone(),
            note: None,
        });
    }
    step.params.check(step, ctx)
}

pub fn intent(step: &PlannedStep, ctx: &mut Ctx<'_>) -> StepResult<BTreeMap<String, String>> {
    step.params.intent(step, ctx)
}

/// Brings a done step back to its declared state without redoing it (`--reconcile`). `None`
/// for kinds with nothing to reconcile.
pub fn reconcile(step: &PlannedStep, ctx: &mut Ctx<'_>) -> Option<StepResult<Vec<String>>> {
    step.params.reconcile(step, ctx)
}

pub fn apply(
    step: &PlannedStep,
    intent: &BTreeMap<String, String>,
    ctx: &mut Ctx<'_>,
) -> StepResult<Applied> {
    step.params.apply(step, intent, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan's `kind` tag (serde's name of the variant) is the YAML key.
    #[test]
    fn params_are_tagged_with_the_yaml_key() {
        let params = Params::SignOff(sign_off::SignOffParams::sample());
        let json = serde_json::to_value(&params).unwrap();
        assert_eq!(json["kind"], <sign_off::SignOff as Named>::NAME);
        // Every variant's serde name (snake_case of the variant) is its key.
        for (key, variant) in KEYS_AND_VARIANTS {
            let mut snake = String::new();
            for (i, c) in variant.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            assert_eq!(&snake, key);
        }
    }
}
