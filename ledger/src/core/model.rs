//! Commands the ledger accepts, the transactions it journals, and the receipts it returns.
//! (One file of about 600 lines because it is one thing: the journal's data model, whose
//! encodings must change together.)
//!
//! A [`Transaction`] records its full effect (postings, lot and hold changes, member balances
//! after), so replay and audit apply recorded effects and never re-run business rules.

use crate::core::expiry::ExpiryPolicy;
use crate::core::programme::{
    AwardBack, AwardRequest, Funder, Granted, GuardBack, GuardRecord, GuardRequest,
};
use crate::core::rewards::{Grant, GrantOrigin, Redemption, RewardClaim};
use crate::core::state::Standing;
use crate::core::tiers::{Purchase, TierChange, TierMark, TierPolicy, TierState};
use crate::core::transfers::TransferPolicy;
use crate::core::types::{
    AccountId, ChangeNote, ClawbackPolicy, Contract, Currency, MemberId, Money, PartnerId, Points,
    Timestamp, TxId,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Who owns an idempotency key's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// A partner's own references (its receipt numbers, booking codes).
    Partner(PartnerId),
    /// Operator and finance tooling.
    Operator,
    /// The ledger itself (hold timeouts).
    System,
}

/// An idempotency key: a command with the same key is applied at most once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IdemKey {
    /// The namespace.
    pub scope: Scope,
    /// The caller's reference, unique within `scope`.
    pub reference: String,
}

impl IdemKey {
    /// Longest reference accepted, in bytes. Bounds journal entries and index keys.
    pub const REFERENCE_LEN_MAX: usize = 128;

    /// A partner-scoped key.
    pub fn partner(partner: PartnerId, reference: impl Into<String>) -> IdemKey {
        IdemKey {
            scope: Scope::Partner(partner),
            reference: reference.into(),
        }
    }

    /// An operator-scoped key.
    pub fn operator(reference: impl Into<String>) -> IdemKey {
        IdemKey {
            scope: Scope::Operator,
            reference: reference.into(),
        }
    }
}

impl fmt::Display for IdemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            Scope::Partner(p) => write!(f, "partner/{}:{}", p.0, self.reference),
            Scope::Operator => write!(f, "operator:{}", self.reference),
            Scope::System => write!(f, "system:{}", self.reference),
        }
    }
}

/// A request to change the ledger. Every command carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create or replace a partner's contract (operator). Later earns and burns price with it.
    SetContract {
        /// Idempotency key.
        key: IdemKey,
        /// The new terms.
        contract: Contract,
    },
    /// Enrol a new member in the programme.
    Enrol {
        /// Idempotency key.
        key: IdemKey,
        /// The member to create.
        member: MemberId,
    },
    /// Partner issues points to a member, optionally with an operator-funded bonus.
    Earn {
        /// Idempotency key.
        key: IdemKey,
        /// Earning member.
        member: MemberId,
        /// Issuing partner.
        partner: PartnerId,
        /// Points issued by the partner (priced under its contract).
        points: Points,
        /// A bonus funded by `programme/promotions` with no campaign (operator tooling); may be
        /// zero.
        bonus: Points,
        /// Campaign awards the programme's rules computed, granted under their limits.
        awards: Vec<AwardRequest>,
        /// The points budget guard, when a ceiling applies.
        guard: Option<Box<GuardRequest>>,
        /// What the partner reported of the purchase (spend, category), for tiers.
        purchase: Option<Box<Purchase>>,
    },
    /// Member redeems points at a partner, at once.
    Burn {
        /// Idempotency key.
        key: IdemKey,
        /// Redeeming member.
        member: MemberId,
        /// Partner where the points are redeemed.
        partner: PartnerId,
        /// Points to redeem.
        points: Points,
    },
    /// Reserve points for a later capture (a till authorisation, an award booking).
    Hold {
        /// Idempotency key.
        key: IdemKey,
        /// Member whose points are held.
        member: MemberId,
        /// Partner holding them.
        partner: PartnerId,
        /// Points reserved.
        points: Points,
        /// After this many milliseconds an uncaptured hold voids itself.
        timeout_ms: u32,
    },
    /// Turn a hold into a burn, in full (`points: None`) or in part; the rest is released.
    Capture {
        /// Idempotency key.
        key: IdemKey,
        /// The hold's transaction id.
        hold: TxId,
        /// Points to capture; `None` captures the whole hold.
        points: Option<Points>,
    },
    /// Release a hold without burning anything.
    Void {
        /// Idempotency key.
        key: IdemKey,
        /// The hold's transaction id.
        hold: TxId,
    },
    /// Undo all (`points: None`) or part of an earlier earn or burn.
    Reverse {
        /// Idempotency key.
        key: IdemKey,
        /// The earn or burn to undo.
        original: TxId,
        /// Points to undo; `None` undoes whatever is left of the original.
        points: Option<Points>,
    },
    /// Move points between members (family pooling). Expiry dates travel with the points.
    Transfer {
        /// Idempotency key.
        key: IdemKey,
        /// Giving member.
        from: MemberId,
        /// Receiving member.
        to: MemberId,
        /// Points moved.
        points: Points,
        /// How the giving member consented, as the partner or operator attests it.
        consent: Option<String>,
    },
    /// Set the programme's tier policy (operator).
    SetTierPolicy {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// The new policy (boxed: a rare command keeps every command small).
        policy: Box<TierPolicy>,
    },
    /// Hold a member at a tier level until a date (operator), with a reason.
    SetTier {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// The member.
        member: MemberId,
        /// The level (0 to the policy's highest).
        level: u8,
        /// When the hold ends; the member then has the level its qualification gives.
        until: Timestamp,
        /// Why, in words an auditor can follow.
        reason: String,
    },
    /// Set the programme's transfer policy (operator).
    SetTransferPolicy {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// The new policy (boxed: a rare command keeps every command small).
        policy: Box<TransferPolicy>,
    },
    /// Set the programme's expiry policy (operator). Lots earned before keep their expiry.
    SetExpiryPolicy {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// The new policy (boxed: a rare command keeps every command small).
        policy: Box<ExpiryPolicy>,
    },
    /// Move a member's expired points to `programme/breakage` (the ledger itself, when they
    /// fall due).
    Expire {
        /// Idempotency key (system scope).
        key: IdemKey,
        /// The member.
        member: MemberId,
    },
    /// Operator correction against `programme/adjustments`, with a reason.
    Adjust {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// Member corrected.
        member: MemberId,
        /// Signed change: positive credits the member.
        points: Points,
        /// Why, in words finance can audit.
        reason: Box<str>,
        /// Who made the correction.
        operator: Box<str>,
        /// Whether it counts towards the member's tier (a goodwill credit for a missed flight
        /// does; a correction of a data error does not).
        qualifies: bool,
        /// The earlier transaction this corrects (one in a closed period, say), if any.
        corrects: Option<TxId>,
    },
    /// Close the accounting period ending at `through`: no transaction is dated before it
    /// afterwards. Closes every earlier period with it.
    ClosePeriod {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// The period closed, as finance names it (`2026-10`).
        period: String,
        /// Its end (exclusive): the first instant of the next period.
        through: Timestamp,
    },
    /// Join `member` to the household pool `owner` holds, with the joining member's consent
    /// (partner or operator). Points do not move: the owner may then spend the pool.
    JoinPool {
        /// Idempotency key.
        key: IdemKey,
        /// The pool's owner (a pool exists once it has a member).
        owner: MemberId,
        /// The joining member.
        member: MemberId,
        /// How the joining member consented, as attested.
        consent: String,
    },
    /// `member` leaves its pool; an owner leaving dissolves it. Each keeps its own points.
    LeavePool {
        /// Idempotency key.
        key: IdemKey,
        /// The member leaving, or the owner dissolving.
        member: MemberId,
    },
    /// Suspend, reinstate or close a member (operator), with a reason.
    SetStanding {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// The member.
        member: MemberId,
        /// Active (reinstate a suspended member), suspended or closed.
        standing: Standing,
        /// On closing: forfeit the balance to `programme/breakage` (else the member keeps it,
        /// frozen). The programme's policy decides; the command carries the decision.
        forfeit: bool,
        /// Why, and who, in words an auditor can follow.
        note: Box<ChangeNote>,
    },
    /// Merge member `from` (a duplicate card) into `into` (operator): its points with their
    /// expiry, its open holds and its tier history move to `into`; `from` is left merged.
    Merge {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// The member absorbed.
        from: MemberId,
        /// The survivor.
        into: MemberId,
        /// Why, and who.
        note: Box<ChangeNote>,
    },
    /// Record that a dated occasion of a member's came (a birthday, an anniversary, points
    /// about to expire), so the event reaches the outbox in commit order like any other. Posts
    /// nothing and changes no balance; the key (operator scope, named by the occasion and the
    /// day) makes it happen once.
    Notice {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// The member.
        member: MemberId,
        /// What came.
        notice: Notice,
    },
    /// Redeem a catalogue reward (operator): the member's points burned at the partner that
    /// fulfils it, under the reward's stock, per-member limit and tier eligibility.
    Redeem {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// Redeeming member.
        member: MemberId,
        /// The fulfilling partner.
        partner: PartnerId,
        /// The reward's price in points.
        points: Points,
        /// The reward and its limits.
        claim: RewardClaim,
    },
    /// Grant points to a member (operator), from the programme or a partner, traced to its
    /// origin (a referral, a survey, a draw, a discount code).
    Grant {
        /// Idempotency key (operator scope).
        key: IdemKey,
        /// The member.
        member: MemberId,
        /// Points granted.
        points: Points,
        /// Who pays.
        funder: Funder,
        /// What it traces to (boxed: a rare command keeps every command small).
        origin: Box<GrantOrigin>,
    },
}

/// A dated occasion of a member's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// The member's birthday (from its profile), on this local day (days since 1970-01-01).
    Birthday {
        /// The local day.
        day: u32,
    },
    /// The anniversary of the member's enrolment.
    Anniversary {
        /// The local day.
        day: u32,
        /// Years since enrolment.
        years: u16,
    },
    /// Points of the member's that expire in `days` days, on `on`.
    Expiring {
        /// The local day notified.
        day: u32,
        /// Days until they expire.
        days: u16,
        /// When they expire.
        on: Timestamp,
        /// How many, as the member's lots stood when the notice was posted.
        points: Points,
    },
}

// Commands travel through the queue and transactions through the writer, projector and
// journal by value: their size is a budget. Rare commands box their large payloads (the
// policies); a new variant that grows either fails here.
const _: () = assert!(std::mem::size_of::<Command>() <= 104);
const _: () = assert!(std::mem::size_of::<TxKind>() <= 104);

/// The key field of any command, by reference or by mutable reference (one list of variants
/// for [`Command::key`] and [`Command::key_mut`]).
macro_rules! command_key {
    ($cmd:expr) => {
        match $cmd {
            Command::SetContract { key, .. }
            | Command::Enrol { key, .. }
            | Command::Earn { key, .. }
            | Command::Burn { key, .. }
            | Command::Hold { key, .. }
            | Command::Capture { key, .. }
            | Command::Void { key, .. }
            | Command::Reverse { key, .. }
            | Command::Transfer { key, .. }
            | Command::SetExpiryPolicy { key, .. }
            | Command::SetTransferPolicy { key, .. }
            | Command::SetTierPolicy { key, .. }
            | Command::SetTier { key, .. }
            | Command::Expire { key, .. }
            | Command::Adjust { key, .. }
            | Command::ClosePeriod { key, .. }
            | Command::JoinPool { key, .. }
            | Command::LeavePool { key, .. }
            | Command::SetStanding { key, .. }
            | Command::Merge { key, .. }
            | Command::Notice { key, .. }
            | Command::Redeem { key, .. }
            | Command::Grant { key, .. } => key,
        }
    };
}

impl Command {
    /// The command's idempotency key.
    pub fn key(&self) -> &IdemKey {
        command_key!(self)
    }

    /// The command's idempotency key, to move out of a command that is done with
    /// ([`crate::core::state::State::decide_keyless`]).
    pub(crate) fn key_mut(&mut self) -> &mut IdemKey {
        command_key!(self)
    }

    /// A digest of the whole command, to tell a true retry from a conflicting reuse of a key.
    pub fn digest(&self) -> Digest {
        let mut h = DigestWriter::default();
        h.feed(self);
        h.finish()
    }

    /// The digest of the command as submitted: with the pricing it was converted under, if any.
    pub fn digest_priced(&self, pricing: Option<&Pricing>) -> Digest {
        match pricing {
            Some(p) => self.digest_with(p),
            None => self.digest(),
        }
    }

    /// The digest of the command together with the pricing it was converted under.
    pub fn digest_with(&self, pricing: &Pricing) -> Digest {
        let mut h = DigestWriter::default();
        h.feed(self);
        h.feed(pricing);
        h.finish()
    }
}

/// Hashes postcard encodings as they are produced, without building them in memory (this runs
/// for every command). The digest is that of the concatenated encodings.
#[derive(Default)]
struct DigestWriter(sha2::Sha256);

impl postcard::ser_flavors::Flavor for &mut DigestWriter {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        sha2::Digest::update(&mut self.0, data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        sha2::Digest::update(&mut self.0, [data]);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

impl DigestWriter {
    fn feed<T: Serialize>(&mut self, v: &T) {
        postcard::serialize_with_flavor(v, self).expect("commands and pricing always encode");
    }

    fn finish(self) -> Digest {
        let full = sha2::Digest::finalize(self.0);
        let mut d = [0u8; 16];
        d.copy_from_slice(&full[..16]);
        Digest(d)
    }
}

/// The first 16 bytes of a SHA-256 over a command's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Digest(pub [u8; 16]);

/// One leg of a transaction: an amount of one asset added to one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    /// The account the amount is added to.
    pub account: AccountId,
    /// The signed amount.
    pub amount: Amount,
}

/// A signed amount of one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Amount {
    /// Points.
    Points(Points),
    /// Money in one currency.
    Money(Money),
}

/// A lot's identity: the transaction that created it and its index there.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct LotId {
    /// Creating transaction.
    pub tx: TxId,
    /// Index among the lots that transaction created.
    pub n: u16,
}

/// A change to one of a member's expiry lots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotChange {
    /// Whose lot.
    pub member: MemberId,
    /// Which lot.
    pub lot: LotId,
    /// The lot's expiry (`None`: never).
    pub expires_at: Option<Timestamp>,
    /// Points added (earn, restore) or, when negative, consumed.
    pub delta: Points,
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldEnd {
    /// Captured (in full or in part).
    Captured,
    /// Voided by the partner or an operator.
    Voided,
    /// Voided by the ledger at its timeout.
    Expired,
}

/// What a transaction is, with the facts a later command (reversal, capture) needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxKind {
    /// A contract was set.
    ContractSet(Contract),
    /// A member was enrolled.
    Enrolled {
        /// The new member.
        member: MemberId,
    },
    /// Points earned.
    Earn {
        /// Earning member.
        member: MemberId,
        /// Issuing partner.
        partner: PartnerId,
        /// Points issued by the partner.
        points: Points,
        /// Bonus points with no campaign.
        bonus: Points,
        /// Price per point the partner pays, from its contract at posting time.
        price_per_point: Money,
        /// Campaign awards as granted.
        awards: Vec<Granted>,
        /// What the points budget guard counted.
        guard: Option<Box<GuardRecord>>,
        /// The qualification the earn counted for the member's tier, and the upgrade it made.
        tier: Option<Box<(TierMark, Option<TierChange>)>>,
    },
    /// Points burned, directly or by capturing a hold.
    Burn {
        /// Redeeming member.
        member: MemberId,
        /// Redemption partner.
        partner: PartnerId,
        /// Points burned.
        points: Points,
        /// Reimbursement per point, from the contract at posting time.
        price_per_point: Money,
        /// The hold captured, if this burn is a capture.
        hold: Option<TxId>,
        /// Points of the hold released by a partial capture.
        released: Points,
    },
    /// Points reserved.
    Hold {
        /// Member whose points are held.
        member: MemberId,
        /// Holding partner.
        partner: PartnerId,
        /// Points reserved.
        points: Points,
        /// When the hold voids itself.
        expires_at: Timestamp,
    },
    /// A hold released without a burn.
    Void {
        /// The hold.
        hold: TxId,
        /// Whose points are released.
        member: MemberId,
        /// Points released.
        points: Points,
        /// Voided or expired.
        end: HoldEnd,
    },
    /// Part or all of an earn or burn undone.
    Reversal {
        /// The earn or burn undone.
        original: TxId,
        /// Member affected.
        member: MemberId,
        /// Partner of the original.
        partner: PartnerId,
        /// Partner-issued (earn) or burned points reversed.
        points: Points,
        /// Bonus points reversed with an earn's points.
        bonus: Points,
        /// Points taken below zero under [`ClawbackPolicy::AllowNegative`]; zero otherwise.
        clawback: Points,
        /// Campaign awards taken back with an earn's points, in proportion.
        awards: Vec<AwardBack>,
        /// What the reversal takes back from the guard's counters.
        guard: Option<Box<GuardBack>>,
        /// The qualification taken back from the member's tier.
        tier: Option<TierMark>,
    },
    /// Points moved between members.
    Transfer {
        /// Giver.
        from: MemberId,
        /// Receiver.
        to: MemberId,
        /// Points moved.
        points: Points,
        /// Fee the giver paid, to `programme/fees`.
        fee: Points,
        /// The giver's local day and year the transfer counts in.
        day: u32,
        /// See `day`.
        year: i32,
        /// The giver's consent, as attested.
        consent: Option<String>,
    },
    /// The transfer policy was set.
    TransferPolicySet(Box<TransferPolicy>),
    /// The expiry policy was set.
    ExpiryPolicySet(Box<ExpiryPolicy>),
    /// A member's expired points went to `programme/breakage`.
    Expire {
        /// The member.
        member: MemberId,
        /// Points expired (zero when nothing was due any more: the posting was rescheduled).
        points: Points,
        /// Why: the lots' age or the member's inactivity.
        reason: ExpiryReason,
        /// The member's tier review due at the same time, if any.
        tier: Option<Box<TierChange>>,
    },
    /// A member's tier changed, or was reviewed and kept.
    TierChanged {
        /// The member.
        member: MemberId,
        /// The change.
        change: TierChange,
    },
    /// The tier policy was set.
    TierPolicySet(Box<TierPolicy>),
    /// Operator correction.
    Adjust {
        /// Member corrected.
        member: MemberId,
        /// Signed change.
        points: Points,
        /// Why.
        reason: String,
        /// Who.
        operator: String,
        /// The qualification it counted, when flagged to qualify, and the upgrade it made.
        tier: Option<Box<(TierMark, Option<TierChange>)>>,
        /// The earlier transaction it corrects, if any.
        corrects: Option<TxId>,
    },
    /// An accounting period was closed: no later transaction is dated before `through`.
    PeriodClosed {
        /// The period, as finance names it.
        period: String,
        /// Its end (exclusive).
        through: Timestamp,
        /// The end of the period closed before it (the start of the first period: zero).
        from: Timestamp,
    },
    /// A member joined a household pool.
    PoolJoined {
        /// The pool's owner.
        owner: MemberId,
        /// The joining member.
        member: MemberId,
        /// Its consent, as attested.
        consent: String,
    },
    /// Members left a household pool (all of them when the owner dissolved it).
    PoolLeft {
        /// The pool's owner.
        owner: MemberId,
        /// Who left.
        members: Vec<MemberId>,
    },
    /// A member was suspended, reinstated or closed.
    StandingSet {
        /// The member.
        member: MemberId,
        /// Its standing now.
        standing: Standing,
        /// Points forfeited to `programme/breakage` on closing (zero when kept).
        forfeited: Points,
        /// Why, and who.
        note: Box<ChangeNote>,
    },
    /// One member merged into another.
    Merged(Box<Merge>),
    /// A dated occasion of a member's came (no postings).
    Noticed {
        /// The member.
        member: MemberId,
        /// What came.
        notice: Notice,
    },
    /// A catalogue reward redeemed: a burn at the fulfilling partner, counted in the reward's
    /// stock and the member's limit.
    Redeemed(Box<Redemption>),
    /// Points granted from the programme or a partner, with their origin.
    Granted(Box<Grant>),
}

/// What a merge moved, and the survivor's state it recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merge {
    /// The member absorbed.
    pub from: MemberId,
    /// The survivor.
    pub into: MemberId,
    /// Posted points moved, lots with their expiry.
    pub points: Points,
    /// Points of the open holds moved.
    pub held: Points,
    /// The open holds moved, now the survivor's.
    pub holds: Vec<TxId>,
    /// The survivor's tier afterwards: both members' qualification month by month, at the
    /// higher level (`None`: neither had a tier record).
    pub tier: Option<TierState>,
    /// The partners the survivor has earned at afterwards (both members'), one bit each.
    pub earned_at: u64,
    /// The survivor's latest qualifying activity afterwards.
    pub last_activity: Timestamp,
    /// Why, and who.
    pub note: ChangeNote,
}

/// Why points expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpiryReason {
    /// Lots past their expiry.
    Age,
    /// No qualifying activity for the policy's months.
    Inactivity,
    /// Nothing was due any more (a policy or tier change moved the date).
    Rescheduled,
}

/// A committed ledger transaction: the journal's unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Id, in commit order.
    pub id: TxId,
    /// Commit time of the batch.
    pub at: Timestamp,
    /// The idempotency key it was applied under.
    pub key: IdemKey,
    /// Digest of the command, for retry-versus-conflict checks.
    pub digest: Digest,
    /// What happened.
    pub kind: TxKind,
    /// Balanced legs: per asset they sum to zero.
    pub postings: Vec<Posting>,
    /// Expiry-lot changes.
    pub lots: LotChanges,
    /// Each member touched: points after this transaction, and the member's previous one.
    pub member_balances: MemberLines,
    /// What the points were converted from, when a partner's rate table priced them.
    pub pricing: Option<Pricing>,
}

/// A transaction's lot changes: nearly always one or two, held in the transaction itself (no
/// allocation of their own); stored and sent as a plain list.
pub type LotChanges = smallvec::SmallVec<[LotChange; 2]>;

/// A transaction's member lines: one per member touched, nearly always one or two, held in the
/// transaction itself; stored and sent as a plain list.
pub type MemberLines = smallvec::SmallVec<[MemberAfter; 2]>;

/// A member's points after a transaction, and the member's transaction before it. The `prev`
/// links chain each member's transactions back through the journal: statements and as-of reads
/// walk them, so no per-member index is written for every transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAfter {
    /// The member.
    pub member: MemberId,
    /// Posted points after the transaction.
    pub posted: Points,
    /// Points held by open holds after the transaction.
    pub held: Points,
    /// The member's previous transaction (`None` for the first, the enrolment).
    pub prev: Option<TxId>,
    /// Whether this transaction is a qualifying activity of the member's for inactivity expiry
    /// (decided under the policy in force, so replay never depends on a later policy).
    pub active: bool,
}

/// How a partner's quantity (money, miles, litres) became points: recorded on the transaction so
/// statements and disputes never depend on today's rate tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    /// Version of the partner's rate table that priced the command.
    pub rate_version: u32,
    /// The quantity the partner sent, in `unit`.
    pub quantity: Decimal,
    /// An ISO 4217 currency code or the partner's measure (`mile`, `litre`).
    pub unit: String,
    /// The branch (station, store) whose override applied, if any.
    pub branch: Option<String>,
    /// The category whose override applied, if any.
    pub category: Option<String>,
    /// Points per unit that applied.
    pub points_per_unit: Decimal,
}

impl TxKind {
    /// The member the transaction is about (the giver, for a transfer), if any.
    pub fn member(&self) -> Option<MemberId> {
        match self {
            TxKind::Earn { member, .. }
            | TxKind::Burn { member, .. }
            | TxKind::Hold { member, .. }
            | TxKind::Void { member, .. }
            | TxKind::Reversal { member, .. }
            | TxKind::Adjust { member, .. }
            | TxKind::Expire { member, .. }
            | TxKind::TierChanged { member, .. }
            | TxKind::Enrolled { member } => Some(*member),
            TxKind::Transfer { from, .. } => Some(*from),
            TxKind::PoolJoined { owner, .. } | TxKind::PoolLeft { owner, .. } => Some(*owner),
            TxKind::StandingSet { member, .. } | TxKind::Noticed { member, .. } => Some(*member),
            TxKind::Merged(m) => Some(m.from),
            TxKind::Redeemed(r) => Some(r.member),
            TxKind::Granted(g) => Some(g.member),
            TxKind::ContractSet(_)
            | TxKind::ExpiryPolicySet(_)
            | TxKind::TransferPolicySet(_)
            | TxKind::TierPolicySet(_)
            | TxKind::PeriodClosed { .. } => None,
        }
    }
}

impl Transaction {
    /// The change this transaction makes to account `a`'s points: the sum of its points legs
    /// on `a`. Holds and voids post nothing, so they change no one's posted points.
    pub fn points_to(&self, a: AccountId) -> Points {
        Points(
            self.postings
                .iter()
                .filter(|p| p.account == a)
                .map(|p| match p.amount {
                    Amount::Points(x) => x.0,
                    Amount::Money(_) => 0,
                })
                .sum(),
        )
    }

    /// The members this transaction touches.
    pub fn members(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.member_balances.iter().map(|a| a.member)
    }

    /// Sum of postings per asset; all zero when the transaction balances.
    pub fn imbalance(&self) -> (i128, Vec<(Currency, Decimal)>) {
        let mut points: i128 = 0;
        let mut money: Vec<(Currency, Decimal)> = Vec::new();
        for p in &self.postings {
            match p.amount {
                Amount::Points(x) => points += i128::from(x.0),
                Amount::Money(m) => match money.iter_mut().find(|(c, _)| *c == m.currency) {
                    Some((_, sum)) => *sum += m.amount,
                    None => money.push((m.currency, m.amount)),
                },
            }
        }
        money.retain(|(_, s)| !s.is_zero());
        (points, money)
    }

    /// The hold this transaction opened, if it is one.
    pub fn opened_hold(&self) -> Option<(MemberId, PartnerId, Points, Timestamp)> {
        match self.kind {
            TxKind::Hold {
                member,
                partner,
                points,
                expires_at,
            } => Some((member, partner, points, expires_at)),
            _ => None,
        }
    }
}

/// What the caller gets back for an accepted command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The transaction, as journaled (shared with the batch that committed it).
    pub tx: std::sync::Arc<Transaction>,
    /// True when this answers a retry of an already applied command.
    pub replayed: bool,
}

/// Programme-wide settings the posting engine applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// What a reversal of already spent points does.
    pub clawback: ClawbackPolicy,
    /// Longest hold timeout accepted, in milliseconds.
    pub hold_timeout_ms_max: u32,
    /// Largest points amount in one command; bounds overflow and fat-finger errors.
    pub points_per_command_max: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            clawback: ClawbackPolicy::Reject,
            hold_timeout_ms_max: 30 * 86_400_000,
            points_per_command_max: 1_000_000_000_000,
        }
    }
}

/// A short name for a transaction kind, and its partner if it has one.
pub fn describe(kind: &TxKind) -> (&'static str, Option<PartnerId>) {
    match kind {
        TxKind::ContractSet(c) => ("contract", Some(c.partner)),
        TxKind::Enrolled { .. } => ("enrol", None),
        TxKind::Earn { partner, .. } => ("earn", Some(*partner)),
        TxKind::Burn {
            partner,
            hold: None,
            ..
        } => ("burn", Some(*partner)),
        TxKind::Burn {
            partner,
            hold: Some(_),
            ..
        } => ("capture", Some(*partner)),
        TxKind::Hold { partner, .. } => ("hold", Some(*partner)),
        TxKind::Void { .. } => ("void", None),
        TxKind::Reversal { partner, .. } => ("reversal", Some(*partner)),
        TxKind::Transfer { .. } => ("transfer", None),
        TxKind::Adjust { .. } => ("adjustment", None),
        TxKind::ExpiryPolicySet(_) => ("expiry-policy", None),
        TxKind::TransferPolicySet(_) => ("transfer-policy", None),
        TxKind::TierPolicySet(_) => ("tier-policy", None),
        TxKind::TierChanged { .. } => ("tier", None),
        TxKind::Expire { .. } => ("expiry", None),
        TxKind::PoolJoined { .. } => ("pool-joined", None),
        TxKind::PoolLeft { .. } => ("pool-left", None),
        TxKind::PeriodClosed { .. } => ("period-close", None),
        TxKind::StandingSet { .. } => ("standing", None),
        TxKind::Merged(_) => ("merge", None),
        TxKind::Noticed { .. } => ("notice", None),
        TxKind::Redeemed(r) => ("reward", Some(r.partner)),
        TxKind::Granted(g) => (
            "grant",
            match g.funder {
                Funder::Partner(p) => Some(p),
                Funder::Programme => None,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::{MemberId, PartnerId};
    use sha2::Digest as _;

    /// A transaction's lot changes and member lines are kept inline, but stored and sent
    /// exactly as the plain lists journals were first written with: the same bytes in the
    /// journal's encoding and in JSON, held inline or spilled to the heap.
    #[test]
    fn inline_lists_encode_as_plain_lists() {
        let lot = |i: u64| LotChange {
            member: MemberId(i),
            lot: LotId {
                tx: TxId(i << 16 | 3),
                n: i as u16,
            },
            expires_at: i
                .is_multiple_of(2)
                .then_some(Timestamp(1_700_000_000_000 + i as i64)),
            delta: Points(-(i as i64) * 7),
        };
        let line = |i: u64| MemberAfter {
            member: MemberId(i),
            posted: Points(i as i64 * 100),
            held: Points(i as i64),
            prev: (i > 1).then_some(TxId(i)),
            active: !i.is_multiple_of(2),
        };
        /// `inline` (the `SmallVec`) reads back from, and encodes to, what `plain` does.
        fn same_as_plain<A>(inline: &smallvec::SmallVec<A>, plain: &Vec<A::Item>)
        where
            A: smallvec::Array,
            A::Item: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let bytes = postcard::to_allocvec(plain).expect("encode");
            assert_eq!(postcard::to_allocvec(inline).expect("encode"), bytes);
            assert_eq!(
                serde_json::to_string(inline).expect("json"),
                serde_json::to_string(plain).expect("json")
            );
            let back: smallvec::SmallVec<A> =
                postcard::from_bytes(&bytes).expect("a plain list reads back inline");
            assert_eq!(back.as_slice(), plain.as_slice());
        }
        for n in [0u64, 1, 2, 3, 5] {
            let lots: Vec<LotChange> = (1..=n).map(lot).collect();
            let inline: LotChanges = lots.iter().copied().collect();
            assert_eq!(inline.spilled(), n > 2);
            same_as_plain(&inline, &lots);
            let lines: Vec<MemberAfter> = (1..=n).map(line).collect();
            same_as_plain(&lines.iter().copied().collect::<MemberLines>(), &lines);
        }
    }

    /// Digests are journaled and compared across restarts and versions: the streamed digest
    /// must stay the SHA-256 of the encodings, as first written.
    #[test]
    fn a_digest_is_the_sha256_prefix_of_the_encodings() {
        let cmd = Command::Earn {
            key: IdemKey::partner(PartnerId(4), "receipt-77"),
            member: MemberId(12),
            partner: PartnerId(4),
            points: Points(1_250),
            bonus: Points(30),
            awards: vec![],
            guard: None,
            purchase: None,
        };
        let pricing = Pricing {
            rate_version: 3,
            quantity: Decimal::new(12_505, 2),
            unit: "EUR".into(),
            branch: Some("station-9".into()),
            category: None,
            points_per_unit: Decimal::new(10, 0),
        };
        let prefix = |bytes: &[u8]| {
            let full = sha2::Sha256::digest(bytes);
            let mut d = [0u8; 16];
            d.copy_from_slice(&full[..16]);
            Digest(d)
        };
        let encoded = postcard::to_allocvec(&cmd).expect("encode");
        assert_eq!(cmd.digest(), prefix(&encoded));
        let mut with = encoded.clone();
        with.extend(postcard::to_allocvec(&pricing).expect("encode"));
        assert_eq!(cmd.digest_with(&pricing), prefix(&with));
        assert_ne!(cmd.digest(), cmd.digest_with(&pricing));
    }
}
