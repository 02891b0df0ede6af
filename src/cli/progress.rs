//! Progress of a run: a spinner per step on a terminal (indicatif), plain lines otherwise.
//! Also the operator's terminal for the one secret onboard ever shows: an initial password,
//! written to /dev/tty with the spinner suspended, never to stdout or stderr.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::{Outcome, Progress};
use crate::plan::PlannedStep;
use crate::secret::Secret;
use crate::steps::Operator;

pub struct StepProgress {
    total: usize,
    index: usize,
    bar: Option<ProgressBar>,
    tty: bool,
}

impl StepProgress {
    pub fn new(total: usize) -> Self {
        StepProgress {
            total,
            index: 0,
            bar: None,
            tty: std::io::stderr().is_terminal(),
        }
    }
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
        eprintln!(
            "[{}/{}] {}",
            self.index,
            self.total,
            outcome_line(&_step.id, outcome)
        );
    }
}

impl Operator for StepProgress {
    fn can_show_secret(&self) -> bool {
        std::io::stdin().is_terminal()
            && std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/tty")
                .is_ok()
    }

    fn show_password(&mut self, hire: &str, login: &str, password: &Secret) -> Result<(), String> {
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
        .map_err(|e| format!("cannot show the password on the terminal: {e}"))
    }
}
