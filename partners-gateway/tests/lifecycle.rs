//! A member's lifecycle over HTTP, on both write paths: suspension and reinstatement, a merge
//! that moves points, a hold, the profile and the partner cards to the survivor (the audit
//! passing after it), and an erasure that leaves no personal data in the store's files while
//! the books verify as before.

mod common;

use common::Gw;
use partners_gateway::config::WriterPath;
use serde_json::{json, Value};
use std::path::Path;

async fn audit_ok(gw: &Gw) {
    let a = gw.op("GET", "/admin/v1/audit", None).await;
    assert_eq!(
        (a.status.as_u16(), &a.body["ok"]),
        (200, &json!(true)),
        "{:?}",
        a.body
    );
}

async fn posted(gw: &Gw, m: u64) -> i64 {
    gw.op("GET", &format!("/admin/v1/members/{m}"), None)
        .await
        .body["posted"]
        .as_i64()
        .expect("posted")
}

async fn standing(gw: &Gw, m: u64, body: Value) -> common::Answer {
    gw.op(
        "POST",
        &format!("/admin/v1/members/{m}/standing"),
        Some(body),
    )
    .await
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else if std::fs::read(&p)
                .expect("read file")
                .windows(needle.len())
                .any(|w| w == needle)
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_the_single_writer() {
    lifecycle(WriterPath::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_the_cluster_path() {
    lifecycle(WriterPath::Cluster).await;
}

async fn lifecycle(writer: WriterPath) {
    let gw = Gw::start_with(|c| c.writer = writer).await;

    // Suspension: the partner's earn is refused until the member is reinstated.
    assert_eq!(gw.earn_miles(7, "L-1", "1000").await.status, 200);
    let s = standing(
        &gw,
        7,
        json!({"reference": "s7", "standing": "suspended", "reason": "card reported stolen"}),
    )
    .await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert_eq!(s.body["standing"], "suspended");
    let refused = gw.earn_miles(7, "L-2", "10").await;
    assert_eq!(
        (refused.status.as_u16(), refused.problem()),
        (422, "member-not-active"),
        "{:?}",
        refused.body
    );
    let bad = standing(
        &gw,
        7,
        json!({"reference": "s7b", "standing": "suspended", "reason": "again"}),
    )
    .await;
    assert_eq!(
        (bad.status.as_u16(), bad.problem()),
        (422, "lifecycle-refused")
    );
    let back = standing(
        &gw,
        7,
        json!({"reference": "r7", "standing": "active", "reason": "card found"}),
    )
    .await;
    assert_eq!(back.body["standing"], "active", "{:?}", back.body);
    assert_eq!(gw.earn_miles(7, "L-2", "10").await.status, 200);

    // A merge: member 42 (points, an open hold, a profile) into member 7 (no profile).
    assert_eq!(gw.earn_miles(42, "L-3", "2000").await.status, 200);
    let hold = gw
        .partner(
            1,
            "POST",
            "/v1/holds",
            Some(
                json!({"reference": "L-AWARD", "member": "FF000042", "points": 300,
                "timeout_seconds": 3600}),
            ),
        )
        .await;
    assert_eq!(hold.status, 200, "{:?}", hold.body);
    let p = gw
        .op(
            "PUT",
            "/admin/v1/members/42/profile",
            Some(json!({"name": "Reza Karimi", "city": "Shiraz"})),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    let (p7, p42) = (posted(&gw, 7).await, posted(&gw, 42).await);
    let merge = gw
        .op(
            "POST",
            "/admin/v1/members/42/merge",
            Some(json!({"reference": "m42", "into_id": 7, "reason": "one person, two cards"})),
        )
        .await;
    assert_eq!(merge.status, 200, "{:?}", merge.body);
    assert_eq!(merge.body["references_moved"], 3, "{:?}", merge.body);
    assert_eq!(merge.body["profile_moved"], true);
    assert_eq!(posted(&gw, 7).await, p7 + p42);
    assert_eq!(posted(&gw, 42).await, 0);
    let st = gw.op("GET", "/admin/v1/members/42/standing", None).await;
    assert_eq!(
        (&st.body["standing"], &st.body["merged_into"]),
        (&json!("merged"), &json!(7))
    );
    let again = gw
        .op(
            "POST",
            "/admin/v1/members/42/merge",
            Some(json!({"reference": "m42", "into_id": 7, "reason": "one person, two cards"})),
        )
        .await;
    assert_eq!(again.status, 200, "a retry answers the same merge");
    assert_eq!(again.body["transaction"]["replayed"], true);
    // The old card earns for the survivor; the partner sees the survivor's balance on it.
    let e = gw.earn_miles(42, "L-4", "100").await;
    assert_eq!(e.status, 200, "{:?}", e.body);
    assert_eq!(posted(&gw, 7).await, p7 + p42 + 100);
    let seen = gw.partner(1, "GET", "/v1/members/FF000042", None).await;
    assert_eq!(seen.body["posted"], p7 + p42 + 100, "{:?}", seen.body);
    // The moved hold is the survivor's now.
    let cap = gw
        .partner(
            1,
            "POST",
            "/v1/holds/L-AWARD/capture",
            Some(json!({"reference": "L-CAP"})),
        )
        .await;
    assert_eq!(cap.status, 200, "{:?}", cap.body);
    assert_eq!(posted(&gw, 7).await, p7 + p42 + 100 - 300);
    let prof = gw.op("GET", "/admin/v1/members/7/profile", None).await;
    assert_eq!(prof.body["name"], "Reza Karimi");
    audit_ok(&gw).await;

    // Erasure of member 9: closed, its profile and cards gone, its books kept.
    let secrets = [
        "Shirin Farahani",
        "shirin.f@example.ir",
        "+989127654321",
        "Tabriz",
    ];
    assert_eq!(gw.earn_miles(9, "L-5", "500").await.status, 200);
    let p = gw
        .op(
            "PUT",
            "/admin/v1/members/9/profile",
            Some(
                json!({"name": secrets[0], "email": secrets[1], "phone": secrets[2],
                "city": secrets[3], "birth_date": "1988-06-01"}),
            ),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    let before = posted(&gw, 9).await;
    let e = gw
        .op(
            "POST",
            "/admin/v1/members/9/erasure",
            Some(json!({"reference": "er9", "reason": "request #4411 of 2026-11-30"})),
        )
        .await;
    assert_eq!(e.status, 200, "{:?}", e.body);
    assert_eq!(
        (
            &e.body["key_destroyed"],
            &e.body["profile_deleted"],
            &e.body["links_removed"]
        ),
        (&json!(true), &json!(true), &json!(3)),
        "{:?}",
        e.body
    );
    assert!(e.body["closed_by"].is_string(), "{:?}", e.body);
    let record = gw.op("GET", "/admin/v1/members/9/erasure", None).await;
    assert_eq!(record.body, e.body, "the erasure is recorded");
    let prof = gw.op("GET", "/admin/v1/members/9/profile", None).await;
    assert_eq!(prof.status, 200);
    assert!(prof.body.get("name").is_none(), "{:?}", prof.body);
    let card = gw.earn_miles(9, "L-6", "10").await;
    assert_eq!(card.status, 404, "the card is unlinked: {:?}", card.body);
    assert_eq!(
        posted(&gw, 9).await,
        before,
        "the programme keeps the points (on_close keep)"
    );
    let stmt = gw.op("GET", "/admin/v1/members/9/statement", None).await;
    assert_eq!(stmt.status, 200, "the pseudonymous books stay");
    audit_ok(&gw).await;

    let dir = gw.stop().await;
    let data = dir.path().join("data");
    for s in secrets {
        assert_eq!(
            files_holding(&data, s.as_bytes()),
            Vec::<String>::new(),
            "{s:?} is in the store's files"
        );
    }
    // No key file holds an entry for member 9 any more.
    for f in std::fs::read_dir(data.join("member-keys")).expect("key files") {
        let bytes = std::fs::read(f.expect("entry").path()).expect("read");
        assert!(
            bytes.chunks(40).all(|c| c[..8] != 9u64.to_be_bytes()),
            "member 9's key is destroyed"
        );
    }
    // Restarted on the same files, the books verify as before.
    let mut config = partners_gateway::config::Config::for_tests(&data);
    config.writer = writer;
    let gw = Gw::start_in(dir, config).await;
    audit_ok(&gw).await;
    assert_eq!(posted(&gw, 9).await, before);
}
