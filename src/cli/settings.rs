//! Turning flags, environment and the config file into checked settings, before any work
//! starts: `Setup` is resolved once, before a command is dispatched, and passed down; nothing
//! else reads the environment. Flags override the environment, which overrides the config file
//! (see `config_file.rs`), which overrides the defaults; `onboard config` shows what won.
//!
//! | setting | flag | environment | config file | default |
//! |---|---|---|---|---|
//! | config file | `--config` | `ONBOARD_CONFIG` | — | `$XDG_CONFIG_HOME/onboard/config.toml`, `/etc/onboard/config.toml` |
//! | store | `--state-dir` | `ONBOARD_STATE_URL` (`postgres://…`), then `ONBOARD_STATE_DIR` | `state` | the state directory |
//! | state directory (the file store; the embedded directory and outbox) | `--state-dir` | `ONBOARD_STATE_DIR` | `state` when a directory | `$XDG_STATE_HOME/onboard`, else `~/.local/state/onboard` |
//! | actor | `--as` | `USER`, `LOGNAME` | — | `unknown` |
//! | clock | — | `ONBOARD_NOW` (RFC 3339; for tests and demos) | — | the system clock |
//! | failpoint | — | `ONBOARD_FAILPOINT` (tests only: see `engine::Failpoint`) | — | none |
//!
//! The PostgreSQL store (`state = "postgres://[USER@]HOST[:PORT]/DATABASE"`): `[postgres]`
//! `password_file` / `password_env`, `ca_file`, `timeout`, `allow_plaintext`; in the
//! environment `ONBOARD_STATE_PASSWORD_FILE` / `ONBOARD_STATE_PASSWORD`,
//! `ONBOARD_STATE_CA_FILE`, `ONBOARD_STATE_TIMEOUT`, `ONBOARD_STATE_ALLOW_PLAINTEXT`.
//!
//! The LDAP server (unset: the embedded LDIF directory), `[ldap]` in the config file:
//!
//! | variable | key | meaning | default |
//! |---|---|---|---|
//! | `ONBOARD_LDAP_URL` | `url` | `ldap://host:389` or `ldaps://host:636` | unset |
//! | `ONBOARD_LDAP_STARTTLS` | `starttls` | `1`/`0`: upgrade `ldap://` with StartTLS | `1`, except to loopback |
//! | `ONBOARD_LDAP_CA_FILE` | `ca_file` | PEM file of the CA that signed the server certificate | system roots |
//! | `ONBOARD_LDAP_BIND_DN` | `bind_dn` | DN to bind as | anonymous |
//! | `ONBOARD_LDAP_PASSWORD_FILE` / `ONBOARD_LDAP_PASSWORD` | `password_file` / `password_env` | the bind password (file: first line) | none |
//! | `ONBOARD_LDAP_TIMEOUT` | `timeout` | seconds for connecting and each operation | 10 |
//! | `ONBOARD_LDAP_ALLOW_PLAINTEXT` | `allow_plaintext` | `1`: allow a clear-text bind to a non-loopback host | `0` |
//! | `ONBOARD_LDAP_FLAVOR` | `flavor` | `openldap` or `active_directory` | `openldap` |
//!
//! The SMTP server (unset: the embedded outbox), `[smtp]`: `ONBOARD_SMTP_URL` / `url`
//! (`smtp://host:25`, `smtps://host:465`), `ONBOARD_SMTP_STARTTLS` / `starttls` (default `1`
//! except to loopback), `ONBOARD_SMTP_CA_FILE` / `ca_file`, `ONBOARD_SMTP_USER` / `user`,
//! `ONBOARD_SMTP_PASSWORD_FILE` / `ONBOARD_SMTP_PASSWORD` / `password_file` / `password_env`,
//! `ONBOARD_SMTP_TIMEOUT` / `timeout` (seconds, 10), `ONBOARD_SMTP_ALLOW_PLAINTEXT` /
//! `allow_plaintext`.

use std::path::{Path, PathBuf};

use std::time::Duration;

use toml::Spanned;

use crate::backend::directory::ldap::{Flavor, LdapConfig};
use crate::backend::mail::smtp::SmtpConfig;
use crate::engine::{Clock, Failpoint};
use crate::secret::Secret;
use crate::state::StateDir;
use crate::store::Store;
use crate::store::postgres::{PgConfig, PgError, PgStore, PgUrl};

use super::config_file::{self, ConfigFile, Lookup};
use super::{CliError, CmdResult};
use anyhow::Context;

/// Everything a command takes from the global flags, the environment and the config file,
/// checked.
pub struct Setup {
    /// The state directory (`None`: nothing says where): the file store, and the embedded
    /// directory and outbox whatever the store.
    state_dir: Option<PathBuf>,
    /// Where journals, locks and evidence live.
    store: StoreAt,
    /// Who runs onboard, for the journal (`--as` overrides it per command).
    user: Option<String>,
    pub clock: Clock,
    /// The servers, for the commands that talk to them (`None`: not resolved).
    servers: Option<Servers>,
    pub failpoint: Option<Failpoint>,
    /// Each setting as resolved and where it came from, for `onboard config`.
    pub shown: Vec<Shown>,
}

/// Which store: the state directory, or a PostgreSQL database.
pub enum StoreAt {
    Dir,
    Postgres(PgConfig),
}

/// One resolved setting, as `onboard config` prints it: never a secret's value.
pub struct Shown {
    pub key: &'static str,
    pub value: String,
    pub origin: Origin,
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(String),
    /// `FILE:LINE` of the config file.
    File(String),
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Env(name) => write!(f, "environment {name}"),
            Origin::File(at) => f.write_str(at),
            Origin::Default => f.write_str("default"),
        }
    }
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

/// The global flags that settings come from.
pub struct Flags {
    pub state_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

/// A value found in the environment or the config file, with where it came from and how to
/// name it in a message (`ONBOARD_LDAP_URL` or `onboard.toml:4:7: ldap.url`).
struct Found<T> {
    value: T,
    origin: Origin,
    label: String,
}

/// The layers a setting is looked up in, below the flags: the environment, then the file.
struct Layers {
    file: Option<ConfigFile>,
    shown: Vec<Shown>,
}

impl Layers {
    fn env_or_file<T: Clone>(
        &self,
        env: &str,
        parse: impl Fn(&str) -> Result<T, String>,
        key: &str,
        file: Option<&Spanned<T>>,
    ) -> CmdResult<Option<Found<T>>> {
        if let Some(v) = env_text(env) {
            let value = parse(&v).map_err(|why| CliError::input(format!("{env}={v} {why}")))?;
            return Ok(Some(Found {
                value,
                origin: Origin::Env(env.to_owned()),
                label: env.to_owned(),
            }));
        }
        Ok(self.in_file(key, file))
    }

    /// A value of the config file, if it is there.
    fn in_file<T: Clone>(&self, key: &str, value: Option<&Spanned<T>>) -> Option<Found<T>> {
        match (&self.file, value) {
            (Some(f), Some(v)) => Some(Found {
                value: v.get_ref().clone(),
                origin: Origin::File(f.line_of(v)),
                label: format!("{}: {key}", f.at(v)),
            }),
            _ => None,
        }
    }

    fn text(&self, env: &str, key: &str, file: Option<&Spanned<String>>) -> Option<Found<String>> {
        self.env_or_file(env, |v| Ok(v.to_owned()), key, file)
            .expect("text always parses")
            .filter(|f| !f.value.is_empty())
    }

    /// A path; relative paths in the config file are relative to the file.
    fn path(&self, env: &str, key: &str, file: Option<&Spanned<String>>) -> Option<Found<PathBuf>> {
        self.text(env, key, file).map(|found| self.relative(found))
    }

    /// A path as given; from the config file, relative to the file.
    fn relative(&self, found: Found<String>) -> Found<PathBuf> {
        let mut path = PathBuf::from(&found.value);
        if let (Origin::File(_), Some(f)) = (&found.origin, &self.file)
            && path.is_relative()
            && let Some(dir) = f.path.parent()
        {
            path = dir.join(path);
        }
        Found {
            value: path,
            origin: found.origin,
            label: found.label,
        }
    }

    fn seconds(
        &mut self,
        env: &str,
        key: &'static str,
        file: Option<&Spanned<u64>>,
    ) -> CmdResult<Duration> {
        let found = self.env_or_file(
            env,
            |v| {
                v.parse::<u64>()
                    .map_err(|_| "is not a number of seconds".to_owned())
            },
            key,
            file,
        )?;
        let secs = found.as_ref().map_or(10, |f| f.value).max(1);
        self.show(key, format!("{secs} s"), found.map(|f| f.origin));
        Ok(Duration::from_secs(secs))
    }

    fn flag(&self, env: &str, key: &str, file: Option<&Spanned<bool>>) -> Option<Found<bool>> {
        self.env_or_file(env, |v| Ok(matches!(v, "1" | "true" | "yes")), key, file)
            .expect("flags always parse")
    }

    /// A secret: `PREFIX_PASSWORD_FILE` (its first line) or `PREFIX_PASSWORD` in the
    /// environment, else `password_file` or `password_env` in the file.
    fn secret(
        &mut self,
        prefix: &str,
        key: &'static str,
        file_key: Option<&Spanned<String>>,
        env_key: Option<&Spanned<String>>,
    ) -> CmdResult<Option<Secret>> {
        let env_file = format!("{prefix}_PASSWORD_FILE");
        let section = key.split('.').next().unwrap_or(key);
        if let Some(file) = self.path(&env_file, &format!("{section}.password_file"), file_key) {
            let text =
                crate::files::read_text(&file.value, crate::files::SETTING_LIMIT).map_err(|e| {
                    CliError::input(format!(
                        "{}: cannot read the password file {}: {e}",
                        file.label,
                        file.value.display()
                    ))
                })?;
            self.show(
                key,
                format!("(from file {})", file.value.display()),
                Some(file.origin),
            );
            return Ok(Some(Secret::new(
                text.lines().next().unwrap_or("").to_owned(),
            )));
        }
        let env_value = format!("{prefix}_PASSWORD");
        if let Some(v) = env_text(&env_value) {
            self.show(
                key,
                format!("(from environment {env_value})"),
                Some(Origin::Env(env_value)),
            );
            return Ok(Some(Secret::new(v)));
        }
        if let (Some(f), Some(name)) = (&self.file, env_key) {
            let origin = Origin::File(f.line_of(name));
            let Some(v) = env_text(name.get_ref()) else {
                return Err(CliError::input(format!(
                    "{}: {section}.password_env names {}, which is not set",
                    f.at(name),
                    name.get_ref()
                ))
                .hint("set that variable, or name a file with `password_file`"));
            };
            self.show(
                key,
                format!("(from environment {})", name.get_ref()),
                Some(origin),
            );
            return Ok(Some(Secret::new(v)));
        }
        self.show(key, "(none)".to_owned(), None);
        Ok(None)
    }

    fn show(&mut self, key: &'static str, value: String, origin: Option<Origin>) {
        self.shown.push(Shown {
            key,
            value,
            origin: origin.unwrap_or(Origin::Default),
        });
    }

    fn show_found<T>(&mut self, key: &'static str, found: &Option<Found<T>>, value: String) {
        let origin = found.as_ref().map(|f| f.origin.clone());
        self.show(key, value, origin);
    }
}

impl Setup {
    /// Reads and checks the settings; server URLs and secrets only when `talks` needs them.
    pub fn resolve(flags: Flags, talks: Talks) -> CmdResult<Setup> {
        let lookup = match flags.config.clone().or_else(|| env_path("ONBOARD_CONFIG")) {
            Some(path) => Lookup::Given(path),
            None => Lookup::Usual(usual_config_places()),
        };
        let file = ConfigFile::find(lookup)?;
        let mut layers = Layers {
            file,
            shown: Vec::new(),
        };
        let config_at = layers
            .file
            .as_ref()
            .map_or("(none)".to_owned(), |f| f.path.display().to_string());
        let config_origin = if flags.config.is_some() {
            Origin::Flag("--config")
        } else if env_path("ONBOARD_CONFIG").is_some() {
            Origin::Env("ONBOARD_CONFIG".into())
        } else {
            Origin::Default
        };
        layers.show("config file", config_at, Some(config_origin));
        let (state_dir, store) = store(&mut layers, flags.state_dir)?;
        let user = std::env::var("USER")
            .ok()
            .or_else(|| std::env::var("LOGNAME").ok());
        let clock = clock()?;
        let servers = match talks {
            Talks::ToServers => Some(servers(&mut layers)?),
            Talks::ToStateOnly => None,
        };
        Ok(Setup {
            state_dir,
            store,
            user,
            clock,
            servers,
            failpoint: failpoint(),
            shown: layers.shown,
        })
    }

    /// The state directory: `--state-dir`, `ONBOARD_STATE_DIR`, the file's `state`,
    /// `$XDG_STATE_HOME/onboard`, `~/.local/state/onboard`.
    fn state_dir(&self) -> CmdResult<&Path> {
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

    /// The store of journals, locks and evidence: the one place it is chosen and opened.
    pub fn store(&self, open: Open) -> CmdResult<Box<dyn Store>> {
        match &self.store {
            StoreAt::Dir => Ok(Box::new(self.local(open)?)),
            StoreAt::Postgres(config) => open_postgres(config.clone(), open == Open::ForRun),
        }
    }

    /// The state directory, where the embedded directory and outbox live.
    pub fn local(&self, open: Open) -> CmdResult<StateDir> {
        let dir = self.state_dir()?;
        Ok(match open {
            Open::AsIs => StateDir::at(dir),
            Open::ForRun => StateDir::open(dir)
                .with_context(|| format!("cannot use the state directory {}", dir.display()))?,
        })
    }

    /// The PostgreSQL settings (password, CA, timeout) of the configured store, for another
    /// URL on the same server (`onboard store copy --to URL`); none when the store is a
    /// directory.
    pub fn postgres_for(&self, url: &str) -> CmdResult<PgConfig> {
        let mut layers = Layers {
            file: None,
            shown: Vec::new(),
        };
        let mut config = postgres(
            &mut layers,
            Found {
                value: url.to_owned(),
                origin: Origin::Flag("--from/--to"),
                label: "the store URL".into(),
            },
        )?;
        if let StoreAt::Postgres(configured) = &self.store {
            config.password = config.password.or_else(|| configured.password.clone());
            config.ca_file = config.ca_file.or_else(|| configured.ca_file.clone());
        }
        Ok(config)
    }

    pub fn servers(&self) -> &Servers {
        self.servers
            .as_ref()
            .expect("resolved with Talks::ToServers")
    }
}

/// Opens a PostgreSQL store, its errors sorted into exit codes with what to do.
pub fn open_postgres(config: PgConfig, create: bool) -> CmdResult<Box<dyn Store>> {
    match PgStore::open(config, create) {
        Ok(store) => Ok(Box::new(store)),
        Err(e @ PgError::Settings(_)) => Err(CliError::input(e.to_string()).hint(
            "check the user and database in `state`, and the password in [postgres] \
             password_file (or ONBOARD_STATE_PASSWORD_FILE); see `onboard config`",
        )),
        Err(e @ PgError::Unavailable(_)) => Err(CliError::failed(e.to_string()).hint(
            "is the PostgreSQL server running and reachable? nothing was changed; run again \
             when it is",
        )),
        Err(e @ PgError::Schema(_)) => Err(CliError::failed(e.to_string())
            .hint("use the onboard that upgraded the database (or a newer one)")),
    }
}

fn usual_config_places() -> Vec<PathBuf> {
    let mut places = Vec::new();
    match (env_path("XDG_CONFIG_HOME"), env_path("HOME")) {
        (Some(xdg), _) => places.push(xdg.join("onboard/config.toml")),
        (None, Some(home)) => places.push(home.join(".config/onboard/config.toml")),
        (None, None) => {}
    }
    places.push(PathBuf::from("/etc/onboard/config.toml"));
    places
}

/// The state directory and the store, with their origins.
fn store(layers: &mut Layers, flag: Option<PathBuf>) -> CmdResult<(Option<PathBuf>, StoreAt)> {
    let doc_state = layers.file.as_ref().and_then(|f| f.doc.state.clone());
    let (file_url, file_dir) = match layers.in_file("state", doc_state.as_ref()) {
        Some(f) if is_postgres_url(&f.value) => (Some(f), None),
        Some(f) => {
            let dir = layers.relative(f);
            (None, Some((dir.value, dir.origin)))
        }
        None => (None, None),
    };
    let (dir, dir_origin) = if let Some(dir) = flag.clone() {
        (Some(dir), Origin::Flag("--state-dir"))
    } else if let Some(dir) = env_path("ONBOARD_STATE_DIR") {
        (Some(dir), Origin::Env("ONBOARD_STATE_DIR".into()))
    } else if let Some((dir, origin)) = file_dir {
        (Some(dir), origin)
    } else if let Some(xdg) = env_path("XDG_STATE_HOME") {
        (Some(xdg.join("onboard")), Origin::Default)
    } else {
        (
            env_path("HOME").map(|home| home.join(".local/state/onboard")),
            Origin::Default,
        )
    };
    let url = if flag.is_some() {
        None
    } else if let Some(url) = env_text("ONBOARD_STATE_URL") {
        Some(Found {
            value: url,
            origin: Origin::Env("ONBOARD_STATE_URL".into()),
            label: "ONBOARD_STATE_URL".into(),
        })
    } else if env_path("ONBOARD_STATE_DIR").is_some() {
        None
    } else {
        file_url
    };
    let shown_dir = dir
        .as_ref()
        .map_or("(none: HOME is not set)".to_owned(), |d| {
            d.display().to_string()
        });
    let Some(url) = url else {
        layers.show(
            "store",
            format!("state directory {shown_dir}"),
            Some(dir_origin.clone()),
        );
        layers.show("state_dir", shown_dir, Some(dir_origin));
        return Ok((dir, StoreAt::Dir));
    };
    layers.show("store", url.value.clone(), Some(url.origin.clone()));
    layers.show(
        "state_dir",
        format!("{shown_dir} (the embedded directory and outbox only)"),
        Some(dir_origin),
    );
    Ok((dir, StoreAt::Postgres(postgres(layers, url)?)))
}

fn is_postgres_url(value: &str) -> bool {
    value.starts_with("postgres://") || value.starts_with("postgresql://")
}

/// The PostgreSQL store's settings: the URL checked (a password in it is refused and never
/// shown), the password from a file or the environment.
fn postgres(layers: &mut Layers, url: Found<String>) -> CmdResult<PgConfig> {
    use crate::store::postgres::UrlProblem;
    match PgUrl::parse(&url.value) {
        Ok(_) => {}
        Err(UrlProblem::Password) => {
            return Err(CliError::input(format!(
                "{}={} holds a password; onboard never takes one from a URL",
                url.label,
                redact_url(&url.value)
            ))
            .hint(
                "put the password in a file named by [postgres] password_file in the config \
                 file, or by ONBOARD_STATE_PASSWORD_FILE",
            ));
        }
        Err(UrlProblem::Shape(why)) => {
            return Err(
                CliError::input(format!("{}={} {why}", url.label, redact_url(&url.value)))
                    .hint("write it as postgres://[USER@]HOST[:PORT]/DATABASE"),
            );
        }
    }
    let p = layers
        .file
        .as_ref()
        .map(|f| f.doc.postgres.clone())
        .unwrap_or_default();
    let (pw_file, pw_env, ca, timeout, plain) = (
        p.password_file,
        p.password_env,
        p.ca_file,
        p.timeout,
        p.allow_plaintext,
    );
    let password = layers.secret(
        "ONBOARD_STATE",
        "postgres.password",
        pw_file.as_ref(),
        pw_env.as_ref(),
    )?;
    let ca_file = layers.path("ONBOARD_STATE_CA_FILE", "postgres.ca_file", ca.as_ref());
    layers.show_found(
        "postgres.ca_file",
        &ca_file,
        shown_path(&ca_file, "system roots"),
    );
    let timeout = layers.seconds(
        "ONBOARD_STATE_TIMEOUT",
        "postgres.timeout",
        timeout.as_ref(),
    )?;
    let allow_plaintext = layers.flag(
        "ONBOARD_STATE_ALLOW_PLAINTEXT",
        "postgres.allow_plaintext",
        plain.as_ref(),
    );
    layers.show_found(
        "postgres.allow_plaintext",
        &allow_plaintext,
        allow_plaintext
            .as_ref()
            .is_some_and(|f| f.value)
            .to_string(),
    );
    Ok(PgConfig {
        url: url.value,
        password,
        ca_file: ca_file.map(|f| f.value),
        timeout,
        allow_plaintext: allow_plaintext.is_some_and(|f| f.value),
    })
}

fn shown_path(found: &Option<Found<PathBuf>>, default: &str) -> String {
    found
        .as_ref()
        .map_or(default.to_owned(), |f| f.value.display().to_string())
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

fn servers(layers: &mut Layers) -> CmdResult<Servers> {
    Ok(Servers {
        ldap: ldap(layers)?,
        smtp: smtp(layers)?,
    })
}

/// A server section of the config file, or an empty one.
fn section(
    layers: &Layers,
    pick: fn(&config_file::Doc) -> &config_file::Server,
) -> config_file::Server {
    layers
        .file
        .as_ref()
        .map(|f| pick(&f.doc).clone())
        .unwrap_or_default()
}

/// The LDAP server, or `None` for the embedded directory.
fn ldap(layers: &mut Layers) -> CmdResult<Option<LdapConfig>> {
    let s = section(layers, |d| &d.ldap);
    misplaced(layers, "ldap", "user", s.user.as_ref(), "bind_dn")?;
    let Some(url) = layers.text("ONBOARD_LDAP_URL", "ldap.url", s.url.as_ref()) else {
        layers.show(
            "ldap.url",
            "(unset: the embedded directory, STATE/directory.ldif)".into(),
            None,
        );
        return Ok(None);
    };
    layers.show("ldap.url", url.value.clone(), Some(url.origin.clone()));
    server_url(
        &url.label,
        &url.value,
        &["ldap", "ldaps"],
        "set the bind DN in [ldap] bind_dn (or ONBOARD_LDAP_BIND_DN) and the password in a \
         file named by [ldap] password_file (or ONBOARD_LDAP_PASSWORD_FILE)",
    )?;
    let flavor = layers.text("ONBOARD_LDAP_FLAVOR", "ldap.flavor", s.flavor.as_ref());
    let flavor_value = match flavor.as_ref().map(|f| f.value.as_str()) {
        None | Some("openldap") => Flavor::OpenLdap,
        Some("active_directory") => Flavor::ActiveDirectory,
        Some(other) => {
            return Err(CliError::input(format!(
                "{}={other} is not `openldap` or `active_directory`",
                flavor.as_ref().expect("some").label
            )));
        }
    };
    layers.show_found(
        "ldap.flavor",
        &flavor,
        flavor
            .as_ref()
            .map_or("openldap".into(), |f| f.value.clone()),
    );
    let bind_dn = layers.text("ONBOARD_LDAP_BIND_DN", "ldap.bind_dn", s.bind_dn.as_ref());
    layers.show_found(
        "ldap.bind_dn",
        &bind_dn,
        bind_dn
            .as_ref()
            .map_or("(anonymous)".into(), |f| f.value.clone()),
    );
    let password = layers.secret(
        "ONBOARD_LDAP",
        "ldap.password",
        s.password_file.as_ref(),
        s.password_env.as_ref(),
    )?;
    let ca_file = layers.path("ONBOARD_LDAP_CA_FILE", "ldap.ca_file", s.ca_file.as_ref());
    layers.show_found(
        "ldap.ca_file",
        &ca_file,
        shown_path(&ca_file, "system roots"),
    );
    let timeout = layers.seconds("ONBOARD_LDAP_TIMEOUT", "ldap.timeout", s.timeout.as_ref())?;
    let allow_plaintext = flag_setting(
        layers,
        "ONBOARD_LDAP_ALLOW_PLAINTEXT",
        "ldap.allow_plaintext",
        s.allow_plaintext.as_ref(),
    );
    let mut config = LdapConfig {
        flavor: flavor_value,
        url: url.value,
        starttls: false,
        ca_file: ca_file.map(|f| f.value),
        bind_dn: bind_dn.map(|f| f.value),
        password,
        timeout,
        allow_plaintext,
    };
    let starttls = layers.flag(
        "ONBOARD_LDAP_STARTTLS",
        "ldap.starttls",
        s.starttls.as_ref(),
    );
    config.starttls = config.url.starts_with("ldap://")
        && starttls.as_ref().map_or(!config.is_loopback(), |f| f.value);
    layers.show_found("ldap.starttls", &starttls, config.starttls.to_string());
    Ok(Some(config))
}

/// The SMTP server, or `None` for the embedded outbox.
fn smtp(layers: &mut Layers) -> CmdResult<Option<SmtpConfig>> {
    let s = section(layers, |d| &d.smtp);
    misplaced(layers, "smtp", "bind_dn", s.bind_dn.as_ref(), "user")?;
    misplaced(layers, "smtp", "flavor", s.flavor.as_ref(), "url")?;
    let Some(url) = layers.text("ONBOARD_SMTP_URL", "smtp.url", s.url.as_ref()) else {
        layers.show(
            "smtp.url",
            "(unset: the embedded outbox, STATE/outbox)".into(),
            None,
        );
        return Ok(None);
    };
    layers.show("smtp.url", url.value.clone(), Some(url.origin.clone()));
    server_url(
        &url.label,
        &url.value,
        &["smtp", "smtps"],
        "set the user in [smtp] user (or ONBOARD_SMTP_USER) and the password in a file named \
         by [smtp] password_file (or ONBOARD_SMTP_PASSWORD_FILE)",
    )?;
    let user = layers.text("ONBOARD_SMTP_USER", "smtp.user", s.user.as_ref());
    layers.show_found(
        "smtp.user",
        &user,
        user.as_ref().map_or("(none)".into(), |f| f.value.clone()),
    );
    let password = layers.secret(
        "ONBOARD_SMTP",
        "smtp.password",
        s.password_file.as_ref(),
        s.password_env.as_ref(),
    )?;
    let ca_file = layers.path("ONBOARD_SMTP_CA_FILE", "smtp.ca_file", s.ca_file.as_ref());
    layers.show_found(
        "smtp.ca_file",
        &ca_file,
        shown_path(&ca_file, "system roots"),
    );
    let timeout = layers.seconds("ONBOARD_SMTP_TIMEOUT", "smtp.timeout", s.timeout.as_ref())?;
    let allow_plaintext = flag_setting(
        layers,
        "ONBOARD_SMTP_ALLOW_PLAINTEXT",
        "smtp.allow_plaintext",
        s.allow_plaintext.as_ref(),
    );
    let mut config = SmtpConfig {
        url: url.value,
        starttls: false,
        ca_file: ca_file.map(|f| f.value),
        user: user.map(|f| f.value),
        password,
        timeout,
        allow_plaintext,
    };
    let starttls = layers.flag(
        "ONBOARD_SMTP_STARTTLS",
        "smtp.starttls",
        s.starttls.as_ref(),
    );
    config.starttls = config.url.starts_with("smtp://")
        && starttls.as_ref().map_or(!config.is_loopback(), |f| f.value);
    layers.show_found("smtp.starttls", &starttls, config.starttls.to_string());
    Ok(Some(config))
}

fn flag_setting(
    layers: &mut Layers,
    env: &str,
    key: &'static str,
    file: Option<&Spanned<bool>>,
) -> bool {
    let found = layers.flag(env, key, file);
    let value = found.as_ref().is_some_and(|f| f.value);
    layers.show_found(key, &found, value.to_string());
    value
}

/// A key that belongs to the other server's section (`user` under `[ldap]`), named.
fn misplaced(
    layers: &Layers,
    section: &str,
    key: &str,
    value: Option<&Spanned<String>>,
    instead: &str,
) -> CmdResult<()> {
    match (&layers.file, value) {
        (Some(f), Some(v)) => Err(CliError::input(format!(
            "{}: `{key}` is not a key of [{section}]",
            f.at(v)
        ))
        .hint(format!("did you mean `{instead}`?"))),
        _ => Ok(()),
    }
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

fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
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
