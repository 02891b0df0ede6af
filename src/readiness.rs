//! Day-one readiness: is each hire ready, on track, at risk or late, and what blocks them.
//!
//! Pure: it reads a hire's replayed journal and the time, nothing else. A hire is
//!
//! - **ready** when every step of the plan is done (a step the last run planned and no record
//!   mentions yet is pending, not done);
//! - **late** when the start has passed, or a step is not done by its deadline;
//! - **at risk** when a step failed (or its send is uncertain, or a refusal is not resolved),
//!   or a step that is not done is due within [`AT_RISK_WITHIN_HOURS`] (its deadline, or the
//!   start for steps without one);
//! - **on track** otherwise.

use jiff::Timestamp;
use serde::Serialize;

use crate::journal::{HireState, Status};

/// How close a deadline must be for an unfinished step to put the hire at risk.
pub const AT_RISK_WITHIN_HOURS: i64 = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    Ready,
    OnTrack,
    AtRisk,
    Late,
}

impl Readiness {
    pub fn label(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::OnTrack => "on track",
            Readiness::AtRisk => "AT RISK",
            Readiness::Late => "LATE",
        }
    }

    /// Whether someone should act now.
    pub fn alarming(self) -> bool {
        matches!(self, Readiness::AtRisk | Readiness::Late)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    pub readiness: Readiness,
    /// What stands between the hire and day one, most urgent first.
    pub blockers: Vec<Blocker>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Blocker {
    pub step: String,
    pub status: &'static str,
    /// e.g. "waiting on the technician: 4 items to confirm".
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// One sentence for people: "laptop-cleaning waiting on the technician for 2 days, due …".
    pub summary: String,
}

/// Whether a step counts for readiness (the notifications about readiness do not, nor a
/// policy campaign's request, which comes after onboarding).
pub fn counts(step: &str, state: &crate::journal::StepState) -> bool {
    !step.starts_with("notify-") && !state.request.as_ref().is_some_and(|r| r.campaign)
}

pub fn assess(state: &HireState, now: Timestamp) -> Assessment {
    let zone = state.start.split_whitespace().nth(2).unwrap_or("UTC");
    let start: Option<Timestamp> = state.start_at.parse().ok();
    let mut blockers = Vec::new();
    let mut worst = Readiness::OnTrack;
    let mut all_done = true;
    for (id, s) in state.steps.iter().filter(|(id, s)| counts(id, s)) {
        // A done step whose effect is gone (the last run found it so) is not done.
        if s.status == Status::Done && !s.lost {
            continue;
        }
        all_done = false;
        let deadline: Option<Timestamp> = state
            .deadlines
            .get(id)
            .and_then(|d| d.parse().ok())
            .or(start);
        let hours_left = deadline.map(|d| (d.as_second() - now.as_second()) / 3600);
        let step_readiness = match (s.status, hours_left) {
            (_, Some(h)) if h < 0 => Readiness::Late,
            // Someone refused it and nobody has put it right yet, or its effect is gone.
            _ if !s.refusals_open.is_empty() || s.lost => Readiness::AtRisk,
            (Status::Failed | Status::Uncertain | Status::Skipped | Status::Running, _) => {
                Readiness::AtRisk
            }
            (_, Some(h)) if h < AT_RISK_WITHIN_HOURS => Readiness::AtRisk,
            _ => Readiness::OnTrack,
        };
        worst = worst.max(step_readiness);
        let detail = match (&s.drift, s.lost) {
            (Some(lost), true) => lost.clone(),
            _ if s.detail.is_empty() => s.status.as_str().to_owned(),
            _ => s.detail.clone(),
        };
        let mut summary = format!("{id} {detail}");
        if let Some(since) = s
            .waiting_since
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
        {
            summary.push_str(&format!(
                " for {}",
                duration(now.as_second() - since.as_second())
            ));
        }
        if let Some(d) = deadline {
            let verb = if step_readiness == Readiness::Late {
                "was due"
            } else {
                "due"
            };
            summary.push_str(&format!(", {verb} {}", local(d, zone)));
        }
        blockers.push((
            step_readiness,
            Blocker {
                step: id.clone(),
                status: s.status.as_str(),
                detail,
                since: s.waiting_since.clone(),
                deadline: deadline.map(|d| d.to_string()),
                summary,
            },
        ));
    }
    if all_done && !state.steps.is_empty() {
        return Assessment {
            readiness: Readiness::Ready,
            blockers: Vec::new(),
        };
    }
    if start.is_some_and(|s| s <= now) {
        worst = Readiness::Late;
    }
    blockers.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.deadline.cmp(&b.1.deadline)));
    Assessment {
        readiness: worst,
        blockers: blockers.into_iter().map(|(_, b)| b).collect(),
    }
}

/// "2 days", "5 hours", "10 minutes".
fn duration(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match seconds.max(0) {
        s if s >= 86_400 => plural(s / 86_400, "day"),
        s if s >= 3_600 => plural(s / 3_600, "hour"),
        s if s >= 60 => plural(s / 60, "minute"),
        _ => "under a minute".to_owned(),
    }
}

/// "Thu 2026-12-03 09:00 Europe/Berlin": an instant in the hire's time zone.
pub fn local(t: Timestamp, zone: &str) -> String {
    match t.in_tz(zone) {
        Ok(z) => format!("{} {zone}", z.strftime("%a %Y-%m-%d %H:%M")),
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::StepState;
    use std::collections::BTreeMap;

    fn step(status: Status, detail: &str, since: Option<&str>) -> StepState {
        StepState {
            status,
            checksum: String::new(),
            at: String::new(),
            actor: String::new(),
            outputs: BTreeMap::new(),
            changes: Vec::new(),
            intent: BTreeMap::new(),
            detail: detail.into(),
            request: None,
            waiting_since: since.map(str::to_owned),
            evidence: BTreeMap::new(),
            ..StepState::default()
        }
    }

    fn hire(steps: Vec<(&str, StepState)>, deadlines: &[(&str, &str)]) -> HireState {
        HireState {
            hire: "E1".into(),
            start: "2026-12-07 09:00 Europe/Berlin".into(),
            start_at: "2026-12-07T08:00:00Z".into(),
            steps: steps.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            deadlines: deadlines
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..HireState::default()
        }
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn classification_follows_deadlines_and_the_start() {
        let waiting = || {
            step(
                Status::Waiting,
                "waiting on the technician: 4 items to confirm",
                Some("2026-11-30T08:00:00Z"),
            )
        };
        let h = hire(
            vec![
                ("account", step(Status::Done, "", None)),
                ("cleaning", waiting()),
            ],
            &[("cleaning", "2026-12-03T08:00:00Z")],
        );
        assert_eq!(
            assess(&h, at("2026-11-30T09:00:00Z")).readiness,
            Readiness::OnTrack
        );
        let risk = assess(&h, at("2026-12-02T09:00:00Z"));
        assert_eq!(risk.readiness, Readiness::AtRisk);
        assert_eq!(
            risk.blockers[0].summary,
            "cleaning waiting on the technician: 4 items to confirm for 2 days, due Thu 2026-12-03 09:00 Europe/Berlin"
        );
        let late = assess(&h, at("2026-12-03T09:00:00Z"));
        assert_eq!(late.readiness, Readiness::Late);
        assert!(
            late.blockers[0]
                .summary
                .contains("was due Thu 2026-12-03 09:00")
        );
        let done = hire(vec![("account", step(Status::Done, "", None))], &[]);
        assert_eq!(
            assess(&done, at("2027-01-01T00:00:00Z")).readiness,
            Readiness::Ready
        );
        let failed = hire(
            vec![(
                "groups",
                step(Status::Failed, "group x does not exist", None),
            )],
            &[],
        );
        assert_eq!(
            assess(&failed, at("2026-11-01T00:00:00Z")).readiness,
            Readiness::AtRisk
        );
        let undated = hire(
            vec![(
                "badge",
                step(Status::Waiting, "waiting on facilities", None),
            )],
            &[],
        );
        assert_eq!(
            assess(&undated, at("2026-12-07T08:00:01Z")).readiness,
            Readiness::Late,
            "the start passed"
        );
        // A policy campaign's request, months later, does not make a hire late for day one.
        let mut asked = step(
            Status::Waiting,
            "accept it-policies.md version 2026.2",
            None,
        );
        asked.request = Some(crate::journal::SignOffRequest {
            campaign: true,
            ..Default::default()
        });
        let onboarded = hire(
            vec![
                ("account", step(Status::Done, "", None)),
                ("ack-it-policies-2026-2", asked),
            ],
            &[],
        );
        assert_eq!(
            assess(&onboarded, at("2027-03-01T00:00:00Z")).readiness,
            Readiness::Ready
        );
    }
}
