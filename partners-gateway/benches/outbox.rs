//! How fast the outbox derives events from the journal: every batch of a store read in commit
//! order and turned into events, as the webhook dispatcher does.
//!
//! `BENCH_DIR=<store> cargo bench -p partners-gateway --bench outbox -- --bench` on a store
//! built by `ledger`'s finance bench (`BENCH_DIR` there); `BENCH_RUNS` (default 3).

use ledger::store::{EmbeddedStore, Store};
use std::time::Instant;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Ok(dir) = std::env::var("BENCH_DIR") else {
        eprintln!("BENCH_DIR names a store (see ledger/benches/finance.rs)");
        return;
    };
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let store = EmbeddedStore::open(std::path::Path::new(&dir)).expect("store");
    for _ in 0..runs {
        let snap = store.snapshot().expect("snapshot");
        let t = Instant::now();
        let (mut txs, mut events) = (0u64, 0u64);
        ledger::journal::for_each_batch_after(&snap, None, &mut |_, _, batch| {
            txs += batch.len() as u64;
            for tx in &batch {
                for e in partners_gateway::events::events_of(tx) {
                    events += 1;
                    std::hint::black_box(serde_json::to_vec(&e).expect("json"));
                }
            }
            Ok(true)
        })
        .expect("journal");
        let s = t.elapsed().as_secs_f64();
        println!(
            "| outbox: events derived and serialised | {txs} transactions, {events} events | {s:.1} s | {:.0} events/s |",
            events as f64 / s
        );
    }
}
