//! A kill -9 loop over HTTP: the gateway process is killed with SIGKILL while partners post
//! earns, restarted, and killed again, for several cycles. Afterwards every request answered
//! 200 is in the journal, every request left unanswered is retried with its reference, and
//! then each member's balance is exactly the sum of its requests: nothing acknowledged lost,
//! nothing applied twice. The audit passes.
//!
//! CI runs 3 cycles; the soak form is `KILL_CYCLES=40 cargo test -p partners-gateway --test
//! kill_loop -- --nocapture`.

mod common;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MEMBERS: u64 = 20;

/// A request sent: its reference, its member, and its transaction id if it was answered 200.
type Sent = (String, u64, Option<String>);
const CLIENTS: u64 = 8;

/// One earn, signed as SkyWays: `Some(tx id)` on 200, `None` when no answer came (or not a
/// 200: a 503 while the gateway stops, say).
async fn earn(
    http: &reqwest::Client,
    base: &str,
    creds: &HashMap<String, String>,
    reference: &str,
    member: u64,
) -> Option<String> {
    let body = serde_json::to_vec(
        &json!({"reference": reference, "member": format!("FF{member:06}"),
        "amount": {"value": "10", "unit": "mile"}}),
    )
    .unwrap();
    let headers = common::sign_headers(
        &creds["SKYWAYS_KEY_ID"],
        &creds["SKYWAYS_SECRET"],
        "POST",
        "/v1/earn",
        &common::now_s().to_string(),
        &format!("n-{}", common::hex_random()),
        &body,
    );
    let mut req = http
        .post(format!("{base}/v1/earn"))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(10))
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = req.send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    let v: Value = r.json().await.ok()?;
    v["transaction_id"].as_str().map(str::to_string)
}

async fn posted(http: &reqwest::Client, base: &str, token: &str, m: u64) -> i64 {
    let v: Value = http
        .get(format!("{base}/admin/v1/members/{m}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["posted"].as_i64().expect("posted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_and_nothing_applies_twice_across_kill_9_cycles() {
    let cycles: u64 = std::env::var("KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let fresh = common::Fresh::new();
    let base = fresh.base.clone();
    let http = reqwest::Client::new();
    // Every request sent: (reference, member), and whether it was answered 200.
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let mut before: HashMap<u64, i64> = HashMap::new();
    for cycle in 0..cycles {
        let (mut child, creds) = fresh.start().await;
        let creds = Arc::new(creds);
        if cycle == 0 {
            for m in 1..=MEMBERS {
                before.insert(m, posted(&http, &base, &creds["OPERATOR_TOKEN"], m).await);
            }
        }
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (http, base, creds, sent) =
                (http.clone(), base.clone(), creds.clone(), sent.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let reference = format!("K{cycle}-{c}-{i}");
                    let member = 1 + (c * 7 + i) % MEMBERS;
                    let answer = earn(&http, &base, &creds, &reference, member).await;
                    let stop = answer.is_none();
                    sent.lock().unwrap().push((reference, member, answer));
                    if stop {
                        return;
                    }
                }
            }));
        }
        // Kill at a different moment each cycle, after some requests were answered.
        let wait_ms = 150 + (cycle * 173) % 500;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    }
    let (mut child, creds) = fresh.start().await;
    let sent = sent.lock().unwrap().clone();
    let acknowledged = sent.iter().filter(|s| s.2.is_some()).count();
    assert!(
        acknowledged >= cycles as usize,
        "some requests were answered each cycle"
    );
    // Every acknowledged request is in the journal, as the same transaction.
    for (reference, _, answer) in sent.iter().filter(|s| s.2.is_some()) {
        let target = format!("/v1/transactions/{reference}");
        let headers = common::sign_headers(
            &creds["SKYWAYS_KEY_ID"],
            &creds["SKYWAYS_SECRET"],
            "GET",
            &target,
            &common::now_s().to_string(),
            &format!("n-{}", common::hex_random()),
            b"",
        );
        let mut req = http.get(format!("{base}{target}"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert_eq!(
            v["transaction_id"].as_str(),
            answer.as_deref(),
            "acknowledged {reference} lost or changed: {v}"
        );
    }
    // Every unanswered request, retried with its reference, is applied once in all.
    let unanswered: Vec<&Sent> = sent.iter().filter(|s| s.2.is_none()).collect();
    for (reference, member, _) in &unanswered {
        assert!(
            earn(&http, &base, &creds, reference, *member)
                .await
                .is_some(),
            "the retry of {reference} succeeds"
        );
    }
    for m in 1..=MEMBERS {
        let requests = sent.iter().filter(|s| s.1 == m).count() as i64;
        assert_eq!(
            posted(&http, &base, &creds["OPERATOR_TOKEN"], m).await - before[&m],
            requests * 10,
            "member {m}: each of its {requests} requests applied exactly once"
        );
    }
    let audit: Value = http
        .get(format!("{base}/admin/v1/audit"))
        .bearer_auth(&creds["OPERATOR_TOKEN"])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["ok"], true, "{audit}");
    eprintln!(
        "{cycles} kill -9 cycles: {} requests, {acknowledged} acknowledged, {} retried after",
        sent.len(),
        unanswered.len()
    );
    child.start_kill().ok();
}
