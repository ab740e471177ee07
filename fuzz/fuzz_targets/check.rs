//! The linter terminates fast on arbitrary policies: generated ones (first
//! byte even) and arbitrary text (odd). libFuzzer's `-timeout` turns a slow
//! analysis into a failure.
#![no_main]

#[path = "../../tests/common/policy_gen.rs"]
#[allow(dead_code)]
mod policy_gen;

use libfuzzer_sys::fuzz_target;
use mailpolicy::Policy;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let source = if first % 2 == 0 {
        policy_gen::generate(rest, 0).source
    } else {
        match std::str::from_utf8(rest) {
            Ok(s) => s.to_owned(),
            Err(_) => return,
        }
    };
    if let Ok(policy) = Policy::parse(&source) {
        for d in policy.check_with_coverage() {
            assert!(d.line >= 1 && d.column >= 1, "{d:?}");
        }
    }
});
