//! A generator of random but VALID policies (source text) plus facts to
//! evaluate them over, covering the whole language: header items, custom facts
//! of every type, lists of every kind, `allow(...)`, every condition form
//! (`not`/`and`/`or`/parentheses, `known`, bare bool facts, comparisons,
//! `in` lists/list names/CIDRs, `matches` globs/regexes/list names), every
//! action, `default`, `test` blocks, comments and varied whitespace.
//!
//! The generator is driven by a stream of bytes ([`Choices`]): the same code
//! serves the proptest strategy ([`case_strategy`], shrinking the bytes
//! shrinks the policy towards the simplest one) and the cargo-fuzz targets
//! (which include this file with `#[path]` and feed it libFuzzer's bytes).
//! When the bytes run out every choice is 0, which always picks the simplest,
//! terminating option.
#![allow(dead_code)]

use mailpolicy::{Direction, FactValue, Facts, Scanner};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Reads choices from bytes; 0 once the bytes are exhausted.
pub struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Choices<'a> {
    /// Choices read from `data`.
    pub fn new(data: &'a [u8]) -> Choices<'a> {
        Choices { data, pos: 0 }
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let mut v = 0usize;
        let mut span = 1usize;
        // One byte per 256 alternatives.
        while span < n {
            let b = self.data.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            v = v * 256 + usize::from(b);
            span = span.saturating_mul(256);
        }
        v % n
    }

    /// True with probability about `1 / n` (never once exhausted).
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == n - 1
    }

    /// One of `items`.
    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.below(items.len())]
    }

    /// Whether any bytes are left.
    pub fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// Types of facts, built in or custom.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Ty {
    Bool,
    Int,
    Number,
    #[default]
    Str,
    Ip,
    Enum(Vec<String>),
    /// A set of strings (`virus`, `fact NAME: [string]`).
    StrSet,
}

impl Ty {
    /// Strings and sets of strings: what `matches` and string `in` take.
    pub fn is_text(&self) -> bool {
        matches!(self, Ty::Str | Ty::StrSet)
    }
}

/// A generated case: a valid policy and facts to evaluate it over.
#[derive(Debug, Clone)]
pub struct Case {
    /// The policy's source text (always valid).
    pub source: String,
    /// Fact sets to evaluate it over.
    pub facts: Vec<Facts>,
}

const STRINGS: &[&str] = &[
    "",
    "W32/Sobig.F@MM",
    "W32/Bagle.A",
    "Eicar-Test-Signature",
    "x@example.org",
    "postmaster@example.org",
    "a",
    "ÄÖü ☃",
    "with \"quotes\" and \\ backslash",
    "tab\there\nnewline",
];
/// Globs, as they appear inside the quotes (already escaped where needed).
const GLOBS: &[&str] = &[
    "W32/Sobig*",
    "*@MM",
    "*",
    "?",
    "",
    "w32/bagle.?",
    "*@example.org",
    "a*b?c*",
    "eicar*",
    "ÄÖ*",
];
/// Regex literals, as they appear between the slashes.
const REGEXES: &[&str] = &[
    r"^W32\/",
    "sobig",
    "@mm$",
    "a|b",
    "[0-9]+",
    r"\/",
    "^$",
    r"^[a-z]+\.[a-z]$",
    "(?-i)W32",
    r"\d{2,4}",
    "é",
];
const ADDRS: &[&str] = &[
    "10.1.2.3",
    "192.0.2.1",
    "203.0.113.9",
    "127.0.0.1",
    "2001:db8::1",
    "::1",
    "::ffff:10.1.2.3",
    "fe80::1",
];
const NETS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.168.0.0/16",
    "203.0.113.9/32",
    "0.0.0.0/0",
    "2001:db8::/32",
    "::/0",
    "fe80::/10",
];
const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "8",
    "1000000",
    "42",
    "-7",
    "9223372036854775807",
];
const FLOATS: &[&str] = &["0.5", "5.5", "-0.5", "8.0", "1e3", "2.5E-1", "1e308"];
const DIRECTIONS: &[&str] = &["inbound", "outbound", "internal", "open_relay"];
const SCANNERS: &[&str] = &["clean", "infected", "encrypted", "error", "timeout"];
const LINTS: &[&str] = &[
    "silent-discard",
    "virus-passes",
    "fail-open",
    "backscatter-alert",
    "backscatter-bounce",
    "reject-after-queue",
    "outbound-virus-escapes",
    "unreachable-rule",
    "tempfail-permanent",
    "alert-null-sender",
    "unused-list",
    "unused-fact",
    "untested-rule",
];
const ENUM_WORDS: &[&str] = &["low", "medium", "high", "red", "green", "a", "b_2"];

/// Escapes text for a policy string literal, sometimes with `\u{...}`.
fn quote(c: &mut Choices<'_>, s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c2 if !c2.is_ascii() && c.one_in(3) => {
                let _ = write!(out, "\\u{{{:x}}}", c2 as u32);
            }
            c2 => out.push(c2),
        }
    }
    out.push('"');
    out
}

struct Fact {
    name: String,
    ty: Ty,
}

struct List {
    name: String,
    kind: ListKind,
}

#[derive(Clone, PartialEq)]
enum ListKind {
    /// Strings: usable with `in` (exact) and `matches` (globs).
    Str,
    Net,
    Int,
    /// Values of the enum fact with this index in `Gen::facts`.
    Enum(usize),
}

struct Gen<'c, 'd> {
    c: &'c mut Choices<'d>,
    facts: Vec<Fact>,
    lists: Vec<List>,
    rules: Vec<String>,
    out: String,
}

impl Gen<'_, '_> {
    /// Whitespace between tokens: usually a space, sometimes a newline, a
    /// tab or a comment.
    fn ws(&mut self) -> &'static str {
        match self.c.below(16) {
            13 => "\n        ",
            14 => "\t",
            15 => "  # a comment\n    ",
            _ => " ",
        }
    }

    fn string(&mut self) -> String {
        let s = *self.c.pick(STRINGS);
        quote(self.c, s)
    }

    fn value_of(&mut self, ty: &Ty) -> String {
        match ty {
            Ty::Bool => (if self.c.below(2) == 0 {
                "true"
            } else {
                "false"
            })
            .into(),
            Ty::Int => (*self.c.pick(INTS)).into(),
            Ty::Number => {
                if self.c.below(2) == 0 {
                    (*self.c.pick(INTS)).into()
                } else {
                    (*self.c.pick(FLOATS)).into()
                }
            }
            Ty::Str | Ty::StrSet => self.string(),
            Ty::Ip => (*self.c.pick(ADDRS)).into(),
            Ty::Enum(values) => values[self.c.below(values.len())].clone(),
        }
    }

    /// A value a test's `given` may use: like `value_of`, but an int fact
    /// only takes whole numbers.
    fn given_value(&mut self, ty: &Ty) -> String {
        if *ty == Ty::StrSet && self.c.below(2) == 0 {
            // A set: `[]`, or a few names.
            let n = self.c.below(4);
            let names: Vec<String> = (0..n).map(|_| self.string()).collect();
            return format!("[{}]", names.join(", "));
        }
        self.value_of(ty)
    }

    fn header(&mut self) {
        if self.c.below(3) == 1 {
            let s = self.string();
            let _ = writeln!(self.out, "policy {s}");
        }
        match self.c.below(4) {
            1 => self.out.push_str("mode before_queue\n"),
            2 => self.out.push_str("mode after_queue\n"),
            _ => {}
        }
        for _ in 0..self.c.below(3) {
            let s = self.string();
            let _ = writeln!(self.out, "admin {s}");
        }
    }

    fn declare_facts(&mut self) {
        for i in 0..self.c.below(5) {
            let ty = match self.c.below(7) {
                0 => Ty::Bool,
                1 => Ty::Int,
                2 => Ty::Number,
                3 => Ty::Str,
                4 => Ty::Ip,
                5 => Ty::StrSet,
                _ => {
                    let n = 1 + self.c.below(ENUM_WORDS.len());
                    Ty::Enum(ENUM_WORDS[..n].iter().map(|s| s.to_string()).collect())
                }
            };
            let name = format!("cf{i}_{}", ["x", "listed", "zone", "n"][i % 4]);
            let ty_text = match &ty {
                Ty::Bool => "bool".to_string(),
                Ty::Int => "int".into(),
                Ty::Number => "number".into(),
                Ty::Str => "string".into(),
                Ty::StrSet => "[string]".into(),
                Ty::Ip => "ip".into(),
                Ty::Enum(v) => {
                    let trailing = if self.c.one_in(3) { "," } else { "" };
                    format!("enum({}{trailing})", v.join(", "))
                }
            };
            let _ = writeln!(self.out, "fact {name}: {ty_text}");
            self.facts.push(Fact { name, ty });
        }
    }

    fn list_literal(&mut self, kind: &ListKind) -> String {
        let n = self.c.below(5);
        let mut items = Vec::new();
        for _ in 0..n {
            items.push(match kind {
                ListKind::Str => {
                    if self.c.below(2) == 0 {
                        self.string()
                    } else {
                        format!("\"{}\"", self.c.pick(GLOBS))
                    }
                }
                ListKind::Net => {
                    if self.c.below(2) == 0 {
                        (*self.c.pick(NETS)).into()
                    } else {
                        (*self.c.pick(ADDRS)).into()
                    }
                }
                ListKind::Int => (*self.c.pick(INTS)).into(),
                ListKind::Enum(f) => {
                    let ty = self.facts[*f].ty.clone();
                    self.value_of(&ty)
                }
            });
        }
        let trailing = if n > 0 && self.c.one_in(3) { "," } else { "" };
        format!("[{}{trailing}]", items.join(", "))
    }

    fn declare_lists(&mut self) {
        for i in 0..self.c.below(4) {
            let kind = match self.c.below(4) {
                0 => ListKind::Str,
                1 => ListKind::Net,
                2 => ListKind::Int,
                _ => {
                    let enums: Vec<usize> = (0..self.facts.len())
                        .filter(|&f| matches!(self.facts[f].ty, Ty::Enum(_)))
                        .collect();
                    if enums.is_empty() {
                        ListKind::Str
                    } else {
                        ListKind::Enum(enums[self.c.below(enums.len())])
                    }
                }
            };
            let name = format!("list{i}");
            let lit = self.list_literal(&kind);
            let _ = writeln!(self.out, "list {name} = {lit}");
            self.lists.push(List { name, kind });
        }
    }

    fn allow(&mut self) -> String {
        let n = 1 + self.c.below(3);
        let names: Vec<&str> = (0..n).map(|_| *self.c.pick(LINTS)).collect();
        format!("allow({})", names.join(", "))
    }

    /// A fact of some type: a built-in or a custom one.
    fn fact_where(&mut self, want: impl Fn(&Ty) -> bool) -> Option<(String, Ty)> {
        let mut all: Vec<(String, Ty)> = builtins();
        all.extend(self.facts.iter().map(|f| (f.name.clone(), f.ty.clone())));
        all.retain(|(_, t)| want(t));
        if all.is_empty() {
            None
        } else {
            let i = self.c.below(all.len());
            Some(all.swap_remove(i))
        }
    }

    fn lists_of(&self, want: impl Fn(&ListKind) -> bool) -> Vec<String> {
        self.lists
            .iter()
            .filter(|l| want(&l.kind))
            .map(|l| l.name.clone())
            .collect()
    }

    fn leaf(&mut self) -> String {
        match self.c.below(13) {
            12 => {
                // `any` / `all` on a set fact.
                let (f, _) = self
                    .fact_where(|t| *t == Ty::StrSet)
                    .unwrap_or_else(|| ("virus".into(), Ty::StrSet));
                let q = if self.c.below(3) == 0 { "any" } else { "all" };
                let lists = self.lists_of(|k| *k == ListKind::Str);
                let tail = match self.c.below(6) {
                    0 => format!("== {}", self.string()),
                    1 => {
                        let n = self.c.below(4);
                        let items: Vec<String> = (0..n).map(|_| self.string()).collect();
                        format!("in [{}]", items.join(", "))
                    }
                    2 => format!("matches \"{}\"", self.c.pick(GLOBS)),
                    3 => format!("matches /{}/", self.c.pick(REGEXES)),
                    _ if !lists.is_empty() => {
                        let l = lists[self.c.below(lists.len())].clone();
                        let op = if self.c.below(2) == 0 {
                            "in"
                        } else {
                            "matches"
                        };
                        format!("{op} {l}")
                    }
                    _ => format!("matches \"{}\"", self.c.pick(GLOBS)),
                };
                format!("{q} {f} {tail}")
            }
            0 => {
                let (f, ty) = self.fact_where(|_| true).unwrap_or_default();
                let op = if self.c.below(2) == 0 { "==" } else { "!=" };
                let v = self.value_of(&ty);
                format!("{f} {op} {v}")
            }
            1 => (if self.c.below(2) == 0 {
                "true"
            } else {
                "false"
            })
            .into(),
            2 => {
                let (f, _) = self.fact_where(|_| true).unwrap_or_default();
                format!("known {f}")
            }
            3 => match self.fact_where(|t| *t == Ty::Bool) {
                Some((f, _)) => f,
                None => "authenticated".into(),
            },
            4 => {
                let (f, ty) = self
                    .fact_where(|t| matches!(t, Ty::Int | Ty::Number))
                    .unwrap_or_default();
                let op = *self.c.pick(&["<", "<=", ">", ">=", "==", "!="]);
                let v = if self.c.below(2) == 0 {
                    (*self.c.pick(INTS)).to_string()
                } else {
                    (*self.c.pick(FLOATS)).to_string()
                };
                let _ = ty;
                format!("{f} {op} {v}")
            }
            5 => {
                // `in [ ... ]` with literals of the fact's type.
                let (f, ty) = self.fact_where(|_| true).unwrap_or_default();
                let n = self.c.below(4);
                let items: Vec<String> = (0..n)
                    .map(|_| {
                        if ty == Ty::Ip && self.c.below(2) == 0 {
                            (*self.c.pick(NETS)).into()
                        } else {
                            self.value_of(&ty)
                        }
                    })
                    .collect();
                let trailing = if n > 0 && self.c.one_in(4) { "," } else { "" };
                format!("{f} in [{}{trailing}]", items.join(", "))
            }
            6 => {
                let (f, _) = self.fact_where(|t| *t == Ty::Ip).unwrap_or_default();
                let net = if self.c.below(3) == 0 {
                    *self.c.pick(ADDRS)
                } else {
                    *self.c.pick(NETS)
                };
                format!("{f} in {net}")
            }
            7 => {
                let (f, _) = self.fact_where(Ty::is_text).unwrap_or_default();
                let g = *self.c.pick(GLOBS);
                format!("{f} matches \"{g}\"")
            }
            8 => {
                let (f, _) = self.fact_where(Ty::is_text).unwrap_or_default();
                let r = *self.c.pick(REGEXES);
                format!("{f} matches /{r}/")
            }
            9 => {
                // A list name, with a fact of the list's type.
                if self.lists.is_empty() {
                    return "scanner == infected".into();
                }
                let i = self.c.below(self.lists.len());
                let name = self.lists[i].name.clone();
                match self.lists[i].kind.clone() {
                    ListKind::Str => {
                        let (f, _) = self.fact_where(Ty::is_text).unwrap_or_default();
                        let op = if self.c.below(2) == 0 {
                            "in"
                        } else {
                            "matches"
                        };
                        format!("{f} {op} {name}")
                    }
                    ListKind::Net => {
                        let (f, _) = self.fact_where(|t| *t == Ty::Ip).unwrap_or_default();
                        format!("{f} in {name}")
                    }
                    ListKind::Int => {
                        let (f, _) = self
                            .fact_where(|t| matches!(t, Ty::Int | Ty::Number))
                            .unwrap_or_default();
                        format!("{f} in {name}")
                    }
                    ListKind::Enum(fi) => format!("{} in {name}", self.facts[fi].name),
                }
            }
            10 => {
                // A glob written with escapes (`\"`, `\\`, `\u{...}`).
                let (f, _) = self.fact_where(Ty::is_text).unwrap_or_default();
                let g = self.string();
                format!("{f} matches {g}")
            }
            _ => {
                let d = *self.c.pick(SCANNERS);
                format!("scanner == {d}")
            }
        }
    }

    fn cond(&mut self, depth: usize) -> String {
        let choice = if depth >= 4 { 0 } else { self.c.below(7) };
        match choice {
            0 | 1 => self.leaf(),
            2 => {
                let nots = 1 + self.c.below(3);
                let inner = self.cond(depth + 1);
                let ws = self.ws();
                format!("{}{inner}", format!("not{ws}").repeat(nots))
            }
            3 => {
                let inner = self.cond(depth + 1);
                format!("({inner})")
            }
            4 | 5 => {
                let op = if choice == 4 { "and" } else { "or" };
                let n = 2 + self.c.below(3);
                let mut parts = Vec::new();
                for _ in 0..n {
                    parts.push(self.cond(depth + 1));
                }
                let ws = self.ws();
                parts.join(&format!("{ws}{op} "))
            }
            _ => {
                // A mix with explicit parentheses around an `or`.
                let a = self.cond(depth + 1);
                let b = self.cond(depth + 1);
                let d = self.cond(depth + 1);
                format!("({a} or {b}) and not {d}")
            }
        }
    }

    fn disposition(&mut self) -> String {
        let d = *self
            .c
            .pick(&["pass", "discard", "bounce", "reject", "tempfail"]);
        if self.c.below(3) == 2 {
            let r = *self.c.pick(&[
                "554 5.7.1 virus found",
                "451 4.7.1 try again later",
                "",
                "ÄÖ",
            ]);
            let q = quote(self.c, r);
            format!("{d} {q}")
        } else {
            d.to_string()
        }
    }

    fn actions(&mut self) -> String {
        let mut list = vec![self.disposition()];
        if self.c.below(2) == 1 {
            list.push(if self.c.below(2) == 0 {
                "quarantine".into()
            } else {
                let b = *self.c.pick(&["outbound", "spam", "default", "é"]);
                format!("quarantine {}", quote(self.c, b))
            });
        }
        for _ in 0..self.c.below(3) {
            let t = match self.c.below(4) {
                0 => "admin".to_string(),
                1 => "sender".into(),
                2 => "recipient".into(),
                _ => self.string(),
            };
            list.push(format!("alert {t}"));
        }
        for _ in 0..self.c.below(3) {
            let t = *self.c.pick(&["***UNCHECKED***", "[SPAM]", "", "ä"]);
            let q = quote(self.c, t);
            list.push(format!("tag {q}"));
        }
        // Any order.
        for i in (1..list.len()).rev() {
            let j = self.c.below(i + 1);
            list.swap(i, j);
        }
        let trailing = if self.c.one_in(4) { "," } else { "" };
        format!("{}{trailing}", list.join(", "))
    }

    fn rule(&mut self, i: usize) {
        if self.c.one_in(5) {
            let a = self.allow();
            let _ = writeln!(self.out, "{a}");
        }
        let base = *self
            .c
            .pick(&["rule", "virus: discard", "ÄÖ \"q\"", "", "a\\b"]);
        let name = format!("{base} {i}");
        let q = quote(self.c, &name);
        self.rules.push(name);
        let _ = write!(self.out, "rule {q} {{");
        if self.c.below(5) != 0 {
            let cond = self.cond(0);
            let _ = write!(self.out, "\n    when {cond}");
        }
        let actions = self.actions();
        if self.c.one_in(6) {
            self.out.push_str("\n    # before then");
        }
        let _ = write!(self.out, "\n    then {actions}\n}}");
        if self.c.one_in(6) {
            self.out.push_str("  # trailing");
        }
        self.out.push('\n');
    }

    fn test(&mut self, i: usize) {
        let _ = writeln!(self.out, "test \"t{i}\" {{");
        let mut all = builtins();
        all.extend(self.facts.iter().map(|f| (f.name.clone(), f.ty.clone())));
        let n = self.c.below(4);
        let mut given = Vec::new();
        for _ in 0..n {
            if all.is_empty() {
                break;
            }
            let k = self.c.below(all.len());
            let (f, ty) = all.swap_remove(k);
            let ty = if ty == Ty::Number && self.c.below(2) == 0 {
                Ty::Int
            } else {
                ty
            };
            let v = self.given_value(&ty);
            given.push(format!("{f} = {v}"));
        }
        if !given.is_empty() {
            let _ = writeln!(self.out, "    given {}", given.join(", "));
        }
        for _ in 0..1 + self.c.below(2) {
            match self.c.below(3) {
                0 => {
                    let a = self.actions();
                    let _ = writeln!(self.out, "    expect {a}");
                }
                1 if !self.rules.is_empty() => {
                    let r = self.rules[self.c.below(self.rules.len())].clone();
                    let q = quote(self.c, &r);
                    let _ = writeln!(self.out, "    expect rule {q}");
                }
                _ => self.out.push_str("    expect default\n"),
            }
        }
        self.out.push_str("}\n");
    }

    fn facts(&mut self) -> Facts {
        let mut facts = Facts::new();
        let mut all = builtins();
        all.extend(self.facts.iter().map(|f| (f.name.clone(), f.ty.clone())));
        for (name, ty) in all {
            match self.c.below(8) {
                0..=2 => {} // unknown
                7 => {
                    // A value of the wrong type: treated as unknown.
                    let v = match self.c.below(3) {
                        0 => FactValue::Bool(true),
                        1 => FactValue::Str(Cow::Borrowed("bogus")),
                        _ => FactValue::Number(f64::NAN),
                    };
                    facts.set(&name, v);
                }
                _ => {
                    let v = self.fact_value(&name, &ty);
                    facts.set(&name, v);
                }
            }
        }
        facts
    }

    fn fact_value(&mut self, name: &str, ty: &Ty) -> FactValue<'static> {
        let text = |s: &str| FactValue::Str(Cow::Owned(s.to_owned()));
        match ty {
            Ty::Bool => FactValue::Bool(self.c.below(2) == 1),
            Ty::Int => FactValue::Int(match self.c.below(4) {
                0 => *self.c.pick(&[0, 1, -1, 8, 42, 1000000, i64::MAX, i64::MIN]),
                1 => self.c.below(20) as i64 - 10,
                2 => self.c.below(2_000_000) as i64,
                _ => 7,
            }),
            Ty::Number => match self.c.below(4) {
                0 => FactValue::Int(self.c.below(20) as i64 - 5),
                1 => FactValue::Number(*self.c.pick(&[
                    0.5,
                    5.5,
                    -0.5,
                    8.0,
                    1000.0,
                    0.25,
                    1e308,
                    f64::INFINITY,
                    -0.0,
                ])),
                2 => FactValue::Number(self.c.below(200) as f64 / 10.0 - 5.0),
                _ => FactValue::Number(f64::NAN),
            },
            Ty::StrSet => match self.c.below(4) {
                // One name as a plain string, or a set of 0 to 3 names.
                0 => self.fact_value(name, &Ty::Str),
                _ => {
                    let n = self.c.below(4);
                    let mut names = Vec::new();
                    for _ in 0..n {
                        if let FactValue::Str(s) = self.fact_value(name, &Ty::Str) {
                            names.push(s.into_owned());
                        }
                    }
                    FactValue::set(names)
                }
            },
            Ty::Str => {
                if self.c.below(3) == 0 {
                    text(&format!(
                        "W32/{}.{}@MM",
                        ["Sobig", "Bagle"][self.c.below(2)],
                        self.c.below(30)
                    ))
                } else {
                    let s = *self.c.pick(STRINGS);
                    text(s)
                }
            }
            Ty::Ip => {
                let s = *self.c.pick(ADDRS);
                FactValue::Ip(s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0])))
            }
            Ty::Enum(values) => {
                let i = self.c.below(values.len());
                match name {
                    "direction" if self.c.below(2) == 0 => FactValue::Direction(
                        [
                            Direction::Inbound,
                            Direction::Outbound,
                            Direction::Internal,
                            Direction::OpenRelay,
                        ][i % 4],
                    ),
                    "scanner" if self.c.below(2) == 0 => FactValue::Scanner(
                        [
                            Scanner::Clean,
                            Scanner::Infected,
                            Scanner::Encrypted,
                            Scanner::Error,
                            Scanner::Timeout,
                        ][i % 5],
                    ),
                    _ => text(&values[i]),
                }
            }
        }
    }
}

/// The built-in facts and their types.
pub fn builtins() -> Vec<(String, Ty)> {
    let e = |v: &[&str]| Ty::Enum(v.iter().map(|s| s.to_string()).collect());
    vec![
        ("direction".into(), e(DIRECTIONS)),
        ("scanner".into(), e(SCANNERS)),
        ("virus".into(), Ty::StrSet),
        ("forges_sender".into(), Ty::Bool),
        ("client_ip".into(), Ty::Ip),
        ("sender".into(), Ty::Str),
        ("recipient".into(), Ty::Str),
        ("authenticated".into(), Ty::Bool),
        ("size".into(), Ty::Int),
        ("spam_score".into(), Ty::Number),
    ]
}

/// Generates a valid policy and `n_facts` fact sets from `data`.
/// The limits generated policies are parsed with: the defaults without
/// the budget of scan passes (`Limits::max_scan_passes`), which
/// random globs and regexes on one fact may pass; `tests/cost.rs` tests
/// that limit.
pub fn limits() -> mailpolicy::Limits {
    mailpolicy::Limits {
        max_scan_passes: usize::MAX,
        ..mailpolicy::Limits::default()
    }
}

pub fn generate(data: &[u8], n_facts: usize) -> Case {
    let mut c = Choices::new(data);
    let mut g = Gen {
        c: &mut c,
        facts: Vec::new(),
        lists: Vec::new(),
        rules: Vec::new(),
        out: String::new(),
    };
    if g.c.one_in(4) {
        g.out.push_str("# generated policy\n");
    }
    g.header();
    g.declare_facts();
    g.declare_lists();
    if g.c.one_in(6) {
        let a = g.allow();
        let _ = writeln!(g.out, "{a}");
    }
    let n_rules = g.c.below(7);
    for i in 0..n_rules {
        g.rule(i);
    }
    if g.c.below(3) != 0 {
        if g.c.one_in(5) {
            let a = g.allow();
            let _ = writeln!(g.out, "{a}");
        }
        let a = g.actions();
        let _ = writeln!(g.out, "default {a}");
    }
    for i in 0..g.c.below(3) {
        g.test(i);
    }
    let source = std::mem::take(&mut g.out);
    let facts = (0..n_facts).map(|_| g.facts()).collect();
    Case { source, facts }
}

/// The proptest strategy: a generated case from random bytes (shrinks
/// towards fewer rules, simpler conditions and unknown facts).
/// (Integration tests are built with `cfg(test)`; the fuzz targets, which
/// include this file too, are not and have no proptest.)
#[cfg(test)]
pub fn case_strategy(n_facts: usize) -> impl proptest::strategy::Strategy<Value = Case> {
    use proptest::prelude::*;
    proptest::collection::vec(any::<u8>(), 0..1500).prop_map(move |bytes| generate(&bytes, n_facts))
}
