//! The partner API's engagement routes: the rewards a partner fulfils, its vouchers redeemed at
//! its till, discount codes used at its till, survey answers given at its counter, and the
//! claims filed against it. Every record is in the partner's scope: another partner's answers
//! as unknown.

use super::{definition, voucher_view, RewardRequest, VoucherView};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::api::{blocking, ApiJson, JsonResult, Path, Query};
use crate::engagement::claims::ClaimStatus;
use crate::engagement::model::{Answer, RewardSpec};
use crate::ops::engagement::claims::{self, ClaimRecord, Decision};
use crate::ops::engagement::codes::{self, CodeCaller, CodeUse, UseCode};
use crate::ops::engagement::rewards::{self, RewardRecord, TillRedemption};
use crate::ops::engagement::surveys::{self, AnswerInput, Response as SurveyResponse};
use crate::ops::error::{Kind, OpError};
use crate::ops::partner::member_of;
use crate::ops::registry::KeyScope;
use crate::ops::PartnerCaller;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the engagement routes of the partner API.
pub fn partner_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_rewards, create_reward))
        .routes(routes!(revise_reward))
        .routes(routes!(get_voucher))
        .routes(routes!(redeem_voucher))
        .routes(routes!(use_code))
        .routes(routes!(answer_survey))
        .routes(routes!(list_claims))
        .routes(routes!(get_claim))
        .routes(routes!(decide_claim))
}

/// The rewards this partner fulfils.
#[utoipa::path(get, path = "/v1/rewards", tag = "partner",
    responses((status = 200, body = Vec<RewardRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn list_rewards(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
) -> JsonResult<Vec<RewardRecord>> {
    caller.require(KeyScope::Read)?;
    Ok(Json(
        blocking(move || rewards::rewards(&app.ops, Some(caller.partner))).await?,
    ))
}

/// Add a reward this partner fulfils to the catalogue.
#[utoipa::path(post, path = "/v1/rewards", tag = "partner",
    request_body = RewardRequest,
    responses((status = 201, body = RewardRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn create_reward(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<RewardRequest>,
) -> Result<Response, OpError> {
    caller.require(KeyScope::Burn)?;
    let spec: RewardSpec = definition("spec", r.spec)?;
    let author = format!("partner:{}", caller.partner.0);
    let rec = blocking(move || {
        rewards::put_reward(&app.ops, 0, spec, &author, &r.reason, Some(caller.partner))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

/// Replace the definition of a reward this partner fulfils.
#[utoipa::path(put, path = "/v1/rewards/{id}", tag = "partner",
    params(("id" = u64, Path, description = "Reward id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = RewardRequest,
    responses((status = 200, body = RewardRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn revise_reward(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<RewardRequest>,
) -> JsonResult<RewardRecord> {
    caller.require(KeyScope::Burn)?;
    if id == 0 {
        return Err(OpError::new(Kind::NotFound, "no such reward"));
    }
    let spec: RewardSpec = definition("spec", r.spec)?;
    let author = format!("partner:{}", caller.partner.0);
    Ok(Json(
        blocking(move || {
            rewards::put_reward(&app.ops, id, spec, &author, &r.reason, Some(caller.partner))
        })
        .await?,
    ))
}

/// A voucher this partner fulfils, by its code: its reward, points and status.
#[utoipa::path(get, path = "/v1/vouchers/{code}", tag = "partner",
    params(("code" = String, Path, description = "Voucher code (dashes and case ignored)", min_length = 1, max_length = 40, pattern = "^[A-Za-z0-9 -]{1,40}$")),
    responses((status = 200, body = VoucherView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn get_voucher(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(code): Path<String>,
) -> JsonResult<VoucherView> {
    caller.require(KeyScope::Burn)?;
    let v = blocking(move || rewards::partner_voucher(&app.ops, &caller, &code)).await?;
    Ok(Json(voucher_view(v, false)))
}

/// A till's redemption of a voucher.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemVoucherRequest {
    /// The till's reference (its receipt): a retry with it answers as a replay.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The branch.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 32)]
    pub branch: Option<String>,
}

/// Redeem a voucher at this partner's till, exactly once: a second redemption (another till,
/// another reference) is refused.
#[utoipa::path(post, path = "/v1/vouchers/{code}/redemption", tag = "partner",
    params(("code" = String, Path, description = "Voucher code (dashes and case ignored)", min_length = 1, max_length = 40, pattern = "^[A-Za-z0-9 -]{1,40}$")),
    request_body = RedeemVoucherRequest,
    responses((status = 200, body = VoucherView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn redeem_voucher(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(code): Path<String>,
    ApiJson(r): ApiJson<RedeemVoucherRequest>,
) -> JsonResult<VoucherView> {
    caller.require(KeyScope::Burn)?;
    let t = TillRedemption {
        code,
        reference: r.reference,
        branch: r.branch,
    };
    let (v, replayed) = blocking(move || rewards::redeem_at_till(&app.ops, &caller, &t)).await?;
    Ok(Json(voucher_view(v, replayed)))
}

/// A discount code used at the till.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerUseCodeRequest {
    /// The code as typed.
    #[schema(min_length = 1, max_length = 40, pattern = "^[A-Za-z0-9 -]{1,40}$")]
    pub code: String,
    /// The member, by the partner's reference.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub member: String,
    /// Idempotency key (the till's receipt).
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
}

/// Use a discount code for a member at this partner: bonus points are granted, or the
/// discount reference to apply is given back.
#[utoipa::path(post, path = "/v1/codes/use", tag = "partner",
    request_body = PartnerUseCodeRequest,
    responses((status = 200, body = CodeUse),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn use_code(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<PartnerUseCodeRequest>,
) -> JsonResult<CodeUse> {
    caller.require(KeyScope::Earn)?;
    Ok(Json(
        blocking(move || {
            let member = member_of(&app.ops, &caller, &r.member)?;
            let u = UseCode {
                code: r.code,
                member,
                reference: r.reference,
                caller: CodeCaller::Partner(caller.partner),
            };
            codes::use_code(&app.ops, &u)
        })
        .await?,
    ))
}

/// A member's answers, given at the partner.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerAnswerRequest {
    /// The member, by the partner's reference.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub member: String,
    /// The NPS answer, 0 to 10.
    #[serde(deserialize_with = "crate::api::whole::required")]
    #[schema(minimum = 0, maximum = 10)]
    pub score: i64,
    /// Answers to the other questions.
    #[serde(default, deserialize_with = "crate::engagement::objects")]
    #[schema(max_items = 20)]
    pub answers: Vec<Answer>,
    /// The branch.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 32)]
    pub branch: Option<String>,
}

/// Record a member's answers to a survey at this partner (once per member); they count for
/// this partner's NPS unless the survey names another.
#[utoipa::path(post, path = "/v1/surveys/{id}/responses", tag = "partner",
    params(("id" = u64, Path, description = "Survey id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = PartnerAnswerRequest,
    responses((status = 201, body = SurveyResponse),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn answer_survey(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<PartnerAnswerRequest>,
) -> Result<Response, OpError> {
    caller.require(KeyScope::Earn)?;
    let rec = blocking(move || {
        let member = member_of(&app.ops, &caller, &r.member)?;
        let a = AnswerInput {
            score: r.score,
            answers: r.answers,
            partner: Some(caller.partner.0),
            branch: r.branch,
        };
        surveys::answer(&app.ops, id, member, a)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

/// Which claims to list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ClaimsQuery {
    /// Only claims in this status.
    pub status: Option<ClaimStatus>,
    /// Most claims (1 to 1,000, default 100), oldest first.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// The claims filed against this partner.
#[utoipa::path(get, path = "/v1/claims", tag = "partner",
    params(ClaimsQuery),
    responses((status = 200, body = Vec<ClaimRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn list_claims(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Query(q): Query<ClaimsQuery>,
) -> JsonResult<Vec<ClaimRecord>> {
    caller.require(KeyScope::Read)?;
    let limit = match q.limit {
        Some(n) if !(1..=1000).contains(&n) => {
            return Err(OpError::new(
                Kind::InvalidRequest,
                "limit must be 1 to 1000",
            ))
        }
        Some(n) => n as usize,
        None => 100,
    };
    Ok(Json(
        blocking(move || claims::of_partner(&app.ops, caller.partner, q.status, limit)).await?,
    ))
}

/// A claim filed against this partner.
#[utoipa::path(get, path = "/v1/claims/{id}", tag = "partner",
    params(("id" = u64, Path, description = "Claim id", minimum = 1)),
    responses((status = 200, body = ClaimRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn get_claim(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(id): Path<u64>,
) -> JsonResult<ClaimRecord> {
    caller.require(KeyScope::Read)?;
    Ok(Json(
        blocking(move || claims::get(&app.ops, id, Some(caller.partner))).await?,
    ))
}

/// Move a claim filed against this partner on: in review, accepted (a missing-points claim's
/// earn is posted under this partner's receipt reference), or rejected with a note.
#[utoipa::path(post, path = "/v1/claims/{id}/decision", tag = "partner",
    params(("id" = u64, Path, description = "Claim id", minimum = 1)),
    request_body = super::DecisionRequest,
    responses((status = 200, body = ClaimRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn decide_claim(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(id): Path<u64>,
    ApiJson(r): ApiJson<super::DecisionRequest>,
) -> JsonResult<ClaimRecord> {
    caller.require(KeyScope::Earn)?;
    let d = Decision {
        status: r.status,
        note: r.note,
        by: format!("partner:{}", caller.partner.0),
    };
    Ok(Json(
        blocking(move || claims::decide(&app.ops, id, Some(caller.partner), d)).await?,
    ))
}
