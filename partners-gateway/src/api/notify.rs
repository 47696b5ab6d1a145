//! Notifications over the operator API: settings, templates per event, channel and language,
//! a provider per channel, broadcasts to segments, the send log, and a run of the daily
//! schedule on demand (`docs/members.md`).

use super::{blocking, ApiJson, JsonResult, Path, Query};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::members::Channel;
use crate::notify::provider::ProviderConfig;
use crate::ops::error::OpError;
use crate::ops::notify::{self as op, BroadcastDraft};
use crate::ops::registry::{
    BroadcastRecord, BroadcastText, NotifySettings, OperatorRecord, ProviderRecord, SendRecord,
    TemplateRecord,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ledger::MemberId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the notification routes.
pub fn operator_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(get_settings, put_settings))
        .routes(routes!(list_templates))
        .routes(routes!(put_template, delete_template))
        .routes(routes!(get_provider, put_provider))
        .routes(routes!(list_broadcasts, create_broadcast))
        .routes(routes!(cancel_broadcast))
        .routes(routes!(log))
        .routes(routes!(member_log))
        .routes(routes!(run_schedule))
}

/// Notification settings as an operator sets them.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsRequest {
    /// The language of members whose profile names none.
    #[schema(pattern = "^[a-z]{2}(-[A-Z]{2})?$")]
    pub default_language: String,
    /// Days before points expire that members are told (each 1 to 365).
    #[serde(default, deserialize_with = "crate::programme::whole_list")]
    #[schema(max_items = 4, value_type = Vec<u32>)]
    pub expiring_days: Vec<u32>,
    /// The local hour (0 to 23) the daily schedule runs.
    #[serde(deserialize_with = "crate::api::whole::required")]
    #[schema(minimum = 0, maximum = 23)]
    pub schedule_hour: u8,
    /// Quiet hours from (local `HH:MM`).
    #[serde(default)]
    #[schema(pattern = "^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub quiet_from: Option<String>,
    /// Quiet hours until.
    #[serde(default)]
    #[schema(pattern = "^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub quiet_until: Option<String>,
    /// Most messages a member gets a day.
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_per_day: Option<u32>,
    /// Most messages a member gets in seven days.
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_per_week: Option<u32>,
    /// Numbers in Persian text in Persian digits.
    pub persian_digits: bool,
    /// Why.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// The notification settings in force (version 0: the defaults).
#[utoipa::path(get, path = "/admin/v1/notifications/settings", tag = "operator",
    responses((status = 200, body = NotifySettings),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_settings(State(app): State<AppState>) -> JsonResult<NotifySettings> {
    let s = blocking(move || {
        app.ops
            .registry
            .notify_settings()
            .map_err(crate::ops::partner::registry_error)
    })
    .await?;
    Ok(Json(s))
}

/// Set the notification settings: default language, expiry reminder days, the schedule's hour,
/// quiet hours, caps, Persian digits.
#[utoipa::path(put, path = "/admin/v1/notifications/settings", tag = "operator",
    request_body = SettingsRequest,
    responses((status = 200, body = NotifySettings),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_settings(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<SettingsRequest>,
) -> JsonResult<NotifySettings> {
    if r.expiring_days.len() > 4 || r.expiring_days.iter().any(|d| !(1..=365).contains(d)) {
        return Err(OpError::new(
            crate::ops::error::Kind::InvalidRule,
            "expiring_days: at most 4 values, each 1 to 365",
        ));
    }
    let s = NotifySettings {
        default_language: r.default_language,
        expiring_days: r.expiring_days.iter().map(|d| *d as u16).collect(),
        schedule_hour: r.schedule_hour,
        quiet_from: r.quiet_from,
        quiet_until: r.quiet_until,
        max_per_day: r.max_per_day,
        max_per_week: r.max_per_week,
        persian_digits: r.persian_digits,
        version: 0,
        author: String::new(),
        reason: r.reason,
    };
    Ok(Json(
        blocking(move || op::set_settings(&app.ops, s, &operator.name)).await?,
    ))
}

/// Every message template.
#[utoipa::path(get, path = "/admin/v1/notifications/templates", tag = "operator",
    responses((status = 200, body = Vec<TemplateRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_templates(State(app): State<AppState>) -> JsonResult<Vec<TemplateRecord>> {
    Ok(Json(
        blocking(move || {
            app.ops
                .registry
                .templates()
                .map_err(crate::ops::partner::registry_error)
        })
        .await?,
    ))
}

/// A template's text.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    /// The subject (email).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    pub subject: Option<String>,
    /// The text: a template over `name`, `points`, `balance`, `detail`, `date`, `partner`,
    /// `expires_on`, `days`, `member_id` (`{{ name }}, {{ points }} points are yours`).
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    pub body: String,
}

fn channel(s: &str) -> Result<Channel, OpError> {
    serde_json::from_value(serde_json::json!(s)).map_err(|_| {
        OpError::new(
            crate::ops::error::Kind::NotFound,
            "the channel is sms, email or push",
        )
    })
}

/// Set the message for an event type, channel and language.
#[utoipa::path(put, path = "/admin/v1/notifications/templates/{event}/{channel}/{language}", tag = "operator",
    params(("event" = String, Path, description = "An event type (`points.earned`)", pattern = "^[a-z_]+\\.[a-z_]+$"),
        ("channel" = String, Path, description = "sms, email or push", pattern = "^(sms|email|push)$"),
        ("language" = String, Path, description = "A language tag", pattern = "^[a-z]{2}(-[A-Z]{2})?$")),
    request_body = TemplateRequest,
    responses((status = 200, body = TemplateRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_template(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path((event, ch, language)): Path<(String, String, String)>,
    ApiJson(r): ApiJson<TemplateRequest>,
) -> JsonResult<TemplateRecord> {
    let t = TemplateRecord {
        event,
        channel: channel(&ch)?,
        language,
        subject: r.subject,
        body: r.body,
        author: String::new(),
        updated_at_ms: 0,
    };
    Ok(Json(
        blocking(move || op::put_template(&app.ops, t, &operator.name)).await?,
    ))
}

/// Delete a template.
#[utoipa::path(delete, path = "/admin/v1/notifications/templates/{event}/{channel}/{language}", tag = "operator",
    params(("event" = String, Path, description = "An event type", pattern = "^[a-z_]+\\.[a-z_]+$"),
        ("channel" = String, Path, description = "sms, email or push", pattern = "^(sms|email|push)$"),
        ("language" = String, Path, description = "A language tag", pattern = "^[a-z]{2}(-[A-Z]{2})?$")),
    responses((status = 204),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn delete_template(
    State(app): State<AppState>,
    Path((event, ch, language)): Path<(String, String, String)>,
) -> Result<Response, OpError> {
    let c = channel(&ch)?;
    blocking(move || op::delete_template(&app.ops, &event, c, &language)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The provider of a channel.
#[utoipa::path(get, path = "/admin/v1/notifications/providers/{channel}", tag = "operator",
    params(("channel" = String, Path, description = "sms, email or push", pattern = "^(sms|email|push)$")),
    responses((status = 200, body = ProviderRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_provider(
    State(app): State<AppState>,
    Path(ch): Path<String>,
) -> JsonResult<ProviderRecord> {
    let c = channel(&ch)?;
    let p = blocking(move || {
        app.ops
            .registry
            .provider(c)
            .map_err(crate::ops::partner::registry_error)
    })
    .await?;
    p.map(Json).ok_or_else(|| {
        OpError::new(
            crate::ops::error::Kind::NotFound,
            "no provider for the channel",
        )
    })
}

/// A provider, as configured.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderRequest {
    /// Where messages are posted (http or https).
    #[schema(min_length = 1, max_length = 2000)]
    pub url: String,
    /// Headers sent with each request (an API key, say).
    #[serde(default)]
    #[schema(max_items = 16)]
    pub headers: Vec<crate::notify::provider::Header>,
    /// The body: a template over `to`, `subject`, `text`, `language`, `message_id`,
    /// `member_id`, each written as JSON.
    #[schema(min_length = 1, max_length = 8000)]
    pub body_template: String,
    /// The body's content type (default `application/json`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub content_type: Option<String>,
}

/// Set the provider of a channel: one HTTP adapter, configured by URL, headers and body
/// template.
#[utoipa::path(put, path = "/admin/v1/notifications/providers/{channel}", tag = "operator",
    params(("channel" = String, Path, description = "sms, email or push", pattern = "^(sms|email|push)$")),
    request_body = ProviderRequest,
    responses((status = 200, body = ProviderRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_provider(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(ch): Path<String>,
    ApiJson(r): ApiJson<ProviderRequest>,
) -> JsonResult<ProviderRecord> {
    let c = channel(&ch)?;
    let config = ProviderConfig {
        url: r.url,
        headers: r.headers,
        body_template: r.body_template,
        content_type: r.content_type.unwrap_or_else(|| "application/json".into()),
    };
    Ok(Json(
        blocking(move || op::put_provider(&app.ops, c, config, &operator.name)).await?,
    ))
}

/// Every broadcast.
#[utoipa::path(get, path = "/admin/v1/notifications/broadcasts", tag = "operator",
    responses((status = 200, body = Vec<BroadcastRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_broadcasts(State(app): State<AppState>) -> JsonResult<Vec<BroadcastRecord>> {
    Ok(Json(
        blocking(move || {
            app.ops
                .registry
                .broadcasts()
                .map_err(crate::ops::partner::registry_error)
        })
        .await?,
    ))
}

/// A broadcast to a segment.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    /// A name for operators.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// The segment.
    #[serde(deserialize_with = "crate::api::whole::required")]
    #[schema(minimum = 1, maximum = 4_294_967_295_u64)]
    pub segment: u32,
    /// The channel.
    pub channel: Channel,
    /// The text per language (`name`, `balance` and `member_id` may be named).
    #[schema(min_items = 1, max_items = 8)]
    pub texts: Vec<BroadcastText>,
    /// When it goes (ms since the Unix epoch; default now).
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    #[schema(minimum = 0, maximum = 9_999_999_999_999_i64)]
    pub send_at_ms: Option<i64>,
    /// Why.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

impl From<BroadcastRequest> for BroadcastDraft {
    fn from(r: BroadcastRequest) -> Self {
        BroadcastDraft {
            name: r.name,
            segment: r.segment,
            channel: r.channel,
            texts: r.texts,
            send_at_ms: r.send_at_ms.unwrap_or_else(|| ledger::Timestamp::now().0),
            reason: r.reason,
        }
    }
}

/// Schedule a message to a segment, at a date and time: each member gets it in its language,
/// through the channel's provider, when consent, quiet hours and caps allow.
#[utoipa::path(post, path = "/admin/v1/notifications/broadcasts", tag = "operator",
    request_body = BroadcastRequest,
    responses((status = 201, body = BroadcastRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn create_broadcast(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<BroadcastRequest>,
) -> Result<Response, OpError> {
    let d = BroadcastDraft::from(r);
    let b = blocking(move || op::create_broadcast(&app.ops, d, &operator.name)).await?;
    Ok((StatusCode::CREATED, Json(b)).into_response())
}

/// Cancel a broadcast not yet queued in full.
#[utoipa::path(post, path = "/admin/v1/notifications/broadcasts/{id}/cancel", tag = "operator",
    params(("id" = u64, Path, description = "Broadcast id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = BroadcastRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn cancel_broadcast(
    State(app): State<AppState>,
    Path(id): Path<u32>,
) -> JsonResult<BroadcastRecord> {
    Ok(Json(
        blocking(move || op::cancel_broadcast(&app.ops, id)).await?,
    ))
}

/// How many log entries.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LogQuery {
    /// Entries, newest first (1 to 1,000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

fn limit(q: &LogQuery) -> Result<usize, OpError> {
    match q.limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n as usize),
        Some(_) => Err(OpError::new(
            crate::ops::error::Kind::InvalidRequest,
            "limit is 1 to 1000",
        )),
    }
}

/// The outbox of messages: how many wait, and the newest outcomes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogView {
    /// Messages queued, not yet sent or given up.
    pub queued: u64,
    /// The newest outcomes, by status.
    pub by_status: BTreeMap<String, u64>,
    /// The newest outcomes, newest first.
    pub recent: Vec<SendRecord>,
}

/// The messages' outbox and log: every send recorded with its status (sent, failed,
/// no-consent, no-address, no-template, no-provider, capped, not-active).
#[utoipa::path(get, path = "/admin/v1/notifications/log", tag = "operator",
    params(LogQuery),
    responses((status = 200, body = LogView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn log(State(app): State<AppState>, Query(q): Query<LogQuery>) -> JsonResult<LogView> {
    let n = limit(&q)?;
    let s = blocking(move || op::status(&app.ops, n)).await?;
    Ok(Json(LogView {
        queued: s.queued,
        by_status: s.by_status,
        recent: s.recent,
    }))
}

/// A member's messages, newest first.
#[utoipa::path(get, path = "/admin/v1/members/{id}/notifications", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id"), LogQuery),
    responses((status = 200, body = Vec<SendRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member_log(
    State(app): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<LogQuery>,
) -> JsonResult<Vec<SendRecord>> {
    let n = limit(&q)?;
    Ok(Json(
        blocking(move || op::member_log(&app.ops, MemberId(id), n)).await?,
    ))
}

/// What a run of the schedule did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleRun {
    /// Notices posted (birthdays, anniversaries, expiry reminders).
    pub notices: usize,
}

/// Run today's schedule now, before its hour; run again, it posts only what is new since (notices
/// are keyed by occasion, member and day, so none posts twice).
#[utoipa::path(post, path = "/admin/v1/notifications/schedule/run", tag = "operator",
    responses((status = 200, body = ScheduleRun),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn run_schedule(State(app): State<AppState>) -> JsonResult<ScheduleRun> {
    let n = blocking(move || op::run_schedule(&app.ops, true)).await?;
    Ok(Json(ScheduleRun { notices: n }))
}
