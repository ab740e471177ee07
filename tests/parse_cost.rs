//! Parse memory on token-dense policies (issues 11 and 14): pest keeps every
//! token pair of the item it is reading, so the densest inputs are the ones
//! with the most grammar tokens per byte. Each must parse (and format, and
//! lint) within the SPEC's bound (100 bytes per input byte, 256 MB below
//! 1 MB), or be refused with a positioned `limit` error before pest runs.
//! Allocations are counted exactly (not timed); each case prints its figures
//! (`cargo test --release --test parse_cost -- --nocapture`).

#[path = "common/attack.rs"]
mod attack;
#[path = "common/peak.rs"]
mod peak;

use mailpolicy::{Code, Policy};
use peak::{memory_bound, peak_bytes};

/// The token-dense shapes: many operands in one rule (up to the budget and
/// past it), many rules of many operands, comparisons, a long `default`.
fn dense_inputs() -> Vec<(&'static str, String)> {
    let mut cmp = String::from("rule \"r\" { when size < 1");
    while cmp.len() < 1_200_000 {
        cmp.push_str(" or size>1");
    }
    cmp.push_str(" then reject }\n");
    let mut tags = String::from("default tag \"x\"");
    while tags.len() < 1_200_000 {
        tags.push_str(",tag\"x\"");
    }
    tags.push('\n');
    let mut deep = String::from("fact a: bool\nrule \"r\" { when ((((a))))");
    while deep.len() < 1_500_000 {
        deep.push_str("or((((a))))");
    }
    deep.push_str(" then reject }\n");
    vec![
        ("90,000 `((a))` in one rule", attack::paren_or_chain(90_000)),
        (
            "150,000 `((a))` in one rule",
            attack::paren_or_chain(150_000),
        ),
        ("3,000 rules of 100 `(a)`", attack::paren_rules(3_000)),
        ("one rule of `size>1` joined by `or`", cmp),
        ("a `default` of `tag\"x\"` actions", tags),
        ("one rule of `((((a))))` joined by `or`", deep),
    ]
}

/// Parsing (and formatting) stays within the bound, or is refused with a
/// positioned `limit` error; what parses is the policy written.
#[test]
fn token_dense_policies_parse_within_the_bound_or_are_refused() {
    let mut refused = 0;
    for (what, src) in dense_inputs() {
        let bound = memory_bound(src.len());
        let (parsed, peak) = peak_bytes(|| Policy::parse(&src));
        eprintln!(
            "{what}: {:.2} MB, parse peak {:.1} MB ({:.0} bytes per byte), {}",
            src.len() as f64 / 1e6,
            peak as f64 / 1e6,
            peak as f64 / src.len() as f64,
            if parsed.is_ok() { "parsed" } else { "refused" }
        );
        assert!(peak <= bound, "{what}: parse peak {peak} > {bound}");
        let (formatted, fmt_peak) = peak_bytes(|| mailpolicy::format(&src));
        assert!(fmt_peak <= bound, "{what}: fmt peak {fmt_peak} > {bound}");
        match parsed {
            Ok(p) => {
                assert!(formatted.is_ok(), "{what}");
                assert_eq!(
                    p.rule_names().count(),
                    src.matches("rule \"").count(),
                    "{what}"
                );
            }
            Err(e) => {
                refused += 1;
                let d = &e.diagnostics()[0];
                assert_eq!(d.code, Code::Limit, "{what}: {d:?}");
                assert!(
                    d.message.contains("too many grammar tokens"),
                    "{}",
                    d.message
                );
                // Where the dense item starts.
                let line = src[..d.span.start].matches('\n').count() + 1;
                assert_eq!((d.line, d.column), (line, 1), "{what}");
                let Err(f) = formatted else {
                    panic!("{what}: formatted");
                };
                assert_eq!(f.diagnostics()[0].code, Code::Limit, "{what}");
            }
        }
    }
    // The 1.35 MB chain and the 1.5 MB deep chain are over the budget.
    assert!(refused >= 2, "{refused} refused");
}

/// `policy check` lints what parsed: the two token-dense policies that
/// aborted under a memory limit (pest's queue for the whole file) stay
/// within the bound, parse and lint together.
#[test]
fn token_dense_policies_lint_within_the_bound() {
    for src in [attack::paren_or_chain(90_000), attack::paren_rules(3_000)] {
        let bound = memory_bound(src.len());
        let (_, peak) = peak_bytes(|| {
            let p = Policy::parse(&src).expect("parses");
            p.check()
        });
        eprintln!(
            "check {:.2} MB: peak {:.1} MB ({:.0} bytes per byte)",
            src.len() as f64 / 1e6,
            peak as f64 / 1e6,
            peak as f64 / src.len() as f64
        );
        assert!(peak <= bound, "peak {peak} > {bound}");
    }
}
