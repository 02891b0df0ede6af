//! `onboard policies status`: per person and policy, the version accepted and when, who is
//! behind and why, each acceptance's journal record, and each journal's check. Pure: built
//! from the journals' text and the published versions; rendered as text, JSON, CSV or HTML.

use serde::Serialize;

use super::{Acceptance, Published, Standing, acceptances, standing};
use crate::journal::{self, JournalText};

pub const FORMAT: &str = "onboard.policies/1";

const HTML_TEMPLATE: &str = include_str!("../../templates/policies.html.tera");

#[derive(Debug, Serialize)]
pub struct Status {
    pub format: &'static str,
    pub generated_at: String,
    /// Acceptances older than this many days are behind (0: no period).
    pub max_age_days: u32,
    pub policies: Vec<PolicyStatus>,
}

/// One policy file: its current version and everyone's standing with it.
#[derive(Debug, Serialize)]
pub struct PolicyStatus {
    pub file: String,
    pub version: String,
    pub sha256: String,
    pub published_at: String,
    pub current: usize,
    pub behind: usize,
    pub people: Vec<Person>,
}

#[derive(Debug, Serialize)]
pub struct Person {
    pub hire: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(flatten)]
    pub standing: Standing,
    /// Their last acceptance of this file, if any: version, hash, when, how, by whom, and its
    /// journal record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Acceptance>,
    pub journal: JournalCheck,
}

#[derive(Debug, Clone, Serialize)]
pub struct JournalCheck {
    pub name: String,
    pub verified: bool,
    /// Where it does not verify (what is shown is from the records before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One hire's journal as read: its id, its name for messages, its text.
pub struct Journal {
    pub hire: String,
    pub name: String,
    pub text: JournalText,
}

/// Every person's standing with the current (last published) version of each policy file
/// (only `only`, if given).
pub fn build(
    journals: &[Journal],
    published: &[Published],
    only: Option<&str>,
    max_age_days: u32,
    now: jiff::Timestamp,
) -> Status {
    let mut current: Vec<&Published> = Vec::new();
    for p in published
        .iter()
        .filter(|p| only.is_none_or(|f| p.file == f))
    {
        // Published oldest first: the last of a file is its current version.
        match current.iter_mut().find(|c| c.file == p.file) {
            Some(c) => *c = p,
            None => current.push(p),
        }
    }
    let read: Vec<_> = journals
        .iter()
        .map(|j| {
            let (records, broken) = j.text.checked();
            let state = journal::replay(&records);
            let check = JournalCheck {
                name: j.name.clone(),
                verified: broken.is_none(),
                problem: broken.map(|b| b.to_string()),
            };
            (j, acceptances(&j.hire, &records), state.email, check)
        })
        .collect();
    let policies = current
        .into_iter()
        .map(|p| {
            let people: Vec<Person> = read
                .iter()
                .map(|(j, accepted, email, check)| Person {
                    hire: j.hire.clone(),
                    email: email.clone(),
                    standing: standing(accepted, p, max_age_days, now),
                    accepted: accepted
                        .iter()
                        .filter(|a| a.policy.file == p.file)
                        .max_by(|a, b| a.at.cmp(&b.at))
                        .cloned(),
                    journal: check.clone(),
                })
                .collect();
            let behind = people.iter().filter(|p| p.standing.is_behind()).count();
            PolicyStatus {
                file: p.file.clone(),
                version: p.version.clone(),
                sha256: p.sha256.clone(),
                published_at: p.kept_at.clone(),
                current: people.len() - behind,
                behind,
                people,
            }
        })
        .collect();
    Status {
        format: FORMAT,
        generated_at: now.to_string(),
        max_age_days,
        policies,
    }
}

impl Status {
    /// Journals that do not verify, as `NAME: line N: problem`.
    pub fn broken(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .policies
            .iter()
            .flat_map(|p| &p.people)
            .filter_map(|p| {
                Some(format!(
                    "{}: {}",
                    p.journal.name,
                    p.journal.problem.as_ref()?
                ))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// For people at a terminal: per policy, a line per person.
pub fn text(status: &Status) -> String {
    let mut out = String::new();
    for p in &status.policies {
        out.push_str(&format!(
            "{} version {} (published {}, sha256 {}): {} current, {} behind\n",
            p.file,
            p.version,
            super::day(&p.published_at),
            &p.sha256[..12],
            p.current,
            p.behind
        ));
        let width = p.people.iter().map(|x| x.hire.len()).max().unwrap_or(0);
        for person in &p.people {
            let what = match &person.standing {
                Standing::Current { version, at } => format!(
                    "current   accepted {version} on {}{}",
                    super::day(at),
                    person
                        .accepted
                        .as_ref()
                        .map(
                            |a| match crate::steps::human::how_given(&a.how, &a.witness) {
                                how if how.is_empty() => format!(" by {}", a.by),
                                how => format!(" by {} ({how})", a.by),
                            }
                        )
                        .unwrap_or_default()
                ),
                Standing::Behind { reason } => format!("BEHIND    {reason}"),
            };
            let flag = if person.journal.verified {
                String::new()
            } else {
                "  (journal does not verify)".to_owned()
            };
            out.push_str(&format!("  {:width$}  {what}{flag}\n", person.hire));
        }
    }
    out
}

/// One row per person and policy, for spreadsheets.
pub fn csv(status: &Status) -> String {
    use crate::report::csv_field;
    let mut out = String::from(
        "policy,current_version,hire,email,standing,reason,accepted_version,accepted_sha256,\
         accepted_at,accepted_by,how,witness,journal_line,journal_verified\n",
    );
    for p in &status.policies {
        for person in &p.people {
            let (standing, reason) = match &person.standing {
                Standing::Current { .. } => ("current", String::new()),
                Standing::Behind { reason } => ("behind", reason.clone()),
            };
            let a = person.accepted.as_ref();
            let field = |f: fn(&Acceptance) -> String| a.map(f).unwrap_or_default();
            let fields = [
                p.file.clone(),
                p.version.clone(),
                person.hire.clone(),
                person.email.clone(),
                standing.to_owned(),
                reason,
                field(|a| a.policy.version.clone()),
                field(|a| a.policy.sha256.clone()),
                field(|a| a.at.clone()),
                field(|a| a.by.clone()),
                field(|a| a.how.clone()),
                field(|a| a.witness.clone()),
                field(|a| a.line.to_string()),
                if person.journal.verified { "yes" } else { "no" }.to_owned(),
            ];
            let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&row.join(","));
            out.push('\n');
        }
    }
    out
}

/// One self-contained page for auditors, printable.
pub fn html(status: &Status) -> Result<String, tera::Error> {
    let mut tera = tera::Tera::default();
    tera.autoescape_on([".html"]);
    tera.add_raw_template("policies.html", HTML_TEMPLATE)?;
    tera.render("policies.html", &tera::Context::from_serialize(status)?)
}
