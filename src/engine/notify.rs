//! Emailing a waiting step's link (`notify` on `sign_off` and `device_handoff`): once per step,
//! through the mail target, journaled like any send. `link_sending` (with the Message-ID and
//! the recipient, never the link) is durable before the message goes; `link_sent` after the
//! target accepted it. A resume that finds `link_sending` alone asks the target; when the
//! target cannot tell (SMTP), it does not send again unless `--resend-uncertain`.

use super::{EngineError, Writer};
use crate::backend::mail::{Mailer, Outgoing};
use crate::journal::{Event, LinkEmail, NotifyParams, SignOffRequest};
use crate::plan::PlannedStep;
use crate::steps::Ctx;
use crate::steps::email::spec::EmailParams;

/// Emails the link if the step asks for it and it was not sent; what to add to the step's
/// waiting reason, if anything.
pub(super) fn link_email(
    step: &PlannedStep,
    ctx: &mut Ctx<'_>,
    w: &mut Writer<'_>,
    request: &SignOffRequest,
) -> Result<Option<String>, EngineError> {
    let Some(n) = &request.notify else {
        return Ok(None);
    };
    let prior = ctx.prior.and_then(|p| p.link_email.as_ref());
    if !w.applying() {
        return Ok(match prior {
            Some(LinkEmail { sent: true, .. }) => None,
            _ => Some(format!("would email a link to {}", n.to)),
        });
    }
    let Some(links) = ctx.links else {
        return Ok(Some(format!(
            "no link key, so no link was emailed to {}; see `onboard config` (serve.link_key_file)",
            n.to
        )));
    };
    let now = jiff::Timestamp::try_from(ctx.now).map_or(0, |t| t.as_second());
    let url = links.url(ctx.hire_id, &step.id, &format!("sent to {}", n.to), now);
    let days = links.settings.link_days;
    let once = Once {
        hire: ctx.hire_id,
        step: &step.id,
        to: n,
        reminder: 0,
        resend_uncertain: ctx.resend_uncertain,
        now: ctx.now,
    };
    let sent = send_once(&once, prior, &mut *ctx.mailer, w, |_| {
        message(ctx.hire_id, &step.id, request, n, &url, days)
    })?;
    Ok(match sent {
        Sent::Already => None,
        Sent::Now => Some(format!("link emailed to {}", n.to)),
        Sent::DidGoOut => Some(format!("the link email to {} did go out", n.to)),
        Sent::Uncertain(message_id) => Some(format!(
            "the link email {message_id} to {} may not have gone out (the run was interrupted \
             while sending); hand over a link with `onboard link {} {}`, or run again with \
             --resend-uncertain",
            n.to, ctx.hire_id, step.id
        )),
        Sent::Failed(e) => Some(format!(
            "the link email to {} failed ({e}); hand over a link with `onboard link {} {}`",
            n.to, ctx.hire_id, step.id
        )),
    })
}

/// One message about a waiting step (its link, a policy campaign's notice, a reminder).
pub(super) struct Once<'a> {
    pub hire: &'a str,
    pub step: &'a str,
    pub to: &'a NotifyParams,
    /// 0 for the first message, n for the n-th reminder.
    pub reminder: u32,
    pub resend_uncertain: bool,
    pub now: std::time::SystemTime,
}

/// What [`send_once`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sent {
    /// Journaled as sent before.
    Already,
    /// Sent now.
    Now,
    /// An interrupted run's send did go out (the target says so); now journaled.
    DidGoOut,
    /// An interrupted run's send may or may not have gone out, and the target cannot tell:
    /// not sent again (unless `resend_uncertain`). Its Message-ID.
    Uncertain(String),
    /// The target refused it or could not be reached; the record of the attempt stays.
    Failed(String),
}

/// Sends the message `once` names at most once: `link_sending` (Message-ID, recipient,
/// reminder number; never a link) is durable before it goes, `link_sent` after the target
/// accepted it. `build` makes the message for a Message-ID.
pub(super) fn send_once(
    once: &Once<'_>,
    prior: Option<&LinkEmail>,
    mailer: &mut dyn Mailer,
    w: &mut Writer<'_>,
    build: impl FnOnce(&str) -> EmailParams,
) -> Result<Sent, EngineError> {
    let step = once.step.to_owned();
    let message_id = match prior.filter(|p| p.reminder == once.reminder) {
        Some(LinkEmail { sent: true, .. }) => return Ok(Sent::Already),
        Some(LinkEmail { message_id, .. }) => match mailer.was_sent(message_id) {
            Ok(Some(true)) => {
                w.append(Event::LinkSent {
                    step,
                    message_id: message_id.clone(),
                    note: String::new(),
                })?;
                return Ok(Sent::DidGoOut);
            }
            Ok(Some(false)) => message_id.clone(),
            _ if once.resend_uncertain => message_id.clone(),
            _ => return Ok(Sent::Uncertain(message_id.clone())),
        },
        None => {
            let suffix = match once.reminder {
                0 => "link".to_owned(),
                n => format!("reminder{n}"),
            };
            let id = crate::mail::new_message_id(
                &format!("{}-{suffix}", once.step),
                once.hire,
                &once.to.from,
            );
            w.append(Event::LinkSending {
                step: step.clone(),
                message_id: id.clone(),
                to: once.to.to.clone(),
                reminder: once.reminder,
            })?;
            id
        }
    };
    let params = build(&message_id);
    let sent = crate::mail::email(&params, &message_id, once.now)
        .map_err(|e| e.to_string())
        .and_then(|built| {
            mailer
                .send(&Outgoing {
                    message_id: &message_id,
                    from: &built.from,
                    to: &built.to,
                    bytes: &built.bytes,
                })
                .map_err(|e| e.to_string())
        });
    w.failpoint(&format!("sent:{step}"));
    if let Err(e) = sent {
        return Ok(Sent::Failed(e));
    }
    w.append(Event::LinkSent {
        step,
        message_id,
        note: String::new(),
    })?;
    Ok(Sent::Now)
}

/// The message: what the person is asked, and the link.
fn message(
    hire: &str,
    step: &str,
    request: &SignOffRequest,
    n: &NotifyParams,
    url: &str,
    days: i64,
) -> EmailParams {
    let tag = request.asset.get("asset_tag");
    let subject = match (request.cleaning.is_some(), tag) {
        _ if let Some(p) = &request.policy => {
            format!("Please read and accept {} version {}", p.file, p.version)
        }
        (true, Some(tag)) => format!("Please confirm you received your laptop ({tag})"),
        (true, None) => "Please confirm you received your device".to_owned(),
        (false, Some(tag)) => format!("Please confirm {step} of {tag}"),
        (false, None) => format!("Please sign off {step} for hire {hire}"),
    };
    let ask = format!(
        "onboard asks you, as the {}, to confirm {} for hire {hire}:",
        request.role,
        if request.items.len() == 1 {
            "one item".to_owned()
        } else {
            format!("{} items", request.items.len())
        }
    );
    let until = format!(
        "The link works until it is signed, for {days} days. It is for you only: please do not \
         forward it."
    );
    let mut text = format!("Hello,\n\n{ask}\n\n");
    for item in &request.items {
        text.push_str(&format!("  - {item}\n"));
    }
    text.push_str(&format!(
        "\nOpen this link to confirm (or refuse, with a reason):\n{url}\n\n{until}\n"
    ));
    let mut html = format!(
        "<p>Hello,</p>\n<p>{}</p>\n<ul>\n",
        crate::escape::html(&ask)
    );
    for item in &request.items {
        html.push_str(&format!("<li>{}</li>\n", crate::escape::html(item)));
    }
    html.push_str(&format!(
        "</ul>\n<p><a href=\"{}\">Open the page to confirm</a> (or refuse, with a reason).</p>\n<p>{}</p>\n",
        crate::escape::html(url),
        crate::escape::html(&until)
    ));
    EmailParams {
        from: n.from.clone(),
        to: vec![n.to.clone()],
        cc: Vec::new(),
        reply_to: None,
        subject,
        text,
        html,
        policies: None,
    }
}
