//! How often the cluster path's transactions conflict with four writers on one store: the
//! embedded engine in its optimistic mode, whose transactions run concurrently and conflict as
//! FoundationDB's do (a key read was written since the transaction began). Four cluster
//! writers, each fed by two client threads submitting earns and burns in waves of 64, for
//! members drawn uniformly from a large set, with a Zipf skew, or from a hot few.
//!
//! `cargo bench -p ledger --bench cluster_conflicts` (`CONFLICT_SECONDS`, default 5 per case)

use ledger::store::EmbeddedStore;
use ledger::*;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WRITERS: u8 = 4;
const CLIENTS_PER_WRITER: usize = 2;
const WAVE: usize = 64;
const AIR: PartnerId = PartnerId(1);

/// Member popularity.
#[derive(Clone, Copy)]
enum Pick {
    Uniform(u64),
    /// Zipf with exponent 1 over this many members (rank k with weight 1/k).
    Zipf(u64),
}

impl Pick {
    fn members(self) -> u64 {
        match self {
            Pick::Uniform(n) | Pick::Zipf(n) => n,
        }
    }

    fn draw(self, rng: &mut rand::rngs::StdRng) -> u64 {
        match self {
            Pick::Uniform(n) => rng.random_range(1..=n),
            Pick::Zipf(n) => {
                // Inverse of the continuous approximation of the harmonic CDF.
                let u: f64 = rng.random();
                let k = ((n as f64 + 1.0).powf(u)).floor() as u64;
                k.clamp(1, n)
            }
        }
    }
}

fn main() {
    let seconds: u64 = std::env::var("CONFLICT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("| members | commands/s | transactions | conflicts | conflicts per attempt |");
    println!("|---|---|---|---|---|");
    for (name, pick) in [
        ("100,000, uniform", Pick::Uniform(100_000)),
        ("100,000, Zipf s=1", Pick::Zipf(100_000)),
        ("100, uniform", Pick::Uniform(100)),
    ] {
        let (cps, committed, conflicts) = run(pick, seconds);
        println!(
            "| {name} | {cps:.0} | {committed} | {conflicts} | {:.3} |",
            conflicts as f64 / (conflicts + committed).max(1) as f64
        );
    }
}

fn run(pick: Pick, seconds: u64) -> (f64, u64, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let writers: Vec<Ledger<EmbeddedStore>> = (0..WRITERS)
        .map(|shard| {
            Ledger::open_cluster(
                store.clone(),
                LedgerConfig::default(),
                ClusterConfig::on_shard(shard),
            )
            .expect("writer")
        })
        .collect();
    let setup = &writers[0];
    setup
        .execute_blocking(Command::SetContract {
            key: IdemKey::operator("contract"),
            contract: Contract {
                partner: AIR,
                currency: "EUR".parse().expect("EUR"),
                issuance_price_per_point: Decimal::new(1, 2),
                redemption_price_per_point: Decimal::new(75, 4),
                points_validity_days: None,
            },
        })
        .expect("contract");
    let ids: Vec<u64> = (1..=pick.members()).collect();
    for wave in ids.chunks(2_000) {
        let pending: Vec<_> = wave
            .iter()
            .map(|m| {
                setup
                    .submit(Command::Enrol {
                        key: IdemKey::operator(format!("e{m}")),
                        member: MemberId(*m),
                    })
                    .expect("queue")
            })
            .collect();
        for p in pending {
            p.blocking_recv().expect("answer").expect("enrol");
        }
    }
    store.set_optimistic(true);
    let (conflicts0, committed0) = store.transaction_counts();
    let done = AtomicBool::new(false);
    let commands = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (w, l) in writers.iter().enumerate() {
            for c in 0..CLIENTS_PER_WRITER {
                let (done, commands) = (&done, &commands);
                scope.spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64((w * 16 + c) as u64);
                    let mut n = 0u64;
                    while !done.load(Ordering::Relaxed) {
                        let pending: Vec<_> = (0..WAVE)
                            .map(|_| {
                                n += 1;
                                let member = MemberId(pick.draw(&mut rng));
                                let key = IdemKey::partner(AIR, format!("{w}-{c}-{n}"));
                                let cmd = if n.is_multiple_of(4) {
                                    Command::Burn {
                                        key,
                                        member,
                                        partner: AIR,
                                        points: Points(1),
                                    }
                                } else {
                                    Command::Earn {
                                        key,
                                        member,
                                        partner: AIR,
                                        points: Points(10),
                                        bonus: Points(0),
                                        awards: vec![],
                                        guard: None,
                                        purchase: None,
                                    }
                                };
                                l.submit(cmd).expect("queue")
                            })
                            .collect();
                        for p in pending {
                            // A burn may find too few points; a contended command may fail
                            // alone after its attempts: both are answers.
                            let _ = p.blocking_recv().expect("answer");
                            commands.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        }
        std::thread::sleep(Duration::from_secs(seconds));
        done.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed().as_secs_f64();
    let (conflicts, committed) = store.transaction_counts();
    for w in writers {
        w.shutdown();
    }
    (
        commands.load(Ordering::Relaxed) as f64 / elapsed,
        committed - committed0,
        conflicts - conflicts0,
    )
}
