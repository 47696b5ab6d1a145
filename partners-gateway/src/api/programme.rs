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
use ledger::Timestamp;
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
        .routes(routes!(get_expiry_policy, put_expiry_policy))
        .routes(routes!(expiring_by_month))
        .routes(routes!(member_expiring))
        .routes(routes!(get_transfer_policy, put_transfer_policy))
        .routes(routes!(operator_transfer))
        .routes(routes!(get_tier_policy, put_tier_policy))
        .routes(routes!(member_tier, set_member_tier))
}

/// A tier level.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierLevelView {
    /// Its name, in any script.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// Qualifying total that reaches it.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub threshold: i64,
}

/// What qualifies for tiers.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BasisView {
    /// Partner-issued points of qualifying earns.
    Points,
    /// The number of qualifying earns.
    Activities,
    /// The purchase amounts of qualifying earns in `currency`, in its minor units.
    Spend,
}

/// For one partner, the only categories whose earns qualify.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerCategoriesView {
    /// The partner.
    #[serde(deserialize_with = "crate::api::whole::required")]
    #[schema(minimum = 0, maximum = 4_294_967_295_i64)]
    pub partner: u32,
    /// Its qualifying categories, as partners send them (1 to 64 bytes each).
    #[schema(min_items = 1, max_items = 64, value_type = Vec<String>)]
    pub categories: Vec<String>,
}

/// The window qualification counts over.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowView {
    /// The calendar year, reviewed at its end.
    CalendarYear,
    /// The last 12 months, reviewed at each month end.
    Rolling12Months,
}

/// The tier policy (time zone: the programme's).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierPolicyDraft {
    /// Idempotency key of the change.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// Why the policy changes, in words an auditor can follow (journaled with the operator's
    /// name; see the versions route).
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
    /// Levels above the base, in ascending thresholds.
    #[schema(min_items = 1, max_items = 15)]
    pub levels: Vec<TierLevelView>,
    /// What qualifies (default points).
    #[serde(default = "default_basis")]
    pub basis: BasisView,
    /// The window (default the calendar year).
    #[serde(default = "default_window")]
    pub window: WindowView,
    /// Period ends a member may fall short at before moving down a level.
    #[serde(default, deserialize_with = "crate::api::whole::required")]
    #[schema(maximum = 12)]
    pub grace_periods: u8,
    /// Partners whose earns qualify; empty: all.
    #[serde(default, deserialize_with = "crate::programme::whole_list")]
    #[schema(max_items = 64)]
    pub partners: Vec<u32>,
    /// Partners whose earns qualify only in some categories.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub categories: Vec<PartnerCategoriesView>,
    /// The currency spend counts in (required with the `spend` basis, refused otherwise).
    #[schema(min_length = 3, max_length = 3, pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
}

fn default_basis() -> BasisView {
    BasisView::Points
}

fn default_window() -> WindowView {
    WindowView::CalendarYear
}

/// The tier policy in force.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TierPolicyView {
    /// Levels above the base; empty: no tiers.
    pub levels: Vec<TierLevelView>,
    /// What qualifies.
    pub basis: BasisView,
    /// The window.
    pub window: WindowView,
    /// Grace periods.
    pub grace_periods: u8,
    /// Qualifying partners; empty: all.
    pub partners: Vec<u32>,
    /// Partners whose earns qualify only in some categories.
    pub categories: Vec<PartnerCategoriesView>,
    /// The currency spend counts in (the `spend` basis).
    pub currency: Option<String>,
    /// The time zone.
    pub time_zone: String,
}

impl From<Option<ledger::core::tiers::TierPolicy>> for TierPolicyView {
    fn from(p: Option<ledger::core::tiers::TierPolicy>) -> Self {
        use ledger::core::tiers::{Basis, Window};
        let p = p.unwrap_or(ledger::core::tiers::TierPolicy {
            levels: vec![],
            basis: Basis::Points,
            window: Window::CalendarYear,
            grace_periods: 0,
            partners: vec![],
            categories: vec![],
            time_zone: "UTC".into(),
            note: Default::default(),
        });
        TierPolicyView {
            levels: p
                .levels
                .into_iter()
                .map(|l| TierLevelView {
                    name: l.name,
                    threshold: l.threshold,
                })
                .collect(),
            basis: match p.basis {
                Basis::Points => BasisView::Points,
                Basis::Activities => BasisView::Activities,
                Basis::Spend(_) => BasisView::Spend,
            },
            currency: match p.basis {
                Basis::Spend(c) => Some(c.code().to_string()),
                _ => None,
            },
            categories: p
                .categories
                .into_iter()
                .map(|c| PartnerCategoriesView {
                    partner: c.partner.0,
                    categories: c.categories,
                })
                .collect(),
            window: match p.window {
                Window::CalendarYear => WindowView::CalendarYear,
                Window::Rolling12Months => WindowView::Rolling12Months,
            },
            grace_periods: p.grace_periods,
            partners: p.partners.iter().map(|x| x.0).collect(),
            time_zone: p.time_zone,
        }
    }
}

/// The tier policy in force.
#[utoipa::path(get, path = "/admin/v1/tier-policy", tag = "programme",
    responses((status = 200, body = TierPolicyView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_tier_policy(State(app): State<AppState>) -> JsonResult<TierPolicyView> {
    let p = blocking(move || Ok(app.ops.ledger.tier_policy()?)).await?;
    Ok(Json(p.into()))
}

/// Set the tier policy, from now. Members keep their levels; reviews apply the new thresholds
/// at the next period end.
#[utoipa::path(put, path = "/admin/v1/tier-policy", tag = "programme",
    request_body = TierPolicyDraft,
    responses((status = 200, body = TierPolicyView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_tier_policy(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(d): ApiJson<TierPolicyDraft>,
) -> JsonResult<TierPolicyView> {
    use ledger::core::tiers::{Basis, TierLevel, TierPolicy, Window};
    let points_max = crate::programme::rules::POINTS_MAX;
    if d.levels.is_empty()
        || d.levels.len() > 15
        || d.partners.len() > 64
        || d.categories.len() > 64
        || d.grace_periods > 12
        || d.levels
            .iter()
            .any(|l| !(1..=points_max).contains(&l.threshold))
    {
        return Err(OpError::new(
            crate::ops::error::Kind::InvalidRequest,
            "1 to 15 levels with thresholds of 1 to 10^12, at most 64 partners, at most 12 grace periods",
        ));
    }
    let basis = match (d.basis, d.currency.as_deref()) {
        (BasisView::Points, None) => Basis::Points,
        (BasisView::Activities, None) => Basis::Activities,
        (BasisView::Spend, Some(c)) => Basis::Spend(c.parse().map_err(
            |e: ledger::core::types::UnknownCurrency| {
                OpError::new(crate::ops::error::Kind::UnknownCurrency, e.to_string())
            },
        )?),
        _ => {
            return Err(OpError::new(
                crate::ops::error::Kind::InvalidRule,
                "currency goes with the spend basis and only with it",
            ))
        }
    };
    let policy = TierPolicy {
        levels: d
            .levels
            .into_iter()
            .map(|l| TierLevel {
                name: l.name,
                threshold: l.threshold,
            })
            .collect(),
        basis,
        window: match d.window {
            WindowView::CalendarYear => Window::CalendarYear,
            WindowView::Rolling12Months => Window::Rolling12Months,
        },
        grace_periods: d.grace_periods,
        partners: d.partners.into_iter().map(ledger::PartnerId).collect(),
        categories: d
            .categories
            .into_iter()
            .map(|c| ledger::core::tiers::PartnerCategories {
                partner: ledger::PartnerId(c.partner),
                categories: c.categories,
            })
            .collect(),
        time_zone: String::new(),
        note: op::change_note(&operator.name, &d.reason)?,
    };
    let (ops, reference) = (app.ops.clone(), d.reference);
    blocking(move || op::set_tier_policy(&ops, &reference, policy).map(|_| ())).await?;
    get_tier_policy(State(app)).await
}

/// A member's tier, and its progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TierView {
    /// Level (0: the base).
    pub level: u8,
    /// Its name (absent at the base).
    pub name: Option<String>,
    /// Since when (ms since the Unix epoch).
    pub since_ms: i64,
    /// Qualifying total of the current window.
    pub qualifying: i64,
    /// The next level up, and how much more qualifies for it.
    pub next: Option<NextTier>,
    /// Held at the level by an operator until then.
    pub override_until_ms: Option<i64>,
    /// The next period-end review.
    pub next_review_ms: Option<i64>,
}

/// The next level up.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NextTier {
    /// Level.
    pub level: u8,
    /// Name.
    pub name: String,
    /// Its threshold.
    pub threshold: i64,
    /// Qualifying still needed in the window.
    pub needed: i64,
}

impl From<op::TierStanding> for TierView {
    fn from(t: op::TierStanding) -> Self {
        let levels = t.policy.map(|p| p.levels).unwrap_or_default();
        let level = t.state.level;
        TierView {
            level,
            name: levels
                .get(usize::from(level).wrapping_sub(1))
                .map(|l| l.name.clone()),
            since_ms: t.state.since.0,
            qualifying: t.qualifying,
            next: levels.get(usize::from(level)).map(|l| NextTier {
                level: level + 1,
                name: l.name.clone(),
                threshold: l.threshold,
                needed: (l.threshold - t.qualifying).max(0),
            }),
            override_until_ms: t.state.override_until.map(|x| x.0),
            next_review_ms: t.next_review.map(|x| x.0),
        }
    }
}

/// A member's tier and progress to the next.
#[utoipa::path(get, path = "/admin/v1/members/{id}/tier", tag = "programme",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = TierView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member_tier(State(app): State<AppState>, Path(id): Path<u64>) -> JsonResult<TierView> {
    let t = blocking(move || op::tier(&app.ops, ledger::MemberId(id))).await?;
    Ok(Json(t.into()))
}

/// Hold a member at a tier level until a date, with a reason.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierOverride {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The level (0 to the highest).
    #[schema(maximum = 15)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub level: u8,
    /// Until (ms since the Unix epoch; in the future).
    #[schema(minimum = 0, maximum = 253_402_300_799_000_i64)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub until_ms: i64,
    /// Why.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// Hold a member at a tier level until a date (the operator's override).
#[utoipa::path(post, path = "/admin/v1/members/{id}/tier", tag = "programme",
    params(("id" = u64, Path, description = "Coalition member id")),
    request_body = TierOverride,
    responses((status = 200, body = TierView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn set_member_tier(
    State(app): State<AppState>,
    Path(id): Path<u64>,
    ApiJson(o): ApiJson<TierOverride>,
) -> JsonResult<TierView> {
    let ops = app.ops.clone();
    let t = blocking(move || {
        let m = ledger::MemberId(id);
        op::set_tier(
            &ops,
            &o.reference,
            m,
            o.level,
            Timestamp(o.until_ms),
            &o.reason,
        )?;
        op::tier(&ops, m)
    })
    .await?;
    Ok(Json(t.into()))
}

/// The transfer policy: limits per transfer, per day and per year for the giving member, and
/// a fee in points (days and years in the programme's time zone). Each limit left out is none.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferPolicyDraft {
    /// Idempotency key of the change.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// Why the policy changes, in words an auditor can follow (journaled with the operator's
    /// name; see the versions route).
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
    /// Smallest transfer.
    #[serde(default, deserialize_with = "crate::api::whole::points_nullable")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub min: Option<i64>,
    /// Largest transfer.
    #[serde(default, deserialize_with = "crate::api::whole::points_nullable")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub max_per_transfer: Option<i64>,
    /// Most a member gives per day.
    #[serde(default, deserialize_with = "crate::api::whole::points_nullable")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub max_per_day: Option<i64>,
    /// Most a member gives per calendar year.
    #[serde(default, deserialize_with = "crate::api::whole::points_nullable")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub max_per_year: Option<i64>,
    /// Fee in points on each transfer, paid by the giver to `programme/fees`.
    #[serde(default, deserialize_with = "crate::api::whole::points")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub fee: i64,
}

/// The transfer policy in force.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransferPolicyView {
    /// Smallest transfer.
    pub min: Option<i64>,
    /// Largest transfer.
    pub max_per_transfer: Option<i64>,
    /// Most a member gives per day.
    pub max_per_day: Option<i64>,
    /// Most a member gives per year.
    pub max_per_year: Option<i64>,
    /// Fee in points.
    pub fee: i64,
    /// The time zone days and years count in.
    pub time_zone: String,
}

impl From<Option<ledger::core::transfers::TransferPolicy>> for TransferPolicyView {
    fn from(p: Option<ledger::core::transfers::TransferPolicy>) -> Self {
        match p {
            Some(p) => TransferPolicyView {
                min: p.min.map(|x| x.0),
                max_per_transfer: p.max_per_transfer.map(|x| x.0),
                max_per_day: p.max_per_day.map(|x| x.0),
                max_per_year: p.max_per_year.map(|x| x.0),
                fee: p.fee.0,
                time_zone: p.time_zone,
            },
            None => TransferPolicyView {
                min: None,
                max_per_transfer: None,
                max_per_day: None,
                max_per_year: None,
                fee: 0,
                time_zone: "UTC".into(),
            },
        }
    }
}

/// The transfer policy in force (no limits and no fee until one is set).
#[utoipa::path(get, path = "/admin/v1/transfer-policy", tag = "programme",
    responses((status = 200, body = TransferPolicyView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_transfer_policy(State(app): State<AppState>) -> JsonResult<TransferPolicyView> {
    let p = blocking(move || Ok(app.ops.ledger.transfer_policy()?)).await?;
    Ok(Json(p.into()))
}

/// Set the transfer policy, from now.
#[utoipa::path(put, path = "/admin/v1/transfer-policy", tag = "programme",
    request_body = TransferPolicyDraft,
    responses((status = 200, body = TransferPolicyView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_transfer_policy(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(d): ApiJson<TransferPolicyDraft>,
) -> JsonResult<TransferPolicyView> {
    let draft = op::TransferDraft {
        reference: d.reference,
        min: d.min,
        max_per_transfer: d.max_per_transfer,
        max_per_day: d.max_per_day,
        max_per_year: d.max_per_year,
        fee: d.fee,
        note: op::change_note(&operator.name, &d.reason)?,
    };
    let ops = app.ops.clone();
    blocking(move || op::set_transfer_policy(&ops, draft).map(|_| ())).await?;
    get_transfer_policy(State(app)).await
}

/// An operator's transfer between members.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorTransferRequest {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// Giving member's coalition id.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub from_member_id: u64,
    /// Receiving member's coalition id.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub to_member_id: u64,
    /// Points given (the fee comes on top).
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::api::whole::points")]
    pub points: i64,
    /// How the giving member consented, as the operator records it.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub consent: String,
}

/// Move points between two members for them (a call-centre request).
#[utoipa::path(post, path = "/admin/v1/transfers", tag = "programme",
    request_body = OperatorTransferRequest,
    responses((status = 200, body = crate::api::TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn operator_transfer(
    State(app): State<AppState>,
    ApiJson(r): ApiJson<OperatorTransferRequest>,
) -> JsonResult<crate::api::TransactionView> {
    let reference = r.reference.clone();
    let t = op::OperatorTransfer {
        reference: r.reference,
        from: ledger::MemberId(r.from_member_id),
        to: ledger::MemberId(r.to_member_id),
        points: r.points,
        consent: r.consent,
    };
    let receipt = op::transfer(&app.ops, t).await?;
    let mut view = crate::api::TransactionView::of(
        &receipt.tx,
        Some(crate::api::Who::Id(r.from_member_id)),
        receipt.replayed,
    );
    view.reference = reference;
    Ok(Json(view))
}

/// Rolling expiry: N months after the earn, rounded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollingView {
    /// Months after the earn.
    #[schema(minimum = 1, maximum = 1200)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub months: u16,
    /// `exact`, `month_end`, `quarter_end` or `year_end` (programme time zone).
    pub round_to: RoundToView,
}

/// Where a rolling expiry is rounded to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoundToView {
    /// Exactly N months after.
    Exact,
    /// End of that month.
    MonthEnd,
    /// End of that quarter.
    QuarterEnd,
    /// End of that year.
    YearEnd,
}

/// An activity that keeps a member's points alive under inactivity expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityView {
    /// Earning.
    Earn,
    /// Burning (or capturing a hold).
    Burn,
    /// Giving points.
    TransferOut,
    /// Receiving points.
    TransferIn,
    /// An operator adjustment.
    Adjustment,
}

/// Inactivity expiry: every point after N months without a qualifying activity.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InactivityView {
    /// Months without activity.
    #[schema(minimum = 1, maximum = 1200)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub months: u16,
    /// What counts (default earn and burn).
    #[serde(default = "default_activities")]
    #[schema(min_items = 1, max_items = 5)]
    pub activities: Vec<ActivityView>,
}

fn default_activities() -> Vec<ActivityView> {
    vec![ActivityView::Earn, ActivityView::Burn]
}

/// The expiry policy (time zone: the programme's).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpiryPolicyDraft {
    /// Idempotency key of the change.
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub reference: String,
    /// Why the policy changes, in words an auditor can follow (journaled with the operator's
    /// name; see the versions route).
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
    /// Rolling expiry of each lot; absent: lots earned from now never expire by age.
    #[serde(default)]
    pub rolling: Option<RollingView>,
    /// Inactivity expiry; absent: none.
    #[serde(default)]
    pub inactivity: Option<InactivityView>,
    /// Members at this tier level or above keep their points.
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    #[schema(minimum = 1, maximum = 255)]
    pub exempt_from_tier: Option<u8>,
    /// Count inactivity from before this policy: an explicit migration that may expire, at
    /// once, points that were valid under the old policy.
    #[serde(default)]
    pub retroactive: bool,
}

/// The expiry policy in force.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExpiryPolicyView {
    /// Absent: no policy; lots expire by their partner contract's validity days.
    pub rolling: Option<RollingView>,
    /// Inactivity expiry.
    pub inactivity: Option<InactivityView>,
    /// Tier exemption.
    pub exempt_from_tier: Option<u8>,
    /// The time zone it counts in.
    pub time_zone: String,
    /// Counted from before the policy.
    pub retroactive: bool,
    /// In force since (ms since the Unix epoch); absent: never set.
    pub since_ms: Option<i64>,
}

const ACTIVITY_BITS: [(ActivityView, u8); 5] = [
    (ActivityView::Earn, ledger::core::expiry::activity::EARN),
    (ActivityView::Burn, ledger::core::expiry::activity::BURN),
    (
        ActivityView::TransferOut,
        ledger::core::expiry::activity::TRANSFER_OUT,
    ),
    (
        ActivityView::TransferIn,
        ledger::core::expiry::activity::TRANSFER_IN,
    ),
    (
        ActivityView::Adjustment,
        ledger::core::expiry::activity::ADJUSTMENT,
    ),
];

fn round_to(r: RoundToView) -> ledger::core::expiry::RoundTo {
    use ledger::core::expiry::RoundTo;
    match r {
        RoundToView::Exact => RoundTo::Exact,
        RoundToView::MonthEnd => RoundTo::MonthEnd,
        RoundToView::QuarterEnd => RoundTo::QuarterEnd,
        RoundToView::YearEnd => RoundTo::YearEnd,
    }
}

fn round_view(r: ledger::core::expiry::RoundTo) -> RoundToView {
    use ledger::core::expiry::RoundTo;
    match r {
        RoundTo::Exact => RoundToView::Exact,
        RoundTo::MonthEnd => RoundToView::MonthEnd,
        RoundTo::QuarterEnd => RoundToView::QuarterEnd,
        RoundTo::YearEnd => RoundToView::YearEnd,
    }
}

/// The expiry policy in force.
#[utoipa::path(get, path = "/admin/v1/expiry-policy", tag = "programme",
    responses((status = 200, body = ExpiryPolicyView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_expiry_policy(State(app): State<AppState>) -> JsonResult<ExpiryPolicyView> {
    let p = blocking(move || Ok(app.ops.ledger.expiry_policy()?)).await?;
    Ok(Json(expiry_view(p)))
}

/// The view of a stored expiry policy (`None`: never set).
pub(crate) fn expiry_view(p: Option<ledger::core::expiry::StoredPolicy>) -> ExpiryPolicyView {
    match p {
        Some(p) => ExpiryPolicyView {
            rolling: p.policy.rolling.map(|r| RollingView {
                months: r.months,
                round_to: round_view(r.round_to),
            }),
            inactivity: p.policy.inactivity.map(|i| InactivityView {
                months: i.months,
                activities: ACTIVITY_BITS
                    .iter()
                    .filter(|(_, bit)| i.activities & bit != 0)
                    .map(|(a, _)| *a)
                    .collect(),
            }),
            exempt_from_tier: p.policy.exempt_from_tier,
            time_zone: p.policy.time_zone,
            retroactive: p.policy.retroactive,
            since_ms: Some(p.since.0),
        },
        None => ExpiryPolicyView {
            rolling: None,
            inactivity: None,
            exempt_from_tier: None,
            time_zone: "UTC".into(),
            retroactive: false,
            since_ms: None,
        },
    }
}

/// Set the expiry policy, from now. Lots earned before keep their expiry; inactivity counts
/// from no earlier than now unless `retroactive`.
#[utoipa::path(put, path = "/admin/v1/expiry-policy", tag = "programme",
    request_body = ExpiryPolicyDraft,
    responses((status = 200, body = ExpiryPolicyView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_expiry_policy(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    ApiJson(d): ApiJson<ExpiryPolicyDraft>,
) -> JsonResult<ExpiryPolicyView> {
    if d.exempt_from_tier == Some(0) {
        return Err(OpError::new(
            crate::ops::error::Kind::InvalidRequest,
            "exempt_from_tier is a level from 1",
        ));
    }
    if let Some(i) = &d.inactivity {
        if i.activities.is_empty() || i.activities.len() > ACTIVITY_BITS.len() {
            return Err(OpError::new(
                crate::ops::error::Kind::InvalidRequest,
                "inactivity.activities lists 1 to 5 activities",
            ));
        }
    }
    let draft = op::ExpiryDraft {
        reference: d.reference,
        rolling: d.rolling.map(|r| ledger::core::expiry::Rolling {
            months: r.months,
            round_to: round_to(r.round_to),
        }),
        inactivity: d.inactivity.map(|i| ledger::core::expiry::Inactivity {
            months: i.months,
            activities: ACTIVITY_BITS
                .iter()
                .filter(|(a, _)| i.activities.contains(a))
                .fold(0, |m, (_, bit)| m | bit),
        }),
        exempt_from_tier: d.exempt_from_tier,
        retroactive: d.retroactive,
        note: op::change_note(&operator.name, &d.reason)?,
    };
    let ops = app.ops.clone();
    blocking(move || op::set_expiry_policy(&ops, draft).map(|_| ())).await?;
    get_expiry_policy(State(app)).await
}

/// Points left in dated lots, by the month (UTC) they expire in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExpiringMonth {
    /// `2027-03`.
    pub month: String,
    /// Points.
    pub points: i64,
}

/// The programme's points expiring by month (lots' dates; inactivity expiry depends on what
/// members do, so it is not forecast here). Past months hold points expired and not yet posted.
#[utoipa::path(get, path = "/admin/v1/expiring", tag = "programme",
    responses((status = 200, body = Vec<ExpiringMonth>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn expiring_by_month(State(app): State<AppState>) -> JsonResult<Vec<ExpiringMonth>> {
    let months = blocking(move || Ok(app.ops.ledger.expiring_by_month()?)).await?;
    Ok(Json(
        months
            .into_iter()
            .map(|(m, p)| ExpiringMonth {
                month: crate::programme::guard::period_label(10_000 + m),
                points: p.0,
            })
            .collect(),
    ))
}

/// A member's points expiring soon.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExpiringView {
    /// Points expiring within 30, 60 and 90 days (points already expired count in each).
    pub within: Vec<ExpiringWithin>,
    /// The lots behind them: when each expires and its points.
    pub lots: Vec<ExpiringLot>,
    /// When every point expires for inactivity, unless the member is active before.
    pub inactivity_deadline_ms: Option<i64>,
    /// The member's tier keeps its points.
    pub exempt: bool,
}

/// Points expiring within a number of days.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExpiringWithin {
    /// Days from now.
    pub days: u16,
    /// Points.
    pub points: i64,
}

/// A lot expiring soon.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExpiringLot {
    /// When (ms since the Unix epoch).
    pub expires_at_ms: i64,
    /// Points left in it.
    pub points: i64,
}

impl From<ledger::core::expiry::Expiring> for ExpiringView {
    fn from(e: ledger::core::expiry::Expiring) -> Self {
        ExpiringView {
            within: e
                .within
                .into_iter()
                .map(|(days, p)| ExpiringWithin { days, points: p.0 })
                .collect(),
            lots: e
                .lots
                .into_iter()
                .map(|(t, p)| ExpiringLot {
                    expires_at_ms: t.0,
                    points: p.0,
                })
                .collect(),
            inactivity_deadline_ms: e.inactivity_deadline.map(|t| t.0),
            exempt: e.exempt,
        }
    }
}

/// A member's points expiring in the next 30, 60 and 90 days, and from which lots.
#[utoipa::path(get, path = "/admin/v1/members/{id}/expiring", tag = "programme",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = ExpiringView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member_expiring(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> JsonResult<ExpiringView> {
    let e = blocking(move || op::expiring(&app.ops, ledger::MemberId(id))).await?;
    Ok(Json(e.into()))
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
    /// What a closed (or erased) member's points become: `keep` (frozen; they still expire)
    /// or `forfeit` (to `programme/breakage` when closed). Default `keep`.
    #[serde(default)]
    pub on_close: crate::ops::registry::OnClose,
    /// The language the console and the member portal open in: `fa` (default) or `en`.
    #[serde(default)]
    pub language: Option<crate::ops::registry::Language>,
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
            on_close: Default::default(),
            language: Default::default(),
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
        on_close: d.on_close,
        language: d.language.unwrap_or_default(),
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
