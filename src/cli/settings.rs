//! Turning flags and environment into checked settings, before any work starts: `Setup` is
//! resolved once, before a command is dispatched, and passed down; nothing else reads the
//! environment.
//!
//! | setting | flag | environment | default |
//! |---|---|---|---|
//! | state directory | `--state-dir` | `ONBOARD_STATE_DIR` | `$XDG_STATE_HOME/onboard`, else `~/.local/state/onboard` |
//! | actor | `--as` | `USER`, `LOGNAME` | `unknown` |
//! | clock | — | `ONBOARD_NOW` (RFC 3339; for tests and demos) | the system clock |
//! | failpoint | — | `ONBOARD_FAILPOINT` (tests only: see `engine::Failpoint`) | none |
//!
//! The LDAP server (unset: the embedded LDIF directory):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `ONBOARD_LDAP_URL` | `ldap://host:389` or `ldaps://host:636` | unset |
//! | `ONBOARD_LDAP_STARTTLS` | `1`/`0`: upgrade `ldap://` with StartTLS | `1`, except to loopback |
//! | `ONBOARD_LDAP_CA_FILE` | PEM file of the CA that signed the server certificate | system roots |
//! | `ONBOARD_LDAP_BIND_DN` | DN to bind as | anonymous |
//! | `ONBOARD_LDAP_PASSWORD_FILE` / `ONBOARD_LDAP_PASSWORD` | the bind password (file: first line) | none |
//! | `ONBOARD_LDAP_TIMEOUT` | seconds for connecting and each operation | 10 |
//! | `ONBOARD_LDAP_ALLOW_PLAINTEXT` | `1`: allow a clear-text bind to a non-loopback host | `0` |
//! | `ONBOARD_LDAP_FLAVOR` | `openldap` or `active_directory` | `openldap` |
//!
//! The SMTP server (unset: the embedded outbox): `ONBOARD_SMTP_URL` (`smtp://host:25`,
//! `smtps://host:465`), `ONBOARD_SMTP_STARTTLS` (default `1` except to loopback),
//! `ONBOARD_SMTP_CA_FILE`, `ONBOARD_SMTP_USER`, `ONBOARD_SMTP_PASSWORD_FILE` /
//! `ONBOARD_SMTP_PASSWORD`, `ONBOARD_SMTP_TIMEOUT` (seconds, 10), `ONBOARD_SMTP_ALLOW_PLAINTEXT`.

use std::path::PathBuf;

use std::time::Duration;

use crate::backend::directory::ldap::{Flavor, LdapConfig};
use crate::backend::mail::smtp::SmtpConfig;
use crate::engine::{Clock, Failpoint};
use crate::secret::Secret;

use super::{CliError, CmdResult};
use crate::state::StateDir;
use anyhow::Context;

/// Everything a command takes from the global flags and the environment, checked.
pub struct Setup {
    /// `None`: nothing says where (an error for the commands that need it).
    state_dir: Option<PathBuf>,
    /// Who runs onboard, for the journal (`--as` overrides it per command).
    user: Option<String>,
    pub clock: Clock,
    /// The servers, for the commands that talk to them (`None`: not resolved).
    servers: Option<Servers>,
    pub failpoint: Option<Failpoint>,
}

/// How a command opens the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// As it is: nothing is created (status, reports, sign-off, a dry run).
    AsIs,
    /// Created and locked down (0700) if new, for a run.
    ForRun,
}

/// Whether a command talks to the directory and the mail server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Talks {
    ToServers,
    /// Only the state (status, reports, sign-off): server settings are not read, so a
    /// colleague without the bind password can still use them.
    ToStateOnly,
}

impl Setup {
    /// Reads and checks the settings; server URLs and secrets only when `talks` needs them.
    pub fn resolve(state_flag: Option<PathBuf>, talks: Talks) -> CmdResult<Setup> {
        Ok(Setup {
            state_dir: state_dir(state_flag),
            user: std::env::var("USER")
                .ok()
                .or_else(|| std::env::var("LOGNAME").ok()),
            clock: clock()?,
            servers: match talks {
                Talks::ToServers => Some(servers()?),
                Talks::ToStateOnly => None,
            },
            failpoint: failpoint(),
        })
    }

    /// The state directory: `--state-dir`, `ONBOARD_STATE_DIR`, `$XDG_STATE_HOME/onboard`,
    /// `~/.local/state/onboard`.
    fn state_dir(&self) -> CmdResult<&std::path::Path> {
        self.state_dir.as_deref().ok_or_else(|| {
            CliError::input("no state directory: HOME is not set")
                .hint("pass --state-dir DIR or set ONBOARD_STATE_DIR")
        })
    }

    /// Who acts: `--as NAME` when given, else the OS user.
    pub fn actor(&self, flag: Option<String>) -> String {
        flag.or_else(|| self.user.clone())
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// The store of journals, locks and evidence: the one place it is chosen. Today the
    /// state directory.
    pub fn state(&self, open: Open) -> CmdResult<StateDir> {
        let dir = self.state_dir()?;
        Ok(match open {
            Open::AsIs => StateDir::at(dir),
            Open::ForRun => StateDir::open(dir)
                .with_context(|| format!("cannot use the state directory {}", dir.display()))?,
        })
    }

    pub fn servers(&self) -> &Servers {
        self.servers
            .as_ref()
            .expect("resolved with Talks::ToServers")
    }
}

fn state_dir(flag: Option<PathBuf>) -> Option<PathBuf> {
    if let Some(dir) = flag.or_else(|| env_path("ONBOARD_STATE_DIR")) {
        return Some(dir);
    }
    if let Some(xdg) = env_path("XDG_STATE_HOME") {
        return Some(xdg.join("onboard"));
    }
    env_path("HOME").map(|home| home.join(".local/state/onboard"))
}

fn clock() -> CmdResult<Clock> {
    match std::env::var("ONBOARD_NOW") {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map(Clock::Fixed)
            .map_err(|e| CliError::input(format!("ONBOARD_NOW={v} is not an RFC 3339 time: {e}"))),
        _ => Ok(Clock::System),
    }
}

/// The servers a run talks to, resolved and checked once, before anything runs: `None` is the
/// embedded directory or outbox.
pub struct Servers {
    pub ldap: Option<LdapConfig>,
    pub smtp: Option<SmtpConfig>,
}

fn servers() -> CmdResult<Servers> {
    Ok(Servers {
        ldap: ldap()?,
        smtp: smtp()?,
    })
}

/// The LDAP server from the environment, or `None` for the embedded directory.
fn ldap() -> CmdResult<Option<LdapConfig>> {
    let Some(url) = env_text("ONBOARD_LDAP_URL") else {
        return Ok(None);
    };
    server_url(
        "ONBOARD_LDAP_URL",
        &url,
        &["ldap", "ldaps"],
        "set the bind DN in ONBOARD_LDAP_BIND_DN and the password in a file named by \
         ONBOARD_LDAP_PASSWORD_FILE",
    )?;
    let password = secret("ONBOARD_LDAP")?;
    let timeout = seconds("ONBOARD_LDAP_TIMEOUT")?;
    let flavor = match env_text("ONBOARD_LDAP_FLAVOR").as_deref() {
        None | Some("openldap") => Flavor::OpenLdap,
        Some("active_directory") => Flavor::ActiveDirectory,
        Some(other) => {
            return Err(CliError::input(format!(
                "ONBOARD_LDAP_FLAVOR={other} is not `openldap` or `active_directory`"
            )));
        }
    };
    let mut config = LdapConfig {
        flavor,
        url,
        starttls: false,
        ca_file: env_path("ONBOARD_LDAP_CA_FILE"),
        bind_dn: env_text("ONBOARD_LDAP_BIND_DN"),
        password,
        timeout,
        allow_plaintext: flag("ONBOARD_LDAP_ALLOW_PLAINTEXT").unwrap_or(false),
    };
    config.starttls = config.url.starts_with("ldap://")
        && flag("ONBOARD_LDAP_STARTTLS").unwrap_or(!config.is_loopback());
    Ok(Some(config))
}

/// The SMTP server from the environment, or `None` for the embedded outbox.
fn smtp() -> CmdResult<Option<SmtpConfig>> {
    let Some(url) = env_text("ONBOARD_SMTP_URL") else {
        return Ok(None);
    };
    server_url(
        "ONBOARD_SMTP_URL",
        &url,
        &["smtp", "smtps"],
        "set the user in ONBOARD_SMTP_USER and the password in a file named by \
         ONBOARD_SMTP_PASSWORD_FILE",
    )?;
    let mut config = SmtpConfig {
        url,
        starttls: false,
        ca_file: env_path("ONBOARD_SMTP_CA_FILE"),
        user: env_text("ONBOARD_SMTP_USER"),
        password: secret("ONBOARD_SMTP")?,
        timeout: seconds("ONBOARD_SMTP_TIMEOUT")?,
        allow_plaintext: flag("ONBOARD_SMTP_ALLOW_PLAINTEXT").unwrap_or(false),
    };
    config.starttls = config.url.starts_with("smtp://")
        && flag("ONBOARD_SMTP_STARTTLS").unwrap_or(!config.is_loopback());
    Ok(Some(config))
}

/// Checks that a server URL is `SCHEME://HOST[:PORT][/]` and nothing more. A user name or
/// password in it is refused before anything runs, and never shown: URLs end up in messages,
/// the journal and reports, and a password there would go wherever they go.
fn server_url(name: &str, url: &str, schemes: &[&str], credentials_hint: &str) -> CmdResult<()> {
    match check_server_url(url, schemes) {
        Ok(()) => Ok(()),
        Err(UrlProblem::Credentials) => Err(CliError::input(format!(
            "{name}={} holds a user name or password; onboard never takes credentials \
                 from a URL",
            redact_url(url)
        ))
        .hint(credentials_hint)),
        Err(UrlProblem::Shape(why)) => {
            let shapes: Vec<String> = schemes
                .iter()
                .map(|s| format!("{s}://HOST[:PORT]"))
                .collect();
            Err(CliError::input(format!("{name}={} {why}", redact_url(url)))
                .hint(format!("write it as {}", shapes.join(" or "))))
        }
    }
}

#[derive(Debug, PartialEq)]
enum UrlProblem {
    Credentials,
    Shape(&'static str),
}

fn check_server_url(url: &str, schemes: &[&str]) -> Result<(), UrlProblem> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(UrlProblem::Shape("is not a URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(UrlProblem::Credentials);
    }
    if !schemes.contains(&scheme) {
        return Err(UrlProblem::Shape("has a scheme onboard does not speak"));
    }
    if !matches!(&rest[authority.len()..], "" | "/") {
        return Err(UrlProblem::Shape("has a path, query or fragment"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(p))),
            None => return Err(UrlProblem::Shape("has an unclosed `[`")),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlProblem::Shape("has no valid host"));
    }
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(UrlProblem::Shape(
            "has a port that is not a number from 1 to 65535",
        ));
    }
    Ok(())
}

/// The URL with any user information replaced by `***`, fit to be shown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// `PREFIX_PASSWORD_FILE` (its first line) or `PREFIX_PASSWORD`.
fn secret(prefix: &str) -> CmdResult<Option<Secret>> {
    if let Some(file) = env_path(&format!("{prefix}_PASSWORD_FILE")) {
        let text = crate::files::read_text(&file, crate::files::SETTING_LIMIT)
            .map_err(|e| CliError::input(format!("cannot read the password file: {e}")))?;
        return Ok(Some(Secret::new(
            text.lines().next().unwrap_or("").to_owned(),
        )));
    }
    Ok(env_text(&format!("{prefix}_PASSWORD")).map(Secret::new))
}

/// A number of seconds from the environment (default 10).
fn seconds(name: &str) -> CmdResult<Duration> {
    match env_text(name) {
        Some(t) => t
            .parse::<u64>()
            .map(|s| Duration::from_secs(s.max(1)))
            .map_err(|_| CliError::input(format!("{name}={t} is not a number of seconds"))),
        None => Ok(Duration::from_secs(10)),
    }
}

fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn flag(name: &str) -> Option<bool> {
    env_text(name).map(|v| matches!(v.as_str(), "1" | "true" | "yes"))
}

fn failpoint() -> Option<Failpoint> {
    std::env::var("ONBOARD_FAILPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| Failpoint::parse(&v))
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_with_credentials_are_refused_and_never_shown() {
        let smtp = ["smtp", "smtps"];
        assert_eq!(
            check_server_url("smtp://user:hunter2@mail.example.org:587", &smtp),
            Err(UrlProblem::Credentials)
        );
        assert_eq!(
            check_server_url("ldap://cn=admin:pw@ldap.example.org", &["ldap"]),
            Err(UrlProblem::Credentials)
        );
        assert_eq!(
            redact_url("smtp://user:hunter2@mail.example.org:587"),
            "smtp://***@mail.example.org:587"
        );
        assert_eq!(redact_url("smtp://a@b@host/"), "smtp://***@host/");
        assert!(check_server_url("smtp://127.0.0.1:2525", &smtp).is_ok());
        assert!(check_server_url("smtps://[::1]:465/", &smtp).is_ok());
        assert!(check_server_url("smtp://mail.example.org", &smtp).is_ok());
        for bad in [
            "smtp://",
            "smtp://host:0",
            "smtp://host:99999",
            "smtp://host:25/x",
            "smtp://host?x",
            "http://host",
            "host:25",
        ] {
            assert!(
                matches!(check_server_url(bad, &smtp), Err(UrlProblem::Shape(_))),
                "{bad}"
            );
        }
    }
}
