//! Facts from JSON: an object of fact name to value, or an array of such
//! objects (one per recipient). Checked against the policy's fact table:
//! unknown names and wrong types are errors that name the fact and the place.

use crate::diagnostics::{did_you_mean, list_values};
use crate::facts::{FactId, FactTable, FactType, FactValue, Facts};
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
        /// The name given.
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
        /// What was given.
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
}

/// The structured problem found inside a value, before serde adds the position.
#[derive(Debug, Clone)]
enum Problem {
    Unknown(String, Option<String>),
    Invalid {
        name: String,
        expected: String,
        found: String,
    },
    Duplicate(String),
    Shape(String),
}

impl Problem {
    fn at(self, line: usize, column: usize) -> FactsError {
        // serde reports the position after a key's closing quote: point at its opening quote.
        let key_start = |name: &str| column.saturating_sub(name.chars().count() + 1).max(1);
        match self {
            Problem::Unknown(name, suggestion) => {
                let column = key_start(&name);
                FactsError::UnknownFact {
                    name,
                    suggestion,
                    line,
                    column,
                }
            }
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
                let column = key_start(&name);
                FactsError::Duplicate { name, line, column }
            }
            Problem::Shape(message) => FactsError::Shape {
                message,
                line,
                column,
            },
        }
    }
}

struct Ctx<'t> {
    table: &'t FactTable,
    problem: RefCell<Option<Problem>>,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(&self, p: Problem) -> E {
        let msg = format!("{p:?}");
        *self.problem.borrow_mut() = Some(p);
        E::custom(msg)
    }
}

/// Parses a facts document against a policy's fact table.
pub(crate) fn parse(table: &FactTable, json: &str) -> Result<FactsInput, FactsError> {
    let ctx = Ctx {
        table,
        problem: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_str(json);
    let result = DocSeed(&ctx)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    result.map_err(|e| {
        // serde_json reports column 0 at the start of a line (an empty
        // document); positions here are 1-based.
        let (line, column) = (e.line().max(1), e.column().max(1));
        match ctx.problem.borrow_mut().take() {
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
        let mut all = Vec::new();
        while let Some(f) = seq.next_element_seed(ObjectSeed(self.0))? {
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

impl<'de> Visitor<'de> for ObjectSeed<'_, '_> {
    type Value = Facts;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of facts")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Facts, A::Error> {
        let mut facts = Facts::new();
        let mut seen: Vec<FactId> = Vec::new();
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let Some(id) = self.0.table.lookup(&name) else {
                let hint = did_you_mean(&name, self.0.table.names()).map(str::to_owned);
                return Err(self.0.fail(Problem::Unknown(name.into_owned(), hint)));
            };
            if seen.contains(&id) {
                return Err(self.0.fail(Problem::Duplicate(name.into_owned())));
            }
            seen.push(id);
            let raw: serde_json::Value = map.next_value()?;
            let ty = &self.0.table.get(id).ty;
            match json_value(id, ty, &raw) {
                Ok(Some(v)) => facts.set(&name, v),
                Ok(None) => {} // null: unknown
                Err((expected, found)) => {
                    return Err(self.0.fail(Problem::Invalid {
                        name: name.into_owned(),
                        expected,
                        found,
                    }));
                }
            }
        }
        Ok(facts)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Facts, A::Error> {
        Err(self.0.fail(Problem::Shape(
            "expected an object of facts, found an array".into(),
        )))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Facts, E> {
        Err(self.0.fail(Problem::Shape(
            "expected an object of facts, found a string".into(),
        )))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Facts, E> {
        Err(self.0.fail(Problem::Shape(
            "expected an object of facts, found a bool".into(),
        )))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Facts, E> {
        Err(self.0.fail(Problem::Shape(
            "expected an object of facts, found a number".into(),
        )))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Facts, E> {
        Err(self.0.fail(Problem::Shape(
            "expected an object of facts, found a number".into(),
        )))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Facts, E> {
        Err(self.0.fail(Problem::Shape(
            "expected an object of facts, found a number".into(),
        )))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Facts, E> {
        Err(self.0.fail(Problem::Shape(
            "expected an object of facts, found null".into(),
        )))
    }
}

fn describe_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => format!("bool {b}"),
        serde_json::Value::Number(n) => format!("number {n}"),
        serde_json::Value::String(s) => format!("string {s:?}"),
        serde_json::Value::Array(_) => "an array".into(),
        serde_json::Value::Object(_) => "an object".into(),
    }
}

/// A JSON value as a fact value of type `ty`; `Ok(None)` for `null`.
fn json_value(
    id: FactId,
    ty: &FactType,
    v: &serde_json::Value,
) -> Result<Option<FactValue<'static>>, (String, String)> {
    use serde_json::Value as J;
    let found = || describe_json(v);
    Ok(Some(match (ty, v) {
        (_, J::Null) => return Ok(None),
        (FactType::Bool, J::Bool(b)) => FactValue::Bool(*b),
        (FactType::Int, J::Number(n)) if n.is_i64() => {
            FactValue::Int(n.as_i64().unwrap_or_default())
        }
        (FactType::Int, J::Number(_)) => {
            return Err(("an integer (JSON integer within 64 bits)".into(), found()))
        }
        (FactType::Number, J::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => FactValue::Number(f),
            _ => return Err(("a finite number".into(), found())),
        },
        (FactType::String, J::String(s)) => FactValue::Str(Cow::Owned(s.clone())),
        // A set takes one name or an array of names (`[]`: known and empty).
        (FactType::StringSet, J::String(s)) => FactValue::set([s.clone()]),
        (FactType::StringSet, J::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    J::String(s) => names.push(s.clone()),
                    other => {
                        return Err((
                            "a string or an array of strings".into(),
                            format!("{} at index {i} of the array", describe_json(other)),
                        ))
                    }
                }
            }
            FactValue::set(names)
        }
        (FactType::Ip, J::String(s)) => match s.parse::<IpAddr>() {
            Ok(ip) => FactValue::Ip(crate::facts::canonical_ip(ip)),
            Err(_) => {
                return Err((
                    "an IP address such as \"192.0.2.1\" or \"2001:db8::1\"".into(),
                    found(),
                ))
            }
        },
        (FactType::Enum(values), J::String(s)) => match values.iter().position(|x| x == s) {
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
                    format!("{}{hint}", found()),
                ));
            }
        },
        _ => return Err((expected_of(ty), found())),
    }))
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
    arg: &str,
    facts: &mut Facts,
) -> Result<(), FactsError> {
    let shape = |message: String| FactsError::Shape {
        message,
        line: 1,
        column: 1,
    };
    let Some((name, text)) = arg.split_once('=') else {
        return Err(shape(format!("`{arg}` is not NAME=VALUE")));
    };
    let name = name.trim();
    let Some(id) = table.lookup(name) else {
        let suggestion = did_you_mean(name, table.names()).map(str::to_owned);
        return Err(FactsError::UnknownFact {
            name: name.to_owned(),
            suggestion,
            line: 1,
            column: 1,
        });
    };
    let ty = &table.get(id).ty;
    let json = match ty {
        FactType::Bool | FactType::Int | FactType::Number => {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => v,
                Err(_) => serde_json::Value::String(text.to_owned()),
            }
        }
        // `virus=A` is one name; `virus=["A","B"]` (JSON) several, `virus=[]` none.
        FactType::StringSet if text.trim_start().starts_with('[') => {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => v,
                Err(e) => {
                    return Err(FactsError::InvalidValue {
                        name: name.to_owned(),
                        expected: "a name, or a JSON array of names such as [\"A\", \"B\"]".into(),
                        found: format!("{text:?} ({})", strip_position(&e.to_string())),
                        line: 1,
                        column: name.len() + 2,
                    })
                }
            }
        }
        _ => serde_json::Value::String(text.to_owned()),
    };
    match json_value(id, ty, &json) {
        Ok(Some(v)) => facts.set(name, v),
        Ok(None) => facts.unset(name),
        Err((expected, found)) => {
            return Err(FactsError::InvalidValue {
                name: name.to_owned(),
                expected,
                found,
                line: 1,
                column: name.len() + 2,
            });
        }
    }
    Ok(())
}
