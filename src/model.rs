//! The playbook format, as written in YAML.
//!
//! These types are the single definition of the format: the loader deserializes them, and
//! `onboard schema` derives the JSON Schema from them, so the two cannot drift. PLAYBOOK.md
//! documents every key. Strings marked "template" are rendered with Tera against the hire,
//! the vars and earlier steps' outputs; hire data is only ever inserted as data.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::yaml::{OneOrMany, OrderedMap, Recover, Spanned};

/// A template string: rendered with Tera before use.
pub type Tpl = Spanned<String>;

/// The format version this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// One playbook file. A *checklist* is a playbook with `steps`; a *hire file* names a checklist
/// with `checklist:` and gives the `hire`. A self-contained playbook has both `steps` and `hire`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "playbook")]
#[schemars(title = "onboard playbook")]
pub struct PlaybookFile {
    /// Format version. Only `1` exists; omitting it means `1`.
    pub version: Option<Spanned<u32>>,
    /// Human name of the checklist, e.g. "Standard employee".
    pub name: Option<String>,
    /// Free text for people reading the playbook.
    pub description: Option<String>,
    /// Path of a checklist whose steps this file uses, relative to this file.
    pub checklist: Option<Spanned<String>>,
    /// Folder of email templates and policy documents, relative to the file that declares it.
    /// Default: `../templates` next to the checklist.
    pub templates: Option<Spanned<String>>,
    /// Which hire fields this checklist needs.
    pub hire_fields: Option<HireFields>,
    /// For `--hires FILE.csv`: CSV column heading → hire field (`given_name`, `custom.NAME`),
    /// e.g. `"First Name": given_name`. Without it the headings must be field names.
    #[serde(default)]
    pub hire_columns: OrderedMap<Spanned<String>, Spanned<String>>,
    /// The person being onboarded: the data HR provides.
    pub hire: Option<Recover<Spanned<Hire>>>,
    /// Derived values, rendered in the order written; later vars can use earlier ones
    /// (`vars.username`). A hire file's vars override the checklist's.
    #[serde(default)]
    pub vars: OrderedMap<Spanned<String>, Recover<Tpl>>,
    /// The checklist: each step has an `id`, a `title`, optional `needs`, and exactly one kind
    /// (`ldap_account`, `ldap_groups`, `device_handoff`, `sign_off`, `email`).
    pub steps: Option<Spanned<Vec<Recover<Spanned<StepDoc>>>>>,
    /// Tell the manager (and the help desk) when everything is ready, or when the hire is at risk.
    pub notify: Option<Recover<Spanned<Notify>>>,
}

/// Messages about the onboarding itself, sent through the same mail target as the welcome.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Sender (template).
    pub from: Tpl,
    /// Recipients, e.g. the manager (template or list).
    pub to: OneOrMany<Tpl>,
    /// Copies, e.g. the help desk (template or list).
    #[serde(default)]
    pub cc: OneOrMany<Tpl>,
    /// Where replies go (template).
    pub reply_to: Option<Tpl>,
    /// Sent once, when every step is done.
    pub ready: Option<NotifyMessage>,
    /// Sent once, when the hire first becomes at risk or late (see `onboard status`).
    pub at_risk: Option<NotifyMessage>,
}

/// One kind of notification.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyMessage {
    /// Subject line (template).
    pub subject: Tpl,
    /// Plain-text body: a Tera template file in the templates folder.
    pub text: Spanned<String>,
    /// HTML body: a Tera template file in the templates folder (autoescaped).
    pub html: Spanned<String>,
}

/// Which hire fields a checklist needs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HireFields {
    /// Fields every hire must have, e.g. `[given_name, family_name, work_email]`.
    /// Custom fields are named `custom.NAME`. `id` is always required.
    #[serde(default)]
    pub required: Vec<Spanned<String>>,
}

/// The hire: what HR provides. Every value is data, never a template.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hire {
    /// HR's stable identifier (employee number). Names the hire's journal; letters, digits,
    /// `.`, `_` and `-` only.
    pub id: Option<Spanned<String>>,
    /// First name as in HR records.
    pub given_name: Option<Spanned<String>>,
    /// Last name as in HR records.
    pub family_name: Option<Spanned<String>>,
    /// The name the person goes by, if different from `given_name`.
    pub preferred_name: Option<Spanned<String>>,
    /// Private address, e.g. for the first-day instructions before the work account exists.
    pub personal_email: Option<Spanned<String>>,
    /// The work address the account will have.
    pub work_email: Option<Spanned<String>>,
    /// The manager's name.
    pub manager: Option<Spanned<String>>,
    /// The manager's email address.
    pub manager_email: Option<Spanned<String>>,
    /// Department, e.g. "Engineering".
    pub department: Option<Spanned<String>>,
    /// Job title.
    pub title: Option<Spanned<String>>,
    /// Office or site.
    pub location: Option<Spanned<String>>,
    /// Phone number.
    pub phone: Option<Spanned<String>>,
    /// First day, `YYYY-MM-DD`.
    pub start_date: Option<Spanned<String>>,
    /// Time the first day starts, `HH:MM` (24 h). Default `09:00`.
    pub start_time: Option<Spanned<String>>,
    /// IANA time zone of the first day, e.g. `Europe/Berlin`.
    pub time_zone: Option<Spanned<String>>,
    /// Last day for fixed-term hires and contractors, `YYYY-MM-DD`.
    pub end_date: Option<Spanned<String>>,
    /// Any further fields HR provides, as `name: text` (used as `hire.custom.name`).
    #[serde(default)]
    pub custom: BTreeMap<String, Spanned<String>>,
}

/// The standard hire fields, in the order the schema lists them.
pub const HIRE_FIELDS: &[&str] = &[
    "id",
    "given_name",
    "family_name",
    "preferred_name",
    "personal_email",
    "work_email",
    "manager",
    "manager_email",
    "department",
    "title",
    "location",
    "phone",
    "start_date",
    "start_time",
    "time_zone",
    "end_date",
];

impl Hire {
    /// The value of a standard field.
    pub fn field(&self, name: &str) -> Option<&Spanned<String>> {
        match name {
            "id" => self.id.as_ref(),
            "given_name" => self.given_name.as_ref(),
            "family_name" => self.family_name.as_ref(),
            "preferred_name" => self.preferred_name.as_ref(),
            "personal_email" => self.personal_email.as_ref(),
            "work_email" => self.work_email.as_ref(),
            "manager" => self.manager.as_ref(),
            "manager_email" => self.manager_email.as_ref(),
            "department" => self.department.as_ref(),
            "title" => self.title.as_ref(),
            "location" => self.location.as_ref(),
            "phone" => self.phone.as_ref(),
            "start_date" => self.start_date.as_ref(),
            "start_time" => self.start_time.as_ref(),
            "time_zone" => self.time_zone.as_ref(),
            "end_date" => self.end_date.as_ref(),
            _ => match name.strip_prefix("custom.") {
                Some(custom) => self.custom.get(custom),
                None => None,
            },
        }
    }

    /// Every field that is set, standard ones first, as (name, value).
    pub fn fields(&self) -> impl Iterator<Item = (String, &Spanned<String>)> {
        HIRE_FIELDS
            .iter()
            .filter_map(|f| self.field(f).map(|v| (f.to_string(), v)))
            .chain(self.custom.iter().map(|(k, v)| (format!("custom.{k}"), v)))
    }
}

pub use crate::steps::{STEP_KINDS, StepDoc};

pub use crate::steps::account::spec::{Deliver, LdapAccount, OWNER_ATTRIBUTE, Password, Posix};

pub use crate::steps::groups::LdapGroups;

pub use crate::steps::human::Asset;

pub use crate::steps::device_handoff::DeviceHandoff;

pub use crate::steps::sign_off::SignOff;

pub use crate::steps::email::spec::{Email, Policies};

/// The JSON Schema of the playbook format, for editors.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(PlaybookFile);
    let mut value = serde_json::to_value(schema).expect("schema serializes");
    // "Exactly one kind" is a rule serde cannot state; say it in the schema.
    if let Some(step) = value.pointer_mut("/$defs/step")
        && let Some(obj) = step.as_object_mut()
    {
        let one_of: Vec<serde_json::Value> = STEP_KINDS
            .iter()
            .map(|k| serde_json::json!({ "required": [k] }))
            .collect();
        obj.insert("oneOf".into(), serde_json::Value::Array(one_of));
    }
    value
}
