//! The dashboards' figures, kept as aggregates that every transaction and every change of a
//! member's facts row updates in place: per month and per partner (points issued and
//! redeemed, sales, earns, active and new members), and histograms over the members (age,
//! gender, city, spend, visit interval, visit frequency, RFM cells, spend for ABC). A page reads
//! these; nothing scans the members or the journal per view.
//!
//! Pure: the audience's fold drives it (`ops/audience.rs`).

use super::segments::Row;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Months since January 1970 (`year * 12 + month - 1`).
pub type Month = i32;

/// The month of a day number (days since 1970-01-01).
pub fn month_of_day(day: i32) -> Month {
    let d = NaiveDate::from_num_days_from_ce_opt(day + 719_163).unwrap_or_default();
    d.year() * 12 + d.month0() as i32
}

/// (year, month 1-12) of a [`Month`].
pub fn year_month(m: Month) -> (i32, u32) {
    (m.div_euclid(12), m.rem_euclid(12) as u32 + 1)
}

/// One month's movement, programme-wide or at one partner.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    /// Points credited to members (earns, bonuses, grants, adjustments up).
    pub issued: i64,
    /// Points members spent (burns, rewards).
    pub redeemed: i64,
    /// Points expired.
    pub expired: i64,
    /// Earn transactions (visits).
    pub earns: u64,
    /// Sales that earned, in minor units of the partner's currency (programme currency
    /// programme-wide); earns priced by another unit (miles, litres) add nothing.
    pub sales_minor: i64,
    /// Earns that carried sales.
    pub sales_earns: u64,
    /// What the points issued on earns cost, in the same minor units as `sales_minor` (their
    /// points times the partner's issuance price), counted only on earns that carried sales.
    pub cost_minor: i64,
    /// Members whose first visit of the month this was.
    pub active: u64,
    /// Members enrolled.
    pub enrolled: u64,
}

/// Upper bounds of the spend bands, in units of the programme's currency.
pub const SPEND_BANDS: [i64; 6] = [0, 50, 100, 250, 500, 1_000];
/// Upper bounds of the visit-count bands.
pub const VISIT_BANDS: [u32; 6] = [0, 1, 3, 6, 12, 24];
/// Upper bounds of the mean days between visits.
pub const INTERVAL_BANDS: [i32; 5] = [7, 14, 30, 60, 90];

fn band<T: PartialOrd>(bounds: &[T], x: T) -> usize {
    bounds.iter().position(|b| x <= *b).unwrap_or(bounds.len())
}

/// Frequency score 1-5 of a visit count.
fn f_score(visits: u32) -> u8 {
    match visits {
        0..=1 => 1,
        2..=3 => 2,
        4..=6 => 3,
        7..=12 => 4,
        _ => 5,
    }
}

/// Monetary score 1-5 of a spend in units.
fn m_score(units: i64) -> u8 {
    match units {
        i64::MIN..=50 => 1,
        51..=100 => 2,
        101..=250 => 3,
        251..=500 => 4,
        _ => 5,
    }
}

/// Recency score 1-5 of months since the last visit.
pub fn r_score(months: i32) -> u8 {
    match months {
        i32::MIN..=0 => 5,
        1 => 4,
        2..=3 => 3,
        4..=6 => 2,
        _ => 1,
    }
}

/// A spend bucket for the ABC split: a quarter of a power of two of minor units.
fn spend_bucket(minor: i64) -> u16 {
    if minor <= 0 {
        return 0;
    }
    let lz = 63 - minor.leading_zeros() as i64; // floor(log2)
    let frac = if lz >= 2 { (minor >> (lz - 2)) & 3 } else { 0 };
    (1 + lz * 4 + frac) as u16
}

/// The member histograms.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histograms {
    /// Enrolled active members.
    pub members: u64,
    /// Of which with a visit.
    pub visited: u64,
    /// Of which with two visits or more.
    pub repeat: u64,
    /// Points members hold.
    pub balance: i64,
    /// By birth year (`i32::MIN`: unknown).
    pub birth_year: BTreeMap<i32, u64>,
    /// By interned gender (0: unknown).
    pub gender: HashMap<u32, u64>,
    /// By interned city (0: unknown).
    pub city: HashMap<u32, u64>,
    /// By spend band ([`SPEND_BANDS`], then above).
    pub spend: [u64; SPEND_BANDS.len() + 1],
    /// By visit-count band ([`VISIT_BANDS`], then above).
    pub visits: [u64; VISIT_BANDS.len() + 1],
    /// Members with two visits or more, by mean days between them ([`INTERVAL_BANDS`]).
    pub interval: [u64; INTERVAL_BANDS.len() + 1],
    /// By (month of last visit, frequency score, monetary score): recency is scored when read.
    pub rfm: HashMap<(Month, u8, u8), u64>,
    /// By spend bucket: (members, their spend in minor units).
    pub spend_buckets: BTreeMap<u16, (u64, i64)>,
}

impl Histograms {
    /// Every member counted moved to the unknown cell of each histogram a profile feeds (birth
    /// year, gender, city), as if no row had profile facts: a cost of the cells, not of the
    /// members.
    fn without_profiles(&mut self) {
        fn unknown<K, M>(cells: &mut M, none: K)
        where
            M: Default + IntoIterator<Item = (K, u64)> + Extend<(K, u64)>,
        {
            // Added as `Cells::tally` adds.
            let n = std::mem::take(cells)
                .into_iter()
                .fold(0u64, |s, (_, n)| s.wrapping_add(n));
            if n != 0 {
                cells.extend([(none, n)]);
            }
        }
        unknown(&mut self.birth_year, i32::MIN);
        unknown(&mut self.gender, 0);
        unknown(&mut self.city, 0);
    }

    fn count(&mut self, r: &Row, minor_per_unit: i64, sign: i64) {
        if !r.enrolled || !r.active {
            return;
        }
        let add = |c: &mut u64| *c = c.wrapping_add_signed(sign);
        add(&mut self.members);
        self.balance += sign * r.balance;
        let year = if r.birth == i32::MIN {
            i32::MIN
        } else {
            NaiveDate::from_num_days_from_ce_opt(r.birth + 719_163).map_or(i32::MIN, |d| d.year())
        };
        self.birth_year.tally(year, sign);
        self.gender.tally(r.gender, sign);
        self.city.tally(r.city, sign);
        let units = r.spend_minor / minor_per_unit.max(1);
        add(&mut self.spend[band(&SPEND_BANDS, units)]);
        add(&mut self.visits[band(&VISIT_BANDS, r.visits)]);
        if r.visits >= 1 {
            add(&mut self.visited);
            let key = (
                month_of_day(r.last_visit),
                f_score(r.visits),
                m_score(units),
            );
            self.rfm.tally(key, sign);
            let k = spend_bucket(r.spend_minor);
            let b = self.spend_buckets.entry(k).or_default();
            add(&mut b.0);
            b.1 += sign * r.spend_minor;
            if b.0 == 0 {
                self.spend_buckets.remove(&k);
            }
        }
        if r.visits >= 2 {
            add(&mut self.repeat);
            let mean = (r.last_visit - r.first_visit) / (r.visits as i32 - 1);
            add(&mut self.interval[band(&INTERVAL_BANDS, mean)]);
        }
    }
}

/// A map of counts that keeps only the cells that hold someone.
trait Cells<K> {
    /// Adds `sign` to the count at `k`.
    fn tally(&mut self, k: K, sign: i64);
}

impl<K: Ord + Copy> Cells<K> for BTreeMap<K, u64> {
    fn tally(&mut self, k: K, sign: i64) {
        let n = self.entry(k).or_default();
        *n = n.wrapping_add_signed(sign);
        if *n == 0 {
            self.remove(&k);
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy> Cells<K> for HashMap<K, u64> {
    fn tally(&mut self, k: K, sign: i64) {
        let n = self.entry(k).or_default();
        *n = n.wrapping_add_signed(sign);
        if *n == 0 {
            self.remove(&k);
        }
    }
}

/// Everything the dashboards read.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analytics {
    /// Programme-wide, by month.
    pub months: BTreeMap<Month, Movement>,
    /// By partner and month.
    pub partners: BTreeMap<(u32, Month), Movement>,
    /// A partner's last earn day and earns in all, for partner RFM.
    pub partner_last_day: HashMap<u32, i32>,
    /// Member histograms.
    pub members: Histograms,
    /// Points in dated lots by the month they expire.
    pub expiring: BTreeMap<Month, i64>,
    /// Transactions folded.
    pub transactions: u64,
}

impl Analytics {
    /// Member row `old` became `new`.
    pub fn row_changed(&mut self, old: &Row, new: &Row, minor_per_unit: i64) {
        if old == new {
            return;
        }
        self.members.count(old, minor_per_unit, -1);
        self.members.count(new, minor_per_unit, 1);
        if new.enrolled && !old.enrolled {
            self.month_mut(month_of_day(new.enrolled_day)).enrolled += 1;
        }
        if new.visits > old.visits
            && new.last_visit != i32::MIN
            && (old.last_visit == i32::MIN
                || month_of_day(old.last_visit) != month_of_day(new.last_visit))
        {
            self.month_mut(month_of_day(new.last_visit)).active += 1;
        }
    }

    /// The aggregates as they would be had no member any profile facts: what the journal alone
    /// gives (the audience's saved state). Computed from the cells, without the rows: every
    /// member the histograms count moves to the unknown birth year, gender and city.
    pub fn without_profiles(&self) -> Analytics {
        let mut a = self.clone();
        a.members.without_profiles();
        a
    }

    fn month_mut(&mut self, m: Month) -> &mut Movement {
        self.months.entry(m).or_default()
    }

    /// Points moved on a member's balance on `day`, attributed to `partner` when one posted it.
    pub fn points(&mut self, day: i32, partner: Option<u32>, issued: i64, redeemed: i64) {
        let m = month_of_day(day);
        let mv = self.month_mut(m);
        mv.issued += issued;
        mv.redeemed += redeemed;
        if let Some(p) = partner {
            let pm = self.partners.entry((p, m)).or_default();
            pm.issued += issued;
            pm.redeemed += redeemed;
        }
    }

    /// Points expired on `day`.
    pub fn expired(&mut self, day: i32, points: i64) {
        self.month_mut(month_of_day(day)).expired += points;
    }

    /// An earn at `partner` on `day`: its sales and the cost of its points in the partner's
    /// currency's minor units, when it was priced by money; `programme_sales` when the
    /// currency is the programme's.
    pub fn earn(
        &mut self,
        day: i32,
        partner: u32,
        sales_cost: Option<(i64, i64)>,
        programme_sales: Option<i64>,
    ) {
        let m = month_of_day(day);
        let pm = self.partners.entry((partner, m)).or_default();
        pm.earns += 1;
        if let Some((sales, cost)) = sales_cost {
            pm.sales_minor += sales;
            pm.cost_minor += cost;
            pm.sales_earns += 1;
        }
        let mv = self.month_mut(m);
        mv.earns += 1;
        if let Some(s) = programme_sales {
            mv.sales_minor += s;
            mv.sales_earns += 1;
        }
        let last = self.partner_last_day.entry(partner).or_insert(day);
        *last = (*last).max(day);
    }

    /// A dated lot changed by `delta` points, expiring at `at_ms`.
    pub fn lot(&mut self, at_ms: i64, delta: i64) {
        let day = at_ms.div_euclid(86_400_000) as i32;
        let e = self.expiring.entry(month_of_day(day)).or_default();
        *e += delta;
        if *e <= 0 {
            self.expiring.remove(&month_of_day(day));
        }
    }
}

/// The ABC split of members by spend: how many members make the first 80% of sales (A), the
/// next 15% (B) and the rest (C). Counted on spend buckets a quarter of a power of two wide, so a
/// member on a boundary may fall either side.
pub fn abc(h: &Histograms) -> [(u64, i64); 3] {
    let total: i64 = h.spend_buckets.values().map(|b| b.1).sum();
    let mut out = [(0u64, 0i64); 3];
    let mut seen = 0i64;
    for (n, s) in h.spend_buckets.values().rev() {
        let class = if total == 0 || seen * 100 < total * 80 {
            0
        } else if seen * 100 < total * 95 {
            1
        } else {
            2
        };
        out[class].0 += n;
        out[class].1 += s;
        seen += s;
    }
    out
}

/// The named RFM segments, as of `now` (a month).
pub const RFM_SEGMENTS: [&str; 6] = [
    "champions",
    "loyal",
    "new",
    "at-risk",
    "hibernating",
    "others",
];

/// Members per RFM segment ([`RFM_SEGMENTS`]) as of month `now`.
pub fn rfm(h: &Histograms, now: Month) -> [u64; 6] {
    let mut out = [0u64; 6];
    for (&(last, f, m), &n) in &h.rfm {
        let r = r_score(now - last);
        let i = if r >= 4 && f >= 4 && m >= 4 {
            0
        } else if r <= 2 && f >= 3 {
            3
        } else if r <= 2 {
            4
        } else if f >= 4 {
            1
        } else if f == 1 && r >= 4 {
            2
        } else {
            5
        };
        out[i] += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(visits: u32, spend_units: i64, first: i32, last: i32) -> Row {
        Row {
            enrolled: true,
            visits,
            spend_minor: spend_units * 100,
            first_visit: if visits > 0 { first } else { i32::MIN },
            last_visit: if visits > 0 { last } else { i32::MIN },
            ..Row::default()
        }
    }

    #[test]
    fn histograms_follow_each_row_change() {
        let mut a = Analytics::default();
        let blank = Row::default();
        let one = member(1, 40, 20_000, 20_000);
        a.row_changed(&blank, &one, 100);
        assert_eq!(
            (a.members.members, a.members.visited, a.members.repeat),
            (1, 1, 0)
        );
        assert_eq!(a.members.spend, [0, 1, 0, 0, 0, 0, 0]);
        // A second visit 20 days later, spending 100 more: moves bands, counts a repeat.
        let two = member(2, 140, 20_000, 20_020);
        a.row_changed(&one, &two, 100);
        assert_eq!(
            (a.members.members, a.members.visited, a.members.repeat),
            (1, 1, 1)
        );
        assert_eq!(a.members.spend, [0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(a.members.visits, [0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(a.members.interval, [0, 0, 1, 0, 0, 0]);
        assert_eq!(a.members.rfm.len(), 1);
        // Suspended: out of every count.
        let gone = Row {
            active: false,
            ..two
        };
        a.row_changed(&two, &gone, 100);
        assert_eq!(a.members.members, 0);
        assert!(a.members.rfm.is_empty() && a.members.spend_buckets.is_empty());
        assert_eq!(a.members.spend.iter().sum::<u64>(), 0);
    }

    #[test]
    fn aggregates_without_profiles_equal_each_row_stripped_of_its_profile() {
        // Members of every kind: enrolled or not, active or not, with a birth date, gender
        // and city or without, visits and spend spread over the bands.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let rows: Vec<Row> = (0..2_000)
            .map(|_| {
                let visits = next(6) as u32;
                Row {
                    enrolled: next(10) != 0,
                    active: next(8) != 0,
                    birth: if next(4) == 0 {
                        i32::MIN
                    } else {
                        -9_000 + next(14_000) as i32
                    },
                    gender: next(4) as u32,
                    city: next(30) as u32,
                    reach: next(8) as u8,
                    ..member(
                        visits,
                        next(3_000) as i64,
                        19_000,
                        19_000 + next(200) as i32,
                    )
                }
            })
            .collect();
        let mut a = Analytics::default();
        for r in &rows {
            a.row_changed(&Row::default(), r, 100);
        }
        assert!(a.members.gender.len() > 1 && a.members.city.len() > 10);
        // What the saved state held before: each row changed to its bare form, one by one.
        let mut by_rows = a.clone();
        for r in &rows {
            by_rows.row_changed(r, &r.without_profile(), 100);
        }
        let bare = a.without_profiles();
        assert_eq!(bare, by_rows);
        assert_eq!(bare.members.gender.keys().collect::<Vec<_>>(), [&0]);
        assert_eq!(bare.members.birth_year[&i32::MIN], a.members.members);
        // The rest is the journal's, untouched.
        assert_eq!(bare.members.spend, a.members.spend);
        assert_eq!(bare.months, a.months);
        // Nobody counted: no cell at all.
        let none = Analytics::default().without_profiles();
        assert!(none.members.birth_year.is_empty() && none.members.city.is_empty());
    }

    #[test]
    fn abc_splits_sales_eighty_fifteen_five() {
        let mut h = Histograms::default();
        // One member spends 8,000 (80%), ten spend 150 each (the next 15%), a hundred spend 5
        // each (the last 5%).
        let rows: Vec<Row> = std::iter::once(member(5, 8_000, 1, 2))
            .chain((0..10).map(|_| member(2, 150, 1, 2)))
            .chain((0..100).map(|_| member(1, 5, 1, 1)))
            .collect();
        for r in &rows {
            h.count(r, 100, 1);
        }
        let [a, b, c] = abc(&h);
        assert_eq!((a.0, b.0, c.0), (1, 10, 100), "{:?}", abc(&h));
        assert_eq!(a.1 + b.1 + c.1, 10_000 * 100);
    }

    #[test]
    fn rfm_scores_recency_when_read() {
        let mut h = Histograms::default();
        let m = month_of_day(20_000);
        h.count(&member(10, 600, 19_000, 20_000), 100, 1);
        assert_eq!(rfm(&h, m), [1, 0, 0, 0, 0, 0]);
        // A year on without a visit, the same member is at risk.
        assert_eq!(rfm(&h, m + 12), [0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn months_count_active_members_once() {
        let mut a = Analytics::default();
        let d = 20_000;
        let r1 = member(1, 0, d, d);
        a.row_changed(&Row::default(), &r1, 100);
        let r2 = member(2, 0, d, d + 1);
        a.row_changed(&r1, &r2, 100);
        assert_eq!(a.months[&month_of_day(d)].active, 1);
        let r3 = member(3, 0, d, d + 40);
        a.row_changed(&r2, &r3, 100);
        assert_eq!(a.months[&month_of_day(d + 40)].active, 1);
        assert_eq!(year_month(month_of_day(0)), (1970, 1));
    }
}
