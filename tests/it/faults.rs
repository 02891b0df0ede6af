//! Proof under faults: a cohort against real slapd and SMTP, killed with SIGKILL at random
//! moments and resumed each time, ends with every hire complete and every effect once.
//!
//! `ONBOARD_CRASH_KILLS=N` (default 6) sets the number of kills and `ONBOARD_CRASH_SEED` the
//! seed of the kill moments (printed, so a failure can be replayed):
//!
//!     ONBOARD_CRASH_KILLS=200 cargo test --test it faults:: -- --nocapture

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cohort::{checklist, write_csv};
use crate::common::TestEnv;
use crate::slapd::{SUFFIX, Slapd};
use crate::smtp_server::{Mode, SmtpServer};

const HIRES: usize = 12;

fn number_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The Message-ID the journal says a hire's unfinished welcome was sent with.
fn pending_message_id(env: &TestEnv, hire: &str) -> String {
    let log = env.run(&["log", hire, "--json"]).success();
    log.stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "step_started" && r["step"] == "welcome")
        .filter_map(|r| r["intent"]["message_id"].as_str().map(str::to_owned))
        .next_back()
        .expect("an unfinished welcome has a journaled Message-ID")
}

/// Welcomes received per recipient.
fn welcomes(smtp: &SmtpServer) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for m in smtp.messages() {
        let subject = m["headers"]["Subject"].as_str().unwrap_or_default();
        if subject.starts_with("Welcome") {
            let to = m["headers"]["To"].as_str().unwrap_or_default().to_owned();
            *count.entry(to).or_default() += 1;
        }
    }
    count
}

#[test]
fn a_cohort_killed_at_random_moments_resumes_with_each_effect_once() {
    let kills = number_from_env("ONBOARD_CRASH_KILLS", 6);
    let seed = number_from_env("ONBOARD_CRASH_SEED", 0x0b0a_4d00_c4a5_0001);
    println!("ONBOARD_CRASH_KILLS={kills} ONBOARD_CRASH_SEED={seed}");
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = write_csv(&env, HIRES, &[]);
    let ldap = slapd.env();
    let url = smtp.url();
    let mut vars: Vec<(&str, &str)> = ldap.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("ONBOARD_SMTP_URL", &url));
    let args = [playbook.as_str(), "--hires", &csv, "--jobs", "4"];

    // Kill moments from 0 to 700 ms after the start: while the cohort is read, during LDAP
    // writes, between journal records, during SMTP conversations.
    let mut state = seed.max(1);
    for _ in 0..kills {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut child = env.spawn(&args, &vars);
        std::thread::sleep(Duration::from_millis(state % 700));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }

    // Resume until done. An interrupted send is never repeated on its own: like an operator,
    // look for its Message-ID in the mailbox, record it as sent if it is there, and let the
    // rest be sent again with the same Message-ID.
    let mut finished = false;
    for _ in 0..4 {
        let run = env.run_with(&args, &vars);
        if run.code == 0 {
            finished = true;
            break;
        }
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        let uncertain: Vec<String> = run
            .stdout
            .lines()
            .filter(|l| l.contains(": UNCERTAIN: welcome: "))
            .map(|l| l.trim().split(':').next().unwrap().to_owned())
            .collect();
        assert!(
            !uncertain.is_empty(),
            "a resume fails only on uncertain sends:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        let received: Vec<String> = smtp
            .messages()
            .iter()
            .filter_map(|m| m["headers"]["Message-ID"].as_str().map(str::to_owned))
            .collect();
        let before = welcomes(&smtp);
        for hire in &uncertain {
            let id = pending_message_id(&env, hire);
            if received.contains(&id) {
                env.run(&[
                    "mark-sent",
                    hire,
                    "welcome",
                    "--as",
                    "tester",
                    "--note",
                    "found in the mailbox",
                ])
                .success();
            }
        }
        assert_eq!(welcomes(&smtp), before, "deciding sends nothing");
        env.run_with(&[&args[..], &["--resend-uncertain"]].concat(), &vars);
    }
    assert!(finished, "the cohort completes after the kills");

    let people = slapd.search(
        &format!("ou=people,{SUFFIX}"),
        "(objectClass=posixAccount)",
        &["uid", "uidNumber"],
    );
    let mut uids: Vec<&str> = people
        .lines()
        .filter_map(|l| l.strip_prefix("uid: "))
        .collect();
    let mut numbers: Vec<&str> = people
        .lines()
        .filter_map(|l| l.strip_prefix("uidNumber: "))
        .collect();
    uids.sort();
    uids.dedup();
    numbers.sort();
    numbers.dedup();
    assert_eq!(uids.len(), HIRES, "one entry per hire:\n{people}");
    assert_eq!(numbers.len(), HIRES, "unique uidNumbers:\n{people}");
    let staff = slapd.search(
        &format!("cn=staff,ou=groups,{SUFFIX}"),
        "(objectClass=*)",
        &["member"],
    );
    assert_eq!(
        staff
            .lines()
            .filter(|l| l.starts_with("member: uid="))
            .count(),
        HIRES,
        "each hire once in staff:\n{staff}"
    );
    let welcomed = welcomes(&smtp);
    for i in 0..HIRES {
        assert_eq!(
            welcomed.get(&format!("c{i}@example.org")),
            Some(&1),
            "hire {i} welcomed exactly once: {welcomed:?}"
        );
    }
    env.run(&["verify"]).success();
    let status = env.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for hire in status.as_array().unwrap() {
        for (step, s) in hire["steps"].as_object().unwrap() {
            assert_eq!(s["status"], "done", "{}: {step}", hire["hire"]);
        }
    }
}
