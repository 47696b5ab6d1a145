//! Earn (partner issuance to a member, plus a bonus from promotions) and burn (a member's
//! points to the partner's redemption account).

use super::{awards, require_partner};
use crate::core::builder::Builder;
use crate::core::model::{IdemKey, TxKind};
use crate::core::programme::{AwardRequest, Funder, Granted, GuardRequest, Limited};
use crate::core::rejection::Rejection;
use crate::core::state::State;
use crate::core::tiers::{Purchase, TierChange, TierMark, TierState, TierWhy};
use crate::core::types::{AccountId, MemberId, Money, PartnerId, Points};
use rust_decimal::Decimal;

/// An earn command's fields.
pub(super) struct EarnCmd<'a> {
    pub key: &'a IdemKey,
    pub member: MemberId,
    pub partner: PartnerId,
    pub points: Points,
    pub bonus: Points,
    pub awards: &'a [AwardRequest],
    pub guard: Option<&'a GuardRequest>,
    pub purchase: Option<&'a Purchase>,
}

/// Issues the partner's points, the plain bonus and each campaign award as its limits allow,
/// all into one lot; the points budget guard refuses the earn or takes it down to its base
/// points when the ceiling would be crossed.
pub(super) fn earn(s: &State, b: &mut Builder<'_>, e: &EarnCmd<'_>) -> Result<TxKind, Rejection> {
    require_partner(e.key, e.partner)?;
    s.check_points(e.points)?;
    let max = Points(s.policy.points_per_command_max);
    if e.bonus.0 < 0 || e.bonus > max {
        return Err(Rejection::BonusOutOfRange {
            bonus: e.bonus,
            max,
        });
    }
    let contract = s.contract(e.partner)?;
    let member = s.require_active(e.member)?;
    let price = Money::new(contract.issuance_price_per_point, contract.currency);
    let mut granted = awards::grant(s, e, member, b.at())?;
    let mut bonus = e.bonus;
    let guard = match e.guard {
        Some(g) => {
            let base = Decimal::from(e.points.0) * price.amount;
            let full = Decimal::from(total(e.points, bonus, &granted)?.0) * price.amount;
            match awards::guard(s, g, contract.currency, base, full)? {
                awards::Guarded::Full(rec) => Some(rec),
                awards::Guarded::BaseOnly(rec) => {
                    bonus = Points::ZERO;
                    for a in &mut granted {
                        if a.points.is_positive() {
                            a.points = Points::ZERO;
                            a.limited = Some(Limited::Guard);
                        }
                    }
                    Some(rec)
                }
            }
        }
        None => None,
    };
    total(e.points, bonus, &granted)?;
    let expiry = match &s.expiry {
        Some(p) => p.lot_expiry(b.at()),
        None => contract.lot_expiry(b.at()),
    };
    let mut sources: smallvec::SmallVec<[(AccountId, Points); 4]> = smallvec::SmallVec::new();
    sources.push((AccountId::PartnerIssuance(e.partner), e.points));
    sources.push((AccountId::Promotions, bonus));
    for a in &granted {
        let from = match a.funder {
            Funder::Programme => AccountId::Promotions,
            Funder::Partner(f) => AccountId::PartnerIssuance(f),
        };
        sources.push((from, a.points));
    }
    b.credit_from(e.member, &sources, expiry)?;
    b.money(
        AccountId::PartnerIssuance(e.partner),
        AccountId::Float,
        e.points,
        price,
    );
    for a in &granted {
        if let Funder::Partner(f) = a.funder {
            b.money(
                AccountId::PartnerIssuance(f),
                AccountId::Float,
                a.points,
                a.price_per_point,
            );
        }
    }
    let tier = s.tiers.as_ref().and_then(|p| {
        let q = p.qualifying_earn(e.partner, e.points, e.purchase)?;
        qualify(s, member, q, b.at())
    });
    Ok(TxKind::Earn {
        member: e.member,
        partner: e.partner,
        points: e.points,
        bonus,
        price_per_point: price,
        awards: granted,
        guard: guard.map(Box::new),
        tier,
    })
}

/// Counts `qualifying` towards member `member`'s tier and makes the upgrade it reaches: at
/// once, to the highest level the window's total reaches. An earn and a flagged adjustment
/// qualify this way.
pub(super) fn qualify(
    s: &State,
    member: &crate::core::state::MemberState,
    qualifying: i64,
    at: crate::core::types::Timestamp,
) -> Option<Box<(TierMark, Option<TierChange>)>> {
    let p = s.tiers.as_ref()?;
    let none = TierState::default();
    let t = member.extras.as_ref().map_or(&none, |x| &x.tier);
    let target = p.target(p.window_total(t, at).saturating_add(qualifying));
    let change = (target > t.level).then_some(TierChange {
        from: t.level,
        to: target,
        why: TierWhy::Qualified,
        short: 0,
        reviewed: at,
        override_until: t.override_until,
    });
    Some(Box::new((
        TierMark {
            month: p.month(at),
            qualifying,
        },
        change,
    )))
}

/// Base, bonus and awards together, within the per-command limit.
fn total(points: Points, bonus: Points, granted: &[Granted]) -> Result<Points, Rejection> {
    let sum = granted
        .iter()
        .try_fold(points.0.checked_add(bonus.0), |acc, g| {
            Some(acc?.checked_add(g.points.0))
        })
        .flatten();
    sum.map(Points).ok_or(Rejection::PointsAboveLimit {
        points,
        max: Points(i64::MAX),
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
    let price = Money::new(contract.redemption_price_per_point, contract.currency);
    let own = s.require_active(member)?;
    let dest = AccountId::PartnerRedemption(partner);
    let available = s.spendable(own, b.at());
    if available >= points {
        b.debit(member, dest, points)?;
    } else if own.pool_members().is_empty() {
        return Err(Rejection::InsufficientPoints {
            available,
            requested: points,
        });
    } else {
        // A pool owner short of its own points spends its household's.
        super::pool::debit(s, b, member, dest, points, b.at())?;
    }
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
