//! The cluster path's account totals: every non-member posting blind-added (FoundationDB's
//! atomic `ADD`) to one key per account and asset, so that thousands of members earning at one
//! partner never conflict. Written by the cluster writer; read by balances and the audit.

use crate::core::model::{Amount, Transaction};
use crate::core::state::Balance;
use crate::core::types::{AccountId, Money};
use crate::error::{LedgerError, Rejection};
use crate::keys;
use crate::store::{prefix_end, Snapshot, WriteSet};
use rust_decimal::Decimal;

/// Blind adds of `tx`'s non-member postings to the account totals: points as i64, money as
/// i128 at [`keys::MONEY_SCALE`] decimal places.
pub(crate) fn add_totals(w: &mut WriteSet, tx: &Transaction) -> Result<(), LedgerError> {
    for p in &tx.postings {
        if p.account.is_member() {
            continue;
        }
        match p.amount {
            Amount::Points(x) => w.add(&keys::total_points(p.account), x.0),
            Amount::Money(m) => {
                w.add_wide(&keys::total_money(p.account, m.currency), fixed(m.amount)?)
            }
        }
    }
    Ok(())
}

/// `d` as an integer count of 10^-MONEY_SCALE units.
pub(crate) fn fixed(d: Decimal) -> Result<i128, LedgerError> {
    if d.scale() > keys::MONEY_SCALE {
        return Err(Rejection::PriceTooPrecise {
            scale_max: keys::MONEY_SCALE,
        }
        .into());
    }
    let mut d = d;
    d.rescale(keys::MONEY_SCALE);
    Ok(d.mantissa())
}

/// Adds the cluster-path totals of account `a` (see [`add_totals`]) to `b`.
pub(crate) fn read_totals<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    a: AccountId,
    b: &mut Balance,
) -> Result<(), LedgerError> {
    let prefix = keys::total_prefix(a);
    for (k, v) in snap.range(&prefix, &prefix_end(&prefix), usize::MAX, false)? {
        match &k[prefix.len()..] {
            [0] => {
                let n = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| LedgerError::Corrupt("points total".into()))?;
                b.points.0 += i64::from_le_bytes(n);
            }
            [1, code @ ..] => {
                let c = std::str::from_utf8(code)
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| LedgerError::Corrupt(format!("money total key {k:?}")))?;
                let n = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| LedgerError::Corrupt("money total".into()))?;
                let amount =
                    Decimal::from_i128_with_scale(i128::from_le_bytes(n), keys::MONEY_SCALE);
                b.add(Amount::Money(Money::new(amount.normalize(), c)));
            }
            _ => return Err(LedgerError::Corrupt(format!("total key {k:?}"))),
        }
    }
    Ok(())
}
