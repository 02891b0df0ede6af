//! The sign-off form (each item a checkbox, a refusal with its reason, evidence values and an
//! evidence file) and the hire's welcome page with the hand-off acknowledgement.
//!
//! Who signs is a signed-in IT person (their directory name) or the holder of a link for
//! exactly this hire and step (the name they type; the journal's actor says "via link sent to
//! …"). The signature goes through `engine::sign_off`, so it is validated (items, evidence,
//! named signers, dual control) and journaled exactly as `onboard sign-off` does.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Multipart, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::Web;
use super::guard::{self, Role, User};
use super::link::{Link, Refused};
use super::page::to_sign_in;
use crate::engine::{self, EngineError, Mode, Outcome, Settings, read_state};
use crate::journal::{HireState, Refusal, SignOffRequest, Status};
use crate::steps::human::Signature;
use crate::store::Evidence;

/// The largest evidence file a page accepts.
const FILE_LIMIT: usize = 5 * 1024 * 1024;

#[derive(Deserialize, Default)]
pub struct Token {
    #[serde(default)]
    token: String,
}

/// Who is at the form.
enum Signer {
    Staff(User),
    Link(Link),
}

impl Signer {
    fn user(&self) -> Option<&User> {
        match self {
            Signer::Staff(u) => Some(u),
            Signer::Link(_) => None,
        }
    }

    /// Who records it, for the journal.
    fn actor(&self) -> String {
        match self {
            Signer::Staff(u) => u.login.clone(),
            Signer::Link(l) => format!("via link {}", l.to),
        }
    }
}

impl Web {
    /// The signer a request stands for, or the page that refuses it.
    async fn signer(
        self: &Arc<Web>,
        headers: &HeaderMap,
        path: &str,
        hire: &str,
        step: &str,
        token: &str,
    ) -> Result<Signer, Response> {
        if token.is_empty() {
            let Some(user) = self.viewer(headers) else {
                return Err(to_sign_in(path));
            };
            if !user.may(Role::It) {
                return Err(self.forbidden(
                    "Only IT staff sign steps here; others sign with the link they were sent.",
                    Some(&user),
                ));
            }
            return Ok(Signer::Staff(user));
        }
        match self.key.open(token, self.now()) {
            Ok(link) if link.hire == hire && link.step == step => Ok(Signer::Link(link)),
            Ok(link) => {
                let reason = format!(
                    "a link for hire {} step {} was used for hire {hire} step {step}",
                    link.hire, link.step
                );
                self.log(&format!("refused: {reason} (link {})", link.to));
                let web = self.clone();
                let (hire, step, actor) = (
                    hire.to_owned(),
                    step.to_owned(),
                    format!("via link {}", link.to),
                );
                let recorded = tokio::task::spawn_blocking(move || {
                    if !web.store.has(&hire) {
                        return Ok(());
                    }
                    engine::access_refused(
                        web.store.as_ref(),
                        &hire,
                        &step,
                        &actor,
                        &reason,
                        web.clock,
                    )
                })
                .await;
                if let Ok(Err(e)) = recorded {
                    self.log(&format!("could not journal the refusal: {e}"));
                }
                Err(self.forbidden(
                    "This link is for another hire or step, so it cannot be used here. The \
                     attempt was recorded.",
                    None,
                ))
            }
            Err(Refused::Expired(link)) => Err(self.message(
                StatusCode::GONE,
                "This link has expired",
                &format!(
                    "The link for {} was valid until {}.",
                    link.step,
                    jiff::Timestamp::from_second(link.expires)
                        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_default()
                ),
                &format!("Ask {} for a new one.", self.settings.contact),
                None,
            )),
            Err(Refused::Forged) => {
                self.log(&format!(
                    "refused a link that this server did not make, for {hire} {step}"
                ));
                Err(self.forbidden(
                    &format!(
                        "This link is not valid. Check that it was copied whole, or ask {} for \
                         a new one.",
                        self.settings.contact
                    ),
                    None,
                ))
            }
        }
    }

    /// The step's request if it waits for a signature, else the page that says why not.
    fn waiting(
        &self,
        state: &HireState,
        step: &str,
        signer: &Signer,
    ) -> Result<SignOffRequest, Response> {
        let current = state.steps.get(step);
        if let Some(s) = current
            && s.status == Status::Waiting
            && let Some(r) = &s.request
        {
            return Ok(r.clone());
        }
        let (title, text) = match current {
            Some(s) if s.status == Status::Done => (
                "Already signed",
                format!("{step} was signed on {} by {}.", s.at, s.actor),
            ),
            Some(s) if s.status == Status::Failed => (
                "Not waiting for a signature",
                format!("{step} was refused or failed: {}.", s.detail),
            ),
            _ => (
                "Not waiting for a signature",
                format!("{step} does not wait for a signature just now."),
            ),
        };
        let next = match signer {
            Signer::Link(_) => format!(
                "This link can no longer be used. If something is wrong, contact {}.",
                self.settings.contact
            ),
            Signer::Staff(_) => "Go back to the board.".to_owned(),
        };
        Err(self.message(StatusCode::GONE, title, &text, &next, signer.user()))
    }
}

#[derive(Serialize)]
struct Form<'a> {
    hire: &'a str,
    step: &'a str,
    action: String,
    csrf: String,
    role: &'a str,
    items: Vec<Item<'a>>,
    evidence: Vec<Value<'a>>,
    asset: &'a BTreeMap<String, String>,
    signers: &'a [String],
    /// The signer's name: fixed for a signed-in person, typed for a link.
    name: String,
    name_fixed: bool,
    error: &'a str,
    reason: &'a str,
    /// For the welcome page: the hire's start and what is ready.
    start: &'a str,
    ready: Vec<Ready>,
    contact: &'a str,
    /// For an `acknowledge`: the text to accept.
    policy: Option<PolicyView>,
}

/// A policy text as the page shows it: Markdown made HTML (raw HTML in it escaped).
#[derive(Serialize)]
struct PolicyView {
    file: String,
    version: String,
    sha256: String,
    html: String,
}

#[derive(Serialize)]
struct Item<'a> {
    n: usize,
    text: &'a str,
    checked: bool,
}

#[derive(Serialize)]
struct Value<'a> {
    name: &'a str,
    value: String,
}

#[derive(Serialize)]
struct Ready {
    step: String,
    done: bool,
}

/// What was sent with the form, to show it again when it is refused.
#[derive(Default)]
struct Posted {
    csrf: String,
    name: String,
    checked: Vec<usize>,
    refuse: Option<usize>,
    reason: String,
    values: BTreeMap<String, String>,
    files: Vec<Evidence>,
}

impl Web {
    #[allow(clippy::too_many_arguments)]
    fn form_page(
        &self,
        status: StatusCode,
        state: &HireState,
        step: &str,
        request: &SignOffRequest,
        signer: &Signer,
        token: &str,
        posted: &Posted,
        error: &str,
    ) -> Response {
        let hire = state.hire.as_str();
        let action = format!(
            "/sign/{}/{}{}",
            super::page::path_segment(hire),
            super::page::path_segment(step),
            if token.is_empty() {
                String::new()
            } else {
                format!("?token={}", super::page::query_value(token))
            }
        );
        let csrf = self.form_token(signer, token);
        let (name, name_fixed) = match signer {
            Signer::Staff(u) => (u.name.clone(), true),
            Signer::Link(_) => (posted.name.clone(), false),
        };
        let welcome = request.cleaning.is_some();
        let policy = match &request.policy {
            None => None,
            Some(p) => match crate::policy::text_of(self.store.as_ref(), p) {
                Ok(text) => Some(PolicyView {
                    file: text.file,
                    version: text.version,
                    sha256: text.sha256,
                    html: crate::steps::email::spec::markdown_to_html(&text.text),
                }),
                Err(problem) => return self.broken(&problem),
            },
        };
        let form = Form {
            hire,
            step,
            action,
            csrf,
            role: &request.role,
            items: request
                .items
                .iter()
                .enumerate()
                .map(|(i, text)| Item {
                    n: i + 1,
                    text,
                    checked: posted.checked.contains(&(i + 1)),
                })
                .collect(),
            evidence: request
                .evidence
                .iter()
                .map(|e| Value {
                    name: e,
                    value: posted.values.get(e).cloned().unwrap_or_default(),
                })
                .collect(),
            asset: &request.asset,
            signers: &request.signers,
            name,
            name_fixed,
            error,
            reason: &posted.reason,
            start: &state.start,
            ready: state
                .steps
                .iter()
                .filter(|(id, _)| id.as_str() != step)
                .map(|(id, s)| Ready {
                    step: id.clone(),
                    done: s.status == Status::Done,
                })
                .collect(),
            contact: &self.settings.contact,
            policy,
        };
        let (template, title) = if welcome {
            ("welcome.html", "Welcome".to_owned())
        } else if let Some(p) = &request.policy {
            ("sign.html", format!("Accept {} {}", p.file, p.version))
        } else {
            ("sign.html", format!("Sign off {step}"))
        };
        self.render(status, template, &title, signer.user(), form)
    }

    /// The form's CSRF token: the session's, or one derived from the link.
    fn form_token(&self, signer: &Signer, token: &str) -> String {
        match signer {
            Signer::Staff(u) => u.csrf.clone(),
            Signer::Link(_) => self.key.derive(&format!("csrf\n{token}")),
        }
    }
}

pub async fn form(
    State(web): State<Arc<Web>>,
    Path((hire, step)): Path<(String, String)>,
    Query(q): Query<Token>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let signer = match web
        .signer(&headers, &uri.to_string(), &hire, &step, &q.token)
        .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    // The store is read (the journal, a policy's text) on a blocking thread.
    let page = {
        let web = web.clone();
        tokio::task::spawn_blocking(move || web.show_form(&hire, &step, &signer, &q.token)).await
    };
    match page {
        Ok(page) => page,
        Err(e) => web.broken(&e.to_string()),
    }
}

impl Web {
    /// The sign-off form for a waiting step, or the page that says why not.
    fn show_form(&self, hire: &str, step: &str, signer: &Signer, token: &str) -> Response {
        let state = match read_state(self.store.as_ref(), hire) {
            Ok((s, _)) if !s.hire.is_empty() => s,
            Ok(_) => {
                return self.message(
                    StatusCode::NOT_FOUND,
                    "No such hire",
                    "There is no journal for this hire.",
                    "Check the address.",
                    signer.user(),
                );
            }
            Err(e) => return self.broken(&e.to_string()),
        };
        let request = match self.waiting(&state, step, signer) {
            Ok(r) => r,
            Err(page) => return page,
        };
        self.form_page(
            StatusCode::OK,
            &state,
            step,
            &request,
            signer,
            token,
            &Posted::default(),
            "",
        )
    }
}

pub async fn submit(
    State(web): State<Arc<Web>>,
    Path((hire, step)): Path<(String, String)>,
    Query(q): Query<Token>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let signer = match web
        .signer(&headers, &uri.to_string(), &hire, &step, &q.token)
        .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let posted = match read_form(multipart).await {
        Ok(p) => p,
        Err(why) => {
            return web.message(
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                &why,
                "Go back, check the file, and send the form again.",
                signer.user(),
            );
        }
    };
    if !guard::same(&web.form_token(&signer, &q.token), &posted.csrf) {
        web.log(&format!(
            "refused a form for {hire} {step} without its CSRF token"
        ));
        return web.forbidden(
            "This form did not come from this site, or it is too old. Open the page again.",
            signer.user(),
        );
    }
    let outcome = {
        let web = web.clone();
        let (hire, step, token) = (hire.clone(), step.clone(), q.token.clone());
        tokio::task::spawn_blocking(move || web.sign(&hire, &step, &signer, &token, posted)).await
    };
    match outcome {
        Ok(page) => page,
        Err(e) => web.broken(&e.to_string()),
    }
}

impl Web {
    /// Records the posted signature through the engine; the page that says how it went.
    fn sign(
        &self,
        hire: &str,
        step: &str,
        signer: &Signer,
        token: &str,
        posted: Posted,
    ) -> Response {
        let state = match read_state(self.store.as_ref(), hire) {
            Ok((s, _)) => s,
            Err(e) => return self.broken(&e.to_string()),
        };
        let request = match self.waiting(&state, step, signer) {
            Ok(r) => r,
            Err(page) => return page,
        };
        let by = match signer {
            Signer::Staff(u) => u.name.clone(),
            Signer::Link(_) => posted.name.trim().to_owned(),
        };
        let pick = |n: usize| request.items.get(n.wrapping_sub(1)).cloned();
        let signature = Signature {
            by: by.clone(),
            confirmed: posted.checked.iter().filter_map(|n| pick(*n)).collect(),
            refused: posted.refuse.and_then(pick).map(|item| Refusal {
                item,
                reason: posted.reason.trim().to_owned(),
            }),
            note: String::new(),
            evidence: posted.values.clone(),
            how: match signer {
                Signer::Staff(_) => "web".into(),
                Signer::Link(_) => "link".into(),
            },
            witness: String::new(),
        };
        let settings = Settings {
            mode: Mode::Apply,
            actor: signer.actor(),
            clock: self.clock,
            reapply: Vec::new(),
            reconcile: false,
            resend_uncertain: false,
            failpoint: None,
        };
        let result = engine::sign_off(
            self.store.as_ref(),
            hire,
            step,
            signature,
            &posted.files,
            &settings,
        );
        self.board.clear();
        let viewer = signer.user();
        match result {
            Ok(Outcome::Applied(_)) => {
                self.log(&format!(
                    "{hire} {step} signed by {by} ({})",
                    signer.actor()
                ));
                self.message(
                    StatusCode::OK,
                    "Signed",
                    &format!("Thank you, {by}: {step} is signed for hire {hire}."),
                    "IT's next run continues from here. You can close this page.",
                    viewer,
                )
            }
            Ok(Outcome::Failed { error, .. }) => {
                self.log(&format!(
                    "{hire} {step} refused by {by} ({})",
                    signer.actor()
                ));
                self.message(
                    StatusCode::OK,
                    "Refusal recorded",
                    &format!("Recorded: {error}."),
                    "IT has been shown the reason on the board and will fix it.",
                    viewer,
                )
            }
            Ok(other) => self.broken(&format!("unexpected outcome: {other:?}")),
            Err(EngineError::Refused(why)) => self.form_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                &state,
                step,
                &request,
                signer,
                token,
                &posted,
                &format!("Not signed: {why}."),
            ),
            Err(e @ EngineError::Locked { .. }) => self.message(
                StatusCode::CONFLICT,
                "Busy",
                &format!("Not signed: {e}."),
                "Try again in a minute.",
                viewer,
            ),
            Err(e) => self.broken(&e.to_string()),
        }
    }
}

/// Reads the multipart form: fields by name, and at most one evidence file of an accepted
/// type and size.
async fn read_form(mut multipart: Multipart) -> Result<Posted, String> {
    let mut p = Posted::default();
    let unreadable = |e: axum::extract::multipart::MultipartError| e.body_text();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or("").to_owned();
        if name == "file" {
            let file_name = field.file_name().unwrap_or("").to_owned();
            let bytes = field.bytes().await.map_err(unreadable)?;
            if file_name.is_empty() && bytes.is_empty() {
                continue;
            }
            p.files.push(evidence_file(&file_name, bytes.to_vec())?);
            continue;
        }
        let value = field.text().await.map_err(unreadable)?;
        match name.as_str() {
            "csrf" => p.csrf = value,
            "name" => p.name = value,
            "item" => p.checked.extend(value.parse::<usize>().ok()),
            "refuse" => p.refuse = value.parse::<usize>().ok(),
            "reason" => p.reason = value,
            other => {
                if let Some(e) = other.strip_prefix("value:")
                    && !value.trim().is_empty()
                {
                    p.values.insert(e.to_owned(), value.trim().to_owned());
                }
            }
        }
    }
    Ok(p)
}

/// An uploaded evidence file: a PDF, PNG, JPEG or plain text under [`FILE_LIMIT`], judged by
/// its content, kept under a plain name.
fn evidence_file(name: &str, bytes: Vec<u8>) -> Result<Evidence, String> {
    if bytes.len() > FILE_LIMIT {
        return Err(format!(
            "the file is {} KiB; the limit is {} KiB",
            bytes.len() / 1024,
            FILE_LIMIT / 1024
        ));
    }
    let kind = if bytes.starts_with(b"%PDF-") {
        "pdf"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "jpg"
    } else if std::str::from_utf8(&bytes).is_ok_and(|t| !t.contains('\0')) {
        "txt"
    } else {
        return Err("the file must be a PDF, PNG, JPEG or plain text".into());
    };
    let base = super::page::plain_file_name(name);
    let stem = base
        .trim_start_matches('.')
        .rsplit_once('.')
        .map_or(base.as_str(), |(s, _)| s);
    let stem = if stem.is_empty() { "evidence" } else { stem };
    Ok(Evidence {
        name: format!("{}.{kind}", &stem[..stem.len().min(80)]),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_judged_by_content_and_named_plainly() {
        let pdf = evidence_file("../../etc/WC 2211.pdf", b"%PDF-1.7 ...".to_vec()).unwrap();
        assert_eq!(pdf.name, "WC_2211.pdf");
        let txt = evidence_file("cert.exe", b"wiped ok".to_vec()).unwrap();
        assert_eq!(txt.name, "cert.txt");
        assert!(evidence_file("x.pdf", vec![0x7f, b'E', b'L', b'F', 0, 1]).is_err());
        assert!(evidence_file("big.txt", vec![b'a'; FILE_LIMIT + 1]).is_err());
        assert_eq!(
            evidence_file("", b"ok".to_vec()).unwrap().name,
            "evidence.txt"
        );
    }
}
