//! Facts JSON: a bad value is pointed at where it starts (line and column in
//! characters), and `-0` is an integer.

use mailpolicy::{FactValue, FactsInput, Policy};

fn error_at(json: &str) -> (usize, usize) {
    let p = Policy::parse("default pass\n").expect("parses");
    let e = p.facts_from_json(json).expect_err("a bad value");
    (e.line(), e.column())
}

#[test]
fn a_bad_value_is_pointed_at_where_it_starts() {
    // Strings, numbers and literals, on the key's line or the next one.
    assert_eq!(error_at(r#"{"size": "big"}"#), (1, 10));
    assert_eq!(error_at("{\"size\":\n   \"big\"\n}"), (2, 4));
    assert_eq!(error_at("{\"size\": 1.5\n}"), (1, 10));
    assert_eq!(error_at("{\"size\": true\n}"), (1, 10));
    assert_eq!(error_at(r#"{"size": 99999999999999999999}"#), (1, 10));
    assert_eq!(error_at(r#"{"size": "b\"ig"}"#), (1, 10));
    assert_eq!(error_at(r#"{"size": "a\\"}"#), (1, 10));
    assert_eq!(error_at("{\n  \"size\": 1,\n  \"sender\": 7\n}"), (3, 13));
    // A set's bad element, itself.
    assert_eq!(error_at(r#"{"virus": ["a", 3]}"#), (1, 17));
    // Columns count characters, not bytes.
    assert_eq!(error_at(r#"{"sender": "ééééé", "size": "big"}"#), (1, 29));
    assert_eq!(error_at(r#"{"sender": "ééééé", "sise": 1}"#), (1, 21));
}

#[test]
fn minus_zero_is_an_integer() {
    let p = Policy::parse("default pass\n").expect("parses");
    let Ok(FactsInput::One(one)) = p.facts_from_json(r#"{"size": -0}"#) else {
        panic!("-0 is an int");
    };
    assert!(
        matches!(one.get("size"), Some(FactValue::Int(0))),
        "{one:?}"
    );
    // A float is still no integer.
    assert!(p.facts_from_json(r#"{"size": 0.5}"#).is_err());
}
