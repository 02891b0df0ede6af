//! `ldap_groups`: add the account to groups (add-only), verified by reading each group back.

use std::collections::BTreeMap;

use super::{Applied, Check, Ctx, StepError, StepResult};
use crate::backend::directory::Entry;
use crate::plan::{Params, PlannedStep};

struct Groups<'a> {
    member_dn: &'a str,
    member_login: &'a str,
    groups: &'a [String],
}

fn groups(step: &PlannedStep) -> Groups<'_> {
    let Params::LdapGroups {
        member_dn,
        member_login,
        groups,
        ..
    } = &step.params
    else {
        unreachable!("groups step with other params")
    };
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

fn outputs(g: &Groups<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([("groups".to_owned(), g.groups.join("; "))])
}

pub fn check(step: &PlannedStep, ctx: &mut Ctx<'_>) -> StepResult<Check> {
    let g = groups(step);
    let todo: Vec<String> = state(&g, ctx)?
        .into_iter()
        .filter(|(_, _, _, member)| !member)
        .map(|(dn, _, _, _)| format!("add {} to {dn}", g.member_dn))
        .collect();
    if todo.is_empty() {
        Ok(Check::Holds {
            outputs: outputs(&g),
            note: None,
        })
    } else {
        Ok(Check::ToDo(todo))
    }
}

pub fn apply(step: &PlannedStep, ctx: &mut Ctx<'_>) -> StepResult<Applied> {
    let g = groups(step);
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
        outputs: outputs(&g),
        evidence: BTreeMap::new(),
    })
}

/// The parameters as `name: value` lines for people.
pub fn fields(member_dn: &str, groups: &[String]) -> Vec<(String, String)> {
    std::iter::once(("member".to_owned(), member_dn.to_owned()))
        .chain(groups.iter().map(|g| ("group".to_owned(), g.clone())))
        .collect()
}
