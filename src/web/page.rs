//! Rendering pages, the headers every answer carries, and the pages that say no.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Web;
use super::guard::User;

/// The largest request body (an evidence file or an HR export with the form around it).
pub const UPLOAD_LIMIT: usize = 8 * 1024 * 1024;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html.tera")),
    ("signin.html", include_str!("templates/signin.html.tera")),
    ("board.html", include_str!("templates/board.html.tera")),
    (
        "board-table.html",
        include_str!("templates/board-table.html.tera"),
    ),
    ("hire.html", include_str!("templates/hire.html.tera")),
    ("sign.html", include_str!("templates/sign.html.tera")),
    ("welcome.html", include_str!("templates/welcome.html.tera")),
    ("preview.html", include_str!("templates/preview.html.tera")),
    ("report.html", include_str!("templates/report.html.tera")),
    ("message.html", include_str!("templates/message.html.tera")),
];

const STYLESHEET: &str = include_str!("templates/onboard.css");

/// The page templates, escaped as HTML: hire data is data.
pub struct Pages(tera::Tera);

impl Pages {
    pub fn new() -> Result<Pages, tera::Error> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on([".html"]);
        tera.add_raw_templates(TEMPLATES.iter().copied())?;
        Ok(Pages(tera))
    }
}

/// Who is looking at a page, for its header.
#[derive(Serialize, Default)]
pub struct Viewer {
    pub name: String,
    pub roles: Vec<&'static str>,
    pub csrf: String,
}

impl Viewer {
    pub fn of(user: &User) -> Viewer {
        Viewer {
            name: user.name.clone(),
            roles: user.roles.iter().map(|r| r.name()).collect(),
            csrf: user.csrf.clone(),
        }
    }
}

impl Web {
    /// Renders `template` with `data` (whose fields the template uses) and the viewer.
    pub(super) fn render(
        &self,
        status: StatusCode,
        template: &str,
        title: &str,
        viewer: Option<&User>,
        data: impl Serialize,
    ) -> Response {
        let mut ctx = match tera::Context::from_serialize(&data) {
            Ok(c) => c,
            Err(e) => return self.broken(&e.to_string()),
        };
        ctx.insert("title", title);
        ctx.insert("viewer", &viewer.map(Viewer::of));
        match self.pages.0.render(template, &ctx) {
            Ok(body) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response(),
            Err(e) => self.broken(&format!("{template}: {e}")),
        }
    }

    /// A part of a page, rendered on its own (to be kept and reused).
    pub(super) fn fragment(&self, template: &str, data: &impl Serialize) -> Result<String, String> {
        let ctx = tera::Context::from_serialize(data).map_err(|e| e.to_string())?;
        self.pages
            .0
            .render(template, &ctx)
            .map_err(|e| format!("{template}: {e}"))
    }

    /// A page that says something happened or was refused, and what to do.
    pub(super) fn message(
        &self,
        status: StatusCode,
        title: &str,
        text: &str,
        next: &str,
        viewer: Option<&User>,
    ) -> Response {
        #[derive(Serialize)]
        struct M<'a> {
            text: &'a str,
            next: &'a str,
        }
        self.render(status, "message.html", title, viewer, M { text, next })
    }

    pub(super) fn forbidden(&self, text: &str, viewer: Option<&User>) -> Response {
        self.message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            text,
            "If you think you should be able to do this, ask IT to check your roles.",
            viewer,
        )
    }

    /// Something on our side failed: logged, and a page that says so without detail.
    pub(super) fn broken(&self, why: &str) -> Response {
        self.log(&format!("error: {why}"));
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Something went wrong on the server; it was logged. Try again, or ask IT.",
        )
            .into_response()
    }

    /// The cookie that carries the session.
    pub(super) fn session_cookie(&self) -> &'static str {
        if self.settings.tls.is_some() {
            "__Host-onboard"
        } else {
            "onboard"
        }
    }

    /// `Set-Cookie` for a value (empty: delete it).
    pub(super) fn set_cookie(&self, name: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.settings.tls.is_some() {
            "; Secure"
        } else {
            ""
        };
        let max_age = if value.is_empty() { 0 } else { max_age };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        ))
        .expect("cookie values are hex")
    }

    /// The signed-in person, if the request carries a live session.
    pub(super) fn viewer(&self, headers: &HeaderMap) -> Option<User> {
        let cookie = cookie(headers, self.session_cookie())?;
        self.sessions.get(&cookie, self.now())
    }
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// Sends the browser to the sign-in page, coming back to `path` after.
pub fn to_sign_in(path: &str) -> Response {
    let back = if path.starts_with('/') && !path.starts_with("//") {
        path
    } else {
        "/board"
    };
    redirect(&format!("/signin?next={}", query_value(back)))
}

pub fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
        )],
    )
        .into_response()
}

/// The headers every answer carries: no script at all, no framing, no sniffing, no referrer
/// (a link's token is in its URL), no caching of pages that show hire data.
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    // A page may narrow it further (an email preview allows its own styles, in a sandbox).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

pub async fn not_found(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let viewer = web.viewer(&headers);
    web.message(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page at this address.",
        "Go to the board, or check the link you were sent.",
        viewer.as_ref(),
    )
}

/// A file name as uploaded, without folders and with only plain characters (`-_.`, ASCII
/// letters and digits), at most 100 characters; empty when nothing is left.
pub fn plain_file_name(name: &str) -> String {
    name.rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .chars()
        .take(100)
        .collect()
}

/// Percent-encodes a path segment (a hire or step id).
pub fn path_segment(value: &str) -> String {
    encode(value, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Percent-encodes a query value.
pub fn query_value(value: &str) -> String {
    encode(value, |b| {
        b.is_ascii_alphanumeric() || b"-._~/".contains(&b)
    })
}

fn encode(value: &str, keep: impl Fn(u8) -> bool) -> String {
    value
        .bytes()
        .map(|b| {
            if keep(b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_for_paths() {
        assert_eq!(path_segment("E1042"), "E1042");
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(query_value("/hire/E1"), "/hire/E1");
    }

    #[test]
    fn every_page_template_is_listed_and_parses() {
        Pages::new().unwrap();
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/web/templates"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".html.tera")
            })
            .count();
        assert_eq!(files, TEMPLATES.len());
    }
}
