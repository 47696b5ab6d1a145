//! Campaign awards on an earn, granted under their limits, and the points budget guard.
//!
//! An award gets what its rule computed, less whatever its tightest limit leaves: the member's
//! day, month and campaign caps, then the campaign budget. Awards are granted in the order the
//! earn lists them (the gateway's stacking order), each seeing the ones before it.

use super::earn::EarnCmd;
use crate::core::programme::{
    whole_days, AwardRequest, Funder, Granted, GuardAction, GuardCheck, GuardKey, GuardRecord,
    GuardRequest, Limited, MemberCondition, AWARDS_PER_EARN_MAX, GUARD_CHECKS_MAX,
    GUARD_THRESHOLDS_MAX,
};
use crate::core::rejection::Rejection;
use crate::core::state::{MemberState, State};
use crate::core::types::{Currency, Money, Points, Timestamp};
use rust_decimal::Decimal;

/// Grants each award of `e` what its limits leave.
pub(super) fn grant(
    s: &State,
    e: &EarnCmd<'_>,
    member: &MemberState,
    at: Timestamp,
) -> Result<Vec<Granted>, Rejection> {
    check_awards(s, e.awards)?;
    let mut out = Vec::with_capacity(e.awards.len());
    for a in e.awards {
        let price = match a.funder {
            Funder::Programme => Money::new(Decimal::ZERO, s.contract(e.partner)?.currency),
            Funder::Partner(f) => {
                let c = s.contract(f)?;
                Money::new(c.issuance_price_per_point, c.currency)
            }
        };
        let (points, limited) = if condition_holds(s, &a.requires, e, member, at) {
            room(s, e, a)
        } else {
            (Points::ZERO, Some(Limited::Condition))
        };
        out.push(Granted {
            campaign: a.campaign,
            version: a.version,
            asked: a.points,
            points,
            limited,
            funder: a.funder,
            price_per_point: price,
            day: a.limits.day,
            month: a.limits.month,
            refund_returns_room: a.limits.refund_returns_room,
        });
    }
    Ok(out)
}

fn check_awards(s: &State, awards: &[AwardRequest]) -> Result<(), Rejection> {
    if awards.len() > AWARDS_PER_EARN_MAX {
        return Err(Rejection::AwardsMalformed {
            max: AWARDS_PER_EARN_MAX,
        });
    }
    let max = Points(s.policy.points_per_command_max);
    for (i, a) in awards.iter().enumerate() {
        if awards[..i].iter().any(|b| b.campaign == a.campaign) {
            return Err(Rejection::AwardsMalformed {
                max: AWARDS_PER_EARN_MAX,
            });
        }
        if a.points.0 < 0 || a.points > max {
            return Err(Rejection::AwardOutOfRange {
                campaign: a.campaign,
                max,
            });
        }
    }
    Ok(())
}

fn condition_holds(
    s: &State,
    c: &MemberCondition,
    e: &EarnCmd<'_>,
    member: &MemberState,
    at: Timestamp,
) -> bool {
    if c.first_earn_at_partner && s.has_earned_at(e.member, e.partner) {
        return false;
    }
    if c.tiers != 0 && c.tiers & (1u16 << member.tier().min(15)) == 0 {
        return false;
    }
    let days = whole_days(member.enrolled, at);
    c.enrolled_days_min.is_none_or(|min| days >= min)
        && c.enrolled_days_max.is_none_or(|max| days <= max)
}

/// What award `a` may still have: its points, less what the tightest limit leaves.
fn room(s: &State, e: &EarnCmd<'_>, a: &AwardRequest) -> (Points, Option<Limited>) {
    let used = s.campaign_use(e.member, a.campaign);
    let l = &a.limits;
    let limits = [
        (l.member_day, used.on_day(l.day), Limited::MemberDay),
        (l.member_month, used.in_month(l.month), Limited::MemberMonth),
        (l.member_total, used.total, Limited::MemberTotal),
        (l.budget, s.awarded(a.campaign), Limited::Budget),
    ];
    let mut points = a.points;
    let mut limited = None;
    for (cap, used, why) in limits {
        if let Some(cap) = cap {
            let left = Points((cap.0 - used.0).max(0));
            if left < points {
                points = left;
                limited = Some(why);
            }
        }
    }
    (points, limited)
}

/// What the guard decided for an earn.
pub(super) enum Guarded {
    /// Everything may be posted.
    Full(GuardRecord),
    /// Post the base points only.
    BaseOnly(GuardRecord),
}

/// Checks an earn worth `full` (with everything) or `base` (base points only) against every
/// ceiling that counts its currency.
pub(super) fn guard(
    s: &State,
    g: &GuardRequest,
    currency: Currency,
    base: Decimal,
    full: Decimal,
) -> Result<Guarded, Rejection> {
    check_guard(g)?;
    let checks: Vec<&GuardCheck> = g
        .checks
        .iter()
        .filter(|c| g.currency == currency && c.currency.is_none_or(|x| x == currency))
        .collect();
    let over = |value: Decimal| {
        checks.iter().copied().find(|c| {
            let t = s.guard(key(c));
            t.value + value > c.ceiling * (t.sales + g.sale)
        })
    };
    let mut value = full;
    let mut base_only = false;
    if let Some(c) = over(full) {
        match c.action {
            GuardAction::Refuse => return Err(Rejection::BudgetCeiling { key: key(c) }),
            GuardAction::BaseOnly => {
                value = base;
                base_only = true;
            }
        }
    }
    let mut crossed = Vec::new();
    for c in &checks {
        let t = s.guard(key(c));
        let limit = |pct: u8| c.ceiling * Decimal::from(pct) / Decimal::from(100);
        for &pct in &c.thresholds {
            let reached = t.value + value >= limit(pct) * (t.sales + g.sale);
            if reached && !t.crossed.contains(&pct) && (t.value + value).is_sign_positive() {
                crossed.push((key(c), pct));
            }
        }
    }
    let rec = GuardRecord {
        sale: g.sale,
        value,
        keys: checks.iter().map(|c| key(c)).collect(),
        crossed,
    };
    Ok(if base_only {
        Guarded::BaseOnly(rec)
    } else {
        Guarded::Full(rec)
    })
}

/// Largest sale one earn may count: bounds the guard's decimal arithmetic.
const SALE_MAX: i64 = 1_000_000_000_000_000;
/// Largest ceiling (value of points per unit of sales).
const CEILING_MAX: i64 = 100;

fn key(c: &GuardCheck) -> GuardKey {
    GuardKey {
        scope: c.scope,
        period: c.period,
    }
}

fn check_guard(g: &GuardRequest) -> Result<(), Rejection> {
    if g.sale.is_sign_negative() || g.sale > Decimal::from(SALE_MAX) {
        return Err(Rejection::GuardMalformed("sale must be 0 to 10^15"));
    }
    if g.checks.len() > GUARD_CHECKS_MAX {
        return Err(Rejection::GuardMalformed("too many checks"));
    }
    for (i, c) in g.checks.iter().enumerate() {
        if c.ceiling.is_sign_negative() || c.ceiling > Decimal::from(CEILING_MAX) {
            return Err(Rejection::GuardMalformed("ceiling must be 0 to 100"));
        }
        if c.thresholds.len() > GUARD_THRESHOLDS_MAX || c.thresholds.contains(&0) {
            return Err(Rejection::GuardMalformed(
                "at most 4 thresholds, each 1 to 255 percent",
            ));
        }
        if g.checks[..i].iter().any(|d| key(d) == key(c)) {
            return Err(Rejection::GuardMalformed("each period once"));
        }
    }
    Ok(())
}
