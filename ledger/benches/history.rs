//! Memory and restart time as history grows: a store grown to each target number of
//! transactions (earns, each followed by a burn of the same points, at 100,000 members, so
//! that what grows is history and not what members hold; through the committer at batch
//! 8,192), then opened
//! in a fresh process, which reports how long the open took, its resident memory (VmRSS, and
//! the peak VmHWM) and the idempotency keys it holds in memory; and then checks that a retry of
//! the very first earn is still answered as a replay.
//!
//! ```text
//! HISTORY_DIR=/path/with/space HISTORY_TARGETS=10000000,100000000 \
//!   cargo bench -p ledger --bench history
//! ```
//!
//! `KEYS_IN_MEMORY` sets the writer's key window while growing and opening (default: the
//! ledger's, 10,000,000; `max` for no window, as before the window existed). The store is kept
//! in `HISTORY_DIR` and grown further by the next target. Each measurement prints one JSON line.
//!
//! `HISTORY_REVERSE=1` follows each earn with a reversal of it in full instead of a burn: every
//! second transaction then leaves a reversal total behind (what the reversal window bounds).
//!
//! `HISTORY_CACHE_MB` sets the embedded store's block cache (default 256). Every 10 s the
//! growing process prints its resident memory, what the allocator holds committed, and the
//! store's own accounting (memtables, cache, tables, blob files).

/// The allocator the shipped binaries use (`partners-gateway`, `loadtest`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ledger::store::{EmbeddedOptions, EmbeddedStore};
use ledger::*;
use rust_decimal::Decimal;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

const MEMBERS: u64 = 100_000;
const PARTNERS: u32 = 4;

fn keys_in_memory() -> usize {
    match std::env::var("KEYS_IN_MEMORY").as_deref() {
        Ok("max") => usize::MAX,
        Ok(n) => n.parse().expect("KEYS_IN_MEMORY is a number or max"),
        Err(_) => LedgerConfig::default().keys_in_memory,
    }
}

fn open(dir: &Path) -> Ledger<EmbeddedStore> {
    let config = LedgerConfig {
        keys_in_memory: keys_in_memory(),
        ..LedgerConfig::default()
    };
    let mut options = EmbeddedOptions::default();
    if let Ok(mb) = std::env::var("HISTORY_CACHE_MB") {
        options.cache_bytes = mb.parse::<u64>().expect("HISTORY_CACHE_MB: MiB") << 20;
    }
    let store = EmbeddedStore::open_with(dir, options).expect("store");
    Ledger::open(store, config).expect("ledger")
}

/// Transaction `n`: an earn when `n` is even, then a burn of the same points by the same
/// member, which spends the earn's lot.
fn earn(n: u64) -> Command {
    let pair = n / 2;
    let p = PartnerId(1 + (pair % u64::from(PARTNERS)) as u32);
    let member = MemberId(1 + (pair.wrapping_mul(2_654_435_761) % MEMBERS));
    let points = Points(100 + (pair % 900) as i64);
    if n % 2 == 1 {
        return Command::Burn {
            key: IdemKey::partner(p, format!("h{n}")),
            member,
            partner: p,
            points,
        };
    }
    Command::Earn {
        key: IdemKey::partner(p, format!("h{n}")),
        member,
        partner: p,
        points,
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    }
}

/// Transactions (earns and burns) posted so far, kept beside the store.
fn posted(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("history-earns"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn grow(dir: &Path, target: u64) {
    let l = open(dir);
    let mut n = posted(dir);
    if n == 0 {
        for p in 1..=PARTNERS {
            l.execute_blocking(Command::SetContract {
                key: IdemKey::operator(format!("c{p}")),
                contract: Contract {
                    partner: PartnerId(p),
                    currency: "EUR".parse().expect("EUR"),
                    issuance_price_per_point: Decimal::new(1, 2),
                    redemption_price_per_point: Decimal::new(7, 3),
                    points_validity_days: None,
                },
            })
            .expect("contract");
        }
        let mut window = VecDeque::new();
        for m in 1..=MEMBERS {
            window.push_back(
                l.submit(Command::Enrol {
                    key: IdemKey::operator(format!("m{m}")),
                    member: MemberId(m),
                })
                .expect("queue"),
            );
            if window.len() >= 16_000 {
                let p: Pending = window.pop_front().expect("pending");
                p.blocking_recv().expect("answer").expect("enrol");
            }
        }
        for p in window {
            p.blocking_recv().expect("answer").expect("enrol");
        }
    }
    let started = Instant::now();
    let from = n;
    let mut window: VecDeque<Pending> = VecDeque::new();
    let mut last_report = Instant::now();
    let reverse = std::env::var("HISTORY_REVERSE").is_ok_and(|v| v == "1");
    while n < target || !window.is_empty() {
        while n < target && window.len() < 24_000 {
            window.push_back(l.submit(earn(n)).expect("queue has room"));
            // With reversals, each earn's reversal is transaction `n + 1`, sent once it lands.
            n += if reverse { 2 } else { 1 };
        }
        let r = window
            .pop_front()
            .expect("pending")
            .blocking_recv()
            .expect("answer")
            .expect("earn, burn or reversal");
        assert!(!r.replayed, "a key was used twice");
        if reverse && matches!(r.tx.kind, TxKind::Earn { .. }) {
            let of: u64 = r.tx.key.reference[1..]
                .parse()
                .expect("an earn's key is h<n>");
            let undo = Command::Reverse {
                key: IdemKey {
                    scope: r.tx.key.scope,
                    reference: format!("h{}", of + 1),
                },
                original: r.tx.id,
                points: None,
            };
            window.push_back(l.submit(undo).expect("queue has room"));
        }
        if last_report.elapsed().as_secs() >= 10 {
            last_report = Instant::now();
            eprintln!(
                "grown to {} earns, {:.0}/s, {} keys and {} reversal totals in memory, {:.0} MB resident ({:.0} MB committed by the allocator); {}",
                n - window.len() as u64,
                (n - from - window.len() as u64) as f64 / started.elapsed().as_secs_f64(),
                l.keys_in_memory().unwrap_or(0),
                l.reversal_totals_in_memory().unwrap_or(0),
                status("VmRSS:") as f64 / 1024.0,
                ledger::allocator::committed_bytes() as f64 / (1024.0 * 1024.0),
                l.store().engine_report()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // The growing process's own memory: what a process running this long holds.
    let rss_mb = status("VmRSS:") as f64 / 1024.0;
    let peak_mb = status("VmHWM:") as f64 / 1024.0;
    l.shutdown();
    std::fs::write(dir.join("history-earns"), n.to_string()).expect("count");
    eprintln!(
        "grew {} earns in {secs:.0} s ({:.0}/s), {rss_mb:.0} MB resident at the end, {peak_mb:.0} MB at the peak",
        n - from,
        (n - from) as f64 / secs
    );
}

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In a fresh process: open, measure, check the oldest key.
fn measure(dir: &Path) {
    let t = Instant::now();
    let l = open(dir);
    let open_s = t.elapsed().as_secs_f64();
    let rss = status("VmRSS:");
    let keys = l.keys_in_memory().unwrap_or(0);
    let again = l
        .execute_blocking(earn(0))
        .expect("retry of the first earn");
    assert!(again.replayed, "the first earn is still known");
    let retry_ms = t.elapsed().as_secs_f64() * 1000.0 - open_s * 1000.0;
    let bytes: u64 = walk(dir);
    println!(
        "{{\"earns\":{},\"store_bytes\":{bytes},\"keys_in_memory_setting\":\"{}\",\"open_s\":{open_s:.2},\"rss_mb\":{:.0},\"peak_rss_mb\":{:.0},\"keys_in_memory\":{keys},\"first_key_retry_ms\":{retry_ms:.1}}}",
        posted(dir),
        std::env::var("KEYS_IN_MEMORY").unwrap_or_else(|_| "default".into()),
        rss as f64 / 1024.0,
        status("VmHWM:") as f64 / 1024.0,
    );
    l.shutdown();
}

fn walk(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    // The shipped binaries' allocator settings, so that memory measured is theirs.
    ledger::allocator::tune();
    let dir =
        PathBuf::from(std::env::var("HISTORY_DIR").expect("HISTORY_DIR: where the store lives"));
    if std::env::var("HISTORY_PHASE").as_deref() == Ok("measure") {
        measure(&dir);
        return;
    }
    std::fs::create_dir_all(&dir).expect("dir");
    let targets: Vec<u64> = std::env::var("HISTORY_TARGETS")
        .unwrap_or_else(|_| "10000000".into())
        .split(',')
        .map(|t| t.trim().parse().expect("HISTORY_TARGETS: numbers"))
        .collect();
    for target in targets {
        grow(&dir, target);
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env("HISTORY_PHASE", "measure")
            .status()
            .expect("measuring process");
        assert!(out.success(), "measuring failed");
    }
}
