//! Notifications to members: message templates per event and language rendered with
//! [minijinja](https://docs.rs/minijinja), safe in right-to-left text, and the provider's
//! request built from the operator's body template (`provider.rs` sends it). Pure, but for the
//! provider call: the outbox, consent, quiet hours, caps and the send log are `ops/notify.rs`'s.

pub mod provider;

use chrono::NaiveTime;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// First strong isolate: what follows is laid out on its own, in its own direction.
const FSI: char = '\u{2068}';
/// Pop directional isolate: ends an isolate.
const PDI: char = '\u{2069}';

/// Whether `language` (a tag like `fa` or `fa-IR`) is written right to left.
pub fn is_rtl(language: &str) -> bool {
    matches!(
        language.split('-').next().unwrap_or(""),
        "fa" | "ar" | "he" | "ur" | "ps" | "ckb"
    )
}

/// `s` with ASCII digits as Persian digits (۰ to ۹).
pub fn persian_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32('۰' as u32 + (c as u32 - '0' as u32)).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Why a template does not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// How a message is written: its language and whether numbers use Persian digits.
#[derive(Debug, Clone, Copy)]
pub struct Style<'a> {
    /// The language tag.
    pub language: &'a str,
    /// Persian digits in Persian text.
    pub persian_digits: bool,
}

/// Renders a message template (`Your {{ points }} points expire on {{ date }}`) with `vars`.
/// In a right-to-left language every value is isolated (U+2068 … U+2069), so a Latin name or a
/// number inside Persian text keeps its own direction and never reorders the words around it;
/// in Persian, with `persian_digits`, numbers are written in Persian digits. A value the
/// message names but `vars` lacks renders empty.
pub fn render_message<V: Serialize>(
    template: &str,
    style: Style<'_>,
    vars: &V,
) -> Result<String, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    let rtl = is_rtl(style.language);
    let digits = style.persian_digits && style.language.starts_with("fa");
    env.set_formatter(move |out, _state, value| {
        if value.is_undefined() || value.is_none() {
            return Ok(());
        }
        let mut text = value.to_string();
        if digits {
            text = persian_digits(&text);
        }
        if rtl {
            text = format!("{FSI}{text}{PDI}");
        }
        out.write_str(&text)
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
    });
    env.render_str(
        template,
        minijinja::Value::from(minijinja::value::Serde(vars)),
    )
    .map_err(|e| TemplateError(e.to_string()))
}

/// Checks that `template` parses (for templates operators save).
pub fn check_template(template: &str) -> Result<(), TemplateError> {
    let env = Environment::new();
    env.template_from_str(template)
        .map(|_| ())
        .map_err(|e| TemplateError(e.to_string()))
}

/// The provider's request body from the operator's template (`{"to": {{ to }}, "text":
/// {{ text }}}`): every value is written as JSON (strings quoted and escaped), so a message
/// cannot break the body's structure.
pub fn render_provider_body<V: Serialize>(
    template: &str,
    vars: &V,
) -> Result<String, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Json);
    env.render_str(
        template,
        minijinja::Value::from(minijinja::value::Serde(vars)),
    )
    .map_err(|e| TemplateError(e.to_string()))
}

/// A time of day `HH:MM`.
pub fn time_of_day(s: &str) -> Option<NaiveTime> {
    if s.len() != 5 {
        return None;
    }
    NaiveTime::parse_from_str(s, "%H:%M").ok()
}

/// When a message due at local time `now` may go, with quiet hours from `from` until `until`
/// (spanning midnight when `until` is earlier): `None` now, else the local time the quiet
/// hours end.
pub fn after_quiet_hours(now: NaiveTime, from: NaiveTime, until: NaiveTime) -> Option<NaiveTime> {
    let quiet = if from <= until {
        from <= now && now < until
    } else {
        now >= from || now < until
    };
    quiet.then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn persian_messages_isolate_values_and_write_persian_digits() {
        let vars = json!({"name": "Sara", "points": 1250, "date": "2026-12-31"});
        let fa = render_message(
            "{{ name }} عزیز، {{ points }} امتیاز شما در {{ date }} منقضی می‌شود",
            Style {
                language: "fa",
                persian_digits: true,
            },
            &vars,
        )
        .expect("renders");
        assert_eq!(
            fa,
            "\u{2068}Sara\u{2069} عزیز، \u{2068}۱۲۵۰\u{2069} امتیاز شما در \u{2068}۲۰۲۶-۱۲-۳۱\u{2069} منقضی می‌شود"
        );
        let en = render_message(
            "Dear {{ name }}, {{ points }} points expire on {{ date }}{{ missing }}.",
            Style {
                language: "en",
                persian_digits: true,
            },
            &vars,
        )
        .expect("renders");
        assert_eq!(en, "Dear Sara, 1250 points expire on 2026-12-31.");
        assert!(check_template("{{ points ").is_err());
    }

    #[test]
    fn provider_bodies_quote_every_value() {
        let body = render_provider_body(
            r#"{"to": {{ to }}, "text": {{ text }}, "n": {{ n }}}"#,
            &json!({"to": "+989121234567", "text": "a \"quoted\"\nline", "n": 3}),
        )
        .expect("renders");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["text"], "a \"quoted\"\nline");
        assert_eq!(v["n"], 3);
        assert!(render_provider_body("{{ nope }}", &json!({})).is_err());
    }

    #[test]
    fn quiet_hours_span_midnight() {
        let t = |s| time_of_day(s).expect("time");
        assert_eq!(
            after_quiet_hours(t("23:30"), t("22:00"), t("08:00")),
            Some(t("08:00"))
        );
        assert_eq!(
            after_quiet_hours(t("07:59"), t("22:00"), t("08:00")),
            Some(t("08:00"))
        );
        assert_eq!(after_quiet_hours(t("08:00"), t("22:00"), t("08:00")), None);
        assert_eq!(
            after_quiet_hours(t("13:00"), t("12:00"), t("14:00")),
            Some(t("14:00"))
        );
        assert_eq!(after_quiet_hours(t("11:00"), t("12:00"), t("14:00")), None);
        assert!(time_of_day("8:00").is_none());
    }
}
