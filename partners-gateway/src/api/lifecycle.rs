//! A member's lifecycle over the operator API: suspend, reinstate and close, merge a duplicate
//! into its survivor, erase a person's data on request. Each names an idempotency reference and
//! a reason, journaled (or recorded) with the operator.

use super::{blocking, ApiJson, JsonResult, Path, TransactionView, Who};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::ops::error::{Kind, OpError};
use crate::ops::lifecycle as op;
use crate::ops::registry::{ErasureRecord, OperatorRecord};
use axum::extract::State;
use axum::{Extension, Json};
use ledger::core::state::Standing;
use ledger::MemberId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the lifecycle routes.
pub fn operator_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(get_standing, set_standing))
        .routes(routes!(merge))
        .routes(routes!(get_erasure, erase))
}

/// A standing an operator may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StandingName {
    /// Earns and burns (reinstates a suspended member).
    Active,
    /// Neither earns nor burns until reinstated.
    Suspended,
    /// Closed for good; the points kept or forfeited as the programme's `on_close` says.
    Closed,
}

/// A standing change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StandingRequest {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The new standing.
    pub standing: StandingName,
    /// Why, in words an auditor can follow.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// A member's standing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StandingView {
    /// The member.
    pub member_id: u64,
    /// `active`, `suspended`, `closed` or `merged`.
    pub standing: String,
    /// The survivor, when merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<u64>,
    /// When this answers a change: its transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionView>,
}

fn standing_view(id: u64, s: Standing, tx: Option<TransactionView>) -> StandingView {
    StandingView {
        member_id: id,
        standing: s.name().to_string(),
        merged_into: match s {
            Standing::Merged(into) => Some(into.0),
            _ => None,
        },
        transaction: tx,
    }
}

/// A member's standing: active, suspended, closed, or merged into another member.
#[utoipa::path(get, path = "/admin/v1/members/{id}/standing", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = StandingView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_standing(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> JsonResult<StandingView> {
    let s = blocking(move || op::standing(&app.ops, MemberId(id))).await?;
    Ok(Json(standing_view(id, s, None)))
}

/// Suspend, reinstate or close a member. A suspended or closed member neither earns, burns,
/// holds nor transfers; closing needs no open holds and is final.
#[utoipa::path(post, path = "/admin/v1/members/{id}/standing", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")),
    request_body = StandingRequest,
    responses((status = 200, body = StandingView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn set_standing(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u64>,
    ApiJson(r): ApiJson<StandingRequest>,
) -> JsonResult<StandingView> {
    let standing = match r.standing {
        StandingName::Active => Standing::Active,
        StandingName::Suspended => Standing::Suspended,
        StandingName::Closed => Standing::Closed,
    };
    let reference = r.reference.clone();
    let ops = app.ops.clone();
    let receipt = blocking(move || {
        op::set_standing(
            &ops,
            &r.reference,
            MemberId(id),
            standing,
            &operator.name,
            &r.reason,
        )
    })
    .await?;
    let mut v = TransactionView::of(&receipt.tx, Some(Who::Id(id)), receipt.replayed);
    v.reference = reference;
    let now = blocking(move || op::standing(&app.ops, MemberId(id))).await?;
    Ok(Json(standing_view(id, now, Some(v))))
}

/// A merge of a duplicate member into its survivor.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The survivor's coalition id.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub into_id: u64,
    /// Why, in words an auditor can follow.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// What a merge did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MergeView {
    /// The ledger transaction that moved the points, holds and tier.
    pub transaction: TransactionView,
    /// Partner references that now name the survivor.
    pub references_moved: usize,
    /// Whether the absorbed member's profile became the survivor's (it had none).
    pub profile_moved: bool,
}

/// Merge a duplicate member (`id`) into a survivor: its points with their expiry dates, its
/// open holds and its tier qualification move in one ledger transaction; its partner
/// references then name the survivor, so cards keep working. The absorbed member is left
/// `merged`.
#[utoipa::path(post, path = "/admin/v1/members/{id}/merge", tag = "operator",
    params(("id" = u64, Path, description = "The member absorbed")),
    request_body = MergeRequest,
    responses((status = 200, body = MergeView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn merge(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u64>,
    ApiJson(r): ApiJson<MergeRequest>,
) -> JsonResult<MergeView> {
    let reference = r.reference.clone();
    let m = blocking(move || {
        op::merge(
            &app.ops,
            &r.reference,
            MemberId(id),
            MemberId(r.into_id),
            &operator.name,
            &r.reason,
        )
    })
    .await?;
    let mut v = TransactionView::of(&m.receipt.tx, Some(Who::Id(id)), m.receipt.replayed);
    v.reference = reference;
    Ok(Json(MergeView {
        transaction: v,
        references_moved: m.references_moved,
        profile_moved: m.profile_moved,
    }))
}

/// An erasure request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The request it answers (a ticket number, the date the person asked), not their data.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// Erase a member's personal data on request. The member is closed if still open (points kept
/// or forfeited as the programme's `on_close` says; refused while holds are open); its data
/// key is destroyed, so every stored copy of its profile is unreadable; its profile and partner
/// references are deleted. The ledger keeps the member's id, balances and journal, which
/// verify as before. Idempotent: asked again, it answers the first record.
#[utoipa::path(post, path = "/admin/v1/members/{id}/erasure", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")),
    request_body = ErasureRequest,
    responses((status = 200, body = ErasureRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn erase(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u64>,
    ApiJson(r): ApiJson<ErasureRequest>,
) -> JsonResult<ErasureRecord> {
    let rec = blocking(move || {
        op::erase(
            &app.ops,
            &r.reference,
            MemberId(id),
            &operator.name,
            &r.reason,
        )
    })
    .await?;
    Ok(Json(rec))
}

/// The record of a member's erasure.
#[utoipa::path(get, path = "/admin/v1/members/{id}/erasure", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = ErasureRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_erasure(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> JsonResult<ErasureRecord> {
    let rec = blocking(move || {
        app.ops
            .registry
            .erasure(MemberId(id))
            .map_err(crate::ops::partner::registry_error)
    })
    .await?;
    rec.map(Json)
        .ok_or_else(|| OpError::new(Kind::NotFound, "the member was not erased"))
}
