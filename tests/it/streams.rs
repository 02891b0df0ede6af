//! Output streams under hostile conditions: a closed stderr never panics or cuts a cohort
//! short, and control characters from hire data reach the terminal escaped.

use std::process::Stdio;

use crate::cohort::{checklist, write_csv};
use crate::common::{TestEnv, repo};

/// Runs onboard with stderr connected to a pipe whose reading end is already closed, as in
/// `onboard check … 2>&1 | head -1` once `head` has exited.
fn with_closed_stderr(env: &TestEnv, args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_onboard"));
    cmd.args(args)
        .current_dir(repo())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("ONBOARD_STATE_DIR", env.state())
        .env("ONBOARD_NOW", crate::common::NOW)
        .env("ONBOARD_TEMPLATES_ROOTS", repo().join("templates"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(writer));
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn a_closed_stderr_is_not_a_panic() {
    let env = TestEnv::new();
    // Diagnostics to a closed stderr: still exit 2, the code of bad input.
    let (code, _) =
        with_closed_stderr(&env, &["check", "tests/playbooks/invalid/five-errors.yaml"]);
    assert_eq!(code, 2);

    // A cohort on the embedded directory with nowhere to print progress: every hire is still
    // onboarded and the summary still reaches stdout.
    let playbook = checklist(&env);
    let csv = write_csv(&env, 6, &[]);
    let (code, stdout) = with_closed_stderr(&env, &[&playbook, "--hires", &csv, "--jobs", "3"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(": 6 hires, 6 ok"), "{stdout}");
}

#[test]
fn control_characters_from_a_csv_are_shown_escaped() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    // A cell that would set the window title, ring the bell and overwrite the line with a
    // fake success message if echoed raw.
    let cell = "Ann\u{1b}]0;pwned\u{7}\rall OK\u{9b}2J";
    let csv = env.path("evil.csv");
    std::fs::write(
        &csv,
        format!(
            "Employee ID,First Name,Last Name,Email,Manager Email,Department\n\
             E1,{cell},Lee,ann@example.org,mia@example.org,Research\n"
        ),
    )
    .unwrap();
    let run = env
        .run(&[&playbook, "--hires", csv.to_str().unwrap(), "--dry-run"])
        .code(2);
    for raw in ['\u{1b}', '\u{7}', '\r', '\u{9b}'] {
        assert!(!run.stderr.contains(raw), "raw {raw:?} in\n{}", run.stderr);
    }
    assert!(run.stderr.contains("evil.csv:2:"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(r"Ann\u{1b}]0;pwned\u{7}\u{d}all OK\u{9b}2J"),
        "{}",
        run.stderr
    );
}
