//! Breakage: the share of points expected never to be redeemed, estimated per cohort (month of
//! issue) from the programme's own history, by age.
//!
//! For a cohort `c` with net issue `N_c` (issued less reversed) and `Red_c(a)` points redeemed
//! by age `a` months:
//!
//! - A cohort is **mature** once it is at least `M` months old (`maturity_months`). Its breakage
//!   is what was not redeemed: `1 - Red_c / N_c`. That counts expired points and points left
//!   in dormant accounts alike, so the estimate does not rest on expiry postings alone.
//! - The mature cohorts give a **redemption curve**: `S(a) = sum Red_c(<= a) / sum N_c`, and its
//!   end `U = sum Red_c / sum N_c`.
//! - A younger cohort at age `a` is expected to redeem what it has plus what mature cohorts
//!   redeemed after that age: `redeemed_c / N_c + (U - S(a))`. Its breakage is one less that,
//!   and never less than what has already expired (`expired_c / N_c`).
//! - With no mature cohort yet, a young cohort's estimate is what has expired so far (a floor,
//!   marked `no-history`), unless an operator override says otherwise.
//! - An operator **override** (a rate for every cohort, or for one) replaces the estimate, and
//!   says why.
//!
//! The programme's rate is the issue-weighted mean of the cohorts' rates.

use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;

/// A cohort's history, as the estimate reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CohortHistory {
    /// Month of issue (`yyyymm`).
    pub cohort: u32,
    /// Points issued less reversed.
    pub net_issued: i64,
    /// Points redeemed, by age in months.
    pub redeemed: BTreeMap<u32, i64>,
    /// Points expired.
    pub expired: i64,
    /// Points still outstanding.
    pub outstanding: i64,
}

/// An operator's override of the estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Override {
    /// The rate, a share between 0 and 1.
    pub rate: Decimal,
    /// The cohort it applies to (`yyyymm`), or every cohort.
    pub cohort: Option<u32>,
    /// Who set it.
    pub author: String,
    /// Why.
    pub reason: String,
    /// When (ms since the epoch).
    pub at: i64,
}

/// One cohort's estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CohortEstimate {
    /// Month of issue.
    pub cohort: u32,
    /// Age in months at the estimate.
    pub age_months: u32,
    /// Points issued less reversed.
    pub net_issued: i64,
    /// Points redeemed so far.
    pub redeemed: i64,
    /// Points expired so far.
    pub expired: i64,
    /// Points outstanding.
    pub outstanding: i64,
    /// The breakage rate.
    pub rate: Decimal,
    /// `observed` (mature), `developed` (young, from the curve), `no-history`, or `override`.
    pub method: &'static str,
}

/// A point of the redemption curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurvePoint {
    /// Age in months.
    pub age_months: u32,
    /// Share of points issued redeemed by that age.
    pub redeemed_share: Decimal,
}

/// The estimate for every cohort and the programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Estimate {
    /// Months after which a cohort counts as mature.
    pub maturity_months: u32,
    /// Per cohort.
    pub cohorts: Vec<CohortEstimate>,
    /// The redemption curve of the mature cohorts: cumulative share redeemed by age.
    pub curve: Vec<CurvePoint>,
    /// The programme's rate.
    pub rate: Decimal,
    /// The override in force, if any.
    pub override_in_force: Option<Override>,
}

fn ratio(a: i64, b: i64) -> Decimal {
    if b <= 0 {
        Decimal::ZERO
    } else {
        Decimal::from(a) / Decimal::from(b)
    }
}

/// Estimates breakage at month `now` (`yyyymm`) from `cohorts`, under the overrides in force
/// (the latest programme-wide one, and the latest for each cohort).
pub fn estimate(
    cohorts: &[CohortHistory],
    now: u32,
    maturity_months: u32,
    overrides: &[Override],
) -> Estimate {
    let age = |c: u32| super::book::Book::months_between(c, now);
    let mature: Vec<&CohortHistory> = cohorts
        .iter()
        .filter(|c| age(c.cohort) >= maturity_months && c.net_issued > 0)
        .collect();
    let mature_issued: i64 = mature.iter().map(|c| c.net_issued).sum();
    let mut by_age: BTreeMap<u32, i64> = BTreeMap::new();
    for c in &mature {
        for (a, n) in &c.redeemed {
            *by_age.entry(*a).or_insert(0) += n;
        }
    }
    let mut curve = Vec::new();
    let mut running = 0;
    for (a, n) in &by_age {
        running += n;
        curve.push(CurvePoint {
            age_months: *a,
            redeemed_share: ratio(running, mature_issued),
        });
    }
    let ultimate = ratio(running, mature_issued);
    let share_by = |a: u32| {
        curve
            .iter()
            .take_while(|p| p.age_months <= a)
            .last()
            .map_or(Decimal::ZERO, |p| p.redeemed_share)
    };
    let wide = overrides.iter().rfind(|o| o.cohort.is_none()).cloned();
    let mut out = Vec::with_capacity(cohorts.len());
    let (mut weighted, mut weight) = (Decimal::ZERO, 0i64);
    for c in cohorts {
        let a = age(c.cohort);
        let redeemed: i64 = c.redeemed.values().sum();
        let expired_share = ratio(c.expired, c.net_issued);
        let own = overrides
            .iter()
            .rfind(|o| o.cohort == Some(c.cohort))
            .or(wide.as_ref());
        let (rate, method) = if let Some(o) = own {
            (o.rate, "override")
        } else if c.net_issued <= 0 {
            (Decimal::ZERO, "observed")
        } else if a >= maturity_months {
            (Decimal::ONE - ratio(redeemed, c.net_issued), "observed")
        } else if mature.is_empty() {
            (expired_share, "no-history")
        } else {
            let expected = ratio(redeemed, c.net_issued) + (ultimate - share_by(a));
            ((Decimal::ONE - expected).max(expired_share), "developed")
        };
        let rate = rate.clamp(Decimal::ZERO, Decimal::ONE).round_dp(6);
        if c.net_issued > 0 {
            weighted += rate * Decimal::from(c.net_issued);
            weight += c.net_issued;
        }
        out.push(CohortEstimate {
            cohort: c.cohort,
            age_months: a,
            net_issued: c.net_issued,
            redeemed,
            expired: c.expired,
            outstanding: c.outstanding,
            rate,
            method,
        });
    }
    Estimate {
        maturity_months,
        cohorts: out,
        curve,
        rate: if weight > 0 {
            (weighted / Decimal::from(weight)).round_dp(6)
        } else {
            wide.as_ref().map_or(Decimal::ZERO, |o| o.rate)
        },
        override_in_force: wide,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cohort(c: u32, issued: i64, redeemed: &[(u32, i64)], expired: i64) -> CohortHistory {
        CohortHistory {
            cohort: c,
            net_issued: issued,
            redeemed: redeemed.iter().copied().collect(),
            expired,
            outstanding: issued - redeemed.iter().map(|r| r.1).sum::<i64>() - expired,
        }
    }

    /// Worked by hand: two mature cohorts of 1,000 points redeemed 600 and 700 (400 and 500 in
    /// their first month, the rest in the second), so U = 1,300 / 2,000 = 0.65 and
    /// S(0) = 900 / 2,000 = 0.45. This month's cohort (age 0) of 1,000 points that redeemed
    /// 300: expected 0.30 + (0.65 - 0.45) = 0.50, breakage 0.50.
    #[test]
    fn young_cohorts_follow_the_mature_cohorts_curve() {
        let cohorts = [
            cohort(202501, 1_000, &[(0, 400), (1, 200)], 400),
            cohort(202502, 1_000, &[(0, 500), (1, 200)], 300),
            cohort(202601, 1_000, &[(0, 300)], 0),
        ];
        let e = estimate(&cohorts, 202601, 6, &[]);
        assert_eq!(e.cohorts[0].rate, Decimal::new(40, 2));
        assert_eq!(e.cohorts[0].method, "observed");
        assert_eq!(e.cohorts[1].rate, Decimal::new(30, 2));
        assert_eq!(e.cohorts[2].method, "developed");
        assert_eq!(e.cohorts[2].rate, Decimal::new(50, 2));
        let curve: Vec<(u32, Decimal)> = e
            .curve
            .iter()
            .map(|p| (p.age_months, p.redeemed_share))
            .collect();
        assert_eq!(
            curve,
            vec![(0, Decimal::new(45, 2)), (1, Decimal::new(65, 2))]
        );
        // (0.40 + 0.30 + 0.50) x 1,000 / 3,000.
        assert_eq!(e.rate, Decimal::new(40, 2));
    }

    #[test]
    fn an_override_replaces_the_estimate_and_a_cohort_override_wins_over_a_wide_one() {
        let cohorts = [
            cohort(202501, 1_000, &[(0, 600)], 0),
            cohort(202502, 1_000, &[], 0),
        ];
        let o = |rate: i64, cohort: Option<u32>| Override {
            rate: Decimal::new(rate, 2),
            cohort,
            author: "cfo".into(),
            reason: "audit".into(),
            at: 0,
        };
        let e = estimate(&cohorts, 202601, 6, &[o(20, None), o(10, Some(202502))]);
        assert_eq!(e.cohorts[0].rate, Decimal::new(20, 2));
        assert_eq!(e.cohorts[1].rate, Decimal::new(10, 2));
        assert_eq!(e.cohorts[1].method, "override");
        assert_eq!(e.rate, Decimal::new(15, 2));
    }

    #[test]
    fn without_history_a_young_cohort_counts_only_what_expired() {
        let e = estimate(&[cohort(202512, 1_000, &[(0, 100)], 50)], 202601, 6, &[]);
        assert_eq!(e.cohorts[0].method, "no-history");
        assert_eq!(e.cohorts[0].rate, Decimal::new(5, 2));
    }
}
