//! Errors as `application/problem+json` (RFC 9457): one stable `type` per kind of error, the
//! right status, a human `detail`, and `Retry-After` where waiting helps.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger::{LedgerError, Rejection};
use serde::Serialize;
use utoipa::ToSchema;

/// Every kind of error the gateway answers with. The slug is the stable part of `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MalformedRequest,
    InvalidRequest,
    InvalidAmount,
    UnknownCurrency,
    Unauthenticated,
    BadSignature,
    StaleTimestamp,
    ReplayedNonce,
    UnknownKey,
    KeyRevoked,
    ForbiddenScope,
    ForbiddenRole,
    NotFound,
    UnknownMember,
    UnknownTransaction,
    UnknownPartner,
    MethodNotAllowed,
    IdempotencyConflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    InsufficientPoints,
    HoldNotOpen,
    CaptureExceedsHold,
    NotReversible,
    ReversalExceedsOriginal,
    ClawbackRejected,
    MemberExists,
    ReferenceTaken,
    UnitNotPriced,
    NoPoints,
    RateLimited,
    Overloaded,
    Unavailable,
    Internal,
}

/// All kinds, for the documentation test that every kind is documented.
pub const ALL_KINDS: [Kind; 34] = [
    Kind::MalformedRequest,
    Kind::InvalidRequest,
    Kind::InvalidAmount,
    Kind::UnknownCurrency,
    Kind::Unauthenticated,
    Kind::BadSignature,
    Kind::StaleTimestamp,
    Kind::ReplayedNonce,
    Kind::UnknownKey,
    Kind::KeyRevoked,
    Kind::ForbiddenScope,
    Kind::ForbiddenRole,
    Kind::NotFound,
    Kind::UnknownMember,
    Kind::UnknownTransaction,
    Kind::UnknownPartner,
    Kind::MethodNotAllowed,
    Kind::IdempotencyConflict,
    Kind::PayloadTooLarge,
    Kind::UnsupportedMediaType,
    Kind::InsufficientPoints,
    Kind::HoldNotOpen,
    Kind::CaptureExceedsHold,
    Kind::NotReversible,
    Kind::ReversalExceedsOriginal,
    Kind::ClawbackRejected,
    Kind::MemberExists,
    Kind::ReferenceTaken,
    Kind::UnitNotPriced,
    Kind::NoPoints,
    Kind::RateLimited,
    Kind::Overloaded,
    Kind::Unavailable,
    Kind::Internal,
];

impl Kind {
    /// The stable slug; `type` is `/problems/{slug}`.
    pub fn slug(self) -> &'static str {
        self.describe().0
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.describe().1).expect("statuses are valid")
    }

    /// A short, fixed summary of the kind.
    pub fn title(self) -> &'static str {
        self.describe().2
    }

    fn describe(self) -> (&'static str, u16, &'static str) {
        use Kind::*;
        match self {
            MalformedRequest => (
                "malformed-request",
                400,
                "The request body is not valid JSON of the expected shape",
            ),
            InvalidRequest => (
                "invalid-request",
                400,
                "A field has a value the API does not accept",
            ),
            InvalidAmount => (
                "invalid-amount",
                400,
                "The amount is zero, negative, too precise or too large",
            ),
            UnknownCurrency => (
                "unknown-currency",
                400,
                "The currency is not an ISO 4217 code",
            ),
            Unauthenticated => ("unauthenticated", 401, "The request carries no credentials"),
            BadSignature => ("bad-signature", 401, "The request signature does not match"),
            StaleTimestamp => (
                "stale-timestamp",
                401,
                "The request timestamp is outside the accepted window",
            ),
            ReplayedNonce => ("replayed-nonce", 401, "The nonce was already used"),
            UnknownKey => ("unknown-key", 401, "The key id or token is not known"),
            KeyRevoked => ("key-revoked", 401, "The key was revoked"),
            ForbiddenScope => (
                "forbidden-scope",
                403,
                "The key lacks the scope this operation needs",
            ),
            ForbiddenRole => ("forbidden-role", 403, "The operator role may not do this"),
            NotFound => ("not-found", 404, "No such resource"),
            UnknownMember => ("unknown-member", 404, "No such member"),
            UnknownTransaction => ("unknown-transaction", 404, "No such transaction"),
            UnknownPartner => ("unknown-partner", 404, "No such partner"),
            MethodNotAllowed => (
                "method-not-allowed",
                405,
                "The resource does not support this method",
            ),
            IdempotencyConflict => (
                "idempotency-conflict",
                409,
                "The reference was already used for a different request",
            ),
            PayloadTooLarge => (
                "payload-too-large",
                413,
                "The request body or batch is over the limit",
            ),
            UnsupportedMediaType => (
                "unsupported-media-type",
                415,
                "The body must be application/json",
            ),
            InsufficientPoints => (
                "insufficient-points",
                422,
                "The member does not have enough available points",
            ),
            HoldNotOpen => (
                "hold-not-open",
                422,
                "The hold was already captured, voided or expired",
            ),
            CaptureExceedsHold => (
                "capture-exceeds-hold",
                422,
                "The capture is larger than the hold",
            ),
            NotReversible => (
                "not-reversible",
                422,
                "Only earns and burns can be reversed",
            ),
            ReversalExceedsOriginal => (
                "reversal-exceeds-original",
                422,
                "The reversal is larger than what is left of the original",
            ),
            ClawbackRejected => (
                "clawback-rejected",
                422,
                "The reversal would take the member below zero and the programme forbids it",
            ),
            MemberExists => ("member-exists", 422, "The member is already enrolled"),
            ReferenceTaken => (
                "reference-taken",
                422,
                "The member reference is already linked to another member",
            ),
            UnitNotPriced => (
                "unit-not-priced",
                422,
                "No rate table in force prices this unit",
            ),
            NoPoints => ("no-points", 422, "The amount converts to zero points"),
            RateLimited => (
                "rate-limited",
                429,
                "The partner's request rate is over its limit",
            ),
            Overloaded => ("overloaded", 503, "The ledger's queue is full"),
            Unavailable => ("unavailable", 503, "The ledger is not available"),
            Internal => (
                "internal",
                500,
                "An internal error; the request may not have been applied",
            ),
        }
    }
}

/// An error answer. Build with [`ApiError::new`]; handlers return `Result<_, ApiError>`.
#[derive(Debug)]
pub struct ApiError {
    /// What went wrong.
    pub kind: Kind,
    /// This occurrence, in words.
    pub detail: String,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after_s: Option<u64>,
}

/// The problem document (RFC 9457).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of error: `/problems/{slug}`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: Kind, detail: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            detail: detail.into(),
            retry_after_s: None,
        }
    }

    /// Adds a `Retry-After`.
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("/problems/{}", self.kind.slug()),
            title: self.kind.title().to_string(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.kind == Kind::Internal {
            tracing::error!(detail = %self.detail, "internal error");
        }
        let body = serde_json::to_vec(&self.problem()).expect("problems always encode");
        let mut res = (self.kind.status(), body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after_s {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res.extensions_mut().insert(self.kind);
        res
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        let kind = match &r {
            Rejection::PointsNotPositive { .. }
            | Rejection::PointsAboveLimit { .. }
            | Rejection::BonusOutOfRange { .. }
            | Rejection::AdjustmentOutOfRange { .. }
            | Rejection::BalanceOverflow { .. }
            | Rejection::NegativePrice
            | Rejection::PriceTooPrecise { .. } => Kind::InvalidAmount,
            Rejection::HoldTimeoutOutOfRange { .. }
            | Rejection::TransferToSelf
            | Rejection::AdjustmentReason { .. }
            | Rejection::AdjustmentOperator { .. }
            | Rejection::ReferenceLength { .. }
            | Rejection::NeedsOperator
            | Rejection::ScopeMismatch { .. } => Kind::InvalidRequest,
            Rejection::UnknownMember(_) => Kind::UnknownMember,
            Rejection::MemberExists(_) => Kind::MemberExists,
            Rejection::UnknownPartner(_) => Kind::UnknownPartner,
            Rejection::UnknownTransaction(_) => Kind::UnknownTransaction,
            Rejection::InsufficientPoints { .. } => Kind::InsufficientPoints,
            Rejection::HoldNotOpen { .. } => Kind::HoldNotOpen,
            Rejection::CaptureExceedsHold { .. } => Kind::CaptureExceedsHold,
            Rejection::NotReversible(_) => Kind::NotReversible,
            Rejection::ReversalExceedsOriginal { .. } => Kind::ReversalExceedsOriginal,
            Rejection::ClawbackRejected { .. } => Kind::ClawbackRejected,
            Rejection::IdempotencyConflict { .. } => Kind::IdempotencyConflict,
        };
        // Ledger-internal ids mean nothing to a partner; say what happened without them.
        let detail = match &r {
            Rejection::UnknownMember(_) => "no such member".to_string(),
            Rejection::UnknownTransaction(_) => "no such transaction".to_string(),
            Rejection::HoldNotOpen { .. } => "the hold is no longer open".to_string(),
            Rejection::IdempotencyConflict { .. } => {
                "the reference was already used for a different request".to_string()
            }
            other => other.to_string(),
        };
        ApiError::new(kind, detail)
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> ApiError {
        match e {
            LedgerError::Rejected(r) => r.into(),
            LedgerError::Overloaded => ApiError::new(
                Kind::Overloaded,
                "the ledger's queue is full; retry shortly",
            )
            .retry_after(1),
            e @ (LedgerError::Stopped { .. }
            | LedgerError::ShuttingDown
            | LedgerError::ReadBehind { .. }
            | LedgerError::Contended { .. }) => {
                ApiError::new(Kind::Unavailable, e.to_string()).retry_after(5)
            }
            other @ (LedgerError::Spawn { .. }
            | LedgerError::WrongWritePath { .. }
            | LedgerError::Storage(_)
            | LedgerError::Corrupt(_)) => ApiError::new(Kind::Internal, other.to_string()),
        }
    }
}

impl From<ledger::store::StoreError> for ApiError {
    fn from(e: ledger::store::StoreError) -> ApiError {
        ApiError::new(Kind::Internal, e.to_string())
    }
}
