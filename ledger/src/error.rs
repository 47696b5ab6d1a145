//! Errors at the ledger's boundary: why a command was refused, and why the ledger could not act.

use crate::types::{MemberId, PartnerId, Points, TxId};

/// A business-rule refusal. The ledger is unchanged when a command is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The amount is zero, negative, or above the programme's per-command limit.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// The command is malformed in another way (empty reason, over-long reference, ...).
    #[error("invalid command: {0}")]
    Invalid(String),
    /// No such member.
    #[error("unknown member {}", .0 .0)]
    UnknownMember(MemberId),
    /// The member is already enrolled.
    #[error("member {} is already enrolled", .0 .0)]
    MemberExists(MemberId),
    /// No contract for this partner.
    #[error("unknown partner {}", .0 .0)]
    UnknownPartner(PartnerId),
    /// No such transaction visible to the caller.
    #[error("unknown transaction {0}")]
    UnknownTransaction(TxId),
    /// The member's available points do not cover the request.
    #[error("insufficient points: {available} available, {requested} requested")]
    InsufficientPoints {
        /// Posted minus held.
        available: Points,
        /// Asked for.
        requested: Points,
    },
    /// The hold was already captured, voided or expired.
    #[error("hold {hold} is no longer open")]
    HoldNotOpen {
        /// The hold.
        hold: TxId,
    },
    /// A capture asked for more than the hold reserved.
    #[error("capture of {requested} exceeds hold of {held}")]
    CaptureExceedsHold {
        /// Reserved.
        held: Points,
        /// Asked for.
        requested: Points,
    },
    /// The transaction cannot be reversed (it is not an earn or a burn).
    #[error("transaction {0} is not an earn or a burn and cannot be reversed")]
    NotReversible(TxId),
    /// A reversal asked for more than remains of the original.
    #[error("reversal of {requested} exceeds the {remaining} left to reverse")]
    ReversalExceedsOriginal {
        /// Not yet reversed.
        remaining: Points,
        /// Asked for.
        requested: Points,
    },
    /// Reversing the earn would take the member below zero and the policy forbids it.
    #[error(
        "reversal needs {shortfall} the member no longer has, and the clawback policy rejects it"
    )]
    ClawbackRejected {
        /// Points the member is short.
        shortfall: Points,
    },
    /// The idempotency key was used before for a different command.
    #[error("idempotency key already used for a different command (transaction {original})")]
    IdempotencyConflict {
        /// The transaction the key belongs to.
        original: TxId,
    },
}

/// Why the ledger could not process a command or a read at all.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The command was refused on its merits; nothing changed.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The committer's queue is full; retry later.
    #[error("ledger overloaded: the command queue is full, retry later")]
    Overloaded,
    /// The ledger is shutting down or its writer stopped.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(#[from] crate::store::StoreError),
    /// Stored bytes did not decode: the store is corrupt or from an incompatible version.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<postcard::Error> for LedgerError {
    fn from(e: postcard::Error) -> Self {
        LedgerError::Corrupt(e.to_string())
    }
}
