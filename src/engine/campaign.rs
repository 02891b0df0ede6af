//! `onboard policies campaign`: everyone behind on a policy gets one message with what changed
//! and how to accept it, and reminders at set intervals until they do.
//!
//! Per hire, in the hire's own journal: a `step_waiting` for the campaign's step
//! ([`crate::policy::campaign_step`]) asking the hire to accept the version (so
//! `onboard sign-off HIRE STEP` and the sign-off page record the acceptance, from the journal
//! alone), then each message exactly once as the link emails are (`link_sending` durable before
//! the send, `link_sent` after; reminders numbered). A re-run sends nothing new; a resume after
//! a kill finds an interrupted send and asks the mail target, or leaves it to the operator.

use super::notify::{Once, Sent, send_once};
use super::{EngineError, Settings, Sink, Writer};
use crate::backend::mail::Mailer;
use crate::journal::{self, Event, NotifyParams, SignOffRequest, Status};
use crate::policy::{self, Published, Standing};
use crate::steps::email::spec::{EmailParams, PolicyParams, markdown_to_html};
use crate::store::{Store, StoreError};

/// What the campaign is for and how it reaches people.
pub struct Campaign<'a> {
    /// The version everyone is to accept (published before the campaign starts).
    pub policy: &'a Published,
    /// The version before it, for the summary of what changed.
    pub previous: Option<&'a Published>,
    /// The sender, e.g. `IT Service Desk <it@example.org>`.
    pub from: &'a str,
    /// Acceptances older than this many days are behind (0: no period).
    pub max_age_days: u32,
    /// Days between a message and the next reminder (0: no reminders).
    pub remind_days: u32,
    /// At most this many reminders.
    pub reminders: u32,
    /// Links to the sign-off page, if onboard has a link key.
    pub links: Option<&'a crate::web::Links>,
}

/// What the campaign did for one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reached {
    /// Accepted this version within the period: nothing to send.
    Current,
    /// Accepted this version, longer ago than the period: a campaign for a new version (the
    /// yearly one) reaches them, not this one.
    Expired(String),
    /// Their checklist already asks them to accept this version (the step named).
    Asked(String),
    /// The first message went now.
    Sent,
    /// Reminder n went now.
    Reminded(u32),
    /// Everything due was sent before (and the next reminder is not due).
    AlreadySent,
    /// An interrupted send's outcome is unknown: not sent again. Its Message-ID.
    Uncertain(String),
    /// Would be sent (a dry run); the reminder number.
    WouldSend(u32),
    /// Could not be reached: no address, a locked or broken journal, a refused send.
    Failed(String),
}

/// One person's row of the campaign.
#[derive(Debug, Clone)]
pub struct Row {
    pub hire: String,
    pub email: String,
    /// Why they were behind, when they were.
    pub reason: String,
    pub reached: Reached,
}

/// Runs the campaign over every hire in the store.
pub fn campaign(
    store: &dyn Store,
    mailer: &mut dyn Mailer,
    c: &Campaign<'_>,
    settings: &Settings,
) -> Result<Vec<Row>, EngineError> {
    let hires = store
        .hires()
        .map_err(|e| EngineError::Io(format!("cannot list the hires: {e}")))?;
    let mut rows = Vec::new();
    for hire in hires {
        rows.push(reach(store, mailer, c, settings, &hire));
    }
    Ok(rows)
}

fn reach(
    store: &dyn Store,
    mailer: &mut dyn Mailer,
    c: &Campaign<'_>,
    settings: &Settings,
    hire: &str,
) -> Row {
    let mut row = Row {
        hire: hire.to_owned(),
        email: String::new(),
        reason: String::new(),
        reached: Reached::Current,
    };
    let failed = |row: Row, why: String| Row {
        reached: Reached::Failed(why),
        ..row
    };
    let text = match store.read(hire) {
        Ok(t) => t,
        Err(e) => return failed(row, format!("cannot read the journal: {e}")),
    };
    let records = match text.verify() {
        Ok(r) => r,
        Err(b) => {
            return failed(
                row,
                format!(
                    "{}:{b}; run `onboard verify {hire}`",
                    store.journal_name(hire)
                ),
            );
        }
    };
    let now = settings.clock.now();
    let accepted = policy::acceptances(hire, &records);
    let state = journal::replay(&records);
    row.email = state.email.clone();
    let step = policy::campaign_step(&c.policy.file, &c.policy.version);
    match policy::standing(&accepted, c.policy, c.max_age_days, now) {
        Standing::Current { .. } => return row,
        Standing::Behind { reason } => row.reason = reason,
    }
    if accepted.iter().any(|a| a.policy == c.policy.reference()) {
        row.reached = Reached::Expired(row.reason.clone());
        return row;
    }
    // Someone being onboarded whose checklist asks for this very text is not asked twice.
    if let Some((id, _)) = state.steps.iter().find(|(id, s)| {
        **id != step
            && s.status == Status::Waiting
            && s.request
                .as_ref()
                .is_some_and(|r| r.policy.as_ref() == Some(&c.policy.reference()))
    }) {
        row.reached = Reached::Asked(id.clone());
        return row;
    }
    if row.email.is_empty() {
        return failed(
            row,
            format!(
                "no address in the journal (the playbook's hire has no work_email); have them \
                 accept at the desk: onboard sign-off {hire} {step} --by NAME --all --witness YOU"
            ),
        );
    }
    if settings.mode == super::Mode::DryRun {
        let due = due(state.steps.get(&step), c, now);
        row.reached = due.map_or(Reached::AlreadySent, Reached::WouldSend);
        return row;
    }
    match send(
        store,
        mailer,
        c,
        settings,
        hire,
        &step,
        &row.email,
        &row.reason,
    ) {
        Ok(reached) => Row { reached, ..row },
        Err(e) => failed(row, e.to_string()),
    }
}

/// The message due now, by reminder number: the first (0), the next reminder, or none.
fn due(step: Option<&journal::StepState>, c: &Campaign<'_>, now: jiff::Timestamp) -> Option<u32> {
    let Some(sent) = step.and_then(|s| s.link_email.as_ref()) else {
        return Some(0);
    };
    if !sent.sent {
        // An interrupted send: settle that one first.
        return Some(sent.reminder);
    }
    let since = sent
        .at
        .parse::<jiff::Timestamp>()
        .map_or(0, |at| now.as_second() - at.as_second());
    (c.remind_days > 0 && sent.reminder < c.reminders && since >= i64::from(c.remind_days) * 86_400)
        .then_some(sent.reminder + 1)
}

/// Under the hire's lock: the waiting step (once), then the message due.
#[allow(clippy::too_many_arguments)]
fn send(
    store: &dyn Store,
    mailer: &mut dyn Mailer,
    c: &Campaign<'_>,
    settings: &Settings,
    hire: &str,
    step: &str,
    email: &str,
    reason: &str,
) -> Result<Reached, EngineError> {
    let holder = format!(
        "policy campaign by {} (pid {})",
        settings.actor,
        std::process::id()
    );
    let mut session = store
        .open(
            hire,
            &holder,
            &crate::secret::random_hex(8),
            &settings.actor,
        )
        .map_err(|e| match e {
            StoreError::Locked { holder, .. } => EngineError::Io(format!(
                "another run is working on it ({holder}); run again later"
            )),
            e => EngineError::Io(e.to_string()),
        })?;
    let state = journal::replay(&session.records);
    let mut w = Writer {
        sink: Sink::Journal(&mut *session.log),
        clock: settings.clock,
        failpoint: settings.failpoint.clone(),
    };
    let notify = NotifyParams {
        to: email.to_owned(),
        from: c.from.to_owned(),
    };
    let current = state.steps.get(step);
    match current {
        // Accepted (a done step's request is no longer kept).
        Some(s) if s.status == Status::Done => return Ok(Reached::AlreadySent),
        Some(s)
            if s.request.as_ref().and_then(|r| r.policy.as_ref())
                != Some(&c.policy.reference()) =>
        {
            return Err(EngineError::Io(format!(
                "the journal has a step {step} that is not this campaign's"
            )));
        }
        Some(_) => {}
        None => {
            let request = SignOffRequest {
                role: "hire".into(),
                items: vec![policy::default_item(&c.policy.file, &c.policy.version)],
                notify: Some(notify.clone()),
                policy: Some(c.policy.reference()),
                campaign: true,
                checksum: crate::digest::sha256(format!("{step}\n{}", c.policy.sha256)),
                ..SignOffRequest::default()
            };
            w.append(Event::StepWaiting {
                step: step.to_owned(),
                on: "hire".into(),
                reason: format!("accept {} version {}", c.policy.file, c.policy.version),
                request: Some(request),
                after: Vec::new(),
            })?;
        }
    }
    let now = settings.clock.now();
    let Some(reminder) = due(current, c, now) else {
        return Ok(Reached::AlreadySent);
    };
    let prior = current.and_then(|s| s.link_email.as_ref());
    let once = Once {
        hire,
        step,
        to: &notify,
        reminder,
        resend_uncertain: settings.resend_uncertain,
        now: std::time::SystemTime::try_from(now).unwrap_or(std::time::SystemTime::now()),
    };
    let url = c
        .links
        .map(|l| l.url(hire, step, &format!("sent to {email}"), now.as_second()));
    let sent = send_once(&once, prior, mailer, &mut w, |_| {
        message(c, hire, step, &notify, reminder, reason, url.as_deref())
    })?;
    Ok(match sent {
        Sent::Already => Reached::AlreadySent,
        Sent::Now | Sent::DidGoOut if reminder == 0 => Reached::Sent,
        Sent::Now | Sent::DidGoOut => Reached::Reminded(reminder),
        Sent::Uncertain(id) => Reached::Uncertain(id),
        Sent::Failed(e) => Reached::Failed(format!("the message was not sent: {e}")),
    })
}

/// The message: what changed, how to accept, the text attached.
fn message(
    c: &Campaign<'_>,
    hire: &str,
    step: &str,
    to: &NotifyParams,
    reminder: u32,
    reason: &str,
    url: Option<&str>,
) -> EmailParams {
    let p = c.policy;
    let subject = format!(
        "{}Please read and accept the IT policies, version {}",
        if reminder > 0 { "Reminder: " } else { "" },
        p.version
    );
    let changes = match c.previous {
        Some(before) => {
            let lines = policy::diff_summary(&before.text, &p.text);
            if lines.is_empty() {
                vec![format!(
                    "The text is the same as version {}; it is asked again because acceptance \
                     is renewed regularly.",
                    before.version
                )]
            } else {
                lines
            }
        }
        None => vec!["This is the first version onboard asks you to accept.".to_owned()],
    };
    let since = c
        .previous
        .map(|b| format!("What changed since version {}:", b.version))
        .unwrap_or_else(|| "About this version:".to_owned());
    let how = match url {
        Some(url) => format!(
            "Read the text and accept it on this page (the link is for you only; it works for \
             a limited time):\n{url}"
        ),
        None => format!(
            "Read the attached text, then tell the IT service desk that you accept it; they \
             record it with: onboard sign-off {hire} {step}"
        ),
    };
    let intro = format!(
        "Please read the IT policies, version {}, and accept them. Our records say: you {reason}.",
        p.version
    );
    let mut text = format!("Hello,\n\n{intro}\n\n{since}\n");
    for line in &changes {
        text.push_str(&format!("  - {line}\n"));
    }
    text.push_str(&format!(
        "\n{how}\n\nThe full text is attached ({}, SHA-256 {}).\n",
        p.file, p.sha256
    ));
    let escape = crate::escape::html;
    let mut html = format!(
        "<p>Hello,</p>\n<p>{}</p>\n<p>{}</p>\n<ul>\n",
        escape(&intro),
        escape(&since)
    );
    for line in &changes {
        html.push_str(&format!("<li>{}</li>\n", escape(line)));
    }
    html.push_str("</ul>\n");
    match url {
        Some(url) => html.push_str(&format!(
            "<p><a href=\"{}\">Read and accept version {}</a> (the link is for you only; it \
             works for a limited time).</p>\n",
            escape(url),
            escape(&p.version)
        )),
        None => html.push_str(&format!("<p>{}</p>\n", escape(&how))),
    }
    html.push_str(&format!(
        "<p>The full text is attached ({}, SHA-256 <code>{}</code>).</p>\n<hr>\n{}",
        escape(&p.file),
        escape(&p.sha256),
        markdown_to_html(&p.text)
    ));
    EmailParams {
        from: to.from.clone(),
        to: vec![to.to.clone()],
        cc: Vec::new(),
        reply_to: None,
        subject,
        text,
        html,
        policies: Some(PolicyParams {
            file: p.file.clone(),
            version: p.version.clone(),
            sha256: p.sha256.clone(),
            markdown: p.text.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{LinkEmail, StepState};

    fn campaign<'a>(policy: &'a Published) -> Campaign<'a> {
        Campaign {
            policy,
            previous: None,
            from: "it@example.org",
            max_age_days: 365,
            remind_days: 7,
            reminders: 2,
            links: None,
        }
    }

    fn sent(reminder: u32, sent: bool, at: &str) -> StepState {
        StepState {
            link_email: Some(LinkEmail {
                message_id: "<m>".into(),
                sent,
                at: at.into(),
                reminder,
            }),
            ..StepState::default()
        }
    }

    /// The first message once, an interrupted one settled before anything else, then a
    /// reminder each interval up to the limit.
    #[test]
    fn which_message_is_due() {
        let p = Published::new("it.md", "2", "text", "2026-11-01T00:00:00Z");
        let c = campaign(&p);
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
        let day0 = "2026-11-23T10:00:00Z";
        assert_eq!(due(None, &c, at(day0)), Some(0));
        assert_eq!(due(Some(&sent(0, false, day0)), &c, at(day0)), Some(0));
        assert_eq!(
            due(Some(&sent(0, true, day0)), &c, at("2026-11-29T10:00:00Z")),
            None
        );
        assert_eq!(
            due(Some(&sent(0, true, day0)), &c, at("2026-11-30T10:00:00Z")),
            Some(1)
        );
        assert_eq!(due(Some(&sent(1, false, day0)), &c, at(day0)), Some(1));
        assert_eq!(
            due(Some(&sent(2, true, day0)), &c, at("2027-01-30T10:00:00Z")),
            None
        );
        let none = Campaign {
            remind_days: 0,
            ..campaign(&p)
        };
        assert_eq!(
            due(
                Some(&sent(0, true, day0)),
                &none,
                at("2027-01-30T10:00:00Z")
            ),
            None
        );
    }
}
