//! The store in PostgreSQL: one record for a team on several machines.
//!
//! - **Journals**: one row per record (`onboard_journal(hire, seq, record)`), the record's
//!   text exactly as the file journal's line, so the same hash chain and the same `verify`
//!   hold. Each append is its own transaction with `synchronous_commit = on`: the record is
//!   durable on the server before the effect it announces starts. The primary key
//!   `(hire, seq)` makes a forked chain impossible even if locking were bypassed, and a trigger
//!   refuses updates and deletes.
//! - **Locks**: a hire's lock is a session advisory lock (`pg_try_advisory_lock`) held by a
//!   dedicated connection for the whole run; the run appends on that same connection, so a
//!   run whose connection dropped (and with it the lock) cannot write another record. The
//!   server releases the lock when the process dies or the connection drops. The holder is
//!   written beside it (`onboard_lock_holder`) so a refusal names it.
//! - **uidNumber allocation**: a second advisory lock, held while a number is chosen and the
//!   entry written, so two machines never pick the same number.
//! - **Schema**: created and upgraded by onboard itself, from the numbered migrations in
//!   `migrations/` with their SHA-256 recorded; a database whose schema is newer than this
//!   onboard, or whose applied migration differs from this build's, is refused.
//!
//! The password never travels in the URL: it comes from a file or the environment
//! ([`PgConfig::password`]). A non-loopback server is spoken to over TLS (rustls, the CA file
//! given or the system's roots) unless plaintext is allowed explicitly.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, NoTls};

use super::{Evidence, Guard, Log, Session, Store, StoreError};
use crate::journal::{Chain, Event, JournalText, OpenError, Record, last_hash, verify};
use crate::secret::Secret;

/// The migrations, in order: (version, what it does, SQL). Never edit one that has shipped:
/// add the next.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "journals, lock holders, evidence, receipts",
    include_str!("migrations/0001_record.sql"),
)];

/// Advisory lock keys are 64-bit; onboard's are derived from a name so they do not collide
/// with an application sharing the database by accident.
fn lock_key(name: &str) -> i64 {
    let digest = crate::digest::sha256(format!("onboard lock {name}"));
    i64::from_str_radix(&digest[..15], 16).expect("hex")
}

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
    fn parsed(&self) -> PgUrl {
        PgUrl::parse(&self.url).expect("checked when resolved")
    }

    /// Opens one connection: TLS unless loopback (or allowed), `synchronous_commit` on.
    fn connect(&self) -> Result<Client, PgError> {
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
        let connected = if plain {
            config.ssl_mode(postgres::config::SslMode::Disable);
            config.connect(NoTls)
        } else {
            let tls = crate::backend::tls::client_config(self.ca_file.as_deref())
                .map_err(|e| PgError::Settings(e.to_string()))?;
            config.ssl_mode(postgres::config::SslMode::Require);
            config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        };
        let mut client = connected.map_err(|e| self.connect_error(&e))?;
        client
            .batch_execute("SET synchronous_commit = on")
            .map_err(|e| self.unavailable(&e))?;
        Ok(client)
    }

    /// A refused password, an unknown role or database, a TLS failure: a setting to fix
    /// (exit 2). Anything else: the server is not there (exit 1).
    fn connect_error(&self, e: &postgres::Error) -> PgError {
        use postgres::error::SqlState;
        let text = format!("cannot connect to {}: {}", self.url, explain(e));
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

    fn unavailable(&self, e: &postgres::Error) -> PgError {
        PgError::Unavailable(format!("PostgreSQL {}: {}", self.url, explain(e)))
    }
}

/// Connections not in use, kept for the next lock or query (a cohort's workers each take
/// their own; a broken one is dropped).
struct Pool {
    config: PgConfig,
    idle: Mutex<Vec<Client>>,
}

impl Pool {
    fn take(&self) -> io::Result<Client> {
        let idle = self.idle.lock().expect("pool").pop();
        match idle {
            Some(c) if !c.is_closed() => Ok(c),
            _ => self.config.connect().map_err(io::Error::other),
        }
    }

    fn give_back(&self, client: Client) {
        if !client.is_closed() {
            self.idle.lock().expect("pool").push(client);
        }
    }

    /// Runs `f` on a connection from the pool.
    fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> io::Result<T> {
        let mut client = self.take()?;
        let result = f(&mut client);
        self.give_back(client);
        result.map_err(|e| {
            io::Error::other(format!("PostgreSQL {}: {}", self.config.url, explain(&e)))
        })
    }
}

pub struct PgStore {
    pool: Arc<Pool>,
}

impl PgStore {
    /// Connects and brings the schema up to this build's (`create`), or, for reading only,
    /// checks it: a database with no onboard schema is an empty store.
    pub fn open(config: PgConfig, create: bool) -> Result<PgStore, PgError> {
        let mut client = config.connect()?;
        migrate(&mut client, &config, create)?;
        let pool = Arc::new(Pool {
            config,
            idle: Mutex::new(vec![client]),
        });
        Ok(PgStore { pool })
    }

    fn url(&self) -> &str {
        &self.pool.config.url
    }
}

/// Applies the migrations this database lacks, one transaction each, under an advisory lock
/// so that two onboards starting at once do not both apply them.
fn migrate(client: &mut Client, config: &PgConfig, create: bool) -> Result<(), PgError> {
    let fail = |e: postgres::Error| config.unavailable(&e);
    let exists: bool = client
        .query_one("SELECT to_regclass('onboard_schema') IS NOT NULL", &[])
        .map_err(fail)?
        .get(0);
    if !exists && !create {
        return Ok(());
    }
    let key = lock_key("schema");
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .map_err(fail)?;
    let result = (|| {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS onboard_schema (
                     version    integer     PRIMARY KEY,
                     checksum   text        NOT NULL,
                     about      text        NOT NULL,
                     onboard    text        NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .map_err(fail)?;
        let applied: Vec<(i32, String)> = client
            .query(
                "SELECT version, checksum FROM onboard_schema ORDER BY version",
                &[],
            )
            .map_err(fail)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some((newest, _)) = applied.iter().rfind(|(v, _)| *v > known) {
            return Err(PgError::Schema(format!(
                "the database {} has onboard schema version {newest}, newer than this onboard \
                 knows ({known}): it was upgraded by a newer onboard",
                config.url
            )));
        }
        for (version, about, sql) in MIGRATIONS {
            let checksum = crate::digest::sha256(sql);
            match applied.iter().find(|(v, _)| v == version) {
                Some((_, c)) if *c == checksum => continue,
                Some(_) => {
                    return Err(PgError::Schema(format!(
                        "the database {} has a schema version {version} that differs from this \
                         onboard's (its checksum does not match)",
                        config.url
                    )));
                }
                None if !create => continue,
                None => {}
            }
            let mut tx = client.transaction().map_err(fail)?;
            tx.batch_execute(sql).map_err(fail)?;
            tx.execute(
                "INSERT INTO onboard_schema (version, checksum, about, onboard) VALUES ($1, $2, $3, $4)",
                &[version, &checksum, about, &env!("CARGO_PKG_VERSION")],
            )
            .map_err(fail)?;
            tx.commit().map_err(fail)?;
        }
        Ok(())
    })();
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&key]);
    result
}

/// A lock held by a connection of its own; unlocked and given back when dropped.
struct Held {
    pool: Arc<Pool>,
    client: Arc<Mutex<Option<Client>>>,
    key: i64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let taken = self.client.lock().map(|mut c| c.take());
        if let Ok(Some(mut client)) = taken {
            // If unlocking fails the connection is broken, and the server dropped the lock.
            if client
                .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
                .is_ok()
            {
                self.pool.give_back(client);
            }
        }
    }
}

/// Appends to one hire's journal on the connection that holds its lock.
struct PgLog {
    hire: String,
    url: String,
    client: Arc<Mutex<Option<Client>>>,
    chain: Chain,
}

impl Log for PgLog {
    fn append(&mut self, at: &str, event: Event) -> io::Result<Record> {
        let (record, line, hash) = self.chain.next(at, event);
        let mut guard = self.client.lock().expect("journal connection");
        let client = guard
            .as_mut()
            .ok_or_else(|| io::Error::other("the hire's lock was released"))?;
        let seq = i64::try_from(record.seq).expect("fewer than 2^63 records");
        client
            .execute(
                "INSERT INTO onboard_journal (hire, seq, record) VALUES ($1, $2, $3)",
                &[&self.hire, &seq, &line.trim_end_matches('\n')],
            )
            .map_err(|e| io::Error::other(format!("PostgreSQL {}: {}", self.url, explain(&e))))?;
        self.chain.advance(hash);
        Ok(record)
    }
}

impl Store for PgStore {
    fn describe(&self) -> String {
        self.url().to_owned()
    }

    fn hires(&self) -> io::Result<Vec<String>> {
        if !self.has_schema()? {
            return Ok(Vec::new());
        }
        self.pool.with(|c| {
            Ok(c.query(
                "SELECT DISTINCT hire COLLATE \"C\" AS h FROM onboard_journal ORDER BY h",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn has(&self, hire: &str) -> bool {
        self.has_schema().unwrap_or(false)
            && self
                .pool
                .with(|c| {
                    Ok(c.query_one(
                        "SELECT EXISTS (SELECT 1 FROM onboard_journal WHERE hire = $1)",
                        &[&hire],
                    )?
                    .get(0))
                })
                .unwrap_or(false)
    }

    fn journal_name(&self, hire: &str) -> String {
        format!("{}/journal/{hire}", self.url())
    }

    fn read(&self, hire: &str) -> io::Result<JournalText> {
        let text = if self.has_schema()? {
            self.journal_text(hire)?
        } else {
            String::new()
        };
        if text.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no journal for {hire} in {}", self.url()),
            ));
        }
        Ok(JournalText {
            text,
            unreadable: None,
        })
    }

    fn open(
        &self,
        hire: &str,
        holder: &str,
        run: &str,
        actor: &str,
    ) -> Result<Session, StoreError> {
        let held = self.lock_hire(hire, holder)?;
        let text = {
            let mut client = held.client.lock().expect("journal connection");
            let client = client.as_mut().expect("held");
            journal_text(client, hire).map_err(|e| self.io(&e))?
        };
        let records = verify(&text).map_err(|b| StoreError::Journal {
            name: self.journal_name(hire),
            source: OpenError::Broken(b),
        })?;
        let chain = Chain::after(&records, last_hash(&text), run, actor);
        Ok(Session {
            log: Box::new(PgLog {
                hire: hire.to_owned(),
                url: self.url().to_owned(),
                client: held.client.clone(),
                chain,
            }),
            records,
            torn_bytes: 0,
            lock: Box::new(held),
        })
    }

    fn is_locked(&self, hire: &str) -> bool {
        let key = lock_key(&format!("hire {hire}")) as u64;
        let (high, low) = ((key >> 32) as i64, (key & 0xffff_ffff) as i64);
        self.pool
            .with(|c| {
                Ok(c.query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
                       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1 AND granted)",
                    &[&high, &low],
                )?
                .get(0))
            })
            .unwrap_or(false)
    }

    fn lock_allocation(&self) -> io::Result<Guard> {
        let key = lock_key("uid allocation");
        let mut client = self.pool.take()?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .map_err(|e| io::Error::other(explain(&e)))?;
        Ok(Box::new(Held {
            pool: self.pool.clone(),
            client: Arc::new(Mutex::new(Some(client))),
            key,
        }))
    }

    fn keep_evidence(&self, hire: &str, name: &str, bytes: &[u8]) -> io::Result<String> {
        let sha = crate::digest::sha256(bytes);
        self.pool.with(|c| {
            c.execute(
                "INSERT INTO onboard_evidence (hire, name, sha256, content) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&hire, &name, &sha, &bytes],
            )
        })?;
        Ok(sha)
    }

    fn evidence(&self, hire: &str) -> io::Result<Vec<Evidence>> {
        if !self.has_schema()? {
            return Ok(Vec::new());
        }
        self.pool.with(|c| {
            Ok(c.query(
                "SELECT name, content FROM onboard_evidence WHERE hire = $1 ORDER BY sha256, name",
                &[&hire],
            )?
            .iter()
            .map(|r| Evidence {
                name: r.get(0),
                bytes: r.get(1),
            })
            .collect())
        })
    }

    fn keep_receipt(&self, hire: &str, step: &str, text: &str, html: &str) -> io::Result<String> {
        self.pool.with(|c| {
            c.execute(
                "INSERT INTO onboard_receipt (hire, step, text, html) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (hire, step) DO UPDATE SET text = EXCLUDED.text, html = EXCLUDED.html",
                &[&hire, &step, &text, &html],
            )
        })?;
        Ok(format!("{}/receipt/{hire}-{step}", self.url()))
    }

    fn import(&self, hire: &str, text: &str) -> Result<(), StoreError> {
        let held = self.lock_hire(hire, "onboard store copy")?;
        let mut client = held.client.lock().expect("journal connection");
        let client = client.as_mut().expect("held");
        let write = |client: &mut Client| {
            let mut tx = client.transaction()?;
            let present: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM onboard_journal WHERE hire = $1)",
                    &[&hire],
                )?
                .get(0);
            if present {
                return Ok(false);
            }
            for (seq, line) in text.split_terminator('\n').enumerate() {
                let seq = i64::try_from(seq).expect("fewer than 2^63 records");
                tx.execute(
                    "INSERT INTO onboard_journal (hire, seq, record) VALUES ($1, $2, $3)",
                    &[&hire, &seq, &line],
                )?;
            }
            tx.commit()?;
            Ok(true)
        };
        match write(client) {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Io(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already has a journal", self.journal_name(hire)),
            ))),
            Err(e) => Err(StoreError::Io(self.io(&e))),
        }
    }
}

impl PgStore {
    fn io(&self, e: &postgres::Error) -> io::Error {
        io::Error::other(format!("PostgreSQL {}: {}", self.url(), explain(e)))
    }

    /// Takes a hire's lock on a connection of its own, or says who holds it.
    fn lock_hire(&self, hire: &str, holder: &str) -> Result<Held, StoreError> {
        let key = lock_key(&format!("hire {hire}"));
        let mut client = self.pool.take()?;
        let locked = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map(|r| r.get::<_, bool>(0));
        match locked {
            Ok(true) => {}
            Ok(false) => {
                let holder = client
                    .query_opt(
                        "SELECT holder FROM onboard_lock_holder WHERE hire = $1",
                        &[&hire],
                    )
                    .map_err(|e| self.io(&e))?
                    .map_or_else(|| "holder unknown".to_owned(), |r| r.get(0));
                self.pool.give_back(client);
                return Err(StoreError::Locked {
                    hire: hire.to_owned(),
                    holder,
                });
            }
            Err(e) => return Err(StoreError::Io(self.io(&e))),
        }
        client
            .execute(
                "INSERT INTO onboard_lock_holder (hire, holder) VALUES ($1, $2)
                 ON CONFLICT (hire) DO UPDATE SET holder = EXCLUDED.holder, since = now()",
                &[&hire, &holder],
            )
            .map_err(|e| self.io(&e))?;
        Ok(Held {
            pool: self.pool.clone(),
            client: Arc::new(Mutex::new(Some(client))),
            key,
        })
    }

    fn has_schema(&self) -> io::Result<bool> {
        self.pool.with(|c| {
            Ok(
                c.query_one("SELECT to_regclass('onboard_journal') IS NOT NULL", &[])?
                    .get(0),
            )
        })
    }

    fn journal_text(&self, hire: &str) -> io::Result<String> {
        self.pool.with(|c| journal_text(c, hire))
    }
}

/// A hire's journal as the file journal's text: each row's record and a newline, in order.
fn journal_text(client: &mut Client, hire: &str) -> Result<String, postgres::Error> {
    let rows = client.query(
        "SELECT record FROM onboard_journal WHERE hire = $1 ORDER BY seq",
        &[&hire],
    )?;
    let mut text = String::new();
    for row in rows {
        text.push_str(row.get::<_, &str>(0));
        text.push('\n');
    }
    Ok(text)
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

    #[test]
    fn lock_keys_differ_per_hire_and_fit_a_bigint() {
        let a = lock_key("hire E1");
        assert_ne!(a, lock_key("hire E2"));
        assert!(a >= 0);
    }
}
