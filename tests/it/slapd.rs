//! A real OpenLDAP server for one test: its own config, database, test CA and loopback ports,
//! started in the foreground and killed by PID when the test ends.
//!
//! Needs Debian's `slapd`, `ldap-utils` and `openssl` (`.ci/run` installs them).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::repo;

pub const SUFFIX: &str = "dc=example,dc=org";
pub const ADMIN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PASSWORD: &str = "admin-secret-for-tests";

pub struct Slapd {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
    pub tls_port: u16,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e}; install slapd, samba, ldap-utils and openssl (bash .ci/run does)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A test CA and a server certificate for localhost / 127.0.0.1, made now.
pub fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=onboard test CA",
        ]));
    run(Command::new("openssl")
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]));
}

impl Slapd {
    /// Starts a server holding the example organisation (the embedded directory's seed).
    pub fn start() -> Slapd {
        let mut last = String::new();
        for _ in 0..3 {
            match Slapd::try_start() {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("slapd did not start: {last}");
    }

    fn try_start() -> Result<Slapd, String> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        make_certificates(d);
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             pidfile {d}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             TLSCACertificateFile {d}/ca.crt\n\
             TLSCertificateFile {d}/server.crt\n\
             TLSCertificateKeyFile {d}/server.key\n\
             database mdb\n\
             maxsize 104857600\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ADMIN}\"\n\
             rootpw {ADMIN_PASSWORD}\n\
             directory {d}/db\n\
             index objectClass,uid,uidNumber,cn,member,memberUid eq\n",
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        run(Command::new("slapadd")
            .args(["-f", "slapd.conf", "-l"])
            .arg(repo().join("src/backend/directory/example-directory.ldif"))
            .current_dir(d));
        let (port, tls_port) = (free_port(), free_port());
        let child = spawn(d, port, tls_port)?;
        let mut slapd = Slapd {
            dir,
            child,
            port,
            tls_port,
        };
        slapd.wait_until_listening()?;
        Ok(slapd)
    }

    /// Stops the server (SIGKILL, as a crash or an outage would).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same ports with the same database.
    pub fn restart(&mut self) {
        self.child = spawn(self.dir.path(), self.port, self.tls_port).unwrap();
        self.wait_until_listening().unwrap();
    }

    /// SIGSTOP: the server keeps its sockets but answers nothing (a hung server).
    pub fn hang(&self) {
        signal(&self.child, "-STOP");
    }

    /// SIGCONT after `hang`.
    pub fn unhang(&self) {
        signal(&self.child, "-CONT");
    }

    fn wait_until_listening(&mut self) -> Result<(), String> {
        let (port, tls_port) = (self.port, self.tls_port);
        let slapd = self;
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = slapd.child.try_wait() {
                let log =
                    std::fs::read_to_string(slapd.dir.path().join("slapd.log")).unwrap_or_default();
                return Err(format!("slapd exited with {status}: {log}"));
            }
            let up = |p| TcpStream::connect(("127.0.0.1", p)).is_ok();
            if up(port) && up(tls_port) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(15) {
                return Err("slapd did not listen within 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The environment that points onboard at this server, bound as the admin.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ONBOARD_LDAP_URL", self.url()),
            ("ONBOARD_LDAP_BIND_DN", ADMIN.to_owned()),
            ("ONBOARD_LDAP_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ]
    }

    /// `ldapsearch -LLL` as the admin, for checking what the server holds with its own tools.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        run(Command::new("ldapsearch")
            .args([
                "-LLL",
                "-x",
                "-o",
                "ldif-wrap=no",
                "-H",
                &self.url(),
                "-D",
                ADMIN,
                "-w",
                ADMIN_PASSWORD,
            ])
            .args(["-b", base, filter])
            .args(attrs))
    }

    /// Applies LDIF with `ldapmodify -a` as the admin.
    pub fn modify(&self, ldif: &str) {
        let path = self.dir.path().join("change.ldif");
        std::fs::write(&path, ldif).unwrap();
        run(Command::new("ldapmodify")
            .args([
                "-a",
                "-x",
                "-H",
                &self.url(),
                "-D",
                ADMIN,
                "-w",
                ADMIN_PASSWORD,
                "-f",
            ])
            .arg(&path));
    }

    /// Whether `dn` can bind with `password` (`ldapwhoami`).
    pub fn can_bind(&self, dn: &str, password: &str) -> bool {
        Command::new("ldapwhoami")
            .args(["-x", "-H", &self.url(), "-D", dn, "-w", password])
            .output()
            .unwrap()
            .status
            .success()
    }
}

fn spawn(dir: &Path, port: u16, tls_port: u16) -> Result<Child, String> {
    let urls = format!("ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/");
    Command::new("slapd")
        .args(["-f", "slapd.conf", "-h", &urls, "-d", "0"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("slapd.log")).unwrap())
        .spawn()
        .map_err(|e| format!("cannot start slapd: {e}"))
}

/// Sends a signal to a test server by PID.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {}", child.id());
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
