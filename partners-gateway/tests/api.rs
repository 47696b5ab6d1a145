//! The partner and operator APIs over real HTTP: every endpoint, every error, and for every
//! rejected request a check that the ledger did not change.

mod common;

use common::{now_s, sign_headers, Gw};
use serde_json::{json, Value};

const M: u64 = 42;

fn earn_body(reference: &str, value: &str) -> Value {
    json!({"reference": reference, "member": "FF000042", "amount": {"value": value, "unit": "mile"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earn_at_the_airline_then_burn_at_a_fuel_station() {
    let gw = Gw::start().await;
    let a = gw.earn_miles(M, "BK-1", "1200").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["kind"], "earn");
    assert_eq!(a.body["points"], 1200);
    assert_eq!(a.body["member"], "FF000042");
    assert_eq!(a.body["replayed"], false);
    assert_eq!(a.body["pricing"]["rate_version"], 1);
    assert_eq!(a.body["pricing"]["unit"], "mile");

    let b = gw
        .partner(
            2,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "PUMP-1", "member": "FC000042", "points": 500})),
        )
        .await;
    assert_eq!(b.status, 200, "{:?}", b.body);
    assert_eq!(b.body["points"], -500);
    assert_eq!(b.body["member_balance_after"], 700);

    let bal = gw.partner(2, "GET", "/v1/members/FC000042", None).await;
    assert_eq!(
        bal.body,
        json!({"member": "FC000042", "posted": 700, "pending": 0, "available": 700})
    );

    // Money legs at contract prices: 1200 × 0.012 EUR issued, 500 × 0.007 EUR redeemed.
    let iss = gw
        .op("GET", "/admin/v1/accounts/partner%2F1%2Fissuance", None)
        .await;
    assert_eq!(iss.body["points"], -1200);
    assert_eq!(iss.body["money"]["EUR"], "14.400");
    let red = gw
        .op("GET", "/admin/v1/accounts/partner%2F2%2Fredemption", None)
        .await;
    assert_eq!(red.body["points"], 500);
    assert_eq!(red.body["money"]["EUR"], "-3.500");

    // The fuel retailer's statement shows its own burn only; the operator's shows both.
    let st = gw
        .partner(2, "GET", "/v1/members/FC000042/statement", None)
        .await;
    let kinds: Vec<_> = st.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    assert_eq!(kinds, vec![json!("burn")]);
    let st = gw.op("GET", "/admin/v1/members/42/statement", None).await;
    let kinds: Vec<_> = st.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        vec![json!("burn"), json!("earn"), json!("enrol")],
        "newest first"
    );
    // Lookup by the partner's reference.
    let t = gw.partner(1, "GET", "/v1/transactions/BK-1", None).await;
    assert_eq!(t.status, 200);
    assert_eq!(t.body["transaction_id"], a.body["transaction_id"]);
    assert_eq!(t.body["member"], "FF000042");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures_are_401_and_change_nothing() {
    let gw = Gw::start().await;
    let before = gw.fingerprint(&[M]).await;
    let body = serde_json::to_vec(&earn_body("AUTH-1", "100")).unwrap();
    let key = gw.cred("SKYWAYS_KEY_ID");
    let secret = gw.cred("SKYWAYS_SECRET");
    let ts = now_s().to_string();

    // No signature at all.
    let a = gw.raw("POST", "/v1/earn", vec![], body.clone()).await;
    assert_eq!((a.status.as_u16(), a.problem()), (401, "unauthenticated"));
    assert_eq!(a.headers["content-type"], "application/problem+json");

    // Signed with the wrong secret.
    let h = sign_headers(
        &key,
        "not-the-secret",
        "POST",
        "/v1/earn",
        &ts,
        "nonce-wrong-secret-1",
        &body,
    );
    let a = gw.raw("POST", "/v1/earn", h, body.clone()).await;
    assert_eq!((a.status.as_u16(), a.problem()), (401, "bad-signature"));

    // Signed correctly, then the body changed in transit.
    let h = sign_headers(
        &key,
        &secret,
        "POST",
        "/v1/earn",
        &ts,
        "nonce-tampered-0001",
        &body,
    );
    let tampered = serde_json::to_vec(&earn_body("AUTH-1", "100000")).unwrap();
    let a = gw.raw("POST", "/v1/earn", h, tampered).await;
    assert_eq!((a.status.as_u16(), a.problem()), (401, "bad-signature"));

    // Each request's own signature cut short, lengthened, made not hex, or emptied: refused,
    // each as a bad signature.
    let shapes: [fn(&str) -> String; 4] = [
        |s| s[..62].to_string(),
        |s| format!("{s}00"),
        |s| format!("{}zz", &s[..62]),
        |_| String::new(),
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        let nonce = format!("nonce-sig-shapes-{i}");
        let mut h = sign_headers(&key, &secret, "POST", "/v1/earn", &ts, &nonce, &body);
        let sig = h
            .iter_mut()
            .find(|(k, _)| k == "x-signature")
            .map(|(_, v)| v)
            .expect("signed");
        assert_eq!(sig.len(), 64);
        let bad = shape(sig);
        *sig = bad.clone();
        let a = gw.raw("POST", "/v1/earn", h, body.clone()).await;
        assert_eq!(
            (a.status.as_u16(), a.problem()),
            (401, "bad-signature"),
            "signature {bad:?}"
        );
    }

    // A timestamp ten minutes old.
    let old = (now_s() - 600).to_string();
    let h = sign_headers(
        &key,
        &secret,
        "POST",
        "/v1/earn",
        &old,
        "nonce-stale-000001",
        &body,
    );
    let a = gw.raw("POST", "/v1/earn", h, body.clone()).await;
    assert_eq!((a.status.as_u16(), a.problem()), (401, "stale-timestamp"));

    // Unknown key id.
    let h = sign_headers(
        "pk_nobody",
        &secret,
        "POST",
        "/v1/earn",
        &ts,
        "nonce-unknown-00001",
        &body,
    );
    let a = gw.raw("POST", "/v1/earn", h, body.clone()).await;
    assert_eq!((a.status.as_u16(), a.problem()), (401, "unknown-key"));

    // A replayed nonce: the first request is accepted (and earns), the copy is refused.
    let quote = serde_json::to_vec(
        &json!({"operation": "earn", "amount": {"value": "10", "unit": "mile"}}),
    )
    .unwrap();
    let h = sign_headers(
        &key,
        &secret,
        "POST",
        "/v1/quote",
        &ts,
        "nonce-replayed-0001",
        &quote,
    );
    let first = gw.raw("POST", "/v1/quote", h.clone(), quote.clone()).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let again = gw.raw("POST", "/v1/quote", h, quote).await;
    assert_eq!(
        (again.status.as_u16(), again.problem()),
        (401, "replayed-nonce")
    );

    // A revoked key.
    let k = gw
        .op(
            "POST",
            "/admin/v1/partners/1/keys",
            Some(json!({"scopes": ["earn", "read"]})),
        )
        .await;
    assert_eq!(k.status, 201, "{:?}", k.body);
    let (kid, ksecret) = (
        k.body["key_id"].as_str().unwrap().to_string(),
        k.body["secret"].as_str().unwrap().to_string(),
    );
    let ok = gw.signed_as(&kid, &ksecret, "GET", "/v1/rates", None).await;
    assert_eq!(ok.status, 200, "the new key works before revocation");
    let r = gw
        .op(
            "POST",
            &format!("/admin/v1/partners/1/keys/{kid}/revoke"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["revoked_at_ms"].is_i64());
    let a = gw
        .signed_as(
            &kid,
            &ksecret,
            "POST",
            "/v1/earn",
            Some(earn_body("AUTH-2", "100")),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (401, "key-revoked"));
    // Keys list shows both keys and no secrets.
    let keys = gw.op("GET", "/admin/v1/partners/1/keys", None).await;
    assert_eq!(keys.body.as_array().unwrap().len(), 2);
    assert!(!keys.body.to_string().contains(&ksecret));

    assert_eq!(gw.fingerprint(&[M]).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_the_scope_is_403_and_changes_nothing() {
    let gw = Gw::start().await;
    let k = gw
        .op(
            "POST",
            "/admin/v1/partners/1/keys",
            Some(json!({"scopes": ["read"]})),
        )
        .await;
    let (kid, secret) = (
        k.body["key_id"].as_str().unwrap(),
        k.body["secret"].as_str().unwrap(),
    );
    let before = gw.fingerprint(&[M]).await;
    let a = gw
        .signed_as(
            kid,
            secret,
            "POST",
            "/v1/earn",
            Some(earn_body("SCOPE-1", "100")),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (403, "forbidden-scope"));
    let a = gw
        .signed_as(
            kid,
            secret,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "SCOPE-2", "member": "FF000042", "points": 1})),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (403, "forbidden-scope"));
    // Reading is allowed.
    let a = gw
        .signed_as(kid, secret, "GET", "/v1/members/FF000042", None)
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(gw.fingerprint(&[M]).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_partners_hold_transaction_and_members_do_not_exist_for_it() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(M, "BK-2", "1000").await.status, 200);
    let h = gw.partner(1, "POST", "/v1/holds",
        Some(json!({"reference": "AWARD-1", "member": "FF000042", "points": 600, "timeout_seconds": 3600}))).await;
    assert_eq!(h.status, 200, "{:?}", h.body);
    let before = gw.fingerprint(&[M]).await;

    let a = gw
        .partner(
            2,
            "POST",
            "/v1/holds/AWARD-1/capture",
            Some(json!({"reference": "STEAL-1"})),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.problem()),
        (404, "unknown-transaction")
    );
    let a = gw
        .partner(
            2,
            "POST",
            "/v1/holds/AWARD-1/void",
            Some(json!({"reference": "STEAL-2"})),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.problem()),
        (404, "unknown-transaction")
    );
    let a = gw.partner(2, "GET", "/v1/transactions/BK-2", None).await;
    assert_eq!(
        (a.status.as_u16(), a.problem()),
        (404, "unknown-transaction")
    );
    let a = gw
        .partner(
            2,
            "POST",
            "/v1/reversals",
            Some(json!({"reference": "STEAL-3", "original_reference": "BK-2"})),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.problem()),
        (404, "unknown-transaction")
    );
    // The airline's member reference means nothing at the fuel retailer.
    let a = gw.partner(2, "GET", "/v1/members/FF000042", None).await;
    assert_eq!((a.status.as_u16(), a.problem()), (404, "unknown-member"));
    assert_eq!(gw.fingerprint(&[M]).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_and_batches_over_the_limit_are_413() {
    let gw = Gw::start_with(|c| {
        c.body_bytes_max = 4096;
        c.batch_commands_max = 3;
    })
    .await;
    let before = gw.fingerprint(&[M]).await;
    let big = json!({"reference": "BIG-1", "member": "FF000042", "amount": {"value": "1", "unit": "mile"}, "branch": "x".repeat(5000)});
    let a = gw.partner(1, "POST", "/v1/earn", Some(big)).await;
    assert_eq!((a.status.as_u16(), a.problem()), (413, "payload-too-large"));
    let cmds: Vec<_> = (0..4).map(|i| json!({"op": "earn", "reference": format!("B-{i}"), "member": "FF000042", "amount": {"value": "1", "unit": "mile"}})).collect();
    let a = gw
        .partner(1, "POST", "/v1/batch", Some(json!({"commands": cmds})))
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (413, "payload-too-large"));
    let big = json!({"name": "x".repeat(5000), "currency": "EUR", "issuance_price_per_point": "0.01", "redemption_price_per_point": "0.01", "points_validity_days": null});
    let a = gw.op("PUT", "/admin/v1/partners/9", Some(big)).await;
    assert_eq!((a.status.as_u16(), a.problem()), (413, "payload-too-large"));
    assert_eq!(gw.fingerprint(&[M]).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_400_and_change_nothing() {
    let gw = Gw::start().await;
    let before = gw.fingerprint(&[M]).await;
    let key = gw.cred("SKYWAYS_KEY_ID");
    let secret = gw.cred("SKYWAYS_SECRET");
    let send_raw = |body: &'static str| {
        let h = sign_headers(
            &key,
            &secret,
            "POST",
            "/v1/earn",
            &now_s().to_string(),
            &format!("n-{}", common::hex_random()),
            body.as_bytes(),
        );
        gw.raw("POST", "/v1/earn", h, body.as_bytes().to_vec())
    };
    let a = send_raw("{not json").await;
    assert_eq!((a.status.as_u16(), a.problem()), (400, "malformed-request"));
    let a = send_raw(r#"{"reference":"X-1","member":"FF000042"}"#).await;
    assert_eq!((a.status.as_u16(), a.problem()), (400, "malformed-request"));
    assert!(
        a.body["detail"].as_str().unwrap().contains("amount"),
        "{:?}",
        a.body
    );
    let a = send_raw(
        r#"{"reference":"X-1","member":"FF000042","amount":{"value":"1","unit":"mile"},"bonus":5}"#,
    )
    .await;
    assert_eq!((a.status.as_u16(), a.problem()), (400, "malformed-request"));
    // Numbers are binary floats in JSON; amounts are decimal strings.
    let a = send_raw(
        r#"{"reference":"X-1","member":"FF000042","amount":{"value":12.5,"unit":"mile"}}"#,
    )
    .await;
    assert_eq!((a.status.as_u16(), a.problem()), (400, "malformed-request"));
    // Content type must be JSON.
    let body = serde_json::to_vec(&earn_body("X-2", "1")).unwrap();
    let mut h = sign_headers(
        &key,
        &secret,
        "POST",
        "/v1/earn",
        &now_s().to_string(),
        "nonce-content-type-1",
        &body,
    );
    h.push(("content-type".into(), "text/plain".into()));
    let a = gw.raw("POST", "/v1/earn", h, body).await;
    assert_eq!(
        (a.status.as_u16(), a.problem()),
        (415, "unsupported-media-type")
    );
    // A reference with spaces.
    let a = gw
        .partner(1, "POST", "/v1/earn", Some(earn_body("has space", "1")))
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (400, "invalid-request"));
    // Unknown route and wrong method.
    let a = gw.partner(1, "GET", "/v1/nowhere", None).await;
    assert_eq!((a.status.as_u16(), a.problem()), (404, "not-found"));
    let a = gw.partner(1, "DELETE", "/v1/earn", None).await;
    assert_eq!(
        (a.status.as_u16(), a.problem()),
        (405, "method-not-allowed")
    );
    assert_eq!(gw.fingerprint(&[M]).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_negative_over_precise_and_foreign_amounts_are_refused() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(M, "SEED-1", "100").await.status, 200);
    let before = gw.fingerprint(&[M]).await;
    let tn = |amount: Value| json!({"reference": format!("AMT-{}", common::hex_random()), "member": "TN000042", "amount": amount});
    let cases = [
        (json!({"value": "0", "unit": "GBP"}), 400, "invalid-amount"),
        (json!({"value": "-5", "unit": "GBP"}), 400, "invalid-amount"),
        (
            json!({"value": "10.001", "unit": "GBP"}),
            422,
            "amount-too-precise",
        ),
        (
            json!({"value": "10.0001", "unit": "GBP"}),
            400,
            "invalid-amount",
        ),
        (
            json!({"value": "010", "unit": "GBP"}),
            400,
            "invalid-amount",
        ),
        (
            json!({"value": "ten", "unit": "GBP"}),
            400,
            "invalid-amount",
        ),
        (
            json!({"value": "10", "unit": "XYZ"}),
            422,
            "unknown-currency",
        ),
        (
            json!({"value": "10", "unit": "USD"}),
            422,
            "unit-not-priced",
        ),
        (json!({"value": "0.01", "unit": "GBP"}), 422, "no-points"),
    ];
    for (amount, status, kind) in cases {
        let a = gw
            .partner(3, "POST", "/v1/earn", Some(tn(amount.clone())))
            .await;
        assert_eq!(
            (a.status.as_u16(), a.problem()),
            (status, kind),
            "{amount}: {:?}",
            a.body
        );
    }
    for points in [json!(0), json!(-5)] {
        let a = gw
            .partner(
                2,
                "POST",
                "/v1/burn",
                Some(json!({"reference": "P-1", "member": "FC000042", "points": points})),
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.problem()),
            (400, "invalid-amount"),
            "{points}"
        );
    }
    let a = gw
        .partner(
            2,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "P-1", "member": "FC000042", "points": 1.5})),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (400, "malformed-request"));
    let a = gw
        .partner(
            2,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "P-1", "member": "FC000042"})),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (400, "invalid-request"));
    assert_eq!(gw.fingerprint(&[M]).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_members_and_insufficient_points_change_nothing() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(M, "SEED-2", "100").await.status, 200);
    let before = gw.fingerprint(&[M]).await;
    let a = gw.partner(1, "POST", "/v1/earn",
        Some(json!({"reference": "U-1", "member": "FF999999", "amount": {"value": "10", "unit": "mile"}}))).await;
    assert_eq!((a.status.as_u16(), a.problem()), (404, "unknown-member"));
    let a = gw
        .partner(
            2,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "U-2", "member": "FC000042", "points": 101})),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.problem()),
        (422, "insufficient-points")
    );
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("100 pts available"),
        "{:?}",
        a.body
    );
    // The refused reference stays free: the same reference can be used for a valid burn.
    let ok = gw
        .partner(
            2,
            "POST",
            "/v1/burn",
            Some(json!({"reference": "U-2", "member": "FC000042", "points": 100})),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_ne!(gw.fingerprint(&[M]).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_returns_the_original_and_a_changed_replay_is_409() {
    let gw = Gw::start().await;
    let first = gw.earn_miles(M, "IDEM-1", "250").await;
    assert_eq!(first.status, 200);
    let before = gw.fingerprint(&[M]).await;
    let again = gw.earn_miles(M, "IDEM-1", "250").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.body["transaction_id"], first.body["transaction_id"]);
    assert_eq!(again.body["points"], 250);
    // A new rate table does not turn a true retry into a conflict.
    let t = gw
        .op(
            "POST",
            "/admin/v1/partners/1/rates",
            Some(json!({"unit": "mile", "earn_points_per_unit": "2"})),
        )
        .await;
    assert_eq!(t.status, 201, "{:?}", t.body);
    assert_eq!(t.body["version"], 2);
    let retry = gw.earn_miles(M, "IDEM-1", "250").await;
    assert_eq!(
        (
            retry.status.as_u16(),
            retry.body["replayed"].clone(),
            retry.body["points"].clone()
        ),
        (200, json!(true), json!(250))
    );
    // The same reference with a different amount is a conflict.
    let conflict = gw.earn_miles(M, "IDEM-1", "251").await;
    assert_eq!(
        (conflict.status.as_u16(), conflict.problem()),
        (409, "idempotency-conflict")
    );
    assert_eq!(gw.fingerprint(&[M]).await, before);
    // New earns use version 2.
    let new = gw.earn_miles(M, "IDEM-2", "250").await;
    assert_eq!(
        (
            new.body["points"].clone(),
            new.body["pricing"]["rate_version"].clone()
        ),
        (json!(500), json!(2))
    );
}

/// Capture, void and reversal are prepared from memory when the transaction they name was
/// committed moments ago and the caller's reference for the member is known here, and from the
/// store otherwise (after a restart memory holds neither): both answer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_void_and_reversal_answer_alike_from_memory_and_from_the_store() {
    let gw = Gw::start().await;
    let hold = |reference: &'static str| json!({"reference": reference, "member": "FF000042", "points": 100, "timeout_seconds": 600});
    let answer = |a: &common::Answer| {
        (
            a.status.as_u16(),
            a.body["kind"].clone(),
            a.body["member"].clone(),
            a.body["points"].clone(),
        )
    };
    assert_eq!(gw.earn_miles(M, "E-1", "1000").await.status, 200);
    for h in ["H-1", "H-2", "H-3"] {
        assert_eq!(
            gw.partner(1, "POST", "/v1/holds", Some(hold(h)))
                .await
                .status,
            200
        );
    }
    let capture = gw
        .partner(
            1,
            "POST",
            "/v1/holds/H-1/capture",
            Some(json!({"reference": "C-1", "points": 60})),
        )
        .await;
    assert_eq!(
        answer(&capture),
        (200, json!("capture"), json!("FF000042"), json!(-60))
    );
    let void = gw
        .partner(
            1,
            "POST",
            "/v1/holds/H-2/void",
            Some(json!({"reference": "V-1"})),
        )
        .await;
    assert_eq!(
        answer(&void),
        (200, json!("void"), json!("FF000042"), json!(100))
    );
    let reversal = gw
        .partner(
            1,
            "POST",
            "/v1/reversals",
            Some(json!({"reference": "R-1", "original_reference": "E-1", "points": 10})),
        )
        .await;
    assert_eq!(
        answer(&reversal),
        (200, json!("reversal"), json!("FF000042"), json!(-10))
    );
    // Another partner's hold answers as unknown either way, and so does an earn named as a hold.
    let theirs = gw
        .partner(
            2,
            "POST",
            "/v1/holds/H-3/void",
            Some(json!({"reference": "V-X"})),
        )
        .await;
    assert_eq!(
        (theirs.status.as_u16(), theirs.problem()),
        (404, "unknown-transaction")
    );
    let not_a_hold = gw
        .partner(
            1,
            "POST",
            "/v1/holds/E-1/void",
            Some(json!({"reference": "V-Y"})),
        )
        .await;
    assert_eq!(
        (not_a_hold.status.as_u16(), not_a_hold.problem()),
        (404, "unknown-transaction")
    );

    // Restarted: a retry (answered as a replay) and new commands read the store.
    let dir = gw.stop().await;
    let config = partners_gateway::config::Config::for_tests(&dir.path().join("data"));
    let gw = Gw::start_in(dir, config).await;
    let again = gw
        .partner(
            1,
            "POST",
            "/v1/holds/H-1/capture",
            Some(json!({"reference": "C-1", "points": 60})),
        )
        .await;
    assert_eq!(answer(&again), answer(&capture));
    assert_eq!(again.body["replayed"], json!(true));
    let void = gw
        .partner(
            1,
            "POST",
            "/v1/holds/H-3/void",
            Some(json!({"reference": "V-3"})),
        )
        .await;
    assert_eq!(
        answer(&void),
        (200, json!("void"), json!("FF000042"), json!(100))
    );
    let reversal = gw
        .partner(
            1,
            "POST",
            "/v1/reversals",
            Some(json!({"reference": "R-2", "original_reference": "E-1", "points": 10})),
        )
        .await;
    assert_eq!(
        answer(&reversal),
        (200, json!("reversal"), json!("FF000042"), json!(-10))
    );
    let theirs = gw
        .partner(
            2,
            "POST",
            "/v1/reversals",
            Some(json!({"reference": "R-X", "original_reference": "E-1"})),
        )
        .await;
    assert_eq!(
        (theirs.status.as_u16(), theirs.problem()),
        (404, "unknown-transaction")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_are_captured_voided_and_earns_and_burns_reversed() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(M, "E-1", "1000").await.status, 200);
    let h = gw.partner(1, "POST", "/v1/holds",
        Some(json!({"reference": "H-1", "member": "FF000042", "points": 400, "timeout_seconds": 600}))).await;
    assert_eq!(
        (
            h.status.as_u16(),
            h.body["kind"].clone(),
            h.body["points"].clone()
        ),
        (200, json!("hold"), json!(400))
    );
    assert!(h.body["hold_expires_at_ms"].as_i64().unwrap() > now_s() * 1000);
    let bal = gw.partner(1, "GET", "/v1/members/FF000042", None).await;
    assert_eq!(
        bal.body,
        json!({"member": "FF000042", "posted": 1000, "pending": 400, "available": 600})
    );

    let before = gw.fingerprint(&[M]).await;
    let a = gw
        .partner(
            1,
            "POST",
            "/v1/holds/H-1/capture",
            Some(json!({"reference": "C-0", "points": 401})),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.problem()),
        (422, "capture-exceeds-hold")
    );
    assert_eq!(gw.fingerprint(&[M]).await, before);

    let c = gw
        .partner(
            1,
            "POST",
            "/v1/holds/H-1/capture",
            Some(json!({"reference": "C-1", "points": 300})),
        )
        .await;
    assert_eq!(
        (
            c.status.as_u16(),
            c.body["kind"].clone(),
            c.body["points"].clone()
        ),
        (200, json!("capture"), json!(-300))
    );
    let bal = gw.partner(1, "GET", "/v1/members/FF000042", None).await;
    assert_eq!(bal.body["available"], 700);
    let before = gw.fingerprint(&[M]).await;
    let v = gw
        .partner(
            1,
            "POST",
            "/v1/holds/H-1/void",
            Some(json!({"reference": "V-1"})),
        )
        .await;
    assert_eq!((v.status.as_u16(), v.problem()), (422, "hold-not-open"));
    assert_eq!(gw.fingerprint(&[M]).await, before);

    // A second hold, voided.
    let h2 = gw.partner(1, "POST", "/v1/holds", Some(json!({"reference": "H-2", "member": "FF000042", "points": 100, "timeout_seconds": 600}))).await;
    assert_eq!(h2.status, 200);
    let v = gw
        .partner(
            1,
            "POST",
            "/v1/holds/H-2/void",
            Some(json!({"reference": "V-2"})),
        )
        .await;
    assert_eq!(
        (
            v.status.as_u16(),
            v.body["kind"].clone(),
            v.body["points"].clone()
        ),
        (200, json!("void"), json!(100))
    );
    // Capture names a hold, not an earn.
    let a = gw
        .partner(
            1,
            "POST",
            "/v1/holds/E-1/capture",
            Some(json!({"reference": "C-2"})),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.problem()),
        (404, "unknown-transaction")
    );

    // Refund part of the earn, then the rest; a third reversal has nothing left.
    let r = gw
        .partner(
            1,
            "POST",
            "/v1/reversals",
            Some(json!({"reference": "R-1", "original_reference": "E-1", "points": 200})),
        )
        .await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.body["kind"].clone(),
            r.body["points"].clone()
        ),
        (200, json!("reversal"), json!(-200))
    );
    let before = gw.fingerprint(&[M]).await;
    let r = gw
        .partner(
            1,
            "POST",
            "/v1/reversals",
            Some(json!({"reference": "R-2", "original_reference": "E-1", "points": 900})),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.problem()),
        (422, "reversal-exceeds-original")
    );
    let r = gw
        .partner(
            1,
            "POST",
            "/v1/reversals",
            Some(json!({"reference": "R-3", "original_reference": "H-2"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.problem()), (422, "not-reversible"));
    // The member has 500 left of 1000 earned (300 captured, 200 refunded); reversing the
    // other 800 would take them below zero, which the default policy refuses.
    let r = gw
        .partner(
            1,
            "POST",
            "/v1/reversals",
            Some(json!({"reference": "R-4", "original_reference": "E-1"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.problem()), (422, "clawback-rejected"));
    assert_eq!(gw.fingerprint(&[M]).await, before);
    // Reverse the capture (a cancelled award), which restores 300.
    let r = gw
        .partner(
            1,
            "POST",
            "/v1/reversals",
            Some(json!({"reference": "R-5", "original_reference": "C-1"})),
        )
        .await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.body["points"].clone(),
            r.body["member_balance_after"].clone()
        ),
        (200, json!(300), json!(800))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_command_on_its_own() {
    let gw = Gw::start().await;
    let cmds = json!({"commands": [
        {"op": "earn", "reference": "BA-1", "member": "FC000001", "amount": {"value": "40", "unit": "litre"}, "branch": "station-003"},
        {"op": "earn", "reference": "BA-2", "member": "FC000002", "amount": {"value": "40", "unit": "litre"}, "category": "premium-fuel"},
        {"op": "burn", "reference": "BA-3", "member": "FC000003", "points": 10},
        {"op": "earn", "reference": "BA-4", "member": "FC999999", "amount": {"value": "1", "unit": "litre"}},
        {"op": "hold", "reference": "BA-5", "member": "FC000001", "points": 20, "timeout_seconds": 60},
    ]});
    let a = gw.partner(2, "POST", "/v1/batch", Some(cmds.clone())).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let r = a.body["results"].as_array().unwrap();
    let statuses: Vec<_> = r.iter().map(|x| x["status"].as_u64().unwrap()).collect();
    // Commands apply in order, so the hold sees the earn before it.
    assert_eq!(statuses, vec![200, 200, 422, 404, 200]);
    assert_eq!(r[0]["transaction"]["points"], 120); // 3 points per litre at station-003
    assert_eq!(r[1]["transaction"]["points"], 160); // 4 per litre for premium fuel
    assert_eq!(r[2]["problem"]["type"], "/problems/insufficient-points");
    assert_eq!(r[3]["problem"]["type"], "/problems/unknown-member");
    assert_eq!(r[4]["transaction"]["points"], 20);
    // Retrying the whole batch replays the successes and re-evaluates the failures.
    let b = gw.partner(2, "POST", "/v1/batch", Some(cmds)).await;
    let r = b.body["results"].as_array().unwrap();
    assert_eq!(r[0]["transaction"]["replayed"], true);
    assert_eq!(
        r[1]["transaction"]["transaction_id"],
        a.body["results"][1]["transaction"]["transaction_id"]
    );
    assert_eq!(r[4]["transaction"]["replayed"], true);
    assert_eq!(r[2]["status"], 422);
    let empty = gw
        .partner(2, "POST", "/v1/batch", Some(json!({"commands": []})))
        .await;
    assert_eq!(
        (empty.status.as_u16(), empty.problem()),
        (400, "invalid-request")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_and_rates_price_without_posting() {
    let gw = Gw::start().await;
    let before = gw.fingerprint(&[M]).await;
    let q = gw
        .partner(
            3,
            "POST",
            "/v1/quote",
            Some(json!({"operation": "earn", "amount": {"value": "19.99", "unit": "GBP"}})),
        )
        .await;
    assert_eq!(
        q.body,
        json!({"operation": "earn", "points": 99, "rate_version": 1, "points_per_unit": "5", "rounding": "down",
               "bonuses": [], "total_points": 99})
    );
    let q = gw
        .partner(
            3,
            "POST",
            "/v1/quote",
            Some(json!({"operation": "burn", "amount": {"value": "4.999", "unit": "GBP"}})),
        )
        .await;
    assert_eq!(
        (q.status.as_u16(), q.problem()),
        (422, "amount-too-precise")
    );
    let q = gw
        .partner(
            3,
            "POST",
            "/v1/quote",
            Some(json!({"operation": "burn", "amount": {"value": "4.99", "unit": "GBP"}})),
        )
        .await;
    assert_eq!(
        (q.body["points"].clone(), q.body["rounding"].clone()),
        (json!(499), json!("up"))
    );
    let q = gw
        .partner(
            1,
            "POST",
            "/v1/quote",
            Some(json!({"operation": "burn", "amount": {"value": "10", "unit": "mile"}})),
        )
        .await;
    assert_eq!((q.status.as_u16(), q.problem()), (422, "unit-not-priced"));
    let r = gw.partner(2, "GET", "/v1/rates", None).await;
    assert_eq!(r.body[0]["unit"], "litre");
    assert_eq!(
        r.body[0]["branches"]["station-003"]["earn_points_per_unit"],
        "3"
    );
    assert_eq!(gw.fingerprint(&[M]).await, before);
    // A burn priced in money rounds up: £4.99 at 100 points per pound is 499 points.
    assert_eq!(gw.partner(3, "POST", "/v1/earn", Some(json!({"reference": "BILL-1", "member": "TN000042", "amount": {"value": "200", "unit": "GBP"}}))).await.status, 200);
    let b = gw.partner(3, "POST", "/v1/burn", Some(json!({"reference": "TOPUP-1", "member": "TN000042", "amount": {"value": "4.99", "unit": "GBP"}}))).await;
    assert_eq!(
        (
            b.body["points"].clone(),
            b.body["pricing"]["quantity"].clone()
        ),
        (json!(-499), json!("4.99"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_enrol_new_members_and_link_existing_ones() {
    let gw = Gw::start().await;
    let a = gw
        .partner(
            1,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FF777777"})),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let id = a.body["member_id"].as_u64().unwrap();
    assert!(id > 50, "new ids follow the demo members");
    let again = gw
        .partner(
            1,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FF777777"})),
        )
        .await;
    assert_eq!(
        (
            again.status.as_u16(),
            again.body["member_id"].as_u64(),
            again.body["created"].clone()
        ),
        (200, Some(id), json!(false))
    );
    assert_eq!(gw.earn_miles(777777, "NEW-1", "10").await.status, 200);
    // The member shows their coalition number and a one-time link code at the fuel station,
    // which links its card.
    let code = gw
        .op(
            "POST",
            &format!("/admin/v1/members/{id}/link-codes"),
            Some(json!({"reason": "member asked at the desk"})),
        )
        .await;
    assert_eq!(code.status, 201, "{:?}", code.body);
    let l = gw
        .partner(
            2,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FC-NEW-1", "member_id": id, "link_code": code.body["code"]})),
        )
        .await;
    assert_eq!(l.status, 201, "{:?}", l.body);
    let bal = gw.partner(2, "GET", "/v1/members/FC-NEW-1", None).await;
    assert_eq!(bal.body["posted"], 10);
    // The card is taken; a coalition number that does not exist is unknown.
    let t = gw
        .partner(
            2,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FC-NEW-1", "member_id": 1})),
        )
        .await;
    assert_eq!((t.status.as_u16(), t.problem()), (422, "reference-taken"));
    let u = gw
        .partner(
            2,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FC-NEW-2", "member_id": 999999})),
        )
        .await;
    assert_eq!((u.status.as_u16(), u.problem()), (404, "unknown-member"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_configure_partners_and_finance_only_reads() {
    let gw = Gw::start().await;
    let a = gw
        .bearer("ot_wrong", "GET", "/admin/v1/partners", None)
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (401, "unknown-key"));
    let a = gw.raw("GET", "/admin/v1/partners", vec![], vec![]).await;
    assert_eq!((a.status.as_u16(), a.problem()), (401, "unauthenticated"));
    let finance = gw.cred("FINANCE_TOKEN");
    let list = gw.bearer(&finance, "GET", "/admin/v1/partners", None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 3);
    assert_eq!(list.body[0]["name"], "SkyWays airline");
    assert_eq!(list.body[0]["issuance_price_per_point"], "0.012");
    let spec = json!({"name": "MegaMart", "currency": "EUR", "issuance_price_per_point": "0.011", "redemption_price_per_point": "0.009", "points_validity_days": 365});
    let a = gw
        .bearer(&finance, "PUT", "/admin/v1/partners/4", Some(spec.clone()))
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (403, "forbidden-role"));
    let bad = json!({"name": "X", "currency": "EURO", "issuance_price_per_point": "0.011", "redemption_price_per_point": "0.009", "points_validity_days": null});
    let a = gw
        .op("PUT", "/admin/v1/partners/4", Some(bad.clone()))
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (400, "invalid-request"));
    let mut unknown = bad;
    unknown["currency"] = json!("XYZ");
    let a = gw.op("PUT", "/admin/v1/partners/4", Some(unknown)).await;
    assert_eq!((a.status.as_u16(), a.problem()), (422, "unknown-currency"));
    let a = gw.op("PUT", "/admin/v1/partners/4", Some(spec)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["points_validity_days"], 365);
    let a = gw.op("GET", "/admin/v1/partners/5", None).await;
    assert_eq!((a.status.as_u16(), a.problem()), (404, "unknown-partner"));
    // Rates: retroactive tables are refused; a future table is listed but not in force.
    let a = gw
        .op(
            "POST",
            "/admin/v1/partners/4/rates",
            Some(json!({"unit": "EUR", "earn_points_per_unit": "1", "effective_from_ms": 1000})),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.problem()), (422, "rates-in-the-past"));
    let a = gw
        .op(
            "POST",
            "/admin/v1/partners/4/rates",
            Some(json!({"unit": "EUR", "earn_points_per_unit": "-1"})),
        )
        .await;
    // A rate outside its documented grammar fails to parse, like any field of the wrong shape.
    assert_eq!((a.status.as_u16(), a.problem()), (400, "malformed-request"));
    let a = gw.op("POST", "/admin/v1/partners/4/rates", Some(json!({"unit": "EUR", "earn_points_per_unit": "1", "effective_from_ms": (now_s() + 3600) * 1000}))).await;
    assert_eq!(a.status, 201);
    assert_eq!(
        gw.op("GET", "/admin/v1/partners/4/rates", None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Members and adjustments.
    let m = gw.op("POST", "/admin/v1/members", None).await;
    assert_eq!(m.status, 201);
    let id = m.body["member_id"].as_u64().unwrap();
    let adj = gw.op("POST", &format!("/admin/v1/members/{id}/adjustments"), Some(json!({"reference": "TICKET-9", "points": 250, "reason": "goodwill after a lost booking"}))).await;
    assert_eq!(
        (
            adj.status.as_u16(),
            adj.body["kind"].clone(),
            adj.body["points"].clone()
        ),
        (200, json!("adjustment"), json!(250))
    );
    let a = gw
        .bearer(&finance, "GET", &format!("/admin/v1/members/{id}"), None)
        .await;
    assert_eq!(a.body["posted"], 250);
    let a = gw
        .op("GET", "/admin/v1/accounts/programme%2Fadjustments", None)
        .await;
    assert_eq!(a.body["points"], -250);
    let a = gw.op("GET", "/admin/v1/accounts/nonsense", None).await;
    assert_eq!((a.status.as_u16(), a.problem()), (404, "not-found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_over_its_rate_limit_gets_429_with_retry_after() {
    let gw = Gw::start().await;
    let spec = json!({"name": "SkyWays airline", "currency": "EUR", "issuance_price_per_point": "0.012", "redemption_price_per_point": "0.008", "points_validity_days": 1095, "requests_per_second": 1, "burst": 1});
    assert_eq!(
        gw.op("PUT", "/admin/v1/partners/1", Some(spec))
            .await
            .status,
        200
    );
    let mut limited = None;
    for i in 0..5 {
        let a = gw.partner(1, "GET", "/v1/rates", None).await;
        if a.status == 429 {
            limited = Some((i, a));
            break;
        }
    }
    let (_, a) = limited.expect("a request over 1 per second is limited");
    assert_eq!(a.problem(), "rate-limited");
    assert!(
        a.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Other partners are not affected.
    assert_eq!(gw.partner(2, "GET", "/v1/rates", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_and_applies_nothing_it_refused() {
    let gw = Gw::start_with(|c| {
        c.queue_capacity = 1;
        c.batch_commands_max = 1000;
    })
    .await;
    let cmds: Vec<_> = (0..1000)
        .map(|i| json!({"op": "earn", "reference": format!("Q-{i}"), "member": format!("FF{:06}", 1 + i % 50), "amount": {"value": "1", "unit": "mile"}}))
        .collect();
    let a = gw
        .partner(1, "POST", "/v1/batch", Some(json!({"commands": cmds})))
        .await;
    assert_eq!(a.status, 200);
    let results = a.body["results"].as_array().unwrap();
    let refused: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r["status"] == 503)
        .map(|(i, _)| i)
        .collect();
    assert!(
        !refused.is_empty(),
        "a queue of one cannot take 1,000 commands at once"
    );
    for r in results {
        assert!(
            r["status"] == 200 || r["problem"]["type"] == "/problems/overloaded",
            "{r}"
        );
    }
    let applied = results.iter().filter(|r| r["status"] == 200).count() as i64;
    let iss = gw
        .op("GET", "/admin/v1/accounts/partner%2F1%2Fissuance", None)
        .await;
    assert_eq!(
        iss.body["points"], -applied,
        "exactly the acknowledged earns were applied"
    );
    let t = gw
        .partner(
            1,
            "GET",
            &format!("/v1/transactions/Q-{}", refused[0]),
            None,
        )
        .await;
    assert_eq!(t.status, 404);
}
