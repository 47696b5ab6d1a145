//! Reversals: undo all or part of an earlier earn (a refund; the bonus in proportion, a
//! clawback only where the policy allows it) or burn (a cancelled redemption; the lots it drew
//! on come back).

use super::{visible_to, DecideError};
use crate::core::builder::Builder;
use crate::core::model::{IdemKey, LotId, Scope, Transaction, TxKind};
use crate::core::programme::{AwardBack, Funder, Granted, GuardBack, GuardRecord};
use crate::core::rejection::Rejection;
use crate::core::state::{History, Reversed, State};
use crate::core::tiers::TierMark;
use crate::core::types::{
    AccountId, ClawbackPolicy, MemberId, Money, PartnerId, Points, Timestamp, TxId,
};
use rust_decimal::Decimal;

pub(super) fn reverse<H: History + ?Sized>(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    original: TxId,
    points: Option<Points>,
    history: &H,
) -> Result<TxKind, DecideError<H::Error>> {
    let orig = history
        .transaction(original)
        .map_err(DecideError::Failed)?
        .ok_or(Rejection::UnknownTransaction(original))?;
    let done = s.reversed.get(&original).cloned().unwrap_or_default();
    match &orig.kind {
        TxKind::Earn {
            member,
            partner,
            points: issued,
            bonus,
            price_per_point,
            awards,
            guard,
            tier,
        } => {
            visible_to(key, *partner, original)?;
            let lot = LotId { tx: original, n: 0 };
            // The lot's expiry places it in the member's lots (none: the earn credited none).
            let credited = orig.lots.iter().find(|c| c.lot == lot);
            let earned = Earned {
                original,
                lot: (lot, credited.and_then(|c| c.expires_at)),
                member: *member,
                partner: *partner,
                issued: *issued,
                bonus: *bonus,
                price: *price_per_point,
                awards,
                guard: guard.as_deref(),
                tier: tier.as_deref().map(|t| t.0),
            };
            Ok(reverse_earn(s, b, &earned, done, points)?)
        }
        TxKind::Burn {
            member,
            partner,
            points: burned,
            price_per_point,
            ..
        } => {
            let burn = (*member, *partner, *burned, *price_per_point);
            Ok(reverse_burn(s, b, key, &orig, burn, done.points, points)?)
        }
        // A returned voucher gives its points back; the unit stays issued.
        TxKind::Redeemed(r) => {
            let burn = (r.member, r.partner, r.points, r.price_per_point);
            Ok(reverse_burn(s, b, key, &orig, burn, done.points, points)?)
        }
        // A partner cannot see transactions that are not its earns or burns.
        _ if matches!(key.scope, Scope::Partner(_)) => {
            Err(Rejection::UnknownTransaction(original).into())
        }
        _ => Err(Rejection::NotReversible(original).into()),
    }
}

/// A burn a reversal undoes: its member, partner, points and reimbursement price.
type Burned = (MemberId, PartnerId, Points, Money);

/// Undoes `points` (all that is left: `None`) of burn `orig`, of which `done` were undone
/// before: the lots it drew on come back, and the partner's reimbursement with them.
fn reverse_burn(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    orig: &Transaction,
    (member, partner, burned, price): Burned,
    done: Points,
    points: Option<Points>,
) -> Result<TxKind, Rejection> {
    let original = orig.id;
    visible_to(key, partner, original)?;
    let remaining = Points(burned.0 - done.0);
    let n = amount(s, points, remaining)?;
    s.require_unmerged(member)?;
    let redemption = AccountId::PartnerRedemption(partner);
    b.restore(member, redemption, orig, done, n)?;
    b.money(redemption, AccountId::Float, n, price);
    Ok(TxKind::Reversal {
        original,
        member,
        partner,
        points: n,
        bonus: Points::ZERO,
        clawback: Points::ZERO,
        awards: Vec::new(),
        guard: None,
        tier: None,
    })
}

/// The earn a reversal undoes.
struct Earned<'a> {
    original: TxId,
    /// The lot the earn credited, and its expiry.
    lot: (LotId, Option<Timestamp>),
    member: MemberId,
    partner: PartnerId,
    issued: Points,
    bonus: Points,
    price: Money,
    awards: &'a [Granted],
    guard: Option<&'a GuardRecord>,
    tier: Option<TierMark>,
}

/// The share of `whole` that reversing `n` of `issued` points takes back, when `already` were
/// reversed before: the difference of the cumulative shares, so shares sum to `whole` exactly.
fn share(whole: i64, issued: Points, already: Points, n: Points) -> Points {
    let upto = |p: i64| (i128::from(whole) * i128::from(p)) / i128::from(issued.0);
    let s = upto(already.0 + n.0) - upto(already.0);
    Points(i64::try_from(s).expect("a share of an amount fits the amount"))
}

/// Undoes `n` of an earn's points (all that remain when `points` is `None`), and the bonus in
/// proportion; the last reversal takes what is left of the bonus. A member short of the points
/// is taken below zero only where the policy allows a clawback.
fn reverse_earn(
    s: &State,
    b: &mut Builder<'_>,
    e: &Earned<'_>,
    done: Reversed,
    points: Option<Points>,
) -> Result<TxKind, Rejection> {
    let remaining = Points(e.issued.0 - done.points.0);
    let n = amount(s, points, remaining)?;
    let bonus_n = if n == remaining {
        Points(e.bonus.0 - done.bonus.0)
    } else {
        share(e.bonus.0, e.issued, done.points, n)
    };
    let mut backs = Vec::with_capacity(e.awards.len());
    for (i, g) in e.awards.iter().enumerate() {
        let before = done.awards.get(i).copied().unwrap_or_default();
        let p = if n == remaining {
            Points(g.points.0 - before.0)
        } else {
            share(g.points.0, e.issued, done.points, n)
        };
        backs.push(AwardBack {
            campaign: g.campaign,
            version: g.version,
            points: p,
            funder: g.funder,
            price_per_point: g.price_per_point,
            room: if g.refund_returns_room {
                p
            } else {
                Points::ZERO
            },
            day: g.day,
            month: g.month,
        });
    }
    let awarded: i64 = backs.iter().map(|a| a.points.0).sum();
    let total = Points(n.0 + bonus_n.0 + awarded);
    let available = s.require_unmerged(e.member)?.available().0.max(0);
    let shortfall = Points((total.0 - available).max(0));
    if shortfall.is_positive() && s.policy.clawback == ClawbackPolicy::Reject {
        return Err(Rejection::ClawbackRejected { shortfall });
    }
    let lot = e.lot;
    let issuance = AccountId::PartnerIssuance(e.partner);
    b.take_for_reversal(e.member, lot, issuance, n)?;
    b.take_for_reversal(e.member, lot, AccountId::Promotions, bonus_n)?;
    b.money(AccountId::Float, issuance, n, e.price);
    for a in &backs {
        match a.funder {
            Funder::Programme => {
                b.take_for_reversal(e.member, lot, AccountId::Promotions, a.points)?
            }
            Funder::Partner(f) => {
                let to = AccountId::PartnerIssuance(f);
                b.take_for_reversal(e.member, lot, to, a.points)?;
                b.money(AccountId::Float, to, a.points, a.price_per_point);
            }
        }
    }
    let guard = e.guard.map(|g| {
        let sale_share = |p: i64| g.sale * Decimal::from(p) / Decimal::from(e.issued.0);
        Box::new(GuardBack {
            sale: sale_share(done.points.0 + n.0) - sale_share(done.points.0),
            value: Decimal::from(total.0) * e.price.amount,
            keys: g.keys.clone(),
        })
    });
    Ok(TxKind::Reversal {
        original: e.original,
        member: e.member,
        partner: e.partner,
        points: n,
        bonus: bonus_n,
        clawback: shortfall,
        awards: backs,
        guard,
        tier: e.tier.map(|m| TierMark {
            month: m.month,
            qualifying: -if n == remaining {
                m.qualifying - share(m.qualifying, e.issued, Points(0), done.points).0
            } else {
                share(m.qualifying, e.issued, done.points, n).0
            },
        }),
    })
}

/// The points a reversal takes: what was asked, or all that remains of the original.
fn amount(s: &State, requested: Option<Points>, remaining: Points) -> Result<Points, Rejection> {
    let n = requested.unwrap_or(remaining);
    if remaining.0 <= 0 {
        return Err(Rejection::ReversalExceedsOriginal {
            remaining,
            requested: n,
        });
    }
    s.check_points(n)?;
    if n > remaining {
        return Err(Rejection::ReversalExceedsOriginal {
            remaining,
            requested: n,
        });
    }
    Ok(n)
}
