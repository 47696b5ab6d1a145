//! The finance reports, built from the [`Book`] (and, for the trial balance inside a day, the
//! journal of that day) on one store snapshot.

use super::book::{Asset, Book, Close, Issuer, Line, Outstanding, SettlementMonth};
use super::breakage::{self, CohortHistory, Estimate, Override};
use super::revenue::{self, PeriodInput, ScheduleRow};
use crate::core::types::{AccountId, Currency, Timestamp};
use crate::error::LedgerError;
use crate::store::Snapshot;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;

/// An instant as finance reads it: RFC 3339 in the programme's time zone.
pub fn iso(book: &Book, t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .unwrap_or_default()
        .with_timezone(&book.time_zone())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// `yyyymm` as `yyyy-mm`.
pub fn month_name(m: u32) -> String {
    format!("{:04}-{:02}", m / 100, m % 100)
}

/// One trial-balance line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrialLine {
    /// The account (`members` for every member account together).
    pub account: String,
    /// Points balance.
    pub points: Decimal,
    /// Money balance per currency.
    pub money: BTreeMap<String, Decimal>,
}

/// Every account's balance at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrialBalance {
    /// The instant.
    pub at: String,
    /// The lines.
    pub lines: Vec<TrialLine>,
    /// Points over every line: zero.
    pub total_points: Decimal,
    /// Money over every line, per currency: zero.
    pub total_money: BTreeMap<String, Decimal>,
}

fn account_name(l: Line) -> String {
    match l {
        Line::Members => "members".to_string(),
        Line::Account(a) => a.to_string(),
    }
}

/// Every line's balance per asset at `at`: whole days from the book, the rest of `at`'s day
/// from the journal.
fn sums_at<S: Snapshot + ?Sized>(
    book: &Book,
    snapshot: &S,
    at: Timestamp,
) -> Result<BTreeMap<(Line, Asset), Decimal>, LedgerError> {
    let day = book.day(at);
    let mut sums = book.movements_before(day);
    let from = book.day_start_at(day);
    super::for_each_dated(book, snapshot, Some(from), Some(at), &mut |tx| {
        // Days before are in the sums already (a day's start can differ from `from` by a
        // time-zone transition).
        if book.day(tx.at) >= day {
            for (k, v) in Book::lines_of(tx) {
                *sums.entry(k).or_insert(Decimal::ZERO) += v;
            }
        }
        Ok(true)
    })?;
    Ok(sums)
}

/// Account `a`'s balance at `at` (a system account; members are one line here).
pub fn balance_at<S: Snapshot + ?Sized>(
    book: &Book,
    snapshot: &S,
    a: AccountId,
    at: Timestamp,
) -> Result<crate::core::state::Balance, LedgerError> {
    let mut b = crate::core::state::Balance::default();
    for ((line, asset), v) in sums_at(book, snapshot, at)? {
        if line != Line::Account(a) {
            continue;
        }
        match asset {
            Asset::Points => {
                b.points.0 += rust_decimal::prelude::ToPrimitive::to_i64(&v).unwrap_or_default()
            }
            Asset::Money(c) => b.add(crate::core::model::Amount::Money(
                crate::core::types::Money::new(v, c),
            )),
        }
    }
    Ok(b)
}

/// Balances at `at`: whole days from the book, the rest of `at`'s day from the journal.
pub fn trial_balance<S: Snapshot + ?Sized>(
    book: &Book,
    snapshot: &S,
    at: Timestamp,
) -> Result<TrialBalance, LedgerError> {
    let sums = sums_at(book, snapshot, at)?;
    let mut lines: BTreeMap<Line, TrialLine> = BTreeMap::new();
    let mut total_points = Decimal::ZERO;
    let mut total_money: BTreeMap<String, Decimal> = BTreeMap::new();
    for ((line, asset), v) in sums {
        let l = lines.entry(line).or_insert_with(|| TrialLine {
            account: account_name(line),
            points: Decimal::ZERO,
            money: BTreeMap::new(),
        });
        match asset {
            Asset::Points => {
                l.points += v;
                total_points += v;
            }
            Asset::Money(c) => {
                *l.money.entry(c.code().to_string()).or_default() += v;
                *total_money.entry(c.code().to_string()).or_default() += v;
            }
        }
    }
    Ok(TrialBalance {
        at: iso(book, at),
        lines: lines.into_values().collect(),
        total_points,
        total_money,
    })
}

/// Outstanding points in one group, valued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LiabilityLine {
    /// The group: an issuer (`partner/ID`, `adjustments`, `unattributed`), a cohort or an
    /// expiry month (`yyyy-mm`, `never`).
    pub group: String,
    /// Points outstanding.
    pub points: i64,
    /// What partners were billed for them, per currency.
    pub issuance_value: BTreeMap<String, Decimal>,
    /// What they would cost to redeem at the redemption prices in force, per currency.
    pub redemption_value: BTreeMap<String, Decimal>,
    /// The redemption value less expected breakage.
    pub expected_cost: BTreeMap<String, Decimal>,
}

/// Points owed to members, grouped three ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Liability {
    /// As of.
    pub at: String,
    /// Points outstanding in lots (members' positive balances).
    pub points: i64,
    /// The redemption price per point used, per currency (redemptions-weighted over the
    /// partners' contracts).
    pub redemption_price: BTreeMap<String, Decimal>,
    /// The breakage rate used for the expected cost.
    pub breakage_rate: Decimal,
    /// By issuing partner.
    pub by_issuer: Vec<LiabilityLine>,
    /// By cohort (month of issue).
    pub by_cohort: Vec<LiabilityLine>,
    /// By month of expiry.
    pub by_expiry: Vec<LiabilityLine>,
    /// Everything.
    pub total: LiabilityLine,
}

/// The liability from `buckets` (the book's, or a close's), at the redemption prices in force
/// now.
pub fn liability(
    book: &Book,
    at: Timestamp,
    buckets: &[(super::book::BucketKey, Outstanding)],
    breakage_rate: Decimal,
) -> Liability {
    liability_at_prices(book, at, buckets, &book.redemption_prices(), breakage_rate)
}

/// The liability from `buckets`, valued at `prices` (a close's, as they stood then).
pub fn liability_at_prices(
    book: &Book,
    at: Timestamp,
    buckets: &[(super::book::BucketKey, Outstanding)],
    prices: &BTreeMap<Currency, Decimal>,
    breakage_rate: Decimal,
) -> Liability {
    let line = |group: String, items: &[&(super::book::BucketKey, Outstanding)]| {
        let points: i64 = items.iter().map(|(_, o)| o.points).sum();
        let mut issuance_value: BTreeMap<String, Decimal> = BTreeMap::new();
        for (k, o) in items {
            if let Some(c) = k.currency {
                *issuance_value.entry(c.code().to_string()).or_default() += o.value;
            }
        }
        for v in issuance_value.values_mut() {
            *v = v.round_dp(4);
        }
        let redemption_value: BTreeMap<String, Decimal> = prices
            .iter()
            .map(|(c, p)| {
                (
                    c.code().to_string(),
                    (p * Decimal::from(points)).round_dp(4),
                )
            })
            .collect();
        let expected_cost = redemption_value
            .iter()
            .map(|(c, v)| (c.clone(), (v * (Decimal::ONE - breakage_rate)).round_dp(4)))
            .collect();
        LiabilityLine {
            group,
            points,
            issuance_value,
            redemption_value,
            expected_cost,
        }
    };
    let live: Vec<&(super::book::BucketKey, Outstanding)> =
        buckets.iter().filter(|(_, o)| o.points != 0).collect();
    let group_by = |f: &dyn Fn(&super::book::BucketKey) -> String| {
        let mut groups: BTreeMap<String, Vec<&(super::book::BucketKey, Outstanding)>> =
            BTreeMap::new();
        for b in &live {
            groups.entry(f(&b.0)).or_default().push(b);
        }
        groups
            .into_iter()
            .map(|(g, items)| line(g, &items))
            .collect::<Vec<_>>()
    };
    Liability {
        at: iso(book, at),
        points: live.iter().map(|(_, o)| o.points).sum(),
        redemption_price: prices
            .iter()
            .map(|(c, p)| (c.code().to_string(), *p))
            .collect(),
        breakage_rate,
        by_issuer: group_by(&|k| match k.issuer {
            Issuer::Partner(p) => format!("partner/{}", p.0),
            Issuer::Adjustments => "adjustments".into(),
            Issuer::Promotions => "promotions".into(),
            Issuer::Unattributed => "unattributed".into(),
        }),
        by_cohort: group_by(&|k| month_name(k.cohort)),
        by_expiry: group_by(&|k| k.expiry.map_or_else(|| "never".into(), month_name)),
        total: line("total".into(), &live),
    }
}

/// The cohorts as they stood at the end of month `m`: only what happened by then.
pub fn cohorts_at(book: &Book, m: u32) -> Vec<CohortHistory> {
    book.cohorts
        .range(..=m)
        .map(|(c, h)| {
            let upto = Book::months_between(*c, m);
            let redeemed: BTreeMap<u32, i64> =
                h.redeemed.range(..=upto).map(|(a, n)| (*a, *n)).collect();
            let expired: i64 = h.expired.range(..=upto).map(|(_, n)| n).sum();
            let other: i64 = h.other.range(..=upto).map(|(_, n)| n).sum();
            let net = h.issued - h.reversed;
            CohortHistory {
                cohort: *c,
                net_issued: net,
                outstanding: net - redeemed.values().sum::<i64>() - expired - other,
                redeemed,
                expired,
            }
        })
        .collect()
}

/// The breakage estimate at the end of month `m`, under the overrides made by then.
pub fn breakage_at(book: &Book, m: u32, maturity_months: u32, overrides: &[Override]) -> Estimate {
    let end = book.month_start(Book::next_month(m));
    let in_force: Vec<Override> = overrides.iter().filter(|o| o.at < end.0).cloned().collect();
    breakage::estimate(&cohorts_at(book, m), m, maturity_months, &in_force)
}

/// A partner's settlement statement for one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settlement {
    /// The partner.
    pub partner: u32,
    /// The month (`yyyy-mm`).
    pub period: String,
    /// The contract's currency.
    pub currency: String,
    /// Points the partner issued.
    pub issued_points: i64,
    /// Billed for them at the issuance price.
    pub billed: Decimal,
    /// Points of reversed earns.
    pub issued_reversed_points: i64,
    /// Credited back for them.
    pub billed_reversed: Decimal,
    /// Points redeemed at the partner.
    pub redeemed_points: i64,
    /// Reimbursed for them at the redemption price.
    pub reimbursed: Decimal,
    /// Points of reversed burns.
    pub redeemed_reversed_points: i64,
    /// Taken back for them.
    pub reimbursed_reversed: Decimal,
    /// Billed less credited, less reimbursed plus taken back.
    pub net: Decimal,
    /// `partner-pays`, `programme-pays` or `settled`.
    pub direction: &'static str,
    /// Journal transactions behind the lines.
    pub transactions: u64,
    /// The money movement of the partner's issuance and redemption accounts in the trial
    /// balance over the month, in the currency: equal to `net`.
    pub account_movement: Decimal,
}

/// Every partner's statement for month `m` (those with a contract).
pub fn settlements(book: &Book, m: u32) -> Vec<Settlement> {
    let (d0, d1) = (
        book.day(book.month_start(m)),
        book.day(book.month_start(Book::next_month(m))),
    );
    let moved = book.movements_between(d0, d1);
    book.contracts
        .iter()
        .map(|(p, c)| {
            let s = book
                .settlement
                .get(&(*p, m))
                .cloned()
                .unwrap_or_else(SettlementMonth::default);
            let get =
                |x: &BTreeMap<Currency, Decimal>| x.get(&c.currency).copied().unwrap_or_default();
            let net = get(&s.billed) - get(&s.billed_reversed) - get(&s.reimbursed)
                + get(&s.reimbursed_reversed);
            let movement = [
                AccountId::PartnerIssuance(*p),
                AccountId::PartnerRedemption(*p),
            ]
            .iter()
            .map(|a| {
                moved
                    .get(&(Line::Account(*a), Asset::Money(c.currency)))
                    .copied()
                    .unwrap_or_default()
            })
            .sum();
            Settlement {
                partner: p.0,
                period: month_name(m),
                currency: c.currency.code().to_string(),
                issued_points: s.issued_points,
                billed: get(&s.billed),
                issued_reversed_points: s.issued_reversed_points,
                billed_reversed: get(&s.billed_reversed),
                redeemed_points: s.redeemed_points,
                reimbursed: get(&s.reimbursed),
                redeemed_reversed_points: s.redeemed_reversed_points,
                reimbursed_reversed: get(&s.reimbursed_reversed),
                net,
                direction: match net.cmp(&Decimal::ZERO) {
                    std::cmp::Ordering::Greater => "partner-pays",
                    std::cmp::Ordering::Less => "programme-pays",
                    std::cmp::Ordering::Equal => "settled",
                },
                transactions: s.transactions,
                account_movement: movement,
            }
        })
        .collect()
}

/// The revenue schedule of one currency, month by month from the first with activity to
/// `through` (`yyyymm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevenueSchedule {
    /// The currency.
    pub currency: String,
    /// Months after which a cohort counts as mature for the breakage estimate.
    pub maturity_months: u32,
    /// One row per month.
    pub rows: Vec<ScheduleRow>,
}

/// The schedule per currency.
pub fn revenue(
    book: &Book,
    through: u32,
    maturity_months: u32,
    overrides: &[Override],
) -> Vec<RevenueSchedule> {
    let currencies: std::collections::BTreeSet<Currency> =
        book.revenue.keys().map(|(c, _)| *c).collect();
    let first = book.revenue.keys().map(|(_, m)| *m).min();
    let mut out = Vec::new();
    for c in currencies {
        let Some(mut m) = first else { break };
        let mut inputs = Vec::new();
        while m <= through {
            let r = book.revenue.get(&(c, m)).copied().unwrap_or_default();
            inputs.push(PeriodInput {
                period: month_name(m),
                billed: r.billed,
                issued: r.issued,
                redeemed: r.redeemed,
                breakage: breakage_at(book, m, maturity_months, overrides).rate,
            });
            m = Book::next_month(m);
        }
        out.push(RevenueSchedule {
            currency: c.code().to_string(),
            maturity_months,
            rows: revenue::schedule(&inputs, c.minor_units()),
        });
    }
    out
}

/// A closed period's final reports, with the chain checkpoint at its close and a digest over
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClosedPeriod {
    /// The period's name.
    pub period: String,
    /// Start and end (exclusive).
    pub from: String,
    /// See `from`.
    pub through: String,
    /// The close transaction's id.
    pub close_tx: String,
    /// The chain checkpoint at the close's batch (`POSITION:LINK`), covering the journal up
    /// to the close (every transaction dated in the period comes before it); `None` until the
    /// cluster path's sealer reaches it.
    pub checkpoint: Option<String>,
    /// The trial balance at the period's end.
    pub trial_balance: TrialBalance,
    /// The liability at the close.
    pub liability: Liability,
    /// The partners' statements for the period's months.
    pub settlements: Vec<Settlement>,
    /// SHA-256 of this report's JSON without the digest.
    pub digest: String,
}

/// The chain checkpoint (`POSITION:LINK`) of the batch at `position`, if chained yet.
pub fn checkpoint_at<S: Snapshot + ?Sized>(
    snapshot: &S,
    position: &[u8],
) -> Result<Option<String>, LedgerError> {
    Ok(snapshot
        .get(&crate::keys::chain(position))?
        .map(|v| crate::chain::ChainRecord::decode(&v))
        .transpose()?
        .map(|r| {
            crate::chain::Checkpoint {
                position: position.to_vec(),
                link: r.link,
            }
            .to_string()
        }))
}

/// The final reports of close `c`.
pub fn closed_period<S: Snapshot + ?Sized>(
    book: &Book,
    snapshot: &S,
    c: &Close,
    maturity_months: u32,
    overrides: &[Override],
) -> Result<ClosedPeriod, LedgerError> {
    let checkpoint = checkpoint_at(snapshot, &c.position)?;
    let last = book.month(Timestamp(c.through.0 - 1));
    let first = book.month(c.from.max(Timestamp(book_first(book, c))));
    let mut settlements = Vec::new();
    let mut m = first;
    while m <= last {
        settlements.extend(settlements_of(book, m));
        m = Book::next_month(m);
    }
    let rate = breakage_at(book, last, maturity_months, overrides).rate;
    let mut report = ClosedPeriod {
        period: c.period.clone(),
        from: iso(book, c.from),
        through: iso(book, c.through),
        close_tx: c.tx.0.to_string(),
        checkpoint,
        trial_balance: trial_balance(book, snapshot, Timestamp(c.through.0 - 1))?,
        liability: liability_at_prices(book, c.at, &c.liability, &c.prices, rate),
        settlements,
        digest: String::new(),
    };
    let json = serde_json::to_vec(&report).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    report.digest = crate::chain::hex(&<sha2::Sha256 as sha2::Digest>::digest(&json));
    Ok(report)
}

fn settlements_of(book: &Book, m: u32) -> Vec<Settlement> {
    settlements(book, m)
        .into_iter()
        .filter(|s| s.transactions > 0)
        .collect()
}

/// The first instant the period's reports look at: its start, or the book's first day.
fn book_first(book: &Book, c: &Close) -> i64 {
    if c.from.0 > 0 {
        return c.from.0;
    }
    book.first_day()
        .map_or(c.through.0 - 1, |d| book.day_start_at(d).0)
}
