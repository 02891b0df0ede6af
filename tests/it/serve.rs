//! `onboard serve` in a real headless Chromium, with slapd as the sign-in directory and the
//! SMTP server for the runs: every page a person uses, and every refusal.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::browser::Browser;
use crate::common::{TestEnv, pairs};
use crate::slapd::{Slapd, free_port};
use crate::smtp_server::{Mode, SmtpServer};

const PEOPLE: &str = "ou=people,dc=example,dc=org";

/// Staff who sign in: IT (alice), HR (harriet), an auditor (audrey).
fn add_staff(slapd: &Slapd) {
    let mut ldif = String::new();
    for (uid, cn, group) in [
        ("alice", "Alice Admin", "it-staff"),
        ("harriet", "Harriet Hr", "hr"),
        ("audrey", "Audrey Auditor", "auditors"),
    ] {
        ldif.push_str(&format!(
            "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: x\n\
             userPassword: {uid}-password\n\n\
             dn: cn={group},ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\n\
             member: uid={uid},{PEOPLE}\n\n"
        ));
    }
    slapd.modify(&ldif);
}

pub struct Server {
    child: Child,
    /// What the server wrote to stderr, read as it comes (a full pipe would stall it).
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

pub fn serve(env: &TestEnv, vars: &[(&str, &str)], port: u16) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let mut child = env.spawn(&["serve", "--listen", &listen], vars);
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "onboard serve did not start: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, log }
}

fn link(env: &TestEnv, vars: &[(&str, &str)], hire: &str, step: &str, to: &str) -> String {
    let run = env
        .run_with(&["link", hire, step, "--to", to], vars)
        .success();
    assert!(
        run.stdout.starts_with("http://127.0.0.1:"),
        "{}",
        run.stdout
    );
    run.stdout.trim().to_owned()
}

fn sign_in(b: &Browser, base: &str, login: &str, password: &str) {
    b.forget_cookies();
    b.go(&format!("{base}/signin"));
    b.fill("#login", login);
    b.fill("#password", password);
    b.submit("#signin");
}

/// A POST as a forger would send it: the right fields, no CSRF token.
fn post_without_csrf(url: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let body = "--x\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nMallory\r\n\
                --x\r\nContent-Disposition: form-data; name=\"item\"\r\n\r\n1\r\n--x--\r\n";
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=x\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply[9..12].parse().unwrap()
}

fn second_hire(env: &TestEnv) -> std::path::PathBuf {
    let path = env.path("e2000.yaml");
    let text =
        std::fs::read_to_string(crate::common::repo().join("playbooks/hires/grace-hopper.yaml"))
            .unwrap()
            .replace(
                "checklist: ../new-hire.yaml",
                &format!(
                    "checklist: {}",
                    crate::common::repo()
                        .join("playbooks/new-hire.yaml")
                        .display()
                ),
            )
            .replace("E1043", "E2000");
    std::fs::write(&path, text).unwrap();
    path
}

/// The standard checklist with `notify` on the cleaning (the bench's mailbox) and the hand-off
/// (the hire).
fn checklist_with_notify(env: &TestEnv) -> String {
    let repo = crate::common::repo();
    let text = std::fs::read_to_string(repo.join("playbooks/new-hire.yaml"))
        .unwrap()
        .replacen(
            "      not_operator: true\n",
            "      not_operator: true\n      notify:\n        to: tom@example.org\n        \
             from: \"IT Service Desk <it@example.org>\"\n",
            1,
        )
        .replacen(
            "      cleaning: laptop-cleaning\n",
            "      cleaning: laptop-cleaning\n      notify:\n        to: \"{{ hire.work_email }}\"\n        \
             from: \"IT Service Desk <it@example.org>\"\n",
            1,
        );
    assert_eq!(text.matches("notify:").count(), 2);
    let path = env.path("new-hire-notify.yaml");
    std::fs::write(
        &path,
        format!("templates: {}\n{text}", repo.join("templates").display()),
    )
    .unwrap();
    path.display().to_string()
}

/// The link in the one message sent to `to` whose subject starts with `subject`.
pub fn emailed_link(smtp: &SmtpServer, to: &str, subject: &str) -> String {
    let mails: Vec<serde_json::Value> = smtp
        .messages()
        .into_iter()
        .filter(|m| {
            m["rcpt_tos"] == serde_json::json!([to])
                && m["headers"]["Subject"]
                    .as_str()
                    .unwrap()
                    .starts_with(subject)
        })
        .collect();
    assert_eq!(mails.len(), 1, "one link email to {to}");
    let text = mails[0]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == "text/plain")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    text.lines()
        .find(|l| l.starts_with("http://"))
        .unwrap_or_else(|| panic!("no link in {text}"))
        .trim()
        .to_owned()
}

#[test]
fn people_without_a_terminal_do_their_part_in_a_browser() {
    let slapd = Slapd::start();
    add_staff(&slapd);
    let smtp = SmtpServer::start(Mode::Plain);
    let vars = smtp.with_directory(&slapd);
    let vars = pairs(&vars);
    let env = TestEnv::new();
    // Links point where the pages are: the base URL, for the runs and `onboard link` as for
    // the server.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let vars = [
        vars.as_slice(),
        &[("ONBOARD_SERVE_BASE_URL", base.as_str())],
    ]
    .concat();
    let checklist = checklist_with_notify(&env);
    let first = env.run_with(&[&checklist], &vars).success();
    assert!(
        first.stdout.contains("link emailed to tom@example.org"),
        "{}",
        first.stdout
    );
    let e2000 = second_hire(&env);
    env.run_with(&[e2000.to_str().unwrap()], &vars).success();
    let server = serve(&env, &vars, port);
    let b = Browser::start();

    // No session: the sign-in page.
    b.go(&format!("{base}/board"));
    assert!(b.url().contains("/signin?next=/board"), "{}", b.url());
    b.screenshot("serve-signin");
    // A wrong password: a generic error (the attempt is counted in the log, checked below).
    sign_in(&b, &base, "alice", "not-her-password");
    let text = b.text();
    assert!(
        text.contains("The account or password is not right"),
        "{text}"
    );
    assert!(!text.contains("not-her-password"));

    // IT signs in and sees the board.
    sign_in(&b, &base, "alice", "alice-password");
    assert!(
        b.url().ends_with("/board"),
        "{}: {}\n{}",
        b.url(),
        b.text(),
        server.log()
    );
    let board = b.text();
    assert!(
        board.contains("E1042") && board.contains("E2000"),
        "{board}"
    );
    assert!(board.contains("technician"), "{board}");
    b.screenshot("serve-board");
    b.go(&format!("{base}/hire/E1042"));
    assert!(b.text().contains("Journal verified"), "{}", b.text());
    b.screenshot("serve-hire");

    // A run again sends no second link email.
    env.run_with(&[&checklist], &vars).success();
    // The bench technician opens the emailed link, ticks the items, uploads the certificate.
    let tech = emailed_link(
        &smtp,
        "tom@example.org",
        "Please confirm laptop-cleaning of LT-0042",
    );
    b.forget_cookies();
    b.go(&tech);
    for n in 1..=4 {
        b.click(&format!("#item-{n}"));
    }
    b.fill("#value-1", "WC-2211");
    let cert = env.path("wipe-certificate.pdf");
    std::fs::write(&cert, b"%PDF-1.7 wipe certificate for LT-0042").unwrap();
    b.upload("#file", &cert);
    b.fill("#name", "Tom Tech");
    b.screenshot("serve-sign-off");
    b.submit("#sign");
    let done = b.text();
    assert!(done.contains("Thank you, Tom Tech"), "{done}");
    // The link is used: opening it again says so, and whom to contact.
    b.go(&tech);
    let used = b.text();
    assert!(
        used.contains("Already signed") && used.contains("your IT service desk"),
        "{used}"
    );

    // The run resumes; the hand-off now waits for the hire, who acknowledges from the link
    // emailed to them (once, however many runs).
    env.run_with(&[&checklist], &vars).success();
    env.run_with(&[&checklist], &vars).success();
    let hire_link = emailed_link(
        &smtp,
        "ada.lovelace@example.org",
        "Please confirm you received your laptop",
    );
    b.go(&hire_link);
    let welcome = b.text();
    assert!(
        welcome.contains("Welcome") && welcome.contains("How to get help"),
        "{welcome}"
    );
    b.click("#item-1");
    b.click("#item-2");
    b.click("#item-3");
    b.fill("#name", "Ada Lovelace");
    b.screenshot("serve-welcome");
    b.submit("#sign");
    assert!(b.text().contains("Thank you, Ada Lovelace"), "{}", b.text());
    let resumed = env.run_with(&[&checklist], &vars).success();
    assert!(resumed.stdout.contains("0 waiting"), "{}", resumed.stdout);

    refusals(&env, &vars, &b, &base, &hire_link);
    hr_and_audit(&env, &b, &base);

    let log = server.log();
    assert!(
        log.contains("sign-in failed for account \"alice\" from 127.0.0.1 (1 of 5"),
        "{log}"
    );
    for secret in ["alice-password", "not-her-password", "token="] {
        assert!(!log.contains(secret), "{secret} in the log: {log}");
    }
    journal_record_by_record(&env);
}

/// Each refusal the pages make, in the browser or as a forger would send it.
fn refusals(env: &TestEnv, vars: &[(&str, &str)], b: &Browser, base: &str, used_link: &str) {
    // Dual control through the page: the operator who ran the automated steps (the test's
    // OS user) may not sign the cleaning, whatever link they hold.
    let tech = link(env, vars, "E2000", "laptop-cleaning", "tester@example.org");
    b.forget_cookies();
    b.go(&tech);
    for n in 1..=4 {
        b.click(&format!("#item-{n}"));
    }
    b.fill("#value-1", "WC-1");
    b.fill("#name", "tester");
    b.submit("#sign");
    let refused = b.text();
    assert!(
        refused.contains("Not signed: dual control: tester ran the automated steps"),
        "{refused}"
    );
    b.screenshot("serve-dual-control");
    // A form without its CSRF token.
    assert_eq!(post_without_csrf(&tech), 403);
    // A link for hire E1042 used on hire E2000: refused, and journaled on E2000.
    let moved = used_link.replace("/sign/E1042/laptop-handoff", "/sign/E2000/laptop-cleaning");
    b.go(&moved);
    assert!(
        b.text().contains("This link is for another hire or step"),
        "{}",
        b.text()
    );
    // An expired link: made 15 days ago.
    let old = env
        .run_with(
            &[
                "link",
                "E2000",
                "laptop-cleaning",
                "--to",
                "tom@example.org",
            ],
            &[vars, &[("ONBOARD_NOW", "2026-11-08T10:00:00Z")]].concat(),
        )
        .success()
        .stdout;
    b.go(old.trim());
    let expired = b.text();
    assert!(
        expired.contains("This link has expired") && expired.contains("Ask your IT service desk"),
        "{expired}"
    );
    b.screenshot("serve-expired-link");
    // A changed link.
    b.go(&format!("{}x", tech));
    assert!(b.text().contains("This link is not valid"), "{}", b.text());
    let _ = base;
}

fn hr_and_audit(env: &TestEnv, b: &Browser, base: &str) {
    // HR may not open a sign-off form.
    sign_in(b, base, "harriet", "harriet-password");
    b.go(&format!("{base}/sign/E2000/laptop-cleaning"));
    assert!(
        b.text().contains("Only IT staff sign steps here"),
        "{}",
        b.text()
    );
    // HR previews a 5-row export with one bad row: its row and column.
    let export = env.path("export.csv");
    std::fs::write(
        &export,
        "id,given_name,family_name,work_email,manager,manager_email,department,title,start_date,time_zone,custom.laptop_asset_tag,custom.laptop_serial\n\
         E3001,Ada,Byron,ada.byron@example.org,Charles Babbage,cb@example.org,Engineering,Analyst,2026-12-07,Europe/London,LT-1,S1\n\
         E3002,Alan,Turing,alan.turing@example.org,Charles Babbage,cb@example.org,Research,Engineer,2026-12-07,Europe/London,LT-2,S2\n\
         E3003,Grace,Hopper,not-an-email,Charles Babbage,cb@example.org,Research,Engineer,2026-12-07,Europe/London,LT-3,S3\n\
         E3004,Edsger,Dijkstra,edsger@example.org,Charles Babbage,cb@example.org,Research,Engineer,2026-12-08,Europe/London,LT-4,S4\n\
         E3005,Barbara,Liskov,barbara@example.org,Charles Babbage,cb@example.org,Research,Engineer,2026-12-08,Europe/London,LT-5,S5\n",
    )
    .unwrap();
    b.go(&format!("{base}/preview"));
    b.click("#checklist option[value='new-hire.yaml']");
    b.upload("#file", &export);
    b.submit("#preview");
    let preview = b.text();
    assert!(preview.contains("1 problem in export.csv"), "{preview}");
    assert!(preview.contains("export.csv:4:"), "{preview}");
    assert!(
        preview.contains("Hire E3005") && preview.contains("Welcome to Example Ltd, Barbara"),
        "{preview}"
    );
    b.screenshot("serve-preview");
    // Nothing was changed: no journal for the previewed hires.
    assert_ne!(env.run(&["status", "E3001"]).code, 0);

    // The auditor downloads the CSV.
    sign_in(b, base, "audrey", "audrey-password");
    b.go(&format!("{base}/report"));
    assert!(b.text().contains("Every journal verifies"), "{}", b.text());
    b.screenshot("serve-report");
    b.click("#download-csv");
    let csv = b.downloaded(".csv");
    assert!(csv.contains("E1042") && csv.contains("E2000"), "{csv}");
}

/// The journal of E1042, record by record: the web's signatures carry their actor and
/// evidence, like the CLI's; E2000's holds the refused request.
fn journal_record_by_record(env: &TestEnv) {
    let records: Vec<serde_json::Value> = env
        .journal("E1042")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shape: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["type"].as_str().unwrap(),
                r["step"].as_str().unwrap_or("")
            )
        })
        .collect();
    let signed: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["type"] == "signed_off")
        .collect();
    assert_eq!(signed.len(), 2, "{shape:#?}");
    let cleaning = signed[0];
    assert_eq!(cleaning["step"], "laptop-cleaning");
    assert_eq!(cleaning["by"], "Tom Tech");
    assert_eq!(cleaning["actor"], "via link sent to tom@example.org");
    assert_eq!(cleaning["evidence"]["wipe_certificate_id"], "WC-2211");
    let sha = {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(b"%PDF-1.7 wipe certificate for LT-0042");
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert_eq!(
        cleaning["evidence"]["file:wipe-certificate.pdf"],
        sha.as_str()
    );
    assert_eq!(cleaning["confirmed"].as_array().unwrap().len(), 4);
    let handoff = signed[1];
    assert_eq!(handoff["step"], "laptop-handoff");
    assert_eq!(handoff["by"], "Ada Lovelace");
    assert_eq!(
        handoff["actor"],
        "via link sent to ada.lovelace@example.org"
    );
    // Each link was emailed once: intent, then sent, and never the link itself.
    for (step, to) in [
        ("laptop-cleaning", "tom@example.org"),
        ("laptop-handoff", "ada.lovelace@example.org"),
    ] {
        let of = |t: &str| {
            records
                .iter()
                .filter(|r| r["type"] == t && r["step"] == step)
                .count()
        };
        assert_eq!(
            (of("link_sending"), of("link_sent")),
            (1, 1),
            "{step}: {shape:#?}"
        );
        assert!(
            records
                .iter()
                .any(|r| r["type"] == "link_sending" && r["to"] == to)
        );
    }
    assert!(!env.journal("E1042").contains("token="));
    // After the hand-off: the resumed run finished every step.
    let last = records.last().unwrap();
    assert_eq!(last["type"], "run_finished", "{shape:#?}");
    assert_eq!(last["waiting"], 0);
    assert_eq!(last["failed"], 0);
    assert!(env.run(&["verify", "E1042"]).code == 0);
    let other = env.journal("E2000");
    let refused: Vec<serde_json::Value> = other
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "access_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{other}");
    assert_eq!(refused[0]["step"], "laptop-cleaning");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("a link for hire E1042 step laptop-handoff")
    );
    // The dual-control refusal recorded nothing: the step still waits.
    assert!(!other.contains("\"by\":\"tester\""), "{other}");
}

/// With a certificate and key, the pages are HTTPS (rustls) and their cookies are Secure.
#[test]
fn pages_over_tls_carry_secure_cookies() {
    use std::process::{Command, Stdio};
    let env = TestEnv::new();
    let certs = env.path("tls");
    std::fs::create_dir(&certs).unwrap();
    crate::slapd::make_certificates(&certs);
    let (cert, key) = (certs.join("server.crt"), certs.join("server.key"));
    let vars = [
        ("ONBOARD_SERVE_TLS_CERT", cert.to_str().unwrap()),
        ("ONBOARD_SERVE_TLS_KEY", key.to_str().unwrap()),
    ];
    let port = free_port();
    let server = serve(&env, &vars, port);
    let mut client = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-verify_return_error",
            "-servername",
            "localhost",
        ])
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-CAfile")
        .arg(certs.join("ca.crt"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /signin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = client.wait_with_output().unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "{reply}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let cookie = reply
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: onboard_signin=")
        })
        .unwrap_or_else(|| panic!("{reply}"));
    for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    // Plain HTTP to the TLS port gets no page.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /signin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("Sign in"));
}
