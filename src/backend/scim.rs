//! SCIM 2.0 applications (RFC 7643, RFC 7644): the chat, code host or ticketing system a hire
//! needs an account in. One [`Scim`] per configured application: HTTPS (plain HTTP only to
//! loopback), a bearer token from a file or the environment (never logged or journaled),
//! retries with backoff on 429 and 5xx that honour `Retry-After`, and the server's SCIM error
//! (`scimType`, `detail`) explained.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{BackendError, BackendResult};
use crate::secret::Secret;

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

/// One application's SCIM endpoint.
pub struct Scim {
    config: ScimConfig,
    agent: ureq::Agent,
    /// How many times a request refused with 429 or 5xx is tried again.
    retries: u32,
}

/// A SCIM response: its status and its JSON body (`Null` when it had none).
struct Reply {
    status: u16,
    body: Value,
}

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
            config,
            agent,
            retries: 4,
        })
    }

    /// The application, for messages: its name and URL (never the token).
    pub fn describe(&self) -> String {
        format!("{} ({})", self.config.name, self.config.url)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.url.trim_end_matches('/'))
    }

    /// One request, tried again on 429 and 5xx (honouring `Retry-After`, at most 30 s) when
    /// `idempotent`; a connection that fails before an answer is `Unavailable`.
    fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        idempotent: bool,
    ) -> BackendResult<Reply> {
        let mut attempt = 0;
        loop {
            let reply = self.once(method, path, query, body)?;
            let retryable = reply.0.status == 429 || reply.0.status >= 500;
            if !retryable || !idempotent || attempt >= self.retries {
                return Ok(reply.0);
            }
            let backoff = Duration::from_millis(250 << attempt);
            let wait = reply
                .1
                .map_or(backoff, Duration::from_secs)
                .min(Duration::from_secs(30));
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// One HTTP exchange: the reply and its `Retry-After` seconds.
    fn once(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> BackendResult<(Reply, Option<u64>)> {
        let url = self.url(path);
        let auth = format!("Bearer {}", self.config.token.expose());
        let unavailable = |e: ureq::Error| {
            let mut why = plain_error(&e);
            if why.contains("certificate") {
                why.push_str(&format!(
                    " (if its certificate is from your own CA, name the CA file in scim.{}.ca_file)",
                    self.config.name
                ));
            }
            BackendError::Unavailable(format!("{}: {why}", self.describe()))
        };
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = self
                    .agent
                    .get(&url)
                    .header("Authorization", &auth)
                    .header("Accept", "application/scim+json");
                for (k, v) in query {
                    r = r.query(*k, *v);
                }
                r.call()
            }
            (method, Some(body)) => {
                let r = match method {
                    "POST" => self.agent.post(&url),
                    "PATCH" => self.agent.patch(&url),
                    _ => self.agent.put(&url),
                };
                r.header("Authorization", &auth)
                    .header("Accept", "application/scim+json")
                    .header("Content-Type", "application/scim+json")
                    .send(body.to_string())
            }
            (method, None) => {
                return Err(BackendError::Other(format!("{method} without a body")));
            }
        };
        let mut response = result.map_err(unavailable)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = response
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_to_string()
            .map_err(unavailable)?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                BackendError::Other(format!(
                    "{} answered {status} with something that is not JSON: {e}",
                    self.describe()
                ))
            })?
        };
        Ok((Reply { status, body }, retry_after))
    }

    /// A reply that is not a success, explained.
    fn refused(&self, what: &str, reply: &Reply) -> BackendError {
        let detail = reply.body["detail"].as_str().unwrap_or("");
        let scim_type = reply.body["scimType"].as_str();
        let why = match (reply.status, scim_type) {
            (401, _) => "the bearer token was refused (401): check the application's token".into(),
            (403, _) => "the token may not do this (403): check the token's permissions".into(),
            (409, Some("uniqueness")) | (409, None) => {
                "a value that must be unique is taken (409 uniqueness)".into()
            }
            (status, Some(t)) => format!("{status} {t}: {}", explain(t)),
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

    /// Users matching a filter (built with [`filter_string`]).
    pub fn find_users(&self, filter: &str) -> BackendResult<Vec<Value>> {
        let reply = self.request("GET", "/Users", &[("filter", filter)], None, true)?;
        if reply.status != 200 {
            return Err(self.refused(&format!("searching users ({filter})"), &reply));
        }
        Ok(reply.body["Resources"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// A user by id; `None` when there is none.
    pub fn get_user(&self, id: &str) -> BackendResult<Option<Value>> {
        let reply = self.request("GET", &format!("/Users/{}", segment(id)), &[], None, true)?;
        match reply.status {
            200 => Ok(Some(reply.body)),
            404 => Ok(None),
            _ => Err(self.refused(&format!("reading user {id}"), &reply)),
        }
    }

    /// Creates a user; the created resource. Not retried here: the caller looks for it first.
    pub fn create_user(&self, user: &Value) -> BackendResult<Value> {
        let reply = self.request("POST", "/Users", &[], Some(user), false)?;
        match reply.status {
            201 | 200 => Ok(reply.body),
            _ => Err(self.refused(
                &format!("creating user {}", user["userName"].as_str().unwrap_or("")),
                &reply,
            )),
        }
    }

    /// A group's id by its `displayName`.
    pub fn find_group(&self, name: &str) -> BackendResult<Option<String>> {
        let filter = format!("displayName eq {}", filter_string(name));
        let reply = self.request(
            "GET",
            "/Groups",
            &[("filter", &filter), ("attributes", "id,displayName")],
            None,
            true,
        )?;
        if reply.status != 200 {
            return Err(self.refused(&format!("searching group {name}"), &reply));
        }
        let found = reply.body["Resources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(found
            .iter()
            .find(|g| g["displayName"].as_str() == Some(name))
            .and_then(|g| g["id"].as_str().map(str::to_owned)))
    }

    /// Whether `user` is a member of `group`, asked with a filter (the group is not read whole).
    pub fn is_member(&self, group: &str, user: &str) -> BackendResult<bool> {
        let filter = format!(
            "id eq {} and members[value eq {}]",
            filter_string(group),
            filter_string(user)
        );
        let reply = self.request(
            "GET",
            "/Groups",
            &[("filter", &filter), ("attributes", "id")],
            None,
            true,
        )?;
        if reply.status != 200 {
            return Err(self.refused("checking a group's members", &reply));
        }
        Ok(reply.body["totalResults"].as_u64().unwrap_or(0) > 0
            || reply.body["Resources"]
                .as_array()
                .is_some_and(|r| !r.is_empty()))
    }

    /// Adds `user` to `group` with a PATCH (adding a member twice is no change).
    pub fn add_member(&self, group: &str, user: &str) -> BackendResult<()> {
        let patch = json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": user}]}],
        });
        let reply = self.request(
            "PATCH",
            &format!("/Groups/{}", segment(group)),
            &[],
            Some(&patch),
            true,
        )?;
        match reply.status {
            200 | 204 => Ok(()),
            _ => Err(self.refused("adding a group member", &reply)),
        }
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

    #[test]
    fn filter_values_stay_one_value() {
        assert_eq!(filter_string("ada@example.org"), "\"ada@example.org\"");
        assert_eq!(
            filter_string("x\" or userName pr or \"\\"),
            "\"x\\\" or userName pr or \\\"\\\\\""
        );
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    /// Answers each connection's request with the next of `replies`, then closes it.
    fn responder(replies: Vec<&'static str>) -> (String, std::thread::JoinHandle<Vec<String>>) {
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
                conn.write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        (url, handle)
    }

    /// A 429 is tried again after its Retry-After; the token goes only in its header.
    #[test]
    fn too_many_requests_waits_for_retry_after() {
        let busy = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let body = r#"{"Resources":[],"totalResults":0}"#;
        let ok: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let (url, server) = responder(vec![busy, ok]);
        let scim = Scim::new(ScimConfig {
            name: "chat".into(),
            url,
            token: Secret::new("t0ken".into()),
            ca_file: None,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        let start = std::time::Instant::now();
        let found = scim.find_users("userName eq \"a\\\"b\"").unwrap();
        assert!(found.is_empty());
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

    /// A SCIM error is explained with its scimType and the server's detail.
    #[test]
    fn scim_errors_are_explained() {
        let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidFilter","detail":"bad filter"}"#;
        let reply: &'static str = Box::leak(
            format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let (url, server) = responder(vec![reply]);
        let scim = Scim::new(ScimConfig {
            name: "chat".into(),
            url,
            token: Secret::new("t".into()),
            ca_file: None,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        let e = scim.find_users("x").unwrap_err().to_string();
        assert!(
            e.contains("400 invalidFilter: the server did not accept the search filter (the server says: bad filter)"),
            "{e}"
        );
        server.join().unwrap();
    }
}
