//! Setting a partner's contract, and enrolling a member.

use super::require_operator;
use crate::core::builder::Builder;
use crate::core::model::{IdemKey, TxKind};
use crate::core::rejection::Rejection;
use crate::core::state::State;
use crate::core::types::{Contract, MemberId};

/// Most decimal places a contract price may have (the ledger's money scale).
pub const PRICE_SCALE_MAX: u32 = 10;

pub(super) fn set(key: &IdemKey, contract: &Contract) -> Result<TxKind, Rejection> {
    require_operator(key)?;
    let prices = [
        contract.issuance_price_per_point,
        contract.redemption_price_per_point,
    ];
    if prices.iter().any(|p| p.is_sign_negative()) {
        return Err(Rejection::NegativePrice);
    }
    if prices.iter().any(|p| p.scale() > PRICE_SCALE_MAX) {
        return Err(Rejection::PriceTooPrecise {
            scale_max: PRICE_SCALE_MAX,
        });
    }
    Ok(TxKind::ContractSet(contract.clone()))
}

pub(super) fn enrol(s: &State, b: &mut Builder<'_>, member: MemberId) -> Result<TxKind, Rejection> {
    if s.members.contains_key(&member) {
        return Err(Rejection::MemberExists(member));
    }
    b.touch(member);
    Ok(TxKind::Enrolled { member })
}
