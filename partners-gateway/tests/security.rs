//! Regressions of the security review's findings, each reproduced as it was found.

mod common;

use common::Gw;
use serde_json::json;

/// The fraud path: a partner linked another partner's member by coalition id alone and spent
/// their points. Linking now needs the member's one-time code, and every refusal answers alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_cannot_take_over_another_partners_member_without_the_members_code() {
    let gw = Gw::start().await;
    // SkyWays enrols a new member and earns 5,000 points for them.
    let e = gw
        .partner(
            1,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FF-VICTIM"})),
        )
        .await;
    assert_eq!(e.status, 201, "{:?}", e.body);
    let id = e.body["member_id"].as_u64().expect("member id");
    let earn = gw
        .partner(
            1,
            "POST",
            "/v1/earn",
            Some(json!({"reference": "FLIGHT-1", "member": "FF-VICTIM",
                "amount": {"value": "5000", "unit": "mile"}})),
        )
        .await;
    assert_eq!(earn.status, 200, "{:?}", earn.body);

    // FuelCo tries to link that member by id: with no code, a guessed code, or for an id that
    // does not exist. All answer the same, so FuelCo learns nothing.
    let attempts = [
        json!({"reference": "FC-THIEF", "member_id": id}),
        json!({"reference": "FC-THIEF", "member_id": id, "link_code": "0000000000"}),
        json!({"reference": "FC-THIEF", "member_id": 987_654_321}),
    ];
    let mut answers = Vec::new();
    for a in attempts {
        let r = gw.partner(2, "POST", "/v1/members", Some(a.clone())).await;
        answers.push((
            r.status.as_u16(),
            r.problem().to_string(),
            r.body["detail"].clone(),
        ));
    }
    assert_eq!(answers[0].0, 404, "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    // Nothing to read or spend.
    let bal = gw.partner(2, "GET", "/v1/members/FC-THIEF", None).await;
    assert_eq!(bal.status, 404);
    let burn = gw
        .partner(
            2,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "STEAL-1", "member": "FC-THIEF", "points": 4000})),
        )
        .await;
    assert_eq!(
        (burn.status.as_u16(), burn.problem()),
        (404, "unknown-member")
    );
    let victim = gw.partner(1, "GET", "/v1/members/FF-VICTIM", None).await;
    assert_eq!(victim.body["available"], 5000);

    // The member asks for a code; the partner they give it to links them, once.
    let code = gw
        .op(
            "POST",
            &format!("/admin/v1/members/{id}/link-codes"),
            Some(json!({"reason": "member called, identity checked"})),
        )
        .await;
    assert_eq!(code.status, 201, "{:?}", code.body);
    assert_eq!(code.headers["cache-control"], "no-store");
    let the_code = code.body["code"].as_str().expect("code").to_lowercase();
    let linked = gw
        .partner(
            2,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FC-CARD", "member_id": id, "link_code": the_code})),
        )
        .await;
    assert_eq!(linked.status, 201, "{:?}", linked.body);
    let again = gw
        .partner(
            2,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FC-CARD", "member_id": id})),
        )
        .await;
    assert_eq!(again.status, 200, "a retry of the link answers it again");
    let reuse = gw
        .partner(
            3,
            "POST",
            "/v1/members",
            Some(json!({"reference": "TN-OTHER", "member_id": id, "link_code": the_code})),
        )
        .await;
    assert_eq!(
        (
            reuse.status.as_u16(),
            reuse.problem().to_string(),
            reuse.body["detail"].clone()
        ),
        answers[0],
        "a spent code answers like any other refusal"
    );
}

/// `i64::MIN` points once wrapped in the adjustment check and left a member at
/// -9,223,372,036,854,775,807.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adjustment_of_i64_min_is_refused_and_changes_nothing() {
    let gw = Gw::start().await;
    let before = gw.fingerprint(&[42]).await;
    let a = gw
        .op(
            "POST",
            "/admin/v1/members/42/adjustments",
            Some(json!({"reference": "ADJ-MIN", "points": i64::MIN, "reason": "overflow"})),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (400, "invalid-amount"));
    assert_eq!(gw.fingerprint(&[42]).await, before);
}

/// A malformed statement cursor answered 500 and logged a false corruption alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_statement_cursor_is_a_404_not_a_corruption_alarm() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(42, "BK-1", "10").await.status, 200);
    let other = gw.earn_miles(43, "BK-2", "10").await;
    let id = other.body["transaction_id"]
        .as_str()
        .expect("id")
        .to_string();
    let page = gw
        .partner(
            1,
            "GET",
            &format!("/v1/members/FF000042/statement?before={id}"),
            None,
        )
        .await;
    assert_eq!(
        (page.status.as_u16(), page.problem()),
        (404, "unknown-transaction")
    );
}
