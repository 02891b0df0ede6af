//! `ldap_groups`: add the account to groups (add-only), verified by reading each group back.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Applied, Check, Ctx, Kind, Named, StepError, StepRef, StepResult};
use crate::backend::directory::Entry;
use crate::diag::Diagnostic;
use crate::escape;
use crate::load::Step;
use crate::model::Tpl;
use crate::plan::{Outputs, PlannedStep, Renderer};
use crate::steps::account::spec::LdapAccount;
use crate::yaml::Spanned;

/// Adds the account created by an `ldap_account` step to groups. Add-only.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapGroups {
    /// The `ldap_account` step whose entry joins the groups (an implicit `needs`).
    pub account: Spanned<String>,
    /// Parent entry of the groups (template). With it, `groups` are names (`cn` values,
    /// escaped for you); without it, `groups` are full DNs.
    pub base: Option<Tpl>,
    /// The groups (templates).
    pub groups: Vec<Tpl>,
}

/// The rendered parameters of an `ldap_groups` step.
#[derive(Debug, Clone, Serialize)]
pub struct GroupsParams {
    pub account: String,
    pub member_dn: String,
    pub member_login: String,
    pub groups: Vec<String>,
}

impl Kind for LdapGroups {
    type Params = GroupsParams;
    const OUTPUTS: &'static [&'static str] = &["groups"];

    fn names_step(&self) -> Option<StepRef> {
        Some(StepRef {
            key: "account",
            step: self.account.clone(),
            kind: LdapAccount::NAME,
            article: "an",
            hint: "name the step that creates the account",
        })
    }

    fn render(&self, r: &mut Renderer<'_>, step: &Step, outputs: &Outputs) -> Option<GroupsParams> {
        Some(render(r, step, self, outputs))
    }

    fn outputs(p: &GroupsParams, known: &mut BTreeMap<String, String>, _: &mut Vec<String>) {
        known.extend(outputs(&p.groups));
    }

    fn describe(p: &GroupsParams) -> String {
        let n = p.groups.len();
        format!(
            "add {} to {n} group{}: {}",
            p.member_dn,
            if n == 1 { "" } else { "s" },
            p.groups.join("; ")
        )
    }

    fn fields(p: &GroupsParams) -> Vec<(String, String)> {
        std::iter::once(("member".to_owned(), p.member_dn.clone()))
            .chain(p.groups.iter().map(|g| ("group".to_owned(), g.clone())))
            .collect()
    }

    fn check(_: &PlannedStep, p: &GroupsParams, ctx: &mut Ctx<'_>) -> StepResult<Check> {
        check(p, ctx)
    }

    fn apply(
        _: &PlannedStep,
        p: &GroupsParams,
        _: &BTreeMap<String, String>,
        ctx: &mut Ctx<'_>,
    ) -> StepResult<Applied> {
        apply(p, ctx)
    }
}

/// The outputs: the groups joined, known when planning and the same after the run.
fn outputs(groups: &[String]) -> BTreeMap<String, String> {
    BTreeMap::from([("groups".to_owned(), groups.join("; "))])
}

/// Renders an `ldap_groups` step: the member from its account step's outputs, each group as
/// a DN (names under `base`, escaped; or full DNs, checked), each once.
fn render(r: &mut Renderer<'_>, step: &Step, g: &LdapGroups, outputs: &Outputs) -> GroupsParams {
    let account = outputs.get(&g.account.value);
    let member_dn = account
        .and_then(|o| o.get("dn"))
        .cloned()
        .unwrap_or_default();
    let member_login = account
        .and_then(|o| o.get("login"))
        .cloned()
        .unwrap_or_default();
    let base = g.base.as_ref().map(|b| (r.line(b, "`base`"), b.span));
    if let Some((base, span)) = &base
        && let Err(p) = escape::check_dn(base)
    {
        r.fail(Diagnostic::new(format!("`base` is not a DN: {p}")).at(*span));
    }
    if g.groups.is_empty() {
        r.fail(Diagnostic::new("`groups` is empty").at(step.id.span));
    }
    let mut groups = Vec::new();
    for tpl in &g.groups {
        let name = r.line(tpl, "a group");
        let dn = match &base {
            Some((base, _)) => format!("cn={},{base}", escape::dn_value(&name)),
            None => {
                if let Err(p) = escape::check_dn(&name) {
                    r.fail(
                        Diagnostic::new(format!("group `{name}` is not a DN: {p}"))
                            .at(tpl.span)
                            .hint("give full DNs, or set `base` and give group names"),
                    );
                }
                name
            }
        };
        if !groups.contains(&dn) {
            groups.push(dn);
        }
    }
    GroupsParams {
        account: g.account.value.clone(),
        member_dn,
        member_login,
        groups,
    }
}

struct Groups<'a> {
    member_dn: &'a str,
    member_login: &'a str,
    groups: &'a [String],
}

fn groups(p: &GroupsParams) -> Groups<'_> {
    let GroupsParams {
        member_dn,
        member_login,
        groups,
        ..
    } = p;
    Groups {
        member_dn,
        member_login,
        groups,
    }
}

/// The attribute and value that make `member` a member of `group`, by the group's object class.
fn membership(group: &Entry, dn: &str, login: &str) -> Option<(&'static str, String)> {
    if group.has_object_class("groupOfNames") {
        Some(("member", dn.to_owned()))
    } else if group.has_object_class("groupOfUniqueNames") {
        Some(("uniqueMember", dn.to_owned()))
    } else if group.has_object_class("posixGroup") {
        Some(("memberUid", login.to_owned()))
    } else if group.has_object_class("group") {
        // Active Directory.
        Some(("member", dn.to_owned()))
    } else {
        None
    }
}

/// Reads each group: (dn, attribute, value, already a member). Only the group's object class
/// and one membership test are fetched, never the whole member list.
fn state(
    g: &Groups<'_>,
    ctx: &mut Ctx<'_>,
) -> StepResult<Vec<(String, &'static str, String, bool)>> {
    let mut out = Vec::new();
    for dn in g.groups {
        let group = ctx
            .directory
            .read_attrs(dn, &["objectClass"])?
            .ok_or_else(|| {
                StepError::new(format!("group {dn} does not exist"))
                    .hint("create the group in the directory, or fix its name in the playbook")
            })?;
        let (attr, value) = membership(&group, g.member_dn, g.member_login).ok_or_else(|| {
            StepError::new(format!(
                "{dn} is not a group onboard knows (groupOfNames, groupOfUniqueNames, posixGroup, Active Directory group)"
            ))
        })?;
        let member = ctx.directory.has_value(dn, attr, &value)?;
        out.push((dn.clone(), attr, value, member));
    }
    Ok(out)
}

fn check(p: &GroupsParams, ctx: &mut Ctx<'_>) -> StepResult<Check> {
    let g = groups(p);
    let todo: Vec<String> = state(&g, ctx)?
        .into_iter()
        .filter(|(_, _, _, member)| !member)
        .map(|(dn, _, _, _)| format!("add {} to {dn}", g.member_dn))
        .collect();
    if todo.is_empty() {
        Ok(Check::Holds {
            outputs: outputs(g.groups),
            note: None,
        })
    } else {
        Ok(Check::ToDo(todo))
    }
}

fn apply(p: &GroupsParams, ctx: &mut Ctx<'_>) -> StepResult<Applied> {
    let g = groups(p);
    let mut changes = Vec::new();
    for (dn, attr, value, member) in state(&g, ctx)? {
        if !member {
            ctx.directory
                .add_values(&dn, attr, std::slice::from_ref(&value))?;
            changes.push(format!("added to {dn}"));
        }
    }
    // Read back: every group lists the account.
    if let Some((dn, ..)) = state(&g, ctx)?.into_iter().find(|(.., member)| !member) {
        return Err(StepError::new(format!(
            "{dn} does not list {} after adding it",
            g.member_dn
        )));
    }
    Ok(Applied {
        changes,
        outputs: outputs(g.groups),
        evidence: BTreeMap::new(),
    })
}
