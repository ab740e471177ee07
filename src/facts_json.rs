//! Facts from JSON: an object of fact name to value, or an array of such
//! objects (one per recipient). Checked against the policy's fact table:
//! unknown names and wrong types are errors that name the fact and the place.
//!
//! The document is read in one streaming pass (serde seeds, one per fact):
//! each value is checked against its fact's type as it is read, so nothing
//! is built but the facts themselves, and a value of the wrong shape is
//! refused at its first token (an array where a bool belongs is not read
//! any further). Sizes are bounded by [`Limits`]: the document
//! ([`Limits::max_facts_bytes`], checked first), one value
//! ([`Limits::max_fact_value_bytes`]) and the objects of a per-recipient
//! array ([`Limits::max_facts_objects`]); memory stays within a small
//! multiple of the document.

use crate::diagnostics::{did_you_mean, list_values, shorten_to};
use crate::facts::{FactId, FactTable, FactType, FactValue, Facts};
use crate::limits::Limits;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::net::IpAddr;

/// Facts given as JSON: one object, or an array of objects (one per recipient).
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // built once per message, never stored in bulk
pub enum FactsInput {
    /// A single facts object.
    One(Facts),
    /// One facts object per recipient of one message (never empty).
    PerRecipient(Vec<Facts>),
}

/// What is wrong with a facts document or a `name=value` fact.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FactsError {
    /// Not valid JSON, or nested too deeply.
    #[error("{line}:{column}: invalid JSON: {message}")]
    Json {
        /// What serde_json said.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A name that is neither built in nor declared with `fact`.
    #[error("{line}:{column}: unknown fact `{name}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownFact {
        /// The name given (cut to 100 characters, with `…`).
        name: String,
        /// The closest known fact.
        suggestion: Option<String>,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A value of the wrong type or out of the fact's range.
    #[error("{line}:{column}: fact `{name}` expects {expected}, found {found}")]
    InvalidValue {
        /// The fact.
        name: String,
        /// What the fact takes.
        expected: String,
        /// What was given (a long string is cut, with `…`).
        found: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The same fact twice in one object.
    #[error("{line}:{column}: fact `{name}` is given twice")]
    Duplicate {
        /// The fact.
        name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The document is neither an object nor a non-empty array of objects.
    #[error("{line}:{column}: {message}")]
    Shape {
        /// What is wrong.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Over one of the facts limits of [`Limits`] (the document's size, one
    /// value's size, the objects of a per-recipient array).
    #[error("{line}:{column}: {message}")]
    Limit {
        /// Which limit, and by how much.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
}

impl FactsError {
    /// The 1-based line of the problem.
    pub fn line(&self) -> usize {
        match self {
            FactsError::Json { line, .. }
            | FactsError::UnknownFact { line, .. }
            | FactsError::InvalidValue { line, .. }
            | FactsError::Duplicate { line, .. }
            | FactsError::Shape { line, .. }
            | FactsError::Limit { line, .. } => *line,
        }
    }

    /// The 1-based column (in characters) of the problem.
    pub fn column(&self) -> usize {
        match self {
            FactsError::Json { column, .. }
            | FactsError::UnknownFact { column, .. }
            | FactsError::InvalidValue { column, .. }
            | FactsError::Duplicate { column, .. }
            | FactsError::Shape { column, .. }
            | FactsError::Limit { column, .. } => *column,
        }
    }
}

/// Longest name or string quoted in an error, in characters.
const QUOTED_CHARS: usize = 100;

/// The structured problem found inside a value, before serde adds the position.
#[derive(Debug, Clone)]
enum Problem {
    /// The name (cut), the hint, and the name's length in characters.
    Unknown(String, Option<String>, usize),
    Invalid {
        name: String,
        expected: String,
        found: String,
    },
    Duplicate(String),
    Shape(String),
    Limit(String),
}

impl Problem {
    fn at(self, line: usize, column: usize) -> FactsError {
        // serde reports the position after a key's closing quote: point at its opening quote.
        let key_start = |chars: usize| column.saturating_sub(chars + 1).max(1);
        match self {
            Problem::Unknown(name, suggestion, chars) => FactsError::UnknownFact {
                name,
                suggestion,
                line,
                column: key_start(chars),
            },
            Problem::Invalid {
                name,
                expected,
                found,
            } => FactsError::InvalidValue {
                name,
                expected,
                found,
                line,
                column,
            },
            Problem::Duplicate(name) => {
                let column = key_start(name.chars().count());
                FactsError::Duplicate { name, line, column }
            }
            Problem::Shape(message) => FactsError::Shape {
                message,
                line,
                column,
            },
            Problem::Limit(message) => FactsError::Limit {
                message,
                line,
                column,
            },
        }
    }
}

struct Ctx<'t> {
    table: &'t FactTable,
    limits: &'t Limits,
    problem: RefCell<Option<Problem>>,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(&self, p: Problem) -> E {
        let msg = match &p {
            Problem::Unknown(name, ..) => format!("unknown fact `{name}`"),
            Problem::Invalid { name, .. } => format!("invalid value for `{name}`"),
            Problem::Duplicate(name) => format!("fact `{name}` given twice"),
            Problem::Shape(m) | Problem::Limit(m) => m.clone(),
        };
        *self.problem.borrow_mut() = Some(p);
        E::custom(msg)
    }

    /// A string value of `bytes` bytes for fact `name`, checked against
    /// [`Limits::max_fact_value_bytes`].
    fn check_value_len<E: de::Error>(&self, name: &str, bytes: usize) -> Result<(), E> {
        let max = self.limits.max_fact_value_bytes;
        if bytes > max {
            return Err(self.fail(Problem::Limit(format!(
                "the value of fact `{name}` is {bytes} bytes or more, more than the limit of {max} bytes"
            ))));
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of byte `at` of `text`.
fn position(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = text.get(..at).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = 1 + before.bytes().filter(|&b| b == b'\n').count();
    let column = 1 + before.get(line_start..).unwrap_or("").chars().count();
    (line, column)
}

/// The byte offset of 1-based `line` and byte `column` of `text`.
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    start.saturating_add(column - 1).min(text.len())
}

/// Where the JSON scalar whose last byte is at `end` starts: its opening
/// quote for a string (`end` at its closing one), else the first of the
/// run of number/literal characters.
fn value_start(text: &str, end: usize) -> usize {
    let bytes = text.as_bytes();
    match bytes.get(end) {
        Some(b'"') => {
            let mut i = end;
            while i > 0 {
                i -= 1;
                if bytes.get(i) == Some(&b'"') {
                    // An escaped quote has an odd run of backslashes before it.
                    let slashes = bytes
                        .get(..i)
                        .unwrap_or_default()
                        .iter()
                        .rev()
                        .take_while(|&&b| b == b'\\')
                        .count();
                    if slashes % 2 == 0 {
                        return i;
                    }
                }
            }
            end
        }
        Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-') => {
            let mut i = end;
            while i > 0
                && bytes
                    .get(i - 1)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
            {
                i -= 1;
            }
            i
        }
        _ => end,
    }
}

/// Parses a facts document against a policy's fact table, within `limits`.
pub(crate) fn parse(
    table: &FactTable,
    limits: &Limits,
    json: &str,
) -> Result<FactsInput, FactsError> {
    if json.len() > limits.max_facts_bytes {
        let (line, column) = position(json, limits.max_facts_bytes);
        return Err(FactsError::Limit {
            message: format!(
                "facts are {} bytes, more than the limit of {} bytes",
                json.len(),
                limits.max_facts_bytes
            ),
            line,
            column,
        });
    }
    let ctx = Ctx {
        table,
        limits,
        problem: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_str(json);
    let result = DocSeed(&ctx)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    result.map_err(|e| {
        // serde_json reports the byte column of the last byte it read
        // (column 0 at the start of a line); positions here are 1-based
        // and in characters, and a bad value is pointed at where it starts.
        let at = byte_offset(json, e.line().max(1), e.column().max(1));
        let problem = ctx.problem.borrow_mut().take();
        let at = match &problem {
            Some(Problem::Invalid { .. }) => value_start(json, at),
            _ => at,
        };
        let (line, column) = position(json, at);
        match problem {
            Some(p) => p.at(line, column),
            None => FactsError::Json {
                message: strip_position(&e.to_string()),
                line,
                column,
            },
        }
    })
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

struct DocSeed<'c, 't>(&'c Ctx<'t>);

impl<'de> DeserializeSeed<'de> for DocSeed<'_, '_> {
    type Value = FactsInput;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<FactsInput, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_, '_> {
    type Value = FactsInput;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of facts, or an array of them")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FactsInput, A::Error> {
        ObjectSeed(self.0).visit_map(map).map(FactsInput::One)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FactsInput, A::Error> {
        let max = self.0.limits.max_facts_objects;
        let mut all = Vec::new();
        while let Some(f) = seq.next_element_seed(ObjectSeed(self.0))? {
            if all.len() == max {
                return Err(self.0.fail(Problem::Limit(format!(
                    "more than {max} facts objects (one per recipient), the limit"
                ))));
            }
            all.push(f);
        }
        if all.is_empty() {
            return Err(self.0.fail(Problem::Shape(
                "a facts array needs at least one object (one per recipient)".into(),
            )));
        }
        Ok(FactsInput::PerRecipient(all))
    }
}

struct ObjectSeed<'c, 't>(&'c Ctx<'t>);

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_> {
    type Value = Facts;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Facts, D::Error> {
        d.deserialize_any(self)
    }
}

impl ObjectSeed<'_, '_> {
    fn shape<E: de::Error>(&self, found: &str) -> E {
        self.0.fail(Problem::Shape(format!(
            "expected an object of facts, found {found}"
        )))
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, '_> {
    type Value = Facts;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of facts")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Facts, A::Error> {
        let mut facts = Facts::new();
        let mut seen: Vec<FactId> = Vec::new();
        while let Some(id) = map.next_key_seed(KeySeed(self.0))? {
            let info = self.0.table.get(id);
            if seen.contains(&id) {
                return Err(self.0.fail(Problem::Duplicate(info.name.clone())));
            }
            seen.push(id);
            let seed = ValueSeed {
                ctx: self.0,
                id,
                name: &info.name,
                ty: &info.ty,
            };
            // `null`: unknown.
            if let Some(v) = map.next_value_seed(seed)? {
                facts.set(&info.name, v);
            }
        }
        Ok(facts)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Facts, A::Error> {
        Err(self.shape("an array"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Facts, E> {
        Err(self.shape("a string"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Facts, E> {
        Err(self.shape("a bool"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Facts, E> {
        Err(self.shape("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Facts, E> {
        Err(self.shape("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Facts, E> {
        Err(self.shape("a number"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Facts, E> {
        Err(self.shape("null"))
    }
}

/// A key: looked up as it is read (a key is never copied: a megabyte-long
/// unknown name costs nothing but the error).
struct KeySeed<'c, 't>(&'c Ctx<'t>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = FactId;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<FactId, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = FactId;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a fact name")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<FactId, E> {
        match self.0.table.lookup(name) {
            Some(id) => Ok(id),
            None => {
                let hint = did_you_mean(name, self.0.table.names()).map(str::to_owned);
                let chars = name.chars().count();
                Err(self.0.fail(Problem::Unknown(
                    shorten_to(name, QUOTED_CHARS),
                    hint,
                    chars,
                )))
            }
        }
    }
}

/// How a float is shown: as JSON writes it (`1e20`, `1.5`).
fn show_f64(f: f64) -> String {
    serde_json::Number::from_f64(f).map_or_else(|| f.to_string(), |n| n.to_string())
}

/// A string as quoted in an error, cut to [`QUOTED_CHARS`].
fn show_str(s: &str) -> String {
    format!("string {:?}", shorten_to(s, QUOTED_CHARS))
}

/// Reads one fact's value and checks it against the fact's type as it is
/// read; `None` for `null` (unknown).
struct ValueSeed<'c, 't> {
    ctx: &'c Ctx<'t>,
    id: FactId,
    name: &'c str,
    ty: &'c FactType,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Option<FactValue<'static>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_, '_> {
    fn invalid<E: de::Error>(&self, expected: String, found: String) -> E {
        self.ctx.fail(Problem::Invalid {
            name: self.name.to_owned(),
            expected,
            found,
        })
    }

    /// The fact does not take a value of this kind.
    fn wrong<E: de::Error>(&self, found: String) -> E {
        self.invalid(expected_of(self.ty), found)
    }
}

const INT_EXPECTED: &str = "an integer (JSON integer within 64 bits)";

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Option<FactValue<'static>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&expected_of(self.ty))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        match self.ty {
            FactType::Bool => Ok(Some(FactValue::Bool(b))),
            _ => Err(self.wrong(format!("bool {b}"))),
        }
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
        match self.ty {
            FactType::Int => Ok(Some(FactValue::Int(i))),
            FactType::Number => Ok(Some(FactValue::Number(i as f64))),
            _ => Err(self.wrong(format!("number {i}"))),
        }
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
        match (self.ty, i64::try_from(u)) {
            (FactType::Int, Ok(i)) => Ok(Some(FactValue::Int(i))),
            (FactType::Int, Err(_)) => {
                Err(self.invalid(INT_EXPECTED.into(), format!("number {u}")))
            }
            (FactType::Number, _) => Ok(Some(FactValue::Number(u as f64))),
            _ => Err(self.wrong(format!("number {u}"))),
        }
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        match self.ty {
            // serde_json reads the integer `-0` as the float -0.0 (to keep
            // its sign); it is the integer 0 (so is `-0.0`, which it cannot
            // tell apart).
            FactType::Int if f == 0.0 && f.is_sign_negative() => Ok(Some(FactValue::Int(0))),
            FactType::Int => {
                Err(self.invalid(INT_EXPECTED.into(), format!("number {}", show_f64(f))))
            }
            FactType::Number if f.is_finite() => Ok(Some(FactValue::Number(f))),
            FactType::Number => {
                Err(self.invalid("a finite number".into(), format!("number {}", show_f64(f))))
            }
            _ => Err(self.wrong(format!("number {}", show_f64(f)))),
        }
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        self.ctx.check_value_len(self.name, s.len())?;
        match str_value(self.id, self.ty, s) {
            Ok(v) => Ok(Some(v)),
            Err((expected, found)) => Err(self.invalid(expected, found)),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // A set takes one name or an array of names (`[]`: known and empty).
        if *self.ty != FactType::StringSet {
            return Err(self.wrong("an array".into()));
        }
        let mut names = Vec::new();
        // The names' bytes plus one per name, against the value limit.
        let mut bytes = 0usize;
        loop {
            let seed = NameSeed {
                value: &self,
                index: names.len(),
            };
            let Some(name) = seq.next_element_seed(seed)? else {
                break;
            };
            bytes = bytes.saturating_add(name.len() + 1);
            self.ctx.check_value_len(self.name, bytes)?;
            let max = self.ctx.limits.max_set_names;
            if names.len() >= max {
                return Err(self.ctx.fail(Problem::Limit(format!(
                    "the set of fact `{}` has {} names or more, more than the limit of {max} names",
                    self.name,
                    names.len() + 1
                ))));
            }
            names.push(name);
        }
        Ok(Some(FactValue::Set(Cow::Owned(crate::facts::dedup_names(
            names,
        )))))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.wrong("an object".into()))
    }
}

/// One name of a set: a string, nothing else (an array or object inside is
/// refused at its first token).
struct NameSeed<'v, 'c, 't> {
    value: &'v ValueSeed<'c, 't>,
    index: usize,
}

impl NameSeed<'_, '_, '_> {
    fn not_a_name<E: de::Error>(&self, found: &str) -> E {
        self.value.invalid(
            "a string or an array of strings".into(),
            format!("{found} at index {} of the array", self.index),
        )
    }
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_, '_, '_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_, '_, '_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
        self.value.ctx.check_value_len(self.value.name, s.len())?;
        Ok(s.to_owned())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(self.not_a_name("null"))
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<String, E> {
        Err(self.not_a_name(&format!("bool {b}")))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<String, E> {
        Err(self.not_a_name(&format!("number {i}")))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<String, E> {
        Err(self.not_a_name(&format!("number {u}")))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<String, E> {
        Err(self.not_a_name(&format!("number {}", show_f64(f))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.not_a_name("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(self.not_a_name("an object"))
    }
}

/// A text value as a fact value of type `ty`: `Err((expected, found))`
/// when the fact takes no such text.
fn str_value(id: FactId, ty: &FactType, s: &str) -> Result<FactValue<'static>, (String, String)> {
    Ok(match ty {
        FactType::String => FactValue::Str(Cow::Owned(s.to_owned())),
        // One name: a set of one.
        FactType::StringSet => FactValue::Set(Cow::Owned(vec![s.to_owned()])),
        FactType::Ip => match s.parse::<IpAddr>() {
            Ok(ip) => FactValue::Ip(crate::facts::canonical_ip(ip)),
            Err(_) => {
                return Err((
                    "an IP address such as \"192.0.2.1\" or \"2001:db8::1\"".into(),
                    show_str(s),
                ))
            }
        },
        FactType::Enum(values) => match values.iter().position(|x| x == s) {
            Some(i) => crate::check::enum_fact_value(id, ty, i as u16),
            None => {
                let hint = did_you_mean(s, values.iter().map(String::as_str))
                    .map(|h| format!(" (did you mean \"{h}\"?)"))
                    .unwrap_or_default();
                return Err((
                    format!(
                        "one of {}",
                        list_values(values.iter().map(String::as_str), "\"")
                    ),
                    format!("{}{hint}", show_str(s)),
                ));
            }
        },
        _ => return Err((expected_of(ty), show_str(s))),
    })
}

fn expected_of(ty: &FactType) -> String {
    match ty {
        FactType::Bool => "a bool (true or false)".into(),
        FactType::Int => "an integer".into(),
        FactType::Number => "a number".into(),
        FactType::String => "a string".into(),
        FactType::StringSet => "a string or an array of strings".into(),
        FactType::Ip => "an IP address string".into(),
        FactType::Enum(values) => format!(
            "one of {}",
            list_values(values.iter().map(String::as_str), "\"")
        ),
    }
}

/// Parses `name=value` (the command line's `--fact`): the value is read by
/// the fact's type (`true`, `42`, `8.5`, `10.1.2.3`, `inbound`, or text;
/// an empty value sets an empty string, e.g. `sender=`).
pub(crate) fn parse_assignment(
    table: &FactTable,
    limits: &Limits,
    arg: &str,
    facts: &mut Facts,
) -> Result<(), FactsError> {
    let shape = |message: String| FactsError::Shape {
        message,
        line: 1,
        column: 1,
    };
    let Some((name, text)) = arg.split_once('=') else {
        return Err(shape(format!(
            "`{}` is not NAME=VALUE",
            shorten_to(arg, QUOTED_CHARS)
        )));
    };
    let name = name.trim();
    let Some(id) = table.lookup(name) else {
        let suggestion = did_you_mean(name, table.names()).map(str::to_owned);
        return Err(FactsError::UnknownFact {
            name: shorten_to(name, QUOTED_CHARS),
            suggestion,
            line: 1,
            column: 1,
        });
    };
    let info = table.get(id);
    let column = name.len() + 2;
    let ctx = Ctx {
        table,
        limits,
        problem: RefCell::new(None),
    };
    // Only a value's problems (invalid, limit) arise here: no key positions.
    let value_problem = |p: Problem| p.at(1, column);
    if text.len() > limits.max_fact_value_bytes {
        return Err(value_problem(Problem::Limit(format!(
            "the value of fact `{name}` is {} bytes, more than the limit of {} bytes",
            text.len(),
            limits.max_fact_value_bytes
        ))));
    }
    let json = match info.ty {
        FactType::Bool | FactType::Int | FactType::Number => true,
        // `virus=A` is one name; `virus=["A","B"]` (JSON) several, `virus=[]` none.
        FactType::StringSet => text.trim_start().starts_with('['),
        _ => false,
    };
    let value = if json {
        let seed = ValueSeed {
            ctx: &ctx,
            id,
            name: &info.name,
            ty: &info.ty,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let read = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
        match (read, ctx.problem.borrow_mut().take()) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(p)) => return Err(value_problem(p)),
            (Err(e), None) if info.ty == FactType::StringSet => {
                return Err(FactsError::InvalidValue {
                    name: name.to_owned(),
                    expected: "a name, or a JSON array of names such as [\"A\", \"B\"]".into(),
                    found: format!(
                        "{:?} ({})",
                        shorten_to(text, QUOTED_CHARS),
                        strip_position(&e.to_string())
                    ),
                    line: 1,
                    column,
                })
            }
            // Not JSON: the text as a string (`size=big` expects an integer, found "big").
            (Err(_), None) => str_value(id, &info.ty, text).map(Some),
        }
    } else {
        str_value(id, &info.ty, text).map(Some)
    };
    match value {
        Ok(Some(v)) => facts.set(name, v),
        Ok(None) => facts.unset(name),
        Err((expected, found)) => {
            return Err(FactsError::InvalidValue {
                name: name.to_owned(),
                expected,
                found,
                line: 1,
                column,
            });
        }
    }
    Ok(())
}
