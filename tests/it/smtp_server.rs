//! A real SMTP server for one test (tests/smtp_server.py on Debian's python3-aiosmtpd), on a
//! loopback port, storing each message it receives; killed by PID when the test ends.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::repo;

pub const USER: &str = "onboard";
pub const PASSWORD: &str = "smtp-secret-for-tests";

pub struct SmtpServer {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
    /// The command line, to restart it.
    args: Vec<String>,
}

pub enum Mode {
    /// Plain SMTP, no AUTH.
    Plain,
    /// STARTTLS required, then AUTH required, with a test CA made now.
    StartTlsAuth,
    /// TLS from the first byte (smtps), with AUTH.
    ImplicitTlsAuth,
}

impl SmtpServer {
    pub fn start(mode: Mode) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Debian's python3, where apt installs python3-aiosmtpd (a pyenv python3 on PATH has not).
        let python = if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let mut cmd = Command::new(python);
        cmd.arg(repo().join("tests/smtp_server.py"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir.path().join("mail"));
        if let Mode::StartTlsAuth | Mode::ImplicitTlsAuth = mode {
            crate::slapd::make_certificates(dir.path());
            cmd.arg("--tls")
                .arg(dir.path().join("server.crt"))
                .arg(dir.path().join("server.key"))
                .args(["--auth", &format!("{USER}:{PASSWORD}")]);
        }
        if let Mode::ImplicitTlsAuth = mode {
            cmd.arg("--implicit-tls");
        }
        let args: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let child = spawn(&args, dir.path(), port);
        SmtpServer {
            dir,
            child,
            port,
            args,
        }
    }

    /// Stops the server (SIGKILL, as an outage would).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port; it keeps numbering after the messages it has.
    pub fn restart(&mut self) {
        self.child = spawn(&self.args, self.dir.path(), self.port);
    }

    /// SIGSTOP: it keeps its socket but answers nothing (a hung server).
    pub fn hang(&self) {
        crate::slapd::signal(&self.child, "-STOP");
    }

    /// SIGCONT after `hang`.
    pub fn unhang(&self) {
        crate::slapd::signal(&self.child, "-CONT");
    }

    /// The environment that points onboard at `slapd` and this server.
    pub fn with_directory(&self, slapd: &crate::slapd::Slapd) -> Vec<(&'static str, String)> {
        let mut vars = slapd.env();
        vars.push(("ONBOARD_SMTP_URL", self.url()));
        vars
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Every message received, as Python's email package parsed it, in arrival order.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

fn spawn(args: &[String], dir: &std::path::Path, port: u16) -> Child {
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .expect("python3 with aiosmtpd (bash .ci/run installs python3-aiosmtpd)");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!("the SMTP server exited with {status}: {log}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the SMTP server did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
