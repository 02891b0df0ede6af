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

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::diag::{Diagnostic, FileId, Span, suggest};

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

// ---------------------------------------------------------------------------------------------
// Typed deserialization from nodes.

/// A deserialization failure, located where possible.
#[derive(Debug, Clone)]
pub struct Error {
    pub message: String,
    pub span: Option<Span>,
    pub hint: Option<String>,
    /// Whether the message already names the key it is about.
    keyed: bool,
}

impl Error {
    fn at(message: impl Into<String>, span: Span) -> Self {
        Error {
            message: message.into(),
            span: Some(span),
            hint: None,
            keyed: false,
        }
    }

    /// Names the key whose value this error is about: "`base`: expected a string, …".
    fn for_key(mut self, key: &Node) -> Self {
        if !self.keyed
            && let Some(name) = key.as_str()
        {
            self.message = format!("`{name}`: {}", self.message);
            self.keyed = true;
        }
        self
    }

    fn or_at(mut self, span: Span) -> Self {
        self.span.get_or_insert(span);
        self
    }

    pub fn into_diagnostic(self) -> Diagnostic {
        let mut d = Diagnostic::new(self.message).at_opt(self.span);
        d.hint = self.hint;
        d
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            span: None,
            hint: None,
            keyed: false,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            message: format!("missing key `{field}`"),
            span: None,
            hint: Some(format!("add `{field}:` here")),
            keyed: true,
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error {
            message: format!("unknown value `{variant}`"),
            span: None,
            hint: Some(one_of_hint(variant, expected)),
            keyed: false,
        }
    }
}

fn one_of_hint(word: &str, expected: &[&str]) -> String {
    match suggest(word, expected.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!(
            "expected one of: {}",
            expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Where [`from_node`] records the problems it recovers from.
#[derive(Default)]
pub struct Recorder {
    diags: RefCell<Vec<Diagnostic>>,
}

impl Recorder {
    pub fn push(&self, d: Diagnostic) {
        self.diags.borrow_mut().push(d);
    }

    pub fn into_inner(self) -> Vec<Diagnostic> {
        self.diags.into_inner()
    }
}

/// Deserializes `T` from `node`. Recoverable problems go to `rec`; the fatal one is returned.
pub fn from_node<'a, T: Deserialize<'a>>(node: &'a Node, rec: &'a Recorder) -> Result<T, Error> {
    T::deserialize(NodeDe {
        node,
        rec,
        context: "",
    })
}

const SPANNED: &str = "$onboard::Spanned";
const RECOVER: &str = "$onboard::Recover";
const ONE_OR_MANY: &str = "$onboard::OneOrMany";

/// Wrappers that only carry parsing information have the schema of what they wrap.
macro_rules! schema_as_inner {
    ($wrapper:ident) => {
        impl<T: schemars::JsonSchema> schemars::JsonSchema for $wrapper<T> {
            fn inline_schema() -> bool {
                T::inline_schema()
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                T::schema_name()
            }
            fn schema_id() -> std::borrow::Cow<'static, str> {
                T::schema_id()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                T::json_schema(generator)
            }
        }
    };
}

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
    /// For strings: see [`Str::verbatim`].
    pub verbatim: bool,
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a located value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Spanned<T>, A::Error> {
                let missing = || de::Error::custom("internal: span");
                let [file, line, col, len, verbatim]: [u32; 5] =
                    seq.next_element()?.ok_or_else(missing)?;
                let value = seq.next_element()?.ok_or_else(missing)?;
                Ok(Spanned {
                    value,
                    span: Span {
                        file: FileId(file),
                        line,
                        col,
                        len,
                    },
                    verbatim: verbatim == 1,
                })
            }
        }
        d.deserialize_tuple_struct(SPANNED, 2, V(std::marker::PhantomData))
    }
}

schema_as_inner!(Spanned);

/// `Some(T)`, or `None` when `T` failed to deserialize; the failure is recorded instead of
/// aborting the enclosing value.
#[derive(Clone, Debug)]
pub struct Recover<T>(pub Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Recover<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Recover<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Recover<T>, A::Error> {
                // The node deserializer recorded the failure before it reached us.
                Ok(Recover(seq.next_element::<T>().ok().flatten()))
            }
        }
        d.deserialize_tuple_struct(RECOVER, 1, V(std::marker::PhantomData))
    }
}

schema_as_inner!(Recover);

/// One value or a list of them: `cc: boss@example.org` or `cc: [a@x, b@x]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }
        d.deserialize_tuple_struct(ONE_OR_MANY, 1, V(std::marker::PhantomData))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for OneOrMany<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = generator.subschema_for::<T>();
        schemars::json_schema!({
            "anyOf": [one, { "type": "array", "items": one }],
        })
    }
}

/// A mapping whose key order is kept (vars are rendered in the order written).
#[derive(Clone, Debug)]
pub struct OrderedMap<K, V>(pub Vec<(K, V)>);

impl<K, V> Default for OrderedMap<K, V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Vis<K, V> {
            type Value = OrderedMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = map.next_key()? {
                    entries.push((k, map.next_value()?));
                }
                Ok(OrderedMap(entries))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

impl<K, V: schemars::JsonSchema> schemars::JsonSchema for OrderedMap<K, V> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "additionalProperties": generator.subschema_for::<V>(),
        })
    }
}

#[derive(Clone, Copy)]
struct NodeDe<'a> {
    node: &'a Node,
    rec: &'a Recorder,
    /// Name of the enclosing struct, for messages about unknown keys.
    context: &'static str,
}

impl<'a> NodeDe<'a> {
    fn child(self, node: &'a Node) -> Self {
        NodeDe { node, ..self }
    }

    fn mismatch(&self, expected: &str) -> Error {
        let found = self.node.describe();
        let mut e = Error::at(
            format!("expected {expected}, found {found}"),
            self.node.span,
        );
        e.hint = match (&self.node.kind, expected) {
            (NodeKind::Null | NodeKind::Bool(_), e) if e.contains("string") => {
                Some("if you mean the text, put it in quotes".into())
            }
            (NodeKind::Str(s), "`true` or `false`") => Some(format!(
                "write `true` or `false`; `{}` is text here (YAML 1.1 words are not booleans)",
                s.value
            )),
            (NodeKind::Str(s), "a list") => Some(format!("write a list: `[{}]`", s.value)),
            (_, "a mapping") => Some("write `key: value` pairs, indented under the key".into()),
            _ => None,
        };
        e
    }

    fn text(&self) -> Option<&'a str> {
        match &self.node.kind {
            NodeKind::Str(s) => Some(&s.value),
            NodeKind::Number(n) => Some(n),
            _ => None,
        }
    }

    fn number<T: std::str::FromStr>(&self, what: &str) -> Result<T, Error> {
        match &self.node.kind {
            NodeKind::Number(n) => n
                .replace('_', "")
                .parse()
                .map_err(|_| Error::at(format!("`{n}` is not a valid {what}"), self.node.span)),
            _ => Err(self.mismatch(what)),
        }
    }
}

macro_rules! de_number {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            let n: $ty = self.number($what)?;
            visitor.$visit::<Error>(n).map_err(|e: Error| e.or_at(self.node.span))
        }
    )*};
}

impl<'a> Deserializer<'a> for NodeDe<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let span = self.node.span;
        match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Number(n) => {
                if let Ok(i) = n.parse::<i64>() {
                    visitor.visit_i64(i)
                } else if let Ok(f) = n.parse::<f64>() {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_str(n)
                }
            }
            NodeKind::Str(s) => visitor.visit_str(&s.value),
            NodeKind::Seq(_) => self.deserialize_seq(visitor),
            NodeKind::Map(_) => self.deserialize_map(visitor),
        }
        .map_err(|e: Error| e.or_at(span))
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            _ => Err(self.mismatch("`true` or `false`")),
        }
    }

    de_number! {
        deserialize_i8 visit_i8 i8, "integer";
        deserialize_i16 visit_i16 i16, "integer";
        deserialize_i32 visit_i32 i32, "integer";
        deserialize_i64 visit_i64 i64, "integer";
        deserialize_u8 visit_u8 u8, "non-negative integer";
        deserialize_u16 visit_u16 u16, "non-negative integer";
        deserialize_u32 visit_u32 u32, "non-negative integer";
        deserialize_u64 visit_u64 u64, "non-negative integer";
        deserialize_f32 visit_f32 f32, "number";
        deserialize_f64 visit_f64 f64, "number";
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.text() {
            Some(t) => visitor
                .visit_str(t)
                .map_err(|e: Error| e.or_at(self.node.span)),
            None => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, _: V) -> Result<V::Value, Error> {
        Err(self.mismatch("bytes (unsupported)"))
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(v)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            _ => Err(self.mismatch("null")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Seq(items) => visitor
                .visit_seq(Items {
                    de: self,
                    iter: items.iter(),
                })
                .map_err(|e: Error| e.or_at(self.node.span)),
            _ => Err(self.mismatch("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match name {
            SPANNED => {
                let s = self.node.span;
                let verbatim = matches!(&self.node.kind, NodeKind::Str(s) if s.verbatim);
                visitor.visit_seq(SpannedAccess {
                    header: Some([s.file.0, s.line, s.col, s.len, u32::from(verbatim)]),
                    value: Some(self),
                })
            }
            RECOVER => visitor.visit_seq(RecoverAccess { de: Some(self) }),
            ONE_OR_MANY if !matches!(self.node.kind, NodeKind::Seq(_)) => visitor
                .visit_seq(Items {
                    de: self,
                    iter: std::slice::from_ref(self.node).iter(),
                })
                .map_err(|e: Error| e.or_at(self.node.span)),
            _ => self.deserialize_tuple(len, visitor),
        }
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Map(entries) => visitor
                .visit_map(Entries {
                    de: self,
                    iter: entries.iter(),
                    value: None,
                    known: None,
                })
                .map_err(|e: Error| e.or_at(self.node.span)),
            _ => Err(self.mismatch("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let NodeKind::Map(entries) = &self.node.kind else {
            // An empty value (`hire:` with nothing after it) reads as an empty mapping.
            if matches!(self.node.kind, NodeKind::Null) {
                return visitor
                    .visit_map(Entries {
                        de: self,
                        iter: [].iter(),
                        value: None,
                        known: Some(fields),
                    })
                    .map_err(|e: Error| e.or_at(self.node.span));
            }
            return Err(self.mismatch("a mapping"));
        };
        let de = NodeDe {
            context: name,
            ..self
        };
        visitor
            .visit_map(Entries {
                de,
                iter: entries.iter(),
                value: None,
                known: Some(fields),
            })
            .map_err(|e: Error| e.or_at(self.node.span))
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Str(s) => {
                let v: de::value::StrDeserializer<'_, Error> = s.value.as_str().into_deserializer();
                visitor
                    .visit_enum(v)
                    .map_err(|e: Error| e.or_at(self.node.span))
            }
            _ => Err(self.mismatch(&format!(
                "one of {}",
                variants
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Items<'a> {
    de: NodeDe<'a>,
    iter: std::slice::Iter<'a, Node>,
}

impl<'a> SeqAccess<'a> for Items<'a> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.iter.next() {
            Some(node) => seed.deserialize(self.de.child(node)).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Entries<'a> {
    de: NodeDe<'a>,
    iter: std::slice::Iter<'a, (Node, Node)>,
    value: Option<(&'a Node, &'a Node)>,
    known: Option<&'static [&'static str]>,
}

impl<'a> MapAccess<'a> for Entries<'a> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for (key, value) in self.iter.by_ref() {
            if let (Some(known), Some(name)) = (self.known, key.as_str())
                && !known.contains(&name)
            {
                let hint = one_of_hint(name, known);
                let within = match self.de.context {
                    "" => String::new(),
                    c => format!(" in {}", describe_struct(c)),
                };
                self.de.rec.push(
                    Diagnostic::new(format!("unknown key `{name}`{within}"))
                        .at(key.span)
                        .label("unknown key")
                        .hint(hint),
                );
                continue;
            }
            self.value = Some((key, value));
            return seed.deserialize(self.de.child(key)).map(Some);
        }
        Ok(None)
    }
    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (key, value) = self.value.take().expect("next_value after next_key");
        seed.deserialize(self.de.child(value))
            .map_err(|e| e.or_at(value.span).for_key(key))
    }
}

/// Struct names as users know them.
fn describe_struct(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    format!("`{out}`")
}

struct SpannedAccess<'a> {
    header: Option<[u32; 5]>,
    value: Option<NodeDe<'a>>,
}

impl<'a> SeqAccess<'a> for SpannedAccess<'a> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if let Some(header) = self.header.take() {
            let items: Vec<u32> = header.to_vec();
            return seed
                .deserialize(de::value::SeqDeserializer::new(items.into_iter()))
                .map(Some);
        }
        match self.value.take() {
            Some(de) => seed.deserialize(de).map(Some),
            None => Ok(None),
        }
    }
}

struct RecoverAccess<'a> {
    de: Option<NodeDe<'a>>,
}

impl<'a> SeqAccess<'a> for RecoverAccess<'a> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(de) = self.de.take() else {
            return Ok(None);
        };
        seed.deserialize(de).map(Some).inspect_err(|e| {
            de.rec.push(e.clone().or_at(de.node.span).into_diagnostic());
        })
    }
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
