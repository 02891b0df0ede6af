//! Typed deserialization from nodes: every unknown key and every failure inside a
//! [`super::Recover`] recorded, values located with [`super::Spanned`].

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::types::{ONE_OR_MANY, RECOVER, SPANNED};
use super::{Node, NodeKind};
use crate::diag::{Diagnostic, Span, suggest};

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
