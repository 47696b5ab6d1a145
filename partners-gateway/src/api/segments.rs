//! Segments over the operator API: define and revise them, preview a definition, list a
//! segment's members, and the segments a member is in.

use super::{blocking, ApiJson, JsonResult, Path, Query};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::members::segments::SegmentRules;
use crate::ops::audience::{self as op, SegmentDraft};
use crate::ops::error::OpError;
use crate::ops::registry::{OperatorRecord, SegmentRecord};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ledger::MemberId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the segment routes.
pub fn operator_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list, create))
        .routes(routes!(get, revise))
        .routes(routes!(segment_members))
        .routes(routes!(preview))
        .routes(routes!(member_segments))
}

/// A segment definition.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentRequest {
    /// Its name, as operators know it.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// Who is in it: every condition given must hold.
    #[schema(value_type = SegmentRules)]
    pub rules: serde_json::Value,
    /// Why: recorded with the operator.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// A definition to try without saving it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// Who would be in it.
    #[schema(value_type = SegmentRules)]
    pub rules: serde_json::Value,
}

/// How many members to list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct MembersQuery {
    /// Member ids to list, lowest first (0 to 10,000, default 100); the count is of all.
    #[param(minimum = 0, maximum = 10000)]
    pub limit: Option<u32>,
}

/// Who is in a segment now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MembersView {
    /// How many members are in it.
    pub count: usize,
    /// The first of them by id, as many as asked.
    pub members: Vec<u64>,
    /// Journal transactions the answer includes.
    pub as_of_transactions: u64,
    /// The day ages and days since activity were counted on (programme time zone).
    pub today: String,
}

fn view(m: op::Membership) -> MembersView {
    MembersView {
        count: m.count,
        members: m.members,
        as_of_transactions: m.as_of_transactions,
        today: m.today.to_string(),
    }
}

fn limit(q: &MembersQuery) -> Result<usize, OpError> {
    match q.limit {
        Some(n) if n > 10_000 => Err(OpError::new(
            crate::ops::error::Kind::InvalidRequest,
            "limit must be 0 to 10000",
        )),
        Some(n) => Ok(n as usize),
        None => Ok(100),
    }
}

/// A segment's rules from a JSON object (an array, which serde would also take for a struct
/// of optional fields, is refused).
fn rules_of(v: serde_json::Value) -> Result<SegmentRules, OpError> {
    if !v.is_object() {
        return Err(OpError::new(
            crate::ops::error::Kind::MalformedRequest,
            "rules is a JSON object of the documented conditions",
        ));
    }
    serde_json::from_value(v).map_err(|e| {
        OpError::new(
            crate::ops::error::Kind::MalformedRequest,
            format!("invalid rules: {e}"),
        )
    })
}

/// Every segment.
#[utoipa::path(get, path = "/admin/v1/segments", tag = "operator",
    responses((status = 200, body = Vec<SegmentRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list(State(app): State<AppState>) -> JsonResult<Vec<SegmentRecord>> {
    let all = blocking(move || {
        app.ops
            .registry
            .segments()
            .map_err(crate::ops::partner::registry_error)
    })
    .await?;
    Ok(Json(all))
}

/// Define a segment: age band, gender, city, tier, balance, days since activity, visits,
/// spend and visit interval, each optional; every condition given must hold.
#[utoipa::path(post, path = "/admin/v1/segments", tag = "operator",
    request_body = SegmentRequest,
    responses((status = 201, body = SegmentRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn create(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<SegmentRequest>,
) -> Result<Response, OpError> {
    let d = SegmentDraft {
        name: r.name,
        rules: rules_of(r.rules)?,
        reason: r.reason,
    };
    let s = blocking(move || op::save_segment(&app.ops, None, d, &operator.name)).await?;
    Ok((StatusCode::CREATED, Json(s)).into_response())
}

/// A segment.
#[utoipa::path(get, path = "/admin/v1/segments/{id}", tag = "operator",
    params(("id" = u64, Path, description = "Segment id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = SegmentRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get(State(app): State<AppState>, Path(id): Path<u32>) -> JsonResult<SegmentRecord> {
    Ok(Json(blocking(move || op::segment(&app.ops, id)).await?))
}

/// Replace a segment's definition (its next version).
#[utoipa::path(put, path = "/admin/v1/segments/{id}", tag = "operator",
    params(("id" = u64, Path, description = "Segment id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = SegmentRequest,
    responses((status = 200, body = SegmentRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn revise(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<SegmentRequest>,
) -> JsonResult<SegmentRecord> {
    let d = SegmentDraft {
        name: r.name,
        rules: rules_of(r.rules)?,
        reason: r.reason,
    };
    Ok(Json(
        blocking(move || op::save_segment(&app.ops, Some(id), d, &operator.name)).await?,
    ))
}

/// The members in a segment now: how many, and the first by id.
#[utoipa::path(get, path = "/admin/v1/segments/{id}/members", tag = "operator",
    params(("id" = u64, Path, description = "Segment id", minimum = 1, maximum = 4_294_967_295_u64), MembersQuery),
    responses((status = 200, body = MembersView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn segment_members(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    Query(q): Query<MembersQuery>,
) -> JsonResult<MembersView> {
    let n = limit(&q)?;
    let m = blocking(move || {
        let s = op::segment(&app.ops, id)?;
        op::members(&app.ops, &s.rules, n)
    })
    .await?;
    Ok(Json(view(m)))
}

/// Who a definition would select now, without saving it.
#[utoipa::path(post, path = "/admin/v1/segments/preview", tag = "operator",
    request_body = PreviewRequest, params(MembersQuery),
    responses((status = 200, body = MembersView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn preview(
    State(app): State<AppState>,
    Query(q): Query<MembersQuery>,
    ApiJson(r): ApiJson<PreviewRequest>,
) -> JsonResult<MembersView> {
    let n = limit(&q)?;
    let rules: SegmentRules = rules_of(r.rules)?;
    rules
        .validate()
        .map_err(|e| OpError::new(crate::ops::error::Kind::InvalidRule, e.to_string()))?;
    let m = blocking(move || op::members(&app.ops, &rules, n)).await?;
    Ok(Json(view(m)))
}

/// The segments a member is in now.
#[utoipa::path(get, path = "/admin/v1/members/{id}/segments", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = Vec<SegmentRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member_segments(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> JsonResult<Vec<SegmentRecord>> {
    Ok(Json(
        blocking(move || op::segments_of(&app.ops, MemberId(id))).await?,
    ))
}
