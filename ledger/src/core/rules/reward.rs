//! Catalogue rewards redeemed under their stock, per-member limit and tier eligibility, and
//! points granted from the programme or a partner with their origin.

use super::require_operator;
use crate::core::builder::Builder;
use crate::core::model::{IdemKey, TxKind};
use crate::core::programme::{CounterKey, Funder};
use crate::core::rejection::Rejection;
use crate::core::rewards::{Grant, GrantOrigin, Redemption, RewardClaim, GRANT_NOTE_LEN_MAX};
use crate::core::state::State;
use crate::core::types::{AccountId, MemberId, Money, PartnerId, Points};

/// Burns the reward's price at the fulfilling partner, when a unit is left, the member has
/// fewer than its limit and its tier is one the reward is offered at.
pub(super) fn redeem(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    member: MemberId,
    partner: PartnerId,
    points: Points,
    claim: &RewardClaim,
) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    s.check_points(points)?;
    let contract = s.contract(partner)?;
    let price = Money::new(contract.redemption_price_per_point, contract.currency);
    let own = s.require_active(member)?;
    let r = claim.reward;
    if claim.tiers != 0 && claim.tiers & (1u16 << own.tier().min(15)) == 0 {
        return Err(Rejection::RewardNotEligible { member, reward: r });
    }
    let issued = s.units(CounterKey::Reward(r));
    if claim.stock.is_some_and(|stock| issued >= stock) {
        return Err(Rejection::OutOfStock { reward: r, issued });
    }
    let member_issued = s.units(CounterKey::RewardMember(member, r));
    if let Some(max) = claim.member_max.filter(|m| member_issued >= *m) {
        return Err(Rejection::RewardLimit {
            member,
            reward: r,
            max,
        });
    }
    s.require_available(member, points, b.at())?;
    let dest = AccountId::PartnerRedemption(partner);
    b.debit(member, dest, points)?;
    b.money(AccountId::Float, dest, points, price);
    Ok(TxKind::Redeemed(Box::new(Redemption {
        member,
        partner,
        points,
        price_per_point: price,
        claim: *claim,
        issued: issued + 1,
        member_issued: member_issued + 1,
    })))
}

/// Credits `points` from the funder into a new lot (dated by the expiry policy, or the funding
/// partner's contract), billed to a funding partner at its issuance price.
pub(super) fn grant(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    member: MemberId,
    points: Points,
    funder: Funder,
    origin: &GrantOrigin,
) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    s.check_points(points)?;
    if origin.note.trim().is_empty() || origin.note.len() > GRANT_NOTE_LEN_MAX {
        return Err(Rejection::GrantNote {
            len_max: GRANT_NOTE_LEN_MAX,
        });
    }
    let (source, price, contract_expiry) = match funder {
        Funder::Programme => (AccountId::Promotions, None, None),
        Funder::Partner(p) => {
            let c = s.contract(p)?;
            let price = Money::new(c.issuance_price_per_point, c.currency);
            (
                AccountId::PartnerIssuance(p),
                Some(price),
                c.lot_expiry(b.at()),
            )
        }
    };
    s.require_active(member)?;
    let expiry = match &s.expiry {
        Some(p) => p.lot_expiry(b.at()),
        None => contract_expiry,
    };
    b.credit(member, source, points, expiry)?;
    if let Some(price) = price {
        b.money(source, AccountId::Float, points, price);
    }
    Ok(TxKind::Granted(Box::new(Grant {
        member,
        points,
        funder,
        price_per_point: price,
        origin: origin.clone(),
    })))
}
