//! A year (or any number of days) of the demo coalition's activity, so every dashboard chart
//! shows something real: member profiles (age, gender, city, language, consent), a tier
//! policy, points that last a year (to the month end), a transfer policy, a survey, and day after day of earns at the three partners and burns at the
//! telecom, posted through the same operations as partners' requests, each day dated that day
//! (the committer's clock is moved forward a day at a time, `super::CLOCK_OFFSET`).
//!
//! Members differ as real ones do: a few visit often, most now and then, some stop coming
//! (churn), some join late. The stream is seeded, so every demo has the same history.

use crate::ops::partner::{prepare_burn, prepare_earn, Burn, Earn, EarnContext};
use crate::ops::{Ops, PartnerCaller};
use crate::programme::rates::Amount;
use anyhow::Context;
use ledger::MemberId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CITIES: [&str; 6] = ["Tehran", "Mashhad", "Isfahan", "Shiraz", "Tabriz", "Karaj"];
const CITY_WEIGHTS: [u32; 6] = [40, 15, 14, 12, 10, 9];
const FIRST: [&str; 12] = [
    "Sara", "Ali", "Maryam", "Reza", "Zahra", "Hossein", "Narges", "Mehdi", "Leila", "Amir",
    "Niloufar", "Omid",
];
const LAST: [&str; 8] = [
    "Ahmadi",
    "Karimi",
    "Hosseini",
    "Rezaei",
    "Moradi",
    "Jafari",
    "Mohammadi",
    "Sadeghi",
];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str], weights: &[u32]) -> &'a str {
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return items[i];
        }
        x -= w;
    }
    items[items.len() - 1]
}

/// A member's habits.
struct Habit {
    /// Visits a month.
    rate: f64,
    /// First and last day it is active.
    from: u32,
    until: u32,
}

/// Posts `days` days of activity for members `range`, the first day `days` days ago.
pub fn history(
    app: &Ops,
    callers: &[PartnerCaller],
    range: std::ops::Range<u64>,
    days: u32,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(2026);
    crate::ops::programme::set_programme(
        app,
        crate::ops::programme::SettingsDraft {
            time_zone: "Asia/Tehran".into(),
            currency: Some("GBP".into()),
            on_close: Default::default(),
            language: Default::default(),
            reason: "demo coalition".into(),
        },
        "demo",
    )
    .map_err(|e| anyhow::anyhow!("demo settings: {}", e.detail))?;
    tiers(app)?;
    crate::ops::programme::set_expiry_policy(
        app,
        crate::ops::programme::ExpiryDraft {
            reference: "demo-expiry".into(),
            rolling: Some(ledger::core::expiry::Rolling {
                months: 12,
                round_to: ledger::core::expiry::RoundTo::MonthEnd,
            }),
            inactivity: None,
            exempt_from_tier: None,
            retroactive: false,
            note: crate::ops::programme::change_note("demo", "points last a year")
                .map_err(|e| anyhow::anyhow!("{}", e.detail))?,
        },
    )
    .map_err(|e| anyhow::anyhow!("demo expiry: {}", e.detail))?;
    crate::ops::programme::set_transfer_policy(
        app,
        crate::ops::programme::TransferDraft {
            reference: "demo-transfers".into(),
            min: Some(100),
            max_per_transfer: Some(5_000),
            max_per_day: Some(10_000),
            max_per_year: Some(50_000),
            fee: 0,
            note: crate::ops::programme::change_note("demo", "members may give points")
                .map_err(|e| anyhow::anyhow!("{}", e.detail))?,
        },
    )
    .map_err(|e| anyhow::anyhow!("demo transfers: {}", e.detail))?;
    let mut habits = Vec::new();
    for m in range.clone() {
        profile(app, &mut rng, MemberId(m))?;
        let rate = match rng.random_range(0..100) {
            0..=9 => rng.random_range(4.0..8.0),
            10..=39 => rng.random_range(1.5..4.0),
            40..=84 => rng.random_range(0.4..1.5),
            _ => rng.random_range(0.05..0.4),
        };
        let from = if rng.random_bool(0.3) {
            rng.random_range(0..days)
        } else {
            0
        };
        let until = if rng.random_bool(0.2) {
            rng.random_range(from..days)
        } else {
            days
        };
        habits.push((MemberId(m), Habit { rate, from, until }));
    }
    survey(app)?;
    let caller = |id: u32| callers.iter().find(|c| c.partner.0 == id);
    let (sky, fuel, tel) = (
        caller(1).context("SkyWays key")?,
        caller(2).context("FuelCo key")?,
        caller(3).context("telecom key")?,
    );
    let mut n = 0u64;
    for day in 0..days {
        // Ten in the morning of the day, in the programme's time zone (UTC+3:30).
        super::CLOCK_OFFSET.store(
            -((days - day) as i64) * 86_400_000 + 6 * 3_600_000,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut prepared = Vec::new();
        for (m, h) in &habits {
            if day < h.from || day >= h.until || !rng.random_bool((h.rate / 30.0).min(1.0)) {
                continue;
            }
            n += 1;
            let roll = rng.random_range(0..100);
            let (c, prefix, amount, branch, category) = if roll < 55 {
                let station = rng.random_range(1..=5);
                let premium = rng.random_bool(0.15);
                (
                    fuel,
                    "FC",
                    Amount {
                        value: format!("{:.1}", rng.random_range(15.0..60.0)),
                        unit: "litre".into(),
                    },
                    Some(format!("station-{station:03}")),
                    premium.then(|| "premium-fuel".to_string()),
                )
            } else if roll < 85 {
                (
                    tel,
                    "TN",
                    Amount {
                        value: format!("{:.2}", rng.random_range(8.0..45.0)),
                        unit: "GBP".into(),
                    },
                    None,
                    None,
                )
            } else {
                (
                    sky,
                    "FF",
                    Amount {
                        value: rng.random_range(250..4_000).to_string(),
                        unit: "mile".into(),
                    },
                    None,
                    None,
                )
            };
            let earn = Earn {
                reference: format!("history-{day}-{}", m.0),
                member: super::member_reference(prefix, m.0),
                amount,
                branch,
                category,
                context: EarnContext::default(),
            };
            if let Ok(p) = prepare_earn(app, c, &earn, None) {
                prepared.push(p);
            }
            // Now and then a member pays a phone bill with points.
            if rng.random_bool(0.12) {
                let burn = Burn {
                    reference: format!("history-burn-{day}-{}", m.0),
                    member: super::member_reference("TN", m.0),
                    points: Some(rng.random_range(2..8) * 100),
                    amount: None,
                    branch: None,
                    category: None,
                };
                if let Ok(p) = prepare_burn(app, tel, &burn, None) {
                    prepared.push(p);
                }
            }
        }
        let mut pending = Vec::new();
        for mut p in prepared {
            loop {
                match crate::ops::partner::queue_prepared(app, p) {
                    Ok(r) => {
                        pending.push(r);
                        break;
                    }
                    Err(back) if matches!(back.0, ledger::LedgerError::Overloaded) => {
                        p = back.1;
                        for r in pending.drain(..) {
                            let _ = r.blocking_recv();
                        }
                    }
                    Err(e) => return Err(e.0.into()),
                }
            }
        }
        // A refused burn (too few points) is part of real life: only the ledger's answer is
        // waited for.
        for r in pending {
            let _ = r.blocking_recv().context("ledger stopped")?;
        }
    }
    tracing::info!(visits = n, days, "demo history posted");
    Ok(())
}

/// A member's profile and consent.
fn profile(app: &Ops, rng: &mut StdRng, m: MemberId) -> anyhow::Result<()> {
    let year = rng.random_range(1950..2007);
    let p = crate::members::Profile {
        name: Some(format!(
            "{} {}",
            FIRST[rng.random_range(0..FIRST.len())],
            LAST[rng.random_range(0..LAST.len())]
        )),
        birth_date: Some(format!(
            "{year}-{:02}-{:02}",
            rng.random_range(1..=12),
            rng.random_range(1..=28)
        )),
        gender: Some(pick(rng, &["female", "male", "other"], &[49, 49, 2]).into()),
        email: Some(format!("member{}@example.org", m.0)),
        phone: Some(format!("+98912{:07}", m.0)),
        language: Some(if rng.random_bool(0.8) { "fa" } else { "en" }.into()),
        city: Some(pick(rng, &CITIES, &CITY_WEIGHTS).into()),
        ..Default::default()
    };
    crate::ops::profiles::put(app, m, p, "demo")
        .map_err(|e| anyhow::anyhow!("demo profile {}: {}", m.0, e.detail))?;
    if rng.random_bool(0.85) {
        crate::ops::profiles::set_consent(
            app,
            m,
            crate::members::Channel::Sms,
            true,
            "enrolment form",
            "demo",
        )
        .map_err(|e| anyhow::anyhow!("demo consent {}: {}", m.0, e.detail))?;
    }
    Ok(())
}

/// Silver and Gold on the points earned in a rolling year.
fn tiers(app: &Ops) -> anyhow::Result<()> {
    use ledger::core::tiers::{Basis, TierLevel, TierPolicy, Window};
    let policy = TierPolicy {
        levels: vec![
            TierLevel {
                name: "Silver".into(),
                threshold: 1_500,
            },
            TierLevel {
                name: "Gold".into(),
                threshold: 5_000,
            },
        ],
        basis: Basis::Points,
        window: Window::Rolling12Months,
        grace_periods: 1,
        partners: vec![],
        categories: vec![],
        time_zone: String::new(),
        note: crate::ops::programme::change_note("demo", "demo tiers")
            .map_err(|e| anyhow::anyhow!("{}", e.detail))?,
    };
    crate::ops::programme::set_tier_policy(app, "demo-tiers", policy)
        .map_err(|e| anyhow::anyhow!("demo tiers: {}", e.detail))?;
    Ok(())
}

/// A survey members can answer in the portal.
fn survey(app: &Ops) -> anyhow::Result<()> {
    let spec = serde_json::json!({
        "names": [{"language": "en", "text": "How was your last fill-up?"},
                  {"language": "fa", "text": "آخرین سوخت‌گیری‌تان چطور بود؟"}],
        "nps_question": [{"language": "en", "text": "How likely are you to recommend FuelCo to a friend?"},
                         {"language": "fa", "text": "چقدر احتمال دارد FuelCo را به دوستانتان پیشنهاد کنید؟"}],
        "partner_id": 2, "reward_points": 50,
    });
    let spec = serde_json::from_value(spec).context("the demo survey")?;
    crate::ops::engagement::surveys::create(app, spec, "demo", "demo survey")
        .map_err(|e| anyhow::anyhow!("demo survey: {}", e.detail))?;
    Ok(())
}
