//! What a member costs in the writer's memory, measured by counting the heap: the posting
//! engine's state built for 100,000 members three ways, through `State::decide` and
//! `State::apply` as the committer runs them.
//!
//! - plain: enrolled, with one lot;
//! - with a tier: twelve months of qualifying earns (twelve lots, twelve monthly counters);
//! - in a household pool: the plain member, half of them owners of the other half.
//!
//! `cargo bench -p ledger --bench member_memory`

use ledger::core::model::{Command, IdemKey, Policy};
use ledger::core::state::{History, State};
use ledger::core::tiers::{Basis, TierLevel, TierPolicy, Window};
use ledger::core::types::{Contract, MemberId, PartnerId, Points, Timestamp, TxId};
use ledger::Transaction;
use rust_decimal::Decimal;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MEMBERS: u64 = 100_000;
const DAY_MS: i64 = 86_400_000;

struct NoHistory;

impl History for NoHistory {
    type Error = std::convert::Infallible;
    fn transaction(&self, _: TxId) -> Result<Option<Transaction>, Self::Error> {
        Ok(None)
    }
}

struct Engine {
    state: State,
    next: u64,
}

impl Engine {
    fn run(&mut self, cmd: Command, at: Timestamp) {
        self.next += 1;
        let tx = self
            .state
            .decide(&cmd, cmd.digest(), TxId(self.next), at, &NoHistory)
            .unwrap_or_else(|e| panic!("{cmd:?}: {e:?}"));
        self.state.apply(&tx);
    }
}

fn engine(tiers: bool) -> Engine {
    let mut e = Engine {
        state: State::new(Policy::default()),
        next: 0,
    };
    let at = Timestamp(1_767_225_600_000); // 2026-01-01
    e.run(
        Command::SetContract {
            key: IdemKey::operator("c1"),
            contract: Contract {
                partner: PartnerId(1),
                currency: "EUR".parse().expect("EUR"),
                issuance_price_per_point: Decimal::new(1, 2),
                redemption_price_per_point: Decimal::new(5, 3),
                points_validity_days: Some(1_095),
            },
        },
        at,
    );
    if tiers {
        e.run(
            Command::SetTierPolicy {
                key: IdemKey::operator("tiers"),
                policy: Box::new(TierPolicy {
                    levels: vec![TierLevel {
                        name: "Silver".into(),
                        threshold: 1_000_000,
                    }],
                    basis: Basis::Points,
                    window: Window::Rolling12Months,
                    grace_periods: 0,
                    partners: vec![],
                    categories: vec![],
                    time_zone: "UTC".into(),
                    note: Default::default(),
                }),
            },
            at,
        );
    }
    e
}

fn earn(m: u64, n: u64) -> Command {
    Command::Earn {
        key: IdemKey::partner(PartnerId(1), format!("{m}-{n}")),
        member: MemberId(m),
        partner: PartnerId(1),
        points: Points(100),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    }
}

/// Heap bytes per member of the state `build` leaves, less the empty engine's.
fn per_member(tiers: bool, build: impl Fn(&mut Engine)) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let mut e = engine(tiers);
    build(&mut e);
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let per = bytes as f64 / MEMBERS as f64;
    drop(e);
    per
}

fn main() {
    let start = Timestamp(1_767_225_600_000);
    let enrol = |e: &mut Engine, m: u64| {
        e.run(
            Command::Enrol {
                key: IdemKey::operator(format!("e{m}")),
                member: MemberId(m),
            },
            start,
        );
    };
    let plain = per_member(false, |e| {
        for m in 1..=MEMBERS {
            enrol(e, m);
            e.run(earn(m, 0), start);
        }
    });
    // Twelve earns a member, a month apart: with a tier policy, twelve monthly counters too.
    let monthly = |e: &mut Engine| {
        for m in 1..=MEMBERS {
            enrol(e, m);
            for month in 0..12 {
                e.run(
                    earn(m, month),
                    Timestamp(start.0 + month as i64 * 31 * DAY_MS),
                );
            }
        }
    };
    let tiered = per_member(true, monthly);
    let twelve_lots = per_member(false, monthly);
    let pooled = per_member(false, |e| {
        for m in 1..=MEMBERS {
            enrol(e, m);
            e.run(earn(m, 0), start);
        }
        for m in (1..=MEMBERS).step_by(2) {
            e.run(
                Command::JoinPool {
                    key: IdemKey::operator(format!("p{m}")),
                    owner: MemberId(m),
                    member: MemberId(m + 1),
                    consent: "form".into(),
                },
                start,
            );
        }
    });
    println!("heap bytes per member, {MEMBERS} members (state maps included):");
    println!("  plain, one lot:                     {plain:.0}");
    println!("  twelve lots, no tier policy:        {twelve_lots:.0}");
    println!(
        "  twelve lots and a tier (12 months): {tiered:.0} (the tier: +{:.0})",
        tiered - twelve_lots
    );
    println!(
        "  one lot, in a household pool:       {pooled:.0} (the pool: +{:.0})",
        pooled - plain
    );
}
