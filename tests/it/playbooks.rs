//! Data-driven: every file in tests/playbooks/valid checks clean; every file in
//! tests/playbooks/invalid fails with exit 2 and exactly the messages in its `.stderr` file.
//! Set ONBOARD_BLESS=1 to rewrite the expected files after a deliberate change.

use std::path::Path;

use crate::common::{TestEnv, repo};

fn cases(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join(dir))
        .expect("case folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no cases in {dir}");
    names
}

#[test]
fn valid_playbooks_check_clean() {
    let env = TestEnv::new();
    for name in cases("tests/playbooks/valid") {
        let path = format!("tests/playbooks/valid/{name}");
        let run = env.run(&["check", &path]).success();
        assert!(
            run.stdout.starts_with(&format!("{path}: ok")),
            "{}",
            run.stdout
        );
        assert_eq!(run.stderr, "");
    }
}

#[test]
fn shipped_playbooks_check_clean() {
    let env = TestEnv::new();
    let run = env
        .run(&[
            "check",
            "playbooks/new-hire.yaml",
            "playbooks/contractor.yaml",
            "playbooks/hires/grace-hopper.yaml",
        ])
        .success();
    assert_eq!(
        run.stdout,
        "playbooks/new-hire.yaml: ok (5 steps, hire E1042)\n\
         playbooks/contractor.yaml: ok (4 steps, hire C0317)\n\
         playbooks/hires/grace-hopper.yaml: ok (5 steps, hire E1043)\n"
    );
}

#[test]
fn invalid_playbooks_fail_with_located_messages() {
    let env = TestEnv::new();
    let bless = std::env::var_os("ONBOARD_BLESS").is_some();
    let mut mismatches = Vec::new();
    for name in cases("tests/playbooks/invalid") {
        let path = format!("tests/playbooks/invalid/{name}");
        let run = env.run(&["check", &path]).code(2);
        assert_eq!(run.stdout, "", "{path}: nothing on stdout");
        assert!(!run.stderr.contains("panicked"), "{path}: {}", run.stderr);
        let expected_path = repo().join(Path::new(&path).with_extension("stderr"));
        if bless {
            std::fs::write(&expected_path, &run.stderr).expect("bless");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "{} is missing; run with ONBOARD_BLESS=1",
                expected_path.display()
            )
        });
        if run.stderr != expected {
            mismatches.push(format!(
                "--- {path}\nexpected:\n{expected}\nactual:\n{}",
                run.stderr
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn five_different_problems_are_reported_in_one_run() {
    let run = TestEnv::new()
        .run(&["check", "tests/playbooks/invalid/five-errors.yaml"])
        .code(2);
    let headlines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(
        headlines,
        [
            "error: missing required hire field `work_email`",
            "error: duplicate key `given_name`",
            "error: unknown key `titel` in `step`",
            "error: dependency cycle: account → cleaning → account",
            "error: template error: Field `nickname` is not defined. Available fields: username",
        ]
    );
    let locations: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("-->"))
        .collect();
    assert_eq!(locations.len(), 5, "each error is located: {locations:?}");
    assert!(
        run.stderr
            .ends_with("5 errors found; nothing was changed.\n")
    );
}
