//! The HTTP API: request and response bodies, the JSON extractor, and the two surfaces
//! (`partner`: signed, under `/v1`; `operator`: bearer tokens, under `/admin/v1`).

pub mod operator;
pub mod partner;

use crate::problem::{ApiError, Kind};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use ledger::{AccountId, Transaction, TxKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A JSON body whose every failure answers as a problem: 415 without a JSON content type,
/// 413 over the body limit, 400 when it does not parse into `T`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(ApiError::new(
                Kind::UnsupportedMediaType,
                "send the body as JSON with content-type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(Kind::PayloadTooLarge, "the request body is over the limit")
                } else {
                    ApiError::new(Kind::MalformedRequest, e.body_text())
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, naming the field and position of the first problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(Kind::MalformedRequest, format!("invalid JSON body: {e}")))
}

/// JSON answers.
pub type JsonResult<T> = Result<axum::Json<T>, ApiError>;

/// How a transaction's points were priced.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PricingView {
    /// Rate table version used.
    pub rate_version: u32,
    /// Quantity sent, as a decimal string.
    pub quantity: String,
    /// Its unit.
    pub unit: String,
    /// Points per unit applied.
    pub points_per_unit: String,
    /// Branch override applied, if any.
    pub branch: Option<String>,
    /// Category override applied, if any.
    pub category: Option<String>,
}

/// A committed transaction, as a partner or operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TransactionView {
    /// Ledger transaction id (decimal string).
    pub transaction_id: String,
    /// The reference (idempotency key) it was posted under.
    pub reference: String,
    /// `earn`, `burn`, `hold`, `capture`, `void`, `reversal`, `adjustment`, ...
    pub kind: String,
    /// The member, by the caller's reference for them (partners) or coalition id (operators).
    pub member: Option<String>,
    /// Change to the member's posted points (negative for burns); for a hold or void, the
    /// points reserved or released.
    pub points: i64,
    /// The member's posted points after this transaction.
    pub member_balance_after: Option<i64>,
    /// Commit time, ms since the Unix epoch.
    pub committed_at_ms: i64,
    /// Conversion record, when a rate table priced the points.
    pub pricing: Option<PricingView>,
    /// For a hold: when it voids itself, ms since the Unix epoch.
    pub hold_expires_at_ms: Option<i64>,
    /// True when this answers a retry of a request already applied.
    pub replayed: bool,
}

impl TransactionView {
    /// The view of `tx` for a caller who knows the member as `member`.
    pub fn of(tx: &Transaction, member: Option<String>, replayed: bool) -> TransactionView {
        let (kind, _) = ledger::describe(&tx.kind);
        let subject = tx.kind.member();
        let points = match &tx.kind {
            TxKind::Hold { points, .. } | TxKind::Void { points, .. } => points.0,
            _ => subject.map_or(0, |m| tx.points_to(AccountId::Member(m)).0),
        };
        let hold_expires_at_ms = match &tx.kind {
            TxKind::Hold { expires_at, .. } => Some(expires_at.0),
            _ => None,
        };
        TransactionView {
            transaction_id: tx.id.0.to_string(),
            reference: tx.key.reference.clone(),
            kind: kind.to_string(),
            member,
            points,
            member_balance_after: subject.and_then(|m| {
                tx.member_balances
                    .iter()
                    .find(|a| a.member == m)
                    .map(|a| a.posted.0)
            }),
            committed_at_ms: tx.at.0,
            pricing: tx.pricing.as_ref().map(|p| PricingView {
                rate_version: p.rate_version,
                quantity: p.quantity.to_string(),
                unit: p.unit.clone(),
                points_per_unit: p.points_per_unit.normalize().to_string(),
                branch: p.branch.clone(),
                category: p.category.clone(),
            }),
            hold_expires_at_ms,
            replayed,
        }
    }
}

/// A member's points.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct BalanceView {
    /// The member, as the caller knows them.
    pub member: String,
    /// Sum of postings.
    pub posted: i64,
    /// Reserved by open holds.
    pub pending: i64,
    /// Posted minus pending: what can be burned now.
    pub available: i64,
}

/// One line of a statement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StatementLine {
    /// Ledger transaction id.
    pub transaction_id: String,
    /// Commit time, ms since the Unix epoch.
    pub committed_at_ms: i64,
    /// Kind of transaction.
    pub kind: String,
    /// Change to posted points.
    pub points: i64,
    /// Posted points after it.
    pub balance_after: i64,
}

/// A page of a statement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StatementView {
    /// The member, as the caller knows them.
    pub member: String,
    /// Lines in commit order.
    pub entries: Vec<StatementLine>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

impl BalanceView {
    /// The view of `b` for a caller who knows the member as `member`.
    pub fn of(member: String, b: ledger::MemberBalance) -> BalanceView {
        BalanceView {
            member,
            posted: b.posted.0,
            pending: b.pending.0,
            available: b.available.0,
        }
    }
}

impl StatementView {
    /// The lines of `page` that `keep` accepts, for a caller who knows the member as `member`.
    pub fn of(
        member: String,
        page: &ledger::StatementPage,
        keep: impl Fn(&ledger::codec::StatementEntry) -> bool,
    ) -> StatementView {
        StatementView {
            member,
            entries: page
                .entries
                .iter()
                .filter(|e| keep(e))
                .map(|e| StatementLine {
                    transaction_id: e.tx.0.to_string(),
                    committed_at_ms: e.at.0,
                    kind: e.kind.clone(),
                    points: e.points.0,
                    balance_after: e.balance_after.0,
                })
                .collect(),
            next: page.next.map(|t| t.0.to_string()),
        }
    }
}

/// Query of statement endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StatementQuery {
    /// Continue with the transactions older than this one (the previous page's `next`).
    pub before: Option<String>,
    /// Lines per page, 1 to 1000 (default 100).
    pub limit: Option<usize>,
}

/// Parses a transaction id sent back by a client.
pub fn parse_tx_id(s: &str) -> Result<ledger::TxId, ApiError> {
    s.parse::<u64>().map(ledger::TxId).map_err(|_| {
        ApiError::new(
            Kind::InvalidRequest,
            format!("{s:?} is not a transaction id"),
        )
    })
}

/// Checks a reference (idempotency key) is 1 to 128 bytes of printable ASCII.
pub fn check_reference(field: &str, r: &str) -> Result<(), ApiError> {
    let ok = !r.is_empty()
        && r.len() <= ledger::IdemKey::REFERENCE_LEN_MAX
        && r.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            Kind::InvalidRequest,
            format!(
                "{field} must be 1 to {} printable ASCII characters without spaces",
                ledger::IdemKey::REFERENCE_LEN_MAX
            ),
        ))
    }
}

/// Checks a positive points amount.
pub fn check_points(field: &str, p: i64) -> Result<ledger::Points, ApiError> {
    if p > 0 {
        Ok(ledger::Points(p))
    } else {
        Err(ApiError::new(
            Kind::InvalidAmount,
            format!("{field} must be a positive whole number of points, got {p}"),
        ))
    }
}

/// Runs a blocking ledger read off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(Kind::Internal, format!("read task failed: {e}")))?
}
