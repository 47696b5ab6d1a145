//! Conversion of a partner's quantities (money, miles, litres) into points.
//!
//! Rounding, written down once: an earn rounds **down** to whole points (a member never gets a
//! fraction the partner did not pay for); a burn priced in money rounds **up** (the member always
//! covers the whole price). Overrides: a category's rate wins over a branch's, which wins over
//! the table's base rate.

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
    #[schema(value_type = Option<String>, example = "2", pattern = r"^(?:[1-9][0-9]{0,15}(?:\.[0-9]{1,10})?|0\.[0-9]{0,9}[1-9][0-9]{0,9})$")]
    #[serde(default, deserialize_with = "decimal_str::rate_opt")]
    pub earn_points_per_unit: Option<Decimal>,
    /// Points per unit a burn priced in money costs; `None` keeps the base rate.
    #[schema(value_type = Option<String>, pattern = r"^(?:[1-9][0-9]{0,15}(?:\.[0-9]{1,10})?|0\.[0-9]{0,9}[1-9][0-9]{0,9})$")]
    #[serde(default, deserialize_with = "decimal_str::rate_opt")]
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

/// The grammar of an amount's value: a positive decimal up to [`QUANTITY_MAX`] with at most
/// [`MEASURE_SCALE_MAX`] decimals, no sign, no exponent, no leading zero. The OpenAPI document
/// states the same pattern (a test holds them equal); a currency's own minor units are
/// checked after it.
pub const AMOUNT_VALUE_PATTERN: &str = r"^(?:(?:[1-9][0-9]{0,11})(?:\.[0-9]{1,3})?|1000000000000(?:\.0{1,3})?|0\.(?:[1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9]))$";
/// The grammar of a unit: three capital letters (an ISO 4217 code) or a lower-case measure.
pub const UNIT_PATTERN: &str = "^(?:[A-Z]{3}|[a-z_-]{1,32})$";

/// A quantity in a unit, as partners send it. `value` is a decimal string such as `"12.50"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Amount {
    /// Decimal string, positive, at most three decimals (a currency allows no more than its
    /// minor units); numbers are refused because JSON numbers are binary floats.
    #[schema(
        example = "42.50",
        pattern = r"^(?:(?:[1-9][0-9]{0,11})(?:\.[0-9]{1,3})?|1000000000000(?:\.0{1,3})?|0\.(?:[1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9]))$"
    )]
    pub value: String,
    /// ISO 4217 currency code (`EUR`) or the partner's measure (`mile`, `litre`).
    #[schema(example = "EUR", pattern = "^(?:[A-Z]{3}|[a-z_-]{1,32})$")]
    pub unit: String,
}

/// The grammar of a rate (points per unit): a positive decimal with up to 16 integer digits and
/// 10 decimals (leading zeros only before the point).
pub const RATE_PATTERN: &str =
    r"^(?:[1-9][0-9]{0,15}(?:\.[0-9]{1,10})?|0\.[0-9]{0,9}[1-9][0-9]{0,9})$";
/// The grammar of a contract price per point: a decimal of zero or more with up to 10 decimals
/// (the ledger's money scale).
pub const PRICE_PATTERN: &str = r"^(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,10})?$";

/// Decimal strings held to a grammar, for serde: the OpenAPI document states the same
/// patterns, so a value the document accepts parses, and one it refuses does not.
pub mod decimal_str {
    use rust_decimal::Decimal;
    use serde::{de, Deserialize, Deserializer};
    use std::sync::LazyLock;

    fn parse<E: de::Error>(
        s: &str,
        grammar: &regex::Regex,
        pattern: &'static str,
    ) -> Result<Decimal, E> {
        if !grammar.is_match(s) {
            return Err(E::custom(format!("{s:?} does not match {pattern}")));
        }
        s.parse()
            .map_err(|_| E::custom(format!("{s:?} is not a decimal")))
    }

    /// The rate grammar, compiled once.
    fn rate_grammar() -> &'static regex::Regex {
        static GRAMMAR: LazyLock<regex::Regex> = LazyLock::new(|| {
            regex::Regex::new(super::RATE_PATTERN).expect("the rate grammar compiles")
        });
        &GRAMMAR
    }

    /// The price grammar, compiled once.
    fn price_grammar() -> &'static regex::Regex {
        static GRAMMAR: LazyLock<regex::Regex> = LazyLock::new(|| {
            regex::Regex::new(super::PRICE_PATTERN).expect("the price grammar compiles")
        });
        &GRAMMAR
    }

    /// A rate ([`super::RATE_PATTERN`]).
    pub fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        parse(
            &String::deserialize(d)?,
            rate_grammar(),
            super::RATE_PATTERN,
        )
    }

    /// An optional rate, or `null`.
    pub fn rate_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse(&s, rate_grammar(), super::RATE_PATTERN))
            .transpose()
    }

    /// A price per point ([`super::PRICE_PATTERN`]).
    pub fn price<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        parse(
            &String::deserialize(d)?,
            price_grammar(),
            super::PRICE_PATTERN,
        )
    }
}

fn amount_grammar() -> &'static regex::Regex {
    static GRAMMAR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(AMOUNT_VALUE_PATTERN).expect("the amount grammar compiles")
    });
    &GRAMMAR
}

/// Why an amount or a rate table was refused, or a quantity could not be priced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceError {
    /// The amount is not in plain decimal notation.
    #[error("amount value {text:?} must be a positive decimal up to 1000000000000 with at most 3 decimals and no sign, exponent or leading zero, such as \"12.50\"")]
    NotPlainDecimal {
        /// As sent.
        text: String,
    },
    /// The amount does not parse as a decimal.
    #[error("amount value {text:?} is not a decimal number")]
    NotDecimal {
        /// As sent.
        text: String,
    },
    /// Three capital letters that are not an ISO 4217 code.
    #[error("{unit:?} is not an ISO 4217 currency code")]
    UnknownCurrency {
        /// As sent.
        unit: String,
    },
    /// A unit that is neither a currency code nor a measure.
    #[error("unit {unit:?} must be an ISO 4217 code (EUR) or a lower-case measure (mile, litre)")]
    BadUnit {
        /// As sent.
        unit: String,
    },
    /// More decimals than the unit has.
    #[error("amount {value} has more than {scale_max} decimal places for {unit}")]
    TooPrecise {
        /// As sent.
        value: Decimal,
        /// Decimals the unit has.
        scale_max: u32,
        /// The unit.
        unit: String,
    },
    /// An override's branch or category name is empty or too long.
    #[error("override name {name:?} must be 1..={NAME_LEN_MAX} characters")]
    OverrideName {
        /// As sent.
        name: String,
    },
    /// A rate is zero or negative.
    #[error("rates must be positive, got {rate}")]
    RateNotPositive {
        /// The first bad rate.
        rate: Decimal,
    },
    /// The table in force prices another unit.
    #[error("the rate table in force (version {version}) prices {priced}, not {asked}")]
    OtherUnit {
        /// The table's version.
        version: u32,
        /// The unit it prices.
        priced: String,
        /// The unit asked for.
        asked: String,
    },
    /// The table prices earns only.
    #[error("rate table version {version} does not price burns in {unit}; send points")]
    BurnsNotPriced {
        /// The table's version.
        version: u32,
        /// The unit.
        unit: String,
    },
    /// The points do not fit a whole number of points.
    #[error("{exact} points is out of range")]
    PointsOutOfRange {
        /// Before rounding.
        exact: Decimal,
    },
    /// The quantity is worth less than one point.
    #[error("{quantity} {unit} at {rate} points per unit is less than one point")]
    LessThanOnePoint {
        /// As sent.
        quantity: Decimal,
        /// The unit.
        unit: String,
        /// Points per unit applied.
        rate: Decimal,
    },
}

impl Amount {
    /// Checks the value's grammar and the unit's form, not the currency's minor units.
    pub fn check_grammar(&self) -> Result<(), PriceError> {
        if !amount_grammar().is_match(&self.value) {
            return Err(PriceError::NotPlainDecimal {
                text: self.value.clone(),
            });
        }
        if !is_currency_code(&self.unit) && !is_measure(&self.unit) {
            return Err(PriceError::BadUnit {
                unit: self.unit.clone(),
            });
        }
        Ok(())
    }

    /// Parses and checks the amount: positive, not above [`QUANTITY_MAX`], no more decimals than
    /// the currency's minor units (or [`MEASURE_SCALE_MAX`] for measures).
    pub fn parse(&self) -> Result<Decimal, PriceError> {
        let text = self.value.as_str();
        if !amount_grammar().is_match(text) {
            return Err(PriceError::NotPlainDecimal { text: text.into() });
        }
        let value: Decimal = text.parse().map_err(|_| PriceError::NotDecimal {
            text: self.value.clone(),
        })?;
        let scale_max = if is_currency_code(&self.unit) {
            iso_currency::Currency::from_code(&self.unit)
                .ok_or_else(|| PriceError::UnknownCurrency {
                    unit: self.unit.clone(),
                })?
                .exponent()
                .map_or(0, u32::from)
        } else if is_measure(&self.unit) {
            MEASURE_SCALE_MAX
        } else {
            return Err(PriceError::BadUnit {
                unit: self.unit.clone(),
            });
        };
        // The grammar admits positive values up to the limit only.
        debug_assert!(value > Decimal::ZERO && value <= QUANTITY_MAX, "{value}");
        if value.normalize().scale() > scale_max {
            return Err(PriceError::TooPrecise {
                value,
                scale_max,
                unit: self.unit.clone(),
            });
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
    pub fn validate(&self) -> Result<(), PriceError> {
        if is_currency_code(&self.unit) {
            if iso_currency::Currency::from_code(&self.unit).is_none() {
                return Err(PriceError::UnknownCurrency {
                    unit: self.unit.clone(),
                });
            }
        } else if !is_measure(&self.unit) {
            return Err(PriceError::BadUnit {
                unit: self.unit.clone(),
            });
        }
        let overrides = self.branches.iter().chain(self.categories.iter());
        let mut rates = vec![Some(self.earn_points_per_unit), self.burn_points_per_unit];
        for (name, o) in overrides {
            if name.is_empty() || name.chars().count() > NAME_LEN_MAX {
                return Err(PriceError::OverrideName { name: name.clone() });
            }
            rates.push(o.earn_points_per_unit);
            rates.push(o.burn_points_per_unit);
        }
        if let Some(bad) = rates.into_iter().flatten().find(|r| *r <= Decimal::ZERO) {
            return Err(PriceError::RateNotPositive { rate: bad });
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
    ) -> Result<Priced, PriceError> {
        if unit != self.unit {
            return Err(PriceError::OtherUnit {
                version: self.version,
                priced: self.unit.clone(),
                asked: unit.to_string(),
            });
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
        let rate =
            by_category
                .or(by_branch)
                .or(base)
                .ok_or_else(|| PriceError::BurnsNotPriced {
                    version: self.version,
                    unit: unit.to_string(),
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
        let points = i64::try_from(rounded).map_err(|_| PriceError::PointsOutOfRange { exact })?;
        if points <= 0 {
            return Err(PriceError::LessThanOnePoint {
                quantity,
                unit: unit.to_string(),
                rate,
            });
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
        assert!(matches!(e, PriceError::OtherUnit { .. }), "{e}");
        let e = t
            .price(Operation::Earn, Decimal::new(1, 2), "EUR", None, None)
            .unwrap_err();
        assert!(matches!(e, PriceError::LessThanOnePoint { .. }), "{e}");
    }

    #[test]
    fn amounts_are_checked_against_the_unit() {
        let a = |v: &str, u: &str| Amount {
            value: v.into(),
            unit: u.into(),
        };
        let err = |v: &str, u: &str| a(v, u).parse().unwrap_err();
        assert_eq!(a("12.50", "EUR").parse().unwrap(), Decimal::new(1250, 2));
        assert_eq!(a("12.500", "EUR").parse().unwrap(), Decimal::new(12500, 3));
        assert!(matches!(
            err("12.505", "EUR"),
            PriceError::TooPrecise { scale_max: 2, .. }
        ));
        assert_eq!(a("5", "JPY").parse().unwrap(), Decimal::new(5, 0));
        assert!(matches!(
            err("5.5", "JPY"),
            PriceError::TooPrecise { scale_max: 0, .. }
        ));
        for bad in [
            "0",
            "0.000",
            "-3",
            "010",
            "1.0001",
            "1000000000000.5",
            "+1",
            ".5",
            "1.",
        ] {
            assert!(
                matches!(err(bad, "EUR"), PriceError::NotPlainDecimal { .. }),
                "{bad}"
            );
        }
        assert!(matches!(
            err("1e3", "EUR"),
            PriceError::NotPlainDecimal { .. }
        ));
        assert!(matches!(
            err("10", "XYZ"),
            PriceError::UnknownCurrency { .. }
        ));
        assert_eq!(
            a("10.125", "litre").parse().unwrap(),
            Decimal::new(10125, 3)
        );
        assert!(matches!(err("10", "Miles!"), PriceError::BadUnit { .. }));
        assert!(matches!(
            err("1000000000001", "mile"),
            PriceError::NotPlainDecimal { .. }
        ));
    }

    #[test]
    fn the_openapi_document_states_the_grammars_the_server_holds_to() {
        let schema = |s: utoipa::openapi::RefOr<utoipa::openapi::Schema>| {
            serde_json::to_value(s).expect("schemas encode")
        };
        let amount = schema(<Amount as utoipa::PartialSchema>::schema());
        assert_eq!(
            amount["properties"]["value"]["pattern"],
            AMOUNT_VALUE_PATTERN
        );
        assert_eq!(amount["properties"]["unit"]["pattern"], UNIT_PATTERN);
        let o = schema(<RateOverride as utoipa::PartialSchema>::schema());
        assert_eq!(
            o["properties"]["earn_points_per_unit"]["pattern"],
            RATE_PATTERN
        );
        assert_eq!(
            o["properties"]["burn_points_per_unit"]["pattern"],
            RATE_PATTERN
        );
        for (pattern, good, bad) in [
            (
                RATE_PATTERN,
                ["1", "0.5", "2.25", "0.0000000001"],
                ["0", "-1", "01", "1e3"],
            ),
            (
                PRICE_PATTERN,
                ["0", "0.012", "7", "0.0000000001"],
                ["-1", "01", ".5", "1e3"],
            ),
        ] {
            let grammar = regex::Regex::new(pattern).expect("compiles");
            assert!(good.iter().all(|g| grammar.is_match(g)), "{pattern}");
            assert!(!bad.iter().any(|b| grammar.is_match(b)), "{pattern}");
        }
    }
}
