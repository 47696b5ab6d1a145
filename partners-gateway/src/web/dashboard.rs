//! The programme dashboard: its figures and charts, read from the analytics aggregates
//! (`members/analytics.rs`) in the page's language. Building it reads only aggregates: its cost
//! does not grow with members or transactions (`benches/dashboard.rs`).

use super::i18n::{self, Calendar, Lang};
use crate::members::analytics::{
    self, year_month, Analytics, Month, Movement, INTERVAL_BANDS, RFM_SEGMENTS, SPEND_BANDS,
    VISIT_BANDS,
};
use crate::members::segments::{Facts, Interner};
use serde::Serialize;
use std::collections::BTreeMap;

/// Months the charts over time show.
pub const MONTHS: i32 = 12;

/// A headline figure.
#[derive(Debug, Clone, Serialize)]
pub struct Kpi {
    /// Its message id.
    pub key: &'static str,
    /// The value as shown.
    pub value: String,
}

/// One series of a chart.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Its label.
    pub label: String,
    /// A value per label of the chart.
    pub data: Vec<f64>,
}

/// A chart, with the table it is drawn from (shown beside it, and its CSV).
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// Its id (the CSV's name).
    pub id: &'static str,
    /// Its title.
    pub title: String,
    /// `bar`, `line` or `doughnut`.
    pub kind: &'static str,
    /// Stacked bars.
    pub stacked: bool,
    /// The labels along its axis.
    pub labels: Vec<String>,
    /// Its series.
    pub series: Vec<Series>,
}

/// A partner's row of the partner table.
#[derive(Debug, Clone, Serialize)]
pub struct PartnerRow {
    /// Name.
    pub name: String,
    /// Points issued and redeemed in all.
    pub issued: i64,
    /// See `issued`.
    pub redeemed: i64,
    /// Earns in all.
    pub earns: u64,
    /// Sales in the partner's currency (units), on earns priced by money.
    pub sales: f64,
    /// Mean basket, in the partner's currency.
    pub basket: Option<f64>,
    /// Cost of the points issued on those earns, per cent of their sales.
    pub budget_ratio: Option<f64>,
    /// Share of all points issued, per cent.
    pub share: f64,
    /// `A`, `B` or `C` by points issued.
    pub abc: &'static str,
    /// RFM: days since its last earn, its earns score, its points score (1-5 each).
    pub rfm: String,
}

/// The whole dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// Transactions the figures include.
    pub transactions: u64,
    /// Headline figures.
    pub kpis: Vec<Kpi>,
    /// Charts.
    pub charts: Vec<Chart>,
    /// Partners.
    pub partners: Vec<PartnerRow>,
}

/// What the dashboard needs besides the aggregates.
pub struct Context<'a> {
    /// Language.
    pub lang: Lang,
    /// Calendar.
    pub cal: Calendar,
    /// This month.
    pub now: Month,
    /// Today, as a day number (days since 1970-01-01).
    pub today: i32,
    /// Partners: id, name, minor units per unit of its currency.
    pub partners: &'a [(u32, String, i64)],
    /// The programme currency's minor units per unit.
    pub minor_per_unit: i64,
    /// NPS per partner (partner id, score), and overall.
    pub nps: (Option<f64>, Vec<(u32, f64)>),
}

fn t(lang: Lang, key: &str) -> String {
    i18n::text(lang, key, &[])
}

fn pct(x: f64) -> f64 {
    (x * 1000.0).round() / 10.0
}

fn names(i: &Interner) -> BTreeMap<u32, String> {
    i.names().map(|(s, id)| (id, s.to_string())).collect()
}

/// Builds the dashboard.
pub fn build(a: &Analytics, facts: &Facts, c: &Context) -> Dashboard {
    let lang = c.lang;
    let months: Vec<Month> = (c.now - MONTHS + 1..=c.now).collect();
    let month_labels: Vec<String> = months
        .iter()
        .map(|m| {
            let (y, mo) = year_month(*m);
            i18n::month(lang, c.cal, y, mo)
        })
        .collect();
    let mv = |m: &Month| a.months.get(m).copied().unwrap_or_default();
    let h = &a.members;
    let total: Movement = a.months.values().fold(Movement::default(), |mut s, m| {
        s.issued += m.issued;
        s.redeemed += m.redeemed;
        s.expired += m.expired;
        s.earns += m.earns;
        s.sales_minor += m.sales_minor;
        s.sales_earns += m.sales_earns;
        s
    });
    let ratio = |n: f64, d: f64| if d > 0.0 { Some(n / d) } else { None };
    let fmt_pct = |x: Option<f64>| {
        x.map_or("-".to_string(), |x| {
            format!("{}%", i18n::decimal(lang, pct(x), 1))
        })
    };
    let this = mv(&c.now);
    let cost: i64 = a.partners.values().map(|p| p.cost_minor).sum::<i64>();
    let sales_priced: i64 = a.partners.values().map(|p| p.sales_minor).sum();
    let kpis = vec![
        Kpi {
            key: "kpi-members",
            value: i18n::number(lang, h.members as i64),
        },
        Kpi {
            key: "kpi-active-month",
            value: i18n::number(lang, this.active as i64),
        },
        Kpi {
            key: "kpi-points-outstanding",
            value: i18n::number(lang, h.balance),
        },
        Kpi {
            key: "kpi-participation",
            value: fmt_pct(ratio(h.visited as f64, h.members as f64)),
        },
        Kpi {
            key: "kpi-redemption-rate",
            value: fmt_pct(ratio(total.redeemed as f64, total.issued as f64)),
        },
        Kpi {
            key: "kpi-repeat-rate",
            value: fmt_pct(ratio(h.repeat as f64, h.visited as f64)),
        },
        Kpi {
            key: "kpi-basket",
            value: ratio(
                total.sales_minor as f64 / c.minor_per_unit.max(1) as f64,
                total.sales_earns as f64,
            )
            .map_or("-".into(), |x| i18n::decimal(lang, x, 2)),
        },
        Kpi {
            key: "kpi-budget-ratio",
            value: fmt_pct(ratio(cost as f64, sales_priced as f64)),
        },
        Kpi {
            key: "kpi-nps",
            value: c.nps.0.map_or("-".into(), |x| i18n::decimal(lang, x, 0)),
        },
    ];
    let mut charts = Vec::new();
    let series = |label: &str, f: &dyn Fn(&Movement) -> f64| Series {
        label: t(lang, label),
        data: months.iter().map(|m| f(&mv(m))).collect(),
    };
    charts.push(Chart {
        id: "points-by-month",
        title: t(lang, "chart-points-by-month"),
        kind: "bar",
        stacked: false,
        labels: month_labels.clone(),
        series: vec![
            series("series-issued", &|m| m.issued as f64),
            series("series-redeemed", &|m| m.redeemed as f64),
            series("series-expired", &|m| m.expired as f64),
        ],
    });
    for (id, title, pick) in [
        (
            "issued-by-partner",
            "chart-issued-by-partner",
            (|m: &Movement| m.issued as f64) as fn(&Movement) -> f64,
        ),
        ("redeemed-by-partner", "chart-redeemed-by-partner", |m| {
            m.redeemed as f64
        }),
    ] {
        charts.push(Chart {
            id,
            title: t(lang, title),
            kind: "bar",
            stacked: true,
            labels: month_labels.clone(),
            series: c
                .partners
                .iter()
                .map(|(pid, name, _)| Series {
                    label: name.clone(),
                    data: months
                        .iter()
                        .map(|m| a.partners.get(&(*pid, *m)).map_or(0.0, pick))
                        .collect(),
                })
                .collect(),
        });
    }
    charts.push(Chart {
        id: "members-by-month",
        title: t(lang, "chart-members-by-month"),
        kind: "line",
        stacked: false,
        labels: month_labels.clone(),
        series: vec![
            series("series-active", &|m| m.active as f64),
            series("series-enrolled", &|m| m.enrolled as f64),
        ],
    });
    let ahead: Vec<Month> = (c.now..c.now + MONTHS).collect();
    charts.push(Chart {
        id: "expiring-by-month",
        title: t(lang, "chart-expiring-by-month"),
        kind: "bar",
        stacked: false,
        labels: ahead
            .iter()
            .map(|m| {
                let (y, mo) = year_month(*m);
                i18n::month(lang, c.cal, y, mo)
            })
            .collect(),
        series: vec![Series {
            label: t(lang, "series-expiring"),
            data: ahead
                .iter()
                .map(|m| a.expiring.get(m).copied().unwrap_or(0) as f64)
                .collect(),
        }],
    });
    // Age bands from birth years, as of this year.
    let (year, _) = year_month(c.now);
    let bands = [
        (0, 17),
        (18, 24),
        (25, 34),
        (35, 44),
        (45, 54),
        (55, 64),
        (65, 200),
    ];
    let mut ages = vec![0f64; bands.len() + 1];
    for (by, n) in &h.birth_year {
        if *by == i32::MIN {
            ages[bands.len()] += *n as f64;
            continue;
        }
        let age = year - by;
        let i = bands
            .iter()
            .position(|(lo, hi)| age >= *lo && age <= *hi)
            .unwrap_or(bands.len());
        ages[i] += *n as f64;
    }
    let mut age_labels: Vec<String> = bands
        .iter()
        .map(|(lo, hi)| {
            if *hi >= 200 {
                format!("{}+", i18n::number(lang, *lo as i64))
            } else {
                format!(
                    "{}–{}",
                    i18n::number(lang, *lo as i64),
                    i18n::number(lang, *hi as i64)
                )
            }
        })
        .collect();
    age_labels.push(t(lang, "unknown"));
    charts.push(single(
        lang,
        "members-by-age",
        "chart-members-by-age",
        "bar",
        age_labels,
        ages,
    ));
    // Genders the messages name are shown in the page's language; others as given.
    let genders: BTreeMap<u32, String> = names(&facts.genders)
        .into_iter()
        .map(|(id, g)| {
            let key = format!("gender-{g}");
            let shown = t(lang, &key);
            (id, if shown == key { g } else { shown })
        })
        .collect();
    let (gl, gd) = counted(lang, &h.gender, &genders, 6);
    charts.push(single(
        lang,
        "members-by-gender",
        "chart-members-by-gender",
        "doughnut",
        gl,
        gd,
    ));
    let cities = names(&facts.cities);
    let (cl, cd) = counted(lang, &h.city, &cities, 10);
    charts.push(single(
        lang,
        "members-by-city",
        "chart-members-by-city",
        "bar",
        cl,
        cd,
    ));
    let unit = |n: i64| i18n::number(lang, n);
    let mut spend_labels: Vec<String> = Vec::new();
    for (i, b) in SPEND_BANDS.iter().enumerate() {
        spend_labels.push(if i == 0 {
            unit(0)
        } else {
            format!("{}–{}", unit(SPEND_BANDS[i - 1] + 1), unit(*b))
        });
    }
    spend_labels.push(format!("> {}", unit(*SPEND_BANDS.last().unwrap_or(&0))));
    charts.push(single(
        lang,
        "members-by-spend",
        "chart-members-by-spend",
        "bar",
        spend_labels,
        h.spend.iter().map(|n| *n as f64).collect(),
    ));
    let mut interval_labels: Vec<String> = Vec::new();
    for (i, b) in INTERVAL_BANDS.iter().enumerate() {
        let lo = if i == 0 { 0 } else { INTERVAL_BANDS[i - 1] + 1 };
        interval_labels.push(format!("{}–{}", unit(lo as i64), unit(*b as i64)));
    }
    interval_labels.push(format!(
        "> {}",
        unit(*INTERVAL_BANDS.last().unwrap_or(&0) as i64)
    ));
    charts.push(single(
        lang,
        "members-by-visit-interval",
        "chart-members-by-visit-interval",
        "bar",
        interval_labels,
        h.interval.iter().map(|n| *n as f64).collect(),
    ));
    let mut visit_labels: Vec<String> = Vec::new();
    for (i, b) in VISIT_BANDS.iter().enumerate() {
        let lo = if i == 0 { 0 } else { VISIT_BANDS[i - 1] + 1 };
        visit_labels.push(if lo == *b {
            unit(*b as i64)
        } else {
            format!("{}–{}", unit(lo as i64), unit(*b as i64))
        });
    }
    visit_labels.push(format!(
        "> {}",
        unit(*VISIT_BANDS.last().unwrap_or(&0) as i64)
    ));
    charts.push(single(
        lang,
        "members-by-visits",
        "chart-members-by-visits",
        "bar",
        visit_labels,
        h.visits.iter().map(|n| *n as f64).collect(),
    ));
    let rfm = analytics::rfm(h, c.now);
    charts.push(single(
        lang,
        "members-by-rfm",
        "chart-members-by-rfm",
        "bar",
        RFM_SEGMENTS
            .iter()
            .map(|s| t(lang, &format!("rfm-{s}")))
            .collect(),
        rfm.iter().map(|n| *n as f64).collect(),
    ));
    let abc = analytics::abc(h);
    charts.push(single(
        lang,
        "members-by-abc",
        "chart-members-by-abc",
        "bar",
        ["A", "B", "C"].iter().map(|s| s.to_string()).collect(),
        abc.iter().map(|(n, _)| *n as f64).collect(),
    ));
    if !c.nps.1.is_empty() {
        charts.push(single(
            lang,
            "nps-by-partner",
            "chart-nps-by-partner",
            "bar",
            c.nps.1.iter().map(|(p, _)| partner_name(c, *p)).collect(),
            c.nps.1.iter().map(|(_, s)| *s).collect(),
        ));
    }
    Dashboard {
        transactions: a.transactions,
        kpis,
        charts,
        partners: partner_rows(a, c),
    }
}

fn partner_name(c: &Context, p: u32) -> String {
    c.partners
        .iter()
        .find(|(id, _, _)| *id == p)
        .map_or_else(|| p.to_string(), |(_, n, _)| n.clone())
}

fn single(
    lang: Lang,
    id: &'static str,
    title: &str,
    kind: &'static str,
    labels: Vec<String>,
    data: Vec<f64>,
) -> Chart {
    Chart {
        id,
        title: t(lang, title),
        kind,
        stacked: false,
        labels,
        series: vec![Series {
            label: t(lang, "series-members"),
            data,
        }],
    }
}

/// The `top` largest counts by interned name, the rest as "other", unknown last.
fn counted(
    lang: Lang,
    counts: &std::collections::HashMap<u32, u64>,
    names: &BTreeMap<u32, String>,
    top: usize,
) -> (Vec<String>, Vec<f64>) {
    let mut known: Vec<(u32, u64)> = counts
        .iter()
        .filter(|(k, _)| **k != 0)
        .map(|(k, v)| (*k, *v))
        .collect();
    known.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut labels = Vec::new();
    let mut data = Vec::new();
    let mut other = 0u64;
    for (i, (k, n)) in known.iter().enumerate() {
        if i < top {
            labels.push(names.get(k).cloned().unwrap_or_else(|| k.to_string()));
            data.push(*n as f64);
        } else {
            other += n;
        }
    }
    if other > 0 {
        labels.push(t(lang, "other"));
        data.push(other as f64);
    }
    if let Some(n) = counts.get(&0) {
        labels.push(t(lang, "unknown"));
        data.push(*n as f64);
    }
    (labels, data)
}

fn partner_rows(a: &Analytics, c: &Context) -> Vec<PartnerRow> {
    let mut sums: BTreeMap<u32, Movement> = BTreeMap::new();
    for ((p, _), m) in &a.partners {
        let s = sums.entry(*p).or_default();
        s.issued += m.issued;
        s.redeemed += m.redeemed;
        s.earns += m.earns;
        s.sales_minor += m.sales_minor;
        s.sales_earns += m.sales_earns;
        s.cost_minor += m.cost_minor;
    }
    let all: i64 = sums.values().map(|m| m.issued.max(0)).sum();
    let mut order: Vec<(u32, i64)> = sums.iter().map(|(p, m)| (*p, m.issued)).collect();
    order.sort_by_key(|o| std::cmp::Reverse(o.1));
    let mut class = BTreeMap::new();
    let mut seen = 0i64;
    for (p, issued) in &order {
        let k = if all == 0 || seen * 100 < all * 80 {
            "A"
        } else if seen * 100 < all * 95 {
            "B"
        } else {
            "C"
        };
        class.insert(*p, k);
        seen += issued.max(&0);
    }
    let earn_scores = quintiles(order.iter().map(|(p, _)| sums[p].earns as i64).collect());
    let point_scores = quintiles(order.iter().map(|(_, i)| *i).collect());
    c.partners
        .iter()
        .filter_map(|(p, name, minor)| {
            let m = sums.get(p)?;
            let idx = order.iter().position(|(q, _)| q == p)?;
            let days = a
                .partner_last_day
                .get(p)
                .map_or("-".to_string(), |d| (c.today - d).to_string());
            let per = (*minor).max(1) as f64;
            Some(PartnerRow {
                name: name.clone(),
                issued: m.issued,
                redeemed: m.redeemed,
                earns: m.earns,
                sales: m.sales_minor as f64 / per,
                basket: (m.sales_earns > 0)
                    .then(|| m.sales_minor as f64 / per / m.sales_earns as f64),
                budget_ratio: (m.sales_minor > 0)
                    .then(|| pct(m.cost_minor as f64 / m.sales_minor as f64)),
                share: if all > 0 {
                    pct(m.issued as f64 / all as f64)
                } else {
                    0.0
                },
                abc: class.get(p).copied().unwrap_or("C"),
                rfm: i18n::digits(
                    c.lang,
                    &format!("{days} / {} / {}", earn_scores[idx], point_scores[idx]),
                ),
            })
        })
        .collect()
}

/// A score 1-5 for each value by its rank among them (5: highest fifth).
fn quintiles(values: Vec<i64>) -> Vec<u8> {
    let n = values.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by_key(|i| values[*i]);
    let mut out = vec![1u8; n];
    for (rank, i) in idx.into_iter().enumerate() {
        out[i] = (1 + rank * 5 / n.max(1)) as u8;
    }
    out
}

/// A chart's table as CSV: a label column, then one column per series.
pub fn csv(chart: &Chart) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head = vec![String::new()];
    head.extend(chart.series.iter().map(|s| s.label.clone()));
    w.write_record(&head)?;
    for (i, l) in chart.labels.iter().enumerate() {
        let mut row = vec![l.clone()];
        row.extend(
            chart
                .series
                .iter()
                .map(|s| s.data.get(i).map_or(String::new(), |v| v.to_string())),
        );
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// The partner table as CSV.
pub fn partners_csv(d: &Dashboard) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "partner",
        "points_issued",
        "points_redeemed",
        "earns",
        "sales",
        "mean_basket",
        "budget_ratio_percent",
        "share_percent",
        "abc",
        "rfm",
    ])?;
    for p in &d.partners {
        w.write_record([
            p.name.clone(),
            p.issued.to_string(),
            p.redeemed.to_string(),
            p.earns.to_string(),
            format!("{:.2}", p.sales),
            p.basket.map_or(String::new(), |b| format!("{b:.2}")),
            p.budget_ratio.map_or(String::new(), |b| format!("{b:.1}")),
            format!("{:.1}", p.share),
            p.abc.to_string(),
            p.rfm.clone(),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}
