//! A real headless Chromium driven over WebDriver: Debian's chromedriver started on loopback
//! with its own port and profile, stopped by PID; a few WebDriver commands spoken over plain
//! HTTP/1.1 (no client crate needed for JSON over one socket).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    pub downloads: PathBuf,
    _dir: tempfile::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::slapd::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (bash .ci/run installs Debian's chromium-driver)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let downloads = dir.path().join("downloads");
        std::fs::create_dir(&downloads).unwrap();
        let profile = dir.path().join("profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1200,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        }}});
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            downloads,
            _dir: dir,
        };
        let created = b.call("POST", "/session", Some(caps));
        b.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        // Elements are looked for until they appear (a page still loading after a click).
        b.session_call(
            "POST",
            "/timeouts",
            Some(json!({"implicit": 5000, "pageLoad": 30000})),
        );
        b
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let (head, rest) = read_reply(&mut s).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let v: Value = serde_json::from_str(&rest)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {head}"));
        v["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self.call(method, &format!("/session/{}{path}", self.session), body);
        if let Some(error) = v.get("error") {
            panic!("{method} {path}: {error}: {}", v["message"]);
        }
        v
    }

    pub fn go(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The visible text of the page.
    pub fn text(&self) -> String {
        // After a click the old page may go while it is read: read the new one.
        for _ in 0..50 {
            let body = self.find("body");
            let v = self.call(
                "GET",
                &format!("/session/{}/element/{body}/text", self.session),
                None,
            );
            if let Some(text) = v.as_str() {
                return text.to_owned();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the page never settled")
    }

    fn find(&self, css: &str) -> String {
        let v = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}"))
            .to_owned()
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.session_call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    /// Clicks a button that sends a form, and waits for the page that answers.
    pub fn submit(&self, css: &str) {
        let old = self.find("body");
        self.click(css);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.call(
                "GET",
                &format!("/session/{}/element/{old}/text", self.session),
                None,
            );
            if v.get("error").is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{css} did not lead to a new page"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.find("body");
    }

    /// Types into a field (for a file input: the path of the file to upload).
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.session_call("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.session_call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    pub fn upload(&self, css: &str, file: &Path) {
        let e = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": file.display().to_string() })),
        );
    }

    /// Signs out of everything: the next page is seen as by a stranger.
    pub fn forget_cookies(&self) {
        self.session_call("DELETE", "/cookie", None);
    }

    /// A PNG of the page, kept as a CI artifact under target/tmp/artifacts/.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let png = self.session_call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Waits for a download to land; its content.
    pub fn downloaded(&self, suffix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = std::fs::read_dir(&self.downloads)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(suffix));
            if let Some(p) = found {
                return std::fs::read_to_string(p).unwrap();
            }
            assert!(Instant::now() < deadline, "no {suffix} download");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Reads one HTTP reply: its head, and its body by Content-Length (or chunked), without
/// waiting for the server to close the connection.
fn read_reply(s: &mut TcpStream) -> std::io::Result<(String, String)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf)?;
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let lower = head.to_ascii_lowercase();
            let length = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            match length {
                Some(len) if body.len() >= len => {
                    return Ok((head.to_owned(), body[..len].to_owned()));
                }
                None if lower.contains("transfer-encoding: chunked")
                    && body.ends_with("0\r\n\r\n") =>
                {
                    return Ok((head.to_owned(), unchunk(body)));
                }
                _ => {}
            }
        }
        if n == 0 {
            let text = String::from_utf8_lossy(&raw).into_owned();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            return Ok((head.to_owned(), body.to_owned()));
        }
    }
}

fn unchunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
