//! Member-to-member transfers (family pooling): the points carry their expiry dates.

use crate::core::builder::Builder;
use crate::core::model::TxKind;
use crate::core::rejection::Rejection;
use crate::core::state::State;
use crate::core::types::{MemberId, Points};

pub(super) fn transfer(
    s: &State,
    b: &mut Builder<'_>,
    from: MemberId,
    to: MemberId,
    points: Points,
) -> Result<TxKind, Rejection> {
    s.check_points(points)?;
    if from == to {
        return Err(Rejection::TransferToSelf);
    }
    s.require_member(to)?;
    s.require_available(from, points, b.at())?;
    b.transfer(from, to, points)?;
    Ok(TxKind::Transfer { from, to, points })
}
