//! IFRS 15 revenue for the programme operator: consideration for points is deferred (a
//! contract liability) and recognised as points are redeemed, in proportion to the points
//! expected to be redeemed (IFRS 15.B46 for breakage, Illustrative Example 52, IE267-IE270). A
//! revised estimate of redemptions changes the cumulative amount recognised; the difference is
//! a catch-up in the period of the revision (IFRS 15.88).
//!
//! Cumulative, per currency, at the end of each period `t`:
//!
//! ```text
//! D_t  consideration billed for points (net of reversals)
//! I_t  points issued against it, R_t points redeemed, b_t the breakage estimate in force
//! E_t  = I_t * (1 - b_t)                       points expected to be redeemed
//! C_t  = round(D_t * min(1, R_t / E_t))        revenue recognised so far
//! C'   = round(D_{t-1} * min(1, R_{t-1} / (I_{t-1} * (1 - b_t))))
//!        last period's cumulative restated under this period's estimate
//! catch-up        = C' - C_{t-1}
//! from redemptions = round(D_t * min(1, R_t / I_t)) - (the same at t-1)
//! from breakage   = C_t - C' - from redemptions
//! closing         = opening + billed - (C_t - C_{t-1})
//! ```

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

/// One period's inputs: its own movements, and the breakage estimate at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodInput {
    /// The period's name.
    pub period: String,
    /// Consideration billed for points in the period, net of reversals.
    pub billed: Decimal,
    /// Points issued in the period, net of reversals.
    pub issued: i64,
    /// Points redeemed in the period, net of burn reversals.
    pub redeemed: i64,
    /// The breakage estimate (a share of points issued) in force at the period's end.
    pub breakage: Decimal,
}

/// One row of the revenue schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleRow {
    /// The period.
    pub period: String,
    /// Deferred revenue (contract liability) at the start.
    pub opening: Decimal,
    /// Consideration billed for points in the period.
    pub billed: Decimal,
    /// Revenue recognised from the period's redemptions, at the consideration per point.
    pub from_redemptions: Decimal,
    /// Revenue recognised for expected breakage, in proportion to redemptions.
    pub from_breakage: Decimal,
    /// The cumulative effect of a revised breakage estimate, recognised in this period.
    pub catch_up: Decimal,
    /// Revenue recognised in the period in all.
    pub recognised: Decimal,
    /// Deferred revenue at the end.
    pub closing: Decimal,
    /// Points expected to be redeemed, cumulative, under this period's estimate.
    pub expected_redemptions: Decimal,
    /// The breakage estimate used.
    pub breakage: Decimal,
}

fn round(x: Decimal, dp: u32) -> Decimal {
    x.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

/// `d * min(1, r / e)`, rounded; all of `d` when nothing is expected to be redeemed but
/// points were issued (everything is breakage).
fn share(d: Decimal, r: Decimal, e: Decimal, dp: u32) -> Decimal {
    if e <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    round(d * (r / e).min(Decimal::ONE), dp)
}

/// The schedule for consecutive periods, amounts rounded to `dp` decimal places (the
/// currency's minor units).
pub fn schedule(inputs: &[PeriodInput], dp: u32) -> Vec<ScheduleRow> {
    let (mut d, mut i, mut r) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let mut cumulative = Decimal::ZERO;
    let mut from_redemptions_cum = Decimal::ZERO;
    let mut closing = Decimal::ZERO;
    let mut out = Vec::with_capacity(inputs.len());
    for p in inputs {
        let keep = Decimal::ONE - p.breakage.clamp(Decimal::ZERO, Decimal::ONE);
        let restated = share(d, r, i * keep, dp);
        let catch_up = restated - cumulative;
        d += p.billed;
        i += Decimal::from(p.issued);
        r += Decimal::from(p.redeemed);
        let expected = i * keep;
        let now = if expected <= Decimal::ZERO && i > Decimal::ZERO {
            d
        } else {
            share(d, r, expected, dp)
        };
        let redemptions_cum = share(d, r, i, dp);
        let from_redemptions = redemptions_cum - from_redemptions_cum;
        let recognised = now - cumulative;
        let opening = closing;
        closing = opening + p.billed - recognised;
        out.push(ScheduleRow {
            period: p.period.clone(),
            opening,
            billed: p.billed,
            from_redemptions,
            from_breakage: recognised - catch_up - from_redemptions,
            catch_up,
            recognised,
            closing,
            expected_redemptions: expected,
            breakage: p.breakage,
        });
        cumulative = now;
        from_redemptions_cum = redemptions_cum;
    }
    out
}

/// Splits a transaction price between performance obligations by relative stand-alone selling
/// price (IFRS 15.76). With `ratio_dp`, each ratio is first rounded to that many decimal
/// places, as illustrative examples that quote whole percentages do; the last obligation takes
/// what rounding leaves, so the parts always sum to `price`.
pub fn allocate(
    price: Decimal,
    stand_alone: &[Decimal],
    ratio_dp: Option<u32>,
    dp: u32,
) -> Vec<Decimal> {
    let total: Decimal = stand_alone.iter().copied().sum();
    if total <= Decimal::ZERO || stand_alone.is_empty() {
        return vec![Decimal::ZERO; stand_alone.len()];
    }
    let mut out = Vec::with_capacity(stand_alone.len());
    let mut given = Decimal::ZERO;
    for (n, s) in stand_alone.iter().enumerate() {
        if n + 1 == stand_alone.len() {
            out.push(price - given);
        } else {
            let ratio = match ratio_dp {
                Some(k) => round(*s / total, k),
                None => *s / total,
            };
            let part = round(price * ratio, dp);
            given += part;
            out.push(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: i64) -> Decimal {
        Decimal::from(x)
    }

    /// IFRS 15 *Revenue from Contracts with Customers*, Illustrative Examples, Example 52
    /// "Customer loyalty programme", paragraphs IE267-IE270 (IFRS Foundation, 2014, as issued
    /// with the standard). A retailer's customers buy products for CU100,000 and earn 10,000
    /// points, each worth a CU1 discount; 97 per cent are expected to be redeemed, so the
    /// points' stand-alone selling price is CU9,700. The standard allocates by ratios it quotes
    /// as whole percentages: CU91,000 to the products and CU9,000 to the points.
    /// - Year 1: 4,500 points redeemed, 9,700 still expected: revenue CU4,175
    ///   (9,000 x 4,500 / 9,700).
    /// - Year 2: 8,500 redeemed in all, 9,900 now expected: cumulative CU7,727
    ///   (9,000 x 8,500 / 9,900), so CU3,552 in year 2 (7,727 - 4,175).
    #[test]
    fn the_standards_loyalty_example_to_the_unit() {
        let parts = allocate(d(100_000), &[d(100_000), d(9_700)], Some(2), 0);
        assert_eq!(parts, vec![d(91_000), d(9_000)]);
        // Without the rounded ratios, the exact relative selling prices.
        assert_eq!(
            allocate(d(100_000), &[d(100_000), d(9_700)], None, 0),
            vec![d(91_158), d(8_842)]
        );
        let rows = schedule(
            &[
                PeriodInput {
                    period: "Year 1".into(),
                    billed: parts[1],
                    issued: 10_000,
                    redeemed: 4_500,
                    breakage: Decimal::new(3, 2),
                },
                PeriodInput {
                    period: "Year 2".into(),
                    billed: Decimal::ZERO,
                    issued: 0,
                    redeemed: 4_000,
                    breakage: Decimal::new(1, 2),
                },
            ],
            0,
        );
        assert_eq!(rows[0].recognised, d(4_175));
        assert_eq!(rows[0].closing, d(4_825));
        assert_eq!(rows[1].recognised, d(3_552));
        assert_eq!(rows[1].closing, d(1_273));
        // The schedule's split: year 1 is redemptions at CU0.90 a point plus breakage; year
        // 2's revised estimate is a catch-up on year 1's 4,500 points.
        assert_eq!(
            (
                rows[0].from_redemptions,
                rows[0].from_breakage,
                rows[0].catch_up
            ),
            (d(4_050), d(125), d(0))
        );
        assert_eq!(
            (
                rows[1].from_redemptions,
                rows[1].from_breakage,
                rows[1].catch_up
            ),
            (d(3_600), d(36), d(-84))
        );
        for r in &rows {
            assert_eq!(
                r.from_redemptions + r.from_breakage + r.catch_up,
                r.recognised
            );
            assert_eq!(r.opening + r.billed - r.recognised, r.closing);
        }
    }

    #[test]
    fn everything_is_recognised_once_every_expected_point_is_redeemed() {
        let rows = schedule(
            &[PeriodInput {
                period: "p".into(),
                billed: d(1_000),
                issued: 1_000,
                redeemed: 900,
                breakage: Decimal::new(10, 2),
            }],
            2,
        );
        assert_eq!(rows[0].recognised, d(1_000));
        assert_eq!(rows[0].closing, d(0));
    }
}
