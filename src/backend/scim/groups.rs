//! Groups: ids found once per run by `displayName` (shared by every hire of a cohort), members
//! added with PATCH, and membership confirmed from what the application returns, never from a
//! filter's `totalResults` (django-scim2 ignores the `members[…]` part of a filter and would
//! answer 1 for any user). A group is never read whole (a group of 50,000 members is megabytes):
//! every read of a group names its attributes, and a PATCH asks for its answer without
//! `members`. An application that requires `If-Match` (412 without it) gets the group's ETag.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::http::Req;
use super::{LISTS, PATCH_SCHEMA, SILENT, Scim, UNKNOWN, filter_string, segment};
use crate::backend::{BackendError, BackendResult};

/// What a run knows of groups.
#[derive(Default)]
pub(super) struct Cache {
    /// Group ids by `displayName`. Held while a name is looked up, so each is looked up once.
    ids: Mutex<HashMap<String, String>>,
    /// Per group id: the last ETag seen, behind a lock that PATCHes with `If-Match` hold.
    etags: Mutex<HashMap<String, Arc<Mutex<Option<String>>>>>,
}

impl Scim {
    /// A group's id by its `displayName`, looked up once per run.
    pub fn find_group(&self, name: &str) -> BackendResult<Option<String>> {
        let mut ids = self.groups.ids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = ids.get(name) {
            return Ok(Some(id.clone()));
        }
        let filter = format!("displayName eq {}", filter_string(name));
        let what = format!("searching group {name}");
        let reply = self.request(
            Req::get("/Groups", &what)
                .query("filter", &filter)
                .query("attributes", "id,displayName"),
        )?;
        if reply.status != 200 {
            return Err(self.refused(&what, &reply));
        }
        let found = reply.body["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["displayName"].as_str() == Some(name))
            .and_then(|g| g["id"].as_str().map(str::to_owned));
        if let Some(id) = &found {
            ids.insert(name.to_owned(), id.clone());
        }
        Ok(found)
    }

    /// Which of `groups` (ids) `user` is a member of, from what the application returns: the
    /// user's `groups`, else each group's `members` (read for that user only where the
    /// application honours the filter, and checked member by member where it does not).
    pub fn memberships(&self, user: &str, groups: &[String]) -> BackendResult<BTreeSet<String>> {
        let mut found = BTreeSet::new();
        let lists = self.lists_groups.load(Ordering::Relaxed);
        let mut listed = false;
        if lists != SILENT {
            let what = format!("reading user {user}'s groups");
            let reply = self.request(
                Req::get(&format!("/Users/{}", segment(user)), &what).query("attributes", "groups"),
            )?;
            match reply.status {
                200 => {}
                404 => {
                    return Err(BackendError::NoSuchObject(format!(
                        "user {user} in {}",
                        self.describe()
                    )));
                }
                _ => return Err(self.refused(&what, &reply)),
            }
            if let Some(list) = reply.body["groups"].as_array() {
                listed = true;
                found.extend(
                    list.iter()
                        .filter_map(|g| g["value"].as_str())
                        .filter(|id| groups.iter().any(|g| g == id))
                        .map(str::to_owned),
                );
                if !found.is_empty() {
                    self.lists_groups.store(LISTS, Ordering::Relaxed);
                }
            }
        }
        if listed || lists == LISTS {
            return Ok(found);
        }
        // The user's representation has no `groups`: ask the groups, and read their members.
        let by_groups = self.members_of(user, groups)?;
        if !by_groups.is_empty() && lists == UNKNOWN {
            // A member whom the user's representation does not list: users list no groups here.
            self.lists_groups.store(SILENT, Ordering::Relaxed);
        }
        Ok(by_groups)
    }

    /// The groups among `groups` whose `members` hold `user`, asked in one request (one per
    /// group where the application refuses `or`).
    fn members_of(&self, user: &str, groups: &[String]) -> BackendResult<BTreeSet<String>> {
        let member = format!("members[value eq {}]", filter_string(user));
        let ids: Vec<String> = groups
            .iter()
            .map(|g| format!("id eq {}", filter_string(g)))
            .collect();
        let one = |filter: String| -> BackendResult<Option<BTreeSet<String>>> {
            let what = format!(
                "reading the members of {} group(s) for user {user}",
                groups.len()
            );
            let reply = self.request(
                Req::get("/Groups", &what)
                    .query("filter", &filter)
                    .query("attributes", "members"),
            )?;
            match reply.status {
                200 => {}
                400 if reply.body["scimType"] == "invalidFilter" => return Ok(None),
                _ => return Err(self.refused(&what, &reply)),
            }
            // Whatever the filter did, a group counts only if its own id is asked and its own
            // members hold the user.
            Ok(Some(
                reply.body["Resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|g| {
                        g["id"]
                            .as_str()
                            .is_some_and(|id| groups.iter().any(|a| a == id))
                            && g["members"].as_array().is_some_and(|m| {
                                m.iter().any(|m| m["value"].as_str() == Some(user))
                            })
                    })
                    .filter_map(|g| g["id"].as_str().map(str::to_owned))
                    .collect(),
            ))
        };
        if ids.len() > 1
            && let Some(found) = one(format!("({}) and {member}", ids.join(" or ")))?
        {
            return Ok(found);
        }
        let mut found = BTreeSet::new();
        for id in &ids {
            match one(format!("{id} and {member}"))? {
                Some(f) => found.extend(f),
                None => {
                    return Err(BackendError::Refused(format!(
                        "{}: the application cannot filter groups by id and member, and lists \
                         no `groups` on its users: onboard cannot confirm a membership without \
                         reading whole groups",
                        self.describe()
                    )));
                }
            }
        }
        Ok(found)
    }

    /// Adds `user` to `group` with a PATCH (adding a member twice is no change), its answer
    /// without `members`. With `If-Match` once the application asked for it (412): the group's
    /// PATCHes are then made one at a time, each with the ETag the last one returned.
    pub fn add_member(&self, group: &str, user: &str) -> BackendResult<()> {
        let patch = json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": user}]}],
        });
        let path = format!("/Groups/{}", segment(group));
        let what = format!("adding user {user} to group {group}");
        let send = |etag: Option<&str>| {
            self.request(
                Req::patch(&path, &patch, &what)
                    .query("excludedAttributes", "members")
                    .if_match(etag),
            )
        };
        if !self.if_match.load(Ordering::Relaxed) {
            let reply = send(None)?;
            match reply.status {
                200 | 204 => return Ok(()),
                412 => self.if_match.store(true, Ordering::Relaxed),
                _ => return Err(self.refused(&what, &reply)),
            }
        }
        let slot = self.etag_slot(group);
        let mut etag = slot.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..3 {
            if etag.is_none() {
                *etag = Some(self.group_etag(group)?);
            }
            let reply = send(etag.as_deref())?;
            match reply.status {
                200 | 204 => {
                    *etag = reply.etag.or_else(|| version(&reply.body));
                    return Ok(());
                }
                // Changed by someone else since: read its ETag again.
                412 => *etag = None,
                _ => return Err(self.refused(&what, &reply)),
            }
        }
        Err(BackendError::Unavailable(format!(
            "{}: {what}: the group kept changing (412 Precondition Failed three times with a \
             fresh ETag)",
            self.describe()
        )))
    }

    fn etag_slot(&self, group: &str) -> Arc<Mutex<Option<String>>> {
        self.groups
            .etags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(group.to_owned())
            .or_default()
            .clone()
    }

    /// The group's current ETag (its `ETag` header or `meta.version`), read without members.
    fn group_etag(&self, group: &str) -> BackendResult<String> {
        let what = format!("reading group {group}'s version");
        let reply = self.request(
            Req::get(&format!("/Groups/{}", segment(group)), &what).query("attributes", "id,meta"),
        )?;
        if reply.status != 200 {
            return Err(self.refused(&what, &reply));
        }
        reply.etag.or_else(|| version(&reply.body)).ok_or_else(|| {
            BackendError::Refused(format!(
                "{}: group {group}: the application answers 412 Precondition Failed to a PATCH \
                 without If-Match but gives no ETag to send (no ETag header, no meta.version): \
                 turn on ETags in the application (ServiceProviderConfig etag.supported) or \
                 turn off its If-Match requirement",
                self.describe()
            ))
        })
    }
}

fn version(body: &Value) -> Option<String> {
    body["meta"]["version"].as_str().map(str::to_owned)
}
