//! `Policy::check_facts`: facts built in code are held to the facts limits
//! that facts JSON enforces as it reads, and both agree on what is over.

use mailpolicy::{FactValue, Facts, FactsLimitError, Limits, Policy};

const POLICY: &str = "fact rbl: [string]\nfact note: string\n";

fn names(n: usize, width: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i:0width$}")).collect()
}

/// What facts JSON says of a document with `key` set to `value` (JSON).
fn json_accepts(policy: &Policy, key: &str, value: &str) -> bool {
    policy
        .facts_from_json(&format!(r#"{{"{key}": {value}}}"#))
        .is_ok()
}

#[test]
fn set_names_agree_with_facts_json() {
    let policy = Policy::parse(POLICY).expect("parses");
    let limit = policy.limits().max_set_names;
    for n in [0, 1, 2, limit - 1, limit, limit + 1, 3 * limit] {
        let set = names(n, 5);
        let json = serde_json::to_string(&set).expect("serializes");
        for fact in ["virus", "rbl"] {
            let facts = Facts::new().custom(fact, FactValue::set(set.clone()));
            let checked = policy.check_facts(&facts);
            assert_eq!(
                checked.is_ok(),
                json_accepts(&policy, fact, &json),
                "{fact}: {n} names"
            );
            if n > limit {
                assert_eq!(
                    checked,
                    Err(FactsLimitError::SetNames {
                        name: fact.to_owned(),
                        names: n,
                        limit,
                    })
                );
            } else {
                assert_eq!(checked, Ok(()), "{fact}: {n} names");
            }
        }
    }
    // Through the builder's own set methods too.
    let many = Facts::new().viruses(names(limit + 1, 5));
    assert!(matches!(
        policy.check_facts(&many),
        Err(FactsLimitError::SetNames { names, .. }) if names == limit + 1
    ));
}

#[test]
fn value_bytes_agree_with_facts_json() {
    let policy = Policy::parse(POLICY).expect("parses");
    let limit = policy.limits().max_fact_value_bytes;
    for len in [0, 1, limit - 1, limit, limit + 1, 2 * limit] {
        let text = "a".repeat(len);
        for fact in ["sender", "note"] {
            let facts = Facts::new().custom(fact, FactValue::from(text.as_str()));
            let checked = policy.check_facts(&facts);
            let json = serde_json::to_string(&text).expect("serializes");
            assert_eq!(
                checked.is_ok(),
                json_accepts(&policy, fact, &json),
                "{fact}: {len}"
            );
            if len > limit {
                let err = checked.expect_err("over the limit");
                assert_eq!(
                    err.to_string(),
                    format!("the value of fact `{fact}` is {len} bytes, more than the limit of {limit} bytes")
                );
            }
        }
    }
}

#[test]
fn a_set_counts_its_names_bytes_plus_one_each() {
    // 10 names of 9 bytes: 100 bytes counted, as facts JSON counts them.
    let set = names(10, 9);
    for max in [99, 100] {
        let limits = Limits {
            max_fact_value_bytes: max,
            ..Limits::default()
        };
        let policy = Policy::parse_with_limits(POLICY, &limits).expect("parses");
        let facts = Facts::new().custom("rbl", FactValue::set(set.clone()));
        let json = serde_json::to_string(&set).expect("serializes");
        let checked = policy.check_facts(&facts);
        assert_eq!(
            checked.is_ok(),
            json_accepts(&policy, "rbl", &json),
            "limit {max}"
        );
        assert_eq!(checked.is_ok(), max >= 100, "limit {max}: {checked:?}");
    }
}

#[test]
fn the_limits_are_the_policys() {
    let limits = Limits {
        max_set_names: 3,
        ..Limits::default()
    };
    let strict = Policy::parse_with_limits("", &limits).expect("parses");
    let default = Policy::parse("").expect("parses");
    let facts = Facts::new().viruses(["A", "B", "C", "D"]);
    assert_eq!(default.check_facts(&facts), Ok(()));
    assert_eq!(
        strict.check_facts(&facts).map_err(|e| e.to_string()),
        Err("the set of fact `virus` has 4 names, more than the limit of 3 names".to_owned())
    );
    // Duplicates are one name, in the builder as in JSON.
    let dup = Facts::new().viruses(["A", "B", "A", "C", "B"]);
    assert_eq!(strict.check_facts(&dup), Ok(()));
}
