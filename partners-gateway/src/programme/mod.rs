//! The programme's pricing rules: rate tables (points per unit of currency, mile or litre),
//! effective-dated and versioned, with branch and category overrides and written-down rounding.
//! Pure: no HTTP, no store.

pub mod rates;
