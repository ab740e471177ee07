//! Hot reload: parse the new policy, check it, and swap it in atomically only
//! if it has no errors; a bad file leaves the old policy in force. Readers
//! never wait on a reload for longer than an `Arc` clone.
//!
//! Run it with `cargo run --example hot_reload`.

use mailpolicy::{Facts, Policy, Scanner};
use std::sync::{Arc, RwLock};

/// The live policy, shared by every worker thread.
struct LivePolicy {
    current: RwLock<Arc<Policy>>,
}

impl LivePolicy {
    fn new(policy: Policy) -> LivePolicy {
        LivePolicy {
            current: RwLock::new(Arc::new(policy)),
        }
    }

    /// The policy to use for one message. A poisoned lock (a panic in another
    /// thread while swapping) still holds a valid `Arc`, so use it.
    fn get(&self) -> Arc<Policy> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the policy if `source` parses without errors; otherwise keeps
    /// the old one and returns the errors to log. Warnings do not block a reload.
    fn reload(&self, source: &str) -> Result<usize, String> {
        let policy = Policy::parse(source).map_err(|e| e.to_string())?;
        let warnings = policy.check().len();
        let new = Arc::new(policy);
        match self.current.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        Ok(warnings)
    }
}

fn main() {
    let v1 = r#"rule "virus" { when scanner == infected then discard, quarantine } default pass"#;
    let live = Arc::new(LivePolicy::new(
        Policy::parse(v1).expect("the bundled policy parses"),
    ));
    let infected = Facts::new().scanner(Scanner::Infected);

    let worker = {
        let live = Arc::clone(&live);
        let facts = infected.clone();
        std::thread::spawn(move || {
            let mut evaluated = 0usize;
            for _ in 0..10_000 {
                // Each message takes the current policy; a reload never blocks it for long.
                let _disposition = live.get().evaluate(&facts).disposition();
                evaluated += 1;
            }
            evaluated
        })
    };

    // A broken edit: the old policy stays in force.
    let broken = r#"rule "virus" { when scanner == infectd then reject } default pass"#;
    match live.reload(broken) {
        Ok(_) => println!("unexpected: the broken policy was accepted"),
        Err(errors) => println!("reload refused, old policy kept:\n{errors}\n"),
    }
    println!(
        "after the failed reload: {}",
        live.get().evaluate(&infected).disposition()
    );

    // A good edit replaces it.
    let v2 = r#"rule "virus" { when scanner == infected then reject "554 5.7.1 virus found" } default pass"#;
    match live.reload(v2) {
        Ok(warnings) => println!("reloaded ({warnings} warning(s))"),
        Err(errors) => println!("reload refused:\n{errors}"),
    }
    println!(
        "after the good reload: {}",
        live.get().evaluate(&infected).disposition()
    );
    println!(
        "worker evaluated {} messages during the reloads",
        worker.join().unwrap_or(0)
    );
}
