//! Reading a cohort: HR's export as CSV (RFC 4180), or a YAML/JSON list of hires.
//!
//! CSV cells become located YAML-like nodes (line = row, column = the cell's character
//! column), so a bad value is reported as `hires.csv:ROW:COLUMN` with its field name, by the
//! same checks as a hire in a playbook.

use std::path::Path;

use crate::diag::{Diagnostic, Diagnostics, FileId, SourceMap, Span, suggest};
use crate::model::{HIRE_FIELDS, Hire};
use crate::yaml::{self, Node, NodeKind, Recorder, Recover, Spanned, Str};

/// A hire read from the file, and where its row (or list item) starts.
pub struct Row {
    pub hire: Spanned<Hire>,
    pub at: Span,
}

/// Reads every hire it can, and every problem: the caller checks the rows further and reports
/// everything at once.
pub fn read(
    path: &Path,
    columns: &[(String, Spanned<String>)],
    sources: &mut SourceMap,
) -> (Vec<Row>, Diagnostics) {
    match read_inner(path, columns, sources) {
        Ok(rows) => rows,
        Err(diags) => (Vec::new(), diags),
    }
}

fn read_inner(
    path: &Path,
    columns: &[(String, Spanned<String>)],
    sources: &mut SourceMap,
) -> Result<(Vec<Row>, Diagnostics), Diagnostics> {
    let mut diags = Diagnostics::default();
    let bytes = match crate::files::read_regular(path, crate::files::HIRES_LIMIT) {
        Ok(b) => b,
        Err(e) => {
            diags.push(Diagnostic::new(format!("cannot read the hires: {e}")));
            return Err(diags);
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            diags.push(sources.not_utf8(
                path,
                e,
                "export the file as UTF-8 (in a spreadsheet: CSV UTF-8)",
            ));
            return Err(diags);
        }
    };
    let file = sources.add(path, text);
    let text = sources.text(file).to_owned();
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let nodes = if is_csv {
        csv_nodes(file, &text, columns, &mut diags)
    } else {
        list_nodes(file, &text, &mut diags)
    };
    let mut rows = Vec::new();
    for node in nodes {
        let rec = Recorder::default();
        match yaml::from_node::<Recover<Spanned<Hire>>>(&node, &rec) {
            Ok(Recover(Some(hire))) => rows.push(Row {
                hire,
                at: node.span,
            }),
            Ok(Recover(None)) => {}
            Err(e) => diags.push(e.into_diagnostic()),
        }
        for d in rec.into_inner() {
            diags.push(d);
        }
    }
    if rows.is_empty() && diags.is_empty() {
        diags.push(
            Diagnostic::new(format!("{} holds no hires", path.display()))
                .at(Span {
                    file,
                    line: 1,
                    col: 1,
                    len: 1,
                })
                .hint("a CSV needs a heading row and one row per hire"),
        );
    }
    Ok((rows, diags))
}

fn list_nodes(file: FileId, text: &str, diags: &mut Diagnostics) -> Vec<Node> {
    let mut parse = Vec::new();
    let node = yaml::parse(file, text, &mut parse);
    for d in parse {
        diags.push(d);
    }
    match node {
        Some(Node {
            kind: NodeKind::Seq(items),
            ..
        }) => items,
        Some(other) => {
            diags.push(
                Diagnostic::new(format!(
                    "expected a list of hires, found {}",
                    other.describe()
                ))
                .at(other.span)
                .hint("write `- id: E1` … items, or use a .csv file"),
            );
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// One CSV cell with its position.
struct Cell {
    text: String,
    line: u32,
    col: u32,
    /// The text stands as-is in the source (no quotes or doubled quotes), so columns map.
    verbatim: bool,
}

/// The separator of an HR export, read from its heading row: `,` (RFC 4180), or `;` (what
/// Excel writes where the decimal mark is a comma), or a tab, whichever separates the most
/// headings (outside quotes); `,` when none does.
fn separator(text: &str) -> char {
    let heading = text.lines().next().unwrap_or("");
    let mut counts = [(',', 0usize), (';', 0), ('\t', 0)];
    let mut quoted = false;
    for c in heading.chars() {
        match c {
            '"' => quoted = !quoted,
            c if !quoted => {
                if let Some(n) = counts.iter_mut().find(|(s, _)| *s == c) {
                    n.1 += 1;
                }
            }
            _ => {}
        }
    }
    // The first of the most frequent: `,` wins a tie.
    counts
        .iter()
        .fold(
            (',', 0),
            |best, &(s, n)| if n > best.1 { (s, n) } else { best },
        )
        .0
}

/// Parses RFC 4180 CSV into rows of located cells (with `separator` between cells).
fn parse_csv(text: &str) -> Result<Vec<Vec<Cell>>, (u32, u32, String)> {
    let separator = separator(text);
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut row: Vec<Cell> = Vec::new();
    let (mut line, mut col) = (1u32, 1u32);
    let mut chars = text.chars().peekable();
    let new_cell = |line, col| Cell {
        text: String::new(),
        line,
        col,
        verbatim: true,
    };
    let mut cell = new_cell(line, col);
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    col += 2;
                    cell.text.push('"');
                    cell.verbatim = false;
                    continue;
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    col = 0;
                    cell.text.push('\n');
                    cell.verbatim = false;
                }
                c => cell.text.push(c),
            }
            col += 1;
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                cell.col = col + 1;
                at_start = false;
            }
            c if c == separator => {
                row.push(std::mem::replace(&mut cell, new_cell(line, col + 1)));
                at_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::replace(&mut cell, new_cell(line + 1, 1)));
                if !(row.len() == 1 && row[0].text.is_empty()) {
                    rows.push(std::mem::take(&mut row));
                } else {
                    row.clear();
                }
                line += 1;
                col = 0;
                at_start = true;
            }
            c => {
                if at_start {
                    cell.col = col;
                }
                at_start = false;
                cell.text.push(c);
            }
        }
        col += 1;
    }
    if quoted {
        return Err((cell.line, cell.col, "a quoted cell is never closed".into()));
    }
    row.push(cell);
    if !(row.len() == 1 && row[0].text.is_empty()) {
        rows.push(row);
    }
    Ok(rows)
}

/// The hire field each heading names, directly or through `hire_columns`; `None` (and a
/// located error) for a heading that names none.
fn heading_fields(
    file: FileId,
    header: &[Cell],
    columns: &[(String, Spanned<String>)],
    diags: &mut Diagnostics,
) -> Vec<Option<String>> {
    let mut fields: Vec<Option<String>> = Vec::new();
    for h in header {
        // Excel's "CSV UTF-8" starts with a byte-order mark: not part of the first heading.
        let heading = h.text.trim_start_matches('\u{feff}').trim();
        let field = columns
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(heading))
            .map(|(_, f)| f.value.clone())
            .unwrap_or_else(|| heading.to_owned());
        let known = HIRE_FIELDS.contains(&field.as_str())
            || field.strip_prefix("custom.").is_some_and(|c| !c.is_empty());
        if known {
            fields.push(Some(field));
        } else {
            let span = Span {
                file,
                line: h.line,
                col: h.col,
                len: heading.chars().count().max(1) as u32,
            };
            let hint = match suggest(heading, HIRE_FIELDS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? or map it in the playbook's `hire_columns`"),
                None => "name a hire field (see PLAYBOOK.md) or `custom.NAME`, or map the heading in the playbook's `hire_columns`".into(),
            };
            diags.push(
                Diagnostic::new(format!("unknown column `{heading}`"))
                    .at(span)
                    .hint(hint),
            );
            fields.push(None);
        }
    }
    fields
}

fn csv_nodes(
    file: FileId,
    text: &str,
    columns: &[(String, Spanned<String>)],
    diags: &mut Diagnostics,
) -> Vec<Node> {
    let rows = match parse_csv(text) {
        Ok(rows) => rows,
        Err((line, col, problem)) => {
            diags.push(Diagnostic::new(format!("invalid CSV: {problem}")).at(Span {
                file,
                line,
                col,
                len: 1,
            }));
            return Vec::new();
        }
    };
    let Some((header, body)) = rows.split_first() else {
        return Vec::new();
    };
    let fields = heading_fields(file, header, columns, diags);
    let mut nodes = Vec::new();
    for row in body {
        let start = Span {
            file,
            line: row[0].line,
            col: 1,
            len: 1,
        };
        if row.len() != header.len() {
            diags.push(
                Diagnostic::new(format!(
                    "row has {} cells, the heading has {}",
                    row.len(),
                    header.len()
                ))
                .at(start)
                .hint("check for an unquoted comma in a value"),
            );
            continue;
        }
        let mut entries = Vec::new();
        let mut custom = Vec::new();
        for (cell, field) in row.iter().zip(&fields) {
            let Some(field) = field else { continue };
            if cell.text.trim().is_empty() {
                continue;
            }
            let span = Span {
                file,
                line: cell.line,
                col: cell.col,
                len: cell.text.chars().count().max(1) as u32,
            };
            let value = Node {
                kind: NodeKind::Str(Str {
                    value: cell.text.clone(),
                    verbatim: cell.verbatim,
                }),
                span,
            };
            let key = |name: &str| Node {
                kind: NodeKind::Str(Str {
                    value: name.to_owned(),
                    verbatim: false,
                }),
                span,
            };
            match field.strip_prefix("custom.") {
                Some(name) => custom.push((key(name), value)),
                None => entries.push((key(field), value)),
            }
        }
        if !custom.is_empty() {
            entries.push((
                Node {
                    kind: NodeKind::Str(Str {
                        value: "custom".into(),
                        verbatim: false,
                    }),
                    span: start,
                },
                Node {
                    kind: NodeKind::Map(custom),
                    span: start,
                },
            ));
        }
        nodes.push(Node {
            kind: NodeKind::Map(entries),
            span: start,
        });
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_know_where_they_are() {
        let rows = parse_csv("id,given_name\r\nE1,\"O'Brien, \"\"Jr\"\"\"\nE2,Zoë\n").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][1].text, "O'Brien, \"Jr\"");
        assert!(!rows[1][1].verbatim);
        assert_eq!((rows[2][1].line, rows[2][1].col), (3, 4));
        assert_eq!(rows[2][1].text, "Zoë");
        assert!(parse_csv("id\n\"open").is_err());
    }

    /// Excel in much of Europe writes `;` between cells (and a BOM); each row was one cell.
    #[test]
    fn a_semicolon_separated_export_is_read_as_such() {
        let rows = parse_csv("\u{feff}id;given_name;title\r\nE1;\"Müller; Jr\";a,b\r\n").unwrap();
        assert_eq!(rows[0].len(), 3);
        assert_eq!(rows[1][1].text, "Müller; Jr");
        assert_eq!(rows[1][2].text, "a,b");
        assert_eq!((rows[1][2].line, rows[1][2].col), (2, 17));
        // A comma file whose cells hold semicolons stays a comma file.
        let rows = parse_csv("id,title\nE1,a;b;c\n").unwrap();
        assert_eq!(rows[1][1].text, "a;b;c");
        let rows = parse_csv("id\tgiven_name\nE1\tAda\n").unwrap();
        assert_eq!(rows[1][1].text, "Ada");
    }
}
