//! Hire data built to break DNs, filters, mail headers, HTML and templates: each value is
//! either stored and shown exactly and safely, or refused with a located, clear message.

use crate::cohort::checklist;
use crate::common::{TestEnv, pairs};
use crate::slapd::{SUFFIX, Slapd};
use crate::smtp_server::{Mode, SmtpServer};

/// First names that must arrive exactly as written.
const STORED: &[&str] = &[
    "O'Brien, Jr.",              // RFC 4514: comma
    "#Hash+Plus=\"Quote\"",      // RFC 4514: leading #, +, =, "
    " Lead and trail ",          // RFC 4514: leading and trailing spaces
    "a*)(uid=*)\\",              // RFC 4515: filter specials
    "Back\\slash;semi<lt>gt",    // RFC 4514: \ ; < >
    "{{ 7*7 }}",                 // a template, never evaluated
    "{% raw %}x{% endraw %}",    // a template tag, never evaluated
    "<script>alert(1)</script>", // HTML
    "R&D 'lab'",                 // HTML entities
    "\u{202e}evil\u{202c}",      // right-to-left override
    "=?utf-8?q?Bcc:_x@evil?=",   // RFC 2047: an encoded-word, shown as written, never decoded
    "=?utf-8?b?QWRtaW4=?= Ann",  // RFC 2047: base64, followed by text
];

/// (first name as a CSV cell, what the message must say about it).
const REFUSED: &[(&str, &str)] = &[
    ("\"Ann\nBcc: all@example.org\"", "control character U+000A"),
    ("\"Ann\rX\"", "control character U+000D"),
    ("Ann\u{0}Nul", "control character U+0000"),
];

fn header() -> String {
    "Employee ID,First Name,Last Name,Email,Manager Email,Department\n".to_owned()
}

fn cell(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

#[test]
fn hostile_hire_data_is_stored_exactly_or_refused_clearly() {
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(Mode::Plain);
    let env = TestEnv::new();
    let playbook = checklist(&env);
    let servers = smtp.with_directory(&slapd);
    let vars = pairs(&servers);

    // Refused, each at its row and column, before anything runs.
    let mut csv = header();
    for (i, (value, _)) in REFUSED.iter().enumerate() {
        csv.push_str(&format!(
            "R{i},{value},Test{i},r{i}@example.org,mia@example.org,Research\n"
        ));
    }
    let long = "x".repeat(256);
    csv.push_str(&format!(
        "R9,{long},Test9,r9@example.org,mia@example.org,Research\n"
    ));
    let bad = env.path("bad.csv");
    std::fs::write(&bad, &csv).unwrap();
    let run = env
        .run_with(&[&playbook, "--hires", bad.to_str().unwrap()], &vars)
        .code(2);
    for (_, why) in REFUSED {
        assert!(run.stderr.contains(why), "{why}:\n{}", run.stderr);
    }
    assert!(
        run.stderr.contains("bad.csv:2:5"),
        "located:\n{}",
        run.stderr
    );
    assert!(!env.state().exists(), "nothing ran");

    // Invalid UTF-8: the file is refused at the byte.
    let mut bytes = header().into_bytes();
    bytes.extend_from_slice(b"R1,Ann\xff,Lee,r1@example.org,mia@example.org,Research\n");
    let latin1 = env.path("latin1.csv");
    std::fs::write(&latin1, bytes).unwrap();
    let run = env
        .run_with(&[&playbook, "--hires", latin1.to_str().unwrap()], &vars)
        .code(2);
    assert!(
        run.stderr.contains("is not UTF-8 text") && run.stderr.contains("latin1.csv:2:7"),
        "{}",
        run.stderr
    );

    // Stored exactly: in the directory, in the message (text exactly, HTML escaped).
    let mut csv = header();
    for (i, value) in STORED.iter().enumerate() {
        csv.push_str(&format!(
            "H{i},{},Test{i},h{i}@example.org,mia@example.org,Research\n",
            cell(value)
        ));
    }
    let good = env.path("good.csv");
    std::fs::write(&good, &csv).unwrap();
    let run = env.run_with(&[&playbook, "--hires", good.to_str().unwrap()], &vars);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let people = onboard::backend::directory::ldif::parse(&slapd.search(
        &format!("ou=people,{SUFFIX}"),
        "(objectClass=inetOrgPerson)",
        &["cn"],
    ))
    .unwrap();
    let messages = smtp.messages();
    for (i, value) in STORED.iter().enumerate() {
        let cn = format!("{value} Test{i}");
        assert!(
            people.iter().any(|p| p.get("cn") == [cn.clone()]),
            "H{i}: cn {cn:?} stored exactly"
        );
        let welcome = messages
            .iter()
            .find(|m| m["headers"]["To"] == format!("h{i}@example.org"))
            .unwrap_or_else(|| panic!("H{i}: a welcome"));
        assert_eq!(
            welcome["headers"]["Subject"],
            format!("Welcome, {value}"),
            "H{i}: the subject, exactly"
        );
        let part = |kind: &str| {
            welcome["parts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["content_type"] == kind)
                .and_then(|p| p["content"].as_str())
                .unwrap()
                .to_owned()
        };
        let text = part("text/plain");
        let html = part("text/html");
        assert!(
            text.contains(value.trim()),
            "H{i}: the text part says it as written"
        );
        if value.contains(['<', '>', '&', '"', '\'']) {
            assert!(!html.contains(value), "H{i}: escaped in HTML");
        }
        assert!(!html.contains("<script>"), "H{i}: no script in HTML");
    }
    assert!(
        !messages.iter().any(|m| m.to_string().contains("Hello 49")),
        "a template in hire data is never evaluated"
    );
    env.run(&["verify"]).success();
}
