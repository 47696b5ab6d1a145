//! Household pools over both APIs: partners join and leave members by their own references
//! (both members linked at the partner, the joining member's consent attested), operators by
//! coalition id; both read a member's household. Points never move on joining or leaving; an
//! owner's burn draws on its own points first, then on its members' in the order they joined.

use super::{blocking, ApiJson, JsonResult, Path, TransactionView, Who};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::ops::partner::{self as partner_op};
use crate::ops::programme as op;
use crate::ops::PartnerCaller;
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the operator's household routes.
pub fn operator_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(operator_join))
        .routes(routes!(operator_leave))
        .routes(routes!(operator_household))
}

/// Adds the partner's household routes.
pub fn partner_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(partner_join))
        .routes(routes!(partner_leave))
        .routes(routes!(partner_household))
}

/// One member of a household and what it may spend now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HouseholdMemberView {
    /// The member, by the partner's reference (partner answers; absent for a member the
    /// partner does not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The member's coalition id (operator answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
    /// Whether it owns the pool.
    pub owner: bool,
    /// Posted, less held, less expired (absent, for a partner, on members it does not know:
    /// the pool's total still counts them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spendable: Option<i64>,
}

/// A member's household pool: the owner first, then the members in the order they joined
/// (the order an owner's burn draws on them).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HouseholdView {
    /// Whether the member is in a pool (the rest is empty when not).
    pub pooled: bool,
    /// The owner, then the members.
    pub members: Vec<HouseholdMemberView>,
    /// What the owner may spend from the pool.
    pub spendable: i64,
}

/// The view of a household: each member as the caller may name it (`None`: a member the
/// partner does not know, shown without reference or balance), and what it may spend.
fn view(members: Vec<(Option<Who>, i64)>) -> HouseholdView {
    HouseholdView {
        pooled: !members.is_empty(),
        spendable: members.iter().map(|m| m.1).sum(),
        members: members
            .into_iter()
            .enumerate()
            .map(|(i, (who, spendable))| {
                let (member, member_id, shown) = match who {
                    None => (None, None, None),
                    Some(Who::Reference(r)) => (Some(r), None, Some(spendable)),
                    Some(Who::Id(id)) => (None, Some(id), Some(spendable)),
                };
                HouseholdMemberView {
                    member,
                    member_id,
                    owner: i == 0,
                    spendable: shown,
                }
            })
            .collect(),
    }
}

/// A member joining another's household pool, both by the partner's references.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinHouseholdRequest {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The pool's owner (a pool exists once it has a member).
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub owner: String,
    /// The joining member.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub member: String,
    /// How the joining member consented, as the partner attests it.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub consent: String,
}

/// A member leaving its household pool (an owner leaving dissolves it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveHouseholdRequest {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The member leaving, by the partner's reference.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub member: String,
}

/// Join a member to another's household pool (both linked at this partner), with the joining
/// member's consent. At most 8 members besides the owner; a member is in one pool at most.
#[utoipa::path(post, path = "/v1/households/join", tag = "partner",
    request_body = JoinHouseholdRequest,
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn partner_join(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<JoinHouseholdRequest>,
) -> JsonResult<TransactionView> {
    let j = partner_op::JoinHousehold {
        reference: r.reference,
        owner: r.owner,
        member: r.member,
        consent: r.consent,
    };
    let (ops, c) = (app.ops.clone(), caller.clone());
    let p = blocking(move || partner_op::prepare_join_household(&ops, &c, &j)).await?;
    Ok(Json(super::partner::view(
        partner_op::execute(&app.ops, &caller, p).await?,
    )))
}

/// Take a member out of its household pool; its own points stay with it. An owner leaving
/// dissolves the pool.
#[utoipa::path(post, path = "/v1/households/leave", tag = "partner",
    request_body = LeaveHouseholdRequest,
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn partner_leave(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<LeaveHouseholdRequest>,
) -> JsonResult<TransactionView> {
    let (ops, c) = (app.ops.clone(), caller.clone());
    let p =
        blocking(move || partner_op::prepare_leave_household(&ops, &c, &r.reference, &r.member))
            .await?;
    Ok(Json(super::partner::view(
        partner_op::execute(&app.ops, &caller, p).await?,
    )))
}

/// The household pool the member owns or belongs to, and what its owner may spend.
#[utoipa::path(get, path = "/v1/members/{member}/household", tag = "partner",
    params(("member" = String, Path, description = "The partner's reference for the member", min_length = 1, max_length = 64, pattern = "^[!-~]+$")),
    responses((status = 200, body = HouseholdView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn partner_household(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(reference): Path<String>,
) -> JsonResult<HouseholdView> {
    let ops = app.ops.clone();
    let h = blocking(move || partner_op::household(&ops, &caller, &reference)).await?;
    Ok(Json(view(
        h.unwrap_or_default()
            .into_iter()
            .map(|(r, p)| (r.map(Who::Reference), p.0))
            .collect(),
    )))
}

/// An operator joining a member to another's household pool.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorJoinHousehold {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The owner's coalition id.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub owner_id: u64,
    /// The joining member's coalition id.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub member_id: u64,
    /// How the joining member consented, as the operator records it.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub consent: String,
}

/// An operator taking a member out of its household pool.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorLeaveHousehold {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The member's coalition id.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub member_id: u64,
}

/// Join a member to another's household pool, with the joining member's consent.
#[utoipa::path(post, path = "/admin/v1/households/join", tag = "programme",
    request_body = OperatorJoinHousehold,
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn operator_join(
    State(app): State<AppState>,
    ApiJson(r): ApiJson<OperatorJoinHousehold>,
) -> JsonResult<TransactionView> {
    let ops = app.ops.clone();
    let reference = r.reference.clone();
    let receipt = blocking(move || {
        op::join_household(
            &ops,
            &r.reference,
            ledger::MemberId(r.owner_id),
            ledger::MemberId(r.member_id),
            &r.consent,
        )
    })
    .await?;
    let mut v = TransactionView::of(&receipt.tx, None, receipt.replayed);
    v.reference = reference;
    Ok(Json(v))
}

/// Take a member out of its household pool (an owner leaving dissolves it).
#[utoipa::path(post, path = "/admin/v1/households/leave", tag = "programme",
    request_body = OperatorLeaveHousehold,
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn operator_leave(
    State(app): State<AppState>,
    ApiJson(r): ApiJson<OperatorLeaveHousehold>,
) -> JsonResult<TransactionView> {
    let ops = app.ops.clone();
    let reference = r.reference.clone();
    let receipt =
        blocking(move || op::leave_household(&ops, &r.reference, ledger::MemberId(r.member_id)))
            .await?;
    let mut v = TransactionView::of(&receipt.tx, None, receipt.replayed);
    v.reference = reference;
    Ok(Json(v))
}

/// A member's household pool.
#[utoipa::path(get, path = "/admin/v1/members/{id}/household", tag = "programme",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = HouseholdView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn operator_household(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> JsonResult<HouseholdView> {
    let ops = app.ops.clone();
    let h = blocking(move || op::household(&ops, ledger::MemberId(id))).await?;
    Ok(Json(view(
        h.map(|h| h.members)
            .unwrap_or_default()
            .into_iter()
            .map(|p| (Some(Who::Id(p.member.0)), p.spendable.0))
            .collect(),
    )))
}
