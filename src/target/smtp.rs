//! A real SMTP server through lettre (rustls with ring; no OpenSSL).
//!
//! One pooled transport for the run, reused for every message. `smtps://` speaks TLS from the
//! first byte; `smtp://` requires STARTTLS except to loopback. A password is never sent over an
//! unencrypted connection to anything but loopback unless the operator explicitly allows it.
//! An SMTP server gives no way to ask whether a message was sent, so `was_sent` says "unknown".

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, SmtpTransport, Transport};

use super::{Mailer, Outgoing, TargetError, TargetResult};
use crate::secret::Secret;

/// How to reach the server (from the CLI's settings, never a playbook).
#[derive(Debug)]
pub struct SmtpConfig {
    /// `smtp://host:port` or `smtps://host:port`.
    pub url: String,
    /// Require STARTTLS on `smtp://`.
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
    pub allow_plaintext: bool,
}

impl SmtpConfig {
    fn host_port(&self) -> (String, u16) {
        let implicit = self.url.starts_with("smtps://");
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let hostport = rest.split('/').next().unwrap_or(rest);
        let default = if implicit { 465 } else { 25 };
        match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
                h.trim_matches(['[', ']']).to_owned(),
                p.parse().unwrap_or(default),
            ),
            _ => (hostport.trim_matches(['[', ']']).to_owned(), default),
        }
    }

    pub fn is_loopback(&self) -> bool {
        let host = self.host_port().0;
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    fn encrypted(&self) -> bool {
        self.url.starts_with("smtps://") || self.starttls
    }

    /// Refuses to send a password in clear text over the network.
    pub fn check_transport(&self) -> TargetResult<()> {
        if self.password.is_none() || self.encrypted() || self.allow_plaintext || self.is_loopback()
        {
            return Ok(());
        }
        Err(TargetError::Refused(format!(
            "not sending the SMTP password to {} in clear text: use smtps:// or STARTTLS \
             (ONBOARD_SMTP_STARTTLS=1), or set ONBOARD_SMTP_ALLOW_PLAINTEXT=1 if this network is trusted",
            self.host_port().0
        )))
    }
}

pub struct SmtpMailer {
    transport: SmtpTransport,
    url: String,
}

impl SmtpMailer {
    /// Builds the transport and checks that the server answers (and accepts the login).
    pub fn connect(config: SmtpConfig) -> TargetResult<SmtpMailer> {
        config.check_transport()?;
        let (host, port) = config.host_port();
        let tls = if config.encrypted() {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(ca) = &config.ca_file {
                let pem = fs_err::read(ca).map_err(|e| {
                    TargetError::Other(format!("cannot read the SMTP CA file: {e}"))
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    TargetError::Other(format!("{} is not a PEM certificate: {e}", ca.display()))
                })?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| TargetError::Other(format!("TLS settings for {host}: {e}")))?;
            if config.url.starts_with("smtps://") {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        } else {
            Tls::None
        };
        let mut builder = SmtpTransport::builder_dangerous(&host)
            .port(port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let transport = builder.build();
        match transport.test_connection() {
            Ok(true) => {}
            Ok(false) => {
                return Err(TargetError::Unavailable(format!(
                    "{} did not accept a connection",
                    config.url
                )));
            }
            Err(e) => return Err(smtp_error(&config.url, &e)),
        }
        Ok(SmtpMailer {
            transport,
            url: config.url,
        })
    }
}

fn smtp_error(url: &str, e: &lettre::transport::smtp::Error) -> TargetError {
    let text = e.to_string();
    let hint = if text.contains("Connection refused") {
        "is the server running, and is ONBOARD_SMTP_URL right?"
    } else if e.is_tls() || text.contains("certificate") {
        "check the server certificate and ONBOARD_SMTP_CA_FILE"
    } else if e.is_timeout() || text.contains("os error 11") || text.contains("timed out") {
        "the server did not answer in time, which is also how some servers answer a rejected \
         login; check ONBOARD_SMTP_USER and the password, and ONBOARD_SMTP_TIMEOUT"
    } else if text.contains("535") || text.contains("authentication") {
        "check ONBOARD_SMTP_USER and the password"
    } else if e.is_permanent() {
        "the server refused it permanently; ask the mail administrator"
    } else {
        "check ONBOARD_SMTP_URL"
    };
    TargetError::Unavailable(format!("{url}: {text} ({hint})"))
}

impl Mailer for SmtpMailer {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn send(&mut self, message: &Outgoing<'_>) -> TargetResult<()> {
        let parse = |a: &str| {
            a.parse::<Address>()
                .map_err(|e| TargetError::Other(format!("`{a}` is not an address: {e}")))
        };
        let to = message
            .to
            .iter()
            .map(|t| parse(t))
            .collect::<TargetResult<Vec<_>>>()?;
        let envelope = Envelope::new(Some(parse(message.from)?), to)
            .map_err(|e| TargetError::Other(e.to_string()))?;
        self.transport
            .send_raw(&envelope, message.bytes)
            .map(|_| ())
            .map_err(|e| smtp_error(&self.url, &e))
    }

    fn was_sent(&mut self, _message_id: &str) -> TargetResult<Option<bool>> {
        Ok(None)
    }
}

/// What a dry run uses in place of an SMTP server: sends nothing, and, like the server, cannot
/// say what was sent.
pub struct SmtpDryRun {
    pub url: String,
}

impl Mailer for SmtpDryRun {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn send(&mut self, _: &Outgoing<'_>) -> TargetResult<()> {
        Err(TargetError::Other("a dry run sends nothing".into()))
    }

    fn was_sent(&mut self, _: &str) -> TargetResult<Option<bool>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, starttls: bool) -> SmtpConfig {
        SmtpConfig {
            url: url.into(),
            starttls,
            ca_file: None,
            user: Some("onboard".into()),
            password: Some(Secret::new("pw".into())),
            timeout: Duration::from_secs(5),
            allow_plaintext: false,
        }
    }

    #[test]
    fn hosts_and_ports() {
        assert_eq!(
            config("smtp://mail.example.org", true).host_port(),
            ("mail.example.org".into(), 25)
        );
        assert_eq!(
            config("smtps://mail.example.org", false).host_port(),
            ("mail.example.org".into(), 465)
        );
        assert_eq!(
            config("smtp://127.0.0.1:2525", false).host_port(),
            ("127.0.0.1".into(), 2525)
        );
        assert_eq!(
            config("smtp://[::1]:2525", false).host_port(),
            ("::1".into(), 2525)
        );
    }

    #[test]
    fn clear_text_auth_only_to_loopback() {
        assert!(
            config("smtp://127.0.0.1:25", false)
                .check_transport()
                .is_ok()
        );
        assert!(
            config("smtp://192.0.2.1:25", false)
                .check_transport()
                .is_err()
        );
        assert!(
            config("smtp://192.0.2.1:25", true)
                .check_transport()
                .is_ok()
        );
        assert!(config("smtps://192.0.2.1", false).check_transport().is_ok());
    }
}
