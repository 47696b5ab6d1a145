//! The operator API under `/admin/v1`: partners, contracts, keys, rate tables, members and
//! adjustments. Bearer tokens; the `finance` role reads everything and changes nothing.

use super::{
    blocking, check_points, check_reference, statement_page, ApiJson, BalanceView, JsonResult,
    Path, Query, StatementOf, StatementQuery, StatementView, TransactionView,
};
use crate::api::state::{App, AppState};
use crate::api::signature as auth;
use crate::api::problem::Problem;
use crate::ops::error::{Kind, OpError};
use crate::programme::rates::{RateOverride, RateTable};
use crate::ops::registry::{KeyRecord, KeyScope, OperatorRecord, PartnerRecord, Role};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ledger::{AccountId, Command, Contract, IdemKey, MemberId, PartnerId, Points, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The operator routes, each behind bearer-token authentication.
pub fn router(app: AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_partners))
        .routes(routes!(get_partner, put_partner))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(list_rates, add_rates))
        .routes(routes!(enrol_member))
        .routes(routes!(member))
        .routes(routes!(member_statement))
        .routes(routes!(adjust))
        .routes(routes!(account))
        .route_layer(axum::middleware::from_fn_with_state(app, authenticate))
}

async fn authenticate(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, OpError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = auth::bearer(header)?;
    let op = app
        .registry
        .operator(token)
        .ok_or_else(|| OpError::new(Kind::UnknownKey, "unknown operator token"))?;
    if op.role == Role::Finance && req.method() != Method::GET {
        return Err(OpError::new(
            Kind::ForbiddenRole,
            "the finance role is read-only",
        ));
    }
    req.extensions_mut().insert(op);
    Ok(next.run(req).await)
}

/// A partner's configuration and contract.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerSpec {
    /// Display name.
    pub name: String,
    /// Settlement currency (ISO 4217).
    #[schema(example = "EUR")]
    pub currency: String,
    /// What the partner pays per point it issues.
    #[schema(value_type = String, example = "0.012")]
    pub issuance_price_per_point: Decimal,
    /// What the programme reimburses per point redeemed at the partner.
    #[schema(value_type = String, example = "0.008")]
    pub redemption_price_per_point: Decimal,
    /// Points earned at this partner expire after this many days; `null`: never.
    pub points_validity_days: Option<u32>,
    /// Sustained requests per second (default 1,000).
    pub requests_per_second: Option<u32>,
    /// Burst above that (default: the rate).
    pub burst: Option<u32>,
}

/// A partner as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PartnerView {
    /// Gateway record.
    #[serde(flatten)]
    pub record: PartnerRecord,
    /// Settlement currency.
    pub currency: Option<String>,
    /// Issuance price per point.
    pub issuance_price_per_point: Option<String>,
    /// Redemption price per point.
    pub redemption_price_per_point: Option<String>,
    /// Validity of earned points, days.
    pub points_validity_days: Option<u32>,
}

/// Scopes of a new key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// What the key may do.
    pub scopes: Vec<KeyScope>,
}

/// A new key. The secret is shown here once and never again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewKeyView {
    /// The key's record.
    #[serde(flatten)]
    pub key: KeyRecord,
    /// The signing secret.
    pub secret: String,
}

/// A new rate table version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateTableDraft {
    /// In force from (ms since the Unix epoch); default now. Not in the past.
    pub effective_from_ms: Option<i64>,
    /// Unit priced: ISO 4217 code or measure.
    pub unit: String,
    /// Points per unit earned.
    #[schema(value_type = String)]
    pub earn_points_per_unit: Decimal,
    /// Points per unit of money for burns priced in money.
    #[schema(value_type = Option<String>)]
    pub burn_points_per_unit: Option<Decimal>,
    /// Branch overrides.
    #[serde(default)]
    pub branches: BTreeMap<String, RateOverride>,
    /// Category overrides.
    #[serde(default)]
    pub categories: BTreeMap<String, RateOverride>,
}

/// A newly enrolled member.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberCreated {
    /// The coalition member id.
    pub member_id: u64,
}

/// A manual correction.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Idempotency key (operator scope).
    pub reference: String,
    /// Signed change to the member's points.
    pub points: i64,
    /// Why, in words finance can audit.
    pub reason: String,
}

/// An account's balance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    /// The account, as `member/7`, `partner/2/issuance`, `programme/promotions`, ...
    pub account: String,
    /// Points.
    pub points: i64,
    /// Money per currency (decimal strings).
    pub money: BTreeMap<String, String>,
}

/// Partners, by id.
#[utoipa::path(get, path = "/admin/v1/partners", tag = "operator",
    responses((status = 200, body = Vec<PartnerView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_partners(State(app): State<AppState>) -> JsonResult<Vec<PartnerView>> {
    let views = blocking(move || {
        app.registry
            .partners()
            .into_iter()
            .map(|p| partner_view(&app, p))
            .collect()
    })
    .await?;
    Ok(Json(views))
}

fn partner_view(app: &App, record: PartnerRecord) -> Result<PartnerView, OpError> {
    let c = app.ledger.contract(PartnerId(record.id))?;
    Ok(PartnerView {
        record,
        currency: c.as_ref().map(|c| c.currency.to_string()),
        issuance_price_per_point: c.as_ref().map(|c| c.issuance_price_per_point.to_string()),
        redemption_price_per_point: c.as_ref().map(|c| c.redemption_price_per_point.to_string()),
        points_validity_days: c.as_ref().and_then(|c| c.points_validity_days),
    })
}

fn known_partner(app: &App, id: u32) -> Result<PartnerRecord, OpError> {
    app.registry
        .partner(PartnerId(id))
        .ok_or_else(|| OpError::new(Kind::UnknownPartner, format!("no partner {id}")))
}

/// One partner.
#[utoipa::path(get, path = "/admin/v1/partners/{id}", tag = "operator",
    params(("id" = u32, Path, description = "Partner id")),
    responses((status = 200, body = PartnerView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_partner(State(app): State<AppState>, Path(id): Path<u32>) -> JsonResult<PartnerView> {
    let view = blocking(move || partner_view(&app, known_partner(&app, id)?)).await?;
    Ok(Json(view))
}

/// Create or replace a partner and its contract. Later earns and burns price with it.
#[utoipa::path(put, path = "/admin/v1/partners/{id}", tag = "operator",
    params(("id" = u32, Path, description = "Partner id")),
    request_body = PartnerSpec,
    responses((status = 200, body = PartnerView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_partner(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    ApiJson(spec): ApiJson<PartnerSpec>,
) -> JsonResult<PartnerView> {
    let view = blocking(move || define_partner(&app, id, &spec)).await?;
    Ok(Json(view))
}

/// Validates and applies a partner definition: contract in the ledger, record in the registry.
pub fn define_partner(app: &App, id: u32, spec: &PartnerSpec) -> Result<PartnerView, OpError> {
    if id == 0 {
        return Err(OpError::new(
            Kind::InvalidRequest,
            "partner ids start at 1",
        ));
    }
    if spec.name.trim().is_empty() || spec.name.len() > 128 {
        return Err(OpError::new(
            Kind::InvalidRequest,
            "name must be 1 to 128 bytes",
        ));
    }
    let currency = spec.currency.parse().map_err(|_| {
        OpError::new(
            Kind::UnknownCurrency,
            format!("{:?} is not an ISO 4217 currency code", spec.currency),
        )
    })?;
    for (field, v) in [
        ("issuance_price_per_point", spec.issuance_price_per_point),
        (
            "redemption_price_per_point",
            spec.redemption_price_per_point,
        ),
    ] {
        if v < Decimal::ZERO {
            return Err(OpError::new(
                Kind::InvalidAmount,
                format!("{field} must not be negative"),
            ));
        }
    }
    let contract = Contract {
        partner: PartnerId(id),
        currency,
        issuance_price_per_point: spec.issuance_price_per_point,
        redemption_price_per_point: spec.redemption_price_per_point,
        points_validity_days: spec.points_validity_days,
    };
    // The key names the exact terms: re-sending the same terms replays, new terms post anew.
    let terms = serde_json::to_vec(&contract).expect("contracts encode");
    let digest = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&terms)[..8]);
    app.ledger.execute_blocking(Command::SetContract {
        key: IdemKey::operator(format!("contract/{id}/{digest}")),
        contract,
    })?;
    let rps = spec.requests_per_second.unwrap_or(1000).max(1);
    let record = PartnerRecord {
        id,
        name: spec.name.clone(),
        requests_per_second: rps,
        burst: spec.burst.unwrap_or(rps).max(1),
    };
    app.registry
        .put_partner(record.clone())
        .map_err(|e| OpError::new(Kind::Internal, e.to_string()))?;
    partner_view(app, record)
}

/// A partner's keys, without secrets.
#[utoipa::path(get, path = "/admin/v1/partners/{id}/keys", tag = "operator",
    params(("id" = u32, Path, description = "Partner id")),
    responses((status = 200, body = Vec<KeyRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_keys(State(app): State<AppState>, Path(id): Path<u32>) -> JsonResult<Vec<KeyRecord>> {
    known_partner(&app, id)?;
    Ok(Json(app.registry.keys_of(PartnerId(id))))
}

/// Issue a key; the secret is in this answer only.
#[utoipa::path(post, path = "/admin/v1/partners/{id}/keys", tag = "operator",
    params(("id" = u32, Path, description = "Partner id")),
    request_body = NewKeyRequest,
    responses((status = 201, body = NewKeyView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn create_key(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<NewKeyRequest>,
) -> Result<Response, OpError> {
    known_partner(&app, id)?;
    if r.scopes.is_empty() {
        return Err(OpError::new(
            Kind::InvalidRequest,
            "give at least one scope",
        ));
    }
    let (key, secret) = blocking(move || {
        app.registry
            .create_key(PartnerId(id), r.scopes)
            .map_err(|e| OpError::new(Kind::Internal, e.to_string()))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(NewKeyView { key, secret })).into_response())
}

/// Revoke a key: requests signed with it fail from now on.
#[utoipa::path(post, path = "/admin/v1/partners/{id}/keys/{key_id}/revoke", tag = "operator",
    params(("id" = u32, Path, description = "Partner id"), ("key_id" = String, Path, description = "Key id")),
    responses((status = 200, body = KeyRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn revoke_key(
    State(app): State<AppState>,
    Path((id, key_id)): Path<(u32, String)>,
) -> JsonResult<KeyRecord> {
    known_partner(&app, id)?;
    let rec = blocking(move || {
        app.registry
            .revoke_key(PartnerId(id), &key_id)
            .map_err(|e| OpError::new(Kind::Internal, e.to_string()))?
            .ok_or_else(|| {
                OpError::new(Kind::NotFound, format!("partner {id} has no key {key_id}"))
            })
    })
    .await?;
    Ok(Json(rec))
}

/// Every version of a partner's rate table.
#[utoipa::path(get, path = "/admin/v1/partners/{id}/rates", tag = "operator",
    params(("id" = u32, Path, description = "Partner id")),
    responses((status = 200, body = Vec<RateTable>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_rates(
    State(app): State<AppState>,
    Path(id): Path<u32>,
) -> JsonResult<Vec<RateTable>> {
    known_partner(&app, id)?;
    Ok(Json(app.registry.rate_tables(PartnerId(id))))
}

/// Add a rate table version, in force from `effective_from_ms` (default now).
#[utoipa::path(post, path = "/admin/v1/partners/{id}/rates", tag = "operator",
    params(("id" = u32, Path, description = "Partner id")),
    request_body = RateTableDraft,
    responses((status = 201, body = RateTable),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn add_rates(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    ApiJson(d): ApiJson<RateTableDraft>,
) -> Result<Response, OpError> {
    known_partner(&app, id)?;
    let table = blocking(move || add_rate_table(&app, id, d)).await?;
    Ok((StatusCode::CREATED, Json(table)).into_response())
}

/// Validates and stores a rate table version.
pub fn add_rate_table(app: &App, id: u32, d: RateTableDraft) -> Result<RateTable, OpError> {
    let now = Timestamp::now().0;
    let effective_from_ms = d.effective_from_ms.unwrap_or(now);
    // A grace of a minute for clock skew; rates are never changed retroactively.
    if effective_from_ms < now - 60_000 {
        return Err(OpError::new(
            Kind::InvalidRequest,
            "effective_from_ms is in the past; rate tables are never retroactive",
        ));
    }
    let table = RateTable {
        version: 0,
        effective_from_ms,
        unit: d.unit,
        earn_points_per_unit: d.earn_points_per_unit,
        burn_points_per_unit: d.burn_points_per_unit,
        branches: d.branches,
        categories: d.categories,
    };
    table.validate()?;
    app.registry
        .add_rate_table(PartnerId(id), table)
        .map_err(|e| OpError::new(Kind::Internal, e.to_string()))
}

/// Enrol a new member with no partner link yet.
#[utoipa::path(post, path = "/admin/v1/members", tag = "operator",
    responses((status = 201, body = MemberCreated),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn enrol_member(State(app): State<AppState>) -> Result<Response, OpError> {
    let member = blocking(move || {
        let m = app
            .registry
            .allocate_member()
            .map_err(|e| OpError::new(Kind::Internal, e.to_string()))?;
        app.ledger.execute_blocking(Command::Enrol {
            key: IdemKey::operator(format!("enrol/{}", m.0)),
            member: m,
        })?;
        Ok(m)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(MemberCreated {
            member_id: member.0,
        }),
    )
        .into_response())
}

/// A member's points.
#[utoipa::path(get, path = "/admin/v1/members/{id}", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = BalanceView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member(State(app): State<AppState>, Path(id): Path<u64>) -> JsonResult<BalanceView> {
    let b = blocking(move || {
        app.ledger
            .balance(MemberId(id))?
            .ok_or_else(|| OpError::new(Kind::UnknownMember, format!("no member {id}")))
    })
    .await?;
    Ok(Json(BalanceView::of(id.to_string(), b)))
}

/// A member's full statement, paged.
#[utoipa::path(get, path = "/admin/v1/members/{id}/statement", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id"), StatementQuery),
    responses((status = 200, body = StatementView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member_statement(
    State(app): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<StatementQuery>,
) -> JsonResult<StatementView> {
    let before = q.before()?;
    let limit = q.limit()?;
    let view = blocking(move || {
        if app.ledger.balance(MemberId(id))?.is_none() {
            return Err(OpError::new(
                Kind::UnknownMember,
                format!("no member {id}"),
            ));
        }
        let (entries, next) =
            statement_page(&app.ledger, MemberId(id), StatementOf::All, before, limit)?;
        Ok(StatementView {
            member: id.to_string(),
            entries,
            next: next.map(|t| t.0.to_string()),
        })
    })
    .await?;
    Ok(Json(view))
}

/// Correct a member's points against `programme/adjustments`, with a reason.
#[utoipa::path(post, path = "/admin/v1/members/{id}/adjustments", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")),
    request_body = AdjustmentRequest,
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn adjust(
    State(app): State<AppState>,
    Extension(op): Extension<OperatorRecord>,
    Path(id): Path<u64>,
    ApiJson(r): ApiJson<AdjustmentRequest>,
) -> JsonResult<TransactionView> {
    check_reference("reference", &r.reference)?;
    if r.points == 0 {
        check_points("points", 0)?;
    }
    if r.reason.trim().is_empty() || r.reason.len() > 512 {
        return Err(OpError::new(
            Kind::InvalidRequest,
            "reason must be 1 to 512 bytes",
        ));
    }
    let receipt = app
        .ledger
        .execute(Command::Adjust {
            key: IdemKey::operator(format!("adjust/{}", r.reference)),
            member: MemberId(id),
            points: Points(r.points),
            reason: r.reason,
            operator: op.name,
        })
        .await?;
    let mut view = TransactionView::of(&receipt.tx, Some(id.to_string()), receipt.replayed);
    view.reference = r.reference;
    Ok(Json(view))
}

/// Any account's balance: `member/{id}`, `partner/{id}/issuance`, `partner/{id}/redemption`,
/// `programme/promotions`, `programme/breakage`, `programme/adjustments`, `programme/float`.
#[utoipa::path(get, path = "/admin/v1/accounts/{account}", tag = "operator",
    params(("account" = String, Path, description = "Account name; URL-encode the slashes")),
    responses((status = 200, body = AccountView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn account(State(app): State<AppState>, Path(name): Path<String>) -> JsonResult<AccountView> {
    let account: AccountId = name
        .parse()
        .map_err(|_| OpError::new(Kind::NotFound, format!("no account {name:?}")))?;
    let b = blocking(move || Ok(app.ledger.account_balance(account)?)).await?;
    Ok(Json(AccountView {
        account: account.to_string(),
        points: b.points.0,
        money: b
            .money
            .iter()
            .map(|(c, v)| (c.to_string(), v.to_string()))
            .collect(),
    }))
}
