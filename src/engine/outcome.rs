//! What a run reports: each step's outcome, and the counts.

use super::Mode;
use crate::plan::{Plan, PlannedStep};
use crate::steps::{Note, Operator};

/// What happened to a step in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Changed something, verified.
    Applied(Vec<String>),
    /// Already so; nothing to do. The note reports e.g. drift.
    AlreadyDone(Option<Note>),
    /// Dry run: these changes would be made.
    WouldDo(Vec<String>),
    Waiting {
        on: String,
        reason: String,
    },
    Skipped(String),
    Failed {
        error: String,
        hint: Option<String>,
    },
    /// An interrupted send whose outcome cannot be known; the operator decides.
    Uncertain(String),
}

impl Outcome {
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Applied(_) | Outcome::AlreadyDone(_))
    }

    /// The dry-run view of this outcome, for the plan.
    pub fn now(&self) -> crate::plan::Now {
        use crate::plan::NowState;
        let (state, changes, detail) = match self {
            Outcome::Applied(c) => (NowState::Done, c.clone(), None),
            Outcome::AlreadyDone(note) => (
                NowState::AlreadyDone,
                Vec::new(),
                note.as_ref().map(Note::to_string),
            ),
            Outcome::WouldDo(c) => (NowState::WouldDo, c.clone(), None),
            Outcome::Waiting { on, reason } => (
                NowState::Waiting,
                Vec::new(),
                Some(format!("waiting on the {on}: {reason}")),
            ),
            Outcome::Skipped(because) => (NowState::Skipped, Vec::new(), Some(because.clone())),
            Outcome::Failed { error, .. } => (NowState::Failed, Vec::new(), Some(error.clone())),
            Outcome::Uncertain(reason) => (NowState::Uncertain, Vec::new(), Some(reason.clone())),
        };
        crate::plan::Now {
            state,
            changes,
            detail,
        }
    }
}

/// Told about each step as the run goes; also the operator's terminal for secrets.
pub trait Progress: Operator {
    fn started(&mut self, step: &PlannedStep);
    fn finished(&mut self, step: &PlannedStep, outcome: &Outcome);
}

pub struct StepReport {
    pub id: String,
    pub title: String,
    pub outcome: Outcome,
}

/// The result of a run.
pub struct Report {
    pub hire: String,
    pub mode: Mode,
    pub steps: Vec<StepReport>,
    /// Bytes of a torn last journal record that were cut off when the journal was opened.
    pub torn_bytes: usize,
    pub plan: Plan,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub applied: u32,
    pub already_done: u32,
    pub would_do: u32,
    pub waiting: u32,
    pub skipped: u32,
    pub failed: u32,
    pub uncertain: u32,
}

impl Report {
    /// The record that ends the run, with its counts.
    pub fn finished(&self) -> crate::journal::Event {
        let c = self.counts();
        crate::journal::Event::RunFinished {
            done: c.applied,
            already_done: c.already_done,
            failed: c.failed,
            waiting: c.waiting,
            skipped: c.skipped,
            uncertain: c.uncertain,
        }
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.steps {
            match s.outcome {
                Outcome::Applied(_) => c.applied += 1,
                Outcome::AlreadyDone(_) => c.already_done += 1,
                Outcome::WouldDo(_) => c.would_do += 1,
                Outcome::Waiting { .. } => c.waiting += 1,
                Outcome::Skipped(_) => c.skipped += 1,
                Outcome::Failed { .. } => c.failed += 1,
                Outcome::Uncertain(_) => c.uncertain += 1,
            }
        }
        c
    }
}
