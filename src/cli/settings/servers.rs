//! The servers a run talks to (LDAP, SMTP) and the PostgreSQL store's connection, resolved
//! from the layers and checked: URLs without credentials, secrets from files or the
//! environment.

use toml::Spanned;

use super::super::config_file;
use super::super::{CliError, CmdResult};
use super::layers::{Found, Layers, flag_setting, shown_path};
use crate::backend::directory::ldap::{Flavor, LdapConfig};
use crate::backend::mail::smtp::SmtpConfig;
use crate::store::postgres::{PgConfig, PgUrl};

/// The PostgreSQL store's settings: the URL checked (a password in it is refused and never
/// shown), the password from a file or the environment.
pub(super) fn postgres(layers: &mut Layers, url: Found<String>) -> CmdResult<PgConfig> {
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

/// The servers a run talks to, resolved and checked once, before anything runs: `None` is the
/// embedded directory or outbox.
pub struct Servers {
    pub ldap: Option<LdapConfig>,
    pub smtp: Option<SmtpConfig>,
    /// The SCIM applications, by name.
    pub scim: Vec<crate::backend::scim::ScimConfig>,
}

pub(super) fn servers(layers: &mut Layers) -> CmdResult<Servers> {
    Ok(Servers {
        ldap: ldap(layers)?,
        smtp: smtp(layers)?,
        scim: super::scim::apps(layers)?,
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

/// The URL fit to be shown: user information replaced by `***`, a query or fragment (where
/// tokens hide) by `?…`, control characters escaped.
pub fn redact_url(url: &str) -> String {
    // `scheme://`, or a malformed `scheme:/` or `//`: the authority starts after the slashes.
    let (scheme, rest) = match url.split_once("://") {
        Some(split) => split,
        None => {
            let after_scheme = url.split_once(':').filter(|(s, _)| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            });
            let rest = after_scheme.map_or(url, |(_, r)| r).trim_start_matches('/');
            let head = &url[..url.len() - rest.len()];
            let shown = redact_url(&format!("x://{rest}"));
            return format!("{head}{}", &shown["x://".len()..]);
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = match rest[..end].rfind('@') {
        Some(at) => format!("***{}", &rest[at..end]),
        None => rest[..end].to_owned(),
    };
    let tail = &rest[end..];
    let tail = match tail.find(['?', '#']) {
        Some(q) => format!("{}?…", &tail[..q]),
        None => tail.to_owned(),
    };
    let shown = match scheme.is_empty() {
        true => format!("{authority}{tail}"),
        false => format!("{scheme}://{authority}{tail}"),
    };
    crate::diag::visible(&shown).into_owned()
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
        // Nor in a URL missing a slash.
        assert_eq!(redact_url("ldap:/admin:S3CRET@host"), "ldap:/***@host");
        assert_eq!(redact_url("//admin:S3CRET@host/x"), "//***@host/x");
        // A token in the query is not shown either, nor a control character.
        assert_eq!(
            redact_url("ldap://u:s3cret@host:1/?x=tok#f"),
            "ldap://***@host:1/?…"
        );
        assert_eq!(
            redact_url("http://h/scim\u{1b}[2J?token=t"),
            "http://h/scim\\u{1b}[2J?…"
        );
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
