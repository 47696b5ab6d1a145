//! The programme's rules: rate tables (points per unit of currency, mile or litre),
//! effective-dated and versioned, with branch and category overrides and written-down rounding;
//! earn rules and campaigns; the points budget guard's periods. Pure: no HTTP, no store.

pub mod guard;
pub mod rates;
pub mod rules;

/// A JSON number as a whole number, in any notation (`7` or `7.0`).
fn whole_of<E: serde::de::Error>(n: &serde_json::Number) -> Result<i64, E> {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => Ok(i),
        (None, Some(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(E::custom(format!("{n} is not a whole number"))),
    }
}

/// A whole number in any JSON notation (`7` or `7.0`), within `T`'s range; the schema states
/// the bounds the server then checks.
pub fn whole<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    let n = <serde_json::Number as serde::Deserialize>::deserialize(d)?;
    let v = whole_of::<D::Error>(&n)?;
    T::try_from(v).map_err(|_| D::Error::custom(format!("{v} is out of range")))
}

/// [`whole`], or null.
pub fn whole_option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    match <Option<serde_json::Number> as serde::Deserialize>::deserialize(d)? {
        None => Ok(None),
        Some(n) => {
            let v = whole_of::<D::Error>(&n)?;
            T::try_from(v)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{v} is out of range")))
        }
    }
}

/// A list of whole numbers from 0 to 2,147,483,647 (the OpenAPI `int32` the schemas state), in
/// any JSON notation (`7` or `7.0`).
pub fn whole_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    <Vec<serde_json::Number> as serde::Deserialize>::deserialize(d)?
        .into_iter()
        .map(|n| {
            let v = whole_of::<D::Error>(&n)?;
            if !(0..=i64::from(i32::MAX)).contains(&v) {
                return Err(D::Error::custom(format!("{v} is not from 0 to 2147483647")));
            }
            T::try_from(v).map_err(|_| D::Error::custom(format!("{v} is out of range")))
        })
        .collect()
}
