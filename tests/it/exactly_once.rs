//! Exactly once, and the truth (issue 30's engine points), each as the test that caught it:
//! a done step undone by a later run, `status` ready for an unfinished hire, who recorded a
//! signature, a signature that did not unblock what waits for it, a refusal that disappeared.

use crate::common::{TestEnv, repo};

const PLAYBOOK: &str = "playbooks/new-hire.yaml";

fn records(env: &TestEnv, hire: &str) -> Vec<serde_json::Value> {
    let log = env.run(&["log", hire, "--json"]).success();
    log.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn outbox(env: &TestEnv, kind: &str) -> usize {
    match std::fs::read_dir(env.state().join("outbox")) {
        Ok(dir) => dir
            .filter(|f| {
                f.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(&format!(".{kind}."))
            })
            .count(),
        Err(_) => 0,
    }
}

/// Tom, the bench technician, signs the cleaning as himself.
fn sign_cleaning(env: &TestEnv, hire: &str) {
    env.run_as(
        "tom",
        &[
            "sign-off",
            hire,
            "laptop-cleaning",
            "--by",
            "Tom Tech",
            "--all",
            "--value",
            "wipe_certificate_id=WC-1",
        ],
    )
    .success();
}

/// Ada, the hire, answers the hand-off as herself (`--all`, or `--refuse N --reason …`).
fn handoff(env: &TestEnv, hire: &str, answer: &[&str]) -> crate::common::Run {
    let mut args = vec!["sign-off", hire, "laptop-handoff", "--by", "Ada Lovelace"];
    args.extend_from_slice(answer);
    env.run_as("ada", &args)
}

/// Signs the cleaning as the technician and the hand-off as the hire.
fn sign_both(env: &TestEnv, hire: &str) {
    sign_cleaning(env, hire);
    handoff(env, hire, &["--all"]).success();
}

fn status_of(env: &TestEnv, step: &str) -> String {
    // Exit 1 when the hire is at risk: the JSON is there all the same.
    let json = env.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let hire = &v[0];
    hire["steps"][step]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no {step} in {hire}"))
        .to_owned()
}

/// The account's entry is removed by hand: the re-run reports it, and must not undo the done
/// steps that need it (the old engine journaled them `skipped`, and the next run sent the
/// welcome again once the entry was back).
#[test]
fn a_done_welcome_stays_done_while_the_account_it_needs_is_broken() {
    let env = TestEnv::new().env("USER", "alice");
    env.run(&[PLAYBOOK]).success();
    sign_both(&env, "E1042");
    env.run(&[PLAYBOOK]).success();
    assert_eq!(outbox(&env, "welcome"), 1);

    let ldif = env.state().join("directory.ldif");
    let kept = std::fs::read_to_string(&ldif).unwrap();
    let without: String = kept
        .split("\n\n")
        .filter(|e| !e.starts_with("dn: uid=ada.lovelace,"))
        .collect::<Vec<_>>()
        .join("\n\n");
    assert_ne!(without, kept, "the account's entry was found");
    std::fs::write(&ldif, without).unwrap();
    let broken = env.run(&[PLAYBOOK]).code(1);
    assert!(
        broken.stdout.contains(
            "account: FAILED: it was done (2026-11-23T10:00:00Z by alice), but no longer holds"
        ),
        "{}",
        broken.stdout
    );
    for step in ["groups", "laptop-handoff", "welcome"] {
        assert_eq!(status_of(&env, step), "done", "{step} stays done");
    }
    assert!(
        !records(&env, "E1042")
            .iter()
            .any(|r| r["type"] == "step_skipped"),
        "nothing done was journaled as skipped"
    );

    // The lost account is journaled, so `status` does not call the hire ready (it did).
    let status = env.run(&["status", "E1042"]).code(1);
    assert!(
        status.stdout.contains("E1042  AT RISK"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("account no longer holds"),
        "{}",
        status.stdout
    );

    std::fs::write(&ldif, kept).unwrap();
    env.run(&[PLAYBOOK]).success();
    assert_eq!(outbox(&env, "welcome"), 1, "the welcome went once");
    let status = env.run(&["status", "E1042"]).success();
    assert!(status.stdout.contains("E1042  ready"), "{}", status.stdout);
}

/// The standard hire moved to Research, as a hire file.
fn moved_hire(env: &TestEnv) -> String {
    let moved = env.path("moved.yaml");
    std::fs::write(
        &moved,
        format!(
            "checklist: {}\nhire:\n  id: E1042\n  given_name: Ada\n  family_name: Lovelace\n  \
             personal_email: ada.byron@example.net\n  work_email: ada.lovelace@example.org\n  \
             manager: Charles Babbage\n  manager_email: charles.babbage@example.org\n  \
             department: Research\n  title: Analyst\n  start_date: \"2026-12-07\"\n  \
             time_zone: Europe/London\n  custom:\n    laptop_asset_tag: LT-0042\n    \
             laptop_serial: 5CG1234XYZ\n    laptop_model: ThinkPad T14 Gen 5\n",
            repo().join(PLAYBOOK).display()
        ),
    )
    .unwrap();
    moved.to_str().unwrap().to_owned()
}

/// A department move: `--reapply account --reapply groups` re-applies those two and nothing
/// else. The old engine also re-sent the welcome, set and mailed a new password, and reopened
/// the signed hand-off.
#[test]
fn a_department_move_reapplies_what_it_names_and_nothing_else() {
    let env = TestEnv::new().env("USER", "alice");
    env.run(&[PLAYBOOK]).success();
    sign_both(&env, "E1042");
    env.run(&[PLAYBOOK]).success();
    let moved = moved_hire(&env);
    let moved = moved.as_str();
    let run = env.run(&[moved, "--reapply", "account", "--reapply", "groups"]);
    // Each step's line goes to stderr, the summary to stdout.
    let run = crate::common::Run {
        stdout: format!("{}{}", run.stderr, run.stdout),
        ..run
    };
    assert!(
        run.stdout
            .contains("account: done: updated departmentNumber"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("the password was left as it is (the hire may already use it)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("groups: done: added to cn=research,ou=groups,dc=example,dc=org"),
        "{}",
        run.stdout
    );
    assert_eq!(outbox(&env, "password"), 1, "no second password message");
    assert_eq!(outbox(&env, "welcome"), 1, "no second welcome");
    assert_eq!(status_of(&env, "laptop-handoff"), "done");
    // The welcome's text names the department: it stays sent and says so; the run and every
    // later one succeed (a failure here made every later run exit 1).
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "welcome: already done (sent 2026-11-23T10:00:00Z by alice with earlier parameters"
        ),
        "{}",
        run.stdout
    );
    env.run(&[moved]).success();
}

/// Killed after it started re-applying a done account (a department move), the resume
/// finished it as a creation: a new password was set and mailed for an account in use.
#[test]
fn an_interrupted_reapply_of_a_done_account_keeps_its_password() {
    let env = TestEnv::new().env("USER", "alice");
    env.run(&[PLAYBOOK]).success();
    let ldif = env.state().join("directory.ldif");
    let password = |text: &str| {
        text.lines()
            .skip_while(|l| !l.starts_with("dn: uid=ada.lovelace,"))
            .find(|l| l.starts_with("userPassword"))
            .unwrap()
            .to_owned()
    };
    let before = password(&std::fs::read_to_string(&ldif).unwrap());
    let moved = moved_hire(&env);
    for point in ["after:step_started:account", "applied:account"] {
        let killed = env.run_with(
            &[&moved, "--reapply", "account"],
            &[("ONBOARD_FAILPOINT", point)],
        );
        assert_ne!(killed.code, 0, "{point}");
        let resumed = env.run(&[&moved]);
        assert!(
            resumed.stderr.contains("the password was left as it is"),
            "{point}: {}",
            resumed.stderr
        );
        assert_eq!(
            password(&std::fs::read_to_string(&ldif).unwrap()),
            before,
            "{point}"
        );
        assert_eq!(
            outbox(&env, "password"),
            1,
            "{point}: no second password message"
        );
    }
}

/// Dual control passed with a name that only looks like the operator's (a zero-width space,
/// full-width letters) or with `--as` another name; and a newline in a refusal's reason forged a
/// line of `status`.
#[test]
fn dual_control_sees_through_look_alike_names_and_signatures_are_one_line() {
    let env = TestEnv::new().env("USER", "alice");
    env.run(&[PLAYBOOK]).success();
    let sign = |user: &str, by: &str, extra: &[&str]| {
        let mut args = vec![
            "sign-off",
            "E1042",
            "laptop-cleaning",
            "--by",
            by,
            "--all",
            "--value",
            "wipe_certificate_id=WC-1",
        ];
        args.extend_from_slice(extra);
        env.run_as(user, &args)
    };
    for (user, by) in [
        ("tom", "alice\u{200b}"),
        ("tom", "ａｌｉｃｅ"),
        ("tom", "al\u{ad}ice"),
        ("alice ", "Tom Tech"),
    ] {
        let run = sign(user, by, &[]).code(2);
        assert!(
            run.stderr.contains("dual control") || run.stderr.contains("invisible"),
            "{user:?} signing as {by:?}: {}",
            run.stderr
        );
    }
    let posing = sign("alice", "Tom Tech", &["--as", "tom"]).code(2);
    assert!(
        posing.stderr.contains("dual control: alice"),
        "{}",
        posing.stderr
    );
    let forged = env
        .run_as(
            "tom",
            &[
                "sign-off",
                "E1042",
                "laptop-cleaning",
                "--by",
                "Tom Tech",
                "--refuse",
                "3",
                "--reason",
                "no dock\nE9999  ready",
            ],
        )
        .code(2);
    assert!(forged.stderr.contains("one line"), "{}", forged.stderr);
    // Recorded by someone else on Tom's behalf: both names are in the record.
    sign("bob", "Tom Tech", &["--as", "tom"]).success();
    let signed = records(&env, "E1042")
        .into_iter()
        .rfind(|r| r["type"] == "signed_off")
        .unwrap();
    assert_eq!(signed["actor"], "tom (as OS user bob)", "{signed}");
}

/// `--reapply acount` (a typo) re-applied nothing and said "Nothing to change".
#[test]
fn reapply_of_a_step_the_playbook_has_not_is_refused() {
    let env = TestEnv::new();
    let run = env.run(&[PLAYBOOK, "--reapply", "acount"]).code(2);
    assert!(
        run.stderr.contains("did you mean `account`?"),
        "{}",
        run.stderr
    );
    assert!(!env.state().join("journal").exists(), "nothing was done");
}

/// Killed right after `groups` is journaled done, before `welcome` starts: the hire is not
/// ready, and the report does not call it complete.
#[test]
fn a_hire_killed_before_the_welcome_is_not_ready() {
    let env = TestEnv::new().env("USER", "alice");
    let checklist = env.path("two.yaml");
    std::fs::write(
        &checklist,
        format!(
            "checklist: {}\nhire:\n  id: E7\n  given_name: Kim\n  family_name: Lee\n  \
             work_email: kim.lee@example.org\n  manager: Charles Babbage\n  \
             manager_email: charles.babbage@example.org\n  department: Engineering\n  \
             title: Analyst\n  start_date: \"2026-12-07\"\n  time_zone: Europe/London\n  \
             custom:\n    laptop_asset_tag: LT-7\n    laptop_serial: S7\n",
            repo().join(PLAYBOOK).display()
        ),
    )
    .unwrap();
    let path = checklist.to_str().unwrap();
    let killed = env.run_with(&[path], &[("ONBOARD_FAILPOINT", "after:step_done:groups")]);
    assert_ne!(killed.code, 0, "the failpoint kills the run");
    let status = env.run(&["status"]).success();
    assert!(status.stdout.contains("E7  on track"), "{}", status.stdout);
    assert!(
        status
            .stdout
            .contains("! welcome not started yet, due Mon 2026-12-07 09:00 Europe/London"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("welcome          pending     not started yet"),
        "the welcome is pending: {}",
        status.stdout
    );
    let report = env.run(&["report", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(v["hires"][0]["state"], "in_progress", "{}", report.stdout);
}

/// As alice (who ran the automated steps), `--by "Bob Bench"` used to become the record's
/// actor: alice vanished from it, and dual control was passed by typing another name.
#[test]
fn a_sign_off_records_who_recorded_it_and_who_signed() {
    let env = TestEnv::new().env("USER", "alice");
    env.run(&[PLAYBOOK]).success();
    let posing = env
        .run(&[
            "sign-off",
            "E1042",
            "laptop-cleaning",
            "--by",
            "Bob Bench",
            "--all",
            "--value",
            "wipe_certificate_id=WC-1",
        ])
        .code(2);
    assert!(
        posing
            .stderr
            .contains("dual control: alice ran the automated steps for this hire"),
        "{}",
        posing.stderr
    );
    env.run_as(
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
        ],
    )
    .success();
    let signed = records(&env, "E1042")
        .into_iter()
        .rfind(|r| r["type"] == "signed_off")
        .unwrap();
    assert_eq!(signed["actor"], "bob", "{signed}");
    assert_eq!(signed["by"], "Bob Bench", "{signed}");
}

/// After the cleaning is signed, the hand-off can be signed at once (CLI), and `status` says it
/// waits on the hire, not on the technician, without anyone re-running.
#[test]
fn a_signature_unblocks_what_waits_for_it_at_once() {
    let env = TestEnv::new().env("USER", "alice");
    env.run(&[PLAYBOOK]).success();
    sign_cleaning(&env, "E1042");
    let status = env.run(&["status", "E1042"]).success();
    assert!(
        status.stdout.contains(
            "laptop-handoff   waiting     2026-11-23T10:00:00Z by alice: waiting on the hire: \
             acknowledge receipt of asset LT-0042 (serial 5CG1234XYZ)"
        ),
        "{}",
        status.stdout
    );
    handoff(&env, "E1042", &["--all"]).success();
    assert_eq!(status_of(&env, "laptop-handoff"), "done");
    let run = env.run(&[PLAYBOOK]).success();
    assert!(
        run.stdout
            .contains("Nothing to change: every step was already done."),
        "{}",
        run.stdout
    );
}

/// The standard checklist with a `notify` section, in the environment's own folder.
fn with_notify(env: &TestEnv) -> String {
    let templates = env.path("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for f in std::fs::read_dir(repo().join("templates")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), templates.join(f.file_name())).unwrap();
    }
    std::fs::create_dir_all(env.path("playbooks")).unwrap();
    let shipped = std::fs::read_to_string(repo().join(PLAYBOOK)).unwrap();
    let notify = "notify:\n  from: \"IT <it@example.org>\"\n  to: \"{{ hire.manager_email }}\"\n  \
                  cc: \"{{ vars.help_desk_email }}\"\n  at_risk:\n    \
                  subject: \"{{ hire.given_name }} may not be ready\"\n    \
                  text: notify-at-risk.txt.tera\n    html: notify-at-risk.html.tera\n\nsteps:\n";
    let path = env.path("playbooks/notify.yaml");
    std::fs::write(
        &path,
        shipped.replacen("\nsteps:\n", &format!("\n{notify}"), 1),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// The hire refuses the hand-off ("no USB-C dock in the box"): the old engine's next run put
/// the step back to waiting and the reason vanished from status, board and reports. It stays
/// until someone records a resolution, and the help desk hears of it once.
#[test]
fn a_refusal_stays_visible_until_resolved_and_is_mailed_once() {
    let env = TestEnv::new().env("USER", "alice");
    let playbook = with_notify(&env);
    env.run(&[&playbook]).success();
    sign_cleaning(&env, "E1042");
    handoff(
        &env,
        "E1042",
        &["--refuse", "3", "--reason", "no USB-C dock in the box"],
    )
    .code(1);
    let refused = "Ada Lovelace refused \"With: charger, USB-C dock\": no USB-C dock in the box";
    for _ in 0..2 {
        let run = env.run(&[&playbook]).success();
        assert!(
            run.stdout.contains("laptop-handoff: waiting on the hire"),
            "{}",
            run.stdout
        );
        let status = env.run(&["status", "E1042"]);
        assert!(status.stdout.contains(refused), "{}", status.stdout);
        assert!(status.stdout.contains("AT RISK"), "{}", status.stdout);
        let report = env.run(&["report"]).success();
        assert!(
            report.stdout.contains("no USB-C dock in the box"),
            "{}",
            report.stdout
        );
    }
    assert_eq!(
        outbox(&env, "notify-refused-laptop-handoff-1"),
        1,
        "told once"
    );
    let message = std::fs::read_dir(env.state().join("outbox"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".notify-refused-"))
        .unwrap();
    let text = crate::common::unqp(&std::fs::read_to_string(message).unwrap());
    assert!(text.contains("no USB-C dock in the box"), "{text}");
    assert!(
        text.contains("helpdesk@example.org"),
        "to the help desk: {text}"
    );

    // A second refusal does not hide the first; it is told once too, under its own subject.
    handoff(
        &env,
        "E1042",
        &["--refuse", "2", "--reason", "the screen is cracked"],
    )
    .code(1);
    let status = env.run(&["status", "E1042"]);
    assert!(
        status.stdout.contains(refused) && status.stdout.contains("the screen is cracked"),
        "{}",
        status.stdout
    );
    env.run(&[&playbook]).success();
    assert_eq!(outbox(&env, "notify-refused-laptop-handoff-2"), 1);
    let second = std::fs::read_dir(env.state().join("outbox"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|p| {
            p.to_string_lossy()
                .contains(".notify-refused-laptop-handoff-2.")
        })
        .unwrap();
    let text = crate::common::unqp(&std::fs::read_to_string(second).unwrap());
    assert!(
        text.contains("Subject: Ada Lovelace refused laptop-handoff: Ada may not be ready"),
        "{text}"
    );

    // Nothing to resolve elsewhere; a note is needed.
    env.run(&["resolve", "E1042", "laptop-cleaning", "--note", "x"])
        .code(2);
    env.run(&[
        "resolve",
        "E1042",
        "laptop-handoff",
        "--note",
        "dock delivered to the desk",
    ])
    .success();
    let status = env.run(&["status", "E1042"]);
    assert!(!status.stdout.contains(refused), "{}", status.stdout);
    assert!(!status.stdout.contains("cracked"), "{}", status.stdout);
    let last = records(&env, "E1042").pop().unwrap();
    assert_eq!(last["type"], "refusal_resolved");
    assert_eq!(last["actor"], "alice");
    handoff(&env, "E1042", &["--all"]).success();
    env.run(&[&playbook]).success();
    assert_eq!(
        outbox(&env, "notify-refused-laptop-handoff-1"),
        1,
        "still once"
    );
}

/// A link key cut short (a crash of an older onboard between creating and writing it) is an
/// input error whose hint does not tell people to delete a key every link was signed with.
#[test]
fn a_short_link_key_is_explained_without_advice_to_delete_it() {
    let env = TestEnv::on_files().env("USER", "alice");
    std::fs::create_dir_all(env.state()).unwrap();
    std::fs::write(env.state().join("link.key"), "").unwrap();
    let run = env.run(&[PLAYBOOK]).code(2);
    assert!(
        run.stderr.contains("shorter than 32 characters"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("restore it from a backup"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("remove it to"), "{}", run.stderr);
}

/// The manager's password message on the embedded default said the hire "will be asked to
/// choose their own password" (the LDIF directory cannot force it) and that the password "is
/// not stored by IT" while a copy sat in the outbox. It says what is true for the target.
#[test]
fn the_password_message_tells_the_truth_for_the_target() {
    let env = TestEnv::new();
    env.run(&[PLAYBOOK]).success();
    let message = std::fs::read_dir(env.state().join("outbox"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".password."))
        .unwrap();
    let text = crate::common::unqp(&std::fs::read_to_string(message).unwrap());
    assert!(!text.contains("choose their own password"), "{text}");
    assert!(!text.contains("not stored by IT"), "{text}");
    let outbox = env.state().join("outbox");
    assert!(
        text.contains(&format!("outbox folder {}", outbox.display())),
        "{text}"
    );
}
