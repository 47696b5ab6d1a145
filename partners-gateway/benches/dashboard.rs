//! The programme dashboard over 1 million members and 10 million transactions: the analytics
//! aggregates are folded as the audience folds the journal (member rows changing, points per
//! partner and month, lots by expiry), then the dashboard page is built and rendered from them,
//! in Persian and in English, many times; the median and the worst render are reported.
//!
//! `cargo bench -p partners-gateway --bench dashboard` (BENCH_MEMBERS, BENCH_TRANSACTIONS,
//! BENCH_RENDERS to change the sizes).

use partners_gateway::members::analytics::{month_of_day, Analytics};
use partners_gateway::members::segments::{Facts, Row};
use partners_gateway::web::console::DashboardPage;
use partners_gateway::web::dashboard::{self, Context};
use partners_gateway::web::i18n::{Calendar, Lang};
use partners_gateway::web::Frame;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let members = env("BENCH_MEMBERS", 1_000_000) as usize;
    let transactions = env("BENCH_TRANSACTIONS", 10_000_000);
    let renders = env("BENCH_RENDERS", 30) as usize;
    let mut rng = StdRng::seed_from_u64(7);
    let mut facts = Facts {
        minor_per_unit: 100,
        ..Facts::default()
    };
    let mut a = Analytics::default();
    let genders: Vec<u32> = ["female", "male", "other"]
        .iter()
        .map(|g| facts.genders.intern(g))
        .collect();
    let cities: Vec<u32> = (0..40)
        .map(|c| facts.cities.intern(&format!("city-{c}")))
        .collect();
    let today = 20_788; // 2026-12-01
    let start = today - 365;
    let started = Instant::now();
    for m in 0..members {
        let old = Row::default();
        let r = facts.row_mut(m as u64);
        r.enrolled = true;
        r.enrolled_day = start;
        r.birth = today - rng.random_range(18 * 365..80 * 365);
        r.gender = genders[rng.random_range(0..genders.len())];
        r.city = cities[rng.random_range(0..cities.len())];
        let new = *r;
        a.row_changed(&old, &new, 100);
    }
    // Each transaction: an earn at one of 12 partners on a day of the year, moving a member's
    // row as the audience's fold does.
    for i in 0..transactions {
        let m = rng.random_range(0..members) as u64;
        let day = start + (i * 365 / transactions) as i32;
        let partner = rng.random_range(1..=12u32);
        let points = rng.random_range(10..500i64);
        let old = *facts.row(m).expect("row");
        let r = facts.row_mut(m);
        r.visits += 1;
        if r.first_visit == i32::MIN {
            r.first_visit = day;
        }
        r.last_visit = day;
        r.balance += points;
        let sale = points * 100;
        r.spend_minor += sale;
        let new = *r;
        a.points(day, Some(partner), points, 0);
        a.earn(day, partner, Some((sale, sale / 50)), Some(sale));
        a.lot((day as i64 + 730) * 86_400_000, points);
        a.row_changed(&old, &new, 100);
        a.transactions += 1;
    }
    let fold = started.elapsed().as_secs_f64();
    let partners: Vec<(u32, String, i64)> =
        (1..=12).map(|p| (p, format!("Partner {p}"), 100)).collect();
    let mut times = Vec::new();
    let mut bytes = 0;
    for i in 0..renders {
        let lang = if i % 2 == 0 { Lang::Fa } else { Lang::En };
        let t = Instant::now();
        let d = dashboard::build(
            &a,
            &facts,
            &Context {
                lang,
                cal: if lang == Lang::Fa {
                    Calendar::SolarHijri
                } else {
                    Calendar::Gregorian
                },
                now: month_of_day(today),
                today,
                partners: &partners,
                minor_per_unit: 100,
                nps: (Some(31.0), vec![(1, 40.0), (2, -10.0)]),
            },
        );
        let charts_json = serde_json::to_string(&d.charts).expect("json");
        let page = DashboardPage {
            dashboard: d,
            charts_json,
        };
        let frame = Frame {
            lang: lang.code(),
            dir: lang.dir(),
            other_lang: lang.other().code(),
            cal: "gregorian",
            csrf: "x",
            path: "/console/dashboard",
            base: "/console",
            who: Some("bench".into()),
            can_write: true,
            page,
        };
        let html = partners_gateway::web::html("console/dashboard.html", &frame).expect("render");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = html.len();
    }
    times.sort_by(|x, y| x.total_cmp(y));
    println!(
        "| dashboard: aggregates folded | {members} members, {transactions} transactions | {fold:.1} s | {:.0} transactions/s |",
        transactions as f64 / fold
    );
    println!(
        "| dashboard: page built and rendered from the aggregates | {renders} renders, fa and en, {bytes} bytes | median {:.2} ms | max {:.2} ms |",
        times[times.len() / 2],
        times[times.len() - 1]
    );
}
