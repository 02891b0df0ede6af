//! `scim_groups`: add the user a `scim_user` step created to named groups of the same
//! application, with PATCH (add-only), each membership confirmed from what the application
//! returns (the user's `groups`, else the group's `members` for that user: never a filter's
//! count, never the whole group).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::scim_user::ScimUser;
use super::{Applied, Check, Ctx, Kind, Named, StepError, StepRef, StepResult};
use crate::backend::scim::Scim;
use crate::diag::Diagnostic;
use crate::load::Step;
use crate::model::Tpl;
use crate::plan::{Outputs, PlannedStep, Renderer};
use crate::steps::StepKind;
use crate::yaml::Spanned;

/// Adds the user of a `scim_user` step to groups of its application. Add-only.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimGroups {
    /// The `scim_user` step whose user joins the groups (an implicit `needs`).
    pub user: Spanned<String>,
    /// The groups, by `displayName` (templates). They must exist in the application.
    pub groups: Vec<Tpl>,
}

/// The rendered parameters of a `scim_groups` step.
#[derive(Debug, Clone, Serialize)]
pub struct ScimGroupsParams {
    pub app: String,
    pub user: String,
    pub user_name: String,
    pub groups: Vec<String>,
}

impl Kind for ScimGroups {
    type Params = ScimGroupsParams;
    const OUTPUTS: &'static [&'static str] = &["groups"];

    fn names_step(&self) -> Option<StepRef> {
        Some(StepRef {
            key: "user",
            step: self.user.clone(),
            kind: ScimUser::NAME,
            article: "a",
            hint: "name the step that creates the user in the application",
        })
    }

    fn render(
        &self,
        r: &mut Renderer<'_>,
        step: &Step,
        outputs: &Outputs,
    ) -> Option<ScimGroupsParams> {
        let app = r.pb.steps.iter().find_map(|s| match &s.kind {
            StepKind::ScimUser(u) if s.id.value == self.user.value => Some(u.app.value.clone()),
            _ => None,
        })?;
        if self.groups.is_empty() {
            r.fail(Diagnostic::new("`groups` is empty").at(step.id.span));
        }
        let mut groups: Vec<String> = Vec::new();
        for tpl in &self.groups {
            let g = r.line(tpl, "a group");
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        Some(ScimGroupsParams {
            app,
            user: self.user.value.clone(),
            user_name: outputs
                .get(&self.user.value)
                .and_then(|o| o.get("user_name"))
                .cloned()
                .unwrap_or_default(),
            groups,
        })
    }

    fn outputs(p: &ScimGroupsParams, known: &mut BTreeMap<String, String>, _: &mut Vec<String>) {
        known.insert("groups".into(), p.groups.join("; "));
    }

    fn describe(p: &ScimGroupsParams) -> String {
        format!(
            "add {} to {} group{} in {}: {}",
            p.user_name,
            p.groups.len(),
            if p.groups.len() == 1 { "" } else { "s" },
            p.app,
            p.groups.join(", ")
        )
    }

    fn fields(p: &ScimGroupsParams) -> Vec<(String, String)> {
        std::iter::once(("application".to_owned(), p.app.clone()))
            .chain(p.groups.iter().map(|g| {
                (
                    "PATCH /Groups/{id}".to_owned(),
                    format!("add member {} to {g}", p.user_name),
                )
            }))
            .collect()
    }

    fn check(_: &PlannedStep, p: &ScimGroupsParams, ctx: &mut Ctx<'_>) -> StepResult<Check> {
        if user_id(ctx, p).is_none() {
            // A dry run before the user exists: every group, once it does.
            return Ok(Check::ToDo(
                p.groups
                    .iter()
                    .map(|g| {
                        format!(
                            "add {} to {g} in {} once the user exists",
                            p.user_name, p.app
                        )
                    })
                    .collect(),
            ));
        }
        let (scim, user) = user(ctx, p)?;
        let missing = missing(scim, p, &user)?;
        if missing.is_empty() {
            return Ok(Check::Holds {
                outputs: BTreeMap::from([("groups".to_owned(), p.groups.join("; "))]),
                note: None,
            });
        }
        Ok(Check::ToDo(
            missing
                .iter()
                .map(|(name, _)| format!("add {} to {name} in {}", p.user_name, scim.describe()))
                .collect(),
        ))
    }

    fn apply(
        _: &PlannedStep,
        p: &ScimGroupsParams,
        _: &BTreeMap<String, String>,
        ctx: &mut Ctx<'_>,
    ) -> StepResult<Applied> {
        let (scim, user) = user(ctx, p)?;
        let missing = missing(scim, p, &user)?;
        for (_, group) in &missing {
            scim.add_member(group, &user)?;
        }
        // Confirmed from what the application returns, not from the PATCH's status.
        let ids: Vec<String> = missing.iter().map(|(_, id)| id.clone()).collect();
        let confirmed = if ids.is_empty() {
            Default::default()
        } else {
            scim.memberships(&user, &ids)?
        };
        let absent: Vec<&str> = missing
            .iter()
            .filter(|(_, id)| !confirmed.contains(id))
            .map(|(name, _)| name.as_str())
            .collect();
        if !absent.is_empty() {
            return Err(StepError::new(format!(
                "{} is not a member of {} in {} after it was added (the PATCH was accepted, but \
                 neither the user's groups nor the group's members show it)",
                p.user_name,
                absent.join(", "),
                scim.describe()
            )));
        }
        let changes = missing
            .iter()
            .map(|(name, _)| format!("added {} to {name} in {}", p.user_name, scim.describe()))
            .collect();
        Ok(Applied {
            changes,
            outputs: BTreeMap::from([("groups".to_owned(), p.groups.join("; "))]),
            evidence: BTreeMap::from([("application".to_owned(), p.app.clone())]),
        })
    }
}

/// The application and the user's SCIM id (from the `scim_user` step's outputs).
fn user<'a>(ctx: &Ctx<'a>, p: &ScimGroupsParams) -> StepResult<(&'a Scim, String)> {
    let scim = ctx
        .scim
        .app(&p.app)
        .map_err(|e| StepError::new(e).nothing_done())?;
    let id = user_id(ctx, p)
        .ok_or_else(|| StepError::new(format!("`{}` (the user) is not done", p.user)))?;
    Ok((scim, id))
}

/// The user's SCIM id, once its step is done.
fn user_id(ctx: &Ctx<'_>, p: &ScimGroupsParams) -> Option<String> {
    ctx.outputs
        .get(&p.user)
        .and_then(|o| o.get("id"))
        .filter(|id| !id.is_empty())
        .cloned()
}

/// The groups the user is not in yet: (name, id). A group that does not exist is refused.
/// Group ids come from the run's cache; a user this run created a moment ago is in the groups
/// its creation's answer listed, others are asked (`Scim::memberships`).
fn missing(scim: &Scim, p: &ScimGroupsParams, user: &str) -> StepResult<Vec<(String, String)>> {
    let mut groups = Vec::new();
    for name in &p.groups {
        let group = scim.find_group(name)?.ok_or_else(|| {
            StepError::new(format!("{} has no group {name}", scim.describe()))
                .hint("onboard adds members to groups that exist; create the group in the application first")
                .nothing_done()
        })?;
        groups.push((name.clone(), group));
    }
    let ids: Vec<String> = groups.iter().map(|(_, id)| id.clone()).collect();
    let member = match scim.created_in(user) {
        Some(listed) => listed,
        None => scim.memberships(user, &ids)?,
    };
    Ok(groups
        .into_iter()
        .filter(|(_, id)| !member.contains(id))
        .collect())
}
