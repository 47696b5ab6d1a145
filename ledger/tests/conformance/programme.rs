//! Campaign awards, caps, budgets and the points budget guard, on both write paths.

use super::{open_cluster, rejected, seed};
use ledger::core::model::{Command, IdemKey};
use ledger::core::types::{AccountId, MemberId, PartnerId, Points};
use ledger::store::{Store, TxnStore};
use ledger::{
    AwardLimits, AwardRequest, CampaignId, Counter, CounterKey, Funder, GuardAction, GuardCheck,
    GuardKey, GuardRequest, GuardScope, Ledger, LedgerConfig, Limited, MemberCondition, Rejection,
    TxKind,
};
use rust_decimal::Decimal;

const P1: PartnerId = PartnerId(1);
const P2: PartnerId = PartnerId(2);

pub(super) fn award(
    campaign: u32,
    points: i64,
    funder: Funder,
    limits: AwardLimits,
) -> AwardRequest {
    AwardRequest {
        campaign: CampaignId(campaign),
        version: 1,
        points: Points(points),
        funder,
        limits,
        requires: MemberCondition::default(),
    }
}

pub(super) fn earn(
    reference: &str,
    member: u64,
    points: i64,
    awards: Vec<AwardRequest>,
) -> Command {
    Command::Earn {
        key: IdemKey::partner(P1, reference),
        member: MemberId(member),
        partner: P1,
        points: Points(points),
        bonus: Points(0),
        awards,
        guard: None,
        purchase: None,
    }
}

fn granted(r: &ledger::Receipt) -> Vec<(u32, i64, Option<Limited>)> {
    match &r.tx.kind {
        TxKind::Earn { awards, .. } => awards
            .iter()
            .map(|g| (g.campaign.0, g.points.0, g.limited))
            .collect(),
        other => panic!("not an earn: {other:?}"),
    }
}

fn awarded<S: Store + Clone>(l: &Ledger<S>, c: u32) -> i64 {
    match l
        .counter(&CounterKey::Campaign(CampaignId(c)))
        .expect("read")
    {
        Some(Counter::Awarded(p)) => p.0,
        None => 0,
        other => panic!("campaign counter {other:?}"),
    }
}

/// Awards, caps, budget, conditions, funding legs, the guard and reversals on the single writer.
pub fn ledger_campaign_awards_caps_and_budget<S: Store + Clone>(open: &mut dyn FnMut() -> S) {
    campaign_awards_caps_and_budget(&mut || {
        Ledger::open(open(), LedgerConfig::default()).expect("open ledger")
    });
}

/// The same on the cluster path.
pub fn cluster_campaign_awards_caps_and_budget<S: TxnStore + Clone>(open: &mut dyn FnMut() -> S) {
    campaign_awards_caps_and_budget(&mut || open_cluster(open(), 0));
}

fn campaign_awards_caps_and_budget<S: Store + Clone>(open: &mut dyn FnMut() -> Ledger<S>) {
    let l = open();
    seed(&l);
    let run = |c: Command| l.execute_blocking(c).expect("accepted");
    let day_cap = AwardLimits {
        member_day: Some(Points(150)),
        day: 20_000,
        month: 657,
        ..AwardLimits::default()
    };
    // A programme-funded double points (100 on 100), capped at 150 a day per member.
    let r = run(earn(
        "a1",
        1,
        100,
        vec![award(7, 100, Funder::Programme, day_cap)],
    ));
    assert_eq!(granted(&r), vec![(7, 100, None)]);
    assert_eq!(r.tx.imbalance(), (0, vec![]));
    let r = run(earn(
        "a2",
        1,
        100,
        vec![award(7, 100, Funder::Programme, day_cap)],
    ));
    assert_eq!(granted(&r), vec![(7, 50, Some(Limited::MemberDay))]);
    // The next day has room again; another member has its own cap.
    let next_day = AwardLimits {
        day: 20_001,
        ..day_cap
    };
    let r = run(earn(
        "a3",
        1,
        100,
        vec![award(7, 100, Funder::Programme, next_day)],
    ));
    assert_eq!(granted(&r), vec![(7, 100, None)]);
    let r = run(earn(
        "a4",
        2,
        100,
        vec![award(7, 100, Funder::Programme, day_cap)],
    ));
    assert_eq!(granted(&r), vec![(7, 100, None)]);
    assert_eq!(awarded(&l, 7), 350);
    assert_eq!(
        l.balance(MemberId(1))
            .expect("read")
            .expect("member")
            .posted,
        Points(550)
    );

    // A partner-funded bonus is billed to the funding partner at its issuance price.
    let before = l
        .account_balance(AccountId::PartnerIssuance(P2))
        .expect("read");
    let r = run(earn(
        "f1",
        3,
        10,
        vec![award(8, 40, Funder::Partner(P2), AwardLimits::default())],
    ));
    assert_eq!(granted(&r), vec![(8, 40, None)]);
    let after = l
        .account_balance(AccountId::PartnerIssuance(P2))
        .expect("read");
    assert_eq!(after.points.0 - before.points.0, -40);
    let owed =
        |b: &ledger::core::state::Balance| b.money.first().map(|(_, v)| *v).unwrap_or_default();
    assert_eq!(
        owed(&after) - owed(&before),
        Decimal::new(40, 2),
        "40 points at 0.01 EUR"
    );

    // A budget of 250: the third award gets what is left, the fourth nothing.
    let budget = AwardLimits {
        budget: Some(Points(250)),
        refund_returns_room: true,
        ..AwardLimits::default()
    };
    let got: Vec<_> = (0..4)
        .map(|i| {
            granted(&run(earn(
                &format!("b{i}"),
                1 + i % 3,
                10,
                vec![award(9, 100, Funder::Programme, budget)],
            )))[0]
                .1
        })
        .collect();
    assert_eq!(got, vec![100, 100, 50, 0]);
    assert_eq!(awarded(&l, 9), 250);

    // A full reversal of the 100-point award gives its room back (the campaign says so) and
    // takes the award back from the member with the base points.
    let orig = l
        .transaction_by_key(&IdemKey::partner(P1, "b0"))
        .expect("read")
        .expect("b0");
    let m1 = l
        .balance(MemberId(1))
        .expect("read")
        .expect("member")
        .posted;
    let rev = run(Command::Reverse {
        key: IdemKey::partner(P1, "rb0"),
        original: orig.id,
        points: Some(Points(5)),
    });
    match &rev.tx.kind {
        TxKind::Reversal { awards, .. } => {
            assert_eq!((awards[0].points, awards[0].room), (Points(50), Points(50)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        awarded(&l, 9),
        200,
        "half the award reversed, its room returned"
    );
    let m1_after = l
        .balance(MemberId(1))
        .expect("read")
        .expect("member")
        .posted;
    assert_eq!(m1.0 - m1_after.0, 55, "5 base points and 50 of the award");
    let r = run(earn(
        "b9",
        2,
        10,
        vec![award(9, 100, Funder::Programme, budget)],
    ));
    assert_eq!(granted(&r), vec![(9, 50, Some(Limited::Budget))]);

    // First earn at a partner: member 3 has earned at partner 1 already, member 2 at partner 2 not.
    let first = AwardRequest {
        requires: MemberCondition {
            first_earn_at_partner: true,
            ..MemberCondition::default()
        },
        ..award(10, 500, Funder::Programme, AwardLimits::default())
    };
    let r = run(earn("first-3", 3, 10, vec![first.clone()]));
    assert_eq!(granted(&r), vec![(10, 0, Some(Limited::Condition))]);
    let r = run(Command::Earn {
        key: IdemKey::partner(P2, "first-2"),
        member: MemberId(2),
        partner: P2,
        points: Points(10),
        bonus: Points(0),
        awards: vec![first.clone()],
        guard: None,
        purchase: None,
    });
    assert_eq!(granted(&r), vec![(10, 500, None)]);
    let r = run(Command::Earn {
        key: IdemKey::partner(P2, "first-2-again"),
        member: MemberId(2),
        partner: P2,
        points: Points(10),
        bonus: Points(0),
        awards: vec![first],
        guard: None,
        purchase: None,
    });
    assert_eq!(granted(&r), vec![(10, 0, Some(Limited::Condition))]);

    // Malformed awards are refused and change nothing.
    let twice = vec![
        award(11, 1, Funder::Programme, AwardLimits::default()),
        award(11, 1, Funder::Programme, AwardLimits::default()),
    ];
    assert!(matches!(
        rejected(l.execute_blocking(earn("bad-1", 1, 10, twice))),
        Rejection::AwardsMalformed { .. }
    ));
    assert!(matches!(
        rejected(l.execute_blocking(earn(
            "bad-2",
            1,
            10,
            vec![award(11, -1, Funder::Programme, AwardLimits::default())]
        ))),
        Rejection::AwardOutOfRange { .. }
    ));
    assert!(matches!(
        rejected(l.execute_blocking(earn(
            "bad-3",
            1,
            10,
            vec![award(
                11,
                1,
                Funder::Partner(PartnerId(99)),
                AwardLimits::default()
            )]
        ))),
        Rejection::UnknownPartner(PartnerId(99))
    ));
    assert_eq!(awarded(&l, 11), 0);

    guard_refuses_and_caps(&l);
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit passes");
    l.shutdown();

    // Counters survive a restart.
    let l = open();
    assert_eq!(awarded(&l, 9), 250);
    assert_eq!(awarded(&l, 7), 350);
    let r = l
        .execute_blocking(earn(
            "b10",
            2,
            10,
            vec![award(9, 100, Funder::Programme, budget)],
        ))
        .expect("earn");
    assert_eq!(granted(&r), vec![(9, 0, Some(Limited::Budget))]);
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit after reopen");
    l.shutdown();
}

fn guarded(reference: &str, points: i64, bonus: i64, sale: i64, action: GuardAction) -> Command {
    Command::Earn {
        key: IdemKey::partner(P1, reference),
        member: MemberId(1),
        partner: P1,
        points: Points(points),
        bonus: Points(0),
        awards: vec![award(20, bonus, Funder::Programme, AwardLimits::default())],
        guard: Some(Box::new(GuardRequest {
            sale: Decimal::from(sale),
            currency: "EUR".parse().expect("EUR"),
            checks: vec![GuardCheck {
                scope: GuardScope::Partner(P1),
                period: 10_671,
                currency: Some("EUR".parse().expect("EUR")),
                ceiling: Decimal::new(5, 2),
                action,
                thresholds: vec![80, 100],
            }],
        })),
        purchase: None,
    }
}

/// The guard at 5% of sales, points at 0.01 EUR: a 100 EUR sale may carry 500 points.
fn guard_refuses_and_caps<S: Store + Clone>(l: &Ledger<S>) {
    let key = GuardKey {
        scope: GuardScope::Partner(P1),
        period: 10_671,
    };
    let totals = || match l.counter(&CounterKey::Guard(key)).expect("read") {
        Some(Counter::Guard(t)) => t,
        None => Default::default(),
        other => panic!("{other:?}"),
    };
    // 300 + 100 points on 100 EUR: 4 EUR of 5 allowed; 80% crossed.
    let r = l
        .execute_blocking(guarded("g1", 300, 100, 100, GuardAction::Refuse))
        .expect("within the ceiling");
    match &r.tx.kind {
        TxKind::Earn { guard: Some(g), .. } => {
            assert_eq!(g.value, Decimal::new(400, 2));
            assert_eq!(g.crossed, vec![(key, 80)]);
        }
        other => panic!("{other:?}"),
    }
    // 100 + 200 points on 20 EUR: the period would be at 7 EUR for 120 EUR (5.8%): refused.
    assert_eq!(
        rejected(l.execute_blocking(guarded("g2", 100, 200, 20, GuardAction::Refuse))),
        Rejection::BudgetCeiling { key }
    );
    assert_eq!(
        (totals().sales, totals().value),
        (Decimal::from(100), Decimal::new(400, 2))
    );
    // The same earn with the cap action posts its 100 base points only (5.0 EUR on 120 EUR).
    let r = l
        .execute_blocking(guarded("g3", 100, 200, 20, GuardAction::BaseOnly))
        .expect("capped");
    assert_eq!(granted(&r), vec![(20, 0, Some(Limited::Guard))]);
    let t = totals();
    assert_eq!(
        (t.sales, t.value),
        (Decimal::from(120), Decimal::new(500, 2))
    );
    assert_eq!(t.crossed, vec![80], "100% of 6 EUR not reached");
    // Reversing g1 in full takes its sale and value out of the period.
    let orig = l
        .transaction_by_key(&IdemKey::partner(P1, "g1"))
        .expect("read")
        .expect("g1");
    l.execute_blocking(Command::Reverse {
        key: IdemKey::partner(P1, "rg1"),
        original: orig.id,
        points: None,
    })
    .expect("reversal");
    let t = totals();
    assert_eq!(
        (t.sales, t.value),
        (Decimal::from(20), Decimal::new(100, 2))
    );
}

/// Many earns at once against one campaign budget never award more than the budget, on the
/// single writer.
pub fn ledger_budget_is_never_overspent_under_concurrency<S: Store + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let l = Ledger::open(open(), LedgerConfig::default()).expect("open ledger");
    seed(&l);
    budget_race(&[&l]);
    l.shutdown();
}

/// The same with two cluster processes on one store, racing.
pub fn cluster_budget_is_never_overspent_across_processes<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let store = open();
    let a = open_cluster(store.clone(), 0);
    let b = open_cluster(store, 1);
    seed(&a);
    budget_race(&[&a, &b]);
    a.shutdown();
    b.shutdown();
}

fn budget_race<S: Store + Clone>(ledgers: &[&Ledger<S>]) {
    let limits = AwardLimits {
        budget: Some(Points(1_000)),
        member_day: Some(Points(400)),
        day: 1,
        month: 1,
        ..AwardLimits::default()
    };
    // 90 earns of 30 bonus points each ask for 2,700: the budget is 1,000, and each member
    // may take 400 a day.
    let pending: Vec<_> = (0..90u64)
        .map(|i| {
            let l = ledgers[i as usize % ledgers.len()];
            let cmd = earn(
                &format!("race-{i}"),
                1 + i % 3,
                5,
                vec![award(30, 30, Funder::Programme, limits)],
            );
            l.submit(cmd).expect("submit")
        })
        .collect();
    let mut total = 0;
    let mut per_member = [0i64; 3];
    for (i, p) in pending.into_iter().enumerate() {
        match p.blocking_recv().expect("answer") {
            Ok(r) => {
                let g = granted(&r)[0].1;
                total += g;
                per_member[i % 3] += g;
            }
            Err(ledger::LedgerError::Contended { .. }) => {}
            Err(e) => panic!("earn {i}: {e}"),
        }
    }
    assert!(total <= 1_000, "awarded {total} over a budget of 1,000");
    assert!(
        per_member.iter().all(|&m| m <= 400),
        "a member over its cap: {per_member:?}"
    );
    assert_eq!(
        total,
        awarded(ledgers[0], 30),
        "grants and the counter agree"
    );
    assert_eq!(total, 1_000, "the budget is used to the last point");
    let promotions = ledgers[0]
        .account_balance(AccountId::Promotions)
        .expect("read")
        .points;
    assert_eq!(promotions, Points(-1_000));
    ledger::audit::audit(&ledgers[0].read_snapshot().expect("snapshot")).expect("audit");
}
