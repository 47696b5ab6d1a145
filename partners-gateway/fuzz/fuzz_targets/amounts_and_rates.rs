//! Amounts and rate tables as partners and operators send them, then priced: any JSON. Errors
//! are fine; a panic (an overflow in the arithmetic, say) is not. A price is never negative.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partners_gateway::programme::rates::{Amount, Operation, RateTable};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    table: RateTable,
    amount: Amount,
    branch: Option<String>,
    category: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(case) = serde_json::from_slice::<Case>(data) else {
        if let Ok(a) = serde_json::from_slice::<Amount>(data) {
            let _ = a.parse();
        }
        return;
    };
    let Ok(q) = case.amount.parse() else { return };
    if case.table.validate().is_err() {
        return;
    }
    for op in [Operation::Earn, Operation::Burn] {
        if let Ok(p) = case.table.price(
            op,
            q,
            &case.amount.unit,
            case.branch.as_deref(),
            case.category.as_deref(),
        ) {
            assert!(p.points.0 >= 0, "a price is never negative: {:?}", p.points);
        }
    }
});
