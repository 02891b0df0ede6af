//! YAML with locations, and typed deserialization that reports every problem it can.
//!
//! serde-saphyr parses the text (strict booleans, budgets against alias bombs) into a [`Node`]
//! tree where every node knows its [`Span`]. Duplicate keys are kept long enough to be reported
//! with both locations, then dropped. [`from_node`] deserializes a typed value from a node with
//! serde, and differs from a plain serde deserializer in three ways:
//!
//! - unknown keys are recorded as diagnostics (with a "did you mean") and skipped, not fatal;
//! - [`Spanned<T>`] captures the location of any value;
//! - [`Recover<T>`] turns a failure inside it into a recorded diagnostic and `None`, so one bad
//!   step does not hide the problems of the next one.

mod de;
mod types;

use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::diag::{Diagnostic, FileId, Span};

pub use de::{Error, Recorder, from_node};
pub use types::{OneOrMany, OrderedMap, Recover, Spanned};

/// A YAML value with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    /// Integers and floats keep their source text: `1.10` is a fine version string.
    Number(String),
    Str(Str),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A string scalar. `verbatim` means the value stands in the source exactly as it is, on one
/// line, starting at the span's column (no escapes, no folding), so positions inside it (e.g.
/// of a template error) map to source columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Str {
    pub value: String,
    pub verbatim: bool,
}

impl Node {
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Number(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(&s.value),
            _ => None,
        }
    }

    /// The value of `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parses one YAML document. Duplicate keys are reported in `diags` and the later one dropped;
/// a syntax error is returned as the only diagnostic.
pub fn parse(file: FileId, text: &str, diags: &mut Vec<Diagnostic>) -> Option<Node> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        legacy_octal_numbers: false,
    };
    match serde_saphyr::from_str_with_options::<Option<serde_saphyr::Spanned<Raw>>>(text, options) {
        Ok(None) => Some(Node {
            kind: NodeKind::Null,
            span: Span {
                file,
                line: 1,
                col: 1,
                len: 0,
            },
        }),
        Ok(Some(raw)) => Some(convert(file, text, raw, diags)),
        Err(err) => {
            let span = err.location().map(|l| location_span(file, &l, 1));
            diags.push(
                Diagnostic::new(format!("invalid YAML: {}", syntax_message(&err)))
                    .at_opt(span)
                    .hint("check the indentation and quoting near this position"),
            );
            None
        }
    }
}

/// serde-saphyr's message without its own snippet and position (we print ours).
fn syntax_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("").trim();
    let first = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    first.trim_end_matches(':').to_string()
}

fn location_span(file: FileId, loc: &serde_saphyr::Location, len: u32) -> Span {
    Span {
        file,
        line: loc.line().max(1) as u32,
        col: loc.column().max(1) as u32,
        len,
    }
}

/// What serde-saphyr hands us, before spans become ours.
enum Raw {
    Null,
    Bool(bool),
    Number,
    Str(String),
    Seq(Vec<serde_saphyr::Spanned<Raw>>),
    Map(Vec<(serde_saphyr::Spanned<Raw>, serde_saphyr::Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Raw, E> {
                Ok(Raw::Number)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Raw, E> {
                Ok(Raw::Number)
            }
            fn visit_i128<E>(self, _: i128) -> Result<Raw, E> {
                Ok(Raw::Number)
            }
            fn visit_u128<E>(self, _: u128) -> Result<Raw, E> {
                Ok(Raw::Number)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
                Ok(Raw::Number)
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Raw::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Raw::Map(entries))
            }
        }
        d.deserialize_any(RawVisitor)
    }
}

fn convert(
    file: FileId,
    text: &str,
    raw: serde_saphyr::Spanned<Raw>,
    diags: &mut Vec<Diagnostic>,
) -> Node {
    let loc = raw.referenced;
    let source = loc.span().byte_offset().and_then(|start| {
        let len = loc.span().byte_len()?;
        text.get(start as usize..(start + len) as usize)
    });
    let mut span = location_span(file, &loc, loc.span().len().max(1) as u32);
    let kind = match raw.value {
        Raw::Null => NodeKind::Null,
        Raw::Bool(b) => NodeKind::Bool(b),
        Raw::Number => NodeKind::Number(source.unwrap_or("").trim().to_owned()),
        Raw::Str(value) => {
            let (verbatim, offset) = verbatim_offset(source, &value);
            if verbatim {
                span = span.shifted(offset, value.chars().count() as u32);
            }
            NodeKind::Str(Str { value, verbatim })
        }
        Raw::Seq(items) => NodeKind::Seq(
            items
                .into_iter()
                .map(|i| convert(file, text, i, diags))
                .collect(),
        ),
        Raw::Map(raw_entries) => {
            let mut entries: Vec<(Node, Node)> = Vec::with_capacity(raw_entries.len());
            // Scalar keys (nearly all) are found by hash: a mapping of many keys stays linear.
            let mut scalars: std::collections::HashMap<(u8, String), usize> =
                std::collections::HashMap::new();
            for (k, v) in raw_entries {
                let key = convert(file, text, k, diags);
                let value = convert(file, text, v, diags);
                let first = match scalar_key(&key.kind) {
                    Some(s) => match scalars.entry(s) {
                        std::collections::hash_map::Entry::Occupied(o) => {
                            Some(&entries[*o.get()].0)
                        }
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(entries.len());
                            None
                        }
                    },
                    None => entries
                        .iter()
                        .find(|(e, _)| e.kind == key.kind)
                        .map(|(e, _)| e),
                };
                if let Some(first) = first {
                    let name = key.as_str().unwrap_or("?");
                    diags.push(
                        Diagnostic::new(format!("duplicate key `{name}`"))
                            .at(key.span)
                            .label("duplicate key")
                            .note(first.span, "first defined")
                            .hint("keys must be unique within a mapping; remove or rename one"),
                    );
                    continue;
                }
                entries.push((key, value));
            }
            NodeKind::Map(entries)
        }
    };
    Node { kind, span }
}

/// A scalar key as something to hash (the kind, and its text).
fn scalar_key(kind: &NodeKind) -> Option<(u8, String)> {
    match kind {
        NodeKind::Null => Some((0, String::new())),
        NodeKind::Bool(b) => Some((1, b.to_string())),
        NodeKind::Number(n) => Some((2, n.clone())),
        NodeKind::Str(s) => Some((3, s.value.clone())),
        NodeKind::Seq(_) | NodeKind::Map(_) => None,
    }
}

/// Whether `value` appears as-is in `source` (plain or simply quoted, one line), and at which
/// character offset.
fn verbatim_offset(source: Option<&str>, value: &str) -> (bool, u32) {
    let Some(source) = source else {
        return (false, 0);
    };
    if value.contains('\n') {
        return (false, 0);
    }
    if source == value {
        return (true, 0);
    }
    for q in ['"', '\''] {
        if let Some(inner) = source
            .strip_prefix(q)
            .and_then(|s| s.strip_suffix(q))
            .filter(|inner| *inner == value)
        {
            let _ = inner;
            return (true, 1);
        }
    }
    // The span may cover only the opening quote's position; accept a prefix match.
    for q in ['"', '\''] {
        if let Some(rest) = source.strip_prefix(q)
            && rest.starts_with(value)
        {
            return (true, 1);
        }
    }
    (false, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> (Node, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let n = parse(FileId(0), text, &mut diags).expect("parses");
        (n, diags)
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Person {
        name: Spanned<String>,
        #[serde(default)]
        tags: Vec<String>,
        age: Option<u32>,
    }

    #[test]
    fn spans_point_at_string_content() {
        let (n, diags) = node("name: 'Ada'\ntags: [a, b]\n");
        assert!(diags.is_empty());
        let rec = Recorder::default();
        let p: Person = from_node(&n, &rec).unwrap();
        assert_eq!(p.name.value, "Ada");
        assert_eq!(
            (p.name.span.line, p.name.span.col, p.name.span.len),
            (1, 8, 3)
        );
        assert!(p.name.verbatim);
        assert_eq!(p.tags, ["a", "b"]);
    }

    #[test]
    fn numbers_keep_their_text_as_strings() {
        let (n, _) = node("name: 1.10\n");
        let p: Person = from_node(&n, &Recorder::default()).unwrap();
        assert_eq!(p.name.value, "1.10");
    }

    #[test]
    fn unknown_keys_are_recorded_not_fatal() {
        let (n, _) = node("name: Ada\nnmae: x\nage: 3\n");
        let rec = Recorder::default();
        let p: Person = from_node(&n, &rec).unwrap();
        assert_eq!(p.age, Some(3));
        let diags = rec.into_inner();
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].message, "unknown key `nmae` in `person`");
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `name`?"));
        assert_eq!(diags[0].span.unwrap().line, 2);
    }

    #[test]
    fn duplicate_keys_name_both_places() {
        let (_, diags) = node("name: Ada\nage: 3\nname: Bob\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].message, "duplicate key `name`");
        assert_eq!(diags[0].span.unwrap().line, 3);
        assert_eq!(diags[0].notes[0].0.line, 1);
    }

    #[test]
    fn strict_booleans_and_null_strings_are_explained() {
        let (n, _) = node("name: ~\n");
        let err = from_node::<Person>(&n, &Recorder::default()).unwrap_err();
        assert_eq!(err.message, "`name`: expected a string, found null");
        assert_eq!(
            err.hint.as_deref(),
            Some("if you mean the text, put it in quotes")
        );
        let (n, _) = node("name: yes\n");
        let p: Person = from_node(&n, &Recorder::default()).unwrap();
        assert_eq!(p.name.value, "yes");
    }

    #[test]
    fn recover_records_and_continues() {
        let (n, _) = node("- name: Ada\n- name: [x]\n- nme: Bob\n");
        let rec = Recorder::default();
        let people: Vec<Recover<Person>> = from_node(&n, &rec).unwrap();
        assert!(people[0].0.is_some());
        assert!(people[1].0.is_none());
        assert!(people[2].0.is_none());
        let diags = rec.into_inner();
        let messages: Vec<_> = diags.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "`name`: expected a string, found a list",
                "unknown key `nme` in `person`",
                "missing key `name`"
            ]
        );
        assert_eq!(diags[2].span.unwrap().line, 3);
    }

    #[test]
    fn syntax_errors_are_located() {
        let mut diags = Vec::new();
        assert!(parse(FileId(0), "a: [1, 2\nb: c\n", &mut diags).is_none());
        assert_eq!(diags.len(), 1);
        assert!(
            diags[0].message.starts_with("invalid YAML"),
            "{:?}",
            diags[0]
        );
        assert!(diags[0].span.is_some());
    }
}
