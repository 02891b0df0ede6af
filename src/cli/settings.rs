//! Turning flags and environment into checked settings, before any work starts.
//!
//! | setting | flag | environment | default |
//! |---|---|---|---|
//! | state directory | `--state-dir` | `ONBOARD_STATE_DIR` | `$XDG_STATE_HOME/onboard`, else `~/.local/state/onboard` |
//! | actor | `--as` | `USER`, `LOGNAME` | `unknown` |
//! | clock | — | `ONBOARD_NOW` (RFC 3339; for tests and demos) | the system clock |
//! | failpoint | — | `ONBOARD_FAILPOINT` (tests only: see `engine::Failpoint`) | none |

use std::path::PathBuf;

use crate::engine::Clock;

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
