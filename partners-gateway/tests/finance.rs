//! Finance over HTTP on both write paths, as the finance role uses it: the trial balance at
//! zero, liability, settlements tied to the trial balance, a period closed with its checkpoint
//! and digest (and refused when not over or closed already), breakage overrides, revenue,
//! reconciliation of a partner's file, and streamed exports.

mod common;

use common::Gw;
use partners_gateway::config::WriterPath;
use serde_json::{json, Value};

async fn finance(gw: &Gw, method: &str, target: &str, body: Option<Value>) -> common::Answer {
    let token = gw.cred("FINANCE_TOKEN");
    gw.bearer(&token, method, target, body).await
}

async fn get_ok(gw: &Gw, target: &str) -> Value {
    let r = finance(gw, "GET", target, None).await;
    assert_eq!(r.status, 200, "{target}: {:?}", r.body);
    r.body
}

fn month_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .format("%Y-%m")
        .to_string()
}

async fn run(writer: WriterPath) {
    let gw = Gw::start_with(|c| c.writer = writer).await;
    let earn = gw.earn_miles(7, "FIN-1", "1000").await;
    assert_eq!(earn.status, 200, "{:?}", earn.body);
    let earned = earn.body["points"].as_i64().unwrap();
    let burn = gw
        .partner(
            2,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "FIN-B", "member": "FC000007", "points": 100})),
        )
        .await;
    assert_eq!(burn.status, 200, "{:?}", burn.body);
    let month = month_of(earn.body["committed_at_ms"].as_i64().unwrap());

    // The trial balance sums to zero, now and before anything was posted.
    for target in [
        "/admin/v1/finance/trial-balance".to_string(),
        "/admin/v1/finance/trial-balance?at_ms=1000".to_string(),
    ] {
        let tb = get_ok(&gw, &target).await;
        assert_eq!(tb["total_points"], "0", "{tb}");
        for v in tb["total_money"].as_object().unwrap().values() {
            assert!(v.as_str().unwrap().parse::<f64>().unwrap() == 0.0, "{tb}");
        }
    }
    let tb = get_ok(&gw, "/admin/v1/finance/trial-balance").await;
    let line = |name: &str| {
        tb["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["account"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {tb}"))
    };
    let members: i64 = line("members")["points"].as_str().unwrap().parse().unwrap();

    // The liability is what members hold (no one is below zero here).
    let l = get_ok(&gw, "/admin/v1/finance/liability").await;
    assert_eq!(l["points"].as_i64().unwrap(), members, "{l}");
    assert!(l["by_issuer"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["group"] == "partner/1" && g["points"].as_i64().unwrap() >= earned - 100));

    // Settlement: the airline owes for what it issued; every statement ties to its accounts.
    let s = get_ok(
        &gw,
        &format!("/admin/v1/finance/settlements?period={month}"),
    )
    .await;
    let airline = s
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["partner"] == 1)
        .cloned()
        .expect("airline statement");
    assert!(
        airline["issued_points"].as_i64().unwrap() >= earned,
        "{airline}"
    );
    assert_eq!(airline["direction"], "partner-pays");
    for x in s.as_array().unwrap() {
        assert_eq!(x["net"], x["account_movement"], "{x}");
    }
    let unknown = finance(
        &gw,
        "GET",
        &format!("/admin/v1/finance/settlements?period={month}&partner=999"),
        None,
    )
    .await;
    assert_eq!(unknown.status, 404, "{:?}", unknown.body);

    // The finance role closes a period that is over; not one that is not, nor one twice.
    let closed = finance(
        &gw,
        "POST",
        "/admin/v1/finance/periods",
        Some(json!({"period": "2025-12"})),
    )
    .await;
    assert_eq!(closed.status, 200, "{:?}", closed.body);
    assert_eq!(closed.body["period"], "2025-12");
    assert_eq!(closed.body["digest"].as_str().unwrap().len(), 64);
    let again = finance(
        &gw,
        "POST",
        "/admin/v1/finance/periods",
        Some(json!({"period": "2025-11"})),
    )
    .await;
    assert_eq!(
        (again.status.as_u16(), again.problem()),
        (422, "period-refused"),
        "{:?}",
        again.body
    );
    let future = finance(
        &gw,
        "POST",
        "/admin/v1/finance/periods",
        Some(json!({"period": "2999-01"})),
    )
    .await;
    assert_eq!(
        (future.status.as_u16(), future.problem()),
        (422, "period-refused")
    );
    let retry = finance(
        &gw,
        "POST",
        "/admin/v1/finance/periods",
        Some(json!({"period": "2025-12"})),
    )
    .await;
    assert_eq!(
        retry.status, 200,
        "a retry answers as the first did: {:?}",
        retry.body
    );
    // The checkpoint (the cluster path seals within a second) and a final report: the same
    // digest every time it is read.
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = get_ok(&gw, "/admin/v1/finance/periods").await;
        if listed[0]["checkpoint"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(listed[0]["checkpoint"].is_string(), "{listed}");
    let a = get_ok(&gw, "/admin/v1/finance/periods/2025-12").await;
    // Redemptions since change the prices in force; a closed period's report stays as it was.
    let later = gw
        .partner(
            1,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "FIN-B1", "member": "FF000007", "points": 10})),
        )
        .await;
    assert_eq!(later.status, 200, "{:?}", later.body);
    let b = get_ok(&gw, "/admin/v1/finance/periods/2025-12").await;
    assert_eq!(a, b, "a closed period's report is final");
    assert_ne!(
        get_ok(&gw, "/admin/v1/finance/liability").await["redemption_price"],
        a["liability"]["redemption_price"],
        "while the live liability moved with the redemption"
    );
    assert_eq!(a["checkpoint"], listed[0]["checkpoint"]);
    let open = finance(&gw, "GET", "/admin/v1/finance/periods/2026-01", None).await;
    assert_eq!(open.status, 404);

    // Elsewhere the finance role still only reads.
    let denied = finance(&gw, "POST", "/admin/v1/members", Some(json!({}))).await;
    assert_eq!(denied.status, 403, "{:?}", denied.body);

    // Breakage: an override, with its reason, is in force at once.
    let o = finance(
        &gw,
        "POST",
        "/admin/v1/finance/breakage/overrides",
        Some(json!({"rate": "0.2", "reason": "actuarial review"})),
    )
    .await;
    assert_eq!(o.status, 200, "{:?}", o.body);
    let est = get_ok(&gw, "/admin/v1/finance/breakage").await;
    assert_eq!(est["override_in_force"]["reason"], "actuarial review");
    assert_eq!(est["override_in_force"]["author"], "demo-finance");
    assert_eq!(est["rate"], "0.2", "{est}");
    let bad = finance(
        &gw,
        "POST",
        "/admin/v1/finance/breakage/overrides",
        Some(json!({"rate": "1.5", "reason": "x"})),
    )
    .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);

    // Revenue: this month's row recognises part of what was billed, in proportion.
    let rev = get_ok(&gw, "/admin/v1/finance/revenue").await;
    let eur = rev
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["currency"] == "EUR")
        .expect("EUR schedule");
    let last = eur["rows"].as_array().unwrap().last().unwrap();
    let num = |v: &Value| v.as_str().unwrap().parse::<f64>().unwrap();
    assert!(
        num(&last["billed"]) > 0.0 && num(&last["recognised"]) > 0.0,
        "{last}"
    );
    assert!(
        (num(&last["opening"]) + num(&last["billed"])
            - num(&last["recognised"])
            - num(&last["closing"]))
        .abs()
            < 1e-9,
        "{last}"
    );

    // Reconciliation of the airline's file: one matched, one the ledger lacks, one whose
    // points differ; the ledger's other airline postings are missing from the file.
    let file = format!(
        "reference,time,member_reference,amount,points\nFIN-1,,FF000007,1000,{earned}\nFIN-X,,FF000007,5,5\n"
    );
    let rec = finance(
        &gw,
        "POST",
        "/admin/v1/finance/reconciliations",
        Some(json!({"partner": 1, "period": month, "csv": file})),
    )
    .await;
    assert_eq!(rec.status, 200, "{:?}", rec.body);
    assert_eq!(rec.body["matched"], json!(["FIN-1"]), "{:?}", rec.body);
    assert_eq!(rec.body["missing_from_ledger"][0]["reference"], "FIN-X");
    let wrong = finance(
        &gw,
        "POST",
        "/admin/v1/finance/reconciliations",
        Some(json!({"partner": 1, "period": month, "csv": "reference,points\nFIN-1,1\n"})),
    )
    .await;
    assert_eq!(
        wrong.body["differences"][0]["field"], "points",
        "{:?}",
        wrong.body
    );
    let unreadable = finance(
        &gw,
        "POST",
        "/admin/v1/finance/reconciliations",
        Some(json!({"partner": 1, "period": month, "csv": "no,header\n1,2\n"})),
    )
    .await;
    assert_eq!(
        (unreadable.status.as_u16(), unreadable.problem()),
        (422, "file-invalid")
    );

    // Exports stream: a CSV header and a line per transaction; NDJSON a JSON object a line.
    let csv = finance(&gw, "GET", "/admin/v1/finance/exports/journal", None).await;
    assert_eq!(csv.status, 200);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.body.as_str().unwrap().to_string();
    assert!(text.starts_with("tx,at,kind,scope,reference,"), "{text}");
    assert!(
        text.contains(",FIN-1,") && text.contains(",period-close,"),
        "{text}"
    );
    let nd = finance(
        &gw,
        "GET",
        "/admin/v1/finance/exports/postings?format=ndjson",
        None,
    )
    .await;
    let rows: Vec<Value> = nd
        .body
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let points: i64 = rows
        .iter()
        .filter(|r| r["asset"] == "points")
        .map(|r| r["amount"].as_str().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(points, 0, "postings balance");
    let stmt = finance(
        &gw,
        "GET",
        "/admin/v1/finance/exports/statement?member=999999999",
        None,
    )
    .await;
    assert_eq!(stmt.status, 404, "{:?}", stmt.body);

    // The CLI reads the same reports from the running service.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_partners-gateway"))
        .args([
            "finance",
            "settlements",
            "--with",
            &format!("period={month}"),
            "--url",
            &gw.base,
        ])
        .env("LEDGER_OPERATOR_TOKEN", gw.cred("FINANCE_TOKEN"))
        .output()
        .await
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let api = get_ok(
        &gw,
        &format!("/admin/v1/finance/settlements?period={month}"),
    )
    .await;
    assert_eq!(cli, api, "the CLI prints what the API answers");
}

#[tokio::test]
async fn finance_over_http_on_the_single_writer() {
    run(WriterPath::Single).await;
}

#[tokio::test]
async fn finance_over_http_on_the_cluster_path() {
    run(WriterPath::Cluster).await;
}
