//! Day-one readiness: classification across hires, dates and time zones (pinned clock), and
//! the manager's notifications through a real SMTP server.

use crate::common::{TestEnv, repo};
use crate::smtp_server::{Mode, SmtpServer};

/// A hire of `checklist` starting `date` in `zone`.
fn hire(env: &TestEnv, checklist: &str, id: &str, date: &str, zone: &str) -> String {
    let path = env.path(&format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!(
            "checklist: {}\nhire:\n  id: {id}\n  given_name: Pat\n  family_name: {id}\n  \
             work_email: pat.{id}@example.org\n  manager: Mia Manager\n  manager_email: mia@example.org\n  \
             department: Research\n  title: Analyst\n  start_date: {date}\n  time_zone: {zone}\n  \
             end_date: 2027-12-31\n  custom:\n    laptop_asset_tag: LT-{id}\n    laptop_serial: SN-{id}\n",
            repo().join(checklist).display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn hires_are_ready_on_track_at_risk_or_late() {
    // The clock is pinned at 2026-11-23T10:00:00Z (a Monday) for every run.
    let env = TestEnv::new();
    let ready = hire(
        &env,
        "playbooks/contractor.yaml",
        "R1",
        "2026-12-07",
        "America/New_York",
    );
    let on_track = hire(
        &env,
        "playbooks/new-hire.yaml",
        "T1",
        "2026-12-14",
        "Europe/Berlin",
    );
    let at_risk = hire(
        &env,
        "playbooks/new-hire.yaml",
        "K1",
        "2026-11-25",
        "America/New_York",
    );
    let late = hire(
        &env,
        "playbooks/new-hire.yaml",
        "L1",
        "2026-11-20",
        "Asia/Tokyo",
    );
    for h in [&ready, &on_track, &at_risk, &late] {
        env.run(&[h]).success();
    }
    let status = env.run(&["status", "--json"]).code(1);
    let hires: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let by_id: Vec<(&str, &str)> = hires
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["hire"].as_str().unwrap(),
                h["readiness"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_id,
        [
            ("L1", "late"),
            ("K1", "at_risk"),
            ("R1", "ready"),
            ("T1", "on_track")
        ],
        "ordered by start time"
    );
    let k1 = &hires[1];
    assert_eq!(k1["blockers"][0]["step"], "laptop-cleaning");
    assert_eq!(
        k1["blockers"][0]["deadline"], "2026-11-24T14:00:00Z",
        "1 working day before 09:00 New York"
    );
    assert!(status.stderr.contains("2 hires are at risk or late."));

    let human = env.run(&["status"]).code(1);
    assert!(
        human
            .stdout
            .contains("K1  AT RISK  starts Wed 2026-11-25 09:00 America/New_York"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains(
            "    ! laptop-cleaning waiting on the technician: 4 items to confirm for under a minute, due Tue 2026-11-24 09:00 America/New_York"
        ),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains("L1  LATE  starts Fri 2026-11-20 09:00 Asia/Tokyo")
    );
    assert!(
        human
            .stdout
            .contains("R1  ready  starts Mon 2026-12-07 09:00 America/New_York")
    );

    // Two days later the on-track hire is still on track; at its start it is late.
    let later = env
        .run_with(
            &["status", "T1", "--json"],
            &[("ONBOARD_NOW", "2026-11-25T10:00:00Z")],
        )
        .success();
    assert!(later.stdout.contains("\"readiness\": \"on_track\""));
    let at_start = env
        .run_with(
            &["status", "T1", "--json"],
            &[("ONBOARD_NOW", "2026-12-14T08:00:00Z")],
        )
        .code(1);
    assert!(at_start.stdout.contains("\"readiness\": \"late\""));
}

fn subjects(server: &SmtpServer) -> Vec<String> {
    server
        .messages()
        .iter()
        .map(|m| m["headers"]["Subject"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_manager_hears_once_when_everything_is_ready() {
    let server = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    let url = server.url();
    let c1 = hire(
        &env,
        "playbooks/contractor.yaml",
        "C1",
        "2026-12-07",
        "America/New_York",
    );
    for _ in 0..3 {
        env.run_with(&[&c1], &[("ONBOARD_SMTP_URL", &url)])
            .success();
    }
    let ready: Vec<serde_json::Value> = server
        .messages()
        .into_iter()
        .filter(|m| m["headers"]["Subject"] == "Pat C1 is ready for day one")
        .collect();
    assert_eq!(
        ready.len(),
        1,
        "one ready message, none on re-runs: {:?}",
        subjects(&server)
    );
    assert_eq!(
        ready[0]["rcpt_tos"],
        serde_json::json!(["mia@example.org", "helpdesk@example.org"])
    );
    let text = ready[0]["parts"][0]["content"].as_str().unwrap();
    assert!(text.contains("Account:  ext.pat.c1"), "{text}");
    assert!(text.contains("Access:   cn=contractors,ou=groups,dc=example,dc=org"));
    assert!(!text.contains("{{") && !text.contains("{%"));
}

#[test]
fn the_manager_hears_once_when_a_hire_becomes_at_risk() {
    let server = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    let checklist = env.path("badge.yaml");
    std::fs::write(
        &checklist,
        format!(
            "templates: {}\nvars: {{company: Example Ltd}}\nnotify:\n  from: it@example.org\n  to: \"{{{{ hire.manager_email }}}}\"\n  \
             at_risk: {{subject: \"{{{{ hire.given_name }}}} may not be ready\", text: notify-at-risk.txt.tera, html: notify-at-risk.html.tera}}\n  \
             ready: {{subject: \"{{{{ hire.given_name }}}} is ready\", text: notify-ready.txt.tera, html: notify-ready.html.tera}}\n\
             steps:\n  - id: badge\n    deadline: 1 working day before start\n    \
             sign_off: {{role: facilities, items: [Door badge printed]}}\n",
            repo().join("templates").display()
        ),
    )
    .unwrap();
    let url = server.url();
    // Starts Wednesday; on Monday the badge is due within two days and not done: at risk.
    let b1 = hire(
        &env,
        checklist.to_str().unwrap(),
        "B1",
        "2026-11-25",
        "Europe/Paris",
    );
    for _ in 0..2 {
        env.run_with(&[&b1], &[("ONBOARD_SMTP_URL", &url)])
            .success();
    }
    let warnings: Vec<serde_json::Value> = server
        .messages()
        .into_iter()
        .filter(|m| m["headers"]["Subject"] == "Pat may not be ready")
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", subjects(&server));
    let text = warnings[0]["parts"][0]["content"].as_str().unwrap();
    assert!(text.contains("is AT RISK"), "{text}");
    assert!(
        text.contains("badge waiting on the facilities: 1 item to confirm"),
        "{text}"
    );
    assert!(
        text.contains("due Tue 2026-11-24 09:00 Europe/Paris"),
        "{text}"
    );

    // Once the badge is signed, the ready message follows, once.
    env.run(&["sign-off", "B1", "badge", "--by", "Fay Facilities", "--all"])
        .success();
    for _ in 0..2 {
        env.run_with(&[&b1], &[("ONBOARD_SMTP_URL", &url)])
            .success();
    }
    let subjects = subjects(&server);
    assert_eq!(
        subjects.iter().filter(|s| *s == "Pat is ready").count(),
        1,
        "{subjects:?}"
    );
    assert_eq!(
        subjects
            .iter()
            .filter(|s| *s == "Pat may not be ready")
            .count(),
        1
    );
}
