//! Whole numbers in JSON bodies: JSON Schema counts `1952.0` as an integer, so the API takes
//! any number whose value is whole and in range, not only those written without a fraction.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;

struct Whole<T>(PhantomData<T>);

impl<T: TryFrom<i128>> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number in range")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(i128::from(v)).map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(i128::from(v)).map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // Every whole f64 within ±2^63 converts exactly; anything else is refused.
        let whole = v.is_finite() && v.fract() == 0.0 && v.abs() < 9.2e18;
        if !whole {
            return Err(E::custom(format!("{v} is not a whole number in range")));
        }
        T::try_from(v as i128).map_err(|_| E::custom(format!("{v} is out of range")))
    }
}

/// Points: a whole number of any size, beyond `i64` saturated, so that every oversize amount
/// is refused by the same range check (`invalid-amount`) rather than by the parser.
struct Points;

impl Visitor<'_> for Points {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of points")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        Ok(i64::try_from(v).unwrap_or(i64::MAX))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if !v.is_finite() || v.fract() != 0.0 {
            return Err(E::custom(format!("{v} is not a whole number of points")));
        }
        // `as` saturates at the ends of i64.
        Ok(v as i64)
    }
}

/// Required points (see [`Points`]).
pub fn points<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(Points)
}

/// Optional points that, when present, are not `null`.
pub fn points_present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    points(d).map(Some)
}

/// Optional points, or `null`.
pub fn points_nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Value>::deserialize(d)?
        .map(|v| points(v).map_err(de::Error::custom))
        .transpose()
}

/// A required whole number.
pub fn required<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(Whole(PhantomData))
}

/// An optional whole number that may also be `null`.
pub fn nullable<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<Option<T>, D::Error> {
    struct Nullable<T>(PhantomData<T>);
    impl<'de, T: TryFrom<i128>> Visitor<'de> for Nullable<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number in range, or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            required(d).map(Some)
        }
    }
    d.deserialize_option(Nullable(PhantomData))
}

/// An optional whole number that, when present, is not `null`.
pub fn present<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<Option<T>, D::Error> {
    required(d).map(Some)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "super::required")]
        n: i64,
        #[serde(default, deserialize_with = "super::nullable")]
        m: Option<u32>,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Pts {
        #[serde(default, deserialize_with = "super::points_nullable")]
        p: Option<i64>,
    }

    #[test]
    fn points_beyond_i64_saturate_so_the_range_check_refuses_them() {
        let p = |json: &str| serde_json::from_str::<Pts>(json).map(|x| x.p);
        assert_eq!(p(r#"{"p": 18446744073709551616}"#).unwrap(), Some(i64::MAX));
        assert_eq!(p(r#"{"p": 18446744073709551615}"#).unwrap(), Some(i64::MAX));
        assert_eq!(p(r#"{"p": -1e30}"#).unwrap(), Some(i64::MIN));
        assert_eq!(p(r#"{"p": 5.0}"#).unwrap(), Some(5));
        assert_eq!(p(r#"{"p": null}"#).unwrap(), None);
        assert!(p(r#"{"p": 1.5}"#).is_err());
    }

    #[test]
    fn whole_numbers_in_any_notation_are_taken_and_others_refused() {
        assert_eq!(
            parse(r#"{"n": 1952.0}"#).unwrap(),
            Body { n: 1952, m: None }
        );
        assert_eq!(parse(r#"{"n": -3, "m": 7.0}"#).unwrap().m, Some(7));
        assert_eq!(parse(r#"{"n": 1, "m": null}"#).unwrap().m, None);
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": 9223372036854775808}"#,
            r#"{"n": 1, "m": -1}"#,
            r#"{"n": "1"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
