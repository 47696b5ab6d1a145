//! A member's lifecycle: suspension, reinstatement, closing (the balance kept or forfeited to
//! `programme/breakage`, as the programme's policy says), and merging a duplicate into its
//! survivor. All operator commands, each with a reason and an author.

use super::require_operator;
use crate::core::builder::Builder;
use crate::core::model::{IdemKey, Merge, Notice, TxKind};
use crate::core::rejection::Rejection;
use crate::core::state::{Standing, State};
use crate::core::transfers::PoolLink;
use crate::core::types::{ChangeNote, MemberId, Points, TxId};

fn check_note(note: &ChangeNote) -> Result<(), Rejection> {
    if note.reason.trim().is_empty() || note.author.trim().is_empty() {
        return Err(Rejection::NoteMissing);
    }
    if !note.fits() {
        return Err(Rejection::ChangeNoteTooLong {
            author_max: ChangeNote::AUTHOR_LEN_MAX,
            reason_max: ChangeNote::REASON_LEN_MAX,
        });
    }
    Ok(())
}

/// Suspend (`Suspended`), reinstate (`Active`, from suspended) or close (`Closed`) a member.
/// Closing needs no open holds; with `forfeit` the balance goes to `programme/breakage`.
pub(super) fn set_standing(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    member: MemberId,
    standing: Standing,
    forfeit: bool,
    note: &ChangeNote,
) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    check_note(note)?;
    let m = s.require_member(member)?;
    let now = m.standing();
    let allowed = matches!(
        (now, standing),
        (Standing::Active, Standing::Suspended)
            | (Standing::Active, Standing::Closed)
            | (Standing::Suspended, Standing::Active)
            | (Standing::Suspended, Standing::Closed)
    );
    if !allowed {
        return Err(Rejection::StandingChange {
            from: now.name(),
            to: standing.name(),
        });
    }
    let mut forfeited = Points::ZERO;
    if standing == Standing::Closed {
        if m.held.is_positive() {
            return Err(Rejection::OpenHolds {
                member,
                held: m.held,
            });
        }
        if forfeit {
            forfeited = b.expire(member, &m.lots);
        }
    }
    b.touch(member);
    Ok(TxKind::StandingSet {
        member,
        standing,
        forfeited,
        note: Box::new(note.clone()),
    })
}

/// Merges `from` into `into`: posted points move with their expiry dates, open holds are
/// re-pointed, tier qualification is summed month by month at the higher level, and the
/// partners earned at are combined. `from` is left `Merged(into)` with nothing.
pub(super) fn merge(
    s: &State,
    b: &mut Builder<'_>,
    key: &IdemKey,
    from: MemberId,
    into: MemberId,
    note: &ChangeNote,
) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    check_note(note)?;
    if from == into {
        return Err(Rejection::MergeRefused(
            "a member cannot be merged into itself",
        ));
    }
    let f = s.require_member(from)?;
    let t = s.require_member(into)?;
    for (m, st) in [(from, f), (into, t)] {
        match st.standing() {
            Standing::Active | Standing::Suspended => {}
            other => return Err(super::standing_refusal(m, other)),
        }
        if !matches!(
            st.extras.as_deref().map(|x| &x.pool),
            None | Some(PoolLink::None)
        ) {
            return Err(Rejection::MergeRefused(
                "a member in a household pool leaves it before a merge",
            ));
        }
    }
    if f.posted.0 < 0 {
        return Err(Rejection::MergeRefused(
            "the absorbed member's balance is negative; correct it first",
        ));
    }
    let mut holds: Vec<(TxId, Points)> = s
        .holds
        .iter()
        .filter(|(_, h)| h.member == from)
        .map(|(id, h)| (*id, h.points))
        .collect();
    holds.sort_unstable();
    let held: i64 = holds.iter().map(|(_, p)| p.0).sum();
    if held != f.held.0 {
        // The cluster path reads every open hold of the member before deciding; a difference
        // means one was not read, and moving some would corrupt the held totals.
        return Err(Rejection::MergeRefused(
            "the member's open holds could not all be read; retry",
        ));
    }
    if f.posted.is_positive() {
        b.transfer_all(from, into, f.posted)?;
    }
    b.touch(from);
    b.touch(into);
    let tier = match (f.extras.as_deref(), t.extras.as_deref()) {
        (None, None) => None,
        (a, c) => Some(
            c.map(|x| x.tier.clone())
                .unwrap_or_default()
                .merged(&a.map(|x| x.tier.clone()).unwrap_or_default()),
        ),
    };
    Ok(TxKind::Merged(Box::new(Merge {
        from,
        into,
        points: f.posted,
        held: f.held,
        holds: holds.into_iter().map(|(id, _)| id).collect(),
        tier,
        earned_at: f.earned_at | t.earned_at,
        last_activity: f.last_activity.max(t.last_activity),
        note: note.clone(),
    })))
}

/// Records a dated occasion of member `m`'s. The member is not touched: a notice is no line of
/// its statement, only an event.
pub(super) fn notice(
    s: &State,
    key: &IdemKey,
    member: MemberId,
    notice: Notice,
) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    s.require_unmerged(member)?;
    Ok(TxKind::Noticed { member, notice })
}
