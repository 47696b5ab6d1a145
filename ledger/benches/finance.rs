//! Finance on a large store: how long the finance book takes to build from the journal (once
//! per process) and to catch up, how long a trial balance at an instant inside a day and the
//! liability take on it, and how fast exports stream.
//!
//! `cargo bench -p ledger --bench finance -- --bench`; `BENCH_TX` transactions (default
//! 10,000,000) over twelve months, `BENCH_MEMBERS` members (default 200,000), `BENCH_DIR` to
//! keep the store between runs (it is built once when absent), `BENCH_RUNS` timed runs of each
//! report (default 5; the median is printed).

use chrono_tz::Tz;
use ledger::finance::{self, export, reports, Book};
use ledger::store::{EmbeddedStore, Store};
use ledger::*;
use rust_decimal::Decimal;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

static OFFSET: AtomicI64 = AtomicI64::new(0);
const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z.
const JAN_1: i64 = 1_767_225_600_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mb() -> f64 {
    ledger::allocator::resident_bytes().map_or(0.0, |b| b as f64 / 1_048_576.0)
}

fn build(dir: &std::path::Path, txs: u64, members: u64) {
    let config = LedgerConfig {
        committer: CommitterConfig {
            clock: Clock::shifted(&OFFSET),
            ..CommitterConfig::default()
        },
        ..LedgerConfig::default()
    };
    let l = Ledger::open(EmbeddedStore::open(dir).expect("store"), config).expect("ledger");
    let set_day = |d: i64| OFFSET.store(JAN_1 + d * DAY - Timestamp::now().0, Ordering::SeqCst);
    set_day(0);
    let partners = 10u32;
    for p in 1..=partners {
        l.execute_blocking(Command::SetContract {
            key: IdemKey::operator(format!("c{p}")),
            contract: Contract {
                partner: PartnerId(p),
                currency: "EUR".parse().expect("EUR"),
                issuance_price_per_point: Decimal::new(10 + i64::from(p), 3),
                redemption_price_per_point: Decimal::new(5 + i64::from(p), 3),
                points_validity_days: (p % 2 == 0).then_some(180),
            },
        })
        .expect("contract");
    }
    let mut window: VecDeque<Pending> = VecDeque::new();
    let mut send = |l: &Ledger<EmbeddedStore>, cmd: Command| {
        if window.len() >= 20_000 {
            let p = window.pop_front().expect("pending");
            let _ = p.blocking_recv();
        }
        loop {
            match l.submit(cmd.clone()) {
                Ok(p) => {
                    window.push_back(p);
                    break;
                }
                Err(LedgerError::Overloaded) => {
                    if let Some(p) = window.pop_front() {
                        let _ = p.blocking_recv();
                    }
                }
                Err(e) => panic!("submit: {e}"),
            }
        }
    };
    for m in 1..=members {
        send(
            &l,
            Command::Enrol {
                key: IdemKey::operator(format!("m{m}")),
                member: MemberId(m),
            },
        );
    }
    let rest = txs.saturating_sub(members + u64::from(partners));
    let started = Instant::now();
    for i in 0..rest {
        // Twelve months, in order.
        if i % (rest / 360).max(1) == 0 {
            set_day((i * 360 / rest.max(1)) as i64);
        }
        let m = MemberId(1 + (i * 7919) % members);
        let p = PartnerId(1 + (i % u64::from(partners)) as u32);
        let cmd = if i % 4 == 3 {
            Command::Burn {
                key: IdemKey::partner(p, format!("b{i}")),
                member: m,
                partner: p,
                points: Points(40),
            }
        } else {
            Command::Earn {
                key: IdemKey::partner(p, format!("e{i}")),
                member: m,
                partner: p,
                points: Points(100),
                bonus: Points(0),
                awards: vec![],
                guard: None,
                purchase: None,
            }
        };
        send(&l, cmd);
        if i % 1_000_000 == 0 && i > 0 {
            eprintln!(
                "built {i} transactions ({:.0}/s)",
                i as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    for p in window {
        let _ = p.blocking_recv();
    }
    l.shutdown();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    ledger::allocator::tune();
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let txs = env("BENCH_TX", 10_000_000);
    let members = env("BENCH_MEMBERS", 200_000);
    let runs = env("BENCH_RUNS", 5) as usize;
    let tmp;
    let dir = match std::env::var("BENCH_DIR") {
        Ok(d) => std::path::PathBuf::from(d),
        Err(_) => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().to_path_buf()
        }
    };
    if !dir.join("built").exists() {
        let t = Instant::now();
        build(&dir, txs, members);
        std::fs::write(dir.join("built"), b"").expect("mark");
        eprintln!("store built in {:.1} s", t.elapsed().as_secs_f64());
    }
    let store = EmbeddedStore::open(&dir).expect("store");
    let snap = store.snapshot().expect("snapshot");
    let rss0 = rss_mb();
    let t = Instant::now();
    let mut book = Book::new(Tz::UTC);
    finance::catch_up(&mut book, &snap).expect("book");
    let build_s = t.elapsed().as_secs_f64();
    println!(
        "| book built from the journal | {} transactions | {:.1} s | {:.0} transactions/s | +{:.0} MB resident | {} live lots |",
        book.transactions,
        build_s,
        book.transactions as f64 / build_s,
        rss_mb() - rss0,
        book.live_lots()
    );
    let t = Instant::now();
    let saved = finance::save(&store, &book).expect("save");
    let save_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let loaded = finance::load(&store.snapshot().expect("snapshot"), Tz::UTC)
        .expect("load")
        .expect("saved");
    let load_s = t.elapsed().as_secs_f64();
    assert_eq!(loaded.transactions, book.transactions);
    drop(loaded);
    println!(
        "| book saved / read back | {} chunks, {:.0} MB | {:.1} s / {:.1} s |",
        saved.chunks,
        f64::from(saved.chunks) * 90_000.0 / 1_048_576.0,
        save_s,
        load_s
    );
    let mid = Timestamp(JAN_1 + 200 * DAY + 13 * 3_600_000);
    let tb: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let r = reports::trial_balance(&book, &snap, mid).expect("tb");
            assert!(r.total_points.is_zero());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!(
        "| trial balance at 13:00 on day 200 | median of {runs} | {:.1} ms |",
        median(tb)
    );
    let li: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let l = reports::liability(&book, mid, book.buckets(), Decimal::ZERO);
            assert!(l.points > 0);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!("| liability | median of {runs} | {:.2} ms |", median(li));
    let est: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            reports::breakage_at(&book, 202612, 6, &[]);
            reports::revenue(&book, 202612, 6, &[]);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!(
        "| breakage and the revenue schedule (12 months) | median of {runs} | {:.2} ms |",
        median(est)
    );
    for (name, dataset, format) in [
        ("journal CSV", export::Dataset::Journal, export::Format::Csv),
        (
            "postings NDJSON",
            export::Dataset::Postings,
            export::Format::Ndjson,
        ),
    ] {
        let mut bytes = 0usize;
        let rss_before = rss_mb();
        let mut peak = rss_before;
        let t = Instant::now();
        let mut sink = |c: Vec<u8>| {
            bytes += c.len();
            peak = peak.max(rss_mb());
            true
        };
        let mut w = export::RowWriter::new(format, &mut sink);
        export::export(&book, &snap, dataset, None, None, &mut w).expect("export");
        let rows = w.finish();
        let s = t.elapsed().as_secs_f64();
        println!(
            "| export {name} | {rows} rows, {:.0} MB | {:.1} s | {:.0} rows/s | peak +{:.0} MB resident |",
            bytes as f64 / 1_048_576.0,
            s,
            rows as f64 / s,
            peak - rss_before
        );
    }
}
