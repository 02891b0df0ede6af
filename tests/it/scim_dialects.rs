//! SCIM provisioning against a provider that differs from scim2-server where RFC 7643/7644
//! allow (tests/scim_dialect.py, one switch per quirk): cohorts become one user each in the
//! right groups with no failures, or fail with an error that says what to change. Each test is
//! named after what it caught.

use std::time::{Duration, Instant};

use crate::common::{Run, TestEnv};
use crate::scim_dialect_server::{Dialect, TOKEN};

/// A checklist with a user (`userName` the work address, `externalId` the hire id) and its
/// groups in application `chat`; a CSV of `n` hires, D000….
struct Cohort {
    env: TestEnv,
    playbook: String,
    csv: String,
    n: usize,
    groups: Vec<String>,
    vars: Vec<(String, String)>,
}

impl Cohort {
    fn new(server: &Dialect, n: usize, groups: &[&str]) -> Cohort {
        let env = TestEnv::new();
        let playbook = env.path("dialect-checklist.yaml");
        std::fs::write(
            &playbook,
            format!(
                r#"name: SCIM dialect test
hire_columns:
  Employee ID: id
  First Name: given_name
  Last Name: family_name
  Email: work_email
hire_fields:
  required: [given_name, family_name, work_email]
steps:
  - id: chat
    title: Chat account
    scim_user:
      app: chat
      user_name: "{{{{ hire.work_email }}}}"
      given_name: "{{{{ hire.given_name }}}}"
      family_name: "{{{{ hire.family_name }}}}"
      display_name: "{{{{ hire.given_name }}}} {{{{ hire.family_name }}}}"
  - id: chat-groups
    scim_groups:
      user: chat
      groups: [{}]
"#,
                groups.join(", ")
            ),
        )
        .unwrap();
        let mut csv = String::from("Employee ID,First Name,Last Name,Email\n");
        for i in 0..n {
            csv.push_str(&format!("D{i:03},Dana,Quirk-{i},{}\n", user_name(i)));
        }
        let path = env.path("hires.csv");
        std::fs::write(&path, csv).unwrap();
        Cohort {
            playbook: playbook.display().to_string(),
            csv: path.display().to_string(),
            env,
            n,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            vars: server.env("chat"),
        }
    }

    fn set(mut self, key: &str, value: &str) -> Cohort {
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }

    fn run(&self, extra: &[&str]) -> Run {
        let vars: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut args = vec![self.playbook.as_str(), "--hires", &self.csv];
        if !extra.contains(&"--jobs") {
            args.extend_from_slice(&["--jobs", "4"]);
        }
        args.extend_from_slice(extra);
        self.env.run_with(&args, &vars)
    }

    /// A run that must end with every hire ok.
    #[track_caller]
    fn run_ok(&self, server: &Dialect) -> Run {
        let run = self.run(&[]);
        assert_eq!(
            run.code,
            0,
            "{}\n{}\n{}",
            run.stdout,
            run.stderr,
            server.log()
        );
        let ok = format!("{} hires, {} ok", self.n, self.n);
        assert!(run.stdout.contains(&ok), "{}", run.stdout);
        assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN));
        run
    }

    /// One user per hire, with its userName and externalId, a member of each group once.
    #[track_caller]
    fn assert_one_user_each(&self, server: &Dialect) {
        let users = server.users();
        for i in 0..self.n {
            let hire = format!("D{i:03}");
            let mine: Vec<_> = users
                .iter()
                .filter(|u| u["externalId"].as_str() == Some(hire.as_str()))
                .collect();
            assert_eq!(mine.len(), 1, "{hire}: {mine:?}");
            assert_eq!(mine[0]["userName"], user_name(i));
        }
        for g in &self.groups {
            let members = server.members(g);
            let ours: Vec<&String> = members
                .iter()
                .filter(|m| {
                    users.iter().any(|u| {
                        u["id"].as_str() == Some(m.as_str())
                            && u["externalId"].as_str().is_some_and(|e| e.starts_with('D'))
                    })
                })
                .collect();
            assert_eq!(ours.len(), self.n, "group {g}: {members:?}");
        }
        assert_eq!(
            server.stats()["whole_group_reads"],
            0,
            "a group was read whole"
        );
    }
}

fn user_name(i: usize) -> String {
    format!("d{i}@example.org")
}

/// Caught (issue 30, 7): memberships were "done (already so)" with no member at all, because
/// the provider ignores the `members[value eq …]` part of a filter and onboard took its
/// `totalResults` as proof.
#[test]
fn a_provider_that_ignores_member_filters_gets_every_member_added() {
    let server = Dialect::start(&[
        "--ignore-member-filter",
        "--group",
        "everyone",
        "--group",
        "engineering",
    ]);
    let c = Cohort::new(&server, 8, &["everyone", "engineering"]);
    c.run_ok(&server);
    c.assert_one_user_each(&server);
    let again = c.run_ok(&server);
    assert!(!again.stdout.contains("FAILED"), "{}", again.stdout);
    c.assert_one_user_each(&server);
}

/// The same, where users do not list their `groups` either: membership is read from each
/// group's own `members`, checked id by id, never from the count.
#[test]
fn a_provider_that_ignores_member_filters_and_lists_no_user_groups_gets_every_member_added() {
    let server = Dialect::start(&[
        "--ignore-member-filter",
        "--no-user-groups",
        "--group",
        "everyone",
        "--group",
        "engineering",
    ]);
    let c = Cohort::new(&server, 8, &["everyone", "engineering"]);
    c.run_ok(&server);
    c.assert_one_user_each(&server);
    c.run_ok(&server);
    c.assert_one_user_each(&server);
}

/// Caught (issue 30, 8): a provider that cannot filter on `externalId` made the user onboard
/// created "not hire X's" on every re-run. Someone else's user with the same userName is
/// still refused.
#[test]
fn a_provider_without_external_id_filtering_finds_the_hires_own_user_on_a_rerun() {
    let server = Dialect::start(&["--no-external-id-filter", "--group", "everyone"]);
    server.create_user(&user_name(6), None);
    server.create_user(&user_name(7), Some("someone-else"));
    let c = Cohort::new(&server, 8, &["everyone"]);
    for _ in 0..2 {
        let run = c.run(&[]);
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("6 ok, 2 failed"), "{}", run.stdout);
        assert!(
            run.stdout
                .contains("already has a user d6@example.org that is not hire D006's (its externalId is not set)"),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout.contains(
                "already has a user d7@example.org that is not hire D007's (its externalId is `someone-else`)"
            ),
            "{}",
            run.stdout
        );
    }
    assert_eq!(server.users().len(), 8, "6 hires' users and the 2 others'");
}

/// Caught (issue 30, 9): a proxy's HTML 503 failed the step as "not JSON", and a GET that timed
/// out failed it at once. Both are tried again: no failures, one user each.
#[test]
fn a_proxys_html_503_and_slow_gets_are_waited_out_with_no_failures() {
    let server = Dialect::start(&[
        "--flaky-503",
        "5",
        "--slow-get",
        "9:3",
        "--group",
        "everyone",
        "--group",
        "engineering",
    ]);
    let c = Cohort::new(&server, 10, &["everyone", "engineering"])
        .set("ONBOARD_SCIM_CHAT_TIMEOUT", "1");
    c.run_ok(&server);
    c.assert_one_user_each(&server);
    let stats = server.stats();
    assert!(stats["503"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["created"], 10, "{stats}");
}

/// Caught (issue 30, 9): a POST answered 429 failed the step (only GETs waited, and never more
/// than 30 s). Its Retry-After, here an HTTP date 31 s after the answer's Date, is waited by
/// every worker, the user is looked for, and only then POSTed again.
#[test]
fn a_post_answered_429_waits_its_retry_after_beyond_30_s_then_looks_then_posts() {
    let server = Dialect::start(&[
        "--post-429",
        "3",
        "--retry-after",
        "date+31",
        "--group",
        "everyone",
    ]);
    let c = Cohort::new(&server, 4, &["everyone"]);
    let start = Instant::now();
    c.run_ok(&server);
    assert!(start.elapsed() >= Duration::from_secs(30), "waited");
    c.assert_one_user_each(&server);
    let stats = server.stats();
    assert_eq!(stats["created"], 4, "{stats}");
    assert!(stats["429"].as_u64().unwrap() >= 1, "{stats}");
}

/// A Retry-After longer than `max_retry_after` fails the hire at once, naming the setting.
#[test]
fn a_retry_after_beyond_max_retry_after_fails_naming_the_setting() {
    let server = Dialect::start(&[
        "--post-429",
        "1",
        "--retry-after",
        "3600",
        "--group",
        "everyone",
    ]);
    let c = Cohort::new(&server, 2, &["everyone"]).set("ONBOARD_SCIM_CHAT_MAX_RETRY_AFTER", "60");
    let start = Instant::now();
    let run = c.run(&[]);
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("0 ok, 2 failed"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "429 asks to wait 3600 s before trying again (Retry-After), more than scim.chat.max_retry_after (60 s): raise scim.chat.max_retry_after (or ONBOARD_SCIM_CHAT_MAX_RETRY_AFTER)"
        ),
        "{}",
        run.stdout
    );
    assert!(server.users().is_empty());
}

/// Caught (issue 30, 10): 16 requests per hire on a first run (every check read again in
/// apply, group ids looked up per hire, memberships read per group). Now at most 6 per hire
/// (the 2 group ids once per run), 2 for a dry run, 2 for a re-run that finds everything done.
/// Where users list no `groups`, each of the 4 workers may ask once more before the run has
/// learned it.
#[test]
fn a_first_run_makes_at_most_6_requests_per_hire_and_a_dry_run_2() {
    const N: u64 = 12;
    for (switches, learning) in [(&[][..], 0), (&["--no-user-groups"][..], 4)] {
        let server = Dialect::start(
            &[
                switches,
                &["--group", "everyone", "--group", "engineering"][..],
            ]
            .concat(),
        );
        let c = Cohort::new(&server, N as usize, &["everyone", "engineering"]);
        let dry = c.run(&["--only", "D000", "--dry-run"]);
        assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
        assert_eq!(server.requests(), 2, "dry run: {}", server.stats());
        c.run_ok(&server);
        let first = server.requests() - 2;
        assert!(
            first <= 6 * N + 2 + learning,
            "{switches:?}: {first} requests for {N} hires: {}",
            server.stats()
        );
        c.run_ok(&server);
        let rerun = server.requests() - 2 - first;
        assert!(
            rerun <= 2 * N + 2 + learning,
            "{switches:?}: {rerun} requests for a re-run of {N} hires: {}",
            server.stats()
        );
        c.assert_one_user_each(&server);
        eprintln!("{switches:?}: first run {first}, re-run {rerun} requests for {N} hires");
    }
}

/// Caught (issue 30, 10): each worker thread paced itself (or nobody did), so a cohort failed
/// on 429s. One limiter per application, shared by every worker: 20 hires against 5 user
/// creations and 15 writes a second finish with no 429 and no failure.
#[test]
fn one_rate_limiter_shared_by_every_worker_keeps_the_applications_limits() {
    let server = Dialect::start(&["--rate", "5:15", "--group", "everyone"]);
    let c = Cohort::new(&server, 20, &["everyone"])
        .set("ONBOARD_SCIM_CHAT_CREATES_PER_MINUTE", "300")
        .set("ONBOARD_SCIM_CHAT_WRITES_PER_MINUTE", "900");
    let start = Instant::now();
    let run = c.run(&["--jobs", "8"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(start.elapsed() >= Duration::from_secs(3), "paced");
    c.assert_one_user_each(&server);
    let stats = server.stats();
    assert_eq!(stats["429"], 0, "{stats}");
}

/// Caught (issue 30, 11): a group of 50,000 members was read whole (over the 4 MiB limit) to
/// check or add one member.
#[test]
fn a_group_of_50000_members_is_never_read_whole() {
    let server = Dialect::start(&[
        "--ignore-member-filter",
        "--group",
        "everyone:50000",
        "--group",
        "engineering",
    ]);
    let c = Cohort::new(&server, 6, &["everyone", "engineering"]);
    c.run_ok(&server);
    c.assert_one_user_each(&server);
    c.run_ok(&server);
    c.assert_one_user_each(&server);
}

/// Caught (issue 30, 11): a provider that requires If-Match on PATCH (412 without it) failed
/// every membership. It gets the group's ETag, one PATCH at a time per group.
#[test]
fn a_provider_that_requires_if_match_is_given_the_groups_etag() {
    let server = Dialect::start(&[
        "--if-match",
        "--group",
        "everyone",
        "--group",
        "engineering",
    ]);
    let c = Cohort::new(&server, 10, &["everyone", "engineering"]);
    c.run_ok(&server);
    c.assert_one_user_each(&server);
}

/// A provider that requires If-Match but gives no ETag to send is refused, saying what to
/// change in the application; nothing is half done (the user exists, the membership step
/// failed and is tried again by the next run).
#[test]
fn a_provider_that_requires_if_match_but_gives_no_etag_is_refused_clearly() {
    let server = Dialect::start(&["--if-match", "--no-etag", "--group", "everyone"]);
    let c = Cohort::new(&server, 2, &["everyone"]);
    let run = c.run(&[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("0 ok, 2 failed"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "answers 412 Precondition Failed to a PATCH without If-Match but gives no ETag to send (no ETag header, no meta.version): turn on ETags in the application (ServiceProviderConfig etag.supported) or turn off its If-Match requirement"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(server.users().len(), 2);
    assert!(server.members("everyone").is_empty());
}

/// Caught (issue 30, 11): a provider that accepts only `application/json` (415 for
/// `application/scim+json`) failed every write. onboard falls back to `application/json`,
/// after looking for the user its refused POST did not create.
#[test]
fn a_provider_that_accepts_only_application_json_is_sent_json() {
    let server = Dialect::start(&["--json-only", "--group", "everyone"]);
    let c = Cohort::new(&server, 6, &["everyone"]);
    c.run_ok(&server);
    c.assert_one_user_each(&server);
    assert_eq!(server.stats()["created"], 6);
}

/// Every quirk at once but the long waits: one user each, in the right groups, no failure,
/// and a re-run that changes nothing.
#[test]
fn a_cohort_against_every_quirk_at_once_is_one_user_each_in_the_right_groups() {
    let server = Dialect::start(&[
        "--ignore-member-filter",
        "--no-external-id-filter",
        "--flaky-503",
        "7",
        "--slow-get",
        "13:2",
        "--if-match",
        "--json-only",
        "--group",
        "everyone:50000",
        "--group",
        "engineering",
    ]);
    let c = Cohort::new(&server, 12, &["everyone", "engineering"])
        .set("ONBOARD_SCIM_CHAT_TIMEOUT", "1");
    c.run_ok(&server);
    c.assert_one_user_each(&server);
    c.run_ok(&server);
    c.assert_one_user_each(&server);
    assert_eq!(server.stats()["created"], 12);
}
