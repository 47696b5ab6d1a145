//! Notifications over HTTP against a fake SMS provider the test starts on loopback: messages
//! from events in each member's language (Persian right-to-left safe, in Persian digits),
//! consent blocking a send, retries when the provider fails, caps, quiet hours, the daily
//! schedule (a birthday, points about to expire), and a broadcast to a segment.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{Datelike, Timelike};
use common::Gw;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the fake provider saw, how many requests it still refuses, how long it takes to answer
/// each, and the most it held at once.
#[derive(Default)]
struct Fake {
    got: Vec<(HeaderMap, Value)>,
    refuse: u32,
    delay_ms: u64,
    in_flight: u32,
    in_flight_max: u32,
}

type Shared = Arc<Mutex<Fake>>;

async fn sms(State(s): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let delay = {
        let mut f = s.lock().unwrap();
        if f.refuse > 0 {
            f.refuse -= 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        f.in_flight += 1;
        f.in_flight_max = f.in_flight_max.max(f.in_flight);
        f.delay_ms
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut f = s.lock().unwrap();
    f.in_flight -= 1;
    f.got
        .push((headers, serde_json::from_str(&body).expect("JSON body")));
    StatusCode::ACCEPTED
}

async fn fake_provider() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/sms", post(sms))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/sms"), shared)
}

/// Waits (at most 20 s) until `f` holds of the provider's requests.
async fn until(shared: &Shared, what: &str, f: impl Fn(&[(HeaderMap, Value)]) -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f(&shared.lock().unwrap().got) {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Member `m`'s logged outcomes, newest first, once there are `n`.
async fn outcomes(gw: &Gw, m: u64, n: usize) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let r = gw
            .op("GET", &format!("/admin/v1/members/{m}/notifications"), None)
            .await;
        let v = r.body.as_array().cloned().unwrap_or_default();
        if v.len() >= n {
            return v;
        }
        assert!(
            Instant::now() < end,
            "member {m}: {n} outcomes not logged: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn texts_to(got: &[(HeaderMap, Value)], phone: &str) -> Vec<String> {
    got.iter()
        .filter(|(_, b)| b["to"] == phone)
        .map(|(_, b)| b["text"].as_str().unwrap().to_string())
        .collect()
}

/// Member `m`'s profile, and its consent to SMS granted or not.
async fn profile_with_consent(gw: &Gw, m: u64, profile: Value, consent: bool) {
    let r = gw
        .op(
            "PUT",
            &format!("/admin/v1/members/{m}/profile"),
            Some(profile),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let c = gw
        .op(
            "PUT",
            &format!("/admin/v1/members/{m}/consent/sms"),
            Some(json!({"granted": consent, "source": "app settings"})),
        )
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
}

/// A segment of the members living in `city`, and a broadcast to it by SMS in `texts`.
async fn broadcast_to_city(gw: &Gw, city: &str, texts: Value) {
    let seg = gw
        .op(
            "POST",
            "/admin/v1/segments",
            Some(json!({"name": city, "reason": "a broadcast", "rules": {"cities": [city]}})),
        )
        .await;
    assert_eq!(seg.status, 201, "{:?}", seg.body);
    let b = gw
        .op(
            "POST",
            "/admin/v1/notifications/broadcasts",
            Some(
                json!({"name": city, "segment": seg.body["id"], "channel": "sms",
                "reason": "a broadcast", "texts": texts}),
            ),
        )
        .await;
    assert_eq!(b.status, 201, "{:?}", b.body);
}

async fn settings(gw: &Gw, extra: Value) {
    let mut body = json!({"default_language": "fa", "expiring_days": [], "schedule_hour": 23,
        "max_per_day": 4, "max_per_week": 10, "persian_digits": true, "reason": "launch"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = gw
        .op("PUT", "/admin/v1/notifications/settings", Some(body))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

async fn template(gw: &Gw, event: &str, language: &str, body: &str) {
    let r = gw
        .op(
            "PUT",
            &format!("/admin/v1/notifications/templates/{event}/sms/{language}"),
            Some(json!({ "body": body })),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_told_in_their_language_when_they_agreed_to_be() {
    let (url, fake) = fake_provider().await;
    let gw = Gw::start().await;
    settings(&gw, json!({})).await;
    let p = gw
        .op(
            "PUT",
            "/admin/v1/notifications/providers/sms",
            Some(json!({"url": url, "headers": [{"name": "x-api-key", "value": "k-123"}],
                "body_template": "{\"to\": {{ to }}, \"text\": {{ text }}, \"id\": {{ message_id }}}"})),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    let bad = gw
        .op(
            "PUT",
            "/admin/v1/notifications/templates/points.earned/sms/fa",
            Some(json!({"body": "{{ points "})),
        )
        .await;
    assert_eq!(bad.problem(), "rule-invalid", "{:?}", bad.body);
    template(
        &gw,
        "points.earned",
        "fa",
        "{{ name }} عزیز، {{ points }} امتیاز گرفتید. مانده: {{ balance }}",
    )
    .await;
    template(
        &gw,
        "points.earned",
        "en",
        "Dear {{ name }}, you earned {{ points }} points. Balance {{ balance }}.",
    )
    .await;
    // The schedule runs by itself once the local hour reaches `schedule_hour` (23 here), and
    // would then post the birthday before its template exists. The programme's time zone is
    // one where the hour is well before 23 now; "today" is the date there.
    let zone = if chrono::Utc::now().hour() < 21 {
        "UTC"
    } else {
        "Etc/GMT+3"
    };
    let set = gw
        .op(
            "PUT",
            "/admin/v1/programme",
            Some(json!({"time_zone": zone, "reason": "the test's day"})),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let tz: chrono_tz::Tz = zone.parse().expect("time zone");
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    assert!(chrono::Utc::now().with_timezone(&tz).hour() < 22);
    for (m, profile, consent) in [
        (
            21,
            json!({"name": "Sara", "language": "fa", "phone": "+989120000021"}),
            true,
        ),
        (
            22,
            json!({"name": "John", "language": "en", "phone": "+447700900022",
                "birth_date": format!("1990-{:02}-{:02}", today.month(), today.day().min(28))}),
            true,
        ),
        (
            23,
            json!({"name": "Nima", "language": "fa", "phone": "+989120000023"}),
            false,
        ),
    ] {
        profile_with_consent(&gw, m, profile, consent).await;
    }
    for m in [21, 22, 23] {
        assert_eq!(gw.earn_miles(m, &format!("N-{m}"), "120").await.status, 200);
    }
    until(&fake, "two messages", |g| g.len() >= 2).await;
    let got = fake.lock().unwrap().got.clone();
    assert_eq!(
        texts_to(&got, "+989120000021"),
        vec!["\u{2068}Sara\u{2069} عزیز، \u{2068}۱۲۰\u{2069} امتیاز گرفتید. مانده: \u{2068}۱۲۰\u{2069}"]
    );
    assert_eq!(
        texts_to(&got, "+447700900022"),
        vec!["Dear John, you earned 120 points. Balance 120."]
    );
    for (h, b) in &got {
        assert_eq!(h["x-api-key"], "k-123");
        assert_eq!(
            h["idempotency-key"].to_str().unwrap(),
            b["id"].as_str().unwrap()
        );
    }
    // Without consent, nothing is even queued.
    assert!(texts_to(&got, "+989120000023").is_empty());
    let n23 = gw
        .op("GET", "/admin/v1/members/23/notifications", None)
        .await;
    assert_eq!(n23.body, json!([]), "nothing for member 23");
    let n21 = outcomes(&gw, 21, 1).await;
    assert_eq!(
        (&n21[0]["status"], &n21[0]["language"], &n21[0]["event"]),
        (&json!("sent"), &json!("fa"), &json!("points.earned"))
    );

    // The provider fails twice: the message goes on the third attempt.
    fake.lock().unwrap().refuse = 2;
    assert_eq!(gw.earn_miles(21, "N-21-b", "5").await.status, 200);
    let n21 = outcomes(&gw, 21, 2).await;
    assert_eq!(
        (&n21[0]["status"], &n21[0]["attempts"]),
        (&json!("sent"), &json!(3)),
        "{n21:?}"
    );

    // The daily schedule: member 22's birthday, and member 21's points about to expire.
    let r = gw
        .op(
            "PUT",
            "/admin/v1/expiry-policy",
            Some(json!({"reference": "exp-1", "reason": "one month",
                "rolling": {"months": 1, "round_to": "exact"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(gw.earn_miles(21, "N-21-c", "40").await.status, 200);
    let month_days = (today.checked_add_months(chrono::Months::new(1)).unwrap() - today).num_days();
    settings(&gw, json!({"expiring_days": [month_days]})).await;
    template(&gw, "member.birthday", "en", "Happy birthday, {{ name }}!").await;
    template(
        &gw,
        "points.expiring",
        "fa",
        "{{ points }} امتیاز شما در {{ days }} روز ({{ expires_on }}) منقضی می‌شود",
    )
    .await;
    let run = gw
        .op("POST", "/admin/v1/notifications/schedule/run", None)
        .await;
    assert_eq!(run.status, 200, "{:?}", run.body);
    if today.day() <= 28 {
        until(&fake, "the birthday message", |g| {
            texts_to(g, "+447700900022").contains(&"Happy birthday, John!".to_string())
        })
        .await;
    }
    until(&fake, "the expiry reminder", |g| {
        texts_to(g, "+989120000021")
            .iter()
            .any(|t| t.contains("منقضی"))
    })
    .await;
    let reminder = texts_to(&fake.lock().unwrap().got, "+989120000021")
        .into_iter()
        .find(|t| t.contains("منقضی"))
        .unwrap();
    assert!(reminder.starts_with("\u{2068}۴۰\u{2069}"), "{reminder}");
    let again = gw
        .op("POST", "/admin/v1/notifications/schedule/run", None)
        .await;
    assert_eq!(again.body["notices"], 0, "a day is scheduled once");

    // Caps: at most 4 a day: member 21 has had 4 (three earns, the reminder), the fifth is skipped.
    assert_eq!(gw.earn_miles(21, "N-21-d", "1").await.status, 200);
    let n21 = outcomes(&gw, 21, 5).await;
    assert_eq!(n21[0]["status"], "capped", "{n21:?}");

    // Quiet hours now (in the programme's time zone): member 22's next message waits for
    // their end.
    let now = chrono::Utc::now().with_timezone(&tz).time();
    let hhmm = |t: chrono::NaiveTime| t.format("%H:%M").to_string();
    settings(
        &gw,
        json!({"quiet_from": hhmm(now - chrono::Duration::minutes(30)),
               "quiet_until": hhmm(now + chrono::Duration::minutes(30)),
               "max_per_day": 100, "max_per_week": 100}),
    )
    .await;
    let before = fake.lock().unwrap().got.len();
    assert_eq!(gw.earn_miles(22, "N-22-b", "1").await.status, 200);
    let end = Instant::now() + Duration::from_secs(3);
    let mut queued = 0;
    while Instant::now() < end {
        let log = gw.op("GET", "/admin/v1/notifications/log", None).await;
        queued = log.body["queued"].as_u64().unwrap();
        if queued == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queued, 1, "the message waits in the outbox");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        fake.lock().unwrap().got.len(),
        before,
        "nothing sent in quiet hours"
    );

    // A broadcast to a segment (the Persian speakers of Tehran): in their language, once.
    settings(&gw, json!({"max_per_day": 100, "max_per_week": 100})).await;
    for m in [21, 23] {
        let r = gw
            .op(
                "PUT",
                &format!("/admin/v1/members/{m}/profile"),
                Some(
                    json!({"name": if m == 21 { "Sara" } else { "Nima" }, "language": "fa",
                    "phone": format!("+9891200000{m}"), "city": "Tehran"}),
                ),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    broadcast_to_city(
        &gw,
        "Tehran",
        json!([{"language": "fa", "body": "{{ name }}، پاییز با امتیاز دوبرابر"},
               {"language": "en", "body": "{{ name }}, double points this autumn"}]),
    )
    .await;
    until(&fake, "the broadcast to member 21", |g| {
        texts_to(g, "+989120000021")
            .iter()
            .any(|t| t.contains("پاییز"))
    })
    .await;
    // A broadcast checks each member when it goes: member 23's refusal is logged.
    let n23 = outcomes(&gw, 23, 1).await;
    assert_eq!(
        (&n23[0]["event"], &n23[0]["status"]),
        (&json!("broadcast"), &json!("no-consent"))
    );
    let list = gw
        .op("GET", "/admin/v1/notifications/broadcasts", None)
        .await;
    assert_eq!(
        (&list.body[0]["status"], &list.body[0]["queued"]),
        (&json!("sent"), &json!(2))
    );
}

/// A kill -9 of the gateway while messages go: after the restart every earn's message reaches
/// the provider, none twice but those in flight (one a member at most), and those with the same
/// idempotency key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_goes_once_across_a_kill_9() {
    let (url, fake) = fake_provider().await;
    let fresh = common::Fresh::new();
    let (mut child, creds) = fresh.start().await;
    let base = fresh.base.clone();
    let http = reqwest::Client::new();
    let op = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(&creds["OPERATOR_TOKEN"])
            .json(&body)
            .send()
    };
    for (path, body) in [
        (
            "/admin/v1/notifications/settings",
            json!({"default_language": "en", "schedule_hour": 23, "persian_digits": false,
                   "reason": "no caps, no quiet hours"}),
        ),
        (
            "/admin/v1/notifications/providers/sms",
            json!({"url": url, "body_template": "{\"to\": {{ to }}, \"text\": {{ text }}}"}),
        ),
        (
            "/admin/v1/notifications/templates/points.earned/sms/en",
            json!({"body": "+{{ points }}"}),
        ),
    ] {
        let r = op(reqwest::Method::PUT, path, body).await.unwrap();
        assert!(
            r.status().is_success(),
            "{path}: {}",
            r.text().await.unwrap()
        );
    }
    for m in 1..=10u64 {
        let r = op(
            reqwest::Method::PUT,
            &format!("/admin/v1/members/{m}/profile"),
            json!({"phone": format!("+4477009000{m:02}"), "language": "en"}),
        )
        .await
        .unwrap();
        assert!(r.status().is_success());
        let r = op(
            reqwest::Method::PUT,
            &format!("/admin/v1/members/{m}/consent/sms"),
            json!({"granted": true, "source": "signup"}),
        )
        .await
        .unwrap();
        assert!(r.status().is_success());
    }
    let mut expected = Vec::new();
    for i in 0..60u64 {
        let member = format!("FF{:06}", 1 + i % 10);
        let tx = common::signed_earn(&http, &base, &creds, &format!("NK-{i}"), &member, "10").await;
        expected.push(format!("{tx}-0:sms"));
    }
    until(&fake, "some messages", |g| g.len() >= 10).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let at_kill = fake.lock().unwrap().got.len();
    assert!(
        at_kill < expected.len(),
        "killed while sending ({at_kill} sent)"
    );
    let (mut child, _) = fresh.start().await;
    let ids = |g: &[(HeaderMap, Value)]| -> Vec<String> {
        g.iter()
            .map(|(h, _)| h["idempotency-key"].to_str().unwrap().to_string())
            .collect()
    };
    until(&fake, "every message", |g| {
        let got = ids(g);
        expected.iter().all(|id| got.contains(id))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts = fake.lock().unwrap().got.clone();
    let got = ids(&posts);
    let distinct: std::collections::HashSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), expected.len(), "no message invented");
    // Members' messages go several members at once, each member's one at a time: what was in
    // flight at the kill, and only that, goes again, so at most one message a member twice,
    // with the same idempotency key.
    let mut again: std::collections::HashMap<&str, usize> = Default::default();
    let mut seen = std::collections::HashSet::new();
    for (id, (_, body)) in got.iter().zip(&posts) {
        if !seen.insert(id) {
            *again.entry(body["to"].as_str().unwrap()).or_default() += 1;
        }
    }
    assert!(
        again.values().all(|n| *n <= 1),
        "at most the message in flight twice, a member: {again:?}"
    );
    child.start_kill().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_told_each_time_its_claim_moves() {
    let (url, fake) = fake_provider().await;
    let gw = Gw::start().await;
    settings(&gw, json!({})).await;
    let p = gw
        .op(
            "PUT",
            "/admin/v1/notifications/providers/sms",
            Some(json!({"url": url, "body_template": "{\"to\": {{ to }}, \"text\": {{ text }}}"})),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    template(&gw, "claim.updated", "en", "Your claim: {{ detail }}.").await;
    let phone = "+447700900024";
    let r = gw
        .op(
            "PUT",
            "/admin/v1/members/24/profile",
            Some(json!({"name": "Ali", "language": "en", "phone": phone})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let c = gw
        .op(
            "PUT",
            "/admin/v1/members/24/consent/sms",
            Some(json!({"granted": true, "source": "app settings"})),
        )
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    let claim = gw
        .op(
            "POST",
            "/admin/v1/members/24/claims",
            Some(json!({"kind": "complaint", "partner_id": 2, "text": "the pump was closed"})),
        )
        .await;
    assert_eq!(claim.status, 201, "{:?}", claim.body);
    let id = claim.body["id"].as_u64().unwrap();
    let decided = gw
        .partner(
            2,
            "POST",
            &format!("/v1/claims/{id}/decision"),
            Some(json!({"status": "rejected", "note": "the station was under repair"})),
        )
        .await;
    assert_eq!(decided.status, 200, "{:?}", decided.body);
    until(&fake, "two claim messages", |g| {
        texts_to(g, phone).len() >= 2
    })
    .await;
    let mut texts = texts_to(&fake.lock().unwrap().got, phone);
    texts.sort();
    assert_eq!(
        texts,
        vec![
            format!("Your claim: claim {id} open."),
            format!("Your claim: claim {id} rejected."),
        ]
    );
}

/// A slow provider is sent several members' messages at once: a broadcast to twenty members,
/// each answered after 300 ms, reaches every member once, and more than one request is in
/// flight at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_provider_is_sent_several_members_messages_at_once() {
    let (url, fake) = fake_provider().await;
    fake.lock().unwrap().delay_ms = 300;
    let gw = Gw::start().await;
    settings(&gw, json!({"max_per_day": 100, "max_per_week": 100})).await;
    let p = gw
        .op(
            "PUT",
            "/admin/v1/notifications/providers/sms",
            Some(json!({"url": url, "headers": [],
                "body_template": "{\"to\": {{ to }}, \"text\": {{ text }}, \"id\": {{ message_id }}}"})),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    let members: Vec<u64> = (31..=50).collect();
    for m in &members {
        let profile = json!({"name": format!("M{m}"), "language": "en",
            "phone": format!("+4477009000{m}"), "city": "Slowtown"});
        profile_with_consent(&gw, *m, profile, true).await;
    }
    broadcast_to_city(
        &gw,
        "Slowtown",
        json!([{"language": "en", "body": "Hello {{ name }}"}]),
    )
    .await;
    until(&fake, "twenty messages", |g| g.len() >= members.len()).await;
    // Nothing more arrives: each member was sent one.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let f = fake.lock().unwrap();
    let mut to: Vec<String> = f
        .got
        .iter()
        .map(|(_, b)| b["to"].as_str().unwrap().to_string())
        .collect();
    to.sort();
    let mut expected: Vec<String> = members.iter().map(|m| format!("+4477009000{m}")).collect();
    expected.sort();
    assert_eq!(to, expected);
    assert!(
        f.in_flight_max > 1,
        "one request at a time: {}",
        f.in_flight_max
    );
}
