//! `[scim.NAME]`: the applications provisioned over SCIM 2.0 (`scim_user`, `scim_groups`).
//!
//! | key | environment | meaning | default |
//! |---|---|---|---|
//! | `scim.NAME.url` | `ONBOARD_SCIM_NAME_URL` | the SCIM base URL: `https://…`, or `http://` to loopback only | none: the application is not configured |
//! | `scim.NAME.token_file` / `token_env` | `ONBOARD_SCIM_NAME_TOKEN_FILE` / `ONBOARD_SCIM_NAME_TOKEN` | the bearer token (file: its first line) | required |
//! | `scim.NAME.ca_file` | `ONBOARD_SCIM_NAME_CA_FILE` | PEM file of the CA that signed the server's certificate | system roots |
//! | `scim.NAME.timeout` | `ONBOARD_SCIM_NAME_TIMEOUT` | seconds for each request | 10 |
//! | `scim.NAME.requests_per_minute` | `ONBOARD_SCIM_NAME_REQUESTS_PER_MINUTE` | at most this many requests a minute, all workers together | no limit |
//! | `scim.NAME.writes_per_minute` | `ONBOARD_SCIM_NAME_WRITES_PER_MINUTE` | at most this many POST, PUT and PATCH a minute | no limit |
//! | `scim.NAME.creates_per_minute` | `ONBOARD_SCIM_NAME_CREATES_PER_MINUTE` | at most this many POST /Users a minute | no limit |
//! | `scim.NAME.max_retry_after` | `ONBOARD_SCIM_NAME_MAX_RETRY_AFTER` | the longest `Retry-After` waited, in seconds (longer fails the step) | 300 |
//!
//! Slack's published limits, for example, are `creates_per_minute = 180` and
//! `writes_per_minute = 600`.
//!
//! `NAME` in the environment is the application's name in capitals with `-` as `_`
//! (`ONBOARD_SCIM_CODE_HOST_URL` for `code-host`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::layers::{Found, Layers, Origin, env_text, shown_path};
use crate::backend::scim::{Limits, ScimConfig};
use crate::cli::config_file::Scim;
use crate::cli::{CliError, CmdResult};
use crate::secret::Secret;

/// Every configured application: those of the config file and those the environment names.
pub(super) fn apps(layers: &mut Layers) -> CmdResult<Vec<ScimConfig>> {
    let sections = layers
        .file
        .as_ref()
        .map(|f| f.doc.scim.clone())
        .unwrap_or_default();
    let mut names: BTreeSet<String> = sections.keys().cloned().collect();
    for (key, _) in std::env::vars() {
        if let Some(name) = key
            .strip_prefix("ONBOARD_SCIM_")
            .and_then(|k| k.strip_suffix("_URL"))
            .filter(|n| !n.is_empty())
        {
            names.insert(name.to_lowercase().replace('_', "-"));
        }
    }
    let mut apps = Vec::new();
    for name in names {
        let section = sections.get(&name).cloned().unwrap_or_default();
        if let Some(app) = app(layers, &name, &section)? {
            apps.push(app);
        }
    }
    Ok(apps)
}

fn app(layers: &mut Layers, name: &str, s: &Scim) -> CmdResult<Option<ScimConfig>> {
    let env = format!("ONBOARD_SCIM_{}", name.to_uppercase().replace('-', "_"));
    let key = |k: &str| format!("scim.{name}.{k}");
    let Some(url) = layers.text(&format!("{env}_URL"), &key("url"), s.url.as_ref()) else {
        return Ok(None);
    };
    check_url(&url.value).map_err(|why| {
        CliError::input(format!(
            "{}: `{}` {why}",
            url.label,
            super::servers::redact_url(&url.value)
        ))
        .hint(
            "write the SCIM base URL, e.g. https://chat.example.org/scim/v2 (plain http:// only to \
             127.0.0.1 or localhost); the token goes in token_file",
        )
    })?;
    layers.show(key("url"), url.value.clone(), Some(url.origin.clone()));
    let token = token(layers, &env, name, s)?;
    let ca_file = layers.path(
        &format!("{env}_CA_FILE"),
        &key("ca_file"),
        s.ca_file.as_ref(),
    );
    layers.show_found(
        key("ca_file"),
        &ca_file,
        shown_path(&ca_file, "system roots"),
    );
    let timeout = layers.env_or_file(
        &format!("{env}_TIMEOUT"),
        |v| {
            v.parse::<u64>()
                .map_err(|_| "is not a number of seconds".to_owned())
        },
        &key("timeout"),
        s.timeout.as_ref(),
    )?;
    let secs = timeout.as_ref().map_or(10, |f| f.value).max(1);
    layers.show_found(key("timeout"), &timeout, format!("{secs} s"));
    let mut per_minute = |what: &str, file: Option<&toml::Spanned<u64>>| {
        let found = layers.env_or_file(
            &format!("{env}_{}", what.to_uppercase()),
            |v| match v.parse::<u64>() {
                Ok(n) if n > 0 && n <= u64::from(u32::MAX) => Ok(n),
                _ => Err("is not a number of requests a minute (1 or more)".to_owned()),
            },
            &key(what),
            file,
        )?;
        layers.show_found(
            key(what),
            &found,
            found
                .as_ref()
                .map_or("no limit".to_owned(), |f| format!("{} a minute", f.value)),
        );
        CmdResult::Ok(found.map(|f| u32::try_from(f.value).unwrap_or(u32::MAX)))
    };
    let limits = Limits {
        requests_per_minute: per_minute("requests_per_minute", s.requests_per_minute.as_ref())?,
        writes_per_minute: per_minute("writes_per_minute", s.writes_per_minute.as_ref())?,
        creates_per_minute: per_minute("creates_per_minute", s.creates_per_minute.as_ref())?,
    };
    let max_retry_after = layers.env_or_file(
        &format!("{env}_MAX_RETRY_AFTER"),
        |v| {
            v.parse::<u64>()
                .map_err(|_| "is not a number of seconds".to_owned())
        },
        &key("max_retry_after"),
        s.max_retry_after.as_ref(),
    )?;
    let max_wait = max_retry_after.as_ref().map_or(300, |f| f.value);
    layers.show_found(
        key("max_retry_after"),
        &max_retry_after,
        format!("{max_wait} s"),
    );
    Ok(Some(ScimConfig {
        name: name.to_owned(),
        url: url.value.trim_end_matches('/').to_owned(),
        token,
        ca_file: ca_file.map(|f| f.value),
        timeout: std::time::Duration::from_secs(secs),
        limits,
        max_retry_after: std::time::Duration::from_secs(max_wait),
    }))
}

/// The bearer token: `…_TOKEN_FILE`/`token_file` (its first line), else `…_TOKEN`/`token_env`.
/// Shown as where it is read from, never its value.
fn token(layers: &mut Layers, env: &str, name: &str, s: &Scim) -> CmdResult<Secret> {
    let key = format!("scim.{name}.token");
    if let Some(file) = layers.path(
        &format!("{env}_TOKEN_FILE"),
        &format!("scim.{name}.token_file"),
        s.token_file.as_ref(),
    ) {
        let text =
            crate::files::read_text(&file.value, crate::files::SETTING_LIMIT).map_err(|e| {
                CliError::input(format!(
                    "{}: cannot read the token file {}: {e}",
                    file.label,
                    file.value.display()
                ))
            })?;
        let token = text.lines().next().unwrap_or("").trim().to_owned();
        if token.is_empty() {
            return Err(CliError::input(format!(
                "{}: the token file {} is empty",
                file.label,
                file.value.display()
            )));
        }
        layers.show(
            key,
            format!("(from file {})", file.value.display()),
            Some(file.origin),
        );
        return Ok(Secret::new(token));
    }
    let direct = format!("{env}_TOKEN");
    let named = match (&layers.file, &s.token_env) {
        (Some(f), Some(v)) => Some(Found {
            value: v.get_ref().clone(),
            origin: Origin::File(f.line_of(v)),
            label: format!("{}: scim.{name}.token_env", f.at(v)),
        }),
        _ => None,
    };
    let (variable, origin) = match named {
        Some(f) => (f.value, f.origin),
        None => (direct.clone(), Origin::Env(direct.clone())),
    };
    match env_text(&variable) {
        Some(v) => {
            layers.show(key, format!("(from environment {variable})"), Some(origin));
            Ok(Secret::new(v))
        }
        None => Err(CliError::input(format!(
            "the SCIM application `{name}` has a URL but no token ({variable} is not set)"
        ))
        .hint(format!(
            "put the bearer token in a file named by scim.{name}.token_file (or {env}_TOKEN_FILE)"
        ))),
    }
}

/// HTTPS, or HTTP to loopback; no user information; a host.
fn check_url(url: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("is not a URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("holds a user name or password; the token goes in token_file");
    }
    if rest[authority.len()..].contains(['?', '#']) {
        return Err("has a query or fragment");
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err("has no host");
    }
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(
            "is plain HTTP to another machine: the bearer token would cross the network in clear",
        ),
        _ => Err("is not an https:// URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn scim_urls_are_https_or_loopback() {
        assert!(check_url("https://chat.example.org/scim/v2").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://[::1]:8080/v2").is_ok());
        assert!(check_url("http://localhost/scim").is_ok());
        assert!(check_url("http://chat.example.org/scim").is_err());
        assert!(check_url("https://user:pw@chat.example.org").is_err());
        assert!(check_url("ftp://chat.example.org").is_err());
        assert!(check_url("https://chat.example.org/scim?x=1").is_err());
    }
}
