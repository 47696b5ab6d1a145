//! A programme with campaigns, for measuring what rules cost on the hot path: `n` campaigns
//! defined over the operator API before the run. Two per partner apply to every earn there (a
//! multiplier with a daily cap per member, and a fixed bonus within a budget); the rest have
//! conditions the workload never meets (other branches, categories, channels, payment methods,
//! an early-morning window), so each earn evaluates all of them and carries two awards.

use serde_json::{json, Value};
use std::path::Path;

/// The operator token in a demo credentials file.
pub fn operator_token(credentials: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(credentials)?;
    text.lines()
        .find_map(|l| l.strip_prefix("OPERATOR_TOKEN="))
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("{} has no OPERATOR_TOKEN", credentials.display()))
}

/// The `i`-th campaign of the load programme.
pub fn campaign(i: usize) -> Value {
    let partner = (i % 3) as u32 + 1;
    let base = json!({"name": format!("load campaign {i}"), "reason": "load test"});
    let mut c = base.as_object().cloned().unwrap_or_default();
    let (conditions, effect, limits) = match i {
        0..=2 => (
            json!({"partners": [partner]}),
            json!({"kind": "multiplier", "factor": "1.1"}),
            json!({"member_per_day": 1_000_000}),
        ),
        3..=5 => (
            json!({"partners": [partner]}),
            json!({"kind": "fixed", "points": 5}),
            json!({"budget": 1_000_000_000_000_i64}),
        ),
        _ => {
            let never = match i % 5 {
                0 => json!({"partners": [partner], "branches": [format!("station-9{i:02}")]}),
                1 => json!({"categories": [format!("category-{i}")]}),
                2 => json!({"channels": ["app"]}),
                3 => json!({"payment_methods": ["cash"]}),
                _ => json!({"time_from": "03:00", "time_until": "03:01", "days_of_week": ["mon"]}),
            };
            (
                never,
                json!({"kind": "fixed", "points": 10 + i}),
                json!({"member_per_month": 500}),
            )
        }
    };
    c.insert("conditions".into(), conditions);
    c.insert("effect".into(), effect);
    c.insert("limits".into(), limits);
    Value::Object(c)
}

/// Defines `n` campaigns on the gateway at `base`.
pub async fn define(base: &str, token: &str, n: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for i in 0..n {
        let r = http
            .post(format!("{}/admin/v1/campaigns", base.trim_end_matches('/')))
            .bearer_auth(token)
            .json(&campaign(i))
            .send()
            .await?;
        if !r.status().is_success() {
            anyhow::bail!(
                "campaign {i}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
    }
    Ok(())
}
