//! The programme's rules: rate tables (points per unit of currency, mile or litre),
//! effective-dated and versioned, with branch and category overrides and written-down rounding;
//! earn rules and campaigns; the points budget guard's periods. Pure: no HTTP, no store.

pub mod guard;
pub mod rates;
pub mod rules;
