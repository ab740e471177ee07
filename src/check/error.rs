//! The checker's failures as types: one variant per failure, with its code,
//! message and help together in one place (cedar-policy's `ToASTErrorKind`
//! is the model). The rule, default or test a failure is in is not part of
//! the kind: [`Context`] carries it and rendering appends it.

use crate::diagnostics::Code;

/// Where a failure is: appended to its message when rendered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Context {
    /// At file level (declarations, limits).
    #[default]
    File,
    /// In the rule with this name.
    Rule(String),
    /// In the `default` actions.
    Default,
    /// In the test with this name.
    Test(String),
}

impl std::fmt::Display for Context {
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
        }
    }
}
