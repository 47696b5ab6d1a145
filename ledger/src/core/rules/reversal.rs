//! Reversals: undo all or part of an earlier earn (a refund; the bonus in proportion, a
//! clawback only where the policy allows it) or burn (a cancelled redemption; the lots it drew
//! on come back).

use super::{visible_to, DecideError};
use crate::core::builder::Builder;
use crate::core::model::{IdemKey, LotId, Scope, TxKind};
use crate::core::rejection::Rejection;
use crate::core::state::{History, Reversed, State};
use crate::core::types::{AccountId, ClawbackPolicy, MemberId, Money, PartnerId, Points, TxId};

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
    let done = s.reversed.get(&original).copied().unwrap_or_default();
    match &orig.kind {
        TxKind::Earn {
            member,
            partner,
            points: issued,
            bonus,
            price_per_point,
        } => {
            visible_to(key, *partner, original)?;
            let earned = Earned {
                original,
                member: *member,
                partner: *partner,
                issued: *issued,
                bonus: *bonus,
                price: *price_per_point,
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
            visible_to(key, *partner, original)?;
            let remaining = Points(burned.0 - done.points.0);
            let n = amount(s, points, remaining)?;
            s.require_member(*member)?;
            let redemption = AccountId::PartnerRedemption(*partner);
            b.restore(*member, redemption, &orig, done.points, n)?;
            b.money(redemption, AccountId::Float, n, *price_per_point);
            Ok(TxKind::Reversal {
                original,
                member: *member,
                partner: *partner,
                points: n,
                bonus: Points::ZERO,
                clawback: Points::ZERO,
            })
        }
        // A partner cannot see transactions that are not its earns or burns.
        _ if matches!(key.scope, Scope::Partner(_)) => {
            Err(Rejection::UnknownTransaction(original).into())
        }
        _ => Err(Rejection::NotReversible(original).into()),
    }
}

/// The earn a reversal undoes.
struct Earned {
    original: TxId,
    member: MemberId,
    partner: PartnerId,
    issued: Points,
    bonus: Points,
    price: Money,
}

/// Undoes `n` of an earn's points (all that remain when `points` is `None`), and the bonus in
/// proportion; the last reversal takes what is left of the bonus. A member short of the points
/// is taken below zero only where the policy allows a clawback.
fn reverse_earn(
    s: &State,
    b: &mut Builder<'_>,
    e: &Earned,
    done: Reversed,
    points: Option<Points>,
) -> Result<TxKind, Rejection> {
    let remaining = Points(e.issued.0 - done.points.0);
    let n = amount(s, points, remaining)?;
    let bonus_n = if n == remaining {
        Points(e.bonus.0 - done.bonus.0)
    } else {
        let share = (i128::from(e.bonus.0) * i128::from(n.0)) / i128::from(e.issued.0);
        Points(i64::try_from(share).expect("a share of a bonus fits the bonus"))
    };
    let total = Points(n.0 + bonus_n.0);
    let available = s.require_member(e.member)?.available().0.max(0);
    let shortfall = Points((total.0 - available).max(0));
    if shortfall.is_positive() && s.policy.clawback == ClawbackPolicy::Reject {
        return Err(Rejection::ClawbackRejected { shortfall });
    }
    let lot = LotId {
        tx: e.original,
        n: 0,
    };
    let issuance = AccountId::PartnerIssuance(e.partner);
    b.take_for_reversal(e.member, lot, issuance, n)?;
    b.take_for_reversal(e.member, lot, AccountId::Promotions, bonus_n)?;
    b.money(AccountId::Float, issuance, n, e.price);
    Ok(TxKind::Reversal {
        original: e.original,
        member: e.member,
        partner: e.partner,
        points: n,
        bonus: bonus_n,
        clawback: shortfall,
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
