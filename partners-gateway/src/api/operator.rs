//! The operator API under `/admin/v1`: partners, contracts, keys, rate tables, members and
//! adjustments. Bearer tokens; the `finance` role reads everything and changes nothing.

use super::{
    blocking, ApiJson, BalanceView, JsonResult, Path, Query, StatementQuery, StatementView,
    TransactionView, Who,
};
use crate::api::problem::Problem;
use crate::api::signature as auth;
use crate::api::state::AppState;
use crate::ops::error::{Kind, OpError};
use crate::ops::operator::{self as op, Adjustment, Partner, PartnerDefinition, RateDraft};
use crate::ops::registry::{KeyRecord, KeyScope, OperatorRecord, PartnerRecord, Role};
use crate::programme::rates::{decimal_str, RateOverride, RateTable};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ledger::MemberId;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The operator routes, each behind bearer-token authentication.
pub fn router(app: AppState) -> OpenApiRouter<AppState> {
    let programme = crate::api::programme::routes(OpenApiRouter::new());
    let finance = crate::api::notify::operator_routes(crate::api::segments::operator_routes(
        crate::api::lifecycle::operator_routes(crate::api::profiles::operator_routes(
            crate::api::webhooks::operator_routes(crate::api::finance::routes(programme)),
        )),
    ));
    let finance = crate::api::engagement::operator_routes(finance);
    crate::api::policies::routes(crate::api::households::operator_routes(finance))
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
        .routes(routes!(audit))
        .routes(routes!(link_code))
        .routes(routes!(list_operators, create_operator))
        .routes(routes!(revoke_operator))
        .route_layer(axum::middleware::from_fn_with_state(app, authenticate))
}

/// An operator the console has signed in, on a request it makes to this API in-process. It is
/// a request extension, which only code in this process can set: no client can send one.
#[derive(Debug, Clone)]
pub struct Delegated(pub OperatorRecord);

async fn authenticate(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, OpError> {
    if let Some(Delegated(op)) = req.extensions().get::<Delegated>().cloned() {
        return authorised(op, req, next).await;
    }
    let peer = req
        .extensions()
        .get::<crate::listener::PeerAddr>()
        .map(|p| p.0.ip());
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // No token answers 401 as it is; an address that keeps sending wrong ones is refused.
    let token = auth::bearer(header)?;
    app.check_address(peer)?;
    let Some(op) = app.ops.registry.operator(token) else {
        app.failed_authentication(peer);
        return Err(OpError::new(
            Kind::UnknownKey,
            "unknown operator token; send Authorization: Bearer <token>",
        ));
    };
    authorised(op, req, next).await
}

/// Runs the request as `op`, within its role.
async fn authorised(op: OperatorRecord, mut req: Request, next: Next) -> Result<Response, OpError> {
    // The finance role reads everything; its only writes are finance's own (period close,
    // breakage overrides, reconciliations).
    if op.role == Role::Finance
        && req.method() != Method::GET
        && !req.uri().path().starts_with("/admin/v1/finance/")
    {
        return Err(OpError::new(
            Kind::ForbiddenRole,
            "the finance role reads, and writes only under /admin/v1/finance",
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
    #[schema(min_length = 1, max_length = 128, pattern = "\\S")]
    pub name: String,
    /// Settlement currency (ISO 4217).
    #[schema(example = "EUR", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// What the partner pays per point it issues.
    #[schema(value_type = String, example = "0.012", pattern = r"^(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,10})?$")]
    #[serde(deserialize_with = "decimal_str::price")]
    pub issuance_price_per_point: Decimal,
    /// What the programme reimburses per point redeemed at the partner.
    #[schema(value_type = String, example = "0.008", pattern = r"^(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,10})?$")]
    #[serde(deserialize_with = "decimal_str::price")]
    pub redemption_price_per_point: Decimal,
    /// Points earned at this partner expire after this many days; `null`: never.
    #[schema(minimum = 1, maximum = 36_500)]
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    pub points_validity_days: Option<u32>,
    /// Sustained requests per second (default 1,000).
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    pub requests_per_second: Option<u32>,
    /// Burst above that (default: the rate).
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
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
    #[schema(min_items = 1)]
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
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    pub effective_from_ms: Option<i64>,
    /// Unit priced: ISO 4217 code or measure.
    #[schema(pattern = "^(?:[A-Z]{3}|[a-z_-]{1,32})$")]
    pub unit: String,
    /// Points per unit earned.
    #[schema(value_type = String, pattern = r"^(?:[1-9][0-9]{0,15}(?:\.[0-9]{1,10})?|0\.[0-9]{0,9}[1-9][0-9]{0,9})$")]
    #[serde(deserialize_with = "decimal_str::rate")]
    pub earn_points_per_unit: Decimal,
    /// Points per unit of money for burns priced in money.
    #[schema(value_type = Option<String>, pattern = r"^(?:[1-9][0-9]{0,15}(?:\.[0-9]{1,10})?|0\.[0-9]{0,9}[1-9][0-9]{0,9})$")]
    #[serde(default, deserialize_with = "decimal_str::rate_opt")]
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
    /// Idempotency key (operator scope), 1 to 121 printable ASCII characters.
    #[schema(min_length = 1, max_length = 121, pattern = "^[!-~]+$")]
    pub reference: String,
    /// Signed change to the member's points: not zero, within ±1,000,000,000,000.
    #[schema(minimum = -1_000_000_000_000_i64, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::api::whole::points")]
    pub points: i64,
    /// Why, in words finance can audit.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
    /// Whether it counts towards the member's tier, as an earn would (default false).
    #[serde(default)]
    pub qualifies: bool,
    /// The transaction this corrects, by its id (one in a closed period, say): the
    /// correction posts now, in the open period, and the journal records what it corrects.
    #[schema(pattern = "^[0-9]{1,20}$")]
    #[serde(default)]
    pub corrects: Option<String>,
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

impl From<PartnerSpec> for PartnerDefinition {
    fn from(s: PartnerSpec) -> Self {
        PartnerDefinition {
            name: s.name,
            currency: s.currency,
            issuance_price_per_point: s.issuance_price_per_point,
            redemption_price_per_point: s.redemption_price_per_point,
            points_validity_days: s.points_validity_days,
            requests_per_second: s.requests_per_second,
            burst: s.burst,
        }
    }
}

impl From<Partner> for PartnerView {
    fn from(p: Partner) -> Self {
        let c = p.contract.as_ref();
        PartnerView {
            record: p.record,
            currency: c.map(|c| c.currency.to_string()),
            issuance_price_per_point: c.map(|c| c.issuance_price_per_point.to_string()),
            redemption_price_per_point: c.map(|c| c.redemption_price_per_point.to_string()),
            points_validity_days: c.and_then(|c| c.points_validity_days),
        }
    }
}

impl From<RateTableDraft> for RateDraft {
    fn from(d: RateTableDraft) -> Self {
        RateDraft {
            effective_from_ms: d.effective_from_ms,
            unit: d.unit,
            earn_points_per_unit: d.earn_points_per_unit,
            burn_points_per_unit: d.burn_points_per_unit,
            branches: d.branches,
            categories: d.categories,
        }
    }
}

/// Partners, by id.
#[utoipa::path(get, path = "/admin/v1/partners", tag = "operator",
    responses((status = 200, body = Vec<PartnerView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_partners(State(app): State<AppState>) -> JsonResult<Vec<PartnerView>> {
    let partners = blocking(move || op::partners(&app.ops)).await?;
    Ok(Json(partners.into_iter().map(PartnerView::from).collect()))
}

/// One partner.
#[utoipa::path(get, path = "/admin/v1/partners/{id}", tag = "operator",
    params(("id" = u64, Path, description = "Partner id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = PartnerView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_partner(State(app): State<AppState>, Path(id): Path<u32>) -> JsonResult<PartnerView> {
    let p = blocking(move || op::partner(&app.ops, id)).await?;
    Ok(Json(p.into()))
}

/// Create or replace a partner and its contract. Later earns and burns price with it.
#[utoipa::path(put, path = "/admin/v1/partners/{id}", tag = "operator",
    params(("id" = u64, Path, description = "Partner id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = PartnerSpec,
    responses((status = 200, body = PartnerView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_partner(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    ApiJson(spec): ApiJson<PartnerSpec>,
) -> JsonResult<PartnerView> {
    let p = blocking(move || op::define_partner(&app.ops, id, &spec.into())).await?;
    Ok(Json(p.into()))
}

/// A partner's keys, without secrets.
#[utoipa::path(get, path = "/admin/v1/partners/{id}/keys", tag = "operator",
    params(("id" = u64, Path, description = "Partner id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = Vec<KeyRecord>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_keys(State(app): State<AppState>, Path(id): Path<u32>) -> JsonResult<Vec<KeyRecord>> {
    Ok(Json(op::keys(&app.ops, id)?))
}

/// Issue a key; the secret is in this answer only.
#[utoipa::path(post, path = "/admin/v1/partners/{id}/keys", tag = "operator",
    params(("id" = u64, Path, description = "Partner id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = NewKeyRequest,
    responses((status = 201, body = NewKeyView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn create_key(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    ApiJson(r): ApiJson<NewKeyRequest>,
) -> Result<Response, OpError> {
    let (key, secret) = blocking(move || op::create_key(&app.ops, id, r.scopes)).await?;
    Ok((StatusCode::CREATED, Json(NewKeyView { key, secret })).into_response())
}

/// Revoke a key: requests signed with it fail from now on.
#[utoipa::path(post, path = "/admin/v1/partners/{id}/keys/{key_id}/revoke", tag = "operator",
    params(("id" = u64, Path, description = "Partner id", minimum = 1, maximum = 4_294_967_295_u64), ("key_id" = String, Path, description = "Key id")),
    responses((status = 200, body = KeyRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn revoke_key(
    State(app): State<AppState>,
    Path((id, key_id)): Path<(u32, String)>,
) -> JsonResult<KeyRecord> {
    Ok(Json(
        blocking(move || op::revoke_key(&app.ops, id, &key_id)).await?,
    ))
}

/// Every version of a partner's rate table.
#[utoipa::path(get, path = "/admin/v1/partners/{id}/rates", tag = "operator",
    params(("id" = u64, Path, description = "Partner id", minimum = 1, maximum = 4_294_967_295_u64)),
    responses((status = 200, body = Vec<RateTable>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_rates(
    State(app): State<AppState>,
    Path(id): Path<u32>,
) -> JsonResult<Vec<RateTable>> {
    Ok(Json(op::rate_tables(&app.ops, id)?))
}

/// Add a rate table version, in force from `effective_from_ms` (default now).
#[utoipa::path(post, path = "/admin/v1/partners/{id}/rates", tag = "operator",
    params(("id" = u64, Path, description = "Partner id", minimum = 1, maximum = 4_294_967_295_u64)),
    request_body = RateTableDraft,
    responses((status = 201, body = RateTable),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn add_rates(
    State(app): State<AppState>,
    Path(id): Path<u32>,
    ApiJson(d): ApiJson<RateTableDraft>,
) -> Result<Response, OpError> {
    let table = blocking(move || op::add_rate_table(&app.ops, id, d.into())).await?;
    Ok((StatusCode::CREATED, Json(table)).into_response())
}

/// Enrol a new member with no partner link yet.
#[utoipa::path(post, path = "/admin/v1/members", tag = "operator",
    responses((status = 201, body = MemberCreated),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn enrol_member(State(app): State<AppState>) -> Result<Response, OpError> {
    let member = blocking(move || op::enrol_member(&app.ops)).await?;
    let created = MemberCreated {
        member_id: member.0,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// A member's points.
#[utoipa::path(get, path = "/admin/v1/members/{id}", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = BalanceView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn member(State(app): State<AppState>, Path(id): Path<u64>) -> JsonResult<BalanceView> {
    let b = blocking(move || op::member_balance(&app.ops, MemberId(id))).await?;
    Ok(Json(BalanceView::of(Who::Id(id), b)))
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
    let (before, limit) = (q.before()?, q.limit()?);
    let (lines, next) =
        blocking(move || op::member_statement(&app.ops, MemberId(id), before, limit)).await?;
    Ok(Json(StatementView::of(Who::Id(id), lines, next)))
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
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u64>,
    ApiJson(r): ApiJson<AdjustmentRequest>,
) -> JsonResult<TransactionView> {
    let reference = r.reference.clone();
    let a = Adjustment {
        reference: r.reference,
        member: MemberId(id),
        points: r.points,
        reason: r.reason,
        operator: operator.name,
        qualifies: r.qualifies,
        corrects: match r.corrects {
            Some(c) => Some(ledger::TxId(c.parse().map_err(|_| {
                OpError::new(
                    Kind::InvalidRequest,
                    "corrects is a transaction id (digits)",
                )
            })?)),
            None => None,
        },
    };
    let receipt = op::adjust(&app.ops, a).await?;
    let mut view = TransactionView::of(&receipt.tx, Some(Who::Id(id)), receipt.replayed);
    view.reference = reference;
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
    let (account, b) = blocking(move || op::account(&app.ops, &name)).await?;
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

/// What an audit of the running ledger found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// True when every invariant held.
    pub ok: bool,
    /// The first broken invariant, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Batches durable when the snapshot was taken; the audit covers them all.
    pub through_version: u64,
    /// Journal batches read.
    pub batches: u64,
    /// Transactions checked.
    pub transactions: u64,
    /// Posting legs checked for balance.
    pub postings: u64,
    /// Members whose transaction chains were checked.
    pub members: usize,
    /// Stored member states compared.
    pub member_records: usize,
    /// System account balances compared.
    pub accounts: usize,
    /// Open holds compared.
    pub open_holds: usize,
    /// Idempotency index entries compared.
    pub idempotency_keys: usize,
    /// Points owed to members.
    pub points_outstanding: i64,
    /// How long the audit took, ms.
    pub took_ms: u64,
}

/// Audit the running ledger on a consistent snapshot, without stopping it: every transaction
/// balances, stored balances, member states, holds and idempotency keys equal the journal's
/// recomputation, no member is below zero except by clawback. For the finance and operator
/// roles; one audit at a time (503 with `Retry-After` while one runs).
#[utoipa::path(get, path = "/admin/v1/audit", tag = "operator",
    responses((status = 200, body = AuditView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn audit(State(app): State<AppState>) -> JsonResult<AuditView> {
    let a = blocking(move || op::audit(&app.ops)).await?;
    let r = a.report.clone().unwrap_or_default();
    Ok(Json(AuditView {
        ok: a.failure.is_none(),
        failure: a.failure,
        through_version: a.through_version,
        batches: r.batches,
        transactions: r.transactions,
        postings: r.postings,
        members: r.members,
        member_records: r.member_records,
        accounts: r.accounts,
        open_holds: r.open_holds,
        idempotency_keys: r.idempotency_keys,
        points_outstanding: r.points_outstanding,
        took_ms: u64::try_from(a.took.as_millis()).unwrap_or(u64::MAX),
    }))
}

/// Why a link code is issued.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkCodeRequest {
    /// Why, in words an auditor can follow ("member called, verified by date of birth").
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// A one-time link code: shown here once, stored only as its hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkCodeView {
    /// The member it links.
    pub member_id: u64,
    /// The code the member gives the partner.
    pub code: String,
    /// Good until, ms since the Unix epoch.
    pub expires_at_ms: i64,
}

/// Issue a member a one-time link code (15 minutes, single use), for a member who asks to be
/// linked at a partner: the member gives it to the partner, which sends it with the coalition
/// number to `POST /v1/members`. The operator and the reason are recorded with the code.
#[utoipa::path(post, path = "/admin/v1/members/{id}/link-codes", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")),
    request_body = LinkCodeRequest,
    responses((status = 201, body = LinkCodeView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn link_code(
    State(app): State<AppState>,
    Extension(operator): Extension<OperatorRecord>,
    Path(id): Path<u64>,
    ApiJson(r): ApiJson<LinkCodeRequest>,
) -> Result<Response, OpError> {
    let (code, record) =
        blocking(move || op::issue_link_code(&app.ops, MemberId(id), &operator.name, &r.reason))
            .await?;
    let view = LinkCodeView {
        member_id: id,
        code,
        expires_at_ms: record.expires_at_ms,
    };
    let mut res = (StatusCode::CREATED, Json(view)).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

/// An operator credential as operators see it: never the token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    /// Public id (the first 16 hex digits of the token's hash).
    pub id: String,
    /// Who holds it.
    pub name: String,
    /// `operator` or `finance`.
    pub role: Role,
    /// Created, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Stops working at, ms since the Unix epoch; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Revoked at, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
}

impl OperatorView {
    fn of(id: String, r: OperatorRecord) -> Self {
        OperatorView {
            id,
            name: r.name,
            role: r.role,
            created_at_ms: r.created_at_ms,
            expires_at_ms: r.expires_at_ms,
            revoked_at_ms: r.revoked_at_ms,
        }
    }
}

/// A new operator credential.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOperatorRequest {
    /// Who holds it (recorded on what they change).
    #[schema(min_length = 1, max_length = 128, pattern = "\\S")]
    pub name: String,
    /// `operator` or `finance`.
    pub role: Role,
    /// The token stops working after this many days; omit for never.
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    pub expires_in_days: Option<u32>,
}

/// A new operator credential: the token is shown here once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewOperatorView {
    /// The credential.
    #[serde(flatten)]
    pub operator: OperatorView,
    /// The bearer token.
    pub token: String,
}

/// Every operator credential, live or not, without tokens.
#[utoipa::path(get, path = "/admin/v1/operators", tag = "operator",
    responses((status = 200, body = Vec<OperatorView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_operators(State(app): State<AppState>) -> JsonResult<Vec<OperatorView>> {
    let all = app.ops.registry.operators();
    Ok(Json(
        all.into_iter()
            .map(|(id, r)| OperatorView::of(id, r))
            .collect(),
    ))
}

/// Create an operator credential; its token is in this answer only.
#[utoipa::path(post, path = "/admin/v1/operators", tag = "operator",
    request_body = NewOperatorRequest,
    responses((status = 201, body = NewOperatorView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn create_operator(
    State(app): State<AppState>,
    ApiJson(r): ApiJson<NewOperatorRequest>,
) -> Result<Response, OpError> {
    let ops = app.ops.clone();
    let (name, role, days) = (r.name, r.role, r.expires_in_days);
    let (token, id) = blocking(move || op::create_operator(&ops, &name, role, days)).await?;
    let record = app
        .ops
        .registry
        .operators()
        .into_iter()
        .find(|(i, _)| *i == id)
        .map(|(_, r)| r)
        .ok_or_else(|| OpError::new(Kind::Internal, "the new operator is not listed"))?;
    let view = NewOperatorView {
        operator: OperatorView::of(id, record),
        token,
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Revoke an operator credential: its token stops working at once on this gateway (within the
/// registry refresh on others).
#[utoipa::path(post, path = "/admin/v1/operators/{id}/revoke", tag = "operator",
    params(("id" = String, Path, description = "The credential's public id")),
    responses((status = 200, body = OperatorView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn revoke_operator(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> JsonResult<OperatorView> {
    let ops = app.ops.clone();
    let key = id.clone();
    let rec = blocking(move || op::revoke_operator(&ops, &key)).await?;
    Ok(Json(OperatorView::of(id, rec)))
}
