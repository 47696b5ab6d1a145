//! What-if simulation: a history of partner transactions replayed through the programme's
//! pricing (`programme::rates`), its campaigns and guard (`ops::partner::terms`, the earn path's
//! own code) and the ledger's posting engine (`ledger::core`: `State::decide` and
//! `State::apply`, the committer's own code), in memory. It reports points issued by partner
//! and month, the cost of each campaign, the value of points against sales, the liability at
//! each month end and the budget breaches.
//!
//! `partners-gateway simulate --programme FILE --history FILE`; `simulate-history` writes a
//! history in the demo coalition's shape. `docs/programme.md` shows both.

use crate::ops::partner::terms::{terms, EarnContext, Purchase};
use crate::ops::registry::CompiledProgramme;
use crate::programme::guard::{period_label, BudgetGuard, GuardDraft};
use crate::programme::rates::{decimal_str, Amount, Operation, RateOverride, RateTable};
use crate::programme::rules::{Campaign, CampaignDraft, ProgrammeClock, RuleSet};
use anyhow::{bail, Context};
use ledger::core::model::{Command, Digest, IdemKey, Transaction, TxKind};
use ledger::core::state::{History, State};
use ledger::{
    Contract, Currency, Limited, MemberId, PartnerId, Points, Policy, Rejection, Timestamp, TxId,
};
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

/// A programme file (TOML): the partners with their contracts and rate tables, the campaigns,
/// the guards, and the redemption assumption.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeFile {
    /// IANA time zone (days, months, campaign hours).
    pub time_zone: String,
    /// The programme's currency, for a programme-wide guard.
    #[serde(default)]
    pub currency: Option<String>,
    /// Share of issued points expected to be redeemed (0 to 1): the liability is valued at the
    /// issuing partner's redemption price times this share.
    #[serde(deserialize_with = "decimal_str::rate")]
    pub redemption_rate: Decimal,
    /// The partners.
    pub partners: Vec<PartnerFile>,
    /// Campaigns, in force for the whole history.
    #[serde(default)]
    pub campaigns: Vec<CampaignDraft>,
    /// Points budget guards.
    #[serde(default)]
    pub guards: Vec<GuardFile>,
}

/// A partner in a programme file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerFile {
    /// Partner id (the history's `partner` column).
    pub id: u32,
    /// Name, for the report.
    pub name: String,
    /// Contract currency.
    pub currency: String,
    /// What the partner pays per point issued.
    #[serde(deserialize_with = "decimal_str::price")]
    pub issuance_price_per_point: Decimal,
    /// What the programme reimburses per point redeemed.
    #[serde(deserialize_with = "decimal_str::price")]
    pub redemption_price_per_point: Decimal,
    /// Lot validity.
    #[serde(default)]
    pub points_validity_days: Option<u32>,
    /// The rate table.
    pub rates: RatesFile,
}

/// A rate table in a programme file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatesFile {
    /// Unit priced.
    pub unit: String,
    /// Points per unit.
    #[serde(deserialize_with = "decimal_str::rate")]
    pub earn_points_per_unit: Decimal,
    /// Branch overrides.
    #[serde(default)]
    pub branches: BTreeMap<String, RateOverride>,
    /// Category overrides.
    #[serde(default)]
    pub categories: BTreeMap<String, RateOverride>,
}

/// A guard in a programme file: the programme's (no partner) or a partner's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardFile {
    /// The partner; absent for the programme.
    #[serde(default)]
    pub partner: Option<u32>,
    /// The settings.
    pub settings: GuardDraft,
}

/// Totals of one partner and month.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MonthTotals {
    /// Earns posted.
    pub earns: u64,
    /// Base points (rate tables).
    pub base_points: i64,
    /// Campaign bonus points granted.
    pub bonus_points: i64,
    /// Sales counted (purchases in money, or their `sale_amount`).
    pub sales: Decimal,
    /// Value of the points issued at the partner's issuance price.
    pub points_value: Decimal,
    /// Earns refused by a guard.
    pub refused: u64,
    /// Earns a guard took down to base points.
    pub capped: u64,
}

/// One campaign's cost.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CampaignCost {
    /// Name.
    pub name: String,
    /// Earns it gave a bonus on.
    pub awards: u64,
    /// Points granted.
    pub points: i64,
    /// Points its rule computed but a cap, the budget or a guard cut.
    pub cut: i64,
    /// Money value at the funder's issuance price, per currency (the programme funds at zero).
    pub value: BTreeMap<String, Decimal>,
}

/// The liability at a month end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Liability {
    /// Month (`2026-11`).
    pub month: String,
    /// Points outstanding (issued so far; the history has no burns).
    pub points: i64,
    /// Expected redemption cost per currency: points x redemption price x redemption rate.
    pub expected_cost: BTreeMap<String, Decimal>,
}

/// What a simulation found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// History rows read.
    pub rows: u64,
    /// Earns posted.
    pub posted: u64,
    /// Rows refused, by reason.
    pub refused: BTreeMap<String, u64>,
    /// Members enrolled on first sight.
    pub members: u64,
    /// Per partner (name) and month.
    pub by_partner_month: BTreeMap<String, BTreeMap<String, MonthTotals>>,
    /// Per campaign id.
    pub campaigns: BTreeMap<u32, CampaignCost>,
    /// At each month end.
    pub liability: Vec<Liability>,
    /// Guard thresholds first crossed: (partner or `programme`, period, percent).
    pub thresholds_crossed: Vec<(String, String, u8)>,
}

struct NoHistory;

impl History for NoHistory {
    type Error = std::convert::Infallible;
    fn transaction(&self, _: TxId) -> Result<Option<Transaction>, Self::Error> {
        Ok(None)
    }
}

struct Partner {
    name: String,
    table: RateTable,
    contract: Contract,
}

/// The simulation: the ledger's state in memory, and the programme as the gateway compiles it.
pub struct Simulation {
    state: State,
    programme: CompiledProgramme,
    partners: HashMap<u32, Partner>,
    members: HashMap<String, MemberId>,
    seq: u64,
    redemption_rate: Decimal,
    month: Option<u32>,
    outstanding: BTreeMap<u32, i64>,
    report: Report,
}

impl Simulation {
    /// Builds the programme a file describes; every definition is checked as the operator API
    /// checks it.
    pub fn new(p: ProgrammeFile) -> anyhow::Result<Simulation> {
        let tz: chrono_tz::Tz = p
            .time_zone
            .parse()
            .map_err(|_| anyhow::anyhow!("{:?} is not an IANA time zone", p.time_zone))?;
        let currency: Option<Currency> = p
            .currency
            .as_deref()
            .map(|c| {
                c.parse()
                    .map_err(|_| anyhow::anyhow!("unknown currency {c:?}"))
            })
            .transpose()?;
        let mut sim = Simulation {
            state: State::new(Policy::default()),
            programme: CompiledProgramme::default(),
            partners: HashMap::new(),
            members: HashMap::new(),
            seq: 1,
            redemption_rate: p.redemption_rate,
            month: None,
            outstanding: BTreeMap::new(),
            report: Report::default(),
        };
        for f in p.partners {
            let contract = Contract {
                partner: PartnerId(f.id),
                currency: f.currency.parse().map_err(|_| {
                    anyhow::anyhow!("partner {}: unknown currency {:?}", f.id, f.currency)
                })?,
                issuance_price_per_point: f.issuance_price_per_point,
                redemption_price_per_point: f.redemption_price_per_point,
                points_validity_days: f.points_validity_days,
            };
            let table = RateTable {
                version: 1,
                effective_from_ms: 0,
                unit: f.rates.unit,
                earn_points_per_unit: f.rates.earn_points_per_unit,
                burn_points_per_unit: None,
                branches: f.rates.branches,
                categories: f.rates.categories,
            };
            table
                .validate()
                .map_err(|e| anyhow::anyhow!("partner {} rates: {e}", f.id))?;
            sim.post(
                Command::SetContract {
                    key: IdemKey::operator(format!("contract-{}", f.id)),
                    contract: contract.clone(),
                },
                Timestamp(0),
            )
            .map_err(|r| anyhow::anyhow!("partner {}: {r}", f.id))?;
            sim.partners.insert(
                f.id,
                Partner {
                    name: f.name,
                    table,
                    contract,
                },
            );
        }
        let campaigns: Vec<Campaign> = p
            .campaigns
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                d.check()
                    .map_err(|e| anyhow::anyhow!("campaign {} ({:?}): {e}", i + 1, d.name))?;
                Ok(Campaign {
                    id: i as u32 + 1,
                    version: 1,
                    definition: d,
                    in_force_from_ms: i64::MIN,
                    author: "simulation".into(),
                    recorded_at_ms: 0,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        for c in &campaigns {
            sim.report.campaigns.insert(
                c.id,
                CampaignCost {
                    name: c.definition.name.clone(),
                    ..CampaignCost::default()
                },
            );
        }
        let (rules, _) = RuleSet::build(&campaigns);
        let mut guards = BTreeMap::new();
        for g in p.guards {
            g.settings
                .check()
                .map_err(|e| anyhow::anyhow!("guard: {e}"))?;
            let scope = g.partner.unwrap_or(0);
            guards.insert(
                scope,
                BudgetGuard {
                    scope,
                    version: 1,
                    settings: g.settings,
                    author: "simulation".into(),
                    recorded_at_ms: 0,
                },
            );
        }
        sim.programme = CompiledProgramme {
            rules,
            guards,
            clock: ProgrammeClock { tz },
            currency,
        };
        Ok(sim)
    }

    fn post(&mut self, cmd: Command, at: Timestamp) -> Result<Transaction, Rejection> {
        let id = TxId::new(self.seq, 0);
        let tx = match self
            .state
            .decide(&cmd, Digest::default(), id, at, &NoHistory)
        {
            Ok(tx) => tx,
            Err(ledger::core::rules::DecideError::Rejected(r)) => return Err(r),
            Err(ledger::core::rules::DecideError::Failed(never)) => match never {},
        };
        self.state.apply(&tx);
        self.seq += 1;
        Ok(tx)
    }

    /// Replays one history row.
    pub fn row(&mut self, r: &Row<'_>) -> anyhow::Result<()> {
        self.report.rows += 1;
        let local = self.programme.clock.local(r.at);
        if self.month.is_some_and(|m| m != local.month) {
            self.close_month();
        }
        self.month = Some(local.month);
        if !self.partners.contains_key(&r.partner) {
            *self
                .report
                .refused
                .entry("unknown partner".into())
                .or_default() += 1;
            return Ok(());
        }
        let member = match self.members.get(r.member) {
            Some(m) => *m,
            None => {
                let m = MemberId(self.members.len() as u64 + 1);
                self.members.insert(r.member.to_string(), m);
                self.post(
                    Command::Enrol {
                        key: IdemKey::operator(format!("enrol-{}", m.0)),
                        member: m,
                    },
                    r.at,
                )
                .map_err(|e| anyhow::anyhow!("enrol: {e}"))?;
                self.report.members += 1;
                m
            }
        };
        let partner = &self.partners[&r.partner];
        let quantity = match r.amount.parse() {
            Ok(q) => q,
            Err(e) => {
                *self
                    .report
                    .refused
                    .entry(format!("amount: {e}"))
                    .or_default() += 1;
                return Ok(());
            }
        };
        let priced = match partner.table.price(
            Operation::Earn,
            quantity,
            &r.amount.unit,
            r.branch,
            r.category,
        ) {
            Ok(p) => p,
            Err(e) => {
                *self.report.refused.entry(e.to_string()).or_default() += 1;
                return Ok(());
            }
        };
        let purchase = Purchase {
            partner: PartnerId(r.partner),
            amount: &r.amount,
            quantity,
            base: priced.points,
            branch: r.branch,
            category: r.category,
        };
        let t = match terms(&self.programme, &purchase, &r.context, None, r.at) {
            Ok(t) => t,
            Err(e) => {
                *self.report.refused.entry(e.detail).or_default() += 1;
                return Ok(());
            }
        };
        let sale = t.guard.as_ref().map(|g| g.sale).or_else(|| {
            crate::programme::rates::is_currency_code(&r.amount.unit).then_some(quantity)
        });
        let cmd = Command::Earn {
            key: IdemKey::partner(PartnerId(r.partner), format!("row-{}", self.report.rows)),
            member,
            partner: PartnerId(r.partner),
            points: priced.points,
            bonus: Points::ZERO,
            awards: t.awards,
            guard: t.guard,
            purchase: purchase.for_tiers(),
        };
        let name = partner.name.clone();
        let price = partner.contract.issuance_price_per_point;
        let month = period_label(10_000 + local.month);
        match self.post(cmd, r.at) {
            Ok(tx) => self.count(&tx, &name, &month, price, sale),
            Err(Rejection::BudgetCeiling { .. }) => {
                self.totals(&name, &month).refused += 1;
                *self
                    .report
                    .refused
                    .entry("budget ceiling".into())
                    .or_default() += 1;
            }
            Err(e) => *self.report.refused.entry(e.to_string()).or_default() += 1,
        }
        Ok(())
    }

    fn totals(&mut self, partner: &str, month: &str) -> &mut MonthTotals {
        self.report
            .by_partner_month
            .entry(partner.to_string())
            .or_default()
            .entry(month.to_string())
            .or_default()
    }

    fn count(
        &mut self,
        tx: &Transaction,
        name: &str,
        month: &str,
        price: Decimal,
        sale: Option<Decimal>,
    ) {
        let TxKind::Earn {
            partner,
            points,
            awards,
            guard,
            ..
        } = &tx.kind
        else {
            return;
        };
        self.report.posted += 1;
        let bonus: i64 = awards.iter().map(|a| a.points.0).sum();
        *self.outstanding.entry(partner.0).or_default() += points.0 + bonus;
        let capped = awards.iter().any(|a| a.limited == Some(Limited::Guard));
        let t = self.totals(name, month);
        t.earns += 1;
        t.base_points += points.0;
        t.bonus_points += bonus;
        t.sales += sale.unwrap_or_default();
        t.points_value += price * Decimal::from(points.0 + bonus);
        t.capped += u64::from(capped);
        for a in awards {
            let c = self.report.campaigns.entry(a.campaign.0).or_default();
            c.awards += u64::from(a.points.is_positive());
            c.points += a.points.0;
            c.cut += a.asked.0 - a.points.0;
            *c.value
                .entry(a.price_per_point.currency.code().to_string())
                .or_default() += a.price_per_point.amount * Decimal::from(a.points.0);
        }
        for (k, pct) in guard.iter().flat_map(|g| g.crossed.iter()) {
            let who = match k.scope {
                ledger::GuardScope::Programme => "programme".to_string(),
                ledger::GuardScope::Partner(p) => self
                    .partners
                    .get(&p.0)
                    .map_or(format!("partner {}", p.0), |x| x.name.clone()),
            };
            self.report
                .thresholds_crossed
                .push((who, period_label(k.period), *pct));
        }
    }

    fn close_month(&mut self) {
        let Some(m) = self.month else { return };
        let mut l = Liability {
            month: period_label(10_000 + m),
            ..Liability::default()
        };
        for (p, points) in &self.outstanding {
            let c = &self.partners[p].contract;
            l.points += points;
            *l.expected_cost
                .entry(c.currency.code().to_string())
                .or_default() +=
                Decimal::from(*points) * c.redemption_price_per_point * self.redemption_rate;
        }
        self.report.liability.push(l);
    }

    /// The report, closing the last month.
    pub fn finish(mut self) -> Report {
        self.close_month();
        self.report
    }
}

/// One history row, borrowed from the reader's buffer.
pub struct Row<'a> {
    /// When.
    pub at: Timestamp,
    /// Partner id.
    pub partner: u32,
    /// The member's reference (one coalition member per distinct value).
    pub member: &'a str,
    /// The purchase.
    pub amount: Amount,
    /// Branch.
    pub branch: Option<&'a str>,
    /// Category.
    pub category: Option<&'a str>,
    /// Payment method, channel and sale amount.
    pub context: EarnContext,
}

fn parse_time(s: &str) -> anyhow::Result<Timestamp> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(Timestamp(ms));
    }
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("time {s:?} is neither RFC 3339 nor milliseconds"))?;
    Ok(Timestamp(t.timestamp_millis()))
}

/// Replays a CSV history (header: `time,partner,member,amount,unit` and optionally `branch`,
/// `category`, `payment_method`, `channel`, `sale_amount`, `sale_currency`) through `sim`.
pub fn replay(sim: &mut Simulation, history: impl Read) -> anyhow::Result<()> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(history);
    let headers = rdr.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let need =
        |name: &str| col(name).with_context(|| format!("the history has no {name:?} column"));
    let (time, partner, member, amount, unit) = (
        need("time")?,
        need("partner")?,
        need("member")?,
        need("amount")?,
        need("unit")?,
    );
    let (branch, category, payment, channel, sale, sale_currency) = (
        col("branch"),
        col("category"),
        col("payment_method"),
        col("channel"),
        col("sale_amount"),
        col("sale_currency"),
    );
    let mut rec = csv::StringRecord::new();
    let mut line = 1u64;
    while rdr.read_record(&mut rec)? {
        line += 1;
        let opt = |i: Option<usize>| i.and_then(|i| rec.get(i)).filter(|s| !s.is_empty());
        let row = Row {
            at: parse_time(&rec[time]).with_context(|| format!("line {line}"))?,
            partner: rec[partner]
                .parse()
                .with_context(|| format!("line {line}: partner {:?}", &rec[partner]))?,
            member: &rec[member],
            amount: Amount {
                value: rec[amount].to_string(),
                unit: rec[unit].to_string(),
            },
            branch: opt(branch),
            category: opt(category),
            context: EarnContext {
                payment_method: opt(payment).map(String::from),
                channel: opt(channel).map(String::from),
                sale_amount: match (opt(sale), opt(sale_currency)) {
                    (Some(v), Some(c)) => Some(Amount {
                        value: v.to_string(),
                        unit: c.to_string(),
                    }),
                    (None, None) => None,
                    _ => bail!("line {line}: give both sale_amount and sale_currency, or neither"),
                },
            },
        };
        sim.row(&row)?;
    }
    Ok(())
}

/// Writes a history of `n` earns over the calendar year `year` in the demo coalition's shape:
/// SkyWays miles (10%), FuelCo litres at five stations (60%), TeleNet bills in GBP (30%).
pub fn write_history(
    out: impl Write,
    n: u64,
    members: u64,
    year: i32,
    seed: u64,
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "time",
        "partner",
        "member",
        "amount",
        "unit",
        "branch",
        "category",
        "payment_method",
        "channel",
        "sale_amount",
        "sale_currency",
    ])?;
    let start = chrono::NaiveDate::from_ymd_opt(year, 1, 1)
        .context("year")?
        .and_hms_opt(0, 0, 0)
        .context("midnight")?
        .and_utc()
        .timestamp_millis();
    let end = chrono::NaiveDate::from_ymd_opt(year + 1, 1, 1)
        .context("year")?
        .and_hms_opt(0, 0, 0)
        .context("midnight")?
        .and_utc()
        .timestamp_millis();
    let step = (end - start) as f64 / n.max(1) as f64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let methods = ["card", "card", "cash", "wallet"];
    let channels = ["store", "store", "store", "app", "web"];
    for i in 0..n {
        let at = start + (i as f64 * step) as i64;
        let member = format!("M{:07}", rng.random_range(1..=members.max(1)));
        let roll: u32 = rng.random_range(0..10);
        let mut sale = String::new();
        let (partner, amount, unit, branch, category) = match roll {
            0 => (
                1,
                rng.random_range(200..5_000u32).to_string(),
                "mile",
                String::new(),
                "",
            ),
            1..=6 => {
                let litres = rng.random_range(50..600u32);
                let premium = rng.random_range(0..5) == 0;
                // 1.85 EUR a litre, 2.10 for premium: tenths of litres times cents.
                let cents = litres * if premium { 210 } else { 185 } / 10;
                sale = format!("{}.{:02}", cents / 100, cents % 100);
                (
                    2,
                    format!("{}.{}", litres / 10, litres % 10),
                    "litre",
                    format!("station-{:03}", rng.random_range(1..=5)),
                    if premium { "premium-fuel" } else { "" },
                )
            }
            _ => {
                let pence = rng.random_range(1_000..8_000u32);
                (
                    3,
                    format!("{}.{:02}", pence / 100, pence % 100),
                    "GBP",
                    String::new(),
                    "",
                )
            }
        };
        w.write_record([
            at.to_string().as_str(),
            if partner == 1 {
                "1"
            } else if partner == 2 {
                "2"
            } else {
                "3"
            },
            &member,
            &amount,
            unit,
            &branch,
            category,
            methods[rng.random_range(0..methods.len())],
            channels[rng.random_range(0..channels.len())],
            &sale,
            if sale.is_empty() { "" } else { "EUR" },
        ])?;
    }
    w.flush()?;
    Ok(())
}

impl Report {
    /// The report as text tables.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let refused: u64 = self.refused.values().sum();
        s += &format!(
            "rows {}  posted {}  refused {}  members {}\n",
            self.rows, self.posted, refused, self.members
        );
        for (why, n) in &self.refused {
            s += &format!("  refused {n:>9}  {why}\n");
        }
        s += "\npoints issued by partner and month\n";
        s += &format!(
            "  {:<18} {:<8} {:>9} {:>13} {:>12} {:>14} {:>14} {:>7} {:>7} {:>7}\n",
            "partner",
            "month",
            "earns",
            "base",
            "bonus",
            "sales",
            "points value",
            "ratio",
            "capped",
            "refused"
        );
        for (p, months) in &self.by_partner_month {
            for (m, t) in months {
                let ratio = if t.sales.is_zero() {
                    "-".to_string()
                } else {
                    format!("{:.2}%", t.points_value / t.sales * Decimal::from(100))
                };
                s += &format!(
                    "  {:<18} {:<8} {:>9} {:>13} {:>12} {:>14} {:>14} {:>7} {:>7} {:>7}\n",
                    p,
                    m,
                    t.earns,
                    t.base_points,
                    t.bonus_points,
                    t.sales.round_dp(2),
                    t.points_value.round_dp(2),
                    ratio,
                    t.capped,
                    t.refused
                );
            }
        }
        s += "\nbonus cost per campaign\n";
        for (id, c) in &self.campaigns {
            let value: Vec<String> = c
                .value
                .iter()
                .filter(|(_, v)| !v.is_zero())
                .map(|(cur, v)| format!("{} {cur}", v.round_dp(2)))
                .collect();
            s += &format!(
                "  #{id:<3} {:<32} awards {:>9}  points {:>12}  cut {:>10}  billed {}\n",
                c.name,
                c.awards,
                c.points,
                c.cut,
                if value.is_empty() {
                    "programme-funded".to_string()
                } else {
                    value.join(", ")
                }
            );
        }
        s += "\nliability at month end (expected redemption cost)\n";
        for l in &self.liability {
            let cost: Vec<String> = l
                .expected_cost
                .iter()
                .map(|(cur, v)| format!("{} {cur}", v.round_dp(2)))
                .collect();
            s += &format!(
                "  {:<8} {:>14} points  {}\n",
                l.month,
                l.points,
                cost.join(", ")
            );
        }
        s += "\nbudget thresholds first crossed\n";
        if self.thresholds_crossed.is_empty() {
            s += "  none\n";
        }
        for (who, period, pct) in &self.thresholds_crossed {
            s += &format!("  {who:<18} {period:<8} {pct}% of the ceiling\n");
        }
        s
    }
}
