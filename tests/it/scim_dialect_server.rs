//! The second SCIM server, for one test: tests/scim_dialect.py on Debian's python3 (standard
//! library only), on a loopback port, with the quirks a test names as its switches (see the
//! script's header); stopped by PID when the test ends. Its `/_…` paths are the tests' own
//! checks and are not counted in its statistics.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::repo;

pub const TOKEN: &str = "dialect-token-for-tests-51c2";

pub struct Dialect {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

impl Dialect {
    /// A server with these switches, e.g. `["--ignore-member-filter", "--group", "everyone"]`.
    pub fn start(switches: &[&str]) -> Dialect {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::slapd::free_port();
        let python = if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let mut child = Command::new(python)
            .arg(repo().join("tests/scim_dialect.py"))
            .args(["--port", &port.to_string(), "--token", TOKEN])
            .args(switches)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .expect("python3");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("the SCIM dialect server exited with {status}: {log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the SCIM dialect server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Dialect { dir, child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The environment that points onboard at this server as application `app`.
    pub fn env(&self, app: &str) -> Vec<(String, String)> {
        let token = self.dir.path().join(format!("{app}-token"));
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let prefix = format!("ONBOARD_SCIM_{}", app.to_uppercase().replace('-', "_"));
        vec![
            (format!("{prefix}_URL"), self.url()),
            (format!("{prefix}_TOKEN_FILE"), token.display().to_string()),
        ]
    }

    fn call(&self, path: &str, body: Option<Value>) -> Value {
        let agent = ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .http_status_as_error(false)
                .build(),
        );
        let url = format!("{}{path}", self.url());
        let auth = format!("Bearer {TOKEN}");
        let result = match body {
            None => agent.get(&url).header("Authorization", &auth).call(),
            Some(b) => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
        };
        let mut response = result.expect("the SCIM dialect server answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// What it counted: `requests`, `posts`, `created`, `writes`, `429`, `503`,
    /// `whole_group_reads`, and `by` (`"GET /Users"`, `"PATCH /Groups/{id}"`, …).
    pub fn stats(&self) -> Value {
        self.call("/_stats", None)
    }

    pub fn requests(&self) -> u64 {
        self.stats()["requests"].as_u64().unwrap()
    }

    /// Every user.
    pub fn users(&self) -> Vec<Value> {
        self.call("/_users", None).as_array().cloned().unwrap()
    }

    /// Creates a user as someone else would (`externalId` as given, or none).
    pub fn create_user(&self, user_name: &str, external_id: Option<&str>) {
        let mut user = serde_json::json!({"userName": user_name});
        if let Some(e) = external_id {
            user["externalId"] = e.into();
        }
        self.call("/_users", Some(user));
    }

    pub fn group_id(&self, name: &str) -> String {
        self.call(&format!("/_group/{name}"), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The ids of a group's members that are users of this server (not the made-up ones of a
    /// large group).
    pub fn members(&self, group: &str) -> Vec<String> {
        let id = self.group_id(group);
        self.call(&format!("/_members/{id}"), None)
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Dialect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
