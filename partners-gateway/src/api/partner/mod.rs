//! The partner API under `/v1`: every request signed (see [`crate::api::signature`]), every
//! member addressed by the partner's own reference, every write idempotent on the partner's
//! `reference`. Handlers are thin: they turn a request into an [`ops::partner`] input, call
//! the operation, and turn its answer into a view.

use super::{
    blocking, ApiJson, BalanceView, JsonResult, Path, Query, StatementQuery, StatementView,
    TransactionView, Who,
};
use crate::api::problem::Problem;
use crate::api::signature::{self as auth, SignedRequest};
use crate::api::state::AppState;
use crate::ops::error::{Kind, OpError};
use crate::ops::partner::{self as op, PartnerCommand, Posted, Prepared};
use crate::ops::{Ops, PartnerCaller};
use crate::programme::rates::{Amount, Operation, RateTable};
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ledger::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod batch_command;
pub mod bodies;

pub use bodies::*;

/// The partner routes, each behind signature verification.
pub fn router(app: AppState) -> OpenApiRouter<AppState> {
    crate::api::profiles::partner_routes(crate::api::webhooks::partner_routes(
        crate::api::households::partner_routes(crate::api::engagement::partner::partner_routes(
            OpenApiRouter::new(),
        )),
    ))
    .routes(routes!(enrol))
    .routes(routes!(balance))
    .routes(routes!(expiring))
    .routes(routes!(tier))
    .routes(routes!(statement))
    .routes(routes!(earn))
    .routes(routes!(burn))
    .routes(routes!(hold))
    .routes(routes!(capture))
    .routes(routes!(void))
    .routes(routes!(reversal))
    .routes(routes!(transfer))
    .routes(routes!(batch))
    .routes(routes!(transaction))
    .routes(routes!(quote))
    .routes(routes!(rates))
    .route_layer(axum::middleware::from_fn_with_state(app, authenticate))
}

/// Reads the body (up to the limit), verifies the signature, applies the partner's rate limit,
/// and hands the handler a [`PartnerCaller`].
async fn authenticate(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, OpError> {
    let (mut parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<crate::listener::PeerAddr>()
        .map(|p| p.0.ip());
    // A request with no credentials costs nothing and answers 401 as it is; an address that
    // keeps failing with credentials is refused before its key is even looked up.
    auth::has_signature_headers(&parts.headers)?;
    app.check_address(peer)?;
    // The signature headers and the key are checked before the body is read: a request that
    // cannot be genuine costs no body read and no hashing.
    let key = auth::precheck(&app.ops.registry, &parts.headers).inspect_err(|_| {
        app.failed_authentication(peer);
    })?;
    let bytes = axum::body::to_bytes(body, app.limits.body_bytes_max)
        .await
        .map_err(|_| {
            OpError::new(
                Kind::PayloadTooLarge,
                format!(
                    "the request body is over the limit of {} bytes",
                    app.limits.body_bytes_max
                ),
            )
        })?;
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
    let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: uri.path(),
        query: uri.query(),
        key_id: header(auth::KEY_ID),
        timestamp: header(auth::TIMESTAMP),
        nonce: header(auth::NONCE),
        signature: header(auth::SIGNATURE),
        body: &bytes,
    };
    let now_s = Timestamp::now().0.div_euclid(1000);
    let caller = auth::verify(&app.ops.registry, key, &app.nonces, &signed, now_s)
        .inspect_err(|_| app.failed_authentication(peer))?;
    let partner = app.partner(caller.partner)?;
    // The rate limit before the nonce: a refused request must not take a place in the cache.
    app.admit(&partner)?;
    auth::spend_nonce(&app.nonces, &signed)?;
    let partner_id = caller.partner;
    parts.extensions.insert(caller);
    let mut res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    res.extensions_mut().insert(partner_id);
    Ok(res)
}

/// The view of a posted transaction.
pub(super) fn view(p: Posted) -> TransactionView {
    TransactionView::of(&p.tx, p.member_ref.map(Who::Reference), p.replayed)
}

/// Prepares a command that reads the ledger (capture, void, reversal) off the async workers.
async fn prepare_blocking(
    app: &AppState,
    caller: &PartnerCaller,
    c: PartnerCommand,
) -> Result<Prepared, OpError> {
    let (ops, caller) = (app.ops.clone(), caller.clone());
    blocking(move || op::prepare(&ops, &caller, &c)).await
}

/// Prepares and runs one command, answering with its view.
async fn run(
    app: &AppState,
    caller: &PartnerCaller,
    c: PartnerCommand,
) -> JsonResult<TransactionView> {
    // Inline only when nothing would touch the store: the member's link is in memory, or the
    // transaction a command names (committed moments ago) and the caller's reference for its
    // member are. Anything else reads the store off the async workers.
    let linked = c
        .member()
        .filter(|_| c.names().is_none())
        .and_then(|m| app.ops.registry.member_cached(caller.partner, m));
    let p = match linked {
        Some(m) => op::prepare_linked(&app.ops, caller, &c, Some(m))?,
        None => match op::prepare_in_memory(&app.ops, caller, &c) {
            Some(prepared) => prepared?,
            None => prepare_blocking(app, caller, c).await?,
        },
    };
    Ok(Json(view(op::execute(&app.ops, caller, p).await?)))
}

/// The result of one batch command, as its single request would have answered.
fn batch_result(outcome: Result<Posted, OpError>) -> BatchResult {
    match outcome {
        Ok(p) => BatchResult {
            status: 200,
            transaction: Some(view(p)),
            problem: None,
        },
        Err(e) => BatchResult {
            status: e.kind.status().as_u16(),
            transaction: None,
            problem: Some(e.problem()),
        },
    }
}

/// Enrol a new member, or link an existing coalition member, under the partner's reference.
#[utoipa::path(post, path = "/v1/members", tag = "partner",
    request_body = EnrolRequest,
    responses(
        (status = 201, description = "Linked now", body = EnrolView),
        (status = 200, description = "Already linked", body = EnrolView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
    ),
    security(("partner_signature" = [])))]
async fn enrol(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<EnrolRequest>,
) -> Result<Response, OpError> {
    let reference = r.reference.clone();
    let ops = app.ops.clone();
    let (member, created) = blocking(move || op::enrol(&ops, &caller, &r.into())).await?;
    let view = EnrolView {
        member: reference,
        member_id: member.0,
        created,
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

/// The member's points expiring in the next 30, 60 and 90 days, and from which lots.
#[utoipa::path(get, path = "/v1/members/{member}/expiring", tag = "partner",
    params(("member" = String, Path, description = "The partner's reference for the member", min_length = 1, max_length = 64, pattern = "^[!-~]+$")),
    responses((status = 200, body = crate::api::programme::ExpiringView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn expiring(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(reference): Path<String>,
) -> JsonResult<crate::api::programme::ExpiringView> {
    let ops = app.ops.clone();
    let e = blocking(move || op::expiring(&ops, &caller, &reference)).await?;
    Ok(Json(e.into()))
}

/// The member's tier, and its progress to the next level.
#[utoipa::path(get, path = "/v1/members/{member}/tier", tag = "partner",
    params(("member" = String, Path, description = "The partner's reference for the member", min_length = 1, max_length = 64, pattern = "^[!-~]+$")),
    responses((status = 200, body = crate::api::programme::TierView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn tier(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(reference): Path<String>,
) -> JsonResult<crate::api::programme::TierView> {
    let ops = app.ops.clone();
    let t = blocking(move || op::tier(&ops, &caller, &reference)).await?;
    Ok(Json(t.into()))
}

/// A member's posted, pending and available points.
#[utoipa::path(get, path = "/v1/members/{member}", tag = "partner",
    params(("member" = String, Path, description = "The partner's reference for the member", min_length = 1, max_length = 64, pattern = "^[!-~]+$")),
    responses((status = 200, body = BalanceView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn balance(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(reference): Path<String>,
) -> JsonResult<BalanceView> {
    let ops = app.ops.clone();
    let b = blocking(move || {
        let b = op::balance(&ops, &caller, &reference)?;
        Ok(BalanceView::of(Who::Reference(reference), b))
    })
    .await?;
    Ok(Json(b))
}

/// The member's statement at this partner (its earns, burns, holds, captures, reversals), paged.
#[utoipa::path(get, path = "/v1/members/{member}/statement", tag = "partner",
    params(("member" = String, Path, description = "The partner's reference for the member", min_length = 1, max_length = 64, pattern = "^[!-~]+$"), StatementQuery),
    responses((status = 200, body = StatementView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn statement(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(reference): Path<String>,
    Query(q): Query<StatementQuery>,
) -> JsonResult<StatementView> {
    let (before, limit) = (q.before()?, q.limit()?);
    let ops = app.ops.clone();
    let view = blocking(move || {
        let (lines, next) = op::statement(&ops, &caller, &reference, before, limit)?;
        Ok(StatementView::of(Who::Reference(reference), lines, next))
    })
    .await?;
    Ok(Json(view))
}

/// Earn points: the amount is converted with the partner's rate table in force (rounding down).
#[utoipa::path(post, path = "/v1/earn", tag = "partner", request_body = EarnRequest,
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn earn(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<EarnRequest>,
) -> JsonResult<TransactionView> {
    run(&app, &caller, PartnerCommand::Earn(r.into())).await
}

/// Burn points at once, given in points or priced from money (rounding up).
#[utoipa::path(post, path = "/v1/burn", tag = "partner", request_body = BurnRequest,
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn burn(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<BurnRequest>,
) -> JsonResult<TransactionView> {
    run(&app, &caller, PartnerCommand::Burn(r.into())).await
}

/// Reserve points (a till authorisation, an award booking) until captured, voided or timed out.
#[utoipa::path(post, path = "/v1/holds", tag = "partner", request_body = HoldRequest,
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn hold(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<HoldRequest>,
) -> JsonResult<TransactionView> {
    run(&app, &caller, PartnerCommand::Hold(r.into())).await
}

/// Capture a hold, in full or in part; the rest is released.
#[utoipa::path(post, path = "/v1/holds/{hold}/capture", tag = "partner", request_body = CaptureRequest,
    params(("hold" = String, Path, description = "The hold's reference", min_length = 1, max_length = 128, pattern = "^[!-~]+$")),
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn capture(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(hold_reference): Path<String>,
    ApiJson(r): ApiJson<CaptureRequest>,
) -> JsonResult<TransactionView> {
    let c = PartnerCommand::Capture {
        hold_reference,
        reference: r.reference,
        points: r.points,
    };
    run(&app, &caller, c).await
}

/// Release a hold without burning.
#[utoipa::path(post, path = "/v1/holds/{hold}/void", tag = "partner", request_body = VoidRequest,
    params(("hold" = String, Path, description = "The hold's reference", min_length = 1, max_length = 128, pattern = "^[!-~]+$")),
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn void(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(hold_reference): Path<String>,
    ApiJson(r): ApiJson<VoidRequest>,
) -> JsonResult<TransactionView> {
    let c = PartnerCommand::Void {
        hold_reference,
        reference: r.reference,
    };
    run(&app, &caller, c).await
}

/// Undo all or part of an earn or a burn.
#[utoipa::path(post, path = "/v1/reversals", tag = "partner", request_body = ReversalRequest,
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn reversal(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<ReversalRequest>,
) -> JsonResult<TransactionView> {
    run(&app, &caller, PartnerCommand::Reversal(r.into())).await
}

/// Give points from one member to another (both linked at this partner), with the giving
/// member's consent as the partner attests it. Expiry dates travel with the points; the
/// programme's transfer limits and fee apply.
#[utoipa::path(post, path = "/v1/transfers", tag = "partner", request_body = TransferRequest,
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn transfer(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<TransferRequest>,
) -> JsonResult<TransactionView> {
    let t: op::Transfer = r.into();
    let (ops, c) = (app.ops.clone(), caller.clone());
    let p = blocking(move || op::prepare_transfer(&ops, &c, &t)).await?;
    Ok(Json(view(op::execute(&app.ops, &caller, p).await?)))
}

/// Many commands in one request; each has its own result, in order. Commands are submitted
/// together so the committer can put them in one batch, except that a command naming an
/// earlier command of the same request (a capture or void of its hold, a reversal of its earn
/// or burn) waits until everything before it is answered: later commands see earlier ones, in
/// order, so a retried batch answers as the first did (as replays).
#[utoipa::path(post, path = "/v1/batch", tag = "partner", request_body = BatchRequest,
    responses((status = 200, body = BatchResponse),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn batch(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<BatchRequest>,
) -> JsonResult<BatchResponse> {
    let commands: Vec<PartnerCommand> = r.commands.into_iter().map(Into::into).collect();
    // The signature check charged one; each further command counts against the rate too.
    let extra = u32::try_from(commands.len().saturating_sub(1)).unwrap_or(u32::MAX);
    app.admit_n(&app.partner(caller.partner)?, extra)?;
    let read = |ops: Arc<Ops>, caller: PartnerCaller, c: PartnerCommand| async move {
        blocking(move || Ok(op::prepare(&ops, &caller, &c))).await
    };
    let outcomes = op::batch(&app.ops, &caller, commands, read).await?;
    let results = outcomes.into_iter().map(batch_result).collect();
    Ok(Json(BatchResponse { results }))
}

/// A transaction the partner posted, by its reference.
#[utoipa::path(get, path = "/v1/transactions/{reference}", tag = "partner",
    params(("reference" = String, Path, description = "The reference the transaction was posted under", min_length = 1, max_length = 128, pattern = "^[!-~]+$")),
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn transaction(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(reference): Path<String>,
) -> JsonResult<TransactionView> {
    let ops = app.ops.clone();
    let posted = blocking(move || op::transaction(&ops, &caller, &reference)).await?;
    Ok(Json(view(posted)))
}

/// Price an earn or a burn with the rate table in force, without posting anything.
#[utoipa::path(post, path = "/v1/quote", tag = "partner", request_body = QuoteRequest,
    responses((status = 200, body = QuoteView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn quote(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    ApiJson(r): ApiJson<QuoteRequest>,
) -> JsonResult<QuoteView> {
    let operation = r.operation;
    let op::Quoted { priced, applied } = op::quote(&app.ops, &caller, &r.into())?;
    let bonuses: Vec<QuoteBonus> = applied
        .iter()
        .map(|a| QuoteBonus {
            campaign_id: a.campaign,
            version: a.version,
            points: a.points,
            funded_by: match a.funder {
                ledger::Funder::Programme => None,
                ledger::Funder::Partner(p) => Some(p.0),
            },
            checked_at_posting: [
                (a.requires.first_earn_at_partner, "first_earn_at_partner"),
                (
                    a.requires.enrolled_days_min.is_some()
                        || a.requires.enrolled_days_max.is_some(),
                    "enrolled_days",
                ),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| name.to_string())
            .collect(),
        })
        .collect();
    Ok(Json(QuoteView {
        operation,
        points: priced.points.0,
        total_points: priced.points.0 + bonuses.iter().map(|b| b.points).sum::<i64>(),
        bonuses,
        rate_version: priced.pricing.rate_version,
        points_per_unit: priced.pricing.points_per_unit.normalize().to_string(),
        rounding: match operation {
            Operation::Earn => "down",
            Operation::Burn => "up",
        }
        .to_string(),
    }))
}

/// Every version of the partner's rate table, oldest first (including future-dated ones).
#[utoipa::path(get, path = "/v1/rates", tag = "partner",
    responses((status = 200, body = Vec<RateTable>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn rates(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
) -> JsonResult<Vec<RateTable>> {
    Ok(Json(op::rates(&app.ops, &caller)?))
}
