//! The main job on the embedded default: run, re-run, crash and resume, locks, the journal.

use std::path::Path;

use crate::common::{TestEnv, delivered_password, read, repo};

const PLAYBOOK: &str = "playbooks/new-hire.yaml";
const DN: &str = "dn: uid=ada.lovelace,ou=people,dc=example,dc=org";
const MEMBER: &str = "member: uid=ada.lovelace,ou=people,dc=example,dc=org";

fn outbox(env: &TestEnv) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(env.state().join("outbox"))
        .map(|d| {
            d.map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    read(&e.path()),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn welcomes(env: &TestEnv) -> usize {
    outbox(env)
        .iter()
        .filter(|(n, _)| n.contains(".welcome.E1042@"))
        .count()
}

fn assert_each_effect_once(env: &TestEnv) {
    let ldif = read(&env.state().join("directory.ldif"));
    assert_eq!(ldif.matches(DN).count(), 1, "one account:\n{ldif}");
    assert_eq!(
        ldif.matches(MEMBER).count(),
        3,
        "three memberships, none twice"
    );
    assert_eq!(welcomes(env), 1, "one welcome email: {:?}", outbox(env));
    let v = env.run(&["verify"]).success();
    assert!(v.stdout.starts_with("E1042: ok ("), "{}", v.stdout);
    let status = env.run(&["status", "--json"]).success();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for step in ["account", "groups", "welcome"] {
        assert_eq!(status[0]["steps"][step]["status"], "done", "{step}");
    }
    // The password the manager received last is the one that works.
    let password = delivered_password(env, "E1042");
    let mut dir = onboard::backend::directory::ldif::LdifDirectory::read_only(
        &env.state().join("directory.ldif"),
        "",
    );
    use onboard::backend::directory::Directory;
    assert!(
        dir.check_password(
            "uid=ada.lovelace,ou=people,dc=example,dc=org",
            &onboard::secret::Secret::new(password)
        )
        .unwrap()
    );
}

#[test]
fn the_main_job_onboards_the_example_hire() {
    let env = TestEnv::new();
    let run = env.run(&[PLAYBOOK]).success();
    assert!(
        run.stdout.starts_with(
            "Hire E1042 (Standard employee): 3 done now, 0 already done, 2 waiting, 0 skipped, 0 failed\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("laptop-cleaning: waiting on the technician")
    );
    for line in [
        "[1/5] account: done: created entry",
        "[2/5] groups: done",
        "[5/5] welcome: done: sent",
    ] {
        assert!(run.stderr.contains(line), "{line}\n{}", run.stderr);
    }
    let ldif = read(&env.state().join("directory.ldif"));
    for expected in [
        DN,
        "uidNumber: 10000",
        "gidNumber: 10000",
        "userPassword: {SSHA}",
        "sn: Lovelace",
    ] {
        assert!(ldif.contains(expected), "{expected}");
    }
    assert_each_effect_once(&env);
    let welcome = &outbox(&env)
        .into_iter()
        .find(|(n, _)| n.contains(".welcome."))
        .unwrap()
        .1;
    for header in [
        "From: \"IT Service Desk\" <it@example.org>",
        "To: ada.lovelace@example.org",
        "Cc: charles.babbage@example.org",
        "Reply-To: helpdesk@example.org",
        "Subject: Welcome to Example Ltd, Ada: your IT essentials",
        "Content-Type: multipart/alternative",
        "Content-Type: text/html; charset=utf-8",
        "Content-Disposition: attachment; filename=\"it-policies.md\"",
    ] {
        assert!(welcome.contains(header), "{header}");
    }
    let log = env.run(&["log", "E1042"]).success();
    assert!(log.stdout.contains("tester"), "the actor is recorded");
    assert!(log.stdout.contains("policy_version: 2026.1"));
}

#[test]
fn a_second_run_changes_nothing_and_says_so() {
    let env = TestEnv::new();
    env.run(&[PLAYBOOK]).success();
    let ldif = read(&env.state().join("directory.ldif"));
    let mail = outbox(&env);
    let run = env.run(&[PLAYBOOK]).success();
    assert!(run.stdout.starts_with(
        "Hire E1042 (Standard employee): 0 done now, 3 already done, 2 waiting, 0 skipped, 0 failed\n"
    ));
    assert!(run.stderr.contains("[1/5] account: already done"));
    assert_eq!(read(&env.state().join("directory.ldif")), ldif);
    assert_eq!(outbox(&env), mail);
    let log = env.run(&["log", "E1042", "--json"]).success();
    let types: Vec<String> = log
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types[types.len() - 2..],
        ["run_started", "run_finished"],
        "the re-run only opens and closes"
    );
}

#[test]
fn a_crash_at_any_point_resumes_with_each_effect_once() {
    let points = [
        "after:run_started:-",
        "after:step_started:account",
        "applied:account",
        "after:step_done:account",
        "after:step_started:groups",
        "applied:groups",
        "after:step_waiting:laptop-cleaning",
        "after:step_started:welcome",
        "applied:welcome",
        "after:step_done:welcome",
    ];
    for point in points {
        let env = TestEnv::new();
        let crashed = env.run_with(&[PLAYBOOK], &[("ONBOARD_FAILPOINT", point)]);
        assert_ne!(crashed.code, 0, "{point}: the process died");
        let resumed = env.run(&[PLAYBOOK]);
        assert_eq!(
            resumed.code, 0,
            "{point}: resume\n{}\n{}",
            resumed.stdout, resumed.stderr
        );
        assert_each_effect_once(&env);
        let again = env.run(&[PLAYBOOK]).success();
        assert!(
            again.stdout.contains(" 0 done now, 3 already done"),
            "{point}: {}",
            again.stdout
        );
    }
}

/// Starts the main job, which hangs at `point` once the journal shows `journaled`.
fn paused_run(env: &TestEnv, point: &str, journaled: &str) -> std::process::Child {
    let failpoint = format!("pause:{point}");
    let child = env.spawn(&[PLAYBOOK], &[("ONBOARD_FAILPOINT", &failpoint)]);
    env.wait_for_journal("E1042", journaled);
    child
}

#[test]
fn a_killed_run_resumes_cleanly() {
    let env = TestEnv::new();
    let mut child = paused_run(
        &env,
        "after:step_started:welcome",
        "\"type\":\"step_started\",\"step\":\"welcome\"",
    );
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert_eq!(welcomes(&env), 0, "killed before sending");
    env.run(&[PLAYBOOK]).success();
    assert_each_effect_once(&env);
}

#[test]
fn a_second_run_at_once_is_refused_and_names_the_holder() {
    let env = TestEnv::new();
    let mut child = paused_run(&env, "after:run_started:-", "run_started");
    let second = env.run(&[PLAYBOOK]).code(1);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        second
            .stderr
            .contains("error: another run is working on hire E1042 (run ")
            && second.stderr.contains(" by tester on ")
            && second.stderr.contains(" (pid "),
        "{}",
        second.stderr
    );
    env.run(&[PLAYBOOK]).success();
    assert_each_effect_once(&env);
}

#[test]
fn verify_names_the_line_of_any_changed_byte() {
    let env = TestEnv::new();
    env.run(&[PLAYBOOK]).success();
    let original = env.journal("E1042").into_bytes();
    let mut line = 1;
    let mut checked = 0;
    for pos in 0..original.len() {
        if original[pos] == b'\n' {
            line += 1;
            continue;
        }
        // Every 37th byte keeps the test quick while touching every record and field; an
        // ASCII byte, so that the changed journal is still text (a database holds only that).
        if pos % 37 != 0 || !original[pos].is_ascii() {
            continue;
        }
        let mut bytes = original.clone();
        bytes[pos] = if bytes[pos] == b'x' { b'y' } else { b'x' };
        env.tamper("E1042", std::str::from_utf8(&bytes).unwrap());
        let run = env.run(&["verify"]).code(1);
        let expected = format!("{}:{line}: ", env.journal_label("E1042"));
        assert!(run.stderr.contains(&expected), "byte {pos}: {}", run.stderr);
        assert_eq!(run.stdout, "E1042: BROKEN\n");
        checked += 1;
    }
    assert!(checked > 50);
    env.tamper("E1042", std::str::from_utf8(&original).unwrap());
    env.run(&["verify"]).success();
}

#[test]
fn no_secret_reaches_the_journal_output_or_state() {
    let env = TestEnv::new();
    let first = env.run(&[PLAYBOOK]).success();
    let second = env.run(&[PLAYBOOK]).success();
    let log = env.run(&["log", "E1042", "--json"]).success();
    let status = env.run(&["status"]).success();
    let password = delivered_password(&env, "E1042");
    assert!(password.len() >= 20);
    let mut haystacks = vec![
        ("run stdout", first.stdout),
        ("run stderr", first.stderr),
        ("re-run stdout", second.stdout),
        ("re-run stderr", second.stderr),
        ("log", log.stdout),
        ("status", status.stdout),
        ("journal", env.journal("E1042")),
    ];
    for entry in walk(&env.state()) {
        let name = entry.display().to_string();
        if name.contains(".password.E1042@") {
            continue; // The intended delivery channel: the manager's message.
        }
        haystacks.push((Box::leak(name.into_boxed_str()), read(&entry)));
    }
    for (what, text) in haystacks {
        assert!(!text.contains(&password), "the password leaked into {what}");
    }
}

pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_dry_run_changes_nothing() {
    let env = TestEnv::new();
    let dry = env.run(&[PLAYBOOK, "--dry-run"]).success();
    assert!(
        dry.stdout
            .contains("   now:  would create entry uid=ada.lovelace"),
        "{}",
        dry.stdout
    );
    assert!(
        !env.state().exists(),
        "a dry run on a fresh machine creates nothing"
    );
    env.run(&[PLAYBOOK]).success();
    let before: Vec<(std::path::PathBuf, Vec<u8>, std::time::SystemTime)> = walk(&env.state())
        .into_iter()
        .map(|p| {
            (
                p.clone(),
                std::fs::read(&p).unwrap(),
                std::fs::metadata(&p).unwrap().modified().unwrap(),
            )
        })
        .collect();
    let dry = env.run(&[PLAYBOOK, "--dry-run", "--json"]).success();
    let plan: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    let states: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["now"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "already_done",
            "already_done",
            "waiting",
            "waiting",
            "already_done"
        ]
    );
    let after: Vec<_> = walk(&env.state())
        .into_iter()
        .map(|p| {
            (
                p.clone(),
                std::fs::read(&p).unwrap(),
                std::fs::metadata(&p).unwrap().modified().unwrap(),
            )
        })
        .collect();
    assert_eq!(before, after);
}

/// A checklist in the test's own folder, using the repository's templates.
fn write_checklist(env: &TestEnv, groups: &str, title: &str) -> String {
    let path = env.path("checklist.yaml");
    let templates = repo().join("templates");
    std::fs::write(
        &path,
        format!(
            r#"templates: {templates}
hire:
  id: E1042
  given_name: Ada
  family_name: Lovelace
  work_email: ada.lovelace@example.org
  manager_email: charles.babbage@example.org
  title: {title}
vars:
  company: Example Ltd
  username: ada.lovelace
  help_desk_email: helpdesk@example.org
  help_desk_phone: "1234"
  help_desk_hours: always
  portal_url: https://help.example.org
steps:
  - id: account
    ldap_account:
      base: ou=people,dc=example,dc=org
      object_classes: [inetOrgPerson]
      attributes: {{uid: ada.lovelace, cn: Ada Lovelace, sn: Lovelace, title: "{{{{ hire.title }}}}"}}
      password: {{deliver: manager}}
  - id: groups
    ldap_groups: {{account: account, base: "ou=groups,dc=example,dc=org", groups: [{groups}]}}
  - id: cleaning
    sign_off: {{role: technician, items: [wiped]}}
  - id: welcome
    needs: [groups]
    email:
      from: it@example.org
      to: ada.lovelace@example.org
      subject: Welcome
      html: welcome.html.tera
      text: welcome.txt.tera
"#,
            templates = templates.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn a_failed_step_stops_its_dependents_not_its_siblings() {
    let env = TestEnv::new();
    let checklist = write_checklist(&env, "staff, no-such-group", "Analyst");
    let run = env.run(&[&checklist]).code(1);
    assert!(
        run.stdout.contains(
            "groups: FAILED: group cn=no-such-group,ou=groups,dc=example,dc=org does not exist"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("welcome: skipped: needs `groups`, which is not done")
    );
    assert!(run.stdout.contains("cleaning: waiting on the technician"));
    assert!(run.stderr.contains("[1/4] account: done"));
    assert_eq!(welcomes(&env), 0);

    // Fixed: the next run retries the failed step and continues.
    let checklist = write_checklist(&env, "staff, engineering", "Analyst");
    let run = env.run(&[&checklist]).success();
    assert!(
        run.stdout.contains(" 2 done now, 1 already done"),
        "{}",
        run.stdout
    );
    assert_eq!(welcomes(&env), 1);
}

#[test]
fn changed_parameters_are_refused_until_reapplied() {
    let env = TestEnv::new();
    let checklist = write_checklist(&env, "staff", "Analyst");
    env.run(&[&checklist]).success();
    let checklist = write_checklist(&env, "staff", "Senior Analyst");
    let run = env.run(&[&checklist]).code(1);
    assert!(
        run.stdout
            .contains("account: FAILED: its parameters changed since it was done"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("--reapply account"));
    let ldif = read(&env.state().join("directory.ldif"));
    assert!(ldif.contains("title: Analyst\n"), "nothing changed");

    let run = env.run(&[&checklist, "--reapply", "account"]).success();
    assert!(
        run.stderr.contains("account: done: updated title"),
        "{}",
        run.stderr
    );
    let ldif = read(&env.state().join("directory.ldif"));
    assert!(ldif.contains("title: Senior Analyst\n"));
    assert_eq!(ldif.matches("dn: uid=ada.lovelace").count(), 1);
    env.run(&[&checklist]).success();
}

/// A small tmpfs mounted for one test (needs root, as `.ci/run` has), unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (bash .ci/run runs as root)"
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_an_error_and_the_journal_stays_sound() {
    // Whatever the run was writing when the space ran out (the directory, the outbox, a
    // journal record), it stops with an error, the journal verifies, and once there is room
    // the resume finishes with each effect once.
    let mut failed = 0;
    for free_kib in (4..=36).step_by(4) {
        let env = TestEnv::new();
        let _disk = Tmpfs::mount(&env.state(), "512k");
        let filler = env.state().join("filler");
        std::fs::write(&filler, vec![0u8; (512 - free_kib) * 1024]).unwrap();
        let full = env.run(&[PLAYBOOK]);
        assert!(
            !full.stderr.contains("panicked") && full.code != 101,
            "{free_kib} KiB free: a panic\n{}",
            full.stderr
        );
        if full.code != 0 {
            failed += 1;
            assert!(
                full.stderr.contains("No space left on device")
                    || full.stdout.contains("No space left on device"),
                "{free_kib} KiB free: the error says why\n{}\n{}",
                full.stdout,
                full.stderr
            );
        }
        if env.state().join("journal").exists() {
            env.run(&["verify"]).success();
        }
        std::fs::remove_file(&filler).unwrap();
        env.run(&[PLAYBOOK]).success();
        assert_each_effect_once(&env);
    }
    assert!(
        failed >= 4,
        "the disk filled up at several points ({failed})"
    );
}
