//! Errors as `application/problem+json` (RFC 9457): one stable `type` per kind of error, the
//! right status, a human `detail`, and `Retry-After` where waiting helps. The kinds themselves
//! are the operations' ([`crate::ops::error`]); this file says how HTTP shows them.

use crate::ops::error::{Kind, OpError, ALL_KINDS};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Slug (the stable part of `type`), status and title of every kind, in the order of
/// [`Kind`]'s variants (a test checks the order against [`ALL_KINDS`]).
const DESCRIPTIONS: [(Kind, &str, u16, &str); ALL_KINDS.len()] = [
    (
        Kind::MalformedRequest,
        "malformed-request",
        400,
        "The request body is not valid JSON of the expected shape",
    ),
    (
        Kind::InvalidRequest,
        "invalid-request",
        400,
        "A field has a value the API does not accept",
    ),
    (
        Kind::InvalidAmount,
        "invalid-amount",
        400,
        "The amount is zero, negative, not a plain decimal or too large",
    ),
    (
        Kind::UnknownCurrency,
        "unknown-currency",
        422,
        "The currency is not an ISO 4217 code",
    ),
    (
        Kind::AmountTooPrecise,
        "amount-too-precise",
        422,
        "The amount has more decimals than its currency has minor units",
    ),
    (
        Kind::Unauthenticated,
        "unauthenticated",
        401,
        "The request carries no credentials",
    ),
    (
        Kind::BadSignature,
        "bad-signature",
        401,
        "The request signature does not match",
    ),
    (
        Kind::StaleTimestamp,
        "stale-timestamp",
        401,
        "The request timestamp is outside the accepted window",
    ),
    (
        Kind::ReplayedNonce,
        "replayed-nonce",
        401,
        "The nonce was already used",
    ),
    (
        Kind::UnknownKey,
        "unknown-key",
        401,
        "The key id or token is not known",
    ),
    (Kind::KeyRevoked, "key-revoked", 401, "The key was revoked"),
    (
        Kind::ForbiddenScope,
        "forbidden-scope",
        403,
        "The key lacks the scope this operation needs",
    ),
    (
        Kind::ForbiddenRole,
        "forbidden-role",
        403,
        "The operator role may not do this",
    ),
    (Kind::NotFound, "not-found", 404, "No such resource"),
    (Kind::UnknownMember, "unknown-member", 404, "No such member"),
    (
        Kind::UnknownTransaction,
        "unknown-transaction",
        404,
        "No such transaction",
    ),
    (
        Kind::UnknownPartner,
        "unknown-partner",
        404,
        "No such partner",
    ),
    (
        Kind::MethodNotAllowed,
        "method-not-allowed",
        405,
        "The resource does not support this method",
    ),
    (
        Kind::IdempotencyConflict,
        "idempotency-conflict",
        409,
        "The reference was already used for a different request",
    ),
    (
        Kind::PayloadTooLarge,
        "payload-too-large",
        413,
        "The request body or batch is over the limit",
    ),
    (
        Kind::UnsupportedMediaType,
        "unsupported-media-type",
        415,
        "The body must be application/json",
    ),
    (
        Kind::InsufficientPoints,
        "insufficient-points",
        422,
        "The member does not have enough available points",
    ),
    (
        Kind::HoldNotOpen,
        "hold-not-open",
        422,
        "The hold was already captured, voided or expired",
    ),
    (
        Kind::CaptureExceedsHold,
        "capture-exceeds-hold",
        422,
        "The capture is larger than the hold",
    ),
    (
        Kind::NotReversible,
        "not-reversible",
        422,
        "Only earns and burns can be reversed",
    ),
    (
        Kind::ReversalExceedsOriginal,
        "reversal-exceeds-original",
        422,
        "The reversal is larger than what is left of the original",
    ),
    (
        Kind::ClawbackRejected,
        "clawback-rejected",
        422,
        "The reversal would take the member below zero and the programme forbids it",
    ),
    (
        Kind::MemberExists,
        "member-exists",
        422,
        "The member is already enrolled",
    ),
    (
        Kind::ReferenceTaken,
        "reference-taken",
        422,
        "The member reference is already linked to another member",
    ),
    (
        Kind::UnitNotPriced,
        "unit-not-priced",
        422,
        "No rate table in force prices this unit",
    ),
    (
        Kind::RetroactiveRates,
        "rates-in-the-past",
        422,
        "A rate table cannot take effect in the past",
    ),
    (
        Kind::NoPoints,
        "no-points",
        422,
        "The amount converts to zero points",
    ),
    (
        Kind::InvalidRule,
        "rule-invalid",
        422,
        "The campaign, guard or engagement definition cannot run as given",
    ),
    (
        Kind::BudgetCeiling,
        "budget-ceiling",
        422,
        "The earn would take the points budget above its ceiling",
    ),
    (
        Kind::TransferLimit,
        "transfer-limit",
        422,
        "The transfer is outside the programme's transfer limits",
    ),
    (
        Kind::TransferToSelf,
        "transfer-to-self",
        422,
        "A transfer needs two different members",
    ),
    (
        Kind::PoolRefused,
        "pool-refused",
        422,
        "The household pool cannot change so",
    ),
    (
        Kind::PeriodRefused,
        "period-refused",
        422,
        "The period cannot be closed so",
    ),
    (
        Kind::FileInvalid,
        "file-invalid",
        422,
        "The file cannot be read",
    ),
    (
        Kind::WebhookRefused,
        "webhook-refused",
        422,
        "The webhook cannot be set up so",
    ),
    (
        Kind::ProfileRefused,
        "profile-invalid",
        422,
        "A profile field has a value the programme does not accept",
    ),
    (
        Kind::MemberNotActive,
        "member-not-active",
        422,
        "The member is suspended, closed or merged, and neither earns nor burns",
    ),
    (
        Kind::LifecycleRefused,
        "lifecycle-refused",
        422,
        "The member's standing cannot change so, or the merge is not possible",
    ),
    (
        Kind::UnknownCampaign,
        "unknown-campaign",
        404,
        "No such campaign",
    ),
    (
        Kind::OutOfStock,
        "out-of-stock",
        422,
        "Every unit of the reward has been issued",
    ),
    (
        Kind::RewardRefused,
        "reward-refused",
        422,
        "The reward is not offered to this member now (limit, tier, segment, dates)",
    ),
    (
        Kind::VoucherRefused,
        "voucher-refused",
        409,
        "The voucher was already redeemed, has expired or was returned",
    ),
    (
        Kind::CodeRefused,
        "code-refused",
        422,
        "The discount code is not valid for this member now (dates, uses, limit)",
    ),
    (
        Kind::ReferralRefused,
        "referral-refused",
        422,
        "The referral is not allowed (self, household, cap, window)",
    ),
    (
        Kind::DrawRefused,
        "draw-refused",
        409,
        "The draw is not in a state that allows this, or the seed does not match its commitment",
    ),
    (
        Kind::SurveyRefused,
        "survey-refused",
        422,
        "The survey is not open to this member, was answered already, or an answer is out of range",
    ),
    (
        Kind::ClaimRefused,
        "claim-refused",
        422,
        "The claim is out of time, or cannot change so from its status",
    ),
    (
        Kind::RateLimited,
        "rate-limited",
        429,
        "The partner's request rate is over its limit",
    ),
    (
        Kind::Overloaded,
        "overloaded",
        503,
        "The ledger's queue is full",
    ),
    (
        Kind::Unavailable,
        "unavailable",
        503,
        "The ledger is not available",
    ),
    (
        Kind::Internal,
        "internal",
        500,
        "An internal error; the request may not have been applied",
    ),
];

impl Kind {
    /// The stable slug of the problem type (`/problems/{slug}`).
    pub fn slug(self) -> &'static str {
        self.describe().1
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.describe().2).expect("valid status")
    }

    /// A short summary.
    pub fn title(self) -> &'static str {
        self.describe().3
    }

    fn describe(self) -> &'static (Kind, &'static str, u16, &'static str) {
        let d = &DESCRIPTIONS[self as usize];
        debug_assert_eq!(d.0, self, "DESCRIPTIONS is in the order of Kind");
        d
    }
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

impl OpError {
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

impl IntoResponse for OpError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_description_in_order() {
        for (i, k) in ALL_KINDS.iter().enumerate() {
            assert_eq!(DESCRIPTIONS[i].0, *k);
            assert_eq!(*k as usize, i);
        }
        let mut slugs: Vec<_> = DESCRIPTIONS.iter().map(|d| d.1).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ALL_KINDS.len(), "slugs are unique");
    }

    #[test]
    fn contention_timeouts_unknown_results_and_hiccups_answer_503_with_retry_after_never_500() {
        use ledger::store::StoreError as S;
        let transient = [
            S::Conflict("not_committed".into()),
            S::Timeout("transaction_timed_out".into()),
            S::MaybeCommitted("commit_unknown_result".into()),
            S::Unavailable("process_behind".into()),
        ];
        for e in transient {
            for err in [
                OpError::from(ledger::LedgerError::Storage(e.clone())),
                OpError::from(e.clone()),
            ] {
                assert_eq!(err.kind.status(), StatusCode::SERVICE_UNAVAILABLE, "{e}");
                assert!(err.retry_after_s.is_some(), "{e}");
            }
        }
        let contended = OpError::from(ledger::LedgerError::Contended {
            why: "20 attempts".into(),
        });
        assert_eq!(contended.kind.status(), StatusCode::SERVICE_UNAVAILABLE);
        // A record over the limit is a bug, not something to retry.
        let bug = OpError::from(ledger::LedgerError::Storage(S::TooLarge("value".into())));
        assert_eq!(bug.kind.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
