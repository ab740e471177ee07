//! `Policy::evaluate` and `Policy::evaluate_lazy` allocate nothing: a
//! counting global allocator sees zero allocations while they run (on this
//! thread) for facts built beforehand.

#[path = "common/gen.rs"]
mod gen;

use mailpolicy::{Direction, FactKey, FactProvider, FactValue, Facts, Policy, Scanner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
/// Reallocations (also counted in `ALLOCS`: they free nothing extra).
static REALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: forwards every call unchanged to the system allocator; the
// bookkeeping neither allocates nor touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        if COUNTING.with(Cell::get) {
            REALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.with(Cell::get) {
            FREES.fetch_add(1, Ordering::SeqCst);
        }
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests count in shared counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.load(Ordering::SeqCst) - before
}

/// The specification's example policy.
const EXAMPLE: &str = include_str!("fixtures/spec_example.policy");

struct Provider<'f>(&'f Facts);

impl FactProvider for Provider<'_> {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        self.0.fact(key)
    }
}

#[test]
fn evaluate_does_not_allocate() {
    let _serial = serial();
    let example = Policy::parse(EXAMPLE).expect("example parses");
    let generated = Policy::parse(&gen::virus_policy(1000, 3)).expect("generated parses");
    let mut all = vec![
        Facts::new(),
        Facts::new()
            .scanner(Scanner::Clean)
            .direction(Direction::Inbound),
        Facts::new()
            .direction(Direction::Outbound)
            .scanner(Scanner::Infected)
            .virus("W32/Sobig.F@MM")
            .client_ip("10.1.2.3".parse().expect("addr")),
        Facts::new()
            .direction(Direction::Inbound)
            .scanner(Scanner::Infected)
            .virus("Worm.Xyz")
            .forges_sender(false)
            .sender("a@b.example"),
        Facts::new()
            .scanner(Scanner::Clean)
            .custom("dnsbl_listed", true)
            .spam_score(9.5),
        gen::no_match_clean(),
        gen::no_match_infected(),
        // Several detections, and a scanned message with none.
        Facts::new()
            .direction(Direction::Inbound)
            .scanner(Scanner::Infected)
            .virus("Heuristics.Phishing.Email")
            .virus("W32/Sobig.F@MM")
            .virus("PUA.Win.Packer"),
        Facts::new()
            .direction(Direction::Inbound)
            .scanner(Scanner::Clean)
            .viruses(Vec::<String>::new()),
    ];
    all.extend(gen::varied_facts(200, 1000, 3));
    let providers: Vec<Provider<'_>> = all.iter().map(Provider).collect();
    for policy in [&example, &generated] {
        // Warm up: the regex crate fills its per-thread match cache on first use.
        for (f, p) in all.iter().zip(&providers) {
            policy.evaluate(f);
            policy.evaluate_lazy(p);
        }
        let mut rules = 0usize;
        let n = allocations(|| {
            for (f, p) in all.iter().zip(&providers) {
                rules += usize::from(policy.evaluate(f).rule().is_some());
                rules += usize::from(policy.evaluate_lazy(p).rule().is_some());
            }
        });
        assert_eq!(n, 0, "evaluate allocated {n} times");
        assert!(rules > 0);
    }
    // The counter itself works.
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 16]))) >= 1);
}

/// A provider that computes its values (owned text and sets): the lazy
/// evaluator frees every value it memoised, and nothing else.
struct Computing;

impl FactProvider for Computing {
    fn fact(&self, key: FactKey<'_>) -> Option<FactValue<'_>> {
        match key.name {
            "scanner" => Some(FactValue::Scanner(Scanner::Infected)),
            "direction" => Some(FactValue::Direction(Direction::Inbound)),
            "virus" => Some(FactValue::set([
                "Heuristics.Phishing.Email".to_owned(),
                "W32/Sobig.F@MM".to_owned(),
            ])),
            "sender" => Some(FactValue::Str(std::borrow::Cow::Owned(
                "a@b.example".to_owned(),
            ))),
            "forges_sender" => Some(FactValue::Bool(false)),
            _ => None,
        }
    }
}

#[test]
fn lazy_evaluation_frees_what_the_provider_computed() {
    let _serial = serial();
    let policy = Policy::parse(EXAMPLE).expect("example parses");
    let before = (ALLOCS.load(Ordering::SeqCst), FREES.load(Ordering::SeqCst));
    let mut decided = 0;
    let n = allocations(|| {
        for _ in 0..10 {
            decided += usize::from(policy.evaluate_lazy(&Computing).rule().is_some());
        }
    });
    let allocs = ALLOCS.load(Ordering::SeqCst) - before.0;
    let frees = FREES.load(Ordering::SeqCst) - before.1;
    assert_eq!(decided, 10);
    // The provider allocated (the set, its names, the sender) ...
    assert!(n >= 30, "{n} allocations");
    // ... and every allocation was freed.
    assert_eq!(allocs, frees, "{allocs} allocations, {frees} frees");
}

#[test]
fn dropped_facts_free_every_value() {
    let _serial = serial();
    // `Facts` drops its values by hand (only the slots that may own memory):
    // every allocation made while building and changing them is freed.
    let before = (
        ALLOCS.load(Ordering::SeqCst),
        FREES.load(Ordering::SeqCst),
        REALLOCS.load(Ordering::SeqCst),
    );
    let n = allocations(|| {
        for i in 0..10 {
            let mut f = Facts::new()
                .direction(Direction::Inbound)
                .scanner(Scanner::Infected)
                .virus(format!("V{i}"))
                .virus("W")
                .sender("a@b")
                .recipient(String::from("c@d"))
                .custom("note", "x");
            f.set("virus", FactValue::set(["X", "Y"]));
            f.set("size", FactValue::from("big"));
            f.set("size", FactValue::Int(3));
            f.set("spam_score", FactValue::from("high"));
            f.unset("recipient");
            let g = f.clone().viruses(["Z"]);
            drop(f);
            drop(g);
            // A one-name `virus` lends a set once it is asked for: freed
            // with the facts, and when `virus` changes.
            let one = Facts::new().virus(format!("O{i}"));
            assert!(one.get("virus").is_some());
            let mut two = one.clone();
            assert!(two.iter().count() == 1);
            two.set("virus", FactValue::from("P"));
            let mut three = one.clone();
            assert!(three.get("virus").is_some());
            three.unset("virus");
            let four = one.clone().virus("Q");
            drop((one, two, three, four));
            // A set of many names built one by one is indexed: the index is
            // freed with the facts, and when `virus` changes.
            let many = (0..40).fold(Facts::new(), |f, k| f.virus(format!("M{k}")));
            let mut changed = many.clone().virus("M3");
            changed.set("virus", FactValue::from("P"));
            drop((many, changed));
        }
    });
    let allocs = ALLOCS.load(Ordering::SeqCst) - before.0;
    let frees = FREES.load(Ordering::SeqCst) - before.1;
    let reallocs = REALLOCS.load(Ordering::SeqCst) - before.2;
    assert!(n >= 100, "{n} allocations");
    assert_eq!(
        allocs - reallocs,
        frees,
        "{allocs} allocations ({reallocs} reallocations), {frees} frees"
    );
}
