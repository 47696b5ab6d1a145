//! Webhook subscriptions over both APIs: operators subscribe to any event type, partners to
//! those of their own transactions (scope `read`); each can list its subscriptions, stop one,
//! read its delivery log and replay it from an event. `docs/webhooks.md` has the delivery
//! contract and the receiver's verification recipe.

use super::{blocking, ApiJson, JsonResult, Path, Query};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::ops::registry::{DeliveryRecord, KeyScope, OperatorRecord, WebhookRecord};
use crate::ops::webhooks::{self as op, WebhookDraft};
use crate::ops::PartnerCaller;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use ledger::PartnerId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the operator's webhook routes.
pub fn operator_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(operator_list, operator_create))
        .routes(routes!(operator_disable))
        .routes(routes!(operator_deliveries))
        .routes(routes!(operator_replay))
}

/// Adds the partner's webhook routes.
pub fn partner_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(partner_list, partner_create))
        .routes(routes!(partner_disable))
        .routes(routes!(partner_deliveries))
        .routes(routes!(partner_replay))
}

/// A subscription to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where events are posted (http or https, with a host).
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^https?://[^\\s/?#]+[^\\s]*$"
    )]
    pub url: String,
    /// Event types (a partner may take only those of its own transactions: earns, burns, holds
    /// and their ends, reversals, tier changes).
    #[schema(min_items = 1, max_items = 19)]
    pub events: Vec<EventType>,
}

/// An event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "member.enrolled")]
    #[allow(missing_docs)]
    MemberEnrolled,
    #[serde(rename = "points.earned")]
    #[allow(missing_docs)]
    PointsEarned,
    #[serde(rename = "points.burned")]
    #[allow(missing_docs)]
    PointsBurned,
    #[serde(rename = "hold.opened")]
    #[allow(missing_docs)]
    HoldOpened,
    #[serde(rename = "hold.captured")]
    #[allow(missing_docs)]
    HoldCaptured,
    #[serde(rename = "hold.voided")]
    #[allow(missing_docs)]
    HoldVoided,
    #[serde(rename = "hold.expired")]
    #[allow(missing_docs)]
    HoldExpired,
    #[serde(rename = "points.reversed")]
    #[allow(missing_docs)]
    PointsReversed,
    #[serde(rename = "points.transferred")]
    #[allow(missing_docs)]
    PointsTransferred,
    #[serde(rename = "points.adjusted")]
    #[allow(missing_docs)]
    PointsAdjusted,
    #[serde(rename = "points.expired")]
    #[allow(missing_docs)]
    PointsExpired,
    #[serde(rename = "tier.changed")]
    #[allow(missing_docs)]
    TierChanged,
    #[serde(rename = "budget.threshold_crossed")]
    #[allow(missing_docs)]
    BudgetThresholdCrossed,
    #[serde(rename = "period.closed")]
    #[allow(missing_docs)]
    PeriodClosed,
    #[serde(rename = "member.standing_changed")]
    #[allow(missing_docs)]
    MemberStandingChanged,
    #[serde(rename = "member.merged")]
    #[allow(missing_docs)]
    MemberMerged,
    #[serde(rename = "points.expiring")]
    #[allow(missing_docs)]
    PointsExpiring,
    #[serde(rename = "member.birthday")]
    #[allow(missing_docs)]
    MemberBirthday,
    #[serde(rename = "member.anniversary")]
    #[allow(missing_docs)]
    MemberAnniversary,
    #[serde(rename = "reward.redeemed")]
    #[allow(missing_docs)]
    RewardRedeemed,
    #[serde(rename = "points.granted")]
    #[allow(missing_docs)]
    PointsGranted,
}

impl EventType {
    fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// A new subscription and its secret, shown once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookCreated {
    /// The subscription.
    pub webhook: WebhookRecord,
    /// The key of every delivery's `x-signature`; keep it private.
    pub secret: String,
}

/// A subscription's delivery log and totals.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveriesView {
    /// Events delivered so far.
    pub delivered: u64,
    /// Events given up on after every attempt failed (dead letters).
    pub dead: u64,
    /// The newest attempts, newest first.
    pub deliveries: Vec<DeliveryRecord>,
}

/// How many log entries.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LogQuery {
    /// Entries, newest first (1 to 1,000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Where to replay from.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// An event id (`TRANSACTION-N`): its batch's events and every one after are delivered
    /// again.
    #[schema(min_length = 3, max_length = 30, pattern = "^[0-9]{1,20}-[0-9]{1,5}$")]
    pub from_event: String,
}

fn limit(q: &LogQuery) -> Result<usize, crate::ops::error::OpError> {
    match q.limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n as usize),
        Some(_) => Err(crate::ops::error::OpError::new(
            crate::ops::error::Kind::InvalidRequest,
            "limit is 1 to 1000",
        )),
    }
}

fn draft(r: WebhookRequest) -> WebhookDraft {
    WebhookDraft {
        url: r.url,
        events: r.events.into_iter().map(EventType::name).collect(),
    }
}

fn deliveries_view(
    (cursor, log): (crate::ops::registry::WebhookCursor, Vec<DeliveryRecord>),
) -> DeliveriesView {
    DeliveriesView {
        delivered: cursor.delivered,
        dead: cursor.dead,
        deliveries: log,
    }
}

/// Subscribes a URL to event types; answers the secret once.
#[utoipa::path(post, path = "/admin/v1/webhooks", tag = "operator", request_body = WebhookRequest,
    responses((status = 201, body = WebhookCreated),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn operator_create(
    State(app): State<AppState>,
    Extension(op_rec): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<WebhookRequest>,
) -> Result<(StatusCode, Json<WebhookCreated>), crate::ops::error::OpError> {
    let (webhook, secret) =
        blocking(move || op::create(&app.ops, None, draft(r), &op_rec.name)).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated { webhook, secret }),
    ))
}

/// Every subscription.
#[utoipa::path(get, path = "/admin/v1/webhooks", tag = "operator",
    responses((status = 200, body = Vec<WebhookRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn operator_list(State(app): State<AppState>) -> JsonResult<Vec<WebhookRecord>> {
    Ok(Json(blocking(move || op::list(&app.ops, None)).await?))
}

/// Stops a subscription.
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/disable", tag = "operator",
    params(("id" = u32, Path, description = "The subscription")),
    responses((status = 200, body = WebhookRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn operator_disable(
    State(app): State<AppState>,
    Path(id): Path<u32>,
) -> JsonResult<WebhookRecord> {
    Ok(Json(
        blocking(move || op::disable(&app.ops, None, id)).await?,
    ))
}

/// A subscription's delivery log.
#[utoipa::path(get, path = "/admin/v1/webhooks/{id}/deliveries", tag = "operator",
    params(("id" = u32, Path, description = "The subscription"), LogQuery),
    responses((status = 200, body = DeliveriesView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn operator_deliveries(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    Query(q): Query<LogQuery>,
) -> JsonResult<DeliveriesView> {
    let n = limit(&q)?;
    Ok(Json(deliveries_view(
        blocking(move || op::deliveries(&app.ops, None, id, n)).await?,
    )))
}

/// Delivers again from an event on.
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/replay", tag = "operator",
    params(("id" = u32, Path, description = "The subscription")), request_body = ReplayRequest,
    responses((status = 204, description = "The cursor moved back"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn operator_replay(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<ReplayRequest>,
) -> Result<StatusCode, crate::ops::error::OpError> {
    blocking(move || op::replay(&app.ops, None, id, &r.from_event)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Subscribes a URL to event types of the partner's own transactions (scope `read`); answers
/// the secret once. Members are named by the partner's references.
#[utoipa::path(post, path = "/v1/webhooks", tag = "partner", request_body = WebhookRequest,
    responses((status = 201, body = WebhookCreated),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn partner_create(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<WebhookRequest>,
) -> Result<(StatusCode, Json<WebhookCreated>), crate::ops::error::OpError> {
    caller.require(KeyScope::Read)?;
    let who = format!("partner/{}", caller.partner.0);
    let p = caller.partner;
    let (webhook, secret) = blocking(move || op::create(&app.ops, Some(p), draft(r), &who)).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated { webhook, secret }),
    ))
}

/// The partner's subscriptions.
#[utoipa::path(get, path = "/v1/webhooks", tag = "partner",
    responses((status = 200, body = Vec<WebhookRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn partner_list(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
) -> JsonResult<Vec<WebhookRecord>> {
    caller.require(KeyScope::Read)?;
    let p: PartnerId = caller.partner;
    Ok(Json(blocking(move || op::list(&app.ops, Some(p))).await?))
}

/// Stops one of the partner's subscriptions.
#[utoipa::path(post, path = "/v1/webhooks/{id}/disable", tag = "partner",
    params(("id" = u32, Path, description = "The subscription")),
    responses((status = 200, body = WebhookRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn partner_disable(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(id): Path<u32>,
) -> JsonResult<WebhookRecord> {
    caller.require(KeyScope::Read)?;
    let p = caller.partner;
    Ok(Json(
        blocking(move || op::disable(&app.ops, Some(p), id)).await?,
    ))
}

/// One of the partner's subscriptions' delivery log.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "partner",
    params(("id" = u32, Path, description = "The subscription"), LogQuery),
    responses((status = 200, body = DeliveriesView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn partner_deliveries(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(id): Path<u32>,
    Query(q): Query<LogQuery>,
) -> JsonResult<DeliveriesView> {
    caller.require(KeyScope::Read)?;
    let (p, n) = (caller.partner, limit(&q)?);
    Ok(Json(deliveries_view(
        blocking(move || op::deliveries(&app.ops, Some(p), id, n)).await?,
    )))
}

/// Delivers one of the partner's subscriptions again from an event on.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "partner",
    params(("id" = u32, Path, description = "The subscription")), request_body = ReplayRequest,
    responses((status = 204, description = "The cursor moved back"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn partner_replay(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<ReplayRequest>,
) -> Result<StatusCode, crate::ops::error::OpError> {
    caller.require(KeyScope::Read)?;
    let p = caller.partner;
    blocking(move || op::replay(&app.ops, Some(p), id, &r.from_event)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    /// The schema's list of event types is the outbox's.
    #[test]
    fn every_event_type_can_be_subscribed_to() {
        for k in crate::events::KINDS {
            let t: super::EventType =
                serde_json::from_value(serde_json::json!(k)).expect("an event type");
            assert_eq!(t.name(), *k);
        }
    }
}
