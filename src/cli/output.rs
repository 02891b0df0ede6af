//! The one owner of the terminal: stdout is for data, stderr for messages and diagnostics.
//! Colour only on a terminal, and never when `NO_COLOR` is set.

use std::io::{IsTerminal, Write};

use crate::diag::{Diagnostic, SourceMap};

pub struct Printer {
    color: bool,
}

impl Printer {
    pub fn new(no_color_env: bool) -> Self {
        let term_ok = std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        Printer {
            color: !no_color_env && term_ok && std::io::stderr().is_terminal(),
        }
    }

    /// Data for the user or a pipe. A closed pipe ends the program quietly (see main).
    pub fn out(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// A message for people.
    pub fn info(&self, text: &str) {
        eprintln!("{text}");
    }

    pub fn error(&self, text: &str) {
        let head = self.paint("error:", "1;31");
        eprintln!("{head} {text}");
    }

    pub fn hint(&self, text: &str) {
        let head = self.paint("hint:", "1;36");
        eprintln!("{head} {text}");
    }

    pub fn diagnostics(&self, diags: &[Diagnostic], sources: &SourceMap) {
        for d in diags {
            let text = d.render(sources);
            let text = if self.color {
                text.lines()
                    .map(|l| {
                        if let Some(rest) = l.strip_prefix("error:") {
                            format!("{}{rest}", self.paint("error:", "1;31"))
                        } else if let Some((pad, rest)) = l.split_once(" = hint:")
                            && pad.trim().is_empty()
                        {
                            format!("{pad} = {}{rest}", self.paint("hint:", "1;36"))
                        } else {
                            l.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n"
            } else {
                text
            };
            eprintln!("{text}");
        }
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}
