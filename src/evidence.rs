//! A hire's evidence pack (`onboard report HIRE --evidence`): every signature and hand-off
//! acknowledgement with its journal record's place and hash, every evidence file with its
//! SHA-256, and the journal's verification, in one JSON file and one printable HTML page, for
//! an auditor to keep. Pure: built from the journal's text and the evidence files.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::journal::{self, Event, JournalText};

pub const FORMAT: &str = "onboard.evidence/1";

const HTML_TEMPLATE: &str = include_str!("../templates/evidence.html.tera");

#[derive(Debug, Serialize)]
pub struct Pack {
    pub format: &'static str,
    pub hire: String,
    pub generated_at: String,
    pub journal: Check,
    /// Signatures, refusals and hand-off acknowledgements, oldest first.
    pub signatures: Vec<Signature>,
    pub files: Vec<File>,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub records: usize,
    pub verified: bool,
    /// The hash of the last record that verifies: the pack vouches for the journal up to it.
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Signature {
    pub step: String,
    /// `sign_off`, `handoff` (the hire acknowledged a device), `acceptance` (of a policy
    /// text), or `refusal`.
    pub kind: &'static str,
    pub role: String,
    pub by: String,
    /// Who recorded it: an OS user, a sign-in, "via link sent to …".
    pub recorded_by: String,
    pub at: String,
    pub confirmed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub evidence: BTreeMap<String, String>,
    pub asset: BTreeMap<String, String>,
    /// For an acceptance: the policy file, version and SHA-256 of the text accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<journal::PolicyRef>,
    /// How it was given (`terminal`, `link`, `web`, `in person`) and the witness, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub how: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub witness: String,
    /// The record's line in the journal, and its hash.
    pub line: usize,
    pub record_hash: String,
}

#[derive(Debug, Serialize)]
pub struct File {
    pub name: String,
    pub sha256: String,
    pub bytes: usize,
}

/// Builds the pack from a hire's journal and its evidence files (name, bytes).
pub fn build(
    hire: &str,
    name: &str,
    journal: &JournalText,
    files: &[(String, Vec<u8>)],
    now: jiff::Timestamp,
) -> Pack {
    let (records, broken) = journal.checked();
    // A record's hash is the next record's `prev`; the last one's is on its own line.
    let good: String = journal
        .text
        .split_terminator('\n')
        .take(records.len())
        .map(|l| format!("{l}\n"))
        .collect();
    let head = journal::last_hash(&good).unwrap_or("").to_owned();
    let hash_of = |i: usize| {
        records
            .get(i + 1)
            .map_or(head.clone(), |next| next.prev.clone())
    };
    let mut handoffs = std::collections::BTreeSet::new();
    let mut signatures = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match &r.event {
            Event::StepWaiting {
                step,
                request: Some(q),
                ..
            } if q.cleaning.is_some() => {
                handoffs.insert(step.clone());
            }
            Event::SignedOff {
                step,
                role,
                by,
                confirmed,
                refused,
                evidence,
                asset,
                policy,
                how,
                witness,
                ..
            } => signatures.push(Signature {
                step: step.clone(),
                kind: if refused.is_some() {
                    "refusal"
                } else if policy.is_some() {
                    "acceptance"
                } else if handoffs.contains(step) {
                    "handoff"
                } else {
                    "sign_off"
                },
                role: role.clone(),
                by: by.clone(),
                recorded_by: r.actor.clone(),
                at: r.at.clone(),
                confirmed: confirmed.clone(),
                refused: refused
                    .as_ref()
                    .map(|f| format!("\"{}\": {}", f.item, f.reason)),
                evidence: evidence.clone(),
                asset: asset.clone(),
                policy: policy.clone(),
                how: how.clone(),
                witness: witness.clone(),
                line: i + 1,
                record_hash: hash_of(i),
            }),
            _ => {}
        }
    }
    let mut files: Vec<File> = files
        .iter()
        .map(|(name, bytes)| File {
            name: name.clone(),
            sha256: crate::digest::sha256(bytes),
            bytes: bytes.len(),
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name).then(a.sha256.cmp(&b.sha256)));
    Pack {
        format: FORMAT,
        hire: hire.to_owned(),
        generated_at: now.to_string(),
        journal: Check {
            name: name.to_owned(),
            records: records.len(),
            verified: broken.is_none(),
            head,
            broken_line: broken.as_ref().map(|b| b.line),
            problem: broken.map(|b| b.problem),
        },
        signatures,
        files,
    }
}

/// The printable page.
pub fn html(pack: &Pack) -> Result<String, tera::Error> {
    let mut tera = tera::Tera::default();
    tera.autoescape_on([".html"]);
    tera.add_raw_template("evidence.html", HTML_TEMPLATE)?;
    tera.render("evidence.html", &tera::Context::from_serialize(pack)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, SignOffRequest};

    #[test]
    fn signatures_carry_their_record_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("E1.jsonl");
        let mut j = Journal::open(&path, "r1", "alice").unwrap().journal;
        let request = SignOffRequest {
            role: "hire".into(),
            items: vec!["I received it".into()],
            cleaning: Some("clean".into()),
            ..SignOffRequest::default()
        };
        j.append(
            "t1",
            Event::StepWaiting {
                step: "handoff".into(),
                on: "hire".into(),
                reason: String::new(),
                request: Some(request),
                after: Vec::new(),
            },
        )
        .unwrap();
        drop(j);
        let mut j = Journal::open(&path, "r2", "via link sent to ada@example.org")
            .unwrap()
            .journal;
        j.append(
            "t2",
            Event::SignedOff {
                step: "handoff".into(),
                checksum: "c".into(),
                role: "hire".into(),
                by: "Ada".into(),
                confirmed: vec!["I received it".into()],
                refused: None,
                note: String::new(),
                evidence: BTreeMap::new(),
                asset: BTreeMap::new(),
                policy: None,
                how: "link".into(),
                witness: String::new(),
            },
        )
        .unwrap();
        let text = journal::read_text(&path).unwrap();
        let pack = build(
            "E1",
            "E1.jsonl",
            &text,
            &[("wc.pdf".into(), b"%PDF".to_vec())],
            jiff::Timestamp::UNIX_EPOCH,
        );
        assert!(pack.journal.verified);
        assert_eq!(pack.journal.records, 2);
        let s = &pack.signatures[0];
        assert_eq!((s.kind, s.line, s.by.as_str()), ("handoff", 2, "Ada"));
        assert_eq!(s.record_hash, pack.journal.head);
        assert_eq!(s.recorded_by, "via link sent to ada@example.org");
        assert_eq!(pack.files[0].sha256, crate::digest::sha256(b"%PDF"));
        assert!(html(&pack).unwrap().contains("Ada"));
    }
}
