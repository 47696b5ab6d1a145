//! Catalogue rewards and grants on both write paths: a reward's stock is never oversold and a
//! member's limit never passed, even with redemptions racing across processes; a redemption is
//! a burn the fulfilling partner is reimbursed for, and its reversal returns the points; grants
//! from the programme or a partner post their origin and are billed to a funding partner.

use super::{open_cluster, rejected, seed};
use ledger::core::model::{Command, IdemKey};
use ledger::core::types::{AccountId, MemberId, PartnerId, Points};
use ledger::store::{Store, TxnStore};
use ledger::{
    Funder, GrantKind, GrantOrigin, Ledger, LedgerConfig, LedgerError, Rejection, RewardClaim,
    RewardId, TxKind,
};

/// Redemptions and grants on the single writer.
pub fn ledger_rewards_are_never_oversold_and_grants_post_their_origin<S: Store + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let l = Ledger::open(open(), LedgerConfig::default()).expect("open ledger");
    seed(&l);
    rewards(&[&l]);
    l.shutdown();
}

/// The same with two cluster processes on one store, racing for the last units.
pub fn cluster_rewards_are_never_oversold_and_grants_post_their_origin<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let store = open();
    let a = open_cluster(store.clone(), 0);
    let b = open_cluster(store, 1);
    seed(&a);
    rewards(&[&a, &b]);
    a.shutdown();
    b.shutdown();
}

fn grant(reference: &str, member: u64, points: i64, funder: Funder) -> Command {
    Command::Grant {
        key: IdemKey::operator(reference),
        member: MemberId(member),
        points: Points(points),
        funder,
        origin: Box::new(GrantOrigin {
            kind: GrantKind::Referral,
            id: 7,
            note: "referred member 7".into(),
        }),
    }
}

fn redeem(reference: &str, member: u64, claim: RewardClaim) -> Command {
    Command::Redeem {
        key: IdemKey::operator(reference),
        member: MemberId(member),
        partner: PartnerId(2),
        points: Points(100),
        claim,
    }
}

fn posted<S: Store + Clone>(l: &Ledger<S>, m: u64) -> i64 {
    l.balance(MemberId(m))
        .expect("read")
        .expect("member")
        .posted
        .0
}

fn rewards<S: Store + Clone>(ledgers: &[&Ledger<S>]) {
    let l = ledgers[0];
    // Grants: the programme's come from promotions; a partner's are billed at its issuance
    // price. Each carries its origin.
    let g = l
        .execute_blocking(grant("g-1", 1, 2_000, Funder::Programme))
        .expect("grant");
    assert!(
        matches!(&g.tx.kind, TxKind::Granted(x) if x.origin.kind == GrantKind::Referral && x.origin.id == 7),
        "{:?}",
        g.tx.kind
    );
    l.execute_blocking(grant("g-2", 2, 2_000, Funder::Partner(PartnerId(1))))
        .expect("partner grant");
    l.execute_blocking(grant("g-3", 3, 2_000, Funder::Programme))
        .expect("grant");
    assert_eq!(
        l.account_balance(AccountId::Promotions)
            .expect("read")
            .points,
        Points(-4_000)
    );
    let issuance = l
        .account_balance(AccountId::PartnerIssuance(PartnerId(1)))
        .expect("read");
    assert_eq!(issuance.points, Points(-2_000));
    assert_eq!(
        rejected(l.execute_blocking(Command::Grant {
            key: IdemKey::partner(PartnerId(1), "not-mine"),
            member: MemberId(1),
            points: Points(10),
            funder: Funder::Programme,
            origin: Box::new(GrantOrigin {
                kind: GrantKind::Code,
                id: 1,
                note: "code".into()
            }),
        })),
        Rejection::NeedsOperator
    );
    assert_eq!(
        rejected(l.execute_blocking(Command::Grant {
            key: IdemKey::operator("no-note"),
            member: MemberId(1),
            points: Points(10),
            funder: Funder::Programme,
            origin: Box::new(GrantOrigin {
                kind: GrantKind::Code,
                id: 1,
                note: " ".into()
            }),
        })),
        Rejection::GrantNote { len_max: 256 }
    );

    // 60 redemptions race for a stock of 7, each member limited to 3.
    let claim = RewardClaim {
        reward: RewardId(5),
        version: 1,
        stock: Some(7),
        member_max: Some(3),
        tiers: 0,
    };
    let pending: Vec<_> = (0..60u64)
        .map(|i| {
            let l = ledgers[i as usize % ledgers.len()];
            l.submit(redeem(&format!("race-{i}"), 1 + i % 3, claim))
                .expect("submit")
        })
        .collect();
    let mut issued = 0;
    let mut per_member = [0u32; 3];
    for (i, p) in pending.into_iter().enumerate() {
        match p.blocking_recv().expect("answer") {
            Ok(r) => {
                assert!(matches!(r.tx.kind, TxKind::Redeemed(_)));
                issued += 1;
                per_member[i % 3] += 1;
            }
            Err(LedgerError::Rejected(
                Rejection::OutOfStock { .. } | Rejection::RewardLimit { .. },
            ))
            | Err(LedgerError::Contended { .. }) => {}
            Err(e) => panic!("redemption {i}: {e}"),
        }
    }
    assert_eq!(
        issued, 7,
        "the stock is issued to the last unit, never past it"
    );
    assert!(
        per_member.iter().all(|&n| n <= 3),
        "a member over its limit: {per_member:?}"
    );
    let spent: i64 = (1..=3).map(|m| 2_000 - posted(l, m)).sum();
    assert_eq!(spent, 700, "seven rewards of 100 points");
    let redemption = l
        .account_balance(AccountId::PartnerRedemption(PartnerId(2)))
        .expect("read");
    assert_eq!(
        redemption.points,
        Points(700),
        "the fulfilling partner took the points"
    );
    let out = l.execute_blocking(redeem("one-more", 1, claim));
    assert!(
        matches!(
            out,
            Err(LedgerError::Rejected(
                Rejection::OutOfStock { issued: 7, .. } | Rejection::RewardLimit { .. }
            ))
        ),
        "{out:?}"
    );

    // A returned voucher: the burn reversed gives the points back; the unit stays issued.
    let more = RewardClaim {
        reward: RewardId(6),
        stock: Some(1),
        ..claim
    };
    let r = l.execute_blocking(redeem("r6", 1, more)).expect("redeem");
    let before = posted(l, 1);
    l.execute_blocking(Command::Reverse {
        key: IdemKey::operator("r6-back"),
        original: r.tx.id,
        points: None,
    })
    .expect("return");
    assert_eq!(posted(l, 1), before + 100);
    assert!(matches!(
        rejected(l.execute_blocking(redeem("r6-again", 2, more))),
        Rejection::OutOfStock { .. }
    ));

    // Tiers: a reward offered only above the base level is refused to a base member.
    let silver_only = RewardClaim {
        reward: RewardId(8),
        tiers: 0b10,
        ..claim
    };
    assert_eq!(
        rejected(l.execute_blocking(redeem("r8", 3, silver_only))),
        Rejection::RewardNotEligible {
            member: MemberId(3),
            reward: RewardId(8)
        }
    );
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
}
