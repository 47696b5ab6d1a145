//! Deterministic simulation, in the manner of TigerBeetle's VOPR: the committer, projector and
//! recovery of the single write path run on [`SimStore`], whose seeded generator crashes the
//! process before any operation or after a durable commit, fails fsyncs (the commit landing or
//! not), loses writes made after the last fsync, tears the last one, slows operations, fails
//! reads by checksum and flips bits in journal blocks read back.
//!
//! The cluster path runs the same way (`cluster_seeds_…`): its writer's store transactions on
//! [`SimStore`] meet the same crashes, read faults and slow operations, and two faults of a
//! cluster besides: a commit refused as a conflict, and a commit whose fsync failed, reported
//! as FoundationDB reports `commit_unknown_result` (landed or not), both retried by the
//! transaction. Its model is the cluster path on a store that never fails; transaction ids
//! differ between the two (a restarted process reserves new ones, and every attempt takes
//! one), so commands reach the model with its own ids, and transactions and members are
//! compared with the live ids mapped to the model's.
//!
//! A seeded stream of commands of every kind drives it, one at a time, with the clock moved by
//! the stream (so hold timeouts, expiries and tier reviews happen in it too). Beside it runs
//! the model: the same ledger on a store that never fails, fed the same stream. After every
//! crash (or stop) the process restarts from what the disk kept, and then:
//!
//! - the chain verifies and the audit passes (derived state equals the journal replayed);
//! - every transaction ever acknowledged is in the journal, unchanged;
//! - the command in flight is sent again with its key, and gets what the model got: its first
//!   receipt if it landed (exactly once), else a fresh decision equal to the model's;
//! - then every member's state, the audit's totals and the whole journal equal the model's.
//!
//! Every read's answer is the model's or an error: a flipped journal block is refused by its
//! check, never decoded into other amounts.
//!
//! `SIM_SEEDS` seeds run (default 400, `SIM_STEPS` commands each, default 120); CI's figure is
//! in `docs/hardening.md`. A failure names its seed; `SIM_SEED=n cargo test -p ledger --test
//! simulation` runs it alone and repeats it exactly: the seed fixes the commands, the clock and
//! every fault, and the commands go one at a time, so the store sees the same operations in
//! the same order (the `seeds_repeat_exactly` test checks the operation trace).

use ledger::core::expiry::{activity, ExpiryPolicy, Inactivity, Rolling, RoundTo};
use ledger::core::model::Notice;
use ledger::core::state::{MemberState, Standing};
use ledger::core::tiers::{Basis, Purchase, TierLevel, TierPolicy, Window};
use ledger::core::transfers::TransferPolicy;
use ledger::core::types::ChangeNote;
use ledger::store::sim::{SimCounts, SimFaults, SimStore};
use ledger::store::Snapshot;
use ledger::*;
use rand::Rng as _;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

const DAY: i64 = 86_400_000;
/// 2026-01-05, a Monday.
const START: i64 = 1_767_571_200_000;
const PARTNERS: u32 = 3;
const MEMBERS_AT_START: u64 = 6;
const MEMBERS_MAX: u64 = 10;

/// Which write path a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// The single committer and its projector.
    Single,
    /// The cluster path's writer, every batch a store transaction.
    Cluster,
}

/// The fault rates; `SIM_FAULTS=off` runs a seed without any (to tell a rule's failure from a
/// recovery's).
fn faults(path: Path) -> SimFaults {
    if std::env::var("SIM_FAULTS").is_ok_and(|v| v == "off") {
        return SimFaults::default();
    }
    // The cluster path makes about four durable commits a batch where the single path makes
    // one or two (the lease, the sweep and the seal besides the batch's own), and reads its
    // state from the store: crashes are rarer per operation there, so that runs reach as deep
    // into their histories between restarts.
    let (crash, crash_after_sync) = match path {
        Path::Single => (1_500, 4_000),
        Path::Cluster => (400, 1_500),
    };
    SimFaults {
        crash,
        crash_after_sync,
        fsync_error: 3_000,
        read_error: 1_500,
        flip: 20_000,
        slow: 2_000,
        slow_us: 200,
        conflict: match path {
            Path::Single => 0,
            Path::Cluster => 20_000,
        },
    }
}

/// Opens the ledger on `path` over `store`. On the cluster path the process's lease token is
/// the seed's, so a restarted process takes the lease back at once (as a gateway restarted in
/// place does), and it scans for due work at every batch, as the single committer posts it:
/// due hold timeouts and expiries post at the same points on the live ledger and the model.
fn open(
    path: Path,
    store: &SimStore,
    clock: &'static AtomicI64,
    token: u64,
) -> Result<Ledger<SimStore>, LedgerError> {
    match path {
        Path::Single => Ledger::open(store.clone(), config(clock)),
        Path::Cluster => Ledger::open_cluster(
            store.clone(),
            config(clock),
            ClusterConfig {
                lease_token: std::num::NonZeroU64::new(token | 1),
                scan_every: Duration::ZERO,
                ..ClusterConfig::on_shard(0)
            },
        ),
    }
}

fn config(clock: &'static AtomicI64) -> LedgerConfig {
    LedgerConfig {
        committer: CommitterConfig {
            clock: Clock::manual(clock),
            // Due hold timeouts and expiries ride with the next command, never with a timer:
            // the run repeats exactly.
            idle_wake: Duration::from_secs(3_600),
            ..CommitterConfig::default()
        },
        // Member pages written a few transactions after their change, so that restarts bring
        // pages forward from the journal, and pages of every age are on the disk.
        member_write_delay: 3,
        // A window of 40 keys: most keys of a run leave memory for the on-disk index, and
        // retries of them are answered from there.
        keys_in_memory: 40,
        // A window of 3 reversal totals: most reversals of a run find their original's total
        // dropped from memory and read it from the store.
        reversal_totals_in_memory: 3,
        ..LedgerConfig::default()
    }
}

/// The stream's generator, seeded.
struct Rng(rand::rngs::StdRng);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n.max(1))
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        self.0.random_range(lo..=hi)
    }
    fn chance(&mut self, per_cent: u64) -> bool {
        self.below(100) < per_cent
    }
}

fn note(i: usize) -> ChangeNote {
    ChangeNote {
        author: "sim@ops".into(),
        reason: format!("simulated change {i}"),
    }
}

/// What the stream remembers to refer back to: transactions by kind, and the commands sent.
#[derive(Default)]
struct Memory {
    holds: Vec<TxId>,
    originals: Vec<TxId>,
    any: Vec<TxId>,
    sent: Vec<Command>,
    members: u64,
}

fn member(rng: &mut Rng, mem: &Memory) -> MemberId {
    MemberId(1 + rng.below(mem.members))
}

fn partner(rng: &mut Rng) -> PartnerId {
    PartnerId(1 + rng.below(u64::from(PARTNERS)) as u32)
}

fn pick(rng: &mut Rng, ids: &[TxId]) -> TxId {
    if ids.is_empty() {
        // No transaction has this id, on either path.
        TxId::new(1 << 40, 0)
    } else {
        ids[rng.below(ids.len() as u64) as usize]
    }
}

fn award(rng: &mut Rng) -> AwardRequest {
    let campaign = 1 + rng.below(2) as u32;
    AwardRequest {
        campaign: CampaignId(campaign),
        version: 1,
        points: Points(rng.range(1, 80)),
        funder: if campaign == 1 {
            Funder::Programme
        } else {
            Funder::Partner(PartnerId(2))
        },
        limits: AwardLimits {
            budget: (campaign == 1).then_some(Points(400)),
            member_total: (campaign == 2).then_some(Points(150)),
            refund_returns_room: true,
            ..AwardLimits::default()
        },
        requires: MemberCondition::default(),
    }
}

fn guard(rng: &mut Rng, now: i64) -> GuardRequest {
    GuardRequest {
        sale: Decimal::from(rng.range(1, 200)),
        currency: "EUR".parse().expect("EUR"),
        checks: vec![GuardCheck {
            scope: GuardScope::Partner(PartnerId(1)),
            period: (now / DAY / 30) as u32,
            currency: Some("EUR".parse().expect("EUR")),
            ceiling: Decimal::new(5, 2),
            action: if rng.chance(50) {
                GuardAction::Refuse
            } else {
                GuardAction::BaseOnly
            },
            thresholds: vec![80, 100],
        }],
    }
}

/// The next command of the stream: every kind of command, with references to earlier
/// transactions and earlier commands (retries, and a key sent again with other content).
fn command(rng: &mut Rng, mem: &mut Memory, i: usize, now: i64) -> Command {
    let pkey = |p: PartnerId| IdemKey::partner(p, format!("c{i}"));
    let okey = || IdemKey::operator(format!("c{i}"));
    let roll = rng.below(100);
    match roll {
        0..=19 => {
            let p = partner(rng);
            Command::Earn {
                key: pkey(p),
                member: member(rng, mem),
                partner: p,
                points: Points(rng.range(1, 600)),
                bonus: Points(if rng.chance(20) { rng.range(1, 50) } else { 0 }),
                awards: if rng.chance(30) {
                    vec![award(rng)]
                } else {
                    vec![]
                },
                guard: (p == PartnerId(1) && rng.chance(30)).then(|| Box::new(guard(rng, now))),
                purchase: rng.chance(40).then(|| {
                    Box::new(Purchase {
                        spend: Some(Money::new(
                            Decimal::new(rng.range(100, 90_000), 2),
                            "EUR".parse().expect("EUR"),
                        )),
                        category: rng.chance(50).then(|| "fuel".to_string()),
                    })
                }),
            }
        }
        20..=29 => {
            let p = partner(rng);
            Command::Burn {
                key: pkey(p),
                member: member(rng, mem),
                partner: p,
                points: Points(rng.range(1, 500)),
            }
        }
        30..=36 => {
            let p = partner(rng);
            Command::Hold {
                key: pkey(p),
                member: member(rng, mem),
                partner: p,
                points: Points(rng.range(1, 300)),
                timeout_ms: rng.range(1_000, 3 * DAY) as u32,
            }
        }
        37..=41 => Command::Capture {
            key: pkey(PartnerId(1)),
            hold: pick(rng, &mem.holds),
            points: rng.chance(50).then(|| Points(rng.range(1, 300))),
        },
        42..=44 => Command::Void {
            key: pkey(PartnerId(1)),
            hold: pick(rng, &mem.holds),
        },
        45..=50 => Command::Reverse {
            key: pkey(PartnerId(1)),
            original: pick(rng, &mem.originals),
            points: rng.chance(50).then(|| Points(rng.range(1, 300))),
        },
        51..=55 => Command::Transfer {
            key: okey(),
            from: member(rng, mem),
            to: member(rng, mem),
            points: Points(rng.range(1, 400)),
            consent: rng.chance(50).then(|| "signed at the desk".to_string()),
        },
        56..=57 => Command::SetTierPolicy {
            key: okey(),
            policy: Box::new(TierPolicy {
                levels: vec![
                    TierLevel {
                        name: "Silver".into(),
                        threshold: rng.range(200, 1_000),
                    },
                    TierLevel {
                        name: "طلایی".into(),
                        threshold: rng.range(1_500, 4_000),
                    },
                ],
                basis: if rng.chance(50) {
                    Basis::Points
                } else {
                    Basis::Activities
                },
                window: if rng.chance(50) {
                    Window::CalendarYear
                } else {
                    Window::Rolling12Months
                },
                grace_periods: rng.below(2) as u8,
                partners: vec![PartnerId(1), PartnerId(3)],
                categories: vec![],
                time_zone: "Asia/Tehran".into(),
                note: note(i),
            }),
        },
        58..=59 => Command::SetTier {
            key: okey(),
            member: member(rng, mem),
            level: rng.below(3) as u8,
            until: Timestamp(now + rng.range(1, 60) * DAY),
            reason: "service recovery".into(),
        },
        60 => Command::SetTransferPolicy {
            key: okey(),
            policy: Box::new(TransferPolicy {
                min: Some(Points(rng.range(1, 20))),
                max_per_transfer: Some(Points(rng.range(100, 500))),
                max_per_day: Some(Points(rng.range(300, 900))),
                max_per_year: None,
                fee: Points(rng.range(0, 5)),
                time_zone: "UTC".into(),
                note: note(i),
            }),
        },
        61..=62 => Command::SetExpiryPolicy {
            key: okey(),
            policy: Box::new(ExpiryPolicy {
                rolling: rng.chance(70).then(|| Rolling {
                    months: rng.range(1, 6) as u16,
                    round_to: if rng.chance(50) {
                        RoundTo::Exact
                    } else {
                        RoundTo::MonthEnd
                    },
                }),
                inactivity: rng.chance(40).then(|| Inactivity {
                    months: rng.range(1, 4) as u16,
                    activities: activity::DEFAULT,
                }),
                exempt_from_tier: rng.chance(30).then_some(2),
                time_zone: "UTC".into(),
                retroactive: rng.chance(30),
                note: note(i),
            }),
        },
        63 => Command::Expire {
            key: IdemKey {
                scope: Scope::System,
                reference: format!("c{i}"),
            },
            member: member(rng, mem),
        },
        64..=66 => Command::Adjust {
            key: okey(),
            member: member(rng, mem),
            points: Points(rng.range(-200, 300)),
            reason: "goodwill".into(),
            operator: "sim@ops".into(),
            qualifies: rng.chance(50),
            corrects: rng.chance(30).then(|| pick(rng, &mem.any)),
        },
        67 => Command::ClosePeriod {
            key: okey(),
            period: format!("p{i}"),
            through: Timestamp(now - now.rem_euclid(DAY) - rng.range(0, 2) * DAY),
        },
        68..=70 => Command::JoinPool {
            key: pkey(PartnerId(1)),
            owner: member(rng, mem),
            member: member(rng, mem),
            consent: "household form".into(),
        },
        71..=72 => Command::LeavePool {
            key: pkey(PartnerId(1)),
            member: member(rng, mem),
        },
        73..=74 => Command::SetStanding {
            key: okey(),
            member: member(rng, mem),
            standing: match rng.below(3) {
                0 => Standing::Suspended,
                1 => Standing::Active,
                _ => Standing::Closed,
            },
            forfeit: rng.chance(50),
            note: Box::new(note(i)),
        },
        75 => Command::Merge {
            key: okey(),
            from: member(rng, mem),
            into: member(rng, mem),
            note: Box::new(note(i)),
        },
        76..=77 => Command::Notice {
            key: okey(),
            member: member(rng, mem),
            notice: match rng.below(3) {
                0 => Notice::Birthday {
                    day: (now / DAY) as u32,
                },
                1 => Notice::Anniversary {
                    day: (now / DAY) as u32,
                    years: 1,
                },
                _ => Notice::Expiring {
                    day: (now / DAY) as u32,
                    days: 30,
                    on: Timestamp(now + 30 * DAY),
                    points: Points(rng.range(1, 100)),
                },
            },
        },
        78..=81 => Command::Redeem {
            key: okey(),
            member: member(rng, mem),
            partner: PartnerId(2),
            points: Points(100),
            claim: RewardClaim {
                reward: RewardId(1 + rng.below(2) as u32),
                version: 1,
                stock: Some(6),
                member_max: Some(2),
                tiers: 0,
            },
        },
        82..=85 => Command::Grant {
            key: okey(),
            member: member(rng, mem),
            points: Points(rng.range(1, 200)),
            funder: if rng.chance(50) {
                Funder::Programme
            } else {
                Funder::Partner(PartnerId(1))
            },
            origin: Box::new(GrantOrigin {
                kind: match rng.below(4) {
                    0 => GrantKind::Referral,
                    1 => GrantKind::Survey,
                    2 => GrantKind::Draw,
                    _ => GrantKind::Code,
                },
                id: i as u64,
                note: format!("origin {i}"),
            }),
        },
        86 => Command::SetContract {
            key: okey(),
            contract: contract(PartnerId(1 + rng.below(3) as u32), rng.range(30, 400)),
        },
        87 if mem.members < MEMBERS_MAX => {
            mem.members += 1;
            Command::Enrol {
                key: okey(),
                member: MemberId(mem.members),
            }
        }
        88..=94 if !mem.sent.is_empty() => {
            // A retry: the same command, with the same key.
            mem.sent[rng.below(mem.sent.len() as u64) as usize].clone()
        }
        95..=96 if !mem.sent.is_empty() => {
            // The same key with other content: refused as a conflict, or judged afresh if the
            // first was refused.
            match mem.sent[rng.below(mem.sent.len() as u64) as usize].clone() {
                Command::Earn {
                    key,
                    member,
                    partner,
                    points,
                    ..
                } => Command::Earn {
                    key,
                    member,
                    partner,
                    points: Points(points.0 + 1),
                    bonus: Points(0),
                    awards: vec![],
                    guard: None,
                    purchase: None,
                },
                other => other,
            }
        }
        _ => Command::Enrol {
            key: okey(),
            member: member(rng, mem),
        },
    }
}

fn contract(p: PartnerId, validity_days: i64) -> Contract {
    Contract {
        partner: p,
        currency: "EUR".parse().expect("EUR"),
        issuance_price_per_point: Decimal::new(1, 2),
        redemption_price_per_point: Decimal::new(75, 4),
        points_validity_days: (p == PartnerId(1)).then_some(validity_days as u32),
    }
}

fn leak_clock() -> &'static AtomicI64 {
    Box::leak(Box::new(AtomicI64::new(START)))
}

/// What one seed's run did.
#[derive(Debug, Default)]
struct Run {
    steps: usize,
    restarts: u64,
    open_failures: u64,
    read_errors_seen: u64,
    acknowledged: usize,
    rejected: usize,
    replayed_after_restart: u64,
    contended: u64,
    keys_on_disk: u64,
    counts: SimCounts,
    trace: u64,
}

/// The ledger under faults, and how to bring it back.
struct Live {
    path: Path,
    seed: u64,
    store: SimStore,
    ledger: Option<Ledger<SimStore>>,
    clock: &'static AtomicI64,
    faults: SimFaults,
}

impl Live {
    fn ledger(&self) -> &Ledger<SimStore> {
        self.ledger.as_ref().expect("open")
    }

    fn down(&self) -> bool {
        let failure = self.ledger().failure();
        if let Some(why) = &failure {
            assert!(!why.contains("panicked"), "the writer panicked: {why}");
        }
        self.store.is_dead() || failure.is_some()
    }

    /// The process dies; a new one recovers from what the disk kept, opening until it opens
    /// (an open refused by a read fault or killed by a crash is itself simulated again).
    fn restart(&mut self, seed: u64, run: &mut Run) {
        run.restarts += 1;
        if std::env::var_os("SIM_VERBOSE").is_some() {
            eprintln!(
                "  restart: {:?}",
                self.ledger.as_ref().and_then(|l| l.failure())
            );
        }
        let mut disk = self.store.crash();
        self.ledger.take();
        for _ in 0..200 {
            self.store = SimStore::recover(disk, self.faults);
            self.store.flip_values_under(&[ledger::keys::JOURNAL]);
            match open(self.path, &self.store, self.clock, self.seed) {
                Ok(l) => {
                    self.ledger = Some(l);
                    return;
                }
                Err(e) => {
                    run.open_failures += 1;
                    assert!(
                        !matches!(e, LedgerError::Rejected(_)),
                        "seed {seed}: open failed oddly: {e}"
                    );
                    disk = self.store.crash();
                }
            }
        }
        panic!("seed {seed}: the ledger did not open in 200 attempts");
    }

    /// Brings the process back until it is up, and waits for its projector to cover every
    /// batch committed so far (what recovery handed it, the last command's), so that the
    /// projector's store operations never interleave with the next command's: the operations
    /// come in one order, and each draws the same fault, on every run of a seed. After a
    /// restart, checks what it recovered. Returns whether it restarted.
    fn ensure_up(&mut self, seed: u64, run: &mut Run, acked: &[Transaction]) -> bool {
        let mut restarted = false;
        loop {
            if !self.down() {
                let _ = self.ledger().read_snapshot();
                if !self.down() {
                    break;
                }
            }
            self.restart(seed, run);
            restarted = true;
        }
        if restarted {
            check_recovered(seed, self, acked);
        }
        restarted
    }

    /// Runs `f` with faults off (the checks read everything and must not be failed by the
    /// store they check).
    fn quiet<T>(&self, f: impl FnOnce(&Ledger<SimStore>) -> T) -> T {
        self.store.set_faults(SimFaults::default());
        let out = f(self.ledger());
        self.store.set_faults(self.faults);
        out
    }
}

/// The live ledger's transaction ids and the model's, paired as the two are compared. On the
/// single path every id pairs with itself; on the cluster path ids differ (a restarted process
/// reserves a new block of them, and every attempt of a transaction takes one) but keep their
/// order. A live id pairs with one model id only, and the other way round.
#[derive(Default)]
struct Ids {
    /// On the single path refusals compare exactly (they name transactions in the same ids).
    single: bool,
    to_model: HashMap<TxId, TxId>,
    to_live: HashMap<TxId, TxId>,
}

/// `t` with every transaction id it holds passed through `f`, in a fixed order.
fn map_tx(t: &Transaction, f: &mut dyn FnMut(TxId) -> TxId) -> Transaction {
    let mut t = t.clone();
    t.id = f(t.id);
    match &mut t.kind {
        TxKind::Burn { hold: Some(h), .. } => *h = f(*h),
        TxKind::Void { hold, .. } => {
            *hold = f(*hold);
            // A hold's timeout is posted under a key that names the hold.
            if t.key.scope == Scope::System && t.key.reference.starts_with("hold-timeout/") {
                t.key.reference = format!("hold-timeout/{hold}");
            }
        }
        TxKind::Reversal { original, .. } => *original = f(*original),
        TxKind::Adjust {
            corrects: Some(c), ..
        } => *c = f(*c),
        TxKind::Merged(m) => m.holds.iter_mut().for_each(|h| *h = f(*h)),
        _ => {}
    }
    for l in &mut t.lots {
        l.lot.tx = f(l.lot.tx);
    }
    for b in &mut t.member_balances {
        b.prev = b.prev.map(&mut *f);
    }
    t
}

/// `m` with its lots' and latest transaction's ids passed through `f`.
fn map_member(m: &MemberState, f: &mut dyn FnMut(TxId) -> TxId) -> MemberState {
    let mut m = m.clone();
    m.lots = m
        .lots
        .iter()
        .map(|l| {
            let mut l = *l;
            l.id.tx = f(l.id.tx);
            l
        })
        .collect();
    m.last = m.last.get().map(&mut *f).into();
    m
}

impl Ids {
    /// Pairs `live` with `model`; false if either is already paired with another.
    fn pair(&mut self, live: TxId, model: TxId) -> bool {
        let a = *self.to_model.entry(live).or_insert(model);
        let b = *self.to_live.entry(model).or_insert(live);
        a == model && b == live
    }

    fn model_id(&self, live: TxId) -> TxId {
        self.to_model.get(&live).copied().unwrap_or(live)
    }

    /// Pairs the ids `live` and `model` hold, field by field; false when they cannot be the
    /// same transaction under one pairing.
    fn pair_tx(&mut self, live: &Transaction, model: &Transaction) -> bool {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        map_tx(live, &mut |x| {
            a.push(x);
            x
        });
        map_tx(model, &mut |x| {
            b.push(x);
            x
        });
        a.len() == b.len() && a.into_iter().zip(b).all(|(x, y)| self.pair(x, y))
    }

    /// `live` in the model's ids, for comparing with the model's transaction (through
    /// [`Ids::model_tx`]).
    fn tx(&self, live: &Transaction) -> Transaction {
        let mut t = map_tx(live, &mut |x| self.model_id(x));
        if !self.single {
            // A command's digest covers the transactions it names, in its ledger's ids.
            t.digest = Default::default();
        }
        t
    }

    /// The model's transaction, as [`Ids::tx`] leaves a live one.
    fn model_tx(&self, model: &Transaction) -> Transaction {
        let mut t = model.clone();
        if !self.single {
            t.digest = Default::default();
        }
        t
    }

    fn member(&self, live: &MemberState) -> MemberState {
        map_member(live, &mut |x| self.model_id(x))
    }

    /// `cmd` as the model must receive it: the transactions it names, in the model's ids.
    fn command(&self, cmd: &Command) -> Command {
        let mut cmd = cmd.clone();
        match &mut cmd {
            Command::Capture { hold, .. } | Command::Void { hold, .. } => {
                *hold = self.model_id(*hold)
            }
            Command::Reverse { original, .. } => *original = self.model_id(*original),
            Command::Adjust {
                corrects: Some(c), ..
            } => *c = self.model_id(*c),
            _ => {}
        }
        cmd
    }
}

fn journal<S: Snapshot>(snap: &S) -> Vec<Transaction> {
    let mut all = Vec::new();
    ledger::journal::for_each_batch(snap, 0, &mut |_, txs| {
        all.extend(txs);
        Ok(())
    })
    .expect("journal reads");
    all
}

/// The checks after a restart: the chain, the audit, and every acknowledged transaction.
fn check_recovered(seed: u64, live: &Live, acked: &[Transaction]) {
    live.quiet(|l| {
        let snap = l.read_snapshot().expect("snapshot");
        ledger::chain::verify(&snap, &[])
            .unwrap_or_else(|e| panic!("seed {seed}: chain after restart: {e}"));
        ledger::audit::audit(&snap)
            .unwrap_or_else(|e| panic!("seed {seed}: audit after restart: {e}"));
        for tx in acked {
            let found = l.transaction_by_key(&tx.key).expect("read");
            assert_eq!(
                found.as_ref(),
                Some(tx),
                "seed {seed}: an acknowledged transaction changed or was lost in a crash"
            );
        }
    });
}

/// Member states, the audit's totals and the whole journal, against the model's (the live
/// ids paired with the model's, in journal order).
fn check_against_model(
    seed: u64,
    step: usize,
    live: &Live,
    model: &Ledger<SimStore>,
    ids: &mut Ids,
) {
    live.quiet(|l| {
        let snap = l.read_snapshot().expect("snapshot");
        let model_snap = model.read_snapshot().expect("snapshot");
        let (a, b) = (journal(&snap), journal(&model_snap));
        let paired = a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| ids.pair_tx(x, y));
        let a: Vec<Transaction> = a.iter().map(|t| ids.tx(t)).collect();
        let b: Vec<Transaction> = b.iter().map(|t| ids.model_tx(t)).collect();
        if !paired || a != b {
            let at = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .or(Some(a.len().min(b.len())));
            panic!(
                "seed {seed} step {step}: journal differs from the model's ({} vs {} transactions; first difference at {at:?}: {:?} vs {:?})",
                a.len(),
                b.len(),
                at.and_then(|i| a.get(i..)),
                at.and_then(|i| b.get(i..)),
            );
        }
        for m in 1..=MEMBERS_MAX {
            let (a, b) = (
                l.member_state(MemberId(m))
                    .expect("read")
                    .map(|s| ids.member(&s)),
                model.member_state(MemberId(m)).expect("read"),
            );
            assert_eq!(a, b, "seed {seed} step {step}: member {m} differs from the model");
            let (a, b) = (
                l.balance(MemberId(m)).expect("read"),
                model.balance(MemberId(m)).expect("read"),
            );
            assert_eq!(a, b, "seed {seed} step {step}: balance of {m} differs");
        }
        // Member records stored so far depend on when pages were written (a restart writes
        // them on its own schedule), not on what they hold: the audit checked what they hold.
        // On the cluster path a batch whose transaction kept conflicting is split in halves, so
        // the same transactions may come in more batches than the model's.
        let cluster = !ids.single;
        let totals = |snap: &ledger::store::sim::SimSnapshot| {
            let report = ledger::audit::audit(snap).expect("audit");
            ledger::audit::AuditReport {
                member_records: 0,
                batches: if cluster { 0 } else { report.batches },
                ..report
            }
        };
        assert_eq!(
            totals(&snap),
            totals(&model_snap),
            "seed {seed} step {step}: audit totals differ"
        );
    });
}

fn same_outcome(
    seed: u64,
    step: usize,
    cmd: &Command,
    live: &Result<Receipt, LedgerError>,
    model: &Result<Receipt, LedgerError>,
    ids: &mut Ids,
) {
    match (live, model) {
        (Ok(a), Ok(b)) => {
            let paired = ids.pair_tx(&a.tx, &b.tx);
            assert_eq!(
                ids.tx(&a.tx),
                ids.model_tx(&b.tx),
                "seed {seed} step {step}: {cmd:?} committed differently from the model"
            );
            assert!(
                paired,
                "seed {seed} step {step}: {cmd:?} names other transactions than the model's"
            );
        }
        (Err(LedgerError::Rejected(a)), Err(LedgerError::Rejected(b))) if ids.single => {
            assert_eq!(a, b, "seed {seed} step {step}: {cmd:?} refused differently")
        }
        (Err(LedgerError::Rejected(a)), Err(LedgerError::Rejected(b))) => {
            // A refusal may name a transaction, in each ledger's own ids.
            assert_eq!(
                std::mem::discriminant(a),
                std::mem::discriminant(b),
                "seed {seed} step {step}: {cmd:?} refused differently: {a:?} / {b:?}"
            )
        }
        (a, b) => {
            panic!("seed {seed} step {step}: {cmd:?}: {a:?} under faults, {b:?} in the model")
        }
    }
}

/// Sends `cmd` to the ledger under faults until it is answered on its merits, restarting
/// whenever the process died or stopped. Returns the answer, whether it restarted, and whether
/// the first send was answered.
fn answer(
    seed: u64,
    step: usize,
    live: &mut Live,
    r: &mut Run,
    acked: &[Transaction],
    cmd: &Command,
) -> (Result<Receipt, LedgerError>, bool, bool) {
    let mut restarted = false;
    for sends in 1.. {
        restarted |= live.ensure_up(seed, r, acked);
        match live.ledger().execute_blocking(cmd.clone()) {
            Ok(receipt) => return (Ok(receipt), restarted, sends == 1),
            Err(LedgerError::Rejected(why)) => {
                return (Err(LedgerError::Rejected(why)), restarted, sends == 1)
            }
            Err(LedgerError::Stopped { .. }) | Err(LedgerError::ShuttingDown) => continue,
            // A read the command needed (the first receipt of a retry, the original of a
            // reversal, on the cluster path any read of its transaction) failed its check; the
            // caller tries again. Nothing was decided, or, on the cluster path, an earlier
            // attempt whose commit's result was unknown may have landed: the retry finds it.
            Err(LedgerError::Corrupt(_) | LedgerError::Storage(_)) => {
                r.read_errors_seen += 1;
                continue;
            }
            // The cluster path: a command whose transaction kept conflicting, or whose last
            // commit's result stayed unknown; the caller retries with the same key.
            Err(LedgerError::Contended { .. }) => {
                r.contended += 1;
                continue;
            }
            Err(e) => panic!("seed {seed} step {step}: {cmd:?} failed unexpectedly: {e}"),
        }
    }
    unreachable!("the sends are counted without end")
}

/// One seed's run.
fn run(path: Path, seed: u64, steps: usize) -> Run {
    let mut rng = Rng(rand::SeedableRng::seed_from_u64(seed));
    let clock = leak_clock();
    let faults = faults(path);
    let model = open(path, &SimStore::new(SimFaults::default(), 1), clock, 1).expect("model");
    let mut ids = Ids {
        single: path == Path::Single,
        ..Ids::default()
    };
    let store = SimStore::new(faults, seed);
    store.flip_values_under(&[ledger::keys::JOURNAL]);
    let mut live = Live {
        path,
        seed,
        ledger: None,
        store: store.clone(),
        clock,
        faults,
    };
    let mut r = Run::default();
    // Opening a fresh store can itself meet faults.
    match open(path, &store, clock, seed) {
        Ok(l) => live.ledger = Some(l),
        Err(_) => {
            live.ledger = Some(
                open(path, &SimStore::new(SimFaults::default(), 1), clock, seed)
                    .expect("placeholder"),
            );
            live.restart(seed, &mut r);
        }
    }
    live.ensure_up(seed, &mut r, &[]);

    let mut mem = Memory {
        members: MEMBERS_AT_START,
        ..Memory::default()
    };
    let mut setup: Vec<Command> = (1..=PARTNERS)
        .map(|p| Command::SetContract {
            key: IdemKey::operator(format!("contract-{p}")),
            contract: contract(PartnerId(p), 120),
        })
        .collect();
    setup.extend((1..=MEMBERS_AT_START).map(|m| Command::Enrol {
        key: IdemKey::operator(format!("enrol-{m}")),
        member: MemberId(m),
    }));

    let mut acked: Vec<Transaction> = Vec::new();
    let audit_every_step = std::env::var_os("SIM_AUDIT").is_some();
    let mut step_outcome = None;
    for i in 0..setup.len() + steps {
        // The clock moves: minutes most often, sometimes days or a month, past hold timeouts,
        // expiries, tier overrides and year ends.
        if i >= setup.len() && rng.chance(25) {
            let by = match rng.below(10) {
                0..=5 => rng.range(1_000, 3_600_000),
                6..=8 => rng.range(DAY / 2, 5 * DAY),
                _ => rng.range(20 * DAY, 70 * DAY),
            };
            clock.fetch_add(by, Ordering::Relaxed);
        }
        let cmd = match setup.get(i) {
            Some(c) => c.clone(),
            None => command(&mut rng, &mut mem, i, clock.load(Ordering::Relaxed)),
        };

        // Due hold timeouts and expiries post with the next batch, so a retry after a restart
        // (one more batch) would post them at another point than the model did. A flush
        // before and after each command (a retry of the first enrolment: a batch with nothing
        // of its own) posts them at the same points on both.
        let flush = setup[MEMBERS_AT_START as usize + PARTNERS as usize - 1].clone();
        let mut restarted_in_step = false;
        let sends = if i < setup.len() {
            vec![("command", &cmd)]
        } else {
            vec![("flush", &flush), ("command", &cmd), ("flush", &flush)]
        };
        for (what, c) in sends {
            let (outcome, restarted, first_send) = answer(seed, i, &mut live, &mut r, &acked, c);
            if std::env::var_os("SIM_VERBOSE").is_some() && what == "command" {
                eprintln!("step {i} at {}: {c:?}", clock.load(Ordering::Relaxed));
            }
            let expected = model.execute_blocking(ids.command(c));
            if std::env::var_os("SIM_VERBOSE").is_some() {
                match &expected {
                    Ok(r) => eprintln!(
                        "  -> {:?} {:?} {:?}",
                        r.tx.id, r.tx.kind, r.tx.member_balances
                    ),
                    Err(e) => eprintln!("  -> {e}"),
                }
            }
            if audit_every_step {
                // SIM_AUDIT=1: the model audited after every command, naming the first that
                // breaks an invariant.
                let snap = model.read_snapshot().expect("snapshot");
                if let Err(e) = ledger::audit::audit(&snap) {
                    panic!("seed {seed} step {i}: after {c:?} ({expected:?}) the audit fails: {e}");
                }
            }
            same_outcome(seed, i, c, &outcome, &expected, &mut ids);
            if let (true, Ok(a), Ok(b)) = (first_send, &outcome, &expected) {
                // Answered at the first send, a command is a replay exactly when the model's
                // is (on the cluster path, a commit whose result was unknown and that landed is
                // the caller's first answer all the same).
                assert_eq!(
                    a.replayed, b.replayed,
                    "seed {seed} step {i}: {c:?} answered as a replay on one ledger only"
                );
            }
            if restarted {
                if let Ok(receipt) = &outcome {
                    r.replayed_after_restart += u64::from(receipt.replayed && what == "command");
                }
            }
            restarted_in_step |= restarted;
            if what == "command" {
                step_outcome = Some(outcome);
            }
        }
        // After a restart, once the step's last flush has posted what fell due: the model's
        // state, exactly.
        if restarted_in_step {
            live.ensure_up(seed, &mut r, &acked);
            check_against_model(seed, i, &live, &model, &mut ids);
        }
        let outcome = step_outcome.take().expect("the command was sent");
        match &outcome {
            Ok(receipt) => {
                r.acknowledged += 1;
                acked.push((*receipt.tx).clone());
                match &receipt.tx.kind {
                    TxKind::Hold { .. } => mem.holds.push(receipt.tx.id),
                    TxKind::Earn { .. } | TxKind::Burn { .. } => mem.originals.push(receipt.tx.id),
                    _ => {}
                }
                mem.any.push(receipt.tx.id);
            }
            Err(_) => r.rejected += 1,
        }
        if i >= setup.len() {
            mem.sent.push(cmd.clone());
        }

        // A read that waits for the projector (so its commit comes before the next command's,
        // every run alike), and a statement that reads journal blocks, faults included.
        let m = MemberId(1 + rng.below(mem.members));
        let expected_balance = model.balance(m).expect("model read");
        match live.ledger().balance(m) {
            Ok(b) => assert_eq!(
                b, expected_balance,
                "seed {seed} step {i}: balance of {m:?}"
            ),
            Err(LedgerError::Stopped { .. }) => {}
            // The cluster path reads balances from the store (the single path from memory),
            // and meets its faults.
            Err(LedgerError::Corrupt(_) | LedgerError::Storage(_)) if path == Path::Cluster => {
                r.read_errors_seen += 1
            }
            Err(e) => panic!("seed {seed} step {i}: balance read: {e}"),
        }
        if rng.chance(20) && !live.down() {
            let expected = model.statement(m, None, 20).expect("model statement");
            match live.ledger().statement(m, None, 20) {
                Ok(mut page) => {
                    let paired = page.entries.len() == expected.entries.len()
                        && page
                            .entries
                            .iter()
                            .zip(&expected.entries)
                            .all(|(a, b)| ids.pair(a.tx, b.tx));
                    for e in &mut page.entries {
                        e.tx = ids.model_id(e.tx);
                    }
                    page.next = page.next.map(|x| ids.model_id(x));
                    assert_eq!(page, expected, "seed {seed} step {i}: statement");
                    assert!(
                        paired,
                        "seed {seed} step {i}: statement names other transactions"
                    );
                }
                Err(LedgerError::Corrupt(_) | LedgerError::Storage(_)) => r.read_errors_seen += 1,
                Err(LedgerError::Stopped { .. }) => {}
                Err(e) => panic!("seed {seed} step {i}: statement read: {e}"),
            }
        }
    }
    live.ensure_up(seed, &mut r, &acked);
    check_against_model(seed, usize::MAX, &live, &model, &mut ids);
    // The key window held: most keys live on disk, and memory keeps about the window.
    live.quiet(|l| {
        if path == Path::Cluster {
            return;
        }
        let held = l.keys_in_memory().expect("the single path holds keys");
        assert!(held <= 3 * 40, "seed {seed}: {held} keys in memory");
        let snap = l.read_snapshot().expect("snapshot");
        let mut on_disk = 0;
        snap.scan(
            &[ledger::keys::IDEM_BY_HASH],
            &[ledger::keys::IDEM_BY_HASH + 1],
            &mut |_, _| {
                on_disk += 1;
                true
            },
        )
        .expect("scan");
        r.keys_on_disk = on_disk;
        if acked.len() > 120 {
            assert!(on_disk > 0, "seed {seed}: no key left memory");
        }
    });
    r.steps = steps;
    r.counts = live.store.counts();
    r.trace = live.store.trace();
    r
}

fn seeds() -> Vec<u64> {
    if let Ok(one) = std::env::var("SIM_SEED") {
        return vec![one.parse().expect("SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .map(|s| s.parse().expect("SIM_SEEDS is a number"))
        .unwrap_or(400);
    let first: u64 = std::env::var("SIM_FIRST_SEED")
        .ok()
        .map(|s| s.parse().expect("SIM_FIRST_SEED is a number"))
        .unwrap_or(1);
    (first..first + n).collect()
}

fn steps() -> usize {
    std::env::var("SIM_STEPS")
        .ok()
        .map(|s| s.parse().expect("SIM_STEPS is a number"))
        .unwrap_or(120)
}

/// `each` of `seeds` on `threads` threads (seed i on thread i mod threads); the results, thread
/// by thread. A panic in any seed fails the caller.
fn on_threads<T: Send>(seeds: &[u64], threads: usize, each: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let each = &each;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<u64> = seeds.iter().copied().skip(t).step_by(threads).collect();
                s.spawn(move || mine.into_iter().map(each).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a seed failed"))
            .collect()
    })
}

#[test]
fn seeds_hold_every_invariant_under_storage_faults() {
    seeds_hold(Path::Single);
}

/// The cluster path under the same faults, and a cluster's conflicts and unknown commit
/// results. (`SIM_SEEDS` and the other settings as for the single path.)
#[test]
fn cluster_path_under_faults_keeps_every_invariant() {
    seeds_hold(Path::Cluster);
}

fn seeds_hold(path: Path) {
    let seeds = seeds();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let started = std::time::Instant::now();
    let runs: Vec<(u64, Run)> = on_threads(&seeds, threads, |seed| {
        if std::env::var_os("SIM_VERBOSE").is_some() {
            eprintln!("seed {seed}");
        }
        match std::panic::catch_unwind(|| run(path, seed, steps())) {
            Ok(r) => (seed, r),
            Err(e) => {
                let test = match path {
                    Path::Single => "seeds_hold",
                    Path::Cluster => "cluster_path_under",
                };
                eprintln!(
                    "seed {seed} failed on the {path:?} path; repeat it with SIM_SEED={seed} cargo test -p ledger --test simulation {test}"
                );
                std::panic::resume_unwind(e)
            }
        }
    });
    let mut total = Run::default();
    for (_, r) in &runs {
        total.steps += r.steps;
        total.restarts += r.restarts;
        total.open_failures += r.open_failures;
        total.read_errors_seen += r.read_errors_seen;
        total.acknowledged += r.acknowledged;
        total.rejected += r.rejected;
        total.replayed_after_restart += r.replayed_after_restart;
        total.contended += r.contended;
        total.keys_on_disk += r.keys_on_disk;
        let c = &r.counts;
        let t = &mut total.counts;
        t.ops += c.ops;
        t.crashes += c.crashes;
        t.crashes_after_sync += c.crashes_after_sync;
        t.fsync_errors_landed += c.fsync_errors_landed;
        t.fsync_errors_lost += c.fsync_errors_lost;
        t.read_errors += c.read_errors;
        t.flips += c.flips;
        t.slow += c.slow;
        t.lost_unsynced += c.lost_unsynced;
        t.torn += c.torn;
        t.conflicts += c.conflicts;
        t.unknown_results += c.unknown_results;
    }
    eprintln!(
        "simulation of the {path:?} path: {} seeds, {} commands in {:.1} s: {} acknowledged, {} refused; {} restarts ({} opens failed), {} answered from the first attempt after a restart; {} reads refused; {} answered as contended; {} keys on disk at the ends; faults {:?}",
        runs.len(),
        total.steps,
        started.elapsed().as_secs_f64(),
        total.acknowledged,
        total.rejected,
        total.restarts,
        total.open_failures,
        total.replayed_after_restart,
        total.read_errors_seen,
        total.contended,
        total.keys_on_disk,
        total.counts
    );
    if runs.len() >= 50 {
        // The run exercised what it claims to: every fault kind happened.
        let c = &total.counts;
        let mut kinds = vec![
            ("crashes", c.crashes),
            ("crashes after a durable commit", c.crashes_after_sync),
            ("failed fsyncs that landed", c.fsync_errors_landed),
            ("failed fsyncs that did not", c.fsync_errors_lost),
            ("failed reads", c.read_errors),
            ("flipped reads", c.flips),
            ("slow operations", c.slow),
        ];
        match path {
            // Only the single committer writes without an fsync (its projector).
            Path::Single => kinds.extend([
                ("lost unsynced commits", c.lost_unsynced),
                ("torn writes", c.torn),
            ]),
            Path::Cluster => kinds.extend([
                ("conflicts", c.conflicts),
                ("unknown commit results", c.unknown_results),
            ]),
        }
        for (what, n) in kinds {
            assert!(n > 0, "no {what} in {} seeds", runs.len());
        }
        assert!(
            total.replayed_after_restart > 0,
            "no command landed before a crash"
        );
    }
}

#[test]
fn seeds_repeat_exactly() {
    repeats(Path::Single);
}

#[test]
fn cluster_path_repeats_exactly() {
    repeats(Path::Cluster);
}

fn repeats(path: Path) {
    // One seed by default (SIM_SEED or 7, 60 commands); `SIM_REPEAT_SEEDS=n` checks n seeds
    // from SIM_FIRST_SEED (default 1) at SIM_STEPS commands (default 120), on two threads.
    let (seeds, steps): (Vec<u64>, usize) = match std::env::var("SIM_REPEAT_SEEDS") {
        Ok(n) => {
            let n: u64 = n.parse().expect("SIM_REPEAT_SEEDS is a number");
            let first: u64 = std::env::var("SIM_FIRST_SEED")
                .ok()
                .map(|s| s.parse().expect("SIM_FIRST_SEED is a number"))
                .unwrap_or(1);
            ((first..first + n).collect(), steps())
        }
        Err(_) => (
            vec![std::env::var("SIM_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(7)],
            60,
        ),
    };
    let differing: Vec<u64> = on_threads(&seeds, 2, |seed| {
        let (a, b) = (run(path, seed, steps), run(path, seed, steps));
        assert!(a.counts.ops > 0);
        let same = (a.trace, a.counts, a.acknowledged, a.restarts)
            == (b.trace, b.counts, b.acknowledged, b.restarts);
        (!same).then_some(seed)
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(
        differing.is_empty(),
        "seeds that ran differently twice: {differing:?} of {}",
        seeds.len()
    );
}
