//! The service around the API: the OpenAPI document against the live server, Prometheus
//! metrics, health, request ids, the documented curl recipe, and restarts.

mod common;

use common::Gw;
use partners_gateway::ops::error::ALL_KINDS;
use serde_json::{json, Value};
use std::path::PathBuf;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// Replaces `{param}` segments with sample values.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{id}" => "1",
            "{member}" => "FF000001",
            "{account}" => "programme%2Fpromotions",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Validates `body` against the schema the document gives for `path`, `method` and `status`.
fn check_against_doc(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let responses = &doc["paths"][path][method]["responses"];
    let by_status = &responses[status.to_string()];
    let response = if by_status.is_null() {
        &responses[format!("{}XX", status / 100)]
    } else {
        by_status
    };
    assert!(
        !response.is_null(),
        "{method} {path}: status {status} is not documented"
    );
    let content = response["content"].as_object().expect("documented content");
    let schema = &content.values().next().expect("one media type")["schema"];
    let root = json!({"components": doc["components"], "allOf": [schema]});
    let validator = jsonschema::validator_for(&root).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\nbody: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_and_matches_the_live_server() {
    let gw = Gw::start().await;
    let a = gw.raw("GET", "/openapi.json", vec![], vec![]).await;
    assert_eq!(a.status, 200);
    let doc = a.body;
    assert_eq!(doc["openapi"], "3.1.0");
    oas3::from_json(doc.to_string()).expect("the document parses as OpenAPI 3.1");

    // Every documented operation is routed: unauthenticated calls reach the auth layer (401)
    // or the handler, never the router's 404 or 405.
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "{} paths", paths.len());
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let a = gw
                .raw(&method.to_uppercase(), &concrete(path), vec![], vec![])
                .await;
            let routed = !(a.problem() == "not-found" && a.body["detail"] == "no such route")
                && a.status != 405;
            assert!(
                routed,
                "{method} {path} is documented but not routed: {:?}",
                a.body
            );
            if path.starts_with("/v1/") || path.starts_with("/admin/") {
                assert_eq!(a.status, 401, "{method} {path} must need credentials");
                check_against_doc(&doc, path, method, 401, &a.body);
            }
        }
    }
    // Live answers match their documented schemas.
    let earn = gw.earn_miles(7, "DOC-1", "100").await;
    check_against_doc(&doc, "/v1/earn", "post", 200, &earn.body);
    let bad = gw.earn_miles(7, "DOC-1", "0").await;
    check_against_doc(&doc, "/v1/earn", "post", 400, &bad.body);
    let bal = gw.partner(1, "GET", "/v1/members/FF000007", None).await;
    check_against_doc(&doc, "/v1/members/{member}", "get", 200, &bal.body);
    let st = gw
        .partner(1, "GET", "/v1/members/FF000007/statement?limit=5", None)
        .await;
    check_against_doc(&doc, "/v1/members/{member}/statement", "get", 200, &st.body);
    let q = gw
        .partner(
            1,
            "POST",
            "/v1/quote",
            Some(json!({"operation": "earn", "amount": {"value": "5", "unit": "mile"}})),
        )
        .await;
    check_against_doc(&doc, "/v1/quote", "post", 200, &q.body);
    let r = gw.partner(1, "GET", "/v1/rates", None).await;
    check_against_doc(&doc, "/v1/rates", "get", 200, &r.body);
    let b = gw.partner(1, "POST", "/v1/batch", Some(json!({"commands": [
        {"op": "earn", "reference": "DOC-2", "member": "FF000007", "amount": {"value": "1", "unit": "mile"}},
        {"op": "burn", "reference": "DOC-3", "member": "FF000007", "points": 100000}]}))).await;
    check_against_doc(&doc, "/v1/batch", "post", 200, &b.body);
    let m = gw
        .partner(
            1,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FF-DOC"})),
        )
        .await;
    check_against_doc(&doc, "/v1/members", "post", 201, &m.body);
    let p = gw.op("GET", "/admin/v1/partners", None).await;
    check_against_doc(&doc, "/admin/v1/partners", "get", 200, &p.body);
    let k = gw
        .op(
            "POST",
            "/admin/v1/partners/2/keys",
            Some(json!({"scopes": ["read"]})),
        )
        .await;
    check_against_doc(&doc, "/admin/v1/partners/{id}/keys", "post", 201, &k.body);
    let acc = gw
        .op("GET", "/admin/v1/accounts/partner%2F1%2Fissuance", None)
        .await;
    check_against_doc(&doc, "/admin/v1/accounts/{account}", "get", 200, &acc.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    let gw = Gw::start().await;
    // Two earns and two burns: each is counted, not only the first.
    assert_eq!(gw.earn_miles(3, "MET-1", "321").await.status, 200);
    assert_eq!(gw.earn_miles(3, "MET-1B", "100").await.status, 200);
    for (reference, points) in [("MET-2", 21), ("MET-2B", 9)] {
        assert_eq!(
            gw.partner(
                2,
                "POST",
                "/v1/burn",
                Some(json!({"reference": reference, "member": "FC000003", "points": points}))
            )
            .await
            .status,
            200
        );
    }
    // Three refusals of one kind: the first makes the metrics' handles for its labels, the
    // next two count through them.
    for reference in ["MET-3", "MET-4", "MET-5"] {
        assert_eq!(
            gw.partner(
                2,
                "POST",
                "/v1/burn",
                Some(json!({"reference": reference, "member": "FC000003", "points": 1_000_000}))
            )
            .await
            .status,
            422
        );
    }
    // The metrics show each partner's volumes: no token, no metrics; a partner's signature is
    // not enough either.
    let anonymous = gw
        .http
        .get(format!("{}/metrics", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let as_partner = gw.partner(2, "GET", "/metrics", None).await;
    assert_eq!(as_partner.status, 401);
    let res = gw
        .http
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(gw.cred("FINANCE_TOKEN"))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text parses");
    let find = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    };
    let value = |s: &prometheus_parse::Sample| match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => f64::NAN,
    };
    // Other tests in this process share the recorder, so counts are lower bounds.
    let earn = find(
        "gateway_requests_total",
        &[("route", "/v1/earn"), ("partner", "1"), ("status", "200")],
    )
    .expect("earn requests counted");
    assert!(value(earn) >= 1.0);
    let refused = find(
        "gateway_requests_total",
        &[("route", "/v1/burn"), ("partner", "2"), ("status", "422")],
    )
    .expect("refused burns counted");
    assert!(
        value(refused) >= 3.0,
        "each refusal counted: {}",
        value(refused)
    );
    assert!(value(find("points_issued_total", &[("partner", "1")]).expect("issued")) >= 421.0);
    assert!(value(find("points_redeemed_total", &[("partner", "2")]).expect("redeemed")) >= 30.0);
    let is_histogram = |s: Option<&prometheus_parse::Sample>| matches!(s.map(|s| &s.value), Some(prometheus_parse::Value::Histogram(h)) if !h.is_empty());
    assert!(is_histogram(find(
        "gateway_request_duration_seconds",
        &[("route", "/v1/earn")]
    )));
    assert!(is_histogram(find("ledger_batch_size", &[])));
    assert!(is_histogram(find("ledger_commit_duration_seconds", &[])));
    assert!(find("ledger_queue_depth", &[]).is_some());
    // The single writer's windows: the keys it holds (at least this test's), and the reversal
    // totals (none reversed here; other tests may have).
    assert!(find("ledger_idempotency_keys_in_memory", &[]).is_some_and(|s| value(s) >= 1.0));
    assert!(find("ledger_reversal_totals_in_memory", &[]).is_some_and(|s| value(s) >= 0.0));
    // The writer's member page copies, by form, and the members they encoded.
    for form in ["whole", "changes"] {
        assert!(find("ledger_member_pages_written_total", &[("form", form)]).is_some());
    }
    assert!(find("ledger_member_page_members_encoded_total", &[]).is_some());
    // Memory: the store's cache at its configured capacity, its memtables holding this
    // test's writes, and the process's resident set.
    assert_eq!(
        find("ledger_store_cache_capacity_bytes", &[]).map(value),
        Some((256u64 << 20) as f64)
    );
    assert!(
        find("ledger_store_cache_bytes", &[]).is_some_and(|s| value(s) <= (256u64 << 20) as f64)
    );
    assert!(find("ledger_store_memtable_bytes", &[]).is_some_and(|s| value(s) > 0.0));
    assert!(find("process_resident_memory_bytes", &[]).is_some_and(|s| value(s) > 1e6));
    assert!(find("process_allocator_committed_bytes", &[]).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_request_ids() {
    let gw = Gw::start().await;
    let a = gw.raw("GET", "/healthz", vec![], vec![]).await;
    assert_eq!((a.status.as_u16(), a.body.clone()), (200, json!("ok")));
    let a = gw.ready().await;
    assert_eq!((a.status.as_u16(), a.body.clone()), (200, json!("ready")));
    let generated = a.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let a = gw
        .raw(
            "GET",
            "/healthz",
            vec![("x-request-id".into(), "trace-me-123".into())],
            vec![],
        )
        .await;
    assert_eq!(a.headers["x-request-id"], "trace-me-123");
    // Errors carry it too.
    let a = gw
        .raw(
            "POST",
            "/v1/earn",
            vec![("x-request-id".into(), "trace-me-456".into())],
            vec![],
        )
        .await;
    assert_eq!(
        (
            a.status.as_u16(),
            a.headers["x-request-id"].to_str().unwrap()
        ),
        (401, "trace-me-456")
    );
}

/// While the member links are read into memory after start, `/readyz` answers 503 with
/// `Retry-After`, and the gateway answers requests all the same; ready once it is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_warm_up() {
    let gw = Gw::start().await;
    gw.ready().await;
    gw.app().set_warming(true);
    let a = gw.raw("GET", "/readyz", vec![], vec![]).await;
    assert_eq!(a.status.as_u16(), 503);
    assert_eq!(a.problem(), "unavailable");
    assert_eq!(a.headers["retry-after"], "1");
    assert_eq!(
        a.body["detail"],
        json!("warming up: reading member links into memory")
    );
    let a = gw.raw("GET", "/healthz", vec![], vec![]).await;
    assert_eq!(a.status.as_u16(), 200);
    let a = gw.partner(1, "GET", "/v1/rates", None).await;
    assert_eq!(a.status.as_u16(), 200, "{}", a.body);
    gw.app().set_warming(false);
    let a = gw.raw("GET", "/readyz", vec![], vec![]).await;
    assert_eq!((a.status.as_u16(), a.body.clone()), (200, json!("ready")));
}

#[test]
fn every_problem_type_is_documented() {
    let api = std::fs::read_to_string(repo_file("docs/api.md")).unwrap();
    for k in ALL_KINDS {
        let row = format!("| `/problems/{}` | {} |", k.slug(), k.status().as_u16());
        assert!(
            api.contains(&row),
            "docs/api.md lacks the row for {}",
            k.slug()
        );
    }
}

/// The shell blocks between the recipe markers of docs/api.md.
/// `again` answers as a replay of `first`: same transaction, marked replayed.
fn assert_replays(again: &common::Answer, first: &common::Answer) {
    assert_eq!(
        (
            again.body["replayed"].clone(),
            again.body["transaction_id"].clone()
        ),
        (json!(true), first.body["transaction_id"].clone())
    );
}

fn recipe() -> String {
    common::shell_blocks(
        "docs/api.md",
        "<!-- recipe:begin -->",
        "<!-- recipe:end -->",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curl_and_openssl_recipe_in_the_docs_earns_and_burns_as_written() {
    let gw = Gw::start().await;
    let script = recipe();
    assert!(
        script.contains("openssl dgst -sha256 -hmac"),
        "the recipe signs with openssl"
    );
    let stdout = common::run_recipe(&gw, &script).await;
    let answers: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON answer"))
        .collect();
    assert_eq!(answers.len(), 3, "{stdout}");
    assert_eq!(
        (answers[0]["kind"].clone(), answers[0]["points"].clone()),
        (json!("earn"), json!(1200))
    );
    assert_eq!(
        answers[1],
        json!({"member": "FC000042", "posted": 1200, "pending": 0, "available": 1200})
    );
    assert_eq!(
        (
            answers[2]["kind"].clone(),
            answers[2]["points"].clone(),
            answers[2]["member_balance_after"].clone()
        ),
        (json!("burn"), json!(-500), json!(700))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_and_configuration_survive_a_restart() {
    let gw = Gw::start().await;
    let earn = gw.earn_miles(9, "RESTART-1", "900").await;
    assert_eq!(earn.status, 200);
    let key = gw
        .op(
            "POST",
            "/admin/v1/partners/3/keys",
            Some(json!({"scopes": ["read"]})),
        )
        .await;
    let creds = gw.creds.clone();
    let dir = gw.stop().await;
    let config = partners_gateway::config::Config::for_tests(&dir.path().join("data"));
    let mut gw = Gw::start_in(dir, config).await;
    gw.creds = creds;
    let again = gw.earn_miles(9, "RESTART-1", "900").await;
    assert_replays(&again, &earn);
    let bal = gw.partner(1, "GET", "/v1/members/FF000009", None).await;
    assert_eq!(bal.body["posted"], 900);
    // A key made before the restart still signs (its secret derives from the master key).
    let (kid, secret) = (
        key.body["key_id"].as_str().unwrap(),
        key.body["secret"].as_str().unwrap(),
    );
    assert_eq!(
        gw.signed_as(kid, secret, "GET", "/v1/members/TN000009", None)
            .await
            .body["posted"],
        900
    );
    // The demo was not seeded twice.
    assert_eq!(
        gw.op("GET", "/admin/v1/partners", None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn the_deployed_config_file_parses_and_selects_the_embedded_store() {
    let path = repo_file("deploy/systemd/gateway.toml");
    let config = partners_gateway::config::Config::resolve(partners_gateway::config::ServeArgs {
        config: Some(path),
        ..Default::default()
    })
    .expect("deploy/systemd/gateway.toml is a valid config");
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.data, PathBuf::from("/var/lib/points/data"));
    assert_eq!(config.log_format, partners_gateway::config::LogFormat::Json);
    assert_eq!(config.batch_commands_max, 1000);
    assert_eq!(config.reversal_totals_in_memory, 250_000);
    assert_eq!(config.member_write_delay, 1_000_000);
    assert_eq!(config.store_cache_mb, 256);
    assert_eq!(config.links_in_memory, 1_000_000);
}

#[test]
fn the_member_write_delay_and_the_links_kept_come_from_the_file_and_a_flag_overrides_them() {
    use partners_gateway::config::{Config, ServeArgs};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        "member_write_delay = 3000000\nlinks_in_memory = 4000000\n",
    )
    .unwrap();
    let from_file = Config::resolve(ServeArgs {
        config: Some(path.clone()),
        ..Default::default()
    })
    .expect("valid config");
    assert_eq!(from_file.member_write_delay, 3_000_000);
    assert_eq!(from_file.links_in_memory, 4_000_000);
    let flagged = Config::resolve(ServeArgs {
        config: Some(path),
        member_write_delay: Some(5_000_000),
        links_in_memory: Some(6_000_000),
        ..Default::default()
    })
    .expect("valid config");
    assert_eq!(flagged.member_write_delay, 5_000_000);
    assert_eq!(flagged.links_in_memory, 6_000_000);
    let default = Config::resolve(ServeArgs::default()).expect("defaults");
    assert_eq!(default.member_write_delay, 1_000_000);
    assert_eq!(default.links_in_memory, 1_000_000);
}

#[test]
fn a_store_cache_out_of_range_is_refused_with_a_clear_message() {
    use partners_gateway::config::{Config, ServeArgs};
    for bad in [0, (1 << 20) + 1] {
        let err = Config::resolve(ServeArgs {
            store_cache_mb: Some(bad),
            ..Default::default()
        })
        .expect_err("out of range");
        let msg = err.to_string();
        assert!(msg.contains("store_cache_mb must be 1 to 1048576"), "{msg}");
        assert!(msg.contains(&format!("got {bad}")), "{msg}");
    }
    let config = Config::resolve(ServeArgs {
        store_cache_mb: Some(64),
        ..Default::default()
    })
    .expect("64 MiB");
    assert_eq!(config.store_cache_mb, 64);
}

#[test]
fn an_unknown_store_is_refused_with_a_clear_message() {
    let err = partners_gateway::config::Config::resolve(partners_gateway::config::ServeArgs {
        store: Some("rocksdb".into()),
        ..Default::default()
    })
    .expect_err("rocksdb is not an engine");
    let msg = err.to_string();
    assert!(
        msg.contains("embedded") && msg.contains("fdb:<cluster file>"),
        "{msg}"
    );
}

#[test]
fn foundationdb_settings_are_checked() {
    use partners_gateway::config::{Config, ServeArgs, WriterPath};
    let fdb = || ServeArgs {
        store: Some("fdb:/etc/foundationdb/fdb.cluster".into()),
        ..Default::default()
    };
    let config = Config::resolve(ServeArgs {
        journal_shard: Some(7),
        ..fdb()
    })
    .expect("fdb settings resolve");
    assert_eq!(
        (
            config.writer,
            config.journal_shard,
            config.fdb_subspace.as_str()
        ),
        (WriterPath::Cluster, 7, "coalition/")
    );
    let err = Config::resolve(ServeArgs {
        journal_shard: Some(16),
        ..fdb()
    })
    .expect_err("shard 16 is out of range");
    assert!(err.to_string().contains("0 to 15"), "{err}");
    let err = Config::resolve(ServeArgs {
        writer: Some(WriterPath::Single),
        ..fdb()
    })
    .expect_err("one writer cannot own a shared cluster");
    assert!(err.to_string().contains("cluster"), "{err}");
}

#[cfg(not(feature = "fdb"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_without_foundationdb_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = partners_gateway::config::Config::for_tests(&dir.path().join("data"));
    config.store = ledger::store::EngineSpec::Fdb {
        cluster_file: "/etc/foundationdb/fdb.cluster".into(),
    };
    config.writer = partners_gateway::config::WriterPath::Cluster;
    let err = match partners_gateway::start(config).await {
        Err(e) => format!("{e:#}"),
        Ok(_) => panic!("started on FoundationDB without the fdb feature"),
    };
    assert!(err.contains("--features fdb"), "{err}");
}

/// The gateway on the cluster path (every batch a store transaction, registry changes by
/// transaction), here over the embedded store: the documented recipe works as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipe_runs_on_the_cluster_path() {
    let gw = Gw::start_with(|c| c.writer = partners_gateway::config::WriterPath::Cluster).await;
    let stdout = common::run_recipe(&gw, &recipe()).await;
    let last: Value = serde_json::from_str(stdout.lines().last().expect("answers")).unwrap();
    assert_eq!(
        (last["kind"].clone(), last["member_balance_after"].clone()),
        (json!("burn"), json!(700))
    );
    let earn = gw.earn_miles(9, "CLUSTER-1", "900").await;
    assert_eq!(earn.status, 200, "{:?}", earn.body);
    let again = gw.earn_miles(9, "CLUSTER-1", "900").await;
    assert_replays(&again, &earn);
    let bal = gw.partner(1, "GET", "/v1/members/FF000009", None).await;
    assert_eq!(bal.body["posted"], 900);
    let dir = gw.stop().await;
    let report = ledger::audit::audit(
        &ledger::store::Store::snapshot(
            &ledger::store::EmbeddedStore::open(&dir.path().join("data")).unwrap(),
        )
        .unwrap(),
    )
    .expect("the audit passes on the cluster-path store");
    // 3 contracts, 50 demo enrolments, the recipe's earn and burn, and the earn above.
    assert_eq!(
        (report.transactions, report.points_outstanding),
        (56, 700 + 900),
        "{report:?}"
    );
}
