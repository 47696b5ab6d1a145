//! The expiry policy (operator) and the posting of expired points to breakage (the ledger
//! itself, when they fall due: see `State::due_expiries`).

use super::{require_operator, require_system};
use crate::core::builder::Builder;
use crate::core::expiry::{ExpiryPolicy, PolicyError};
use crate::core::model::{ExpiryReason, IdemKey, TxKind};
use crate::core::rejection::Rejection;
use crate::core::state::{Lot, State};
use crate::core::types::{MemberId, Points};

pub(super) fn set_policy(key: &IdemKey, policy: &ExpiryPolicy) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    policy.check().map_err(|e| {
        Rejection::ExpiryPolicyInvalid(match e {
            PolicyError::TimeZone => "time_zone is not an IANA time zone",
            PolicyError::Months => "months must be 1 to 1200",
            PolicyError::Activities => "inactivity must count at least one activity",
        })
    })?;
    Ok(TxKind::ExpiryPolicySet(policy.clone()))
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
    b.touch(member);
    let points = b.expire(member, &due);
    Ok(TxKind::Expire {
        member,
        points,
        reason: if points == Points::ZERO {
            ExpiryReason::Rescheduled
        } else {
            reason
        },
    })
}
