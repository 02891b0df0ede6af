//! HR's preview: pick a checklist, upload one hire file or an HR export, and see the plan for
//! each hire and every email as it will look. Nothing is changed: the upload is planned, never
//! run, in a private temporary folder that is removed after; errors are located by row and
//! column exactly as the CLI prints them.
//!
//! The emails are kept for [`KEPT`] so the page can open each one as it will look, on its own
//! address (an email's own styles cannot run inside a page that allows none).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Multipart, OriginalUri, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Web;
use super::board::signed_in;
use super::guard::{self, Role, User};
use crate::diag::{Diagnostic, SourceMap, visible};
use crate::load::{Request, load};
use crate::plan::{Outputs, Params, Plan, load_and_plan, plan};

/// How long a preview's emails can be opened.
const KEPT: i64 = 30 * 60;

/// Rendered emails by preview, for the viewer who made them.
#[derive(Default)]
pub struct Previews(Mutex<HashMap<String, Kept>>);

pub struct Kept {
    owner: String,
    expires: i64,
    emails: Vec<String>,
}

#[derive(Serialize)]
struct Page {
    checklists: Vec<String>,
    chosen: String,
    errors: Vec<String>,
    hires: Vec<HirePlan>,
    file: String,
}

#[derive(Serialize)]
struct HirePlan {
    hire: String,
    steps: Vec<StepLine>,
    emails: Vec<Email>,
}

#[derive(Serialize)]
struct StepLine {
    id: String,
    title: String,
    action: String,
}

#[derive(Serialize)]
struct Email {
    step: String,
    subject: String,
    to: String,
    text: String,
    href: String,
}

fn hr(web: &Web, headers: &HeaderMap, path: &str) -> Result<User, Response> {
    let user = signed_in(web, headers, path)?;
    if user.may(Role::Hr) || user.may(Role::It) {
        Ok(user)
    } else {
        Err(web.forbidden("Previews are for HR and IT.", Some(&user)))
    }
}

pub async fn form(
    State(web): State<Arc<Web>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let user = match hr(&web, &headers, &uri.to_string()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let page = Page {
        checklists: web.checklists(),
        chosen: String::new(),
        errors: Vec::new(),
        hires: Vec::new(),
        file: String::new(),
    };
    web.render(StatusCode::OK, "preview.html", "Preview", Some(&user), page)
}

pub async fn submit(
    State(web): State<Arc<Web>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let user = match hr(&web, &headers, &uri.to_string()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (csrf, checklist, upload) = match read_form(&mut multipart).await {
        Ok(f) => f,
        Err(why) => {
            return web.message(
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                &why,
                "Go back and try again with a smaller file.",
                Some(&user),
            );
        }
    };
    if !guard::same(&user.csrf, &csrf) {
        return web.forbidden(
            "This form did not come from this site. Open the page again.",
            Some(&user),
        );
    }
    let checklists = web.checklists();
    let errors_page = |errors: Vec<String>| Page {
        checklists: checklists.clone(),
        chosen: checklist.clone(),
        errors,
        hires: Vec::new(),
        file: String::new(),
    };
    if !checklists.contains(&checklist) {
        let page = errors_page(vec!["Pick a checklist from the list.".into()]);
        return web.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            "preview.html",
            "Preview",
            Some(&user),
            page,
        );
    }
    let Some((name, bytes)) = upload.filter(|(_, b)| !b.is_empty()) else {
        let page = errors_page(vec![
            "Choose a hire file (YAML) or an HR export (CSV) to upload.".into(),
        ]);
        return web.render(
            StatusCode::UNPROCESSABLE_ENTITY,
            "preview.html",
            "Preview",
            Some(&user),
            page,
        );
    };
    let planned = {
        let web = web.clone();
        let req = crate::load::Request {
            playbook: web.playbooks.join(&checklist),
            hire: None,
            templates_roots: web.settings.templates_roots.clone(),
        };
        tokio::task::spawn_blocking(move || preview(&req, &name, &bytes)).await
    };
    let (hires, errors, file) = match planned {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return web.broken(&format!("preview: {e}")),
        Err(e) => return web.broken(&e.to_string()),
    };
    let page = Page {
        checklists,
        chosen: checklist,
        errors,
        hires: web.keep(&user, &hires),
        file,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    web.render(status, "preview.html", "Preview", Some(&user), page)
}

/// The form: its CSRF token, the checklist picked, the file uploaded (name and bytes).
async fn read_form(
    multipart: &mut Multipart,
) -> Result<(String, String, Option<(String, Vec<u8>)>), String> {
    let (mut csrf, mut checklist, mut upload) = (String::new(), String::new(), None);
    while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.map_err(|e| e.body_text())?,
            "checklist" => checklist = field.text().await.map_err(|e| e.body_text())?,
            "file" => {
                let name = field.file_name().unwrap_or("hires.csv").to_owned();
                let bytes = field.bytes().await.map_err(|e| e.body_text())?;
                upload = Some((name, bytes.to_vec()));
            }
            _ => {}
        }
    }
    Ok((csrf, checklist, upload))
}

impl Web {
    /// The plans for the page; their emails kept for the viewer to open.
    fn keep(&self, user: &User, plans: &[Plan]) -> Vec<HirePlan> {
        let id = crate::secret::random_hex(16);
        let mut emails = Vec::new();
        let mut hires: Vec<HirePlan> = plans
            .iter()
            .map(|p| self.hire_plan(p, &mut emails))
            .collect();
        for e in hires.iter_mut().flat_map(|h| &mut h.emails) {
            e.href = format!("/preview/{id}/{}", e.href);
        }
        let now = self.now();
        let mut kept = self.previews.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|_, k| k.expires > now);
        kept.insert(
            id,
            Kept {
                owner: user.login.clone(),
                expires: now + KEPT,
                emails,
            },
        );
        hires
    }

    /// The checklists HR may pick: the YAML files in the playbooks folder.
    fn checklists(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.playbooks)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
            .collect();
        names.sort();
        names
    }

    /// One hire's plan for the page; its emails' HTML appended to `emails`.
    fn hire_plan(&self, plan: &Plan, emails: &mut Vec<String>) -> HirePlan {
        let mut out = HirePlan {
            hire: plan.hire.clone(),
            steps: Vec::new(),
            emails: Vec::new(),
        };
        for step in &plan.steps {
            out.steps.push(StepLine {
                id: step.id.clone(),
                title: step.title.clone(),
                action: step.action.clone(),
            });
            if let Params::Email(e) = &step.params {
                out.emails.push(Email {
                    step: step.id.clone(),
                    subject: e.subject.clone(),
                    to: e.to.join(", "),
                    text: e.text.clone(),
                    href: emails.len().to_string(),
                });
                emails.push(e.html.clone());
            }
        }
        out
    }
}

/// An email of a preview, as it will look: its own styles, no script, nothing from elsewhere.
pub async fn email(
    State(web): State<Arc<Web>>,
    UrlPath((id, n)): UrlPath<(String, usize)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let user = match hr(&web, &headers, &uri.to_string()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let html = {
        let kept = web.previews.0.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(&id)
            .filter(|k| k.owner == user.login && k.expires > web.now())
            .and_then(|k| k.emails.get(n).cloned())
    };
    let Some(html) = html else {
        return web.message(
            StatusCode::NOT_FOUND,
            "Preview gone",
            "This preview is no longer kept.",
            "Upload the file again.",
            Some(&user),
        );
    };
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox",
        ),
    );
    response
}

/// Plans the uploaded file against the checklist: the plans, the problems (rendered as the CLI
/// prints them), and the file's name as the problems give it.
fn preview(
    checklist: &Request,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<(Vec<Plan>, Vec<String>, String)> {
    let dir = Scratch::new()?;
    let name = plain_name(name);
    let path = dir.0.join(&name);
    fs_err::write(&path, bytes)?;
    let mut sources = SourceMap::default();
    let render = |diags: Vec<Diagnostic>, sources: &SourceMap| {
        diags
            .iter()
            .map(|d| relative(&visible(&d.render(sources)), &dir.0))
            .collect::<Vec<_>>()
    };
    let text = String::from_utf8_lossy(bytes);
    let is_list = name.ends_with(".csv")
        || text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with('-'));
    if !is_list {
        let req = Request {
            hire: Some(path.clone()),
            ..checklist.clone()
        };
        return Ok(match load_and_plan(&req, &mut sources, &Outputs::new()) {
            Ok((_, plan)) => (vec![plan], Vec::new(), name),
            Err(diags) => (Vec::new(), render(diags.sorted(), &sources), name),
        });
    }
    let (pb, diags) = load(checklist, &mut sources);
    let Some(pb) = pb.filter(|_| diags.is_empty()) else {
        return Ok((Vec::new(), render(diags.sorted(), &sources), name));
    };
    let (mut pb, hires, diags, _) =
        crate::cli::cohort::check_rows(pb, &path, &mut sources, &|_| true);
    let mut plans = Vec::new();
    for hire in hires {
        pb.hire = Some(hire);
        if let Ok(p) = plan(&pb, &Outputs::new()) {
            plans.push(p);
        }
    }
    Ok((plans, render(diags.sorted(), &sources), name))
}

/// Problems name the file as uploaded, not the scratch folder it was planned in.
fn relative(text: &str, dir: &Path) -> String {
    text.replace(&format!("{}/", dir.display()), "")
}

/// A file name without folders or odd characters, keeping its extension.
fn plain_name(name: &str) -> String {
    let base = super::page::plain_file_name(name);
    if base.is_empty() {
        "upload.csv".into()
    } else {
        base
    }
}

/// A private folder removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        let dir =
            std::env::temp_dir().join(format!("onboard-preview-{}", crate::secret::random_hex(8)));
        fs_err::create_dir(&dir)?;
        crate::state::private_dir(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
