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
//! | folders a checklist's `templates:` may name outside its project | — | `ONBOARD_TEMPLATES_ROOTS` (`:`-separated) | `templates_roots` (a list) | none |
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
//! SCIM applications, one `[scim.NAME]` each (see `scim.rs`): `ONBOARD_SCIM_NAME_URL` / `url`
//! (HTTPS, or HTTP to loopback), `ONBOARD_SCIM_NAME_TOKEN_FILE` / `ONBOARD_SCIM_NAME_TOKEN` /
//! `token_file` / `token_env`, `ONBOARD_SCIM_NAME_CA_FILE` / `ca_file`,
//! `ONBOARD_SCIM_NAME_TIMEOUT` / `timeout` (seconds, 10); the application's limits, kept by all
//! of a cohort's workers together: `ONBOARD_SCIM_NAME_REQUESTS_PER_MINUTE` /
//! `requests_per_minute`, `ONBOARD_SCIM_NAME_WRITES_PER_MINUTE` / `writes_per_minute`,
//! `ONBOARD_SCIM_NAME_CREATES_PER_MINUTE` / `creates_per_minute` (POST /Users; none by default),
//! and `ONBOARD_SCIM_NAME_MAX_RETRY_AFTER` / `max_retry_after` (the longest `Retry-After`
//! waited, seconds, 300).
//!
//! The SMTP server (unset: the embedded outbox), `[smtp]`: `ONBOARD_SMTP_URL` / `url`
//! (`smtp://host:25`, `smtps://host:465`), `ONBOARD_SMTP_STARTTLS` / `starttls` (default `1`
//! except to loopback), `ONBOARD_SMTP_CA_FILE` / `ca_file`, `ONBOARD_SMTP_USER` / `user`,
//! `ONBOARD_SMTP_PASSWORD_FILE` / `ONBOARD_SMTP_PASSWORD` / `password_file` / `password_env`,
//! `ONBOARD_SMTP_TIMEOUT` / `timeout` (seconds, 10), `ONBOARD_SMTP_ALLOW_PLAINTEXT` /
//! `allow_plaintext`.

mod layers;
mod policies;
mod scim;
mod servers;
mod web;

use std::path::{Path, PathBuf};

use crate::engine::{Clock, Failpoint};
use crate::state::StateDir;
use crate::store::Store;
use crate::store::postgres::{PgConfig, PgError, PgStore};

use super::config_file::{ConfigFile, Lookup};
use super::{CliError, CmdResult};
use anyhow::Context;
use layers::{Found, Layers, env_path, env_text, failpoint};
pub use layers::{Origin, Shown};
pub use servers::Servers;
use servers::{postgres, servers};

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
    /// The web pages and links (`onboard serve`, `onboard link`).
    pub web: crate::web::WebSettings,
    /// `[policies]`: campaigns and who is behind.
    pub policies: policies::PolicySettings,
    /// Folders outside a checklist's project that its `templates:` may name.
    pub templates_roots: Vec<PathBuf>,
    /// Each setting as resolved and where it came from, for `onboard config`.
    pub shown: Vec<Shown>,
}

/// Which store: the state directory, or a PostgreSQL database.
pub enum StoreAt {
    Dir,
    Postgres(PgConfig),
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
        let web = web::web(&mut layers, state_dir.as_deref())?;
        let policies = policies::policies(&mut layers);
        let templates_roots = templates_roots(&mut layers);
        let web = crate::web::WebSettings {
            templates_roots: templates_roots.clone(),
            ..web
        };
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
            web,
            policies,
            templates_roots,
            shown: layers.shown,
        })
    }

    /// What to load: the playbook, a hire file, and where its templates may come from.
    pub fn request(&self, playbook: PathBuf, hire: Option<PathBuf>) -> crate::load::Request {
        crate::load::Request {
            playbook,
            hire,
            templates_roots: self.templates_roots.clone(),
        }
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
    /// The OS user running onboard, whatever `--as` says.
    pub fn os_user(&self) -> Option<&str> {
        self.user.as_deref().filter(|u| !u.trim().is_empty())
    }

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

    /// The key links are signed with: `serve.link_key_file`, else `STATE/link.key`, made on
    /// first use.
    pub fn link_key(&self) -> CmdResult<crate::web::LinkKey> {
        let Some(path) = &self.web.link_key_file else {
            return Err(CliError::input("no link key: HOME is not set")
                .hint("set serve.link_key_file in the config file, or ONBOARD_LINK_KEY_FILE"));
        };
        crate::web::LinkKey::load(path, true).map_err(|e| {
            if e.kind() != std::io::ErrorKind::InvalidData {
                return CliError::input(format!("the link key: {e}")).hint(
                    "run onboard as the user who owns the state directory, or name a key file \
                     this user may read with serve.link_key_file (ONBOARD_LINK_KEY_FILE)",
                );
            }
            CliError::input(format!("the link key {}: {e}", path.display())).hint(
                "its first line must be 32 or more random characters; every link already \
                 emailed was signed with the key in it, so replacing it (or removing it, which \
                 has a new one made) makes those links stop working: restore it from a backup \
                 if you can",
            )
        })
    }

    /// What a run needs to email links (`notify`).
    pub fn links(&self) -> CmdResult<crate::web::Links> {
        Ok(crate::web::Links {
            key: self.link_key()?,
            settings: self.web.clone(),
        })
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
        Err(e @ PgError::Rights(_)) => Err(CliError::input(e.to_string()).hint(
            "the role onboard connects as needs CONNECT on the database, CREATE on its schema \
             (onboard creates and upgrades its own tables), and SELECT and INSERT on the \
             onboard_* tables (or own them): e.g. GRANT CREATE ON SCHEMA public TO onboard",
        )),
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
    // A URL given where a folder goes would become a folder named after it (credentials and
    // all), and the team's database would silently not be used.
    if let Some(d) = &dir
        && d.to_string_lossy().contains("://")
    {
        let shown = servers::redact_url(&d.to_string_lossy());
        return Err(CliError::input(format!(
            "the state directory ({dir_origin}) is a URL: {shown}"
        ))
        .hint("a database goes in ONBOARD_STATE_URL (or `state` in the config file), never in ONBOARD_STATE_DIR or --state-dir"));
    }
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

fn clock() -> CmdResult<Clock> {
    match std::env::var("ONBOARD_NOW") {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map(Clock::Fixed)
            .map_err(|e| CliError::input(format!("ONBOARD_NOW={v} is not an RFC 3339 time: {e}"))),
        _ => Ok(Clock::System),
    }
}

/// `ONBOARD_TEMPLATES_ROOTS` (`:`-separated), else the file's `templates_roots` (relative to
/// the file).
fn templates_roots(layers: &mut Layers) -> Vec<PathBuf> {
    let found = layers
        .env_or_file(
            "ONBOARD_TEMPLATES_ROOTS",
            |v| Ok(v.split(':').map(str::to_owned).collect()),
            "templates_roots",
            layers
                .file
                .as_ref()
                .and_then(|f| f.doc.templates_roots.as_ref()),
        )
        .expect("a list always parses");
    let roots: Vec<PathBuf> = match &found {
        None => Vec::new(),
        Some(f) => f
            .value
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| {
                let one = Found {
                    value: r.clone(),
                    origin: f.origin.clone(),
                    label: f.label.clone(),
                };
                layers.relative(one).value
            })
            .collect(),
    };
    let shown = match roots.is_empty() {
        true => "(none: only beside the checklist's folder)".to_owned(),
        false => roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    };
    layers.show_found("templates_roots", &found, shown);
    roots
}
