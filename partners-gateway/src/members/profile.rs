//! A member's profile: its fields, their validation, consent per channel, and what each kind
//! of reader may see.
//!
//! | field | operator | finance | partner (scope `read`) |
//! |---|---|---|---|
//! | name, language | yes | no | yes |
//! | birth date, gender | yes | no | no |
//! | email, phone | yes | no | no |
//! | city, postcode | yes | city only | no |
//! | enrolment (partner, branch, channel) | yes | yes | its own enrolments only |
//! | consent per channel | yes | no | yes |

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A contact channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Text messages to `phone`.
    Sms,
    /// Mail to `email`.
    Email,
    /// Push notifications to the member's app.
    Push,
}

/// A member's consent on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Consent {
    /// Whether the member agreed to be contacted.
    pub granted: bool,
    /// When it was given or withdrawn (ms since the Unix epoch).
    pub at_ms: i64,
    /// Where: `portal`, `partner/1 till`, `call centre`, ...
    pub source: String,
}

/// Where the member enrolled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Enrolment {
    /// The partner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<u32>,
    /// Its branch (station, store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// `till`, `app`, `web`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// A member's profile, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    /// Full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// Any value the member gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone, E.164 (`+989121234567`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Preferred language (`fa`, `en`, `en-GB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Postcode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// Where the member enrolled.
    #[serde(default)]
    pub enrolment: Enrolment,
    /// Consent per channel.
    #[serde(default)]
    pub consent: std::collections::BTreeMap<Channel, Consent>,
}

/// Who reads a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// An operator: everything.
    Operator,
    /// The finance role: the city and the enrolment.
    Finance,
    /// A partner: name, language, consent, and its own enrolment.
    Partner(u32),
}

/// A field that does not validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct ProfileError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub why: String,
}

/// Longest name, city, branch or channel, in characters.
pub const TEXT_MAX: usize = 100;

fn err(field: &'static str, why: impl Into<String>) -> ProfileError {
    ProfileError {
        field,
        why: why.into(),
    }
}

fn text(field: &'static str, v: &Option<String>, max: usize) -> Result<(), ProfileError> {
    match v {
        Some(s) if s.trim().is_empty() || s.chars().count() > max => {
            Err(err(field, format!("1 to {max} characters, not all spaces")))
        }
        _ => Ok(()),
    }
}

/// Whether `s` is a language tag we take: two lower-case letters, optionally a hyphen and two
/// upper-case ones (`fa`, `en-GB`).
pub fn is_language_tag(l: &str) -> bool {
    match l.split_once('-') {
        None => l.len() == 2 && l.bytes().all(|b| b.is_ascii_lowercase()),
        Some((a, b)) => {
            a.len() == 2
                && a.bytes().all(|x| x.is_ascii_lowercase())
                && b.len() == 2
                && b.bytes().all(|x| x.is_ascii_uppercase())
        }
    }
}

/// Whether `s` is E.164: `+`, a first digit 1 to 9, then 7 to 14 digits.
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// Whether `s` looks like an email address: one `@`, no spaces, a dot in the domain.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
        && domain
            .split_once('.')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
        && s.chars().count() <= 254
}

impl Profile {
    /// Checks every field; `today` bounds the birth date.
    pub fn validate(&self, today: chrono::NaiveDate) -> Result<(), ProfileError> {
        text("name", &self.name, TEXT_MAX)?;
        text("gender", &self.gender, 32)?;
        text("city", &self.city, TEXT_MAX)?;
        text("enrolment.branch", &self.enrolment.branch, TEXT_MAX)?;
        text("enrolment.channel", &self.enrolment.channel, 32)?;
        if let Some(d) = &self.birth_date {
            let shaped = d.len() == 10
                && d.bytes().enumerate().all(|(i, b)| match i {
                    4 | 7 => b == b'-',
                    _ => b.is_ascii_digit(),
                });
            let date = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .filter(|_| shaped)
                .ok_or_else(|| err("birth_date", "a date, YYYY-MM-DD"))?;
            if date > today {
                return Err(err("birth_date", "not in the future"));
            }
            if date < chrono::NaiveDate::from_ymd_opt(1900, 1, 1).expect("a date") {
                return Err(err("birth_date", "not before 1900"));
            }
        }
        if let Some(e) = &self.email {
            if !is_email(e) {
                return Err(err("email", "an address like name@example.com"));
            }
        }
        if let Some(p) = &self.phone {
            if !is_e164(p) {
                return Err(err(
                    "phone",
                    "E.164: +, the country code and number, 8 to 15 digits",
                ));
            }
        }
        if let Some(l) = &self.language {
            if !is_language_tag(l) {
                return Err(err("language", "a language tag like fa, en or en-GB"));
            }
        }
        if let Some(p) = &self.postcode {
            let ok = (2..=16).contains(&p.len())
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-');
            if !ok {
                return Err(err(
                    "postcode",
                    "2 to 16 letters, digits, spaces or hyphens",
                ));
            }
        }
        for c in self.consent.values() {
            if c.source.trim().is_empty() || c.source.chars().count() > 200 {
                return Err(err("consent.source", "1 to 200 characters, not all spaces"));
            }
        }
        Ok(())
    }

    /// What `viewer` may see of it.
    pub fn visible_to(&self, viewer: Viewer) -> Profile {
        match viewer {
            Viewer::Operator => self.clone(),
            Viewer::Finance => Profile {
                city: self.city.clone(),
                enrolment: self.enrolment.clone(),
                ..Profile::default()
            },
            Viewer::Partner(p) => Profile {
                name: self.name.clone(),
                language: self.language.clone(),
                consent: self.consent.clone(),
                enrolment: if self.enrolment.partner == Some(p) {
                    self.enrolment.clone()
                } else {
                    Enrolment::default()
                },
                ..Profile::default()
            },
        }
    }

    /// Whether the member may be contacted on `channel` now.
    pub fn may_contact(&self, channel: Channel) -> bool {
        self.consent.get(&channel).is_some_and(|c| c.granted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("date")
    }

    #[test]
    fn each_field_is_validated_with_a_clear_error() {
        let ok = Profile {
            name: Some("Sara Ahmadi".into()),
            birth_date: Some("1990-03-21".into()),
            gender: Some("female".into()),
            email: Some("sara@example.ir".into()),
            phone: Some("+989121234567".into()),
            language: Some("fa".into()),
            city: Some("Tehran".into()),
            postcode: Some("1983963113".into()),
            ..Profile::default()
        };
        assert_eq!(ok.validate(today()), Ok(()));
        let field = |p: Profile| p.validate(today()).expect_err("refused").field;
        assert_eq!(
            field(Profile {
                birth_date: Some("2027-01-01".into()),
                ..ok.clone()
            }),
            "birth_date"
        );
        assert_eq!(
            field(Profile {
                birth_date: Some("1990-02-30".into()),
                ..ok.clone()
            }),
            "birth_date"
        );
        assert_eq!(
            field(Profile {
                email: Some("sara.example.ir".into()),
                ..ok.clone()
            }),
            "email"
        );
        assert_eq!(
            field(Profile {
                phone: Some("09121234567".into()),
                ..ok.clone()
            }),
            "phone"
        );
        assert_eq!(
            field(Profile {
                phone: Some("+0912123456".into()),
                ..ok.clone()
            }),
            "phone"
        );
        assert_eq!(
            field(Profile {
                language: Some("farsi".into()),
                ..ok.clone()
            }),
            "language"
        );
        assert_eq!(
            field(Profile {
                name: Some("   ".into()),
                ..ok.clone()
            }),
            "name"
        );
        assert_eq!(
            field(Profile {
                postcode: Some("12/34".into()),
                ..ok
            }),
            "postcode"
        );
    }

    #[test]
    fn each_reader_sees_only_its_fields() {
        let mut p = Profile {
            name: Some("Sara".into()),
            birth_date: Some("1990-03-21".into()),
            email: Some("sara@example.ir".into()),
            city: Some("Tehran".into()),
            enrolment: Enrolment {
                partner: Some(2),
                branch: Some("station-7".into()),
                channel: Some("till".into()),
            },
            ..Profile::default()
        };
        p.consent.insert(
            Channel::Sms,
            Consent {
                granted: true,
                at_ms: 1,
                source: "till".into(),
            },
        );
        assert_eq!(p.visible_to(Viewer::Operator), p);
        let f = p.visible_to(Viewer::Finance);
        assert_eq!(
            (&f.name, &f.email, f.city.as_deref()),
            (&None, &None, Some("Tehran"))
        );
        let own = p.visible_to(Viewer::Partner(2));
        assert_eq!(own.name.as_deref(), Some("Sara"));
        assert_eq!(
            (&own.birth_date, &own.email, &own.city),
            (&None, &None, &None)
        );
        assert_eq!(own.enrolment.branch.as_deref(), Some("station-7"));
        assert!(own.may_contact(Channel::Sms) && !own.may_contact(Channel::Email));
        assert_eq!(
            p.visible_to(Viewer::Partner(1)).enrolment,
            Enrolment::default()
        );
    }
}
