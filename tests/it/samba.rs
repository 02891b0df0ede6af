//! A real Active Directory: a Samba AD DC provisioned for one test in a temporary directory
//! (`samba-tool domain provision`, about 10 s), with a test CA and a server certificate for
//! LDAPS, started in the foreground and stopped by PID when dropped.
//!
//! Samba has no setting for its LDAP ports, so it listens on 127.0.0.1:389 and :636; one DC
//! runs at a time (`LOCK`). Needs Debian's `samba`, `ldap-utils` and `openssl` (`.ci/run`
//! installs them) and root, as `samba` itself does.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::slapd::{make_certificates, run};

pub const BASE: &str = "DC=onboard,DC=test";
pub const USERS: &str = "CN=Users,DC=onboard,DC=test";
pub const ADMIN: &str = "CN=Administrator,CN=Users,DC=onboard,DC=test";
pub const ADMIN_PASSWORD: &str = "Adm1n-Test-Pass!";

/// Tests that need the DC take their turn: it owns fixed ports.
static LOCK: Mutex<()> = Mutex::new(());

pub struct SambaDc {
    dir: tempfile::TempDir,
    child: Child,
    _turn: MutexGuard<'static, ()>,
}

impl SambaDc {
    pub fn start() -> SambaDc {
        let turn = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for port in [389, 636] {
            assert!(
                TcpStream::connect(("127.0.0.1", port)).is_err(),
                "something already listens on 127.0.0.1:{port} (a system slapd or samba?); \
                 the test Samba AD DC needs that port: stop it"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_certificates(d);
        let key = d.join("server.key");
        // Samba refuses a key others can read.
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let opt = |k: &str, v: &Path| format!("--option={k} = {}", v.display());
        run(Command::new("samba-tool")
            .args([
                "domain",
                "provision",
                "--realm=ONBOARD.TEST",
                "--domain=ONBOARD",
            ])
            .args(["--server-role=dc", "--dns-backend=NONE", "--use-rfc2307"])
            .args(["--host-name=dc1", &format!("--adminpass={ADMIN_PASSWORD}")])
            .arg(format!("--targetdir={}", d.join("dc").display()))
            .args([
                "--option=interfaces = lo",
                "--option=bind interfaces only = yes",
            ])
            .args(["--option=server services = ldap"])
            .args(["--option=tls enabled = yes"])
            .arg(opt("tls keyfile", &key))
            .arg(opt("tls certfile", &d.join("server.crt")))
            .arg(opt("tls cafile", &d.join("ca.crt")))
            .arg(opt("log file", &d.join("samba.log")))
            .arg(opt("pid directory", &d.join("dc"))));
        // In the foreground (-i), with stdin a pipe we hold: if this process dies without
        // dropping the DC, Samba reads EOF and exits too.
        let child = Command::new("samba")
            .args(["-i", "-s"])
            .arg(d.join("dc/etc/smb.conf"))
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(d.join("samba.out")).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(d.join("samba.err")).unwrap(),
            ))
            .spawn()
            .expect("cannot start samba; install it (bash .ci/run does)");
        let mut dc = SambaDc {
            dir,
            child,
            _turn: turn,
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = dc.child.try_wait() {
                panic!(
                    "samba exited with {status}: {}",
                    std::fs::read_to_string(dc.dir.path().join("samba.err")).unwrap_or_default()
                );
            }
            // Listening is not enough: the directory must answer an LDAPS search.
            if TcpStream::connect(("127.0.0.1", 636)).is_ok()
                && dc
                    .ldap(&["ldapsearch", "-LLL", "-b", BASE, "-s", "base", "dn"])
                    .0
            {
                return dc;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the Samba AD DC did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> &'static str {
        "ldaps://127.0.0.1:636"
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The environment that points onboard at this DC, bound as the domain administrator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ONBOARD_LDAP_URL", self.url().to_owned()),
            ("ONBOARD_LDAP_FLAVOR", "active_directory".to_owned()),
            ("ONBOARD_LDAP_CA_FILE", self.ca_file().display().to_string()),
            ("ONBOARD_LDAP_BIND_DN", ADMIN.to_owned()),
            ("ONBOARD_LDAP_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ]
    }

    /// Runs an OpenLDAP client tool (`ldapsearch`, `ldapmodify`, …) over LDAPS as the
    /// administrator; returns (success, stdout, stderr).
    fn ldap(&self, cmd: &[&str]) -> (bool, String, String) {
        self.ldap_as(ADMIN, ADMIN_PASSWORD, cmd)
    }

    fn ldap_as(&self, dn: &str, password: &str, cmd: &[&str]) -> (bool, String, String) {
        let out = Command::new(cmd[0])
            .env("LDAPTLS_CACERT", self.ca_file())
            .args([
                "-x",
                "-o",
                "ldif-wrap=no",
                "-H",
                self.url(),
                "-D",
                dn,
                "-w",
                password,
            ])
            .args(&cmd[1..])
            .output()
            .expect("ldap-utils");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The entries `filter` finds under the domain (referrals left out).
    pub fn search(&self, filter: &str, attrs: &[&str]) -> Vec<onboard::backend::directory::Entry> {
        let mut cmd = vec!["ldapsearch", "-LLL", "-b", BASE, filter];
        cmd.extend_from_slice(attrs);
        let (ok, out, err) = self.ldap(&cmd);
        assert!(ok, "ldapsearch {filter} failed: {err}");
        let entries: String = out
            .split("\n\n")
            .filter(|block| block.starts_with("dn"))
            .map(|block| format!("{block}\n\n"))
            .collect();
        onboard::backend::directory::ldif::parse(&entries).unwrap()
    }

    /// Applies LDIF with `ldapmodify -a` as the administrator.
    pub fn modify(&self, ldif: &str) {
        let path = self.dir.path().join("change.ldif");
        std::fs::write(&path, ldif).unwrap();
        let (ok, _, err) = self.ldap(&["ldapmodify", "-a", "-f", path.to_str().unwrap()]);
        assert!(ok, "ldapmodify failed: {err}\n{ldif}");
    }

    /// Binds as `dn` with `password` over LDAPS and reads the root DSE (Samba has no
    /// WhoAmI operation): Ok, or the server's answer.
    pub fn bind(&self, dn: &str, password: &str) -> Result<(), String> {
        match self.ldap_as(
            dn,
            password,
            &["ldapsearch", "-LLL", "-b", "", "-s", "base", "1.1"],
        ) {
            (true, _, _) => Ok(()),
            (false, _, err) => Err(err),
        }
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        // SIGTERM by PID lets the master stop its worker processes; SIGKILL if it lingers.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
