//! Active Directory (`ONBOARD_LDAP_FLAVOR=active_directory`) against a real Samba AD DC:
//! enabled accounts with non-ASCII names, group membership, binds with the delivered
//! password, a second run that changes nothing, and AD's refusals explained.
//!
//! One test: provisioning a DC takes about 10 s and it owns fixed ports, so the scenarios
//! share one DC, each with its own hires.

use crate::common::{Run, TestEnv, delivered_password, repo};
use crate::samba::{ADMIN, BASE, SambaDc, USERS};

/// A checklist for the DC, in the test's folder.
fn checklist(env: &TestEnv, name: &str, must_change: bool) -> String {
    let path = env.path(&format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            r#"name: AD test
templates: {templates}
hire_fields:
  required: [given_name, family_name, manager_email, work_email, department]
vars:
  login: "{{{{ hire.custom.sam | default(value=(hire.given_name | login) ~ '.' ~ (hire.family_name | login)) }}}}"
steps:
  - id: account
    ldap_account:
      base: "{USERS}"
      rdn: cn
      object_classes: [top, person, organizationalPerson, user]
      attributes:
        cn: "{{{{ hire.given_name }}}} {{{{ hire.family_name }}}}"
        givenName: "{{{{ hire.given_name }}}}"
        sn: "{{{{ hire.family_name }}}}"
        displayName: "{{{{ hire.given_name }}}} {{{{ hire.family_name }}}}"
        sAMAccountName: "{{{{ vars.login }}}}"
        userPrincipalName: "{{{{ vars.login }}}}@onboard.test"
        mail: "{{{{ hire.work_email }}}}"
        department: "{{{{ hire.department }}}}"
        manager: "{{{{ hire.custom.manager_dn | default(value='') }}}}"
      password: {{deliver: manager, length: 16, must_change: {must_change}}}
  - id: groups
    ldap_groups: {{account: account, base: "{USERS}", groups: [Staff, Research]}}
"#,
            templates = repo().join("templates").display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn hire(
    env: &TestEnv,
    checklist: &str,
    id: &str,
    given: &str,
    family: &str,
    extra: &str,
) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let path = env.path(&format!("{id}.yaml"));
    std::fs::write(
        &path,
        format!(
            "checklist: {checklist}\nhire:\n  id: {id}\n  given_name: {}\n  family_name: {}\n  \
             manager_email: boss@onboard.test\n  work_email: {}@onboard.test\n  \
             department: {}\n{extra}",
            q(given),
            q(family),
            id.to_lowercase(),
            q("R&D <lab>")
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn onboard(env: &TestEnv, dc: &SambaDc, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let vars = dc.env();
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    env.run_with(args, &all)
}

fn user(dc: &SambaDc, login: &str) -> onboard::backend::directory::Entry {
    let mut found = dc.search(
        &format!("(sAMAccountName={login})"),
        &[
            "cn",
            "displayName",
            "givenName",
            "userPrincipalName",
            "department",
            "manager",
            "userAccountControl",
            "memberOf",
            "pwdLastSet",
            "uSNChanged",
        ],
    );
    assert_eq!(found.len(), 1, "one account {login}: {found:#?}");
    found.remove(0)
}

fn output(run: &Run) -> String {
    format!("{}\n{}", run.stdout, run.stderr)
}

#[test]
fn onboards_into_samba_ad() {
    let dc = SambaDc::start();
    let env = TestEnv::new();
    for group in ["Staff", "Research"] {
        dc.modify(&format!(
            "dn: CN={group},{USERS}\nobjectClass: group\nsAMAccountName: {group}\n"
        ));
    }
    let plain = checklist(&env, "ad", false);

    // Non-ASCII and DN-special names become enabled accounts in both groups.
    let hires = [
        (
            "A1",
            "Zoë",
            "Müller",
            "zoe.muller",
            format!("  custom:\n    manager_dn: \"{ADMIN}\"\n"),
        ),
        ("A2", "Seán", "O'Brien, Jr.", "sean.obrienjr", String::new()),
        ("A3", "李", "雷", "li.lei", String::new()),
    ];
    let mut usn = Vec::new();
    for (id, given, family, login, extra) in &hires {
        let path = hire(&env, &plain, id, given, family, extra);
        let run = onboard(&env, &dc, &[&path], &[]).success();
        assert!(run.stdout.contains("2 done now"), "{id}: {}", run.stdout);
        let entry = user(&dc, login);
        let cn = format!("{given} {family}");
        assert_eq!(entry.get("cn"), std::slice::from_ref(&cn), "{id}");
        assert_eq!(entry.get("displayName"), [cn], "{id}");
        assert_eq!(entry.get("givenName"), [given.to_string()], "{id}");
        assert_eq!(
            entry.get("userPrincipalName"),
            [format!("{login}@onboard.test")],
            "{id}"
        );
        assert_eq!(entry.get("department"), ["R&D <lab>"], "{id}");
        assert_eq!(entry.get("userAccountControl"), ["512"], "{id}: enabled");
        for group in ["Staff", "Research"] {
            assert!(
                entry
                    .get("memberOf")
                    .iter()
                    .any(|g| onboard::escape::dn_eq(g, &format!("CN={group},{USERS}"))),
                "{id} in {group}: {:?}",
                entry.get("memberOf")
            );
        }
        let password = delivered_password(&env, id);
        dc.bind(&entry.dn, &password)
            .unwrap_or_else(|e| panic!("{id} binds with the delivered password: {e}"));
        dc.bind(&entry.dn, "Not-the-password-1")
            .expect_err("a wrong password does not bind");
        usn.push((path, login, entry.get("uSNChanged").to_vec()));
    }
    assert_eq!(user(&dc, "zoe.muller").get("manager"), [ADMIN]);

    // A second run changes nothing: every account's update sequence number stays.
    for (path, login, before) in &usn {
        let run = onboard(&env, &dc, &[path], &[]).success();
        assert!(run.stdout.contains("0 done now"), "{}", run.stdout);
        assert_eq!(&user(&dc, login).get("uSNChanged"), before, "{login}");
    }

    // must_change: pwdLastSet 0, so the delivered password only serves to set a new one.
    let changing = checklist(&env, "ad-change", true);
    let path = hire(&env, &changing, "A4", "Ana", "Lima", "");
    onboard(&env, &dc, &[&path], &[]).success();
    let entry = user(&dc, "ana.lima");
    assert_eq!(entry.get("pwdLastSet"), ["0"]);
    assert_eq!(entry.get("userAccountControl"), ["512"]);
    let refused = dc
        .bind(&entry.dn, &delivered_password(&env, "A4"))
        .expect_err("must change the password first");
    assert!(refused.contains("data 773"), "{refused}");

    // A sAMAccountName someone else has: refused before anything is written.
    dc.modify(&format!(
        "dn: CN=Other Person,{USERS}\nobjectClass: user\nsAMAccountName: dup.user\n"
    ));
    let path = hire(
        &env,
        &plain,
        "A5",
        "Dup",
        "User",
        "  custom:\n    sam: dup.user\n",
    );
    let run = onboard(&env, &dc, &[&path], &[]).code(1);
    assert!(
        output(&run).contains(&format!(
            "dup.user is already used by CN=Other Person,{USERS}"
        )),
        "{}",
        output(&run)
    );
    assert!(dc.search("(cn=Dup User)", &["dn"]).is_empty());

    // Another hire with A2's name: the entry carries A2's id (employeeNumber), so it is
    // refused, and no password is set on it or mailed.
    let path = hire(&env, &plain, "A8", "Seán", "O'Brien, Jr.", "");
    let outbox = || {
        std::fs::read_dir(env.state().join("outbox"))
            .unwrap()
            .count()
    };
    let sent = outbox();
    let run = onboard(&env, &dc, &[&path], &[]).code(1);
    assert!(
        output(&run).contains("belongs to hire A2, not to A8"),
        "{}",
        output(&run)
    );
    assert_eq!(outbox(), sent, "no password mailed for A2's entry");
    let a2 = dc.search("(employeeNumber=A2)", &["pwdLastSet", "employeeNumber"]);
    assert_eq!(a2.len(), 1, "{a2:#?}");

    // A password policy the generated password cannot meet: AD's answer, explained. Once the
    // policy allows it, the next run finishes the account the failed run created.
    dc.modify(&format!(
        "dn: {BASE}\nchangetype: modify\nreplace: minPwdLength\nminPwdLength: 40\n"
    ));
    let path = hire(&env, &plain, "A6", "Weak", "Policy", "");
    let run = onboard(&env, &dc, &[&path], &[]).code(1);
    let text = output(&run);
    assert!(
        text.contains(
            "the password does not meet the directory's complexity/length policy (LDAP 19)"
        ),
        "{text}"
    );
    assert_eq!(
        user(&dc, "weak.policy").get("userAccountControl"),
        ["514"],
        "left disabled"
    );
    dc.modify(&format!(
        "dn: {BASE}\nchangetype: modify\nreplace: minPwdLength\nminPwdLength: 7\n"
    ));
    onboard(&env, &dc, &[&path], &[]).success();
    let entry = user(&dc, "weak.policy");
    assert_eq!(entry.get("userAccountControl"), ["512"]);
    dc.bind(&entry.dn, &delivered_password(&env, "A6")).unwrap();

    // Without encryption onboard refuses AD outright, though loopback is otherwise allowed.
    let path = hire(&env, &plain, "A7", "Plain", "Text", "");
    let run = onboard(
        &env,
        &dc,
        &[&path],
        &[
            ("ONBOARD_LDAP_URL", "ldap://127.0.0.1:389"),
            ("ONBOARD_LDAP_STARTTLS", "0"),
        ],
    );
    assert_ne!(run.code, 0);
    assert!(
        output(&run).contains("Active Directory is only used over an encrypted connection"),
        "{}",
        output(&run)
    );
    assert!(dc.search("(cn=Plain Text)", &["dn"]).is_empty());
}
