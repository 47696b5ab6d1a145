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

/// One throttled partner filled the shared nonce cache with requests it was refused (429), and
/// every other partner then got 503. The rate limit now comes before the nonce is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_partner_cannot_fill_the_nonce_cache_and_lock_others_out() {
    // 16 places in each of the cache's 16 shards: the throttled partner alone sends more.
    let gw = Gw::start_with(|c| c.nonce_cache_capacity = 256).await;
    let slow = json!({"name": "SkyWays airline", "currency": "EUR",
        "issuance_price_per_point": "0.012", "redemption_price_per_point": "0.008",
        "points_validity_days": 1095, "requests_per_second": 1, "burst": 1});
    let a = gw.op("PUT", "/admin/v1/partners/1", Some(slow)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let mut throttled = 0;
    for _ in 0..400 {
        let r = gw.partner(1, "GET", "/v1/members/FF000042", None).await;
        if r.status == 429 {
            throttled += 1;
        }
    }
    assert!(throttled >= 350, "the partner was throttled: {throttled}");
    for i in 0..20 {
        let r = gw.partner(2, "GET", "/v1/members/FC000042", None).await;
        assert_eq!(
            r.status, 200,
            "request {i} of another partner: {:?}",
            r.body
        );
    }
}

/// A timestamp of now − 2^63 overflowed the skew check and was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_at_the_ends_of_i64_are_stale_and_nonces_keep_to_their_charset() {
    let gw = Gw::start().await;
    let (key, secret) = (gw.cred("SKYWAYS_KEY_ID"), gw.cred("SKYWAYS_SECRET"));
    let target = "/v1/members/FF000042";
    let now = common::now_s();
    for ts in [i64::MIN, now.wrapping_sub(i64::MAX), i64::MAX] {
        let nonce = format!("n-{}", common::hex_random());
        let headers =
            common::sign_headers(&key, &secret, "GET", target, &ts.to_string(), &nonce, b"");
        let a = gw.raw("GET", target, headers, Vec::new()).await;
        assert_eq!(
            (a.status.as_u16(), a.problem()),
            (401, "stale-timestamp"),
            "{ts}"
        );
    }
    // Outside the charset; a header that is not even visible ASCII is as good as absent.
    for (nonce, problem) in [
        ("has space in it 12345", "bad-signature"),
        ("semi;colon;nonce;12", "bad-signature"),
        ("ünïcödé-nonce-12345", "unauthenticated"),
    ] {
        let headers =
            common::sign_headers(&key, &secret, "GET", target, &now.to_string(), nonce, b"");
        let a = gw.raw("GET", target, headers, Vec::new()).await;
        assert_eq!((a.status.as_u16(), a.problem()), (401, problem), "{nonce}");
    }
}

/// A missing master key file was silently created anew (a wrong path changed every partner's
/// secret), an existing one's permissions were never checked, and the data directory and
/// store files were readable by others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_is_never_created_silently_and_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = partners_gateway::config::Config::for_tests(&dir.path().join("data"));
    config.demo = false;
    let missing = partners_gateway::start(config.clone()).await;
    let why = format!("{:#}", missing.err().expect("refused"));
    assert!(why.contains("init-key"), "{why}");
    assert!(!config.master_key_file.exists(), "nothing was created");

    partners_gateway::ops::registry::create_master_key(&config.master_key_file).expect("create");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&config.master_key_file), 0o600);
    std::fs::set_permissions(
        &config.master_key_file,
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let open = partners_gateway::start(config.clone()).await;
    let why = format!("{:#}", open.err().expect("refused"));
    assert!(why.contains("chmod 600"), "{why}");

    std::fs::set_permissions(
        &config.master_key_file,
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let running = partners_gateway::start(config.clone())
        .await
        .expect("starts");
    assert_eq!(mode(&config.data), 0o700);
    running.stop().await.expect("stops");
    for entry in std::fs::read_dir(&config.data).expect("list") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            assert_eq!(mode(&path) & 0o077, 0, "{} is private", path.display());
        }
    }
}

/// A client's request id was echoed and logged as sent (8,000 characters were accepted), and
/// answers had no security headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_bounded_and_answers_carry_security_headers() {
    let gw = Gw::start().await;
    let long = "a".repeat(8_000);
    for (sent, kept) in [
        ("trace-123.abc_DEF", true),
        (long.as_str(), false),
        ("bad id with spaces", false),
        ("<script>", false),
    ] {
        let a = gw
            .raw(
                "GET",
                "/healthz",
                vec![("x-request-id".into(), sent.into())],
                Vec::new(),
            )
            .await;
        let echoed = a.headers["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert_eq!(echoed == sent, kept, "{sent:.20}");
        assert!(echoed.len() <= 64);
    }
    let a = gw.partner(1, "GET", "/v1/members/FF000042", None).await;
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(a.headers[name], value, "{name}");
    }
}

async fn get_healthz_from(local: &str, addr: std::net::SocketAddr) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{local}:0").parse().expect("address"))?;
    let mut stream = socket.connect(addr).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// A gateway capped at `max` connections, `per_ip_max` from one address, with a header-read
/// timeout of one second; and its address.
async fn gateway_with_connection_caps(max: usize, per_ip_max: usize) -> (Gw, std::net::SocketAddr) {
    let gw = Gw::start_with(move |c| {
        c.connections = partners_gateway::config::ConnectionLimits {
            max,
            per_ip_max,
            header_read_timeout_ms: 1_000,
            request_timeout_ms: 30_000,
            in_flight_max: 4_096,
        }
    })
    .await;
    let addr = gw
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    (gw, addr)
}

/// 300 connections that sent their headers slowly all stayed open, and with few file
/// descriptors the health check timed out. Now connections are capped in all and per address,
/// and a request head that does not arrive in time closes its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_are_capped_and_closed_and_the_service_keeps_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_gw, addr) = gateway_with_connection_caps(64, 32).await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // Part of a request head, and then nothing.
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
            .await;
        slow.push(s);
    }
    // Another address still gets an answer at once.
    let started = std::time::Instant::now();
    let answer = get_healthz_from("127.0.0.2", addr).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.80}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Beyond the per-address cap, connections were closed at once; within it, after the
    // header-read timeout. Every slow connection ends.
    let mut closed = 0;
    for s in &mut slow {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await;
        if matches!(read, Ok(Ok(_)) | Ok(Err(_))) {
            closed += 1;
        }
    }
    assert_eq!(closed, 300, "every slow connection was closed");
    // With them gone, the capped address is served again.
    let answer = get_healthz_from("127.0.0.1", addr).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.80}");
}

/// A connection that sent nothing at all was held for ever: the header-read timeout started
/// only once the first bytes told HTTP/1 from HTTP/2, so `max` silent connections shut every
/// client out. Now the gateway speaks HTTP/1.1 only and the timeout runs from the accept:
/// silent connections, one stalled in the middle of an HTTP/2 preface, and ones left idle
/// after a request are all closed, and their slots serve other clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_gw, addr) = gateway_with_connection_caps(24, 24).await;
    let mut held = Vec::new();
    // Twelve that send nothing, six that stop inside the HTTP/2 preface, six that are answered
    // once and then say nothing more: every slot taken.
    for i in 0..24 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        if (12..18).contains(&i) {
            s.write_all(b"PRI * HT").await.expect("write");
        } else if i >= 18 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: idle\r\n\r\n")
                .await
                .expect("write");
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).await.expect("answer");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        }
        held.push(s);
    }
    let started = std::time::Instant::now();
    for (i, s) in held.iter_mut().enumerate() {
        // Read to the end (the gateway may answer 408 before it closes).
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(6), s.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(_)) | Ok(Err(_))),
            "connection {i} was closed by the gateway"
        );
    }
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(800),
        "closed by the timeout, not at once: {waited:?}"
    );
    // Their slots serve again.
    let answer = get_healthz_from("127.0.0.1", addr).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.80}");
}

/// Operator tokens had no expiry and could not be listed or revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_tokens_are_listed_without_secrets_expire_and_are_revoked() {
    let gw = Gw::start().await;
    let created = gw
        .op(
            "POST",
            "/admin/v1/operators",
            Some(json!({"name": "ops-bahar", "role": "operator", "expires_in_days": 30})),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.headers["cache-control"], "no-store");
    let token = created.body["token"].as_str().expect("token").to_string();
    let id = created.body["id"].as_str().expect("id").to_string();
    let expires = created.body["expires_at_ms"].as_i64().expect("expiry");
    let days = (expires - created.body["created_at_ms"].as_i64().expect("created")) / 86_400_000;
    assert_eq!(days, 30);

    let list = gw
        .bearer(
            &gw.cred("FINANCE_TOKEN"),
            "GET",
            "/admin/v1/operators",
            None,
        )
        .await;
    assert_eq!(list.status, 200);
    let text = list.body.to_string();
    assert!(text.contains(&id) && text.contains("ops-bahar"));
    assert!(!text.contains(&token), "no token is ever listed");
    let finance_create = gw
        .bearer(
            &gw.cred("FINANCE_TOKEN"),
            "POST",
            "/admin/v1/operators",
            Some(json!({"name": "x", "role": "operator"})),
        )
        .await;
    assert_eq!(finance_create.status, 403, "finance reads only");

    let works = gw.bearer(&token, "GET", "/admin/v1/partners", None).await;
    assert_eq!(works.status, 200);
    let revoked = gw
        .op("POST", &format!("/admin/v1/operators/{id}/revoke"), None)
        .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert!(revoked.body["revoked_at_ms"].as_i64().is_some());
    let refused = gw.bearer(&token, "GET", "/admin/v1/partners", None).await;
    assert_eq!(
        (refused.status.as_u16(), refused.problem()),
        (401, "unknown-key")
    );
}

/// One rate-limit check covered a batch of up to 1,000 commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_of_a_batch_counts_against_the_partners_rate() {
    let gw = Gw::start().await;
    let slow = json!({"name": "FuelCo stations", "currency": "EUR",
        "issuance_price_per_point": "0.010", "redemption_price_per_point": "0.007",
        "points_validity_days": 730, "requests_per_second": 10, "burst": 10});
    assert_eq!(
        gw.op("PUT", "/admin/v1/partners/2", Some(slow))
            .await
            .status,
        200
    );
    let batch = |n: usize, tag: &str| {
        let commands: Vec<_> = (0..n)
            .map(|i| {
                json!({"op": "earn", "reference": format!("{tag}-{i}"), "member": "FC000042",
                "amount": {"value": "1", "unit": "litre"}})
            })
            .collect();
        json!({ "commands": commands })
    };
    let big = gw
        .partner(2, "POST", "/v1/batch", Some(batch(50, "BIG")))
        .await;
    assert_eq!((big.status.as_u16(), big.problem()), (429, "rate-limited"));
    let first = gw
        .partner(2, "POST", "/v1/batch", Some(batch(8, "A")))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let second = gw
        .partner(2, "POST", "/v1/batch", Some(batch(8, "B")))
        .await;
    assert_eq!(
        (second.status.as_u16(), second.problem()),
        (429, "rate-limited")
    );
}

/// A signed request captured before a restart was accepted again after it. Accepted nonces
/// are now journaled in the store and learned at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_replayed_after_a_restart_is_refused() {
    let gw = Gw::start().await;
    let (key, secret) = (gw.cred("SKYWAYS_KEY_ID"), gw.cred("SKYWAYS_SECRET"));
    let target = "/v1/members/FF000042";
    let ts = common::now_s().to_string();
    let nonce = format!("n-{}", common::hex_random());
    let captured = common::sign_headers(&key, &secret, "GET", target, &ts, &nonce, b"");
    let first = gw.raw("GET", target, captured.clone(), Vec::new()).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let again = gw.raw("GET", target, captured.clone(), Vec::new()).await;
    assert_eq!(
        (again.status.as_u16(), again.problem()),
        (401, "replayed-nonce")
    );

    let dir = gw.stop().await;
    let config = partners_gateway::config::Config::for_tests(&dir.path().join("data"));
    let gw = Gw::start_in(dir, config).await;
    let replay = gw.raw("GET", target, captured, Vec::new()).await;
    assert_eq!(
        (replay.status.as_u16(), replay.problem()),
        (401, "replayed-nonce"),
        "{:?}",
        replay.body
    );
    // A fresh request is served as usual.
    let fresh = gw.partner(1, "GET", target, None).await;
    assert_eq!(fresh.status, 200);
}

/// The replay cache's fill is a metric (with an alert in deploy/docker/alerts.yml).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_cache_reports_its_fill() {
    let gw = Gw::start_with(|c| c.nonce_cache_capacity = 4_096).await;
    for _ in 0..5 {
        assert_eq!(
            gw.partner(1, "GET", "/v1/members/FF000042", None)
                .await
                .status,
            200
        );
    }
    let text = gw
        .http
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(gw.cred("FINANCE_TOKEN"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert_eq!(value("nonce_cache_capacity"), 4_096.0);
    assert!(value("nonce_cache_entries") >= 5.0);
}

/// Unauthenticated traffic had no rate limit: an address that keeps failing authentication is
/// now refused outright for a moment, and other addresses are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_failing_authentication_is_refused_and_others_are_not() {
    let gw = Gw::start().await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().expect("address"))
            .build()
            .expect("client")
    };
    let attacker = from("127.0.0.3");
    let mut refused_outright = 0;
    for i in 0..300 {
        let r = attacker
            .get(format!("{}/v1/members/FF000042", gw.base))
            .header("x-key-id", "pk_unknown")
            .header("x-timestamp", common::now_s().to_string())
            .header("x-nonce", format!("nonce-{i:012}"))
            .header("x-signature", "00")
            .send()
            .await
            .expect("answered");
        if r.status() == 429 {
            refused_outright += 1;
        } else {
            assert_eq!(r.status(), 401);
        }
    }
    assert!(
        refused_outright > 100,
        "the address was refused: {refused_outright}"
    );
    // Operator guesses count too.
    let op = attacker
        .get(format!("{}/admin/v1/partners", gw.base))
        .bearer_auth("ot_guess")
        .send()
        .await
        .expect("answered");
    assert_eq!(op.status(), 429);
    // Honest traffic from elsewhere is served.
    let ok = gw.partner(1, "GET", "/v1/members/FF000042", None).await;
    assert_eq!(ok.status, 200);
}

/// Extreme values (`i64::MIN`, `i64::MAX`, `u64::MAX`, beyond) in every numeric field of every
/// request: each is refused with a 4xx and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_numbers_in_every_request_are_refused_and_change_nothing() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(42, "BK-1", "100").await.status, 200);
    let before = gw.fingerprint(&[42]).await;
    let extremes = [
        "-9223372036854775808",
        "9223372036854775807",
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "0",
        "1e300",
    ];
    for x in extremes {
        let partner_bodies = [
            (
                "/v1/burn",
                format!(r#"{{"reference":"E-{x}","member":"FC000042","points":{x}}}"#),
            ),
            (
                "/v1/holds",
                format!(
                    r#"{{"reference":"E-{x}","member":"FC000042","points":{x},"timeout_seconds":60}}"#
                ),
            ),
            (
                "/v1/holds",
                format!(
                    r#"{{"reference":"F-{x}","member":"FC000042","points":5,"timeout_seconds":{x}}}"#
                ),
            ),
            (
                "/v1/members",
                format!(r#"{{"reference":"FC-E","member_id":{x}}}"#),
            ),
            (
                "/v1/reversals",
                format!(r#"{{"reference":"R-{x}","original_reference":"BK-1","points":{x}}}"#),
            ),
        ];
        for (path, body) in partner_bodies {
            let bytes = body.clone().into_bytes();
            let ts = common::now_s().to_string();
            let nonce = format!("n-{}", common::hex_random());
            let (key, secret) = (gw.cred("FUELCO_KEY_ID"), gw.cred("FUELCO_SECRET"));
            let mut headers =
                common::sign_headers(&key, &secret, "POST", path, &ts, &nonce, &bytes);
            headers.push(("content-type".into(), "application/json".into()));
            let a = gw.raw("POST", path, headers, bytes).await;
            assert!(a.status.is_client_error(), "{path} {body}: {:?}", a.body);
        }
        for target in [
            format!("/v1/members/FC000042/statement?limit={x}"),
            format!("/v1/members/FC000042/statement?before={x}"),
        ] {
            let a = gw.partner(2, "GET", &target, None).await;
            assert!(
                a.status.is_client_error() || a.status == 200,
                "{target}: {:?}",
                a.body
            );
        }
        // (An adjustment of -1 point is a valid correction: not sent.)
        let adj = if x == "-1" {
            None
        } else {
            Some(
                gw.raw(
                    "POST",
                    "/admin/v1/members/42/adjustments",
                    vec![
                        (
                            "authorization".into(),
                            format!("Bearer {}", gw.cred("OPERATOR_TOKEN")),
                        ),
                        ("content-type".into(), "application/json".into()),
                    ],
                    format!(r#"{{"reference":"A-{x}","points":{x},"reason":"extreme"}}"#)
                        .into_bytes(),
                )
                .await,
            )
        };
        if let Some(adj) = adj {
            assert!(
                adj.status.is_client_error(),
                "adjustment {x}: {:?}",
                adj.body
            );
        }
        let member = gw.op("GET", &format!("/admin/v1/members/{x}"), None).await;
        assert!(member.status.is_client_error(), "member {x}");
        let partner = gw.op("GET", &format!("/admin/v1/partners/{x}"), None).await;
        assert!(partner.status.is_client_error(), "partner {x}");
    }
    assert_eq!(gw.fingerprint(&[42]).await, before, "nothing changed");
}
