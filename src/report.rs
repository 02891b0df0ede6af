//! Completion reports for auditors, drawn only from journals.
//!
//! One value ([`Report`], JSON format `onboard.report/1`) is built from the journals and then
//! written as JSON, CSV (one row per step) or a self-contained HTML page (Tera template
//! `templates/report.html.tera`, built into the binary). Every hire carries whether its hash
//! chain verified; a journal that does not is reported up to its first broken line, and flagged.
//! The HR view leaves out technical detail (DNs, hashes, Message-IDs, the record timeline).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::journal::{self, Record, Status};

/// Version tag of the JSON report.
pub const REPORT_FORMAT: &str = "onboard.report/1";

/// The HTML template, shipped in templates/ and built in so reports work anywhere.
pub const HTML_TEMPLATE: &str = include_str!("../templates/report.html.tera");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Everything the journal holds (never a secret: the journal has none).
    Full,
    /// What HR needs: who, what state, when; no technical detail.
    Hr,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub generated_at: String,
    pub view: View,
    /// Counts by hire state, and whether every journal verified.
    pub summary: Summary,
    pub hires: Vec<HireReport>,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub hires: usize,
    pub complete: usize,
    pub in_progress: usize,
    pub failed: usize,
    pub broken_journals: usize,
    pub all_verified: bool,
}

#[derive(Debug, Serialize)]
pub struct HireReport {
    pub hire: String,
    pub playbook: String,
    /// `YYYY-MM-DD HH:MM Zone`, when known.
    pub start: String,
    /// `complete`, `in_progress` (something waits), `failed`, or `broken` (journal tampered).
    pub state: &'static str,
    /// The hire has started and is not complete.
    pub overdue: bool,
    pub journal: JournalCheck,
    pub steps: Vec<StepReport>,
    /// Every record, oldest first (empty in the HR view).
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Serialize)]
pub struct JournalCheck {
    pub file: String,
    pub records: usize,
    pub verified: bool,
    /// 1-based line of the first broken record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StepReport {
    pub step: String,
    pub status: &'static str,
    /// When it last changed, and by whom (for a sign-off: who recorded it).
    pub at: String,
    pub by: String,
    /// What it changed (empty in the HR view).
    pub changes: Vec<String>,
    pub evidence: BTreeMap<String, String>,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct TimelineEntry {
    pub line: usize,
    pub at: String,
    pub actor: String,
    pub event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// One journal as read from disk.
pub struct JournalFile {
    pub hire: String,
    pub path: String,
    /// What could be read, and where reading stopped (a byte that is not UTF-8, a file that
    /// cannot be opened).
    pub journal: journal::JournalText,
}

impl Report {
    /// `FILE:LINE: problem` for each journal that does not verify.
    pub fn broken(&self) -> Vec<String> {
        self.hires
            .iter()
            .filter(|h| !h.journal.verified)
            .map(|h| {
                format!(
                    "{}:{}: {}",
                    h.journal.file,
                    h.journal.broken_line.unwrap_or(0),
                    h.journal.problem.as_deref().unwrap_or("")
                )
            })
            .collect()
    }
}

impl JournalFile {
    /// A hire's journal from the store; one that cannot be read is flagged, not an error, so
    /// it hides no other hire.
    pub fn read(store: &dyn crate::store::Store, hire: &str) -> JournalFile {
        Self::from_read(store, hire, store.read(hire))
    }

    /// Every hire's journal, read in one pass where the store can.
    pub fn read_many(store: &dyn crate::store::Store, hires: &[String]) -> Vec<JournalFile> {
        hires
            .iter()
            .zip(store.read_many(hires))
            .map(|(hire, read)| Self::from_read(store, hire, read))
            .collect()
    }

    fn from_read(
        store: &dyn crate::store::Store,
        hire: &str,
        read: std::io::Result<journal::JournalText>,
    ) -> JournalFile {
        let journal = read.unwrap_or_else(|e| journal::JournalText {
            text: String::new(),
            unreadable: Some(journal::Broken {
                line: 1,
                problem: format!("cannot be read: {e}"),
            }),
        });
        JournalFile {
            path: store.journal_name(hire),
            hire: hire.to_owned(),
            journal,
        }
    }
}

/// Evidence keys that are technical detail, left out of the HR view.
const TECHNICAL: &[&str] = &[
    "message_id",
    "password_message_id",
    "policy_sha256",
    "note",
    "recipients",
];

/// Builds the report. `now` decides what is overdue.
pub fn build(journals: &[JournalFile], view: View, now: jiff::Timestamp) -> Report {
    let mut hires = Vec::new();
    for j in journals {
        hires.push(hire_report(j, view, now));
    }
    let mut summary = Summary {
        hires: hires.len(),
        ..Summary::default()
    };
    for h in &hires {
        match h.state {
            "complete" => summary.complete += 1,
            "failed" => summary.failed += 1,
            "broken" => summary.broken_journals += 1,
            _ => summary.in_progress += 1,
        }
    }
    summary.all_verified = hires.iter().all(|h| h.journal.verified);
    Report {
        format: REPORT_FORMAT,
        generated_at: now.to_string(),
        view,
        summary,
        hires,
    }
}

fn hire_report(j: &JournalFile, view: View, now: jiff::Timestamp) -> HireReport {
    // What verifies is still reported; a break is flagged.
    let (records, broken) = j.journal.checked();
    let check = JournalCheck {
        file: j.path.clone(),
        records: records.len(),
        verified: broken.is_none(),
        broken_line: broken.as_ref().map(|b| b.line),
        problem: broken.map(|b| b.problem),
    };
    let state = journal::replay(&records);
    let steps: Vec<StepReport> = step_order(&records)
        .into_iter()
        .filter_map(|id| state.steps.get(&id).map(|s| (id, s)))
        .map(|(id, s)| StepReport {
            step: id,
            status: s.status.as_str(),
            at: s.at.clone(),
            by: s.actor.clone(),
            changes: match view {
                View::Full => s.changes.clone(),
                View::Hr => Vec::new(),
            },
            evidence: s
                .evidence
                .iter()
                .filter(|(k, _)| {
                    view == View::Full
                        || !(TECHNICAL.contains(&k.as_str()) || k.starts_with("file:"))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            detail: s.detail.clone(),
        })
        .collect();
    let hire_state = if !check.verified {
        "broken"
    } else if state
        .steps
        .values()
        .any(|s| matches!(s.status, Status::Failed | Status::Uncertain))
    {
        "failed"
    } else if !state.steps.is_empty()
        && state
            .steps
            .values()
            // A policy campaign's request, after onboarding, is listed but does not reopen it.
            .filter(|s| !s.request.as_ref().is_some_and(|r| r.campaign))
            .all(|s| s.status == Status::Done && !s.lost)
    {
        "complete"
    } else {
        "in_progress"
    };
    let overdue = hire_state != "complete" && started(&state.start, now);
    let timeline = match view {
        View::Hr => Vec::new(),
        View::Full => records
            .iter()
            .enumerate()
            .map(|(i, r)| TimelineEntry {
                line: i + 1,
                at: r.at.clone(),
                actor: r.actor.clone(),
                event: r.event.name(),
                step: r.event.step().map(str::to_owned),
            })
            .collect(),
    };
    HireReport {
        hire: if state.hire.is_empty() {
            j.hire.clone()
        } else {
            state.hire.clone()
        },
        playbook: state.playbook.clone(),
        start: state.start.clone(),
        state: hire_state,
        overdue,
        journal: check,
        steps,
        timeline,
    }
}

/// Steps in the order the journal first mentions them (a run's plan, then the records).
fn step_order(records: &[Record]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for r in records {
        let named: Vec<&str> = match &r.event {
            journal::Event::RunStarted { steps, .. } => steps.iter().map(String::as_str).collect(),
            event => event.step().into_iter().collect(),
        };
        for step in named {
            if !order.iter().any(|s| s == step) {
                order.push(step.to_owned());
            }
        }
    }
    order
}

/// Whether `start` (`YYYY-MM-DD HH:MM Zone`) is before `now`.
fn started(start: &str, now: jiff::Timestamp) -> bool {
    let mut parts = start.split_whitespace();
    let (Some(date), time, zone) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(date) = date.parse::<jiff::civil::Date>() else {
        return false;
    };
    let time = time
        .and_then(|t| t.parse::<jiff::civil::Time>().ok())
        .unwrap_or(jiff::civil::Time::midnight());
    let tz = zone
        .and_then(|z| jiff::tz::TimeZone::get(z).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    date.to_datetime(time)
        .to_zoned_datetime(tz)
        .is_ok_and(|z| z.timestamp() <= now)
}

/// Whether a hire belongs in a report limited to `since..=until` (by start date, else by
/// the journal's first record).
pub fn in_range(
    j: &JournalFile,
    since: Option<jiff::civil::Date>,
    until: Option<jiff::civil::Date>,
) -> bool {
    if since.is_none() && until.is_none() {
        return true;
    }
    let records = j.journal.checked().0;
    let state = journal::replay(&records);
    let day = state
        .start
        .split_whitespace()
        .next()
        .and_then(|d| d.parse::<jiff::civil::Date>().ok())
        .or_else(|| {
            let first = records.first()?;
            let ts: jiff::Timestamp = first.at.parse().ok()?;
            Some(ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).date())
        });
    let Some(day) = day else { return false };
    since.is_none_or(|s| day >= s) && until.is_none_or(|u| day <= u)
}

/// One row per step, for spreadsheets.
pub fn csv(report: &Report) -> String {
    let mut out = String::from(
        "hire,playbook,start,hire_state,journal_verified,step,status,at,by,changes,evidence,detail\n",
    );
    for h in &report.hires {
        if h.steps.is_empty() {
            // A hire with no step to show (a journal broken early) still has its row.
            let problem = match (&h.journal.problem, h.journal.broken_line) {
                (Some(p), Some(line)) => format!("{}:{line}: {p}", h.journal.file),
                _ => String::new(),
            };
            let verified = if h.journal.verified { "yes" } else { "no" };
            let fields = [
                h.hire.as_str(),
                &h.playbook,
                &h.start,
                h.state,
                verified,
                "",
                "",
                "",
                "",
                "",
                "",
                &problem,
            ];
            let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            let _ = writeln!(out, "{}", row.join(","));
        }
        for s in &h.steps {
            let evidence: Vec<String> =
                s.evidence.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let fields = [
                h.hire.as_str(),
                &h.playbook,
                &h.start,
                h.state,
                if h.journal.verified { "yes" } else { "no" },
                &s.step,
                s.status,
                &s.at,
                &s.by,
                &s.changes.join("; "),
                &evidence.join("; "),
                &s.detail,
            ];
            let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            let _ = writeln!(out, "{}", row.join(","));
        }
    }
    out
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet does
/// not run hire data as a formula.
pub(crate) fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// The self-contained HTML page.
pub fn html(report: &Report) -> Result<String, tera::Error> {
    let mut tera = tera::Tera::default();
    tera.autoescape_on([".html", ".html.tera"]);
    tera.add_raw_template("report.html.tera", HTML_TEMPLATE)?;
    let ctx = tera::Context::from_serialize(report)?;
    tera.render("report.html.tera", &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn overdue_means_the_start_has_passed() {
        let now: jiff::Timestamp = "2026-12-07T09:30:00Z".parse().unwrap();
        assert!(started("2026-12-07 09:00 Europe/London", now));
        assert!(!started("2026-12-07 10:00 Europe/London", now));
        assert!(started("2026-12-07 10:00 Asia/Tokyo", now));
        assert!(!started("", now));
    }
}
