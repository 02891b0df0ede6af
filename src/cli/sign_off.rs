//! `onboard sign-off`: a person signs a waiting step from another terminal or machine that
//! shares the state directory; the next run continues from there.

use std::path::PathBuf;

use clap::Args;

use super::settings::Setup;
use super::{CliError, CmdResult, Exit, Printer, emit};
use crate::engine::{self, Mode, Outcome, Settings, read_state};
use crate::journal::{Refusal, Status};
use crate::steps::human::{Signature, same_person};

/// Sign off a waiting step (e.g. the laptop cleaning), acknowledge a hand-off as the hire, or
/// record the hire's acceptance of the IT policies (an `acknowledge` step or a campaign's).
///
/// Without --all, --item or --refuse it shows what the step asks to confirm (for policies, the
/// text itself).
#[derive(Debug, Args)]
pub struct SignOffArgs {
    /// The hire id.
    hire: String,
    /// The step, e.g. laptop-cleaning.
    step: String,
    /// The signer's name, as they sign (for a hand-off: the hire's own name).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Confirm every item.
    #[arg(long, conflicts_with = "refuse")]
    all: bool,
    /// Confirm one item, by number (1, 2, …) or by its exact text. Repeatable.
    #[arg(long = "item", value_name = "ITEM")]
    items: Vec<String>,
    /// Refuse one item (by number or text); needs --reason. The step fails with the reason.
    #[arg(long, value_name = "ITEM", requires = "reason")]
    refuse: Option<String>,
    /// Why the item is refused.
    #[arg(long)]
    reason: Option<String>,
    /// A note for the record.
    #[arg(long, default_value = "")]
    note: String,
    /// An evidence value the step asks for, e.g. wipe_certificate_id=WC-2211. Repeatable.
    #[arg(long = "value", value_name = "NAME=VALUE")]
    values: Vec<String>,
    /// An evidence file (e.g. the wipe certificate PDF): copied into the state directory and
    /// recorded with its SHA-256. Repeatable.
    #[arg(long = "evidence", value_name = "FILE")]
    evidence: Vec<PathBuf>,
    /// Given in person before this witness (e.g. the technician at the desk), not by the signer
    /// at their own terminal: recorded as `in person` with the witness.
    #[arg(long, value_name = "NAME")]
    witness: Option<String>,
    /// Who records it (default: the OS user). The signer is --by; the record keeps both.
    #[arg(long = "as", value_name = "NAME")]
    actor: Option<String>,
}

pub fn cmd_sign_off(args: SignOffArgs, setup: &Setup, printer: &Printer) -> CmdResult {
    let state = super::journal::with_hire(setup, &args.hire)?;
    let state = state.as_ref();
    let (hire, _) = read_state(state, &args.hire).map_err(|e| CliError::failed(e.to_string()))?;
    let Some(current) = hire.steps.get(&args.step) else {
        return Err(CliError::input(format!(
            "hire {} has no step {} in its journal",
            args.hire, args.step
        )));
    };
    let Some(request) = current
        .request
        .clone()
        .filter(|_| current.status == Status::Waiting)
    else {
        let why = match current.status {
            Status::Waiting => format!("{} cannot be signed yet ({})", args.step, current.detail),
            Status::Done => format!(
                "{} is already done ({} by {})",
                args.step, current.at, current.actor
            ),
            other => format!(
                "{} is not waiting for a signature (it is {})",
                args.step,
                other.as_str()
            ),
        };
        return Err(CliError::input(&why));
    };
    if !args.all && args.items.is_empty() && args.refuse.is_none() {
        show_request(
            state,
            &args,
            &request,
            current.waiting_since.as_deref(),
            printer,
        )?;
        return Err(CliError::Reported(Exit::Input));
    }
    let signature = signature(&args, &request)?;
    // Who records it is who runs the command, never the signer's name: the record keeps both.
    // `--as` names someone else only beside the OS user, and dual control holds against both.
    let actor = match (args.actor.as_deref(), setup.os_user()) {
        (Some(named), Some(user)) if !same_person(named, user) => {
            format!("{named} (as OS user {user})")
        }
        _ => setup.actor(args.actor.clone()),
    };
    if request.not_operator
        && let Some(user) = setup.os_user()
        && hire.operators.iter().any(|o| same_person(o, user))
    {
        return Err(CliError::input(format!(
            "dual control: {user} ran the automated steps for this hire, so someone else must \
             sign (and record it as themselves)"
        )));
    }
    let settings = Settings {
        mode: Mode::Apply,
        actor,
        clock: setup.clock,
        reapply: Vec::new(),
        reconcile: false,
        resend_uncertain: false,
        failpoint: None,
    };
    let mut evidence = Vec::new();
    for file in &args.evidence {
        let bytes = crate::files::read_regular(file, crate::files::EVIDENCE_LIMIT)
            .map_err(|e| CliError::input(format!("{}: {e}", file.display())))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "evidence".into());
        evidence.push(crate::store::Evidence { name, bytes });
    }
    let outcome = engine::sign_off(
        state, &args.hire, &args.step, signature, &evidence, &settings,
    )?;
    match outcome {
        Outcome::Applied(changes) => {
            emit(
                printer,
                &format!("{} {}: {}\n", args.hire, args.step, changes.join("; ")),
            )?;
            printer.info("Run the hire's playbook again to continue from here.");
            Ok(())
        }
        Outcome::Failed { error, .. } => {
            emit(
                printer,
                &format!("{} {}: refused: {error}\n", args.hire, args.step),
            )?;
            Err(CliError::Reported(Exit::Failed))
        }
        other => Err(CliError::failed(format!("unexpected outcome: {other:?}"))),
    }
}

/// Without --all, --item or --refuse: what the step asks, and how to sign it.
fn show_request(
    state: &dyn crate::store::Store,
    args: &SignOffArgs,
    request: &crate::journal::SignOffRequest,
    since: Option<&str>,
    printer: &Printer,
) -> CmdResult<()> {
    let mut out = format!(
        "{} {} waits for the {}'s sign-off{}:\n",
        args.hire,
        args.step,
        request.role,
        since.map(|s| format!(" (since {s})")).unwrap_or_default()
    );
    if let Some(policy) = &request.policy {
        let text = crate::policy::text_of(state, policy).map_err(CliError::failed)?;
        out.push_str(&format!(
            "\n{} version {} (sha256 {}):\n\n{}\n\n",
            policy.file, policy.version, policy.sha256, text.text
        ));
    }
    for (i, item) in request.items.iter().enumerate() {
        out.push_str(&format!("  {}. {item}\n", i + 1));
    }
    for e in &request.evidence {
        out.push_str(&format!("  evidence: {e} (--value {e}=…)\n"));
    }
    emit(printer, &out)?;
    printer.hint(&format!(
        "sign with: onboard sign-off {} {} --by NAME --all{}{}",
        args.hire,
        args.step,
        if request.policy.is_some() {
            " [--witness NAME, if given in person]"
        } else {
            ""
        },
        request
            .evidence
            .iter()
            .map(|e| format!(" --value {e}=…"))
            .collect::<String>()
    ));
    Ok(())
}

/// The signature the flags give: the signer, the items confirmed (by number or text), a
/// refusal, evidence values.
fn signature(args: &SignOffArgs, request: &crate::journal::SignOffRequest) -> CmdResult<Signature> {
    let resolve = |item: &str| -> CmdResult<String> {
        if let Ok(n) = item.parse::<usize>()
            && let Some(text) = n.checked_sub(1).and_then(|i| request.items.get(i))
        {
            return Ok(text.clone());
        }
        if request.items.iter().any(|i| i == item) {
            return Ok(item.to_owned());
        }
        Err(CliError::input(format!(
            "`{item}` is not an item of {}",
            args.step
        )))
    };
    let Some(by) = args.by.clone() else {
        return Err(CliError::input("who signs? pass --by NAME"));
    };
    let confirmed = if args.all {
        request.items.clone()
    } else {
        args.items
            .iter()
            .map(|i| resolve(i))
            .collect::<Result<Vec<_>, _>>()?
    };
    let refused = match &args.refuse {
        Some(item) => Some(Refusal {
            item: resolve(item)?,
            reason: args.reason.clone().unwrap_or_default(),
        }),
        None => None,
    };
    let mut evidence = std::collections::BTreeMap::new();
    for v in &args.values {
        let Some((name, value)) = v.split_once('=') else {
            return Err(CliError::input(format!("--value {v}: write NAME=VALUE")));
        };
        evidence.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(Signature {
        by,
        confirmed,
        refused,
        note: args.note.clone(),
        evidence,
        how: if args.witness.is_some() {
            "in person"
        } else {
            "terminal"
        }
        .into(),
        witness: args.witness.clone().unwrap_or_default(),
    })
}
