//! How a batch command is read. `op` tags each command; a derived internally tagged enum would
//! buffer every command's fields (each key and string copied into serde's own tree) before it
//! knows the variant. Clients write `op` first, so when it comes first the variant's fields are
//! read straight from the body; only a command with `op` further on is gathered first, into a
//! JSON object. Either way the variant's own request type reads the fields, so its rules (its
//! unknown fields refused, its whole numbers) hold as they do for the single request, and a
//! second `op` is refused in both orders.

use super::bodies::{BatchCommand, BurnRequest, EarnRequest, HoldRequest, ReversalRequest};
use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// The `op` values, as the derived enum names them.
const OPS: &[&str] = &["earn", "burn", "hold", "capture", "void", "reversal"];

/// A capture's fields besides `op`.
#[derive(Deserialize)]
struct CaptureFields {
    hold_reference: String,
    reference: String,
    #[serde(default, deserialize_with = "crate::api::whole::points_nullable")]
    points: Option<i64>,
}

/// A void's fields besides `op`.
#[derive(Deserialize)]
struct VoidFields {
    hold_reference: String,
    reference: String,
}

impl<'de> Deserialize<'de> for BatchCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(CommandVisitor)
    }
}

/// The command `op` names, its fields read from `fields`.
fn command<'de, D: Deserializer<'de>>(op: &str, fields: D) -> Result<BatchCommand, D::Error> {
    Ok(match op {
        "earn" => BatchCommand::Earn(EarnRequest::deserialize(fields)?),
        "burn" => BatchCommand::Burn(BurnRequest::deserialize(fields)?),
        "hold" => BatchCommand::Hold(HoldRequest::deserialize(fields)?),
        "capture" => {
            let c = CaptureFields::deserialize(fields)?;
            BatchCommand::Capture {
                hold_reference: c.hold_reference,
                reference: c.reference,
                points: c.points,
            }
        }
        "void" => {
            let v = VoidFields::deserialize(fields)?;
            BatchCommand::Void {
                hold_reference: v.hold_reference,
                reference: v.reference,
            }
        }
        "reversal" => BatchCommand::Reversal(ReversalRequest::deserialize(fields)?),
        other => return Err(de::Error::unknown_variant(other, OPS)),
    })
}

struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = BatchCommand;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command: an object with `op`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BatchCommand, A::Error> {
        let Some(first) = map.next_key::<Text<'de>>()? else {
            return Err(de::Error::missing_field("op"));
        };
        if first.as_str() == "op" {
            let op = map.next_value::<Text<'de>>()?;
            return command(op.as_str(), MapAccessDeserializer::new(AfterOp(map)));
        }
        let mut fields = serde_json::Map::new();
        let mut op = None;
        let mut key = Some(first);
        while let Some(k) = key {
            if k.as_str() == "op" {
                if op.is_some() {
                    return Err(de::Error::duplicate_field("op"));
                }
                op = Some(map.next_value::<Text<'de>>()?);
            } else {
                let k = k.into_string();
                if fields.contains_key(&k) {
                    return Err(de::Error::custom(format_args!("duplicate field `{k}`")));
                }
                let v = map.next_value::<serde_json::Value>()?;
                fields.insert(k, v);
            }
            key = map.next_key()?;
        }
        let op = op.ok_or_else(|| de::Error::missing_field("op"))?;
        command(op.as_str(), serde_json::Value::Object(fields)).map_err(de::Error::custom)
    }
}

/// The rest of a command's object once `op` was read: a second `op` is refused, every other
/// field is handed on as it comes.
struct AfterOp<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for AfterOp<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.0.next_key::<Text<'de>>()? {
            None => Ok(None),
            Some(k) if k.as_str() == "op" => Err(de::Error::duplicate_field("op")),
            Some(Text::Borrowed(k)) => seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some),
            Some(Text::Owned(k)) => seed.deserialize(StringDeserializer::new(k)).map(Some),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// A key or `op`'s value: borrowed from the body when it has no escapes, else owned.
enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Owned(s) => s,
        }
    }

    fn into_string(self) -> String {
        match self {
            Text::Borrowed(s) => s.to_owned(),
            Text::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text::Owned(v))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derived internally tagged enum this parser stands in for: the oracle.
    #[derive(Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum Derived {
        Earn(EarnRequest),
        Burn(BurnRequest),
        Hold(HoldRequest),
        Capture {
            hold_reference: String,
            reference: String,
            #[serde(default, deserialize_with = "crate::api::whole::points_nullable")]
            points: Option<i64>,
        },
        Void {
            hold_reference: String,
            reference: String,
        },
        Reversal(ReversalRequest),
    }

    impl From<Derived> for BatchCommand {
        fn from(d: Derived) -> BatchCommand {
            match d {
                Derived::Earn(r) => BatchCommand::Earn(r),
                Derived::Burn(r) => BatchCommand::Burn(r),
                Derived::Hold(r) => BatchCommand::Hold(r),
                Derived::Capture {
                    hold_reference,
                    reference,
                    points,
                } => BatchCommand::Capture {
                    hold_reference,
                    reference,
                    points,
                },
                Derived::Void {
                    hold_reference,
                    reference,
                } => BatchCommand::Void {
                    hold_reference,
                    reference,
                },
                Derived::Reversal(r) => BatchCommand::Reversal(r),
            }
        }
    }

    /// The fields of one command of each kind, `op` left out.
    const FIELDS: &[(&str, &str)] = &[
        (
            "earn",
            r#""reference":"e-1","member":"FF000001","amount":{"value":"12.50","unit":"GBP"},"branch":"b-1""#,
        ),
        (
            "burn",
            r#""reference":"b-1","member":"FF000001","points":120"#,
        ),
        (
            "burn",
            r#""reference":"b-2","member":"FF000001","amount":{"value":"3","unit":"GBP"}"#,
        ),
        (
            "hold",
            r#""reference":"h-1","member":"FF000001","points":500,"timeout_seconds":3600"#,
        ),
        (
            "capture",
            r#""hold_reference":"h-1","reference":"c-1","points":200"#,
        ),
        (
            "capture",
            r#""hold_reference":"h-1","reference":"c-2","points":null"#,
        ),
        ("capture", r#""reference":"c-3","hold_reference":"h-1""#),
        ("void", r#""hold_reference":"h-1","reference":"v-1""#),
        (
            "void",
            r#""hold_reference":"h-1","reference":"v-2","note":"ignored, as before""#,
        ),
        ("void", r#""hold_reference":"h-1","re\u0066erence":"v-3""#),
        (
            "reversal",
            r#""reference":"r-1","original_reference":"e-1","points":5"#,
        ),
        (
            "reversal",
            r#""reference":"r-\u0032","original_reference":"e-1""#,
        ),
    ];

    /// Both readings of `json`: equal commands, or both refused.
    fn same(json: &str) -> bool {
        let ours = serde_json::from_str::<BatchCommand>(json);
        let derived = serde_json::from_str::<Derived>(json).map(BatchCommand::from);
        match (&ours, &derived) {
            (Ok(a), Ok(b)) => {
                assert_eq!(
                    serde_json::to_value(a).expect("encodes"),
                    serde_json::to_value(b).expect("encodes"),
                    "{json}"
                );
                true
            }
            (Err(_), Err(_)) => false,
            _ => panic!(
                "{json}: ours {:?}, derived {:?}",
                ours.map(|_| ()).map_err(|e| e.to_string()),
                derived.map(|_| ()).map_err(|e| e.to_string())
            ),
        }
    }

    #[test]
    fn op_anywhere_reads_as_the_derived_enum_does() {
        for (op, fields) in FIELDS {
            let tag = format!(r#""op":"{op}""#);
            // `op` first, last, and after the first field.
            let (head, tail) = fields.split_once(",\"").expect("two fields or more");
            for json in [
                format!("{{{tag},{fields}}}"),
                format!("{{{fields},{tag}}}"),
                format!("{{{head},{tag},\"{tail}}}"),
            ] {
                assert!(same(&json), "{json} parses");
            }
        }
    }

    #[test]
    fn what_the_derived_enum_refuses_is_refused() {
        let refused = [
            r#"{}"#,
            r#"{"reference":"e-1"}"#,
            r#"{"op":"mint","reference":"e-1"}"#,
            r#"{"op":7,"reference":"e-1"}"#,
            r#"{"op":"earn","op":"earn","reference":"e-1","member":"m","amount":{"value":"1","unit":"GBP"}}"#,
            r#"{"op":"void","hold_reference":"h","reference":"v","op":"void"}"#,
            r#"{"hold_reference":"h","op":"void","reference":"v","op":"void"}"#,
            r#"{"op":"earn","reference":"e-1","member":"m","amount":{"value":"1","unit":"GBP"},"colour":"red"}"#,
            r#"{"reference":"e-1","op":"earn","member":"m","amount":{"value":"1","unit":"GBP"},"colour":"red"}"#,
            r#"{"reference":"e-1","reference":"e-2","op":"burn","member":"m","points":1}"#,
            r#"{"op":"burn","reference":"e-1","member":"m","points":1.5}"#,
            r#"{"points":1.5,"op":"burn","reference":"e-1","member":"m"}"#,
            r#"{"op":"capture","reference":"c-1"}"#,
            r#"["op","earn"]"#,
            r#""earn""#,
        ];
        for json in refused {
            assert!(!same(json), "{json} is refused");
        }
    }
}
