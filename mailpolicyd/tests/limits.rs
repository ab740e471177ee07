//! `[limits] max_eval_steps`: a trusted policy that takes more steps per
//! evaluation than the library's default is refused at start unless the
//! config raises the limit, and the raised limit (not the default, and not
//! "no limit") is what a SIGHUP reload checks against. No clamd or MTA is
//! involved: the policies read no scanner fact.

use mailpolicyd::config::Config;
use mailpolicyd::filter::Filter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `n` rules `size > i`: no decision-table fact or value index narrows
/// them, so every evaluation may try all of them (about 2 steps a rule).
fn heavy(n: usize) -> String {
    (0..n)
        .map(|i| format!("rule \"r{i}\" {{ when size > {i} then pass }}\n"))
        .collect()
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mpd-limits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A config for `dir/p.policy`, with `extra` appended.
fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "policy = \"p.policy\"\n[milter]\nlisten = \"inet:127.0.0.1:1\"\n[quarantine]\ndir = \"{}\"\n[notify]\nsubmit = \"inet:127.0.0.1:1\"\n{extra}",
        dir.join("q").display()
    );
    Config::parse(&text, "c.toml", dir).unwrap()
}

#[test]
fn a_heavy_trusted_policy_starts_only_with_the_limit_raised() {
    let dir = tempdir("start");
    let policy = dir.join("p.policy");
    // About 34,000 steps: past the default of 32,768.
    std::fs::write(&policy, heavy(17_000)).unwrap();

    let Err(e) = Filter::new(config(&dir, "")) else {
        panic!("the filter started with a policy past the default limit");
    };
    assert!(e.contains("error[limit]: "), "{e}");
    assert!(e.contains("more than the limit of 32768"), "{e}");
    assert!(e.contains(&format!("{}:", policy.display())), "{e}");

    let filter = match Filter::new(config(&dir, "[limits]\nmax_eval_steps = 40000\n")) {
        Ok(f) => f,
        Err(e) => panic!("the raised limit did not let the policy in: {e}"),
    };
    assert_eq!(filter.config().limits.max_eval_steps, 40_000);

    // SIGHUP: a policy within the raised limit (and past the default) is
    // taken; one past the raised limit is refused and the old one stays.
    std::fs::write(&policy, heavy(19_000)).unwrap();
    let before = filter.policy();
    let reloaded = match filter.reload() {
        Ok(p) => p,
        Err(e) => panic!("the reload did not use the raised limit: {e}"),
    };
    assert!(!Arc::ptr_eq(&before, &reloaded));
    assert!(Arc::ptr_eq(&reloaded, &filter.policy()));

    std::fs::write(&policy, heavy(21_000)).unwrap();
    let Err(e) = filter.reload() else {
        panic!("the reload took a policy past the raised limit");
    };
    assert!(e.contains("more than the limit of 40000"), "{e}");
    assert!(Arc::ptr_eq(&reloaded, &filter.policy()));
    let _ = std::fs::remove_dir_all(&dir);
}
