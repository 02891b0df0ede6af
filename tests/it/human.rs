//! Sign-offs and hand-offs: later from another terminal, at the prompt through a real
//! pseudo-terminal, dual control, refusals, evidence, receipts.

use std::process::{Command, Stdio};

use crate::common::{TestEnv, repo};

const PLAYBOOK: &str = "playbooks/new-hire.yaml";

fn journal(env: &TestEnv) -> Vec<serde_json::Value> {
    let log = env.run(&["log", "E1042", "--json"]).success();
    log.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn signed(env: &TestEnv, step: &str) -> serde_json::Value {
    journal(env)
        .into_iter()
        .rfind(|r| r["type"] == "signed_off" && r["step"] == step)
        .unwrap_or_else(|| panic!("no signed_off record for {step}"))
}

#[test]
fn a_hand_off_needs_the_cleaning_sign_off_first() {
    let env = TestEnv::new().env("USER", "alice");
    let run = env.run(&[PLAYBOOK]).success();
    assert!(
        run.stdout
            .contains("laptop-cleaning: waiting on the technician: 4 items to confirm")
    );
    assert!(
        run.stdout
            .contains("laptop-handoff: waiting on the technician: waits for `laptop-cleaning`")
    );

    // The hire cannot acknowledge a laptop nobody has signed off as cleaned.
    let early = env
        .run(&[
            "sign-off",
            "E1042",
            "laptop-handoff",
            "--by",
            "Ada Lovelace",
            "--all",
        ])
        .code(2);
    assert!(early.stderr.contains("laptop-handoff cannot be signed yet (waiting on the technician: waits for `laptop-cleaning`)"), "{}", early.stderr);

    // Without --all it says what is asked.
    let ask = env.run(&["sign-off", "E1042", "laptop-cleaning"]).code(2);
    assert!(
        ask.stdout
            .contains("  1. Disk wiped and the standard image installed")
    );
    assert!(ask.stdout.contains("evidence: wipe_certificate_id"));

    // Dual control: alice ran the account, groups and welcome.
    let alice = env
        .run(&[
            "sign-off",
            "E1042",
            "laptop-cleaning",
            "--by",
            "alice",
            "--all",
            "--value",
            "wipe_certificate_id=WC-1",
        ])
        .code(2);
    assert!(
        alice
            .stderr
            .contains("dual control: alice ran the automated steps for this hire"),
        "{}",
        alice.stderr
    );
    let missing = env
        .run_as(
            "tom",
            &[
                "sign-off",
                "E1042",
                "laptop-cleaning",
                "--by",
                "Tom Tech",
                "--all",
            ],
        )
        .code(2);
    assert!(
        missing
            .stderr
            .contains("evidence missing: wipe_certificate_id")
    );

    let certificate = env.path("wipe-certificate.pdf");
    std::fs::write(&certificate, b"%PDF wipe certificate WC-2211").unwrap();
    let tom = env
        .run_as(
            "tom",
            &[
                "sign-off",
                "E1042",
                "laptop-cleaning",
                "--by",
                "Tom Tech",
                "--all",
                "--value",
                "wipe_certificate_id=WC-2211",
                "--evidence",
                certificate.to_str().unwrap(),
                "--note",
                "re-imaged with 2026.11",
            ],
        )
        .success();
    assert!(
        tom.stdout
            .contains("E1042 laptop-cleaning: signed off by Tom Tech (technician)")
    );
    let record = signed(&env, "laptop-cleaning");
    assert_eq!(record["by"], "Tom Tech");
    assert_eq!(record["role"], "technician");
    assert_eq!(record["confirmed"].as_array().unwrap().len(), 4);
    assert_eq!(record["evidence"]["wipe_certificate_id"], "WC-2211");
    assert_eq!(
        record["evidence"]["file:wipe-certificate.pdf"],
        sha256(b"%PDF wipe certificate WC-2211")
    );
    assert_eq!(record["asset"]["serial"], "5CG1234XYZ");
    assert_eq!(
        env.evidence_count("E1042"),
        1,
        "the evidence file is kept in the store"
    );

    // The next run continues: now the hand-off waits for the hire.
    let run = env.run(&[PLAYBOOK]).success();
    assert!(run.stdout.contains("laptop-handoff: waiting on the hire: acknowledge receipt of asset LT-0042 (serial 5CG1234XYZ)"), "{}", run.stdout);
    let status = env.run(&["status"]).success();
    assert!(
        status
            .stdout
            .contains("E1042  on track  starts Mon 2026-12-07 09:00 Europe/London"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("waiting on the hire: acknowledge receipt"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("(since "), "{}", status.stdout);

    env.run(&[
        "sign-off",
        "E1042",
        "laptop-handoff",
        "--by",
        "Ada Lovelace",
        "--all",
    ])
    .success();
    let run = env.run(&[PLAYBOOK]).success();
    assert!(
        run.stdout.contains("0 done now, 5 already done, 0 waiting"),
        "{}",
        run.stdout
    );
    // `received_by`, as PLAYBOOK.md documents it, for later steps and for status.
    let status = env.run(&["status", "--json"]).success();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        status[0]["steps"]["laptop-handoff"]["outputs"]["received_by"],
        "Ada Lovelace"
    );
    let receipt = env.receipt("E1042", "laptop-handoff", "txt");
    for line in [
        "Asset tag                  LT-0042",
        "Serial number              5CG1234XYZ",
        "Received by                Ada Lovelace",
        "Cleaned and signed off by  Tom Tech (step laptop-cleaning)",
    ] {
        assert!(receipt.contains(line), "{line}\n{receipt}");
    }
    let html = env.receipt("E1042", "laptop-handoff", "html");
    assert!(html.contains("<h1>Device hand-off receipt</h1>"));
    env.run(&["verify"]).success();
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_refused_item_fails_the_step_with_the_reason() {
    let env = TestEnv::new().env("USER", "alice");
    env.run(&[PLAYBOOK]).success();
    let refused = env
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
                "the dock is missing",
            ],
        )
        .code(1);
    assert!(refused.stdout.contains("refused: Tom Tech refused \"Charger and dock present and working\": the dock is missing"), "{}", refused.stdout);
    let run = env.run(&[PLAYBOOK]).success();
    assert!(
        run.stdout
            .contains("laptop-cleaning: waiting on the technician"),
        "asked again: {}",
        run.stdout
    );
    let record = signed(&env, "laptop-cleaning");
    assert_eq!(record["refused"]["reason"], "the dock is missing");
}

#[test]
fn a_hand_off_of_another_device_is_refused() {
    let env = TestEnv::new().env("USER", "alice");
    let checklist = env.path("swap.yaml");
    std::fs::write(
        &checklist,
        "hire: {id: E1042}\nsteps:\n  - id: cleaning\n    sign_off: {role: technician, items: [wiped], asset: {tag: LT-1, serial: AAA}}\n  \
         - id: handoff\n    device_handoff: {cleaning: cleaning, asset: {tag: LT-1, serial: BBB}}\n",
    )
    .unwrap();
    let path = checklist.to_str().unwrap();
    env.run(&[path]).success();
    env.run(&["sign-off", "E1042", "cleaning", "--by", "Tom Tech", "--all"])
        .success();
    let run = env.run(&[path]).code(1);
    assert!(
        run.stdout.contains("handoff: FAILED: the cleaning sign-off `cleaning` was for asset LT-1 (serial AAA), not asset LT-1 (serial BBB)"),
        "{}",
        run.stdout
    );
}

#[test]
fn named_signers_are_enforced() {
    let env = TestEnv::new();
    let checklist = env.path("named.yaml");
    std::fs::write(
        &checklist,
        "hire: {id: E1042}\nsteps:\n  - id: badge\n    sign_off: {role: facilities, items: [badge printed], signers: [Fay Facilities]}\n",
    )
    .unwrap();
    env.run(&[checklist.to_str().unwrap()]).success();
    let wrong = env
        .run(&[
            "sign-off",
            "E1042",
            "badge",
            "--by",
            "Someone Else",
            "--all",
        ])
        .code(2);
    assert!(
        wrong
            .stderr
            .contains("Someone Else may not sign this; the checklist names Fay Facilities"),
        "{}",
        wrong.stderr
    );
    env.run(&[
        "sign-off",
        "E1042",
        "badge",
        "--by",
        "Fay Facilities",
        "--all",
    ])
    .success();
}

/// Runs onboard inside a real pseudo-terminal (util-linux `script`), typing `answers`.
fn run_in_pty(env: &TestEnv, command: &str, answers: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .current_dir(repo())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("USER", "tom")
        .env("TERM", "xterm")
        .env("ONBOARD_STATE_DIR", env.state())
        .env("ONBOARD_NOW", crate::common::NOW)
        .envs(env.vars().iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs onboard in a pseudo-terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace('\r', ""),
    )
}

#[test]
fn the_run_asks_for_the_sign_off_at_a_terminal() {
    let env = TestEnv::new().env("USER", "alice");
    env.run(&[PLAYBOOK]).success();
    let bin = env!("CARGO_BIN_EXE_onboard");
    // Tom signs the cleaning at the prompt (4 items, the certificate id, a note) and says
    // the hire is not here yet for the hand-off.
    let (code, screen) = run_in_pty(
        &env,
        &format!("{bin} {PLAYBOOK} --as 'Tom Tech'"),
        "y\ny\ny\ny\ny\nWC-77\nchecked twice\nn\n",
    );
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains(
            "Clean and re-image the laptop (laptop-cleaning) needs the technician's sign-off."
        ),
        "{screen}"
    );
    assert!(screen.contains("Signing as Tom Tech."));
    assert!(
        screen.contains("[3/5] laptop-cleaning: done: signed off by Tom Tech (technician)"),
        "{screen}"
    );
    assert!(
        screen.contains("[4/5] laptop-handoff: waiting on the hire"),
        "{screen}"
    );
    let record = signed(&env, "laptop-cleaning");
    assert_eq!(record["evidence"]["wipe_certificate_id"], "WC-77");
    assert_eq!(record["note"], "checked twice");
    assert_eq!(record["actor"], "Tom Tech");

    // The hire acknowledges at the same terminal on the morning, refusing nothing.
    let (code, screen) = run_in_pty(
        &env,
        &format!("{bin} {PLAYBOOK} --as 'Ada Lovelace'"),
        "y\ny\ny\ny\n\n",
    );
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("[4/5] laptop-handoff: done: signed off by Ada Lovelace (hire); receipt "),
        "{screen}"
    );

    // --no-prompt (or no terminal) never asks.
    let (code, screen) = run_in_pty(&env, &format!("{bin} {PLAYBOOK} --no-prompt"), "");
    assert_eq!(code, 0);
    assert!(!screen.contains("Sign it now"));
}

#[test]
fn the_operator_cannot_sign_their_own_work_at_the_prompt() {
    let env = TestEnv::new();
    let bin = env!("CARGO_BIN_EXE_onboard");
    // Alice runs everything and tries to sign the cleaning herself.
    let (code, screen) = run_in_pty(
        &env,
        &format!("{bin} {PLAYBOOK} --as alice"),
        "y\ny\ny\ny\ny\nWC-1\n\nn\n",
    );
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("laptop-cleaning: waiting on the technician: the signature was not accepted: dual control: alice ran the automated steps"),
        "{screen}"
    );
    assert!(journal(&env).iter().all(|r| r["type"] != "signed_off"));
}
