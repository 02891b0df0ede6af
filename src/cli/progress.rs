//! Progress of a run: a spinner per step on a terminal (indicatif), plain lines otherwise.
//! Also the operator's terminal for the one secret onboard ever shows: an initial password,
//! written to /dev/tty with the spinner suspended, never to stdout or stderr.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::{Outcome, Progress};
use crate::journal::{Refusal, SignOffRequest};
use crate::plan::PlannedStep;
use crate::secret::Secret;
use crate::steps::Operator;
use crate::steps::human::Signature;

pub struct StepProgress {
    total: usize,
    index: usize,
    bar: Option<ProgressBar>,
    tty: bool,
    /// Ask people at this terminal to sign waiting steps.
    prompt: bool,
    /// The name given with `--as`, used as the signer's name instead of asking.
    signer: Option<String>,
}

impl StepProgress {
    pub fn new(total: usize, prompt: bool, signer: Option<String>) -> Self {
        StepProgress {
            total,
            index: 0,
            bar: None,
            tty: std::io::stderr().is_terminal(),
            prompt: prompt && std::io::stdin().is_terminal(),
            signer,
        }
    }
}

/// Asks on stderr, reads one line from stdin.
fn ask(question: &str) -> Option<String> {
    crate::cli::output::err_text(question);
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_owned()),
    }
}

fn yes(answer: Option<String>) -> Option<bool> {
    let a = answer?.to_lowercase();
    Some(a == "y" || a == "yes")
}

/// The sign-off conversation: each item confirmed or refused with a reason, then evidence.
fn converse(
    step: &PlannedStep,
    request: &SignOffRequest,
    signer: Option<&str>,
) -> Option<Signature> {
    crate::cli::output::err_line(&format!(
        "\n{} ({}) needs the {}'s sign-off.",
        step.title, step.id, request.role
    ));
    if !yes(ask("Sign it now at this terminal? [y/N] "))? {
        return None;
    }
    if let crate::steps::Params::Acknowledge(p) = &step.params {
        // The text itself, before anything is confirmed: what is accepted is what was read.
        crate::cli::output::err_line(&format!(
            "\n{} version {} (sha256 {}):\n\n{}\n",
            p.policy.file, p.policy.version, p.policy.sha256, p.text
        ));
    }
    let by = match signer {
        Some(name) => {
            crate::cli::output::err_line(&format!("Signing as {name}."));
            name.to_owned()
        }
        None => ask("Your name, as you sign: ")?,
    };
    let mut confirmed = Vec::new();
    for (i, item) in request.items.iter().enumerate() {
        if yes(ask(&format!("  {}. {item}\n     Confirmed? [y/n] ", i + 1)))? {
            confirmed.push(item.clone());
        } else {
            let reason = ask("     What is wrong? ")?;
            return Some(Signature {
                by,
                confirmed,
                refused: Some(Refusal {
                    item: item.clone(),
                    reason,
                }),
                note: String::new(),
                evidence: Default::default(),
                how: "terminal".into(),
                witness: String::new(),
            });
        }
    }
    let mut evidence = std::collections::BTreeMap::new();
    for name in &request.evidence {
        evidence.insert(name.clone(), ask(&format!("  {name}: "))?);
    }
    let note = ask("  Note (optional): ")?;
    Some(Signature {
        by,
        confirmed,
        refused: None,
        note,
        evidence,
        how: "terminal".into(),
        witness: String::new(),
    })
}

/// One line for a finished step, e.g. `[1/5] account: done: created entry …`.
pub fn outcome_line(step_id: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Applied(changes) => format!("{step_id}: done: {}", changes.join("; ")),
        Outcome::AlreadyDone(None) => format!("{step_id}: already done"),
        Outcome::AlreadyDone(Some(note)) => format!("{step_id}: already done ({note})"),
        Outcome::WouldDo(changes) => format!("{step_id}: would {}", changes.join("; ")),
        Outcome::Waiting { on, reason } => format!("{step_id}: waiting on the {on}: {reason}"),
        Outcome::Skipped(because) => format!("{step_id}: skipped: {because}"),
        Outcome::Uncertain(reason) => format!("{step_id}: UNCERTAIN: {reason}"),
        Outcome::Failed { error, hint } => match hint {
            Some(h) => format!("{step_id}: FAILED: {error}\n      hint: {h}"),
            None => format!("{step_id}: FAILED: {error}"),
        },
    }
}

impl Progress for StepProgress {
    fn started(&mut self, step: &PlannedStep) {
        self.index += 1;
        if self.tty {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg} {elapsed}")
                    .expect("valid template"),
            );
            bar.set_prefix(format!("[{}/{}]", self.index, self.total));
            bar.set_message(format!("{}: {}", step.id, step.title));
            bar.enable_steady_tick(Duration::from_millis(100));
            self.bar = Some(bar);
        }
    }

    fn finished(&mut self, _step: &PlannedStep, outcome: &Outcome) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        crate::cli::output::err_line(&format!(
            "[{}/{}] {}",
            self.index,
            self.total,
            outcome_line(&_step.id, outcome)
        ));
    }
}

impl Operator for StepProgress {
    fn sign(&mut self, step: &PlannedStep, request: &SignOffRequest) -> Option<Signature> {
        if !self.prompt {
            return None;
        }
        let signer = self.signer.clone();
        match &self.bar {
            Some(bar) => bar.suspend(|| converse(step, request, signer.as_deref())),
            None => converse(step, request, signer.as_deref()),
        }
    }

    fn can_show_secret(&self) -> bool {
        std::io::stdin().is_terminal()
            && std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/tty")
                .is_ok()
    }

    fn show_password(&mut self, hire: &str, login: &str, password: &Secret) -> std::io::Result<()> {
        let show = || -> std::io::Result<()> {
            let mut tty = std::fs::OpenOptions::new().write(true).open("/dev/tty")?;
            writeln!(
                tty,
                "\n  Initial password for {login} (hire {hire}): {}\n  Give it to the new hire in person; it is not stored anywhere.\n",
                password.expose()
            )
        };
        match &self.bar {
            Some(bar) => bar.suspend(show),
            None => show(),
        }
    }
}
