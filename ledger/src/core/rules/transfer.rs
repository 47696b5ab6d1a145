//! Member-to-member transfers: the points carry their expiry dates; the programme's transfer
//! policy (if set) bounds them per transfer, day and year, and takes a fee.

use super::require_operator;
use crate::core::builder::Builder;
use crate::core::model::{IdemKey, TxKind};
use crate::core::rejection::Rejection;
use crate::core::state::State;
use crate::core::transfers::TransferPolicy;
use crate::core::types::{AccountId, MemberId, Points};

/// Longest consent attestation, in bytes (200 characters of any script).
pub const CONSENT_LEN_MAX: usize = 800;

/// A transfer command's fields.
pub(super) struct TransferCmd<'a> {
    pub from: MemberId,
    pub to: MemberId,
    pub points: Points,
    pub consent: Option<&'a str>,
}

pub(super) fn transfer(
    s: &State,
    b: &mut Builder<'_>,
    t: &TransferCmd<'_>,
) -> Result<TxKind, Rejection> {
    s.check_points(t.points)?;
    if t.from == t.to {
        return Err(Rejection::TransferToSelf);
    }
    if t.consent
        .is_some_and(|c| c.trim().is_empty() || c.len() > CONSENT_LEN_MAX)
    {
        return Err(Rejection::TransferConsent {
            len_max: CONSENT_LEN_MAX,
        });
    }
    s.require_active(t.to)?;
    let giver = s.require_active(t.from)?;
    let (fee, day, year) = match &s.transfers {
        Some(p) => {
            let (day, year) = p.day_and_year(b.at());
            let used = giver
                .extras
                .as_ref()
                .map(|x| x.transfers.used(day, year))
                .unwrap_or_default();
            check_limits(p, t.points, used)?;
            (p.fee, day, year)
        }
        None => (Points::ZERO, 0, 0),
    };
    let total = t
        .points
        .checked_add(fee)
        .ok_or(Rejection::BalanceOverflow { member: t.from })?;
    s.require_available(t.from, total, b.at())?;
    b.transfer(t.from, t.to, t.points)?;
    if fee.is_positive() {
        b.debit(t.from, AccountId::Fees, fee)?;
    }
    Ok(TxKind::Transfer {
        from: t.from,
        to: t.to,
        points: t.points,
        fee,
        day,
        year,
        consent: t.consent.map(str::to_string),
    })
}

fn check_limits(
    p: &TransferPolicy,
    points: Points,
    used: (Points, Points),
) -> Result<(), Rejection> {
    let over = |limit: &'static str, max: Points, already: Points| Rejection::TransferLimit {
        limit,
        max,
        used: already,
    };
    if let Some(min) = p.min.filter(|m| points < *m) {
        return Err(over("min", min, Points::ZERO));
    }
    if let Some(max) = p.max_per_transfer.filter(|m| points > *m) {
        return Err(over("max_per_transfer", max, Points::ZERO));
    }
    if let Some(max) = p.max_per_day.filter(|m| used.0 .0 + points.0 > m.0) {
        return Err(over("max_per_day", max, used.0));
    }
    if let Some(max) = p.max_per_year.filter(|m| used.1 .0 + points.0 > m.0) {
        return Err(over("max_per_year", max, used.1));
    }
    Ok(())
}

pub(super) fn set_policy(key: &IdemKey, p: &TransferPolicy) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    if !p.note.fits() {
        return Err(Rejection::ChangeNoteTooLong {
            author_max: crate::core::types::ChangeNote::AUTHOR_LEN_MAX,
            reason_max: crate::core::types::ChangeNote::REASON_LEN_MAX,
        });
    }
    let limits = [p.min, p.max_per_transfer, p.max_per_day, p.max_per_year];
    if p.tz().is_none() {
        return Err(Rejection::TransferPolicyInvalid(
            "time_zone is not an IANA time zone",
        ));
    }
    if p.fee.0 < 0 || limits.iter().flatten().any(|l| !l.is_positive()) {
        return Err(Rejection::TransferPolicyInvalid(
            "limits must be positive and the fee not negative",
        ));
    }
    Ok(TxKind::TransferPolicySet(Box::new(p.clone())))
}
