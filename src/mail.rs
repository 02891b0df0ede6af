//! Building the messages onboard sends, with lettre: headers are encoded by lettre, so a value
//! cannot add a header (and hire data with line breaks is refused long before this).

use std::time::SystemTime;

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

use crate::secret::Secret;
use crate::steps::email::spec::EmailParams;

/// A message ready for a [`crate::backend::mail::Mailer`].
pub struct Built {
    pub bytes: Vec<u8>,
    pub from: String,
    pub to: Vec<String>,
}

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("`{address}` is not an email address: {source}")]
    Address {
        address: String,
        source: lettre::address::AddressError,
    },
    #[error(transparent)]
    Build(#[from] lettre::error::Error),
}

fn mailbox(s: &str) -> Result<Mailbox, MailError> {
    s.parse::<Mailbox>().map_err(|source| MailError::Address {
        address: s.to_owned(),
        source,
    })
}

fn built(message: Message) -> Built {
    let envelope = message.envelope();
    Built {
        from: envelope.from().map(|a| a.to_string()).unwrap_or_default(),
        to: envelope.to().iter().map(|a| a.to_string()).collect(),
        bytes: message.formatted(),
    }
}

/// A Message-ID for a step of a hire, unique and recognisable: `<RANDOM.STEP.HIRE@DOMAIN>`.
pub fn new_message_id(step: &str, hire: &str, from: &str) -> String {
    let domain = from
        .parse::<Mailbox>()
        .ok()
        .map(|m| m.email.domain().to_owned())
        .unwrap_or_else(|| "onboard.invalid".to_owned());
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "<{}.{}.{}@{domain}>",
        crate::secret::random_hex(12),
        clean(step),
        clean(hire)
    )
}

/// The message an `email` step sends: text and HTML alternatives, the policies attached.
pub fn email(p: &EmailParams, message_id: &str, date: SystemTime) -> Result<Built, MailError> {
    let mut b = subject(Message::builder().from(mailbox(&p.from)?), &p.subject)
        .message_id(Some(message_id.to_owned()))
        .date(date);
    for to in &p.to {
        b = b.to(mailbox(to)?);
    }
    for cc in &p.cc {
        b = b.cc(mailbox(cc)?);
    }
    if let Some(r) = &p.reply_to {
        b = b.reply_to(mailbox(r)?);
    }
    let body = MultiPart::alternative_plain_html(p.text.clone(), p.html.clone());
    let message = match &p.policies {
        Some(policies) => {
            let attachment = Attachment::new(policies.file.clone()).body(
                policies.markdown.clone(),
                ContentType::parse("text/markdown; charset=utf-8").expect("valid content type"),
            );
            b.multipart(MultiPart::mixed().multipart(body).singlepart(attachment))
        }
        None => b.multipart(body),
    }?;
    Ok(built(message))
}

/// Sets the Subject so that a reader sees exactly `text`. Text that looks like an RFC 2047
/// encoded-word (`=?utf-8?q?…?=`) would be decoded by mail clients into other text, so such a
/// subject is itself encoded, whole, as base64 encoded-words (which decode to the literal).
fn subject(b: lettre::message::MessageBuilder, text: &str) -> lettre::message::MessageBuilder {
    if !text.contains("=?") {
        return b.subject(text.to_owned());
    }
    use base64::Engine as _;
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // 45 bytes of UTF-8 are 60 of base64: each word stays within RFC 2047's 75.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    let encoded: Vec<String> = words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect();
    b.raw_header(
        lettre::message::header::HeaderValue::dangerous_new_pre_encoded(
            lettre::message::header::HeaderName::new_from_ascii_str("Subject"),
            text.to_owned(),
            encoded.join("\r\n "),
        ),
    )
}

/// Who receives an initial password by mail, and about whom.
pub struct Credential<'a> {
    pub from: &'a str,
    pub manager: &'a str,
    pub manager_name: &'a str,
    pub hire_name: &'a str,
    pub login: &'a str,
    /// The hire's start date, if known.
    pub start_date: Option<&'a str>,
    /// The directory makes the hire choose their own password at first sign-in (asked for
    /// and enforced: a directory that cannot force it does not make it so).
    pub must_change: bool,
    /// Where the mail target keeps a copy of this message (the outbox folder), if it does.
    pub copy_kept_in: Option<&'a str>,
    /// A resumed account: this password replaces one sent before, which no longer works.
    pub replaces_earlier: bool,
}

/// The separate message that carries an initial password to the manager.
pub fn credential(
    c: &Credential<'_>,
    password: &Secret,
    message_id: &str,
    date: SystemTime,
) -> Result<Built, MailError> {
    let hire = c.hire_name;
    let replaces = if c.replaces_earlier {
        format!(
            "This password replaces any sent to you earlier for {hire}, which no longer works:\n\
             setting up the account was interrupted, and has now been finished.\n\n"
        )
    } else {
        String::new()
    };
    let day = match c.start_date {
        Some(start) => format!("on their first day ({start})"),
        None => "on their first day".to_owned(),
    };
    let change = if c.must_change {
        " They will be\nasked to choose their own password when they first sign in."
    } else {
        ""
    };
    let stored = match c.copy_kept_in {
        None => format!("This password was not sent to {hire} and is not stored by IT."),
        Some(folder) => format!(
            "This password was not sent to {hire}. A copy of this message is kept in the\n\
             outbox folder {folder} until someone deletes it: delete it there too once the\n\
             password has been handed over."
        ),
    };
    let text = format!(
        "Hello {manager},\n\n\
         the directory account for {hire} is ready.\n\n\
         {replaces}\
         Login name:        {login}\n\
         Initial password:  {password}\n\n\
         Please give this password to {hire} in person {day}.{change}\n\n\
         Do not forward this message, and delete it once the password has been handed over.\n\
         {stored}\n\n\
         The IT Service Desk\n",
        manager = c.manager_name,
        login = c.login,
        password = password.expose(),
    );
    let title = if c.replaces_earlier {
        format!("New initial password for {hire} (replaces any earlier one)")
    } else {
        format!("Initial password for {hire}")
    };
    let message = subject(
        Message::builder()
            .from(mailbox(c.from)?)
            .to(mailbox(c.manager)?),
        &title,
    )
    .message_id(Some(message_id.to_owned()))
    .date(date)
    .singlepart(SinglePart::plain(text))?;
    Ok(built(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential_text(must_change: bool, start: Option<&str>, replaces: bool) -> String {
        credential_kept(must_change, start, replaces, None)
    }

    fn credential_kept(
        must_change: bool,
        start: Option<&str>,
        replaces: bool,
        copy_kept_in: Option<&str>,
    ) -> String {
        let built = credential(
            &Credential {
                from: "it@example.org",
                manager: "mia@example.org",
                manager_name: "Mia",
                hire_name: "Jo Smith",
                login: "jo.smith",
                start_date: start,
                must_change,
                copy_kept_in,
                replaces_earlier: replaces,
            },
            &Secret::new("pw-123456789012".into()),
            "<x@example.org>",
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        // Undo quoted-printable: soft line breaks and =XX escapes.
        let text = String::from_utf8(built.bytes).unwrap().replace("=\r\n", "");
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'=', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap().replace("\r\n", "\n")
    }

    #[test]
    fn the_password_message_says_only_what_is_true() {
        let plain = credential_text(false, None, false);
        assert!(!plain.contains("choose their own password"), "{plain}");
        assert!(plain.contains("in person on their first day."), "{plain}");
        assert!(!plain.contains("(their first day)"), "{plain}");
        assert!(!plain.contains("replaces"), "{plain}");

        let full = credential_text(true, Some("2026-12-07"), false);
        assert!(full.contains("choose their own password"), "{full}");
        assert!(full.contains("on their first day (2026-12-07)"), "{full}");

        assert!(full.contains("is not stored by IT"), "{full}");

        // The embedded outbox keeps a copy: the message says where, not "not stored".
        let kept = credential_kept(false, None, false, Some("/srv/onboard/outbox"));
        assert!(!kept.contains("not stored by IT"), "{kept}");
        assert!(
            kept.contains("outbox folder /srv/onboard/outbox until someone deletes it"),
            "{kept}"
        );

        let again = credential_text(true, Some("2026-12-07"), true);
        assert!(
            again.contains("Subject: New initial password for Jo Smith (replaces any earlier one)"),
            "{again}"
        );
        assert!(
            again.contains("This password replaces any sent to you earlier"),
            "{again}"
        );
    }

    #[test]
    fn a_subject_that_looks_encoded_is_encoded_whole() {
        let mut b = Message::builder()
            .from(mailbox("it@example.org").unwrap())
            .to(mailbox("a@example.org").unwrap());
        b = subject(b, "Welcome, =?utf-8?q?Bcc:_x@evil?=");
        let bytes = b.body(String::from("x")).unwrap().formatted();
        let text = String::from_utf8(bytes).unwrap();
        let line = text.lines().find(|l| l.starts_with("Subject:")).unwrap();
        assert!(line.starts_with("Subject: =?utf-8?b?"), "{line}");
        assert!(!text.contains("=?utf-8?q?Bcc"), "{text}");
    }
}
