//! `onboard serve`: the web pages; `onboard link`: a single-purpose link for IT to hand over.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::settings::{Open, Setup};
use super::{CliError, CmdResult, Printer, emit};
use crate::engine::read_state;
use crate::journal::Status;
use crate::web::{Link, Parts, Web};

/// Serve the web pages: the board, hire pages, sign-off forms and links, HR's preview, reports.
///
/// IT staff, HR and auditors sign in with their directory account; their role comes from the
/// groups in [roles]. Others act through single-purpose links (`onboard link`, or a step's
/// `notify`). Settings: [serve] in the config file (see `onboard config`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen [default: serve.listen, else 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// The folder of checklists HR may preview.
    #[arg(long, value_name = "DIR", default_value = "playbooks")]
    playbooks: PathBuf,
}

pub fn cmd_serve(args: ServeArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let mut settings = setup.web.clone();
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    let key = setup.link_key()?;
    let tls = match &settings.tls {
        Some((cert, key)) => Some(Arc::new(
            crate::web::tls_config(cert, key)
                .map_err(|e| CliError::input(e).hint("check serve.tls_cert and serve.tls_key"))?,
        )),
        None => None,
    };
    let store = setup.store(Open::AsIs)?;
    let web = Web::new(Parts {
        settings: settings.clone(),
        store,
        ldap: setup.servers().ldap.clone(),
        state: setup.local(Open::AsIs)?,
        key,
        clock: setup.clock,
        playbooks: args.playbooks,
        log: Box::new(|line| eprintln!("onboard serve: {line}")),
    })
    .map_err(|e| CliError::failed(format!("the page templates do not load: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the server: {e}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| {
                CliError::failed(format!("cannot listen on {}: {e}", settings.listen))
                    .hint("is another server using that port? pass --listen HOST:PORT")
            })?;
        let at = listener.local_addr().unwrap_or(settings.listen);
        printer.info(&format!(
            "Serving {} on {}://{at} (links point at {}); stop with Ctrl-C.",
            web.store.describe(),
            if tls.is_some() { "https" } else { "http" },
            settings.base()
        ));
        let server = crate::web::serve(Arc::new(web), listener, tls);
        tokio::select! {
            r = server => r.map_err(|e| CliError::failed(format!("the server stopped: {e}"))),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

/// Print a single-purpose link that lets one person sign one step of one hire, for IT to hand
/// over in person (the hire at the desk, a technician without an account).
///
/// The link works until the step is signed or the link expires (serve.link_days, 14 by
/// default). Whoever holds it can sign that step: hand it only to that person.
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The hire id.
    hire: String,
    /// The step waiting for a signature, e.g. laptop-handoff.
    step: String,
    /// Whom you give it to, for the journal (default: "in person by" you).
    #[arg(long, value_name = "WHOM")]
    to: Option<String>,
}

pub fn cmd_link(args: LinkArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let store = super::journal::with_hire(setup, &args.hire)?;
    let (hire, _) =
        read_state(store.as_ref(), &args.hire).map_err(|e| CliError::failed(e.to_string()))?;
    match hire.steps.get(&args.step) {
        Some(s) if s.status == Status::Waiting && s.request.is_some() => {}
        Some(s) => {
            return Err(CliError::input(format!(
                "{} {} does not wait for a signature (it is {})",
                args.hire,
                args.step,
                s.status.as_str()
            ))
            .hint("a link is for a step that waits for a person: see `onboard status`"));
        }
        None => {
            return Err(CliError::input(format!(
                "hire {} has no step {} in its journal",
                args.hire, args.step
            )));
        }
    }
    let key = setup.link_key()?;
    let now = setup.clock.now().as_second();
    let link = Link {
        hire: args.hire.clone(),
        step: args.step.clone(),
        to: match args.to {
            Some(to) => format!("given to {to} by {}", setup.actor(None)),
            None => format!("handed over in person by {}", setup.actor(None)),
        },
        expires: now + setup.web.link_days * 86_400,
    };
    emit(printer, &format!("{}\n", setup.web.link_url(&link, &key)))?;
    printer.info(&format!(
        "This link lets whoever holds it sign {} for {} until it is signed or {} days pass.",
        args.step, args.hire, setup.web.link_days
    ));
    Ok(())
}
