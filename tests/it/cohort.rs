//! A cohort from HR's CSV against real slapd and SMTP, eight at a time: failures stay with their
//! hire, and a resume after fixing them touches nothing else.

use crate::common::{TestEnv, pairs, repo};
use crate::slapd::{SUFFIX, Slapd};
use crate::smtp_server::{Mode, SmtpServer};

pub fn checklist(env: &TestEnv) -> String {
    let path = env.path("cohort-checklist.yaml");
    std::fs::write(
        &path,
        format!(
            r#"name: Cohort test
templates: {templates}
hire_columns:
  Employee ID: id
  First Name: given_name
  Last Name: family_name
  Email: work_email
  Manager Email: manager_email
  Department: department
hire_fields:
  required: [given_name, family_name, work_email, manager_email, department]
vars:
  username: "{{{{ hire.given_name | login }}}}.{{{{ hire.family_name | login }}}}"
  company: Example Ltd
  help_desk_email: helpdesk@example.org
  help_desk_phone: "1234"
  help_desk_hours: always
  portal_url: https://help.example.org
steps:
  - id: account
    ldap_account:
      base: ou=people,{SUFFIX}
      object_classes: [inetOrgPerson, posixAccount]
      attributes:
        uid: "{{{{ vars.username }}}}"
        cn: "{{{{ hire.given_name }}}} {{{{ hire.family_name }}}}"
        sn: "{{{{ hire.family_name }}}}"
        mail: "{{{{ hire.work_email }}}}"
        homeDirectory: "/home/{{{{ vars.username }}}}"
      posix: {{uid_min: 30000, uid_max: 39999, gid_number: 30000}}
      password: {{deliver: manager, length: 16}}
  - id: groups
    ldap_groups:
      account: account
      base: ou=groups,{SUFFIX}
      groups: [staff, "{{{{ hire.department | lower }}}}"]
  - id: welcome
    needs: [groups]
    email:
      from: "IT <it@example.org>"
      to: "{{{{ hire.work_email }}}}"
      subject: "Welcome, {{{{ hire.given_name }}}}"
      html: welcome.html.tera
      text: welcome.txt.tera
"#,
            templates = repo().join("templates").display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

const GIVEN: &[&str] = &[
    "Zoë", "Seán", "Ana", "Björn", "Chloé", "Dmitri", "Élise", "Fatima", "Gökhan", "Håkon",
];

/// HR's export of `count` hires; the rows in `broken` name a department with no group.
pub fn write_csv(env: &TestEnv, count: usize, broken: &[usize]) -> String {
    let mut csv = String::from("Employee ID,First Name,Last Name,Email,Manager Email,Department\n");
    for i in 0..count {
        let department = if broken.contains(&i) {
            "Nowhere"
        } else if i % 2 == 0 {
            "Research"
        } else {
            "Engineering"
        };
        csv.push_str(&format!(
            "C{i:03},{},\"Müller-{i}, Jr.\",c{i}@example.org,mia@example.org,{department}\n",
            GIVEN[i % GIVEN.len()]
        ));
    }
    let path = env.path("hires.csv");
    std::fs::write(&path, csv).unwrap();
    path.display().to_string()
}

#[test]
fn a_cohort_of_fifty_with_two_failures_then_a_resume() {
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let servers = smtp.with_directory(&slapd);
    let vars = pairs(&servers);

    let csv = write_csv(&env, 50, &[7, 33]);
    let run = env.run_with(&[&playbook, "--hires", &csv, "--jobs", "8"], &vars);
    assert_eq!(
        run.code, 1,
        "two hires failed\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.starts_with("Cohort ") && run.stdout.contains(": 50 hires, 48 ok, 2 failed\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "  C007: FAILED: groups: group cn=nowhere,ou=groups,dc=example,dc=org does not exist"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("  C033: FAILED: groups:"));
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.contains(": complete (3 done now"))
            .count(),
        48
    );

    let people = slapd.search(
        &format!("ou=people,{SUFFIX}"),
        "(objectClass=posixAccount)",
        &["uidNumber"],
    );
    let mut numbers: Vec<&str> = people
        .lines()
        .filter_map(|l| l.strip_prefix("uidNumber: "))
        .collect();
    assert_eq!(
        numbers.len(),
        50,
        "every account exists (the two failed at their groups)"
    );
    numbers.sort();
    numbers.dedup();
    assert_eq!(
        numbers.len(),
        50,
        "uidNumbers are unique under eight concurrent workers"
    );
    let sent = smtp.messages().len();
    assert_eq!(
        sent,
        50 + 48,
        "a password message per account, a welcome per complete hire"
    );

    // HR fixes the two rows; the resume completes them and touches nothing else.
    let before = slapd.search(
        SUFFIX,
        "(!(|(cn=staff)(cn=research)(cn=engineering)))",
        &["*", "+"],
    );
    let csv = write_csv(&env, 50, &[]);
    let run = env.run_with(&[&playbook, "--hires", &csv, "--jobs", "8"], &vars);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("  C007: complete (2 done now, 1 already done)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("  C033: complete (2 done now, 1 already done)")
    );
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.contains(": complete (0 done now, 3 already done)"))
            .count(),
        48
    );
    assert_eq!(
        smtp.messages().len(),
        sent + 2,
        "two welcomes, nothing else"
    );
    let after = slapd.search(
        SUFFIX,
        "(!(|(cn=staff)(cn=research)(cn=engineering)))",
        &["*", "+"],
    );
    assert_eq!(before, after, "no entry but the fixed groups changed");
    env.run(&["verify"]).success();
}

#[test]
fn every_row_is_checked_before_anything_runs() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = env.path("bad.csv");
    std::fs::write(
        &csv,
        "Employee ID,First Name,Last Name,Email,Manager Email,Department,Shoe Size\n\
         C1,Ann,Lee,ann@example.org,mia@example.org,Research,42\n\
         C2,Bo,Wu,not-an-address,mia@example.org,Research,41\n\
         C1,Cy,Oh,cy@example.org,mia@example.org,Research,40\n",
    )
    .unwrap();
    let run = env
        .run(&[&playbook, "--hires", csv.to_str().unwrap()])
        .code(2);
    let located: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("-->"))
        .collect();
    assert!(
        run.stderr.contains("error: unknown column `Shoe Size`"),
        "{}",
        run.stderr
    );
    assert!(
        located.iter().any(|l| l.ends_with("bad.csv:1:65")),
        "{located:?}"
    );
    assert!(
        run.stderr
            .contains("error: hire field `work_email`: `not-an-address` is not an email address")
    );
    assert!(
        located.iter().any(|l| l.ends_with("bad.csv:3:10")),
        "{located:?}"
    );
    assert!(run.stderr.contains("error: hire `C1` appears twice"));
    assert!(
        run.stderr
            .ends_with("3 errors found; nothing was changed.\n"),
        "{}",
        run.stderr
    );
    assert!(!env.state().exists(), "nothing ran");
}

/// HR's export from Excel in much of Europe: `;` between cells and a byte order mark. Every
/// row used to be one cell ("no `First Name` here"). And one bad row stopped every other:
/// `--exclude` now leaves it out unchecked, and the others run.
#[test]
fn an_excel_export_with_semicolons_runs_and_a_bad_row_can_be_left_out() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = env.path("europe.csv");
    std::fs::write(
        &csv,
        "\u{feff}Employee ID;First Name;Last Name;Email;Manager Email;Department\r\n\
         C100;Zoë;\"Müller; Jr.\";c100@example.org;mia@example.org;Research\r\n\
         C101;Bad;Row;not-an-address;mia@example.org;Research\r\n\
         C102;Ana;Lima;c102@example.org;mia@example.org;Engineering\r\n",
    )
    .unwrap();
    let csv = csv.to_str().unwrap();
    let bad = env.run(&[&playbook, "--hires", csv]).code(2);
    assert!(bad.stderr.contains("europe.csv:3:"), "{}", bad.stderr);
    assert!(bad.stderr.contains("1 error found"), "{}", bad.stderr);
    let run = env
        .run(&[&playbook, "--hires", csv, "--exclude", "C101"])
        .success();
    assert!(run.stdout.contains(": 2 hires, 2 ok"), "{}", run.stdout);
    env.run(&[&playbook, "--hires", csv, "--exclude", "C999"])
        .code(2);
}
