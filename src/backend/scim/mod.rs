//! SCIM 2.0 applications (RFC 7643, RFC 7644): the chat, code host or ticketing system a hire
//! needs an account in. One [`Scim`] per configured application, shared by every worker of a
//! cohort: HTTPS (plain HTTP only to loopback), a bearer token from a file or the environment
//! (never logged or journaled), the application's per-minute limits kept (`pace.rs`), retries
//! decided from the status before the body is read and honouring `Retry-After` (`http.rs`),
//! group ids cached for the run and memberships confirmed from what the application returns
//! (`groups.rs`), and the server's SCIM error (`scimType`, `detail`) explained.
//!
//! What real providers do differently (and how onboard copes) is tested against a second server
//! beside scim2-server, `tests/scim_dialect.py`.

mod groups;
mod http;
mod pace;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::{BackendError, BackendResult};
use crate::secret::Secret;
use http::{Again, Failed, Req};
pub use pace::Limits;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// How to reach one application.
#[derive(Debug, Clone)]
pub struct ScimConfig {
    /// The name the playbook uses (`app: chat`).
    pub name: String,
    /// The SCIM base URL, e.g. `https://chat.example.org/scim/v2`.
    pub url: String,
    pub token: Secret,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    /// The application's per-minute limits, kept by every worker together.
    pub limits: Limits,
    /// The longest `Retry-After` onboard waits; a longer one fails the step, naming the setting.
    pub max_retry_after: Duration,
}

/// The configured applications, by name.
#[derive(Default)]
pub struct ScimApps {
    apps: BTreeMap<String, Scim>,
}

impl ScimApps {
    pub fn connect(configs: &[ScimConfig]) -> BackendResult<ScimApps> {
        let mut apps = BTreeMap::new();
        for c in configs {
            apps.insert(c.name.clone(), Scim::new(c.clone())?);
        }
        Ok(ScimApps { apps })
    }

    /// The application named `name`, or why there is none.
    pub fn app(&self, name: &str) -> Result<&Scim, String> {
        self.apps.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.apps.keys().map(String::as_str).collect();
            format!(
                "no SCIM application `{name}` is configured{}",
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (configured: {})", known.join(", "))
                }
            )
        })
    }
}

/// One application's SCIM endpoint, and what this run learned about it.
pub struct Scim {
    config: ScimConfig,
    agent: ureq::Agent,
    /// How many times a request refused with 429 or 5xx (or unanswered) is tried again.
    retries: u32,
    pace: pace::Pace,
    /// The application refused `application/scim+json` bodies (415): send `application/json`.
    json_only: AtomicBool,
    /// The application answered 412 to a PATCH without `If-Match`: send the group's ETag.
    if_match: AtomicBool,
    /// Whether users list their `groups` (RFC 7643 §4.1.2): `UNKNOWN`, `LISTS` or `SILENT`.
    lists_groups: AtomicU8,
    /// Group ids by `displayName`, and each group's last ETag, for the run.
    groups: groups::Cache,
    /// Users this run created, with the group ids their creation's answer listed.
    created: Mutex<HashMap<String, BTreeSet<String>>>,
}

const UNKNOWN: u8 = 0;
const LISTS: u8 = 1;
const SILENT: u8 = 2;

impl Scim {
    fn new(config: ScimConfig) -> BackendResult<Scim> {
        let certs = roots(config.ca_file.as_deref())?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent = ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .tls_config(tls)
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(config.timeout))
                .user_agent(concat!("onboard/", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        Ok(Scim {
            pace: pace::Pace::new(config.limits),
            config,
            agent,
            retries: 4,
            json_only: AtomicBool::new(false),
            if_match: AtomicBool::new(false),
            lists_groups: AtomicU8::new(UNKNOWN),
            groups: groups::Cache::default(),
            created: Mutex::new(HashMap::new()),
        })
    }

    /// The application, for messages: its name and URL (never the token).
    pub fn describe(&self) -> String {
        format!("{} ({})", self.config.name, self.config.url)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.url.trim_end_matches('/'))
    }

    /// A reply that is not a success, explained.
    fn refused(&self, what: &str, reply: &http::Reply) -> BackendError {
        let detail = reply.body["detail"].as_str().unwrap_or("");
        let scim_type = reply.body["scimType"].as_str();
        let why = match (reply.status, scim_type) {
            (401, _) => "the bearer token was refused (401): check the application's token".into(),
            (403, _) => "the token may not do this (403): check the token's permissions".into(),
            (409, Some("uniqueness")) | (409, None) => {
                "a value that must be unique is taken (409 uniqueness)".into()
            }
            (415, _) => "the application refuses the body's media type (415), application/json \
                         as well as application/scim+json"
                .into(),
            (status, Some(t)) => format!("{status} {t}: {}", explain(t)),
            (status, None) if reply.body.is_null() && (status == 429 || status >= 500) => {
                format!(
                    "{status} (an answer that is not the application's: a proxy or load balancer in front of it?)"
                )
            }
            (status, None) => format!("{status}"),
        };
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" (the server says: {detail})")
        };
        let message = format!("{}: {what}: {why}{detail}", self.describe());
        if reply.status == 429 || reply.status >= 500 {
            BackendError::Unavailable(message)
        } else {
            BackendError::Refused(message)
        }
    }

    /// Users matching a filter (built with [`filter_string`]); `None` when the application
    /// cannot filter on that attribute (400 `invalidFilter`).
    pub fn find_users(&self, filter: &str) -> BackendResult<Option<Vec<Value>>> {
        let what = format!("searching users ({filter})");
        let reply = self.request(Req::get("/Users", &what).query("filter", filter))?;
        match reply.status {
            200 => Ok(Some(
                reply.body["Resources"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            )),
            400 if reply.body["scimType"] == "invalidFilter" => Ok(None),
            _ => Err(self.refused(&what, &reply)),
        }
    }

    /// A user by id; `None` when there is none.
    pub fn get_user(&self, id: &str) -> BackendResult<Option<Value>> {
        let what = format!("reading user {id}");
        let reply = self.request(Req::get(&format!("/Users/{}", segment(id)), &what))?;
        match reply.status {
            200 => Ok(Some(reply.body)),
            404 => Ok(None),
            _ => Err(self.refused(&what, &reply)),
        }
    }

    /// Creates a user: the created resource. A POST is never tried again blindly: after one
    /// that failed, `look` (which finds the user if the POST made it) is asked first, and a
    /// POST that may pass (no answer, 429, 5xx, a media type learned) is sent again only when
    /// it found none, after the wait the application asked for (`Retry-After`).
    pub fn create_user<E: From<BackendError>>(
        &self,
        user: &Value,
        mut look: impl FnMut() -> Result<Option<Value>, E>,
    ) -> Result<Value, E> {
        let what = format!(
            "creating user {}",
            user["userName"].as_str().unwrap_or_default()
        );
        let mut tries = http::Tries::new(self.retries);
        loop {
            let failed = match self.exchange(&Req::post("/Users", user, &what)) {
                Ok(reply) if matches!(reply.status, 200 | 201) => {
                    self.remember_created(&reply.body);
                    return Ok(reply.body);
                }
                Ok(reply) => Failed {
                    error: self.refused(&what, &reply),
                    again: Again::No,
                },
                Err(failed) => failed,
            };
            let wait = tries.next(&failed.again);
            if let Some(wait) = wait {
                std::thread::sleep(wait);
            }
            if let Some(found) = look()? {
                return Ok(found);
            }
            if wait.is_none() {
                return Err(http::tried(failed.error, tries.count()).into());
            }
        }
    }

    fn remember_created(&self, user: &Value) {
        if let Some(id) = user["id"].as_str() {
            let groups = user["groups"]
                .as_array()
                .map(|g| {
                    g.iter()
                        .filter_map(|g| g["value"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            self.created
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.to_owned(), groups);
        }
    }

    /// The groups of a user this run created, as its creation's answer listed them (a user
    /// made a moment ago needs no reading); `None` for any other user.
    pub fn created_in(&self, user: &str) -> Option<BTreeSet<String>> {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
    }
}

/// A SCIM filter's string value (RFC 7644 §3.4.2.2: a JSON string), so a value with `"`, `\`,
/// `)` or ` or ` stays one value.
pub fn filter_string(value: &str) -> String {
    Value::String(value.to_owned()).to_string()
}

/// An id as one path segment: anything but unreserved characters percent-encoded.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// What a `scimType` (RFC 7644 §3.12) means, for the person reading the error.
fn explain(scim_type: &str) -> &'static str {
    match scim_type {
        "invalidFilter" => "the server did not accept the search filter",
        "tooMany" => "the server would return too many results",
        "mutability" => "an attribute the server does not let clients change",
        "invalidSyntax" => "the request body is not what the server expects",
        "invalidPath" => "a PATCH path the server does not know",
        "noTarget" => "the PATCH path matched nothing",
        "invalidValue" => "a value is missing or not valid",
        "invalidVers" => "the SCIM version is not supported",
        "sensitive" => "the request would put sensitive data in a URL",
        _ => "see the server's detail",
    }
}

/// A transport error without anything from the request (the URL has no secret; the token is
/// only in a header).
fn plain_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "no answer in time (timeout)".into(),
        ureq::Error::ConnectionFailed => "cannot connect".into(),
        ureq::Error::HostNotFound => "the host name does not resolve".into(),
        ureq::Error::Io(io) => format!("connection error: {io}"),
        other => other.to_string(),
    }
}

/// The roots to trust: the CA file, else the system's.
fn roots(ca_file: Option<&std::path::Path>) -> BackendResult<Vec<ureq::tls::Certificate<'static>>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let ders: Vec<CertificateDer<'static>> = match ca_file {
        Some(path) => {
            let pem = crate::files::read_regular(path, crate::files::SETTING_LIMIT)
                .map_err(|e| BackendError::Other(format!("cannot read the CA file: {e}")))?;
            CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    BackendError::Other(format!(
                        "{} is not a PEM certificate file: {e}",
                        path.display()
                    ))
                })?
        }
        None => rustls_native_certs::load_native_certs().certs,
    };
    Ok(ders
        .iter()
        .map(|d| ureq::tls::Certificate::from_der(d.as_ref()).to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Instant;

    #[test]
    fn filter_values_stay_one_value() {
        assert_eq!(filter_string("ada@example.org"), "\"ada@example.org\"");
        assert_eq!(
            filter_string("x\" or userName pr or \"\\"),
            "\"x\\\" or userName pr or \\\"\\\\\""
        );
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    /// Answers each connection's request with the next of `replies` (`None`: no answer, the
    /// connection held open until the client gives up), then closes it.
    fn responder(replies: Vec<Option<String>>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                match reply {
                    Some(reply) => conn.write_all(reply.as_bytes()).unwrap(),
                    None => {
                        let _ = conn.read(&mut buf);
                    }
                }
            }
            seen
        });
        (url, handle)
    }

    fn answer(status: &str, headers: &str, body: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    const EMPTY: &str = r#"{"Resources":[],"totalResults":0}"#;

    fn scim(url: String, max_retry_after: u64) -> Scim {
        Scim::new(ScimConfig {
            name: "chat".into(),
            url,
            token: Secret::new("t0ken".into()),
            ca_file: None,
            timeout: Duration::from_secs(1),
            limits: Limits::default(),
            max_retry_after: Duration::from_secs(max_retry_after),
        })
        .unwrap()
    }

    /// A 429 is tried again after its Retry-After; the token goes only in its header.
    #[test]
    fn too_many_requests_waits_for_retry_after() {
        let (url, server) = responder(vec![
            answer("429 Too Many Requests", "Retry-After: 1\r\n", ""),
            answer("200 OK", "Content-Type: application/scim+json\r\n", EMPTY),
        ]);
        let scim = scim(url, 300);
        let start = Instant::now();
        let found = scim.find_users("userName eq \"a\\\"b\"").unwrap();
        assert_eq!(found, Some(Vec::new()));
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "waited for Retry-After"
        );
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(
            seen[1].contains("authorization: Bearer t0ken")
                || seen[1].contains("Authorization: Bearer t0ken")
        );
        assert!(
            !seen[1].lines().next().unwrap().contains("t0ken"),
            "not in the URL"
        );
    }

    /// Caught: a proxy's HTML 503 failed the step as "not JSON" instead of being tried again.
    #[test]
    fn a_proxys_html_503_is_tried_again_not_parsed() {
        let (url, server) = responder(vec![
            answer(
                "503 Service Unavailable",
                "Content-Type: text/html\r\n",
                "<html><body>503 Service Unavailable</body></html>",
            ),
            answer("200 OK", "Content-Type: application/scim+json\r\n", EMPTY),
        ]);
        assert_eq!(scim(url, 300).find_users("x").unwrap(), Some(Vec::new()));
        assert_eq!(server.join().unwrap().len(), 2);
    }

    /// Caught: a GET that timed out failed the step at once.
    #[test]
    fn a_get_that_times_out_is_tried_again() {
        let (url, server) = responder(vec![
            None,
            answer("200 OK", "Content-Type: application/scim+json\r\n", EMPTY),
        ]);
        assert_eq!(scim(url, 300).find_users("x").unwrap(), Some(Vec::new()));
        assert_eq!(server.join().unwrap().len(), 2);
    }

    /// Caught: a POST answered 429 failed the step; its Retry-After (an HTTP date here) is
    /// waited, then the user is looked for, and only then POSTed again.
    #[test]
    fn a_post_answered_429_waits_looks_then_posts_again() {
        let (url, server) = responder(vec![
            answer(
                "429 Too Many Requests",
                "Date: Sun, 06 Dec 2026 04:30:00 GMT\r\nRetry-After: Sun, 06 Dec 2026 04:30:01 GMT\r\n",
                "",
            ),
            answer(
                "201 Created",
                "Content-Type: application/scim+json\r\n",
                r#"{"id":"7","userName":"a"}"#,
            ),
        ]);
        let scim = scim(url, 300);
        let start = Instant::now();
        let mut looks = 0;
        let user = scim
            .create_user(&json!({"userName": "a"}), || {
                looks += 1;
                Ok::<_, BackendError>(None)
            })
            .unwrap();
        assert_eq!(user["id"], "7");
        assert_eq!(looks, 1, "looked for before the second POST");
        assert!(start.elapsed() >= Duration::from_secs(1));
        assert_eq!(server.join().unwrap().len(), 2);
        assert_eq!(scim.created_in("7"), Some(BTreeSet::new()));
    }

    /// A Retry-After beyond the configured cap fails at once, naming the setting.
    #[test]
    fn a_retry_after_beyond_the_cap_names_the_setting() {
        let (url, server) = responder(vec![answer(
            "429 Too Many Requests",
            "Retry-After: 3600\r\n",
            "",
        )]);
        let start = Instant::now();
        let e = scim(url, 60).find_users("x").unwrap_err().to_string();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            e.contains("asks to wait 3600 s before trying again (Retry-After), more than scim.chat.max_retry_after (60 s): raise scim.chat.max_retry_after (or ONBOARD_SCIM_CHAT_MAX_RETRY_AFTER)"),
            "{e}"
        );
        server.join().unwrap();
    }

    /// A SCIM error is explained with its scimType and the server's detail.
    #[test]
    fn scim_errors_are_explained() {
        let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidValue","detail":"bad value"}"#;
        let (url, server) = responder(vec![answer(
            "400 Bad Request",
            "Content-Type: application/scim+json\r\n",
            body,
        )]);
        let e = scim(url, 300).find_users("x").unwrap_err().to_string();
        assert!(
            e.contains(
                "400 invalidValue: a value is missing or not valid (the server says: bad value)"
            ),
            "{e}"
        );
        server.join().unwrap();
    }
}
