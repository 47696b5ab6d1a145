//! Router assembly, middleware (request ids, tracing, metrics), health, OpenAPI and serving with
//! graceful shutdown.

use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::api::{operator, partner};
use crate::ops::error::{Kind, OpError};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger::PartnerId;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::Instant;
use tower::ServiceBuilder;
use tracing::Instrument;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Coalition points ledger: partners gateway",
        description = "Signed partner API (earn, burn, holds, reversals, batches, balances, statements, quotes) and the operator API. Signing and every error type: docs/api.md.",
    ),
    modifiers(&Security),
    components(schemas(Problem)),
    tags(
        (name = "partner", description = "Partner API; every request signed with HMAC-SHA256"),
        (name = "operator", description = "Operator API; bearer tokens, roles operator and finance"),
        (name = "programme", description = "Operator API for the programme's rules: campaigns, the points budget guard, settings"),
        (name = "engagement", description = "Operator API for engagement: rewards and vouchers, discount codes, referrals, draws, surveys and NPS, claims (docs/engagement.md)"),
        (name = "finance", description = "Operator API for finance: trial balance, liability, breakage, revenue, settlement, period close, reconciliation, exports (docs/finance.md)"),
        (name = "service", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "partner_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-key-id",
                "Key id; the request also carries x-timestamp, x-nonce and x-signature (HMAC-SHA256 of the canonical request, see docs/api.md)",
            ))),
        );
        components.add_security_scheme(
            "operator_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// A batch command's schema that client generators build a type for: a `oneOf` of one named
/// schema per `op` (each the single request's body plus `op`), with a discriminator on `op`.
/// (Derived, it is a `oneOf` of `allOf`s whose `$ref`s carry sibling descriptions, which
/// generators drop.)
struct BatchCommandSchema;

/// A schema that takes exactly one of `points` and `amount`: a `oneOf` of the two shapes, no
/// other property allowed (the server denies unknown fields). With `op`, a batch command's.
fn points_or_amount(
    schema: &utoipa::openapi::RefOr<utoipa::openapi::Schema>,
    op: Option<&str>,
) -> serde_json::Value {
    use serde_json::json;
    let mut base = serde_json::to_value(schema).expect("schemas encode");
    if let Some(op) = op {
        base["properties"]["op"] = json!({"type": "string", "enum": [op]});
        base["required"]
            .as_array_mut()
            .expect("required fields")
            .push(json!("op"));
    }
    let description = base["description"].take();
    let shape = |keep: &str, drop: &str| {
        let mut s = base.clone();
        s["properties"]
            .as_object_mut()
            .expect("properties")
            .remove(drop);
        s["required"]
            .as_array_mut()
            .expect("required fields")
            .push(json!(keep));
        s["additionalProperties"] = json!(false);
        s
    };
    json!({"description": description,
           "oneOf": [shape("points", "amount"), shape("amount", "points")]})
}

/// The schema of each batch command, by name and `op`.
fn batch_variants(
    burn: &utoipa::openapi::RefOr<utoipa::openapi::Schema>,
    hold: &utoipa::openapi::RefOr<utoipa::openapi::Schema>,
) -> [(&'static str, &'static str, serde_json::Value); 6] {
    use serde_json::json;
    let op = |name: &str| {
        json!({"type": "object", "required": ["op"],
               "properties": {"op": {"type": "string", "enum": [name]}}})
    };
    let with_op = |body: &str, name: &str| json!({"allOf": [{"$ref": format!("#/components/schemas/{body}")}, op(name)]});
    let reference = json!({"type": "string", "minLength": 1, "maxLength": 128,
        "pattern": "^[!-~]+$"});
    let points = json!({"type": ["integer", "null"], "format": "int64", "minimum": 1,
        "maximum": 1_000_000_000_000_i64});
    let on_hold = |name: &str, extra: Option<serde_json::Value>| {
        let mut properties = json!({"op": {"type": "string", "enum": [name]},
            "hold_reference": reference, "reference": reference});
        if let Some(p) = extra {
            properties["points"] = p;
        }
        json!({"type": "object", "required": ["op", "hold_reference", "reference"],
               "properties": properties})
    };
    [
        ("BatchEarn", "earn", with_op("EarnRequest", "earn")),
        ("BatchBurn", "burn", points_or_amount(burn, Some("burn"))),
        ("BatchHold", "hold", points_or_amount(hold, Some("hold"))),
        ("BatchCapture", "capture", on_hold("capture", Some(points))),
        ("BatchVoid", "void", on_hold("void", None)),
        (
            "BatchReversal",
            "reversal",
            with_op("ReversalRequest", "reversal"),
        ),
    ]
}

impl Modify for BatchCommandSchema {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use serde_json::json;
        let components = openapi.components.get_or_insert_with(Default::default);
        let burn = components.schemas["BurnRequest"].clone();
        let hold = components.schemas["HoldRequest"].clone();
        let mut one_of = Vec::new();
        let mut mapping = serde_json::Map::new();
        for (name, tag, schema) in batch_variants(&burn, &hold) {
            let schema = serde_json::from_value(schema).expect("a valid schema");
            components.schemas.insert(name.to_string(), schema);
            let target = format!("#/components/schemas/{name}");
            one_of.push(json!({"$ref": target}));
            mapping.insert(tag.to_string(), json!(target));
        }
        for (name, schema) in [("BurnRequest", &burn), ("HoldRequest", &hold)] {
            let exclusive = serde_json::from_value(points_or_amount(schema, None));
            components
                .schemas
                .insert(name.to_string(), exclusive.expect("a valid schema"));
        }
        let command = json!({
            "description": "One command of a batch: the single request's body plus `op`.",
            "oneOf": one_of,
            "discriminator": {"propertyName": "op", "mapping": mapping},
        });
        let command = serde_json::from_value(command).expect("a valid schema");
        components
            .schemas
            .insert("BatchCommand".to_string(), command);
    }
}

/// Limits the derive cannot state: an adjustment is never zero, and override names are 1 to 32
/// characters.
struct StatedLimits;

impl Modify for StatedLimits {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use serde_json::json;
        let components = openapi.components.get_or_insert_with(Default::default);
        let edit = |schema: &mut utoipa::openapi::RefOr<utoipa::openapi::Schema>,
                    f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = serde_json::to_value(&*schema).expect("schemas encode");
            f(&mut v);
            *schema = serde_json::from_value(v).expect("a valid schema");
        };
        if let Some(s) = components.schemas.get_mut("AdjustmentRequest") {
            edit(s, &|v| {
                let range = |min: i64, max: i64| json!({"type": "integer", "format": "int64", "minimum": min, "maximum": max});
                v["properties"]["points"] = json!({
                    "description": "Signed change to the member's points: not zero, within ±1,000,000,000,000.",
                    "oneOf": [range(-1_000_000_000_000, -1), range(1, 1_000_000_000_000)],
                });
            });
        }
        if let Some(s) = components.schemas.get_mut("RateTableDraft") {
            edit(s, &|v| {
                for field in ["branches", "categories"] {
                    v["properties"][field]["propertyNames"] =
                        json!({"type": "string", "minLength": 1, "maxLength": 32});
                }
            });
        }
    }
}

/// The process-wide Prometheus recorder (one per process; tests share it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("seconds".into()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
                    ],
                )
                .expect("buckets are non-empty")
                .set_buckets_for_metric(
                    Matcher::Full("ledger_batch_size".into()),
                    &[1.0, 10.0, 100.0, 1000.0, 4000.0, 8000.0, 16000.0],
                )
                .expect("buckets are non-empty")
                .install_recorder()
                .expect("the metrics recorder is installed once per process")
        })
        .clone()
}

/// The whole HTTP surface and its OpenAPI document.
pub fn router(app: AppState) -> (axum::Router, utoipa::openapi::OpenApi) {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(partner::router(app.clone()))
        .merge(operator::router(app.clone()))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
        .split_for_parts();
    let mut openapi = openapi;
    BatchCommandSchema.modify(&mut openapi);
    StatedLimits.modify(&mut openapi);
    let doc = openapi.clone();
    let web = std::sync::Arc::new(crate::web::Web {
        sessions: Default::default(),
        codes_in_log: app.demo,
    });
    let router = router
        .merge(crate::web::router(web))
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { Json(doc) }),
        )
        .fallback(|| async { OpError::new(Kind::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            OpError::new(
                Kind::MethodNotAllowed,
                "the route does not accept this method",
            )
        })
        // One layer at the edge of every route (axum boxes each `Router::layer` once per
        // request): request id, span, bounds, metrics and security headers in `edge`.
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(app.clone(), edge))
                .layer(axum::extract::DefaultBodyLimit::max(
                    app.limits.body_bytes_max,
                )),
        )
        .with_state(app);
    (router, openapi)
}

/// Longest request id kept from a client; a longer one, or one with other characters than
/// `A-Z a-z 0-9 - _ .`, is replaced by a fresh one (it is echoed and logged).
pub const REQUEST_ID_LEN_MAX: usize = 64;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The headers every answer carries. Answers carry balances and statements, so none may be
/// cached.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::CACHE_CONTROL, "no-store"),
];

/// The edge of every route, in one middleware:
/// - the request id: a client's is kept when it is short and plain, else a fresh UUID v4
///   replaces it; it is echoed on the answer and names the request's span;
/// - the bounds: beyond `in_flight_max` requests at once, or past the request timeout (slow
///   bodies included), the answer is 503 with `Retry-After`;
/// - the metrics: requests by route, method, partner and status, and their duration;
/// - the security headers on every answer.
async fn edge(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let plain = |v: &HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= REQUEST_ID_LEN_MAX
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
    };
    let id = match req.headers().get(&X_REQUEST_ID) {
        Some(v) if plain(v) => v.clone(),
        _ => {
            let mut buf = uuid::Uuid::encode_buffer();
            let fresh = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
            let v = HeaderValue::from_str(fresh).expect("a UUID is a header value");
            req.headers_mut().insert(X_REQUEST_ID, v.clone());
            v
        }
    };
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %req.uri().path(),
        request_id = %id.to_str().unwrap_or("-"),
    );
    let mut res = match app.in_flight.try_acquire() {
        Err(_) => {
            metrics::counter!("requests_shed_total", "why" => "in_flight").increment(1);
            OpError::new(
                Kind::Overloaded,
                "too many requests in flight; retry shortly",
            )
            .retry_after(1)
            .into_response()
        }
        Ok(_permit) => {
            let inner = next.run(req).instrument(span.clone());
            match tokio::time::timeout(app.limits.request_timeout, inner).await {
                Ok(res) => res,
                Err(_) => {
                    metrics::counter!("requests_shed_total", "why" => "timeout").increment(1);
                    OpError::new(
                        Kind::Unavailable,
                        "the request took too long; retry with the same reference",
                    )
                    .retry_after(1)
                    .into_response()
                }
            }
        }
    };
    let elapsed = started.elapsed();
    let status = res.status();
    // An answer that asks the client to come back (`Retry-After`: shed, draining, warming up,
    // a full queue) is the service working as designed; at twice capacity it is most answers,
    // and an error line for each would cost the cores the acknowledged requests need. They
    // are counted in `/metrics` (`gateway_requests_total` by status, `requests_shed_total`).
    if status.is_server_error() && !res.headers().contains_key(axum::http::header::RETRY_AFTER) {
        span.in_scope(
            || tracing::error!(status = status.as_u16(), latency = ?elapsed, "response failed"),
        );
    } else {
        span.in_scope(|| tracing::debug!(status = status.as_u16(), latency = ?elapsed, "finished processing request"));
    }
    let partner = res.extensions().get::<PartnerId>().map(|p| p.0);
    record_request(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        method,
        partner,
        status,
        elapsed,
    );
    let h = res.headers_mut();
    h.entry(X_REQUEST_ID).or_insert(id);
    for (name, value) in SECURITY_HEADERS {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    res
}

/// A request's metrics: its duration by route and method, and its count by route, method,
/// partner and status.
struct RequestHandles {
    duration: metrics::Histogram,
    requests: metrics::Counter,
}

/// The handles of each label combination seen, by route, then (method, partner, status). The
/// recorder is the process's (installed by [`metrics_handle`] before any request is served), so
/// this is too.
type RequestMetrics = HashMap<String, HashMap<(Method, Option<u32>, u16), RequestHandles>>;

static REQUEST_METRICS: LazyLock<RwLock<RequestMetrics>> = LazyLock::new(Default::default);

/// Label combinations kept in [`REQUEST_METRICS`]; past it (methods are open-ended), a request
/// builds its labels and looks its metrics up in the recorder.
const REQUEST_METRICS_KEPT: usize = 4_096;

/// Records a request's duration and count, through handles made at the first request of its
/// combination of labels: a request then builds no label strings and no lookup in the
/// recorder's registry.
fn record_request(
    route: &str,
    method: Method,
    partner: Option<u32>,
    status: StatusCode,
    elapsed: std::time::Duration,
) {
    let key = (method, partner, status.as_u16());
    if let Some(h) = REQUEST_METRICS
        .read()
        .expect("request metrics lock")
        .get(route)
        .and_then(|by| by.get(&key))
    {
        h.duration.record(elapsed.as_secs_f64());
        h.requests.increment(1);
        return;
    }
    let (method, partner, status) = &key;
    let h = RequestHandles {
        duration: metrics::histogram!(
            "gateway_request_duration_seconds",
            "route" => route.to_string(),
            "method" => method.to_string()
        ),
        requests: metrics::counter!(
            "gateway_requests_total",
            "route" => route.to_string(),
            "method" => method.to_string(),
            "partner" => partner.map_or_else(|| "none".to_string(), |p| p.to_string()),
            "status" => status.to_string()
        ),
    };
    h.duration.record(elapsed.as_secs_f64());
    h.requests.increment(1);
    let mut all = REQUEST_METRICS.write().expect("request metrics lock");
    if all.values().map(HashMap::len).sum::<usize>() < REQUEST_METRICS_KEPT {
        all.entry(route.to_string()).or_default().insert(key, h);
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "Alive", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the ledger accepts work, the gateway is not draining, and its start-up warm-up
/// (the member links read into memory) is done. While it warms up, the gateway already answers
/// requests, more slowly: readiness tells a load balancer when to send it traffic.
#[utoipa::path(get, path = "/readyz", tag = "service", responses(
    (status = 200, description = "Ready", body = String),
    (status = 503, description = "Not ready", body = Problem, content_type = "application/problem+json")))]
async fn readyz(State(app): State<AppState>) -> Result<&'static str, OpError> {
    if app.draining() {
        return Err(OpError::new(Kind::Unavailable, "shutting down").retry_after(1));
    }
    if let Some(why) = app.ops.ledger.failure() {
        return Err(OpError::new(Kind::Unavailable, why));
    }
    if app.warming() {
        return Err(OpError::new(
            Kind::Unavailable,
            "warming up: reading member links into memory",
        )
        .retry_after(1));
    }
    Ok("ready")
}

/// Prometheus text exposition, for an operator or finance token (the counters show each
/// partner's volumes, which other partners must not see).
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn metrics_text(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, OpError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = crate::api::signature::bearer(header)?;
    app.ops
        .registry
        .operator(token)
        .ok_or_else(|| OpError::new(Kind::UnknownKey, "unknown operator token"))?;
    metrics::gauge!("ledger_queue_depth").set(app.ops.ledger.queue_depth() as f64);
    let pages = app.ops.ledger.stats().page_writes();
    metrics::counter!("ledger_member_pages_written_total", "form" => "whole").absolute(pages.whole);
    metrics::counter!("ledger_member_pages_written_total", "form" => "changes")
        .absolute(pages.changes);
    metrics::counter!("ledger_member_page_members_encoded_total").absolute(pages.members);
    if let Some(keys) = app.ops.ledger.keys_in_memory() {
        metrics::gauge!("ledger_idempotency_keys_in_memory").set(keys as f64);
    }
    if let Some(totals) = app.ops.ledger.reversal_totals_in_memory() {
        metrics::gauge!("ledger_reversal_totals_in_memory").set(totals as f64);
    }
    if let Some(capacity) = app.ops.ledger.key_filter_capacity() {
        metrics::gauge!("ledger_idempotency_key_filter_capacity").set(capacity as f64);
    }
    if let ledger::store::Engine::Embedded(store) = app.ops.ledger.store() {
        let memory = store.memory();
        metrics::gauge!("ledger_store_cache_bytes").set(memory.cache_bytes as f64);
        metrics::gauge!("ledger_store_cache_capacity_bytes").set(memory.cache_capacity as f64);
        metrics::gauge!("ledger_store_memtable_bytes").set(memory.memtable_bytes as f64);
    }
    metrics::gauge!("process_allocator_committed_bytes")
        .set(ledger::allocator::committed_bytes() as f64);
    if let Some(rss) = ledger::allocator::resident_bytes() {
        metrics::gauge!("process_resident_memory_bytes").set(rss as f64);
    }
    let (folded, saved) = app.ops.audience.progress();
    metrics::gauge!("audience_transactions_folded").set(folded as f64);
    metrics::gauge!("audience_saved_transactions").set(saved as f64);
    let (held, capacity) = app.nonces.fill();
    metrics::gauge!("nonce_cache_entries").set(held as f64);
    metrics::gauge!("nonce_cache_capacity").set(capacity as f64);
    app.metrics.run_upkeep();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response())
}
