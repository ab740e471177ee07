//! The checker's failures as types: one variant per failure, with its code,
//! message and help together in one place (cedar-policy's `ToASTErrorKind`
//! is the model). The rule, default or test a failure is in is not part of
//! the kind: [`Context`] carries it and rendering appends it.

use crate::diagnostics::Code;

/// Where a failure is: appended to its message when rendered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Context<'a> {
    /// At file level (declarations, limits).
    #[default]
    File,
    /// In the rule with this name (borrowed from the syntax tree: no copy
    /// per rule).
    Rule(&'a str),
    /// In the `default` actions.
    Default,
    /// In the test with this name.
    Test(&'a str),
}

impl std::fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Context::File => Ok(()),
            Context::Rule(name) => write!(f, " in rule {name:?}"),
            Context::Default => f.write_str(" in the default"),
            Context::Test(name) => write!(f, " in test {name:?}"),
        }
    }
}

/// A "did you mean" help, or `otherwise` when no name is close.
fn did_you_mean(hint: &Option<String>, otherwise: &str) -> String {
    match hint {
        Some(h) => format!("did you mean `{h}`?"),
        None => otherwise.into(),
    }
}

/// One failure found by the checker (without its span and context).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum CheckErrorKind {
    /// More rules than `max_rules`.
    TooManyRules { count: usize, limit: usize },
    /// More tests than `max_tests`.
    TooManyTests { count: usize, limit: usize },
    /// `policy "..."` given twice.
    PolicyTwice,
    /// `mode` given a name that is no mode.
    UnknownMode { name: String, hint: Option<String> },
    /// `mode` given twice.
    ModeTwice,
    /// Two rules with one name.
    DuplicateRule { name: String, first_line: usize },
    /// `default` given twice.
    DefaultTwice,
    /// A custom fact named like a built-in one.
    BuiltinFactRedeclared { name: String },
    /// A custom fact declared twice.
    FactTwice { name: String, first_line: usize },
    /// More custom facts than `max_custom_facts`.
    TooManyFacts { limit: usize },
    /// A fact type that is no type.
    UnknownType { name: String, hint: Option<String> },
    /// A set of something other than strings.
    SetOfNonString { elem: String },
    /// An enum with more values than allowed.
    TooManyEnumValues { count: usize, limit: usize },
    /// An enum value listed twice.
    EnumValueTwice { value: String },
    /// A list declared twice.
    ListTwice { name: String, first_line: usize },
    /// A list whose literals are of different kinds.
    MixedList {
        name: String,
        first: &'static str,
        other: &'static str,
    },
    /// A fact name that is not declared (`help` is worked out where the
    /// lists and facts are known).
    UnknownFact { name: String, help: String },
    /// A condition nested deeper than `max_nesting`.
    NestingTooDeep { limit: usize },
    /// A non-bool fact standing alone as a condition.
    NotABool {
        fact: String,
        ty: String,
        help: String,
    },
    /// `<`, `<=`, `>`, `>=` on a fact that is no number.
    OrderOnNonNumber {
        op: &'static str,
        fact: String,
        ty: String,
    },
    /// `==`/`!=` between an ip fact and a network.
    CompareNetwork {
        op: &'static str,
        net: String,
        fact: String,
    },
    /// `in` with a single value that is not a list.
    InNotList { fact: String, value: &'static str },
    /// `matches` on a fact that is not a string (or set of strings).
    MatchesNonString {
        fact: String,
        ty: String,
        help: String,
    },
    /// `matches` with an operand that is no glob, regex or list.
    MatchesOperand { value: &'static str },
    /// `any`/`all` before something other than a comparison, `in` or `matches`.
    QuantWithoutTest { word: &'static str },
    /// `any`/`all` on a fact that is not a set.
    QuantNonSet {
        word: &'static str,
        all: bool,
        fact: String,
        ty: String,
    },
    /// `any`/`all` with `!=`.
    QuantNe {
        word: &'static str,
        fact: String,
        value: String,
    },
    /// A list name that no list has.
    UndefinedList { name: String, hint: Option<String> },
    /// An ip fact tested against a list holding something else.
    IpListHolds { fact: String, value: &'static str },
    /// `matches` against a list holding something other than globs.
    GlobListHolds { value: &'static str },
    /// A glob with more stars than `max_glob_stars`.
    GlobTooManyStars { count: usize, limit: usize },
    /// A glob with too long a part with `?` between its stars.
    GlobWildPart { len: usize, limit: usize },
    /// A text that is no IP address.
    InvalidIp { text: String },
    /// A network where one address is compared.
    NetworkNotAddress { net: String, fact: String },
    /// A bare word that is no value of the enum fact.
    UnknownEnumValue {
        value: String,
        fact: String,
        help: String,
    },
    /// A literal of the wrong kind for the fact.
    LiteralMismatch {
        fact: String,
        ty: String,
        value: &'static str,
        help: Option<String>,
    },
    /// Two `quarantine`s in one action list.
    DuplicateQuarantine,
    /// An action list without a disposition.
    NoDisposition,
    /// An action list with several dispositions.
    ManyDispositions { count: usize },
    /// `expect rule "NAME"` naming no rule.
    UnknownRule { name: String, help: String },
    /// A test giving one fact twice.
    GivenTwice { fact: String },
    /// A test giving a list to a one-value fact.
    ListForOneValue { fact: String, ty: String },
    /// A test giving a fraction to an int fact.
    NotWhole { fact: String, value: f64 },
    /// `//`, which matches everything.
    EmptyRegex,
    /// The policy's regexes together above the compiled-regex budget.
    RegexBudget { limit: usize },
    /// The shared scans of one fact and the leaves no scan answers read its
    /// value more than `max_scan_passes` times per evaluation.
    ScanPasses {
        fact: String,
        passes: usize,
        limit: usize,
    },
    /// The rules one evaluation may try, with their conditions, take more
    /// than `max_eval_steps` steps.
    EvalSteps { steps: u64, limit: u64 },
    /// One regex compiling to more than `max_regex_bytes`.
    RegexTooBig { limit: usize },
    /// A regex the regex crate refuses (`detail` is its message).
    RegexSyntax {
        detail: String,
        help: Option<String>,
    },
    /// A CIDR with host bits set (`trunc` is the network meant).
    CidrHostBits { text: String, trunc: String },
    /// A text that is no CIDR.
    InvalidCidr { text: String, help: &'static str },
}

impl CheckErrorKind {
    /// The diagnostic code.
    pub(super) fn code(&self) -> Code {
        use CheckErrorKind::*;
        match self {
            TooManyRules { .. } | TooManyTests { .. } | TooManyFacts { .. } => Code::Limit,
            TooManyEnumValues { .. } => Code::Limit,
            PolicyTwice | ModeTwice | DefaultTwice => Code::DuplicateItem,
            BuiltinFactRedeclared { .. } | FactTwice { .. } | EnumValueTwice { .. } => {
                Code::DuplicateItem
            }
            UnknownMode { .. } | UnknownType { .. } | SetOfNonString { .. } => Code::Syntax,
            DuplicateRule { .. } => Code::DuplicateRule,
            ListTwice { .. } => Code::DuplicateList,
            MixedList { .. } => Code::TypeMismatch,
            UnknownFact { .. } => Code::UnknownFact,
            NestingTooDeep { .. } => Code::Limit,
            NotABool { .. }
            | OrderOnNonNumber { .. }
            | CompareNetwork { .. }
            | InNotList { .. }
            | MatchesNonString { .. }
            | MatchesOperand { .. }
            | QuantNonSet { .. }
            | QuantNe { .. }
            | IpListHolds { .. }
            | GlobListHolds { .. } => Code::TypeMismatch,
            QuantWithoutTest { .. } => Code::Syntax,
            UndefinedList { .. } => Code::UndefinedList,
            GlobTooManyStars { .. } | GlobWildPart { .. } => Code::InvalidGlob,
            InvalidIp { .. } => Code::InvalidCidr,
            NetworkNotAddress { .. }
            | LiteralMismatch { .. }
            | ListForOneValue { .. }
            | NotWhole { .. } => Code::TypeMismatch,
            UnknownEnumValue { .. } => Code::UnknownEnumValue,
            DuplicateQuarantine => Code::DuplicateQuarantine,
            NoDisposition | ManyDispositions { .. } => Code::DispositionCount,
            UnknownRule { .. } => Code::UnknownRule,
            GivenTwice { .. } => Code::DuplicateItem,
            EmptyRegex | RegexTooBig { .. } | RegexSyntax { .. } => Code::InvalidRegex,
            RegexBudget { .. } | ScanPasses { .. } | EvalSteps { .. } => Code::Limit,
            CidrHostBits { .. } | InvalidCidr { .. } => Code::InvalidCidr,
        }
    }

    /// The message, without the context.
    pub(super) fn message(&self) -> String {
        use CheckErrorKind::*;
        match self {
            TooManyRules { count, limit } => {
                format!("policy has {count} rules, more than the limit of {limit}")
            }
            TooManyTests { count, limit } => {
                format!("policy has {count} tests, more than the limit of {limit}")
            }
            PolicyTwice => "`policy` is given twice".into(),
            UnknownMode { name, .. } => format!("unknown mode `{name}`"),
            ModeTwice => "`mode` is given twice".into(),
            DuplicateRule { name, .. } => format!("rule {name:?} is defined twice"),
            DefaultTwice => "`default` is given twice".into(),
            BuiltinFactRedeclared { name } => {
                format!("fact `{name}` is built in and cannot be declared again")
            }
            FactTwice { name, .. } => format!("fact `{name}` is declared twice"),
            TooManyFacts { limit } => format!("more than {limit} custom facts"),
            UnknownType { name, .. } => format!("unknown type `{name}`"),
            SetOfNonString { elem } => format!("a set holds strings, not `{elem}`"),
            TooManyEnumValues { count, limit } => {
                format!("enum has {count} values, more than the limit of {limit}")
            }
            EnumValueTwice { value } => format!("enum value `{value}` is listed twice"),
            ListTwice { name, .. } => format!("list `{name}` is declared twice"),
            MixedList { name, first, other } => format!("list `{name}` mixes {first} and {other}"),
            UnknownFact { name, .. } => format!("unknown fact `{name}`"),
            NestingTooDeep { limit } => {
                format!("condition nests deeper than the limit of {limit} levels")
            }
            NotABool { fact, ty, .. } => format!(
                "fact `{fact}` is {ty}, not a bool: it cannot stand alone as a condition"
            ),
            OrderOnNonNumber { op, fact, ty } => {
                format!("`{op}` compares numbers, but fact `{fact}` is {ty}")
            }
            CompareNetwork { op, net, .. } => {
                format!("`{op}` compares one address, but `{net}` is a network")
            }
            InNotList { value, .. } => format!("`in` takes a list, not {value}"),
            MatchesNonString { fact, ty, .. } => {
                format!("`matches` needs a string fact, but fact `{fact}` is {ty}")
            }
            MatchesOperand { value } => {
                format!("`matches` takes a \"glob\", a /regex/ or a list name, not {value}")
            }
            QuantWithoutTest { word } => {
                format!("`{word}` goes before a comparison, `in` or `matches`")
            }
            QuantNonSet { word, fact, ty, .. } => {
                format!("`{word}` needs a set fact, but fact `{fact}` is {ty}")
            }
            QuantNe { word, .. } => {
                format!("`{word}` does not combine with `!=`: say which you mean")
            }
            UndefinedList { name, .. } => format!("list `{name}` is not defined"),
            IpListHolds { fact, value } => {
                format!("fact `{fact}` is an ip, but the list holds {value}")
            }
            GlobListHolds { value } => {
                format!("`matches` needs string globs, but the list holds {value}")
            }
            GlobTooManyStars { count, limit } => {
                format!("glob has {count} `*` wildcards, more than the limit of {limit}")
            }
            GlobWildPart { len, limit } => format!(
                "glob has a part of {len} characters with `?` between its stars, more than the limit of {limit}"
            ),
            InvalidIp { text } => format!("invalid IP address `{text}`"),
            NetworkNotAddress { net, .. } => format!("`{net}` is a network, not an address"),
            UnknownEnumValue { value, fact, .. } => {
                format!("`{value}` is not a value of fact `{fact}`")
            }
            LiteralMismatch {
                fact, ty, value, ..
            } => format!("fact `{fact}` is {ty}, but {value} is compared with it"),
            DuplicateQuarantine => "a second `quarantine` in one action list".into(),
            NoDisposition => "action list has no disposition".into(),
            ManyDispositions { count } => format!("action list has {count} dispositions"),
            UnknownRule { name, .. } => format!("`expect rule {name:?}` names no rule"),
            GivenTwice { fact } => format!("fact `{fact}` is given twice"),
            ListForOneValue { fact, ty } => {
                format!("fact `{fact}` is {ty}: it holds one value, but a list is given")
            }
            NotWhole { fact, value } => format!("fact `{fact}` is an int, but {value} is not whole"),
            EmptyRegex => "empty regex `//` matches every string".into(),
            RegexBudget { limit } => format!(
                "the policy's regexes compile to more than the limit of {limit} bytes together"
            ),
            ScanPasses {
                fact,
                passes,
                limit,
            } => format!(
                "the globs and regexes on fact `{fact}` read its value {passes} times per evaluation, more than the limit of {limit}"
            ),
            EvalSteps { steps, limit } => format!(
                "an evaluation may try rules taking {steps} steps, more than the limit of {limit}"
            ),
            RegexTooBig { .. } => "invalid regex: the compiled regex is too big".into(),
            RegexSyntax { detail, .. } => format!("invalid regex: {detail}"),
            CidrHostBits { text, .. } => format!("CIDR `{text}` has host bits set"),
            InvalidCidr { text, .. } => format!("invalid CIDR `{text}`"),
        }
    }

    /// The help line, if one helps.
    pub(super) fn help(&self) -> Option<String> {
        use CheckErrorKind::*;
        match self {
            TooManyRules { .. } | TooManyTests { .. } | TooManyFacts { .. } => None,
            EnumValueTwice { .. } => None,
            PolicyTwice => Some("a policy has at most one name".into()),
            UnknownMode { hint, .. } => Some(did_you_mean(
                hint,
                "the modes are `before_queue` and `after_queue`",
            )),
            ModeTwice => Some("a policy has one mode".into()),
            DuplicateRule { first_line, .. } => Some(format!(
                "the first one is on line {first_line}; rule names must be unique"
            )),
            DefaultTwice => Some("a policy has at most one `default`".into()),
            BuiltinFactRedeclared { .. } => Some("pick another name for the custom fact".into()),
            FactTwice { first_line, .. } | ListTwice { first_line, .. } => {
                Some(format!("the first declaration is on line {first_line}"))
            }
            UnknownType { hint, .. } => Some(did_you_mean(
                hint,
                "the types are `bool`, `int`, `number`, `string`, `ip` and `enum(a, b, ...)`",
            )),
            SetOfNonString { .. } => {
                Some("write `[string]`: sets of names (like `virus`) are the only sets".into())
            }
            TooManyEnumValues { .. } => Some("use a `string` fact and lists of its values".into()),
            MixedList { .. } => Some("a list holds literals of one type".into()),
            UnknownFact { help, .. } => Some(help.clone()),
            NestingTooDeep { .. } | MatchesOperand { .. } | QuantWithoutTest { .. } => None,
            GlobListHolds { .. } => None,
            NotABool { help, .. } | MatchesNonString { help, .. } => Some(help.clone()),
            OrderOnNonNumber { .. } => Some(
                "order comparisons work on `int` and `number` facts such as `size` and `spam_score`"
                    .into(),
            ),
            CompareNetwork { net, fact, .. } => Some(format!("test membership with `{fact} in {net}`")),
            InNotList { fact, .. } => Some(format!("write `{fact} in [...]` or `{fact} == ...`")),
            QuantNonSet { all: true, fact, .. } => Some(format!(
                "`{fact}` holds one value: drop `all` and write the condition on `{fact}` alone"
            )),
            QuantNonSet { all: false, fact, .. } => {
                Some(format!("`{fact}` holds one value: drop `any`"))
            }
            QuantNe { fact: f, value, .. } => Some(format!(
                "write `not ({f} == {value})` when no name may be {value}, or `not (all {f} == {value})` when some name must differ from it"
            )),
            UndefinedList { name, hint } => Some(match hint {
                Some(h) => format!("did you mean `{h}`?"),
                None => format!("declare it with `list {name} = [...]`"),
            }),
            IpListHolds { .. } => Some(
                "an ip fact is tested against addresses and CIDRs such as `10.0.0.0/8`".into(),
            ),
            GlobTooManyStars { .. } => Some("use a /regex/ for complex patterns".into()),
            GlobWildPart { .. } => Some("split it with `*`, or use a /regex/".into()),
            InvalidIp { .. } => Some(
                "write an IPv4 address such as `192.0.2.1` or an IPv6 address such as `2001:db8::1`"
                    .into(),
            ),
            NetworkNotAddress { net, fact } => {
                Some(format!("test membership with `{fact} in {net}`"))
            }
            UnknownEnumValue { help, .. } | UnknownRule { help, .. } => Some(help.clone()),
            LiteralMismatch { help, .. } => help.clone(),
            DuplicateQuarantine => Some(
                "a message goes to one quarantine bucket; keep one `quarantine`".into(),
            ),
            NoDisposition => {
                Some("add exactly one of `pass`, `discard`, `bounce`, `reject`, `tempfail`".into())
            }
            ManyDispositions { .. } => Some(
                "a message gets exactly one of `pass`, `discard`, `bounce`, `reject`, `tempfail`; keep one"
                    .into(),
            ),
            GivenTwice { .. } | NotWhole { .. } => None,
            ListForOneValue { .. } => Some(
                "only set facts (`virus`, and facts declared `[string]`) take a list; give one value"
                    .into(),
            ),
            EmptyRegex => Some(
                "write the pattern between the slashes; `known FACT` tests that a fact has a value"
                    .into(),
            ),
            RegexBudget { .. } => Some("use fewer or simpler regexes, or lists of globs".into()),
            EvalSteps { .. } => Some(
                "a step is a rule tried, plus one per test, `and`, `or`, `not`; a rule that no enum or bool fact (`direction`, `scanner`, ...) and no required value test (`recipient == \"...\"`, `virus matches \"W32/*\"`, `client_ip in [...]`) narrows is tried by every evaluation (docs/LIMITS.md): give such rules one, merge rules, or, for a trusted policy, raise the limit (`policy --max-eval-steps N`, mailpolicyd `[limits] max_eval_steps`, `Limits::max_eval_steps`)".into(),
            ),
            ScanPasses { .. } => Some(format!(
                "each shared scan of the fact (up to 256 patterns) is a pass, and so is each glob or regex no scan answers; a regex with a Unicode `\\b` counts {}; on a set fact (`virus`) every name is tested: a search or a regex no scan answers counts 3, `==`, `!=` or a glob a quarter, `in [...]` half a pass per halving of its list (docs/LIMITS.md): use prefix or suffix globs (they cost nothing), fewer patterns, `(?-u:\\b)` for an ASCII word boundary, or raise `Limits::max_scan_passes`",
                crate::limits::UNICODE_BOUNDARY_PASSES
            )),
            RegexTooBig { limit } => Some(format!(
                "the compiled regex exceeds {limit} bytes; simplify it or use a list of globs"
            )),
            RegexSyntax { help, .. } => help.clone(),
            CidrHostBits { trunc, .. } => Some(format!("did you mean `{trunc}`?")),
            InvalidCidr { help, .. } => Some((*help).into()),
        }
    }
}
