//! How cheap segment membership is for a million members: the facts of every member folded
//! from a journal (or made up, without one), then a segment of six conditions evaluated over
//! all of them, and one member's membership checked.
//!
//! `cargo bench -p partners-gateway --bench segments -- --bench`: 1,000,000 made-up members;
//! with `BENCH_DIR=<store>` (built by `ledger`'s finance bench) the facts come from its
//! journal, and made-up profiles fill in age, gender and city. `BENCH_RUNS` (default 7).

use chrono::NaiveDate;
use partners_gateway::members::segments::{day_number, Compiled, Facts, Row, SegmentRules};
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let today = NaiveDate::from_ymd_opt(2026, 11, 30).expect("date");
    let t = day_number(today);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut facts = Facts::default();
    let cities: Vec<u32> = ["Tehran", "Mashhad", "Isfahan", "Shiraz", "Tabriz", "Karaj"]
        .iter()
        .map(|c| facts.cities.intern(c))
        .collect();
    let genders: Vec<u32> = ["female", "male", "other"]
        .iter()
        .map(|g| facts.genders.intern(g))
        .collect();
    match std::env::var("BENCH_DIR") {
        Ok(dir) => {
            use ledger::store::{EmbeddedStore, Store};
            let store = EmbeddedStore::open(std::path::Path::new(&dir)).expect("store");
            let snap = store.snapshot().expect("snapshot");
            let started = Instant::now();
            let n = partners_gateway::ops::audience::fold_journal(
                &snap,
                None,
                &mut facts,
                &mut partners_gateway::members::analytics::Analytics::default(),
                chrono_tz::Tz::UTC,
                Some("EUR".into()),
            )
            .expect("fold");
            let s = started.elapsed().as_secs_f64();
            println!(
                "| audience: facts folded from the journal | {n} transactions, {} members | {s:.1} s | {:.0} transactions/s |",
                facts.rows.iter().filter(|r| r.enrolled).count(),
                n as f64 / s
            );
            for r in facts.rows.iter_mut().filter(|r| r.enrolled) {
                r.birth = t - rng.random_range(18 * 365..80 * 365);
                r.gender = genders[rng.random_range(0..genders.len())];
                r.city = cities[rng.random_range(0..cities.len())];
            }
        }
        Err(_) => {
            facts.minor_per_unit = 100;
            facts.rows.push(Row::default());
            for _ in 0..1_000_000 {
                let visits = rng.random_range(0..40u32);
                let first = t - rng.random_range(0..720);
                facts.rows.push(Row {
                    birth: t - rng.random_range(18 * 365..80 * 365),
                    gender: genders[rng.random_range(0..genders.len())],
                    city: cities[rng.random_range(0..cities.len())],
                    tier: rng.random_range(0..4),
                    enrolled: true,
                    enrolled_day: first,
                    reach: 0,
                    active: rng.random_range(0..100) != 0,
                    balance: rng.random_range(0..50_000),
                    first_visit: first,
                    last_visit: (first + rng.random_range(0..720)).min(t),
                    last_activity: t - rng.random_range(0..365),
                    visits,
                    spend_minor: i64::from(visits) * rng.random_range(500..20_000),
                });
            }
        }
    }
    let members = facts.rows.iter().filter(|r| r.enrolled).count();
    let rules: SegmentRules = serde_json::from_value(serde_json::json!({
        "age_min": 25, "age_max": 45, "genders": ["female"], "cities": ["Tehran", "Shiraz"],
        "balance_min": 1000, "days_since_activity_max": 90, "visit_interval_days_max": 30
    }))
    .expect("rules");
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let c = Compiled::new(&rules, &facts, today);
        let (first, n) = c.members(&facts, 100);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(first);
        count = n;
    }
    println!(
        "| segments: a 7-condition segment evaluated over every member | {members} members, {count} in it | {:.1} ms median of {runs} | {:.0} members/s |",
        median(times.clone()),
        members as f64 / (median(times) / 1000.0)
    );
    let c = Compiled::new(&rules, &facts, today);
    let ids: Vec<usize> = (0..1_000_000)
        .map(|_| rng.random_range(1..facts.rows.len()))
        .collect();
    let mut per = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut n = 0usize;
        for i in &ids {
            n += usize::from(c.contains(&facts.rows[*i]));
        }
        std::hint::black_box(n);
        per.push(started.elapsed().as_nanos() as f64 / ids.len() as f64);
    }
    println!(
        "| segments: one member's membership | 1,000,000 random members | {:.1} ns median of {runs} | |",
        median(per)
    );
}
