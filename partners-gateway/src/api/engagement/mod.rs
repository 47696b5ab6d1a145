//! Engagement over the operator API: the rewards catalogue and vouchers, discount codes,
//! referrals, draws, surveys and NPS, claims. The partner API's share is in [`partner`].

pub mod partner;

use super::{blocking, ApiJson, JsonResult, Path, Query};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::engagement::claims::{ClaimInput, ClaimStatus};
use crate::engagement::model::{
    Answer, CodeSetSpec, DrawSpec, ReferralPolicy, RewardSpec, SurveySpec,
};
use crate::ops::engagement::claims::{self, ClaimRecord, ClaimSettings, Decision, ResponseTimes};
use crate::ops::engagement::codes::{self, CodeCaller, CodeSetRecord, CodeUse, UseCode};
use crate::ops::engagement::draws::{self, DrawRecord, Purchase};
use crate::ops::engagement::referrals::{self, ReferralPolicyRecord, ReferralRecord};
use crate::ops::engagement::rewards::{self, Redeem, RewardRecord, VoucherRecord};
use crate::ops::engagement::surveys::{
    self, AnswerInput, Grouping, NpsRow, Response as SurveyResponse, SurveyRecord,
};
use crate::ops::error::{Kind, OpError};
use crate::ops::notify::BroadcastDraft;
use crate::ops::registry::{BroadcastRecord, OperatorRecord};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ledger::MemberId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the engagement routes of the operator API.
pub fn operator_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_rewards, create_reward))
        .routes(routes!(get_reward, revise_reward))
        .routes(routes!(member_rewards))
        .routes(routes!(redeem_reward))
        .routes(routes!(member_vouchers))
        .routes(routes!(get_voucher))
        .routes(routes!(list_code_sets, create_code_set))
        .routes(routes!(get_code_set))
        .routes(routes!(use_code))
        .routes(routes!(get_referral_policy, set_referral_policy))
        .routes(routes!(member_referral, refer))
        .routes(routes!(list_draws, create_draw))
        .routes(routes!(get_draw))
        .routes(routes!(buy_entries, draw_entries))
        .routes(routes!(reveal))
        .routes(routes!(list_surveys, create_survey))
        .routes(routes!(get_survey))
        .routes(routes!(send_survey))
        .routes(routes!(survey_responses))
        .routes(routes!(answer_survey))
        .routes(routes!(nps))
        .routes(routes!(get_claim_settings, set_claim_settings))
        .routes(routes!(member_claims, file_claim))
        .routes(routes!(get_claim))
        .routes(routes!(decide_claim))
        .routes(routes!(claim_response_times))
        .routes(routes!(run_due))
}

/// A definition from a JSON object of the documented fields (an array, which serde would read
/// as the fields in order, is refused).
pub(crate) fn definition<T: DeserializeOwned>(
    what: &str,
    v: serde_json::Value,
) -> Result<T, OpError> {
    if !v.is_object() {
        return Err(OpError::new(
            Kind::MalformedRequest,
            format!("{what} is a JSON object of the documented fields"),
        ));
    }
    serde_json::from_value(v)
        .map_err(|e| OpError::new(Kind::MalformedRequest, format!("invalid {what}: {e}")))
}

fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// A reward definition and why.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardRequest {
    /// The definition.
    #[schema(value_type = RewardSpec)]
    pub spec: serde_json::Value,
    /// Why: recorded with the author.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// Every reward in the catalogue.
#[utoipa::path(get, path = "/admin/v1/rewards", tag = "engagement",
    responses((status = 200, body = Vec<RewardRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_rewards(State(app): State<AppState>) -> JsonResult<Vec<RewardRecord>> {
    Ok(Json(
        blocking(move || rewards::rewards(&app.ops, None)).await?,
    ))
}

/// Add a reward to the catalogue: its price in points, the partner that fulfils it, stock,
/// per-member limit, dates, voucher validity and what an expired voucher's points do,
/// eligibility by tier and segment.
#[utoipa::path(post, path = "/admin/v1/rewards", tag = "engagement",
    request_body = RewardRequest,
    responses((status = 201, body = RewardRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn create_reward(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<RewardRequest>,
) -> Result<Response, OpError> {
    let spec: RewardSpec = definition("spec", r.spec)?;
    let rec =
        blocking(move || rewards::put_reward(&app.ops, 0, spec, &operator.name, &r.reason, None))
            .await?;
    Ok(created(rec))
}

/// A reward.
#[utoipa::path(get, path = "/admin/v1/rewards/{id}", tag = "engagement",
    params(("id" = u64, Path, description = "Reward id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = RewardRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_reward(State(app): State<AppState>, Path(id): Path<u32>) -> JsonResult<RewardRecord> {
    Ok(Json(blocking(move || rewards::reward(&app.ops, id)).await?))
}

/// Replace a reward's definition (its next version; vouchers issued keep theirs).
#[utoipa::path(put, path = "/admin/v1/rewards/{id}", tag = "engagement",
    params(("id" = u64, Path, description = "Reward id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = RewardRequest,
    responses((status = 200, body = RewardRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn revise_reward(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<RewardRequest>,
) -> JsonResult<RewardRecord> {
    if id == 0 {
        return Err(OpError::new(Kind::NotFound, "no such reward"));
    }
    let spec: RewardSpec = definition("spec", r.spec)?;
    Ok(Json(
        blocking(move || rewards::put_reward(&app.ops, id, spec, &operator.name, &r.reason, None))
            .await?,
    ))
}

/// The rewards a member may redeem now (active, in date, its tier and segments).
#[utoipa::path(get, path = "/admin/v1/members/{id}/rewards", tag = "engagement",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = Vec<RewardRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member_rewards(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> JsonResult<Vec<RewardRecord>> {
    Ok(Json(
        blocking(move || rewards::offered_to(&app.ops, MemberId(id))).await?,
    ))
}

/// A redemption: its idempotency key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// Idempotency key: a retry with it answers with the same voucher.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
}

/// A voucher, and whether the answer is a retry's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VoucherView {
    /// The voucher (its code in groups of four).
    #[serde(flatten)]
    pub voucher: VoucherRecord,
    /// True when this answers a retry of a request already applied.
    pub replayed: bool,
}

pub(crate) fn voucher_view(mut v: VoucherRecord, replayed: bool) -> VoucherView {
    v.code = crate::engagement::codes::display(&v.code);
    VoucherView {
        voucher: v,
        replayed,
    }
}

/// Redeem a reward for a member: its price is burned at the fulfilling partner (which is
/// reimbursed at its redemption price) and a voucher with a unique code is issued. Stock and
/// the per-member limit are counted in the same ledger decision as the burn.
#[utoipa::path(post, path = "/admin/v1/members/{id}/rewards/{reward_id}/redemptions", tag = "engagement",
    params(("id" = u64, Path, description = "Coalition member id"),
        ("reward_id" = u64, Path, description = "Reward id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = RedeemRequest,
    responses((status = 201, body = VoucherView), (status = 200, body = VoucherView, description = "A retry"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn redeem_reward(
    State(app): State<AppState>,
    Path((id, reward_id)): Path<(u64, u32)>,
    ApiJson(r): ApiJson<RedeemRequest>,
) -> Result<Response, OpError> {
    let req = Redeem {
        member: MemberId(id),
        reward: reward_id,
        reference: r.reference,
        prize: false,
    };
    let (v, replayed) = blocking(move || rewards::redeem(&app.ops, &req)).await?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(voucher_view(v, replayed))).into_response())
}

/// A member's vouchers.
#[utoipa::path(get, path = "/admin/v1/members/{id}/vouchers", tag = "engagement",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = Vec<VoucherView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member_vouchers(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> JsonResult<Vec<VoucherView>> {
    let v = blocking(move || rewards::member_vouchers(&app.ops, MemberId(id))).await?;
    Ok(Json(
        v.into_iter().map(|v| voucher_view(v, false)).collect(),
    ))
}

/// A voucher, by its code.
#[utoipa::path(get, path = "/admin/v1/vouchers/{code}", tag = "engagement",
    params(("code" = String, Path, description = "Voucher code (dashes and case ignored)", min_length = 1, max_length = 40, pattern = "^[A-Za-z0-9 -]{1,40}$")),
    responses((status = 200, body = VoucherView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_voucher(
    State(app): State<AppState>,
    Path(code): Path<String>,
) -> JsonResult<VoucherView> {
    let v = blocking(move || {
        rewards::voucher(&app.ops, &code)?
            .ok_or_else(|| OpError::new(Kind::NotFound, "no such voucher"))
    })
    .await?;
    Ok(Json(voucher_view(v, false)))
}

/// A code set definition and why.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeSetRequest {
    /// The definition.
    #[schema(value_type = CodeSetSpec)]
    pub spec: serde_json::Value,
    /// Why.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// A code set and its codes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CodeSetView {
    /// The set.
    pub set: CodeSetRecord,
    /// Its codes, with their uses so far.
    pub codes: Vec<CodeUses>,
}

/// A code and its uses.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CodeUses {
    /// The code.
    pub code: String,
    /// Uses so far.
    pub uses: u32,
}

/// Every discount code set.
#[utoipa::path(get, path = "/admin/v1/codes", tag = "engagement",
    responses((status = 200, body = Vec<CodeSetRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_code_sets(State(app): State<AppState>) -> JsonResult<Vec<CodeSetRecord>> {
    Ok(Json(blocking(move || codes::sets(&app.ops)).await?))
}

/// Make discount codes: unique single-use codes, or one shared code with a use limit; each
/// gives bonus points or a discount reference the partner applies, within dates and a
/// per-member limit.
#[utoipa::path(post, path = "/admin/v1/codes", tag = "engagement",
    request_body = CodeSetRequest,
    responses((status = 201, body = CodeSetView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn create_code_set(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<CodeSetRequest>,
) -> Result<Response, OpError> {
    let spec: CodeSetSpec = definition("spec", r.spec)?;
    let (set, made) =
        blocking(move || codes::create_set(&app.ops, spec, &operator.name, &r.reason)).await?;
    Ok(created(CodeSetView {
        set,
        codes: made
            .into_iter()
            .map(|code| CodeUses { code, uses: 0 })
            .collect(),
    }))
}

/// A code set, with its codes and their uses.
#[utoipa::path(get, path = "/admin/v1/codes/{id}", tag = "engagement",
    params(("id" = u64, Path, description = "Code set id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = CodeSetView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_code_set(State(app): State<AppState>, Path(id): Path<u32>) -> JsonResult<CodeSetView> {
    let (set, uses) = blocking(move || codes::set(&app.ops, id)).await?;
    Ok(Json(CodeSetView {
        set,
        codes: uses
            .into_iter()
            .map(|(code, uses)| CodeUses { code, uses })
            .collect(),
    }))
}

/// A use of a discount code.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseCodeRequest {
    /// The code as typed (dashes, spaces and case ignored).
    #[schema(min_length = 1, max_length = 40, pattern = "^[A-Za-z0-9 -]{1,40}$")]
    pub code: String,
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
}

/// Use a discount code for a member: bonus points are granted, or the discount reference is
/// given back.
#[utoipa::path(post, path = "/admin/v1/members/{id}/codes", tag = "engagement",
    params(("id" = u64, Path, description = "Coalition member id")),
    request_body = UseCodeRequest,
    responses((status = 200, body = CodeUse),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn use_code(
    State(app): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(r): ApiJson<UseCodeRequest>,
) -> JsonResult<CodeUse> {
    let u = UseCode {
        code: r.code,
        member: MemberId(id),
        reference: r.reference,
        caller: CodeCaller::Operator,
    };
    Ok(Json(blocking(move || codes::use_code(&app.ops, &u)).await?))
}

/// The referral policy and why.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferralPolicyRequest {
    /// The policy.
    #[schema(value_type = ReferralPolicy)]
    pub policy: serde_json::Value,
    /// Why.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// The referral policy in force.
#[utoipa::path(get, path = "/admin/v1/referrals/policy", tag = "engagement",
    responses((status = 200, body = ReferralPolicyRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_referral_policy(State(app): State<AppState>) -> JsonResult<ReferralPolicyRecord> {
    Ok(Json(blocking(move || referrals::policy(&app.ops)).await?))
}

/// Set the referral policy: both bonuses, who pays, the window for the referee's first
/// qualifying earn, the cap per referrer, the link.
#[utoipa::path(put, path = "/admin/v1/referrals/policy", tag = "engagement",
    request_body = ReferralPolicyRequest,
    responses((status = 200, body = ReferralPolicyRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn set_referral_policy(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<ReferralPolicyRequest>,
) -> JsonResult<ReferralPolicyRecord> {
    let p: ReferralPolicy = definition("policy", r.policy)?;
    Ok(Json(
        blocking(move || referrals::set_policy(&app.ops, p, &operator.name, &r.reason)).await?,
    ))
}

/// A member's referral code and link, who referred it, and whom it referred.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberReferralView {
    /// Its code.
    pub code: String,
    /// Its link.
    pub link: String,
    /// The referral that brought it in.
    pub referred_by: Option<ReferralRecord>,
    /// The referrals it made.
    pub referrals: Vec<ReferralRecord>,
}

/// A member's referral code and link (made on first asking), and its referrals.
#[utoipa::path(get, path = "/admin/v1/members/{id}/referral", tag = "engagement",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = MemberReferralView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member_referral(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> JsonResult<MemberReferralView> {
    let v = blocking(move || {
        let m = MemberId(id);
        let (code, link) = referrals::code_of(&app.ops, m)?;
        Ok(MemberReferralView {
            code,
            link,
            referred_by: referrals::referral_of(&app.ops, m)?,
            referrals: referrals::referrals_by(&app.ops, m)?,
        })
    })
    .await?;
    Ok(Json(v))
}

/// The referral code a new member joined with.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferRequest {
    /// The referrer's code (dashes and case ignored).
    #[schema(min_length = 1, max_length = 40, pattern = "^[A-Za-z0-9 -]{1,40}$")]
    pub code: String,
}

/// Record that a member joined with another's referral code. Both get their bonus once the
/// new member's first qualifying earn comes within the window.
#[utoipa::path(post, path = "/admin/v1/members/{id}/referral", tag = "engagement",
    params(("id" = u64, Path, description = "Coalition member id of the new member")),
    request_body = ReferRequest,
    responses((status = 201, body = ReferralRecord), (status = 200, body = ReferralRecord, description = "A retry"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn refer(
    State(app): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(r): ApiJson<ReferRequest>,
) -> Result<Response, OpError> {
    let (rec, replayed) =
        blocking(move || referrals::refer(&app.ops, MemberId(id), &r.code)).await?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(rec)).into_response())
}

/// A draw definition and why.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrawRequest {
    /// The definition, with the commitment `hex(SHA-256(seed))`.
    #[schema(value_type = DrawSpec)]
    pub spec: serde_json::Value,
    /// Why.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// Every draw.
#[utoipa::path(get, path = "/admin/v1/draws", tag = "engagement",
    responses((status = 200, body = Vec<DrawRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_draws(State(app): State<AppState>) -> JsonResult<Vec<DrawRecord>> {
    Ok(Json(blocking(move || draws::list(&app.ops)).await?))
}

/// Create a draw, committing to its seed: entries per points held at the close, or bought
/// with points; prizes of points or rewards.
#[utoipa::path(post, path = "/admin/v1/draws", tag = "engagement",
    request_body = DrawRequest,
    responses((status = 201, body = DrawRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn create_draw(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<DrawRequest>,
) -> Result<Response, OpError> {
    let spec: DrawSpec = definition("spec", r.spec)?;
    let d = blocking(move || draws::create(&app.ops, spec, &operator.name, &r.reason)).await?;
    Ok(created(d))
}

/// A draw (its winners once drawn).
#[utoipa::path(get, path = "/admin/v1/draws/{id}", tag = "engagement",
    params(("id" = u64, Path, description = "Draw id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = DrawRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_draw(State(app): State<AppState>, Path(id): Path<u32>) -> JsonResult<DrawRecord> {
    Ok(Json(blocking(move || draws::get(&app.ops, id)).await?))
}

/// Entries bought for a member.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyEntriesRequest {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The member.
    #[serde(deserialize_with = "crate::api::whole::required")]
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_u64)]
    pub member_id: u64,
    /// Entries to buy.
    #[serde(deserialize_with = "crate::api::whole::required")]
    #[schema(minimum = 1, maximum = 100000)]
    pub entries: u64,
}

/// Buy entries in a draw for a member, burning points at the sponsoring partner.
#[utoipa::path(post, path = "/admin/v1/draws/{id}/entries", tag = "engagement",
    params(("id" = u64, Path, description = "Draw id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = BuyEntriesRequest,
    responses((status = 200, body = Purchase),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn buy_entries(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<BuyEntriesRequest>,
) -> JsonResult<Purchase> {
    let (p, _) =
        blocking(move || draws::buy(&app.ops, id, MemberId(r.member_id), r.entries, &r.reference))
            .await?;
    Ok(Json(p))
}

/// A closed draw's published entry list: `member_id,entries`, by member id. With the seed,
/// `partners-gateway draw-verify` recomputes the winners from it.
#[utoipa::path(get, path = "/admin/v1/draws/{id}/entries", tag = "engagement",
    params(("id" = u64, Path, description = "Draw id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = String, content_type = "text/csv"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn draw_entries(
    State(app): State<AppState>,
    Path(id): Path<u32>,
) -> Result<Response, OpError> {
    let csv = blocking(move || draws::entry_list(&app.ops, id)).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

/// The seed, revealed.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealRequest {
    /// The seed, hex (16 to 64 bytes): its SHA-256 must be the draw's commitment.
    #[schema(
        min_length = 32,
        max_length = 128,
        pattern = "^([0-9a-fA-F]{2}){16,64}$"
    )]
    pub seed: String,
}

/// Reveal a closed draw's seed: checked against the commitment, the winners drawn from the
/// published entries, and each prize posted.
#[utoipa::path(post, path = "/admin/v1/draws/{id}/reveal", tag = "engagement",
    params(("id" = u64, Path, description = "Draw id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = RevealRequest,
    responses((status = 200, body = DrawRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn reveal(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<RevealRequest>,
) -> JsonResult<DrawRecord> {
    Ok(Json(
        blocking(move || draws::reveal(&app.ops, id, &r.seed)).await?,
    ))
}

/// A survey definition and why.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyRequest {
    /// The definition.
    #[schema(value_type = SurveySpec)]
    pub spec: serde_json::Value,
    /// Why.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// Every survey.
#[utoipa::path(get, path = "/admin/v1/surveys", tag = "engagement",
    responses((status = 200, body = Vec<SurveyRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_surveys(State(app): State<AppState>) -> JsonResult<Vec<SurveyRecord>> {
    Ok(Json(blocking(move || surveys::list(&app.ops)).await?))
}

/// Create a survey: the NPS question, other questions, the partner it asks about, a reward
/// for answering.
#[utoipa::path(post, path = "/admin/v1/surveys", tag = "engagement",
    request_body = SurveyRequest,
    responses((status = 201, body = SurveyRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn create_survey(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<SurveyRequest>,
) -> Result<Response, OpError> {
    let spec: SurveySpec = definition("spec", r.spec)?;
    Ok(created(
        blocking(move || surveys::create(&app.ops, spec, &operator.name, &r.reason)).await?,
    ))
}

/// A survey.
#[utoipa::path(get, path = "/admin/v1/surveys/{id}", tag = "engagement",
    params(("id" = u64, Path, description = "Survey id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = SurveyRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_survey(State(app): State<AppState>, Path(id): Path<u32>) -> JsonResult<SurveyRecord> {
    Ok(Json(blocking(move || surveys::get(&app.ops, id)).await?))
}

/// Send a survey to a segment: a broadcast through the notifications (its text names the
/// portal link or how to answer).
#[utoipa::path(post, path = "/admin/v1/surveys/{id}/send", tag = "engagement",
    params(("id" = u64, Path, description = "Survey id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = crate::api::notify::BroadcastRequest,
    responses((status = 201, body = BroadcastRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn send_survey(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<crate::api::notify::BroadcastRequest>,
) -> Result<Response, OpError> {
    let d = BroadcastDraft::from(r);
    Ok(created(
        blocking(move || surveys::send(&app.ops, id, d, &operator.name)).await?,
    ))
}

/// A survey's responses.
#[utoipa::path(get, path = "/admin/v1/surveys/{id}/responses", tag = "engagement",
    params(("id" = u64, Path, description = "Survey id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = Vec<SurveyResponse>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn survey_responses(
    State(app): State<AppState>,
    Path(id): Path<u32>,
) -> JsonResult<Vec<SurveyResponse>> {
    Ok(Json(
        blocking(move || surveys::responses(&app.ops, id)).await?,
    ))
}

/// A member's answers to a survey.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The NPS answer, 0 to 10.
    #[serde(deserialize_with = "crate::api::whole::required")]
    #[schema(minimum = 0, maximum = 10)]
    pub score: i64,
    /// Answers to the other questions.
    #[serde(default, deserialize_with = "crate::engagement::objects")]
    #[schema(max_items = 20)]
    pub answers: Vec<Answer>,
    /// The partner it was answered about, when the survey names none.
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    pub partner_id: Option<u32>,
    /// The branch it was answered about.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 32)]
    pub branch: Option<String>,
}

/// Record a member's answers to a survey (once per member); a survey with a reward grants it.
#[utoipa::path(post, path = "/admin/v1/members/{id}/surveys/{survey_id}/responses", tag = "engagement",
    params(("id" = u64, Path, description = "Coalition member id"),
        ("survey_id" = u64, Path, description = "Survey id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = AnswerRequest,
    responses((status = 201, body = SurveyResponse),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn answer_survey(
    State(app): State<AppState>,
    Path((id, survey_id)): Path<(u64, u32)>,
    ApiJson(r): ApiJson<AnswerRequest>,
) -> Result<Response, OpError> {
    let a = AnswerInput {
        score: r.score,
        answers: r.answers,
        partner: r.partner_id,
        branch: r.branch,
    };
    if let Some(p) = a.partner {
        crate::engagement::within("partner_id", p, 1, i32::MAX as u32)
            .map_err(|e| OpError::new(Kind::InvalidRule, e.0))?;
    }
    Ok(created(
        blocking(move || surveys::answer(&app.ops, survey_id, MemberId(id), a)).await?,
    ))
}

/// Which responses NPS counts, and how it groups them.
#[derive(Debug, Deserialize, IntoParams)]
pub struct NpsQuery {
    /// One survey's responses (default: every survey's).
    #[param(minimum = 1, maximum = 4_294_967_295_u64)]
    pub survey: Option<u32>,
    /// Group by any of `partner`, `branch`, `month`, comma-separated (default: one group).
    #[param(pattern = "^(partner|branch|month)(,(partner|branch|month)){0,2}$")]
    pub by: Option<String>,
    /// Responses from (ms since the Unix epoch).
    #[param(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub from_ms: Option<i64>,
    /// Responses before.
    #[param(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub to_ms: Option<i64>,
}

/// NPS: promoters (9 and 10) minus detractors (0 to 6), in percent of responses, per partner,
/// branch and month as asked.
#[utoipa::path(get, path = "/admin/v1/nps", tag = "engagement",
    params(NpsQuery),
    responses((status = 200, body = Vec<NpsRow>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn nps(State(app): State<AppState>, Query(q): Query<NpsQuery>) -> JsonResult<Vec<NpsRow>> {
    let mut by = Grouping::default();
    // Absent: one group; present: each name once of partner, branch, month (an empty name is
    // refused, as the pattern says).
    for g in q.by.as_deref().map(|b| b.split(',')).into_iter().flatten() {
        match g {
            "partner" => by.partner = true,
            "branch" => by.branch = true,
            "month" => by.month = true,
            other => {
                return Err(OpError::new(
                    Kind::InvalidRequest,
                    format!("by names partner, branch or month, not {other:?}"),
                ))
            }
        }
    }
    check_instants(q.from_ms, q.to_ms)?;
    if q.survey == Some(0) {
        return Err(OpError::new(Kind::NotFound, "no such survey"));
    }
    Ok(Json(
        blocking(move || surveys::nps(&app.ops, q.survey, q.from_ms, q.to_ms, by)).await?,
    ))
}

fn check_instants(from: Option<i64>, to: Option<i64>) -> Result<(), OpError> {
    for (f, v) in [("from_ms", from), ("to_ms", to)] {
        if let Some(v) = v {
            crate::engagement::within(f, v, 0, crate::engagement::model::INSTANT_MS_MAX)
                .map_err(|e| OpError::new(Kind::InvalidRequest, e.0))?;
        }
    }
    Ok(())
}

/// The claims settings.
#[utoipa::path(get, path = "/admin/v1/claims/settings", tag = "engagement",
    responses((status = 200, body = ClaimSettings),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_claim_settings(State(app): State<AppState>) -> JsonResult<ClaimSettings> {
    Ok(Json(blocking(move || claims::settings(&app.ops)).await?))
}

/// Set the claims settings: how many days after a purchase its missing points may be claimed.
#[utoipa::path(put, path = "/admin/v1/claims/settings", tag = "engagement",
    request_body = ClaimSettings,
    responses((status = 200, body = ClaimSettings),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn set_claim_settings(
    State(app): State<AppState>,
    ApiJson(s): ApiJson<serde_json::Value>,
) -> JsonResult<ClaimSettings> {
    let s: ClaimSettings = definition("settings", s)?;
    Ok(Json(
        blocking(move || claims::set_settings(&app.ops, s)).await?,
    ))
}

/// A member's claims.
#[utoipa::path(get, path = "/admin/v1/members/{id}/claims", tag = "engagement",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = Vec<ClaimRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member_claims(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> JsonResult<Vec<ClaimRecord>> {
    Ok(Json(
        blocking(move || claims::of_member(&app.ops, MemberId(id))).await?,
    ))
}

/// File a member's claim: missing points (partner, date, receipt, amount) or a complaint.
#[utoipa::path(post, path = "/admin/v1/members/{id}/claims", tag = "engagement",
    params(("id" = u64, Path, description = "Coalition member id")),
    request_body = ClaimInput,
    responses((status = 201, body = ClaimRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn file_claim(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u64>,
    ApiJson(c): ApiJson<serde_json::Value>,
) -> Result<Response, OpError> {
    let c: ClaimInput = definition("claim", c)?;
    let by = format!("operator:{}", operator.name);
    Ok(created(
        blocking(move || claims::file(&app.ops, MemberId(id), c, &by)).await?,
    ))
}

/// A claim with its history.
#[utoipa::path(get, path = "/admin/v1/claims/{id}", tag = "engagement",
    params(("id" = u64, Path, description = "Claim id", minimum = 1)),
    responses((status = 200, body = ClaimRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_claim(State(app): State<AppState>, Path(id): Path<u64>) -> JsonResult<ClaimRecord> {
    Ok(Json(
        blocking(move || claims::get(&app.ops, id, None)).await?,
    ))
}

/// A decision on a claim.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// `in_review`, `accepted` or `rejected`.
    pub status: ClaimStatus,
    /// A note for the member (required to reject).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 2000)]
    pub note: Option<String>,
}

/// Move a claim on: in review, accepted (a missing-points claim's earn is posted under the
/// partner's receipt reference, so it never counts twice), or rejected with a note. The
/// member is told.
#[utoipa::path(post, path = "/admin/v1/claims/{id}/decision", tag = "engagement",
    params(("id" = u64, Path, description = "Claim id", minimum = 1)),
    request_body = DecisionRequest,
    responses((status = 200, body = ClaimRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn decide_claim(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u64>,
    ApiJson(r): ApiJson<DecisionRequest>,
) -> JsonResult<ClaimRecord> {
    let d = Decision {
        status: r.status,
        note: r.note,
        by: format!("operator:{}", operator.name),
    };
    Ok(Json(
        blocking(move || claims::decide(&app.ops, id, None, d)).await?,
    ))
}

/// The period claims are counted over.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PeriodQuery {
    /// Claims filed from (ms since the Unix epoch).
    #[param(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub from_ms: Option<i64>,
    /// Claims filed before.
    #[param(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub to_ms: Option<i64>,
}

/// Claims handling per partner: filed, decided, accepted, waiting, and hours to a decision.
#[utoipa::path(get, path = "/admin/v1/claims/response-times", tag = "engagement",
    params(PeriodQuery),
    responses((status = 200, body = Vec<ResponseTimes>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn claim_response_times(
    State(app): State<AppState>,
    Query(q): Query<PeriodQuery>,
) -> JsonResult<Vec<ResponseTimes>> {
    check_instants(q.from_ms, q.to_ms)?;
    Ok(Json(
        blocking(move || claims::response_times(&app.ops, q.from_ms, q.to_ms)).await?,
    ))
}

/// What a run of the due work moved.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    /// Vouchers expired, referrals rewarded or lapsed, draws closed.
    pub moved: usize,
}

/// Run the engagement work that is due now (it also runs every 30 seconds): expired vouchers,
/// referrals whose referee qualified, draws past their close.
#[utoipa::path(post, path = "/admin/v1/engagement/run", tag = "engagement",
    responses((status = 200, body = RunView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn run_due(State(app): State<AppState>) -> JsonResult<RunView> {
    let moved = blocking(move || crate::ops::engagement::run_due(&app.ops)).await?;
    Ok(Json(RunView { moved }))
}
