//! Runs the built binary with a cleared environment from the repository root, so messages
//! show the same relative paths a user sees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The time every test run sees, unless a test says otherwise.
pub const NOW: &str = "2026-11-23T10:00:00Z";

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What one run printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// Where runs start (default: the repository, so messages show relative paths).
    cwd: Option<PathBuf>,
}

impl TestEnv {
    /// A new environment; when the suite runs on PostgreSQL, with a database of its own on
    /// the shared server as its store.
    pub fn new() -> Self {
        let env = if crate::postgres::suite_on_postgres() {
            crate::postgres::shared()
                .env()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect()
        } else {
            Vec::new()
        };
        TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            env,
            cwd: None,
        }
    }

    /// A new environment on the state directory whatever store the suite runs on: for the
    /// tests of the files themselves (permissions, symlinks, bytes changed on disk).
    pub fn on_files() -> Self {
        TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
            cwd: None,
        }
    }

    /// The state directory every run of this environment uses.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts a run without waiting for it (to kill it, or to race it).
    pub fn spawn(&self, args: &[&str], extra_env: &[(&str, &str)]) -> std::process::Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_onboard"));
        cmd.args(args)
            .current_dir(self.cwd.as_deref().unwrap_or(repo()))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("USER", "tester")
            .env("ONBOARD_STATE_DIR", self.state())
            // A pinned clock: readiness and overdue do not change with the day the tests run.
            .env("ONBOARD_NOW", NOW)
            // Checklists the tests write in their own folders use the repository's templates.
            .env("ONBOARD_TEMPLATES_ROOTS", repo().join("templates"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("spawn onboard")
    }

    /// Runs with extra environment variables for this run only.
    pub fn run_with(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let child = self.spawn(args, extra_env);
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("run onboard");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
        }
    }

    /// Runs as another OS user (`USER`): who records a signature is who runs the command.
    pub fn run_as(&self, user: &str, args: &[&str]) -> Run {
        self.run_with(args, &[("USER", user)])
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs start in this environment's own directory (as on another machine), not the
    /// repository.
    pub fn in_own_dir(mut self) -> Self {
        self.cwd = Some(self.dir.path().to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// The environment this test adds to every run (the store, when on PostgreSQL).
    pub fn vars(&self) -> &[(String, String)] {
        &self.env
    }

    /// A hand-off receipt as the store keeps it (`txt` or `html`).
    pub fn receipt(&self, hire: &str, step: &str, ext: &str) -> String {
        match self.database() {
            Some(mut db) => {
                let column = if ext == "html" { "html" } else { "text" };
                db.query_opt(
                    &format!("SELECT {column} FROM onboard_receipt WHERE hire = $1 AND step = $2"),
                    &[&hire, &step],
                )
                .unwrap()
                .map(|r| r.get(0))
                .unwrap_or_default()
            }
            None => read(&self.state().join(format!("receipts/{hire}-{step}.{ext}"))),
        }
    }

    /// The PostgreSQL store's URL, when this environment's store is a database.
    pub fn store_url(&self) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == "ONBOARD_STATE_URL")
            .map(|(_, v)| v.as_str())
    }

    /// A superuser connection to this environment's database.
    fn database(&self) -> Option<postgres::Client> {
        let url = self.store_url()?;
        let mut config: postgres::Config = url.parse().expect("a postgres URL");
        config.password(crate::postgres::ADMIN_PASSWORD);
        Some(
            config
                .connect(postgres::NoTls)
                .expect("connect to the test database"),
        )
    }

    /// How messages name a hire's journal: `E1.jsonl` (a file) or `journal/E1` (a database).
    pub fn journal_label(&self, hire: &str) -> String {
        match self.store_url() {
            Some(_) => format!("journal/{hire}"),
            None => format!("{hire}.jsonl"),
        }
    }

    /// A hire's journal as the store holds it: the file, or the database's records as lines;
    /// empty when there is none.
    pub fn journal(&self, hire: &str) -> String {
        match self.database() {
            Some(mut db) => {
                let has_table: bool = db
                    .query_one("SELECT to_regclass('onboard_journal') IS NOT NULL", &[])
                    .unwrap()
                    .get(0);
                if !has_table {
                    return String::new();
                }
                db.query(
                    "SELECT record FROM onboard_journal WHERE hire = $1 ORDER BY seq",
                    &[&hire],
                )
                .unwrap()
                .iter()
                .map(|r| format!("{}\n", r.get::<_, &str>(0)))
                .collect()
            }
            None => read(&self.state().join(format!("journal/{hire}.jsonl"))),
        }
    }

    /// Replaces a hire's journal behind onboard's back, as someone editing the record would:
    /// the file rewritten, or the rows replaced with the append-only trigger bypassed.
    pub fn tamper(&self, hire: &str, text: &str) {
        match self.database() {
            Some(mut db) => {
                let mut tx = db.transaction().unwrap();
                tx.batch_execute("SET LOCAL session_replication_role = replica")
                    .unwrap();
                tx.execute("DELETE FROM onboard_journal WHERE hire = $1", &[&hire])
                    .unwrap();
                for (seq, line) in text.split_terminator('\n').enumerate() {
                    tx.execute(
                        "INSERT INTO onboard_journal (hire, seq, record) VALUES ($1, $2, $3)",
                        &[&hire, &(seq as i64), &line],
                    )
                    .unwrap();
                }
                tx.commit().unwrap();
            }
            None => {
                std::fs::write(self.state().join(format!("journal/{hire}.jsonl")), text).unwrap()
            }
        }
    }

    /// Waits until a hire's journal holds `text` (a run reached that point).
    #[track_caller]
    pub fn wait_for_journal(&self, hire: &str, text: &str) {
        let start = std::time::Instant::now();
        // One connection for all the looks, so that looking is as quick as a file's `stat`
        // (tests stop a server the moment a hire starts).
        let mut db = self.database();
        let mut holds = || match db.as_mut() {
            Some(db) => db
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM onboard_journal \
                     WHERE hire = $1 AND strpos(record, $2) > 0)",
                    &[&hire, &text],
                )
                .is_ok_and(|r| r.get(0)),
            None => self.journal(hire).contains(text),
        };
        while !holds() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "timed out waiting for {text} in {hire}'s journal"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// How many evidence files the store keeps for a hire.
    pub fn evidence_count(&self, hire: &str) -> usize {
        match self.database() {
            Some(mut db) => {
                let n: i64 = db
                    .query_one(
                        "SELECT count(*) FROM onboard_evidence WHERE hire = $1",
                        &[&hire],
                    )
                    .unwrap()
                    .get(0);
                n as usize
            }
            None => std::fs::read_dir(self.state().join("evidence").join(hire))
                .map_or(0, Iterator::count),
        }
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Decodes quoted-printable (soft breaks and =XX), enough to read a message body.
pub fn unqp(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The initial password from the message to the manager (the intended channel) that the
/// journal names as the delivery of the account step's last success.
pub fn delivered_password(env: &TestEnv, hire: &str) -> String {
    let log = env.run(&["log", hire, "--json"]).success();
    let message_id = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "step_done" && r["step"] == "account")
        .filter_map(|r| {
            r["evidence"]["password_message_id"]
                .as_str()
                .map(str::to_owned)
        })
        .next_back()
        .expect("the journal names the password message");
    let file = format!("{}.eml", message_id.trim_matches(['<', '>']));
    let text = read(&env.state().join("outbox").join(file));
    let body = unqp(&text);
    let line = body
        .lines()
        .find(|l| l.starts_with("Initial password:"))
        .expect("password line");
    line["Initial password:".len()..].trim().to_owned()
}

/// Owned `(NAME, value)` pairs borrowed the way `TestEnv::run_with` takes them.
pub fn pairs<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Makes a FIFO at `path` (coreutils' `mkfifo`).
pub fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", path.display());
}
