//! Rough edges a partner client written from `docs/api.md` alone ran into: batches whose later
//! commands could not see earlier ones, statements that hid
//! holds, voids and expiries and paged into empty pages, and path or query values that got
//! plain-text answers instead of problems.

mod common;

use common::Gw;
use serde_json::{json, Value};

const M: u64 = 42;

async fn hold(gw: &Gw, reference: &str, points: i64) {
    let h = gw
        .partner(
            1,
            "POST",
            "/v1/holds",
            Some(
                json!({"reference": reference, "member": "FF000042", "points": points,
                "timeout_seconds": 3600}),
            ),
        )
        .await;
    assert_eq!(h.status, 200, "{:?}", h.body);
}

/// Every page of the airline's statement of member 42, following `next` from the first.
async fn airline_pages(gw: &Gw, limit: u32) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut target = format!("/v1/members/FF000042/statement?limit={limit}");
    loop {
        let page = gw.partner(1, "GET", &target, None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let next = page.body.get("next").cloned();
        pages.push(page.body);
        match next {
            None => return pages,
            Some(Value::String(n)) => {
                target = format!("/v1/members/FF000042/statement?limit={limit}&before={n}")
            }
            Some(other) => panic!("next is absent or a string, not {other}"),
        }
        assert!(pages.len() < 50, "paging does not end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_statement_shows_its_holds_voids_and_captures_and_pages_without_empty_pages() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(M, "BK-1", "1000").await.status, 200);
    hold(&gw, "H-1", 300).await;
    let v = gw
        .partner(
            1,
            "POST",
            "/v1/holds/H-1/void",
            Some(json!({"reference": "V-1"})),
        )
        .await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    hold(&gw, "H-2", 200).await;
    let c = gw
        .partner(
            1,
            "POST",
            "/v1/holds/H-2/capture",
            Some(json!({"reference": "C-2", "points": 150})),
        )
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    // Movements of another partner in between, which the airline must not see and which must
    // not leave it empty pages.
    for i in 0..5 {
        let b = gw
            .partner(
                2,
                "POST",
                "/v1/burn",
                Some(json!({"reference": format!("PUMP-{i}"), "member": "FC000042", "points": 10})),
            )
            .await;
        assert_eq!(b.status, 200, "{:?}", b.body);
    }

    let pages = airline_pages(&gw, 2).await;
    let lines: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["entries"].as_array().expect("entries").iter())
        .collect();
    for p in &pages {
        assert!(
            !p["entries"].as_array().expect("entries").is_empty(),
            "an empty page before the end: {pages:?}"
        );
    }
    let seen: Vec<(String, i64, i64)> = lines
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().expect("kind").to_string(),
                l["points"].as_i64().expect("points"),
                l["held"].as_i64().expect("held"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("capture".to_string(), -150, -200),
            ("hold".to_string(), 0, 200),
            ("void".to_string(), 0, -300),
            ("hold".to_string(), 0, 300),
            ("earn".to_string(), 1000, 0),
        ],
        "newest first, each movement the airline caused"
    );
    assert_eq!(pages.len(), 3, "five lines in pages of two");
    // The held points after each line follow from the changes.
    assert_eq!(lines[1]["held_after"], 200);
    assert_eq!(lines[0]["held_after"], 0);
    assert_eq!(
        lines[0]["balance_after"],
        1000 - 150,
        "the fuel burns came later"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_query_values_that_do_not_parse_answer_problem_json() {
    let gw = Gw::start().await;
    let targets = [
        "/admin/v1/members/-1",
        "/admin/v1/members/abc/statement",
        "/admin/v1/members/42/statement?limit=-1",
        "/admin/v1/members/42/statement?limit=0",
        "/admin/v1/members/42/statement?limit=1001",
        "/admin/v1/members/42/statement?limit=99999999999999999999999",
        "/admin/v1/members/42/statement?before=abc",
        "/admin/v1/members/42/statement?before=-1",
        "/admin/v1/partners/4294967296",
    ];
    for target in targets {
        let a = gw.op("GET", target, None).await;
        assert_eq!(a.status, 400, "{target}: {:?}", a.body);
        assert_eq!(
            a.headers["content-type"], "application/problem+json",
            "{target}"
        );
        assert_eq!(a.problem(), "invalid-request", "{target}: {:?}", a.body);
    }
    let a = gw
        .partner(1, "GET", "/v1/members/FF000042/statement?limit=0", None)
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (400, "invalid-request"));
    let ok = gw
        .op("GET", "/admin/v1/members/42/statement?limit=1000", None)
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_cursor_of_another_member_or_no_transaction_is_a_404_not_a_corrupt_store() {
    let gw = Gw::start().await;
    let a = gw.earn_miles(M, "BK-1", "100").await;
    assert_eq!(a.status, 200);
    let other = gw.earn_miles(43, "BK-2", "100").await;
    assert_eq!(other.status, 200);
    let foreign = other.body["transaction_id"]
        .as_str()
        .expect("id")
        .to_string();
    for before in [foreign.as_str(), "7", "18446744073709551615"] {
        let target = format!("/v1/members/FF000042/statement?before={before}");
        let page = gw.partner(1, "GET", &target, None).await;
        assert_eq!(
            (page.status.as_u16(), page.problem()),
            (404, "unknown-transaction"),
            "{before}: {:?}",
            page.body
        );
    }
}

fn batch_of_dependent_commands() -> Value {
    json!({"commands": [
        {"op": "earn", "reference": "B-E1", "member": "FF000042",
            "amount": {"value": "500", "unit": "mile"}},
        {"op": "hold", "reference": "B-H1", "member": "FF000042", "points": 200,
            "timeout_seconds": 600},
        {"op": "capture", "hold_reference": "B-H1", "reference": "B-C1", "points": 120},
        {"op": "hold", "reference": "B-H2", "member": "FF000042", "points": 50,
            "timeout_seconds": 600},
        {"op": "void", "hold_reference": "B-H2", "reference": "B-V2"},
        {"op": "reversal", "original_reference": "B-E1", "reference": "B-R1", "points": 100},
        {"op": "burn", "reference": "B-B1", "member": "FF000042", "points": 1},
        {"op": "burn", "reference": "B-B1", "member": "FF000042", "points": 1},
        {"op": "burn", "reference": "B-B1", "member": "FF000042", "points": 2}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_commands_of_a_batch_see_earlier_ones_and_a_retry_answers_as_the_first_time() {
    let gw = Gw::start().await;
    let first = gw
        .partner(1, "POST", "/v1/batch", Some(batch_of_dependent_commands()))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let statuses = |a: &Value| -> Vec<u64> {
        a["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["status"].as_u64().expect("status"))
            .collect()
    };
    // The repeated reference: the same command again is a replay, a changed one a conflict.
    assert_eq!(
        statuses(&first.body),
        vec![200, 200, 200, 200, 200, 200, 200, 200, 409]
    );
    let results = first.body["results"].as_array().expect("results");
    assert_eq!(results[7]["transaction"]["replayed"], true);
    assert_eq!(
        results[8]["problem"]["type"],
        "/problems/idempotency-conflict"
    );
    let balance = gw.partner(1, "GET", "/v1/members/FF000042", None).await;
    // 500 earned, 120 captured, 100 reversed, 1 burned; no hold left open.
    assert_eq!(
        balance.body,
        json!({"member": "FF000042", "posted": 279, "pending": 0, "available": 279})
    );

    let again = gw
        .partner(1, "POST", "/v1/batch", Some(batch_of_dependent_commands()))
        .await;
    assert_eq!(statuses(&again.body), statuses(&first.body));
    let ids = |a: &Value| -> Vec<Value> {
        a["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["transaction"]["transaction_id"].clone())
            .collect()
    };
    assert_eq!(
        ids(&again.body),
        ids(&first.body),
        "a retry is a pure replay"
    );
    for r in &again.body["results"].as_array().expect("results")[..8] {
        assert_eq!(r["transaction"]["replayed"], true, "{r}");
    }
    let after = gw.partner(1, "GET", "/v1/members/FF000042", None).await;
    assert_eq!(after.body, balance.body, "the retry changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_audits_the_running_ledger_over_http_and_from_the_cli() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(M, "BK-1", "1200").await.status, 200);
    let b = gw
        .partner(
            2,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "PUMP-1", "member": "FC000042", "points": 500})),
        )
        .await;
    assert_eq!(b.status, 200, "{:?}", b.body);

    let finance = gw.cred("FINANCE_TOKEN");
    let a = gw.bearer(&finance, "GET", "/admin/v1/audit", None).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["ok"], true, "{:?}", a.body);
    assert_eq!(a.body["points_outstanding"], 700);
    assert!(a.body["transactions"].as_u64().expect("count") >= 2);
    assert!(a.body.get("failure").is_none());

    // The same audit from the command line, against the running service.
    let cli = env!("CARGO_BIN_EXE_partners-gateway");
    let base = gw.base.clone();
    let run = move |token: String| {
        let base = base.clone();
        async move {
            tokio::process::Command::new(cli)
                .args(["audit", "--url", &base])
                .env("LEDGER_OPERATOR_TOKEN", token)
                .output()
                .await
                .expect("run the CLI")
        }
    };
    let out = run(finance).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("audit: OK; points outstanding (owed to members): 700"),
        "{stdout}"
    );
    let out = run("not-a-token".into()).await;
    assert!(!out.status.success(), "an unknown token must fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_coalition_ids_as_numbers_and_partners_their_references_as_strings() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(M, "BK-1", "100").await.status, 200);
    let op = gw.op("GET", "/admin/v1/members/42", None).await;
    assert_eq!(
        op.body,
        json!({"member_id": 42, "posted": 100, "pending": 0, "available": 100})
    );
    let st = gw.op("GET", "/admin/v1/members/42/statement", None).await;
    assert_eq!(st.body["member_id"], 42);
    assert!(st.body.get("member").is_none());
    let p = gw.partner(1, "GET", "/v1/members/FF000042", None).await;
    assert_eq!(p.body["member"], "FF000042");
    assert!(p.body.get("member_id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_cover_the_path_as_sent_and_may_be_upper_case_hex() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(M, "BK-1", "1000").await.status, 200);
    hold(&gw, "A/B:7", 100).await;
    // The hold's reference has a slash: the path is sent, and signed, percent-encoded.
    let v = gw
        .partner(
            1,
            "POST",
            "/v1/holds/A%2FB:7/void",
            Some(json!({"reference": "V-1"})),
        )
        .await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    assert_eq!(v.body["kind"], "void");

    // The same signature in upper-case hex is accepted.
    let (key, secret) = (gw.cred("SKYWAYS_KEY_ID"), gw.cred("SKYWAYS_SECRET"));
    let ts = common::now_s().to_string();
    let nonce = format!("n-{}", common::hex_random());
    let target = "/v1/members/FF000042";
    let headers: Vec<(String, String)> =
        common::sign_headers(&key, &secret, "GET", target, &ts, &nonce, b"")
            .into_iter()
            .map(|(k, v)| {
                let v = if k == "x-signature" {
                    v.to_uppercase()
                } else {
                    v
                };
                (k, v)
            })
            .collect();
    let a = gw.raw("GET", target, headers, Vec::new()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["available"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_oversize_points_amount_is_one_invalid_amount_and_changes_nothing() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(M, "BK-1", "100").await.status, 200);
    let before = gw.fingerprint(&[M]).await;
    // Inside i64, beyond it, far beyond it, negative beyond it: one answer.
    let raw = [
        "2000000000000",
        "9223372036854775807",
        "18446744073709551616",
        "1e30",
        "-1e30",
    ];
    for (i, points) in raw.iter().enumerate() {
        let body = format!(r#"{{"reference":"BIG-{i}","member":"FC000042","points":{points}}}"#);
        let bytes = body.into_bytes();
        let ts = common::now_s().to_string();
        let nonce = format!("n-{}", common::hex_random());
        let (key, secret) = (gw.cred("FUELCO_KEY_ID"), gw.cred("FUELCO_SECRET"));
        let mut headers =
            common::sign_headers(&key, &secret, "POST", "/v1/burn", &ts, &nonce, &bytes);
        headers.push(("content-type".into(), "application/json".into()));
        let a = gw.raw("POST", "/v1/burn", headers, bytes).await;
        assert_eq!(
            (a.status.as_u16(), a.problem()),
            (400, "invalid-amount"),
            "{points}: {:?}",
            a.body
        );
    }
    let op = gw
        .op(
            "POST",
            "/admin/v1/members/42/adjustments",
            Some(
                json!({"reference": "ADJ-BIG", "points": -9223372036854775808_i64, "reason": "x"}),
            ),
        )
        .await;
    assert_eq!((op.status.as_u16(), op.problem()), (400, "invalid-amount"));
    assert_eq!(gw.fingerprint(&[M]).await, before, "nothing changed");
}
