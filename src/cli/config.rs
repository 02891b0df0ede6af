//! `onboard config`: the settings as resolved and where each came from; `onboard store copy`:
//! moving the record between a state directory and a database.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::settings::{Open, Setup, open_postgres};
use super::{CliError, CmdResult, Printer, emit};
use crate::store::Store;
use crate::store::copy::{Copied, CopyError, copy_hire, copy_policies};

/// Show the settings in effect (config file, environment, flags, defaults) and where each
/// came from; secrets are shown as where they are read from, never their value.
#[derive(Debug, Args)]
pub struct ConfigArgs {}

pub fn cmd_config(_args: ConfigArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let width = setup.shown.iter().map(|s| s.key.len()).max().unwrap_or(0);
    // Paths and values can hold control characters: shown escaped, wherever stdout goes.
    let shown: Vec<(&str, String)> = setup
        .shown
        .iter()
        .map(|s| (s.key.as_str(), crate::diag::visible(&s.value).into_owned()))
        .collect();
    let value_width = shown
        .iter()
        .map(|(_, v)| v.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    let mut out = String::new();
    for ((key, value), s) in shown.iter().zip(&setup.shown) {
        out.push_str(&format!(
            "{key:width$}  {value:value_width$}  {}\n",
            s.origin
        ));
    }
    emit(printer, &out)
}

/// Move the record between stores.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    Copy(CopyArgs),
}

/// Copy every journal and evidence file from one store to another (a state directory or a
/// postgres:// URL), verifying every chain on both sides. A hire the destination holds already
/// is skipped when identical and refused when it differs; nothing is ever overwritten.
#[derive(Debug, Args)]
struct CopyArgs {
    /// The store to copy from: a state directory or postgres://[USER@]HOST[:PORT]/DATABASE.
    #[arg(long, value_name = "DIR|URL")]
    from: String,
    /// The store to copy to (created if new).
    #[arg(long, value_name = "DIR|URL")]
    to: String,
}

pub fn cmd_store(args: StoreArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let StoreCommand::Copy(args) = args.command;
    let from = open(setup, &args.from, Open::AsIs)?;
    let to = open(setup, &args.to, Open::ForRun)?;
    let hires = from.hires().map_err(|e| {
        CliError::failed(format!("cannot list the hires in {}: {e}", from.describe()))
    })?;
    let (mut new, mut same, mut problems) = (0, 0, 0);
    for hire in &hires {
        match copy_hire(from.as_ref(), to.as_ref(), hire) {
            Ok(Copied::New { records, evidence }) => {
                new += 1;
                printer.info(&format!(
                    "{hire}: copied {records} records and {evidence} evidence files; the chain verifies on both sides"
                ));
            }
            Ok(Copied::Same { evidence }) => {
                same += 1;
                printer.info(&format!(
                    "{hire}: already there, identical{}",
                    if evidence > 0 {
                        format!(" ({evidence} evidence files added)")
                    } else {
                        String::new()
                    }
                ));
            }
            Err(e) => {
                problems += 1;
                printer.error(&format!("{hire}: {e}"));
                if let CopyError::Differs { .. } = e {
                    printer.hint("compare both with `onboard log`; nothing was overwritten");
                }
            }
        }
    }
    match copy_policies(from.as_ref(), to.as_ref()) {
        Ok(n) if n > 0 => printer.info(&format!(
            "policies: {n} published versions, the same text on both sides"
        )),
        Ok(_) => {}
        Err(e) => {
            problems += 1;
            printer.error(&format!("policies: {e}"));
        }
    }
    emit(
        printer,
        &format!(
            "{} hires from {} to {}: {new} copied, {same} already there, {problems} refused\n",
            hires.len(),
            from.describe(),
            to.describe()
        ),
    )?;
    if problems > 0 {
        Err(CliError::failed(format!(
            "{problems} hires were not copied"
        )))
    } else {
        Ok(())
    }
}

/// A store named on the command line: a postgres:// URL (with the password and TLS settings
/// of the configured store) or a directory.
fn open(setup: &Setup, at: &str, open: Open) -> CmdResult<Box<dyn Store>> {
    if at.starts_with("postgres://") || at.starts_with("postgresql://") {
        let config = setup.postgres_for(at)?;
        return open_postgres(config, open == Open::ForRun);
    }
    let dir = PathBuf::from(at);
    Ok(Box::new(match open {
        Open::AsIs => crate::state::StateDir::at(&dir),
        Open::ForRun => crate::state::StateDir::open(&dir)
            .map_err(|e| CliError::failed(format!("cannot use the state directory {at}: {e}")))?,
    }))
}
