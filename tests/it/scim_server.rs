//! A real SCIM 2.0 server for one test: `scim2-server` from the Python registry (installed by
//! .ci/run into a virtual environment), on a loopback port, keeping users and groups in memory,
//! with a bearer token; stopped by PID when the test ends.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const TOKEN: &str = "scim-token-for-tests-7f3a";

pub struct ScimServer {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

fn spawn(dir: &tempfile::TempDir, port: u16) -> Child {
    let exe = executable();
    Command::new(&exe)
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
        .args(["--bearer-token", TOKEN])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): bash .ci/run installs scim2-server",
                exe.display()
            )
        })
}

/// The server's executable: `$ONBOARD_SCIM_SERVER`, else where .ci/run installs it.
fn executable() -> PathBuf {
    if let Some(p) = std::env::var_os("ONBOARD_SCIM_SERVER") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    cache.join("onboard-tests/scim-venv/bin/scim2-server")
}

impl ScimServer {
    pub fn start() -> ScimServer {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::slapd::free_port();
        let child = spawn(&dir, port);
        let mut server = ScimServer { dir, child, port };
        server.wait_listening();
        server
    }

    /// Stops the server and starts a new one on the same port: it has lost every user and
    /// group (it keeps them in memory), as an application restored from nothing would.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.dir, self.port);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the SCIM server exited with {status}: {}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the SCIM server did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The environment that points onboard at this server as application `app`, with the
    /// token in a file.
    pub fn env(&self, app: &str) -> Vec<(String, String)> {
        let token = self.dir.path().join(format!("{app}-token"));
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let prefix = format!("ONBOARD_SCIM_{}", app.to_uppercase().replace('-', "_"));
        vec![
            (format!("{prefix}_URL"), self.url()),
            (format!("{prefix}_TOKEN_FILE"), token.display().to_string()),
        ]
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .http_status_as_error(false)
                .build(),
        )
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url());
        let auth = format!("Bearer {TOKEN}");
        let agent = Self::agent();
        let result = match (method, body) {
            ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
            ("POST", Some(b)) => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/scim+json")
                .send(b.to_string()),
            ("PATCH", Some(b)) => agent
                .patch(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/scim+json")
                .send(b.to_string()),
            other => panic!("{other:?}"),
        };
        let mut response = result.expect("the SCIM server answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a group; its id.
    pub fn create_group(&self, name: &str) -> String {
        let (status, group) = self.call(
            "POST",
            "/Groups",
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name})),
        );
        assert_eq!(status, 201, "{group}");
        group["id"].as_str().unwrap().to_owned()
    }

    /// Creates a user as someone else would (no externalId of ours).
    pub fn create_user(&self, user_name: &str) {
        let (status, user) = self.call(
            "POST",
            "/Users",
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "externalId": "someone-else"})),
        );
        assert_eq!(status, 201, "{user}");
    }

    /// Changes a user's displayName, as an administrator of the application would.
    pub fn rename(&self, id: &str, display_name: &str) {
        let (status, body) = self.call(
            "PATCH",
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": display_name}],
            })),
        );
        assert!(status == 200 || status == 204, "{status} {body}");
    }

    /// Every user.
    pub fn users(&self) -> Vec<Value> {
        let (status, list) = self.call("GET", "/Users?count=1000", None);
        assert_eq!(status, 200, "{list}");
        list["Resources"].as_array().cloned().unwrap_or_default()
    }

    /// A group's member ids, by its id.
    pub fn members(&self, group: &str) -> Vec<String> {
        let (status, g) = self.call("GET", &format!("/Groups/{group}"), None);
        assert_eq!(status, 200, "{g}");
        g["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|v| v["value"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An HTTPS front for this server (tests/tls_proxy.py on Debian's python3) with a test CA
    /// made now: its `https://localhost:PORT` URL, the CA file, and the proxy (stopped on drop).
    pub fn https(&self) -> (String, PathBuf, Proxy) {
        crate::slapd::make_certificates(self.dir.path());
        let port = crate::slapd::free_port();
        let python = if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let child = Command::new(python)
            .arg(crate::common::repo().join("tests/tls_proxy.py"))
            .args(["--port", &port.to_string(), "--to", &self.port.to_string()])
            .arg("--cert")
            .arg(self.dir.path().join("server.crt"))
            .arg("--key")
            .arg(self.dir.path().join("server.key"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the TLS front did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (
            format!("https://localhost:{port}"),
            self.dir.path().join("ca.crt"),
            Proxy(child),
        )
    }

    /// Stops the server where it is (SIGSTOP): requests hang until `resume`.
    pub fn pause(&self) {
        crate::slapd::signal(&self.child, "-STOP");
    }

    pub fn resume(&self) {
        crate::slapd::signal(&self.child, "-CONT");
    }
}

/// A running TLS front, killed on drop.
pub struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        // A paused server is resumed first, so the kill is not left pending.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
