//! Turning flags and environment into checked settings, before any work starts.
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

use std::path::PathBuf;

use std::time::Duration;

use crate::engine::Clock;
use crate::secret::Secret;
use crate::target::ldap::LdapConfig;

use super::{Failure, Printer};

pub fn state_dir(flag: Option<PathBuf>, printer: &Printer) -> Result<PathBuf, Failure> {
    if let Some(dir) = flag.or_else(|| env_path("ONBOARD_STATE_DIR")) {
        return Ok(dir);
    }
    if let Some(xdg) = env_path("XDG_STATE_HOME") {
        return Ok(xdg.join("onboard"));
    }
    if let Some(home) = env_path("HOME") {
        return Ok(home.join(".local/state/onboard"));
    }
    printer.error("no state directory: HOME is not set");
    printer.hint("pass --state-dir DIR or set ONBOARD_STATE_DIR");
    Err(Failure::Input)
}

pub fn actor(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn clock(printer: &Printer) -> Result<Clock, Failure> {
    match std::env::var("ONBOARD_NOW") {
        Ok(v) if !v.is_empty() => v.parse().map(Clock::Fixed).map_err(|e| {
            printer.error(&format!("ONBOARD_NOW={v} is not an RFC 3339 time: {e}"));
            Failure::Input
        }),
        _ => Ok(Clock::System),
    }
}

/// The LDAP server from the environment, or `None` for the embedded directory.
pub fn ldap(printer: &Printer) -> Result<Option<LdapConfig>, Failure> {
    let Some(url) = env_text("ONBOARD_LDAP_URL") else {
        return Ok(None);
    };
    if !url.starts_with("ldap://") && !url.starts_with("ldaps://") {
        printer.error(&format!(
            "ONBOARD_LDAP_URL={url} is not an ldap:// or ldaps:// URL"
        ));
        return Err(Failure::Input);
    }
    let password = match (
        env_path("ONBOARD_LDAP_PASSWORD_FILE"),
        env_text("ONBOARD_LDAP_PASSWORD"),
    ) {
        (Some(file), _) => {
            let text = fs_err::read_to_string(&file).map_err(|e| {
                printer.error(&format!("cannot read the LDAP password file: {e}"));
                Failure::Input
            })?;
            Some(Secret::new(text.lines().next().unwrap_or("").to_owned()))
        }
        (None, Some(p)) => Some(Secret::new(p)),
        (None, None) => None,
    };
    let timeout = match env_text("ONBOARD_LDAP_TIMEOUT") {
        Some(t) => t.parse::<u64>().map_err(|_| {
            printer.error(&format!(
                "ONBOARD_LDAP_TIMEOUT={t} is not a number of seconds"
            ));
            Failure::Input
        })?,
        None => 10,
    };
    let mut config = LdapConfig {
        url,
        starttls: false,
        ca_file: env_path("ONBOARD_LDAP_CA_FILE"),
        bind_dn: env_text("ONBOARD_LDAP_BIND_DN"),
        password,
        timeout: Duration::from_secs(timeout.max(1)),
        allow_plaintext: flag("ONBOARD_LDAP_ALLOW_PLAINTEXT").unwrap_or(false),
    };
    config.starttls = config.url.starts_with("ldap://")
        && flag("ONBOARD_LDAP_STARTTLS").unwrap_or(!config.is_loopback());
    Ok(Some(config))
}

fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn flag(name: &str) -> Option<bool> {
    env_text(name).map(|v| matches!(v.as_str(), "1" | "true" | "yes"))
}

pub fn failpoint() -> Option<crate::engine::Failpoint> {
    std::env::var("ONBOARD_FAILPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| crate::engine::Failpoint::parse(&v))
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
