//! IT policies people acknowledge, against a real SMTP server: an `acknowledge` step that holds
//! the VPN group until it is given, a campaign for a new version that reaches everyone behind
//! exactly once (re-run, kill and resume), reminders, `policies status` with reasons, tampering
//! found, and a changed text under a published version refused.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::cohort::write_csv;
use crate::common::TestEnv;
use crate::smtp_server::{Mode, SmtpServer};

const HIRES: usize = 30;
const V1: &str = "# IT policies\n\nVersion 2026.1.\n\n## Your account\n- Never share your password.\n- Lock your screen.\n\n## Fax\nDo not fax customer data.\n";
const V2: &str = "# IT policies\n\nVersion 2026.2.\n\n## Your account\n- Never share your password.\n- Use multi-factor authentication everywhere.\n- Lock your screen.\n\n## AI tools\nOnly approved AI tools may see company data.\n";
const STEP2: &str = "ack-it-policies-2026-2";

/// A checklist with an account, the policies to accept, and VPN access that needs them.
fn checklist(env: &TestEnv) -> String {
    let templates = env.path("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("it-policies.md"), V1).unwrap();
    let path = env.path("policies-checklist.yaml");
    std::fs::write(
        &path,
        format!(
            r#"name: Policies test
templates: {templates}
hire_columns:
  Employee ID: id
  First Name: given_name
  Last Name: family_name
  Email: work_email
  Manager Email: manager_email
  Department: department
hire_fields:
  required: [given_name, family_name, work_email, manager_email]
vars:
  username: "{{{{ hire.given_name | login }}}}.{{{{ hire.family_name | login }}}}"
steps:
  - id: account
    ldap_account:
      base: ou=people,dc=example,dc=org
      object_classes: [inetOrgPerson]
      attributes:
        uid: "{{{{ vars.username }}}}"
        cn: "{{{{ hire.given_name }}}} {{{{ hire.family_name }}}}"
        sn: "{{{{ hire.family_name }}}}"
        mail: "{{{{ hire.work_email }}}}"
      password: {{deliver: manager, length: 16}}
  - id: policies
    acknowledge:
      policies:
        file: it-policies.md
        version: "2026.1"
      items:
        - I will never share my password or multi-factor codes
        - I will report a lost or stolen device at once
      notify:
        to: "{{{{ hire.work_email }}}}"
        from: "IT <it@example.org>"
  - id: vpn
    needs: [policies]
    ldap_groups:
      account: account
      base: ou=groups,dc=example,dc=org
      groups: [vpn-users]
"#,
            templates = templates.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn hire(i: usize) -> String {
    format!("C{i:03}")
}

/// Campaign messages for `version` received, per recipient (reminders apart).
fn campaign_messages(smtp: &SmtpServer, version: &str) -> BTreeMap<String, usize> {
    let subject = format!("Please read and accept the IT policies, version {version}");
    let mut count = BTreeMap::new();
    for m in smtp.messages() {
        if m["headers"]["Subject"].as_str() == Some(subject.as_str()) {
            let to = m["headers"]["To"].as_str().unwrap_or_default().to_owned();
            *count.entry(to).or_default() += 1;
        }
    }
    count
}

fn count_subject(smtp: &SmtpServer, prefix: &str) -> usize {
    smtp.messages()
        .iter()
        .filter(|m| {
            m["headers"]["Subject"]
                .as_str()
                .is_some_and(|s| s.starts_with(prefix))
        })
        .count()
}

/// The step's last journaled link Message-ID (an interrupted campaign send's).
fn pending_message_id(env: &TestEnv, hire: &str, step: &str) -> String {
    env.journal(hire)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "link_sending" && r["step"] == step)
        .filter_map(|r| r["message_id"].as_str().map(str::to_owned))
        .next_back()
        .expect("an interrupted send has a journaled Message-ID")
}

/// Runs the campaign until it reports no problem. An uncertain send is decided as an operator
/// would: found in the mailbox, it is marked sent; not found, it is sent again.
fn finish_campaign(env: &TestEnv, smtp: &SmtpServer, args: &[&str], vars: &[(&str, &str)]) {
    for _ in 0..4 {
        let run = env.run_with(args, vars);
        if run.code == 0 {
            return;
        }
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        let received: Vec<String> = smtp
            .messages()
            .iter()
            .filter_map(|m| m["headers"]["Message-ID"].as_str().map(str::to_owned))
            .collect();
        let mut resend = false;
        for line in run.stdout.lines().filter(|l| l.contains("UNCERTAIN")) {
            let hire = line.split_whitespace().next().unwrap();
            let id = pending_message_id(env, hire, STEP2);
            if received.contains(&id) {
                env.run(&["mark-sent", hire, STEP2, "--note", "found in the mailbox"])
                    .success();
            } else {
                resend = true;
            }
        }
        if resend {
            env.run_with(&[args, &["--resend-uncertain"]].concat(), vars);
        }
    }
    panic!("the campaign did not complete");
}

#[test]
fn a_policy_campaign_reaches_everyone_behind_once_and_status_says_who_is_behind() {
    let smtp = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = write_csv(&env, HIRES, &[]);
    let url = smtp.url();
    let vars = [("ONBOARD_SMTP_URL", url.as_str())];
    let cohort = [playbook.as_str(), "--hires", &csv, "--jobs", "4"];

    // 30 onboarded: accounts made, the policies waiting, VPN held back.
    let run = env.run_with(&cohort, &vars).success();
    assert!(run.stdout.contains("30 hires"), "{}", run.stdout);
    for i in 0..HIRES {
        let journal = env.journal(&hire(i));
        assert!(journal.contains(r#""type":"step_waiting","step":"policies""#));
        assert!(!journal.contains(r#""type":"step_done","step":"vpn""#));
    }
    assert_eq!(
        count_subject(
            &smtp,
            "Please read and accept it-policies.md version 2026.1"
        ),
        HIRES
    );

    // 10 accept 2026.1 (two in person, before a witness); only they get the VPN group.
    for i in 0..10 {
        let mut args = vec![
            "sign-off",
            &*Box::leak(hire(i).into_boxed_str()),
            "policies",
        ];
        args.extend(["--by", "The Hire", "--all"]);
        if i < 2 {
            args.extend(["--witness", "Tom Tech"]);
        }
        let signed = env.run(&args).success();
        assert!(
            signed
                .stdout
                .contains("The Hire accepted it-policies.md version 2026.1 (sha256 "),
            "{}",
            signed.stdout
        );
    }
    env.run_with(&cohort, &vars).success();
    for i in 0..HIRES {
        let journal = env.journal(&hire(i));
        assert_eq!(
            journal.contains(r#""type":"step_done","step":"vpn""#),
            i < 10,
            "{}: VPN only after the policies are accepted",
            hire(i)
        );
    }
    let ldif = std::fs::read_to_string(env.state().join("directory.ldif")).unwrap_or_default();
    if !ldif.is_empty() {
        let vpn = ldif
            .split("\n\n")
            .find(|e| e.starts_with("dn: cn=vpn-users,"))
            .unwrap();
        assert_eq!(vpn.matches("\nmember: uid=").count(), 10, "{vpn}");
    }
    let status = env.run(&["policies", "status"]).success();
    assert!(
        status
            .stdout
            .contains("it-policies.md version 2026.1 (published 2026-11-23, sha256 "),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains(": 10 current, 20 behind"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("(in person, witnessed by Tom Tech)"));

    // A campaign for 2026.2, slowed after each send and killed mid-way, then resumed.
    let v2 = env.path("v2/it-policies.md");
    std::fs::create_dir_all(v2.parent().unwrap()).unwrap();
    std::fs::write(&v2, V2).unwrap();
    let v2 = v2.display().to_string();
    let campaign = [
        "policies",
        "campaign",
        "--policy",
        &v2,
        "--version",
        "2026.2",
        "--from",
        "IT Service Desk <it@example.org>",
    ];
    let slow = format!("slow:sent:{STEP2}");
    let mut child = env.spawn(&campaign, &[vars[0], ("ONBOARD_FAILPOINT", slow.as_str())]);
    let start = Instant::now();
    while campaign_messages(&smtp, "2026.2").values().sum::<usize>() < 10 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the campaign did not send"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let sent = campaign_messages(&smtp, "2026.2").values().sum::<usize>();
    assert!(sent < HIRES, "killed mid-campaign: {sent} sent");
    finish_campaign(&env, &smtp, &campaign, &vars);
    let once = campaign_messages(&smtp, "2026.2");
    assert_eq!(once.len(), HIRES, "{once:?}");
    assert!(once.values().all(|&n| n == 1), "one each: {once:?}");
    // What changed, and how to accept, are in the message.
    let message = smtp
        .messages()
        .into_iter()
        .find(|m| {
            m["headers"]["To"] == "c20@example.org"
                && m["headers"]["Subject"]
                    .as_str()
                    .is_some_and(|s| s.contains("2026.2"))
        })
        .unwrap();
    let text = message.to_string();
    for expected in [
        "What changed since version 2026.1:",
        "Changed: Your account (1 line added)",
        "New section: AI tools",
        "Removed section: Fax",
        "/sign/C020/ack-it-policies-2026-2?token=",
        "Our records say: you never accepted.",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }

    // A re-run sends nothing.
    let again = env.run_with(&campaign, &vars).success();
    assert!(
        again
            .stdout
            .contains("30 behind: 0 messages sent, 0 reminders sent, 30 reached before"),
        "{}",
        again.stdout
    );
    assert_eq!(campaign_messages(&smtp, "2026.2"), once);

    // 12 accept 2026.2: six who had accepted 2026.1, six who never had.
    for i in (4..10).chain(10..16) {
        env.run(&["sign-off", &hire(i), STEP2, "--by", "The Hire", "--all"])
            .success();
    }
    let json = env.run(&["policies", "status", "--json"]).success();
    let status: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let p = &status["policies"][0];
    assert_eq!(p["file"], "it-policies.md");
    assert_eq!(p["version"], "2026.2");
    assert_eq!(p["current"], 12);
    assert_eq!(p["behind"], 18);
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for person in p["people"].as_array().unwrap() {
        if person["standing"] == "behind" {
            reasons
                .entry(person["reason"].as_str().unwrap().to_owned())
                .or_default()
                .push(person["hire"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(person["accepted"]["policy"]["version"], "2026.2");
            assert_eq!(person["accepted"]["how"], "terminal");
        }
    }
    let older = "accepted version 2026.1 on 2026-11-23; 2026.2 is current";
    assert_eq!(reasons[older], (0..4).map(hire).collect::<Vec<_>>());
    assert_eq!(
        reasons["never accepted"],
        (16..30).map(hire).collect::<Vec<_>>()
    );
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    let csv_out = env
        .run(&["policies", "status", "--format", "csv"])
        .success();
    assert_eq!(csv_out.stdout.lines().count(), 1 + HIRES);
    let html = env.path("acknowledgements.html");
    env.run(&[
        "policies",
        "status",
        "--format",
        "html",
        "-o",
        &html.display().to_string(),
    ])
    .success();
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<strong class=\"bad\">18</strong> behind"),
        "{page}"
    );

    // Onboarding stays complete while a campaign waits on the person; the request is listed.
    let report = env.run(&["report", "C000", "--format", "json"]).success();
    let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    let c000 = &report["hires"][0];
    assert_eq!(c000["state"], "complete", "{c000}");
    assert!(c000.to_string().contains(STEP2));

    // Eight days later: one reminder to each of the 18; a re-run sends none.
    let later = [vars[0], ("ONBOARD_NOW", "2026-12-01T10:00:00Z")];
    let reminded = env.run_with(&campaign, &later).success();
    assert!(
        reminded.stdout.contains("18 reminders sent"),
        "{}",
        reminded.stdout
    );
    assert_eq!(count_subject(&smtp, "Reminder: Please read and accept"), 18);
    env.run_with(&campaign, &later).success();
    assert_eq!(count_subject(&smtp, "Reminder: Please read and accept"), 18);

    // The evidence pack carries the acceptance with the text's hash.
    let pack = env.path("evidence-C004.json");
    env.run(&[
        "report",
        "C004",
        "--evidence",
        "-o",
        &pack.display().to_string(),
    ])
    .success();
    let pack: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&pack).unwrap()).unwrap();
    let accepted: Vec<&serde_json::Value> = pack["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "acceptance")
        .collect();
    assert_eq!(accepted.len(), 2, "2026.1 and 2026.2");
    assert_eq!(
        accepted[1]["policy"]["sha256"],
        crate::report::sha(V2.as_bytes())
    );

    // An acceptance record changed behind onboard's back is found.
    let journal = env.journal(&hire(4));
    let tampered = journal.replace(
        r#""by":"The Hire","confirmed":["I have read it-policies.md version 2026.2"#,
        r#""by":"Someone Else","confirmed":["I have read it-policies.md version 2026.2"#,
    );
    assert_ne!(tampered, journal);
    env.tamper(&hire(4), &tampered);
    let verify = env.run(&["verify", &hire(4)]).code(1);
    assert!(
        verify.stdout.contains("its hash does not match")
            || verify.stderr.contains("its hash does not match"),
        "{}\n{}",
        verify.stdout,
        verify.stderr
    );
    let flagged = env.run(&["policies", "status"]).code(1);
    assert!(
        flagged.stderr.contains("journal does not verify"),
        "{}",
        flagged.stderr
    );

    // A changed text under a published version is refused, with what to do.
    std::fs::write(
        env.path("v2/it-policies.md"),
        format!("{V2}\nOne more rule.\n"),
    )
    .unwrap();
    let refused = env.run_with(&campaign, &vars).code(2);
    assert!(
        refused.stderr.contains(
            "it-policies.md version 2026.2 was published on 2026-11-23 with different text"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("give the changed text a new version (e.g. 2026.3)"),
        "{}",
        refused.stderr
    );
    std::fs::write(
        env.path("templates/it-policies.md"),
        format!("{V1}\nOne more rule.\n"),
    )
    .unwrap();
    let run = env.run_with(&[&playbook, "--hires", &csv, "--only", "C020"], &vars);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("policies-checklist.yaml:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("version 2026.1 was published on 2026-11-23 with different text"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("(e.g. 2026.3)"),
        "2026.2 is taken: {}",
        run.stderr
    );
    assert_eq!(
        campaign_messages(&smtp, "2026.2"),
        once,
        "nothing more was sent"
    );
}

#[test]
fn the_hire_reads_and_accepts_the_policies_on_the_page_the_link_opens() {
    let smtp = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let csv = write_csv(&env, 1, &[]);
    let port = crate::slapd::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let url = smtp.url();
    let vars = [
        ("ONBOARD_SMTP_URL", url.as_str()),
        ("ONBOARD_SERVE_BASE_URL", base.as_str()),
    ];
    let cohort = [playbook.as_str(), "--hires", &csv];
    env.run_with(&cohort, &vars).success();
    let link = crate::serve::emailed_link(
        &smtp,
        "c0@example.org",
        "Please read and accept it-policies.md version 2026.1",
    );
    let server = crate::serve::serve(&env, &vars, port);
    let b = crate::browser::Browser::start();
    b.go(&link);
    let page = b.text();
    for expected in [
        "Read and accept it-policies.md, version 2026.1",
        "Never share your password.",
        "Do not fax customer data.",
        &crate::report::sha(V1.as_bytes()),
        "I will report a lost or stolen device at once",
    ] {
        assert!(
            page.contains(expected),
            "{expected}: {page}\n{}",
            server.log()
        );
    }
    b.click("#item-1");
    b.click("#item-2");
    b.fill("#name", "Zoë Müller-0");
    b.screenshot("policies-accept");
    b.submit("#sign");
    assert!(b.text().contains("Thank you, Zoë Müller-0"), "{}", b.text());

    let accepted = env
        .journal("C000")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["type"] == "signed_off")
        .expect("the acceptance is journaled");
    assert_eq!(accepted["how"], "link");
    assert_eq!(accepted["by"], "Zoë Müller-0");
    assert_eq!(accepted["policy"]["version"], "2026.1");
    assert_eq!(
        accepted["policy"]["sha256"],
        crate::report::sha(V1.as_bytes())
    );
    assert!(
        accepted["actor"]
            .as_str()
            .unwrap()
            .contains("c0@example.org")
    );
    // The VPN group follows on the next run.
    let run = env.run_with(&cohort, &vars).success();
    assert!(run.stdout.contains("1 ok"), "{}", run.stdout);
    assert!(
        env.journal("C000")
            .contains(r#""type":"step_done","step":"vpn""#)
    );
}

/// A person who accepted the text through a campaign is not asked again by their checklist:
/// the acknowledgement step finds the acceptance, and the access it holds follows. Someone whose
/// checklist already asks for that text gets no campaign message.
#[test]
fn a_campaign_and_a_checklist_never_ask_for_the_same_text_twice() {
    let env = TestEnv::new();
    let playbook = checklist(&env);
    // C000 was onboarded before the checklist asked for the policies; C001 with it.
    let full = std::fs::read_to_string(&playbook).unwrap();
    let early = env.path("early-checklist.yaml");
    std::fs::write(&early, &full[..full.find("  - id: policies").unwrap()]).unwrap();
    let early = early.display().to_string();
    let csv = write_csv(&env, 2, &[]);
    env.run(&[&early, "--hires", &csv, "--only", "C000"])
        .success();
    env.run(&[&playbook, "--hires", &csv, "--only", "C001"])
        .success();

    let text = env.path("templates/it-policies.md").display().to_string();
    let from = "IT <it@example.org>";
    let campaign = [
        "policies",
        "campaign",
        "--policy",
        &text,
        "--version",
        "2026.1",
        "--from",
        from,
    ];
    let sent = env.run(&campaign).success();
    assert!(
        sent.stdout
            .contains("C000  never accepted: sent to c0@example.org"),
        "{}",
        sent.stdout
    );
    assert!(
        sent.stdout.contains(
            "C001  never accepted: not sent: their checklist's step policies asks them already"
        ),
        "{}",
        sent.stdout
    );
    env.run(&[
        "sign-off",
        "C000",
        "ack-it-policies-2026-1",
        "--by",
        "Zoë",
        "--all",
    ])
    .success();

    // C000's checklist now asks for the policies: the campaign's acceptance is theirs.
    let run = env.run(&[&playbook, "--hires", &csv]).success();
    assert!(run.stdout.contains("2 ok"), "{}", run.stdout);
    let journal = env.journal("C000");
    assert!(
        journal.contains(r#""type":"step_done","step":"policies""#),
        "{journal}"
    );
    assert!(
        journal.contains("accepted in ack-it-policies-2026-1"),
        "{journal}"
    );
    assert!(
        journal.contains(r#""type":"step_done","step":"vpn""#),
        "{journal}"
    );
    let status = env.run(&["status", "C000"]).success();
    assert!(status.stdout.contains("C000  ready"), "{}", status.stdout);
    assert!(
        !status.stdout.contains("since"),
        "done is not waiting: {}",
        status.stdout
    );
    assert!(
        !env.journal("C001")
            .contains(r#""step":"ack-it-policies-2026-1""#)
    );
}
