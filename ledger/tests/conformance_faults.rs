//! The engine-independent conformance suite on the embedded engine behind
//! [`FaultyStore`]: every commit held to FoundationDB's size limits, and a few percent of
//! commits conflicting, answering `commit_unknown_result` after committing or after not
//! committing, or slow. Timeouts end a call instead of retrying it, so they have their own
//! test (`ledger/tests/cluster.rs`). Each check runs with its own seed, printed on failure.

#[macro_use]
mod conformance;
use ledger::store::faults::{Faults, FaultyStore};
use ledger::store::EmbeddedStore;

/// Every fault kind that [`ledger::store::TxnStore::transact`] retries, on about a quarter
/// of commits.
fn faults() -> Faults {
    Faults {
        conflict: 100,
        unknown_committed: 60,
        unknown_lost: 60,
        timeout: 0,
        slow: 30,
        slow_ms: 2,
        transaction_bytes_max: 0,
    }
}

/// The check's seed: its name's hash, varied by `FAULT_SEED` to explore more schedules.
fn seed(check: &str) -> u64 {
    let extra: u64 = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    extra
        ^ check.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}

macro_rules! with_faults {
    ($($check:ident),* $(,)?) => {$(
        #[test]
        fn $check() {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().to_path_buf();
            let seed = seed(stringify!($check));
            eprintln!("fault seed {seed}");
            let mut seen = Vec::new();
            conformance::$check(&mut || {
                let s = FaultyStore::new(EmbeddedStore::open(&path).expect("open store"), faults(), seed);
                seen.push(s.injected());
                s
            });
            let retried: u64 = seen.iter().map(|i| i.retried()).sum();
            eprintln!("faults retried through: {retried}");
        }
    )*};
}

for_each_conformance_check!(with_faults);
