//! Why an operation failed, with no HTTP in it: one [`Kind`] per cause, mapped from the
//! ledger's rejections and errors here, and to problem types and statuses in `api/problem.rs`.

use ledger::{LedgerError, Rejection};

/// Every kind of error the gateway answers with. The slug is the stable part of `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MalformedRequest,
    InvalidRequest,
    InvalidAmount,
    UnknownCurrency,
    AmountTooPrecise,
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
    RetroactiveRates,
    NoPoints,
    InvalidRule,
    BudgetCeiling,
    TransferLimit,
    TransferToSelf,
    PoolRefused,
    PeriodRefused,
    FileInvalid,
    WebhookRefused,
    ProfileRefused,
    MemberNotActive,
    LifecycleRefused,
    UnknownCampaign,
    OutOfStock,
    RewardRefused,
    VoucherRefused,
    CodeRefused,
    ReferralRefused,
    DrawRefused,
    SurveyRefused,
    ClaimRefused,
    RateLimited,
    Overloaded,
    Unavailable,
    Internal,
}

/// All kinds, for the documentation test that every kind is documented.
pub const ALL_KINDS: [Kind; 56] = [
    Kind::MalformedRequest,
    Kind::InvalidRequest,
    Kind::InvalidAmount,
    Kind::UnknownCurrency,
    Kind::AmountTooPrecise,
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
    Kind::RetroactiveRates,
    Kind::NoPoints,
    Kind::InvalidRule,
    Kind::BudgetCeiling,
    Kind::TransferLimit,
    Kind::TransferToSelf,
    Kind::PoolRefused,
    Kind::PeriodRefused,
    Kind::FileInvalid,
    Kind::WebhookRefused,
    Kind::ProfileRefused,
    Kind::MemberNotActive,
    Kind::LifecycleRefused,
    Kind::UnknownCampaign,
    Kind::OutOfStock,
    Kind::RewardRefused,
    Kind::VoucherRefused,
    Kind::CodeRefused,
    Kind::ReferralRefused,
    Kind::DrawRefused,
    Kind::SurveyRefused,
    Kind::ClaimRefused,
    Kind::RateLimited,
    Kind::Overloaded,
    Kind::Unavailable,
    Kind::Internal,
];

/// Why an operation failed: its kind (one per cause; the HTTP API maps each to a status and a
/// stable problem type, see `api/problem.rs`), this occurrence in words, and how long to wait
/// before a retry where waiting helps.
#[derive(Debug)]
pub struct OpError {
    /// What went wrong.
    pub kind: Kind,
    /// This occurrence, in words.
    pub detail: String,
    /// Seconds to wait before retrying (overload, rate limits, unavailability).
    pub retry_after_s: Option<u64>,
}

impl OpError {
    /// An error of `kind`.
    pub fn new(kind: Kind, detail: impl Into<String>) -> OpError {
        OpError {
            kind,
            detail: detail.into(),
            retry_after_s: None,
        }
    }

    /// Adds a `Retry-After`.
    pub fn retry_after(mut self, seconds: u64) -> OpError {
        self.retry_after_s = Some(seconds);
        self
    }

    /// Logs the failure of a background round (`round`: "notification round", "webhook
    /// round"...). The ledger's queue being full is back-pressure, as during a bulk load: the
    /// next round starts again where this one stopped, so it is noted at debug level. Anything
    /// else is a warning.
    pub fn log_round(&self, round: &'static str) {
        if self.kind == Kind::Overloaded {
            tracing::debug!(round, error = %self.detail, "background round deferred: the ledger is busy");
        } else {
            tracing::warn!(round, error = %self.detail, "background round failed");
        }
    }
}

impl From<Rejection> for OpError {
    fn from(r: Rejection) -> OpError {
        let kind = match &r {
            Rejection::PointsNotPositive { .. }
            | Rejection::PointsAboveLimit { .. }
            | Rejection::BonusOutOfRange { .. }
            | Rejection::AdjustmentOutOfRange { .. }
            | Rejection::BalanceOverflow { .. }
            | Rejection::NegativePrice
            | Rejection::PriceTooPrecise { .. } => Kind::InvalidAmount,
            Rejection::HoldTimeoutOutOfRange { .. }
            | Rejection::AdjustmentReason { .. }
            | Rejection::AdjustmentOperator { .. }
            | Rejection::ReferenceLength { .. }
            | Rejection::NeedsOperator
            | Rejection::NeedsSystem
            | Rejection::TransferConsent { .. }
            | Rejection::ChangeNoteTooLong { .. }
            | Rejection::CorrectsLater { .. }
            | Rejection::PeriodName { .. }
            | Rejection::NoteMissing
            | Rejection::ScopeMismatch { .. } => Kind::InvalidRequest,
            Rejection::MemberNotActive { .. } | Rejection::MemberMerged { .. } => {
                Kind::MemberNotActive
            }
            Rejection::StandingChange { .. }
            | Rejection::OpenHolds { .. }
            | Rejection::MergeRefused(_) => Kind::LifecycleRefused,
            Rejection::ExpiryPolicyInvalid(_)
            | Rejection::TransferPolicyInvalid(_)
            | Rejection::TierPolicyInvalid(_)
            | Rejection::NoTierPolicy
            | Rejection::TierOutOfRange { .. }
            | Rejection::TierOverrideInPast => Kind::InvalidRule,
            Rejection::TransferLimit { .. } => Kind::TransferLimit,
            Rejection::TransferToSelf => Kind::TransferToSelf,
            Rejection::PoolWithSelf
            | Rejection::PoolTaken(_)
            | Rejection::PoolOwnerIsMember(_)
            | Rejection::PoolFull { .. }
            | Rejection::NotInPool(_) => Kind::PoolRefused,
            Rejection::PeriodNotOver { .. } | Rejection::PeriodClosed { .. } => Kind::PeriodRefused,
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
            Rejection::AwardsMalformed { .. }
            | Rejection::AwardOutOfRange { .. }
            | Rejection::GuardMalformed(_) => Kind::InvalidRule,
            Rejection::BudgetCeiling { .. } => Kind::BudgetCeiling,
            Rejection::OutOfStock { .. } => Kind::OutOfStock,
            Rejection::RewardLimit { .. } | Rejection::RewardNotEligible { .. } => {
                Kind::RewardRefused
            }
            Rejection::GrantNote { .. } => Kind::InvalidRequest,
        };
        // Ledger-internal ids mean nothing to a partner; say what happened without them.
        let detail = match &r {
            Rejection::UnknownMember(_) => "no such member".to_string(),
            Rejection::PoolTaken(_) => "the member is already in a household pool".to_string(),
            Rejection::PoolOwnerIsMember(_) => {
                "the owner belongs to another household pool".to_string()
            }
            Rejection::NotInPool(_) => "the member is in no household pool".to_string(),
            Rejection::MemberNotActive { standing, .. } => {
                format!("the member is {standing}: it neither earns nor burns")
            }
            Rejection::MemberMerged { .. } => {
                "the member was merged into another; post to the surviving member".to_string()
            }
            Rejection::OpenHolds { held, .. } => format!(
                "the member has {} points in open holds; capture or void them first",
                held.0
            ),
            Rejection::UnknownTransaction(_) => "no such transaction".to_string(),
            Rejection::HoldNotOpen { .. } => "the hold is no longer open".to_string(),
            Rejection::BudgetCeiling { key } => format!(
                "the earn would take the value of points issued above the {} budget ceiling for {}",
                match key.scope {
                    ledger::GuardScope::Programme => "programme's".to_string(),
                    ledger::GuardScope::Partner(p) => format!("partner {}'s", p.0),
                },
                crate::programme::guard::period_label(key.period)
            ),
            Rejection::IdempotencyConflict { .. } => {
                "the reference was already used for a different request".to_string()
            }
            other => other.to_string(),
        };
        OpError::new(kind, detail)
    }
}

impl From<LedgerError> for OpError {
    fn from(e: LedgerError) -> OpError {
        match e {
            LedgerError::Rejected(r) => r.into(),
            LedgerError::Overloaded => OpError::new(
                Kind::Overloaded,
                "the ledger's queue is full; retry shortly",
            )
            .retry_after(1),
            e @ (LedgerError::Stopped { .. }
            | LedgerError::ShuttingDown
            | LedgerError::ReadBehind { .. }
            | LedgerError::Contended { .. }) => {
                OpError::new(Kind::Unavailable, e.to_string()).retry_after(5)
            }
            // Contention, a timeout, an unknown commit result, a cluster hiccup: the same
            // request with the same reference is safe to send again.
            LedgerError::Storage(e) if e.is_transient() => {
                OpError::new(Kind::Unavailable, e.to_string()).retry_after(1)
            }
            other @ (LedgerError::Spawn { .. }
            | LedgerError::WrongWritePath { .. }
            | LedgerError::Storage(_)
            | LedgerError::Corrupt(_)) => OpError::new(Kind::Internal, other.to_string()),
        }
    }
}

impl From<ledger::store::StoreError> for OpError {
    fn from(e: ledger::store::StoreError) -> OpError {
        if e.is_transient() {
            return OpError::new(Kind::Unavailable, e.to_string()).retry_after(1);
        }
        OpError::new(Kind::Internal, e.to_string())
    }
}

impl From<crate::programme::rates::PriceError> for OpError {
    fn from(e: crate::programme::rates::PriceError) -> OpError {
        use crate::programme::rates::PriceError as P;
        let kind = match &e {
            P::NotPlainDecimal { .. } | P::NotDecimal { .. } | P::PointsOutOfRange { .. } => {
                Kind::InvalidAmount
            }
            P::TooPrecise { .. } => Kind::AmountTooPrecise,
            P::UnknownCurrency { .. } => Kind::UnknownCurrency,
            P::BadUnit { .. } | P::OverrideName { .. } | P::RateNotPositive { .. } => {
                Kind::InvalidRequest
            }
            P::OtherUnit { .. } | P::BurnsNotPriced { .. } => Kind::UnitNotPriced,
            P::LessThanOnePoint { .. } => Kind::NoPoints,
        };
        OpError::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What a subscriber wrote, lines without colour.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(e: &OpError) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || e.log_round("notification round"));
        let text = out.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn a_busy_ledger_defers_a_round_without_a_warning() {
        let busy = logged(&LedgerError::Overloaded.into());
        assert!(busy.contains("DEBUG"), "{busy}");
        assert!(!busy.contains("WARN"), "{busy}");
        assert!(busy.contains("deferred: the ledger is busy"), "{busy}");
        assert!(busy.contains("round=\"notification round\""), "{busy}");

        let failed = logged(&OpError::new(Kind::Internal, "the store is gone"));
        assert!(failed.contains("WARN"), "{failed}");
        assert!(failed.contains("background round failed"), "{failed}");
        assert!(failed.contains("the store is gone"), "{failed}");
    }
}
