//! The config file, `onboard.toml`: what a team sets once (the store, the LDAP and SMTP
//! servers) instead of in every shell's environment.
//!
//! Found at `--config FILE`, else `$ONBOARD_CONFIG`, else `$XDG_CONFIG_HOME/onboard/config.toml`
//! (`~/.config/onboard/config.toml`), else `/etc/onboard/config.toml`; none at all is fine.
//! Secrets are never values in it: a secret is named as `password_file = "…"` (its first line)
//! or `password_env = "VARIABLE"`. An unknown key or a wrong type is refused with its place,
//! `FILE:LINE:COLUMN`, like a playbook's errors.
//!
//! ```toml
//! state = "postgres://onboard@db.example.org/onboard"   # or a directory
//!
//! [postgres]
//! password_file = "/etc/onboard/db-password"
//! ca_file = "/etc/onboard/db-ca.pem"
//!
//! [ldap]
//! url = "ldaps://ldap.example.org"
//! bind_dn = "cn=onboard,ou=services,dc=example,dc=org"
//! password_file = "/etc/onboard/ldap-password"
//!
//! [smtp]
//! url = "smtp://mail.example.org:587"
//! user = "onboard"
//! password_env = "ONBOARD_SMTP_SECRET"
//!
//! [serve]
//! listen = "0.0.0.0:8443"
//! base_url = "https://onboard.example.org:8443"
//! tls_cert = "/etc/onboard/tls.pem"
//! tls_key = "/etc/onboard/tls.key"
//!
//! [scim.chat]
//! url = "https://chat.example.org/scim/v2"
//! token_file = "/etc/onboard/chat-scim-token"
//! creates_per_minute = 180      # the application's published limits
//! writes_per_minute = 600
//!
//! [policies]
//! from = "IT Service Desk <it@example.org>"
//! max_age_days = 365
//! remind_days = 7
//! reminders = 2
//!
//! [roles]
//! it = "cn=it-staff,ou=groups,dc=example,dc=org"
//! hr = "cn=hr,ou=groups,dc=example,dc=org"
//! audit = "cn=auditors,ou=groups,dc=example,dc=org"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{CliError, CmdResult};

/// A config file as read: its path, its text (for locating), and its settings.
#[derive(Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    text: String,
    pub doc: Doc,
}

/// The file's keys. Field names are the format: add, never rename.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Doc {
    /// Where journals, locks and evidence live: a directory, or `postgres://…`.
    pub state: Option<Spanned<String>>,
    /// Folders outside a checklist's project that its `templates:` may name (templates and
    /// policy texts are mailed, so a checklist cannot name just any folder).
    pub templates_roots: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub postgres: Postgres,
    #[serde(default)]
    pub ldap: Server,
    #[serde(default)]
    pub smtp: Server,
    #[serde(default)]
    pub serve: Serve,
    #[serde(default)]
    pub roles: Roles,
    #[serde(default)]
    pub policies: Policies,
    /// `[scim.NAME]`: one section per application (`app: NAME` in a playbook).
    #[serde(default)]
    pub scim: std::collections::BTreeMap<String, Scim>,
}

/// `[scim.NAME]`: an application provisioned over SCIM 2.0.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scim {
    /// The SCIM base URL, e.g. `https://chat.example.org/scim/v2` (HTTPS, or HTTP to loopback).
    pub url: Option<Spanned<String>>,
    /// The bearer token: a file (its first line), or an environment variable.
    pub token_file: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    /// Seconds for each request.
    pub timeout: Option<Spanned<u64>>,
    /// The application's limits, kept by every worker of a cohort together: every request,
    /// POST/PUT/PATCH, and POST /Users, each a minute.
    pub requests_per_minute: Option<Spanned<u64>>,
    pub writes_per_minute: Option<Spanned<u64>>,
    pub creates_per_minute: Option<Spanned<u64>>,
    /// The longest `Retry-After` waited, in seconds.
    pub max_retry_after: Option<Spanned<u64>>,
}

/// `[policies]`: acknowledgement campaigns and who counts as behind.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    /// The sender of campaign messages, e.g. `IT Service Desk <it@example.org>`.
    pub from: Option<Spanned<String>>,
    /// An acceptance older than this many days is behind (0: never).
    pub max_age_days: Option<Spanned<u64>>,
    /// Days between a campaign message and a reminder.
    pub remind_days: Option<Spanned<u64>>,
    /// At most this many reminders (0: none).
    pub reminders: Option<Spanned<u64>>,
}

/// `[serve]`: the web pages (`onboard serve`) and the links they open.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    /// `HOST:PORT` to listen on.
    pub listen: Option<Spanned<String>>,
    /// The address people reach the pages at, for links in emails (`https://onboard.example.org`).
    pub base_url: Option<Spanned<String>>,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
    /// How long a sign-in lasts, in minutes.
    pub session_minutes: Option<Spanned<u64>>,
    /// How long a link is usable, in days.
    pub link_days: Option<Spanned<u64>>,
    /// The file holding the key links are signed with (created if missing).
    pub link_key_file: Option<Spanned<String>>,
    /// Where people's accounts are, and the attribute they sign in with.
    pub users_base: Option<Spanned<String>>,
    pub login_attribute: Option<Spanned<String>>,
    /// Whom a person with a used or expired link should contact.
    pub contact: Option<Spanned<String>>,
}

/// `[roles]`: the directory group whose members hold each role.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roles {
    pub it: Option<Spanned<String>>,
    pub hr: Option<Spanned<String>>,
    pub audit: Option<Spanned<String>>,
}

/// `[postgres]`: how to reach the database that `state = "postgres://…"` names.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    pub password_file: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub timeout: Option<Spanned<u64>>,
    pub allow_plaintext: Option<Spanned<bool>>,
}

/// `[ldap]` and `[smtp]`. `bind_dn` is LDAP's, `user` SMTP's, `flavor` LDAP's (checked when
/// resolved, so a misplaced one is named).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub url: Option<Spanned<String>>,
    pub bind_dn: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub flavor: Option<Spanned<String>>,
    pub timeout: Option<Spanned<u64>>,
    pub starttls: Option<Spanned<bool>>,
    pub allow_plaintext: Option<Spanned<bool>>,
}

/// Where a config file was looked for, in order.
pub enum Lookup {
    /// `--config FILE` or `$ONBOARD_CONFIG`: it must exist.
    Given(PathBuf),
    /// The usual places: the first that exists, if any.
    Usual(Vec<PathBuf>),
}

impl ConfigFile {
    /// Finds and reads the config file; `None` when there is none in the usual places.
    pub fn find(lookup: Lookup) -> CmdResult<Option<ConfigFile>> {
        let path = match lookup {
            Lookup::Given(path) => path,
            Lookup::Usual(places) => match places.into_iter().find(|p| p.exists()) {
                Some(path) => path,
                None => return Ok(None),
            },
        };
        let text = crate::files::read_text(&path, crate::files::SETTING_LIMIT).map_err(|e| {
            CliError::input(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
            .hint("pass --config FILE, or unset ONBOARD_CONFIG to use none")
        })?;
        ConfigFile::parse(path, text).map(Some)
    }

    /// Parses a config file's text; an unknown key or a wrong type is located.
    pub fn parse(path: PathBuf, text: String) -> CmdResult<ConfigFile> {
        match toml::from_str::<Doc>(&text) {
            Ok(doc) => Ok(ConfigFile { path, text, doc }),
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                let message = e.message().trim_end().to_owned();
                Err(
                    CliError::input(format!("{}: {message}", locate(&path, &text, at)))
                        .hint(hint_for(&message)),
                )
            }
        }
    }

    /// `FILE:LINE:COLUMN` of a value in the file.
    pub fn at<T>(&self, value: &Spanned<T>) -> String {
        locate(&self.path, &self.text, value.span().start)
    }

    /// `FILE:LINE` of a value, for `onboard config`.
    pub fn line_of<T>(&self, value: &Spanned<T>) -> String {
        let (line, _) = line_col(&self.text, value.span().start);
        format!("{}:{line}", self.path.display())
    }
}

fn hint_for(message: &str) -> String {
    if message.contains("unknown field `password`") {
        "a secret is never written in the config file: name a file with `password_file = \
         \"PATH\"` or a variable with `password_env = \"NAME\"`"
            .to_owned()
    } else if message.contains("unknown field") {
        "see `onboard config --help` for the keys, or README.md (Team setup)".to_owned()
    } else {
        "fix the value's type: text in quotes, numbers and true/false without".to_owned()
    }
}

fn locate(path: &Path, text: &str, offset: usize) -> String {
    let (line, col) = line_col(text, offset);
    format!("{}:{line}:{col}", path.display())
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, String> {
        ConfigFile::parse("onboard.toml".into(), text.to_owned()).map_err(|e| match e {
            CliError::Message { message, hints, .. } => format!("{message} | {}", hints.join("")),
            CliError::Reported(_) => unreachable!(),
        })
    }

    #[test]
    fn keys_are_read_with_their_lines() {
        let file =
            parse("state = \"/srv/onboard\"\n\n[ldap]\nurl = \"ldaps://ldap\"\ntimeout = 5\n")
                .unwrap();
        let url = file.doc.ldap.url.as_ref().unwrap();
        assert_eq!(url.get_ref(), "ldaps://ldap");
        assert_eq!(file.line_of(url), "onboard.toml:4");
        assert_eq!(file.at(url), "onboard.toml:4:7");
        assert_eq!(*file.doc.ldap.timeout.as_ref().unwrap().get_ref(), 5);
    }

    #[test]
    fn unknown_keys_wrong_types_and_secrets_are_located() {
        let typo = parse("[ldap]\nurll = \"ldap://x\"\n").unwrap_err();
        assert!(
            typo.starts_with("onboard.toml:2:1: unknown field `urll`"),
            "{typo}"
        );
        let wrong = parse("[smtp]\ntimeout = \"ten\"\n").unwrap_err();
        assert!(wrong.starts_with("onboard.toml:2:11: "), "{wrong}");
        let secret = parse("[smtp]\npassword = \"hunter2\"\n").unwrap_err();
        assert!(secret.contains("password_file"), "{secret}");
        assert!(!secret.contains("hunter2"), "{secret}");
        let section = parse("[ldpa]\n").unwrap_err();
        assert!(
            section.starts_with("onboard.toml:1:2: unknown field `ldpa`"),
            "{section}"
        );
    }
}
