//! `scim_user`: the hire's account in an application that speaks SCIM 2.0 (RFC 7643/7644).
//!
//! Like `ldap_account`: looked up before it is created (by `externalId`, the hire id, then by
//! `userName`, each with an escaped filter); a user with that `userName` that is not this hire's
//! is refused, never adopted, and one that carries this hire's `externalId` is the hire's (an
//! application that cannot filter on `externalId` finds it only so); the `userName` is
//! journaled before the POST, and a POST whose reply was lost is found on retry (before any new
//! POST: `Scim::create_user`) or resume; read back after writing (the creation's answer, else a
//! GET); differences from the playbook reported as drift.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Applied, Check, Ctx, Kind, Note, StepError, StepResult};
use crate::backend::scim::{ENTERPRISE_SCHEMA, Scim, USER_SCHEMA, filter_string};
use crate::diag::Diagnostic;
use crate::journal::Status;
use crate::load::Step;
use crate::model::Tpl;
use crate::plan::{Outputs, PlannedStep, Renderer};
use crate::yaml::{OneOrMany, OrderedMap, Spanned};

/// Creates the hire's user in an application over SCIM 2.0.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimUser {
    /// The application, as the config file names it (`[scim.NAME]`) or the environment
    /// (`ONBOARD_SCIM_NAME_URL`).
    pub app: Spanned<String>,
    /// `userName` (template), e.g. `"{{ hire.work_email }}"`.
    pub user_name: Tpl,
    /// `name.givenName` (template).
    pub given_name: Option<Tpl>,
    /// `name.familyName` (template).
    pub family_name: Option<Tpl>,
    /// `displayName` (template).
    pub display_name: Option<Tpl>,
    /// `emails` (template or list; the first is primary).
    #[serde(default)]
    pub emails: OneOrMany<Tpl>,
    /// `active`. Default true.
    pub active: Option<bool>,
    /// Attributes of the enterprise extension (RFC 7643 §4.3), e.g. `department`,
    /// `employeeNumber`, `costCenter`, `organization`, `division` (templates).
    #[serde(default)]
    pub enterprise: OrderedMap<Spanned<String>, Tpl>,
}

/// The rendered parameters of a `scim_user` step.
#[derive(Debug, Clone, Serialize)]
pub struct ScimUserParams {
    pub app: String,
    pub user_name: String,
    /// The hire id: how onboard knows the user is this hire's.
    pub external_id: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub emails: Vec<String>,
    pub active: bool,
    pub enterprise: BTreeMap<String, String>,
}

const ENTERPRISE_KEYS: &[&str] = &[
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
];

impl Kind for ScimUser {
    type Params = ScimUserParams;
    const OUTPUTS: &'static [&'static str] = &["id", "user_name"];

    fn render(&self, r: &mut Renderer<'_>, step: &Step, _: &Outputs) -> Option<ScimUserParams> {
        let user_name = r.line(&self.user_name, "`user_name`");
        if user_name.trim().is_empty() {
            r.fail(Diagnostic::new("`user_name` renders empty").at(step.id.span));
        }
        let mut enterprise = BTreeMap::new();
        for (key, tpl) in &self.enterprise.0 {
            if !ENTERPRISE_KEYS.contains(&key.value.as_str()) {
                r.fail(
                    Diagnostic::new(format!(
                        "`{}` is not an attribute of the enterprise extension",
                        key.value
                    ))
                    .at(key.span)
                    .hint(format!("use one of: {}", ENTERPRISE_KEYS.join(", "))),
                );
            }
            enterprise.insert(key.value.clone(), r.line(tpl, "an enterprise attribute"));
        }
        Some(ScimUserParams {
            app: self.app.value.clone(),
            user_name,
            external_id: r.pb.hire_id().unwrap_or_default(),
            given_name: self.given_name.as_ref().map(|t| r.line(t, "`given_name`")),
            family_name: self
                .family_name
                .as_ref()
                .map(|t| r.line(t, "`family_name`")),
            display_name: self
                .display_name
                .as_ref()
                .map(|t| r.line(t, "`display_name`")),
            emails: self
                .emails
                .0
                .iter()
                .map(|t| r.line(t, "an email"))
                .collect(),
            active: self.active.unwrap_or(true),
            enterprise,
        })
    }

    fn outputs(p: &ScimUserParams, known: &mut BTreeMap<String, String>, later: &mut Vec<String>) {
        known.insert("user_name".into(), p.user_name.clone());
        later.push("id".into());
    }

    fn describe(p: &ScimUserParams) -> String {
        format!("create user {} in {}", p.user_name, p.app)
    }

    fn fields(p: &ScimUserParams) -> Vec<(String, String)> {
        vec![
            ("application".to_owned(), p.app.clone()),
            ("userName".to_owned(), p.user_name.clone()),
            ("externalId".to_owned(), p.external_id.clone()),
            ("POST /Users".to_owned(), body(p).to_string()),
        ]
    }

    fn check(_: &PlannedStep, p: &ScimUserParams, ctx: &mut Ctx<'_>) -> StepResult<Check> {
        let scim = app(ctx, p)?;
        match find(scim, p)? {
            Some(user) => {
                let interrupted = ctx
                    .prior
                    .is_some_and(|s| matches!(s.status, Status::Running | Status::Failed));
                let drift = differences(p, &user);
                Ok(Check::Holds {
                    outputs: outputs(&user, p),
                    note: if !drift.is_empty() {
                        Some(Note::Drift(drift))
                    } else if interrupted {
                        Some(Note::Info("created by the interrupted run".into()))
                    } else {
                        None
                    },
                })
            }
            None => Ok(Check::ToDo(vec![format!(
                "create user {} in {} (POST /Users)",
                p.user_name,
                scim.describe()
            )])),
        }
    }

    fn intent(
        _: &PlannedStep,
        p: &ScimUserParams,
        _: &mut Ctx<'_>,
    ) -> StepResult<BTreeMap<String, String>> {
        Ok(BTreeMap::from([
            ("user_name".to_owned(), p.user_name.clone()),
            ("external_id".to_owned(), p.external_id.clone()),
        ]))
    }

    fn apply(
        _: &PlannedStep,
        p: &ScimUserParams,
        _: &BTreeMap<String, String>,
        ctx: &mut Ctx<'_>,
    ) -> StepResult<Applied> {
        let scim = app(ctx, p)?;
        let created = scim.create_user(&body(p), || find(scim, p))?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| {
                StepError::new(format!("{} created a user with no id", scim.describe()))
            })?
            .to_owned();
        // Read back: the user is there, with this hire's externalId and the userName asked. The
        // creation's answer is the user as the application stored it (RFC 7644 §3.3); an answer
        // that does not show both is read again.
        let read = if shows(&created, p) {
            created
        } else {
            scim.get_user(&id)?.ok_or_else(|| {
                StepError::new(format!(
                    "user {id} is not in {} right after it was created",
                    scim.describe()
                ))
            })?
        };
        if !shows(&read, p) {
            return Err(StepError::new(format!(
                "user {id} in {} does not read back as created (userName {}, externalId {})",
                scim.describe(),
                read["userName"],
                read["externalId"]
            )));
        }
        Ok(Applied {
            changes: vec![format!(
                "created user {} in {} (id {id})",
                p.user_name,
                scim.describe()
            )],
            outputs: outputs(&read, p),
            evidence: BTreeMap::from([
                ("application".to_owned(), p.app.clone()),
                ("scim_id".to_owned(), id),
            ]),
        })
    }
}

fn app<'a>(ctx: &Ctx<'a>, p: &ScimUserParams) -> StepResult<&'a Scim> {
    ctx.scim.app(&p.app).map_err(|e| {
        StepError::new(e)
            .hint(format!(
                "set [scim.{0}] url and token_file in the config file (or ONBOARD_SCIM_{1}_URL and ONBOARD_SCIM_{1}_TOKEN_FILE)",
                p.app,
                p.app.to_uppercase().replace('-', "_")
            ))
            .nothing_done()
    })
}

/// Whether an answer shows this hire's user: its userName and externalId.
fn shows(user: &Value, p: &ScimUserParams) -> bool {
    user["externalId"].as_str() == Some(p.external_id.as_str())
        && user["userName"].as_str() == Some(p.user_name.as_str())
}

/// This hire's user: found by `externalId`, else by `userName` when it carries this hire's
/// `externalId` (an application that cannot filter on `externalId` finds nothing by it); a user
/// holding the `userName` with another `externalId` (or none) is refused.
fn find(scim: &Scim, p: &ScimUserParams) -> StepResult<Option<Value>> {
    let by_id = scim
        .find_users(&format!("externalId eq {}", filter_string(&p.external_id)))?
        .unwrap_or_default();
    let ours: Vec<&Value> = by_id
        .iter()
        .filter(|u| u["externalId"].as_str() == Some(p.external_id.as_str()))
        .collect();
    match ours.as_slice() {
        [user] => return Ok(Some((*user).clone())),
        [] => {}
        many => {
            return Err(StepError::new(format!(
                "{} has {} users with externalId {}: onboard cannot tell which is the hire's",
                scim.describe(),
                many.len(),
                p.external_id
            ))
            .nothing_done());
        }
    }
    let filter = format!("userName eq {}", filter_string(&p.user_name));
    let by_name = scim.find_users(&filter)?.ok_or_else(|| {
        StepError::new(format!(
            "{} cannot search users by userName ({filter} is refused as invalidFilter): onboard \
             cannot tell whether the hire's user exists",
            scim.describe()
        ))
        .nothing_done()
    })?;
    let Some(holder) = by_name
        .iter()
        .find(|u| same_user_name(u["userName"].as_str().unwrap_or(""), &p.user_name))
    else {
        return Ok(None);
    };
    if holder["externalId"].as_str() == Some(p.external_id.as_str()) {
        return Ok(Some(holder.clone()));
    }
    Err(StepError::new(format!(
        "{} already has a user {} that is not hire {}'s (its externalId is {})",
        scim.describe(),
        p.user_name,
        p.external_id,
        match holder["externalId"].as_str() {
            Some(id) => format!("`{id}`"),
            None => "not set".to_owned(),
        }
    ))
    .hint("onboard never adopts another person's account: give this hire another user_name, or have the application's owner settle it")
    .nothing_done())
}

/// SCIM compares `userName` case-insensitively (RFC 7643 §4.1.1: caseExact false).
fn same_user_name(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// The user as POSTed.
fn body(p: &ScimUserParams) -> Value {
    let mut user = json!({
        "schemas": [USER_SCHEMA],
        "userName": p.user_name,
        "externalId": p.external_id,
        "active": p.active,
    });
    let mut name = serde_json::Map::new();
    if let Some(g) = &p.given_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &p.family_name {
        name.insert("familyName".into(), json!(f));
    }
    if !name.is_empty() {
        user["name"] = Value::Object(name);
    }
    if let Some(d) = &p.display_name {
        user["displayName"] = json!(d);
    }
    if !p.emails.is_empty() {
        user["emails"] = p
            .emails
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"value": e, "type": "work", "primary": i == 0}))
            .collect();
    }
    if !p.enterprise.is_empty() {
        user["schemas"] = json!([USER_SCHEMA, ENTERPRISE_SCHEMA]);
        user[ENTERPRISE_SCHEMA] = json!(p.enterprise);
    }
    user
}

fn outputs(user: &Value, p: &ScimUserParams) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "id".to_owned(),
            user["id"].as_str().unwrap_or_default().to_owned(),
        ),
        ("user_name".to_owned(), p.user_name.clone()),
    ])
}

/// How the user differs from the playbook, for people.
fn differences(p: &ScimUserParams, user: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut compare = |what: &str, have: Option<&str>, want: Option<&str>| {
        if want.is_some() && have != want {
            out.push(format!(
                "{what} is {}, the playbook says {}",
                have.map_or("not set".to_owned(), |h| format!("`{h}`")),
                want.map_or(String::new(), |w| format!("`{w}`"))
            ));
        }
    };
    compare(
        "userName",
        user["userName"].as_str(),
        Some(p.user_name.as_str()),
    );
    compare(
        "name.givenName",
        user["name"]["givenName"].as_str(),
        p.given_name.as_deref(),
    );
    compare(
        "name.familyName",
        user["name"]["familyName"].as_str(),
        p.family_name.as_deref(),
    );
    compare(
        "displayName",
        user["displayName"].as_str(),
        p.display_name.as_deref(),
    );
    for (k, v) in &p.enterprise {
        compare(
            &format!("enterprise {k}"),
            user[ENTERPRISE_SCHEMA][k].as_str(),
            Some(v.as_str()),
        );
    }
    if user["active"].as_bool() != Some(p.active) {
        out.push(format!(
            "active is {}, the playbook says {}",
            user["active"], p.active
        ));
    }
    out
}
