//! One application's requests: paced, sent, and sorted by their status before any body is
//! read, so a proxy's HTML 503 is an outage to wait out, not a parse error. A 429 or 5xx is
//! tried again after the application's `Retry-After` (seconds or an HTTP date, however long,
//! up to `scim.NAME.max_retry_after`), an unanswered GET or PATCH after a backoff; a POST never
//! here (see `Scim::create_user`). A body the application refuses as `application/scim+json`
//! (415) is sent as `application/json` from then on.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use super::pace::Op;
use super::{Scim, plain_error};
use crate::backend::BackendError;

/// The largest answer read (a group read whole can be far larger: it is never asked for).
const LIMIT: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Patch,
}

/// One request, for one exchange.
pub(super) struct Req<'a> {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<&'a Value>,
    if_match: Option<String>,
    /// What it does, for messages ("reading user 7").
    what: &'a str,
}

impl<'a> Req<'a> {
    pub(super) fn get(path: &str, what: &'a str) -> Req<'a> {
        Req {
            method: Method::Get,
            path: path.to_owned(),
            query: Vec::new(),
            body: None,
            if_match: None,
            what,
        }
    }

    pub(super) fn post(path: &str, body: &'a Value, what: &'a str) -> Req<'a> {
        Req {
            method: Method::Post,
            body: Some(body),
            ..Req::get(path, what)
        }
    }

    pub(super) fn patch(path: &str, body: &'a Value, what: &'a str) -> Req<'a> {
        Req {
            method: Method::Patch,
            body: Some(body),
            ..Req::get(path, what)
        }
    }

    pub(super) fn query(mut self, key: &'static str, value: &str) -> Req<'a> {
        self.query.push((key, value.to_owned()));
        self
    }

    pub(super) fn if_match(mut self, etag: Option<&str>) -> Req<'a> {
        self.if_match = etag.map(str::to_owned);
        self
    }

    fn op(&self) -> Op {
        match (self.method, self.path.as_str()) {
            (Method::Get, _) => Op::Read,
            (Method::Post, "/Users") => Op::Create,
            _ => Op::Write,
        }
    }
}

/// An answer: its status, its JSON body (`Null` when it had none, or none that is JSON), and
/// its `ETag`.
pub(super) struct Reply {
    pub status: u16,
    pub body: Value,
    pub etag: Option<String>,
}

/// An exchange that failed: why, and whether it may pass if tried again.
pub(super) struct Failed {
    pub error: BackendError,
    pub again: Again,
}

pub(super) enum Again {
    /// Trying again will not help.
    No,
    /// After what the application asked for.
    After(Duration),
    /// After a growing backoff (0.25 s, 0.5 s, 1 s, …).
    Backoff,
    /// No answer (a timeout, a connection refused or cut): after a backoff, at most
    /// [`UNANSWERED`] times more, so a server that hangs fails the step in bounded time.
    Unanswered,
}

/// How many times an unanswered request is tried again.
pub(super) const UNANSWERED: u32 = 2;

impl Again {
    /// How long to wait before try `attempt + 1`; `None`: do not try again.
    pub(super) fn wait(&self, attempt: u32) -> Option<Duration> {
        match self {
            Again::No => None,
            Again::After(d) => Some(*d),
            Again::Backoff | Again::Unanswered => {
                Some(Duration::from_millis(250 << attempt.min(6)))
            }
        }
    }
}

/// The tries of one request: at most `retries` more after the first, of which at most
/// [`UNANSWERED`] after no answer.
pub(super) struct Tries {
    done: u32,
    unanswered: u32,
    retries: u32,
}

impl Tries {
    pub(super) fn new(retries: u32) -> Tries {
        Tries {
            done: 0,
            unanswered: 0,
            retries,
        }
    }

    /// After a failed try: how long to wait before the next, or `None` when there is none.
    pub(super) fn next(&mut self, again: &Again) -> Option<Duration> {
        self.done += 1;
        if let Again::Unanswered = again {
            self.unanswered += 1;
            if self.unanswered > UNANSWERED {
                return None;
            }
        }
        if self.done > self.retries {
            return None;
        }
        again.wait(self.done - 1)
    }

    pub(super) fn count(&self) -> u32 {
        self.done
    }
}

/// The error of the last of `tries`, saying so.
pub(super) fn tried(error: BackendError, tries: u32) -> BackendError {
    if tries < 2 {
        return error;
    }
    let note = |m: String| format!("{m} (tried {tries} times)");
    match error {
        BackendError::Unavailable(m) => BackendError::Unavailable(note(m)),
        BackendError::Refused(m) => BackendError::Refused(note(m)),
        BackendError::Other(m) => BackendError::Other(note(m)),
        other => other,
    }
}

/// How long a `Retry-After` asks to wait (RFC 9110 §10.2.3): seconds, or an HTTP date,
/// measured from the answer's `Date` (the server's clock) when it has one.
pub(super) fn retry_after(value: &str, date: Option<&str>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let parser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = parser.parse_timestamp(value).ok()?;
    let now = date
        .and_then(|d| parser.parse_timestamp(d.trim()).ok())
        .unwrap_or_else(jiff::Timestamp::now);
    let secs = at.as_second().saturating_sub(now.as_second()).max(0);
    Some(Duration::from_secs(secs.unsigned_abs()))
}

impl Scim {
    /// A GET or PATCH (both idempotent here: adding a member twice is no change), tried again
    /// while it may pass, at most `retries` times; the last failure says how many tries.
    pub(super) fn request(&self, req: Req<'_>) -> Result<Reply, BackendError> {
        debug_assert!(
            req.method != Method::Post,
            "a POST is retried only after a look"
        );
        let mut tries = Tries::new(self.retries);
        loop {
            let failed = match self.exchange(&req) {
                Ok(reply) => return Ok(reply),
                Err(failed) => failed,
            };
            match tries.next(&failed.again) {
                Some(wait) => std::thread::sleep(wait),
                None => return Err(tried(failed.error, tries.count())),
            }
        }
    }

    /// One exchange, paced. `Ok` is an answer to read (a success or a refusal); `Err` is an
    /// exchange that failed, with whether it may pass.
    pub(super) fn exchange(&self, req: &Req<'_>) -> Result<Reply, Failed> {
        self.pace.wait(req.op());
        let json_only = self.json_only.load(Ordering::Relaxed);
        let mut response = self.send(req, json_only)?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header("ETag");
        let asked = header("Retry-After").map(|v| (retry_after(&v, header("Date").as_deref()), v));
        // The status decides; a body is only read for what it says.
        if status == 429 || status >= 500 {
            let body = read_json(&mut response, 64 * 1024).unwrap_or(Value::Null);
            let error = self.refused(
                req.what,
                &Reply {
                    status,
                    body,
                    etag: None,
                },
            );
            let again = match asked {
                Some((Some(wait), _)) if wait > self.config.max_retry_after => {
                    return Err(Failed {
                        error: self.too_long(req.what, status, wait),
                        again: Again::No,
                    });
                }
                Some((Some(wait), _)) => Again::After(wait),
                _ => Again::Backoff,
            };
            if let (429, Again::After(wait)) = (status, &again) {
                self.pace.pause(*wait);
            }
            return Err(Failed { error, again });
        }
        if status == 415 && req.body.is_some() && !json_only {
            self.json_only.store(true, Ordering::Relaxed);
            return Err(Failed {
                error: BackendError::Refused(format!(
                    "{}: {}: 415: the application accepts no application/scim+json body",
                    self.describe(),
                    req.what
                )),
                again: Again::After(Duration::ZERO),
            });
        }
        let body = match read_json(&mut response, LIMIT) {
            Ok(body) => body,
            // A write's answer is not needed to know it happened (it is confirmed by reading).
            Err(_) if req.method == Method::Patch && (200..300).contains(&status) => Value::Null,
            Err(_) if status >= 400 => Value::Null,
            Err(why) => {
                return Err(Failed {
                    error: BackendError::Other(format!(
                        "{}: {}: answered {status} with {why}",
                        self.describe(),
                        req.what
                    )),
                    again: Again::No,
                });
            }
        };
        Ok(Reply { status, body, etag })
    }

    fn send(
        &self,
        req: &Req<'_>,
        json_only: bool,
    ) -> Result<ureq::http::Response<ureq::Body>, Failed> {
        let url = self.url(&req.path);
        let auth = format!("Bearer {}", self.config.token.expose());
        let accept = "application/scim+json, application/json";
        let result = match (req.method, req.body) {
            (Method::Get, _) => {
                let mut r = self
                    .agent
                    .get(&url)
                    .header("Authorization", &auth)
                    .header("Accept", accept);
                for (k, v) in &req.query {
                    r = r.query(*k, v);
                }
                r.call()
            }
            (method, body) => {
                let mut r = match method {
                    Method::Post => self.agent.post(&url),
                    _ => self.agent.patch(&url),
                };
                for (k, v) in &req.query {
                    r = r.query(*k, v);
                }
                if let Some(etag) = &req.if_match {
                    r = r.header("If-Match", etag);
                }
                let content_type = if json_only {
                    "application/json"
                } else {
                    "application/scim+json"
                };
                r.header("Authorization", &auth)
                    .header("Accept", accept)
                    .header("Content-Type", content_type)
                    .send(body.map(Value::to_string).unwrap_or_default())
            }
        };
        result.map_err(|e| {
            // An answer that did not come may come on a second try (a GET or PATCH; a POST
            // only after a look).
            let passing = matches!(
                e,
                ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::Io(_)
            );
            let mut why = plain_error(&e);
            if why.contains("certificate") {
                why.push_str(&format!(
                    " (if its certificate is from your own CA, name the CA file in scim.{}.ca_file)",
                    self.config.name
                ));
            }
            Failed {
                error: BackendError::Unavailable(format!(
                    "{}: {}: {why}",
                    self.describe(),
                    req.what
                )),
                again: if passing { Again::Unanswered } else { Again::No },
            }
        })
    }

    /// A `Retry-After` longer than onboard is set to wait.
    fn too_long(&self, what: &str, status: u16, wait: Duration) -> BackendError {
        let env = format!(
            "ONBOARD_SCIM_{}_MAX_RETRY_AFTER",
            self.config.name.to_uppercase().replace('-', "_")
        );
        BackendError::Unavailable(format!(
            "{}: {what}: {status} asks to wait {} s before trying again (Retry-After), more than \
             scim.{}.max_retry_after ({} s): raise scim.{}.max_retry_after (or {env}) to wait \
             that long, or run again later",
            self.describe(),
            wait.as_secs(),
            self.config.name,
            self.config.max_retry_after.as_secs(),
            self.config.name,
        ))
    }
}

/// A body as JSON (`Null` when empty), read up to `limit` bytes.
fn read_json(response: &mut ureq::http::Response<ureq::Body>, limit: u64) -> Result<Value, String> {
    let text = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_string()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => {
                format!("an answer larger than {} MiB", limit / 1024 / 1024)
            }
            other => format!("an answer that could not be read ({})", plain_error(&other)),
        })?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| format!("something that is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date_however_long() {
        assert_eq!(retry_after("45", None), Some(Duration::from_secs(45)));
        assert_eq!(retry_after(" 3600 ", None), Some(Duration::from_secs(3600)));
        assert_eq!(
            retry_after(
                "Sun, 06 Dec 2026 04:31:40 GMT",
                Some("Sun, 06 Dec 2026 04:30:00 GMT")
            ),
            Some(Duration::from_secs(100))
        );
        // A date in the past: no wait.
        assert_eq!(
            retry_after(
                "Sun, 06 Dec 2026 04:29:00 GMT",
                Some("Sun, 06 Dec 2026 04:30:00 GMT")
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", None), None);
    }

    #[test]
    fn a_wait_never_overflows() {
        assert_eq!(Again::Backoff.wait(40), Some(Duration::from_millis(16_000)));
    }
}
