//! Arbitrary bytes -> `Policy::parse_bytes`; whatever parses is also linted,
//! formatted and evaluated. Must never panic, overflow the stack or hang, and the
//! parser's fast path must agree with pest alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailpolicy::{Facts, Policy};

fuzz_target!(|data: &[u8]| {
    match Policy::parse_bytes(data) {
        Ok(policy) => {
            let _ = policy.check();
            let _ = policy.evaluate(&Facts::new());
            let _ = policy.run_tests();
        }
        Err(e) => {
            // Every error renders and has a position.
            assert!(e.errors().count() > 0);
            for d in e.diagnostics() {
                assert!(d.line >= 1 && d.column >= 1);
            }
            let _ = e.to_string();
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mailpolicy::format(text);
        // The parser's fast path gives the AST and diagnostics pest alone gives.
        if let Err(e) = mailpolicy::__syntax_differential(text) {
            panic!("{e}");
        }
    }
});
