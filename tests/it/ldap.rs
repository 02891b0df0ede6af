//! `ldap_account` and `ldap_groups` against a real slapd: hostile names, binds with the
//! delivered password, TLS, refusals, an honest dry run.

use std::process::Command;

use crate::common::{Run, TestEnv, delivered_password, repo};
use crate::slapd::{SUFFIX, Slapd};

/// A checklist using the LDAP server, in the test's folder.
fn checklist(env: &TestEnv) -> String {
    let path = env.path("ldap-checklist.yaml");
    std::fs::write(
        &path,
        format!(
            r#"name: LDAP test
templates: {templates}
hire_fields:
  required: [given_name, family_name, manager_email]
vars:
  login: "{{{{ hire.given_name | login }}}}.{{{{ hire.family_name | login }}}}"
steps:
  - id: account
    ldap_account:
      base: ou=people,{SUFFIX}
      rdn: cn
      object_classes: [inetOrgPerson, posixAccount]
      attributes:
        cn: "{{{{ hire.given_name }}}} {{{{ hire.family_name }}}}"
        sn: "{{{{ hire.family_name }}}}"
        givenName: "{{{{ hire.given_name }}}}"
        uid: "{{{{ hire.custom.uid | default(value=vars.login) }}}}"
        homeDirectory: "/home/{{{{ vars.login }}}}"
        title: "{{{{ hire.title | default(value='Staff') }}}}"
      posix: {{uid_min: 20000, uid_max: 20999, gid_number: 20000}}
      password: {{deliver: manager, length: 16}}
  - id: groups
    ldap_groups: {{account: account, base: "ou=groups,{SUFFIX}", groups: [staff, contractors]}}
"#,
            templates = repo().join("templates").display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// A hire file for `checklist`, with JSON-quoted strings (valid YAML) so any name survives.
fn hire(env: &TestEnv, id: &str, given: &str, family: &str, extra: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let path = env.path(&format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!(
            "checklist: {}\nhire:\n  id: {id}\n  given_name: {}\n  family_name: {}\n  manager_email: boss@example.org\n{extra}",
            checklist(env),
            q(given),
            q(family)
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn onboard(env: &TestEnv, slapd: &Slapd, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let vars = slapd.env();
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    env.run_with(args, &all)
}

const HOSTILE: &[(&str, &str, &str, &str)] = &[
    ("E1", "Seán", "O'Brien, Jr.", ""),
    ("E2", "Zoë+Ann", "Smith", ""),
    ("E3", "雷", "李", ""),
    (
        "E4",
        "Filter",
        "Test",
        "  custom:\n    uid: \"a*)(uid=*\"\n",
    ),
    ("E5", "#hash", "Tag", ""),
    ("E6", " lead", "trail ", ""),
];

fn people(slapd: &Slapd) -> Vec<onboard::backend::directory::Entry> {
    let text = slapd.search(
        &format!("ou=people,{SUFFIX}"),
        "(objectClass=inetOrgPerson)",
        &["*", "+"],
    );
    onboard::backend::directory::ldif::parse(&text).unwrap()
}

#[test]
fn hostile_names_become_working_accounts_in_slapd() {
    let slapd = Slapd::start();
    let env = TestEnv::new();
    for (id, given, family, extra) in HOSTILE {
        let path = hire(&env, id, given, family, extra);
        let run = onboard(&env, &slapd, &[&path], &[]);
        assert_eq!(run.code, 0, "{id}: {}\n{}", run.stdout, run.stderr);
    }
    let entries = people(&slapd);
    assert_eq!(entries.len(), HOSTILE.len());
    let groups_text = slapd.search(
        &format!("ou=groups,{SUFFIX}"),
        "(|(cn=staff)(cn=contractors))",
        &["member", "memberUid"],
    );
    let groups = onboard::backend::directory::ldif::parse(&groups_text).unwrap();
    let staff = groups
        .iter()
        .find(|g| g.dn.starts_with("cn=staff"))
        .unwrap();
    let contractors = groups
        .iter()
        .find(|g| g.dn.starts_with("cn=contractors"))
        .unwrap();
    let mut uid_numbers = Vec::new();
    for (id, given, family, _) in HOSTILE {
        let cn = format!("{given} {family}");
        let entry = entries
            .iter()
            .find(|e| e.get("cn").contains(&cn))
            .unwrap_or_else(|| panic!("{id}: no entry with cn {cn:?} in {entries:#?}"));
        assert_eq!(entry.get("sn"), [family.to_string()], "{id}");
        let uid = entry.get("uid")[0].clone();
        if *id == "E4" {
            assert_eq!(uid, "a*)(uid=*", "filter characters stored as data");
        }
        uid_numbers.push(entry.get("uidNumber")[0].clone());
        assert!(
            staff
                .get("member")
                .iter()
                .any(|m| onboard::escape::dn_eq(m, &entry.dn)),
            "{id}: {} in staff",
            entry.dn
        );
        assert!(
            contractors.get("memberUid").contains(&uid),
            "{id}: memberUid"
        );
        let password = delivered_password(&env, id);
        assert!(
            slapd.can_bind(&entry.dn, &password),
            "{id}: {} binds with the delivered password",
            entry.dn
        );
        assert!(!slapd.can_bind(&entry.dn, "wrong-password"));
    }
    uid_numbers.sort();
    uid_numbers.dedup();
    assert_eq!(uid_numbers.len(), HOSTILE.len(), "uidNumbers are unique");

    // A second run changes nothing, to the last operational attribute.
    let before = slapd.search(SUFFIX, "(objectClass=*)", &["*", "+"]);
    for (id, given, family, extra) in HOSTILE {
        let path = hire(&env, id, given, family, extra);
        let run = onboard(&env, &slapd, &[&path], &[]);
        assert_eq!(run.code, 0, "{id}: {}", run.stderr);
        assert!(
            run.stdout.contains(": 0 done now, 2 already done"),
            "{id}: {}",
            run.stdout
        );
    }
    assert_eq!(slapd.search(SUFFIX, "(objectClass=*)", &["*", "+"]), before);
}

#[test]
fn starttls_and_ldaps_work_against_the_test_ca() {
    let slapd = Slapd::start();
    let env = TestEnv::new();
    let ca = slapd.ca_file().display().to_string();
    let ldaps = slapd.ldaps_url();
    let e1 = hire(&env, "E1", "Ada", "Lovelace", "");
    let run = onboard(
        &env,
        &slapd,
        &[&e1],
        &[("ONBOARD_LDAP_URL", &ldaps), ("ONBOARD_LDAP_CA_FILE", &ca)],
    );
    assert_eq!(run.code, 0, "LDAPS: {}\n{}", run.stdout, run.stderr);
    let e2 = hire(&env, "E2", "Grace", "Hopper", "");
    let run = onboard(
        &env,
        &slapd,
        &[&e2],
        &[
            ("ONBOARD_LDAP_STARTTLS", "1"),
            ("ONBOARD_LDAP_CA_FILE", &ca),
        ],
    );
    assert_eq!(run.code, 0, "StartTLS: {}\n{}", run.stdout, run.stderr);
    assert_eq!(people(&slapd).len(), 2);

    // Without the CA, the server's certificate is not trusted: a clear error, nothing done.
    let e3 = hire(&env, "E3", "Alan", "Turing", "");
    let run = onboard(&env, &slapd, &[&e3], &[("ONBOARD_LDAP_URL", &ldaps)]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(&format!(
            "error: directory {ldaps}: cannot connect to {ldaps}"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("ONBOARD_LDAP_CA_FILE"),
        "{}",
        run.stderr
    );
    assert_eq!(people(&slapd).len(), 2);
}

#[test]
fn a_clear_text_password_to_another_host_is_refused() {
    let env = TestEnv::new();
    let e1 = hire(&env, "E1", "Ada", "Lovelace", "");
    // 192.0.2.0/24 is reserved for documentation: the refusal comes before any connection.
    let run = env.run_with(
        &[&e1],
        &[
            ("ONBOARD_LDAP_URL", "ldap://192.0.2.10:389"),
            ("ONBOARD_LDAP_STARTTLS", "0"),
            ("ONBOARD_LDAP_BIND_DN", "cn=admin,dc=example,dc=org"),
            ("ONBOARD_LDAP_PASSWORD", "x"),
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("not sending the bind password to 192.0.2.10 in clear text"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("\"x\""));
}

#[test]
fn bad_credentials_and_existing_entries_are_explained() {
    let slapd = Slapd::start();
    let env = TestEnv::new();
    let e1 = hire(&env, "E1", "Ada", "Lovelace", "");
    let run = onboard(&env, &slapd, &[&e1], &[("ONBOARD_LDAP_PASSWORD", "wrong")]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("bad credentials (LDAP 49)"),
        "{}",
        run.stderr
    );

    // Someone else's entry at the same DN: an error, not a silent success.
    slapd.modify(&format!(
        "dn: cn=Grace Hopper,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\ncn: Grace Hopper\nsn: Hopper\n"
    ));
    let e2 = hire(&env, "E2", "Grace", "Hopper", "");
    let run = onboard(&env, &slapd, &[&e2], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("account: FAILED: cn=Grace Hopper,ou=people,dc=example,dc=org already exists and was not created by onboard for hire E2"),
        "{}",
        run.stdout
    );
    // A login already used elsewhere in the directory is caught before anything is written.
    slapd.modify(&format!(
        "dn: uid=alan.turing,ou=contractors,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: alan.turing\ncn: Alan\nsn: Turing\n"
    ));
    let e3 = hire(&env, "E3", "Alan", "Turing", "");
    let run = onboard(&env, &slapd, &[&e3], &[]);
    assert!(
        run.stdout
            .contains("the login alan.turing is already used by uid=alan.turing,ou=contractors"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_dry_run_against_slapd_is_honest_and_writes_nothing() {
    let slapd = Slapd::start();
    let env = TestEnv::new();
    let e1 = hire(&env, "E1", "Ada", "Lovelace", "");
    assert_eq!(onboard(&env, &slapd, &[&e1], &[]).code, 0);
    // Someone changes Ada's title by hand: drift.
    slapd.modify(&format!(
        "dn: cn=Ada Lovelace,ou=people,{SUFFIX}\nchangetype: modify\nreplace: title\ntitle: Countess\n"
    ));
    let e2 = hire(&env, "E2", "Grace", "Hopper", "");
    let before = slapd.search(SUFFIX, "(objectClass=*)", &["*", "+"]);

    let plan = onboard(&env, &slapd, &["plan", &e2, "--json"], &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan["steps"][0]["now"]["state"], "would_do");
    assert_eq!(
        plan["steps"][0]["now"]["changes"][0],
        format!("create entry cn=Grace Hopper,ou=people,{SUFFIX}")
    );
    assert_eq!(plan["steps"][1]["now"]["state"], "would_do");
    assert_eq!(
        plan["steps"][1]["now"]["changes"][0],
        format!("add cn=Grace Hopper,ou=people,{SUFFIX} to cn=staff,ou=groups,{SUFFIX}")
    );

    let plan = onboard(&env, &slapd, &["plan", &e1], &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stdout.contains(
            "   now:  already done (drift: title is [\"Countess\"], the playbook says \"Staff\")"
        ),
        "{}",
        plan.stdout
    );
    assert_eq!(
        slapd.search(SUFFIX, "(objectClass=*)", &["*", "+"]),
        before,
        "nothing written"
    );

    // A normal run reports the drift and leaves it; --reconcile corrects it, password untouched.
    let run = onboard(&env, &slapd, &[&e1], &[]);
    assert!(
        run.stderr
            .contains("account: already done (drift: title is"),
        "{}",
        run.stderr
    );
    let run = onboard(&env, &slapd, &[&e1, "--reconcile"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("[1/2] account: done: updated title"),
        "{}",
        run.stderr
    );
    let ada = slapd.search(SUFFIX, "(cn=Ada Lovelace)", &["title"]);
    assert!(ada.contains("title: Staff"), "{ada}");
    let password = delivered_password(&env, "E1");
    assert!(slapd.can_bind(&format!("cn=Ada Lovelace,ou=people,{SUFFIX}"), &password));
}

#[test]
fn runs_at_the_same_time_get_different_uid_numbers() {
    let slapd = Slapd::start();
    let env = TestEnv::new();
    let vars = slapd.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let names = [
        ("C1", "Ann"),
        ("C2", "Ben"),
        ("C3", "Cai"),
        ("C4", "Dee"),
        ("C5", "Eve"),
        ("C6", "Fay"),
    ];
    let paths: Vec<String> = names
        .iter()
        .map(|(id, given)| hire(&env, id, given, "Parallel", ""))
        .collect();
    let children: Vec<_> = paths.iter().map(|p| env.spawn(&[p], &vars)).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut numbers: Vec<String> = people(&slapd)
        .iter()
        .map(|e| e.get("uidNumber")[0].clone())
        .collect();
    assert_eq!(numbers.len(), names.len());
    numbers.sort();
    numbers.dedup();
    assert_eq!(
        numbers.len(),
        names.len(),
        "no two accounts share a uidNumber: {numbers:?}"
    );
}

#[test]
fn the_embedded_directory_loads_into_slapd() {
    let env = TestEnv::new();
    env.run(&["playbooks/new-hire.yaml"]).success();
    // slapadd the file onboard wrote into a fresh database, as an admin migrating would.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("db")).unwrap();
    std::fs::write(
        dir.path().join("slapd.conf"),
        format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\ndatabase mdb\nsuffix \"{SUFFIX}\"\n\
             directory {}/db\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new("slapadd")
        .args(["-f", "slapd.conf", "-l"])
        .arg(env.state().join("directory.ldif"))
        .current_dir(dir.path())
        .output()
        .expect("slapadd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("slapcat")
        .args(["-f", "slapd.conf", "-a", "(uid=ada.lovelace)"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dn: uid=ada.lovelace,ou=people,dc=example,dc=org"),
        "{text}"
    );
    assert!(
        text.contains("userPassword:: "),
        "the password hash survives"
    );
}
