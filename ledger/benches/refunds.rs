//! What deciding a refund costs the writer as a member's lots grow: `State::decide` of a
//! reversal of one earn, for members holding 10 to 3,000 lots (one per earn, each expiring on
//! its own day), the earn chosen among the member's latest 30 (a refund within a month) or
//! anywhere in its history. The members together hold about 48 MB of lots, so a member's lots
//! are not in the cache when its refund comes, as in a running ledger.
//!
//! Each decision is discarded (not applied), so every one starts from the same state. Five
//! runs a row; the median and every run are printed, in nanoseconds a decision.
//!
//! `cargo bench -p ledger --bench refunds`

use ledger::core::model::{Command, IdemKey, Policy};
use ledger::core::state::{History, State};
use ledger::core::types::{Contract, MemberId, PartnerId, Points, Timestamp, TxId};
use ledger::Transaction;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DAY_MS: i64 = 86_400_000;
/// Lots held by all members together: 1.5 million (48 MB at 32 bytes a lot).
const LOTS_IN_ALL: u64 = 1_500_000;
const DECISIONS: usize = 200_000;
const RUNS: usize = 5;

/// The earns, for the reversals to find their originals in.
#[derive(Default)]
struct Log(HashMap<TxId, Transaction>);

impl History for Log {
    type Error = std::convert::Infallible;
    fn transaction(&self, id: TxId) -> Result<Option<Transaction>, Self::Error> {
        Ok(self.0.get(&id).cloned())
    }
}

struct Engine {
    state: State,
    next: u64,
    log: Log,
}

impl Engine {
    fn run(&mut self, cmd: Command, at: Timestamp) -> TxId {
        self.next += 1;
        let tx = self
            .state
            .decide(&cmd, cmd.digest(), TxId(self.next), at, &self.log)
            .unwrap_or_else(|e| panic!("{cmd:?}: {e:?}"));
        self.state.apply(&tx);
        let id = tx.id;
        self.log.0.insert(id, tx);
        id
    }
}

/// Members each holding `lots` lots; each member's earns' ids, oldest first.
fn build(members: u64, lots: u64, start: Timestamp) -> (Engine, Vec<Vec<TxId>>) {
    let mut e = Engine {
        state: State::new(Policy::default()),
        next: 0,
        log: Log::default(),
    };
    e.run(
        Command::SetContract {
            key: IdemKey::operator("c1"),
            contract: Contract {
                partner: PartnerId(1),
                currency: "EUR".parse().expect("EUR"),
                issuance_price_per_point: Decimal::new(1, 2),
                redemption_price_per_point: Decimal::new(5, 3),
                points_validity_days: Some(3_650),
            },
        },
        start,
    );
    let mut earns = vec![Vec::with_capacity(lots as usize); members as usize];
    for m in 0..members {
        e.run(
            Command::Enrol {
                key: IdemKey::operator(format!("enrol-{m}")),
                member: MemberId(m),
            },
            start,
        );
    }
    // Day by day, every member earns: lots interleave in memory as they do in a running ledger.
    for day in 0..lots {
        for (m, ids) in earns.iter_mut().enumerate() {
            let id = e.run(
                Command::Earn {
                    key: IdemKey::partner(PartnerId(1), format!("{m}-{day}")),
                    member: MemberId(m as u64),
                    partner: PartnerId(1),
                    points: Points(100),
                    bonus: Points(10),
                    awards: vec![],
                    guard: None,
                    purchase: None,
                },
                Timestamp(start.0 + day as i64 * DAY_MS),
            );
            ids.push(id);
        }
    }
    (e, earns)
}

/// Nanoseconds a decision of refunds of earns among each member's latest `recent` (all: `None`).
fn measure(e: &Engine, earns: &[Vec<TxId>], recent: Option<usize>, at: Timestamp) -> f64 {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let picks: Vec<TxId> = (0..DECISIONS)
        .map(|_| {
            let ids = &earns[rng.random_range(0..earns.len())];
            let from = recent.map_or(0, |r| ids.len().saturating_sub(r));
            ids[rng.random_range(from..ids.len())]
        })
        .collect();
    let cmds: Vec<Command> = picks
        .iter()
        .enumerate()
        .map(|(i, &original)| Command::Reverse {
            key: IdemKey::partner(PartnerId(1), format!("refund-{i}")),
            original,
            points: None,
        })
        .collect();
    let id = TxId(e.next + 1);
    let started = Instant::now();
    for cmd in &cmds {
        let tx = e
            .state
            .decide(cmd, Default::default(), id, at, &e.log)
            .unwrap_or_else(|err| panic!("{cmd:?}: {err:?}"));
        std::hint::black_box(&tx);
    }
    started.elapsed().as_nanos() as f64 / DECISIONS as f64
}

fn main() {
    ledger::allocator::tune();
    let start = Timestamp(1_767_225_600_000); // 2026-01-01
    println!("| lots a member | members | refund of | ns a decision (median) | runs |");
    println!("|---|---|---|---|---|");
    for lots in [10u64, 100, 1_000, 3_000] {
        let members = LOTS_IN_ALL / lots;
        let (e, earns) = build(members, lots, start);
        let at = Timestamp(start.0 + lots as i64 * DAY_MS);
        for (what, recent) in [("one of the latest 30 earns", Some(30)), ("any earn", None)] {
            let mut runs: Vec<f64> = (0..RUNS).map(|_| measure(&e, &earns, recent, at)).collect();
            let every = runs
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ");
            runs.sort_by(f64::total_cmp);
            println!(
                "| {lots} | {members} | {what} | {:.0} | {every} |",
                runs[RUNS / 2]
            );
        }
    }
}
