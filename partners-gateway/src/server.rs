//! Router assembly, middleware (request ids, tracing, metrics), health, OpenAPI and serving with
//! graceful shutdown.

use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::api::{operator, partner};
use crate::ops::error::{Kind, OpError};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger::PartnerId;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
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
    let doc = openapi.clone();
    let router = router
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { Json(doc) }),
        )
        .fallback(|| async { OpError::new(Kind::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            OpError::new(Kind::MethodNotAllowed, "the route does not accept this method")
        })
        .layer(axum::extract::DefaultBodyLimit::max(app.limits.body_bytes_max))
        .layer(axum::middleware::from_fn(track))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request| {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                    }),
                )
                .layer(PropagateRequestIdLayer::x_request_id()),
        )
        .with_state(app);
    (router, openapi)
}

/// Counts requests by route, method, partner and status, and times them.
async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let partner = res
        .extensions()
        .get::<PartnerId>()
        .map_or_else(|| "none".to_string(), |p| p.0.to_string());
    let status = res.status().as_u16().to_string();
    metrics::histogram!("gateway_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("gateway_requests_total", "route" => route, "method" => method, "partner" => partner, "status" => status)
        .increment(1);
    res
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "Alive", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the ledger accepts work and the gateway is not draining.
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
    Ok("ready")
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics_text(State(app): State<AppState>) -> Response {
    metrics::gauge!("ledger_queue_depth").set(app.ops.ledger.queue_depth() as f64);
    app.metrics.run_upkeep();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}
