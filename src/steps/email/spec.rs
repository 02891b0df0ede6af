//! `email` as the playbook writes it and as it renders: addresses, subject, both template
//! files, and the policy document attached with its version and hash.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tera::Context;

use crate::diag::{Diagnostic, Diagnostics};
use crate::load::{Playbook, PolicyDoc, Step, StepKind, check_email};
use crate::model::Tpl;
use crate::plan::Renderer;
use crate::yaml::{OneOrMany, Spanned};

/// Sends an email built from templates in the templates folder.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// Sender, e.g. `IT Service Desk <it@example.org>` (template).
    pub from: Tpl,
    /// Recipients (template or list).
    pub to: OneOrMany<Tpl>,
    /// Copies, e.g. the manager (template or list).
    #[serde(default)]
    pub cc: OneOrMany<Tpl>,
    /// Where replies go, e.g. the help desk (template).
    pub reply_to: Option<Tpl>,
    /// Subject line (template).
    pub subject: Tpl,
    /// HTML body: a Tera template file in the templates folder (autoescaped).
    pub html: Spanned<String>,
    /// Plain-text body: a Tera template file in the templates folder.
    pub text: Spanned<String>,
    /// The IT policies sent with the message.
    pub policies: Option<Policies>,
}

/// A Markdown policy document, rendered into the HTML part and attached.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    /// File in the templates folder, e.g. `it-policies.md`. Not a template: sent as written.
    pub file: Spanned<String>,
    /// The version people cite, e.g. `2026.1`. Recorded with its SHA-256.
    pub version: Spanned<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmailParams {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub policies: Option<PolicyParams>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyParams {
    pub file: String,
    pub version: String,
    pub sha256: String,
    /// The document as sent (Markdown), attached to the message.
    #[serde(skip)]
    pub markdown: String,
}

/// The parameters as `name: value` lines for people.
pub fn fields(e: &EmailParams) -> Vec<(String, String)> {
    let mut out = vec![
        ("from".to_owned(), e.from.clone()),
        ("to".to_owned(), e.to.join(", ")),
    ];
    if !e.cc.is_empty() {
        out.push(("cc".to_owned(), e.cc.join(", ")));
    }
    if let Some(r) = &e.reply_to {
        out.push(("reply-to".to_owned(), r.clone()));
    }
    out.push(("subject".to_owned(), e.subject.clone()));
    if let Some(p) = &e.policies {
        out.push((
            "policies".to_owned(),
            format!("{} version {} (sha256 {})", p.file, p.version, p.sha256),
        ));
    }
    out.push((
        "body".to_owned(),
        format!(
            "{} lines of text, {} bytes of HTML (see them with --preview DIR)",
            e.text.lines().count(),
            e.html.len()
        ),
    ));
    out
}

/// Renders an email that is not a step of the checklist (the at-risk notice) against `ctx`.
pub fn render_email(
    pb: &Playbook,
    email: &Email,
    ctx: &Context,
) -> Result<EmailParams, Diagnostics> {
    let mut diags = Diagnostics::default();
    let step = Step {
        id: email.subject.clone(),
        title: String::new(),
        needs: Vec::new(),
        kind: StepKind::Email(email.clone()),
        deadline: None,
    };
    let mut r = Renderer {
        pb,
        ctx,
        diags: &mut diags,
        failed: false,
    };
    let params = render(&mut r, &step, email);
    match params {
        Some(p) if !r.failed => Ok(p),
        _ => Err(diags),
    }
}

pub(crate) fn mailbox(r: &mut Renderer<'_>, tpl: &Tpl, what: &str) -> String {
    let s = r.line(tpl, what);
    if !s.is_empty() && s.parse::<lettre::message::Mailbox>().is_err() {
        r.fail(
            Diagnostic::new(format!(
                "{what} renders to `{s}`, which is not an email address"
            ))
            .at(tpl.span)
            .hint("write `name@example.org` or `Name <name@example.org>`"),
        );
    }
    s
}

/// Renders an `email` step: addresses checked, policies attached, both template files.
pub(super) fn render(r: &mut Renderer<'_>, step: &Step, e: &Email) -> Option<EmailParams> {
    let from = mailbox(r, &e.from, "`from`");
    let to: Vec<String> = e.to.0.iter().map(|t| mailbox(r, t, "`to`")).collect();
    let cc: Vec<String> = e.cc.0.iter().map(|t| mailbox(r, t, "`cc`")).collect();
    for addr in to.iter().chain(&cc) {
        // Recipients are plain addresses: no display name that could hide another.
        if let Ok(m) = addr.parse::<lettre::message::Mailbox>()
            && let Err(p) = check_email(m.email.as_ref())
        {
            r.fail(Diagnostic::new(p).at(step.id.span));
        }
    }
    if to.is_empty() {
        r.fail(Diagnostic::new("`to` is empty").at(step.id.span));
    }
    let reply_to = e.reply_to.as_ref().map(|t| mailbox(r, t, "`reply_to`"));
    let subject = r.line(&e.subject, "`subject`");
    let policies = e.policies.as_ref().and_then(|p| {
        let doc: &PolicyDoc = r.pb.policies.get(&p.file.value)?;
        Some(PolicyParams {
            file: p.file.value.clone(),
            version: p.version.value.clone(),
            sha256: doc.sha256.clone(),
            markdown: doc.text.clone(),
        })
    });
    let mut ctx = r.ctx.clone();
    ctx.insert(
        "email",
        &json!({ "from": from, "to": to, "cc": cc, "reply_to": reply_to, "subject": subject }),
    );
    if let Some(p) = &policies {
        ctx.insert(
            "policies",
            &json!({
                "version": p.version,
                "sha256": p.sha256,
                "file": p.file,
                "text": p.markdown,
            }),
        );
        ctx.insert_value(
            "policies_html",
            tera::Value::safe_string(&markdown_to_html(&p.markdown)),
        );
    }
    let text = file(r, &e.text.value, &ctx);
    let html = file(r, &e.html.value, &ctx);
    Some(EmailParams {
        from,
        to,
        cc,
        reply_to,
        subject,
        text: text?,
        html: html?,
        policies,
    })
}

fn file(r: &mut Renderer<'_>, name: &str, ctx: &Context) -> Option<String> {
    if !r.pb.templates.has(name) {
        // Reported when the file was read.
        r.failed = true;
        return None;
    }
    match r.pb.templates.render_file(name, ctx) {
        Ok(s) => Some(s),
        Err(d) => {
            r.fail(d);
            None
        }
    }
}

/// The policy document's Markdown as HTML. Raw HTML in it is escaped, not passed through.
pub fn markdown_to_html(markdown: &str) -> String {
    use pulldown_cmark::{Event, Parser, html};
    let parser = Parser::new(markdown).map(|event| match event {
        Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
        e => e,
    });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_policies_render_without_raw_html() {
        let html = markdown_to_html("# Policies\n\nNote: <script>x</script> and *care*\n");
        assert!(html.contains("<h1>Policies</h1>"));
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<em>care</em>"));
    }
}
