//! The auditors' report: the verification banner, and the report as HTML, CSV or JSON, the
//! same as `onboard report` writes.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Web;
use super::board::signed_in;
use super::guard::{Role, User};
use crate::report::{self, JournalFile, Report, View};

fn auditor(web: &Web, headers: &HeaderMap, path: &str) -> Result<User, Response> {
    let user = signed_in(web, headers, path)?;
    if user.may(Role::Audit) || user.may(Role::It) {
        Ok(user)
    } else {
        Err(web.forbidden("Reports are for auditors and IT.", Some(&user)))
    }
}

/// The viewer, if an auditor or IT, and the report, read on a blocking thread.
async fn for_auditor(
    web: &Arc<Web>,
    headers: &HeaderMap,
    path: &str,
) -> Result<(User, Report), Response> {
    let user = auditor(web, headers, path)?;
    let reader = web.clone();
    match tokio::task::spawn_blocking(move || reader.report()).await {
        Ok(Ok(r)) => Ok((user, r)),
        Ok(Err(e)) => Err(web.broken(&e)),
        Err(e) => Err(web.broken(&e.to_string())),
    }
}

impl Web {
    /// The full report over every hire in the store.
    fn report(&self) -> Result<Report, String> {
        let store = self.store.as_ref();
        let journals: Vec<JournalFile> = store
            .hires()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|h| JournalFile::read(store, h))
            .collect();
        Ok(report::build(&journals, View::Full, self.clock.now()))
    }
}

#[derive(Serialize)]
struct Banner {
    verified: bool,
    hires: usize,
    complete: usize,
    in_progress: usize,
    failed: usize,
    broken: Vec<String>,
    generated_at: String,
}

pub async fn page(
    State(web): State<Arc<Web>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (user, report) = match for_auditor(&web, &headers, &uri.to_string()).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let banner = Banner {
        verified: report.summary.all_verified,
        hires: report.summary.hires,
        complete: report.summary.complete,
        in_progress: report.summary.in_progress,
        failed: report.summary.failed,
        broken: report.broken(),
        generated_at: report.generated_at.clone(),
    };
    web.render(StatusCode::OK, "report.html", "Report", Some(&user), banner)
}

pub async fn download(
    State(web): State<Arc<Web>>,
    Path(format): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (user, report) = match for_auditor(&web, &headers, &uri.to_string()).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let (body, kind) = match format.as_str() {
        "csv" => (report::csv(&report), "text/csv; charset=utf-8"),
        "json" => (
            serde_json::to_string_pretty(&report).expect("a report serializes") + "\n",
            "application/json",
        ),
        "html" => match report::html(&report) {
            Ok(h) => (h, "text/html; charset=utf-8"),
            Err(e) => return web.broken(&e.to_string()),
        },
        _ => {
            return web.message(
                StatusCode::NOT_FOUND,
                "No such format",
                "The report comes as .html, .csv or .json.",
                "Go back to the report page.",
                Some(&user),
            );
        }
    };
    web.log(&format!("{} downloaded the report as {format}", user.login));
    let stamp = report.generated_at.replace([':', '-'], "");
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"onboard-report-{}.{format}\"",
        stamp
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // The self-contained HTML report carries its own styles.
    if format == "html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
        );
    }
    response
}
