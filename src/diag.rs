//! Diagnostics that point into the user's files.
//!
//! Every problem with user input (a playbook, a hire file, a template) becomes a [`Diagnostic`]
//! with an optional [`Span`]. Validation collects all of them before giving up, so a user fixes
//! a file in one pass. Rendering follows rustc/just: `error: …`, `--> file:line:col`, the source
//! line and a caret, then `= hint: …`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A location in a source file: 1-based line and character column, length in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: FileId,
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

impl Span {
    /// A span `offset` characters further along the same line, `len` long.
    pub fn shifted(self, offset: u32, len: u32) -> Span {
        Span {
            col: self.col + offset,
            len,
            ..self
        }
    }
}

/// The text of every file read, so diagnostics can quote it.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

#[derive(Debug)]
struct SourceFile {
    path: PathBuf,
    text: String,
    /// Where each line starts, so quoting a line does not rescan the file.
    starts: Vec<usize>,
}

impl SourceMap {
    pub fn add(&mut self, path: impl Into<PathBuf>, text: String) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).expect("fewer than 2^32 files"));
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.files.push(SourceFile {
            path: path.into(),
            text,
            starts,
        });
        id
    }

    pub fn path(&self, id: FileId) -> &Path {
        &self.files[id.0 as usize].path
    }

    pub fn text(&self, id: FileId) -> &str {
        &self.files[id.0 as usize].text
    }

    /// A file that is not UTF-8, as a diagnostic at its first invalid byte (the file is kept,
    /// lossily decoded, so the line can be quoted).
    pub fn not_utf8(
        &mut self,
        path: &Path,
        e: std::string::FromUtf8Error,
        hint: &str,
    ) -> Diagnostic {
        let (line, col) = utf8_error_at(e.as_bytes(), e.utf8_error().valid_up_to());
        let file = self.add(path, String::from_utf8_lossy(e.as_bytes()).into_owned());
        Diagnostic::new(format!("{} is not UTF-8 text", path.display()))
            .at(Span {
                file,
                line,
                col,
                len: 1,
            })
            .label("invalid byte")
            .hint(hint)
    }

    /// The file already loaded from `path`, if any.
    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.path == path)
            .map(|i| FileId(i as u32))
    }

    /// Line `line` (1-based) of a file, without its line terminator.
    pub fn line(&self, id: FileId, line: u32) -> Option<&str> {
        let file = &self.files[id.0 as usize];
        let start = *file.starts.get(line.checked_sub(1)? as usize)?;
        let rest = &file.text[start..];
        let l = rest.split('\n').next().unwrap_or("");
        Some(l.strip_suffix('\r').unwrap_or(l))
    }
}

/// A value that breaks a rule, and why in words (e.g. "`x` is not a DN: …"). Checks of single
/// values return it; the caller turns it into a located `Diagnostic` or a refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<&str> for Invalid {
    fn from(s: &str) -> Invalid {
        Invalid(s.to_owned())
    }
}

impl From<String> for Invalid {
    fn from(s: String) -> Invalid {
        Invalid(s)
    }
}

impl From<Invalid> for String {
    fn from(i: Invalid) -> String {
        i.0
    }
}

/// One problem with the input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub message: String,
    pub span: Option<Span>,
    /// Short text printed beside the caret.
    pub label: Option<String>,
    pub hint: Option<String>,
    /// Secondary locations, e.g. "first defined here".
    pub notes: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            span: None,
            label: None,
            hint: None,
            notes: Vec::new(),
        }
    }

    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    pub fn at_opt(mut self, span: Option<Span>) -> Self {
        self.span = span;
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn note(mut self, span: Span, text: impl Into<String>) -> Self {
        self.notes.push((span, text.into()));
        self
    }

    /// Renders the diagnostic the way a compiler would, without colour.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = format!("error: {}\n", self.message);
        let pad = " ".repeat(self.span.map_or(1, |s| s.line.to_string().len()));
        if let Some(span) = self.span {
            render_snippet(&mut out, sources, span, self.label.as_deref());
        }
        for (span, text) in &self.notes {
            let _ = writeln!(
                out,
                "{pad} = note: {text} at {}:{}:{}",
                sources.path(span.file).display(),
                span.line,
                span.col
            );
        }
        if let Some(hint) = &self.hint {
            for (i, line) in hint.lines().enumerate() {
                let lead = if i == 0 { " = hint: " } else { "         " };
                let _ = writeln!(out, "{pad}{lead}{line}");
            }
        }
        out
    }

    /// `file:line:col`, for one-line summaries and JSON output.
    pub fn location(&self, sources: &SourceMap) -> Option<String> {
        self.span
            .map(|s| format!("{}:{}:{}", sources.path(s.file).display(), s.line, s.col))
    }
}

fn render_snippet(out: &mut String, sources: &SourceMap, span: Span, label: Option<&str>) {
    let gutter = span.line.to_string().len();
    let pad = " ".repeat(gutter);
    let _ = writeln!(
        out,
        "{pad}--> {}:{}:{}",
        sources.path(span.file).display(),
        span.line,
        span.col
    );
    // A file that could not be read has no text to quote.
    let Some(line) = sources
        .line(span.file, span.line)
        .filter(|_| !sources.text(span.file).is_empty())
    else {
        return;
    };
    // Tabs would make the caret drift; show them as one space each. Control characters
    // (a hire's data can hold ESC, BEL, CR) are shown escaped, and the caret moves with them.
    // One pass over the line; a long line is quoted around the span only (a 300 KB line once
    // took minutes, counting the shown text again for every character).
    let chars: Vec<char> = line.chars().collect();
    let col = (span.col.saturating_sub(1) as usize).min(chars.len());
    let end = col
        .saturating_add(span.len.max(1) as usize)
        .min(chars.len());
    let (from, to) = window(chars.len(), col, end);
    let mut shown = String::new();
    let (mut start, mut len, mut count) = (0u32, 0u32, 0u32);
    if from > 0 {
        shown.push('…');
        count += 1;
    }
    for (i, &c) in chars.iter().enumerate().take(to).skip(from) {
        if i == col {
            start = count;
        }
        let before = shown.len();
        match c {
            '\t' => shown.push(' '),
            c => push_visible(&mut shown, c),
        }
        // Escapes and tabs are ASCII: bytes written are characters shown, but for `c` itself.
        let width = match shown.len() - before {
            n if n == c.len_utf8() && !needs_escape(c) => 1,
            n => n as u32,
        };
        if (col..end).contains(&i) {
            len += width;
        }
        count += width;
    }
    if col >= to {
        start = count;
    }
    if to < chars.len() {
        shown.push('…');
    }
    let line_chars = count;
    let start = start.min(line_chars);
    let len = len.max(1).min(line_chars.saturating_sub(start).max(1));
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{} | {}", span.line, shown.trim_end());
    let _ = write!(
        out,
        "{pad} | {}{}",
        " ".repeat(start as usize),
        "^".repeat(len as usize)
    );
    match label {
        Some(label) => {
            let _ = writeln!(out, " {label}");
        }
        None => out.push('\n'),
    }
}

/// The 1-based line and column (in characters) of the byte at `valid_up_to`, which ends the
/// valid UTF-8 prefix of `bytes`.
pub fn utf8_error_at(bytes: &[u8], valid_up_to: usize) -> (u32, u32) {
    let valid = std::str::from_utf8(&bytes[..valid_up_to]).expect("a valid prefix");
    let line = valid.matches('\n').count() as u32 + 1;
    let col = valid.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
    (line, col)
}

/// `text` as it may be shown on a terminal: control characters (ESC, BEL, NUL, CR, DEL, the
/// C1 range) and the bidirectional overrides that reorder what is displayed are written as
/// `\u{1b}`, so data can neither drive the terminal nor hide text. Newlines and tabs stay.
pub fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| needs_escape(c) && c != '\n' && c != '\t')
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c => push_visible(&mut out, c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The characters of a line of `n` worth quoting for a span `[col, end)`: all of a short line,
/// else about 60 on either side of the span (and at most 200 of the span).
fn window(n: usize, col: usize, end: usize) -> (usize, usize) {
    const SHORT: usize = 240;
    const AROUND: usize = 60;
    if n <= SHORT {
        return (0, n);
    }
    let from = col.saturating_sub(AROUND);
    let to = end.min(col + 200).saturating_add(AROUND).min(n);
    (from, to)
}

fn push_visible(out: &mut String, c: char) {
    if needs_escape(c) {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    } else {
        out.push(c);
    }
}

/// All problems found in one pass, in the order they were found.
#[derive(Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>, std::collections::HashSet<u64>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        // The same problem can be reached twice (e.g. a shared checklist); say it once. By
        // hash, so that 20,000 problems take no longer to collect than to print.
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        d.hash(&mut h);
        if self.1.insert(h.finish()) || !self.0.contains(&d) {
            self.0.push(d);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Sorted by file and position, which is how people read them.
    pub fn sorted(mut self) -> Vec<Diagnostic> {
        self.0.sort_by_key(|d| d.span);
        self.0
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let n = word.chars().count();
    candidates
        .into_iter()
        // Lengths further apart than the distance allowed cannot match: not compared, so a
        // 300 KB word costs one count, not an alignment with every candidate.
        .filter(|c| n.abs_diff(c.chars().count()) <= (c.chars().count() / 3).max(1))
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: edits plus adjacent transpositions (`nmae` → `name` is 1).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 300 KB YAML line with an error took 101 s to report (the shown text was counted again
    /// for every character), and quoted all of it. A line of a million characters is quoted
    /// around its span, with the caret under it.
    #[test]
    fn a_huge_line_is_quoted_around_its_error_at_once() {
        let mut sources = SourceMap::default();
        let line = format!("title: {}\u{7}{}", "x".repeat(600_000), "y".repeat(400_000));
        let file = sources.add("p.yaml", line);
        let d = Diagnostic::new("control character").at(Span {
            file,
            line: 1,
            col: 600_008,
            len: 1,
        });
        let out = d.render(&sources);
        assert!(out.len() < 1_000, "{} bytes", out.len());
        let quoted = out.lines().nth(3).unwrap();
        let caret = out.lines().nth(4).unwrap();
        assert!(
            quoted.starts_with("1 | …xxx") && quoted.ends_with("yyy…"),
            "{quoted}"
        );
        let at = caret.find('^').unwrap();
        let under: String = quoted.chars().skip(at).take(7).collect();
        assert_eq!(under, "\\u{7}yy", "{out}");
        assert_eq!(suggest(&"z".repeat(300_000), ["name", "title"]), None);
    }

    #[test]
    fn renders_caret_under_the_span() {
        let mut sources = SourceMap::default();
        let file = sources.add("p.yaml", "hire:\n  famly_name: Lovelace\n".into());
        let d = Diagnostic::new("unknown key `famly_name` in `hire`")
            .at(Span {
                file,
                line: 2,
                col: 3,
                len: 10,
            })
            .label("unknown key")
            .hint("did you mean `family_name`?");
        assert_eq!(
            d.render(&sources),
            "error: unknown key `famly_name` in `hire`\n\
             \x20--> p.yaml:2:3\n\
             \x20 |\n\
             2 |   famly_name: Lovelace\n\
             \x20 |   ^^^^^^^^^^ unknown key\n\
             \x20 = hint: did you mean `family_name`?\n"
        );
    }

    #[test]
    fn suggests_close_words_only() {
        let keys = ["family_name", "given_name", "title"];
        assert_eq!(suggest("famly_name", keys), Some("family_name"));
        assert_eq!(suggest("titel", keys), Some("title"));
        assert_eq!(suggest("salary", keys), None);
    }
}
