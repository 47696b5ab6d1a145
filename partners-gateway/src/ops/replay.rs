//! The replay policy for priced commands: the ledger's idempotency digest covers the pricing,
//! so a retry priced under a newer rate table is a conflict to the ledger. It is still the same
//! request when the partner sent the same inputs (quantity, unit, branch, category, member) for
//! the same kind of command; then the gateway answers with the original as a replay.

use ledger::{MemberId, Pricing, Transaction};

/// True when `tx` (the original) answers a retry with these inputs.
pub fn same_priced_request(
    tx: &Transaction,
    pricing: &Option<Pricing>,
    kind: &str,
    member: Option<MemberId>,
) -> bool {
    let same_inputs = match (&tx.pricing, pricing) {
        (Some(a), Some(b)) => {
            (a.quantity, &a.unit, &a.branch, &a.category)
                == (b.quantity, &b.unit, &b.branch, &b.category)
        }
        _ => false,
    };
    let same_kind = !kind.is_empty() && ledger::describe(&tx.kind).0 == kind;
    same_inputs && same_kind && tx.kind.member() == member
}
