//! Facts: what the filter knows about one message for one recipient.
//!
//! Ten facts are built in ([`BUILTIN_FACTS`]); a policy may declare more with
//! `fact NAME: TYPE`. Any fact may be unknown (not supplied). Facts come from
//! the [`Facts`] builder, from JSON ([`crate::Policy::facts_from_json`]), or
//! lazily from an embedder's [`FactProvider`].

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

/// Where a message comes from and goes to, as amavisd-new derives it from
/// "originating" (the client is ours: `mynetworks` or SMTP AUTH) and "local
/// recipient" — never from the sender address, which viruses forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From outside to a local recipient.
    Inbound,
    /// From our clients to a remote recipient.
    Outbound,
    /// From our clients to a local recipient.
    Internal,
    /// From outside to a remote recipient (relaying for strangers).
    OpenRelay,
}

impl Direction {
    /// All four, in declaration order.
    pub const ALL: [Direction; 4] = [
        Direction::Inbound,
        Direction::Outbound,
        Direction::Internal,
        Direction::OpenRelay,
    ];

    /// The direction from amavisd-new's two flags.
    ///
    /// ```
    /// use mailpolicy::Direction;
    /// assert_eq!(Direction::from_flags(true, false), Direction::Outbound);
    /// assert_eq!(Direction::from_flags(true, true), Direction::Internal);
    /// assert_eq!(Direction::from_flags(false, true), Direction::Inbound);
    /// assert_eq!(Direction::from_flags(false, false), Direction::OpenRelay);
    /// ```
    pub fn from_flags(originating: bool, local_recipient: bool) -> Direction {
        match (originating, local_recipient) {
            (false, true) => Direction::Inbound,
            (true, false) => Direction::Outbound,
            (true, true) => Direction::Internal,
            (false, false) => Direction::OpenRelay,
        }
    }

    /// The keyword.
    pub fn as_str(self) -> &'static str {
        DIRECTION_NAMES[self as usize]
    }
}

/// What the virus scanner said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scanner {
    /// Nothing found.
    Clean,
    /// A virus was found (see the `virus` fact).
    Infected,
    /// The content could not be scanned (encrypted archive, ...).
    Encrypted,
    /// The scanner failed.
    Error,
    /// The scanner did not answer in time.
    Timeout,
}

impl Scanner {
    /// All five, in declaration order.
    pub const ALL: [Scanner; 5] = [
        Scanner::Clean,
        Scanner::Infected,
        Scanner::Encrypted,
        Scanner::Error,
        Scanner::Timeout,
    ];

    /// The keyword.
    pub fn as_str(self) -> &'static str {
        SCANNER_NAMES[self as usize]
    }
}

pub(crate) const DIRECTION_NAMES: [&str; 4] = ["inbound", "outbound", "internal", "open_relay"];
pub(crate) const SCANNER_NAMES: [&str; 5] = ["clean", "infected", "encrypted", "error", "timeout"];

/// The type of a fact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FactType {
    /// `true` / `false`.
    Bool,
    /// A whole number.
    Int,
    /// Any number.
    Number,
    /// Text.
    String,
    /// An IPv4 or IPv6 address.
    Ip,
    /// One of the named values.
    Enum(Vec<String>),
    /// A set of strings (`[string]`): `virus`, or a custom `fact NAME: [string]`.
    /// Conditions on it hold when *any* name satisfies them (`all` asks every
    /// name, and at least one); the empty set is known and holds no name.
    StringSet,
}

impl FactType {
    /// How the type is written in a policy.
    pub fn describe(&self) -> String {
        match self {
            FactType::Bool => "bool".into(),
            FactType::Int => "int".into(),
            FactType::Number => "number".into(),
            FactType::String => "string".into(),
            FactType::Ip => "ip".into(),
            FactType::Enum(v) => format!("enum({})", v.join(", ")),
            FactType::StringSet => "[string]".into(),
        }
    }
}

/// A fact's number in a policy's fact table: built-ins first, then custom
/// facts in declaration order. Only a policy hands them out (the number is
/// private, so an id always names a fact of the table it came from or a
/// built-in); [`FactId::index`] gives the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FactId(pub(crate) u16);

impl FactId {
    /// `direction`
    pub const DIRECTION: FactId = FactId(0);
    /// `scanner`
    pub const SCANNER: FactId = FactId(1);
    /// `virus`
    pub const VIRUS: FactId = FactId(2);
    /// `forges_sender`
    pub const FORGES_SENDER: FactId = FactId(3);
    /// `client_ip`
    pub const CLIENT_IP: FactId = FactId(4);
    /// `sender`
    pub const SENDER: FactId = FactId(5);
    /// `recipient`
    pub const RECIPIENT: FactId = FactId(6);
    /// `authenticated`
    pub const AUTHENTICATED: FactId = FactId(7);
    /// `size`
    pub const SIZE: FactId = FactId(8);
    /// `spam_score`
    pub const SPAM_SCORE: FactId = FactId(9);

    /// The slot index.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// How many facts are built in.
pub const BUILTIN_COUNT: usize = 10;

/// The built-in facts' names, in [`FactId`] order.
pub const BUILTIN_FACTS: [&str; BUILTIN_COUNT] = [
    "direction",
    "scanner",
    "virus",
    "forges_sender",
    "client_ip",
    "sender",
    "recipient",
    "authenticated",
    "size",
    "spam_score",
];

/// A policy's facts: built-ins then its declared custom facts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FactTable {
    pub(crate) facts: Vec<FactInfo>,
}

/// One entry of a [`FactTable`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FactInfo {
    pub(crate) name: String,
    pub(crate) ty: FactType,
}

impl FactTable {
    /// The built-in facts only.
    pub(crate) fn builtins() -> FactTable {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let types = [
            FactType::Enum(names(&DIRECTION_NAMES)),
            FactType::Enum(names(&SCANNER_NAMES)),
            FactType::StringSet,
            FactType::Bool,
            FactType::Ip,
            FactType::String,
            FactType::String,
            FactType::Bool,
            FactType::Int,
            FactType::Number,
        ];
        let facts = BUILTIN_FACTS
            .iter()
            .zip(types)
            .map(|(name, ty)| FactInfo {
                name: (*name).to_owned(),
                ty,
            })
            .collect();
        FactTable { facts }
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<FactId> {
        self.facts
            .iter()
            .position(|f| f.name == name)
            .map(|i| FactId(i as u16))
    }

    pub(crate) fn get(&self, id: FactId) -> &FactInfo {
        &self.facts[id.index()]
    }

    pub(crate) fn len(&self) -> usize {
        self.facts.len()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.facts.iter().map(|f| f.name.as_str())
    }
}

/// A fact's value as supplied by the embedder.
///
/// Borrowed text (`Cow::Borrowed`) costs nothing; a lazy provider that
/// computes text returns `Cow::Owned`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FactValue<'a> {
    /// For `bool` facts.
    Bool(bool),
    /// For `int` facts (also accepted by `number` facts).
    Int(i64),
    /// For `number` facts (accepted by `int` facts when it is whole).
    Number(f64),
    /// For `string` facts, and for enum facts (the value's name).
    Str(Cow<'a, str>),
    /// For `ip` facts; IPv4-mapped IPv6 addresses count as IPv4.
    Ip(IpAddr),
    /// For `direction`.
    Direction(Direction),
    /// For `scanner`.
    Scanner(Scanner),
    /// For set facts (`virus`, `fact NAME: [string]`): the names, in any
    /// order; an empty set is known ("scanned, nothing found"). A set fact
    /// also takes a single [`FactValue::Str`] as a one-element set. Build one
    /// with [`FactValue::set`]; a provider can lend its own `&[String]` as
    /// `Cow::Borrowed`.
    Set(Cow<'a, [String]>),
}

impl FactValue<'static> {
    /// A set of names (duplicates are dropped, the first occurrence kept).
    ///
    /// ```
    /// use mailpolicy::FactValue;
    /// let v = FactValue::set(["W32/Sobig.F@MM", "Heuristics.Phishing.Email"]);
    /// assert_eq!(v.to_string(), r#"["W32/Sobig.F@MM", "Heuristics.Phishing.Email"]"#);
    /// assert_eq!(FactValue::set(Vec::<String>::new()).to_string(), "[]");
    /// ```
    pub fn set<I, S>(names: I) -> FactValue<'static>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FactValue::Set(Cow::Owned(dedup_names(
            names.into_iter().map(Into::into).collect(),
        )))
    }
}

/// `names` without repeats, the first occurrence of each kept in place:
/// O(n log n) (sorting indices), so a set of a million names from facts
/// JSON does not compare every pair.
pub(crate) fn dedup_names(names: Vec<String>) -> Vec<String> {
    if names.len() < 2 {
        return names;
    }
    let mut order: Vec<usize> = (0..names.len()).collect();
    // A stable sort: among equal names the first occurrence comes first.
    order.sort_by(|&a, &b| names.get(a).cmp(&names.get(b)));
    let mut keep = vec![true; names.len()];
    for w in order.windows(2) {
        if let [a, b] = *w {
            if names.get(a) == names.get(b) {
                if let Some(k) = keep.get_mut(b) {
                    *k = false;
                }
            }
        }
    }
    names
        .into_iter()
        .zip(keep)
        .filter_map(|(n, k)| k.then_some(n))
        .collect()
}

impl fmt::Display for FactValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactValue::Bool(b) => write!(f, "{b}"),
            FactValue::Int(i) => write!(f, "{i}"),
            FactValue::Number(n) => write!(f, "{n}"),
            FactValue::Str(s) => write!(f, "{s:?}"),
            FactValue::Ip(ip) => write!(f, "{ip}"),
            FactValue::Direction(d) => f.write_str(d.as_str()),
            FactValue::Scanner(s) => f.write_str(s.as_str()),
            FactValue::Set(names) => write_set(f, names),
        }
    }
}

/// Writes names as a JSON array, `["A", "B"]`.
pub(crate) fn write_set(f: &mut impl fmt::Write, names: &[String]) -> fmt::Result {
    f.write_char('[')?;
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        // Serializing a string to JSON cannot fail; fall back to Rust quoting anyway.
        match serde_json::to_string(n) {
            Ok(q) => f.write_str(&q)?,
            Err(_) => write!(f, "{n:?}")?,
        }
    }
    f.write_char(']')
}

/// Which fact the evaluator asks a [`FactProvider`] for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactKey<'a> {
    /// The fact's id in the policy's table (built-ins have fixed ids).
    pub id: FactId,
    /// The fact's name.
    pub name: &'a str,
}

/// The plug-in point: an embedder supplies facts on demand.
///
/// The evaluator asks for a fact only when the rule it is trying needs it,
/// and at most once per evaluation ([`crate::Policy::evaluate_lazy`]).
/// Return `None` for unknown. A value of the wrong type is treated as unknown.
///
/// ```
/// use mailpolicy::{FactKey, FactProvider, FactValue, Policy};
/// struct Lookup;
/// impl FactProvider for Lookup {
///     fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
///         match key.name {
///             "scanner" => Some(FactValue::Str("infected".into())),
///             "dnsbl_listed" => Some(FactValue::Bool(true)), // an expensive lookup
///             _ => None,
///         }
///     }
/// }
/// let policy = Policy::parse(r#"
///     fact dnsbl_listed: bool
///     rule "listed" { when dnsbl_listed then reject }
/// "#).unwrap();
/// assert_eq!(policy.evaluate_lazy(&Lookup).rule(), Some("listed"));
/// ```
pub trait FactProvider {
    /// The value of `key`, or `None` when it is unknown.
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>>;
}

/// Facts for one evaluation, built by hand or from JSON.
///
/// ```
/// use mailpolicy::{Direction, Facts, Scanner};
/// let facts = Facts::new()
///     .direction(Direction::Inbound)
///     .scanner(Scanner::Infected)
///     .virus("W32/Sobig.F@MM")
///     .virus("Heuristics.Phishing.Email") // a second detection
///     .client_ip("203.0.113.9".parse().unwrap())
///     .custom("dnsbl_listed", true);
/// assert_eq!(
///     facts.get("virus").unwrap().to_string(),
///     r#"["W32/Sobig.F@MM", "Heuristics.Phishing.Email"]"#
/// );
/// assert!(facts.get("sender").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    builtin: [Option<FactValue<'static>>; BUILTIN_COUNT],
    custom: Vec<(String, FactValue<'static>)>,
}

impl Facts {
    /// No facts: everything unknown.
    #[inline]
    pub fn new() -> Facts {
        Facts::default()
    }

    /// Sets `direction`.
    #[inline]
    pub fn direction(mut self, d: Direction) -> Facts {
        self.builtin[0] = Some(FactValue::Direction(d));
        self
    }

    /// Sets `scanner`.
    #[inline]
    pub fn scanner(mut self, s: Scanner) -> Facts {
        self.builtin[1] = Some(FactValue::Scanner(s));
        self
    }

    /// Adds a detection name to `virus` (a set: call it once per name the
    /// scanners reported; a name already there is not added twice). Before
    /// the first call `virus` is unknown; see [`Facts::viruses`] for the
    /// empty set.
    ///
    /// ```
    /// use mailpolicy::{FactValue, Facts};
    /// let facts = Facts::new().virus("PUA.Win.Packer.Upx").virus("Win.Trojan.Agent");
    /// assert_eq!(
    ///     facts.get("virus"),
    ///     Some(&FactValue::set(["PUA.Win.Packer.Upx", "Win.Trojan.Agent"]))
    /// );
    /// ```
    #[inline]
    pub fn virus(mut self, name: impl Into<String>) -> Facts {
        self.add_virus(name.into());
        self
    }

    /// Adds a name to `virus` in place (the builder's move stays inlined).
    fn add_virus(&mut self, name: String) {
        let slot = &mut self.builtin[FactId::VIRUS.index()];
        *slot = Some(add_name(slot.take(), name));
    }

    /// Sets `virus` to exactly these names; none at all is the known empty
    /// set ("scanned, nothing found"), unlike an unknown `virus`.
    ///
    /// ```
    /// use mailpolicy::Facts;
    /// let scanned_clean = Facts::new().viruses(Vec::<String>::new());
    /// assert_eq!(scanned_clean.get("virus").unwrap().to_string(), "[]");
    /// ```
    #[inline]
    pub fn viruses<I, S>(mut self, names: I) -> Facts
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.builtin[FactId::VIRUS.index()] = Some(FactValue::set(names));
        self
    }

    /// Sets `forges_sender`.
    #[inline]
    pub fn forges_sender(mut self, forges: bool) -> Facts {
        self.builtin[3] = Some(FactValue::Bool(forges));
        self
    }

    /// Sets `client_ip`.
    #[inline]
    pub fn client_ip(mut self, ip: IpAddr) -> Facts {
        self.builtin[4] = Some(FactValue::Ip(ip));
        self
    }

    /// Sets `sender` (`""` is the null reverse-path `<>`).
    #[inline]
    pub fn sender(mut self, sender: impl Into<String>) -> Facts {
        self.builtin[5] = Some(FactValue::Str(Cow::Owned(sender.into())));
        self
    }

    /// Sets `recipient`.
    #[inline]
    pub fn recipient(mut self, recipient: impl Into<String>) -> Facts {
        self.builtin[6] = Some(FactValue::Str(Cow::Owned(recipient.into())));
        self
    }

    /// Sets `authenticated`.
    #[inline]
    pub fn authenticated(mut self, authenticated: bool) -> Facts {
        self.builtin[7] = Some(FactValue::Bool(authenticated));
        self
    }

    /// Sets `size` in bytes.
    #[inline]
    pub fn size(mut self, bytes: i64) -> Facts {
        self.builtin[8] = Some(FactValue::Int(bytes));
        self
    }

    /// Sets `spam_score`.
    #[inline]
    pub fn spam_score(mut self, score: f64) -> Facts {
        self.builtin[9] = Some(FactValue::Number(score));
        self
    }

    /// Sets any fact by name, built-in or custom (`Facts::custom("dnsbl_listed", true)`).
    /// A name no policy declares is simply never read.
    #[inline]
    pub fn custom(mut self, name: &str, value: impl Into<FactValue<'static>>) -> Facts {
        self.set(name, value.into());
        self
    }

    /// Sets any fact by name, replacing an earlier value.
    pub fn set(&mut self, name: &str, value: FactValue<'static>) {
        if let Some(i) = BUILTIN_FACTS.iter().position(|b| *b == name) {
            self.builtin[i] = Some(value);
        } else if let Some(slot) = self.custom.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value;
        } else {
            self.custom.push((name.to_owned(), value));
        }
    }

    /// Makes a fact unknown again.
    pub fn unset(&mut self, name: &str) {
        if let Some(i) = BUILTIN_FACTS.iter().position(|b| *b == name) {
            self.builtin[i] = None;
        } else {
            self.custom.retain(|(n, _)| n != name);
        }
    }

    /// The value of a fact, by name.
    pub fn get(&self, name: &str) -> Option<&FactValue<'static>> {
        match BUILTIN_FACTS.iter().position(|b| *b == name) {
            Some(i) => self.builtin[i].as_ref(),
            None => self.custom.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        }
    }

    /// Every supplied fact, built-ins first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FactValue<'static>)> {
        let builtin = BUILTIN_FACTS
            .iter()
            .zip(self.builtin.iter())
            .filter_map(|(n, v)| v.as_ref().map(|v| (*n, v)));
        builtin.chain(self.custom.iter().map(|(n, v)| (n.as_str(), v)))
    }
}

impl FactProvider for Facts {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        let value = if key.id.index() < BUILTIN_COUNT {
            self.builtin[key.id.index()].as_ref()
        } else {
            self.custom
                .iter()
                .find(|(n, _)| n == key.name)
                .map(|(_, v)| v)
        }?;
        Some(match value {
            FactValue::Str(s) => FactValue::Str(Cow::Borrowed(s)),
            FactValue::Set(names) => FactValue::Set(Cow::Borrowed(names)),
            other => other.clone(),
        })
    }
}

impl From<bool> for FactValue<'static> {
    fn from(v: bool) -> Self {
        FactValue::Bool(v)
    }
}
impl From<i64> for FactValue<'static> {
    fn from(v: i64) -> Self {
        FactValue::Int(v)
    }
}
impl From<f64> for FactValue<'static> {
    fn from(v: f64) -> Self {
        FactValue::Number(v)
    }
}
impl From<&str> for FactValue<'static> {
    fn from(v: &str) -> Self {
        FactValue::Str(Cow::Owned(v.to_owned()))
    }
}
impl From<String> for FactValue<'static> {
    fn from(v: String) -> Self {
        FactValue::Str(Cow::Owned(v))
    }
}
impl From<IpAddr> for FactValue<'static> {
    fn from(v: IpAddr) -> Self {
        FactValue::Ip(v)
    }
}
impl From<Direction> for FactValue<'static> {
    fn from(v: Direction) -> Self {
        FactValue::Direction(v)
    }
}
impl From<Scanner> for FactValue<'static> {
    fn from(v: Scanner) -> Self {
        FactValue::Scanner(v)
    }
}

/// `value` as a set with `name` added (a value that is no set is replaced).
#[inline]
fn add_name(value: Option<FactValue<'static>>, name: String) -> FactValue<'static> {
    let mut names: Vec<String> = match value {
        Some(FactValue::Set(names)) => names.into_owned(),
        Some(FactValue::Str(s)) => vec![s.into_owned()],
        // Most messages carry one detection: room for exactly one name.
        _ => return FactValue::Set(Cow::Owned(vec![name])),
    };
    if !names.contains(&name) {
        names.push(name);
    }
    FactValue::Set(Cow::Owned(names))
}

impl From<Vec<String>> for FactValue<'static> {
    fn from(v: Vec<String>) -> Self {
        FactValue::set(v)
    }
}
impl From<Vec<&str>> for FactValue<'static> {
    fn from(v: Vec<&str>) -> Self {
        FactValue::set(v)
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) as its IPv4 address.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

impl Facts {
    /// The slot of built-in fact `id` (`None` for a custom id).
    #[inline]
    pub(crate) fn builtin_slot(&self, id: FactId) -> Option<&Option<FactValue<'static>>> {
        self.builtin.get(id.index())
    }

    /// The stored value of built-in fact `id` (`None` also for a custom id).
    #[inline]
    pub(crate) fn builtin(&self, id: FactId) -> Option<&FactValue<'static>> {
        self.builtin.get(id.index())?.as_ref()
    }

    /// The stored value of fact `id` (named `name` when custom), without copying.
    pub(crate) fn value_ref(&self, id: FactId, name: &str) -> Option<&FactValue<'static>> {
        match self.builtin.get(id.index()) {
            Some(v) => v.as_ref(),
            None => self.custom.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        }
    }
}
