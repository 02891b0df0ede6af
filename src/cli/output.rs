//! The one owner of the terminal: stdout is for data, stderr for messages and diagnostics.
//! Colour only on a terminal, and never when `NO_COLOR` is set.

use std::io::{IsTerminal, Write};

use crate::diag::{Diagnostic, SourceMap, visible};

/// Writes `text` to stderr, escaped for the terminal. A closed or full stderr is not an
/// error worth dying for: the message is dropped and the work goes on (a cohort still
/// finishes and still exits with its code).
pub fn err_text(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(visible(text).as_bytes());
    let _ = err.flush();
}

/// [`err_text`] with a newline.
pub fn err_line(text: &str) {
    err_text(&format!("{text}\n"));
}

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

    /// Data for the user or a pipe. A closed pipe ends the program quietly (see main). On a
    /// terminal, control characters in the data are shown escaped; a pipe gets the data as is.
    pub fn out(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if out.is_terminal() {
            out.write_all(visible(text).as_bytes())?;
        } else {
            out.write_all(text.as_bytes())?;
        }
        out.flush()
    }

    /// A message for people.
    pub fn info(&self, text: &str) {
        err_line(&visible(text));
    }

    pub fn error(&self, text: &str) {
        let head = self.paint("error:", "1;31");
        err_line(&format!("{head} {}", visible(text)));
    }

    pub fn hint(&self, text: &str) {
        let head = self.paint("hint:", "1;36");
        err_line(&format!("{head} {}", visible(text)));
    }

    pub fn diagnostics(&self, diags: &[Diagnostic], sources: &SourceMap) {
        for d in diags {
            let text = visible(&d.render(sources)).into_owned();
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
            err_line(&text);
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
