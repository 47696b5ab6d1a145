//! What a partner can do: enrol or link members, earn, burn, hold, capture, void, reverse,
//! post batches, read balances, statements and transactions, price quotes. Each use-case takes
//! the authenticated [`PartnerCaller`] and its own input type, checks scope and input, prices
//! with the rate table in force, and hands the ledger its command; nothing here knows HTTP.

use super::error::{Kind, OpError};
use super::registry::{KeyScope, RegistryError, MEMBER_REFERENCE_LEN_MAX};
use super::{check_points, check_reference, replay, Ops, PartnerCaller};
use crate::programme::rates::{Amount, Operation, RateTable, NAME_LEN_MAX};
use ledger::{
    Command, IdemKey, LedgerError, MemberId, PartnerId, Pending, Points, Pricing, Rejection,
    Timestamp, Transaction, TxKind,
};
use std::sync::Arc;

mod batch;
mod reads;
pub(crate) mod terms;

pub use batch::{batch, prepare, prepare_in_memory, prepare_linked};
pub use reads::{
    balance, enrol, expiring, household, quote, rates, statement, tier, transaction, Enrol, Quote,
    Quoted,
};
pub use terms::EarnContext;

/// Earn points for a purchase, a flight or a fill-up, priced from `amount`.
#[derive(Debug, Clone)]
pub struct Earn {
    /// Idempotency key: the partner's receipt or booking reference.
    pub reference: String,
    /// The member, by the partner's reference.
    pub member: String,
    /// What was bought, in the unit of the partner's rate table.
    pub amount: Amount,
    /// Branch (station, store) for branch rates.
    pub branch: Option<String>,
    /// Product category for category rates.
    pub category: Option<String>,
    /// Payment method, channel and sale value, for campaigns and the budget guard.
    pub context: EarnContext,
}

/// Burn points at once: `points`, or `amount` priced with the rate table (rounding up).
#[derive(Debug, Clone)]
pub struct Burn {
    /// Idempotency key.
    pub reference: String,
    /// The member, by the partner's reference.
    pub member: String,
    /// Points to burn.
    pub points: Option<i64>,
    /// Or a price to convert.
    pub amount: Option<Amount>,
    /// Branch for branch rates.
    pub branch: Option<String>,
    /// Category for category rates.
    pub category: Option<String>,
}

/// Reserve points for a later capture.
#[derive(Debug, Clone)]
pub struct Hold {
    /// Idempotency key; also names the hold in capture and void.
    pub reference: String,
    /// The member, by the partner's reference.
    pub member: String,
    /// Points to reserve.
    pub points: Option<i64>,
    /// Or a price to convert.
    pub amount: Option<Amount>,
    /// Branch for branch rates.
    pub branch: Option<String>,
    /// Category for category rates.
    pub category: Option<String>,
    /// The hold voids itself after this many seconds.
    pub timeout_seconds: u32,
}

/// Give points from one member to another, both linked at this partner.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// Idempotency key.
    pub reference: String,
    /// The giving member, by the partner's reference.
    pub from: String,
    /// The receiving member, by the partner's reference.
    pub to: String,
    /// Points given.
    pub points: i64,
    /// How the giving member consented (a signed form, an in-app confirmation id): the
    /// partner's attestation, recorded on the transaction.
    pub consent: String,
}

/// Undo all or part of an earlier earn or burn.
#[derive(Debug, Clone)]
pub struct Reversal {
    /// Idempotency key of the reversal.
    pub reference: String,
    /// The reference of the earn or burn to undo.
    pub original_reference: String,
    /// Points to undo; `None` for whatever is left.
    pub points: Option<i64>,
}

/// One partner command, as a batch carries it.
#[derive(Debug, Clone)]
pub enum PartnerCommand {
    /// An earn.
    Earn(Earn),
    /// A burn.
    Burn(Burn),
    /// A hold.
    Hold(Hold),
    /// A capture of the hold `hold_reference` names.
    Capture {
        /// The hold's reference.
        hold_reference: String,
        /// Idempotency key of the capture.
        reference: String,
        /// Points to capture; `None` for all.
        points: Option<i64>,
    },
    /// A void of the hold `hold_reference` names.
    Void {
        /// The hold's reference.
        hold_reference: String,
        /// Idempotency key of the void.
        reference: String,
    },
    /// A reversal.
    Reversal(Reversal),
}

/// A posted (or replayed) transaction, with the member as the partner knows them.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The transaction.
    pub tx: Arc<Transaction>,
    /// The partner's reference for its member, if it has one.
    pub member_ref: Option<String>,
    /// True when this answers a retry of an already applied command.
    pub replayed: bool,
}

/// A command ready for the ledger, with what is needed to answer for it.
pub struct Prepared {
    cmd: Command,
    pricing: Option<Pricing>,
    member: Option<MemberId>,
    member_ref: Option<String>,
}

/// What answering needs once the command has gone to the ledger.
pub struct Sent {
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

pub(crate) fn registry_error(e: RegistryError) -> OpError {
    match e {
        RegistryError::ReferenceTaken { reference } => OpError::new(
            Kind::ReferenceTaken,
            format!("member reference {reference:?} is linked to another member"),
        ),
        other => OpError::new(Kind::Internal, other.to_string()),
    }
}

/// The member a partner reference names; unknown and unlinked members look the same.
pub(crate) fn member_of(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
) -> Result<MemberId, OpError> {
    check_member_reference(reference)?;
    ops.registry
        .member_of(caller.partner, reference)
        .map_err(registry_error)?
        .ok_or_else(|| {
            OpError::new(
                Kind::UnknownMember,
                format!("no member with reference {reference:?}"),
            )
        })
}

/// `linked`, the member the caller already resolved `reference` to from the link cache, or
/// else the member `reference` names.
fn linked_or(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
    linked: Option<MemberId>,
) -> Result<MemberId, OpError> {
    match linked {
        Some(m) => Ok(m),
        None => member_of(ops, caller, reference),
    }
}

pub(crate) fn check_member_reference(r: &str) -> Result<(), OpError> {
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

pub(crate) fn check_name(field: &str, v: Option<&str>) -> Result<(), OpError> {
    match v {
        // Characters, not bytes: branch and category names may be Persian.
        Some(s) if s.is_empty() || s.chars().count() > NAME_LEN_MAX => Err(OpError::new(
            Kind::InvalidRequest,
            format!("{field} must be 1 to {NAME_LEN_MAX} characters"),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn rate_table(
    ops: &Ops,
    partner: PartnerId,
) -> Result<std::sync::Arc<RateTable>, OpError> {
    ops.registry
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
    ops: &Ops,
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
            let priced = rate_table(ops, caller.partner)?.price(
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

pub fn prepare_earn(
    ops: &Ops,
    caller: &PartnerCaller,
    r: &Earn,
    linked: Option<MemberId>,
) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Earn)?;
    let key = key(caller, &r.reference)?;
    check_name("branch", r.branch.as_deref())?;
    check_name("category", r.category.as_deref())?;
    r.amount.parse()?;
    let member = linked_or(ops, caller, &r.member, linked)?;
    let mut p = earn_for(ops, caller.partner, key, member, r)?;
    p.member_ref = Some(r.member.clone());
    Ok(p)
}

/// The earn of `r` at `partner` for coalition member `member` under `key`: priced with the
/// partner's rate table, with the campaigns and guard checks in force now. The partner's own
/// earn and an accepted missing-points claim (`ops/engagement/claims.rs`) both come here, so
/// a claim and the partner's posting of the same receipt make the same command.
pub fn earn_for(
    ops: &Ops,
    partner: PartnerId,
    key: IdemKey,
    member: MemberId,
    r: &Earn,
) -> Result<Prepared, OpError> {
    let q = r.amount.parse()?;
    let caller_partner = partner;
    let priced = rate_table(ops, caller_partner)?.price(
        Operation::Earn,
        q,
        &r.amount.unit,
        r.branch.as_deref(),
        r.category.as_deref(),
    )?;
    let purchase = terms::Purchase {
        partner: caller_partner,
        amount: &r.amount,
        quantity: q,
        base: priced.points,
        branch: r.branch.as_deref(),
        category: r.category.as_deref(),
    };
    let signals = crate::ops::audience::Signals::of(ops, member);
    let terms = terms::terms(
        &ops.registry.programme(),
        &purchase,
        &r.context,
        Some(&signals),
        Timestamp::now(),
    )?;
    Ok(Prepared {
        cmd: Command::Earn {
            key,
            member,
            partner: caller_partner,
            points: priced.points,
            bonus: Points(0),
            awards: terms.awards,
            guard: terms.guard,
            purchase: purchase.for_tiers(),
        },
        pricing: Some(priced.pricing),
        member: Some(member),
        member_ref: None,
    })
}

/// Queues a prepared command without waiting for its answer (a full queue answers
/// `Overloaded` and gives the command back, to be sent again).
pub fn queue_prepared(
    ops: &Ops,
    p: Prepared,
) -> Result<ledger::Pending, Box<(LedgerError, Prepared)>> {
    match ops.ledger.submit_priced(p.cmd.clone(), p.pricing.clone()) {
        Ok(pending) => Ok(pending),
        Err(e) => Err(Box::new((e, p))),
    }
}

/// Posts a prepared earn and blocks until its receipt. Not for async contexts.
pub fn post_blocking(ops: &Ops, p: Prepared) -> Result<ledger::Receipt, LedgerError> {
    let pending = ops.ledger.submit_priced(p.cmd, p.pricing)?;
    pending
        .blocking_recv()
        .map_err(|_| LedgerError::ShuttingDown)?
}

pub fn prepare_burn(
    ops: &Ops,
    caller: &PartnerCaller,
    r: &Burn,
    linked: Option<MemberId>,
) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, &r.reference)?;
    let (points, pricing) = points_or_amount(
        ops,
        caller,
        r.points,
        r.amount.as_ref(),
        r.branch.as_deref(),
        r.category.as_deref(),
    )?;
    let member = linked_or(ops, caller, &r.member, linked)?;
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

pub fn prepare_hold(
    ops: &Ops,
    caller: &PartnerCaller,
    r: &Hold,
    linked: Option<MemberId>,
) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, &r.reference)?;
    let (points, pricing) = points_or_amount(
        ops,
        caller,
        r.points,
        r.amount.as_ref(),
        r.branch.as_deref(),
        r.category.as_deref(),
    )?;
    let timeout_ms = check_timeout(r.timeout_seconds)?;
    let member = linked_or(ops, caller, &r.member, linked)?;
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

/// Where preparing a command reads the transaction it names and the caller's reference for
/// its member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// The ledger and the registry, store included: off the async workers.
    Store,
    /// What this process holds in memory only (a transaction committed moments ago, a
    /// reference made or read here): on an async worker, with no store read.
    Memory,
}

/// Why a command was not prepared.
#[derive(Debug)]
pub enum Unprepared {
    /// Refused, as the API answers.
    Refused(OpError),
    /// Memory did not hold what it names ([`Reads::Memory`] only): prepare it from the store.
    NotInMemory,
}

impl From<OpError> for Unprepared {
    fn from(e: OpError) -> Self {
        Unprepared::Refused(e)
    }
}

impl Unprepared {
    /// The answer of a command prepared from the store, where memory is never the limit.
    fn into_answer(self) -> OpError {
        match self {
            Unprepared::Refused(e) => e,
            Unprepared::NotInMemory => {
                OpError::new(Kind::Internal, "a store read stopped at memory")
            }
        }
    }
}

/// The caller's own transaction posted under `reference`; others' answer as unknown.
pub fn own_transaction(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
) -> Result<Transaction, OpError> {
    own_transaction_in(ops, caller, reference, Reads::Store).map_err(Unprepared::into_answer)
}

fn own_transaction_in(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
    reads: Reads,
) -> Result<Transaction, Unprepared> {
    check_reference("reference", reference)?;
    let key = IdemKey::partner(caller.partner, reference);
    let found = match reads {
        Reads::Store => ops.ledger.transaction_by_key(&key).map_err(OpError::from)?,
        Reads::Memory => Some(
            ops.ledger
                .recent_transaction_by_key(&key)
                .ok_or(Unprepared::NotInMemory)?,
        ),
    };
    Ok(found.ok_or_else(|| {
        OpError::new(
            Kind::UnknownTransaction,
            format!("no transaction with reference {reference:?}"),
        )
    })?)
}

pub fn own_hold(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
) -> Result<(Transaction, MemberId), OpError> {
    own_hold_in(ops, caller, reference, Reads::Store).map_err(Unprepared::into_answer)
}

fn own_hold_in(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
    reads: Reads,
) -> Result<(Transaction, MemberId), Unprepared> {
    let tx = own_transaction_in(ops, caller, reference, reads)?;
    match tx.kind {
        TxKind::Hold { member, .. } => Ok((tx, member)),
        _ => Err(OpError::new(
            Kind::UnknownTransaction,
            format!("no hold with reference {reference:?}"),
        )
        .into()),
    }
}

/// The caller's reference for `member` (from the store, or from memory only). Capture, void
/// and reversal read it while preparing, so their answer needs no store read after the commit.
fn reference_of(
    ops: &Ops,
    caller: &PartnerCaller,
    member: MemberId,
) -> Result<Option<String>, OpError> {
    reference_in(ops, caller, member, Reads::Store).map_err(Unprepared::into_answer)
}

fn reference_in(
    ops: &Ops,
    caller: &PartnerCaller,
    member: MemberId,
    reads: Reads,
) -> Result<Option<String>, Unprepared> {
    match reads {
        Reads::Store => Ok(ops
            .registry
            .reference_of(caller.partner, member)
            .map_err(registry_error)?),
        Reads::Memory => ops
            .registry
            .reference_cached(caller.partner, member)
            .map(Some)
            .ok_or(Unprepared::NotInMemory),
    }
}

pub fn prepare_capture(
    ops: &Ops,
    caller: &PartnerCaller,
    hold_reference: &str,
    reference: &str,
    points: Option<i64>,
    reads: Reads,
) -> Result<Prepared, Unprepared> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, reference)?;
    let points = points.map(|p| check_points("points", p)).transpose()?;
    let (hold, member) = own_hold_in(ops, caller, hold_reference, reads)?;
    Ok(Prepared {
        cmd: Command::Capture {
            key,
            hold: hold.id,
            points,
        },
        pricing: None,
        member: Some(member),
        member_ref: reference_in(ops, caller, member, reads)?,
    })
}

pub fn prepare_void(
    ops: &Ops,
    caller: &PartnerCaller,
    hold_reference: &str,
    reference: &str,
    reads: Reads,
) -> Result<Prepared, Unprepared> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, reference)?;
    let (hold, member) = own_hold_in(ops, caller, hold_reference, reads)?;
    Ok(Prepared {
        cmd: Command::Void { key, hold: hold.id },
        pricing: None,
        member: Some(member),
        member_ref: reference_in(ops, caller, member, reads)?,
    })
}

pub fn prepare_reversal(
    ops: &Ops,
    caller: &PartnerCaller,
    r: &Reversal,
    reads: Reads,
) -> Result<Prepared, Unprepared> {
    let key = key(caller, &r.reference)?;
    let points = r.points.map(|p| check_points("points", p)).transpose()?;
    let original = own_transaction_in(ops, caller, &r.original_reference, reads)?;
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
            )
            .into())
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
        member_ref: reference_in(ops, caller, member, reads)?,
    })
}

pub fn prepare_transfer(
    ops: &Ops,
    caller: &PartnerCaller,
    r: &Transfer,
) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, &r.reference)?;
    crate::ops::check_consent(&r.consent)?;
    let points = check_points("points", r.points)?;
    let from = member_of(ops, caller, &r.from)?;
    let to = member_of(ops, caller, &r.to)?;
    Ok(Prepared {
        cmd: Command::Transfer {
            key,
            from,
            to,
            points,
            consent: Some(r.consent.clone()),
        },
        pricing: None,
        member: Some(from),
        member_ref: Some(r.from.clone()),
    })
}

/// A member joining another's household pool, both by the partner's references.
#[derive(Debug, Clone)]
pub struct JoinHousehold {
    /// Idempotency key.
    pub reference: String,
    /// The pool's owner.
    pub owner: String,
    /// The joining member.
    pub member: String,
    /// How the joining member consented, as the partner attests it.
    pub consent: String,
}

pub fn prepare_join_household(
    ops: &Ops,
    caller: &PartnerCaller,
    r: &JoinHousehold,
) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, &r.reference)?;
    crate::ops::check_consent(&r.consent)?;
    let owner = member_of(ops, caller, &r.owner)?;
    let member = member_of(ops, caller, &r.member)?;
    Ok(Prepared {
        cmd: Command::JoinPool {
            key,
            owner,
            member,
            consent: r.consent.clone(),
        },
        pricing: None,
        member: Some(owner),
        member_ref: Some(r.owner.clone()),
    })
}

pub fn prepare_leave_household(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
    member_ref: &str,
) -> Result<Prepared, OpError> {
    caller.require(KeyScope::Burn)?;
    let key = key(caller, reference)?;
    let member = member_of(ops, caller, member_ref)?;
    Ok(Prepared {
        cmd: Command::LeavePool { key, member },
        pricing: None,
        member: Some(member),
        member_ref: Some(member_ref.to_string()),
    })
}

/// Hands the command to the ledger (moved, not copied) and keeps what answering needs.
pub(crate) fn submit(ops: &Ops, p: Prepared) -> Result<(Sent, Pending), OpError> {
    let kind = match &p.cmd {
        Command::JoinPool { .. } | Command::LeavePool { .. } => "household",
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
    Ok((sent, ops.ledger.submit_priced(p.cmd, p.pricing)?))
}

/// Waits for the ledger's answer and turns it into the caller's view. A retry priced under a
/// newer rate table is still the same request when the partner sent the same quantity: it
/// answers as a replay of the original.
pub(crate) async fn finish(
    ops: &Ops,
    caller: &PartnerCaller,
    p: Sent,
    pending: Pending,
) -> Result<Posted, OpError> {
    let answer = pending
        .await
        .map_err(|_| OpError::from(LedgerError::ShuttingDown))?;
    let (tx, replayed) = match answer {
        Ok(r) => (r.tx, r.replayed),
        Err(LedgerError::Rejected(Rejection::IdempotencyConflict { original }))
            if p.pricing.is_some() =>
        {
            let tx = ops.ledger.transaction(original)?.ok_or_else(|| {
                OpError::new(
                    Kind::Internal,
                    "idempotency record names a missing transaction",
                )
            })?;
            if !replay::same_priced_request(&tx, &p.pricing, p.kind, p.member) {
                return Err(Rejection::IdempotencyConflict { original }.into());
            }
            (std::sync::Arc::new(tx), true)
        }
        Err(LedgerError::Rejected(r @ Rejection::MemberMerged { .. })) => {
            return Err(merged_card(
                ops,
                caller,
                p.member,
                p.member_ref.as_deref(),
                r,
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if !replayed {
        count_points(caller.partner, &tx);
    }
    let member_ref = match p.member_ref {
        Some(r) => Some(r),
        None => match p.member {
            Some(m) => reference_of(ops, caller, m)?,
            None => None,
        },
    };
    Ok(Posted {
        tx,
        member_ref,
        replayed,
    })
}

fn count_points(partner: PartnerId, tx: &Transaction) {
    let label = partner.0.to_string();
    match &tx.kind {
        TxKind::Earn {
            points,
            awards,
            guard,
            ..
        } => {
            let bonus: i64 = awards.iter().map(|a| a.points.0).sum();
            if bonus > 0 {
                metrics::counter!("points_bonus_total", "partner" => label.clone())
                    .increment(bonus as u64);
            }
            for (k, pct) in guard.iter().flat_map(|g| g.crossed.iter()) {
                // Journaled on this transaction; the members-and-events outbox delivers it.
                tracing::warn!(scope = ?k.scope, period = %crate::programme::guard::period_label(k.period),
                    percent_of_ceiling = pct, transaction = %tx.id, "points budget threshold crossed");
                metrics::counter!("budget_thresholds_crossed_total", "partner" => label.clone())
                    .increment(1);
            }
            metrics::counter!("points_issued_total", "partner" => label).increment(points.0 as u64)
        }
        TxKind::Burn { points, .. } => {
            metrics::counter!("points_redeemed_total", "partner" => label)
                .increment(points.0 as u64)
        }
        _ => {}
    }
}

pub async fn execute(ops: &Ops, caller: &PartnerCaller, p: Prepared) -> Result<Posted, OpError> {
    let (sent, pending) = submit(ops, p)?;
    finish(ops, caller, sent, pending).await
}

/// A command for a member merged away, named by the partner's reference: another gateway moved
/// the reference to the survivor after this one cached it. Forgets the cached link; when the
/// store names another member now, the partner's retry (same reference, safe) posts to it.
fn merged_card(
    ops: &Ops,
    caller: &PartnerCaller,
    member: Option<MemberId>,
    reference: Option<&str>,
    r: Rejection,
) -> OpError {
    let Some(reference) = reference else {
        return r.into();
    };
    ops.registry.forget_link(caller.partner, reference);
    match ops.registry.member_of(caller.partner, reference) {
        Ok(Some(now)) if Some(now) != member => OpError::new(
            Kind::Unavailable,
            "the member was merged into another; retry, and the request posts to the survivor",
        )
        .retry_after(1),
        _ => r.into(),
    }
}

/// Longest hold timeout, in seconds: the ledger's default programme limit of 30 days.
pub const HOLD_TIMEOUT_SECONDS_MAX: u32 = 30 * 86_400;

const _: () = assert!(HOLD_TIMEOUT_SECONDS_MAX as u64 * 1000 <= u32::MAX as u64);

/// A hold timeout of 1 to [`HOLD_TIMEOUT_SECONDS_MAX`] seconds, in milliseconds.
fn check_timeout(seconds: u32) -> Result<u32, OpError> {
    if seconds == 0 || seconds > HOLD_TIMEOUT_SECONDS_MAX {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("timeout_seconds must be 1 to {HOLD_TIMEOUT_SECONDS_MAX}"),
        ));
    }
    Ok(seconds * 1000)
}
