//! Household pools and the finer tier qualification on both write paths: an owner spends its
//! household's points in one transaction, a reversal gives each member back what was taken,
//! leaving keeps each member's own points; tiers qualify on spend, per partner and category,
//! and on adjustments an operator flags.

use super::expiry::{burn, posted, tier_of};
use super::{rejected, seed};
use ledger::core::model::{Command, IdemKey};
use ledger::core::tiers::{Basis, PartnerCategories, Purchase, TierLevel, TierPolicy, Window};
use ledger::core::types::{AccountId, MemberId, Money, PartnerId, Points};
use ledger::store::{Store, TxnStore};
use ledger::{ClusterConfig, Ledger, LedgerConfig, Rejection};
use rust_decimal::Decimal;

fn earn_at(
    partner: u32,
    reference: &str,
    member: u64,
    points: i64,
    p: Option<Purchase>,
) -> Command {
    Command::Earn {
        key: IdemKey::partner(PartnerId(partner), reference),
        member: MemberId(member),
        partner: PartnerId(partner),
        points: Points(points),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: p.map(Box::new),
    }
}

fn join(reference: &str, owner: u64, member: u64) -> Command {
    Command::JoinPool {
        key: IdemKey::partner(PartnerId(1), reference),
        owner: MemberId(owner),
        member: MemberId(member),
        consent: "signed the household form at the desk".into(),
    }
}

fn leave(reference: &str, member: u64) -> Command {
    Command::LeavePool {
        key: IdemKey::partner(PartnerId(1), reference),
        member: MemberId(member),
    }
}

fn pool_of<S: Store + Clone>(l: &Ledger<S>, m: u64) -> Vec<u64> {
    l.member_state(MemberId(m))
        .expect("read")
        .expect("member")
        .pool_members()
        .iter()
        .map(|m| m.0)
        .collect()
}

/// Household pools on the single writer.
pub fn ledger_household_pools_spend_together_and_leave_with_their_own<S: Store + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let store = open();
    pools(&mut || Ledger::open(store.clone(), LedgerConfig::default()).expect("open ledger"));
}

/// The same on the cluster path.
pub fn cluster_household_pools_spend_together_and_leave_with_their_own<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let store = open();
    pools(&mut || {
        Ledger::open_cluster(
            store.clone(),
            LedgerConfig::default(),
            ClusterConfig::on_shard(4),
        )
        .expect("open ledger in cluster mode")
    });
}

fn pools<S: Store + Clone>(open: &mut dyn FnMut() -> Ledger<S>) {
    let l = open();
    seed(&l);
    for (m, p) in [(1, 100), (2, 300), (3, 200)] {
        l.execute_blocking(earn_at(1, &format!("fund-{m}"), m, p, None))
            .expect("earn");
    }
    l.execute_blocking(join("j2", 1, 2))
        .expect("2 joins 1's pool");
    l.execute_blocking(join("j3", 1, 3))
        .expect("3 joins 1's pool");
    assert_eq!(pool_of(&l, 1), vec![2, 3], "in the order they joined");
    assert_eq!(
        rejected(l.execute_blocking(join("j-self", 1, 1))),
        Rejection::PoolWithSelf
    );
    assert_eq!(
        rejected(l.execute_blocking(join("j-taken", 3, 2))),
        Rejection::PoolOwnerIsMember(MemberId(3))
    );
    l.execute_blocking(Command::Enrol {
        key: IdemKey::operator("e4"),
        member: MemberId(4),
    })
    .expect("enrol 4");
    assert_eq!(
        rejected(l.execute_blocking(join("j-twice", 4, 2))),
        Rejection::PoolTaken(MemberId(2))
    );

    // The owner spends its own 100, then 250 of member 2's: one transaction.
    let spent = l.execute_blocking(burn("b1", 1, 350)).expect("pool burn");
    assert_eq!(
        spent.tx.points_to(AccountId::Member(MemberId(1))),
        Points(-100)
    );
    assert_eq!(
        spent.tx.points_to(AccountId::Member(MemberId(2))),
        Points(-250)
    );
    assert_eq!((posted(&l, 1), posted(&l, 2), posted(&l, 3)), (0, 50, 200));
    match rejected(l.execute_blocking(burn("b2", 1, 300))) {
        Rejection::InsufficientPoints { available, .. } => assert_eq!(available, Points(250)),
        other => panic!("expected too few points, got {other:?}"),
    }
    // A member spends only its own.
    assert!(matches!(
        rejected(l.execute_blocking(burn("b3", 2, 60))),
        Rejection::InsufficientPoints { .. }
    ));
    let in_statement = l.statement(MemberId(2), None, 1).expect("statement");
    assert_eq!(
        in_statement.entries[0].tx, spent.tx.id,
        "member 2 sees the pooled burn"
    );

    // A partial reversal gives back the last drawn first (member 2's), then the rest.
    l.execute_blocking(Command::Reverse {
        key: IdemKey::partner(PartnerId(2), "b1-part"),
        original: spent.tx.id,
        points: Some(Points(200)),
    })
    .expect("partial reversal");
    assert_eq!((posted(&l, 1), posted(&l, 2)), (0, 250));
    l.execute_blocking(Command::Reverse {
        key: IdemKey::partner(PartnerId(2), "b1-rest"),
        original: spent.tx.id,
        points: None,
    })
    .expect("rest reversed");
    assert_eq!((posted(&l, 1), posted(&l, 2)), (100, 300));
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
    l.shutdown();

    // Pools survive a restart; leaving keeps each member's own points.
    let l = open();
    assert_eq!(pool_of(&l, 1), vec![2, 3]);
    l.execute_blocking(leave("l3", 3)).expect("3 leaves");
    assert_eq!(pool_of(&l, 1), vec![2]);
    assert_eq!(posted(&l, 3), 200);
    assert_eq!(
        rejected(l.execute_blocking(leave("l3-again", 3))),
        Rejection::NotInPool(MemberId(3))
    );
    l.execute_blocking(leave("l1", 1))
        .expect("the owner dissolves the pool");
    assert!(pool_of(&l, 1).is_empty());
    assert!(matches!(
        rejected(l.execute_blocking(burn("b4", 1, 150))),
        Rejection::InsufficientPoints { .. }
    ));
    l.execute_blocking(join("j4", 4, 2))
        .expect("member 2 is free to join another household");
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
    l.shutdown();
}

/// Spend, category and flagged-adjustment qualification on the single writer.
pub fn ledger_tiers_qualify_on_spend_by_category_and_on_flagged_adjustments<S: Store + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let l = Ledger::open(open(), LedgerConfig::default()).expect("open ledger");
    qualification(&l);
    l.shutdown();
}

/// The same on the cluster path.
pub fn cluster_tiers_qualify_on_spend_by_category_and_on_flagged_adjustments<
    S: TxnStore + Clone,
>(
    open: &mut dyn FnMut() -> S,
) {
    let l = Ledger::open_cluster(open(), LedgerConfig::default(), ClusterConfig::on_shard(5))
        .expect("open");
    qualification(&l);
    l.shutdown();
}

fn tier_policy(reference: &str, basis: Basis) -> Command {
    Command::SetTierPolicy {
        key: IdemKey::operator(reference),
        policy: Box::new(TierPolicy {
            levels: vec![TierLevel {
                name: "Silver".into(),
                threshold: 10_000,
            }],
            basis,
            window: Window::CalendarYear,
            grace_periods: 0,
            partners: vec![],
            categories: vec![PartnerCategories {
                partner: PartnerId(2),
                categories: vec!["flights".into()],
            }],
            time_zone: "UTC".into(),
            note: Default::default(),
        }),
    }
}

fn qualification<S: Store + Clone>(l: &Ledger<S>) {
    seed(l);
    let eur: ledger::Currency = "EUR".parse().expect("EUR");
    let usd: ledger::Currency = "USD".parse().expect("USD");
    let spend = |amount: i64, scale: u32, c, category: Option<&str>| {
        Some(Purchase {
            spend: Some(Money::new(Decimal::new(amount, scale), c)),
            category: category.map(str::to_string),
        })
    };
    l.execute_blocking(tier_policy("spend", Basis::Spend(eur)))
        .expect("spend policy");
    // EUR 60.50 at partner 1 counts 6,050 cents.
    let first = l
        .execute_blocking(earn_at(1, "s1", 1, 600, spend(6_050, 2, eur, None)))
        .expect("earn");
    assert!(
        matches!(&first.tx.kind, ledger::TxKind::Earn { tier: Some(t), .. } if t.0.qualifying == 6_050),
        "{:?}",
        first.tx.kind
    );
    // Spend in another currency, fuel at partner 2 and an earn without a purchase count nothing.
    for (n, cmd) in [
        earn_at(1, "s2", 1, 900, spend(9_000, 2, usd, None)),
        earn_at(2, "s3", 1, 900, spend(100, 0, eur, Some("fuel"))),
        earn_at(2, "s4", 1, 900, None),
    ]
    .into_iter()
    .enumerate()
    {
        let r = l.execute_blocking(cmd).expect("earn");
        assert!(
            matches!(&r.tx.kind, ledger::TxKind::Earn { tier: None, .. }),
            "earn {n} must not qualify: {:?}",
            r.tx.kind
        );
    }
    assert_eq!(tier_of(l, 1), 0);
    // EUR 40 of flights at partner 2 reaches 10,050: Silver at once.
    l.execute_blocking(earn_at(2, "s5", 1, 400, spend(40, 0, eur, Some("flights"))))
        .expect("earn");
    assert_eq!(tier_of(l, 1), 1);

    // On a points basis, an adjustment qualifies only when flagged.
    l.execute_blocking(tier_policy("points", Basis::Points))
        .expect("points policy");
    for (m, qualifies) in [(2, true), (3, false)] {
        l.execute_blocking(Command::Adjust {
            key: IdemKey::operator(format!("goodwill-{m}")),
            member: MemberId(m),
            points: Points(12_000),
            reason: "missed flight credited".into(),
            operator: "ops-7".into(),
            qualifies,
            corrects: None,
        })
        .expect("adjustment");
    }
    assert_eq!((tier_of(l, 2), tier_of(l, 3)), (1, 0));
    // Both versions are kept, in order, with the transactions that set them.
    let versions = l.policy_versions(b'r').expect("versions");
    let bases: Vec<Basis> = versions
        .iter()
        .map(|v| match &v.policy {
            ledger::core::programme::PolicyOf::Tier(p) => p.basis,
            other => panic!("not a tier policy: {other:?}"),
        })
        .collect();
    assert_eq!(bases, [Basis::Spend(eur), Basis::Points]);
    assert!(versions[0].tx < versions[1].tx && versions[0].at <= versions[1].at);
    assert!(l.policy_versions(b'e').expect("versions").is_empty());
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
}
