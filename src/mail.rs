//! Building the messages onboard sends, with lettre: headers are encoded by lettre, so a value
//! cannot add a header (and hire data with line breaks is refused long before this).

use std::time::SystemTime;

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

use crate::plan::EmailParams;
use crate::secret::Secret;

/// A message ready for a [`crate::target::Mailer`].
pub struct Built {
    pub bytes: Vec<u8>,
    pub from: String,
    pub to: Vec<String>,
}

fn mailbox(s: &str) -> Result<Mailbox, String> {
    s.parse::<Mailbox>()
        .map_err(|e| format!("`{s}` is not an email address: {e}"))
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
pub fn email(p: &EmailParams, message_id: &str, date: SystemTime) -> Result<Built, String> {
    let mut b = Message::builder()
        .from(mailbox(&p.from)?)
        .subject(p.subject.clone())
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
    }
    .map_err(|e| e.to_string())?;
    Ok(built(message))
}

/// Who receives an initial password by mail, and about whom.
pub struct Credential<'a> {
    pub from: &'a str,
    pub manager: &'a str,
    pub manager_name: &'a str,
    pub hire_name: &'a str,
    pub login: &'a str,
    pub start_date: &'a str,
}

/// The separate message that carries an initial password to the manager.
pub fn credential(
    c: &Credential<'_>,
    password: &Secret,
    message_id: &str,
    date: SystemTime,
) -> Result<Built, String> {
    let text = format!(
        "Hello {manager},\n\n\
         the directory account for {hire} is ready.\n\n\
         Login name:        {login}\n\
         Initial password:  {password}\n\n\
         Please give this password to {hire} in person on their first day ({start}). They will be\n\
         asked to choose their own password when they first sign in.\n\n\
         Do not forward this message, and delete it once the password has been handed over.\n\
         This password was not sent to {hire} and is not stored by IT.\n\n\
         The IT Service Desk\n",
        manager = c.manager_name,
        hire = c.hire_name,
        login = c.login,
        password = password.expose(),
        start = c.start_date,
    );
    let message = Message::builder()
        .from(mailbox(c.from)?)
        .to(mailbox(c.manager)?)
        .subject(format!("Initial password for {}", c.hire_name))
        .message_id(Some(message_id.to_owned()))
        .date(date)
        .singlepart(SinglePart::plain(text))
        .map_err(|e| e.to_string())?;
    Ok(built(message))
}
