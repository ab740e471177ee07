//! Size limits, part of the API as in the `regex` crate: a policy that exceeds
//! one is refused with a positioned `limit` error, never a crash or a hang.

/// Limits applied while parsing and checking a policy.
///
/// The defaults suit any hand-written or generated site policy (10,000 rules
/// parse in milliseconds); a service that accepts policies from users may
/// lower them.
///
/// ```
/// use mailpolicy::{Limits, Policy};
/// let limits = Limits { max_rules: 2, ..Limits::default() };
/// let src = r#"rule "a" { then pass } rule "b" { then pass } rule "c" { then pass }"#;
/// let err = Policy::parse_with_limits(src, &limits).unwrap_err();
/// assert_eq!(err.diagnostics()[0].code.as_str(), "limit");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest policy source, in bytes.
    pub max_source_bytes: usize,
    /// Deepest nesting of parentheses plus `not`s in one condition.
    pub max_nesting: usize,
    /// Most rules in one policy.
    pub max_rules: usize,
    /// Most elements in one list (named or inline).
    pub max_list_items: usize,
    /// Longest string, glob or regex literal, in bytes.
    pub max_string_bytes: usize,
    /// Largest compiled size of one regex (its DFA), in bytes.
    pub max_regex_bytes: usize,
    /// Largest compiled size of all the policy's regexes together, merged
    /// glob lists included, in bytes; a policy may use
    /// [`REGEX_BYTES_PER_SOURCE_BYTE`] times its own size instead when that
    /// is more.
    pub max_regex_total_bytes: usize,
    /// Most custom facts (`fact` declarations).
    pub max_custom_facts: usize,
    /// Most `*` wildcards in one glob.
    pub max_glob_stars: usize,
    /// Most `test` blocks.
    pub max_tests: usize,
    /// Largest facts JSON document ([`crate::Policy::facts_from_json`]), in
    /// bytes; checked before it is read.
    pub max_facts_bytes: usize,
    /// Largest value of one fact, in bytes: a string, or a set's names
    /// together (plus one byte per name). Facts JSON and `NAME=VALUE`
    /// assignments over it are refused.
    pub max_fact_value_bytes: usize,
    /// Most names in one set fact's value (`virus`, `rbl`) in facts JSON
    /// and `NAME=VALUE` assignments. Each test on a set reads every name,
    /// and some per-name work (the gates' and the literal group's walks)
    /// is paid once per name whatever the policy: this keeps an
    /// evaluation's cost within the per-evaluation bound. A scanner
    /// reports one name per detection, a few per message.
    pub max_set_names: usize,
    /// Most facts objects in one per-recipient facts JSON array.
    pub max_facts_objects: usize,
    /// Longest condition or fact value shown in one explain trace entry
    /// ([`crate::Policy::explain`]), in characters; longer ones are cut
    /// with `…`. Each fact's value is described once per explanation.
    pub max_explain_chars: usize,
    /// The work `policy test` ([`crate::Policy::run_tests`]) may do, in
    /// rule evaluations: each test is charged the rules up to the one that
    /// decides (all of them for the default), times one plus its given
    /// text's bytes / 4096. A policy may use [`TEST_WORK_PER_SOURCE_BYTE`]
    /// times its own size instead when that is more. Tests past the budget
    /// are not run and fail with a positioned `limit` message.
    pub max_test_work: usize,
    /// Most passes over one fact's value that an evaluation may make
    /// (`docs/LIMITS.md`, "Shared scans"): each shared scan of the fact is
    /// one (a DFA group of up to 256 patterns, a parts group; a pair group
    /// one per DFA it runs; a literal group none: its walks read at most
    /// its deepest key's length), and so is each regex and glob leaf that
    /// no scan answers and that searches its value. A pass is what a DFA
    /// or a plain glob part costs (0.07–0.14 ms on 64 KB, release build,
    /// load 3–5): a regex that searches (all but start-anchored regexes of
    /// bounded length) costs 1, a glob that searches (`*a*`, `a*b*`) 1, or
    /// 2 with a `?` in a part, or 4 with a non-ASCII character in a part,
    /// and a regex with a Unicode `\b` [`UNICODE_BOUNDARY_PASSES`] (an NFA
    /// on non-ASCII text). On a set fact every name is tested: a search
    /// costs 3 times its passes, and a test that does not search but that
    /// no scan answers still reads each name (a bounded regex 3 passes,
    /// one with a Unicode `\b` that is no literal 6, `in [...]` half a
    /// pass per halving of its list, anything else a quarter); `==`,
    /// `in`, literal globs, `^lit` and `^lit\b` are answered by one walk
    /// of each name. A policy
    /// whose scans and leaves on one fact cost more is refused with a
    /// positioned `limit` error at the first leaf past the budget (a
    /// shared scan is paid by its first reader). The default keeps an
    /// evaluation under about 1 ms on a 64 KB value (`docs/LIMITS.md`);
    /// since each fact has its own budget, an evaluation reads at most this
    /// many times the facts' bytes.
    pub max_scan_passes: usize,
    /// Most steps one evaluation ([`crate::Policy::evaluate`]) may take,
    /// counted at compile time for the worst facts: a step is a rule
    /// tried plus one per node of its condition (a test, `and`, `or`,
    /// `not`). An evaluation tries the rules that the decision table's
    /// cell (the enum and bool facts: `direction`, `scanner`, ...) and the
    /// gates (`recipient == "..."`, `virus matches "W32/*"`, `client_ip in
    /// [...]`: value indexes) leave, in rule order, until one is true; a
    /// rule neither narrows is tried by every evaluation that reaches it.
    /// On a set fact a gate's lookups are counted for
    /// [`Limits::max_set_names`] names. A policy whose worst evaluation
    /// takes more is refused with a positioned `limit` error at the first
    /// rule past the budget. The default keeps an evaluation's rules under
    /// about 1 ms (`docs/LIMITS.md`); what its tests read of the facts'
    /// values is bounded apart by [`Limits::max_scan_passes`].
    pub max_eval_steps: u64,
    /// The linter's work budget per megabyte of policy source (a policy under
    /// 1 MB gets one megabyte's worth). A unit is one step of its search or
    /// of its string automata, counted as it is done (about 25 million a
    /// CPU second on the machine of `docs/LIMITS.md`). What the budget does
    /// not cover is named in an `analysis-incomplete` note; no warning is
    /// ever guessed.
    pub lint_work_per_mb: u64,
}

/// Compiled-regex bytes a policy may use per byte of its source, when that
/// is more than [`Limits::max_regex_total_bytes`] (a large generated policy
/// with thousands of small regexes).
pub const REGEX_BYTES_PER_SOURCE_BYTE: usize = 16;

/// Test work (rule evaluations, see [`Limits::max_test_work`]) a policy
/// may use per byte of its source, when that is more than the limit: work
/// linear in the policy (about 0.7 s per MB).
pub const TEST_WORK_PER_SOURCE_BYTE: usize = 10;

/// The passes ([`Limits::max_scan_passes`]) a regex with a Unicode
/// word boundary (`\b` without `(?-u)`) costs when no shared scan answers
/// it: on non-ASCII text it runs as an NFA, measured at 0.8–5 ms on a
/// 64 KB value for patterns like `\bx+0\b`, `\b\w+0\b`, `\b.{3}z0`
/// (a DFA or glob pass: 0.10–0.14 ms). Write `(?-u:\b)` for an ASCII
/// word boundary: that is one pass.
pub const UNICODE_BOUNDARY_PASSES: usize = 32;

/// The hard ceiling on custom facts: evaluation memoises facts in a fixed,
/// stack-allocated table of this many built-in plus custom slots.
pub const MAX_FACT_SLOTS: usize = 64;

/// [`Limits::max_scan_passes`]'s default.
const DEFAULT_SCAN_PASSES: usize = 6;

/// [`Limits::max_eval_steps`]'s default.
const DEFAULT_EVAL_STEPS: u64 = 32_768;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_source_bytes: 16 * 1024 * 1024,
            max_nesting: 200,
            max_rules: 100_000,
            max_list_items: 100_000,
            max_string_bytes: 64 * 1024,
            max_regex_bytes: 1024 * 1024,
            max_regex_total_bytes: 16 * 1024 * 1024,
            max_custom_facts: MAX_FACT_SLOTS - crate::facts::BUILTIN_COUNT,
            max_glob_stars: 32,
            max_tests: 100_000,
            max_facts_bytes: 4 * 1024 * 1024,
            max_fact_value_bytes: 64 * 1024,
            max_set_names: 1024,
            max_facts_objects: 10_000,
            max_explain_chars: 200,
            max_test_work: 10_000_000,
            max_scan_passes: DEFAULT_SCAN_PASSES,
            max_eval_steps: DEFAULT_EVAL_STEPS,
            lint_work_per_mb: 32_000_000,
        }
    }
}
