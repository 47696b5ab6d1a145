//! Programme rules over HTTP: campaigns defined, versioned and audited by operators; earns that
//! carry their bonuses with caps, budgets and funding; quotes; reversals; the points budget
//! guard; on both write paths.

mod common;

use common::{Answer, Gw};
use partners_gateway::config::WriterPath;
use serde_json::{json, Value};

/// Demo FuelCo: 2 points a litre, 4 for premium fuel; EUR, issuance 0.010 a point.
async fn fill(gw: &Gw, n: u64, reference: &str, litres: &str) -> Answer {
    gw.partner(
        2,
        "POST",
        "/v1/earn",
        Some(
            json!({"reference": reference, "member": format!("FC{n:06}"),
                    "amount": {"value": litres, "unit": "litre"}, "payment_method": "card"}),
        ),
    )
    .await
}

async fn campaign(gw: &Gw, body: Value) -> Value {
    let r = gw.op("POST", "/admin/v1/campaigns", Some(body)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body
}

fn bonuses(r: &Answer) -> Vec<(i64, i64, Option<String>)> {
    r.body["bonuses"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    (
                        b["campaign_id"].as_i64().unwrap(),
                        b["points"].as_i64().unwrap(),
                        b["limited_by"].as_str().map(String::from),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn account_points(gw: &Gw, account: &str) -> i64 {
    let r = gw
        .op("GET", &format!("/admin/v1/accounts/{account}"), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["points"].as_i64().unwrap()
}

#[tokio::test]
async fn campaigns_are_versioned_with_author_and_reason_and_bad_definitions_are_refused() {
    let gw = Gw::start().await;
    let c = campaign(
        &gw,
        json!({"name": "Double points at FuelCo", "reason": "launch", "effect": {"kind": "multiplier", "factor": "2"},
               "conditions": {"partners": [2]}}),
    )
    .await;
    assert_eq!(
        (c["id"].as_i64(), c["version"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(c["author"], "demo-operator");
    let id = c["id"].as_i64().unwrap();
    let v2 = gw
        .op(
            "PUT",
            &format!("/admin/v1/campaigns/{id}"),
            Some(json!({"name": "Triple points at FuelCo", "reason": "the board raised it",
                        "effect": {"kind": "multiplier", "factor": "3"}, "conditions": {"partners": [2]}})),
        )
        .await;
    assert_eq!(v2.status, 200, "{:?}", v2.body);
    assert_eq!(v2.body["version"], 2);
    let got = gw
        .op("GET", &format!("/admin/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(got.body["in_force_version"], 2);
    let reasons: Vec<&str> = got.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["definition"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["launch", "the board raised it"]);

    for (body, slug) in [
        (
            json!({"name": "x", "reason": "r", "effect": {"kind": "fixed", "points": 5}, "conditions": {"tiers": [16]}}),
            "rule-invalid",
        ),
        (
            json!({"name": "x", "reason": "r", "effect": {"kind": "fixed", "points": 5}, "starts_on": "2026-05-02", "ends_on": "2026-05-01"}),
            "rule-invalid",
        ),
        (
            json!({"name": "x", "reason": "r", "effect": {"kind": "fixed", "points": 5}, "funded_by": 99}),
            "rule-invalid",
        ),
        (
            json!({"name": "x", "reason": "r", "effect": {"kind": "fixed", "points": 5}, "effective_from_ms": 1000}),
            "rule-invalid",
        ),
        (
            json!({"name": "x", "reason": "r", "effect": {"kind": "bogus"}}),
            "malformed-request",
        ),
    ] {
        let r = gw.op("POST", "/admin/v1/campaigns", Some(body)).await;
        assert_eq!(r.problem(), slug, "{:?}", r.body);
    }
    let r = gw
        .op(
            "PUT",
            "/admin/v1/campaigns/77",
            Some(json!({"name": "x", "reason": "r", "effect": {"kind": "fixed", "points": 5}})),
        )
        .await;
    assert_eq!(r.problem(), "unknown-campaign");
    let finance = gw.cred("FINANCE_TOKEN");
    let r = gw
        .bearer(
            &finance,
            "POST",
            "/admin/v1/campaigns",
            Some(json!({"name": "x", "reason": "r", "effect": {"kind": "fixed", "points": 5}})),
        )
        .await;
    assert_eq!(r.status, 403);
    let all = gw.op("GET", "/admin/v1/campaigns", None).await;
    assert_eq!(
        all.body.as_array().unwrap().len(),
        1,
        "refused drafts stored nothing"
    );

    // Campaigns survive a restart.
    let dir = gw.stop().await;
    let config = partners_gateway::config::Config::for_tests(&dir.path().join("data"));
    let gw = Gw::start_in(dir, config).await;
    let got = gw
        .op("GET", &format!("/admin/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(got.body["versions"].as_array().unwrap().len(), 2);
    let r = fill(&gw, 1, "after-restart", "10").await;
    assert_eq!(
        bonuses(&r),
        vec![(1, 40, None)],
        "triple: 20 base points + 40"
    );
}

#[tokio::test]
async fn an_earn_records_each_bonus_and_the_quote_shows_the_same_breakdown() {
    let gw = Gw::start().await;
    campaign(
        &gw,
        json!({"name": "Premium fuel x1.5", "reason": "r", "priority": 5,
        "effect": {"kind": "multiplier", "factor": "1.5"},
        "conditions": {"partners": [2], "categories": ["premium-fuel"], "min_amount": "20"}}),
    )
    .await;
    campaign(
        &gw,
        json!({"name": "Card bonus", "reason": "r",
        "effect": {"kind": "per_unit", "points_per_unit": "0.5"},
        "conditions": {"payment_methods": ["card"], "units": ["litre"]}}),
    )
    .await;
    campaign(
        &gw,
        json!({"name": "App only", "reason": "r",
        "effect": {"kind": "fixed", "points": 1000}, "conditions": {"channels": ["app"]}}),
    )
    .await;
    let quote = gw
        .partner(
            2,
            "POST",
            "/v1/quote",
            Some(
                json!({"operation": "earn", "amount": {"value": "30", "unit": "litre"},
            "category": "premium-fuel", "payment_method": "card"}),
            ),
        )
        .await;
    assert_eq!(quote.status, 200, "{:?}", quote.body);
    // 30 litres of premium: 120 base, x1.5 adds 60, 0.5 a litre adds 15.
    assert_eq!(
        (
            quote.body["points"].as_i64(),
            quote.body["total_points"].as_i64()
        ),
        (Some(120), Some(195))
    );
    let quoted: Vec<(i64, i64)> = quote.body["bonuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["campaign_id"].as_i64().unwrap(),
                b["points"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(quoted, vec![(1, 60), (2, 15)]);
    let r = gw
        .partner(2, "POST", "/v1/earn", Some(json!({"reference": "premium-1", "member": "FC000001",
            "amount": {"value": "30", "unit": "litre"}, "category": "premium-fuel", "payment_method": "card"})))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(bonuses(&r), vec![(1, 60, None), (2, 15, None)]);
    assert_eq!(r.body["points"], 195);
    // Below the minimum purchase the first campaign does not apply.
    let r = fill(&gw, 1, "regular-1", "10").await;
    assert_eq!(bonuses(&r), vec![(2, 5, None)]);
    // Programme-funded bonuses come from programme/promotions.
    assert_eq!(account_points(&gw, "programme%2Fpromotions").await, -80);
    // A retry answers the same transaction with the same bonuses.
    let again = fill(&gw, 1, "regular-1", "10").await;
    assert_eq!(
        (again.body["replayed"].as_bool(), bonuses(&again)),
        (Some(true), vec![(2, 5, None)])
    );
}

#[tokio::test]
async fn caps_per_member_and_partner_funding_and_reversals_take_the_bonus_back() {
    let gw = Gw::start().await;
    // SkyWays pays for a fixed 300 on fuel fills, at most 500 a member a day.
    campaign(
        &gw,
        json!({"name": "SkyWays x FuelCo", "reason": "co-marketing",
        "effect": {"kind": "fixed", "points": 300}, "conditions": {"partners": [2]},
        "limits": {"member_per_day": 500}, "funded_by": 1}),
    )
    .await;
    let before = gw
        .op("GET", "/admin/v1/accounts/partner%2F1%2Fissuance", None)
        .await
        .body;
    let a = fill(&gw, 7, "cap-1", "10").await;
    let b = fill(&gw, 7, "cap-2", "10").await;
    let c = fill(&gw, 7, "cap-3", "10").await;
    let other = fill(&gw, 8, "cap-4", "10").await;
    assert_eq!(bonuses(&a), vec![(1, 300, None)]);
    assert_eq!(bonuses(&b), vec![(1, 200, Some("member_day".into()))]);
    assert_eq!(bonuses(&c), vec![(1, 0, Some("member_day".into()))]);
    assert_eq!(bonuses(&other), vec![(1, 300, None)]);
    let after = gw
        .op("GET", "/admin/v1/accounts/partner%2F1%2Fissuance", None)
        .await
        .body;
    assert_eq!(
        before["points"].as_i64().unwrap() - after["points"].as_i64().unwrap(),
        800,
        "SkyWays issued the 800 bonus points"
    );
    // SkyWays owes 800 x 0.012 EUR for them.
    let owed = |v: &Value| -> f64 {
        v["money"]["EUR"]
            .as_str()
            .map_or(0.0, |m| m.parse().unwrap())
    };
    assert!(
        (owed(&after) - owed(&before) - 9.6).abs() < 1e-9,
        "{before:?} {after:?}"
    );
    // Refund half of the first fill: half its bonus comes back, funded legs reversed.
    let rev = gw
        .partner(
            2,
            "POST",
            "/v1/reversals",
            Some(json!({"reference": "rev-1", "original_reference": "cap-1", "points": 10})),
        )
        .await;
    assert_eq!(rev.status, 200, "{:?}", rev.body);
    assert_eq!(bonuses(&rev), vec![(1, 150, None)]);
    assert_eq!(rev.body["points"], -160);
    let back = gw
        .op("GET", "/admin/v1/accounts/partner%2F1%2Fissuance", None)
        .await
        .body;
    assert_eq!(
        back["points"].as_i64().unwrap() - after["points"].as_i64().unwrap(),
        150
    );
    // The refund gave 150 of today's cap back.
    let d = fill(&gw, 7, "cap-5", "10").await;
    assert_eq!(bonuses(&d), vec![(1, 150, Some("member_day".into()))]);
    let audit = gw.op("GET", "/admin/v1/audit", None).await;
    assert_eq!(audit.status, 200, "{:?}", audit.body);
}

async fn budget_is_never_overspent(writer: WriterPath) {
    let gw = Gw::start_with(|c| c.writer = writer).await;
    let c = campaign(
        &gw,
        json!({"name": "First 1,000 points", "reason": "launch",
        "effect": {"kind": "fixed", "points": 70}, "limits": {"budget": 1000}}),
    )
    .await;
    let id = c["id"].as_i64().unwrap();
    let gw = std::sync::Arc::new(gw);
    let tasks: Vec<_> = (0..40u64)
        .map(|i| {
            let gw = gw.clone();
            tokio::spawn(async move { fill(&gw, 1 + i % 20, &format!("rush-{i}"), "5").await })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
        granted += bonuses(&r).iter().map(|b| b.1).sum::<i64>();
    }
    assert_eq!(
        granted, 1000,
        "the budget is used to the last point, never more"
    );
    let state = gw
        .op("GET", &format!("/admin/v1/campaigns/{id}"), None)
        .await;
    assert_eq!(state.body["awarded_points"], 1000);
    assert_eq!(account_points(&gw, "programme%2Fpromotions").await, -1000);
    let r = fill(&gw, 1, "late", "5").await;
    assert_eq!(bonuses(&r), vec![(id, 0, Some("budget".into()))]);
}

#[tokio::test]
async fn a_campaign_budget_is_never_overspent_by_concurrent_earns_on_the_single_writer() {
    budget_is_never_overspent(WriterPath::Single).await;
}

#[tokio::test]
async fn a_campaign_budget_is_never_overspent_by_concurrent_earns_on_the_cluster_path() {
    budget_is_never_overspent(WriterPath::Cluster).await;
}

#[tokio::test]
async fn the_budget_guard_refuses_or_caps_and_reports_its_ratio_per_period() {
    let gw = Gw::start().await;
    // TeleNet: 5 points a pound billed, issuance 0.009 GBP a point: 4.5% of sales.
    campaign(
        &gw,
        json!({"name": "Bill bonus", "reason": "r",
        "effect": {"kind": "multiplier", "factor": "2"}, "conditions": {"partners": [3]}}),
    )
    .await;
    let g = gw
        .op(
            "PUT",
            "/admin/v1/budget-guards/partners/3",
            Some(json!({"ceiling": "0.06", "period": "month",
            "on_ceiling": "base_only", "reason": "5-6% of sales"})),
        )
        .await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    let bill = |reference: &'static str| {
        let gw = &gw;
        async move {
            gw.partner(
                3,
                "POST",
                "/v1/earn",
                Some(json!({"reference": reference, "member": "TN000001",
                "amount": {"value": "100", "unit": "GBP"}})),
            )
            .await
        }
    };
    // Doubled, 1,000 points cost 9 GBP on 100 GBP: over 6%, so base points only.
    let r = bill("bill-1").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (r.body["points"].as_i64(), bonuses(&r)),
        (Some(500), vec![(1, 0, Some("budget_guard".into()))])
    );
    // Refuse instead: a clear problem, nothing posted.
    gw.op(
        "PUT",
        "/admin/v1/budget-guards/partners/3",
        Some(json!({"ceiling": "0.06", "period": "month",
        "on_ceiling": "refuse", "thresholds": [50, 100], "reason": "stricter"})),
    )
    .await;
    let r = bill("bill-2").await;
    assert_eq!(r.problem(), "budget-ceiling", "{:?}", r.body);
    assert_eq!(
        gw.partner(3, "GET", "/v1/transactions/bill-2", None)
            .await
            .status,
        404
    );
    let budget = gw.op("GET", "/admin/v1/budget", None).await;
    assert_eq!(budget.status, 200, "{:?}", budget.body);
    let row = budget
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["partner_id"] == 3)
        .expect("partner 3's period")
        .clone();
    assert_eq!(
        (
            row["sales"].as_str(),
            row["points_value"].as_str(),
            row["ratio"].as_str(),
            row["ceiling"].as_str()
        ),
        (Some("100"), Some("4.5"), Some("0.045"), Some("0.06"))
    );
    // The programme-wide guard needs the programme's currency first.
    let r = gw
        .op(
            "PUT",
            "/admin/v1/budget-guards/programme",
            Some(json!({"ceiling": "0.05", "period": "year",
        "on_ceiling": "refuse", "reason": "r"})),
        )
        .await;
    assert_eq!(r.problem(), "rule-invalid");
    let r = gw
        .op(
            "PUT",
            "/admin/v1/programme",
            Some(json!({"time_zone": "Asia/Tehran", "currency": "GBP", "reason": "launch"})),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["version"].as_i64()),
        (200, Some(1))
    );
    let r = gw
        .op(
            "PUT",
            "/admin/v1/programme",
            Some(json!({"time_zone": "Mars/Olympus", "reason": "typo"})),
        )
        .await;
    assert_eq!(r.problem(), "rule-invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_programme_recipes_in_the_docs_work_as_written() {
    let gw = Gw::start().await;
    let script = common::doc_recipe(
        "docs/programme.md",
        "<!-- programme-recipe:begin -->",
        "<!-- programme-recipe:end -->",
    );
    let stdout = common::run_recipe(&gw, &script).await;
    let answers: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("JSON answer: {l}")))
        .collect();
    assert!(
        answers.iter().all(|a| a.get("type").is_none()),
        "no problem answers: {answers:?}"
    );
    let quote = answers
        .iter()
        .find(|a| a["total_points"].is_i64())
        .expect("the quote");
    assert_eq!(
        (quote["points"].as_i64(), quote["total_points"].as_i64()),
        (Some(80), Some(160))
    );
    let earn = answers
        .iter()
        .find(|a| a["kind"] == "earn")
        .expect("the earn");
    assert_eq!(earn["points"], 160);
    assert_eq!(earn["bonuses"][0]["points"], 80);
    let budget = answers.last().expect("the budget");
    assert_eq!(budget[0]["partner_id"], 2);
    assert_eq!(budget[0]["sales"], "74");
}

#[tokio::test]
async fn the_expiry_policy_dates_new_lots_and_members_see_what_expires_soon() {
    let gw = Gw::start().await;
    // Before any policy, FuelCo's contract dates lots 730 days out.
    let before = fill(&gw, 3, "old-lot", "5").await;
    assert_eq!(before.status, 200, "{:?}", before.body);
    let p = gw
        .op(
            "PUT",
            "/admin/v1/expiry-policy",
            Some(
                json!({"reference": "policy-1", "reason": "programme review 2026-11",
            "rolling": {"months": 2, "round_to": "exact"},
            "inactivity": {"months": 24, "activities": ["earn", "burn"]}}),
            ),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["rolling"]["months"], 2);
    assert_eq!(p.body["inactivity"]["activities"], json!(["earn", "burn"]));
    assert!(p.body["since_ms"].as_i64().is_some());
    let r = fill(&gw, 3, "new-lot", "10").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let e = gw
        .partner(2, "GET", "/v1/members/FC000003/expiring", None)
        .await;
    assert_eq!(e.status, 200, "{:?}", e.body);
    let within: Vec<(i64, i64)> = e.body["within"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["days"].as_i64().unwrap(), w["points"].as_i64().unwrap()))
        .collect();
    // The new 20-point lot expires in two months (59 to 62 days); the old one in 730 days.
    assert_eq!((within[0], within[2]), ((30, 0), (90, 20)));
    let lots = e.body["lots"].as_array().unwrap();
    assert_eq!(lots.len(), 1);
    assert_eq!(lots[0]["points"], 20);
    let now_ms = common::now_s() * 1000;
    let days = (lots[0]["expires_at_ms"].as_i64().unwrap() - now_ms) / 86_400_000;
    assert!((58..=62).contains(&days), "{days} days");
    // Inactivity: 24 months from the last earn.
    let deadline = e.body["inactivity_deadline_ms"].as_i64().unwrap();
    assert!((deadline - now_ms) / 86_400_000 >= 729);
    // The programme's points expiring by month: the two lots, in their months.
    let months = gw.op("GET", "/admin/v1/expiring", None).await;
    assert_eq!(months.status, 200, "{:?}", months.body);
    let total: i64 = months
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["points"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 30);
    assert_eq!(months.body.as_array().unwrap().len(), 2);
    // The operator sees the same for the coalition member.
    // Demo member FC000003 is coalition member 3.
    let member_id = 3;
    let op = gw
        .op(
            "GET",
            &format!("/admin/v1/members/{member_id}/expiring"),
            None,
        )
        .await;
    assert_eq!(op.body["within"], e.body["within"]);
    // A policy the ledger cannot run is refused and changes nothing.
    let bad = gw
        .op(
            "PUT",
            "/admin/v1/expiry-policy",
            Some(
                json!({"reference": "policy-2", "reason": "programme review 2026-11",
            "inactivity": {"months": 0}}),
            ),
        )
        .await;
    assert!(bad.status.is_client_error(), "{:?}", bad.body);
    let still = gw.op("GET", "/admin/v1/expiry-policy", None).await;
    assert_eq!(still.body["rolling"]["months"], 2);
    // A change without a reason is refused; every version is kept with its author and reason.
    let unexplained = gw
        .op(
            "PUT",
            "/admin/v1/expiry-policy",
            Some(json!({"reference": "policy-3"})),
        )
        .await;
    assert_eq!(unexplained.problem(), "malformed-request");
    let v = gw
        .op("GET", "/admin/v1/policies/expiry/versions", None)
        .await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    let versions = v.body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{:?}", v.body);
    assert_eq!(
        (
            versions[0]["version"].as_i64(),
            versions[0]["reason"].as_str(),
            versions[0]["expiry"]["rolling"]["months"].as_i64(),
            versions[0]["since_ms"] == p.body["since_ms"]
        ),
        (Some(1), Some("programme review 2026-11"), Some(2), true)
    );
    assert!(!versions[0]["author"].as_str().unwrap_or("").is_empty());
}

#[tokio::test]
async fn members_transfer_points_within_the_programme_limits_with_consent() {
    let gw = Gw::start().await;
    let p = gw
        .op(
            "PUT",
            "/admin/v1/transfer-policy",
            Some(
                json!({"reference": "tp-1", "reason": "programme review 2026-11",
            "min": 10, "max_per_transfer": 500, "max_per_day": 600, "fee": 5}),
            ),
        )
        .await;
    assert_eq!(
        (p.status.as_u16(), p.body["fee"].as_i64()),
        (200, Some(5)),
        "{:?}",
        p.body
    );
    // FuelCo member 11 earns 300 (150 litres), then gives 200 to member 12.
    assert_eq!(fill(&gw, 11, "fund", "150").await.status, 200);
    let give = |reference: &'static str, points: i64| {
        let gw = &gw;
        async move {
            gw.partner(
                2,
                "POST",
                "/v1/transfers",
                Some(json!({"reference": reference,
                "from": "FC000011", "to": "FC000012", "points": points,
                "consent": "in-app confirmation 7781"})),
            )
            .await
        }
    };
    let t = give("gift-1", 200).await;
    assert_eq!(t.status, 200, "{:?}", t.body);
    assert_eq!(
        (t.body["kind"].as_str(), t.body["points"].as_i64()),
        (Some("transfer"), Some(-205))
    );
    let bal = gw.partner(2, "GET", "/v1/members/FC000012", None).await;
    assert_eq!(bal.body["posted"], 200);
    // Beyond the limits: below the minimum, then more than is left.
    assert_eq!(give("gift-2", 5).await.problem(), "transfer-limit");
    assert_eq!(give("gift-3", 100).await.problem(), "insufficient-points");
    // The operator route: member 12 gives back 100 (fee 5), recorded with its consent.
    let back = gw
        .op("POST", "/admin/v1/transfers", Some(json!({"reference": "back-1",
            "from_member_id": 12, "to_member_id": 11, "points": 100, "consent": "call 2026-11-30, identity checked"})))
        .await;
    assert_eq!(back.status, 200, "{:?}", back.body);
    let fees = gw
        .op("GET", "/admin/v1/accounts/programme%2Ffees", None)
        .await;
    assert_eq!(fees.body["points"], 10);
    // Without consent the partner route refuses.
    let r = gw
        .partner(
            2,
            "POST",
            "/v1/transfers",
            Some(json!({"reference": "gift-4",
        "from": "FC000011", "to": "FC000012", "points": 20})),
        )
        .await;
    assert_eq!(r.problem(), "malformed-request");
}

#[tokio::test]
async fn tiers_qualify_on_earns_multiply_through_campaigns_and_can_be_held_by_an_operator() {
    let gw = Gw::start().await;
    let p = gw
        .op(
            "PUT",
            "/admin/v1/tier-policy",
            Some(
                json!({"reference": "tiers-1", "reason": "programme review 2026-11",
            "levels": [{"name": "نقره‌ای", "threshold": 100}, {"name": "Gold", "threshold": 1000}],
            "partners": [2]}),
            ),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["levels"][0]["name"], "نقره‌ای");
    // Silver members earn 50% more at FuelCo (a campaign with a tier condition).
    campaign(
        &gw,
        json!({"name": "Silver bonus", "reason": "tier benefit",
        "conditions": {"partners": [2], "tiers": [1, 2]},
        "effect": {"kind": "multiplier", "factor": "1.5"}}),
    )
    .await;
    // 40 litres: 80 base points, below Silver's 100; no bonus yet.
    let first = fill(&gw, 21, "t-1", "40").await;
    assert_eq!(bonuses(&first), vec![(1, 0, Some("condition".into()))]);
    let view = gw
        .partner(2, "GET", "/v1/members/FC000021/tier", None)
        .await;
    assert_eq!(
        (
            view.body["level"].as_i64(),
            view.body["qualifying"].as_i64()
        ),
        (Some(0), Some(80))
    );
    assert_eq!(view.body["next"]["needed"], 20);
    // The next fill reaches Silver at once (its answer says so), and the fill after it gets
    // the Silver bonus.
    let up = fill(&gw, 21, "t-2", "10").await;
    assert_eq!(
        up.body["tier"],
        json!({"from": 0, "to": 1, "why": "qualified"})
    );
    let view = gw
        .partner(2, "GET", "/v1/members/FC000021/tier", None)
        .await;
    assert_eq!(
        (view.body["level"].as_i64(), view.body["name"].as_str()),
        (Some(1), Some("نقره‌ای"))
    );
    let third = fill(&gw, 21, "t-3", "10").await;
    assert_eq!(bonuses(&third), vec![(1, 10, None)]);
    // SkyWays earns do not qualify.
    gw.earn_miles(22, "fly-1", "5000").await;
    let op = gw.op("GET", "/admin/v1/members/22/tier", None).await;
    assert_eq!(op.body["level"], 0);
    // An operator holds member 22 at Gold for a month.
    let until = common::now_s() * 1000 + 30 * 86_400_000;
    let held = gw
        .op(
            "POST",
            "/admin/v1/members/22/tier",
            Some(json!({"reference": "hold-22",
            "level": 2, "until_ms": until, "reason": "partner executive programme"})),
        )
        .await;
    assert_eq!(
        (held.status.as_u16(), held.body["level"].as_i64()),
        (200, Some(2)),
        "{:?}",
        held.body
    );
    assert_eq!(held.body["override_until_ms"], until);
    let bad = gw
        .op(
            "POST",
            "/admin/v1/members/22/tier",
            Some(json!({"reference": "hold-bad",
            "level": 3, "until_ms": until, "reason": "no such level"})),
        )
        .await;
    assert_eq!(bad.problem(), "rule-invalid");
}

#[tokio::test]
async fn a_household_owner_spends_the_pool_and_members_leave_with_their_own() {
    let gw = Gw::start().await;
    assert_eq!(fill(&gw, 21, "own", "50").await.status, 200);
    assert_eq!(fill(&gw, 22, "kid", "100").await.status, 200);
    let join = |reference: &'static str| {
        let gw = &gw;
        async move {
            gw.partner(
                2,
                "POST",
                "/v1/households/join",
                Some(json!({"reference": reference,
                "owner": "FC000021", "member": "FC000022",
                "consent": "household form 55-A signed at station-001"})),
            )
            .await
        }
    };
    let j = join("house-1").await;
    assert_eq!(j.status, 200, "{:?}", j.body);
    assert_eq!(j.body["kind"], "pool-joined");
    assert_eq!(join("house-1").await.body["replayed"], true);
    assert_eq!(join("house-2").await.problem(), "pool-refused");
    let h = gw
        .partner(2, "GET", "/v1/members/FC000022/household", None)
        .await;
    assert_eq!(h.status, 200, "{:?}", h.body);
    assert_eq!(
        (
            h.body["pooled"].as_bool(),
            h.body["members"][0]["member"].as_str(),
            h.body["members"][0]["owner"].as_bool(),
            h.body["spendable"].as_i64()
        ),
        (Some(true), Some("FC000021"), Some(true), Some(300))
    );
    // The owner spends its own 100, then 150 of the member's.
    let b = gw
        .partner(
            2,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "pool-burn", "member": "FC000021", "points": 250})),
        )
        .await;
    assert_eq!(b.status, 200, "{:?}", b.body);
    let posted = |n: u64| {
        let gw = &gw;
        async move {
            gw.partner(2, "GET", &format!("/v1/members/FC{n:06}"), None)
                .await
                .body["posted"]
                .as_i64()
        }
    };
    assert_eq!((posted(21).await, posted(22).await), (Some(0), Some(50)));
    // The operator sees ids, and joins a SkyWays-only member: FuelCo sees it in the pool
    // without its reference or balance, only in the pool's total.
    let flyer = gw
        .partner(
            1,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FF-HOUSE-1"})),
        )
        .await;
    let flyer_id = flyer.body["member_id"].as_u64().expect("member id");
    let flight = gw
        .partner(
            1,
            "POST",
            "/v1/earn",
            Some(json!({"reference": "house-flight",
            "member": "FF-HOUSE-1", "amount": {"value": "40", "unit": "mile"}})),
        )
        .await;
    assert_eq!(flight.status, 200, "{:?}", flight.body);
    let oj = gw
        .op("POST", "/admin/v1/households/join", Some(json!({"reference": "op-flyer",
            "owner_id": 21, "member_id": flyer_id, "consent": "call 2026-11-30, both on the line"})))
        .await;
    assert_eq!(oj.status, 200, "{:?}", oj.body);
    let op_view = gw.op("GET", "/admin/v1/members/21/household", None).await;
    assert_eq!(op_view.body["members"][1]["member_id"], 22);
    assert_eq!(op_view.body["members"][2]["spendable"], 40);
    let seen = gw
        .partner(2, "GET", "/v1/members/FC000021/household", None)
        .await;
    let stranger = &seen.body["members"][2];
    assert!(
        stranger.get("member").is_none() && stranger.get("spendable").is_none(),
        "{stranger:?}"
    );
    assert_eq!(seen.body["spendable"], 90);
    let out = gw
        .op(
            "POST",
            "/admin/v1/households/leave",
            Some(json!({"reference": "op-flyer-out", "member_id": flyer_id})),
        )
        .await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    let left = gw
        .partner(
            2,
            "POST",
            "/v1/households/leave",
            Some(json!({"reference": "leave-1", "member": "FC000022"})),
        )
        .await;
    assert_eq!(left.status, 200, "{:?}", left.body);
    let h = gw.op("GET", "/admin/v1/members/21/household", None).await;
    assert_eq!(
        (h.body["pooled"].as_bool(), h.body["spendable"].as_i64()),
        (Some(false), Some(0))
    );
    assert_eq!(posted(22).await, Some(50));
    // Operators join and dissolve too.
    let oj = gw
        .op(
            "POST",
            "/admin/v1/households/join",
            Some(json!({"reference": "op-house",
            "owner_id": 22, "member_id": 21, "consent": "call 2026-11-30, both on the line"})),
        )
        .await;
    assert_eq!(oj.status, 200, "{:?}", oj.body);
    let ol = gw
        .op(
            "POST",
            "/admin/v1/households/leave",
            Some(json!({"reference": "op-dissolve", "member_id": 22})),
        )
        .await;
    assert_eq!(ol.status, 200, "{:?}", ol.body);
    let again = gw
        .op(
            "POST",
            "/admin/v1/households/leave",
            Some(json!({"reference": "op-dissolve-2", "member_id": 22})),
        )
        .await;
    assert_eq!(again.problem(), "pool-refused");
}

#[tokio::test]
async fn tiers_qualify_on_spend_on_chosen_categories_and_on_flagged_adjustments() {
    let gw = Gw::start().await;
    let policy = |body: Value| {
        let gw = &gw;
        async move { gw.op("PUT", "/admin/v1/tier-policy", Some(body)).await }
    };
    // Spend in GBP, counted in pence: GBP 20.00 reaches Silver.
    let p = policy(
        json!({"reference": "spend", "reason": "programme review 2026-11", "basis": "spend", "currency": "GBP",
        "levels": [{"name": "Silver", "threshold": 2000}]}),
    )
    .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(
        (p.body["basis"].as_str(), p.body["currency"].as_str()),
        (Some("spend"), Some("GBP"))
    );
    let bill = |reference: &'static str, value: &'static str| {
        let gw = &gw;
        async move {
            gw.partner(
                3,
                "POST",
                "/v1/earn",
                Some(json!({"reference": reference,
                "member": "TN000031", "amount": {"value": value, "unit": "GBP"}})),
            )
            .await
        }
    };
    assert_eq!(bill("bill-1", "12.50").await.status, 200);
    let t = gw.op("GET", "/admin/v1/members/31/tier", None).await;
    assert_eq!(
        (t.body["level"].as_i64(), t.body["qualifying"].as_i64()),
        (Some(0), Some(1_250))
    );
    assert_eq!(bill("bill-2", "8.00").await.status, 200);
    let t = gw.op("GET", "/admin/v1/members/31/tier", None).await;
    assert_eq!(
        (t.body["level"].as_i64(), t.body["qualifying"].as_i64()),
        (Some(1), Some(2_050))
    );
    // A currency without the spend basis, the spend basis without one, or a code that is no
    // currency, is refused.
    for (bad, problem) in [
        (
            json!({"reference": "bad-1", "reason": "programme review 2026-11", "basis": "spend", "levels": [{"name": "S", "threshold": 5}]}),
            "rule-invalid",
        ),
        (
            json!({"reference": "bad-2", "reason": "programme review 2026-11", "currency": "GBP", "levels": [{"name": "S", "threshold": 5}]}),
            "rule-invalid",
        ),
        (
            json!({"reference": "bad-3", "reason": "programme review 2026-11", "basis": "spend", "currency": "AAA", "levels": [{"name": "S", "threshold": 5}]}),
            "unknown-currency",
        ),
    ] {
        assert_eq!(policy(bad).await.problem(), problem);
    }

    // Two qualifying earns, counted only for premium fuel at FuelCo.
    let p = policy(
        json!({"reference": "premium", "reason": "programme review 2026-11", "basis": "activities",
        "levels": [{"name": "Silver", "threshold": 2}],
        "categories": [{"partner": 2, "categories": ["premium-fuel"]}]}),
    )
    .await;
    assert_eq!(
        p.body["categories"][0]["categories"][0], "premium-fuel",
        "{:?}",
        p.body
    );
    for (n, reference, category) in [
        (32, "p1", Some("premium-fuel")),
        (32, "p2", Some("premium-fuel")),
        (33, "r1", None),
        (33, "r2", Some("diesel")),
    ] {
        let mut body = json!({"reference": reference, "member": format!("FC{n:06}"),
            "amount": {"value": "10", "unit": "litre"}});
        if let Some(c) = category {
            body["category"] = json!(c);
        }
        assert_eq!(
            gw.partner(2, "POST", "/v1/earn", Some(body)).await.status,
            200
        );
    }
    let level = |n: u64| {
        let gw = &gw;
        async move {
            gw.op("GET", &format!("/admin/v1/members/{n}/tier"), None)
                .await
                .body["level"]
                .as_i64()
        }
    };
    assert_eq!((level(32).await, level(33).await), (Some(1), Some(0)));

    // On points, an adjustment counts only when the operator flags it.
    let p =
        policy(json!({"reference": "points", "reason": "programme review 2026-11", "levels": [{"name": "Silver", "threshold": 1000}]}))
            .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    for (n, qualifies) in [(34, true), (35, false)] {
        let a = gw
            .op(
                "POST",
                &format!("/admin/v1/members/{n}/adjustments"),
                Some(json!({
                "reference": format!("goodwill-{n}"), "points": 1500,
                "reason": "missed connection, goodwill", "qualifies": qualifies})),
            )
            .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    assert_eq!((level(34).await, level(35).await), (Some(1), Some(0)));
    // Three versions were set (the refused ones are not among them), the last in force.
    let v = gw.op("GET", "/admin/v1/policies/tier/versions", None).await;
    let bases: Vec<&str> = v.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["tier"]["basis"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(bases, ["spend", "activities", "points"], "{:?}", v.body);
    let unknown = gw
        .op("GET", "/admin/v1/policies/rates/versions", None)
        .await;
    assert_eq!(unknown.problem(), "invalid-request");
}
