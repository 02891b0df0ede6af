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

mod connect;
mod schema;

use std::io;
use std::sync::{Arc, Mutex};

use postgres::Client;

use connect::Pool;
pub use connect::{PgConfig, PgError, PgUrl, UrlProblem};

use super::{Evidence, Guard, Log, Session, Store, StoreError};
use crate::journal::{Chain, Event, JournalText, OpenError, Record, last_hash, verify};
use crate::policy::Published;

/// Advisory lock keys are 64-bit; onboard's are derived from a name so they do not collide
/// with an application sharing the database by accident.
pub(super) fn lock_key(name: &str) -> i64 {
    let digest = crate::digest::sha256(format!("onboard lock {name}"));
    i64::from_str_radix(&digest[..15], 16).expect("hex")
}

pub struct PgStore {
    pool: Arc<Pool>,
    /// The database has no onboard tables (opened for reading only): an empty store.
    empty: bool,
}

impl PgStore {
    /// Connects and brings the schema up to this build's (`create`), or, for reading only,
    /// checks it: a database with no onboard schema is an empty store.
    pub fn open(config: PgConfig, create: bool) -> Result<PgStore, PgError> {
        let mut client = config.connect()?;
        let empty = !schema::migrate(&mut client, &config, create)?;
        let pool = Arc::new(Pool {
            config,
            idle: Mutex::new(vec![client]),
            down: Default::default(),
        });
        Ok(PgStore { pool, empty })
    }

    fn url(&self) -> &str {
        &self.pool.config.url
    }
}

/// A lock held by a connection of its own; unlocked and given back when dropped.
struct Held {
    pool: Arc<Pool>,
    client: Arc<Mutex<Option<Client>>>,
    key: i64,
    /// For a hire's lock: the hire, whose holder row this connection wrote and deletes.
    hire: Option<String>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let taken = self.client.lock().map(|mut c| c.take());
        if let Ok(Some(mut client)) = taken {
            // The holder row goes with the lock, so no refusal names a run that has exited.
            if let Some(hire) = &self.hire {
                let _ = client.execute(
                    "DELETE FROM onboard_lock_holder WHERE hire = $1 AND backend_pid = pg_backend_pid()",
                    &[hire],
                );
            }
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

/// How long after a run announced an effect (`step_started`) another run waits for it, when
/// the first lost its lock (its connection was cut) and may still be carrying the effect out:
/// longer than any step takes with its retries and timeouts.
pub const EFFECT_WINDOW_SECONDS: i64 = 180;

/// The row naming who held a hire's lock before this run took it.
struct Before {
    holder: String,
    host: String,
    pid: i64,
    run: String,
}

impl Before {
    /// Whether the onboard process behind it may still be running: on this machine, whether
    /// it is; on another, nobody here can tell.
    fn may_be_alive(&self) -> bool {
        if self.host != crate::store::hostname() {
            return true;
        }
        self.pid > 0 && std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// Appends to one hire's journal on the connection that holds its lock.
struct PgLog {
    hire: String,
    config: PgConfig,
    client: Arc<Mutex<Option<Client>>>,
    chain: Chain,
}

impl Log for PgLog {
    fn hold_check(&self) -> crate::store::HoldCheck {
        let (client, hire, config) = (self.client.clone(), self.hire.clone(), self.config.clone());
        Arc::new(move || {
            let mut guard = client.lock().expect("journal connection");
            let lost = |why: String| {
                io::Error::other(format!(
                    "this run no longer holds hire {hire}: {why}; another run may have taken it, \
                     so this one stops before its next effect"
                ))
            };
            let client = guard
                .as_mut()
                .ok_or_else(|| lost("its lock was released".into()))?;
            // The lock lives as long as the connection that took it: one that still answers
            // still holds it.
            client
                .simple_query("SELECT 1")
                .map(|_| ())
                .map_err(|e| lost(config.io(&e).to_string()))
        })
    }

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
            .map_err(|e| self.config.io(&e))?;
        self.chain.advance(hash);
        Ok(record)
    }
}

impl Store for PgStore {
    fn describe(&self) -> String {
        self.url().to_owned()
    }

    fn hires(&self) -> io::Result<Vec<String>> {
        if self.empty {
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
        !self.empty
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
        let text = if self.empty {
            String::new()
        } else {
            self.pool.with(|c| journal_text(c, hire))?
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
        let (held, before) = self.lock_hire(hire)?;
        let (text, age) = {
            let mut client = held.client.lock().expect("journal connection");
            let client = client.as_mut().expect("held");
            let text = journal_text(client, hire).map_err(|e| self.io(&e))?;
            let age: Option<f64> = client
                .query_opt(
                    "SELECT EXTRACT(EPOCH FROM now() - written_at)::float8 FROM onboard_journal
                     WHERE hire = $1 ORDER BY seq DESC LIMIT 1",
                    &[&hire],
                )
                .map_err(|e| self.io(&e))?
                .map(|r| r.get(0));
            (text, age)
        };
        let records = verify(&text).map_err(|b| StoreError::Journal {
            name: self.journal_name(hire),
            source: OpenError::Broken(b),
        })?;
        // A run that lost its lock (its connection cut) may still be carrying out the effect
        // it announced last: nobody takes the hire over until it has surely stopped.
        if let (Some(last), Some(before), Some(age)) = (records.last(), &before, age)
            && let Event::StepStarted { step, .. } = &last.event
            && last.run == before.run
            && before.may_be_alive()
            && (age as i64) < EFFECT_WINDOW_SECONDS
        {
            drop(held);
            return Err(StoreError::Locked {
                hire: hire.to_owned(),
                holder: format!(
                    "{}, which lost its connection to PostgreSQL {} s after it started `{step}` \
                     and may still be carrying it out; try again in {} s, or once it has stopped",
                    before.holder,
                    age as i64,
                    EFFECT_WINDOW_SECONDS - age as i64
                ),
            });
        }
        self.name_holder(&held, hire, holder, run)?;
        let chain = Chain::after(&records, last_hash(&text), run, actor);
        Ok(Session {
            log: Box::new(PgLog {
                hire: hire.to_owned(),
                config: self.pool.config.clone(),
                client: held.client.clone(),
                chain,
            }),
            records,
            torn_bytes: 0,
            lock: Box::new(held),
        })
    }

    fn read_many(&self, hires: &[String]) -> Vec<io::Result<JournalText>> {
        if self.empty {
            return hires.iter().map(|h| self.read(h)).collect();
        }
        // One query for all of them, each journal joined by the server in record order.
        let rows = self.pool.with(|c| {
            c.query(
                "SELECT hire, string_agg(record, E'\\n' ORDER BY seq) FROM onboard_journal
                 WHERE hire = ANY($1) GROUP BY hire",
                &[&hires],
            )
        });
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                let e = e.to_string();
                return hires
                    .iter()
                    .map(|_| Err(io::Error::other(e.clone())))
                    .collect();
            }
        };
        let mut texts: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for r in &rows {
            let mut text: String = r.get(1);
            text.push('\n');
            texts.insert(r.get(0), text);
        }
        hires
            .iter()
            .map(|h| match texts.remove(h) {
                Some(text) => Ok(JournalText {
                    text,
                    unreadable: None,
                }),
                None => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no journal for {h} in {}", self.url()),
                )),
            })
            .collect()
    }

    fn locked(&self, hires: &[String]) -> std::collections::BTreeSet<String> {
        let held: std::collections::HashSet<(i64, i64)> = self
            .pool
            .with(|c| {
                Ok(c.query(
                    "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory'
                       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND objsubid = 1 AND granted",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
            })
            .unwrap_or_default();
        hires
            .iter()
            .filter(|h| {
                let key = lock_key(&format!("hire {h}")) as u64;
                held.contains(&((key >> 32) as i64, (key & 0xffff_ffff) as i64))
            })
            .cloned()
            .collect()
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
            .map_err(|e| self.pool.config.io(&e))?;
        Ok(Box::new(Held {
            pool: self.pool.clone(),
            client: Arc::new(Mutex::new(Some(client))),
            key,
            hire: None,
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
        if self.empty {
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

    fn publish_policy(&self, p: &Published) -> io::Result<Published> {
        self.pool.with(|c| {
            c.execute(
                "INSERT INTO onboard_policy (file, version, sha256, text, kept_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&p.file, &p.version, &p.sha256, &p.text, &p.kept_at],
            )?;
            let r = c.query_one(
                "SELECT file, version, sha256, text, kept_at FROM onboard_policy
                 WHERE file = $1 AND version = $2",
                &[&p.file, &p.version],
            )?;
            Ok(published(&r))
        })
    }

    fn policies(&self) -> io::Result<Vec<Published>> {
        if self.empty {
            return Ok(Vec::new());
        }
        self.pool.with(|c| {
            // A database last written by an onboard before policies has no table for them.
            let there: bool = c
                .query_one("SELECT to_regclass('onboard_policy') IS NOT NULL", &[])?
                .get(0);
            if !there {
                return Ok(Vec::new());
            }
            Ok(c.query(
                "SELECT file, version, sha256, text, kept_at FROM onboard_policy
                 ORDER BY kept_at, file, version",
                &[],
            )?
            .iter()
            .map(published)
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
        let (held, _) = self.lock_hire(hire)?;
        self.name_holder(&held, hire, "onboard store copy", "store-copy")?;
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
        self.pool.config.io(e)
    }

    /// Takes a hire's lock on a connection of its own, or says who holds it.
    /// Takes the hire's lock on a connection of its own. Returns the row of the holder
    /// before, if one was left (a run whose connection was cut); `name_holder` then writes
    /// this run's.
    fn lock_hire(&self, hire: &str) -> Result<(Held, Option<Before>), StoreError> {
        let key = lock_key(&format!("hire {hire}"));
        let mut client = self.pool.take()?;
        let locked = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map(|r| r.get::<_, bool>(0));
        match locked {
            Ok(true) => {}
            Ok(false) => {
                let holder = self.holder_of(&mut client, hire, key);
                self.pool.give_back(client);
                return Err(StoreError::Locked {
                    hire: hire.to_owned(),
                    holder: holder.map_err(|e| self.io(&e))?,
                });
            }
            Err(e) => return Err(StoreError::Io(self.io(&e))),
        }
        let before = client
            .query_opt(
                "SELECT holder, host, pid, run FROM onboard_lock_holder WHERE hire = $1",
                &[&hire],
            )
            .map(|r| {
                r.map(|r| Before {
                    holder: r.get(0),
                    host: r.get(1),
                    pid: r.get(2),
                    run: r.get(3),
                })
            });
        let held = Held {
            pool: self.pool.clone(),
            client: Arc::new(Mutex::new(Some(client))),
            key,
            hire: Some(hire.to_owned()),
        };
        let before = before.map_err(|e| self.io(&e))?;
        Ok((held, before))
    }

    /// Writes who holds the hire's lock, with the server process holding it. For messages, not
    /// the record: it need not wait for the disk.
    fn name_holder(
        &self,
        held: &Held,
        hire: &str,
        holder: &str,
        run: &str,
    ) -> Result<(), StoreError> {
        let mut client = held.client.lock().expect("lock connection");
        let client = client.as_mut().expect("held");
        let pid = i64::from(std::process::id());
        let named = (|| {
            let mut tx = client.transaction()?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")?;
            tx.execute(
                "INSERT INTO onboard_lock_holder (hire, holder, backend_pid, host, pid, run)
                 VALUES ($1, $2, pg_backend_pid(), $3, $4, $5)
                 ON CONFLICT (hire) DO UPDATE SET holder = EXCLUDED.holder, since = now(),
                   backend_pid = EXCLUDED.backend_pid, host = EXCLUDED.host,
                   pid = EXCLUDED.pid, run = EXCLUDED.run",
                &[&hire, &holder, &crate::store::hostname(), &pid, &run],
            )?;
            tx.commit()
        })();
        named.map_err(|e| StoreError::Io(self.io(&e)))
    }

    /// Who holds the hire's lock: the holder row written by the server process that holds it
    /// (`pg_locks`). A run that took the lock a moment ago may not have written its row yet:
    /// asked again for up to a second, then said as it is.
    fn holder_of(
        &self,
        client: &mut Client,
        hire: &str,
        key: i64,
    ) -> Result<String, postgres::Error> {
        let key = key as u64;
        let (high, low) = ((key >> 32) as i64, (key & 0xffff_ffff) as i64);
        for _ in 0..10 {
            let row = client.query_opt(
                "SELECT h.holder, l.pid FROM pg_locks l
                   LEFT JOIN onboard_lock_holder h ON h.hire = $3 AND h.backend_pid = l.pid
                  WHERE l.locktype = 'advisory' AND l.granted
                    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1",
                &[&high, &low, &hire],
            )?;
            match row {
                // Released meanwhile: the next try will get it.
                None => return Ok("a run that has just finished; try again".to_owned()),
                Some(r) => {
                    if let Some(holder) = r.get::<_, Option<String>>(0) {
                        return Ok(holder);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
        let pid: Option<i32> = client
            .query_opt(
                "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
                   AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1",
                &[&high, &low],
            )?
            .map(|r| r.get(0));
        Ok(match pid {
            Some(pid) => format!("a run that is starting (PostgreSQL server process {pid})"),
            None => "a run that has just finished; try again".to_owned(),
        })
    }
}

/// A hire's journal as the file journal's text: each row's record and a newline, in order.
fn published(r: &postgres::Row) -> Published {
    Published {
        file: r.get(0),
        version: r.get(1),
        sha256: r.get(2),
        text: r.get(3),
        kept_at: r.get(4),
    }
}

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
    fn lock_keys_differ_per_hire_and_fit_a_bigint() {
        let a = lock_key("hire E1");
        assert_ne!(a, lock_key("hire E2"));
        assert!(a >= 0);
    }
}
