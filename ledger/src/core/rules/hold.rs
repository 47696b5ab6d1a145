//! Holds: a pending burn, captured in full or in part, voided by the partner, or voided by the
//! ledger itself at its timeout (a void under the system scope records `Expired`).

use super::require_partner;
use crate::core::builder::Builder;
use crate::core::model::{HoldEnd, IdemKey, Scope, TxKind};
use crate::core::rejection::Rejection;
use crate::core::state::State;
use crate::core::types::{AccountId, MemberId, Money, PartnerId, Points, TxId};

pub(super) fn hold(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    member: MemberId,
    partner: PartnerId,
    points: Points,
    timeout_ms: u32,
) -> Result<TxKind, Rejection> {
    require_partner(key, partner)?;
    s.check_points(points)?;
    s.contract(partner)?;
    if timeout_ms == 0 || timeout_ms > s.policy.hold_timeout_ms_max {
        return Err(Rejection::HoldTimeoutOutOfRange {
            timeout_ms,
            max_ms: s.policy.hold_timeout_ms_max,
        });
    }
    s.require_active(member)?;
    s.require_available(member, points, b.at())?;
    b.touch(member);
    Ok(TxKind::Hold {
        member,
        partner,
        points,
        expires_at: b.at().plus_ms(i64::from(timeout_ms)),
    })
}

pub(super) fn capture(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    hold: TxId,
    points: Option<Points>,
) -> Result<TxKind, Rejection> {
    let h = s.open_hold(key, hold)?;
    let amount = points.unwrap_or(h.points);
    s.check_points(amount)?;
    if amount > h.points {
        return Err(Rejection::CaptureExceedsHold {
            held: h.points,
            requested: amount,
        });
    }
    let m = s.require_active(h.member)?;
    // What the hold reserved, less what a clawback took or what expired since.
    let available = Points(s.spendable(m, b.at()).0 + h.points.0);
    if available < amount {
        return Err(Rejection::InsufficientPoints {
            available,
            requested: amount,
        });
    }
    let contract = s.contract(h.partner)?;
    let price = Money::new(contract.redemption_price_per_point, contract.currency);
    b.debit(h.member, AccountId::PartnerRedemption(h.partner), amount)?;
    b.money(
        AccountId::Float,
        AccountId::PartnerRedemption(h.partner),
        amount,
        price,
    );
    Ok(TxKind::Burn {
        member: h.member,
        partner: h.partner,
        points: amount,
        price_per_point: price,
        hold: Some(hold),
        released: Points(h.points.0 - amount.0),
    })
}

pub(super) fn void(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    hold: TxId,
) -> Result<TxKind, Rejection> {
    let h = s.open_hold(key, hold)?;
    b.touch(h.member);
    let end = if key.scope == Scope::System {
        HoldEnd::Expired
    } else {
        HoldEnd::Voided
    };
    Ok(TxKind::Void {
        hold,
        member: h.member,
        points: h.points,
        end,
    })
}
