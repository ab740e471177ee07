//! The attack corpus's generators (issue 11): policies and facts sized
//! near the limits that once cost minutes or gigabytes. Used by
//! `tests/cost.rs` (which asserts results and memory) and by
//! `examples/cost_inputs.rs` (which writes them out for
//! `scripts/bench-cost`, which times each stage under `/usr/bin/time -v`).
#![allow(dead_code)]

/// A list of 5,000 globs and one of 10,000 strings, each used by 2,000 rules.
pub fn list_uses() -> String {
    let mut src = String::from("list worms = [");
    for i in 0..5_000 {
        src.push_str(&format!("\"W32/Worm{i}.*\", "));
    }
    src.push_str("]\nlist names = [");
    for i in 0..10_000 {
        src.push_str(&format!("\"user{i}@example.org\", "));
    }
    src.push_str("]\n");
    for i in 0..2_000 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when virus matches worms and recipient in names and size > {i} then discard, quarantine }}\n"
        ));
    }
    src
}

/// 100,000 exact strings in one rule, and one network pair repeated 20,000
/// times in another.
pub fn strings_and_networks() -> String {
    let mut src = String::from("rule \"s\" { when recipient in [");
    for i in 0..100_000 {
        src.push_str(&format!("\"{i:0>8}\", "));
    }
    src.push_str("] then reject }\nrule \"n\" { when client_ip in [");
    for _ in 0..20_000 {
        src.push_str("10.0.0.0/8, 10.1.0.0/16, ");
    }
    src.push_str("] then discard, quarantine }\n");
    src
}

/// 20,000 glob prefixes in descending order.
pub fn descending_prefixes() -> String {
    let mut src = String::new();
    for i in (0..20_000).rev() {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when sender matches \"{i:0>6}*\" then reject }}\n"
        ));
    }
    src
}

/// 20,000 rules over 12 one-value enums.
pub fn one_value_enums() -> String {
    let mut src = String::new();
    for i in 0..12 {
        src.push_str(&format!("fact f{i}: enum(a{i})\n"));
    }
    for i in 0..20_000 {
        let k = i % 12;
        src.push_str(&format!(
            "rule \"r{i}\" {{ when f{k} == a{k} and size == {i} then pass }}\n"
        ));
    }
    src
}

/// 50,000 unknown values of a 20,000-value enum on one line (errors).
pub fn errors_on_one_line() -> String {
    let mut src = String::from("fact e: enum(");
    for i in 0..20_000 {
        src.push_str(&format!("v{i}, "));
    }
    src.push_str(")\nrule \"r\" { when ");
    for i in 0..50_000 {
        src.push_str(&format!("e == w{i} or "));
    }
    src.push_str("false then pass }");
    src
}

/// 2,000 quoted values of a 30,000-value enum (errors with help lines).
pub fn quoted_enum_values() -> String {
    let mut src = String::from("fact e: enum(");
    for i in 0..30_000 {
        src.push_str(&format!("value{i}, "));
    }
    src.push_str(")\n");
    for i in 0..2_000 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when e == \"value{i}\" then pass }}\n"
        ));
    }
    src
}

/// 4,000 regexes of ~300 KB of DFA each (refused by the total budget).
pub fn big_regexes() -> String {
    let mut src = String::new();
    for i in 0..4_000 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when virus matches /\\w{{3}}@\\w+{i}/ then reject }}\n"
        ));
    }
    src
}

/// A 32 KB glob that a value of `a`s almost matches at every position.
pub fn long_glob() -> String {
    let glob = format!("*{}b*", "a".repeat(32 * 1024 - 3));
    format!("rule \"g\" {{ when virus matches \"{glob}\" then reject }}")
}

/// `n` rules, each a regex on `sender` (`/xNy/`).
pub fn regex_rules(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when sender matches /x{i}y/ then reject }}\n"
        ));
    }
    src
}

/// `n` single-part glob rules on `sender` (contains with `?`, prefix and
/// suffix with a middle star, plain suffix).
pub fn glob_rules(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        let g = match i % 3 {
            0 => format!("*x{i}?y*"),
            1 => format!("x*{i}y"),
            _ => format!("*X{i}Y"),
        };
        src.push_str(&format!(
            "rule \"g{i}\" {{ when sender matches \"{g}\" then reject }}\n"
        ));
    }
    src
}

/// `n` rules of an unanchored glob on `virus` (`*NameN.*`: contains).
pub fn contains_glob_rules(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&format!(
            "rule \"g{i}\" {{ when virus matches \"*xName{i}.*\" then reject }}\n"
        ));
    }
    src
}

/// `n` rules of a two-part glob with an open start (`*xN*y*`): answered by
/// pair groups (first end of `xN`, last start of `y`).
pub fn multipart_glob_rules(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&format!(
            "rule \"g{i}\" {{ when sender matches \"*x{i}*y*\" then reject }}\n"
        ));
    }
    src
}

/// 50 rules of a regex whose own DFA is large (`[ab]{200}cN`), on `virus`.
pub fn big_dfa_regex_rules() -> String {
    let mut src = String::new();
    for i in 0..50 {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when virus matches /[ab]{{200}}c{i}/ then reject }}\n"
        ));
    }
    src
}

/// `n` rules each reading `sender` and `size` (for explain).
pub fn sender_rules(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when sender == \"s{i}\" and size > {i} then reject }}\n"
        ));
    }
    src
}

/// `n` rules and `n` tests, every test decided by the last rule (suffix
/// globs: one shared literal group, so the policy is within the budget of
/// unshared passes).
pub fn tests_times_rules(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when size == {i} and sender matches \"*x{i}\" then reject }}\n"
        ));
    }
    for i in 0..n {
        src.push_str(&format!(
            "test \"t{i}\" {{ given size = {}, sender = \"ax{}\" expect rule \"r{}\" }}\n",
            n - 1,
            n - 1,
            n - 1
        ));
    }
    src
}

/// A facts object with `fact` set to a string value of `bytes` bytes of `c`.
pub fn long_string_facts(fact: &str, c: char, bytes: usize) -> String {
    format!("{{\"{fact}\": \"{}\"}}", c.to_string().repeat(bytes))
}

/// A facts document of about `bytes` bytes: one set of repeated names.
pub fn big_set_facts(bytes: usize) -> String {
    let mut json = String::from("{\"virus\": [");
    while json.len() < bytes {
        json.push_str("\"zen.spamhaus.org\", ");
    }
    json.push_str("\"x\"]}");
    json
}

/// `n` rules of a regex that makes a DFA group grow (`/xN[0-9]+y/`) on
/// `fact`: 256 of them are two groups, at the scan budget on a set fact.
pub fn dfa_regex_rules(n: usize, fact: &str) -> String {
    (0..n)
        .map(|i| format!("rule \"r{i}\" {{ when {fact} matches /x{i}[0-9]+y/ then reject }}\n"))
        .collect()
}

/// Facts whose `virus` holds as many distinct names as facts JSON takes
/// by default (`Limits::max_set_names`, 1,024 names of two characters,
/// each starting with `x` where it can: every name starts a DFA group's
/// patterns).
pub fn most_names_facts() -> String {
    names_facts(mailpolicy::Limits::default().max_set_names)
}

/// Facts whose `virus` holds as many distinct names as 64 KiB allows
/// (17,345 names of two and three characters): past
/// `Limits::max_set_names`.
pub fn names_in_64k_facts() -> String {
    names_facts(usize::MAX)
}

/// Facts whose `virus` holds at most `max` distinct names within 64 KiB.
fn names_facts(max: usize) -> String {
    let chars: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    let mut names = Vec::new();
    let mut bytes = 0;
    let two = chars
        .iter()
        .flat_map(|&a| chars.iter().map(move |&b| format!("{a}{b}")));
    let three = chars.iter().flat_map(|&a| {
        let chars = chars.clone();
        chars
            .clone()
            .into_iter()
            .flat_map(move |b| chars.clone().into_iter().map(move |c| format!("{a}{b}{c}")))
    });
    for name in two.chain(three) {
        if bytes + name.len() + 1 > 64 * 1024 || names.len() == max {
            break;
        }
        bytes += name.len() + 1;
        names.push(format!("\"{name}\""));
    }
    format!("{{\"virus\": [{}]}}", names.join(","))
}

/// A policy of `bytes` bytes that is one comment.
pub fn one_comment(bytes: usize) -> String {
    let mut src = String::from("# ");
    src.push_str(&"x".repeat(bytes.saturating_sub(3)));
    src.push('\n');
    src
}

/// `n` ordinary rules (direction, scanner, virus globs, sender lists):
/// each tests a virus family of its own, as a generated per-site policy
/// does (up to 65,535 families share one literal group; 100,000 take two
/// in the wide memo).
pub fn plain_rules(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&format!(
            "rule \"r{i}\" {{\n    when direction == inbound and scanner == infected\n        and virus matches \"W32/Fam{i}.*\" and not sender in [\"a{i}@example.org\", \"b{i}@example.org\"]\n    then discard, quarantine \"q{}\"\n}}\n",
            i % 7
        ));
    }
    src
}

/// `n` rules, each testing a virus family of its own and nothing else
/// (`virus matches "W32/FamN.*"`): the most literal keys per byte.
pub fn virus_family_rules(n: usize) -> String {
    (0..n)
        .map(|i| format!("rule \"r{i}\" {{ when virus matches \"W32/Fam{i}.*\" then reject }}\n"))
        .collect()
}

/// Facts for [`plain_rules`]`(n)` (and [`virus_family_rules`]) whose
/// `virus` names the last `names` families (`W32/FamN.x`): more than 5
/// give the gate more ranges than the merge keeps apart, so their rules
/// are collected in the evaluator's bitset and tried in order.
pub fn last_families_facts(n: usize, names: usize) -> String {
    let list: Vec<String> = (n.saturating_sub(names)..n)
        .map(|i| format!("\"W32/Fam{i}.x\""))
        .collect();
    format!(
        "{{\"virus\": [{}], \"direction\": \"inbound\", \"scanner\": \"infected\", \"sender\": \"z@example.org\"}}",
        list.join(", ")
    )
}

/// `n` rules `size > N` (no table key, no gate): every rule is tried on a
/// small message.
pub fn size_rules(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "rule \"r{i}\" {{ when size > {} then reject }}\n",
                1_000_000_000 + i
            )
        })
        .collect()
}

/// `facts` set facts `s0`, `s1`, ... (each a gate) with `per_fact` rules
/// `sK matches "NIx*" and size > N` each: every name of a set finds its own
/// rule, so on [`set_gate_facts`] an evaluation looks up every name of
/// every set and tries every rule (the most a set's gate can propose).
pub fn set_gate_rules(facts: usize, per_fact: usize) -> String {
    let mut src: String = (0..facts)
        .map(|k| format!("fact s{k}: [string]\n"))
        .collect();
    for k in 0..facts {
        for i in 0..per_fact {
            src.push_str(&format!(
                "rule \"r{k}_{i}\" {{ when s{k} matches \"N{i}x*\" and size > {} then pass }}\n",
                i + 10
            ));
        }
    }
    src
}

/// Facts for [`set_gate_rules`]: each set names every family (`NIx`), and
/// the message is small, so no rule is true.
pub fn set_gate_facts(facts: usize, per_fact: usize) -> String {
    let names: Vec<String> = (0..per_fact).map(|i| format!("\"N{i}x\"")).collect();
    let names = names.join(",");
    let sets: Vec<String> = (0..facts).map(|k| format!("\"s{k}\": [{names}]")).collect();
    format!("{{{}, \"size\": 1}}", sets.join(", "))
}

/// A list of `items` strings used by `n` rules `not sender in big and
/// size > N` (no gate: `not`): on a sender in the list every rule is tried,
/// and each use was a binary search of the list.
pub fn list_on_one_string(items: usize, n: usize) -> String {
    let list: Vec<String> = (0..items)
        .map(|i| format!("\"user{i:06}@example.org\""))
        .collect();
    let mut src = format!("list big = [{}]\n", list.join(", "));
    for i in 0..n {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when not sender in big and size > {i} then pass }}\n"
        ));
    }
    src
}

/// One rule whose condition is `n` operands `((a))` joined by `or`: the
/// most grammar tokens per byte found (pest keeps ~28 pairs per operand).
pub fn paren_or_chain(n: usize) -> String {
    let mut src = String::from("fact a: bool\nrule \"r\" { when ((a))");
    for _ in 1..n {
        src.push_str(" or ((a))");
    }
    src.push_str(" then reject }\n");
    src
}

/// `rules` rules of 100 operands `(a)` joined by `or` each.
pub fn paren_rules(rules: usize) -> String {
    let mut src = String::from("fact a: bool\n");
    for i in 0..rules {
        src.push_str(&format!("rule \"r{i}\" {{ when (a)"));
        for _ in 1..100 {
            src.push_str(" or (a)");
        }
        src.push_str(" then reject }\n");
    }
    src
}

/// `n` rules of a three-part glob with an open start (`*aN*bN*cN*`) on
/// `sender`: a DFA over many of them grows exponentially, so these were one
/// pass each; now one Aho–Corasick pass answers them all (parts groups).
pub fn three_part_glob_rules(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&format!(
            "rule \"g{i}\" {{ when sender matches \"*a{i}*b{i}*c{i}*\" then reject }}\n"
        ));
    }
    src
}

/// A 64 KB value in which every `*aN*bN*cN*` part of
/// [`three_part_glob_rules`] (N < 1,000) but the `c`s occurs over and
/// over, in order: `a0b0a1b1…`, cut at 64 KB.
pub fn three_part_value() -> String {
    let mut v = String::new();
    let mut i = 0;
    while v.len() < 64 * 1024 {
        v.push_str(&format!("a{i}b{i}"));
        i = (i + 1) % 1_000;
    }
    v.truncate(64 * 1024);
    v
}

/// `n` rules of a regex with a Unicode word boundary on `sender`
/// (`/\b\w+N\b/`): no DFA runs it on non-ASCII text, so each is an NFA
/// pass of its own (3–5 ms on 64 KB); refused past
/// `Limits::max_scan_passes`.
pub fn unicode_boundary_rules(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&format!(
            "rule \"r{i}\" {{ when sender matches /\\b\\w+{i}\\b/ then reject }}\n"
        ));
    }
    src
}

/// `n` rules of an open-start glob of three parts with a `?` in one
/// (`*aN?*bN*cN*`) on `sender`: no group takes them, each is a pass.
pub fn wild_three_part_glob_rules(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&format!(
            "rule \"g{i}\" {{ when sender matches \"*a{i}?*b{i}*c{i}*\" then reject }}\n"
        ));
    }
    src
}

/// `facts` custom string facts `f0`, `f1`, …, each read by `n` rules of a
/// `*aN*bN*cN*` glob, fact after fact: each fact takes one shared-scan
/// group, so the facts past the 32nd group have their globs matched one
/// by one.
pub fn globs_past_the_groups(facts: usize, n: usize) -> String {
    let mut src = String::new();
    for f in 0..facts {
        src.push_str(&format!("fact f{f}: string\n"));
    }
    for f in 0..facts {
        for i in 0..n {
            src.push_str(&format!(
                "rule \"f{f}g{i}\" {{ when f{f} matches \"*a{i}*b{i}*c{i}*\" then reject }}\n"
            ));
        }
    }
    src
}

/// [`most_names_facts`] with `scanner` infected and `forges_sender` false:
/// every virus rule of the generated policy (`tests/common/gen.rs`) is a
/// candidate, and each of its `virus` tests reads every name.
pub fn most_names_infected_facts() -> String {
    let names = most_names_facts();
    format!(
        "{}, \"scanner\": \"infected\", \"forges_sender\": false}}",
        names.trim_end_matches('}')
    )
}

/// `n` rules of tests that do not search, on `virus` (a set): each reads
/// a bounded length of every name, so unshared they cost names × leaves.
/// `kind`: `eq` (`virus == "nN!"`), `in` (`virus in [50 strings]`),
/// `word` (`/^xN!\b/`, a literal and a Unicode word boundary), `ascii`
/// (`"éN!*"`, a non-ASCII prefix glob: no literal group takes it),
/// `wordre` (`/^\w{1,2,3}!N\b/`, a bounded regex with a Unicode `\b` that is
/// no literal). Names of [`most_names_facts`] match none of them.
pub fn set_test_rules(kind: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            let cond = match kind {
                "eq" => format!("virus == \"n{i}!\""),
                "in" => {
                    let items: Vec<String> = (0..50).map(|j| format!("\"a{i}!{j}\"")).collect();
                    format!("virus in [{}]", items.join(", "))
                }
                "word" => format!("virus matches /^x{i}!\\b/"),
                "ascii" => format!("virus matches \"é{i}!*\""),
                _ => format!("virus matches /^\\w{{{}}}!{i}\\b/", i % 3 + 1),
            };
            format!("rule \"r{i}\" {{ when {cond} then reject }}\n")
        })
        .collect()
}
