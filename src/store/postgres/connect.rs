//! Reaching the database: the URL (never with a password), TLS, the pool of connections, and
//! PostgreSQL's errors sorted into what a person must do.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use postgres::{Client, NoTls};

use crate::secret::Secret;

/// How to reach the database.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://[USER@]HOST[:PORT]/DATABASE`, without a password (refused when given).
    pub url: String,
    pub password: Option<Secret>,
    /// PEM file of the CA that signs the server certificate; default: the system's roots.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Allow an unencrypted connection to a host other than loopback.
    pub allow_plaintext: bool,
}

/// The parts of a `postgres://` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct PgUrl {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
}

/// What is wrong with a URL.
#[derive(Debug, PartialEq, Eq)]
pub enum UrlProblem {
    /// A password in it: refused, never shown.
    Password,
    Shape(&'static str),
}

impl PgUrl {
    pub fn parse(url: &str) -> Result<PgUrl, UrlProblem> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or(UrlProblem::Shape("is not a postgres:// URL"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or(UrlProblem::Shape("names no database"))?;
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, _)) if userinfo.contains(':') => return Err(UrlProblem::Password),
            Some((user, hostport)) => (Some(user.to_owned()), hostport),
            None => (None, authority),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((h, p)) => (h, p.strip_prefix(':')),
                None => return Err(UrlProblem::Shape("has an unclosed `[`")),
            },
            None => match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlProblem::Shape("has no valid host"));
        }
        let port = match port {
            None => 5432,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(UrlProblem::Shape(
                        "has a port that is not a number from 1 to 65535",
                    ));
                }
            },
        };
        if path.contains(['?', '#', '/']) {
            return Err(UrlProblem::Shape(
                "has parameters or a path after the database name",
            ));
        }
        if path.is_empty() {
            return Err(UrlProblem::Shape("names no database"));
        }
        Ok(PgUrl {
            user: user.filter(|u| !u.is_empty()),
            host: host.to_owned(),
            port,
            database: path.to_owned(),
        })
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// Why the store cannot be used, sorted by what the person must do.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A setting is wrong (password refused, no such database or role, TLS refused): exit 2.
    #[error("{0}")]
    Settings(String),
    /// The server cannot be reached or failed: exit 1.
    #[error("{0}")]
    Unavailable(String),
    /// The schema is not one this onboard can use: exit 1.
    #[error("{0}")]
    Schema(String),
    /// The role may not do what onboard needs (connect, create its tables, read or write
    /// them): a grant to give, exit 2. The server's message names the object.
    #[error("{0}")]
    Rights(String),
}

/// What a PostgreSQL error says, without the noise of its wrapping.
fn explain(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        };
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(&format!(": {part}"));
        }
        source = s.source();
    }
    text
}

impl PgConfig {
    pub(super) fn parsed(&self) -> PgUrl {
        PgUrl::parse(&self.url).expect("checked when resolved")
    }

    /// Opens one connection: TLS unless loopback (or allowed), `synchronous_commit` on.
    pub(super) fn connect(&self) -> Result<Client, PgError> {
        let url = self.parsed();
        let mut config = postgres::Config::new();
        config
            .host(&url.host)
            .port(url.port)
            .dbname(&url.database)
            .user(url.user.as_deref().unwrap_or("onboard"))
            .application_name("onboard")
            .connect_timeout(self.timeout)
            // A server that vanished (a cable, a crash) is noticed, not waited on forever.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .tcp_user_timeout(self.timeout);
        if let Some(p) = &self.password {
            config.password(p.expose());
        }
        let plain = self.ca_file.is_none() && (url.is_loopback() || self.allow_plaintext);
        let tls = match plain {
            true => None,
            false => Some(
                crate::backend::tls::client_config(self.ca_file.as_deref())
                    .map_err(|e| PgError::Settings(e.to_string()))?,
            ),
        };
        // The whole handshake has a deadline: a server that accepts the connection and then
        // says nothing (a hung or stopped server, a wrong port) held every command for ever,
        // `connect_timeout` covering only the TCP connection. The abandoned attempt ends on
        // its own when the server closes or the process exits.
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let connected = match tls {
                None => {
                    config.ssl_mode(postgres::config::SslMode::Disable);
                    config.connect(NoTls)
                }
                Some(tls) => {
                    config.ssl_mode(postgres::config::SslMode::Require);
                    config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                }
            };
            let _ = send.send(connected);
        });
        let deadline = self.timeout + Duration::from_secs(1);
        let connected = receive.recv_timeout(deadline).map_err(|_| {
            PgError::Unavailable(format!(
                "cannot connect to {}: no answer within {} s (the server accepted the \
                 connection and said nothing)",
                self.url,
                deadline.as_secs()
            ))
        })?;
        let mut client = connected.map_err(|e| self.connect_error(&e))?;
        // A statement the server takes longer than the timeout over is cut by the server.
        client
            .batch_execute(&format!(
                "SET synchronous_commit = on; SET statement_timeout = {}",
                self.timeout.as_millis()
            ))
            .map_err(|e| self.unavailable(&e))?;
        Ok(client)
    }

    /// A refused password, an unknown role or database, a TLS failure: a setting to fix
    /// (exit 2). Anything else: the server is not there (exit 1).
    fn connect_error(&self, e: &postgres::Error) -> PgError {
        use postgres::error::SqlState;
        let mut text = format!("cannot connect to {}: {}", self.url, explain(e));
        if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
            return PgError::Rights(text);
        }
        // The server asked for a password and none was configured.
        if self.password.is_none() && text.contains("password missing") {
            text.push_str(" (no password is configured for it)");
            return PgError::Settings(text);
        }
        let settings = matches!(
            e.code(),
            Some(
                &SqlState::INVALID_PASSWORD
                    | &SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                    | &SqlState::INVALID_CATALOG_NAME
            )
        ) || text.contains("certificate")
            || text.contains("TLS");
        if settings {
            PgError::Settings(text)
        } else {
            PgError::Unavailable(text)
        }
    }

    pub(super) fn unavailable(&self, e: &postgres::Error) -> PgError {
        if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
            return PgError::Rights(self.failed(e));
        }
        PgError::Unavailable(self.failed(e))
    }

    /// A failed query, as every store error names it.
    pub(super) fn io(&self, e: &postgres::Error) -> io::Error {
        io::Error::other(self.failed(e))
    }

    fn failed(&self, e: &postgres::Error) -> String {
        format!("PostgreSQL {}: {}", self.url, explain(e))
    }
}

/// Connections not in use, kept for the next lock or query (a cohort's workers each take
/// their own; a broken one is dropped).
pub(super) struct Pool {
    pub(super) config: PgConfig,
    pub(super) idle: Mutex<Vec<Client>>,
    /// The server stayed unreachable through a whole round of waits.
    pub(super) down: std::sync::atomic::AtomicBool,
}

impl Pool {
    /// An idle connection, or a new one. A server that cannot be reached is tried again with
    /// backoff (0.5, 1, 2 and 4 s): a restart of a few seconds does not fail every remaining
    /// hire of a cohort at once. A setting that is wrong is not tried again.
    pub(super) fn take(&self) -> io::Result<Client> {
        let idle = self.idle.lock().expect("pool").pop();
        if let Some(c) = idle.filter(|c| !c.is_closed()) {
            return Ok(c);
        }
        // Once the waits ran out, the server is down: later takes try once, at once, until
        // one gets through (a cohort does not wait 7.5 s for each remaining hire).
        let down = self.down.load(std::sync::atomic::Ordering::Relaxed);
        let mut wait = Duration::from_millis(500);
        loop {
            match self.config.connect() {
                Ok(c) => {
                    self.down.store(false, std::sync::atomic::Ordering::Relaxed);
                    return Ok(c);
                }
                Err(PgError::Unavailable(_)) if !down && wait <= Duration::from_secs(4) => {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                Err(PgError::Unavailable(why)) => {
                    self.down.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(io::Error::other(match down {
                        true => why,
                        false => format!("{why} (tried again for 7.5 s)"),
                    }));
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }

    pub(super) fn give_back(&self, client: Client) {
        if !client.is_closed() {
            self.idle.lock().expect("pool").push(client);
        }
    }

    /// Runs `f` on a connection from the pool.
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> io::Result<T> {
        let mut client = self.take()?;
        let result = f(&mut client);
        self.give_back(client);
        result.map_err(|e| self.config.io(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_database_and_never_carry_a_password() {
        assert_eq!(
            PgUrl::parse("postgres://onboard@db.example.org/onboard"),
            Ok(PgUrl {
                user: Some("onboard".into()),
                host: "db.example.org".into(),
                port: 5432,
                database: "onboard".into(),
            })
        );
        let local = PgUrl::parse("postgresql://[::1]:5433/x").unwrap();
        assert_eq!((local.host.as_str(), local.port), ("::1", 5433));
        assert!(local.is_loopback());
        assert_eq!(
            PgUrl::parse("postgres://u:hunter2@db/onboard"),
            Err(UrlProblem::Password)
        );
        for bad in [
            "postgres://db",
            "postgres://db/",
            "postgres://db:0/x",
            "postgres://db/x?sslmode=disable",
            "mysql://db/x",
            "postgres:///x",
        ] {
            assert!(
                matches!(PgUrl::parse(bad), Err(UrlProblem::Shape(_))),
                "{bad}"
            );
        }
    }
}
