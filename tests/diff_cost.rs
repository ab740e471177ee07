//! `policy diff` on the attack corpus's list case (issue 11): a 5,000-glob
//! list and a 10,000-string list, each used by 2,000 rules. The diff keyed
//! each condition by its whole text, lists included, so it wrote, hashed and
//! compared every use of a list: 6.5 s and 1.4 GB for a 0.54 MB policy
//! against itself plus one rule. Now a list is keyed once (`src/diff/joint.rs`)
//! and the diff stays within the SPEC's memory bound, counted exactly
//! (`cargo test --release --test diff_cost -- --nocapture` prints it).

#[path = "common/attack.rs"]
mod attack;
#[path = "common/peak.rs"]
mod peak;

use mailpolicy::Policy;
use peak::{memory_bound, peak_bytes};

fn parse(src: &str) -> Policy {
    Policy::parse(src).expect("parses")
}

/// The diff of `old` and `new` sources, within the memory bound of their
/// size together.
fn diff_within_bound(what: &str, old: &str, new: &str) -> mailpolicy::PolicyDiff {
    let (a, b) = (parse(old), parse(new));
    let (d, peak) = peak_bytes(|| a.diff(&b).expect("diffs"));
    let bound = memory_bound(old.len() + new.len());
    eprintln!(
        "{what}: {:.2} MB of policies, diff peak {:.1} MB, {} region(s), complete: {}",
        (old.len() + new.len()) as f64 / 1e6,
        peak as f64 / 1e6,
        d.regions.len(),
        d.complete
    );
    assert!(peak <= bound, "{what}: {peak} bytes, bound {bound}");
    d
}

#[test]
fn a_rule_added_to_the_list_case() {
    let old = attack::list_uses();
    let new = format!("{old}rule \"zz added\" {{ when scanner == error then tempfail }}\n");
    let d = diff_within_bound("one rule added", &old, &new);
    assert!(d.complete, "{:?}", d.unsettled);
    assert_eq!(d.regions.len(), 1);
    let r = &d.regions[0];
    assert_eq!(r.old_rule, None);
    assert_eq!(r.new_rule.as_deref(), Some("zz added"));
    // The example decides as the region says.
    let (a, b) = (parse(&old), parse(&new));
    assert_eq!(a.evaluate(&r.example).rule(), None);
    assert_eq!(b.evaluate(&r.example).rule(), Some("zz added"));
    assert_eq!(r.example_text, "scanner = error");
}

#[test]
fn the_same_lists_under_other_names_are_no_difference() {
    let old = attack::list_uses();
    let new = old
        .replace("worms", "families")
        .replace("names", "mailboxes");
    assert_ne!(old, new);
    let d = diff_within_bound("lists renamed", &old, &new);
    assert!(
        d.is_equivalent(),
        "{:?}",
        d.regions.first().map(|r| &r.example_text)
    );
}

#[test]
fn one_glob_changed_in_a_list_used_2000_times() {
    let old = attack::list_uses();
    let new = old.replacen("\"W32/Worm17.*\"", "\"W32/Worm17b.*\"", 1);
    assert_ne!(old, new);
    let d = diff_within_bound("one list element changed", &old, &new);
    // Every rule now tests another list: the diff says where they differ
    // (a virus that only one of the two globs matches), or that it could
    // not finish; it never says they are the same.
    assert!(!d.is_equivalent());
    for r in &d.regions {
        let old_p = parse(&old);
        let new_p = parse(&new);
        assert_ne!(
            old_p.evaluate(&r.example).rule(),
            new_p.evaluate(&r.example).rule(),
            "{}",
            r.example_text
        );
    }
}
