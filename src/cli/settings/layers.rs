//! Where a setting comes from: the environment, then the config file; each value keeps its
//! origin (for `onboard config`) and its label (for messages: `ONBOARD_LDAP_URL` or
//! `onboard.toml:4:7: ldap.url`). The environment is read here and nowhere else.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::super::config_file::ConfigFile;
use super::super::{CliError, CmdResult};
use crate::engine::Failpoint;
use crate::secret::Secret;

/// One resolved setting, as `onboard config` prints it: never a secret's value.
pub struct Shown {
    pub key: String,
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

/// A value found in the environment or the config file, with where it came from and how to
/// name it in a message (`ONBOARD_LDAP_URL` or `onboard.toml:4:7: ldap.url`).
pub(super) struct Found<T> {
    pub(super) value: T,
    pub(super) origin: Origin,
    pub(super) label: String,
}

/// The layers a setting is looked up in, below the flags: the environment, then the file.
pub(super) struct Layers {
    pub(super) file: Option<ConfigFile>,
    pub(super) shown: Vec<Shown>,
}

impl Layers {
    pub(super) fn env_or_file<T: Clone>(
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
    pub(super) fn in_file<T: Clone>(
        &self,
        key: &str,
        value: Option<&Spanned<T>>,
    ) -> Option<Found<T>> {
        match (&self.file, value) {
            (Some(f), Some(v)) => Some(Found {
                value: v.get_ref().clone(),
                origin: Origin::File(f.line_of(v)),
                label: format!("{}: {key}", f.at(v)),
            }),
            _ => None,
        }
    }

    pub(super) fn text(
        &self,
        env: &str,
        key: &str,
        file: Option<&Spanned<String>>,
    ) -> Option<Found<String>> {
        self.env_or_file(env, |v| Ok(v.to_owned()), key, file)
            .expect("text always parses")
            .filter(|f| !f.value.is_empty())
    }

    /// A path; relative paths in the config file are relative to the file.
    pub(super) fn path(
        &self,
        env: &str,
        key: &str,
        file: Option<&Spanned<String>>,
    ) -> Option<Found<PathBuf>> {
        self.text(env, key, file).map(|found| self.relative(found))
    }

    /// A path as given; from the config file, relative to the file.
    pub(super) fn relative(&self, found: Found<String>) -> Found<PathBuf> {
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

    pub(super) fn seconds(
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

    pub(super) fn flag(
        &self,
        env: &str,
        key: &str,
        file: Option<&Spanned<bool>>,
    ) -> Option<Found<bool>> {
        self.env_or_file(env, |v| Ok(matches!(v, "1" | "true" | "yes")), key, file)
            .expect("flags always parse")
    }

    /// A secret: `PREFIX_PASSWORD_FILE` (its first line) or `PREFIX_PASSWORD` in the
    /// environment, else `password_file` or `password_env` in the file.
    pub(super) fn secret(
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

    pub(super) fn show(&mut self, key: impl Into<String>, value: String, origin: Option<Origin>) {
        self.shown.push(Shown {
            key: key.into(),
            value,
            origin: origin.unwrap_or(Origin::Default),
        });
    }

    pub(super) fn show_found<T>(
        &mut self,
        key: impl Into<String>,
        found: &Option<Found<T>>,
        value: String,
    ) {
        let origin = found.as_ref().map(|f| f.origin.clone());
        self.show(key, value, origin);
    }
}

pub(super) fn shown_path(found: &Option<Found<PathBuf>>, default: &str) -> String {
    found
        .as_ref()
        .map_or(default.to_owned(), |f| f.value.display().to_string())
}

pub(super) fn flag_setting(
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

pub(super) fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub(super) fn failpoint() -> Option<Failpoint> {
    std::env::var("ONBOARD_FAILPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| Failpoint::parse(&v))
}

pub(super) fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
