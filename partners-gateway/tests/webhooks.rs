//! Webhooks end to end against receivers this test runs on loopback: signed deliveries in
//! commit order, retries against a receiver that fails and then succeeds, the delivery log,
//! replay, stopping, a partner's own subscription, refusals; and the receiver recipe of
//! `docs/webhooks.md`, run as written.

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::Gw;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a receiver saw: (headers, body) of each request, and how many to fail first.
#[derive(Default)]
struct Seen {
    requests: Vec<(HeaderMap, Bytes, String)>,
    fail_first: usize,
}

/// A receiver on loopback; its URL.
async fn receiver(seen: Arc<Mutex<Seen>>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                async move {
                    let mut s = seen.lock().unwrap();
                    let fail = s.fail_first > 0;
                    if fail {
                        s.fail_first -= 1;
                    }
                    s.requests.push((headers, body, uri.to_string()));
                    if fail {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook?from=gateway")
}

/// Waits until `f` holds, or fails after 30 s.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn verified(secret: &str, headers: &HeaderMap, body: &[u8], uri: &str) -> bool {
    let h = |n: &str| headers[n].to_str().unwrap().to_string();
    let (path, query) = uri
        .split_once('?')
        .map_or((uri, None), |(p, q)| (p, Some(q)));
    let canonical = partners_gateway::signing::canonical_string(
        "POST",
        path,
        query,
        &h("x-timestamp"),
        &h("x-nonce"),
        body,
    );
    partners_gateway::signing::sign(secret, &canonical) == h("x-signature")
}

/// Successful deliveries' events, in arrival order.
fn delivered(seen: &Arc<Mutex<Seen>>, fail_first: usize) -> Vec<Value> {
    let s = seen.lock().unwrap();
    s.requests
        .iter()
        .skip(fail_first)
        .map(|(_, b, _)| serde_json::from_slice(b).unwrap())
        .collect()
}

#[tokio::test]
async fn events_are_delivered_signed_in_order_with_retries_replay_and_a_log() {
    let gw = Gw::start().await;
    let seen = Arc::new(Mutex::new(Seen {
        fail_first: 2,
        ..Seen::default()
    }));
    let url = receiver(seen.clone()).await;

    // Refusals first: a bad URL, an unknown type, a partner asking for another's events.
    for (body, status) in [
        (
            json!({"url": "ftp://x/hook", "events": ["points.earned"]}),
            422,
        ),
        (json!({"url": url, "events": ["points.mined"]}), 400),
        (json!({"url": url, "events": []}), 422),
    ] {
        let r = gw.op("POST", "/admin/v1/webhooks", Some(body)).await;
        assert_eq!(r.status, status, "{:?}", r.body);
    }
    let r = gw
        .partner(
            1,
            "POST",
            "/v1/webhooks",
            Some(json!({"url": url, "events": ["period.closed"]})),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.problem()),
        (422, "webhook-refused"),
        "{:?}",
        r.body
    );

    let created = gw
        .op(
            "POST",
            "/admin/v1/webhooks",
            Some(json!({"url": url, "events": ["points.earned", "points.burned"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["webhook"]["id"].as_u64().unwrap();
    let secret = created.body["secret"].as_str().unwrap().to_string();
    // A partner's own subscription, to a second receiver.
    let theirs = Arc::new(Mutex::new(Seen::default()));
    let their_url = receiver(theirs.clone()).await;
    let p = gw
        .partner(
            1,
            "POST",
            "/v1/webhooks",
            Some(json!({"url": their_url, "events": ["points.earned"]})),
        )
        .await;
    assert_eq!(p.status, 201, "{:?}", p.body);
    let their_secret = p.body["secret"].as_str().unwrap().to_string();

    let mut refs = Vec::new();
    for (i, miles) in ["100", "200", "300"].iter().enumerate() {
        let r = gw.earn_miles(5, &format!("WH-{i}"), miles).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        refs.push(r.body["transaction_id"].as_str().unwrap().to_string());
    }
    let fuel = gw
        .partner(
            2,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "WH-B", "member": "FC000005", "points": 10})),
        )
        .await;
    assert_eq!(fuel.status, 200, "{:?}", fuel.body);
    refs.push(fuel.body["transaction_id"].as_str().unwrap().to_string());

    // The first two attempts fail; the dispatcher retries after 1 s and 2 s, then delivers
    // everything in commit order.
    until("four deliveries after two failures", || {
        seen.lock().unwrap().requests.len() >= 6
    })
    .await;
    let events = delivered(&seen, 2);
    assert_eq!(
        events
            .iter()
            .map(|e| e["transaction_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        refs,
        "every event once, in commit order"
    );
    assert_eq!(events[0]["type"], "points.earned");
    assert_eq!(events[3]["type"], "points.burned");
    assert_eq!(events[0]["member_id"], 5);
    {
        let s = seen.lock().unwrap();
        for (h, b, uri) in &s.requests {
            assert!(verified(&secret, h, b, uri), "every delivery is signed");
            assert_eq!(h["x-webhook-id"].to_str().unwrap(), id.to_string());
        }
        // The retried attempts carried the same event.
        assert_eq!(s.requests[0].0["x-nonce"], s.requests[2].0["x-nonce"]);
    }
    let log = gw
        .op("GET", &format!("/admin/v1/webhooks/{id}/deliveries"), None)
        .await;
    assert_eq!(log.status, 200);
    assert_eq!(log.body["delivered"], 4);
    let outcomes: Vec<(String, u64)> = log.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|d| {
            (
                d["outcome"].as_str().unwrap().to_string(),
                d["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes[..3],
        [
            ("failed".into(), 1),
            ("failed".into(), 2),
            ("delivered".into(), 3)
        ]
    );

    // The partner's subscription: only its own earns, the member by its reference.
    until("the partner's deliveries", || {
        theirs.lock().unwrap().requests.len() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let theirs_events = delivered(&theirs, 0);
    assert_eq!(
        theirs_events.len(),
        3,
        "the fuel partner's burn is not the airline's"
    );
    assert_eq!(theirs_events[0]["member"], "FF000005");
    assert!(theirs_events[0].get("member_id").is_none());
    {
        let s = theirs.lock().unwrap();
        assert!(verified(
            &their_secret,
            &s.requests[0].0,
            &s.requests[0].1,
            &s.requests[0].2
        ));
    }
    let listed = gw.partner(1, "GET", "/v1/webhooks", None).await;
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        1,
        "a partner sees only its own"
    );
    let other = gw
        .partner(
            2,
            "GET",
            &format!("/v1/webhooks/{}/deliveries", p.body["webhook"]["id"]),
            None,
        )
        .await;
    assert_eq!(other.status, 404);

    // Replay from the second event: it and the ones after come again, same ids.
    let second = events[1]["id"].as_str().unwrap().to_string();
    let r = gw
        .op(
            "POST",
            &format!("/admin/v1/webhooks/{id}/replay"),
            Some(json!({"from_event": second})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    until("the replay", || seen.lock().unwrap().requests.len() >= 9).await;
    let again: Vec<String> = delivered(&seen, 6)
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        again,
        events[1..]
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    );

    // Stopped: nothing more.
    let r = gw
        .op("POST", &format!("/admin/v1/webhooks/{id}/disable"), None)
        .await;
    assert_eq!(r.body["disabled"], true);
    let before = seen.lock().unwrap().requests.len();
    assert_eq!(gw.earn_miles(5, "WH-after", "100").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(seen.lock().unwrap().requests.len(), before);
}

/// The receiver of `docs/webhooks.md`, run as written: it verifies each delivery's signature
/// and records its event once, and refuses a forged one.
#[tokio::test]
async fn the_documented_receiver_verifies_and_records_deliveries() {
    let gw = Gw::start().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let created = gw
        .op(
            "POST",
            "/admin/v1/webhooks",
            Some(json!({"url": format!("http://127.0.0.1:{port}/events"), "events": ["points.earned"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_string();
    let script = common::shell_blocks(
        "docs/webhooks.md",
        "<!-- receiver: begin -->",
        "<!-- receiver: end -->",
    );
    let dir = gw.dir.path().to_path_buf();
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .env("WEBHOOK_SECRET", &secret)
        .env("PORT", port.to_string())
        .kill_on_drop(true)
        .spawn()
        .expect("the receiver starts");
    let log = dir.join("events.log");
    // Wait for the receiver to listen.
    until("the receiver", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let r = gw.earn_miles(9, "DOC-1", "500").await;
    assert_eq!(r.status, 200);
    let id = format!("{}-0", r.body["transaction_id"].as_str().unwrap());
    until("the receiver's record", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(&id))
    })
    .await;
    // A forged delivery is refused and not recorded.
    let forged = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/events"))
        .header("x-timestamp", (chrono::Utc::now().timestamp()).to_string())
        .header("x-nonce", "1-0")
        .header("x-signature", "00")
        .body(r#"{"id":"1-0","type":"points.earned"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.lines().any(|l| l.starts_with("1-0 ")), "{text}");
    assert_eq!(text.matches(&id).count(), 1, "{text}");
    child.kill().await.ok();
}

/// A receiver that takes a little time per delivery and counts every event id it acknowledged.
async fn counting_receiver(seen: Arc<Mutex<Vec<String>>>) -> String {
    let app = axum::Router::new().route(
        "/count",
        axum::routing::post(move |body: Bytes| {
            let seen = seen.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let e: Value = serde_json::from_slice(&body).unwrap();
                seen.lock()
                    .unwrap()
                    .push(e["id"].as_str().unwrap().to_string());
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/count")
}

/// Every event arrives across a kill -9 of the gateway mid-delivery, each member's in commit
/// order; the round in flight arrives again, with the same ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_across_a_kill_9() {
    let fresh = common::Fresh::new();
    let base = fresh.base.clone();
    let (mut gw, creds) = fresh.start().await;
    let http = reqwest::Client::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = counting_receiver(seen.clone()).await;
    let created: Value = http
        .post(format!("{base}/admin/v1/webhooks"))
        .bearer_auth(&creds["OPERATOR_TOKEN"])
        .json(&json!({"url": url, "events": ["points.earned"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(created["webhook"]["id"].is_u64(), "{created}");
    let mut expected = Vec::new();
    for i in 0..80 {
        let member = format!("FF{:06}", 1 + i % 20);
        let tx =
            common::signed_earn(&http, &base, &creds, &format!("K9-{i}"), &member, "100").await;
        expected.push(format!("{tx}-0"));
    }
    until("some deliveries", || seen.lock().unwrap().len() >= 20).await;
    gw.start_kill().unwrap();
    gw.wait().await.unwrap();
    let at_kill = seen.lock().unwrap().len();
    assert!(at_kill < expected.len(), "killed mid-delivery");
    let (mut gw, _) = fresh.start().await;
    until("every event", || {
        let s = seen.lock().unwrap();
        expected.iter().all(|id| s.contains(id))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = seen.lock().unwrap().clone();
    let distinct: std::collections::HashSet<&String> = s.iter().collect();
    assert_eq!(distinct.len(), expected.len(), "no event invented");
    // The round in flight at the kill goes again: no event arrives more than twice, and a
    // receiver that dedupes on the id (as the documented one does) takes each once.
    for id in &distinct {
        let n = s.iter().filter(|x| x == id).count();
        assert!(n <= 2, "{id} arrived {n} times");
    }
    // Each member's events arrive in commit order (their first arrivals).
    for m in 0..20 {
        let mine: Vec<&String> = expected.iter().skip(m).step_by(20).collect();
        let mut firsts: Vec<&String> = Vec::new();
        for id in s.iter().filter(|x| mine.contains(x)) {
            if !firsts.contains(&id) {
                firsts.push(id);
            }
        }
        assert_eq!(firsts, mine, "member {}'s events in commit order", m + 1);
    }
    gw.start_kill().ok();
}
