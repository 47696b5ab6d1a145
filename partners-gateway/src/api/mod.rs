//! The HTTP API: request and response bodies, the JSON extractor, and the two surfaces
//! (`partner`: signed, under `/v1`; `operator`: bearer tokens, under `/admin/v1`).

pub mod engagement;
pub mod finance;
pub mod households;
pub mod lifecycle;
pub mod notify;
pub mod operator;
pub mod partner;
pub mod policies;
pub mod problem;
pub mod profiles;
pub mod programme;
pub mod segments;
pub mod signature;
pub mod state;
pub mod webhooks;
pub mod whole;

use crate::ops::error::{Kind, OpError};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use ledger::{AccountId, Transaction, TxKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A JSON body whose every failure answers as a problem: 415 without a JSON content type,
/// 413 over the body limit, 400 when it does not parse into `T`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = OpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(OpError::new(
                Kind::UnsupportedMediaType,
                "send the body as JSON with content-type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    OpError::new(Kind::PayloadTooLarge, "the request body is over the limit")
                } else {
                    OpError::new(Kind::MalformedRequest, e.body_text())
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A path parameter whose parse failure answers as a problem (400 `invalid-request`), not as
/// axum's plain-text rejection.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = OpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| OpError::new(Kind::InvalidRequest, e.body_text()))
    }
}

/// A query string whose parse failure answers as a problem (400 `invalid-request`), not as
/// axum's plain-text rejection.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Query<T> {
    type Rejection = OpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| OpError::new(Kind::InvalidRequest, e.body_text()))
    }
}

/// Parses a JSON body, naming the field and position of the first problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, OpError> {
    serde_json::from_slice(bytes)
        .map_err(|e| OpError::new(Kind::MalformedRequest, format!("invalid JSON body: {e}")))
}

/// JSON answers.
pub type JsonResult<T> = Result<axum::Json<T>, OpError>;

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
    /// The member, by the partner's own reference (in partner answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The member's coalition id (in operator answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
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
    /// For an earn: the partner's base points, and the campaign bonuses granted (a reversal:
    /// taken back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bonuses: Vec<BonusView>,
    /// The member's tier change this transaction made (an upgrade on an earn, a period-end
    /// review, an operator's override or its end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierChangeView>,
    /// True when this answers a retry of a request already applied.
    pub replayed: bool,
}

/// A tier change: from and to which level, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TierChangeView {
    /// Level before.
    pub from: u8,
    /// Level after (the same when a review kept it).
    pub to: u8,
    /// `qualified`, `review`, `override` or `override_ended`.
    pub why: String,
    /// The operator's reason, for an override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// An override's end (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
}

impl TierChangeView {
    fn of(tx: &Transaction) -> Option<TierChangeView> {
        use ledger::core::tiers::TierWhy;
        let c = match &tx.kind {
            TxKind::Earn { tier, .. } => tier.as_ref().and_then(|t| t.1.as_ref()),
            TxKind::Expire { tier, .. } => tier.as_deref(),
            TxKind::TierChanged { change, .. } => Some(change),
            _ => None,
        }?;
        let (why, reason) = match &c.why {
            TierWhy::Qualified => ("qualified", None),
            TierWhy::Review => ("review", None),
            TierWhy::Override(r) => ("override", Some(r.clone())),
            TierWhy::OverrideEnded => ("override_ended", None),
        };
        Some(TierChangeView {
            from: c.from,
            to: c.to,
            why: why.to_string(),
            reason,
            until_ms: c.override_until.map(|t| t.0),
        })
    }
}

/// A campaign's bonus on an earn, as granted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct BonusView {
    /// The campaign.
    pub campaign_id: u32,
    /// Its version that applied.
    pub version: u32,
    /// Points the campaign's effect gave, before limits (earns).
    pub computed: i64,
    /// Points granted (earns) or taken back (reversals).
    pub points: i64,
    /// What cut the bonus: `condition`, `member_day`, `member_month`, `member_campaign`,
    /// `budget` or `budget_guard`.
    pub limited_by: Option<String>,
    /// The partner that paid for the points; absent: the programme.
    pub funded_by: Option<u32>,
}

impl BonusView {
    fn of(tx: &Transaction) -> Vec<BonusView> {
        let funded = |f: ledger::Funder| match f {
            ledger::Funder::Programme => None,
            ledger::Funder::Partner(p) => Some(p.0),
        };
        match &tx.kind {
            TxKind::Earn { awards, .. } => awards
                .iter()
                .map(|g| BonusView {
                    campaign_id: g.campaign.0,
                    version: g.version,
                    computed: g.asked.0,
                    points: g.points.0,
                    limited_by: g.limited.map(|l| {
                        match l {
                            ledger::Limited::Condition => "condition",
                            ledger::Limited::MemberDay => "member_day",
                            ledger::Limited::MemberMonth => "member_month",
                            ledger::Limited::MemberTotal => "member_campaign",
                            ledger::Limited::Budget => "budget",
                            ledger::Limited::Guard => "budget_guard",
                        }
                        .to_string()
                    }),
                    funded_by: funded(g.funder),
                })
                .collect(),
            TxKind::Reversal { awards, .. } => awards
                .iter()
                .map(|b| BonusView {
                    campaign_id: b.campaign.0,
                    version: b.version,
                    computed: b.points.0,
                    points: b.points.0,
                    limited_by: None,
                    funded_by: funded(b.funder),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl TransactionView {
    /// The view of `tx` for a caller who names the member as `who` (if at all).
    pub fn of(tx: &Transaction, who: Option<Who>, replayed: bool) -> TransactionView {
        let (member, member_id) = who.map_or((None, None), Who::split);
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
            member_id,
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
            bonuses: BonusView::of(tx),
            tier: TierChangeView::of(tx),
            replayed,
        }
    }
}

/// A member's points.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct BalanceView {
    /// The member, by the partner's own reference (in partner answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The member's coalition id (in operator answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
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
    /// Kind of transaction: `earn`, `burn`, `hold`, `capture`, `void` (by the partner),
    /// `expiry` (a hold voided by the ledger at its timeout), `reversal`, `transfer`,
    /// `adjustment`, `enrol`.
    pub kind: String,
    /// Change to posted points.
    pub points: i64,
    /// Change to held (pending) points: a hold reserves them, a capture or void releases them.
    pub held: i64,
    /// Posted points after it.
    pub balance_after: i64,
    /// Held points after it.
    pub held_after: i64,
}

impl From<crate::ops::statement::Line> for StatementLine {
    fn from(l: crate::ops::statement::Line) -> Self {
        StatementLine {
            transaction_id: l.tx.0.to_string(),
            committed_at_ms: l.at.0,
            kind: l.kind,
            points: l.points,
            held: l.held,
            balance_after: l.balance_after,
            held_after: l.held_after,
        }
    }
}

/// A page of a statement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StatementView {
    /// The member, by the partner's own reference (in partner answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The member's coalition id (in operator answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
    /// Lines, newest first.
    pub entries: Vec<StatementLine>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// How an answer names its member: partners by their own reference, operators by the
/// coalition id. (Coalition ids are numbers wherever they appear; references are strings.)
#[derive(Debug, Clone)]
pub enum Who {
    /// A partner's reference.
    Reference(String),
    /// A coalition member id.
    Id(u64),
}

impl Who {
    fn split(self) -> (Option<String>, Option<u64>) {
        match self {
            Who::Reference(r) => (Some(r), None),
            Who::Id(id) => (None, Some(id)),
        }
    }
}

impl BalanceView {
    /// The view of `b` for a caller who names the member as `who`.
    pub fn of(who: Who, b: ledger::MemberBalance) -> BalanceView {
        let (member, member_id) = who.split();
        BalanceView {
            member,
            member_id,
            posted: b.posted.0,
            pending: b.pending.0,
            available: b.available.0,
        }
    }
}

impl StatementView {
    /// A page of `lines` for a caller who names the member as `who`.
    pub fn of(
        who: Who,
        lines: Vec<crate::ops::statement::Line>,
        next: Option<ledger::TxId>,
    ) -> Self {
        let (member, member_id) = who.split();
        StatementView {
            member,
            member_id,
            entries: lines.into_iter().map(StatementLine::from).collect(),
            next: next.map(|t| t.0.to_string()),
        }
    }
}

/// Query of statement endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StatementQuery {
    /// Continue with the transactions older than this one (the previous page's `next`).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 18_446_744_073_709_551_615_u64)]
    pub before: Option<u64>,
    /// Lines per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// Lines on a statement page when the query names no `limit`.
pub const STATEMENT_LIMIT_DEFAULT: usize = 100;

impl StatementQuery {
    /// The page size asked for: 1 to [`ledger::STATEMENT_PAGE_MAX`], or the default.
    pub fn limit(&self) -> Result<usize, OpError> {
        match self.limit {
            None => Ok(STATEMENT_LIMIT_DEFAULT),
            Some(n) if (1..=ledger::STATEMENT_PAGE_MAX as u64).contains(&n) => Ok(n as usize),
            Some(n) => Err(OpError::new(
                Kind::InvalidRequest,
                format!("limit must be 1 to {}, got {n}", ledger::STATEMENT_PAGE_MAX),
            )),
        }
    }

    /// The `before` cursor, if any.
    pub fn before(&self) -> Result<Option<ledger::TxId>, OpError> {
        Ok(self.before.map(ledger::TxId))
    }
}

/// Runs a blocking ledger read off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpError::new(Kind::Internal, format!("read task failed: {e}")))?
}
