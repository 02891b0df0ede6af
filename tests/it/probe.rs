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
