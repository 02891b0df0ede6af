//! SCIM 2.0 provisioning against a real SCIM server (scim2-server) on loopback: a cohort with
//! hostile names becomes one user per hire in two groups, once, however it is interrupted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::TestEnv;
use crate::scim_server::{ScimServer, TOKEN};

const HIRES: usize = 20;

/// Names that break a filter or a path built by string pasting.
const GIVEN: &[&str] = &[
    "Zoë \"Z\"",
    "Seán) or (userName pr",
    "Ana\\",
    "O'Brien",
    "<b>Li</b>",
    "Ünal and externalId eq \"C000\"",
    "Jo/../Users",
    "Ça%20va",
];

fn checklist(env: &TestEnv) -> String {
    let path = env.path("scim-checklist.yaml");
    std::fs::write(
        &path,
        r#"name: SCIM test
hire_columns:
  Employee ID: id
  First Name: given_name
  Last Name: family_name
  Email: work_email
  Department: department
hire_fields:
  required: [given_name, family_name, work_email, department]
steps:
  - id: chat
    title: Chat account
    scim_user:
      app: chat
      user_name: "{{ hire.given_name }} {{ hire.family_name }}"
      given_name: "{{ hire.given_name }}"
      family_name: "{{ hire.family_name }}"
      display_name: "{{ hire.given_name }} {{ hire.family_name }}"
      emails: "{{ hire.work_email }}"
      enterprise:
        employeeNumber: "{{ hire.id }}"
        department: "{{ hire.department }}"
  - id: chat-groups
    scim_groups:
      user: chat
      groups: [everyone, engineering]
"#,
    )
    .unwrap();
    path.display().to_string()
}

fn write_csv(env: &TestEnv) -> String {
    let mut csv = String::from("Employee ID,First Name,Last Name,Email,Department\n");
    for i in 0..HIRES {
        let given = GIVEN[i % GIVEN.len()].replace('"', "\"\"");
        csv.push_str(&format!(
            "C{i:03},\"{given}\",\"Müller-{i}, Jr.\",c{i}@example.org,Engineering\n"
        ));
    }
    let path = env.path("hires.csv");
    std::fs::write(&path, csv).unwrap();
    path.display().to_string()
}

/// The user name the checklist gives hire `i`.
fn user_name(i: usize) -> String {
    format!("{} Müller-{i}, Jr.", GIVEN[i % GIVEN.len()])
}

fn vars(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Users per externalId.
fn users_by_hire(scim: &ScimServer) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut out: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for u in scim.users() {
        let key = u["externalId"].as_str().unwrap_or("(none)").to_owned();
        out.entry(key).or_default().push(u);
    }
    out
}

/// One user per hire, with the userName asked, in both groups.
#[track_caller]
fn assert_one_user_each(scim: &ScimServer, groups: &[String]) {
    let users = users_by_hire(scim);
    for i in 0..HIRES {
        let hire = format!("C{i:03}");
        let mine = users.get(&hire).map_or(&[][..], Vec::as_slice);
        assert_eq!(mine.len(), 1, "{hire}: {mine:?}");
        assert_eq!(mine[0]["userName"], user_name(i));
        let id = mine[0]["id"].as_str().unwrap();
        for g in groups {
            assert!(
                scim.members(g).iter().any(|m| m == id),
                "{hire} in group {g}"
            );
        }
    }
    for g in groups {
        assert_eq!(scim.members(g).len(), HIRES, "each member once");
    }
}

/// A SCIM server with the two groups; an environment with the checklist, HR's CSV, and the
/// settings that point onboard at the server as `chat`.
struct Fixture {
    scim: ScimServer,
    groups: [String; 2],
    env: TestEnv,
    playbook: String,
    csv: String,
    scim_env: Vec<(String, String)>,
}

impl Fixture {
    fn new() -> Fixture {
        let scim = ScimServer::start();
        let groups = [
            scim.create_group("everyone"),
            scim.create_group("engineering"),
        ];
        let env = TestEnv::new();
        let playbook = checklist(&env);
        let csv = write_csv(&env);
        let scim_env = scim.env("chat");
        Fixture {
            scim,
            groups,
            env,
            playbook,
            csv,
            scim_env,
        }
    }
}

#[test]
fn a_hostile_cohort_becomes_one_user_each_in_two_groups_and_a_rerun_changes_nothing() {
    let f = Fixture::new();
    let vars = vars(&f.scim_env);
    let cohort = [f.playbook.as_str(), "--hires", &f.csv, "--jobs", "4"];

    // The dry run says what it would create, with the request body and no token.
    let hire = f.env.path("c001.yaml");
    std::fs::write(
        &hire,
        "checklist: scim-checklist.yaml\nhire:\n  id: C001\n  given_name: \"Seán) or (userName pr\"\n  family_name: \"Müller-1, Jr.\"\n  work_email: c1@example.org\n  department: Engineering\n",
    )
    .unwrap();
    let plan = f
        .env
        .run_with(&[hire.to_str().unwrap(), "--dry-run"], &vars);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    for expected in [
        "create user Seán) or (userName pr Müller-1, Jr. in chat",
        r#""externalId":"C001""#,
        "add Seán) or (userName pr Müller-1, Jr. to everyone in chat once the user exists",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "{expected}: {}",
            plan.stdout
        );
    }
    assert!(!plan.stdout.contains(TOKEN) && !plan.stderr.contains(TOKEN));
    assert!(f.scim.users().is_empty(), "a dry run creates nothing");

    let run = f.env.run_with(&cohort, &vars);
    assert_eq!(
        run.code,
        0,
        "{}\n{}\n{}",
        run.stdout,
        run.stderr,
        f.scim.log()
    );
    assert_one_user_each(&f.scim, &f.groups);
    let user = &users_by_hire(&f.scim)["C005"][0];
    assert_eq!(user["name"]["givenName"], GIVEN[5]);
    assert_eq!(
        user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"],
        "C005"
    );

    let again = f.env.run_with(&cohort, &vars);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("20 hires, 20 ok"), "{}", again.stdout);
    assert_eq!(f.scim.users().len(), HIRES, "a re-run creates nothing");
    assert_one_user_each(&f.scim, &f.groups);
    for i in 0..HIRES {
        let journal = f.env.journal(&format!("C{i:03}"));
        assert!(!journal.contains(TOKEN), "no token in a journal");
    }

    // A change made in the application is reported as drift, and left as it is.
    let c000 = users_by_hire(&f.scim)["C000"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    f.scim.rename(&c000, "Someone Else");
    let drift = f
        .env
        .run_with(&[&f.playbook, "--hires", &f.csv, "--only", "C000"], &vars);
    let text = format!("{}{}", drift.stdout, f.env.journal("C000"));
    assert!(
        text.contains("displayName is `Someone Else`, the playbook says"),
        "{}\n{}",
        drift.stdout,
        drift.stderr
    );
    assert_eq!(f.scim.users().len(), HIRES);
}

#[test]
fn a_wrong_token_is_a_clear_error_and_creates_nothing() {
    let f = Fixture::new();
    let wrong = f.env.path("wrong-token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let url = f.scim.url();
    let wrong = wrong.display().to_string();
    let vars = [
        ("ONBOARD_SCIM_CHAT_URL", url.as_str()),
        ("ONBOARD_SCIM_CHAT_TOKEN_FILE", wrong.as_str()),
    ];
    let run = f
        .env
        .run_with(&[&f.playbook, "--hires", &f.csv, "--only", "C000"], &vars);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("the bearer token was refused (401)"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("not-the-token") && !run.stderr.contains("not-the-token"));
    assert!(f.scim.users().is_empty());
}

#[test]
fn a_user_name_that_is_someone_elses_is_refused_not_adopted() {
    let f = Fixture::new();
    f.scim.create_user(&user_name(3));
    let vars = vars(&f.scim_env);
    let run = f
        .env
        .run_with(&[&f.playbook, "--hires", &f.csv, "--jobs", "4"], &vars);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let refusal = format!(
        "already has a user {} that is not hire C003's (its externalId is `someone-else`)",
        user_name(3)
    );
    assert!(run.stdout.contains(&refusal), "{}", run.stdout);
    assert!(run.stdout.contains("19 ok, 1 failed"), "{}", run.stdout);
    let users = users_by_hire(&f.scim);
    assert!(!users.contains_key("C003"));
    assert_eq!(users["someone-else"].len(), 1);
    for g in &f.groups {
        assert_eq!(
            f.scim.members(g).len(),
            HIRES - 1,
            "the other user is in no group"
        );
    }
}

#[test]
fn killed_at_random_moments_then_resumed_one_user_each() {
    let f = Fixture::new();
    let vars = vars(&f.scim_env);
    let cohort = [f.playbook.as_str(), "--hires", &f.csv, "--jobs", "4"];
    let mut state: u64 = 0x5c1a_0000_0000_0017;
    for _ in 0..6 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut child = f.env.spawn(&cohort, &vars);
        std::thread::sleep(Duration::from_millis(state % 900));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }
    let run = f.env.run_with(&cohort, &vars);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_one_user_each(&f.scim, &f.groups);
}

#[test]
fn a_server_stopped_mid_run_fails_the_hires_it_hits_and_a_resume_completes() {
    let mut f = Fixture::new();
    f.scim_env
        .push(("ONBOARD_SCIM_CHAT_TIMEOUT".into(), "2".into()));
    let vars = vars(&f.scim_env);
    let cohort = [f.playbook.as_str(), "--hires", &f.csv, "--jobs", "4"];
    let child = f.env.spawn(&cohort, &vars);
    let start = Instant::now();
    while f.scim.users().len() < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no user was created"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    f.scim.pause();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("no answer in time"), "{stdout}");
    // Resumed, the server first works through the requests that waited; the failures clear
    // within a few runs, each creating nothing twice.
    f.scim.resume();
    let mut runs = Vec::new();
    for _ in 0..4 {
        let run = f.env.run_with(&cohort, &vars);
        let done = run.code == 0;
        runs.push(run.stdout);
        if done {
            break;
        }
    }
    assert!(runs.last().unwrap().contains("20 ok"), "{runs:#?}");
    assert_one_user_each(&f.scim, &f.groups);
}

#[test]
fn over_https_the_ca_file_is_trusted_and_nothing_else() {
    let f = Fixture::new();
    let (url, ca, _proxy) = f.scim.https();
    let token = f.env.path("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let (token, ca) = (token.display().to_string(), ca.display().to_string());
    let base = [
        ("ONBOARD_SCIM_CHAT_URL", url.as_str()),
        ("ONBOARD_SCIM_CHAT_TOKEN_FILE", token.as_str()),
    ];
    let one = [f.playbook.as_str(), "--hires", &f.csv, "--only", "C000"];
    // Without the CA file, the test CA is not trusted: nothing is sent.
    let untrusted = f.env.run_with(&one, &base);
    assert_eq!(
        untrusted.code, 1,
        "{}\n{}",
        untrusted.stdout, untrusted.stderr
    );
    assert!(
        untrusted.stdout.contains("UnknownIssuer (if its certificate is from your own CA, name the CA file in scim.chat.ca_file)"),
        "{}",
        untrusted.stdout
    );
    assert!(f.scim.users().is_empty());
    let trusted = [base[0], base[1], ("ONBOARD_SCIM_CHAT_CA_FILE", ca.as_str())];
    let run = f.env.run_with(&one, &trusted);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(users_by_hire(&f.scim)["C000"].len(), 1);
}

/// The test server keeps users in memory: restarted, it has lost them all. A re-run reports
/// every done user step as no longer holding (nothing is recreated behind the operator's back);
/// `--reapply` recreates what it names, one each, once: the memberships too only when named
/// (a done step is never undone by a step it needs).
#[test]
fn a_server_restarted_empty_is_reported_then_refilled_with_reapply() {
    let mut f = Fixture::new();
    let vars = vars(&f.scim_env);
    let cohort = [f.playbook.as_str(), "--hires", &f.csv, "--jobs", "4"];
    f.env.run_with(&cohort, &vars).success();
    f.scim.restart();
    let groups = [
        f.scim.create_group("everyone"),
        f.scim.create_group("engineering"),
    ];
    let reported = f.env.run_with(&cohort, &vars);
    assert_eq!(reported.code, 1, "{}", reported.stdout);
    assert!(reported.stdout.contains("20 failed"), "{}", reported.stdout);
    assert!(
        reported.stdout.contains("but no longer holds"),
        "{}",
        reported.stdout
    );
    assert!(f.scim.users().is_empty(), "nothing recreated on its own");
    let refilled = f
        .env
        .run_with(&[&cohort[..], &["--reapply", "chat"]].concat(), &vars);
    assert_eq!(refilled.code, 1, "{}\n{}", refilled.stdout, refilled.stderr);
    assert_eq!(f.scim.users().len(), 20, "the users are back");
    assert!(
        refilled.stdout.contains(
            "FAILED: chat-groups: it was done (2026-11-23T10:00:00Z by tester), but no longer holds"
        ),
        "the memberships were not named: {}",
        refilled.stdout
    );
    let refilled = f.env.run_with(
        &[&cohort[..], &["--reapply", "chat-groups"]].concat(),
        &vars,
    );
    assert_eq!(refilled.code, 0, "{}\n{}", refilled.stdout, refilled.stderr);
    assert_one_user_each(&f.scim, &groups);
}
