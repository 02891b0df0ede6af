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
}

impl TestEnv {
    pub fn new() -> Self {
        TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
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
            .current_dir(repo())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("USER", "tester")
            .env("ONBOARD_STATE_DIR", self.state())
            // A pinned clock: readiness and overdue do not change with the day the tests run.
            .env("ONBOARD_NOW", NOW)
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

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
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
