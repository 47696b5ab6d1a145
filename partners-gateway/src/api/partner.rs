//! The partner API under `/v1`: every request signed (see [`crate::auth`]), every member
//! addressed by the partner's own reference, every write idempotent on the partner's
//! `reference`.

use super::{
    blocking, check_points, check_reference, statement_page, ApiJson, BalanceView, JsonResult,
    Path, Query, StatementOf, StatementQuery, StatementView, TransactionView,
};
use crate::api::state::{App, AppState};
use crate::api::signature::{self as auth, PartnerCaller, SignedRequest};
use crate::api::problem::Problem;
use crate::ops::error::{Kind, OpError};
use crate::programme::rates::{Amount, Operation, RateTable, NAME_LEN_MAX};
use crate::ops::registry::{KeyScope, RegistryError, MEMBER_REFERENCE_LEN_MAX};
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ledger::{
    Command, IdemKey, LedgerError, MemberId, PartnerId, Pending, Points, Pricing, Rejection,
    Timestamp, Transaction, TxKind,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The partner routes, each behind signature verification.
pub fn router(app: AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enrol))
        .routes(routes!(balance))
        .routes(routes!(statement))
        .routes(routes!(earn))
        .routes(routes!(burn))
        .routes(routes!(hold))
        .routes(routes!(capture))
        .routes(routes!(void))
        .routes(routes!(reversal))
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
    let caller = auth::verify(&app.registry, &app.nonces, &signed, now_s)?;
    let partner = app.partner(caller.partner)?;
    app.admit(&partner)?;
    let partner_id = caller.partner;
    parts.extensions.insert(caller);
    let mut res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    res.extensions_mut().insert(partner_id);
    Ok(res)
}

/// Link a member reference (card, frequent-flyer or phone number) to a coalition member.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The partner's reference for the member; later requests address the member by it.
    #[schema(example = "FF000042")]
    pub reference: String,
    /// An existing coalition member (their coalition number) to link; omit to enrol a new one.
    pub member_id: Option<u64>,
}

/// The member a reference names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EnrolView {
    /// The partner's reference.
    pub member: String,
    /// The coalition member id.
    pub member_id: u64,
    /// True when this request created the link.
    pub created: bool,
}

/// Earn points for a purchase, a flight or a fill-up.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EarnRequest {
    /// Idempotency key: the partner's receipt or booking reference.
    #[schema(example = "rcpt-2026-000123")]
    pub reference: String,
    /// The member, by the partner's reference.
    #[schema(example = "FF000042")]
    pub member: String,
    /// What was bought, in the unit of the partner's rate table.
    pub amount: Amount,
    /// Branch (station, store) for branch rates.
    pub branch: Option<String>,
    /// Product category for category rates.
    pub category: Option<String>,
}

/// Burn points at once. Give `points`, or `amount` to price it with the rate table (rounds up).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BurnRequest {
    /// Idempotency key.
    pub reference: String,
    /// The member, by the partner's reference.
    pub member: String,
    /// Points to burn.
    pub points: Option<i64>,
    /// Or a price in money to convert.
    pub amount: Option<Amount>,
    /// Branch for branch rates.
    pub branch: Option<String>,
    /// Category for category rates.
    pub category: Option<String>,
}

/// Reserve points for a later capture.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// Idempotency key; also names the hold in capture and void.
    pub reference: String,
    /// The member, by the partner's reference.
    pub member: String,
    /// Points to reserve.
    pub points: Option<i64>,
    /// Or a price in money to convert.
    pub amount: Option<Amount>,
    /// Branch for branch rates.
    pub branch: Option<String>,
    /// Category for category rates.
    pub category: Option<String>,
    /// The hold voids itself after this many seconds.
    #[schema(example = 900)]
    pub timeout_seconds: u32,
}

/// Capture a hold in full or in part.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Idempotency key of the capture.
    pub reference: String,
    /// Points to capture; omit to capture the whole hold. The rest is released.
    pub points: Option<i64>,
}

/// Release a hold.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    /// Idempotency key of the void.
    pub reference: String,
}

/// Undo all or part of an earlier earn (a refund) or burn (a cancelled redemption).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalRequest {
    /// Idempotency key of the reversal.
    pub reference: String,
    /// The reference of the earn or burn to undo.
    pub original_reference: String,
    /// Points to undo; omit to undo whatever is left.
    pub points: Option<i64>,
}

/// One command of a batch: the single request's body plus `op` (and, for capture and void,
/// `hold_reference`).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum BatchCommand {
    /// As `POST /v1/earn`.
    Earn(EarnRequest),
    /// As `POST /v1/burn`.
    Burn(BurnRequest),
    /// As `POST /v1/holds`.
    Hold(HoldRequest),
    /// As `POST /v1/holds/{hold}/capture`.
    Capture {
        /// The hold's reference.
        hold_reference: String,
        /// Idempotency key of the capture.
        reference: String,
        /// Points to capture; omit for all.
        points: Option<i64>,
    },
    /// As `POST /v1/holds/{hold}/void`.
    Void {
        /// The hold's reference.
        hold_reference: String,
        /// Idempotency key of the void.
        reference: String,
    },
    /// As `POST /v1/reversals`.
    Reversal(ReversalRequest),
}

/// Many commands in one request; each succeeds or fails on its own.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The commands, at most the batch limit (1,000 by default).
    pub commands: Vec<BatchCommand>,
}

/// One command's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    /// The status the single request would have had.
    pub status: u16,
    /// The transaction, on success.
    pub transaction: Option<TransactionView>,
    /// The problem, on failure.
    pub problem: Option<Problem>,
}

/// Results in the order of the commands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// One result per command.
    pub results: Vec<BatchResult>,
}

/// Price an earn or a burn without posting it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// `earn` or `burn`.
    pub operation: Operation,
    /// The quantity to price.
    pub amount: Amount,
    /// Branch for branch rates.
    pub branch: Option<String>,
    /// Category for category rates.
    pub category: Option<String>,
}

/// A price in points.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct QuoteView {
    /// `earn` or `burn`.
    pub operation: Operation,
    /// Points after rounding (earn down, burn up).
    pub points: i64,
    /// Rate table version used.
    pub rate_version: u32,
    /// Points per unit applied.
    pub points_per_unit: String,
    /// `down` (earn) or `up` (burn).
    pub rounding: String,
}

/// A command ready for the ledger, with what is needed to answer for it.
pub(crate) struct Prepared {
    cmd: Command,
    pricing: Option<Pricing>,
    member: Option<MemberId>,
    member_ref: Option<String>,
}

/// What answering needs once the command has gone to the ledger.
struct Sent {
    /// The pricing inputs, to recognise a retry priced under a newer rate table.
    pricing: Option<Pricing>,
    /// `earn`, `burn` or `hold` for priced commands (the kind `describe` gives their
    /// transactions).
    kind: &'static str,
    member: Option<MemberId>,
    member_ref: Option<String>,
}

fn key(caller: &PartnerCaller, reference: &str) -> Result<IdemKey, OpError> {
    check_reference("reference", reference)?;
    Ok(IdemKey::partner(caller.partner, reference))
}

fn registry_error(e: RegistryError) -> OpError {
    match e {
        RegistryError::ReferenceTaken { reference } => OpError::new(
            Kind::ReferenceTaken,
            format!("member reference {reference:?} is linked to another member"),
        ),
        other => OpError::new(Kind::Internal, other.to_string()),
    }
}

/// The member a partner reference names; unknown and unlinked members look the same.
fn member_of(app: &App, caller: &PartnerCaller, reference: &str) -> Result<MemberId, OpError> {
    check_member_reference(reference)?;
    app.registry
        .member_of(caller.partner, reference)
        .map_err(registry_error)?
        .ok_or_else(|| {
            OpError::new(
                Kind::UnknownMember,
                format!("no member with reference {reference:?}"),
            )
        })
}

fn check_member_reference(r: &str) -> Result<(), OpError> {
    if r.is_empty()
        || r.len() > MEMBER_REFERENCE_LEN_MAX
        || !r.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("member reference must be 1 to {MEMBER_REFERENCE_LEN_MAX} printable ASCII characters"),
        ));
    }
    Ok(())
}

fn check_name(field: &str, v: Option<&str>) -> Result<(), OpError> {
    match v {
        Some(s) if s.is_empty() || s.len() > NAME_LEN_MAX => Err(OpError::new(
            Kind::InvalidRequest,
            format!("{field} must be 1 to {NAME_LEN_MAX} bytes"),
        )),
        _ => Ok(()),
    }
}

fn rate_table(app: &App, partner: PartnerId) -> Result<RateTable, OpError> {
    app.registry
        .rate_in_force(partner, Timestamp::now())
        .ok_or_else(|| {
            OpError::new(
                Kind::UnitNotPriced,
                "the partner has no rate table in force",
            )
        })
}

/// Points from either `points` or `amount` (exactly one), priced for `op`.
fn points_or_amount(
    app: &App,
    caller: &PartnerCaller,
    points: Option<i64>,
    amount: Option<&Amount>,
    branch: Option<&str>,
    category: Option<&str>,
) -> Result<(Points, Option<Pricing>), OpError> {
    check_name("branch", branch)?;
    check_name("category", category)?;
    match (points, amount) {
        (Some(p), None) => Ok((check_points("points", p)?, None)),
        (None, Some(a)) => {
            let q = a.parse()?;
            let priced = rate_table(app, caller.partner)?.price(
                Operation::Burn,
                q,
                &a.unit,
                branch,
                category,
            )?;
            Ok((priced.points, Some(priced.pricing)))
        }
        _ => Err(OpError::new(
            Kind::InvalidRequest,
            "give exactly one of points and amount",
        )),
    }
}

fn prepare_earn(app: &App, caller: &PartnerCaller, r: &EarnRequest) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Earn)?;
    let key = key(caller, &r.reference)?;
    check_name("branch", r.branch.as_deref())?;
    check_name("category", r.category.as_deref())?;
    let q = r.amount.parse()?;
    let member = member_of(app, caller, &r.member)?;
    let priced = rate_table(app, caller.partner)?.price(
        Operation::Earn,
        q,
        &r.amount.unit,
        r.branch.as_deref(),
        r.category.as_deref(),
    )?;
    Ok(Prepared {
        cmd: Command::Earn {
            key,
            member,
            partner: caller.partner,
            points: priced.points,
            bonus: Points(0),
        },
        pricing: Some(priced.pricing),
        member: Some(member),
        member_ref: Some(r.member.clone()),
    })
}

fn prepare_burn(app: &App, caller: &PartnerCaller, r: &BurnRequest) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, &r.reference)?;
    let (points, pricing) = points_or_amount(
        app,
        caller,
        r.points,
        r.amount.as_ref(),
        r.branch.as_deref(),
        r.category.as_deref(),
    )?;
    let member = member_of(app, caller, &r.member)?;
    Ok(Prepared {
        cmd: Command::Burn {
            key,
            member,
            partner: caller.partner,
            points,
        },
        pricing,
        member: Some(member),
        member_ref: Some(r.member.clone()),
    })
}

fn prepare_hold(app: &App, caller: &PartnerCaller, r: &HoldRequest) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, &r.reference)?;
    let (points, pricing) = points_or_amount(
        app,
        caller,
        r.points,
        r.amount.as_ref(),
        r.branch.as_deref(),
        r.category.as_deref(),
    )?;
    let timeout_ms = r
        .timeout_seconds
        .checked_mul(1000)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| {
            OpError::new(
                Kind::InvalidRequest,
                "timeout_seconds must be between 1 and 4,294,967",
            )
        })?;
    let member = member_of(app, caller, &r.member)?;
    Ok(Prepared {
        cmd: Command::Hold {
            key,
            member,
            partner: caller.partner,
            points,
            timeout_ms,
        },
        pricing,
        member: Some(member),
        member_ref: Some(r.member.clone()),
    })
}

/// The caller's own transaction posted under `reference`; others' answer as unknown.
fn own_transaction(
    app: &App,
    caller: &PartnerCaller,
    reference: &str,
) -> Result<Transaction, OpError> {
    check_reference("reference", reference)?;
    app.ledger
        .transaction_by_key(&IdemKey::partner(caller.partner, reference))?
        .ok_or_else(|| {
            OpError::new(
                Kind::UnknownTransaction,
                format!("no transaction with reference {reference:?}"),
            )
        })
}

fn own_hold(
    app: &App,
    caller: &PartnerCaller,
    reference: &str,
) -> Result<(Transaction, MemberId), OpError> {
    let tx = own_transaction(app, caller, reference)?;
    match tx.kind {
        TxKind::Hold { member, .. } => Ok((tx, member)),
        _ => Err(OpError::new(
            Kind::UnknownTransaction,
            format!("no hold with reference {reference:?}"),
        )),
    }
}

fn prepare_capture(
    app: &App,
    caller: &PartnerCaller,
    hold_reference: &str,
    reference: &str,
    points: Option<i64>,
) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, reference)?;
    let points = points.map(|p| check_points("points", p)).transpose()?;
    let (hold, member) = own_hold(app, caller, hold_reference)?;
    Ok(Prepared {
        cmd: Command::Capture {
            key,
            hold: hold.id,
            points,
        },
        pricing: None,
        member: Some(member),
        member_ref: None,
    })
}

fn prepare_void(
    app: &App,
    caller: &PartnerCaller,
    hold_reference: &str,
    reference: &str,
) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, reference)?;
    let (hold, member) = own_hold(app, caller, hold_reference)?;
    Ok(Prepared {
        cmd: Command::Void { key, hold: hold.id },
        pricing: None,
        member: Some(member),
        member_ref: None,
    })
}

fn prepare_reversal(
    app: &App,
    caller: &PartnerCaller,
    r: &ReversalRequest,
) -> Result<Prepared, OpError> {
    let key = key(caller, &r.reference)?;
    let points = r.points.map(|p| check_points("points", p)).transpose()?;
    let original = own_transaction(app, caller, &r.original_reference)?;
    let member = match original.kind {
        TxKind::Earn { member, .. } => {
            caller.require(KeyScope::Earn)?;
            member
        }
        TxKind::Burn { member, .. } => {
            caller.require(KeyScope::Burn)?;
            member
        }
        _ => {
            return Err(OpError::new(
                Kind::NotReversible,
                format!(
                    "{:?} is not an earn or a burn and cannot be reversed",
                    r.original_reference
                ),
            ))
        }
    };
    Ok(Prepared {
        cmd: Command::Reverse {
            key,
            original: original.id,
            points,
        },
        pricing: None,
        member: Some(member),
        member_ref: None,
    })
}

/// Hands the command to the ledger (moved, not copied) and keeps what answering needs.
fn submit(app: &App, p: Prepared) -> Result<(Sent, Pending), OpError> {
    let kind = match &p.cmd {
        Command::Earn { .. } => "earn",
        Command::Burn { .. } => "burn",
        Command::Hold { .. } => "hold",
        _ => "",
    };
    let sent = Sent {
        pricing: p.pricing.clone(),
        kind,
        member: p.member,
        member_ref: p.member_ref,
    };
    Ok((sent, app.ledger.submit_priced(p.cmd, p.pricing)?))
}

/// Waits for the ledger's answer and turns it into the caller's view. A retry priced under a
/// newer rate table is still the same request when the partner sent the same quantity: it
/// answers as a replay of the original.
async fn finish(
    app: &App,
    caller: &PartnerCaller,
    p: Sent,
    pending: Pending,
) -> Result<TransactionView, OpError> {
    let answer = pending
        .await
        .map_err(|_| OpError::from(LedgerError::ShuttingDown))?;
    let (tx, replayed) = match answer {
        Ok(r) => (r.tx, r.replayed),
        Err(LedgerError::Rejected(Rejection::IdempotencyConflict { original }))
            if p.pricing.is_some() =>
        {
            let tx = app.ledger.transaction(original)?.ok_or_else(|| {
                OpError::new(
                    Kind::Internal,
                    "idempotency record names a missing transaction",
                )
            })?;
            if !same_priced_request(&tx, &p) {
                return Err(Rejection::IdempotencyConflict { original }.into());
            }
            (std::sync::Arc::new(tx), true)
        }
        Err(e) => return Err(e.into()),
    };
    if !replayed {
        count_points(caller.partner, &tx);
    }
    let member_ref = match p.member_ref {
        Some(r) => Some(r),
        None => match p.member {
            Some(m) => app
                .registry
                .reference_of(caller.partner, m)
                .map_err(registry_error)?,
            None => None,
        },
    };
    Ok(TransactionView::of(&tx, member_ref, replayed))
}

fn same_priced_request(tx: &Transaction, p: &Sent) -> bool {
    let same_inputs = match (&tx.pricing, &p.pricing) {
        (Some(a), Some(b)) => {
            (a.quantity, &a.unit, &a.branch, &a.category)
                == (b.quantity, &b.unit, &b.branch, &b.category)
        }
        _ => false,
    };
    let same_kind = !p.kind.is_empty() && ledger::describe(&tx.kind).0 == p.kind;
    same_inputs && same_kind && tx.kind.member() == p.member
}

fn count_points(partner: PartnerId, tx: &Transaction) {
    let label = partner.0.to_string();
    match &tx.kind {
        TxKind::Earn { points, .. } => {
            metrics::counter!("points_issued_total", "partner" => label).increment(points.0 as u64)
        }
        TxKind::Burn { points, .. } => {
            metrics::counter!("points_redeemed_total", "partner" => label)
                .increment(points.0 as u64)
        }
        _ => {}
    }
}

async fn execute(
    app: &App,
    caller: &PartnerCaller,
    p: Prepared,
) -> Result<TransactionView, OpError> {
    let (sent, pending) = submit(app, p)?;
    finish(app, caller, sent, pending).await
}

/// Prepares a command that reads the ledger (capture, void, reversal) off the async workers.
async fn prepare_blocking(
    app: &AppState,
    caller: &PartnerCaller,
    f: impl FnOnce(&App, &PartnerCaller) -> Result<Prepared, OpError> + Send + 'static,
) -> Result<Prepared, OpError> {
    let (app, caller) = (app.clone(), caller.clone());
    blocking(move || f(&app, &caller)).await
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
    caller.require(KeyScope::Earn)?;
    check_member_reference(&r.reference)?;
    let reference = r.reference.clone();
    let app2 = app.clone();
    let (member, created) = blocking(move || {
        if let Some(m) = r.member_id {
            if app2.ledger.balance(MemberId(m))?.is_none() {
                return Err(OpError::new(
                    Kind::UnknownMember,
                    format!("no coalition member {m}"),
                ));
            }
        }
        let (member, created) = app2
            .registry
            .link(caller.partner, &r.reference, r.member_id.map(MemberId))
            .map_err(registry_error)?;
        // A new member, or one whose enrolment was cut short by a crash, is enrolled now; the
        // enrolment key is fixed per member, so this is safe to repeat.
        if app2.ledger.balance(member)?.is_none() {
            app2.ledger.execute_blocking(Command::Enrol {
                key: IdemKey::operator(format!("enrol/{}", member.0)),
                member,
            })?;
        }
        Ok::<_, OpError>((member, created))
    })
    .await?;
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

/// A member's posted, pending and available points.
#[utoipa::path(get, path = "/v1/members/{member}", tag = "partner",
    params(("member" = String, Path, description = "The partner's reference for the member")),
    responses((status = 200, body = BalanceView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn balance(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(reference): Path<String>,
) -> JsonResult<BalanceView> {
    caller.require(KeyScope::Read)?;
    let b = blocking(move || {
        let m = member_of(&app, &caller, &reference)?;
        let b = app.ledger.balance(m)?.ok_or_else(|| {
            OpError::new(
                Kind::UnknownMember,
                format!("no member with reference {reference:?}"),
            )
        })?;
        Ok(BalanceView::of(reference, b))
    })
    .await?;
    Ok(Json(b))
}

/// The member's statement at this partner (its earns, burns, holds, captures, reversals), paged.
#[utoipa::path(get, path = "/v1/members/{member}/statement", tag = "partner",
    params(("member" = String, Path, description = "The partner's reference for the member"), StatementQuery),
    responses((status = 200, body = StatementView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn statement(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(reference): Path<String>,
    Query(q): Query<StatementQuery>,
) -> JsonResult<StatementView> {
    caller.require(KeyScope::Read)?;
    let before = q.before()?;
    let limit = q.limit()?;
    let view = blocking(move || {
        let m = member_of(&app, &caller, &reference)?;
        let of = StatementOf::Partner(caller.partner);
        let (entries, next) = statement_page(&app.ledger, m, of, before, limit)?;
        Ok(StatementView {
            member: reference,
            entries,
            next: next.map(|t| t.0.to_string()),
        })
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
    let p = prepare_earn(&app, &caller, &r)?;
    Ok(Json(execute(&app, &caller, p).await?))
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
    let p = prepare_burn(&app, &caller, &r)?;
    Ok(Json(execute(&app, &caller, p).await?))
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
    let p = prepare_hold(&app, &caller, &r)?;
    Ok(Json(execute(&app, &caller, p).await?))
}

/// Capture a hold, in full or in part; the rest is released.
#[utoipa::path(post, path = "/v1/holds/{hold}/capture", tag = "partner", request_body = CaptureRequest,
    params(("hold" = String, Path, description = "The hold's reference")),
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn capture(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(hold): Path<String>,
    ApiJson(r): ApiJson<CaptureRequest>,
) -> JsonResult<TransactionView> {
    let p = prepare_blocking(&app, &caller, move |app, caller| {
        prepare_capture(app, caller, &hold, &r.reference, r.points)
    })
    .await?;
    Ok(Json(execute(&app, &caller, p).await?))
}

/// Release a hold without burning.
#[utoipa::path(post, path = "/v1/holds/{hold}/void", tag = "partner", request_body = VoidRequest,
    params(("hold" = String, Path, description = "The hold's reference")),
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn void(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(hold): Path<String>,
    ApiJson(r): ApiJson<VoidRequest>,
) -> JsonResult<TransactionView> {
    let p = prepare_blocking(&app, &caller, move |app, caller| {
        prepare_void(app, caller, &hold, &r.reference)
    })
    .await?;
    Ok(Json(execute(&app, &caller, p).await?))
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
    let p = prepare_blocking(&app, &caller, move |app, caller| {
        prepare_reversal(app, caller, &r)
    })
    .await?;
    Ok(Json(execute(&app, &caller, p).await?))
}

fn prepare_item(app: &App, caller: &PartnerCaller, c: &BatchCommand) -> Result<Prepared, OpError> {
    match c {
        BatchCommand::Earn(r) => prepare_earn(app, caller, r),
        BatchCommand::Burn(r) => prepare_burn(app, caller, r),
        BatchCommand::Hold(r) => prepare_hold(app, caller, r),
        BatchCommand::Capture {
            hold_reference,
            reference,
            points,
        } => prepare_capture(app, caller, hold_reference, reference, *points),
        BatchCommand::Void {
            hold_reference,
            reference,
        } => prepare_void(app, caller, hold_reference, reference),
        BatchCommand::Reversal(r) => prepare_reversal(app, caller, r),
    }
}

impl BatchCommand {
    /// The earlier transaction this command names by its reference (a hold, an original).
    fn names(&self) -> Option<&str> {
        match self {
            BatchCommand::Capture { hold_reference, .. }
            | BatchCommand::Void { hold_reference, .. } => Some(hold_reference),
            BatchCommand::Reversal(r) => Some(&r.original_reference),
            BatchCommand::Earn(_) | BatchCommand::Burn(_) | BatchCommand::Hold(_) => None,
        }
    }

    /// This command's own reference (its idempotency key).
    fn reference(&self) -> &str {
        match self {
            BatchCommand::Earn(r) => &r.reference,
            BatchCommand::Burn(r) => &r.reference,
            BatchCommand::Hold(r) => &r.reference,
            BatchCommand::Capture { reference, .. } | BatchCommand::Void { reference, .. } => {
                reference
            }
            BatchCommand::Reversal(r) => &r.reference,
        }
    }
}

/// The result of one batch command, as its single request would have answered.
fn batch_result(outcome: Result<TransactionView, OpError>) -> BatchResult {
    match outcome {
        Ok(view) => BatchResult {
            status: 200,
            transaction: Some(view),
            problem: None,
        },
        Err(e) => BatchResult {
            status: e.kind.status().as_u16(),
            transaction: None,
            problem: Some(e.problem()),
        },
    }
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
    if r.commands.is_empty() {
        return Err(OpError::new(
            Kind::InvalidRequest,
            "the batch has no commands",
        ));
    }
    if r.commands.len() > app.limits.batch_commands_max {
        return Err(OpError::new(
            Kind::PayloadTooLarge,
            format!(
                "the batch has {} commands; the limit is {}",
                r.commands.len(),
                app.limits.batch_commands_max
            ),
        ));
    }
    let mut results: Vec<Option<BatchResult>> = vec![None; r.commands.len()];
    let mut in_flight: Vec<(usize, Sent, Pending)> = Vec::new();
    let mut submitted: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, c) in r.commands.iter().enumerate() {
        if c.names().is_some_and(|n| submitted.contains(n)) {
            for (j, sent, pending) in in_flight.drain(..) {
                results[j] = Some(batch_result(finish(&app, &caller, sent, pending).await));
            }
        }
        let prepared = if c.names().is_some() {
            let (a, k, c) = (app.clone(), caller.clone(), c.clone());
            blocking(move || Ok(prepare_item(&a, &k, &c))).await?
        } else {
            prepare_item(&app, &caller, c)
        };
        match prepared.and_then(|p| submit(&app, p)) {
            Ok((sent, pending)) => in_flight.push((i, sent, pending)),
            Err(e) => results[i] = Some(batch_result(Err(e))),
        }
        submitted.insert(c.reference());
    }
    for (j, sent, pending) in in_flight {
        results[j] = Some(batch_result(finish(&app, &caller, sent, pending).await));
    }
    let results = results
        .into_iter()
        .map(|r| r.expect("every command has a result"))
        .collect();
    Ok(Json(BatchResponse { results }))
}

/// A transaction the partner posted, by its reference.
#[utoipa::path(get, path = "/v1/transactions/{reference}", tag = "partner",
    params(("reference" = String, Path, description = "The reference the transaction was posted under")),
    responses((status = 200, body = TransactionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn transaction(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(reference): Path<String>,
) -> JsonResult<TransactionView> {
    caller.require(KeyScope::Read)?;
    let view = blocking(move || {
        let tx = own_transaction(&app, &caller, &reference)?;
        let member = match tx.kind.member() {
            Some(m) => app
                .registry
                .reference_of(caller.partner, m)
                .map_err(registry_error)?,
            None => None,
        };
        Ok(TransactionView::of(&tx, member, false))
    })
    .await?;
    Ok(Json(view))
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
    caller.require(KeyScope::Read)?;
    check_name("branch", r.branch.as_deref())?;
    check_name("category", r.category.as_deref())?;
    let q = r.amount.parse()?;
    let priced = rate_table(&app, caller.partner)?.price(
        r.operation,
        q,
        &r.amount.unit,
        r.branch.as_deref(),
        r.category.as_deref(),
    )?;
    Ok(Json(QuoteView {
        operation: r.operation,
        points: priced.points.0,
        rate_version: priced.pricing.rate_version,
        points_per_unit: priced.pricing.points_per_unit.normalize().to_string(),
        rounding: match r.operation {
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
    caller.require(KeyScope::Read)?;
    Ok(Json(app.registry.rate_tables(caller.partner)))
}
