//! `onboard serve`: web pages for the people who are not at the terminal, on the same store and
//! through the same engine as the CLI.
//!
//! - `guard.rs`: sessions, CSRF tokens, failed sign-ins counted per account and address;
//! - `link.rs`: single-purpose signed links (one hire, one step, until signed or expired);
//! - `login.rs`: signing in with a directory bind, roles from group membership;
//! - `board.rs`: the board and a hire's page;
//! - `sign.rs`: the sign-off form and the hire's welcome page, for a session or a link;
//! - `preview.rs`: HR's preview of a hire file or an export;
//! - `audit.rs`: the auditors' report downloads;
//! - `page.rs`: rendering, security headers, error pages.
//!
//! Every handler that reads the store or the directory does so on a blocking thread: the
//! store and the directory clients are synchronous. Every change goes through
//! `engine::sign_off` (journaled, validated as on the CLI); no page writes state another way.

// A handler answers with a page either way: a refusal is a page, so `Result<_, Response>` is
// the shape, and boxing the refusal would buy nothing.
#![allow(clippy::result_large_err)]

mod audit;
mod board;
mod guard;
pub mod link;
mod login;
mod page;
mod preview;
mod sign;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::backend::directory::ldap::LdapConfig;
use crate::engine::Clock;
use crate::state::StateDir;
use crate::store::Store;
pub use guard::Role;
pub use link::{Link, LinkKey, Links};

/// The settings of the pages and links, resolved by the CLI (see `cli/settings/web.rs`).
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub listen: SocketAddr,
    /// Folders outside a checklist's project its `templates:` may name (HR's preview loads
    /// checklists as the CLI does).
    pub templates_roots: Vec<PathBuf>,
    /// PEM certificate chain and key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where people reach the pages, if not at the listen address.
    pub base_url: Option<String>,
    pub session_minutes: i64,
    pub link_days: i64,
    /// `None` when there is no state directory and no key file is configured.
    pub link_key_file: Option<PathBuf>,
    pub users_base: String,
    pub login_attribute: String,
    pub contact: String,
    /// The group whose members hold each role.
    pub roles: Vec<(Role, String)>,
}

impl WebSettings {
    /// The address links point at.
    pub fn base(&self) -> String {
        self.base_url.clone().unwrap_or_else(|| {
            format!(
                "{}://{}",
                if self.tls.is_some() { "https" } else { "http" },
                self.listen
            )
        })
    }

    /// The URL a link opens.
    pub fn link_url(&self, link: &Link, key: &LinkKey) -> String {
        format!(
            "{}/sign/{}/{}?token={}",
            self.base(),
            page::path_segment(&link.hire),
            page::path_segment(&link.step),
            key.sign(link)
        )
    }
}

/// Everything the pages share.
pub struct Web {
    pub settings: WebSettings,
    pub store: Box<dyn Store>,
    /// The directory people sign in against; `None`: the embedded directory in `state`.
    pub ldap: Option<LdapConfig>,
    pub state: StateDir,
    pub key: LinkKey,
    pub clock: Clock,
    /// Where the pages find checklists for HR's preview.
    pub playbooks: PathBuf,
    log: Box<dyn Fn(&str) + Send + Sync>,
    sessions: guard::Sessions,
    attempts: guard::Attempts,
    pages: page::Pages,
    board: board::Cache,
    previews: preview::Previews,
}

/// What a `Web` is made of, given by the CLI.
pub struct Parts {
    pub settings: WebSettings,
    pub store: Box<dyn Store>,
    /// The directory people sign in against; `None`: the embedded directory in `state`.
    pub ldap: Option<LdapConfig>,
    pub state: StateDir,
    pub key: LinkKey,
    pub clock: Clock,
    /// Where the pages find checklists for HR's preview.
    pub playbooks: PathBuf,
    /// Where the server's log lines go (the CLI writes them to stderr).
    pub log: Box<dyn Fn(&str) + Send + Sync>,
}

impl Web {
    pub fn new(parts: Parts) -> Result<Web, tera::Error> {
        let Parts {
            settings,
            store,
            ldap,
            state,
            key,
            clock,
            playbooks,
            log,
        } = parts;
        Ok(Web {
            settings,
            store,
            ldap,
            state,
            key,
            clock,
            playbooks,
            log,
            sessions: guard::Sessions::default(),
            attempts: guard::Attempts::default(),
            pages: page::Pages::new()?,
            board: board::Cache::default(),
            previews: preview::Previews::default(),
        })
    }

    fn now(&self) -> i64 {
        self.clock.now().as_second()
    }

    /// A line for the operator, never with a secret in it.
    fn log(&self, line: &str) {
        (self.log)(&format!("{} {line}", self.clock.now()));
    }
}

/// The pages and what they answer to.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(board::home))
        .route("/signin", get(login::form).post(login::submit))
        .route("/signout", post(login::sign_out))
        .route("/board", get(board::board))
        .route("/hire/{hire}", get(board::hire))
        .route("/sign/{hire}/{step}", get(sign::form).post(sign::submit))
        .route("/preview", get(preview::form).post(preview::submit))
        .route("/preview/{id}/{n}", get(preview::email))
        .route("/report", get(audit::page))
        .route("/report.{format}", get(audit::download))
        .route("/static/onboard.css", get(page::stylesheet))
        .fallback(page::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(page::UPLOAD_LIMIT))
        .layer(axum::middleware::from_fn(page::headers))
        .with_state(web)
}

/// Serves until the process is stopped: plain HTTP, or HTTPS with rustls when `tls` is set.
pub async fn serve(
    web: Arc<Web>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let app = router(web).into_make_service_with_connect_info::<SocketAddr>();
    let Some(tls) = tls else {
        return axum::serve(listener, app).await;
    };
    serve_tls(listener, app, tls).await
}

async fn serve_tls(
    listener: tokio::net::TcpListener,
    mut app: axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    use tower::Service as _;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let Ok(service) = app.call(peer).await;
        tokio::spawn(async move {
            // A client that fails the handshake is dropped; it affects no other.
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper_util::service::TowerToHyperService::new(service);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// The rustls configuration for a PEM certificate chain and key.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))
}
