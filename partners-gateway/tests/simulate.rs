//! The what-if simulation against a small example computed by hand.

use partners_gateway::simulate::{replay, ProgrammeFile, Simulation};
use rust_decimal::Decimal;

const PROGRAMME: &str = r#"
time_zone = "UTC"
redemption_rate = "0.5"

[[partners]]
id = 1
name = "Shop"
currency = "EUR"
issuance_price_per_point = "0.01"
redemption_price_per_point = "0.008"
rates = { unit = "EUR", earn_points_per_unit = "2" }

[[campaigns]]
name = "Saturday double"
reason = "test"
conditions = { days_of_week = ["sat"] }
effect = { kind = "multiplier", factor = "2" }
limits = { member_per_day = 30 }

[[campaigns]]
name = "First visit"
reason = "test"
conditions = { first_earn_at_partner = true }
effect = { kind = "fixed", points = 50 }
funded_by = 1

[[guards]]
partner = 1
settings = { ceiling = "0.05", period = "month", on_ceiling = "base_only", reason = "test" }
"#;

// 2026-11-27 is a Friday.
const HISTORY: &str = "time,partner,member,amount,unit
2026-11-27T10:00:00Z,1,A,10,EUR
2026-11-28T09:00:00Z,1,A,20,EUR
2026-11-28T10:00:00Z,1,B,5,EUR
2026-11-28T11:00:00Z,1,A,10,EUR
2026-12-01T12:00:00Z,1,B,100,EUR
2026-12-01T13:00:00Z,9,C,1,EUR
";

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn a_small_history_simulates_to_the_figures_computed_by_hand() {
    let file: ProgrammeFile = toml::from_str(PROGRAMME).expect("programme parses");
    let mut sim = Simulation::new(file).expect("programme builds");
    replay(&mut sim, HISTORY.as_bytes()).expect("history replays");
    let r = sim.finish();
    // Row by row (points at 0.01 EUR, guard at 5% of the month's sales):
    // 1. Fri, A, 10 EUR: 20 base + 50 first visit = 0.70 EUR on 10 EUR (7%): base only, 20.
    // 2. Sat, A, 20 EUR: 40 base + double 40 cut to A's 30 a day; not A's first visit: 70.
    //    The month: 0.90 EUR on 30 EUR (3%).
    // 3. Sat, B, 5 EUR: 10 base + double 10 + first visit 50 = 70: 1.60 EUR on 35 EUR (4.57%),
    //    first crossing of 80% of the ceiling (4%).
    // 4. Sat, A, 10 EUR: 20 base; A's double cap is used up: 20. 1.80 EUR on 45 EUR (4%).
    // 5. December, B, 100 EUR: 200 base. 6. Partner 9 is unknown.
    assert_eq!((r.rows, r.posted, r.members), (6, 5, 2));
    assert_eq!(r.refused.get("unknown partner"), Some(&1));
    let nov = &r.by_partner_month["Shop"]["2026-11"];
    assert_eq!(
        (nov.earns, nov.base_points, nov.bonus_points, nov.capped),
        (4, 90, 90, 1)
    );
    assert_eq!((nov.sales, nov.points_value), (dec("45"), dec("1.80")));
    let dec_ = &r.by_partner_month["Shop"]["2026-12"];
    assert_eq!(
        (dec_.earns, dec_.base_points, dec_.bonus_points),
        (1, 200, 0)
    );
    let double = &r.campaigns[&1];
    assert_eq!((double.awards, double.points, double.cut), (2, 40, 30));
    let first = &r.campaigns[&2];
    assert_eq!((first.awards, first.points, first.cut), (1, 50, 200));
    assert_eq!(
        first.value["EUR"],
        dec("0.50"),
        "the shop pays for its first-visit points"
    );
    let months: Vec<(&str, i64, Decimal)> = r
        .liability
        .iter()
        .map(|l| (l.month.as_str(), l.points, l.expected_cost["EUR"]))
        .collect();
    // 180 points x 0.008 x 0.5 = 0.72 EUR; 380 points: 1.52 EUR.
    assert_eq!(
        months,
        vec![("2026-11", 180, dec("0.72")), ("2026-12", 380, dec("1.52"))]
    );
    assert_eq!(
        r.thresholds_crossed,
        vec![("Shop".to_string(), "2026-11".to_string(), 80)]
    );
}

#[test]
fn a_programme_the_operator_api_would_refuse_is_refused_here_too() {
    let bad = PROGRAMME.replace("factor = \"2\"", "factor = \"0.5\"");
    let file: ProgrammeFile = toml::from_str(&bad).expect("programme parses");
    let err = Simulation::new(file).err().expect("refused");
    assert!(err.to_string().contains("factor"), "{err}");
    let file: ProgrammeFile = toml::from_str(PROGRAMME).expect("programme parses");
    let mut sim = Simulation::new(file).expect("programme builds");
    let e =
        replay(&mut sim, "time,partner,member\n1,1,A\n".as_bytes()).expect_err("no amount column");
    assert!(e.to_string().contains("amount"), "{e}");
}

#[test]
fn the_sample_programme_in_the_docs_builds_and_simulates() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/programme.toml"
    ))
    .expect("sample programme");
    let file: ProgrammeFile = toml::from_str(&text).expect("sample parses");
    let mut sim = Simulation::new(file).expect("sample builds");
    let mut history = Vec::new();
    partners_gateway::simulate::write_history(&mut history, 2_000, 300, 2026, 7).expect("history");
    replay(&mut sim, history.as_slice()).expect("replays");
    let r = sim.finish();
    assert_eq!(r.rows, 2_000);
    assert_eq!(r.posted + r.refused.values().sum::<u64>(), 2_000);
    assert!(r.campaigns[&2].points > 0, "first flights earn their bonus");
    assert_eq!(
        r.liability.last().map(|l| l.points),
        Some(
            r.by_partner_month
                .values()
                .flat_map(|m| m.values())
                .map(|t| t.base_points + t.bonus_points)
                .sum()
        )
    );
}
