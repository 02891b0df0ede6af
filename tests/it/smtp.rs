//! The welcome email through a real SMTP server: content, exactly once, uncertain sends,
//! STARTTLS with AUTH, and the clear-text refusal.

use sha2::{Digest, Sha256};

use crate::common::{Run, TestEnv, repo};
use crate::smtp_server::{Mode, PASSWORD, SmtpServer, USER};

const PLAYBOOK: &str = "playbooks/new-hire.yaml";

fn run(env: &TestEnv, server: &SmtpServer, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let url = server.url();
    let mut vars = vec![("ONBOARD_SMTP_URL", url.as_str())];
    vars.extend_from_slice(extra);
    env.run_with(args, &vars)
}

fn welcome(server: &SmtpServer) -> Vec<serde_json::Value> {
    server
        .messages()
        .into_iter()
        .filter(|m| {
            m["headers"]["Subject"]
                .as_str()
                .unwrap()
                .starts_with("Welcome")
        })
        .collect()
}

fn part<'a>(message: &'a serde_json::Value, content_type: &str) -> &'a str {
    message["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part"))["content"]
        .as_str()
        .unwrap()
}

/// The journal's evidence for the welcome step.
fn welcome_evidence(env: &TestEnv) -> serde_json::Value {
    let log = env.run(&["log", "E1042", "--json"]).success();
    log.stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|r| r["type"] == "step_done" && r["step"] == "welcome")
        .expect("welcome is done")
}

#[test]
fn the_welcome_reaches_a_real_server_exactly_once() {
    let server = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    run(&env, &server, &[PLAYBOOK], &[]).success();

    let messages = server.messages();
    assert_eq!(
        messages.len(),
        2,
        "the password to the manager, and the welcome"
    );
    let password = messages
        .iter()
        .find(|m| m["headers"]["Subject"] == "Initial password for Ada Lovelace")
        .unwrap();
    assert_eq!(
        password["rcpt_tos"],
        serde_json::json!(["charles.babbage@example.org"]),
        "never to the hire"
    );

    let w = &welcome(&server)[0];
    assert_eq!(
        w["rcpt_tos"],
        serde_json::json!(["ada.lovelace@example.org", "charles.babbage@example.org"])
    );
    assert_eq!(w["headers"]["To"], "ada.lovelace@example.org");
    assert_eq!(w["headers"]["Cc"], "charles.babbage@example.org");
    assert_eq!(w["headers"]["Reply-To"], "helpdesk@example.org");
    assert_eq!(w["headers"]["From"], "IT Service Desk <it@example.org>");
    assert_eq!(w["content_type"], "multipart/mixed");
    let text = part(w, "text/plain");
    let html = part(w, "text/html");
    for body in [text, html] {
        assert!(body.contains("ada.lovelace"), "the account name");
        assert!(body.contains("helpdesk@example.org") && body.contains("https://help.example.org"));
        assert!(
            !body.contains("{{") && !body.contains("{%"),
            "nothing unrendered"
        );
    }
    assert!(
        html.contains("<h1>IT policies, in plain words</h1>"),
        "policies in the HTML part"
    );

    // The policy recorded in the journal is the text that was sent.
    let attachment = &w["attachments"][0];
    assert_eq!(attachment["filename"], "it-policies.md");
    // Text travels with CRLF line ends; the policy text is the same with LF.
    let sent = attachment["content"]
        .as_str()
        .unwrap()
        .replace("\r\n", "\n");
    assert_eq!(
        sent,
        std::fs::read_to_string(repo().join("templates/it-policies.md")).unwrap()
    );
    let record = welcome_evidence(&env);
    let digest: String = Sha256::digest(sent.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(record["evidence"]["policy_sha256"], digest);
    assert_eq!(record["evidence"]["policy_version"], "2026.1");
    assert_eq!(record["outputs"]["message_id"], w["headers"]["Message-ID"]);

    let again = run(&env, &server, &[PLAYBOOK], &[]).success();
    assert!(again.stdout.contains(" 0 done now, 3 already done"));
    assert_eq!(server.messages().len(), 2, "a second run sends nothing");
}

#[test]
fn hostile_names_are_escaped_in_the_welcome() {
    let server = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    let hire = env.path("hire.yaml");
    std::fs::write(
        &hire,
        format!(
            "checklist: {}\nhire:\n  id: E1042\n  given_name: \"<script>alert(1)</script>\"\n  family_name: \"{{{{ 7*7 }}}}\"\n  \
             work_email: x@example.org\n  manager: M\n  manager_email: m@example.org\n  department: Research\n  \
             location: \"R&D <lab>\"\n  \
             title: T\n  start_date: 2027-01-04\n  time_zone: UTC\n  custom:\n    laptop_asset_tag: L1\n    laptop_serial: S1\n",
            repo().join(PLAYBOOK).display()
        ),
    )
    .unwrap();
    run(&env, &server, &[hire.to_str().unwrap()], &[]).success();
    let w = &welcome(&server)[0];
    let html = part(w, "text/html");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "no markup from hire data");
    assert!(html.contains("R&amp;D &lt;lab&gt;"), "{html}");
    let text = part(w, "text/plain");
    assert!(
        text.contains("Hello <script>alert(1)</script>,"),
        "the text part shows the name as written"
    );
    assert_eq!(
        w["headers"]["Subject"],
        "Welcome to Example Ltd, <script>alert(1)</script>: your IT essentials"
    );
    assert!(
        !text.contains("49"),
        "{{{{ 7*7 }}}} in a name is never evaluated"
    );
}

#[test]
fn an_interrupted_send_is_uncertain_until_the_operator_decides() {
    let server = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    let crashed = run(
        &env,
        &server,
        &[PLAYBOOK],
        &[("ONBOARD_FAILPOINT", "after:step_started:welcome")],
    );
    assert_ne!(crashed.code, 0);
    assert_eq!(welcome(&server).len(), 0);

    for _ in 0..2 {
        let resumed = run(&env, &server, &[PLAYBOOK], &[]).code(1);
        assert!(
            resumed
                .stdout
                .contains("welcome: UNCERTAIN: a run was interrupted while sending <"),
            "{}",
            resumed.stdout
        );
        assert!(
            resumed.stderr.contains("--resend-uncertain"),
            "{}",
            resumed.stderr
        );
        assert_eq!(welcome(&server).len(), 0, "nothing is sent silently");
    }
    let status = env.run(&["status", "--json"]).code(1);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status[0]["steps"]["welcome"]["status"], "uncertain");
    assert_eq!(
        status[0]["readiness"], "at_risk",
        "an uncertain send needs someone to act"
    );

    run(&env, &server, &[PLAYBOOK, "--resend-uncertain"], &[]).success();
    let sent = welcome(&server);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        welcome_evidence(&env)["outputs"]["message_id"],
        sent[0]["headers"]["Message-ID"],
        "the journaled Message-ID"
    );
    run(&env, &server, &[PLAYBOOK, "--resend-uncertain"], &[]).success();
    assert_eq!(welcome(&server).len(), 1, "a done send is never repeated");
}

#[test]
fn the_operator_can_mark_an_uncertain_send_as_sent() {
    let server = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    run(
        &env,
        &server,
        &[PLAYBOOK],
        &[("ONBOARD_FAILPOINT", "after:step_started:welcome")],
    );
    let marked = env
        .run(&[
            "mark-sent",
            "E1042",
            "welcome",
            "--as",
            "alice",
            "--note",
            "seen in Ada's mailbox",
        ])
        .success();
    assert!(
        marked
            .stdout
            .starts_with("E1042 welcome: marked as sent (<")
    );
    let done = run(&env, &server, &[PLAYBOOK], &[]).success();
    assert!(
        done.stderr.contains("[5/5] welcome: already done"),
        "{}",
        done.stderr
    );
    assert_eq!(welcome(&server).len(), 0);
    let record = welcome_evidence(&env);
    assert_eq!(record["actor"], "alice");
    assert_eq!(record["evidence"]["note"], "seen in Ada's mailbox");
    env.run(&["mark-sent", "E1042", "welcome"]).code(1);
}

#[test]
fn starttls_with_auth_works_against_the_test_server() {
    let server = SmtpServer::start(Mode::StartTlsAuth);
    let env = TestEnv::new();
    let ca = server.ca_file().display().to_string();
    let tls = [
        ("ONBOARD_SMTP_STARTTLS", "1"),
        ("ONBOARD_SMTP_CA_FILE", ca.as_str()),
        ("ONBOARD_SMTP_USER", USER),
    ];
    let mut wrong = tls.to_vec();
    wrong.push(("ONBOARD_SMTP_PASSWORD", "wrong"));
    wrong.push(("ONBOARD_SMTP_TIMEOUT", "2"));
    let failed = run(&env, &server, &[PLAYBOOK], &wrong).code(1);
    assert!(
        failed
            .stderr
            .contains("error: mail server smtp://127.0.0.1:"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("ONBOARD_SMTP_USER"),
        "{}",
        failed.stderr
    );
    assert!(
        !failed.stderr.contains("wrong"),
        "the password is never printed"
    );

    let mut right = tls.to_vec();
    right.push(("ONBOARD_SMTP_PASSWORD", PASSWORD));
    let ok = run(&env, &server, &[PLAYBOOK], &right);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    for m in &messages {
        assert_eq!(m["auth_user"], USER);
        assert_eq!(m["tls"], true);
    }
    for (what, text) in [("stdout", &ok.stdout), ("stderr", &ok.stderr)] {
        assert!(!text.contains(PASSWORD), "SMTP password in {what}");
    }
}

#[test]
fn smtps_with_auth_works_against_the_test_server() {
    let server = SmtpServer::start(Mode::ImplicitTlsAuth);
    let env = TestEnv::new();
    let url = format!("smtps://127.0.0.1:{}", server.port);
    let ca = server.ca_file().display().to_string();
    let ok = env.run_with(
        &[PLAYBOOK],
        &[
            ("ONBOARD_SMTP_URL", url.as_str()),
            ("ONBOARD_SMTP_CA_FILE", ca.as_str()),
            ("ONBOARD_SMTP_USER", USER),
            ("ONBOARD_SMTP_PASSWORD", PASSWORD),
        ],
    );
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m["auth_user"] == USER));
}

#[test]
fn a_clear_text_smtp_password_to_another_host_is_refused() {
    let env = TestEnv::new();
    let run = env.run_with(
        &[PLAYBOOK],
        &[
            ("ONBOARD_SMTP_URL", "smtp://192.0.2.25:25"),
            ("ONBOARD_SMTP_STARTTLS", "0"),
            ("ONBOARD_SMTP_USER", "onboard"),
            ("ONBOARD_SMTP_PASSWORD", "x"),
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("not sending the SMTP password to 192.0.2.25 in clear text"),
        "{}",
        run.stderr
    );
}
