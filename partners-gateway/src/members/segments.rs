//! Segments: who is in a group of members, by age band, gender, city, tier, balance, days since
//! the last activity, visits, spend and the interval between visits.
//!
//! What a segment is evaluated on is one row of [`Facts`] per member, kept in columns of plain
//! numbers (genders and cities as interned ids), so deciding whether a member is in a segment is
//! a few comparisons, and listing a segment of a million members is one pass over memory. The
//! rows come from the journal and the profiles (`ops/audience.rs`); this module holds no store.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use utoipa::ToSchema;

/// An inclusive range; a side left out is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Between<T> {
    min: Option<T>,
    max: Option<T>,
}

impl<T: PartialOrd + Copy> Between<T> {
    fn of(min: Option<T>, max: Option<T>) -> Option<Between<T>> {
        (min.is_some() || max.is_some()).then_some(Between { min, max })
    }

    fn holds(&self, v: T) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
}

/// Longest list of genders or cities in a segment.
pub const VALUES_MAX: usize = 50;

/// A segment's definition: every condition given must hold (lists: any of their values);
/// each range is inclusive, and a side left out is open.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentRules {
    /// Youngest age, in whole years, from the profile's birth date (members without one are
    /// out of any age condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 150)]
    pub age_min: Option<u16>,
    /// Oldest age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 150)]
    pub age_max: Option<u16>,
    /// Any of these genders, as recorded (case and surrounding spaces ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 50, value_type = Option<Vec<String>>)]
    pub genders: Option<Vec<String>>,
    /// Any of these cities, as recorded (case and surrounding spaces ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 50, value_type = Option<Vec<String>>)]
    pub cities: Option<Vec<String>>,
    /// Lowest tier level (0: the base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 15)]
    pub tier_min: Option<u8>,
    /// Highest tier level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 15)]
    pub tier_max: Option<u8>,
    /// Fewest posted points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64)]
    pub balance_min: Option<i64>,
    /// Most posted points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64)]
    pub balance_max: Option<i64>,
    /// Fewest whole days since the member's last transaction of its own (earn, burn, transfer,
    /// adjustment); members with none are out of any such condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 100_000)]
    pub days_since_activity_min: Option<u32>,
    /// Most whole days since the last transaction of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 100_000)]
    pub days_since_activity_max: Option<u32>,
    /// Fewest visits (earns at partners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub visits_min: Option<u32>,
    /// Most visits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub visits_max: Option<u32>,
    /// Least spend reported with earns, in the programme's currency (`"120.50"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,4})?$")]
    pub spend_min: Option<Decimal>,
    /// Most spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,4})?$")]
    pub spend_max: Option<Decimal>,
    /// Fewest whole days between visits, on average (members with fewer than two visits are
    /// out of any such condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 100_000)]
    pub visit_interval_days_min: Option<u32>,
    /// Most whole days between visits, on average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 100_000)]
    pub visit_interval_days_max: Option<u32>,
}

/// Why a segment definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct SegmentError {
    /// The condition.
    pub field: &'static str,
    /// What is wrong.
    pub why: &'static str,
}

impl SegmentRules {
    /// Checks the definition: ranges in order, lists of 1 to [`VALUES_MAX`] non-blank values.
    pub fn validate(&self) -> Result<(), SegmentError> {
        fn ordered<T: PartialOrd>(a: &Option<T>, b: &Option<T>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => a <= b,
                _ => true,
            }
        }
        let bad = |field, why| Err(SegmentError { field, why });
        let order = "min is above max";
        if !ordered(&self.age_min, &self.age_max) {
            return bad("age", order);
        }
        if !ordered(&self.tier_min, &self.tier_max) {
            return bad("tier", order);
        }
        if !ordered(&self.balance_min, &self.balance_max) {
            return bad("balance", order);
        }
        if !ordered(&self.days_since_activity_min, &self.days_since_activity_max) {
            return bad("days_since_activity", order);
        }
        if !ordered(&self.visits_min, &self.visits_max) {
            return bad("visits", order);
        }
        if !ordered(&self.spend_min, &self.spend_max) {
            return bad("spend", order);
        }
        if !ordered(&self.visit_interval_days_min, &self.visit_interval_days_max) {
            return bad("visit_interval_days", order);
        }
        if [self.spend_min, self.spend_max]
            .iter()
            .flatten()
            .any(|d| d.is_sign_negative() || d.scale() > 4)
        {
            return bad("spend", "not negative, at most 4 decimal places");
        }
        for (field, list) in [("genders", &self.genders), ("cities", &self.cities)] {
            if let Some(v) = list {
                if v.is_empty() || v.len() > VALUES_MAX {
                    return bad(field, "1 to 50 values");
                }
                if v.iter()
                    .any(|s| s.trim().is_empty() || s.chars().count() > 100)
                {
                    return bad(field, "values of 1 to 100 characters, not all spaces");
                }
            }
        }
        Ok(())
    }
}

/// [`Row::reach`]: text messages.
pub const REACH_SMS: u8 = 1;
/// [`Row::reach`]: email.
pub const REACH_EMAIL: u8 = 2;
/// [`Row::reach`]: push.
pub const REACH_PUSH: u8 = 4;

/// "No value": a day, or an interned text.
const NONE_DAY: i32 = i32::MIN;

/// What a segment is evaluated on, for one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Birth date, days since 1970-01-01 (`i32::MIN`: unknown).
    pub birth: i32,
    /// Interned gender (0: unknown).
    pub gender: u32,
    /// Interned city (0: unknown).
    pub city: u32,
    /// Tier level.
    pub tier: u8,
    /// Whether the member is enrolled (rows exist for ids never enrolled).
    pub enrolled: bool,
    /// The day it enrolled (`i32::MIN`: unknown).
    pub enrolled_day: i32,
    /// Whether it is active (not suspended, closed or merged): only active members are in
    /// segments.
    pub active: bool,
    /// The channels it may be messaged on (consent given and an address), one bit each:
    /// [`REACH_SMS`], [`REACH_EMAIL`], [`REACH_PUSH`].
    pub reach: u8,
    /// Posted points.
    pub balance: i64,
    /// Day of the first and last visit (`i32::MIN`: none).
    pub first_visit: i32,
    /// See `first_visit`.
    pub last_visit: i32,
    /// Day of the last transaction of the member's own (`i32::MIN`: none).
    pub last_activity: i32,
    /// Earns.
    pub visits: u32,
    /// Spend in the programme's currency, in its minor units (cents).
    pub spend_minor: i64,
}

// One row per member id is the audience's memory: its size is a budget.
const _: () = assert!(std::mem::size_of::<Row>() <= 56);

impl Row {
    /// The row less what the member's profile gives (birth date, gender, city, reach): what
    /// the journal alone gives.
    pub fn without_profile(&self) -> Row {
        Row {
            birth: NONE_DAY,
            gender: 0,
            city: 0,
            reach: 0,
            ..*self
        }
    }
}

impl Default for Row {
    fn default() -> Self {
        Row {
            birth: NONE_DAY,
            gender: 0,
            city: 0,
            tier: 0,
            enrolled: false,
            enrolled_day: NONE_DAY,
            active: true,
            reach: 0,
            balance: 0,
            first_visit: NONE_DAY,
            last_visit: NONE_DAY,
            last_activity: NONE_DAY,
            visits: 0,
            spend_minor: 0,
        }
    }
}

/// Days since 1970-01-01 of `d`.
pub fn day_number(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// Texts interned to small ids, matched without case or surrounding spaces.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    fn normal(s: &str) -> String {
        s.trim().to_lowercase()
    }

    /// The id of `s`, made when new (ids start at 1).
    pub fn intern(&mut self, s: &str) -> u32 {
        let n = self.ids.len() as u32 + 1;
        *self.ids.entry(Self::normal(s)).or_insert(n)
    }

    /// Every text seen (in its normal form) with its id.
    pub fn names(&self) -> impl Iterator<Item = (&str, u32)> {
        self.ids.iter().map(|(s, id)| (s.as_str(), *id))
    }

    /// The id of `s`, if seen.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(&Self::normal(s)).copied()
    }
}

/// Every member's row, by member id, and the interned texts.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// Row `i` is member `i`'s.
    pub rows: Vec<Row>,
    /// Genders.
    pub genders: Interner,
    /// Cities.
    pub cities: Interner,
    /// Minor units per unit of the programme's currency (100 for EUR), for spend bounds.
    pub minor_per_unit: i64,
    /// Points in dated lots, by member and expiry (ms since the Unix epoch), soonest first;
    /// members with none are absent. A ring: lots are added at the back (later expiry) and
    /// spent from the front, each in constant time however many lots a member holds.
    pub expiring: HashMap<u64, VecDeque<(i64, i64)>>,
}

impl Facts {
    /// Member `m`'s row, made when new.
    pub fn row_mut(&mut self, m: u64) -> &mut Row {
        let i = m as usize;
        if i >= self.rows.len() {
            self.rows.resize(i + 1, Row::default());
        }
        &mut self.rows[i]
    }

    /// Adds `points` (negative: consumed) to member `m`'s lots expiring at `at`.
    pub fn add_expiring(&mut self, m: u64, at: i64, points: i64) {
        let v = self.expiring.entry(m).or_default();
        match v.binary_search_by_key(&at, |e| e.0) {
            Ok(i) => {
                v[i].1 += points;
                if v[i].1 <= 0 {
                    v.remove(i);
                }
            }
            Err(i) if points > 0 => v.insert(i, (at, points)),
            Err(_) => {}
        }
        if v.is_empty() {
            self.expiring.remove(&m);
        }
    }

    /// Member `m`'s row, if any.
    pub fn row(&self, m: u64) -> Option<&Row> {
        self.rows.get(m as usize)
    }
}

/// A segment ready to evaluate on `today`: texts as ids, ages as birth-date bounds, spend in
/// minor units.
#[derive(Debug, Clone)]
pub struct Compiled {
    birth: Option<(i32, i32)>,
    gender: Option<Vec<u32>>,
    city: Option<Vec<u32>>,
    tier: Option<Between<u8>>,
    balance: Option<Between<i64>>,
    activity: Option<(i32, i32)>,
    visits: Option<Between<u32>>,
    spend: Option<Between<i64>>,
    interval: Option<Between<u32>>,
}

/// The first day on which someone born on `birth` is `years` old.
fn birthday_after(birth: NaiveDate, years: i32) -> NaiveDate {
    let y = birth.year() + years;
    NaiveDate::from_ymd_opt(y, birth.month(), birth.day())
        // 29 February in a common year: the birthday counts from 1 March.
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(y, 3, 1).expect("a date"))
}

/// Birth dates (as day numbers) of people aged `min..=max` years on `today`.
fn birth_bounds(age: &Between<u16>, today: NaiveDate) -> (i32, i32) {
    // Aged at least `min`: born on or before today less `min` years (29 February: 28th).
    let latest = age.min.map_or(i32::MAX, |min| {
        let y = today.year() - i32::from(min);
        let d = NaiveDate::from_ymd_opt(y, today.month(), today.day())
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(y, 2, 28).expect("a date"));
        day_number(d)
    });
    // Aged at most `max`: not yet `max + 1`, so born after today less `max + 1` years.
    let earliest = age.max.map_or(i32::MIN + 1, |max| {
        let y = today.year() - i32::from(max) - 1;
        let d = NaiveDate::from_ymd_opt(y, today.month(), today.day())
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(y, 2, 28).expect("a date"));
        day_number(d) + 1
    });
    (earliest, latest)
}

impl Compiled {
    /// `rules` for `facts` on `today`.
    pub fn new(rules: &SegmentRules, facts: &Facts, today: NaiveDate) -> Compiled {
        let texts = |list: &Option<Vec<String>>, i: &Interner| {
            list.as_ref()
                .map(|v| v.iter().filter_map(|s| i.get(s)).collect::<Vec<u32>>())
        };
        let t = day_number(today);
        let minor = |d: Decimal| {
            (d * Decimal::from(facts.minor_per_unit.max(1)))
                .round()
                .try_into()
                .unwrap_or(i64::MAX)
        };
        let days_ago = |x: u32| t - x.min(100_000) as i32;
        Compiled {
            birth: Between::of(rules.age_min, rules.age_max).map(|a| birth_bounds(&a, today)),
            gender: texts(&rules.genders, &facts.genders),
            city: texts(&rules.cities, &facts.cities),
            tier: Between::of(rules.tier_min, rules.tier_max),
            balance: Between::of(rules.balance_min, rules.balance_max),
            activity: Between::of(rules.days_since_activity_min, rules.days_since_activity_max)
                .map(|d| {
                    (
                        d.max.map_or(i32::MIN + 1, days_ago),
                        d.min.map_or(i32::MAX, days_ago),
                    )
                }),
            visits: Between::of(rules.visits_min, rules.visits_max),
            spend: Between::of(rules.spend_min.map(minor), rules.spend_max.map(minor)),
            interval: Between::of(rules.visit_interval_days_min, rules.visit_interval_days_max),
        }
    }

    /// Whether `r` is in the segment.
    #[inline]
    pub fn contains(&self, r: &Row) -> bool {
        if !r.enrolled || !r.active {
            return false;
        }
        if let Some((lo, hi)) = self.birth {
            if r.birth == NONE_DAY || r.birth < lo || r.birth > hi {
                return false;
            }
        }
        if let Some(v) = &self.gender {
            if !v.contains(&r.gender) {
                return false;
            }
        }
        if let Some(v) = &self.city {
            if !v.contains(&r.city) {
                return false;
            }
        }
        if self.tier.is_some_and(|b| !b.holds(r.tier)) {
            return false;
        }
        if self.balance.is_some_and(|b| !b.holds(r.balance)) {
            return false;
        }
        if let Some((lo, hi)) = self.activity {
            if r.last_activity == NONE_DAY || r.last_activity < lo || r.last_activity > hi {
                return false;
            }
        }
        if self.visits.is_some_and(|b| !b.holds(r.visits)) {
            return false;
        }
        if self.spend.is_some_and(|b| !b.holds(r.spend_minor)) {
            return false;
        }
        if let Some(b) = self.interval {
            if r.visits < 2 {
                return false;
            }
            let days = (r.last_visit - r.first_visit) as u32 / (r.visits - 1);
            if !b.holds(days) {
                return false;
            }
        }
        true
    }

    /// The members of the segment among `facts`, in id order, at most `limit`, and how many
    /// there are in all.
    pub fn members(&self, facts: &Facts, limit: usize) -> (Vec<u64>, usize) {
        let mut out = Vec::new();
        let mut count = 0;
        for (id, r) in facts.rows.iter().enumerate() {
            if self.contains(r) {
                count += 1;
                if out.len() < limit {
                    out.push(id as u64);
                }
            }
        }
        (out, count)
    }

    /// The members of the segment whose ids are above `after`, in id order, at most `limit`:
    /// the rows are scanned from `after + 1` and no further than the `limit`th member, so a
    /// caller paging through a large segment (a broadcast, a chunk a round) reads each row once
    /// in all rather than every row on every page.
    pub fn members_after(&self, facts: &Facts, after: u64, limit: usize) -> Vec<u64> {
        let start = usize::try_from(after.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(facts.rows.len());
        facts.rows[start..]
            .iter()
            .zip(start as u64..)
            .filter(|(r, _)| self.contains(r))
            .map(|(_, id)| id)
            .take(limit)
            .collect()
    }
}

/// A member's age in whole years on `today`.
pub fn age_on(birth: NaiveDate, today: NaiveDate) -> i32 {
    let mut age = today.year() - birth.year();
    if birthday_after(birth, age) > today {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn row(birth: &str) -> Row {
        Row {
            birth: day_number(d(birth)),
            enrolled: true,
            ..Row::default()
        }
    }

    #[test]
    fn age_bands_follow_birthdays_and_29_february() {
        let facts = Facts::default();
        let today = d("2026-11-30");
        let band = SegmentRules {
            age_min: Some(18),
            age_max: Some(30),
            ..Default::default()
        };
        let c = Compiled::new(&band, &facts, today);
        for (birth, inside) in [
            ("2008-11-30", true),  // 18 today
            ("2008-12-01", false), // 18 tomorrow
            ("1995-12-01", true),  // 30, 31 tomorrow
            ("1995-11-30", false), // 31 today
        ] {
            assert_eq!(c.contains(&row(birth)), inside, "born {birth}");
            assert_eq!(
                (18..=30).contains(&age_on(d(birth), today)),
                inside,
                "age_on agrees for {birth}"
            );
        }
        // Born on 29 February: 18 on 1 March of a common year.
        let leap = SegmentRules {
            age_min: Some(18),
            ..Default::default()
        };
        assert!(!Compiled::new(&leap, &facts, d("2026-02-28")).contains(&row("2008-02-29")));
        assert!(Compiled::new(&leap, &facts, d("2026-03-01")).contains(&row("2008-02-29")));
        assert_eq!(age_on(d("2008-02-29"), d("2026-02-28")), 17);
        assert_eq!(age_on(d("2008-02-29"), d("2026-03-01")), 18);
        assert!(!c.contains(&Row {
            enrolled: true,
            ..Row::default()
        }));
    }

    #[test]
    fn every_condition_must_hold_and_lists_take_any_value() {
        let mut facts = Facts {
            minor_per_unit: 100,
            ..Default::default()
        };
        let tehran = facts.cities.intern("Tehran");
        let f = facts.genders.intern("female");
        let today = d("2026-11-30");
        let t = day_number(today);
        let base = Row {
            birth: day_number(d("1990-01-01")),
            gender: f,
            city: tehran,
            tier: 2,
            enrolled: true,
            enrolled_day: t - 400,
            active: true,
            reach: 0,
            balance: 5_000,
            first_visit: t - 40,
            last_visit: t - 10,
            last_activity: t - 3,
            visits: 4,
            spend_minor: 12_050,
        };
        let rules: SegmentRules = serde_json::from_value(serde_json::json!({
            "age_min": 30, "age_max": 40.0, "genders": ["Female", "other"], "cities": [" tehran "],
            "tier_min": 1, "balance_min": 1000, "days_since_activity_max": 7,
            "visits_min": 3, "spend_min": "120.50", "visit_interval_days_max": 10
        }))
        .expect("rules");
        rules.validate().expect("valid");
        let c = Compiled::new(&rules, &facts, today);
        assert!(c.contains(&base));
        let out = [
            Row {
                active: false,
                ..base
            },
            Row { city: 0, ..base },
            Row { gender: 0, ..base },
            Row { tier: 0, ..base },
            Row {
                balance: 999,
                ..base
            },
            Row {
                last_activity: t - 8,
                ..base
            },
            Row { visits: 2, ..base },
            Row {
                spend_minor: 12_049,
                ..base
            },
            // Four visits over 40 days: 13 days apart on average.
            Row {
                first_visit: t - 50,
                ..base
            },
        ];
        for (i, r) in out.iter().enumerate() {
            assert!(!c.contains(r), "row {i} must be out: {r:?}");
        }
        facts.rows = vec![Row::default(), base, out[1], base];
        assert_eq!(c.members(&facts, 1), (vec![1], 2));
    }

    #[test]
    fn members_after_an_id_are_the_segment_s_next_in_id_order() {
        let rules = SegmentRules {
            balance_min: Some(100),
            ..Default::default()
        };
        let facts = Facts {
            // Members 1..=60; every third one (3, 6, ...) holds too few points.
            rows: (0..=60u64)
                .map(|i| Row {
                    enrolled: i > 0,
                    balance: if i % 3 == 0 { 99 } else { 100 + i as i64 },
                    ..Row::default()
                })
                .collect(),
            ..Default::default()
        };
        let c = Compiled::new(&rules, &facts, d("2026-11-30"));
        let (all, count) = c.members(&facts, usize::MAX);
        assert_eq!(count, 40);
        assert!(!all.contains(&0) && !all.contains(&3) && all.contains(&59));
        for after in [0, 1, 2, 3, 17, 58, 59, 60, 61, u64::MAX] {
            for limit in [0, 1, 7, 40, usize::MAX] {
                let expected: Vec<u64> = all
                    .iter()
                    .copied()
                    .filter(|m| *m > after)
                    .take(limit)
                    .collect();
                assert_eq!(
                    c.members_after(&facts, after, limit),
                    expected,
                    "after {after}, at most {limit}"
                );
            }
        }
        // Paged seven at a time from the start, the pages are the whole segment, once each.
        let (mut paged, mut after) = (Vec::new(), 0);
        loop {
            let page = c.members_after(&facts, after, 7);
            paged.extend_from_slice(&page);
            match page.last() {
                Some(m) if page.len() == 7 => after = *m,
                _ => break,
            }
        }
        assert_eq!(paged, all);
    }

    #[test]
    fn definitions_are_checked() {
        let bad: SegmentRules =
            serde_json::from_value(serde_json::json!({"age_min": 40, "age_max": 30}))
                .expect("shape");
        assert_eq!(bad.validate().unwrap_err().field, "age");
        let empty: SegmentRules =
            serde_json::from_value(serde_json::json!({"cities": []})).expect("shape");
        assert_eq!(empty.validate().unwrap_err().field, "cities");
        assert!(
            serde_json::from_value::<SegmentRules>(serde_json::json!({"age_min": 1.5})).is_err()
        );
        assert!(serde_json::from_value::<SegmentRules>(serde_json::json!({"colour": 1})).is_err());
    }
}
