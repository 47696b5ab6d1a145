//! The operator API for the programme's rules: campaigns, the points budget guard, programme
//! settings and the budget's standing. Mounted inside the operator router (bearer tokens; the
//! `finance` role reads only).

use super::{blocking, ApiJson, JsonResult, Path};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::ops::error::OpError;
use crate::ops::programme::{self as op, CampaignState, SettingsDraft};
use crate::ops::registry::{OperatorRecord, ProgrammeSettings};
use crate::programme::guard::{BudgetGuard, GuardDraft};
use crate::programme::rules::{Campaign, CampaignDraft};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the programme routes to the operator router.
pub fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign, revise_campaign))
        .routes(routes!(get_programme, put_programme))
        .routes(routes!(list_guards))
        .routes(routes!(put_programme_guard))
        .routes(routes!(put_partner_guard))
        .routes(routes!(budget))
}

/// A campaign: the version in force, every version, and the points it has given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CampaignView {
    /// Campaign id.
    pub id: u32,
    /// The version in force now; absent while the first is scheduled.
    pub in_force_version: Option<u32>,
    /// Bonus points granted so far, net of room given back by refunds.
    pub awarded_points: i64,
    /// Every version, oldest first, each with its author and reason.
    pub versions: Vec<Campaign>,
}

impl From<CampaignState> for CampaignView {
    fn from(s: CampaignState) -> Self {
        CampaignView {
            id: s.versions.first().map_or(0, |c| c.id),
            in_force_version: s.in_force,
            awarded_points: s.awarded.0,
            versions: s.versions,
        }
    }
}

/// Every campaign.
#[utoipa::path(get, path = "/admin/v1/campaigns", tag = "programme",
    responses((status = 200, body = Vec<CampaignView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_campaigns(State(app): State<AppState>) -> JsonResult<Vec<CampaignView>> {
    let all = blocking(move || op::campaigns(&app.ops)).await?;
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

/// Define a campaign: its first version, recorded with the operator and the reason.
#[utoipa::path(post, path = "/admin/v1/campaigns", tag = "programme",
    request_body = CampaignDraft,
    responses((status = 201, body = Campaign),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn create_campaign(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(d): ApiJson<CampaignDraft>,
) -> Result<Response, OpError> {
    let c = blocking(move || op::save_campaign(&app.ops, None, d, &operator.name)).await?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

/// A campaign, with every version.
#[utoipa::path(get, path = "/admin/v1/campaigns/{id}", tag = "programme",
    params(("id" = u64, Path, description = "Campaign id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = CampaignView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_campaign(
    State(app): State<AppState>,
    Path(id): Path<u32>,
) -> JsonResult<CampaignView> {
    let s = blocking(move || op::campaign(&app.ops, id)).await?;
    Ok(Json(s.into()))
}

/// Record a new version of a campaign (to change, pause or end it), in force from
/// `effective_from_ms` (default now; never in the past).
#[utoipa::path(put, path = "/admin/v1/campaigns/{id}", tag = "programme",
    params(("id" = u64, Path, description = "Campaign id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = CampaignDraft,
    responses((status = 200, body = Campaign),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn revise_campaign(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u32>,
    ApiJson(d): ApiJson<CampaignDraft>,
) -> JsonResult<Campaign> {
    let c = blocking(move || op::save_campaign(&app.ops, Some(id), d, &operator.name)).await?;
    Ok(Json(c))
}

/// The programme's settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeDraft {
    /// IANA time zone that days, hours and budget periods are counted in.
    #[schema(
        example = "Asia/Tehran",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9_+/-]{1,64}$"
    )]
    pub time_zone: String,
    /// The programme's currency (ISO 4217), for the programme-wide budget guard.
    #[schema(example = "IRR", pattern = "^[A-Z]{3}$")]
    #[serde(default)]
    pub currency: Option<String>,
    /// Why: recorded with the operator.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

/// The programme's settings in force (version 0: never set, the defaults).
#[utoipa::path(get, path = "/admin/v1/programme", tag = "programme",
    responses((status = 200, body = ProgrammeSettings),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_programme(State(app): State<AppState>) -> JsonResult<ProgrammeSettings> {
    Ok(Json(app.ops.registry.programme_settings().unwrap_or(
        ProgrammeSettings {
            version: 0,
            time_zone: "UTC".into(),
            currency: None,
            reason: "default".into(),
            author: String::new(),
            recorded_at_ms: 0,
        },
    )))
}

/// Set the programme's time zone and currency (a new version, with the reason).
#[utoipa::path(put, path = "/admin/v1/programme", tag = "programme",
    request_body = ProgrammeDraft,
    responses((status = 200, body = ProgrammeSettings),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_programme(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(d): ApiJson<ProgrammeDraft>,
) -> JsonResult<ProgrammeSettings> {
    let draft = SettingsDraft {
        time_zone: d.time_zone,
        currency: d.currency,
        reason: d.reason,
    };
    let s = blocking(move || op::set_programme(&app.ops, draft, &operator.name)).await?;
    Ok(Json(s))
}

/// Every points budget guard version (scope 0: the programme), oldest first per scope.
#[utoipa::path(get, path = "/admin/v1/budget-guards", tag = "programme",
    responses((status = 200, body = Vec<BudgetGuard>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_guards(State(app): State<AppState>) -> JsonResult<Vec<BudgetGuard>> {
    Ok(Json(op::guards(&app.ops)))
}

/// Set the programme-wide points budget guard (needs the programme's currency).
#[utoipa::path(put, path = "/admin/v1/budget-guards/programme", tag = "programme",
    request_body = GuardDraft,
    responses((status = 200, body = BudgetGuard),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_programme_guard(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(d): ApiJson<GuardDraft>,
) -> JsonResult<BudgetGuard> {
    let g = blocking(move || op::set_guard(&app.ops, None, d, &operator.name)).await?;
    Ok(Json(g))
}

/// Set a partner's points budget guard (in its contract currency).
#[utoipa::path(put, path = "/admin/v1/budget-guards/partners/{id}", tag = "programme",
    params(("id" = u64, Path, description = "Partner id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = GuardDraft,
    responses((status = 200, body = BudgetGuard),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_partner_guard(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u32>,
    ApiJson(d): ApiJson<GuardDraft>,
) -> JsonResult<BudgetGuard> {
    let g = blocking(move || op::set_guard(&app.ops, Some(id), d, &operator.name)).await?;
    Ok(Json(g))
}

/// One period's standing against the points budget.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BudgetPeriodView {
    /// The partner; absent for the programme.
    pub partner_id: Option<u32>,
    /// `2026-11`, `2026-Q4` or `2026`.
    pub period: String,
    /// Sales counted (decimal string).
    pub sales: String,
    /// Value of points issued, at the earning partner's issuance price (decimal string).
    pub points_value: String,
    /// Value per unit of sales (decimal string, 6 places); absent without sales.
    pub ratio: Option<String>,
    /// The ceiling in force, when the guard is on.
    pub ceiling: Option<String>,
    /// Thresholds (percent of the ceiling) crossed in the period.
    pub thresholds_crossed: Vec<u8>,
}

/// The points budget per guard and period, newest period first.
#[utoipa::path(get, path = "/admin/v1/budget", tag = "programme",
    responses((status = 200, body = Vec<BudgetPeriodView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn budget(State(app): State<AppState>) -> JsonResult<Vec<BudgetPeriodView>> {
    let periods = blocking(move || op::budget(&app.ops)).await?;
    Ok(Json(
        periods
            .into_iter()
            .map(|p| BudgetPeriodView {
                partner_id: p.partner,
                period: p.period,
                sales: p.sales.normalize().to_string(),
                points_value: p.value.normalize().to_string(),
                ratio: p.ratio.map(|r| r.round_dp(6).normalize().to_string()),
                ceiling: p.ceiling.map(|c| c.normalize().to_string()),
                thresholds_crossed: p.crossed,
            })
            .collect(),
    ))
}
