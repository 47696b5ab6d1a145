//! Tiers: levels reached by qualifying points, qualifying spend or the number of qualifying
//! earns over a calendar year or a rolling 12 months, in the programme's time zone. A member
//! moves up at once, on the earn that qualifies it; it moves down only at a period end, after
//! the policy's grace periods, one level at a time. Transfers never qualify; an adjustment
//! qualifies only when the operator flags it; a reversal of an earn takes its qualification
//! back. An operator may hold a member at a level until a date. Every change is a
//! transaction, so a member's tier history is in its statement.

use crate::core::types::{Currency, Money, PartnerId, Points, Timestamp};
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Most levels above the base.
pub const LEVELS_MAX: usize = 15;
/// Longest level name, in characters.
pub const NAME_LEN_MAX: usize = 64;

/// What qualifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Basis {
    /// The partner-issued points of qualifying earns.
    Points,
    /// The number of qualifying earns.
    Activities,
    /// The purchase amounts of qualifying earns made in this currency, in its minor units
    /// (cents for EUR, rials for IRR).
    Spend(Currency),
}

/// For one partner, the categories whose earns qualify (earns in others do not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerCategories {
    /// The partner.
    pub partner: PartnerId,
    /// Its qualifying categories.
    pub categories: Vec<String>,
}

/// What an earn reports of the purchase, for tier qualification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// The purchase amount, when the partner sent it in money.
    pub spend: Option<Money>,
    /// The purchase category, when the partner sent one.
    pub category: Option<String>,
}

/// Most partners a policy may restrict to categories, and categories per partner.
pub const CATEGORY_RULES_MAX: usize = 64;

/// The window qualification counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Window {
    /// The calendar year; reviewed at each year end.
    CalendarYear,
    /// The last 12 calendar months; reviewed at each month end.
    Rolling12Months,
}

/// A level above the base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierLevel {
    /// Its name (`Silver`, `طلایی`).
    pub name: String,
    /// Qualifying total that reaches it.
    pub threshold: i64,
}

/// The programme's tier policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierPolicy {
    /// Levels 1, 2, … in ascending thresholds (level 0 is the base).
    pub levels: Vec<TierLevel>,
    /// What qualifies.
    pub basis: Basis,
    /// Over which window.
    pub window: Window,
    /// Period ends a member may fall short at before it moves down a level (a soft landing).
    pub grace_periods: u8,
    /// Partners whose earns qualify; empty: all.
    pub partners: Vec<PartnerId>,
    /// Partners whose earns qualify only in some categories.
    pub categories: Vec<PartnerCategories>,
    /// IANA time zone months and years are counted in.
    pub time_zone: String,
    /// Who set it and why.
    pub note: crate::core::types::ChangeNote,
}

/// Why a tier changed (or was reviewed and kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TierWhy {
    /// Qualifying activity reached the level.
    Qualified,
    /// A period-end review.
    Review,
    /// An operator set it, with a reason.
    Override(String),
    /// The operator's override ended.
    OverrideEnded,
}

/// A tier change as recorded on a transaction: what the member's tier state becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierChange {
    /// Level before.
    pub from: u8,
    /// Level after.
    pub to: u8,
    /// Why.
    pub why: TierWhy,
    /// Period ends found short since the last success (grace used).
    pub short: u8,
    /// The period end reviewed up to.
    pub reviewed: Timestamp,
    /// An operator's hold on the level, until then.
    pub override_until: Option<Timestamp>,
}

/// A qualification counted on an earn (or taken back by a reversal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierMark {
    /// The local month (months since 1970-01) it counts in.
    pub month: u32,
    /// Qualifying amount (negative: taken back).
    pub qualifying: i64,
}

/// A member's tier: level, qualification per month (the last 12 months), grace and override.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TierState {
    /// Current level.
    pub level: u8,
    /// Since when.
    pub since: Timestamp,
    /// Qualifying amount per local month, the last 12 months with any: (month, amount).
    pub months: thin_vec::ThinVec<(u32, i64)>,
    /// Period ends found short since the last success.
    pub short: u8,
    /// The last period end reviewed.
    pub reviewed: Timestamp,
    /// Held at the level by an operator until then.
    pub override_until: Option<Timestamp>,
}

impl TierState {
    /// Counts a qualification.
    pub(crate) fn mark(&mut self, m: TierMark) {
        match self.months.iter_mut().find(|(month, _)| *month == m.month) {
            Some(slot) => slot.1 += m.qualifying,
            None if m.qualifying > 0 => {
                self.months.push((m.month, m.qualifying));
                let newest = self
                    .months
                    .iter()
                    .map(|(month, _)| *month)
                    .max()
                    .unwrap_or(0);
                self.months.retain(|(month, _)| *month + 11 >= newest);
            }
            None => {}
        }
    }

    /// Takes on a recorded change.
    /// Two members' tier records as one (a merge): qualification summed month by month (the
    /// newest 12 months kept), the higher level with its date and any operator hold on it, the
    /// later review.
    pub fn merged(&self, other: &TierState) -> TierState {
        let (hi, lo) = if other.level > self.level {
            (other, self)
        } else {
            (self, other)
        };
        let mut out = hi.clone();
        out.short = 0;
        out.reviewed = hi.reviewed.max(lo.reviewed);
        for (month, amount) in lo.months.iter() {
            out.mark(TierMark {
                month: *month,
                qualifying: *amount,
            });
        }
        out
    }

    pub(crate) fn change(&mut self, c: &TierChange, at: Timestamp) {
        if c.to != self.level {
            self.since = at;
        }
        self.level = c.to;
        self.short = c.short;
        self.reviewed = c.reviewed;
        self.override_until = c.override_until;
    }
}

impl TierPolicy {
    /// Checks the policy.
    pub fn check(&self) -> Result<Tz, &'static str> {
        let tz: Tz = self
            .time_zone
            .parse()
            .map_err(|_| "time_zone is not an IANA time zone")?;
        if self.levels.is_empty() || self.levels.len() > LEVELS_MAX {
            return Err("1 to 15 levels");
        }
        if self
            .levels
            .iter()
            .any(|l| l.name.trim().is_empty() || l.name.chars().count() > NAME_LEN_MAX)
        {
            return Err("level names must be 1 to 64 characters");
        }
        if self.levels[0].threshold <= 0
            || self
                .levels
                .windows(2)
                .any(|w| w[1].threshold <= w[0].threshold)
        {
            return Err("thresholds must be positive and strictly ascending");
        }
        if self.categories.len() > CATEGORY_RULES_MAX
            || self.categories.iter().any(|c| {
                c.categories.is_empty()
                    || c.categories.len() > CATEGORY_RULES_MAX
                    || c.categories
                        .iter()
                        .any(|n| n.trim().is_empty() || n.len() > NAME_LEN_MAX)
            })
        {
            return Err("1 to 64 categories of 1 to 64 bytes for each of at most 64 partners");
        }
        Ok(tz)
    }

    /// Whether an earn at `partner` in `category` qualifies.
    pub fn qualifies(&self, partner: PartnerId, category: Option<&str>) -> bool {
        if !(self.partners.is_empty() || self.partners.contains(&partner)) {
            return false;
        }
        match self.categories.iter().find(|c| c.partner == partner) {
            None => true,
            Some(c) => category.is_some_and(|x| c.categories.iter().any(|n| n == x)),
        }
    }

    /// What an earn of `points` at `partner` counts towards the tier, if it qualifies:
    /// its points, one activity, or its spend in the basis's currency.
    pub fn qualifying_earn(
        &self,
        partner: PartnerId,
        points: Points,
        purchase: Option<&Purchase>,
    ) -> Option<i64> {
        if !self.qualifies(partner, purchase.and_then(|p| p.category.as_deref())) {
            return None;
        }
        match self.basis {
            Basis::Points => Some(points.0),
            Basis::Activities => Some(1),
            Basis::Spend(c) => purchase
                .and_then(|p| p.spend)
                .filter(|m| m.currency == c && m.amount.is_sign_positive())
                .and_then(|m| minor_units(m.amount, c)),
        }
    }

    /// What an operator's adjustment of `points`, flagged to qualify, counts: its points, one
    /// activity (taken back when negative), or nothing on a spend basis (an adjustment has no
    /// purchase).
    pub fn qualifying_adjustment(&self, points: Points) -> Option<i64> {
        match self.basis {
            Basis::Points => Some(points.0),
            Basis::Activities => Some(points.0.signum()),
            Basis::Spend(_) => None,
        }
    }

    /// The highest level `total` reaches.
    pub fn target(&self, total: i64) -> u8 {
        self.levels
            .iter()
            .take_while(|l| total >= l.threshold)
            .count() as u8
    }

    /// The threshold of `level` (0 for the base).
    pub fn threshold(&self, level: u8) -> i64 {
        match level {
            0 => 0,
            n => self
                .levels
                .get(usize::from(n) - 1)
                .map_or(i64::MAX, |l| l.threshold),
        }
    }
}

/// `amount` in the minor units of `c`, rounded down; `None` beyond `i64`.
fn minor_units(amount: rust_decimal::Decimal, c: Currency) -> Option<i64> {
    use rust_decimal::prelude::ToPrimitive;
    let scale = rust_decimal::Decimal::from(10_i64.pow(c.minor_units()));
    amount.checked_mul(scale)?.floor().to_i64()
}

/// The first instant of local day `date` in `tz`: its midnight, or, where the clocks skip
/// midnight (a daylight-saving change at 00:00: in 133 of the zone database's 597 zones, some
/// month between 1970 and 2199 starts so), the first local time after the skip.
pub fn day_start(tz: Tz, date: NaiveDate) -> Option<Timestamp> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    (0..=24 * 60).find_map(|minutes| {
        let local = midnight + chrono::Duration::minutes(minutes);
        tz.from_local_datetime(&local)
            .earliest()
            .map(|t| Timestamp(t.timestamp_millis()))
    })
}

/// The start of every local month from 1970 to 2200 in a time zone, computed once per policy:
/// months and period ends are then a table lookup, not a time zone conversion, on the hot
/// path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Strictly increasing: a month starts at its first local midnight, or, where the clocks
    /// skip that midnight, at the first instant after the skip.
    starts: Vec<i64>,
}

/// Months the calendar covers (1970-01 to 2199-12).
const CALENDAR_MONTHS: u32 = 230 * 12;

/// A month's average length in milliseconds (365.2425 / 12 days): the first guess of the
/// month an instant falls in, within one of the answer.
const MONTH_MS_AVERAGE: i64 = 2_629_746_000;

impl Calendar {
    /// The calendar of `tz`, shared: computed on the first call for a zone and kept for the
    /// process (about 22 KB a zone, and there are some 600 zones), so that opening a ledger,
    /// replaying its policies or auditing them does not compute 2,761 month starts again for
    /// every policy record.
    pub fn of(tz: Tz) -> std::sync::Arc<Calendar> {
        static CALENDARS: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashMap<Tz, std::sync::Arc<Calendar>>>,
        > = std::sync::OnceLock::new();
        let calendars = CALENDARS.get_or_init(Default::default);
        if let Some(cal) = calendars.lock().unwrap_or_else(|e| e.into_inner()).get(&tz) {
            return cal.clone();
        }
        // Computed outside the lock: two first calls for one zone compute it twice and keep
        // one, equal to the other.
        let cal = std::sync::Arc::new(Calendar::new(tz));
        calendars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tz)
            .or_insert(cal)
            .clone()
    }

    /// The calendar of `tz`, computed.
    pub fn new(tz: Tz) -> Calendar {
        let starts = (0..=CALENDAR_MONTHS)
            .map(|m| {
                let (y, mo) = (1970 + (m / 12) as i32, m % 12 + 1);
                NaiveDate::from_ymd_opt(y, mo, 1)
                    .and_then(|d| day_start(tz, d))
                    .map_or(i64::MAX, |t| t.0)
            })
            .collect();
        Calendar { starts }
    }

    /// The local month (months since 1970-01) `at` falls in (0 before 1970-01, the last month
    /// after the table's end).
    pub fn month(&self, at: Timestamp) -> u32 {
        let last = self.starts.len().saturating_sub(1);
        let first = self.starts.first().copied().unwrap_or(i64::MIN);
        // A guess from the average month's length, then a step or two along the table: no
        // binary search over 2,761 months for every member a transaction changes.
        let mut m = usize::try_from(at.0.saturating_sub(first) / MONTH_MS_AVERAGE)
            .unwrap_or(0)
            .min(last);
        while m > 0 && self.starts[m] > at.0 {
            m -= 1;
        }
        while m < last && self.starts[m + 1] <= at.0 {
            m += 1;
        }
        m as u32
    }

    /// The first instant of local month `m`.
    pub fn start(&self, m: u32) -> Timestamp {
        Timestamp(self.starts.get(m as usize).copied().unwrap_or(i64::MAX))
    }
}

/// A tier policy in force, with its calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers {
    /// The policy.
    pub policy: TierPolicy,
    cal: std::sync::Arc<Calendar>,
}

impl std::ops::Deref for Tiers {
    type Target = TierPolicy;
    fn deref(&self) -> &TierPolicy {
        &self.policy
    }
}

impl Tiers {
    /// The policy in force, its calendar computed.
    pub fn new(policy: TierPolicy) -> Tiers {
        let tz: Tz = policy.time_zone.parse().unwrap_or(Tz::UTC);
        Tiers {
            policy,
            cal: Calendar::of(tz),
        }
    }

    /// The local month (months since 1970-01) of `at`.
    pub fn month(&self, at: Timestamp) -> u32 {
        self.cal.month(at)
    }

    /// The first period end after `after`: the start of the next local year or month.
    pub fn next_review(&self, after: Timestamp) -> Timestamp {
        let m = self.cal.month(after);
        self.cal.start(match self.policy.window {
            Window::CalendarYear => (m / 12 + 1) * 12,
            Window::Rolling12Months => m + 1,
        })
    }

    /// The qualifying total of the window that holds `at`.
    pub fn window_total(&self, s: &TierState, at: Timestamp) -> i64 {
        let month = self.month(at);
        let first = match self.window {
            Window::CalendarYear => month - month % 12,
            Window::Rolling12Months => month.saturating_sub(11),
        };
        s.months
            .iter()
            .filter(|(m, _)| (first..=month).contains(m))
            .map(|(_, q)| *q)
            .sum()
    }

    /// When member tier state `s` is next due a review or the end of an override; `None` at
    /// the base level with no override.
    pub fn due(&self, s: &TierState) -> Option<Timestamp> {
        let review = (s.level > 0).then(|| self.next_review(s.reviewed));
        match (review, s.override_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The review of `s` due at or before `at`, if any: an override ending, or the first
    /// period end not yet reviewed (a member behind by several is reviewed once for each, one
    /// level down at most each time).
    pub fn review(&self, s: &TierState, at: Timestamp) -> Option<TierChange> {
        if let Some(until) = s.override_until.filter(|u| *u <= at) {
            let earned = self.target(self.window_total(s, until));
            return Some(TierChange {
                from: s.level,
                to: earned,
                why: TierWhy::OverrideEnded,
                short: 0,
                reviewed: until.max(s.reviewed),
                override_until: None,
            });
        }
        if s.level == 0 {
            return None;
        }
        let end = self.next_review(s.reviewed);
        if end > at {
            return None;
        }
        if s.override_until.is_some_and(|u| u > end) {
            return Some(TierChange {
                from: s.level,
                to: s.level,
                why: TierWhy::Review,
                short: 0,
                reviewed: end,
                override_until: s.override_until,
            });
        }
        // The window that ended just before `end`.
        let total = self.window_total(s, Timestamp(end.0 - 1));
        let (to, short) = if total >= self.threshold(s.level) {
            (s.level, 0)
        } else if s.short >= self.grace_periods {
            (s.level - 1, 0)
        } else {
            (s.level, s.short + 1)
        };
        Some(TierChange {
            from: s.level,
            to,
            why: TierWhy::Review,
            short,
            reviewed: end,
            override_until: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The month by a binary search of the table: what `Calendar::month` answered before it
    /// guessed and stepped.
    fn month_by_search(cal: &Calendar, at: i64) -> u32 {
        cal.starts.partition_point(|s| *s <= at).saturating_sub(1) as u32
    }

    #[test]
    fn every_zones_months_start_in_order_even_where_midnight_is_skipped() {
        for tz in chrono_tz::TZ_VARIANTS {
            let cal = Calendar::new(tz);
            assert_eq!(cal.starts.len(), CALENDAR_MONTHS as usize + 1);
            assert!(
                cal.starts.windows(2).all(|w| w[0] < w[1]),
                "{tz}: month starts out of order"
            );
        }
        // Paraguay's clocks went from 2017-10-01 00:00 to 01:00 (UTC-4 to UTC-3): October
        // began at 01:00 local, 04:00 UTC. A missing midnight once put i64::MAX in the table.
        let cal = Calendar::new(chrono_tz::America::Asuncion);
        let october_2017 = (2017 - 1970) * 12 + 9;
        assert_eq!(cal.start(october_2017), Timestamp(1_506_830_400_000));
        assert_eq!(cal.month(Timestamp(1_506_830_400_000)), october_2017);
        assert_eq!(cal.month(Timestamp(1_506_830_399_999)), october_2017 - 1);
    }

    #[test]
    fn a_zones_calendar_is_computed_once_and_shared() {
        let tehran = Calendar::of(chrono_tz::Asia::Tehran);
        let again = Calendar::of(chrono_tz::Asia::Tehran);
        assert!(std::sync::Arc::ptr_eq(&tehran, &again));
        assert_eq!(*tehran, Calendar::new(chrono_tz::Asia::Tehran));
        let auckland = Calendar::of(chrono_tz::Pacific::Auckland);
        assert!(!std::sync::Arc::ptr_eq(&tehran, &auckland));
        assert_eq!(*auckland, Calendar::new(chrono_tz::Pacific::Auckland));
        assert_ne!(*tehran, *auckland);
        // Policies of one zone share its table.
        let a = Tiers::new(policy(Window::CalendarYear, 1));
        let b = Tiers::new(policy(Window::Rolling12Months, 1));
        assert!(std::sync::Arc::ptr_eq(&a.cal, &b.cal));
    }

    proptest::proptest! {
        #[test]
        fn the_month_is_the_tables_month(
            at in proptest::prop_oneof![
                -10_000_000_000_000i64..10_000_000_000_000,
                proptest::num::i64::ANY,
            ],
            zone in 0usize..chrono_tz::TZ_VARIANTS.len(),
        ) {
            let cal = Calendar::new(chrono_tz::TZ_VARIANTS[zone]);
            proptest::prop_assert_eq!(cal.month(Timestamp(at)), month_by_search(&cal, at));
            // Each month's first instant, and the instant before it.
            let m = month_by_search(&cal, at) as usize;
            let start = cal.starts[m];
            proptest::prop_assert_eq!(cal.month(Timestamp(start)), m as u32);
            proptest::prop_assert_eq!(
                cal.month(Timestamp(start.saturating_sub(1))),
                month_by_search(&cal, start.saturating_sub(1))
            );
        }
    }

    fn policy(window: Window, grace: u8) -> TierPolicy {
        TierPolicy {
            levels: vec![
                TierLevel {
                    name: "Silver".into(),
                    threshold: 1_000,
                },
                TierLevel {
                    name: "Gold".into(),
                    threshold: 5_000,
                },
            ],
            basis: Basis::Points,
            window,
            grace_periods: grace,
            partners: vec![],
            categories: vec![],
            time_zone: "UTC".into(),
            note: Default::default(),
        }
    }

    fn ms(s: &str) -> Timestamp {
        Timestamp(
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("time")
                .timestamp_millis(),
        )
    }

    #[test]
    fn thresholds_windows_and_reviews() {
        let p = Tiers::new(policy(Window::CalendarYear, 1));
        assert_eq!((p.target(999), p.target(1_000), p.target(9_999)), (0, 1, 2));
        let mut s = TierState::default();
        s.mark(TierMark {
            month: p.month(ms("2026-03-10T00:00:00Z")),
            qualifying: 6_000,
        });
        s.level = 2;
        s.reviewed = ms("2026-03-10T00:00:00Z");
        assert_eq!(p.window_total(&s, ms("2026-12-31T23:59:59Z")), 6_000);
        assert_eq!(p.window_total(&s, ms("2027-01-01T00:00:00Z")), 0);
        assert_eq!(p.next_review(s.reviewed), ms("2027-01-01T00:00:00Z"));
        // Reviewed at the 2026 year end: qualified, kept.
        let kept = p.review(&s, ms("2027-01-01T00:00:00Z")).expect("due");
        assert_eq!((kept.to, kept.short), (2, 0));
        s.change(&kept, ms("2027-01-01T00:00:00Z"));
        // 2027 brings nothing: one grace period, then one level down, one per review.
        assert!(p.review(&s, ms("2027-12-31T23:59:59Z")).is_none());
        let grace = p.review(&s, ms("2028-01-01T00:00:00Z")).expect("due");
        assert_eq!((grace.to, grace.short), (2, 1));
        s.change(&grace, ms("2028-01-01T00:00:00Z"));
        let down = p.review(&s, ms("2029-01-01T00:00:00Z")).expect("due");
        assert_eq!((down.to, down.short), (1, 0));
    }

    #[test]
    fn a_rolling_window_counts_the_last_twelve_months() {
        let p = Tiers::new(policy(Window::Rolling12Months, 0));
        let mut s = TierState::default();
        let mark = |s: &mut TierState, day: &str, q: i64| {
            s.mark(TierMark {
                month: p.month(ms(&format!("{day}T00:00:00Z"))),
                qualifying: q,
            })
        };
        mark(&mut s, "2026-01-15", 400);
        mark(&mut s, "2026-06-15", 400);
        assert_eq!(p.window_total(&s, ms("2026-12-31T00:00:00Z")), 800);
        // The month ring reuses January's slot for the next January.
        mark(&mut s, "2027-01-15", 300);
        // January 2026 has left the window by January 2027.
        assert_eq!(p.window_total(&s, ms("2027-01-31T00:00:00Z")), 700);
        assert_eq!(
            p.next_review(ms("2026-12-15T00:00:00Z")),
            ms("2027-01-01T00:00:00Z")
        );
    }
}
