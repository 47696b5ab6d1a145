//! Household pools: members combine their points under an owner, with their consent, and the
//! owner spends the pool. Points never move on joining or leaving: each member keeps its own
//! lots, so leaving takes a member's own points with it, and an owner leaving dissolves the
//! pool. A burn by an owner draws on its own points first, then on each member's in the order
//! they joined (soonest expiry first within each), all in one transaction.

use super::transfer::CONSENT_LEN_MAX;
use crate::core::builder::Builder;
use crate::core::model::{IdemKey, Scope, TxKind};
use crate::core::rejection::Rejection;
use crate::core::state::State;
use crate::core::transfers::{PoolLink, POOL_MEMBERS_MAX};
use crate::core::types::{AccountId, MemberId, Points, Timestamp};

fn require_partner_or_operator(key: &IdemKey) -> Result<(), Rejection> {
    match key.scope {
        Scope::Partner(_) | Scope::Operator => Ok(()),
        Scope::System => Err(Rejection::NeedsOperator),
    }
}

fn link(s: &State, m: MemberId) -> Result<&PoolLink, Rejection> {
    static NONE: PoolLink = PoolLink::None;
    let state = s.require_member(m)?;
    Ok(state.extras.as_deref().map_or(&NONE, |x| &x.pool))
}

pub(super) fn join(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    owner: MemberId,
    member: MemberId,
    consent: &str,
) -> Result<TxKind, Rejection> {
    require_partner_or_operator(key)?;
    if owner == member {
        return Err(Rejection::PoolWithSelf);
    }
    s.require_active(owner)?;
    s.require_active(member)?;
    if consent.trim().is_empty() || consent.len() > CONSENT_LEN_MAX {
        return Err(Rejection::TransferConsent {
            len_max: CONSENT_LEN_MAX,
        });
    }
    match link(s, owner)? {
        PoolLink::Member(_) => return Err(Rejection::PoolOwnerIsMember(owner)),
        PoolLink::Owner(v) if v.len() >= POOL_MEMBERS_MAX => {
            return Err(Rejection::PoolFull {
                max: POOL_MEMBERS_MAX,
            })
        }
        _ => {}
    }
    if !matches!(link(s, member)?, PoolLink::None) {
        return Err(Rejection::PoolTaken(member));
    }
    b.touch(owner);
    b.touch(member);
    Ok(TxKind::PoolJoined {
        owner,
        member,
        consent: consent.to_string(),
    })
}

pub(super) fn leave(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    member: MemberId,
) -> Result<TxKind, Rejection> {
    require_partner_or_operator(key)?;
    let (owner, members) = match link(s, member)? {
        PoolLink::None => return Err(Rejection::NotInPool(member)),
        PoolLink::Member(owner) => (*owner, vec![member]),
        PoolLink::Owner(v) => (member, v.to_vec()),
    };
    b.touch(owner);
    for m in &members {
        b.touch(*m);
    }
    Ok(TxKind::PoolLeft { owner, members })
}

/// Takes `points` from `owner`'s pool to `dest`: the owner's own spendable points first, then
/// each member's in the order they joined. Refused whole when the pool holds too few.
pub(super) fn debit(
    s: &State,
    b: &mut Builder<'_>,
    owner: MemberId,
    dest: AccountId,
    points: Points,
    at: Timestamp,
) -> Result<(), Rejection> {
    let o = s.require_member(owner)?;
    let mut takes = vec![(owner, s.spendable(o, at).0.max(0))];
    for m in o.pool_members() {
        takes.push((
            *m,
            s.members.get(m).map_or(0, |x| s.spendable(x, at).0.max(0)),
        ));
    }
    let available: i64 = takes.iter().map(|t| t.1).sum();
    if available < points.0 {
        return Err(Rejection::InsufficientPoints {
            available: Points(available),
            requested: points,
        });
    }
    let mut need = points.0;
    for (m, have) in takes {
        let take = have.min(need);
        if take > 0 {
            b.debit(m, dest, Points(take))?;
            need -= take;
        }
    }
    Ok(())
}
