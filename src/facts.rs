//! Facts: what the filter knows about one message for one recipient.
//!
//! Ten facts are built in ([`BUILTIN_FACTS`]); a policy may declare more with
//! `fact NAME: TYPE`. Any fact may be unknown (not supplied). Facts come from
//! the [`Facts`] builder, from JSON ([`crate::Policy::facts_from_json`]), or
//! lazily from an embedder's [`FactProvider`].

use arrayvec::ArrayString;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::mem::ManuallyDrop;
use std::net::IpAddr;
use std::sync::OnceLock;

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
#[derive(Clone, Default)]
pub struct Facts {
    /// The built-in facts' values, by [`FactId`] index. Dropped by hand
    /// ([`Drop`] below): only the slots in `owned` can hold heap memory,
    /// and dropping each of the ten slots (a match on every value) cost
    /// more than building the facts.
    builtin: ManuallyDrop<[Option<FactValue<'static>>; BUILTIN_COUNT]>,
    /// Per built-in slot, its decision-table coordinate as the evaluator
    /// reads it ([`Facts::table_code`]): [`CODE_UNKNOWN`], the value's
    /// index + 1 for `direction` and `scanner` holding a [`Direction`] or
    /// [`Scanner`] and for `forges_sender` and `authenticated` holding a
    /// bool, [`CODE_OTHER`] for any other value.
    codes: [u8; BUILTIN_COUNT],
    /// Bit `i` (below [`BUILTIN_COUNT`]): built-in slot `i` was given a
    /// value that may own heap memory (text or a set of names) since it was
    /// last emptied by drop. Bit [`ONE_NAME`]: `virus` holds the one name
    /// [`Facts::virus`] was given, without a set around it, and is read
    /// everywhere as the one-name set it is: a name of at most
    /// [`INLINE_NAME`] bytes is kept in `inline_name` (the `virus` slot
    /// stays empty: no allocation per message), a longer one in the slot as
    /// `FactValue::Str(Cow::Owned)`.
    owned: u16,
    /// The one name of a one-name `virus` when it fits (see `owned`);
    /// empty whenever [`ONE_NAME`] is clear.
    inline_name: ArrayString<INLINE_NAME>,
    /// `virus` as the one-name set [`Facts::get`] and [`Facts::iter`] lend
    /// out when [`ONE_NAME`] is set, made on the first such call. Empty
    /// whenever `ONE_NAME` is clear (every write to `virus` empties it).
    /// Dropped by hand (only when `ONE_NAME` is set), as `custom` (only
    /// when it ever held a fact): their drop glue cost ~25 instructions on
    /// every message that uses neither.
    one_name_set: ManuallyDrop<OnceLock<Box<FactValue<'static>>>>,
    custom: ManuallyDrop<Vec<(String, FactValue<'static>)>>,
    /// Where each name of a `virus` set built by [`Facts::virus`] is, once
    /// it has [`INDEX_FROM`] names: a name added then is looked up, not
    /// compared with every name (adding n names one by one is not
    /// quadratic). Kept only while bit [`INDEXED`] of `owned` is set (every
    /// other write to `virus` drops it); dropped by hand, as the others.
    name_index: ManuallyDrop<Option<Box<NameIndex>>>,
}

/// The first position of each name of a set, by a hash of the name.
#[derive(Clone, Default)]
struct NameIndex {
    hasher: RandomState,
    first: HashMap<u64, usize>,
}

/// From how many names a `virus` set built one name at a time is indexed.
const INDEX_FROM: usize = 16;
/// The bit of `Facts::owned` that marks a `virus` set with its
/// `Facts::name_index`.
const INDEXED: u16 = 1 << 14;

/// The bit of `Facts::owned` that marks a one-name `virus` (see there).
const ONE_NAME: u16 = 1 << 15;
/// The longest detection name (in bytes) [`Facts::virus`] keeps without an
/// allocation: most scanners' names fit (`Win.Test.EICAR_HDB-1` is 20).
const INLINE_NAME: usize = 30;
/// The bits of `Facts::owned` that stand for slots.
const SLOT_BITS: u16 = (1 << BUILTIN_COUNT) - 1;
const _: () = assert!(BUILTIN_COUNT < 14);

/// [`Facts::table_code`] of an unknown fact.
pub(crate) const CODE_UNKNOWN: u8 = 0;
/// [`Facts::table_code`] of a value that must be converted by the fact's type.
pub(crate) const CODE_OTHER: u8 = u8::MAX;

impl Drop for Facts {
    #[inline]
    fn drop(&mut self) {
        // Every slot outside `owned` holds nothing or a value that owns no
        // memory, so leaving the array itself undropped leaks nothing.
        let mut bits = self.owned & SLOT_BITS;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(slot) = self.builtin.get_mut(i) {
                *slot = None;
            }
        }
        // The lent set exists only while `ONE_NAME` is set; `custom` owns
        // memory only once it has room for a fact.
        if self.owned & ONE_NAME != 0 {
            drop(self.one_name_set.take());
        }
        if self.owned & INDEXED != 0 {
            drop(self.name_index.take());
        }
        if self.custom.capacity() != 0 {
            drop(std::mem::take(&mut *self.custom));
        }
    }
}

impl fmt::Debug for Facts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let builtin: [Option<FactValue<'_>>; BUILTIN_COUNT] =
            std::array::from_fn(|i| self.shown(i));
        f.debug_struct("Facts")
            .field("builtin", &builtin)
            .field("custom", &*self.custom)
            .finish()
    }
}

impl PartialEq for Facts {
    fn eq(&self, other: &Facts) -> bool {
        (0..BUILTIN_COUNT).all(|i| self.shown(i) == other.shown(i)) && *self.custom == *other.custom
    }
}

/// The table code of `v` in built-in slot `i` (see `Facts::codes`).
#[inline(always)]
fn code_of(i: usize, v: &FactValue<'_>) -> u8 {
    match v {
        FactValue::Direction(d) if i == FactId::DIRECTION.index() => *d as u8 + 1,
        FactValue::Scanner(s) if i == FactId::SCANNER.index() => *s as u8 + 1,
        FactValue::Bool(b)
            if i == FactId::FORGES_SENDER.index() || i == FactId::AUTHENTICATED.index() =>
        {
            u8::from(*b) + 1
        }
        _ => CODE_OTHER,
    }
}

impl Facts {
    /// No facts: everything unknown.
    #[inline(always)]
    pub fn new() -> Facts {
        Facts::default()
    }

    /// Stores `v` in built-in slot `i` (an index below [`BUILTIN_COUNT`]),
    /// keeping its table code and ownership bit.
    #[inline(always)]
    fn put(&mut self, i: usize, v: FactValue<'static>) {
        if i == FactId::VIRUS.index() {
            self.forget_one_name();
        }
        self.put_slot(i, v);
    }

    /// `virus` no longer holds a one-name set of [`Facts::virus`]'s, nor
    /// an indexed set.
    #[inline(always)]
    fn forget_one_name(&mut self) {
        if self.owned & ONE_NAME != 0 {
            self.owned &= !ONE_NAME;
            self.inline_name.clear();
            drop(self.one_name_set.take());
        }
        if self.owned & INDEXED != 0 {
            self.owned &= !INDEXED;
            drop(self.name_index.take());
        }
    }

    /// [`Facts::put`] without the `virus` bookkeeping.
    #[inline(always)]
    fn put_slot(&mut self, i: usize, v: FactValue<'static>) {
        if matches!(v, FactValue::Str(_) | FactValue::Set(_)) {
            self.owned |= 1 << (i % 16);
        }
        if let (Some(c), Some(slot)) = (self.codes.get_mut(i), self.builtin.get_mut(i)) {
            *c = code_of(i, &v);
            *slot = Some(v);
        }
    }

    /// Sets `direction`.
    #[inline(always)]
    pub fn direction(mut self, d: Direction) -> Facts {
        self.put(FactId::DIRECTION.index(), FactValue::Direction(d));
        self
    }

    /// Sets `scanner`.
    #[inline(always)]
    pub fn scanner(mut self, s: Scanner) -> Facts {
        self.put(FactId::SCANNER.index(), FactValue::Scanner(s));
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
    ///
    /// Takes any `&str`, `String` or `&String` (anything that lends a
    /// `&str`); a name of up to 30 bytes is kept without an allocation.
    #[inline(always)]
    pub fn virus(mut self, name: impl AsRef<str>) -> Facts {
        self.add_virus(name.as_ref());
        self
    }

    /// [`Facts::virus`] on the facts in place.
    #[inline(always)]
    fn add_virus(&mut self, name: &str) {
        let i = FactId::VIRUS.index();
        if self.owned & ONE_NAME == 0 && matches!(self.builtin.get(i), Some(None)) {
            // Most messages carry one detection: the name alone, no set
            // around it (`ONE_NAME`; `virus` was unknown, so no set was
            // lent out for it), and inline when it fits.
            // Only values go through the out-of-line parts (`stored_name`,
            // `add_name`), never `&mut self`, and the facts are written
            // without a branch: the builder's facts stay where they are
            // (no copy of the whole struct per call).
            let (slot_value, inline) = stored_name(name);
            let long = slot_value.is_some();
            if let Some(slot) = self.builtin.get_mut(i) {
                *slot = slot_value;
            }
            self.inline_name = inline;
            self.owned |= u16::from(long) << i;
            self.owned |= ONE_NAME;
            if let Some(c) = self.codes.get_mut(i) {
                *c = CODE_OTHER;
            }
        } else if let Some(slot) = self.builtin.get_mut(i) {
            let old = slot.take();
            let mut index = match self.owned & INDEXED {
                0 => None,
                _ => self.name_index.take(),
            };
            let v = add_name(old, self.inline_name(), name, &mut index);
            self.put(i, v);
            if index.is_some() {
                *self.name_index = index;
                self.owned |= INDEXED;
            }
        }
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
        self.put(FactId::VIRUS.index(), FactValue::set(names));
        self
    }

    /// Sets `forges_sender`.
    #[inline(always)]
    pub fn forges_sender(mut self, forges: bool) -> Facts {
        self.put(FactId::FORGES_SENDER.index(), FactValue::Bool(forges));
        self
    }

    /// Sets `client_ip`.
    #[inline(always)]
    pub fn client_ip(mut self, ip: IpAddr) -> Facts {
        self.put(FactId::CLIENT_IP.index(), FactValue::Ip(ip));
        self
    }

    /// Sets `sender` (`""` is the null reverse-path `<>`).
    #[inline(always)]
    pub fn sender(mut self, sender: impl Into<String>) -> Facts {
        self.put(
            FactId::SENDER.index(),
            FactValue::Str(Cow::Owned(sender.into())),
        );
        self
    }

    /// Sets `recipient`.
    #[inline(always)]
    pub fn recipient(mut self, recipient: impl Into<String>) -> Facts {
        self.put(
            FactId::RECIPIENT.index(),
            FactValue::Str(Cow::Owned(recipient.into())),
        );
        self
    }

    /// Sets `authenticated`.
    #[inline(always)]
    pub fn authenticated(mut self, authenticated: bool) -> Facts {
        self.put(
            FactId::AUTHENTICATED.index(),
            FactValue::Bool(authenticated),
        );
        self
    }

    /// Sets `size` in bytes.
    #[inline(always)]
    pub fn size(mut self, bytes: i64) -> Facts {
        self.put(FactId::SIZE.index(), FactValue::Int(bytes));
        self
    }

    /// Sets `spam_score`.
    #[inline(always)]
    pub fn spam_score(mut self, score: f64) -> Facts {
        self.put(FactId::SPAM_SCORE.index(), FactValue::Number(score));
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
            self.put(i, value);
        } else if let Some(slot) = self.custom.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value;
        } else {
            self.custom.push((name.to_owned(), value));
        }
    }

    /// Makes a fact unknown again.
    pub fn unset(&mut self, name: &str) {
        if let Some(i) = BUILTIN_FACTS.iter().position(|b| *b == name) {
            if i == FactId::VIRUS.index() {
                self.forget_one_name();
            }
            if let (Some(c), Some(slot)) = (self.codes.get_mut(i), self.builtin.get_mut(i)) {
                *c = CODE_UNKNOWN;
                *slot = None;
            }
        } else {
            self.custom.retain(|(n, _)| n != name);
        }
    }

    /// The value of a fact, by name.
    pub fn get(&self, name: &str) -> Option<&FactValue<'static>> {
        match BUILTIN_FACTS.iter().position(|b| *b == name) {
            Some(i) => self.public(i),
            None => self.custom.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        }
    }

    /// Every supplied fact, built-ins first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FactValue<'static>)> {
        let builtin = BUILTIN_FACTS
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.public(i).map(|v| (*n, v)));
        builtin.chain(self.custom.iter().map(|(n, v)| (n.as_str(), v)))
    }
}

impl FactProvider for Facts {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        if key.id.index() < BUILTIN_COUNT {
            return self.shown(key.id.index());
        }
        self.custom
            .iter()
            .find(|(n, _)| n == key.name)
            .map(|(_, v)| lend(v))
    }
}

/// `v` lending its text or names (no copy of them).
fn lend<'a>(v: &'a FactValue<'_>) -> FactValue<'a> {
    match v {
        FactValue::Str(s) => FactValue::Str(Cow::Borrowed(s)),
        FactValue::Set(names) => FactValue::Set(Cow::Borrowed(names)),
        other => other.clone(),
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

/// A one-name `virus` as [`Facts`] keeps it: inline when it fits (the slot
/// empty), else in the slot as text (the inline name empty).
///
/// `extern "C"` (here and on [`add_name`]) only to tell the compiler that
/// the call does not unwind (an unwind out of it would abort; it can only
/// fail on memory exhaustion, which aborts anyway): a call that may unwind
/// needs a landing pad that drops the builder's facts, and that made the
/// compiler copy the whole `Facts` (~400 bytes) at every builder call
/// around it instead of building it in place.
#[inline(never)]
#[allow(improper_ctypes_definitions)]
extern "C" fn stored_name(name: &str) -> (Option<FactValue<'static>>, ArrayString<INLINE_NAME>) {
    match ArrayString::from(name) {
        Ok(inline) => (None, inline),
        Err(_) => (
            Some(FactValue::Str(Cow::Owned(name.to_owned()))),
            ArrayString::new(),
        ),
    }
}

/// `virus` as a set with `name` added: `old` is the slot's value, `inline`
/// the one name kept inline (when the slot is empty); a value that is no
/// set or text is replaced.
#[inline(never)]
#[allow(improper_ctypes_definitions)]
extern "C" fn add_name(
    old: Option<FactValue<'static>>,
    inline: Option<&str>,
    name: &str,
    index: &mut Option<Box<NameIndex>>,
) -> FactValue<'static> {
    let mut names: Vec<String> = match (old, inline) {
        // `index` (when there is one) indexes this set.
        (Some(FactValue::Set(names)), _) => names.into_owned(),
        (old, inline) => {
            *index = None;
            match (old, inline) {
                (Some(FactValue::Str(s)), _) => vec![s.into_owned()],
                (None, Some(first)) => vec![first.to_owned()],
                // Most messages carry one detection: room for exactly one name.
                _ => Vec::with_capacity(1),
            }
        }
    };
    if !has_name(&names, name, index) {
        names.push(name.to_owned());
    }
    FactValue::Set(Cow::Owned(names))
}

/// Whether `names` holds `name`: compared with each name while the set is
/// small, then looked up in `index` (made here from the names when the set
/// reaches [`INDEX_FROM`]). When `name` is not there the caller adds it at
/// the end: the index already says so.
fn has_name(names: &[String], name: &str, index: &mut Option<Box<NameIndex>>) -> bool {
    if index.is_none() && names.len() >= INDEX_FROM {
        let mut made = NameIndex::default();
        for (at, n) in names.iter().enumerate() {
            let h = made.hasher.hash_one(n.as_str());
            made.first.entry(h).or_insert(at);
        }
        *index = Some(Box::new(made));
    }
    let Some(ix) = index else {
        return names.iter().any(|n| n == name);
    };
    let h = ix.hasher.hash_one(name);
    match ix.first.get(&h) {
        Some(&at) if names.get(at).is_some_and(|n| n == name) => true,
        // Another name with the same 64-bit hash (randomly keyed, so not
        // one an attacker can aim for): compare with every name.
        Some(_) => names.iter().any(|n| n == name),
        None => {
            ix.first.insert(h, names.len());
            false
        }
    }
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
    /// The decision-table code of fact `id` as stored ([`CODE_UNKNOWN`],
    /// the value's index + 1 for a built-in enum or bool holding its own
    /// type, [`CODE_OTHER`] for any other value and for a custom id).
    #[inline(always)]
    pub(crate) fn table_code(&self, id: FactId) -> u8 {
        self.codes.get(id.index()).copied().unwrap_or(CODE_OTHER)
    }

    /// The stored value of built-in fact `id` (`None` also for a custom id).
    /// A one-name `virus` is stored as its name: in the slot as text when
    /// it is long, else inline with the slot empty ([`Facts::inline_name`]).
    #[inline]
    pub(crate) fn builtin(&self, id: FactId) -> Option<&FactValue<'static>> {
        self.builtin.get(id.index())?.as_ref()
    }

    /// The name of a one-name `virus` kept inline, when the `virus` slot
    /// is empty ([`Facts::builtin`] gave `None`); `None` when there is none.
    #[inline(always)]
    pub(crate) fn inline_name(&self) -> Option<&str> {
        (self.owned & ONE_NAME != 0).then(|| self.inline_name.as_str())
    }

    /// The name of a one-name `virus` set built by [`Facts::virus`] (stored
    /// without the set), inline or not.
    #[inline]
    pub(crate) fn one_name(&self) -> Option<&str> {
        if self.owned & ONE_NAME == 0 {
            return None;
        }
        match self.builtin.get(FactId::VIRUS.index()) {
            Some(Some(FactValue::Str(name))) => Some(name),
            _ => Some(self.inline_name.as_str()),
        }
    }

    /// A one-name `virus` as the one-name set it stands for (made on the
    /// first call, kept until `virus` changes); `None` for any other value.
    pub(crate) fn one_name_set(&self) -> Option<&[String]> {
        match self.public(FactId::VIRUS.index()) {
            Some(FactValue::Set(names)) if self.owned & ONE_NAME != 0 => Some(names),
            _ => None,
        }
    }

    /// Built-in slot `i`'s value as supplied: a one-name `virus` as the set
    /// it stands for, text and names lent (the one-name set is made on the
    /// first call, as for [`Facts::get`]).
    fn shown(&self, i: usize) -> Option<FactValue<'_>> {
        self.public(i).map(lend)
    }

    /// Built-in slot `i`'s value for [`Facts::get`] and [`Facts::iter`]:
    /// a one-name `virus` as a set, made on the first call.
    fn public(&self, i: usize) -> Option<&FactValue<'static>> {
        if i == FactId::VIRUS.index() {
            if let Some(name) = self.one_name() {
                let set = self
                    .one_name_set
                    .get_or_init(|| Box::new(FactValue::Set(Cow::Owned(vec![name.to_owned()]))));
                return Some(set);
            }
        }
        self.builtin.get(i)?.as_ref()
    }

    /// The stored value of fact `id` (named `name` when custom), without copying.
    pub(crate) fn value_ref(&self, id: FactId, name: &str) -> Option<&FactValue<'static>> {
        match self.builtin.get(id.index()) {
            Some(v) => v.as_ref(),
            None => self.custom.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_and_debug_ignore_how_the_facts_were_built() {
        let built = Facts::new()
            .direction(Direction::Inbound)
            .scanner(Scanner::Infected)
            .virus("A")
            .sender("a@b");
        let mut set = Facts::new();
        set.set("sender", FactValue::Str(Cow::Borrowed("a@b")));
        set.set("virus", FactValue::set(["A"]));
        set.set("scanner", FactValue::Scanner(Scanner::Infected));
        set.set("direction", FactValue::Direction(Direction::Inbound));
        set.set("spam_score", FactValue::Number(1.0));
        set.unset("spam_score");
        assert_eq!(built, set);
        assert_eq!(built.clone(), set);
        assert_ne!(built, set.clone().authenticated(true));
        assert_eq!(format!("{built:?}"), format!("{set:?}"));
        let debug = format!("{built:?}");
        assert!(debug.starts_with("Facts { builtin: [Some(Direction(Inbound))"));
        assert!(debug.ends_with("custom: [] }"));
    }

    #[test]
    fn table_codes_follow_every_change() {
        let code = |f: &Facts, id: FactId| f.table_code(id);
        let f = Facts::new();
        for i in 0..BUILTIN_COUNT {
            assert_eq!(code(&f, FactId(i as u16)), CODE_UNKNOWN);
        }
        assert_eq!(code(&f, FactId(BUILTIN_COUNT as u16)), CODE_OTHER);
        let mut f = f
            .direction(Direction::Internal)
            .scanner(Scanner::Timeout)
            .forges_sender(false)
            .authenticated(true)
            .size(3);
        assert_eq!(code(&f, FactId::DIRECTION), Direction::Internal as u8 + 1);
        assert_eq!(code(&f, FactId::SCANNER), Scanner::Timeout as u8 + 1);
        assert_eq!(code(&f, FactId::FORGES_SENDER), 1);
        assert_eq!(code(&f, FactId::AUTHENTICATED), 2);
        assert_eq!(code(&f, FactId::SIZE), CODE_OTHER);
        // A value of another type is converted by the table's type.
        f.set("scanner", FactValue::from("clean"));
        assert_eq!(code(&f, FactId::SCANNER), CODE_OTHER);
        f.set("direction", FactValue::Scanner(Scanner::Clean));
        assert_eq!(code(&f, FactId::DIRECTION), CODE_OTHER);
        f.unset("authenticated");
        assert_eq!(code(&f, FactId::AUTHENTICATED), CODE_UNKNOWN);
        assert!(f.get("authenticated").is_none());
        f.set("forges_sender", FactValue::Bool(true));
        assert_eq!(code(&f, FactId::FORGES_SENDER), 2);
    }

    #[test]
    fn a_one_name_virus_is_the_set_everywhere() {
        let one = Facts::new().scanner(Scanner::Infected).virus("A");
        let set = Facts::new()
            .scanner(Scanner::Infected)
            .viruses(["A".to_owned()]);
        assert_eq!(one.get("virus"), Some(&FactValue::set(["A"])));
        assert_eq!(one.get("virus"), set.get("virus"));
        assert_eq!(one, set);
        assert_eq!(set, one);
        assert_eq!(format!("{one:?}"), format!("{set:?}"));
        assert!(format!("{one:?}").contains(r#"Some(Set(["A"]))"#));
        let listed = |f: &Facts| {
            f.iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(listed(&one), listed(&set));
        let key = FactKey {
            id: FactId::VIRUS,
            name: "virus",
        };
        assert_eq!(one.fact(key), Some(FactValue::set(["A"])));
        // The lent set follows every later change, also in a clone.
        let cloned = one.clone();
        assert_eq!(cloned.get("virus"), Some(&FactValue::set(["A"])));
        let two = one.clone().virus("B");
        assert_eq!(two.get("virus"), Some(&FactValue::set(["A", "B"])));
        assert_eq!(
            one.clone().virus("A").get("virus"),
            Some(&FactValue::set(["A"]))
        );
        let mut text = one.clone();
        text.set("virus", FactValue::from("C"));
        assert_eq!(text.get("virus"), Some(&FactValue::from("C")));
        assert_eq!(text.fact(key), Some(FactValue::from("C")));
        assert_ne!(text, one);
        let mut gone = one.clone();
        gone.unset("virus");
        assert_eq!(gone.get("virus"), None);
        assert_eq!(
            gone.clone().virus("D").get("virus"),
            Some(&FactValue::set(["D"]))
        );
        // Text set by hand stays text (a one-element set to conditions).
        let mut by_hand = Facts::new();
        by_hand.set("virus", FactValue::from("E"));
        assert_eq!(by_hand.get("virus"), Some(&FactValue::from("E")));
        assert_ne!(by_hand, Facts::new().virus("E"));
    }

    #[test]
    fn a_one_name_virus_of_any_length_is_the_set() {
        let table = FactTable::builtins();
        let key = FactKey {
            id: FactId::VIRUS,
            name: "virus",
        };
        let long = "L".repeat(INLINE_NAME + 1);
        let fits = "F".repeat(INLINE_NAME);
        // A multi-byte character across the inline limit.
        let split = format!("{}é", "S".repeat(INLINE_NAME - 1));
        for name in ["", "A", "Ünïcödé.Wörm", &fits, &long, &split] {
            let one = Facts::new().scanner(Scanner::Infected).virus(name);
            let set = Facts::new().scanner(Scanner::Infected).viruses([name]);
            assert_eq!(one.get("virus"), Some(&FactValue::set([name])), "{name}");
            assert_eq!(one, set, "{name}");
            assert_eq!(format!("{one:?}"), format!("{set:?}"), "{name}");
            assert_eq!(one.fact(key), Some(FactValue::set([name])), "{name}");
            assert_eq!(one.one_name(), Some(name), "{name}");
            // Kept inline exactly when it fits.
            assert_eq!(
                one.builtin(FactId::VIRUS).is_none(),
                name.len() <= INLINE_NAME,
                "{name}"
            );
            // Evaluation reads the name as text, `explain` as the set.
            let mut direct = crate::eval::DirectSource {
                facts: &one,
                table: &table,
            };
            let read = format!("{:?}", crate::eval::FactSource::value(&mut direct, key.id));
            assert_eq!(read, format!("Some(Str({name:?}))"));
            // Every way to pass a name, and a second name after it.
            let owned = name.to_owned();
            assert_eq!(Facts::new().virus(&owned), Facts::new().virus(name));
            assert_eq!(Facts::new().virus(owned.clone()), Facts::new().virus(name));
            let two = one.clone().virus("B");
            assert_eq!(two.get("virus"), Some(&FactValue::set([name, "B"])));
            assert_eq!(one.clone().virus(name), one);
            let mut gone = one.clone();
            gone.unset("virus");
            assert_eq!(gone.get("virus"), None);
            assert_eq!(gone.one_name(), None);
            assert_eq!(gone.virus("C").get("virus"), Some(&FactValue::set(["C"])));
        }
    }

    #[test]
    fn many_names_added_one_by_one_form_the_set() {
        // Past `INDEX_FROM` names the set is indexed: the same set as
        // `FactValue::set` makes of the same names, repeats dropped.
        let names: Vec<String> = (0..3 * INDEX_FROM + 5)
            .flat_map(|i| [format!("V{i}"), format!("V{}", i / 2), "V0".to_owned()])
            .collect();
        let expected = FactValue::set(names.clone());
        let mut built = Facts::new();
        for (k, n) in names.iter().enumerate() {
            built = built.virus(n);
            if k == 2 * INDEX_FROM {
                // A clone keeps its own index.
                let cloned = built.clone().virus("V1").virus("Extra");
                assert!(
                    matches!(cloned.get("virus"), Some(FactValue::Set(s)) if s.last().is_some_and(|l| l == "Extra"))
                );
            }
        }
        assert_eq!(built.get("virus"), Some(&expected));
        assert!(built.owned & INDEXED != 0);
        // Any other write to `virus` drops the index; adding goes on right.
        let mut replaced = built.clone();
        replaced.set("virus", FactValue::set(["A", "B"]));
        assert!(replaced.owned & INDEXED == 0);
        let replaced = replaced.virus("B").virus("C");
        assert_eq!(
            replaced.get("virus"),
            Some(&FactValue::set(["A", "B", "C"]))
        );
        let mut gone = built.clone();
        gone.unset("virus");
        assert!(gone.owned & INDEXED == 0);
        assert_eq!(gone.virus("V7").get("virus"), Some(&FactValue::set(["V7"])));
        let again = built
            .clone()
            .viruses(names.iter().take(20))
            .virus("V3")
            .virus("New");
        let mut twenty: Vec<String> = names.iter().take(20).cloned().collect();
        twenty.push("New".to_owned());
        assert_eq!(again.get("virus"), Some(&FactValue::set(twenty)));
    }

    #[test]
    fn names_added_one_by_one_form_a_set() {
        let f = Facts::new().virus("A").virus("B").virus("A");
        assert_eq!(f.get("virus"), Some(&FactValue::set(["A", "B"])));
        let f = Facts::new().sender("x").custom("virus", "C").virus("D");
        assert_eq!(f.get("virus"), Some(&FactValue::set(["C", "D"])));
        // Values replaced many times: each dropped once (Miri/ASan would
        // catch a double drop; here the values stay readable).
        let mut f = Facts::new();
        for i in 0..5 {
            f.set("sender", FactValue::from(format!("s{i}")));
            f.set("virus", FactValue::set([format!("v{i}")]));
        }
        assert_eq!(f.get("sender"), Some(&FactValue::from("s4")));
        assert_eq!(f.clone(), f);
    }
}
