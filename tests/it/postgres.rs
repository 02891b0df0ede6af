//! A real PostgreSQL server for the tests: Debian's, initialised and started by the tests on
//! loopback as the unprivileged `postgres` user (initdb refuses root), with its own data
//! directory and port, stopped by PID.
//!
//! Two kinds: [`Postgres::start`] is one test's own (stopped when dropped, and stoppable
//! mid-test); [`shared`] is one server for the whole test process, each test environment
//! getting a database of its own on it; a watchdog stops it by PID when the process exits.
//!
//! Needs Debian's `postgresql` (`.ci/run` installs it).

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::slapd::free_port;

/// The superuser the tests' servers are made with, and its password.
pub const ADMIN: &str = "onboard_admin";
pub const ADMIN_PASSWORD: &str = "pg-admin-secret-for-tests";

pub struct Postgres {
    dir: PathBuf,
    child: Option<Child>,
    pub port: u16,
    /// Server settings beyond the tests' defaults (`-c` pairs).
    settings: Vec<String>,
    /// Keeps the directory when this is the shared server (the watchdog removes it).
    _temp: Option<tempfile::TempDir>,
}

/// The server's programs: the newest installed major version.
fn bin(name: &str) -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = std::fs::read_dir(root)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; install postgresql (bash .ci/run does)",
                root.display()
            )
        })
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    let v = versions.last().expect("a PostgreSQL version is installed");
    root.join(format!("{v}/bin/{name}"))
}

/// The uid and gid of the `postgres` user, when the tests run as root.
fn unprivileged() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let out = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

/// A command run as the unprivileged user when the tests are root.
fn as_postgres(program: PathBuf) -> Command {
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = unprivileged() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn chown(path: &Path) {
    if let Some((uid, gid)) = unprivileged() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

impl Postgres {
    /// Initialises a cluster in a new directory and starts it on a free loopback port.
    pub fn start() -> Postgres {
        let temp = tempfile::tempdir().unwrap();
        let mut pg = Postgres::init(temp.path().to_owned(), Vec::new());
        pg._temp = Some(temp);
        pg
    }

    /// A server that speaks TLS with a certificate for localhost / 127.0.0.1 signed by a test
    /// CA (`ca.crt` in [`Postgres::ca_file`]).
    pub fn start_tls() -> Postgres {
        let temp = tempfile::tempdir().unwrap();
        let d = temp.path();
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        crate::slapd::make_certificates(d);
        for f in ["server.crt", "server.key"] {
            chown(&d.join(f));
        }
        std::fs::set_permissions(
            d.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let settings = vec![
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", d.join("server.crt").display()),
            format!("ssl_key_file={}", d.join("server.key").display()),
        ];
        let mut pg = Postgres::init(d.to_owned(), settings);
        pg._temp = Some(temp);
        pg
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn init(dir: PathBuf, settings: Vec<String>) -> Postgres {
        // The unprivileged user must reach its data directory inside ours.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        chown(&data);
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, ADMIN_PASSWORD).unwrap();
        chown(&pwfile);
        let out = as_postgres(bin("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                ADMIN,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs; install postgresql (bash .ci/run does)");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            dir,
            child: None,
            port: free_port(),
            settings,
            _temp: None,
        };
        pg.restart();
        pg
    }

    /// Starts (again) the server on its port with its data.
    pub fn restart(&mut self) {
        let data = self.dir.join("data");
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        chown(&self.dir.join("server.log"));
        let child = as_postgres(bin("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("port={}", self.port)])
            // The socket directory is the data directory: no /run/postgresql needed.
            .args(["-c", &format!("unix_socket_directories={}", data.display())])
            .args(["-c", "max_connections=400"])
            // The tests kill onboard, not the server: fsync off only makes them faster.
            .args(["-c", "fsync=off"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "postgres exited with {status}: {}",
                    std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.admin_ok() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not accept connections within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn admin_ok(&self) -> bool {
        self.admin().is_ok()
    }

    /// A connection as the superuser.
    pub fn admin(&self) -> Result<postgres::Client, postgres::Error> {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(ADMIN)
            .password(ADMIN_PASSWORD)
            .dbname("postgres")
            .connect(postgres::NoTls)
    }

    /// Stops the server by PID (fast shutdown: connections are cut, as in an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill with a PID we own.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let _ = child.wait();
        }
    }

    /// A new empty database (and its URL, with no password: that is in [`Postgres::env`]).
    pub fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.admin()
            .expect("admin connection")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        format!("postgres://{ADMIN}@127.0.0.1:{}/{name}", self.port)
    }

    /// The password file for the admin, as onboard reads it.
    pub fn password_file(&self) -> PathBuf {
        self.dir.join("pw")
    }

    /// The environment that points onboard at a new database on this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ONBOARD_STATE_URL", self.database()),
            (
                "ONBOARD_STATE_PASSWORD_FILE",
                self.password_file().display().to_string(),
            ),
        ]
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server every test in this process shares (one database each), started on first use.
pub fn shared() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let pg = Postgres::init(dir.clone(), Vec::new());
        let pid = pg.child.as_ref().expect("running").id();
        // Statics are never dropped: a watchdog stops the server by PID when this process
        // ends (however it ends), then removes its directory. It outlives this process, so
        // it is never waited for.
        #[expect(clippy::zombie_processes, reason = "the watchdog outlives the tests")]
        Command::new("sh")
            .arg("-c")
            .arg(
                "while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; kill -INT \"$2\"; \
                 while kill -0 \"$2\" 2>/dev/null; do sleep 0.2; done; rm -rf \"$3\"",
            )
            .args([
                "watchdog",
                &std::process::id().to_string(),
                &pid.to_string(),
            ])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchdog");
        pg
    })
}

/// Whether the suite runs against PostgreSQL (`ONBOARD_TEST_STORE=postgres`, as `.ci/run`'s
/// second pass sets it).
pub fn suite_on_postgres() -> bool {
    std::env::var("ONBOARD_TEST_STORE").is_ok_and(|v| v == "postgres")
}
