//! The finance book: aggregates kept incrementally from the journal, in commit order, so no
//! report scans the journal per request.
//!
//! - account movements per local day (members summed into one control line), for the trial
//!   balance at any instant;
//! - every live lot's attribution (issuer, cohort month, expiry month, currency) and, per
//!   attribution bucket, the points outstanding and their issuance value (weighted average);
//! - per cohort: points issued, redeemed, expired and reversed, by age in months (breakage);
//! - per partner and month: the settlement movements;
//! - per currency and month: consideration billed, points issued and redeemed (revenue);
//! - each closed period, with its chain position and the liability at its close.

use crate::core::model::LotId;
use crate::core::model::{Amount, Transaction, TxKind};
use crate::core::programme::Funder;
use crate::core::types::{AccountId, Contract, Currency, PartnerId, Timestamp, TxId};
use chrono::Datelike;
use chrono_tz::Tz;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A trial-balance line: one system account, or every member account together.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Line {
    /// The sum of all `member/{id}` accounts (the members' sub-ledger).
    Members,
    /// A system account.
    Account(AccountId),
}

/// An asset a posting moves.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Asset {
    /// Points.
    Points,
    /// Money in one currency.
    Money(Currency),
}

/// Who issued outstanding points.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Issuer {
    /// A partner's earn.
    Partner(PartnerId),
    /// An operator's adjustment.
    Adjustments,
    /// A grant from `programme/promotions` (a referral, a survey, a draw, a code).
    Promotions,
    /// Points whose origin the book could not trace (restored onto a lot it no longer held).
    Unattributed,
}

/// A liability bucket: points of one issuer, cohort, expiry month and currency.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct BucketKey {
    /// Who issued them.
    pub issuer: Issuer,
    /// Month of issue (`yyyymm`, local).
    pub cohort: u32,
    /// Month they expire (`yyyymm`, local), if they do.
    pub expiry: Option<u32>,
    /// The currency of their issuance price, if they were billed.
    pub currency: Option<Currency>,
}

/// What is outstanding in a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outstanding {
    /// Points.
    pub points: i64,
    /// Their issuance value (what partners were billed for them), at the bucket's weighted
    /// average price.
    pub value: Decimal,
}

/// One cohort's history, by age in months since its month of issue.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cohort {
    /// Points issued in the cohort (earns and credits).
    pub issued: i64,
    /// Points taken back by reversals of the earns.
    pub reversed: i64,
    /// Points redeemed, by age (burns less burn reversals).
    pub redeemed: BTreeMap<u32, i64>,
    /// Points expired, by age.
    pub expired: BTreeMap<u32, i64>,
    /// Points otherwise removed (negative adjustments, transfer fees), by age.
    pub other: BTreeMap<u32, i64>,
}

/// One partner's settlement movements in one month.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SettlementMonth {
    /// Points the partner issued (its issuance account's points, earns).
    pub issued_points: i64,
    /// Money billed for them, per currency.
    pub billed: BTreeMap<Currency, Decimal>,
    /// Points of earn reversals.
    pub issued_reversed_points: i64,
    /// Money credited back for them.
    pub billed_reversed: BTreeMap<Currency, Decimal>,
    /// Points redeemed at the partner.
    pub redeemed_points: i64,
    /// Money owed to the partner for them.
    pub reimbursed: BTreeMap<Currency, Decimal>,
    /// Points of burn reversals.
    pub redeemed_reversed_points: i64,
    /// Money taken back for them.
    pub reimbursed_reversed: BTreeMap<Currency, Decimal>,
    /// Journal transactions that moved the partner's accounts.
    pub transactions: u64,
}

/// One currency's revenue inputs in one month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevenueMonth {
    /// Consideration billed to partners for points, less reversals.
    pub billed: Decimal,
    /// Points issued against that consideration, less reversals.
    pub issued: i64,
    /// Points redeemed, less burn reversals.
    pub redeemed: i64,
}

/// A closed period as the journal recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Close {
    /// The period's name.
    pub period: String,
    /// Its start (the previous close's end) and end, exclusive.
    pub from: Timestamp,
    /// See `from`.
    pub through: Timestamp,
    /// The close transaction.
    pub tx: TxId,
    /// When it was posted.
    pub at: Timestamp,
    /// The commit-order position of its batch: the chain's link there is the period's
    /// checkpoint.
    pub position: Vec<u8>,
    /// Liability at the close, per bucket.
    pub liability: Vec<(BucketKey, Outstanding)>,
    /// The expected redemption price per currency at the close.
    pub prices: BTreeMap<Currency, Decimal>,
}

/// A live lot's attribution.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Live {
    bucket: u32,
    remaining: i64,
}

/// How a consumed or created lot counts in its cohort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Redeemed,
    Expired,
    Reversed,
    Moved,
    Other,
}

/// The finance book. Fold transactions in commit order with [`Book::apply_batch`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Book {
    /// Kept by name beside a saved book (`finance::save`).
    #[serde(skip, default = "utc")]
    tz: Tz,
    /// The commit-order position of the last batch folded.
    pub position: Option<Vec<u8>>,
    /// Batches and transactions folded.
    pub batches: u64,
    /// See `batches`.
    pub transactions: u64,
    days: BTreeMap<i32, HashMap<(Line, Asset), Decimal>>,
    day_start: BTreeMap<i32, Vec<u8>>,
    members: u64,
    lots: HashMap<LotId, Live>,
    buckets: Vec<(BucketKey, Outstanding)>,
    bucket_of: HashMap<BucketKey, u32>,
    /// Per cohort month.
    pub cohorts: BTreeMap<u32, Cohort>,
    /// Per partner and month.
    pub settlement: BTreeMap<(PartnerId, u32), SettlementMonth>,
    /// Per currency and month.
    pub revenue: BTreeMap<(Currency, u32), RevenueMonth>,
    /// Contracts in force.
    pub contracts: BTreeMap<PartnerId, Contract>,
    /// Redemptions per partner over the book's history (points), for the expected redemption
    /// price.
    pub redeemed_at: BTreeMap<PartnerId, i64>,
    /// Closed periods, in order.
    pub closes: Vec<Close>,
}

fn utc() -> Tz {
    Tz::UTC
}

/// Finds a committed transaction (a lot restored after the book let it go names its earn).
pub type Lookup<'a> = dyn FnMut(TxId) -> Option<Transaction> + 'a;

impl Book {
    /// An empty book whose days and months are those of `tz`.
    pub fn new(tz: Tz) -> Book {
        Book {
            tz,
            position: None,
            batches: 0,
            transactions: 0,
            days: BTreeMap::new(),
            day_start: BTreeMap::new(),
            members: 0,
            lots: HashMap::new(),
            buckets: Vec::new(),
            bucket_of: HashMap::new(),
            cohorts: BTreeMap::new(),
            settlement: BTreeMap::new(),
            revenue: BTreeMap::new(),
            contracts: BTreeMap::new(),
            redeemed_at: BTreeMap::new(),
            closes: Vec::new(),
        }
    }

    /// The time zone of its days and months.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// Sets the time zone of a book read back from its saved form.
    pub(crate) fn set_time_zone(&mut self, tz: Tz) {
        self.tz = tz;
    }

    /// The expected redemption price per currency: the contracts' redemption prices weighted by
    /// points redeemed at each partner (a plain mean where nothing was redeemed yet).
    pub fn redemption_prices(&self) -> BTreeMap<Currency, Decimal> {
        let mut weighted: BTreeMap<Currency, (Decimal, Decimal, Decimal, u32)> = BTreeMap::new();
        for (p, c) in &self.contracts {
            let w = Decimal::from(self.redeemed_at.get(p).copied().unwrap_or(0).max(0));
            let e = weighted.entry(c.currency).or_default();
            e.0 += c.redemption_price_per_point * w;
            e.1 += w;
            e.2 += c.redemption_price_per_point;
            e.3 += 1;
        }
        weighted
            .into_iter()
            .map(|(c, (sum, w, plain, n))| {
                let price = if w > Decimal::ZERO {
                    sum / w
                } else {
                    plain / Decimal::from(n.max(1))
                };
                (c, price.round_dp(10))
            })
            .collect()
    }

    /// Members enrolled.
    pub fn members(&self) -> u64 {
        self.members
    }

    /// Live lots the book tracks (its main memory cost: about 40 bytes each).
    pub fn live_lots(&self) -> usize {
        self.lots.len()
    }

    /// Every liability bucket with what is outstanding in it.
    pub fn buckets(&self) -> &[(BucketKey, Outstanding)] {
        &self.buckets
    }

    /// Folds one batch at `position`.
    pub fn apply_batch(&mut self, position: &[u8], txs: &[Transaction], lookup: &mut Lookup<'_>) {
        for tx in txs {
            let day = self.day(tx.at);
            self.day_start
                .entry(day)
                .or_insert_with(|| position.to_vec());
            self.apply(tx, position, lookup);
        }
        self.batches += 1;
        self.position = Some(position.to_vec());
    }

    /// The local day of `t` (days since 0001-01-01).
    pub fn day(&self, t: Timestamp) -> i32 {
        self.local(t).num_days_from_ce()
    }

    /// The local month of `t` as `yyyymm`.
    pub fn month(&self, t: Timestamp) -> u32 {
        let d = self.local(t);
        d.year().max(0) as u32 * 100 + d.month()
    }

    fn local(&self, t: Timestamp) -> chrono::NaiveDate {
        chrono::DateTime::from_timestamp_millis(t.0)
            .unwrap_or_default()
            .with_timezone(&self.tz)
            .date_naive()
    }

    /// The first instant of local month `yyyymm`.
    pub fn month_start(&self, month: u32) -> Timestamp {
        let (y, m) = ((month / 100) as i32, month % 100);
        self.midnight(chrono::NaiveDate::from_ymd_opt(y, m.clamp(1, 12), 1))
    }

    /// The first instant of `date` in the book's zone (the epoch for no date): its midnight, or
    /// the first local time after it where the clocks skip midnight.
    fn midnight(&self, date: Option<chrono::NaiveDate>) -> Timestamp {
        crate::core::tiers::day_start(self.tz, date.unwrap_or_default()).unwrap_or(Timestamp(0))
    }

    /// The first instant of local day `day`.
    pub fn day_start_at(&self, day: i32) -> Timestamp {
        self.midnight(chrono::NaiveDate::from_num_days_from_ce_opt(day))
    }

    /// The month after `yyyymm`.
    pub fn next_month(month: u32) -> u32 {
        if month % 100 >= 12 {
            (month / 100 + 1) * 100 + 1
        } else {
            month + 1
        }
    }

    /// Months from `a` to `b` (`yyyymm` each), zero if `b` is not later.
    pub fn months_between(a: u32, b: u32) -> u32 {
        let n = |m: u32| (m / 100) as i64 * 12 + (m % 100) as i64;
        (n(b) - n(a)).max(0) as u32
    }

    /// Account movements summed over whole days before `day`.
    pub fn movements_before(&self, day: i32) -> BTreeMap<(Line, Asset), Decimal> {
        self.movements_between(i32::MIN, day)
    }

    /// Account movements summed over days `d0` to `d1` (exclusive).
    pub fn movements_between(&self, d0: i32, d1: i32) -> BTreeMap<(Line, Asset), Decimal> {
        let mut out = BTreeMap::new();
        for m in self.days.range(d0..d1).map(|(_, m)| m) {
            for (k, v) in m {
                *out.entry(*k).or_insert(Decimal::ZERO) += *v;
            }
        }
        out
    }

    /// The first day with a transaction.
    pub fn first_day(&self) -> Option<i32> {
        self.days.keys().next().copied()
    }

    /// Where to start reading the journal to see every transaction dated on `day` or later:
    /// the first batch (in commit order) holding one dated that day, or a later day. `None`
    /// when the book has nothing dated so late.
    pub fn position_for_day(&self, day: i32) -> Option<&[u8]> {
        self.day_start
            .range(day..)
            .next()
            .map(|(_, p)| p.as_slice())
    }

    /// A transaction's account movements, as trial-balance lines.
    pub fn lines_of(tx: &Transaction) -> impl Iterator<Item = ((Line, Asset), Decimal)> + '_ {
        tx.postings.iter().map(|p| {
            let line = match p.account {
                AccountId::Member(_) => Line::Members,
                a => Line::Account(a),
            };
            match p.amount {
                Amount::Points(x) => ((line, Asset::Points), Decimal::from(x.0)),
                Amount::Money(m) => ((line, Asset::Money(m.currency)), m.amount),
            }
        })
    }

    fn apply(&mut self, tx: &Transaction, position: &[u8], lookup: &mut Lookup<'_>) {
        self.transactions += 1;
        let day = self.day(tx.at);
        let month = self.month(tx.at);
        let movements = self.days.entry(day).or_default();
        for (k, v) in Self::lines_of(tx) {
            *movements.entry(k).or_insert(Decimal::ZERO) += v;
        }
        self.settle(tx, month);
        match &tx.kind {
            TxKind::Enrolled { .. } => self.members += 1,
            TxKind::ContractSet(c) => {
                self.contracts.insert(c.partner, c.clone());
            }
            TxKind::PeriodClosed {
                period,
                through,
                from,
            } => self.closes.push(Close {
                period: period.clone(),
                from: *from,
                through: *through,
                tx: tx.id,
                at: tx.at,
                position: position.to_vec(),
                liability: self.buckets.clone(),
                prices: self.redemption_prices(),
            }),
            _ => {}
        }
        self.lots(tx, month, lookup);
    }

    /// Settlement and revenue movements of the partners' accounts.
    fn settle(&mut self, tx: &Transaction, month: u32) {
        let mut touched: Vec<PartnerId> = Vec::new();
        for p in &tx.postings {
            let (partner, issuance) = match p.account {
                AccountId::PartnerIssuance(q) => (q, true),
                AccountId::PartnerRedemption(q) => (q, false),
                _ => continue,
            };
            if !touched.contains(&partner) {
                touched.push(partner);
            }
            let s = self.settlement.entry((partner, month)).or_default();
            match (p.amount, issuance) {
                (Amount::Points(x), true) if x.0 <= 0 => s.issued_points -= x.0,
                (Amount::Points(x), true) => s.issued_reversed_points += x.0,
                (Amount::Points(x), false) if x.0 >= 0 => {
                    s.redeemed_points += x.0;
                    *self.redeemed_at.entry(partner).or_insert(0) += x.0;
                }
                (Amount::Points(x), false) => {
                    s.redeemed_reversed_points -= x.0;
                    *self.redeemed_at.entry(partner).or_insert(0) += x.0;
                }
                (Amount::Money(m), true) if m.amount >= Decimal::ZERO => {
                    *s.billed.entry(m.currency).or_default() += m.amount
                }
                (Amount::Money(m), true) => {
                    *s.billed_reversed.entry(m.currency).or_default() -= m.amount
                }
                (Amount::Money(m), false) if m.amount <= Decimal::ZERO => {
                    *s.reimbursed.entry(m.currency).or_default() -= m.amount
                }
                (Amount::Money(m), false) => {
                    *s.reimbursed_reversed.entry(m.currency).or_default() += m.amount
                }
            }
            // Revenue: consideration billed for points, and the points it was billed for.
            if issuance {
                match p.amount {
                    Amount::Money(m) => {
                        self.revenue.entry((m.currency, month)).or_default().billed += m.amount
                    }
                    Amount::Points(x) => {
                        if let Some(c) = self.contracts.get(&partner) {
                            self.revenue.entry((c.currency, month)).or_default().issued -= x.0;
                        }
                    }
                }
            } else if let (Amount::Points(x), Some(c)) = (p.amount, self.contracts.get(&partner)) {
                self.revenue
                    .entry((c.currency, month))
                    .or_default()
                    .redeemed += x.0;
            }
        }
        for partner in touched {
            if let Some(s) = self.settlement.get_mut(&(partner, month)) {
                s.transactions += 1;
            }
        }
    }

    fn bucket(&mut self, key: BucketKey) -> u32 {
        if let Some(&i) = self.bucket_of.get(&key) {
            return i;
        }
        let i = self.buckets.len() as u32;
        self.buckets.push((key, Outstanding::default()));
        self.bucket_of.insert(key, i);
        i
    }

    fn cohort_flow(&mut self, cohort: u32, month: u32, flow: Flow, points: i64) {
        let age = Self::months_between(cohort, month);
        let c = self.cohorts.entry(cohort).or_default();
        match flow {
            Flow::Redeemed => *c.redeemed.entry(age).or_insert(0) += points,
            Flow::Expired => *c.expired.entry(age).or_insert(0) += points,
            Flow::Reversed => c.reversed += points,
            Flow::Other => *c.other.entry(age).or_insert(0) += points,
            Flow::Moved => {}
        }
    }

    /// Lot changes: consumption leaves buckets (and counts in its cohort), creation enters
    /// them.
    fn lots(&mut self, tx: &Transaction, month: u32, lookup: &mut Lookup<'_>) {
        if tx.lots.is_empty() {
            return;
        }
        let flow_out = match &tx.kind {
            TxKind::Burn { .. } | TxKind::Redeemed(_) => Flow::Redeemed,
            // Points forfeited when a member is closed lapse unredeemed, as expired ones do.
            TxKind::Expire { .. } | TxKind::StandingSet { .. } => Flow::Expired,
            TxKind::Reversal { .. } => Flow::Reversed,
            TxKind::Transfer { .. } | TxKind::Merged(_) => Flow::Moved,
            _ => Flow::Other,
        };
        // What this transaction took from each bucket, in order: a transfer's new lots take
        // their attribution from it.
        let mut taken: VecDeque<(u32, i64)> = VecDeque::new();
        for c in tx.lots.iter().filter(|c| c.delta.0 < 0) {
            let Some(live) = self.lots.get_mut(&c.lot) else {
                continue;
            };
            let n = (-c.delta.0).min(live.remaining);
            live.remaining -= n;
            let b = live.bucket;
            if live.remaining == 0 {
                self.lots.remove(&c.lot);
            }
            let (key, out) = &mut self.buckets[b as usize];
            let key = *key;
            if out.points > 0 {
                out.value -= out.value * Decimal::from(n) / Decimal::from(out.points);
            }
            out.points -= n;
            taken.push_back((b, n));
            self.cohort_flow(key.cohort, month, flow_out, n);
        }
        let earn_value = match &tx.kind {
            TxKind::Earn { partner, .. } => tx.postings.iter().find_map(|p| match p.amount {
                Amount::Money(m) if p.account == AccountId::PartnerIssuance(*partner) => Some(m),
                _ => None,
            }),
            _ => None,
        };
        let created: i64 = tx
            .lots
            .iter()
            .filter(|c| c.delta.0 > 0)
            .map(|c| c.delta.0)
            .sum();
        for c in tx.lots.iter().filter(|c| c.delta.0 > 0) {
            let expiry = c.expires_at.map(|t| self.month(t));
            let n = c.delta.0;
            // Which bucket, and the value entering it.
            let placed: Vec<(u32, i64, Option<Decimal>)> = match &tx.kind {
                TxKind::Earn { partner, .. } => {
                    let key = BucketKey {
                        issuer: Issuer::Partner(*partner),
                        cohort: month,
                        expiry,
                        currency: earn_value.map(|m| m.currency),
                    };
                    let value = earn_value
                        .map(|m| m.amount * Decimal::from(n) / Decimal::from(created.max(1)));
                    self.cohorts.entry(month).or_default().issued += n;
                    vec![(self.bucket(key), n, value)]
                }
                TxKind::Granted(g) => {
                    let (issuer, currency, value) = match (g.funder, g.price_per_point) {
                        (Funder::Partner(p), Some(price)) => (
                            Issuer::Partner(p),
                            Some(price.currency),
                            price.amount * Decimal::from(n),
                        ),
                        _ => (Issuer::Promotions, None, Decimal::ZERO),
                    };
                    let key = BucketKey {
                        issuer,
                        cohort: month,
                        expiry,
                        currency,
                    };
                    self.cohorts.entry(month).or_default().issued += n;
                    vec![(self.bucket(key), n, Some(value))]
                }
                TxKind::Adjust { .. } => {
                    let key = BucketKey {
                        issuer: Issuer::Adjustments,
                        cohort: month,
                        expiry,
                        currency: None,
                    };
                    self.cohorts.entry(month).or_default().issued += n;
                    vec![(self.bucket(key), n, Some(Decimal::ZERO))]
                }
                TxKind::Transfer { .. } | TxKind::Merged(_) => {
                    let mut parts = Vec::new();
                    let mut need = n;
                    while need > 0 {
                        let Some((b, avail)) = taken.front_mut() else {
                            break;
                        };
                        let k = need.min(*avail);
                        parts.push((*b, k, None));
                        *avail -= k;
                        need -= k;
                        if *avail == 0 {
                            taken.pop_front();
                        }
                    }
                    if need > 0 {
                        let key = self.unattributed(month, expiry);
                        parts.push((key, need, Some(Decimal::ZERO)));
                    }
                    parts
                }
                _ => {
                    // A restore: back into the lot's bucket, or the bucket of the earn that
                    // created it.
                    let b = match self.lots.get(&c.lot) {
                        Some(l) => l.bucket,
                        None => match lookup(c.lot.tx).map(|t| (t.at, t.kind)) {
                            Some((at, TxKind::Earn { partner, .. })) => {
                                let currency = self.contracts.get(&partner).map(|c| c.currency);
                                let key = BucketKey {
                                    issuer: Issuer::Partner(partner),
                                    cohort: self.month(at),
                                    expiry,
                                    currency,
                                };
                                self.bucket(key)
                            }
                            Some((at, TxKind::Granted(g))) => {
                                let key = BucketKey {
                                    issuer: match g.funder {
                                        Funder::Partner(p) => Issuer::Partner(p),
                                        Funder::Programme => Issuer::Promotions,
                                    },
                                    cohort: self.month(at),
                                    expiry,
                                    currency: g.price_per_point.map(|m| m.currency),
                                };
                                self.bucket(key)
                            }
                            _ => self.unattributed(month, expiry),
                        },
                    };
                    if matches!(flow_out, Flow::Reversed) {
                        // A burn reversal gives the redemption back.
                        let cohort = self.buckets[b as usize].0.cohort;
                        self.cohort_flow(cohort, month, Flow::Redeemed, -n);
                    }
                    vec![(b, n, None)]
                }
            };
            for (b, k, value) in placed {
                let (_, out) = &mut self.buckets[b as usize];
                let v = value.unwrap_or_else(|| {
                    if out.points > 0 {
                        out.value * Decimal::from(k) / Decimal::from(out.points)
                    } else {
                        Decimal::ZERO
                    }
                });
                out.points += k;
                out.value += v;
                let live = self.lots.entry(c.lot).or_insert(Live {
                    bucket: b,
                    remaining: 0,
                });
                live.remaining += k;
            }
        }
        // A transfer's fee: taken and not given on.
        if matches!(flow_out, Flow::Moved) {
            for (b, n) in taken {
                let cohort = self.buckets[b as usize].0.cohort;
                self.cohort_flow(cohort, month, Flow::Other, n);
            }
        }
    }

    fn unattributed(&mut self, month: u32, expiry: Option<u32>) -> u32 {
        self.bucket(BucketKey {
            issuer: Issuer::Unattributed,
            cohort: month,
            expiry,
            currency: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_or_month_whose_midnight_is_skipped_starts_at_the_first_local_time() {
        // Paraguay's clocks went from 2017-10-01 00:00 to 01:00 (UTC-4 to UTC-3): the day and
        // the month began at 04:00 UTC. The missing midnight used to give the epoch.
        let book = Book::new(chrono_tz::America::Asuncion);
        assert_eq!(book.month_start(201710), Timestamp(1_506_830_400_000));
        let day = chrono::NaiveDate::from_ymd_opt(2017, 10, 1)
            .expect("a date")
            .num_days_from_ce();
        assert_eq!(book.day_start_at(day), Timestamp(1_506_830_400_000));
        // An ordinary midnight: 2017-09-01 00:00 at UTC-4.
        assert_eq!(book.month_start(201709), Timestamp(1_504_238_400_000));
    }
}
