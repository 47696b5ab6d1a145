//! Segments over HTTP: definitions checked, members selected by age band, gender, city,
//! visits, spend and balance from the journal and the profiles, a campaign that rewards only a
//! segment and one for the birthday month, and members leaving segments when suspended or
//! erased.

mod common;

use chrono::Datelike;
use common::Gw;
use serde_json::{json, Value};

async fn telecom_earn(gw: &Gw, n: u64, reference: &str, gbp: &str) -> Value {
    let r = gw
        .partner(
            3,
            "POST",
            "/v1/earn",
            Some(
                json!({"reference": reference, "member": format!("TN{n:06}"),
                "amount": {"value": gbp, "unit": "GBP"}}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn preview(gw: &Gw, rules: Value) -> Vec<u64> {
    let r = gw
        .op(
            "POST",
            "/admin/v1/segments/preview",
            Some(json!({ "rules": rules })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let members: Vec<u64> = r.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m.as_u64().expect("id"))
        .collect();
    assert_eq!(r.body["count"], members.len(), "{:?}", r.body);
    members
}

/// Sets the programme's clock to UTC and its currency to GBP, then the members' profiles.
async fn gbp_programme_with_profiles(gw: &Gw, profiles: Vec<(u64, Value)>) {
    let r = gw
        .op(
            "PUT",
            "/admin/v1/programme",
            Some(json!({"time_zone": "UTC", "currency": "GBP", "reason": "segments by spend"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for (m, profile) in profiles {
        let p = gw
            .op(
                "PUT",
                &format!("/admin/v1/members/{m}/profile"),
                Some(profile),
            )
            .await;
        assert_eq!(p.status, 200, "{:?}", p.body);
    }
}

/// Three members: 32 born this month, 33 next month.
fn this_month_profiles() -> Vec<(u64, Value)> {
    let this_month = chrono::Utc::now().month();
    let other_month = this_month % 12 + 1;
    vec![
        (
            31,
            json!({"birth_date": "1995-05-01", "gender": "female", "city": "Tehran"}),
        ),
        (
            32,
            json!({"birth_date": format!("1960-{this_month:02}-10"), "gender": "male", "city": "tehran "}),
        ),
        (
            33,
            json!({"birth_date": format!("2000-{other_month:02}-07"), "gender": "female", "city": "Shiraz"}),
        ),
    ]
}

fn bonus_points(earn: &Value) -> Vec<i64> {
    earn["bonuses"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| b["points"].as_i64().expect("points"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_select_members_and_campaigns_reward_them() {
    let gw = Gw::start().await;
    gbp_programme_with_profiles(&gw, this_month_profiles()).await;
    for (i, gbp) in ["20.00", "20.00", "20.50"].iter().enumerate() {
        telecom_earn(&gw, 31, &format!("S-31-{i}"), gbp).await;
    }
    telecom_earn(&gw, 32, "S-32", "100.00").await;
    assert_eq!(gw.earn_miles(33, "S-33", "700").await.status, 200);

    // Definitions are checked.
    let bad = gw
        .op(
            "POST",
            "/admin/v1/segments",
            Some(json!({"name": "x", "reason": "r", "rules": {"age_min": 50, "age_max": 40}})),
        )
        .await;
    assert_eq!((bad.status.as_u16(), bad.problem()), (422, "rule-invalid"));
    let shape = gw
        .op(
            "POST",
            "/admin/v1/segments",
            Some(json!({"name": "x", "reason": "r", "rules": {"colour": "red"}})),
        )
        .await;
    assert_eq!(shape.status, 400);

    // Selection by each kind of condition.
    assert_eq!(
        preview(&gw, json!({"cities": ["TEHRAN"]})).await,
        vec![31, 32]
    );
    assert_eq!(
        preview(&gw, json!({"genders": ["female"]})).await,
        vec![31, 33]
    );
    assert_eq!(
        preview(&gw, json!({"age_min": 18, "age_max": 40})).await,
        vec![31, 33]
    );
    assert_eq!(preview(&gw, json!({"visits_min": 3})).await, vec![31]);
    assert_eq!(
        preview(&gw, json!({"spend_min": "60.50"})).await,
        vec![31, 32]
    );
    assert_eq!(preview(&gw, json!({"spend_min": "60.51"})).await, vec![32]);
    assert_eq!(
        preview(&gw, json!({"balance_min": 700, "balance_max": 700})).await,
        vec![33]
    );
    assert_eq!(
        preview(
            &gw,
            json!({"days_since_activity_max": 0, "cities": ["Shiraz"]})
        )
        .await,
        vec![33],
        "active today"
    );

    let seg = gw
        .op(
            "POST",
            "/admin/v1/segments",
            Some(
                json!({"name": "Young women in Tehran who spend", "reason": "autumn offer",
                "rules": {"age_min": 18, "age_max": 40, "genders": ["Female"],
                          "cities": ["Tehran"], "visits_min": 3, "spend_min": "50"}}),
            ),
        )
        .await;
    assert_eq!(seg.status, 201, "{:?}", seg.body);
    let id = seg.body["id"].as_u64().expect("id");
    let members = gw
        .op("GET", &format!("/admin/v1/segments/{id}/members"), None)
        .await;
    assert_eq!(members.body["members"], json!([31]), "{:?}", members.body);
    let of = gw.op("GET", "/admin/v1/members/31/segments", None).await;
    assert_eq!(of.body[0]["id"], id, "{:?}", of.body);

    // A campaign for the segment, and one for the birthday month, at the telecom.
    for (name, conditions, points) in [
        (
            "Segment thanks",
            json!({"partners": [3], "segments": [id]}),
            70,
        ),
        (
            "Happy birthday",
            json!({"partners": [3], "birthday_month": true}),
            30,
        ),
    ] {
        let c = gw
            .op(
                "POST",
                "/admin/v1/campaigns",
                Some(json!({"name": name, "reason": "test",
                    "conditions": conditions, "effect": {"kind": "fixed", "points": points}})),
            )
            .await;
        assert_eq!(c.status, 201, "{:?}", c.body);
    }
    let unknown = gw
        .op(
            "POST",
            "/admin/v1/campaigns",
            Some(
                json!({"name": "n", "reason": "r", "conditions": {"segments": [999]},
                "effect": {"kind": "fixed", "points": 1}}),
            ),
        )
        .await;
    assert_eq!(unknown.problem(), "rule-invalid", "{:?}", unknown.body);
    assert_eq!(
        bonus_points(&telecom_earn(&gw, 31, "S-31-b", "1.00").await),
        vec![70]
    );
    assert_eq!(
        bonus_points(&telecom_earn(&gw, 32, "S-32-b", "1.00").await),
        vec![30]
    );
    assert!(bonus_points(&telecom_earn(&gw, 33, "S-33-b", "1.00").await).is_empty());

    // A suspended member leaves every segment; an erased one loses its profile facts.
    let s = gw
        .op(
            "POST",
            "/admin/v1/members/31/standing",
            Some(json!({"reference": "s101", "standing": "suspended", "reason": "review"})),
        )
        .await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    let members = gw
        .op("GET", &format!("/admin/v1/segments/{id}/members"), None)
        .await;
    assert_eq!(members.body["count"], 0, "{:?}", members.body);
    let e = gw
        .op(
            "POST",
            "/admin/v1/members/33/erasure",
            Some(json!({"reference": "e103", "reason": "request 17"})),
        )
        .await;
    assert_eq!(e.status, 200, "{:?}", e.body);
    assert_eq!(
        preview(&gw, json!({"genders": ["female"]})).await,
        Vec::<u64>::new()
    );
}

/// The value of gauge `name` on `/metrics`.
async fn gauge(gw: &Gw, name: &str) -> u64 {
    let r = gw
        .http
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(gw.cred("OPERATOR_TOKEN"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Stops `gw` cleanly and starts a gateway on its data.
async fn restart(gw: Gw) -> Gw {
    let dir = gw.stop().await;
    let config = partners_gateway::config::Config::for_tests(&dir.path().join("data"));
    Gw::start_in(dir, config).await
}

/// The rules the restart test compares before and after.
fn restart_rules() -> Vec<Value> {
    vec![
        json!({"cities": ["TEHRAN"]}),
        json!({"genders": ["female"]}),
        json!({"age_min": 18, "age_max": 40}),
        json!({"visits_min": 2}),
        json!({"spend_min": "30.00"}),
        json!({"balance_min": 1}),
    ]
}

async fn previews(gw: &Gw) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    for r in restart_rules() {
        out.push(preview(gw, r).await);
    }
    out
}

/// A restart takes the audience's state saved at shutdown and folds only the journal after
/// it: the same members are in the same segments, a member erased before the stop stays
/// without profile facts, transactions after the restart are folded on top, and the facts
/// equal a fold of the whole journal. When the programme's currency changes, the running
/// audience counts everything again under it, and that state is saved and taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_takes_the_saved_audience_and_folds_only_what_came_after() {
    let gw = Gw::start().await;
    gbp_programme_with_profiles(
        &gw,
        vec![
            (
                31,
                json!({"birth_date": "1995-05-01", "gender": "female", "city": "Tehran"}),
            ),
            (
                32,
                json!({"birth_date": "1960-03-10", "gender": "male", "city": "tehran"}),
            ),
            (
                33,
                json!({"birth_date": "2000-01-07", "gender": "female", "city": "Shiraz"}),
            ),
        ],
    )
    .await;
    for (i, gbp) in ["20.00", "15.00", "20.50"].iter().enumerate() {
        telecom_earn(&gw, 31, &format!("R-31-{i}"), gbp).await;
    }
    telecom_earn(&gw, 32, "R-32", "100.00").await;
    assert_eq!(gw.earn_miles(33, "R-33", "700").await.status, 200);
    let e = gw
        .op(
            "POST",
            "/admin/v1/members/33/erasure",
            Some(json!({"reference": "e-r33", "reason": "request 18"})),
        )
        .await;
    assert_eq!(e.status, 200, "{:?}", e.body);
    let before = previews(&gw).await;
    assert_eq!(before[1], vec![31], "33 is erased: no gender");
    assert_eq!(before[3], vec![31], "two visits or more");
    let ops = gw.app().ops.clone();
    assert_eq!(
        ops.audience.restored(),
        None,
        "a fresh store has nothing saved"
    );
    assert_eq!(ops.audience.check_against_journal(&ops).unwrap(), None);
    // The audience began counting before the currency was set, and counted again when it was:
    // everything it holds is counted in pounds, so it is saved.
    let folded = ops.audience.transactions();
    assert!(folded > 0);
    assert_eq!(ops.audience.save(&ops).unwrap(), Some(folded));
    drop(ops);
    let gw = restart(gw).await;
    assert_eq!(
        previews(&gw).await,
        before,
        "the same segments after the restart"
    );
    let ops = gw.app().ops.clone();
    let restored = ops.audience.restored().expect("the saved state was taken");
    assert!(
        restored >= folded,
        "saved at shutdown: {restored} of {folded} transactions"
    );
    assert_eq!(ops.audience.check_against_journal(&ops).unwrap(), None);
    assert_eq!(
        (
            gauge(&gw, "audience_transactions_folded").await,
            gauge(&gw, "audience_saved_transactions").await
        ),
        (ops.audience.transactions(), restored),
        "/metrics"
    );

    // Transactions after the restart are folded on top of the saved state.
    telecom_earn(&gw, 32, "R-32-b", "1.00").await;
    telecom_earn(&gw, 32, "R-32-c", "1.00").await;
    let after = previews(&gw).await;
    assert_eq!(
        after[3],
        vec![31, 32],
        "32's visits added to the saved ones"
    );
    assert_eq!(after[4], vec![31, 32], "spend is saved and added to");
    assert!(ops.audience.transactions() >= restored + 2);
    assert_eq!(ops.audience.check_against_journal(&ops).unwrap(), None);

    // Another currency: the running audience counts everything again, without a restart,
    // and no spend in pounds is counted in euros.
    let r = gw
        .op(
            "PUT",
            "/admin/v1/programme",
            Some(json!({"time_zone": "Asia/Tehran", "currency": "EUR", "reason": "moved"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let in_euros = previews(&gw).await;
    assert_eq!(in_euros[4], Vec::<u64>::new(), "no spend in euros");
    assert_eq!(in_euros[3], after[3], "the visits counted again");
    assert_eq!(in_euros[1], vec![31], "33, erased, has no gender still");
    assert_eq!(
        (
            in_euros[0].clone(),
            in_euros[2].clone(),
            in_euros[5].clone()
        ),
        (after[0].clone(), after[2].clone(), after[5].clone())
    );
    assert_eq!(
        ops.audience.restored(),
        None,
        "the pounds' state is not taken"
    );
    assert_eq!(ops.audience.check_against_journal(&ops).unwrap(), None);
    let counted = ops.audience.transactions();
    assert_eq!(ops.audience.save(&ops).unwrap(), Some(counted));
    drop(ops);
    let gw = restart(gw).await;
    assert_eq!(previews(&gw).await, in_euros);
    let ops = gw.app().ops.clone();
    assert_eq!(
        ops.audience.restored(),
        Some(counted),
        "the euros' state taken"
    );
    assert_eq!(ops.audience.check_against_journal(&ops).unwrap(), None);
}
