//! What can go wrong in a command, which exit code it gives, and how it is printed: commands
//! return a `CliError` and `main` prints it, once, in one place.

use crate::backend::BackendError;
use crate::engine::EngineError;
use crate::store::StoreError;

use super::Printer;

/// The exit code of a failed command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A step failed, or the command could not finish: 1.
    Failed = 1,
    /// Invalid input (arguments, playbook, hire data, settings); nothing was changed: 2.
    Input = 2,
}

/// A command's failure.
#[derive(Debug)]
pub enum CliError {
    /// Already shown (located diagnostics with their count, a run's summary): only the code.
    Reported(Exit),
    /// One message, with what to do about it.
    Message {
        exit: Exit,
        message: String,
        hints: Vec<String>,
    },
}

pub type CmdResult<T = ()> = Result<T, CliError>;

impl CliError {
    /// Invalid input: exit 2.
    pub fn input(message: impl Into<String>) -> CliError {
        CliError::Message {
            exit: Exit::Input,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// Could not finish: exit 1.
    pub fn failed(message: impl Into<String>) -> CliError {
        CliError::Message {
            exit: Exit::Failed,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        if let CliError::Message { hints, .. } = &mut self {
            hints.push(hint.into());
        }
        self
    }

    pub fn exit(&self) -> Exit {
        match self {
            CliError::Reported(exit) | CliError::Message { exit, .. } => *exit,
        }
    }

    /// Prints the message and its hints (nothing when it was shown already).
    pub fn print(&self, printer: &Printer) {
        if let CliError::Message { message, hints, .. } = self {
            printer.error(message);
            for h in hints {
                printer.hint(h);
            }
        }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NoHire => CliError::input(e.to_string())
                .hint("give the hire in the playbook's `hire:`, or with --hire FILE"),
            EngineError::Locked { .. } => CliError::failed(e.to_string())
                .hint("wait for it to finish; a run that was killed releases its lock by itself"),
            EngineError::Journal { .. } => CliError::failed(e.to_string())
                .hint("nothing was changed; see `onboard verify` and `onboard log`"),
            // What a person asked for cannot be done as asked (e.g. a signature).
            EngineError::Refused(_) => CliError::input(e.to_string()),
            EngineError::Io(_) | EngineError::Plan(_) => CliError::failed(e.to_string()),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::from(EngineError::from(e))
    }
}

/// An error at the edge (a file the CLI writes, a server it connects to), with its context:
/// "cannot write previews: …".
impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::failed(format!("{e:#}"))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::failed(e.to_string())
    }
}

impl From<BackendError> for CliError {
    fn from(e: BackendError) -> Self {
        CliError::failed(e.to_string())
    }
}
