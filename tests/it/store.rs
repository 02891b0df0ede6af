//! The shared store: a team on several machines with one PostgreSQL database, the config file
//! that points them there, moving a record between stores, and what goes wrong on the way.
//!
//! (The rest of the suite runs on both stores: `.ci/run` runs it again with
//! `ONBOARD_TEST_STORE=postgres`.)

use std::time::Duration;

use crate::cohort::{checklist, write_csv};
use crate::common::{TestEnv, pairs, repo};
use crate::faults::{assert_each_effect_once, finish};
use crate::postgres::{Postgres, shared};
use crate::slapd::Slapd;
use crate::smtp_server::{Mode, SmtpServer};

/// A machine of the team: its own home and working directory, the shared database as its
/// store, the shared servers as targets.
fn machine(user: &str, url: &str, pg: &Postgres, servers: &[(&'static str, String)]) -> TestEnv {
    let mut env = TestEnv::on_files()
        .in_own_dir()
        .env("USER", user)
        .env("ONBOARD_STATE_URL", url)
        .env(
            "ONBOARD_STATE_PASSWORD_FILE",
            pg.password_file().to_str().unwrap(),
        );
    for (k, v) in servers {
        env = env.env(k, v);
    }
    env
}

fn playbook(name: &str) -> String {
    repo().join("playbooks").join(name).display().to_string()
}

#[test]
fn two_machines_on_one_database_share_locks_sign_offs_status_and_reports() {
    let pg = shared();
    let url = pg.database();
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(Mode::Plain);
    let servers = smtp.with_directory(&slapd);
    let alice = machine("alice", &url, pg, &servers);
    let bob = machine("bob", &url, pg, &servers);
    let new_hire = playbook("new-hire.yaml");

    // Alice's run holds E1042; Bob, on another machine, is refused and told who holds it.
    let mut held = alice.spawn(
        &[&new_hire],
        &[("ONBOARD_FAILPOINT", "pause:after:run_started:-")],
    );
    alice.wait_for_journal("E1042", "run_started");
    let refused = bob.run(&[&new_hire]).code(1);
    assert!(
        refused
            .stderr
            .contains("another run is working on hire E1042 (run ")
            && refused.stderr.contains(" by alice on "),
        "{}",
        refused.stderr
    );
    held.kill().unwrap();
    held.wait().unwrap();

    // Alice's resume: the cleaning waits for a technician.
    let run = alice.run(&[&new_hire]).success();
    assert!(
        run.stdout
            .contains("laptop-cleaning: waiting on the technician"),
        "{}",
        run.stdout
    );
    // Bob, the bench technician, signs it on his machine.
    bob.run(&[
        "sign-off",
        "E1042",
        "laptop-cleaning",
        "--by",
        "Tom Tech",
        "--all",
        "--value",
        "wipe_certificate_id=WC-9",
    ])
    .success();
    // Alice's resume sees it: the hand-off now waits on the hire.
    let run = alice.run(&[&new_hire]).success();
    assert!(
        run.stdout.contains("laptop-handoff: waiting on the hire"),
        "{}",
        run.stdout
    );
    // Bob onboards another hire; each sees both.
    bob.run(&[&playbook("hires/grace-hopper.yaml")]).success();
    for env in [&alice, &bob] {
        let status = env.run(&["status"]).success();
        assert!(
            status.stdout.contains("E1042") && status.stdout.contains("E1043"),
            "{}",
            status.stdout
        );
        let csv = env.path("report.csv");
        env.run(&["report", "--format", "csv", "-o", csv.to_str().unwrap()])
            .success();
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(text.contains("E1042") && text.contains("E1043"), "{text}");
        let verify = env.run(&["verify"]).success();
        assert!(
            verify.stdout.starts_with("E1042: ok (") && verify.stdout.contains("\nE1043: ok ("),
            "{}",
            verify.stdout
        );
    }
    // Nothing of the record is on either machine's disk.
    for env in [&alice, &bob] {
        assert!(!env.state().join("journal").exists());
    }
}

#[test]
fn a_cohort_of_200_killed_and_through_a_database_outage_completes_each_effect_once() {
    const HIRES: usize = 200;
    let mut pg = Postgres::start();
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(Mode::Plain);
    let env = TestEnv::on_files();
    let env = pg.env().into_iter().fold(env, |env, (k, v)| env.env(k, &v));
    let playbook = checklist(&env);
    let csv = write_csv(&env, HIRES, &[]);
    let servers = smtp.with_directory(&slapd);
    let vars = pairs(&servers);
    let args = [playbook.as_str(), "--hires", &csv, "--jobs", "4"];

    // The database stops while the cohort runs (one hire at a time, so that it stops
    // mid-cohort), and comes back before the resume.
    let one_at_a_time = [playbook.as_str(), "--hires", &csv, "--jobs", "1"];
    let child = env.spawn(&one_at_a_time, &vars);
    env.wait_for_journal("C010", "run_started");
    pg.stop();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("C199: FAILED: ") && stdout.contains("PostgreSQL"),
        "the hires after the outage fail, naming the database:\n{stdout}\n{stderr}"
    );
    pg.restart();

    // SIGKILL at moments from a seeded sequence, each resume getting further.
    let mut state: u64 = 0x0b0a_4d00_c4a5_0200;
    for _ in 0..4 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut child = env.spawn(&args, &vars);
        std::thread::sleep(Duration::from_millis(100 + state % 700));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }

    finish(&env, &smtp, &args, &vars);
    assert_each_effect_once(&env, &slapd, &smtp, HIRES);
}

#[test]
fn bad_store_settings_are_clear_errors_and_change_nothing() {
    let pg = shared();
    let env = TestEnv::on_files();
    let pw = pg.password_file();
    let pw = pw.to_str().unwrap();
    let status = |url: &str, extra: &[(&str, &str)]| {
        let mut vars = vec![
            ("ONBOARD_STATE_URL", url),
            ("ONBOARD_STATE_PASSWORD_FILE", pw),
        ];
        vars.extend_from_slice(extra);
        env.run_with(&["status"], &vars)
    };

    let shape = status("postgres://db.example.org", &[]).code(2);
    assert!(
        shape.stderr.contains("names no database")
            && shape
                .stderr
                .contains("postgres://[USER@]HOST[:PORT]/DATABASE"),
        "{}",
        shape.stderr
    );
    let secret = status("postgres://u:hunter2@127.0.0.1/x", &[]).code(2);
    assert!(
        secret.stderr.contains("holds a password"),
        "{}",
        secret.stderr
    );
    assert!(!secret.stderr.contains("hunter2"), "{}", secret.stderr);

    let url = pg.database();
    let wrong = env.path("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let refused = env
        .run_with(
            &["status"],
            &[
                ("ONBOARD_STATE_URL", &url),
                ("ONBOARD_STATE_PASSWORD_FILE", wrong.to_str().unwrap()),
            ],
        )
        .code(2);
    assert!(
        refused.stderr.contains("password authentication failed")
            && refused.stderr.contains("hint: check the user and database"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("not-the-password"));

    let down = status("postgres://onboard@127.0.0.1:1/x", &[]).code(1);
    assert!(
        down.stderr
            .contains("cannot connect to postgres://onboard@127.0.0.1:1/x")
            && down.stderr.contains("is the PostgreSQL server running"),
        "{}",
        down.stderr
    );
    let run = env
        .run_with(
            &["playbooks/new-hire.yaml"],
            &[
                ("ONBOARD_STATE_URL", "postgres://onboard@127.0.0.1:1/x"),
                ("ONBOARD_STATE_PASSWORD_FILE", pw),
            ],
        )
        .code(1);
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    assert!(
        !env.state().join("directory.ldif").exists(),
        "nothing is changed when the store is down"
    );

    // A database upgraded by a newer onboard is refused, and left as it is.
    status(&url, &[]).success();
    env.run_with(
        &["playbooks/new-hire.yaml"],
        &[
            ("ONBOARD_STATE_URL", &url),
            ("ONBOARD_STATE_PASSWORD_FILE", pw),
        ],
    )
    .success();
    let db = url.rsplit('/').next().unwrap();
    let mut admin = postgres::Config::new()
        .host("127.0.0.1")
        .port(pg.port)
        .user(crate::postgres::ADMIN)
        .password(crate::postgres::ADMIN_PASSWORD)
        .dbname(db)
        .connect(postgres::NoTls)
        .unwrap();
    admin
        .execute(
            "INSERT INTO onboard_schema (version, checksum, about, onboard) \
             VALUES (99, 'x', 'from the future', '99.0.0')",
            &[],
        )
        .unwrap();
    let newer = env
        .run_with(
            &["playbooks/new-hire.yaml"],
            &[
                ("ONBOARD_STATE_URL", &url),
                ("ONBOARD_STATE_PASSWORD_FILE", pw),
            ],
        )
        .code(1);
    assert!(
        newer
            .stderr
            .contains("schema version 99, newer than this onboard knows (3)")
            && newer.stderr.contains("hint: use the onboard that upgraded"),
        "{}",
        newer.stderr
    );
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM onboard_journal", &[])
        .unwrap()
        .get(0);
    let before = rows;
    let _ = env.run_with(
        &["playbooks/new-hire.yaml"],
        &[
            ("ONBOARD_STATE_URL", &url),
            ("ONBOARD_STATE_PASSWORD_FILE", pw),
        ],
    );
    let after: i64 = admin
        .query_one("SELECT count(*) FROM onboard_journal", &[])
        .unwrap()
        .get(0);
    assert_eq!(before, after, "nothing is written to a newer schema");
}

#[test]
fn the_config_file_selects_the_store_and_says_where_each_setting_came_from() {
    let pg = shared();
    let url = pg.database();
    // No ONBOARD_STATE_DIR: it would override the file's `state` (the environment wins).
    let env = TestEnv::on_files().env("ONBOARD_STATE_DIR", "");
    let config = env.path("onboard.toml");
    std::fs::write(
        &config,
        format!(
            "# the team's settings\nstate = \"{url}\"\n\n[postgres]\npassword_file = \"{}\"\n\n[ldap]\nurl = \"ldaps://ldap.example.org\"\nbind_dn = \"cn=onboard,dc=example,dc=org\"\npassword_env = \"LDAP_SECRET\"\ntimeout = 5\n",
            pg.password_file().display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let vars = [
        ("ONBOARD_CONFIG", config),
        ("LDAP_SECRET", "ldap-secret-value"),
        ("ONBOARD_SMTP_URL", "smtp://127.0.0.1:2525"),
    ];
    let shown = env.run_with(&["config"], &vars).success();
    let line = |key: &str| {
        shown
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key} in\n{}", shown.stdout))
            .to_owned()
    };
    assert!(line("config file").ends_with("environment ONBOARD_CONFIG"));
    assert!(
        line("store").contains(&url) && line("store").ends_with(&format!("{config}:2")),
        "{}",
        shown.stdout
    );
    assert!(
        line("postgres.password").contains("(from file ")
            && line("postgres.password").ends_with(&format!("{config}:5"))
    );
    assert!(line("ldap.url").ends_with(&format!("{config}:8")));
    assert!(
        line("ldap.password").contains("(from environment LDAP_SECRET)"),
        "{}",
        shown.stdout
    );
    assert!(line("ldap.timeout").contains("5 s"));
    assert!(line("smtp.url").ends_with("environment ONBOARD_SMTP_URL"));
    assert!(line("smtp.timeout").ends_with("default"));
    assert!(!shown.stdout.contains("ldap-secret-value"));
    assert!(!shown.stdout.contains(crate::postgres::ADMIN_PASSWORD));

    // The environment overrides the file, and a flag overrides both.
    let env_dir = env.path("elsewhere");
    let over = env
        .run_with(
            &["config"],
            &[
                vars[0],
                vars[1],
                ("ONBOARD_STATE_DIR", env_dir.to_str().unwrap()),
            ],
        )
        .success();
    assert!(over.stdout.contains("state directory"), "{}", over.stdout);
    let flag = env
        .run_with(&["config", "--state-dir", "/srv/onboard"], &vars[..2])
        .success();
    assert!(
        flag.stdout.lines().any(|l| l.starts_with("store ")
            && l.contains("/srv/onboard")
            && l.ends_with("flag --state-dir")),
        "{}",
        flag.stdout
    );

    // The file's store is used: a run with no other setting lands in the database.
    let team = env.path("team.toml");
    std::fs::write(
        &team,
        format!(
            "state = \"{url}\"\n[postgres]\npassword_file = \"{}\"\n",
            pg.password_file().display()
        ),
    )
    .unwrap();
    let config = team.to_str().unwrap();
    env.run_with(&["playbooks/new-hire.yaml"], &[("ONBOARD_CONFIG", config)])
        .success();
    let status = env
        .run_with(&["status"], &[("ONBOARD_CONFIG", config)])
        .success();
    assert!(status.stdout.contains("E1042"), "{}", status.stdout);
    let local = env.path(".local/state/onboard");
    assert!(
        local.join("directory.ldif").exists(),
        "the embedded directory is local"
    );
    assert!(
        !local.join("journal").exists(),
        "the journal is in the database"
    );

    // A typo and a wrong type: located, with a hint, exit 2.
    let typo = env.path("typo.toml");
    std::fs::write(&typo, "[ldap]\nurl = \"ldap://x\"\nbind_nd = \"cn=x\"\n").unwrap();
    let bad = env
        .run_with(&["status"], &[("ONBOARD_CONFIG", typo.to_str().unwrap())])
        .code(2);
    assert!(
        bad.stderr
            .contains(&format!("{}:3:1: unknown field `bind_nd`", typo.display()))
            && bad.stderr.contains("hint: "),
        "{}",
        bad.stderr
    );
    let wrong = env.path("wrong.toml");
    std::fs::write(&wrong, "[smtp]\ntimeout = \"ten\"\n").unwrap();
    let bad = env
        .run(&["status", "--config", wrong.to_str().unwrap()])
        .code(2);
    assert!(
        bad.stderr.contains(&format!("{}:2:11: ", wrong.display())),
        "{}",
        bad.stderr
    );
    let secret = env.path("secret.toml");
    std::fs::write(&secret, "[smtp]\npassword = \"hunter2\"\n").unwrap();
    let bad = env
        .run(&["status", "--config", secret.to_str().unwrap()])
        .code(2);
    assert!(
        bad.stderr.contains("password_file") && !bad.stderr.contains("hunter2"),
        "{}",
        bad.stderr
    );
    let missing = env
        .run(&["status", "--config", "/nonexistent/onboard.toml"])
        .code(2);
    assert!(
        missing
            .stderr
            .contains("cannot read the config file /nonexistent/onboard.toml"),
        "{}",
        missing.stderr
    );
}

#[test]
fn store_copy_moves_the_record_both_ways_and_never_overwrites_a_differing_hire() {
    let pg = shared();
    let url = pg.database();
    let env = TestEnv::on_files();
    let pw = pg.password_file();
    let vars = [("ONBOARD_STATE_PASSWORD_FILE", pw.to_str().unwrap())];
    // A state directory with a signed cleaning and its evidence file.
    env.run(&["playbooks/new-hire.yaml"]).success();
    let certificate = env.path("wipe.pdf");
    std::fs::write(&certificate, b"%PDF wipe certificate").unwrap();
    env.run_as(
        "tom",
        &[
            "sign-off",
            "E1042",
            "laptop-cleaning",
            "--by",
            "Tom Tech",
            "--all",
            "--value",
            "wipe_certificate_id=WC-3",
            "--evidence",
            certificate.to_str().unwrap(),
        ],
    )
    .success();
    env.run(&["playbooks/hires/grace-hopper.yaml"]).success();
    let dir = env.state();
    let dir = dir.to_str().unwrap();

    let copy = env
        .run_with(&["store", "copy", "--from", dir, "--to", &url], &vars)
        .success();
    assert!(
        copy.stdout
            .contains(": 2 copied, 0 already there, 0 refused"),
        "{}",
        copy.stdout
    );
    assert!(copy.stderr.contains("E1042: copied "), "{}", copy.stderr);
    assert!(copy.stderr.contains("1 evidence files"), "{}", copy.stderr);
    let on_pg = |args: &[&str]| env.run_with(args, &[("ONBOARD_STATE_URL", url.as_str()), vars[0]]);
    assert_eq!(
        on_pg(&["verify"]).success().stdout,
        env.run(&["verify"]).success().stdout
    );
    let file_log = env.run(&["log", "E1042", "--json"]).success().stdout;
    assert_eq!(
        on_pg(&["log", "E1042", "--json"]).success().stdout,
        file_log
    );

    // Again: nothing to do. Back to a new directory: the same bytes.
    let again = env
        .run_with(&["store", "copy", "--from", dir, "--to", &url], &vars)
        .success();
    assert!(
        again.stdout.contains("0 copied, 2 already there"),
        "{}",
        again.stdout
    );
    let back = env.path("back");
    env.run_with(
        &[
            "store",
            "copy",
            "--from",
            &url,
            "--to",
            back.to_str().unwrap(),
        ],
        &vars,
    )
    .success();
    for hire in ["E1042", "E1043"] {
        assert_eq!(
            std::fs::read(back.join(format!("journal/{hire}.jsonl"))).unwrap(),
            std::fs::read(env.state().join(format!("journal/{hire}.jsonl"))).unwrap()
        );
    }
    assert_eq!(
        std::fs::read_dir(back.join("evidence/E1042"))
            .unwrap()
            .count(),
        1
    );

    // The directory moves on (the run after the sign-off); the database's copy now differs:
    // refused.
    env.run(&["playbooks/new-hire.yaml"]).success();
    let refused = env
        .run_with(&["store", "copy", "--from", dir, "--to", &url], &vars)
        .code(1);
    assert!(
        refused.stderr.contains("E1042: ")
            && refused.stderr.contains("differs from")
            && refused.stderr.contains("refusing to overwrite it"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stdout.contains("1 already there, 1 refused"),
        "{}",
        refused.stdout
    );
    // A broken source is not copied.
    let journal = env.state().join("journal/E1043.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, text.replacen("Grace", "Gracie", 1)).unwrap();
    let fresh = pg.database();
    let broken = env
        .run_with(&["store", "copy", "--from", dir, "--to", &fresh], &vars)
        .code(1);
    assert!(
        broken.stderr.contains("E1043: ") && broken.stderr.contains("does not verify"),
        "{}",
        broken.stderr
    );
}

#[test]
fn a_ca_file_makes_the_store_speak_tls_and_checks_the_server() {
    let pg = Postgres::start_tls();
    let url = pg.database();
    let env = TestEnv::on_files();
    let pw = pg.password_file();
    let ca = pg.ca_file();
    let vars = |ca: &str| {
        vec![
            ("ONBOARD_STATE_URL", url.clone()),
            ("ONBOARD_STATE_PASSWORD_FILE", pw.display().to_string()),
            ("ONBOARD_STATE_CA_FILE", ca.to_owned()),
        ]
    };
    let good = vars(ca.to_str().unwrap());
    env.run_with(&["playbooks/new-hire.yaml"], &pairs(&good))
        .success();
    env.run_with(&["verify"], &pairs(&good)).success();
    // Another CA: the server's certificate is refused, so the connection really was TLS.
    let other = tempfile::tempdir().unwrap();
    crate::slapd::make_certificates(other.path());
    let bad = vars(other.path().join("ca.crt").to_str().unwrap());
    let refused = env.run_with(&["status"], &pairs(&bad)).code(2);
    assert!(
        refused.stderr.contains("cannot connect to ") && refused.stderr.contains("certificate"),
        "{}",
        refused.stderr
    );
}

/// Split brain: the server connection that holds a run's lock is cut (`pg_terminate_backend`)
/// while the run is mailing the manager the password it just set (the mail server holds the
/// message). A second run used to take the hire 0.4 s later, set and mail a second password,
/// and the first run's message arrived last and did not work. Now the second run is refused
/// while the first may still be acting, naming it; the first stops at its next record; the
/// resume delivers one password that works, and one welcome.
#[test]
fn a_run_whose_lock_connection_is_cut_mid_send_is_not_joined_by_a_second() {
    let pg = shared();
    let url = pg.database();
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(Mode::Plain);
    let mut servers = smtp.with_directory(&slapd);
    servers.push(("ONBOARD_SMTP_TIMEOUT", "60".to_owned()));
    let alice = machine("alice", &url, pg, &servers);
    let new_hire = playbook("new-hire.yaml");

    // The first run starts the account; the mail server is stopped before the password goes.
    let first = alice.spawn(
        &[&new_hire],
        &[("ONBOARD_FAILPOINT", "slow:after:step_started:account")],
    );
    alice.wait_for_journal("E1042", "\"type\":\"step_started\",\"step\":\"account\"");
    smtp.hang();
    std::thread::sleep(Duration::from_millis(1500));

    // Its lock's connection is cut.
    let mut db: postgres::Config = url.parse().unwrap();
    db.password(crate::postgres::ADMIN_PASSWORD);
    let mut db = db.connect(postgres::NoTls).unwrap();
    let cut: i64 = db
        .query_one(
            "SELECT count(pg_terminate_backend(backend_pid)) FROM onboard_lock_holder WHERE hire = 'E1042'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(cut, 1, "the lock's connection was found by its holder row");

    // A second run is refused while the first may still be acting, and told who it is (it
    // gives up on the held mail server after 2 s, as on one that is down, before it asks).
    let refused = alice
        .run_with(&[&new_hire], &[("ONBOARD_SMTP_TIMEOUT", "2")])
        .code(1);
    assert!(
        refused.stderr.contains("lost its connection to PostgreSQL")
            && refused.stderr.contains("after it started `account`")
            && refused.stderr.contains(" by alice on "),
        "{}",
        refused.stderr
    );

    // The mail server answers again: the first run's message goes, and it stops at its next
    // record (it can no longer write the journal).
    smtp.unhang();
    let out = first.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot write the journal"), "{stderr}");

    // Now that it has stopped, the resume finishes the account: a new password, delivered.
    alice.run(&[&new_hire]).success();
    let messages = smtp.messages();
    let subject = |m: &serde_json::Value| m["headers"]["Subject"].as_str().unwrap_or("").to_owned();
    let passwords: Vec<&serde_json::Value> = messages
        .iter()
        // The second says it replaces any earlier one.
        .filter(|m| {
            subject(m)
                .to_lowercase()
                .contains("initial password for ada lovelace")
        })
        .collect();
    let welcomes = messages
        .iter()
        .filter(|m| subject(m).starts_with("Welcome to"))
        .count();
    assert_eq!(welcomes, 1, "one welcome");
    let last = passwords.last().expect("a password message");
    let body = last["parts"][0]["content"].as_str().unwrap();
    let password = body
        .lines()
        .find_map(|l| l.strip_prefix("Initial password:"))
        .unwrap()
        .trim();
    assert!(
        slapd.can_bind("uid=ada.lovelace,ou=people,dc=example,dc=org", password),
        "the last password message works ({} sent)\n{}",
        passwords.len(),
        alice.run(&["log", "E1042"]).stdout
    );
    let verify = alice.run(&["verify"]).success();
    assert!(verify.stdout.contains("E1042: ok"), "{}", verify.stdout);
    // The holder row goes with the lock: none is left to name a run that has exited.
    let left: i64 = db
        .query_one("SELECT count(*) FROM onboard_lock_holder", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "holder rows left behind");
}

/// No password configured used to exit 1 like an outage, and a role without rights was told
/// "is the PostgreSQL server running?". Both are settings to fix (exit 2), and the second names
/// the grant that is missing.
#[test]
fn a_missing_password_or_grant_is_an_input_error_that_says_which() {
    let pg = shared();
    let url = pg.database();
    let env = TestEnv::on_files().env("ONBOARD_STATE_URL", &url);
    let run = env.run(&["status"]).code(2);
    assert!(
        run.stderr.contains("no password is configured"),
        "{}",
        run.stderr
    );

    // A role that may connect but not create onboard's tables.
    let database = url.rsplit('/').next().unwrap();
    let mut admin = pg.admin().unwrap();
    let role = format!("weak_{database}");
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'weak-secret';
             GRANT CONNECT ON DATABASE {database} TO {role};"
        ))
        .unwrap();
    let password = env.path("weak-password");
    std::fs::write(&password, "weak-secret\n").unwrap();
    let weak = url.replacen(crate::postgres::ADMIN, &role, 1);
    let run = env
        .run_with(
            &["playbooks/new-hire.yaml"],
            &[
                ("ONBOARD_STATE_URL", weak.as_str()),
                ("ONBOARD_STATE_PASSWORD_FILE", password.to_str().unwrap()),
            ],
        )
        .code(2);
    assert!(
        run.stderr.contains("permission denied for schema public"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("GRANT CREATE ON SCHEMA public TO onboard"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("server running"), "{}", run.stderr);
}

/// A server that accepts the connection and never answers (a hung server, a wrong port)
/// held every command for ever, `ONBOARD_STATE_TIMEOUT=3` or not: the handshake has a deadline.
#[test]
fn a_database_that_accepts_and_never_answers_is_an_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let env = TestEnv::on_files();
    let password = env.path("pw");
    std::fs::write(&password, "x\n").unwrap();
    let url = format!("postgres://onboard@127.0.0.1:{port}/onboard");
    let run = env
        .run_with(
            &["status"],
            &[
                ("ONBOARD_STATE_URL", url.as_str()),
                ("ONBOARD_STATE_PASSWORD_FILE", password.to_str().unwrap()),
                ("ONBOARD_STATE_TIMEOUT", "2"),
            ],
        )
        .code(1);
    assert!(
        run.stderr
            .contains("no answer within 3 s (the server accepted the connection and said nothing)"),
        "{}",
        run.stderr
    );
}
