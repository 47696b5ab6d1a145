//! The expiry policy (operator) and the posting of expired points to breakage (the ledger
//! itself, when they fall due: see `State::due_expiries`).

use super::{require_operator, require_system};
use crate::core::builder::Builder;
use crate::core::expiry::{ExpiryPolicy, PolicyError};
use crate::core::model::{ExpiryReason, IdemKey, TxKind};
use crate::core::rejection::Rejection;
use crate::core::state::{Lot, State};
use crate::core::tiers::{TierChange, TierPolicy, TierWhy};
use crate::core::types::{MemberId, Points, Timestamp};

pub(super) fn set_policy(key: &IdemKey, policy: &ExpiryPolicy) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    policy.check().map_err(|e| {
        Rejection::ExpiryPolicyInvalid(match e {
            PolicyError::TimeZone => "time_zone is not an IANA time zone",
            PolicyError::Months => "months must be 1 to 1200",
            PolicyError::Activities => "inactivity must count at least one activity",
        })
    })?;
    if !policy.note.fits() {
        return Err(Rejection::ChangeNoteTooLong {
            author_max: crate::core::types::ChangeNote::AUTHOR_LEN_MAX,
            reason_max: crate::core::types::ChangeNote::REASON_LEN_MAX,
        });
    }
    Ok(TxKind::ExpiryPolicySet(Box::new(policy.clone())))
}

/// Moves what has expired of `member`'s points to breakage: every lot past its date, or all
/// of them when the member has been inactive too long. When nothing is due any more (a policy
/// or tier change moved the date), the transaction moves nothing and reschedules.
pub(super) fn expire(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    member: MemberId,
) -> Result<TxKind, Rejection> {
    require_system(key)?;
    let m = s.require_member(member)?;
    let at = b.at();
    let reason = if s.inactive(m, at) {
        ExpiryReason::Inactivity
    } else {
        ExpiryReason::Age
    };
    let due: Vec<Lot> = m
        .lots
        .iter()
        .filter(|l| s.lot_expired(m, l, at))
        .copied()
        .collect();
    let tier = s.tiers.as_ref().and_then(|p| {
        let t = m
            .extras
            .as_ref()
            .map(|x| x.tier.clone())
            .unwrap_or_default();
        p.review(&t, at)
    });
    b.touch(member);
    let points = b.expire(member, &due);
    Ok(match (points, tier) {
        (Points::ZERO, Some(change)) => TxKind::TierChanged { member, change },
        (points, tier) => TxKind::Expire {
            member,
            points,
            reason: if points == Points::ZERO {
                ExpiryReason::Rescheduled
            } else {
                reason
            },
            tier: tier.map(Box::new),
        },
    })
}

/// Sets the tier policy.
pub(super) fn set_tier_policy(key: &IdemKey, p: &TierPolicy) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    p.check().map_err(Rejection::TierPolicyInvalid)?;
    if !p.note.fits() {
        return Err(Rejection::ChangeNoteTooLong {
            author_max: crate::core::types::ChangeNote::AUTHOR_LEN_MAX,
            reason_max: crate::core::types::ChangeNote::REASON_LEN_MAX,
        });
    }
    Ok(TxKind::TierPolicySet(Box::new(p.clone())))
}

/// Longest reason for a tier override, in bytes.
pub const TIER_REASON_LEN_MAX: usize = 2_000;

/// Holds `member` at tier `level` until `until`.
pub(super) fn set_tier(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    member: MemberId,
    level: u8,
    until: Timestamp,
    reason: &str,
) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    let p = s.tiers.as_ref().ok_or(Rejection::NoTierPolicy)?;
    if usize::from(level) > p.levels.len() {
        return Err(Rejection::TierOutOfRange {
            max: p.levels.len() as u8,
        });
    }
    if until <= b.at() {
        return Err(Rejection::TierOverrideInPast);
    }
    if reason.trim().is_empty() || reason.len() > TIER_REASON_LEN_MAX {
        return Err(Rejection::AdjustmentReason {
            len_max: TIER_REASON_LEN_MAX,
        });
    }
    let m = s.require_member(member)?;
    let t = m
        .extras
        .as_ref()
        .map(|x| x.tier.clone())
        .unwrap_or_default();
    b.touch(member);
    Ok(TxKind::TierChanged {
        member,
        change: TierChange {
            from: t.level,
            to: level,
            why: TierWhy::Override(reason.to_string()),
            short: 0,
            reviewed: t.reviewed.max(b.at()),
            override_until: Some(until),
        },
    })
}
