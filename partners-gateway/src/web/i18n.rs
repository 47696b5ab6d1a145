//! The pages' two languages: messages from Fluent files (`web/locales/*.ftl`), numbers with
//! Persian digits and separators in Persian, and dates in the Gregorian or the Solar Hijri
//! calendar (ICU4X's Persian calendar).

use chrono::{Datelike, NaiveDate};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::sync::OnceLock;

/// A page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Persian: right to left, Persian digits.
    Fa,
    /// English.
    En,
}

impl Lang {
    /// The language of a code (`fa`, `en`), if one of ours.
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fa" | "fa-ir" => Some(Lang::Fa),
            "en" | "en-gb" | "en-us" => Some(Lang::En),
            _ => None,
        }
    }

    /// Its code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fa => "fa",
            Lang::En => "en",
        }
    }

    /// `rtl` or `ltr`.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::Fa => "rtl",
            Lang::En => "ltr",
        }
    }

    /// The other language (the switch on every page).
    pub fn other(self) -> Lang {
        match self {
            Lang::Fa => Lang::En,
            Lang::En => Lang::Fa,
        }
    }
}

const EN: &str = include_str!("../../web/locales/en.ftl");
const FA: &str = include_str!("../../web/locales/fa.ftl");

struct Bundles {
    en: FluentBundle<FluentResource>,
    fa: FluentBundle<FluentResource>,
}

fn bundle(lang: &str, src: &str) -> FluentBundle<FluentResource> {
    let id: unic_langid::LanguageIdentifier = lang.parse().expect("language id");
    let mut b = FluentBundle::new_concurrent(vec![id]);
    let res = FluentResource::try_new(src.to_string()).expect("the locale files parse");
    b.add_resource(res).expect("no message defined twice");
    // Values are isolated by the page's own markup (`<bdi>`), not by invisible marks.
    b.set_use_isolating(false);
    b
}

fn bundles() -> &'static Bundles {
    static B: OnceLock<Bundles> = OnceLock::new();
    B.get_or_init(|| Bundles {
        en: bundle("en", EN),
        fa: bundle("fa", FA),
    })
}

/// The message `key` in `lang` with `args`; the key itself when there is no such message (a
/// test checks both files define the same keys).
pub fn text(lang: Lang, key: &str, args: &[(&str, String)]) -> String {
    let b = match lang {
        Lang::Fa => &bundles().fa,
        Lang::En => &bundles().en,
    };
    let Some(pattern) = b.get_message(key).and_then(|m| m.value()) else {
        return key.to_string();
    };
    let mut fargs = FluentArgs::new();
    for (k, v) in args {
        fargs.set(*k, FluentValue::from(v.clone()));
    }
    let mut errors = vec![];
    let s = b.format_pattern(pattern, Some(&fargs), &mut errors);
    s.into_owned()
}

/// The message ids a locale file defines.
pub fn keys(lang: Lang) -> Vec<String> {
    let src = match lang {
        Lang::Fa => FA,
        Lang::En => EN,
    };
    let res = FluentResource::try_new(src.to_string()).expect("the locale files parse");
    res.entries()
        .filter_map(|e| match e {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_string()),
            _ => None,
        })
        .collect()
}

/// `s` with its ASCII digits as Persian digits (and `.` as the Persian decimal separator, `,`
/// as its thousands separator) in Persian.
pub fn digits(lang: Lang, s: &str) -> String {
    match lang {
        Lang::En => s.to_string(),
        Lang::Fa => s
            .chars()
            .map(|c| match c {
                '0'..='9' => char::from_u32('۰' as u32 + (c as u32 - '0' as u32)).unwrap_or(c),
                ',' => '٬',
                '.' => '٫',
                c => c,
            })
            .collect(),
    }
}

/// A whole number with thousands grouped, in `lang`'s digits. A negative number in Persian
/// starts with a left-to-right mark, so its minus stays on the left in right-to-left text.
pub fn number(lang: Lang, n: i64) -> String {
    let raw = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(raw.len() + raw.len() / 3 + 4);
    if n < 0 {
        if lang == Lang::Fa {
            out.push('\u{200E}');
        }
        out.push('-');
    }
    for (i, c) in raw.chars().enumerate() {
        if i > 0 && (raw.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    digits(lang, &out)
}

/// A decimal figure with `places` decimals, grouped, in `lang`'s digits.
pub fn decimal(lang: Lang, x: f64, places: usize) -> String {
    let s = format!("{:.*}", places, x.abs());
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    let mut out = number(Lang::En, whole.parse::<i64>().unwrap_or(0));
    if x < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        out.insert(0, '-');
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    digits(lang, &out)
}

/// Which calendar dates are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    /// ISO dates, `2026-12-01`.
    Gregorian,
    /// The Solar Hijri calendar, `1405/09/10`.
    SolarHijri,
}

impl Calendar {
    /// The calendar of a code (`gregorian`, `persian`).
    pub fn parse(s: &str) -> Option<Calendar> {
        match s {
            "gregorian" => Some(Calendar::Gregorian),
            "persian" => Some(Calendar::SolarHijri),
            _ => None,
        }
    }

    /// Its code.
    pub fn code(self) -> &'static str {
        match self {
            Calendar::Gregorian => "gregorian",
            Calendar::SolarHijri => "persian",
        }
    }
}

/// `d` in the Solar Hijri calendar: (year, month, day).
pub fn solar_hijri(d: NaiveDate) -> Option<(i32, u8, u8)> {
    let iso = icu_calendar::Date::try_new_iso(d.year(), d.month() as u8, d.day() as u8).ok()?;
    let p = iso.to_calendar(icu_calendar::cal::Persian);
    Some((p.era_year().year, p.month().ordinal, p.day_of_month().0))
}

/// `d` as a person reads it in `lang` and `cal`.
pub fn date(lang: Lang, cal: Calendar, d: NaiveDate) -> String {
    let s = match cal {
        Calendar::Gregorian => d.format("%Y-%m-%d").to_string(),
        Calendar::SolarHijri => match solar_hijri(d) {
            Some((y, m, day)) => format!("{y:04}/{m:02}/{day:02}"),
            None => d.format("%Y-%m-%d").to_string(),
        },
    };
    digits(lang, &s)
}

/// A month (`2026-11`) as a person reads it: `2026-11`, or in the Solar Hijri calendar the
/// year and month its first day falls in.
pub fn month(lang: Lang, cal: Calendar, year: i32, month: u32) -> String {
    match (cal, NaiveDate::from_ymd_opt(year, month, 1)) {
        (Calendar::SolarHijri, Some(d)) => match solar_hijri(d) {
            Some((y, m, _)) => digits(lang, &format!("{y:04}/{m:02}")),
            None => digits(lang, &format!("{year:04}-{month:02}")),
        },
        _ => digits(lang, &format!("{year:04}-{month:02}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_define_the_same_messages() {
        let mut en = keys(Lang::En);
        let mut fa = keys(Lang::Fa);
        en.sort();
        fa.sort();
        let only_en: Vec<_> = en.iter().filter(|k| !fa.contains(k)).collect();
        let only_fa: Vec<_> = fa.iter().filter(|k| !en.contains(k)).collect();
        assert!(only_en.is_empty(), "missing in fa.ftl: {only_en:?}");
        assert!(only_fa.is_empty(), "missing in en.ftl: {only_fa:?}");
        assert!(en.len() > 50, "{} messages", en.len());
    }

    #[test]
    fn numbers_and_dates_read_in_each_language() {
        assert_eq!(number(Lang::En, 1_234_567), "1,234,567");
        assert_eq!(number(Lang::En, -1_000), "-1,000");
        assert_eq!(number(Lang::Fa, 1_234_567), "۱٬۲۳۴٬۵۶۷");
        assert_eq!(number(Lang::Fa, -500), "\u{200E}-۵۰۰");
        assert_eq!(decimal(Lang::En, 12.345, 1), "12.3");
        assert_eq!(decimal(Lang::Fa, 1234.5, 2), "۱٬۲۳۴٫۵۰");
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
        assert_eq!(date(Lang::En, Calendar::Gregorian, d), "2026-12-01");
        // 1 December 2026 is 10 Azar 1405.
        assert_eq!(solar_hijri(d), Some((1405, 9, 10)));
        assert_eq!(date(Lang::Fa, Calendar::SolarHijri, d), "۱۴۰۵/۰۹/۱۰");
        // Nowruz: 21 March 2026 is 1 Farvardin 1405.
        let nowruz = NaiveDate::from_ymd_opt(2026, 3, 21).expect("date");
        assert_eq!(solar_hijri(nowruz), Some((1405, 1, 1)));
        assert_eq!(text(Lang::En, "no-such-message", &[]), "no-such-message");
    }
}
