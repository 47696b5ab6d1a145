//! Engagement: the rewards catalogue and its vouchers, discount codes, referrals, draws,
//! surveys and claims. This room holds their definitions, the checks each definition must pass,
//! and the arithmetic that must be reproducible outside the gateway (a draw's winners from its
//! seed and entry list, a survey's NPS).
//!
//! Architecture invariant: pure, like `programme/` and `members/`: no store, no HTTP, no clock.
//! `ops/engagement/` drives it, and the ledger holds what must be atomic (a reward's stock, the
//! points granted).

pub mod claims;
pub mod codes;
pub mod draw;
pub mod model;
pub mod nps;

/// A definition that cannot be run as given, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Checks `v` lies in `min..=max`, naming `field` when it does not.
pub fn within<T: PartialOrd + std::fmt::Display>(
    field: &str,
    v: T,
    min: T,
    max: T,
) -> Result<(), Invalid> {
    if v < min || v > max {
        return Err(Invalid(format!("{field} must be {min} to {max}, got {v}")));
    }
    Ok(())
}

/// Checks a text is 1 to `max` characters, not all spaces.
pub fn text(field: &str, v: &str, max: usize) -> Result<(), Invalid> {
    if v.trim().is_empty() || v.chars().count() > max {
        return Err(Invalid(format!(
            "{field} must be 1 to {max} characters, not all spaces"
        )));
    }
    Ok(())
}

/// A struct from a JSON object only: serde would also read a struct from an array of its
/// fields, which the OpenAPI document does not allow (and an empty array would be a struct of
/// defaults).
pub fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    if !v.is_object() {
        return Err(D::Error::custom("expected a JSON object"));
    }
    serde_json::from_value(v).map_err(D::Error::custom)
}

/// A list of structs, each from a JSON object only (see [`object`]).
pub fn objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let v = <Vec<serde_json::Value> as serde::Deserialize>::deserialize(d)?;
    v.into_iter()
        .map(|x| {
            if !x.is_object() {
                return Err(D::Error::custom("expected a list of JSON objects"));
            }
            serde_json::from_value(x).map_err(D::Error::custom)
        })
        .collect()
}
