//! Auditors' reports: HTML opened in a real headless browser, CSV and JSON checked against the
//! journals field by field, tampering detected and flagged.

use std::path::Path;
use std::process::Command;

use crate::common::{TestEnv, read, repo};

/// A hire of the standard checklist, with `department` choosing a group (a missing one fails).
fn hire(env: &TestEnv, id: &str, given: &str, department: &str) -> String {
    let path = env.path(&format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!(
            "checklist: {}\nhire:\n  id: {id}\n  given_name: {given}\n  family_name: Tester\n  \
             work_email: {given}.tester@example.org\n  manager: Mia Manager\n  manager_email: mia@example.org\n  \
             department: {department}\n  title: Analyst\n  start_date: 2026-12-07\n  time_zone: Europe/Berlin\n  \
             custom:\n    laptop_asset_tag: LT-{id}\n    laptop_serial: SN-{id}\n",
            repo().join("playbooks/new-hire.yaml").display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// E1 complete, E2 waiting on the technician, E3 failed (no such group).
fn three_hires() -> TestEnv {
    let env = TestEnv::new().env("USER", "alice");
    complete(&env, &hire(&env, "E1", "Ann", "Engineering"), &[]);
    env.run(&[&hire(&env, "E2", "Ben", "Research")]).success();
    env.run(&[&hire(&env, "E3", "Cat", "Nowhere")]).code(1);
    env
}

/// Runs E1 to completion: Tom Tech signs the cleaning (with `cleaning` arguments added), Ann
/// acknowledges the laptop, and the last run finishes.
fn complete(env: &TestEnv, e1: &str, cleaning: &[&str]) {
    env.run(&[e1]).success();
    let mut args = vec![
        "sign-off",
        "E1",
        "laptop-cleaning",
        "--by",
        "Tom Tech",
        "--all",
        "--value",
        "wipe_certificate_id=WC-0001",
    ];
    args.extend_from_slice(cleaning);
    env.run_as("tom", &args).success();
    env.run(&[e1]).success();
    env.run(&[
        "sign-off",
        "E1",
        "laptop-handoff",
        "--by",
        "Ann Tester",
        "--all",
    ])
    .success();
    env.run(&[e1]).success();
}

fn chromium(args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("chromium (bash .ci/run installs Debian's chromium)")
}

fn steps_of(env: &TestEnv) -> serde_json::Value {
    // E3 failed, so status says someone must act (exit 1).
    let status = env.run(&["status", "--json"]).code(1);
    serde_json::from_str(&status.stdout).unwrap()
}

#[test]
fn the_html_report_shows_each_hire_in_a_real_browser() {
    let env = three_hires();
    let html = env.path("report.html");
    let run = env.run(&["report", "-o", html.to_str().unwrap()]).success();
    assert!(run.stderr.contains("Report written to"));
    let page = read(&html);
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("<script"),
        "self-contained, no fetches"
    );

    let url = format!("file://{}", html.display());
    let dom = chromium(&["--dump-dom", &url]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    for expected in [
        "Every journal's hash chain verified",
        "3 hires: 1 complete, 1 in progress, 1 failed",
        "id=\"hire-E1\"",
        "id=\"hire-E2\"",
        "id=\"hire-E3\"",
        "WC-0001",
        "SN-E1",
        "Tom Tech (technician)",
        "Ann Tester (hire)",
        "2026.1",
        "group cn=nowhere,ou=groups,dc=example,dc=org does not exist",
        "waiting on the technician: 4 items to confirm",
        "starts 2026-12-07 09:00 Europe/Berlin",
    ] {
        assert!(
            dom.contains(expected),
            "the rendered page shows {expected:?}"
        );
    }
    for (id, state) in [("E1", "complete"), ("E2", "in progress"), ("E3", "failed")] {
        let section = &dom[dom.find(&format!("id=\"hire-{id}\"")).unwrap()..];
        let section = &section[..section.find("</section>").unwrap()];
        assert!(
            section.contains(&format!(">{state}</span>")),
            "{id} is {state}"
        );
    }
    // The welcome's Message-ID, as journaled, is in the page.
    let log = env.run(&["log", "E1", "--json"]).success();
    let message_id = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["type"] == "step_done" && r["step"] == "welcome")
        .unwrap()["outputs"]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(dom.contains(&message_id.replace('<', "&lt;").replace('>', "&gt;")));

    // A picture of it, kept for people to look at.
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("report.png");
    let shot = chromium(&[
        "--window-size=1280,2400",
        &format!("--screenshot={}", png.display()),
        &url,
    ]);
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 20_000, "a real rendering, not a blank page");
}

#[test]
fn csv_and_json_match_the_journal_field_by_field() {
    let env = three_hires();
    let status = steps_of(&env);
    let json = env.run(&["report", "--format", "json"]).success();
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["format"], "onboard.report/1");
    assert_eq!(report["summary"]["all_verified"], true);
    let csv = env.run(&["report", "--format", "csv"]).success();
    let rows: Vec<Vec<String>> = csv.stdout.lines().skip(1).map(parse_csv_line).collect();
    let mut compared = 0;
    for hire in status.as_array().unwrap() {
        let id = hire["hire"].as_str().unwrap();
        let in_json = report["hires"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["hire"] == id)
            .unwrap();
        assert_eq!(in_json["playbook"], hire["playbook"]);
        for (step, s) in hire["steps"].as_object().unwrap() {
            let j = in_json["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["step"] == *step)
                .unwrap();
            assert_eq!(j["status"], s["status"], "{id} {step}");
            assert_eq!(j["at"], s["at"], "{id} {step}");
            assert_eq!(j["by"], s["actor"], "{id} {step}");
            let row = rows
                .iter()
                .find(|r| r[0] == id && r[5] == *step)
                .unwrap_or_else(|| panic!("{id} {step} in CSV"));
            assert_eq!(row[6], s["status"].as_str().unwrap());
            assert_eq!(row[7], s["at"].as_str().unwrap());
            assert_eq!(row[8], s["actor"].as_str().unwrap());
            assert_eq!(row[4], "yes");
            compared += 1;
        }
    }
    assert_eq!(compared, 15, "five steps of three hires");
    assert_eq!(rows.len(), 15);

    // The HR view has no technical detail.
    let hr = env
        .run(&["report", "--format", "json", "--view", "hr"])
        .success();
    for technical in [
        "message_id",
        "policy_sha256",
        "\"event\"",
        "uid=",
        "file:",
        "created entry",
    ] {
        assert!(!hr.stdout.contains(technical), "HR view leaks {technical}");
    }
    assert!(hr.stdout.contains("Tom Tech (technician)"));
}

/// Splits one RFC 4180 line.
fn parse_csv_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[test]
fn changed_removed_and_reordered_records_are_detected_and_flagged() {
    let env = three_hires();
    // E2: one changed byte in record 3. E3: records 2 and 3 swapped.
    let original_e2 = env.journal("E2");
    let mut lines: Vec<String> = original_e2.lines().map(str::to_owned).collect();
    lines[2] = lines[2].replacen("alice", "mallory", 1);
    env.tamper("E2", &(lines.join("\n") + "\n"));
    let text = env.journal("E3");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(1, 2);
    env.tamper("E3", &(lines.join("\n") + "\n"));

    let verify = env.run(&["verify"]).code(1);
    assert!(verify.stdout.contains("E1: ok"));
    assert!(verify.stdout.contains("E2: BROKEN") && verify.stdout.contains("E3: BROKEN"));
    assert!(
        verify.stderr.contains(&format!(
            "{}:3: the record was changed after it was written",
            env.journal_label("E2")
        )),
        "{}",
        verify.stderr
    );
    assert!(
        verify
            .stderr
            .contains(&format!("{}:2: ", env.journal_label("E3"))),
        "{}",
        verify.stderr
    );

    let html = env.path("report.html");
    let run = env.run(&["report", "-o", html.to_str().unwrap()]).code(1);
    assert!(run.stderr.contains("journal does not verify"));
    let page = read(&html);
    assert!(page.contains("Some journals do NOT verify"));
    assert!(page.contains("BROKEN at line 3"), "E2 flagged");
    assert!(page.contains("BROKEN at line 2"), "E3 flagged");
    // A removed record too.
    let kept: Vec<&str> = original_e2
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| l)
        .collect();
    env.tamper("E2", &(kept.join("\n") + "\n"));
    let verify = env.run(&["verify", "E2"]).code(1);
    assert!(
        verify.stderr.contains(&format!(
            "{}:2: the chain is broken here",
            env.journal_label("E2")
        )),
        "{}",
        verify.stderr
    );
}

/// One hire's evidence pack: both signatures with their records' hashes, the evidence file's
/// SHA-256, the printed SHA-256 of each file written, never over an existing one; a tampered
/// journal is flagged in the pack and exits 1.
#[test]
fn an_evidence_pack_holds_each_signature_with_its_record() {
    let env = TestEnv::new().env("USER", "alice");
    let certificate = env.path("wipe.pdf");
    std::fs::write(&certificate, b"%PDF wipe certificate").unwrap();
    let e1 = hire(&env, "E1", "Ann", "Engineering");
    complete(&env, &e1, &["--evidence", certificate.to_str().unwrap()]);
    let out = env.path("pack.json");
    let made = env
        .run(&["report", "E1", "--evidence", "-o", out.to_str().unwrap()])
        .success();
    let json = read(&out);
    let html = read(&env.path("pack.html"));
    for (path, text) in [("pack.json", &json), ("pack.html", &html)] {
        let line = made
            .stdout
            .lines()
            .find(|l| l.contains(path))
            .unwrap_or_else(|| panic!("{}", made.stdout));
        assert!(line.ends_with(&sha(text.as_bytes())), "{line}");
    }
    let pack: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(pack["format"], "onboard.evidence/1");
    assert_eq!(pack["journal"]["verified"], true);
    let signatures = pack["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 2);
    assert_eq!(signatures[0]["kind"], "sign_off");
    assert_eq!(signatures[0]["by"], "Tom Tech");
    assert_eq!(signatures[0]["evidence"]["wipe_certificate_id"], "WC-0001");
    assert_eq!(
        signatures[0]["evidence"]["file:wipe.pdf"],
        sha(b"%PDF wipe certificate")
    );
    assert_eq!(signatures[1]["kind"], "handoff");
    assert_eq!(signatures[1]["by"], "Ann Tester");
    // Each record's hash is the one the journal chains to.
    let journal = env.journal("E1");
    let lines: Vec<&str> = journal.lines().collect();
    for s in signatures {
        let line = s["line"].as_u64().unwrap() as usize;
        let record: serde_json::Value = serde_json::from_str(lines[line - 1]).unwrap();
        assert_eq!(record["type"], "signed_off");
        assert_eq!(s["record_hash"], record["hash"]);
    }
    assert_eq!(pack["files"][0]["sha256"], sha(b"%PDF wipe certificate"));
    assert!(html.contains("hand-off acknowledged by Ann Tester"));
    // Never over an existing pack.
    env.run(&["report", "E1", "--evidence", "-o", out.to_str().unwrap()])
        .code(2);
    // A tampered journal: the pack says so, and the command exits 1.
    env.tamper("E1", &journal.replace("Tom Tech", "Tim Tech"));
    let other = env.path("tampered.json");
    env.run(&["report", "E1", "--evidence", "-o", other.to_str().unwrap()])
        .code(1);
    let tampered: serde_json::Value = serde_json::from_str(&read(&other)).unwrap();
    assert_eq!(tampered["journal"]["verified"], false);
}

pub fn sha(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
