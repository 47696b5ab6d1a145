//! Expiry, transfers and tiers on both write paths: expired points are never spendable and the
//! ledger posts them to breakage once, transfers keep to their limits, tiers move up at once and
//! down at a period end.

use super::{rejected, seed};
use ledger::core::expiry::{activity, ExpiryPolicy, Inactivity, Rolling, RoundTo};
use ledger::core::model::{Command, IdemKey};
use ledger::core::types::{AccountId, MemberId, PartnerId, Points};
use ledger::store::{Store, TxnStore};
use ledger::{ClusterConfig, CommitterConfig, Ledger, LedgerConfig, Rejection, Timestamp, TxKind};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

const DAY_MS: i64 = 86_400_000;

/// A ledger configuration whose clock a test moves forward.
fn shifted() -> (LedgerConfig, &'static AtomicI64) {
    let offset: &'static AtomicI64 = Box::leak(Box::new(AtomicI64::new(0)));
    let config = LedgerConfig {
        committer: CommitterConfig {
            clock: ledger::Clock::shifted(offset),
            ..CommitterConfig::default()
        },
        ..LedgerConfig::default()
    };
    (config, offset)
}

fn earn(reference: &str, member: u64, points: i64) -> Command {
    Command::Earn {
        key: IdemKey::partner(PartnerId(1), reference),
        member: MemberId(member),
        partner: PartnerId(1),
        points: Points(points),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    }
}

pub(super) fn burn(reference: &str, member: u64, points: i64) -> Command {
    Command::Burn {
        key: IdemKey::partner(PartnerId(2), reference),
        member: MemberId(member),
        partner: PartnerId(2),
        points: Points(points),
    }
}

fn policy(rolling_months: Option<u16>, inactivity_months: Option<u16>) -> Command {
    Command::SetExpiryPolicy {
        key: IdemKey::operator(format!("policy-{rolling_months:?}-{inactivity_months:?}")),
        policy: Box::new(ExpiryPolicy {
            rolling: rolling_months.map(|months| Rolling {
                months,
                round_to: RoundTo::Exact,
            }),
            inactivity: inactivity_months.map(|months| Inactivity {
                months,
                activities: activity::DEFAULT,
            }),
            exempt_from_tier: None,
            time_zone: "UTC".into(),
            retroactive: false,
            note: Default::default(),
        }),
    }
}

/// Waits until `f` holds (the committer posts expiries on its own), at most 10 s.
fn eventually<S: Store + Clone>(l: &Ledger<S>, what: &str, f: impl Fn(&Ledger<S>) -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f(l) {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn posted<S: Store + Clone>(l: &Ledger<S>, m: u64) -> i64 {
    l.balance(MemberId(m))
        .expect("read")
        .expect("member")
        .posted
        .0
}

fn breakage<S: Store + Clone>(l: &Ledger<S>) -> i64 {
    l.account_balance(AccountId::Breakage)
        .expect("read")
        .points
        .0
}

/// Rolling expiry on the single writer.
pub fn ledger_points_expire_to_breakage_once<S: Store + Clone>(open: &mut dyn FnMut() -> S) {
    let (config, offset) = shifted();
    let store = open();
    points_expire_to_breakage_once(
        &mut || Ledger::open(store.clone(), config.clone()).expect("open ledger"),
        offset,
    );
}

/// The same on the cluster path.
pub fn cluster_points_expire_to_breakage_once<S: TxnStore + Clone>(open: &mut dyn FnMut() -> S) {
    let (config, offset) = shifted();
    let store = open();
    points_expire_to_breakage_once(
        &mut || {
            Ledger::open_cluster(store.clone(), config.clone(), ClusterConfig::on_shard(0))
                .expect("open ledger in cluster mode")
        },
        offset,
    );
}

fn points_expire_to_breakage_once<S: Store + Clone>(
    open: &mut dyn FnMut() -> Ledger<S>,
    offset: &'static AtomicI64,
) {
    let l = open();
    seed(&l);
    l.execute_blocking(policy(Some(1), None)).expect("policy");
    let first = l.execute_blocking(earn("e1", 1, 100)).expect("earn");
    let expires = first.tx.lots[0].expires_at.expect("the lot expires");
    // A month after the earn (30 or 31 days).
    assert!((30 * DAY_MS..=31 * DAY_MS).contains(&(expires.0 - first.tx.at.0)));
    offset.store(15 * DAY_MS, Ordering::Relaxed);
    l.execute_blocking(earn("e2", 1, 50)).expect("earn");
    // Just before the first lot's expiry: all 150 are spendable; burn 30 (from the first lot).
    offset.store(expires.0 - Timestamp::now().0 - 3_000, Ordering::Relaxed);
    let b = l
        .execute_blocking(burn("b1", 1, 30))
        .expect("burn before expiry");
    assert_eq!(
        b.tx.lots[0].lot.tx, first.tx.id,
        "soonest expiry consumed first"
    );
    // From the instant of expiry, the first lot's 70 are not spendable, posted or not.
    offset.store(expires.0 - Timestamp::now().0 + 1_000, Ordering::Relaxed);
    assert!(matches!(
        rejected(l.execute_blocking(burn("b2", 1, 51))),
        Rejection::InsufficientPoints { .. }
    ));
    eventually(&l, "the expiry posting", |l| breakage(l) == 70);
    assert_eq!(posted(&l, 1), 50);
    l.execute_blocking(burn("b3", 1, 50))
        .expect("the second lot is spendable");
    let report = ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
    assert_eq!(report.points_outstanding, 0);
    l.shutdown();
    // A restart posts nothing twice.
    let l = open();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(breakage(&l), 70);
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit after restart");
    l.shutdown();
}

/// Inactivity expiry, reset by activity, on the single writer.
pub fn ledger_inactivity_expiry_is_reset_by_activity<S: Store + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let (config, offset) = shifted();
    let l = Ledger::open(open(), config).expect("open ledger");
    inactivity_is_reset_by_activity(&l, offset);
    l.shutdown();
}

/// The same on the cluster path.
pub fn cluster_inactivity_expiry_is_reset_by_activity<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let (config, offset) = shifted();
    let l = Ledger::open_cluster(open(), config, ClusterConfig::on_shard(1)).expect("open");
    inactivity_is_reset_by_activity(&l, offset);
    l.shutdown();
}

fn inactivity_is_reset_by_activity<S: Store + Clone>(l: &Ledger<S>, offset: &'static AtomicI64) {
    seed(l);
    // No rolling expiry for lots earned under this policy; 12 months of inactivity.
    l.execute_blocking(policy(None, Some(12))).expect("policy");
    l.execute_blocking(earn("i1", 1, 100)).expect("earn");
    l.execute_blocking(earn("i2", 2, 100)).expect("earn");
    // Ten months later member 1 earns again; member 2 does nothing.
    offset.store(300 * DAY_MS, Ordering::Relaxed);
    l.execute_blocking(earn("i3", 1, 10)).expect("earn");
    // Thirteen months after the start: member 2's points expired, member 1's did not.
    offset.store(395 * DAY_MS, Ordering::Relaxed);
    eventually(l, "member 2's inactivity expiry", |l| posted(l, 2) == 0);
    assert_eq!(posted(l, 1), 110);
    assert_eq!(breakage(l), 100);
    let stmt = l.statement(MemberId(2), None, 10).expect("statement");
    assert!(matches!(
        stmt.entries.first().map(|e| e.kind.as_str()),
        Some("expiry")
    ));
    l.execute_blocking(burn("i4", 1, 110))
        .expect("member 1 still spends all");
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
}

fn give(reference: &str, points: i64) -> Command {
    Command::Transfer {
        key: IdemKey::operator(reference),
        from: MemberId(1),
        to: MemberId(2),
        points: Points(points),
        consent: Some("member confirmed in the app, session 81f2".into()),
    }
}

/// Transfers within and beyond the policy's limits, with their fee, on the single writer.
pub fn ledger_transfers_keep_to_their_limits_and_pay_their_fee<S: Store + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let (config, offset) = shifted();
    let l = Ledger::open(open(), config).expect("open ledger");
    transfers_keep_to_limits(&l, offset);
    l.shutdown();
}

/// The same on the cluster path.
pub fn cluster_transfers_keep_to_their_limits_and_pay_their_fee<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let (config, offset) = shifted();
    let l = Ledger::open_cluster(open(), config, ClusterConfig::on_shard(2)).expect("open");
    transfers_keep_to_limits(&l, offset);
    l.shutdown();
}

fn transfers_keep_to_limits<S: Store + Clone>(l: &Ledger<S>, offset: &'static AtomicI64) {
    seed(l);
    l.execute_blocking(Command::SetTransferPolicy {
        key: IdemKey::operator("transfers-1"),
        policy: Box::new(ledger::core::transfers::TransferPolicy {
            min: Some(Points(10)),
            max_per_transfer: Some(Points(500)),
            max_per_day: Some(Points(600)),
            max_per_year: Some(Points(1_000)),
            fee: Points(5),
            time_zone: "UTC".into(),
            note: Default::default(),
        }),
    })
    .expect("policy");
    l.execute_blocking(earn("t-fund", 1, 2_000)).expect("earn");
    let limit = |r: Rejection| match r {
        Rejection::TransferLimit { limit, .. } => limit,
        other => panic!("not a limit: {other:?}"),
    };
    assert_eq!(limit(rejected(l.execute_blocking(give("t1", 9)))), "min");
    assert_eq!(
        limit(rejected(l.execute_blocking(give("t2", 501)))),
        "max_per_transfer"
    );
    let ok = l.execute_blocking(give("t3", 400)).expect("within limits");
    assert_eq!(ok.tx.points_to(AccountId::Fees), Points(5));
    // 405 given today (with the fee); 250 more would pass 600.
    assert_eq!(
        limit(rejected(l.execute_blocking(give("t4", 250)))),
        "max_per_day"
    );
    offset.store(DAY_MS, Ordering::Relaxed);
    l.execute_blocking(give("t5", 250)).expect("a new day");
    // A day later: 660 given this year; 400 more would pass 1,000.
    offset.store(2 * DAY_MS, Ordering::Relaxed);
    assert_eq!(
        limit(rejected(l.execute_blocking(give("t6", 400)))),
        "max_per_year"
    );
    assert_eq!(posted(l, 1), 2_000 - 405 - 255);
    assert_eq!(posted(l, 2), 650);
    assert_eq!(
        l.account_balance(AccountId::Fees).expect("read").points,
        Points(10)
    );
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
}

pub(super) fn tier_of<S: Store + Clone>(l: &Ledger<S>, m: u64) -> u8 {
    l.member_state(MemberId(m))
        .expect("read")
        .expect("member")
        .tier()
}

/// Tiers on the single writer: upgrade at once, refunds take qualification back, downgrade at
/// the year end, transfers never qualify, an override holds a level until its date.
pub fn ledger_tiers_upgrade_at_once_and_downgrade_at_the_period_end<S: Store + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let (config, offset) = shifted();
    let l = Ledger::open(open(), config).expect("open ledger");
    tiers_move(&l, offset);
    l.shutdown();
}

/// The same on the cluster path.
pub fn cluster_tiers_upgrade_at_once_and_downgrade_at_the_period_end<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let (config, offset) = shifted();
    let l = Ledger::open_cluster(open(), config, ClusterConfig::on_shard(3)).expect("open");
    tiers_move(&l, offset);
    l.shutdown();
}

fn tiers_move<S: Store + Clone>(l: &Ledger<S>, offset: &'static AtomicI64) {
    use ledger::core::tiers::{Basis, TierLevel, TierPolicy, Window};
    seed(l);
    l.execute_blocking(Command::SetTierPolicy {
        key: IdemKey::operator("tiers-1"),
        policy: Box::new(TierPolicy {
            levels: vec![
                TierLevel {
                    name: "Silver".into(),
                    threshold: 1_000,
                },
                TierLevel {
                    name: "طلایی".into(),
                    threshold: 5_000,
                },
            ],
            basis: Basis::Points,
            window: Window::CalendarYear,
            grace_periods: 0,
            partners: vec![PartnerId(1)],
            categories: vec![],
            time_zone: "UTC".into(),
            note: Default::default(),
        }),
    })
    .expect("tier policy");
    l.execute_blocking(earn("q1", 1, 600)).expect("earn");
    assert_eq!(tier_of(l, 1), 0);
    let up = l.execute_blocking(earn("q2", 1, 500)).expect("earn");
    assert!(
        matches!(&up.tx.kind, TxKind::Earn { tier: Some(t), .. } if t.1.as_ref().map(|c| c.to) == Some(1)),
        "the qualifying earn upgrades at once: {:?}",
        up.tx.kind
    );
    assert_eq!(tier_of(l, 1), 1);
    // A refund takes its qualification back; the tier waits for the year end.
    l.execute_blocking(Command::Reverse {
        key: IdemKey::partner(PartnerId(1), "q2-refund"),
        original: up.tx.id,
        points: None,
    })
    .expect("refund");
    assert_eq!(tier_of(l, 1), 1);
    // Transfers never qualify: member 2 receives 2,000 and stays at the base.
    l.execute_blocking(earn("q3", 3, 2_500)).expect("earn");
    assert_eq!(tier_of(l, 3), 1, "earns at a qualifying partner qualify");
    l.execute_blocking(Command::Transfer {
        key: IdemKey::operator("q-gift"),
        from: MemberId(3),
        to: MemberId(2),
        points: Points(2_000),
        consent: None,
    })
    .expect("transfer");
    assert_eq!(tier_of(l, 2), 0);
    // An operator holds member 2 at level 2 for 30 days.
    l.execute_blocking(Command::SetTier {
        key: IdemKey::operator("hold-2"),
        member: MemberId(2),
        level: 2,
        until: Timestamp(Timestamp::now().0 + 30 * DAY_MS),
        reason: "service recovery after a lost booking".into(),
    })
    .expect("override");
    assert_eq!(tier_of(l, 2), 2);
    offset.store(31 * DAY_MS, Ordering::Relaxed);
    eventually(l, "the override's end", |l| tier_of(l, 2) == 0);
    // At the year end member 1 has only 600 and drops a level; member 3 keeps Silver.
    let next_year = {
        let now = Timestamp::now();
        let today = chrono::DateTime::from_timestamp_millis(now.0).expect("now");
        let start = chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&today) + 1, 1, 2)
            .expect("date")
            .and_hms_opt(0, 0, 0)
            .expect("time")
            .and_utc();
        start.timestamp_millis() - now.0
    };
    offset.store(next_year.max(32 * DAY_MS), Ordering::Relaxed);
    eventually(l, "the year-end review", |l| tier_of(l, 1) == 0);
    let stmt = l.statement(MemberId(1), None, 5).expect("statement");
    assert_eq!(
        stmt.entries[0].kind, "tier",
        "the review is in the statement"
    );
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
}

/// A new policy reaches members who never transact again, on the single writer.
pub fn ledger_a_policy_change_reaches_members_who_never_transact_again<S: Store + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let (config, offset) = shifted();
    let l = Ledger::open(open(), config).expect("open ledger");
    policy_change_reaches_everyone(&l, offset, false);
    l.shutdown();
}

/// The same on the cluster path, where the expiry index is swept after the change and entries
/// written under the old policy are cleared when they fall due.
pub fn cluster_a_policy_change_reaches_members_who_never_transact_again<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let (config, offset) = shifted();
    let l = Ledger::open_cluster(open(), config, ClusterConfig::on_shard(6)).expect("open");
    policy_change_reaches_everyone(&l, offset, true);
    l.shutdown();
}

fn due_entries<S: Store + Clone>(l: &Ledger<S>) -> usize {
    use ledger::store::Snapshot;
    l.read_snapshot()
        .expect("snapshot")
        .range(b"D", b"E", 1_000, false)
        .expect("range")
        .len()
}

fn policy_change_reaches_everyone<S: Store + Clone>(
    l: &Ledger<S>,
    offset: &'static AtomicI64,
    cluster: bool,
) {
    seed(l);
    // Lots dated by the contract: a year out.
    l.execute_blocking(earn("n1", 1, 100)).expect("earn");
    l.execute_blocking(earn("n2", 2, 100)).expect("earn");
    if cluster {
        assert_eq!(
            due_entries(l),
            2,
            "each member is indexed at its lot's date"
        );
    }
    // Then one month of inactivity expires everything; neither member transacts again.
    l.execute_blocking(policy(None, Some(1))).expect("policy");
    offset.store(32 * DAY_MS, Ordering::Relaxed);
    eventually(l, "both inactivity expiries", |l| breakage(l) == 200);
    assert_eq!((posted(l, 1), posted(l, 2)), (0, 0));
    if cluster {
        // The entries of the lots' old dates fall due after a year, find nothing and go.
        assert_eq!(due_entries(l), 2);
        offset.store(370 * DAY_MS, Ordering::Relaxed);
        eventually(l, "the stale index entries cleared", |l| {
            due_entries(l) == 0
        });
    }
    assert_eq!(breakage(l), 200);
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
}
