//! Conversion of a partner's quantities (money, miles, litres) into points.
//!
//! Rounding, written down once: an earn rounds **down** to whole points (a member never gets a
//! fraction the partner did not pay for); a burn priced in money rounds **up** (the member always
//! covers the whole price). Overrides: a category's rate wins over a branch's, which wins over
//! the table's base rate.

use crate::problem::{ApiError, Kind};
use ledger::{Points, Pricing};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Largest quantity accepted in one request, in any unit.
pub const QUANTITY_MAX: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0); // 1e12
/// Most decimal places of a non-currency measure (miles, litres).
pub const MEASURE_SCALE_MAX: u32 = 3;
/// Longest unit, branch or category name.
pub const NAME_LEN_MAX: usize = 32;

/// A rate override for a branch or a category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RateOverride {
    /// Points per unit earned; `None` keeps the base rate.
    #[schema(value_type = Option<String>, example = "2")]
    pub earn_points_per_unit: Option<Decimal>,
    /// Points per unit a burn priced in money costs; `None` keeps the base rate.
    #[schema(value_type = Option<String>)]
    pub burn_points_per_unit: Option<Decimal>,
}

/// One version of a partner's rate table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RateTable {
    /// Version, numbered by the gateway from 1.
    pub version: u32,
    /// In force from this time (ms since the Unix epoch) until a later version takes over.
    pub effective_from_ms: i64,
    /// The unit priced: an ISO 4217 currency (`EUR`) or a measure (`mile`, `litre`).
    pub unit: String,
    /// Points per unit earned.
    #[schema(value_type = String, example = "1")]
    pub earn_points_per_unit: Decimal,
    /// Points per unit of money a burn priced in money costs; `None`: burns must give points.
    #[schema(value_type = Option<String>, example = "100")]
    pub burn_points_per_unit: Option<Decimal>,
    /// Overrides by branch (station, store).
    #[serde(default)]
    pub branches: BTreeMap<String, RateOverride>,
    /// Overrides by product category.
    #[serde(default)]
    pub categories: BTreeMap<String, RateOverride>,
}

/// Earn or burn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Points for a purchase.
    Earn,
    /// Points for a price.
    Burn,
}

/// A quantity in a unit, as partners send it. `value` is a decimal string such as `"12.50"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Amount {
    /// Decimal string; numbers are refused because JSON numbers are binary floats.
    #[schema(example = "42.50")]
    pub value: String,
    /// ISO 4217 currency code (`EUR`) or the partner's measure (`mile`, `litre`).
    #[schema(example = "EUR")]
    pub unit: String,
}

impl Amount {
    /// Parses and checks the amount: positive, not above [`QUANTITY_MAX`], no more decimals than
    /// the currency's minor units (or [`MEASURE_SCALE_MAX`] for measures).
    pub fn parse(&self) -> Result<Decimal, ApiError> {
        let text = self.value.as_str();
        let digits = text.strip_prefix('-').unwrap_or(text);
        let plain = !digits.is_empty()
            && !digits.starts_with('.')
            && !digits.ends_with('.')
            && digits.bytes().filter(|b| *b == b'.').count() <= 1
            && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if !plain {
            return Err(ApiError::new(
                Kind::InvalidAmount,
                format!("amount value {text:?} must be plain decimal notation, such as \"12.50\""),
            ));
        }
        let value: Decimal = text.parse().map_err(|_| {
            ApiError::new(
                Kind::InvalidAmount,
                format!("amount value {:?} is not a decimal number", self.value),
            )
        })?;
        let scale_max = if is_currency_code(&self.unit) {
            iso_currency::Currency::from_code(&self.unit)
                .ok_or_else(|| {
                    ApiError::new(
                        Kind::UnknownCurrency,
                        format!("{:?} is not an ISO 4217 currency code", self.unit),
                    )
                })?
                .exponent()
                .map_or(0, u32::from)
        } else if is_measure(&self.unit) {
            MEASURE_SCALE_MAX
        } else {
            return Err(ApiError::new(
                Kind::InvalidRequest,
                format!(
                    "unit {:?} must be an ISO 4217 code (EUR) or a lower-case measure (mile, litre)",
                    self.unit
                ),
            ));
        };
        if value <= Decimal::ZERO {
            return Err(ApiError::new(
                Kind::InvalidAmount,
                format!("amount must be positive, got {value}"),
            ));
        }
        if value > QUANTITY_MAX {
            return Err(ApiError::new(
                Kind::InvalidAmount,
                format!("amount {value} is above the limit of {QUANTITY_MAX}"),
            ));
        }
        if value.normalize().scale() > scale_max {
            return Err(ApiError::new(
                Kind::InvalidAmount,
                format!(
                    "amount {value} has more than {scale_max} decimal places for {}",
                    self.unit
                ),
            ));
        }
        Ok(value)
    }
}

/// Three upper-case ASCII letters: the shape of an ISO 4217 code.
pub fn is_currency_code(unit: &str) -> bool {
    unit.len() == 3 && unit.bytes().all(|b| b.is_ascii_uppercase())
}

fn is_measure(unit: &str) -> bool {
    !unit.is_empty()
        && unit.len() <= NAME_LEN_MAX
        && unit
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
}

/// The outcome of pricing: whole points and the record of how they were reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    /// Points after rounding.
    pub points: Points,
    /// What the transaction records.
    pub pricing: Pricing,
}

impl RateTable {
    /// Checks an operator's draft: rates positive, names short, unit well formed.
    pub fn validate(&self) -> Result<(), ApiError> {
        let unit_ok = if is_currency_code(&self.unit) {
            iso_currency::Currency::from_code(&self.unit).is_some()
        } else {
            is_measure(&self.unit)
        };
        if !unit_ok {
            return Err(ApiError::new(
                Kind::InvalidRequest,
                format!(
                    "unit {:?} is neither an ISO 4217 code nor a measure",
                    self.unit
                ),
            ));
        }
        let overrides = self.branches.iter().chain(self.categories.iter());
        let mut rates = vec![Some(self.earn_points_per_unit), self.burn_points_per_unit];
        for (name, o) in overrides {
            if name.is_empty() || name.len() > NAME_LEN_MAX {
                return Err(ApiError::new(
                    Kind::InvalidRequest,
                    format!("override name {name:?} must be 1..={NAME_LEN_MAX} bytes"),
                ));
            }
            rates.push(o.earn_points_per_unit);
            rates.push(o.burn_points_per_unit);
        }
        if let Some(bad) = rates.into_iter().flatten().find(|r| *r <= Decimal::ZERO) {
            return Err(ApiError::new(
                Kind::InvalidRequest,
                format!("rates must be positive, got {bad}"),
            ));
        }
        Ok(())
    }

    /// Prices `quantity` of `unit` for `op`, applying the most specific override.
    pub fn price(
        &self,
        op: Operation,
        quantity: Decimal,
        unit: &str,
        branch: Option<&str>,
        category: Option<&str>,
    ) -> Result<Priced, ApiError> {
        if unit != self.unit {
            return Err(ApiError::new(
                Kind::UnitNotPriced,
                format!(
                    "the rate table in force (version {}) prices {}, not {unit}",
                    self.version, self.unit
                ),
            ));
        }
        let pick = |o: &RateOverride| match op {
            Operation::Earn => o.earn_points_per_unit,
            Operation::Burn => o.burn_points_per_unit,
        };
        let base = match op {
            Operation::Earn => Some(self.earn_points_per_unit),
            Operation::Burn => self.burn_points_per_unit,
        };
        let by_category = category.and_then(|c| self.categories.get(c)).and_then(pick);
        let by_branch = branch.and_then(|b| self.branches.get(b)).and_then(pick);
        let rate = by_category.or(by_branch).or(base).ok_or_else(|| {
            ApiError::new(
                Kind::UnitNotPriced,
                format!(
                    "rate table version {} does not price burns in {unit}; send points",
                    self.version
                ),
            )
        })?;
        let exact = quantity * rate;
        let rounded = match op {
            Operation::Earn => {
                exact.round_dp_with_strategy(0, RoundingStrategy::ToNegativeInfinity)
            }
            Operation::Burn => {
                exact.round_dp_with_strategy(0, RoundingStrategy::ToPositiveInfinity)
            }
        };
        let points = i64::try_from(rounded).map_err(|_| {
            ApiError::new(
                Kind::InvalidAmount,
                format!("{exact} points is out of range"),
            )
        })?;
        if points <= 0 {
            return Err(ApiError::new(
                Kind::NoPoints,
                format!("{quantity} {unit} at {rate} points per unit is less than one point"),
            ));
        }
        Ok(Priced {
            points: Points(points),
            pricing: Pricing {
                rate_version: self.version,
                quantity,
                unit: unit.to_string(),
                branch: branch.map(str::to_string),
                category: category.map(str::to_string),
                points_per_unit: rate,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RateTable {
        let mut branches = BTreeMap::new();
        branches.insert(
            "station-7".to_string(),
            RateOverride {
                earn_points_per_unit: Some(Decimal::new(3, 0)),
                burn_points_per_unit: None,
            },
        );
        let mut categories = BTreeMap::new();
        categories.insert(
            "premium".to_string(),
            RateOverride {
                earn_points_per_unit: Some(Decimal::new(5, 0)),
                burn_points_per_unit: None,
            },
        );
        RateTable {
            version: 4,
            effective_from_ms: 0,
            unit: "EUR".into(),
            earn_points_per_unit: Decimal::new(15, 1),
            burn_points_per_unit: Some(Decimal::new(100, 0)),
            branches,
            categories,
        }
    }

    #[test]
    fn earn_rounds_down_and_burn_rounds_up() {
        let t = table();
        let q = Decimal::new(1999, 2); // 19.99 EUR
        let earn = t.price(Operation::Earn, q, "EUR", None, None).unwrap();
        assert_eq!(earn.points, Points(29)); // 29.985 -> 29
        assert_eq!(earn.pricing.rate_version, 4);
        let q = Decimal::new(1001, 3 - 1); // 10.01 EUR
        let burn = t.price(Operation::Burn, q, "EUR", None, None).unwrap();
        assert_eq!(burn.points, Points(1001));
        let burn = t
            .price(Operation::Burn, Decimal::new(10005, 3), "EUR", None, None)
            .unwrap();
        assert_eq!(burn.points, Points(1001)); // 1000.5 -> 1001
    }

    #[test]
    fn category_beats_branch_beats_base() {
        let t = table();
        let q = Decimal::new(10, 0);
        let p = |b, c| t.price(Operation::Earn, q, "EUR", b, c).unwrap().points;
        assert_eq!(p(None, None), Points(15));
        assert_eq!(p(Some("station-7"), None), Points(30));
        assert_eq!(p(Some("station-7"), Some("premium")), Points(50));
        assert_eq!(p(Some("unknown"), Some("unknown")), Points(15));
    }

    #[test]
    fn wrong_unit_and_tiny_amounts_are_refused() {
        let t = table();
        let e = t
            .price(Operation::Earn, Decimal::ONE, "GBP", None, None)
            .unwrap_err();
        assert_eq!(e.kind, Kind::UnitNotPriced);
        let e = t
            .price(Operation::Earn, Decimal::new(1, 2), "EUR", None, None)
            .unwrap_err();
        assert_eq!(e.kind, Kind::NoPoints);
    }

    #[test]
    fn amounts_are_checked_against_the_unit() {
        let a = |v: &str, u: &str| Amount {
            value: v.into(),
            unit: u.into(),
        };
        assert_eq!(a("12.50", "EUR").parse().unwrap(), Decimal::new(1250, 2));
        assert_eq!(a("12.500", "EUR").parse().unwrap(), Decimal::new(12500, 3));
        assert_eq!(
            a("12.505", "EUR").parse().unwrap_err().kind,
            Kind::InvalidAmount
        );
        assert_eq!(a("5", "JPY").parse().unwrap(), Decimal::new(5, 0));
        assert_eq!(
            a("5.5", "JPY").parse().unwrap_err().kind,
            Kind::InvalidAmount
        );
        assert_eq!(a("0", "EUR").parse().unwrap_err().kind, Kind::InvalidAmount);
        assert_eq!(
            a("-3", "EUR").parse().unwrap_err().kind,
            Kind::InvalidAmount
        );
        assert_eq!(
            a("1e3", "EUR").parse().unwrap_err().kind,
            Kind::InvalidAmount
        );
        assert_eq!(
            a("10", "XYZ").parse().unwrap_err().kind,
            Kind::UnknownCurrency
        );
        assert_eq!(
            a("10.125", "litre").parse().unwrap(),
            Decimal::new(10125, 3)
        );
        assert_eq!(
            a("10", "Miles!").parse().unwrap_err().kind,
            Kind::InvalidRequest
        );
        assert_eq!(
            a("1000000000001", "mile").parse().unwrap_err().kind,
            Kind::InvalidAmount
        );
    }
}
