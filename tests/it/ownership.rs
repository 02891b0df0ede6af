//! Every account belongs to exactly one hire: two hires whose names give the same DN or login
//! never share an entry, even run at once by concurrent workers or from two state
//! directories, and a password is never set or mailed for an entry another hire owns.

use std::collections::BTreeMap;

use crate::cohort::checklist;
use crate::common::{TestEnv, pairs};
use crate::slapd::{SUFFIX, Slapd};
use crate::smtp_server::{Mode, SmtpServer};

/// `count` hires with ids `{prefix}0…`, all named as in `names` (so two files with the same
/// names collide entry for entry).
fn cohort_csv(env: &TestEnv, file: &str, prefix: &str, count: usize) -> String {
    let mut csv = String::from("Employee ID,First Name,Last Name,Email,Manager Email,Department\n");
    for i in 0..count {
        csv.push_str(&format!(
            "{prefix}{i},Jo{i},Smith,{prefix}{i}@example.org,boss-{prefix}@example.org,Research\n"
        ));
    }
    let path = env.path(file);
    std::fs::write(&path, csv).unwrap();
    path.display().to_string()
}

/// Every entry under ou=people, as DN → its employeeNumber values.
fn owners(slapd: &Slapd) -> BTreeMap<String, Vec<String>> {
    let out = slapd.search(
        &format!("ou=people,{SUFFIX}"),
        "(objectClass=inetOrgPerson)",
        &["employeeNumber"],
    );
    let mut owners = BTreeMap::new();
    let mut dn = String::new();
    for line in out.lines() {
        if let Some(d) = line.strip_prefix("dn: ") {
            dn = d.to_owned();
            owners.insert(dn.clone(), Vec::new());
        } else if let Some(n) = line.strip_prefix("employeeNumber: ") {
            owners.get_mut(&dn).unwrap().push(n.to_owned());
        }
    }
    owners
}

/// A slapd, an SMTP server and the cohort checklist (in a folder of its own, kept alive by
/// the returned environment).
fn servers_and_checklist() -> (Slapd, SmtpServer, TestEnv, String) {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    (
        Slapd::start(),
        SmtpServer::start(Mode::Plain),
        env,
        playbook,
    )
}

#[test]
fn same_name_rows_in_one_cohort_are_refused_before_anything_runs() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = env.path("twins.csv");
    std::fs::write(
        &csv,
        "Employee ID,First Name,Last Name,Email,Manager Email,Department\n\
         E1,Jo,Smith,jo.smith@example.org,mia@example.org,Research\n\
         E2,Ann,Lee,ann@example.org,mia@example.org,Research\n\
         E3,Jo,Smith,jo.smith2@example.org,mia@example.org,Research\n\
         E4,Bo,Chan,ann@example.org,mia@example.org,Research\n",
    )
    .unwrap();
    let run = env
        .run(&[&playbook, "--hires", csv.to_str().unwrap()])
        .code(2);
    assert!(
        run.stderr.contains(
            "hire E3 would get the same DN as hire E1 (row 2): uid=jo.smith,ou=people,dc=example,dc=org"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("twins.csv:4:"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("hire E4 would get the same mail as hire E2 (row 3): ann@example.org"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("twins.csv:5:"), "{}", run.stderr);
    assert!(!env.state().join("directory.ldif").exists());
}

#[test]
fn eight_same_name_pairs_at_eight_jobs_never_share_an_entry() {
    let (slapd, smtp, _playbook_env, playbook) = servers_and_checklist();
    let servers = smtp.with_directory(&slapd);
    let vars = pairs(&servers);
    // Two cohorts of the same eight names (different hires), each from its own state
    // directory, each with eight workers, at the same time.
    let (a, b) = (TestEnv::new(), TestEnv::new());
    let csv_a = cohort_csv(&a, "a.csv", "A", 8);
    let csv_b = cohort_csv(&b, "b.csv", "B", 8);
    let run_a = a.spawn(&[&playbook, "--hires", &csv_a, "--jobs", "8"], &vars);
    let run_b = b.spawn(&[&playbook, "--hires", &csv_b, "--jobs", "8"], &vars);
    let out_a = run_a.wait_with_output().unwrap();
    let out_b = run_b.wait_with_output().unwrap();
    let stdout = format!(
        "{}{}",
        String::from_utf8_lossy(&out_a.stdout),
        String::from_utf8_lossy(&out_b.stdout)
    );

    // Eight entries, each owned by exactly one hire, A or B.
    let owners = owners(&slapd);
    let people: Vec<_> = owners
        .iter()
        .filter(|(dn, _)| dn.starts_with("uid=jo"))
        .collect();
    assert_eq!(people.len(), 8, "{owners:?}");
    let mut winners = Vec::new();
    for (dn, ids) in &people {
        assert_eq!(ids.len(), 1, "{dn}: {ids:?}");
        winners.push(ids[0].clone());
    }
    // Every hire either completed on its own entry or was refused, naming the owner.
    for i in 0..8 {
        let (won, lost) = if winners.contains(&format!("A{i}")) {
            (format!("A{i}"), format!("B{i}"))
        } else {
            (format!("B{i}"), format!("A{i}"))
        };
        assert!(
            stdout.contains(&format!("  {won}: complete")),
            "{won}\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("  {lost}: FAILED: account: "))
                && stdout.contains(&format!("belongs to hire {won}, not to {lost}")),
            "{lost}\n{stdout}"
        );
    }
    // One password message per entry, each to the manager of the hire who owns it.
    let messages = smtp.messages();
    let passwords: Vec<_> = messages
        .iter()
        .filter(|m| {
            m["headers"]["Subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("Initial password"))
        })
        .collect();
    assert_eq!(passwords.len(), 8);
    for i in 0..8 {
        let owner = if winners.contains(&format!("A{i}")) {
            "A"
        } else {
            "B"
        };
        let to_owner = passwords
            .iter()
            .filter(|m| m["headers"]["To"] == format!("boss-{owner}@example.org"))
            .count();
        assert!(to_owner >= 1);
    }
    let welcomes = messages.len() - passwords.len();
    assert_eq!(welcomes, 8, "a welcome per complete hire");

    // A resume from the losing side is refused again, and sends nothing.
    let before = smtp.messages().len();
    let again = a.run_with(&[&playbook, "--hires", &csv_a, "--jobs", "8"], &vars);
    let again_b = b.run_with(&[&playbook, "--hires", &csv_b, "--jobs", "8"], &vars);
    let a_won = winners.iter().filter(|w| w.starts_with('A')).count();
    assert_eq!(again.code, i32::from(a_won < 8), "{}", again.stdout);
    assert_eq!(again_b.code, i32::from(a_won > 0), "{}", again_b.stdout);
    assert_eq!(smtp.messages().len(), before);
    assert_eq!(owners, self::owners(&slapd));
}

#[test]
fn one_hire_from_two_state_directories_at_once_gets_one_account_and_one_welcome() {
    let (slapd, smtp, _playbook_env, playbook) = servers_and_checklist();
    let servers = smtp.with_directory(&slapd);
    let vars = pairs(&servers);
    let (a, b) = (TestEnv::new(), TestEnv::new());
    let csv_a = cohort_csv(&a, "h.csv", "E", 1);
    let csv_b = cohort_csv(&b, "h.csv", "E", 1);
    let run_a = a.spawn(&[&playbook, "--hires", &csv_a], &vars);
    let run_b = b.spawn(&[&playbook, "--hires", &csv_b], &vars);
    let codes = [
        run_a.wait_with_output().unwrap(),
        run_b.wait_with_output().unwrap(),
    ];
    let ok = codes.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "exactly one run onboards the hire");
    let loser = if codes[0].status.success() { &b } else { &a };
    let loser_csv = if codes[0].status.success() {
        &csv_b
    } else {
        &csv_a
    };
    let out = String::from_utf8_lossy(&codes[if codes[0].status.success() { 1 } else { 0 }].stdout)
        .into_owned();
    assert!(
        out.contains("was created by another run of onboard"),
        "{out}"
    );
    assert_eq!(
        smtp.messages().len(),
        2,
        "one password message, one welcome"
    );

    // Resuming the refused run adopts nothing and sends nothing.
    let again = loser
        .run_with(&[&playbook, "--hires", loser_csv], &vars)
        .code(1);
    assert!(
        again
            .stdout
            .contains("was created by another run of onboard"),
        "{}",
        again.stdout
    );
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(owners(&slapd).values().filter(|v| *v == &["E0"]).count(), 1);
}

#[test]
fn the_embedded_directory_refuses_another_hires_entry_too() {
    let env = TestEnv::new();
    env.run(&["playbooks/new-hire.yaml"]).success();
    let twin = env.path("twin.yaml");
    std::fs::write(
        &twin,
        format!(
            "checklist: {}\nhire:\n  id: E2001\n  given_name: Ada\n  family_name: Lovelace\n  \
             work_email: ada2@example.org\n  manager: Mia\n  manager_email: mia@example.org\n  \
             department: Research\n  title: Analyst\n  start_date: \"2026-12-07\"\n  \
             time_zone: Europe/London\n  custom: {{laptop_asset_tag: LT-1, laptop_serial: S1}}\n",
            crate::common::repo()
                .join("playbooks/new-hire.yaml")
                .display()
        ),
    )
    .unwrap();
    let outbox = |env: &TestEnv| {
        std::fs::read_dir(env.state().join("outbox"))
            .unwrap()
            .count()
    };
    let sent = outbox(&env);
    let run = env.run(&[twin.to_str().unwrap()]).code(1);
    assert!(
        run.stdout.contains(
            "uid=ada.lovelace,ou=people,dc=example,dc=org belongs to hire E1042, not to E2001"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(outbox(&env), sent, "no password mailed for E1042's entry");
    let ldif = std::fs::read_to_string(env.state().join("directory.ldif")).unwrap();
    assert!(ldif.contains("employeeNumber: E1042"), "{ldif}");
}
