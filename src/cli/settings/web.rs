//! `[serve]` and `[roles]`: the web pages and the links they open (`onboard serve`,
//! `onboard link`, a step's `notify`).
//!
//! | key | environment | meaning | default |
//! |---|---|---|---|
//! | `serve.listen` | `ONBOARD_SERVE_LISTEN` (flag `--listen`) | `HOST:PORT` | `127.0.0.1:8080` |
//! | `serve.base_url` | `ONBOARD_SERVE_BASE_URL` | where people reach the pages, for links | `http(s)://LISTEN` |
//! | `serve.tls_cert`, `serve.tls_key` | `ONBOARD_SERVE_TLS_CERT`, `…_KEY` | PEM files: serve HTTPS | plain HTTP |
//! | `serve.session_minutes` | — | how long a sign-in lasts | 480 |
//! | `serve.link_days` | — | how long a link is usable | 14 |
//! | `serve.link_key_file` | `ONBOARD_LINK_KEY_FILE` | the key links are signed with | `STATE/link.key`, created |
//! | `serve.users_base` | — | where accounts are searched | `ou=people,dc=example,dc=org` |
//! | `serve.login_attribute` | — | what people sign in with | `uid` (`sAMAccountName` on AD) |
//! | `serve.contact` | — | whom to contact about a used or expired link | `your IT service desk` |
//! | `roles.it`, `roles.hr`, `roles.audit` | — | the group whose members hold the role | `cn=it-staff`, `cn=hr`, `cn=auditors` under `ou=groups,dc=example,dc=org` |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::layers::{Found, Layers};
use crate::cli::config_file::{Roles, Serve};
use crate::cli::{CliError, CmdResult};
use crate::web::{Role, WebSettings};

pub(super) fn web(layers: &mut Layers, state_dir: Option<&Path>) -> CmdResult<WebSettings> {
    let (s, r): (Serve, Roles) = layers
        .file
        .as_ref()
        .map(|f| (f.doc.serve.clone(), f.doc.roles.clone()))
        .unwrap_or_default();
    let listen = layers.text("ONBOARD_SERVE_LISTEN", "serve.listen", s.listen.as_ref());
    let listen_at: SocketAddr = match &listen {
        Some(f) => f.value.parse().map_err(|_| {
            CliError::input(format!("{}: `{}` is not HOST:PORT", f.label, f.value))
                .hint("write an address and port, e.g. 127.0.0.1:8080 or [::]:8443")
        })?,
        None => "127.0.0.1:8080".parse().expect("a socket address"),
    };
    layers.show_found("serve.listen", &listen, listen_at.to_string());
    let tls = tls(layers, &s)?;
    let base = layers.text(
        "ONBOARD_SERVE_BASE_URL",
        "serve.base_url",
        s.base_url.as_ref(),
    );
    let base_url = match &base {
        Some(f) if f.value.starts_with("https://") || f.value.starts_with("http://") => {
            Some(f.value.trim_end_matches('/').to_owned())
        }
        Some(f) => {
            return Err(CliError::input(format!(
                "{}: `{}` is not an http:// or https:// address",
                f.label, f.value
            )));
        }
        None => None,
    };
    layers.show_found(
        "serve.base_url",
        &base,
        base_url
            .clone()
            .unwrap_or_else(|| "(the listen address)".into()),
    );
    let session_minutes = number(
        layers,
        "serve.session_minutes",
        s.session_minutes.as_ref(),
        480,
        1,
    );
    let link_days = number(layers, "serve.link_days", s.link_days.as_ref(), 14, 1);
    let key_file = layers.path(
        "ONBOARD_LINK_KEY_FILE",
        "serve.link_key_file",
        s.link_key_file.as_ref(),
    );
    let link_key_file = match &key_file {
        Some(f) => Some(f.value.clone()),
        None => state_dir.map(|d| d.join("link.key")),
    };
    layers.show_found(
        "serve.link_key_file",
        &key_file,
        link_key_file
            .as_ref()
            .map_or("(none: HOME is not set)".into(), |p| {
                p.display().to_string()
            }),
    );
    let mut text = |key, value, default| file_text(layers, key, value, default);
    let users_base = text(
        "serve.users_base",
        s.users_base.as_ref(),
        "ou=people,dc=example,dc=org",
    );
    let login_attribute = text("serve.login_attribute", s.login_attribute.as_ref(), "uid");
    let contact = text("serve.contact", s.contact.as_ref(), "your IT service desk");
    let roles = roles(layers, &r);
    Ok(WebSettings {
        listen: listen_at,
        // Set by `Setup::resolve`, which reads them for every command.
        templates_roots: Vec::new(),
        tls,
        base_url,
        session_minutes: session_minutes as i64,
        link_days: link_days as i64,
        link_key_file,
        users_base,
        login_attribute,
        contact,
        roles,
    })
}

/// A text from the file, or the default; shown with its origin.
fn file_text(
    layers: &mut Layers,
    key: &'static str,
    value: Option<&toml::Spanned<String>>,
    default: &str,
) -> String {
    let found = layers.in_file(key, value);
    let v = found
        .as_ref()
        .map_or(default.to_owned(), |f| f.value.clone());
    layers.show_found(key, &found, v.clone());
    v
}

/// A whole number from the file, at least `min`.
pub(super) fn number(
    layers: &mut Layers,
    key: &'static str,
    value: Option<&toml::Spanned<u64>>,
    default: u64,
    min: u64,
) -> u64 {
    let found: Option<Found<u64>> = layers.in_file(key, value);
    let n = found.as_ref().map_or(default, |f| f.value).max(min);
    layers.show_found(key, &found, n.to_string());
    n
}

/// `serve.tls_cert` and `serve.tls_key`: both or neither.
fn tls(layers: &mut Layers, s: &Serve) -> CmdResult<Option<(PathBuf, PathBuf)>> {
    let cert = layers.path(
        "ONBOARD_SERVE_TLS_CERT",
        "serve.tls_cert",
        s.tls_cert.as_ref(),
    );
    let key = layers.path("ONBOARD_SERVE_TLS_KEY", "serve.tls_key", s.tls_key.as_ref());
    Ok(match (cert, key) {
        (Some(c), Some(k)) => {
            layers.show(
                "serve.tls",
                format!("{} and {}", c.value.display(), k.value.display()),
                Some(c.origin),
            );
            Some((c.value, k.value))
        }
        (None, None) => {
            layers.show("serve.tls", "(none: plain HTTP)".into(), None);
            None
        }
        (Some(one), None) | (None, Some(one)) => {
            return Err(CliError::input(format!(
                "{}: a TLS certificate needs its key, and a key its certificate",
                one.label
            ))
            .hint("set both serve.tls_cert and serve.tls_key"));
        }
    })
}

/// `[roles]`: the group whose members hold each role.
fn roles(layers: &mut Layers, r: &Roles) -> Vec<(Role, String)> {
    let mut text = |key, value, default| file_text(layers, key, value, default);
    vec![
        (
            Role::It,
            text(
                "roles.it",
                r.it.as_ref(),
                "cn=it-staff,ou=groups,dc=example,dc=org",
            ),
        ),
        (
            Role::Hr,
            text(
                "roles.hr",
                r.hr.as_ref(),
                "cn=hr,ou=groups,dc=example,dc=org",
            ),
        ),
        (
            Role::Audit,
            text(
                "roles.audit",
                r.audit.as_ref(),
                "cn=auditors,ou=groups,dc=example,dc=org",
            ),
        ),
    ]
}
