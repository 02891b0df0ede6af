//! A real SMTP server through lettre (rustls with ring; no OpenSSL).
//!
//! One connection per mailer, reused for every message. `smtps://` speaks TLS from the
//! first byte; `smtp://` requires STARTTLS except to loopback. A password is never sent over an
//! unencrypted connection to anything but loopback unless the operator explicitly allows it.
//! An SMTP server gives no way to ask whether a message was sent, so `was_sent` says "unknown".

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;

use super::{Mailer, Outgoing};
use crate::backend::{BackendError, BackendResult};
use crate::secret::Secret;

/// How to reach the server (from the CLI's settings, never a playbook).
#[derive(Debug, Clone)]
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
    pub fn check_transport(&self) -> BackendResult<()> {
        if self.password.is_none() || self.encrypted() || self.allow_plaintext || self.is_loopback()
        {
            return Ok(());
        }
        Err(BackendError::Refused(format!(
            "not sending the SMTP password to {} in clear text: use smtps:// or STARTTLS \
             (ONBOARD_SMTP_STARTTLS=1), or set ONBOARD_SMTP_ALLOW_PLAINTEXT=1 if this network is trusted",
            self.host_port().0
        )))
    }
}

/// One SMTP connection, opened at `connect` and reused for every message; reopened when the
/// server dropped it. Driven by lettre's async client on a single-threaded runtime owned by
/// this mailer, because only that client takes a socket we opened ourselves.
pub struct SmtpMailer {
    runtime: tokio::runtime::Runtime,
    conn: Option<AsyncSmtpConnection>,
    hello: ClientId,
    /// TLS for STARTTLS (`smtp://` when encrypted).
    starttls: Option<TlsParameters>,
    /// TLS from the first byte (`smtps://`).
    implicit: Option<tokio_rustls::TlsConnector>,
    credentials: Option<Credentials>,
    host: String,
    port: u16,
    timeout: Duration,
    url: String,
}

/// Waits before reconnecting when the server does not answer: bounded, about 3 s in all.
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

impl SmtpMailer {
    /// Connects and logs in, so a refused login or TLS setup is found before any step runs;
    /// a server that does not answer is retried at the first message instead.
    pub fn connect(config: SmtpConfig) -> BackendResult<SmtpMailer> {
        config.check_transport()?;
        let (host, port) = config.host_port();
        let implicit_tls = config.url.starts_with("smtps://");
        let mut starttls = None;
        let mut implicit = None;
        if implicit_tls {
            let tls = crate::backend::tls::client_config(config.ca_file.as_deref())?;
            implicit = Some(tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls)));
        } else if config.encrypted() {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(ca) = &config.ca_file {
                let pem =
                    crate::files::read_regular(ca, crate::files::SETTING_LIMIT).map_err(|e| {
                        BackendError::Other(format!("cannot read the SMTP CA file: {e}"))
                    })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    BackendError::Other(format!("{} is not a PEM certificate: {e}", ca.display()))
                })?;
                params = params.add_root_certificate(cert);
            }
            starttls = Some(
                params
                    .build_rustls()
                    .map_err(|e| BackendError::Other(format!("TLS settings for {host}: {e}")))?,
            );
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| BackendError::Other(format!("cannot start the SMTP client: {e}")))?;
        let mut mailer = SmtpMailer {
            runtime,
            conn: None,
            hello: ClientId::default(),
            starttls,
            implicit,
            credentials: match (&config.user, &config.password) {
                (Some(user), Some(password)) => {
                    Some(Credentials::new(user.clone(), password.expose().to_owned()))
                }
                _ => None,
            },
            host,
            port,
            timeout: config.timeout,
            url: config.url,
        };
        // A server that is down (or hung) now may be back by the first message: the steps
        // that need no mail go ahead, and the first send retries. A refused login or TLS
        // setup is a configuration problem: it stops the run before any step.
        mailer.conn = match mailer.open() {
            Ok(conn) => Some(conn),
            Err(BackendError::Unavailable(_)) => None,
            Err(e) => return Err(e),
        };
        Ok(mailer)
    }

    /// Opens a connection: TCP (Nagle off), TLS, EHLO, STARTTLS, AUTH, each within the timeout.
    fn open(&self) -> BackendResult<AsyncSmtpConnection> {
        let url = &self.url;
        let error = |e: lettre::transport::smtp::Error| smtp_error(url, &e);
        self.runtime.block_on(async {
            let tcp = self
                .timed(tokio::net::TcpStream::connect((
                    self.host.as_str(),
                    self.port,
                )))
                .await?
                .map_err(|e| io_error(url, &e))?;
            // lettre writes a message's body and its final "." separately: with Nagle on, the
            // "." waits for the server's delayed ACK of the body, 40 ms per message.
            tcp.set_nodelay(true).map_err(|e| io_error(url, &e))?;
            let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
                Some(tls) => {
                    let name = rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(
                        |e| BackendError::Other(format!("`{}` is not a host name: {e}", self.host)),
                    )?;
                    let tls = self
                        .timed(tls.connect(name, tcp))
                        .await?
                        .map_err(|e| tls_error(url, &e))?;
                    Box::new(TlsTcp(tls))
                }
                None => Box::new(tcp),
            };
            let mut conn = self
                .timed(AsyncSmtpConnection::connect_with_transport(
                    stream,
                    &self.hello,
                ))
                .await?
                .map_err(error)?;
            // The server answers: a failure from here on is a configuration problem (TLS,
            // login), not an outage, and is reported as such rather than retried.
            let setup = async {
                if let Some(params) = &self.starttls {
                    self.timed(conn.starttls(params.clone(), &self.hello))
                        .await?
                        .map_err(error)?;
                }
                if let Some(credentials) = &self.credentials {
                    self.timed(conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials))
                        .await?
                        .map_err(error)?;
                }
                Ok(())
            };
            setup.await.map_err(|e: BackendError| match e {
                BackendError::Unavailable(text) => BackendError::Other(text),
                e => e,
            })?;
            Ok(conn)
        })
    }

    async fn timed<F: std::future::Future>(&self, f: F) -> BackendResult<F::Output> {
        tokio::time::timeout(self.timeout, f).await.map_err(|_| {
            BackendError::Unavailable(format!(
                "{}: no answer within {} s (is the server up and answering? see also \
                 ONBOARD_SMTP_TIMEOUT; some servers answer a rejected login with silence, so \
                 check ONBOARD_SMTP_USER and the password too)",
                self.url,
                self.timeout.as_secs()
            ))
        })
    }

    /// A connection that answers NOOP: the open one, or a new one (with bounded retries and
    /// backoff while the server is down). Checking first means a dead connection is found
    /// before a message is handed to it, where a failure could not be told from a delivery.
    fn connection(&mut self) -> BackendResult<AsyncSmtpConnection> {
        if let Some(mut conn) = self.conn.take()
            && !conn.has_broken()
            && self
                .runtime
                .block_on(async { tokio::time::timeout(self.timeout, conn.test_connected()).await })
                .unwrap_or(false)
        {
            return Ok(conn);
        }
        let mut attempt = 0;
        loop {
            match self.open() {
                Err(BackendError::Unavailable(e)) => match BACKOFF.get(attempt) {
                    Some(wait) => {
                        attempt += 1;
                        std::thread::sleep(*wait);
                    }
                    None => {
                        return Err(BackendError::Unavailable(format!(
                            "{e} (onboard retried {} times over {} s; nothing was sent)",
                            BACKOFF.len(),
                            BACKOFF.iter().sum::<Duration>().as_secs_f32()
                        )));
                    }
                },
                other => return other,
            }
        }
    }
}

/// A TLS stream lettre's client can drive (it only accepts its own streams or this trait).
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl tokio::io::AsyncRead for TlsTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

fn io_error(url: &str, e: &std::io::Error) -> BackendError {
    let hint = if e.kind() == std::io::ErrorKind::ConnectionRefused {
        "is the server running, and is ONBOARD_SMTP_URL right?"
    } else {
        "check ONBOARD_SMTP_URL"
    };
    BackendError::Unavailable(format!("cannot connect to {url}: {e} ({hint})"))
}

fn tls_error(url: &str, e: &std::io::Error) -> BackendError {
    BackendError::Other(format!(
        "{url}: TLS failed: {e} (check the server certificate and ONBOARD_SMTP_CA_FILE)"
    ))
}

fn smtp_error(url: &str, e: &lettre::transport::smtp::Error) -> BackendError {
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
    BackendError::Unavailable(format!("{url}: {text} ({hint})"))
}

impl Mailer for SmtpMailer {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn send(&mut self, message: &Outgoing<'_>) -> BackendResult<()> {
        let parse = |a: &str| {
            a.parse::<Address>()
                .map_err(|e| BackendError::Other(format!("`{a}` is not an address: {e}")))
        };
        let to = message
            .to
            .iter()
            .map(|t| parse(t))
            .collect::<BackendResult<Vec<_>>>()?;
        let envelope = Envelope::new(Some(parse(message.from)?), to)
            .map_err(|e| BackendError::Other(e.to_string()))?;
        let mut conn = self.connection()?;
        let sent = self
            .runtime
            .block_on(self.timed(conn.send(&envelope, message.bytes)));
        // A connection that failed is dropped here; the next message opens a new one.
        match sent {
            Ok(Ok(_)) => {
                self.conn = Some(conn);
                Ok(())
            }
            // The server answered no: nothing was delivered.
            Ok(Err(e)) if e.is_permanent() || e.is_transient() => Err(smtp_error(&self.url, &e)),
            // Cut off or silent mid-conversation: the server may have accepted it.
            Ok(Err(e)) => Err(BackendError::Uncertain(format!(
                "{}: the connection failed while sending: {e}",
                self.url
            ))),
            Err(_) => Err(BackendError::Uncertain(format!(
                "{}: no answer within {} s while sending",
                self.url,
                self.timeout.as_secs()
            ))),
        }
    }

    fn was_sent(&mut self, _message_id: &str) -> BackendResult<Option<bool>> {
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

    fn send(&mut self, _: &Outgoing<'_>) -> BackendResult<()> {
        Err(BackendError::Other("a dry run sends nothing".into()))
    }

    fn was_sent(&mut self, _: &str) -> BackendResult<Option<bool>> {
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
