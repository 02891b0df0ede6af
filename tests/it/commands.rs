//! The commands as people use them: plan, dry run, previews, schema, help.

use crate::common::TestEnv;

#[test]
fn plan_prints_the_rendered_steps_in_dependency_order() {
    let run = TestEnv::new()
        .run(&["plan", "playbooks/new-hire.yaml"])
        .success();
    let titles: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(
        titles,
        [
            "1. Create the directory account [account]: ldap_account",
            "2. Grant access [groups, needs account]: ldap_groups",
            "3. Clean and re-image the laptop [laptop-cleaning]: sign_off",
            "4. Hand the laptop to the new hire [laptop-handoff, needs account, laptop-cleaning]: device_handoff",
            "5. Send the welcome email [welcome, needs account, groups]: email",
        ]
    );
    assert!(
        run.stdout
            .contains("     dn: uid=ada.lovelace,ou=people,dc=example,dc=org\n")
    );
    assert!(
        run.stdout
            .contains("     group: cn=engineering,ou=groups,dc=example,dc=org\n")
    );
    assert!(
        run.stdout
            .contains("     subject: Welcome to Example Ltd, Ada: your IT essentials\n")
    );
    assert!(!run.stdout.contains("{{"), "nothing unrendered in the plan");
    assert_eq!(run.stderr, "This is a plan: nothing was changed.\n");
}

#[test]
fn plan_json_is_valid_and_versioned() {
    let run = TestEnv::new()
        .run(&["plan", "playbooks/new-hire.yaml", "--json"])
        .success();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("valid JSON");
    assert_eq!(plan["format"], "onboard.plan/1");
    assert_eq!(plan["hire"], "E1042");
    let steps = plan["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[0]["params"]["kind"], "ldap_account");
    assert_eq!(
        steps[0]["params"]["dn"],
        "uid=ada.lovelace,ou=people,dc=example,dc=org"
    );
    assert_eq!(steps[4]["params"]["policies"]["version"], "2026.1");
    assert_eq!(
        steps[4]["known_after_run"],
        serde_json::json!(["message_id"])
    );
    for step in steps {
        assert_eq!(step["checksum"].as_str().expect("checksum").len(), 64);
    }
}

#[test]
fn dry_run_is_the_plan() {
    let env = TestEnv::new();
    let plan = env
        .run(&["plan", "playbooks/new-hire.yaml", "--json"])
        .success();
    let dry = env
        .run(&["playbooks/new-hire.yaml", "--dry-run", "--json"])
        .success();
    assert_eq!(plan.stdout, dry.stdout);
}

#[test]
fn previews_show_hr_the_rendered_emails() {
    let env = TestEnv::new();
    let dir = env.path("previews");
    let run = env
        .run(&[
            "plan",
            "playbooks/new-hire.yaml",
            "--preview",
            dir.to_str().unwrap(),
        ])
        .success();
    assert!(run.stderr.contains("Email previews written to"));
    let text = std::fs::read_to_string(dir.join("welcome.txt")).unwrap();
    let eml = std::fs::read_to_string(dir.join("welcome.eml")).unwrap();
    assert!(eml.contains("Subject: Welcome to Example Ltd, Ada: your IT essentials"));
    assert!(eml.contains("Content-Type: multipart/alternative"));
    let html = std::fs::read_to_string(dir.join("welcome.html")).unwrap();
    for body in [&text, &html] {
        assert!(body.contains("ada.lovelace"), "account name");
        assert!(body.contains("helpdesk@example.org"), "help desk");
        assert!(body.contains("https://help.example.org"), "portal");
        assert!(body.contains("2026.1"), "policy version");
        assert!(
            !body.contains("{{") && !body.contains("{%"),
            "fully rendered"
        );
    }
    assert!(
        html.contains("<h1>IT policies, in plain words</h1>"),
        "policies rendered as HTML"
    );
    assert!(
        text.contains("# IT policies, in plain words"),
        "policies as text"
    );
}

#[test]
fn hire_data_is_data() {
    let run = TestEnv::new()
        .run(&["plan", "tests/playbooks/valid/hostile-hire.yaml", "--json"])
        .success();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let account = &plan["steps"][0]["params"];
    assert_eq!(
        account["dn"], "cn={{ 7*7 }} O'Brien\\, Seán,ou=people,dc=example,dc=org",
        "template syntax in a name stays literal, DN specials are escaped"
    );
    assert_eq!(
        account["attributes"][3]["values"][0],
        "<script>alert(1)</script>"
    );
    assert_eq!(
        plan["steps"][1]["params"]["groups"],
        serde_json::json!([
            "cn=a*)(uid\\=*,ou=groups,dc=example,dc=org",
            "cn=\\#{% raw %}Zoë\\+Ann\\ ,ou=groups,dc=example,dc=org"
        ])
    );
}

#[test]
fn a_hire_file_reuses_a_checklist_and_hire_flag_replaces_the_hire() {
    let env = TestEnv::new();
    let run = env
        .run(&["plan", "playbooks/hires/grace-hopper.yaml", "--json"])
        .success();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["playbook"], "Standard employee");
    assert_eq!(plan["hire"], "E1043");
    let run = env
        .run(&[
            "plan",
            "playbooks/new-hire.yaml",
            "--hire",
            "playbooks/hires/grace-hopper.yaml",
            "--json",
        ])
        .code(2);
    assert!(
        run.stderr.contains("a --hire file cannot have `checklist`"),
        "{}",
        run.stderr
    );

    let hire = env.path("hire.yaml");
    std::fs::write(
        &hire,
        "hire:\n  id: E2001\n  given_name: Zoë\n  family_name: Ng\n  work_email: zoe.ng@example.org\n  \
         manager: Ada Lovelace\n  manager_email: ada@example.org\n  department: Sales\n  title: Rep\n  \
         start_date: 2027-01-04\n  time_zone: Asia/Singapore\n  custom:\n    laptop_asset_tag: LT-9\n    \
         laptop_serial: SN9\n",
    )
    .unwrap();
    let run = env
        .run(&[
            "plan",
            "playbooks/new-hire.yaml",
            "--hire",
            hire.to_str().unwrap(),
            "--json",
        ])
        .success();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["hire"], "E2001");
    assert_eq!(
        plan["steps"][0]["params"]["dn"],
        "uid=zoe.ng,ou=people,dc=example,dc=org"
    );
}

#[test]
fn schema_is_json_schema_with_every_step_kind() {
    let run = TestEnv::new().run(&["schema"]).success();
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(schema["title"], "onboard playbook");
    let step = &schema["$defs"]["step"];
    assert_eq!(step["oneOf"].as_array().unwrap().len(), 8);
    for kind in [
        "ldap_account",
        "ldap_groups",
        "device_handoff",
        "sign_off",
        "email",
        "acknowledge",
        "scim_user",
        "scim_groups",
    ] {
        assert!(step["properties"][kind].is_object(), "{kind}");
    }
    assert_eq!(step["additionalProperties"], false);
}

#[test]
fn help_completions_and_man_page() {
    let env = TestEnv::new();
    let help = env.run(&["--help"]).success();
    for word in [
        "check",
        "plan",
        "schema",
        "completions",
        "man",
        "--dry-run",
        "Exit codes",
    ] {
        assert!(help.stdout.contains(word), "help mentions {word}");
    }
    let bash = env.run(&["completions", "bash"]).success();
    assert!(bash.stdout.contains("_onboard"));
    let man = env.run(&["man"]).success();
    assert!(man.stdout.contains(".TH onboard"));
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new();
    let run = env.run(&[]).code(2);
    assert!(run.stderr.contains("no playbook given"));
    env.run(&["plan"]).code(2);
    env.run(&["--no-such-flag"]).code(2);
    let run = env.run(&["check", "no/such/file.yaml"]).code(2);
    assert!(
        run.stderr.contains("cannot read playbook"),
        "{}",
        run.stderr
    );
}

#[test]
fn no_color_means_no_escape_codes() {
    let run = TestEnv::new()
        .env("NO_COLOR", "1")
        .run(&["check", "tests/playbooks/invalid/five-errors.yaml"])
        .code(2);
    assert!(!run.stderr.contains('\x1b'));
}
