//! Operator adjustments: a correction in either direction, each with a reason and an operator.

use super::require_operator;
use crate::core::builder::Builder;
use crate::core::model::{IdemKey, TxKind};
use crate::core::rejection::Rejection;
use crate::core::state::State;
use crate::core::types::{AccountId, MemberId, Points, Timestamp, TxId};

/// Longest adjustment reason, in bytes (500 characters of any script).
pub const REASON_LEN_MAX: usize = 2_000;
/// Longest operator name on an adjustment, in bytes.
pub const OPERATOR_LEN_MAX: usize = 128;

/// An adjustment's fields.
pub(super) struct AdjustCmd<'a> {
    pub key: &'a IdemKey,
    pub member: MemberId,
    pub points: Points,
    pub reason: &'a str,
    pub operator: &'a str,
    pub qualifies: bool,
    pub corrects: Option<TxId>,
}

pub(super) fn adjust(
    s: &State,
    b: &mut Builder<'_>,
    a: &AdjustCmd<'_>,
) -> Result<TxKind, Rejection> {
    let AdjustCmd {
        key,
        member,
        points,
        reason,
        operator,
        qualifies,
        corrects,
    } = *a;
    require_operator(key)?;
    if let Some(c) = corrects.filter(|c| *c >= b.id()) {
        return Err(Rejection::CorrectsLater { corrects: c });
    }
    // `unsigned_abs`: `i64::MIN.abs()` would overflow.
    let max = Points(s.policy.points_per_command_max);
    if points.0 == 0 || points.0.unsigned_abs() > max.0.unsigned_abs() {
        return Err(Rejection::AdjustmentOutOfRange { points, max });
    }
    if reason.trim().is_empty() || reason.len() > REASON_LEN_MAX {
        return Err(Rejection::AdjustmentReason {
            len_max: REASON_LEN_MAX,
        });
    }
    if operator.trim().is_empty() || operator.len() > OPERATOR_LEN_MAX {
        return Err(Rejection::AdjustmentOperator {
            len_max: OPERATOR_LEN_MAX,
        });
    }
    let m = s.require_unmerged(member)?;
    let tier = match s.tiers.as_ref().filter(|_| qualifies) {
        Some(p) => p
            .qualifying_adjustment(points)
            .and_then(|q| super::earn::qualify(s, m, q, b.at())),
        None => None,
    };
    if points.0 > 0 {
        b.credit(member, AccountId::Adjustments, points, None)?;
    } else {
        let take = Points(-points.0);
        s.require_available(member, take, b.at())?;
        b.debit(member, AccountId::Adjustments, take)?;
    }
    Ok(TxKind::Adjust {
        member,
        points,
        reason: reason.to_string(),
        operator: operator.to_string(),
        tier,
        corrects,
    })
}

/// Longest period name, in bytes.
pub const PERIOD_LEN_MAX: usize = 32;

/// Closes the accounting period ending at `through` (exclusive): it must be over, and after the
/// last period closed.
pub(super) fn close_period(
    s: &State,
    b: &Builder<'_>,
    key: &IdemKey,
    period: &str,
    through: Timestamp,
) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    if period.trim().is_empty() || period.len() > PERIOD_LEN_MAX {
        return Err(Rejection::PeriodName {
            len_max: PERIOD_LEN_MAX,
        });
    }
    if through > b.at() {
        return Err(Rejection::PeriodNotOver { through });
    }
    if through <= s.closed_through {
        return Err(Rejection::PeriodClosed {
            closed_through: s.closed_through,
        });
    }
    Ok(TxKind::PeriodClosed {
        period: period.to_string(),
        through,
        from: s.closed_through,
    })
}
