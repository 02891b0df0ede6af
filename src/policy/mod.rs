//! IT policies people acknowledge: the texts published by version, who accepted which, who is
//! behind, and what changed between two versions. Pure: the store keeps the texts
//! ([`crate::store::Store::publish_policy`]), the journals keep the acceptances.
//!
//! A version names one text for good: a version is published with its SHA-256 the first time
//! onboard sends, shows or campaigns it, and a different text under the same version is refused
//! everywhere after that (an acceptance of "2026.1" must mean one text).

pub mod report;

use serde::{Deserialize, Serialize};

use crate::journal::{Event, PolicyRef, Record};

/// A policy text as published: its file name, version, SHA-256 and the text itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub file: String,
    pub version: String,
    pub sha256: String,
    pub text: String,
    /// When it was first published (RFC 3339).
    pub kept_at: String,
}

impl Published {
    pub fn new(file: &str, version: &str, text: &str, at: &str) -> Published {
        Published {
            file: file.to_owned(),
            version: version.to_owned(),
            sha256: crate::digest::sha256(text),
            text: text.to_owned(),
            kept_at: at.to_owned(),
        }
    }

    pub fn reference(&self) -> PolicyRef {
        PolicyRef {
            file: self.file.clone(),
            version: self.version.clone(),
            sha256: self.sha256.clone(),
        }
    }

    /// Whether the kept text still has the SHA-256 it was published with.
    pub fn intact(&self) -> bool {
        crate::digest::sha256(&self.text) == self.sha256
    }
}

/// Publishes the policy versions a playbook sends or asks to accept (`publish`), or only checks
/// them (a dry run): a version already published with another text is refused at the
/// playbook's `version:`, before anything is done.
pub fn publish_playbook(
    store: &dyn crate::store::Store,
    pb: &crate::load::Playbook,
    at: &str,
    publish: bool,
) -> Result<(), crate::engine::EngineError> {
    use crate::diag::{Diagnostic, Diagnostics};
    use crate::engine::EngineError;
    use crate::steps::StepKind;
    let wanted: Vec<_> = pb
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Email(e) => e.policies.as_ref(),
            StepKind::Acknowledge(a) => Some(&a.policies),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let io = |e: std::io::Error| {
        EngineError::Io(format!(
            "cannot read the published policies in {}: {e}",
            store.describe()
        ))
    };
    let all = store.policies().map_err(io)?;
    let mut diags = Diagnostics::default();
    for p in wanted {
        let Some(doc) = pb.policies.get(&p.file.value) else {
            continue;
        };
        let kept = match all
            .iter()
            .find(|k| k.file == p.file.value && k.version == p.version.value)
        {
            Some(kept) => kept.clone(),
            None if publish => store
                .publish_policy(&Published::new(
                    &p.file.value,
                    &p.version.value,
                    &doc.text,
                    at,
                ))
                .map_err(io)?,
            None => continue,
        };
        if let Err(c) = compare(&kept, &doc.sha256, &all) {
            diags.push(Diagnostic::new(c.message).at(p.version.span).hint(c.hint));
        }
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Plan(diags))
    }
}

/// The published text an acceptance is of, checked: published, unchanged since, and the text
/// the request names.
pub fn text_of(store: &dyn crate::store::Store, policy: &PolicyRef) -> Result<Published, String> {
    let all = store.policies().map_err(|e| {
        format!(
            "cannot read the published policies in {}: {e}",
            store.describe()
        )
    })?;
    let kept = all
        .into_iter()
        .find(|k| k.file == policy.file && k.version == policy.version)
        .ok_or_else(|| {
            format!(
                "{} version {} is not published in {}, so its text cannot be shown",
                policy.file,
                policy.version,
                store.describe()
            )
        })?;
    if !kept.intact() || kept.sha256 != policy.sha256 {
        return Err(format!(
            "the published text of {} version {} is not the text asked for (sha256 {}): it was \
             changed outside onboard",
            policy.file,
            policy.version,
            short(&policy.sha256)
        ));
    }
    Ok(kept)
}

/// Why a text cannot be published under a version, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub message: String,
    pub hint: String,
}

/// `kept` was published under the version `text` claims: the same text, or a conflict (whose
/// hint suggests a version none of `published` has).
pub fn compare(kept: &Published, sha256: &str, published: &[Published]) -> Result<(), Conflict> {
    if kept.sha256 == sha256 {
        return Ok(());
    }
    Err(Conflict {
        message: format!(
            "{} version {} was published on {} with different text (sha256 {}); this text has \
             sha256 {}",
            kept.file,
            kept.version,
            day(&kept.kept_at),
            short(&kept.sha256),
            short(sha256)
        ),
        hint: format!(
            "people accepted version {} as it was published: give the changed text a new version \
             (e.g. {}), or restore the published text",
            kept.version,
            unused_version(&kept.file, &kept.version, published)
        ),
    })
}

/// The first of the versions after `version` that `file` has not published.
fn unused_version(file: &str, version: &str, published: &[Published]) -> String {
    let mut next = next_version(version);
    while published
        .iter()
        .any(|p| p.file == file && p.version == next)
    {
        next = next_version(&next);
    }
    next
}

/// A plausible next version, for hints: the last number plus one.
fn next_version(version: &str) -> String {
    let cut = version
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    match version[cut..].parse::<u64>() {
        Ok(n) => format!("{}{}", &version[..cut], n + 1),
        Err(_) => format!("{version}.1"),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The date part of an RFC 3339 timestamp.
pub fn day(at: &str) -> &str {
    at.get(..10).unwrap_or(at)
}

/// A version people cite: letters, digits, `.`, `-`, `_`; up to 40.
pub fn check_version(version: &str) -> Result<(), String> {
    let ok = !version.is_empty()
        && version.len() <= 40
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !version.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{version}` is not a version: use letters, digits, `.`, `-` and `_` (e.g. 2026.2)"
        ))
    }
}

/// The step a campaign for `file` at `version` records in each hire's journal, e.g.
/// `ack-it-policies-2026-2` for `it-policies.md` 2026.2.
pub fn campaign_step(file: &str, version: &str) -> String {
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    let plain = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    };
    format!("ack-{}-{}", plain(stem), plain(version))
}

/// What the hire confirms when a playbook or a campaign lists no items.
pub fn default_item(file: &str, version: &str) -> String {
    format!("I have read {file} version {version} and I accept it")
}

/// One acceptance of a policy, as its journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acceptance {
    pub hire: String,
    pub step: String,
    pub policy: PolicyRef,
    pub by: String,
    pub at: String,
    pub how: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub witness: String,
    /// Who recorded it (an OS user, a sign-in, "via link sent to …").
    pub recorded_by: String,
    /// The record's line in the journal (1-based).
    pub line: usize,
}

/// Every acceptance in a hire's records, oldest first. A refusal is not an acceptance.
pub fn acceptances(hire: &str, records: &[Record]) -> Vec<Acceptance> {
    records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.event {
            Event::SignedOff {
                step,
                by,
                refused: None,
                policy: Some(policy),
                how,
                witness,
                ..
            } => Some(Acceptance {
                hire: hire.to_owned(),
                step: step.clone(),
                policy: policy.clone(),
                by: by.clone(),
                at: r.at.clone(),
                how: how.clone(),
                witness: witness.clone(),
                recorded_by: r.actor.clone(),
                line: i + 1,
            }),
            _ => None,
        })
        .collect()
}

/// Where a person stands with a policy's current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "standing", rename_all = "snake_case")]
pub enum Standing {
    /// Accepted the current text within the period.
    Current { version: String, at: String },
    /// Behind, and why (never accepted, an older version, too long ago).
    Behind { reason: String },
}

impl Standing {
    pub fn is_behind(&self) -> bool {
        matches!(self, Standing::Behind { .. })
    }
}

/// Where someone with these acceptances stands with `current` (of the same file): behind when
/// they never accepted it, accepted an older version or other text, or accepted it more than
/// `max_age_days` before `now` (0: no period).
pub fn standing(
    accepted: &[Acceptance],
    current: &Published,
    max_age_days: u32,
    now: jiff::Timestamp,
) -> Standing {
    let of_file = || accepted.iter().filter(|a| a.policy.file == current.file);
    // The current text, accepted: current, unless that was too long ago.
    if let Some(last) = of_file()
        .filter(|a| a.policy.version == current.version && a.policy.sha256 == current.sha256)
        .max_by(|a, b| a.at.cmp(&b.at))
    {
        let age = last
            .at
            .parse::<jiff::Timestamp>()
            .map_or(0, |at| (now.as_second() - at.as_second()) / 86_400);
        if max_age_days > 0 && age > i64::from(max_age_days) {
            return Standing::Behind {
                reason: format!(
                    "accepted version {} on {}, {age} days ago (more than {max_age_days})",
                    last.policy.version,
                    day(&last.at)
                ),
            };
        }
        return Standing::Current {
            version: last.policy.version.clone(),
            at: last.at.clone(),
        };
    }
    let Some(last) = of_file().max_by(|a, b| a.at.cmp(&b.at)) else {
        return Standing::Behind {
            reason: "never accepted".into(),
        };
    };
    let on = day(&last.at);
    Standing::Behind {
        reason: if last.policy.version != current.version {
            format!(
                "accepted version {} on {on}; {} is current",
                last.policy.version, current.version
            )
        } else {
            format!(
                "accepted version {} on {on} with a different text (sha256 {})",
                last.policy.version,
                short(&last.policy.sha256)
            )
        },
    }
}

/// What changed from `old` to `new`, section by section (Markdown headings), for people:
/// "New section: …", "Removed section: …", "Changed: … (2 lines added, 1 removed)".
pub fn diff_summary(old: &str, new: &str) -> Vec<String> {
    let (old, new) = (sections(old), sections(new));
    let mut out = Vec::new();
    for (title, lines) in &new {
        match old.iter().find(|(t, _)| t == title) {
            None => out.push(format!("New section: {}", name(title))),
            Some((_, before)) if before != lines => {
                let common = common_lines(before, lines);
                let (added, removed) = (lines.len() - common, before.len() - common);
                let count = |n: usize, what: &str| match n {
                    0 => None,
                    1 => Some(format!("1 line {what}")),
                    n => Some(format!("{n} lines {what}")),
                };
                let parts: Vec<String> = [count(added, "added"), count(removed, "removed")]
                    .into_iter()
                    .flatten()
                    .collect();
                let parts = if parts.is_empty() {
                    "lines reordered".to_owned()
                } else {
                    parts.join(", ")
                };
                out.push(format!("Changed: {} ({parts})", name(title)));
            }
            Some(_) => {}
        }
    }
    for (title, _) in &old {
        if !new.iter().any(|(t, _)| t == title) {
            out.push(format!("Removed section: {}", name(title)));
        }
    }
    out
}

fn name(title: &str) -> &str {
    if title.is_empty() {
        "the introduction"
    } else {
        title
    }
}

/// The document cut at its headings: (heading text, its non-blank lines). The part before the
/// first heading has an empty title.
fn sections(text: &str) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = vec![(String::new(), Vec::new())];
    for line in text.lines() {
        let trimmed = line.trim_end();
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
            out.push((trimmed[hashes..].trim().to_owned(), Vec::new()));
        } else if !trimmed.trim().is_empty() {
            out.last_mut().expect("one section").1.push(trimmed);
        }
    }
    if out[0].1.is_empty() {
        out.remove(0);
    }
    out
}

/// The length of the longest common subsequence of two sections' lines.
fn common_lines(a: &[&str], b: &[&str]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "# IT policies\n\nVersion 2026.1.\n\n## Your account\n- Never share it.\n- Lock your screen.\n\n## Fax\nDo not fax.\n";
    const NEW: &str = "# IT policies\n\nVersion 2026.2.\n\n## Your account\n- Never share it.\n- Use MFA.\n- Lock your screen.\n\n## AI tools\nOnly approved ones.\n";

    #[test]
    fn the_summary_names_new_changed_and_removed_sections() {
        assert_eq!(
            diff_summary(OLD, NEW),
            [
                "Changed: IT policies (1 line added, 1 line removed)",
                "Changed: Your account (1 line added)",
                "New section: AI tools",
                "Removed section: Fax",
            ]
        );
        assert!(diff_summary(NEW, NEW).is_empty());
    }

    fn acceptance(version: &str, sha: &str, at: &str) -> Acceptance {
        Acceptance {
            hire: "E1".into(),
            step: "policies".into(),
            policy: PolicyRef {
                file: "it-policies.md".into(),
                version: version.into(),
                sha256: sha.into(),
            },
            by: "Ada".into(),
            at: at.into(),
            how: "link".into(),
            witness: String::new(),
            recorded_by: "via link".into(),
            line: 3,
        }
    }

    #[test]
    fn standing_says_why_someone_is_behind() {
        let current = Published::new("it-policies.md", "2026.2", NEW, "2026-11-01T00:00:00Z");
        let now: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let behind = |accepted: &[Acceptance], days| match standing(accepted, &current, days, now) {
            Standing::Behind { reason } => reason,
            s => panic!("{s:?}"),
        };
        assert_eq!(behind(&[], 365), "never accepted");
        let old = acceptance("2026.1", "aa", "2026-01-10T09:00:00Z");
        assert_eq!(
            behind(std::slice::from_ref(&old), 365),
            "accepted version 2026.1 on 2026-01-10; 2026.2 is current"
        );
        let new = acceptance("2026.2", &current.sha256, "2026-11-20T09:00:00Z");
        assert_eq!(
            standing(&[old.clone(), new.clone()], &current, 365, now),
            Standing::Current {
                version: "2026.2".into(),
                at: "2026-11-20T09:00:00Z".into()
            }
        );
        assert_eq!(
            behind(std::slice::from_ref(&new), 5),
            "accepted version 2026.2 on 2026-11-20, 10 days ago (more than 5)"
        );
        // An older version accepted after the current one does not undo it.
        let later_old = acceptance("2026.1", "aa", "2026-11-25T09:00:00Z");
        assert!(!standing(&[new, later_old], &current, 365, now).is_behind());
    }

    #[test]
    fn a_version_names_one_text() {
        let kept = Published::new("it-policies.md", "2026.1", OLD, "2026-01-02T00:00:00Z");
        assert!(kept.intact());
        assert_eq!(compare(&kept, &kept.sha256, &[]), Ok(()));
        let conflict = compare(&kept, &crate::digest::sha256(NEW), &[]).unwrap_err();
        assert!(conflict.message.contains("published on 2026-01-02"));
        assert!(conflict.hint.contains("(e.g. 2026.2)"), "{}", conflict.hint);
        let taken = Published::new("it-policies.md", "2026.2", NEW, "2026-06-01T00:00:00Z");
        let conflict = compare(&kept, &crate::digest::sha256(NEW), &[kept.clone(), taken]);
        assert!(conflict.unwrap_err().hint.contains("(e.g. 2026.3)"));
        assert_eq!(next_version("v3"), "v4");
        assert_eq!(next_version("final"), "final.1");
    }

    /// Acceptances are the signed records that name a policy; a refusal is not one.
    #[test]
    fn acceptances_are_read_from_signed_records() {
        let record = |seq: u64, refused: Option<crate::journal::Refusal>| Record {
            v: 1,
            seq,
            at: format!("2026-11-2{seq}T10:00:00Z"),
            actor: "via link sent to ada@example.org".into(),
            run: "r".into(),
            event: Event::SignedOff {
                step: "policies".into(),
                checksum: "c".into(),
                role: "hire".into(),
                by: "Ada".into(),
                confirmed: vec!["I accept".into()],
                refused,
                note: String::new(),
                evidence: Default::default(),
                asset: Default::default(),
                policy: Some(PolicyRef {
                    file: "it-policies.md".into(),
                    version: "2026.1".into(),
                    sha256: "ab".into(),
                }),
                how: "link".into(),
                witness: String::new(),
            },
            prev: String::new(),
        };
        let refusal = crate::journal::Refusal {
            item: "I accept".into(),
            reason: "unclear".into(),
        };
        let found = acceptances("E1", &[record(1, Some(refusal)), record(2, None)]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 2);
        assert_eq!(found[0].how, "link");
        assert_eq!(found[0].recorded_by, "via link sent to ada@example.org");
    }

    #[test]
    fn campaign_steps_and_versions() {
        assert_eq!(
            campaign_step("it-policies.md", "2026.2"),
            "ack-it-policies-2026-2"
        );
        assert!(check_version("2026.2").is_ok());
        assert!(check_version("../x").is_err());
        assert!(check_version("").is_err());
    }
}
