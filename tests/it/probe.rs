//! What a hostile probe of onboard found (settings, files, journals), each test named after
//! what it caught. Hire data and cohorts have their own files (hostile.rs, cohort.rs).

use crate::cohort::{checklist, write_csv};
use crate::common::TestEnv;

#[test]
fn credentials_in_a_server_url_are_refused_before_anything_runs_and_never_shown() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = write_csv(&env, 1, &[]);
    for (var, url) in [
        ("ONBOARD_SMTP_URL", "smtp://it:Sup3rSecret@127.0.0.1:2525"),
        (
            "ONBOARD_LDAP_URL",
            "ldap://cn=admin:Sup3rSecret@127.0.0.1:389",
        ),
    ] {
        let run = env
            .run_with(&[&playbook, "--hires", &csv], &[(var, url)])
            .code(2);
        assert!(!run.stderr.contains("Sup3rSecret"), "{}", run.stderr);
        assert!(!run.stdout.contains("Sup3rSecret"), "{}", run.stdout);
        assert!(
            run.stderr.contains("holds a user name or password") && run.stderr.contains("***@"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("_PASSWORD_FILE"), "{}", run.stderr);
        // Nothing ran: no journal, no embedded directory, no outbox.
        assert!(!env.state().join("journal").exists());
        assert!(!env.state().join("directory.ldif").exists());
        assert!(!env.state().join("outbox").exists());
    }
}

#[test]
fn a_bad_server_url_in_a_cohort_is_one_error_and_exit_2() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = write_csv(&env, 5, &[]);
    let run = env
        .run_with(
            &[&playbook, "--hires", &csv, "--jobs", "4"],
            &[("ONBOARD_LDAP_URL", "ldap://127.0.0.1:notaport")],
        )
        .code(2);
    assert_eq!(
        run.stderr.matches("ONBOARD_LDAP_URL").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn a_hire_file_cannot_choose_the_templates_folder() {
    let env = TestEnv::new();
    let hire = env.path("evil-hire.yaml");
    std::fs::write(
        &hire,
        format!(
            "checklist: {}\ntemplates: /etc\nhire:\n  id: E9\n  given_name: Eve\n",
            crate::common::repo()
                .join("playbooks/new-hire.yaml")
                .display()
        ),
    )
    .unwrap();
    let run = env.run(&["check", hire.to_str().unwrap()]).code(2);
    assert!(
        run.stderr
            .contains("a hire file (one with `checklist:`) cannot set `templates`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("evil-hire.yaml:2:1"), "{}", run.stderr);
}

/// `templates: /etc` with `file: shadow` (or `../../../../etc`) mailed /etc/shadow as the
/// policy attachment. A checklist's templates come from its own project, or from a folder the
/// config file allows.
#[test]
fn a_checklist_cannot_name_a_templates_folder_outside_its_project() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.path("project/playbooks")).unwrap();
    let shipped =
        std::fs::read_to_string(crate::common::repo().join("playbooks/new-hire.yaml")).unwrap();
    for (name, folder) in [("abs", "/etc"), ("up", "../../../../../../../../etc")] {
        let text = shipped
            .replace(
                "steps:
",
                &format!(
                    "templates: {folder}
steps:
"
                ),
            )
            .replace("file: it-policies.md", "file: shadow");
        let path = env.path(&format!("project/playbooks/{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        let run = env
            .run_with(&[path], &[("ONBOARD_TEMPLATES_ROOTS", "")])
            .code(2);
        assert!(
            run.stderr
                .contains("the templates folder /etc is outside the checklist's project"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("{name}.yaml:")),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("templates_roots = [\"/etc\"]"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
        assert!(!env.state().join("outbox").exists(), "nothing was sent");
    }
    // Beside the checklist's folder is the project: allowed.
    let templates = env.path("project/templates");
    std::fs::create_dir_all(&templates).unwrap();
    for entry in std::fs::read_dir(crate::common::repo().join("templates")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), templates.join(entry.file_name())).unwrap();
    }
    let own = env.path("project/playbooks/own.yaml");
    std::fs::write(&own, &shipped).unwrap();
    env.run_with(
        &["check", own.to_str().unwrap()],
        &[("ONBOARD_TEMPLATES_ROOTS", "")],
    )
    .success();
}

#[test]
fn a_template_symlinked_out_of_its_folder_is_refused() {
    let env = TestEnv::new();
    let templates = env.path("templates");
    std::fs::create_dir(&templates).unwrap();
    for entry in std::fs::read_dir(crate::common::repo().join("templates")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), templates.join(entry.file_name())).unwrap();
    }
    // The policy attachment is a symlink to a file outside the folder.
    let secret = env.path("shadow");
    std::fs::write(&secret, "root:$6$secret").unwrap();
    std::fs::remove_file(templates.join("it-policies.md")).unwrap();
    std::os::unix::fs::symlink(&secret, templates.join("it-policies.md")).unwrap();
    let playbook = env.path("playbooks/new-hire.yaml");
    std::fs::create_dir(env.path("playbooks")).unwrap();
    std::fs::copy(
        crate::common::repo().join("playbooks/new-hire.yaml"),
        &playbook,
    )
    .unwrap();
    let run = env.run(&["check", playbook.to_str().unwrap()]).code(2);
    assert!(run.stderr.contains("leads outside"), "{}", run.stderr);
    let run = env.run(&[playbook.to_str().unwrap()]).code(2);
    assert!(!run.stderr.contains("root:$6$"), "{}", run.stderr);
    assert!(!env.state().join("outbox").exists());
}

#[test]
fn evidence_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let env = TestEnv::new();
    env.run(&["playbooks/new-hire.yaml"]).success();
    let fifo = env.path("certificate.pdf");
    crate::common::mkfifo(&fifo);
    for (file, what) in [
        (fifo.to_str().unwrap(), "a FIFO"),
        ("/dev/zero", "a device"),
    ] {
        let run = env
            .run_as(
                "bob",
                &[
                    "sign-off",
                    "E1042",
                    "laptop-cleaning",
                    "--by",
                    "Bob Bench",
                    "--all",
                    "--value",
                    "wipe_certificate_id=WC-1",
                    "--evidence",
                    file,
                ],
            )
            .code(2);
        assert!(run.stderr.contains(what), "{}", run.stderr);
    }
}

#[test]
fn one_bad_journal_hides_no_other_hire() {
    // Bytes that are not UTF-8 and symlinks are what files can hold (the database's rows are
    // text): the tamper tests of `report.rs` run on both stores.
    let env = TestEnv::on_files();
    let playbook = checklist(&env);
    let csv = write_csv(&env, 4, &[]);
    env.run(&[&playbook, "--hires", &csv]).success();
    let journal = |hire: &str| env.state().join(format!("journal/{hire}.jsonl"));

    // C001: a 0xFF byte in its second line.
    let mut bytes = std::fs::read(journal("C001")).unwrap();
    let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 5;
    bytes[second] = 0xFF;
    std::fs::write(journal("C001"), &bytes).unwrap();
    // C002: a carriage return before the end of its first line.
    let text = std::fs::read_to_string(journal("C002")).unwrap();
    std::fs::write(journal("C002"), text.replacen('\n', "\r\n", 1)).unwrap();
    // C003: a symlink to a copy of itself somewhere else.
    let elsewhere = env.path("C003-copy.jsonl");
    std::fs::rename(journal("C003"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, journal("C003")).unwrap();

    let status = env.run(&["status"]).code(1);
    assert!(status.stdout.contains("C000  "), "{}", status.stdout);
    for (hire, problem) in [
        ("C001", "C001.jsonl:2: byte 0xFF at column 5 is not UTF-8"),
        ("C002", "C002.jsonl:1: a carriage return was added"),
        ("C003", "is a symlink"),
    ] {
        assert!(
            status.stdout.contains(&format!("{hire}  JOURNAL BROKEN")),
            "{}",
            status.stdout
        );
        assert!(
            status.stderr.contains(problem),
            "{problem}\n{}",
            status.stderr
        );
    }
    // `status --json` left the broken ones out: a script saw three fewer hires, all fine.
    let json = env.run(&["status", "--json"]).code(1);
    let list: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(list.len(), 4, "{}", json.stdout);
    for hire in ["C001", "C002", "C003"] {
        let entry = list.iter().find(|e| e["hire"] == hire).unwrap();
        assert_eq!(entry["readiness"], "journal_broken", "{entry}");
        assert!(entry["journal_broken"].as_str().is_some(), "{entry}");
    }

    let verify = env.run(&["verify"]).code(1);
    assert!(verify.stdout.contains("C000: ok"), "{}", verify.stdout);
    assert!(
        verify.stderr.contains("C001.jsonl:2: byte 0xFF"),
        "{}",
        verify.stderr
    );
    assert!(
        verify.stderr.contains("C002.jsonl:1: a carriage return"),
        "{}",
        verify.stderr
    );
    assert!(verify.stderr.contains("is a symlink"), "{}", verify.stderr);

    let out = env.path("report.csv");
    let report = env.run(&["report", "--format", "csv", "-o", out.to_str().unwrap()]);
    assert_eq!(report.code, 1, "{}", report.stderr);
    let csv = std::fs::read_to_string(&out).unwrap();
    for hire in ["C000", "C001", "C002", "C003"] {
        assert!(csv.contains(hire), "{hire} in\n{csv}");
    }
}

#[test]
fn check_refuses_what_a_run_would_refuse() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let long = "a".repeat(250);
    let id = "E".repeat(250);
    let csv = env.path("limits.csv");
    std::fs::write(
        &csv,
        format!(
            "Employee ID,First Name,Last Name,Email,Manager Email,Department\n\
             L1,{long},Smith,l1@example.org,mia@example.org,Research\n\
             L2,Jö,Smith,jö@example.org,mia@example.org,Research\n\
             {id},Ann,Lee,l3@example.org,mia@example.org,Research\n"
        ),
    )
    .unwrap();
    // The dry run checks every row as the run would, on the embedded directory.
    let run = env
        .run(&[&playbook, "--hires", csv.to_str().unwrap(), "--dry-run"])
        .code(2);
    for expected in [
        "the entry's name `uid=…` is 260 bytes; OpenLDAP's database (back-mdb) stores names of at most 240",
        "attribute `mail` is `jö@example.org`; the directory's `mail` holds ASCII addresses only",
        "hire field `id`: is 250 characters; an id has at most 64",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.stderr);
    }

    // A column mapped to a field that does not exist is the checklist's error, found by check.
    let text = std::fs::read_to_string(&playbook)
        .unwrap()
        .replace("  Department: department", "  Department: departmnet");
    std::fs::write(&playbook, text).unwrap();
    let run = env.run(&["check", &playbook]).code(2);
    assert!(
        run.stderr
            .contains("column `Department` maps to `departmnet`, which is not a hire field")
            && run.stderr.contains("did you mean `department`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn status_calls_a_step_a_live_run_holds_running_not_interrupted() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = write_csv(&env, 1, &[]);
    let mut child = env.spawn(
        &[&playbook, "--hires", &csv],
        &[("ONBOARD_FAILPOINT", "pause:applied:account")],
    );
    env.wait_for_journal("C000", "step_started");
    let live = env.run(&["status"]);
    assert_eq!(
        live.code, 0,
        "no false alarm for cron\n{}{}",
        live.stdout, live.stderr
    );
    assert!(live.stdout.contains("account  running"), "{}", live.stdout);
    assert!(!live.stdout.contains("interrupted"), "{}", live.stdout);

    child.kill().unwrap();
    child.wait().unwrap();
    let dead = env.run(&["status"]).code(1);
    assert!(
        dead.stdout.contains("account  interrupted"),
        "{}",
        dead.stdout
    );
}

#[test]
fn drift_is_shown_in_the_cohort_summary_and_in_status() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = write_csv(&env, 1, &[]);
    env.run(&[&playbook, "--hires", &csv]).success();
    // Someone changes the account's mail by hand.
    let ldif = env.state().join("directory.ldif");
    let text = std::fs::read_to_string(&ldif).unwrap();
    std::fs::write(
        &ldif,
        text.replace("mail: c0@example.org", "mail: other@example.org"),
    )
    .unwrap();
    let run = env.run(&[&playbook, "--hires", &csv]).success();
    assert!(
        run.stdout
            .contains("C000: complete (0 done now, 3 already done); account: drift: mail"),
        "{}",
        run.stdout
    );
    let status = env.run(&["status"]).success();
    assert!(status.stdout.contains("(drift: mail"), "{}", status.stdout);
    // Put back, the next run says so and status is clean again.
    std::fs::write(&ldif, &text).unwrap();
    env.run(&[&playbook, "--hires", &csv]).success();
    let status = env.run(&["status"]).success();
    assert!(!status.stdout.contains("drift"), "{}", status.stdout);
    env.run(&["verify"]).success();
}

#[test]
fn an_excel_csv_with_a_byte_order_mark_is_read() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = env.path("excel.csv");
    std::fs::write(
        &csv,
        "\u{feff}Employee ID,First Name,Last Name,Email,Manager Email,Department\n\
         E1,Ann,Lee,ann@example.org,mia@example.org,Research\n",
    )
    .unwrap();
    let run = env
        .run(&[&playbook, "--hires", csv.to_str().unwrap()])
        .success();
    assert!(run.stdout.contains("E1: complete"), "{}", run.stdout);
}

#[test]
fn a_state_directory_open_to_others_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    std::fs::create_dir_all(env.state()).unwrap();
    std::fs::set_permissions(env.state(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let playbook = checklist(&env);
    let csv = write_csv(&env, 1, &[]);
    env.run(&[&playbook, "--hires", &csv]).success();
    let mode = std::fs::metadata(env.state()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// A state directory this user may not read: `status` said "No hires yet", `sign-off` said
/// there was no such hire, and the link key's "Permission denied" came with advice about its
/// length. Each now names the path it could not read. (Needs root, to run as `nobody`.)
#[test]
fn a_state_directory_this_user_may_not_read_is_named_not_taken_for_empty() {
    let root = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        eprintln!("skipped: needs root to run as nobody");
        return;
    }
    let env = TestEnv::on_files();
    env.run(&["playbooks/new-hire.yaml"]).success();
    // A copy of onboard that `nobody` may run, in a folder it may enter.
    let open = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = open.path().join("onboard");
    std::fs::copy(env!("CARGO_BIN_EXE_onboard"), &bin).unwrap();
    let state = env.state();
    let as_nobody = |args: &[&str]| {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .current_dir(crate::common::repo())
            .env_clear()
            .env("HOME", open.path())
            .env("ONBOARD_STATE_DIR", &state)
            .env("ONBOARD_NOW", crate::common::NOW)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The state directory is root's and private (0700): nobody may reach it, not read it.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, err) = as_nobody(&["status"]);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("journal`: Permission denied"),
        "status names the folder: {err}"
    );
    let (_, err) = as_nobody(&["sign-off", "E1042", "laptop-cleaning"]);
    assert!(
        err.contains("journal/E1042.jsonl: Permission denied"),
        "sign-off names the journal: {err}"
    );
    let (_, err) = as_nobody(&["playbooks/new-hire.yaml"]);
    assert!(err.contains("link.key: Permission denied"), "{err}");
    assert!(!err.contains("32 or more"), "{err}");
}

/// What the adversary found after the first fixes: a checklist one level below `/` (its
/// "project" was `/`) could still name `templates: /etc`; an empty or cut-off journal was shown
/// as a hire on track with no name; a database URL with its password given as the state
/// directory was printed and became a local folder.
#[test]
fn edge_cases_of_templates_journals_and_state_urls_are_refused_or_flagged() {
    let env = TestEnv::on_files();
    let shipped =
        std::fs::read_to_string(crate::common::repo().join("playbooks/new-hire.yaml")).unwrap();
    let top = std::path::PathBuf::from(format!("/tmp/onboard-probe-{}.yaml", std::process::id()));
    std::fs::write(
        &top,
        shipped.replace("steps:\n", "templates: /etc\nsteps:\n"),
    )
    .unwrap();
    let run = env.run_with(&[top.to_str().unwrap()], &[("ONBOARD_TEMPLATES_ROOTS", "")]);
    std::fs::remove_file(&top).unwrap();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("outside the checklist's project"),
        "{}",
        run.stderr
    );

    env.run(&["playbooks/new-hire.yaml"]).success();
    let journals = env.state().join("journal");
    std::fs::write(journals.join("A4.jsonl"), "").unwrap();
    let text = std::fs::read_to_string(journals.join("E1042.jsonl")).unwrap();
    std::fs::write(journals.join("A6.jsonl"), &text[..300]).unwrap();
    let status = env.run(&["status", "--json"]).code(1);
    let list: Vec<serde_json::Value> = serde_json::from_str(&status.stdout).unwrap();
    for hire in ["A4", "A6"] {
        let entry = list.iter().find(|e| e["hire"] == hire).unwrap();
        assert_eq!(entry["readiness"], "journal_broken", "{entry}");
    }
    assert!(
        status.stderr.contains("holds no complete record"),
        "{}",
        status.stderr
    );

    let url = "postgres://u:S3CRET@db.example.org/onboard";
    let run = env
        .run_with(&["status"], &[("ONBOARD_STATE_DIR", url)])
        .code(2);
    assert!(
        !run.stderr.contains("S3CRET") && !run.stdout.contains("S3CRET"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ONBOARD_STATE_URL"), "{}", run.stderr);
    assert!(!crate::common::repo().join("postgres:").exists());
}
