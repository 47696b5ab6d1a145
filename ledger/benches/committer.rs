//! Committer benchmark, no HTTP: a realistic mix (70% earn, 20% burn, 5% hold + capture,
//! 5% reversal) over many members and a handful of partners, durable (fsync per batch).
//!
//! `cargo bench -p ledger --bench committer` runs the default: 1,000,000 members, 5 partners,
//! batch limits 100, 1,000 and 8,000, 3 runs of 10 s each. Environment overrides:
//! `BENCH_MEMBERS`, `BENCH_SECONDS`, `BENCH_RUNS`, `BENCH_BATCHES` (comma list), `BENCH_DIR`
//! (store directory, kept afterwards for `ledger verify --data DIR`), `BENCH_PROGRAMME=1` (an
//! expiry policy and a tier policy in force: every earn qualifies, every member change moves
//! its due date), `BENCH_EXPIRY_LOTS=N` (instead: N members' lots expiring at one instant,
//! posted while commands keep coming; see `expiry_bench`), `BENCH_OUTSTANDING_BATCHES`
//! (commands the generator keeps outstanding, in batches: default 3), `BENCH_KEYS_IN_MEMORY`
//! and `BENCH_REVERSAL_TOTALS` (the writer's windows of keys and of reversal totals: small ones
//! put the run past them), `BENCH_MEMBER_WRITE_DELAY` (transactions a member page waits after
//! a change before it is written: default the ledger's), `BENCH_SEED_EARNS=N` (every member
//! earns N times before the runs, so holds N lots, as a mature programme's members do; with
//! `BENCH_SEED_SPEND=1` each then burns them all: the same history without the lots),
//! `BENCH_OPEN_ONLY=1` (instead: open the store an earlier run left in `BENCH_DIR`, print how
//! long the open took, the resident memory after it and how long the shutdown took, and stop;
//! a restart's measure).
//!
//! Each run warms up for 2 s and until `member_write_delay` transactions have committed, so
//! that the measured part includes the writes of member pages (the first come due then). The
//! generator keeps `3 x batch` commands outstanding (by default): enough to fill a batch while
//! two are in flight.
//!
//! Figures: transactions (commands) per second and posting legs per second, committed and
//! acknowledged; commit latency per batch (first command taken off the queue to fsync done),
//! p50/p99/max, from the committer's own observer.

use hdrhistogram::Histogram;

/// The allocator the shipped binaries use (`partners-gateway`, `loadtest`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ledger::store::EmbeddedStore;
use ledger::*;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTNERS: u32 = 5;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Transactions a member page waits after a change: `BENCH_MEMBER_WRITE_DELAY`, or the
/// ledger's default.
fn member_write_delay() -> u64 {
    env_or(
        "BENCH_MEMBER_WRITE_DELAY",
        LedgerConfig::default().member_write_delay,
    )
}

struct Run {
    txs_per_s: f64,
    /// Process CPU time (all threads, user + system) per committed transaction, in µs.
    cpu_us_per_tx: f64,
    legs_per_s: f64,
    commit_p50_us: u64,
    commit_p99_us: u64,
    commit_max_us: u64,
    mean_batch: f64,
    rejected: u64,
}

/// CPU time (user + system) of a Linux `stat` file: this process's or one thread's.
fn cpu_of(stat_path: &std::path::Path) -> Duration {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 ticks/s.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// CPU time this process has used, all threads.
fn process_cpu() -> Duration {
    cpu_of(std::path::Path::new("/proc/self/stat"))
}

/// CPU time per thread name (threads of one name summed), to say where the time goes.
fn thread_cpu() -> std::collections::BTreeMap<String, Duration> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        *out.entry(name.trim().to_string()).or_insert(Duration::ZERO) +=
            cpu_of(&task.path().join("stat"));
    }
    out
}

fn open(
    dir: &std::path::Path,
    batch: usize,
    hist: Arc<Mutex<Histogram<u64>>>,
) -> Ledger<EmbeddedStore> {
    let on_commit: CommitObserver = Arc::new(move |_, took: Duration| {
        let _ = hist.lock().expect("hist").record(took.as_micros() as u64);
    });
    let config = LedgerConfig {
        committer: CommitterConfig {
            batch_size_max: batch,
            queue_capacity: 64 * batch.max(1024),
            ..CommitterConfig::default()
        },
        on_commit: Some(on_commit),
        // BENCH_KEYS_IN_MEMORY: a small window puts the run past it (keys moving to disk, new
        // keys checked against the filter over them).
        keys_in_memory: env_or(
            "BENCH_KEYS_IN_MEMORY",
            LedgerConfig::default().keys_in_memory,
        ),
        // BENCH_REVERSAL_TOTALS: a small window has reversals read their originals' totals
        // from the store.
        reversal_totals_in_memory: env_or(
            "BENCH_REVERSAL_TOTALS",
            LedgerConfig::default().reversal_totals_in_memory,
        ),
        // BENCH_MEMBER_WRITE_DELAY: how long member pages wait after a change.
        member_write_delay: member_write_delay(),
        ..LedgerConfig::default()
    };
    Ledger::open(EmbeddedStore::open(dir).expect("store"), config).expect("ledger")
}

/// Submits every command with up to 16,000 outstanding, and waits for all: each must succeed.
fn submit_all(ledger: &Ledger<EmbeddedStore>, cmds: impl IntoIterator<Item = Command>) {
    let mut window = VecDeque::new();
    let answer = |p: ledger::Pending| {
        p.blocking_recv()
            .expect("answer")
            .unwrap_or_else(|e| panic!("seeding: {e:?}"))
    };
    for cmd in cmds {
        window.push_back(ledger.submit(cmd).expect("queue"));
        if window.len() >= 16_000 {
            answer(window.pop_front().expect("pending"));
        }
    }
    for p in window {
        answer(p);
    }
}

fn seed(dir: &std::path::Path, members: u64) {
    let hist = Arc::new(Mutex::new(Histogram::new(3).expect("hist")));
    let ledger = open(dir, 8000, hist);
    if ledger.balance(MemberId(members)).expect("read").is_some() {
        return;
    }
    let t = Instant::now();
    for p in 1..=PARTNERS {
        let contract = Contract {
            partner: PartnerId(p),
            currency: "EUR".parse().expect("EUR"),
            issuance_price_per_point: Decimal::new(10 + i64::from(p), 3),
            redemption_price_per_point: Decimal::new(7, 3),
            points_validity_days: Some(730),
        };
        ledger
            .execute_blocking(Command::SetContract {
                key: IdemKey::operator(format!("c{p}")),
                contract,
            })
            .expect("contract");
    }
    if env_or("BENCH_PROGRAMME", 0) == 1 {
        set_programme(&ledger);
    }
    submit_all(
        &ledger,
        (1..=members).map(|m| Command::Enrol {
            key: IdemKey::operator(format!("m{m}")),
            member: MemberId(m),
        }),
    );
    // BENCH_SEED_EARNS=N: every member then earns N times (N lots each, as a mature
    // programme's members hold), before the runs.
    let earns: u64 = env_or("BENCH_SEED_EARNS", 0);
    let partner = |m: u64| PartnerId(1 + (m % u64::from(PARTNERS)) as u32);
    submit_all(
        &ledger,
        (0..earns).flat_map(|round| {
            (1..=members).map(move |m| Command::Earn {
                key: IdemKey::partner(partner(m), format!("seed-{m}-{round}")),
                member: MemberId(m),
                partner: partner(m),
                points: Points(100),
                bonus: Points(0),
                awards: vec![],
                guard: None,
                purchase: None,
            })
        }),
    );
    // BENCH_SEED_SPEND=1: then every member burns what it earned, so that the history is
    // there but the lots are not (the control for BENCH_SEED_EARNS).
    if earns > 0 && env_or("BENCH_SEED_SPEND", 0) == 1 {
        submit_all(
            &ledger,
            (1..=members).map(|m| Command::Burn {
                key: IdemKey::partner(partner(m), format!("seed-spend-{m}")),
                member: MemberId(m),
                partner: partner(m),
                points: Points(100 * earns as i64),
            }),
        );
    }
    let _ = ledger.read_snapshot().expect("projector catches up");
    eprintln!(
        "seeded {members} members ({earns} earns each) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// An expiry policy (36 months to the quarter end, 24 months of inactivity, the top tier
/// exempt) and a tier policy (two levels on qualifying points over the calendar year).
fn set_programme(ledger: &Ledger<EmbeddedStore>) {
    use ledger::core::expiry::{activity, ExpiryPolicy, Inactivity, Rolling, RoundTo};
    use ledger::core::tiers::{Basis, TierLevel, TierPolicy, Window};
    ledger
        .execute_blocking(Command::SetExpiryPolicy {
            key: IdemKey::operator("bench-expiry"),
            policy: Box::new(ExpiryPolicy {
                rolling: Some(Rolling {
                    months: 36,
                    round_to: RoundTo::QuarterEnd,
                }),
                inactivity: Some(Inactivity {
                    months: 24,
                    activities: activity::DEFAULT,
                }),
                exempt_from_tier: Some(2),
                time_zone: "Europe/Berlin".into(),
                retroactive: false,
                note: Default::default(),
            }),
        })
        .expect("expiry policy");
    ledger
        .execute_blocking(Command::SetTierPolicy {
            key: IdemKey::operator("bench-tiers"),
            policy: Box::new(TierPolicy {
                levels: vec![
                    TierLevel {
                        name: "Silver".into(),
                        threshold: 1_000,
                    },
                    TierLevel {
                        name: "Gold".into(),
                        threshold: 5_000,
                    },
                ],
                basis: Basis::Points,
                window: Window::CalendarYear,
                grace_periods: 1,
                partners: vec![],
                categories: vec![],
                time_zone: "Europe/Berlin".into(),
                note: Default::default(),
            }),
        })
        .expect("tier policy");
}

/// `BENCH_EXPIRY_LOTS=N`: N members each earn one lot that expires a month later; then the
/// clock moves past that instant and the committer posts N expiries in bounded batches while a
/// stream of earns keeps coming. Reports how long the expiries took and the commit latency of
/// the same stream before and during them.
fn expiry_bench(dir: &std::path::Path, n: u64) {
    use ledger::core::expiry::{ExpiryPolicy, Rolling, RoundTo};
    use std::sync::atomic::{AtomicI64, Ordering};
    let offset: &'static AtomicI64 = Box::leak(Box::new(AtomicI64::new(0)));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("hist")));
    let h = hist.clone();
    let on_commit: CommitObserver = Arc::new(move |_, took: Duration| {
        let _ = h.lock().expect("hist").record(took.as_micros() as u64);
    });
    let config = LedgerConfig {
        committer: CommitterConfig {
            batch_size_max: 1000,
            queue_capacity: 65_536,
            clock: Clock::shifted(offset),
            ..CommitterConfig::default()
        },
        on_commit: Some(on_commit),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(EmbeddedStore::open(dir).expect("store"), config).expect("ledger");
    ledger
        .execute_blocking(Command::SetExpiryPolicy {
            key: IdemKey::operator("x-policy"),
            policy: Box::new(ExpiryPolicy {
                rolling: Some(Rolling {
                    months: 1,
                    round_to: RoundTo::MonthEnd,
                }),
                inactivity: None,
                exempt_from_tier: None,
                time_zone: "UTC".into(),
                retroactive: false,
                note: Default::default(),
            }),
        })
        .expect("policy");
    let t = Instant::now();
    submit_all(
        &ledger,
        (1..=n).map(|m| Command::Earn {
            key: IdemKey::partner(PartnerId(1 + (m % 5) as u32), format!("x-earn-{m}")),
            member: MemberId(m),
            partner: PartnerId(1 + (m % 5) as u32),
            points: Points(100),
            bonus: Points(0),
            awards: vec![],
            guard: None,
            purchase: None,
        }),
    );
    eprintln!("{n} lots earned in {:.1} s", t.elapsed().as_secs_f64());
    // The stream of earns: measure commit latency before, then during the expiries.
    let stream = |label: &str, seconds: f64, counter: &mut u64| {
        hist.lock().expect("hist").reset();
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut window = VecDeque::new();
        while Instant::now() < until {
            *counter += 1;
            let m = 1 + *counter % n;
            window.push_back(
                ledger
                    .submit(Command::Earn {
                        key: IdemKey::partner(PartnerId(1), format!("x-stream-{counter}")),
                        member: MemberId(m),
                        partner: PartnerId(1),
                        points: Points(10),
                        bonus: Points(0),
                        awards: vec![],
                        guard: None,
                        purchase: None,
                    })
                    .expect("queue"),
            );
            if window.len() >= 3000 {
                window
                    .pop_front()
                    .expect("p")
                    .blocking_recv()
                    .expect("a")
                    .expect("earn");
            }
        }
        for p in window {
            p.blocking_recv().expect("answer").expect("earn");
        }
        let h = hist.lock().expect("hist");
        println!(
            "| {label} | {:.2} ms | {:.2} ms | {:.2} ms |",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        );
    };
    println!("| commit latency of a stream of earns | p50 | p99 | max |");
    println!("|---|---|---|---|");
    let mut counter = 0u64;
    stream("before the expiry", 5.0, &mut counter);
    // Past the month end: every lot of the first earns is due at one instant.
    offset.store(62 * 86_400_000, Ordering::Relaxed);
    let started = Instant::now();
    let total = n as i64 * 100;
    let mut took = None;
    while took.is_none() {
        stream("while expiring", 1.0, &mut counter);
        if ledger
            .account_balance(AccountId::Breakage)
            .expect("read")
            .points
            .0
            >= total
        {
            took = Some(started.elapsed());
        }
    }
    let took = took.expect("expiries done");
    println!();
    println!(
        "{n} lots expired in {:.1} s ({:.0} expiries/s), alongside the stream",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    ledger.shutdown();
}

/// What the generator sends next.
enum Next {
    Capture(TxId, u32),
}

fn run(dir: &std::path::Path, members: u64, batch: usize, seconds: u64, run_no: u64) -> Run {
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("hist")));
    let opened = Instant::now();
    let ledger = open(dir, batch, hist.clone());
    eprintln!(
        "run {run_no} at batch {batch}: store opened in {:.1} s, warming up",
        opened.elapsed().as_secs_f64()
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(run_no * 1000 + batch as u64);
    // Enough outstanding commands to fill a batch while two more are in flight (one being
    // synced, one waiting for it), as many concurrent callers would.
    let window_max = (env_or("BENCH_OUTSTANDING_BATCHES", 3) * batch).clamp(256, 48_000);
    let mut window: VecDeque<(Pending, bool)> = VecDeque::new();
    let mut follow: VecDeque<Next> = VecDeque::new();
    let mut earned: VecDeque<(TxId, u32)> = VecDeque::with_capacity(4096);
    let mut funded: VecDeque<MemberId> = VecDeque::with_capacity(65_536);
    let (mut txs, mut legs, mut rejected, mut n) = (0u64, 0u64, 0u64, 0u64);
    // Measure from the point where member pages (written `member_write_delay` transactions,
    // plus a per-page offset, after a change) are being written: before it, the run would skip
    // that work.
    let warmup = Duration::from_secs(2);
    let warmup_txs = member_write_delay();
    let start = Instant::now();
    let mut measured_from: Option<(Instant, u64, u64, Duration)> = None;
    let mut threads_from = std::collections::BTreeMap::new();
    let mut pages_from = ledger::PageWrites::default();
    // Unique per invocation: a store reused across invocations must never see a key again,
    // or the commands would be answered as replays.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    let tag = format!("r{run_no}b{batch}t{started}");
    loop {
        let elapsed = start.elapsed();
        if measured_from.is_none() && elapsed >= warmup && txs >= warmup_txs {
            eprintln!(
                "run {run_no} at batch {batch}: warm after {txs} transactions in {:.1} s, measuring",
                elapsed.as_secs_f64()
            );
            measured_from = Some((Instant::now(), txs, legs, process_cpu()));
            threads_from = thread_cpu();
            pages_from = ledger.stats().page_writes();
            hist.lock().expect("hist").reset();
        }
        if measured_from.is_some_and(|(t0, ..)| t0.elapsed() >= Duration::from_secs(seconds)) {
            break;
        }
        while window.len() < window_max {
            n += 1;
            let p = rng.random_range(1..=PARTNERS);
            let key = IdemKey::partner(PartnerId(p), format!("{tag}-{n}"));
            let roll = rng.random_range(0..100);
            let cmd = if let Some(Next::Capture(hold, hp)) = follow.pop_front() {
                Command::Capture {
                    key: IdemKey::partner(PartnerId(hp), format!("{tag}-{n}")),
                    hold,
                    points: None,
                }
            } else if roll < 20 && !funded.is_empty() {
                let m = funded.pop_front().expect("funded");
                Command::Burn {
                    key,
                    member: m,
                    partner: PartnerId(p),
                    points: Points(50),
                }
            } else if roll < 25 && !funded.is_empty() {
                let m = funded.pop_front().expect("funded");
                Command::Hold {
                    key,
                    member: m,
                    partner: PartnerId(p),
                    points: Points(40),
                    timeout_ms: 600_000,
                }
            } else if roll < 30 && !earned.is_empty() {
                let (id, ep) = earned.pop_front().expect("earned");
                Command::Reverse {
                    key: IdemKey::partner(PartnerId(ep), format!("{tag}-{n}")),
                    original: id,
                    points: Some(Points(10)),
                }
            } else {
                let m = MemberId(rng.random_range(1..=members));
                Command::Earn {
                    key,
                    member: m,
                    partner: PartnerId(p),
                    points: Points(rng.random_range(100..2000)),
                    bonus: Points(0),
                    awards: vec![],
                    guard: None,
                    purchase: None,
                }
            };
            let is_hold = matches!(cmd, Command::Hold { .. });
            window.push_back((ledger.submit(cmd).expect("queue has room"), is_hold));
        }
        let (pending, is_hold) = window.pop_front().expect("window not empty");
        match pending.blocking_recv().expect("answer") {
            Ok(r) => {
                assert!(!r.replayed, "a benchmark key was used twice");
                txs += 1;
                legs += r.tx.postings.len() as u64;
                match &r.tx.kind {
                    TxKind::Earn {
                        member, partner, ..
                    } => {
                        if funded.len() < 65_536 {
                            funded.push_back(*member);
                        }
                        if earned.len() < 4096 {
                            earned.push_back((r.tx.id, partner.0));
                        }
                    }
                    TxKind::Hold { partner, .. } if is_hold => {
                        follow.push_back(Next::Capture(r.tx.id, partner.0))
                    }
                    _ => {}
                }
            }
            Err(LedgerError::Rejected(_)) => rejected += 1,
            Err(e) => panic!("ledger failed: {e}"),
        }
    }
    for (p, _) in window {
        let _ = p.blocking_recv();
    }
    let (t0, txs0, legs0, cpu0) = measured_from.expect("measured");
    let secs = t0.elapsed().as_secs_f64();
    let cpu = process_cpu().saturating_sub(cpu0);
    let shares: Vec<String> = thread_cpu()
        .into_iter()
        .map(|(name, t)| {
            let before = threads_from.get(&name).copied().unwrap_or(Duration::ZERO);
            (name, t.saturating_sub(before).as_secs_f64() / secs * 100.0)
        })
        .filter(|(_, pct)| *pct >= 1.0)
        .map(|(name, pct)| format!("{name} {pct:.0}%"))
        .collect();
    eprintln!(
        "run {run_no} at batch {batch}: CPU by thread (% of one core): {}",
        shares.join(", ")
    );
    let pages = ledger.stats().page_writes().since(&pages_from);
    eprintln!(
        "run {run_no} at batch {batch}: member pages written: {} whole, {} as their changed members; {} members encoded ({:.2} a transaction)",
        pages.whole,
        pages.changes,
        pages.members,
        pages.members as f64 / (txs - txs0).max(1) as f64
    );
    let h = hist.lock().expect("hist").clone();
    let stats = ledger.stats();
    let mean_batch = stats
        .transactions
        .load(std::sync::atomic::Ordering::Relaxed) as f64
        / stats
            .batches
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1) as f64;
    ledger.shutdown();
    Run {
        txs_per_s: (txs - txs0) as f64 / secs,
        cpu_us_per_tx: cpu.as_secs_f64() * 1e6 / (txs - txs0).max(1) as f64,
        legs_per_s: (legs - legs0) as f64 / secs,
        commit_p50_us: h.value_at_quantile(0.50),
        commit_p99_us: h.value_at_quantile(0.99),
        commit_max_us: h.max(),
        mean_batch,
        rejected,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    ledger::allocator::tune();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let members: u64 = env_or("BENCH_MEMBERS", 1_000_000);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let runs: u64 = env_or("BENCH_RUNS", 3);
    let batches: Vec<usize> = env_or("BENCH_BATCHES", "100,1000,8000".to_string())
        .split(',')
        .filter_map(|b| b.trim().parse().ok())
        .collect();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("bench dir");
    if env_or("BENCH_OPEN_ONLY", 0u8) == 1 {
        let opened = Instant::now();
        let ledger = open(
            &dir,
            1000,
            Arc::new(Mutex::new(Histogram::new(3).expect("hist"))),
        );
        let took = opened.elapsed().as_secs_f64();
        println!(
            "opened in {took:.2} s, {} keys in memory, RSS {} MB",
            ledger.keys_in_memory().unwrap_or(0),
            ledger::allocator::resident_bytes().unwrap_or(0) >> 20
        );
        let stopping = Instant::now();
        ledger.shutdown();
        println!("shut down in {:.3} s", stopping.elapsed().as_secs_f64());
        return;
    }
    let lots: u64 = env_or("BENCH_EXPIRY_LOTS", 0);
    if lots > 0 {
        seed(&dir, lots);
        expiry_bench(&dir, lots);
        return;
    }
    eprintln!("committer bench: {members} members, {PARTNERS} partners, batches {batches:?}, {runs} runs x {seconds} s, store {}", dir.display());
    seed(&dir, members);
    println!("| batch limit | txs/s (median) | posting legs/s | mean batch | commit p50 | commit p99 | commit max | CPU µs/tx | runs (txs/s) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &b in &batches {
        let results: Vec<Run> = (0..runs)
            .map(|r| run(&dir, members, b, seconds, r))
            .collect();
        let mid = median(results.iter().map(|r| r.txs_per_s).collect());
        let pick = results
            .iter()
            .min_by(|a, b| {
                (a.txs_per_s - mid)
                    .abs()
                    .total_cmp(&(b.txs_per_s - mid).abs())
            })
            .expect("runs");
        let all: Vec<String> = results
            .iter()
            .map(|r| format!("{:.0}", r.txs_per_s))
            .collect();
        println!(
            "| {b} | {:.0} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} | {} |",
            pick.txs_per_s,
            pick.legs_per_s,
            pick.mean_batch,
            pick.commit_p50_us as f64 / 1000.0,
            pick.commit_p99_us as f64 / 1000.0,
            pick.commit_max_us as f64 / 1000.0,
            pick.cpu_us_per_tx,
            all.join(", ")
        );
        let rejected: u64 = results.iter().map(|r| r.rejected).sum();
        eprintln!("batch {b}: {rejected} rejected commands across runs (burns racing the generator's funding estimate)");
    }
}
