//! Why the posting rules refuse a command: one variant per cause, each carrying what a caller
//! needs to act on it. The ledger is unchanged when a command is rejected.

use crate::core::programme::{CampaignId, GuardKey};
use crate::core::rewards::RewardId;
use crate::core::types::{MemberId, PartnerId, Points, Timestamp, TxId};

/// A business-rule refusal. The ledger is unchanged when a command is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The points of a command are zero or negative.
    #[error("points must be positive, got {}", .points.0)]
    PointsNotPositive {
        /// As asked.
        points: Points,
    },
    /// The points of a command are above the programme's per-command limit.
    #[error("points {} above the per-command limit {}", .points.0, .max.0)]
    PointsAboveLimit {
        /// As asked.
        points: Points,
        /// The limit.
        max: Points,
    },
    /// An earn's bonus is negative or above the per-command limit.
    #[error("bonus {} must be 0 to {}", .bonus.0, .max.0)]
    BonusOutOfRange {
        /// As asked.
        bonus: Points,
        /// The limit.
        max: Points,
    },
    /// An adjustment is zero or beyond the per-command limit in either direction.
    #[error("adjustment {} must be non-zero and within ±{}", .points.0, .max.0)]
    AdjustmentOutOfRange {
        /// As asked.
        points: Points,
        /// The limit either way.
        max: Points,
    },
    /// The command would take a member's posted points past what an `i64` holds.
    #[error("member {}'s balance would overflow", .member.0)]
    BalanceOverflow {
        /// The member.
        member: MemberId,
    },
    /// A contract price is negative.
    #[error("contract prices must not be negative")]
    NegativePrice,
    /// A contract price has more decimal places than the ledger keeps.
    #[error("contract prices allow at most {scale_max} decimal places")]
    PriceTooPrecise {
        /// Decimal places kept.
        scale_max: u32,
    },
    /// A hold's timeout is zero or above the programme's maximum.
    #[error("hold timeout {timeout_ms} ms must be 1 to {max_ms} ms")]
    HoldTimeoutOutOfRange {
        /// As asked.
        timeout_ms: u32,
        /// The programme's maximum.
        max_ms: u32,
    },
    /// A transfer names the same member on both sides.
    #[error("a transfer needs two different members")]
    TransferToSelf,
    /// An adjustment's reason is empty or too long.
    #[error("an adjustment needs a reason of 1 to {len_max} bytes")]
    AdjustmentReason {
        /// Longest reason.
        len_max: usize,
    },
    /// An adjustment names no operator, or one too long.
    #[error("an adjustment needs an operator name of 1 to {len_max} bytes")]
    AdjustmentOperator {
        /// Longest name.
        len_max: usize,
    },
    /// The idempotency reference is empty or too long.
    #[error("reference must be 1 to {len_max} bytes")]
    ReferenceLength {
        /// Longest reference.
        len_max: usize,
    },
    /// A transfer is outside the programme's transfer policy.
    #[error("transfer limit {limit}: at most {max} (already {used})")]
    TransferLimit {
        /// Which limit: `min` (then `max` is the minimum), `max_per_transfer`, `max_per_day`,
        /// `max_per_year`.
        limit: &'static str,
        /// The limit.
        max: Points,
        /// Already given in the period.
        used: Points,
    },
    /// A policy change's author or reason is too long.
    #[error("a policy change's author must be at most {author_max} bytes and its reason at most {reason_max}")]
    ChangeNoteTooLong {
        /// Longest author.
        author_max: usize,
        /// Longest reason.
        reason_max: usize,
    },
    /// An adjustment names a transaction that is not before it.
    #[error("an adjustment corrects an earlier transaction; {corrects} is not earlier")]
    CorrectsLater {
        /// The transaction named.
        corrects: TxId,
    },
    /// A period's name is blank or too long.
    #[error("a period's name must hold a non-space character and at most {len_max} bytes")]
    PeriodName {
        /// Longest name.
        len_max: usize,
    },
    /// The period has not ended yet.
    #[error("the period ends at {} ms; it cannot be closed before then", through.0)]
    PeriodNotOver {
        /// The period's end.
        through: Timestamp,
    },
    /// The period, or a later one, is closed already.
    #[error("periods up to {} ms are closed already", closed_through.0)]
    PeriodClosed {
        /// The end of the last closed period.
        closed_through: Timestamp,
    },
    /// A member cannot pool with itself.
    #[error("a household pool needs two different members")]
    PoolWithSelf,
    /// The joining member is already in a pool, or owns one.
    #[error("member {} is already in a household pool", .0.0)]
    PoolTaken(MemberId),
    /// The owner belongs to another member's pool.
    #[error("member {} belongs to another household pool and cannot own one", .0.0)]
    PoolOwnerIsMember(MemberId),
    /// The pool has as many members as it may.
    #[error("a household pool holds at most {max} members besides its owner")]
    PoolFull {
        /// Most members.
        max: usize,
    },
    /// The member is suspended, closed or merged: it neither earns nor burns.
    #[error("member {} is {standing}: it neither earns nor burns", .member.0)]
    MemberNotActive {
        /// The member.
        member: MemberId,
        /// Its standing.
        standing: &'static str,
    },
    /// A member's standing cannot change this way (a closed member is not reopened).
    #[error("a member cannot go from {from} to {to}")]
    StandingChange {
        /// Its standing now.
        from: &'static str,
        /// As asked.
        to: &'static str,
    },
    /// The member has open holds: capture or void them first.
    #[error("member {} has {} points in open holds; capture or void them first", .member.0, .held.0)]
    OpenHolds {
        /// The member.
        member: MemberId,
        /// Points held.
        held: Points,
    },
    /// The merge is not possible as asked.
    #[error("the merge is refused: {0}")]
    MergeRefused(&'static str),
    /// The member was merged into another; its transactions are the survivor's now.
    #[error("member {} was merged into member {}", .member.0, .into.0)]
    MemberMerged {
        /// The member merged away.
        member: MemberId,
        /// The survivor.
        into: MemberId,
    },
    /// A lifecycle change names no reason or no author.
    #[error("a reason and an author are required")]
    NoteMissing,
    /// Every unit of the reward has been issued.
    #[error("reward {} is out of stock ({issued} issued)", .reward.0)]
    OutOfStock {
        /// The reward.
        reward: RewardId,
        /// Units issued.
        issued: u32,
    },
    /// The member already has as many of the reward as one member may.
    #[error("member {} already has {max} of reward {}", .member.0, .reward.0)]
    RewardLimit {
        /// The member.
        member: MemberId,
        /// The reward.
        reward: RewardId,
        /// The per-member limit.
        max: u32,
    },
    /// The member's tier is not one the reward is offered at.
    #[error("reward {} is not offered at member {}'s tier", .reward.0, .member.0)]
    RewardNotEligible {
        /// The member.
        member: MemberId,
        /// The reward.
        reward: RewardId,
    },
    /// A grant's note is empty or too long.
    #[error("a grant's note must be 1 to {len_max} bytes")]
    GrantNote {
        /// Longest note.
        len_max: usize,
    },
    /// The member is in no pool.
    #[error("member {} is in no household pool", .0.0)]
    NotInPool(MemberId),
    /// A transfer's consent attestation is empty or too long.
    #[error("a transfer's consent must be 1 to {len_max} bytes")]
    TransferConsent {
        /// Longest attestation.
        len_max: usize,
    },
    /// The tier policy cannot run.
    #[error("tier policy: {0}")]
    TierPolicyInvalid(&'static str),
    /// A tier command before any tier policy.
    #[error("the programme has no tier policy")]
    NoTierPolicy,
    /// A tier level above the policy's highest.
    #[error("tier level must be 0 to {max}")]
    TierOutOfRange {
        /// The highest level.
        max: u8,
    },
    /// A tier override that ends before it starts.
    #[error("a tier override must end in the future")]
    TierOverrideInPast,
    /// The transfer policy cannot run.
    #[error("transfer policy: {0}")]
    TransferPolicyInvalid(&'static str),
    /// The command is the ledger's own (expiry) and its key is not the system's.
    #[error("only the ledger itself posts this command")]
    NeedsSystem,
    /// The expiry policy cannot run.
    #[error("expiry policy: {0}")]
    ExpiryPolicyInvalid(&'static str),
    /// The command is an operator's and its key is not.
    #[error("this command needs an operator key")]
    NeedsOperator,
    /// The key's scope cannot act for this partner.
    #[error("this key cannot act for partner {}", .partner.0)]
    ScopeMismatch {
        /// The partner the command names.
        partner: PartnerId,
    },
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
    /// An earn carries more campaign awards than the ledger accepts, or one campaign twice.
    #[error("an earn carries at most {max} campaign awards, each campaign once")]
    AwardsMalformed {
        /// Most awards per earn.
        max: usize,
    },
    /// An award's points are negative or above the per-command limit.
    #[error("award of campaign {} must be 0 to {} points", .campaign.0, .max.0)]
    AwardOutOfRange {
        /// The campaign.
        campaign: CampaignId,
        /// The limit.
        max: Points,
    },
    /// A guard request is malformed: negative sale or ceiling, too many checks or thresholds.
    #[error("the points budget guard request is malformed: {0}")]
    GuardMalformed(&'static str),
    /// The earn would take the value of points issued above the budget ceiling.
    #[error("the points budget of {:?} for period {} would exceed its ceiling", .key.scope, .key.period)]
    BudgetCeiling {
        /// The guard period.
        key: GuardKey,
    },
}
