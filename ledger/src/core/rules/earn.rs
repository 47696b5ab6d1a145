//! Earn (partner issuance to a member, plus a bonus from promotions) and burn (a member's
//! points to the partner's redemption account).

use super::require_partner;
use crate::core::builder::Builder;
use crate::core::model::{IdemKey, TxKind};
use crate::core::rejection::Rejection;
use crate::core::state::State;
use crate::core::types::{AccountId, MemberId, Money, PartnerId, Points};

pub(super) fn earn(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    member: MemberId,
    partner: PartnerId,
    points: Points,
    bonus: Points,
) -> Result<TxKind, Rejection> {
    require_partner(key, partner)?;
    s.check_points(points)?;
    if bonus.0 < 0 || bonus.0 > s.policy.points_per_command_max {
        return Err(Rejection::BonusOutOfRange {
            bonus,
            max: Points(s.policy.points_per_command_max),
        });
    }
    let contract = s.contract(partner)?;
    s.require_member(member)?;
    let price = Money::new(contract.issuance_price_per_point, contract.currency);
    let expiry = contract.lot_expiry(b.at());
    b.credit(member, AccountId::PartnerIssuance(partner), points, expiry)?;
    b.credit(member, AccountId::Promotions, bonus, expiry)?;
    b.money(
        AccountId::PartnerIssuance(partner),
        AccountId::Float,
        points,
        price,
    );
    Ok(TxKind::Earn {
        member,
        partner,
        points,
        bonus,
        price_per_point: price,
    })
}

pub(super) fn burn(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    member: MemberId,
    partner: PartnerId,
    points: Points,
) -> Result<TxKind, Rejection> {
    require_partner(key, partner)?;
    s.check_points(points)?;
    let contract = s.contract(partner)?;
    s.require_available(member, points)?;
    let price = Money::new(contract.redemption_price_per_point, contract.currency);
    b.debit(member, AccountId::PartnerRedemption(partner), points)?;
    b.money(
        AccountId::Float,
        AccountId::PartnerRedemption(partner),
        points,
        price,
    );
    Ok(TxKind::Burn {
        member,
        partner,
        points,
        price_per_point: price,
        hold: None,
        released: Points::ZERO,
    })
}
