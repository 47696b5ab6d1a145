//! Commands and set-ups the ledger's tests share.

#![allow(dead_code)]

use ledger::store::Store;
use ledger::*;
use rust_decimal::Decimal;

/// Partner `p`'s EUR contract: `issue` and `redeem` per point, points valid `days`.
pub fn contract(p: u32, issue: Decimal, redeem: Decimal, days: Option<u32>) -> Command {
    Command::SetContract {
        key: IdemKey::operator(format!("c{p}")),
        contract: Contract {
            partner: PartnerId(p),
            currency: "EUR".parse().expect("EUR"),
            issuance_price_per_point: issue,
            redemption_price_per_point: redeem,
            points_validity_days: days,
        },
    }
}

/// Enrols member `m` (key `m{m}`).
pub fn enrol(m: u64) -> Command {
    Command::Enrol {
        key: IdemKey::operator(format!("m{m}")),
        member: MemberId(m),
    }
}

/// Member `m` earns `points` at partner `p` under `reference`, with no bonus.
pub fn earn(p: u32, m: u64, points: i64, reference: &str) -> Command {
    Command::Earn {
        key: IdemKey::partner(PartnerId(p), reference),
        member: MemberId(m),
        partner: PartnerId(p),
        points: Points(points),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    }
}

/// Partner 1's contract (EUR 0.01 a point both ways, no expiry), then members 1 to 5 enrolled,
/// each earning 100 x its id (`e{m}`): one command per batch.
pub fn five_members_earning<S: Store>(l: &Ledger<S>) {
    let cent = Decimal::new(1, 2);
    l.execute_blocking(contract(1, cent, cent, None))
        .expect("contract");
    for m in 1..=5u64 {
        l.execute_blocking(enrol(m)).expect("enrol");
        l.execute_blocking(earn(1, m, 100 * m as i64, &format!("e{m}")))
            .expect("earn");
    }
}

/// The posted points of members `members`, summed.
pub fn posted_sum<S: Store>(l: &Ledger<S>, members: impl Iterator<Item = u64>) -> i64 {
    members
        .map(|m| {
            l.balance(MemberId(m))
                .expect("read")
                .expect("member")
                .posted
                .0
        })
        .sum()
}
