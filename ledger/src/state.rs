//! The posting engine: the ledger's rules as a pure state machine.
//!
//! [`State::decide`] checks a command against the state and builds the [`Transaction`] it would
//! commit, without changing anything. [`State::apply`] changes the state by a transaction's
//! recorded effects. The writer calls both; restart replay and the audit call only `apply`, so
//! there is one way state changes.

use crate::error::Rejection;
use crate::model::{
    Amount, Command, Digest, HoldEnd, IdemKey, LotChange, LotId, MemberAfter, Policy, Posting,
    Scope, Transaction, TxKind,
};
use crate::types::{
    AccountId, ClawbackPolicy, Contract, Currency, MemberId, Money, PartnerId, Points, Timestamp,
    TxId,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// An expiry lot: points earned together that expire together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// Identity.
    pub id: LotId,
    /// Expiry; `None` never expires.
    pub expires_at: Option<Timestamp>,
    /// Points left in the lot.
    pub remaining: Points,
}

impl Lot {
    /// Lots are consumed in this order: soonest expiry first, never-expiring last.
    fn order(&self) -> (bool, Timestamp, LotId) {
        (
            self.expires_at.is_none(),
            self.expires_at.unwrap_or_default(),
            self.id,
        )
    }
}

/// A member's working state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberState {
    /// Sum of the member's postings.
    pub posted: Points,
    /// Sum of the member's open holds.
    pub held: Points,
    /// Open lots in consumption order; they sum to `max(posted, 0)`.
    pub lots: Vec<Lot>,
    /// The member's latest transaction: the head of its chain through the journal.
    pub last: Option<TxId>,
}

impl MemberState {
    /// Posted minus held: what a burn, hold or transfer may take.
    pub fn available(&self) -> Points {
        Points(self.posted.0 - self.held.0)
    }
}

/// An open hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldState {
    /// Member whose points are held.
    pub member: MemberId,
    /// Holding partner.
    pub partner: PartnerId,
    /// Points reserved.
    pub points: Points,
    /// When it voids itself.
    pub expires_at: Timestamp,
}

/// An account's balance per asset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Balance {
    /// Points.
    pub points: Points,
    /// Money per currency.
    pub money: Vec<(Currency, Decimal)>,
}

impl Balance {
    /// Adds one leg's amount.
    pub fn add(&mut self, amount: Amount) {
        match amount {
            Amount::Points(p) => self.points.0 += p.0,
            Amount::Money(m) => match self.money.iter_mut().find(|(c, _)| *c == m.currency) {
                Some((_, v)) => *v += m.amount,
                None => self.money.push((m.currency, m.amount)),
            },
        }
    }
}

/// What a reversal of an earn or burn may still undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reversed {
    /// Partner-issued (earn) or burned points already reversed.
    pub points: Points,
    /// Bonus points already reversed (earns only).
    pub bonus: Points,
}

/// The maps of the working state: foldhash, seeded per process (so member ids chosen by a
/// partner cannot be picked to collide), and cheaper than the standard SipHash on the hot path.
pub type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The whole working state of the ledger. Owned by the single writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Enrolled members.
    pub members: Map<MemberId, MemberState>,
    /// Balances of every account except members' (whose posted points live in `members`).
    pub accounts: Map<AccountId, Balance>,
    /// Partner contracts.
    pub contracts: Map<PartnerId, Contract>,
    /// Open holds.
    pub holds: Map<TxId, HoldState>,
    /// Open holds by timeout.
    pub hold_timeouts: BTreeSet<(Timestamp, TxId)>,
    /// Amounts reversed so far, per original earn or burn.
    pub reversed: Map<TxId, Reversed>,
    /// Programme settings.
    pub policy: Policy,
}

/// Where the engine reads transactions it no longer holds in memory.
pub trait History {
    /// The committed transaction `id`, if any.
    fn transaction(&self, id: TxId) -> Result<Option<Transaction>, crate::LedgerError>;
}

impl State {
    /// An empty ledger under `policy`.
    pub fn new(policy: Policy) -> State {
        State {
            policy,
            ..State::default()
        }
    }

    /// A member's state, if enrolled.
    pub fn member(&self, m: MemberId) -> Option<&MemberState> {
        self.members.get(&m)
    }

    /// Checks `cmd` and builds the transaction it commits as `id` at `at`. Changes nothing.
    pub fn decide(
        &self,
        cmd: &Command,
        digest: Digest,
        id: TxId,
        at: Timestamp,
        history: &dyn History,
    ) -> Result<Transaction, DecideError> {
        let mut b = Builder::new(self, cmd.key().clone(), digest, id, at);
        let kind = match cmd {
            Command::SetContract { key, contract } => {
                require_operator(key)?;
                validate_contract(contract)?;
                TxKind::ContractSet(contract.clone())
            }
            Command::Enrol { member, .. } => {
                if self.members.contains_key(member) {
                    return Err(Rejection::MemberExists(*member).into());
                }
                b.touch(*member);
                TxKind::Enrolled { member: *member }
            }
            Command::Earn {
                key,
                member,
                partner,
                points,
                bonus,
            } => {
                require_partner(key, *partner)?;
                self.check_points(*points)?;
                if bonus.0 < 0 || bonus.0 > self.policy.points_per_command_max {
                    return Err(
                        Rejection::InvalidAmount(format!("bonus {bonus} out of range")).into(),
                    );
                }
                let contract = self.contract(*partner)?;
                self.require_member(*member)?;
                let price = Money::new(contract.issuance_price_per_point, contract.currency);
                b.credit(
                    *member,
                    AccountId::PartnerIssuance(*partner),
                    *points,
                    contract.lot_expiry(at),
                )?;
                b.credit(
                    *member,
                    AccountId::Promotions,
                    *bonus,
                    contract.lot_expiry(at),
                )?;
                b.money(
                    AccountId::PartnerIssuance(*partner),
                    AccountId::Float,
                    *points,
                    price,
                );
                TxKind::Earn {
                    member: *member,
                    partner: *partner,
                    points: *points,
                    bonus: *bonus,
                    price_per_point: price,
                }
            }
            Command::Burn {
                key,
                member,
                partner,
                points,
            } => {
                require_partner(key, *partner)?;
                self.check_points(*points)?;
                let contract = self.contract(*partner)?;
                self.require_available(*member, *points)?;
                let price = Money::new(contract.redemption_price_per_point, contract.currency);
                b.debit(*member, AccountId::PartnerRedemption(*partner), *points)?;
                b.money(
                    AccountId::Float,
                    AccountId::PartnerRedemption(*partner),
                    *points,
                    price,
                );
                TxKind::Burn {
                    member: *member,
                    partner: *partner,
                    points: *points,
                    price_per_point: price,
                    hold: None,
                    released: Points::ZERO,
                }
            }
            Command::Hold {
                key,
                member,
                partner,
                points,
                timeout_ms,
            } => {
                require_partner(key, *partner)?;
                self.check_points(*points)?;
                self.contract(*partner)?;
                if *timeout_ms == 0 || *timeout_ms > self.policy.hold_timeout_ms_max {
                    return Err(Rejection::Invalid(format!(
                        "hold timeout must be 1..={} ms",
                        self.policy.hold_timeout_ms_max
                    ))
                    .into());
                }
                self.require_available(*member, *points)?;
                b.touch(*member);
                TxKind::Hold {
                    member: *member,
                    partner: *partner,
                    points: *points,
                    expires_at: at.plus_ms(i64::from(*timeout_ms)),
                }
            }
            Command::Capture { key, hold, points } => {
                let h = self.open_hold(key, *hold)?;
                let amount = points.unwrap_or(h.points);
                self.check_points(amount)?;
                if amount > h.points {
                    return Err(Rejection::CaptureExceedsHold {
                        held: h.points,
                        requested: amount,
                    }
                    .into());
                }
                let m = self.require_member(h.member)?;
                if m.posted < amount {
                    // A clawback ate into the held points.
                    return Err(Rejection::InsufficientPoints {
                        available: m.posted,
                        requested: amount,
                    }
                    .into());
                }
                let contract = self.contract(h.partner)?;
                let price = Money::new(contract.redemption_price_per_point, contract.currency);
                b.debit(h.member, AccountId::PartnerRedemption(h.partner), amount)?;
                b.money(
                    AccountId::Float,
                    AccountId::PartnerRedemption(h.partner),
                    amount,
                    price,
                );
                TxKind::Burn {
                    member: h.member,
                    partner: h.partner,
                    points: amount,
                    price_per_point: price,
                    hold: Some(*hold),
                    released: Points(h.points.0 - amount.0),
                }
            }
            Command::Void { key, hold } => {
                let h = self.open_hold(key, *hold)?;
                b.touch(h.member);
                let end = if key.scope == Scope::System {
                    HoldEnd::Expired
                } else {
                    HoldEnd::Voided
                };
                TxKind::Void {
                    hold: *hold,
                    member: h.member,
                    points: h.points,
                    end,
                }
            }
            Command::Reverse {
                key,
                original,
                points,
            } => {
                return self.decide_reversal(b, key, *original, *points, history);
            }
            Command::Transfer {
                from, to, points, ..
            } => {
                self.check_points(*points)?;
                if from == to {
                    return Err(Rejection::Invalid("transfer to the same member".into()).into());
                }
                self.require_member(*to)?;
                self.require_available(*from, *points)?;
                b.transfer(*from, *to, *points)?;
                TxKind::Transfer {
                    from: *from,
                    to: *to,
                    points: *points,
                }
            }
            Command::Adjust {
                key,
                member,
                points,
                reason,
                operator,
            } => {
                require_operator(key)?;
                if points.0 == 0 || points.0.abs() > self.policy.points_per_command_max {
                    return Err(Rejection::InvalidAmount(
                        "adjustment must be non-zero and within the per-command limit".into(),
                    )
                    .into());
                }
                if reason.trim().is_empty()
                    || reason.len() > 500
                    || operator.trim().is_empty()
                    || operator.len() > 128
                {
                    return Err(Rejection::Invalid(
                        "an adjustment needs a reason (up to 500 bytes) and an operator".into(),
                    )
                    .into());
                }
                if points.0 > 0 {
                    self.require_member(*member)?;
                    b.credit(*member, AccountId::Adjustments, *points, None)?;
                } else {
                    let take = Points(-points.0);
                    self.require_available(*member, take)?;
                    b.debit(*member, AccountId::Adjustments, take)?;
                }
                TxKind::Adjust {
                    member: *member,
                    points: *points,
                    reason: reason.clone(),
                    operator: operator.clone(),
                }
            }
        };
        Ok(b.finish(kind))
    }

    fn decide_reversal(
        &self,
        mut b: Builder<'_>,
        key: &IdemKey,
        original: TxId,
        points: Option<Points>,
        history: &dyn History,
    ) -> Result<Transaction, DecideError> {
        let orig = history
            .transaction(original)
            .map_err(DecideError::Failed)?
            .ok_or(Rejection::UnknownTransaction(original))?;
        let done = self.reversed.get(&original).copied().unwrap_or_default();
        match &orig.kind {
            TxKind::Earn {
                member,
                partner,
                points: issued,
                bonus,
                price_per_point,
            } => {
                visible_to(key, *partner, original)?;
                let remaining = Points(issued.0 - done.points.0);
                let n = self.reversal_amount(points, remaining)?;
                // The bonus is reversed in proportion; the last reversal takes what is left.
                let bonus_n = if n == remaining {
                    Points(bonus.0 - done.bonus.0)
                } else {
                    Points(((i128::from(bonus.0) * i128::from(n.0)) / i128::from(issued.0)) as i64)
                };
                let total = Points(n.0 + bonus_n.0);
                let m = self.require_member(*member)?;
                let available = m.available().0.max(0);
                let shortfall = Points((total.0 - available).max(0));
                if shortfall.is_positive() && self.policy.clawback == ClawbackPolicy::Reject {
                    return Err(Rejection::ClawbackRejected { shortfall }.into());
                }
                b.take_for_reversal(
                    *member,
                    LotId { tx: original, n: 0 },
                    AccountId::PartnerIssuance(*partner),
                    n,
                )?;
                b.take_for_reversal(
                    *member,
                    LotId { tx: original, n: 0 },
                    AccountId::Promotions,
                    bonus_n,
                )?;
                b.money(
                    AccountId::Float,
                    AccountId::PartnerIssuance(*partner),
                    n,
                    *price_per_point,
                );
                Ok(b.finish(TxKind::Reversal {
                    original,
                    member: *member,
                    partner: *partner,
                    points: n,
                    bonus: bonus_n,
                    clawback: shortfall,
                }))
            }
            TxKind::Burn {
                member,
                partner,
                points: burned,
                price_per_point,
                ..
            } => {
                visible_to(key, *partner, original)?;
                let remaining = Points(burned.0 - done.points.0);
                let n = self.reversal_amount(points, remaining)?;
                self.require_member(*member)?;
                b.restore(
                    *member,
                    AccountId::PartnerRedemption(*partner),
                    &orig,
                    done.points,
                    n,
                )?;
                b.money(
                    AccountId::PartnerRedemption(*partner),
                    AccountId::Float,
                    n,
                    *price_per_point,
                );
                Ok(b.finish(TxKind::Reversal {
                    original,
                    member: *member,
                    partner: *partner,
                    points: n,
                    bonus: Points::ZERO,
                    clawback: Points::ZERO,
                }))
            }
            // A partner cannot see transactions that are not its earns or burns.
            _ if matches!(key.scope, Scope::Partner(_)) => {
                Err(Rejection::UnknownTransaction(original).into())
            }
            _ => Err(Rejection::NotReversible(original).into()),
        }
    }

    fn reversal_amount(
        &self,
        requested: Option<Points>,
        remaining: Points,
    ) -> Result<Points, Rejection> {
        let n = requested.unwrap_or(remaining);
        if remaining.0 <= 0 {
            return Err(Rejection::ReversalExceedsOriginal {
                remaining,
                requested: n,
            });
        }
        self.check_points(n)?;
        if n > remaining {
            return Err(Rejection::ReversalExceedsOriginal {
                remaining,
                requested: n,
            });
        }
        Ok(n)
    }

    fn check_points(&self, p: Points) -> Result<(), Rejection> {
        if p.0 <= 0 {
            return Err(Rejection::InvalidAmount(format!(
                "points must be positive, got {}",
                p.0
            )));
        }
        if p.0 > self.policy.points_per_command_max {
            return Err(Rejection::InvalidAmount(format!(
                "points {} above the per-command limit {}",
                p.0, self.policy.points_per_command_max
            )));
        }
        Ok(())
    }

    fn contract(&self, p: PartnerId) -> Result<&Contract, Rejection> {
        self.contracts.get(&p).ok_or(Rejection::UnknownPartner(p))
    }

    fn require_member(&self, m: MemberId) -> Result<&MemberState, Rejection> {
        self.members.get(&m).ok_or(Rejection::UnknownMember(m))
    }

    fn require_available(&self, m: MemberId, p: Points) -> Result<(), Rejection> {
        let s = self.require_member(m)?;
        if s.available() < p {
            return Err(Rejection::InsufficientPoints {
                available: s.available(),
                requested: p,
            });
        }
        Ok(())
    }

    fn open_hold(&self, key: &IdemKey, hold: TxId) -> Result<HoldState, DecideError> {
        match self.holds.get(&hold) {
            Some(h) => {
                visible_to(key, h.partner, hold)?;
                Ok(*h)
            }
            None => Err(Rejection::HoldNotOpen { hold }.into()),
        }
    }

    /// Changes the state by the recorded effects of `tx`: the only way the state changes (the
    /// writer, recovery and the audit all come through here, or through its two halves).
    ///
    /// Panics if the effects contradict the state (a lot consumed that does not exist): that is
    /// a broken invariant, and continuing would corrupt the ledger.
    pub fn apply(&mut self, tx: &Transaction) {
        self.apply_to_members(tx, |_| true);
        self.apply_to_rest(tx);
    }

    /// Applies what `tx` does to the members `include` accepts: their posted points, held
    /// points and lots. Everything it needs is in the transaction itself, so recovery can
    /// bring a stored member forward from its own checkpoint without the rest of the state.
    pub fn apply_to_members(&mut self, tx: &Transaction, include: impl Fn(MemberId) -> bool) {
        for p in &tx.postings {
            if let (AccountId::Member(m), Amount::Points(x)) = (p.account, p.amount) {
                if include(m) {
                    self.members.entry(m).or_default().posted.0 += x.0;
                }
            }
        }
        for c in tx.lots.iter().filter(|c| include(c.member)) {
            apply_lot(self.members.entry(c.member).or_default(), c);
        }
        if let Some((m, delta)) = held_change(&tx.kind).filter(|(m, _)| include(*m)) {
            self.members.entry(m).or_default().held.0 += delta;
        }
        for m in tx.members().filter(|m| include(*m)) {
            self.members.entry(m).or_default().last = Some(tx.id);
        }
    }

    /// Applies what `tx` does to everything but members: other accounts, contracts, holds,
    /// hold timeouts and reversal totals.
    pub fn apply_to_rest(&mut self, tx: &Transaction) {
        for p in &tx.postings {
            if !p.account.is_member() {
                self.accounts.entry(p.account).or_default().add(p.amount);
            }
        }
        match &tx.kind {
            TxKind::ContractSet(c) => {
                self.contracts.insert(c.partner, c.clone());
            }
            TxKind::Hold {
                member,
                partner,
                points,
                expires_at,
            } => {
                self.holds.insert(
                    tx.id,
                    HoldState {
                        member: *member,
                        partner: *partner,
                        points: *points,
                        expires_at: *expires_at,
                    },
                );
                self.hold_timeouts.insert((*expires_at, tx.id));
            }
            TxKind::Burn {
                hold: Some(hold), ..
            }
            | TxKind::Void { hold, .. } => {
                let h = self
                    .holds
                    .remove(hold)
                    .expect("journal closes only open holds");
                self.hold_timeouts.remove(&(h.expires_at, *hold));
                // `apply_to_members` releases the points the closing transaction names.
                debug_assert_eq!(
                    Some((h.member, h.points)),
                    match &tx.kind {
                        TxKind::Void { member, points, .. } => Some((*member, *points)),
                        TxKind::Burn {
                            member,
                            points,
                            released,
                            ..
                        } => Some((*member, Points(points.0 + released.0))),
                        _ => None,
                    },
                    "a closing transaction names its hold's member and points"
                );
            }
            TxKind::Reversal {
                original,
                points,
                bonus,
                ..
            } => {
                let r = self.reversed.entry(*original).or_default();
                r.points.0 += points.0;
                r.bonus.0 += bonus.0;
            }
            _ => {}
        }
    }

    /// Open holds whose timeout is at or before `now`, oldest first, at most `limit`.
    pub fn expired_holds(&self, now: Timestamp, limit: usize) -> Vec<TxId> {
        self.hold_timeouts
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, id)| *id)
            .collect()
    }
}

/// How a transaction of kind `kind` changes a member's held points: the member and the change
/// (an enrolment names its new member with no change).
fn held_change(kind: &TxKind) -> Option<(MemberId, i64)> {
    match kind {
        TxKind::Enrolled { member } => Some((*member, 0)),
        TxKind::Hold { member, points, .. } => Some((*member, points.0)),
        TxKind::Burn {
            member,
            points,
            hold: Some(_),
            released,
            ..
        } => Some((*member, -(points.0 + released.0))),
        TxKind::Void { member, points, .. } => Some((*member, -points.0)),
        _ => None,
    }
}

fn apply_lot(m: &mut MemberState, c: &LotChange) {
    match m.lots.iter().position(|l| l.id == c.lot) {
        Some(i) => {
            m.lots[i].remaining.0 += c.delta.0;
            assert!(
                m.lots[i].remaining.0 >= 0,
                "lot {:?} of member {} went negative",
                c.lot,
                c.member.0
            );
            if m.lots[i].remaining.0 == 0 {
                m.lots.remove(i);
            }
        }
        None => {
            assert!(
                c.delta.0 > 0,
                "journal consumes lot {:?} that member {} does not have",
                c.lot,
                c.member.0
            );
            let lot = Lot {
                id: c.lot,
                expires_at: c.expires_at,
                remaining: c.delta,
            };
            let at = m.lots.partition_point(|l| l.order() < lot.order());
            m.lots.insert(at, lot);
        }
    }
}

/// Why `decide` did not produce a transaction.
#[derive(Debug)]
pub enum DecideError {
    /// The command breaks a rule.
    Rejected(Rejection),
    /// The engine could not look something up.
    Failed(crate::LedgerError),
}

impl From<Rejection> for DecideError {
    fn from(r: Rejection) -> Self {
        DecideError::Rejected(r)
    }
}

fn require_operator(key: &IdemKey) -> Result<(), Rejection> {
    match key.scope {
        Scope::Operator => Ok(()),
        _ => Err(Rejection::Invalid(
            "this command needs an operator key".into(),
        )),
    }
}

fn require_partner(key: &IdemKey, partner: PartnerId) -> Result<(), Rejection> {
    match key.scope {
        Scope::Partner(p) if p == partner => Ok(()),
        Scope::Operator => Ok(()),
        _ => Err(Rejection::Invalid(format!(
            "key scope {:?} cannot act for partner {}",
            key.scope, partner.0
        ))),
    }
}

/// A partner sees only its own transactions; others answer as unknown.
fn visible_to(key: &IdemKey, owner: PartnerId, id: TxId) -> Result<(), Rejection> {
    match key.scope {
        Scope::Partner(p) if p != owner => Err(Rejection::UnknownTransaction(id)),
        _ => Ok(()),
    }
}

fn validate_contract(c: &Contract) -> Result<(), Rejection> {
    if c.issuance_price_per_point.is_sign_negative()
        || c.redemption_price_per_point.is_sign_negative()
    {
        return Err(Rejection::InvalidAmount(
            "contract prices must not be negative".into(),
        ));
    }
    if c.issuance_price_per_point.scale() > 10 || c.redemption_price_per_point.scale() > 10 {
        return Err(Rejection::InvalidAmount(
            "contract prices allow at most 10 decimal places".into(),
        ));
    }
    Ok(())
}

/// Accumulates the legs of one transaction while `decide` builds it.
struct Builder<'a> {
    state: &'a State,
    tx: Transaction,
    /// Working copies of the members this transaction touches.
    touched: Vec<(MemberId, MemberState)>,
}

impl<'a> Builder<'a> {
    fn new(state: &'a State, key: IdemKey, digest: Digest, id: TxId, at: Timestamp) -> Builder<'a> {
        Builder {
            state,
            tx: Transaction {
                id,
                at,
                key,
                digest,
                kind: TxKind::Enrolled {
                    member: MemberId(0),
                },
                postings: Vec::new(),
                lots: Vec::new(),
                member_balances: Vec::new(),
                pricing: None,
            },
            touched: Vec::new(),
        }
    }

    fn member(&mut self, m: MemberId) -> &mut MemberState {
        let i = match self.touched.iter().position(|(id, _)| *id == m) {
            Some(i) => i,
            None => {
                let s = self.state.members.get(&m).cloned().unwrap_or_default();
                self.touched.push((m, s));
                self.touched.len() - 1
            }
        };
        &mut self.touched[i].1
    }

    fn touch(&mut self, m: MemberId) {
        self.member(m);
    }

    fn points(&mut self, account: AccountId, p: Points) {
        self.tx.postings.push(Posting {
            account,
            amount: Amount::Points(p),
        });
    }

    /// Credits `p` points from `source` to member `m`, in a new lot.
    fn credit(
        &mut self,
        m: MemberId,
        source: AccountId,
        p: Points,
        expires_at: Option<Timestamp>,
    ) -> Result<(), Rejection> {
        if p.0 == 0 {
            return Ok(());
        }
        let lot = LotId {
            tx: self.tx.id,
            n: self.tx.lots.len() as u16,
        };
        self.add_to_member(m, p, lot, expires_at)?;
        self.points(source, Points(-p.0));
        self.points(AccountId::Member(m), p);
        Ok(())
    }

    /// Adds points to a member: what is above zero goes into lot `lot`.
    fn add_to_member(
        &mut self,
        m: MemberId,
        p: Points,
        lot: LotId,
        expires_at: Option<Timestamp>,
    ) -> Result<(), Rejection> {
        let s = self.member(m);
        let before = s.posted.0;
        let after = before
            .checked_add(p.0)
            .ok_or_else(|| Rejection::InvalidAmount("balance overflow".into()))?;
        s.posted = Points(after);
        let into_lot = after.max(0) - before.max(0);
        if into_lot > 0 {
            let change = LotChange {
                member: m,
                lot,
                expires_at,
                delta: Points(into_lot),
            };
            apply_lot(s, &change);
            self.tx.lots.push(change);
        }
        Ok(())
    }

    /// Takes `p` points from member `m` to `dest`, consuming lots oldest-expiry first.
    fn debit(
        &mut self,
        m: MemberId,
        dest: AccountId,
        p: Points,
    ) -> Result<Vec<LotChange>, Rejection> {
        let taken = self.take(m, p, None);
        self.points(AccountId::Member(m), Points(-p.0));
        self.points(dest, p);
        Ok(taken)
    }

    /// Removes `p` points from member `m`'s posted balance and lots; `first` is drained first.
    fn take(&mut self, m: MemberId, p: Points, first: Option<LotId>) -> Vec<LotChange> {
        let s = self.member(m);
        let from_lots = s.posted.0.max(0) - (s.posted.0 - p.0).max(0);
        s.posted.0 -= p.0;
        let mut need = from_lots;
        let mut changes = Vec::new();
        let order: Vec<usize> = {
            let mut idx: Vec<usize> = (0..s.lots.len()).collect();
            if let Some(f) = first {
                idx.sort_by_key(|&i| s.lots[i].id != f);
            }
            idx
        };
        for i in order {
            if need == 0 {
                break;
            }
            let l = s.lots[i];
            let n = need.min(l.remaining.0);
            need -= n;
            changes.push(LotChange {
                member: m,
                lot: l.id,
                expires_at: l.expires_at,
                delta: Points(-n),
            });
        }
        debug_assert_eq!(need, 0, "lots must cover the positive balance");
        for c in &changes {
            apply_lot(s, c);
        }
        self.tx.lots.extend_from_slice(&changes);
        changes
    }

    fn take_for_reversal(
        &mut self,
        m: MemberId,
        own_lot: LotId,
        dest: AccountId,
        p: Points,
    ) -> Result<(), Rejection> {
        if p.0 == 0 {
            return Ok(());
        }
        self.take(m, p, Some(own_lot));
        self.points(AccountId::Member(m), Points(-p.0));
        self.points(dest, p);
        Ok(())
    }

    /// Gives back `n` points of burn `orig` to the lots it consumed, newest consumption first,
    /// skipping the `already` points earlier reversals restored.
    fn restore(
        &mut self,
        m: MemberId,
        source: AccountId,
        orig: &Transaction,
        already: Points,
        n: Points,
    ) -> Result<(), Rejection> {
        let consumed: Vec<LotChange> = orig
            .lots
            .iter()
            .filter(|c| c.member == m && c.delta.0 < 0)
            .copied()
            .collect();
        let mut skip = already.0;
        let mut need = n.0;
        let mut restored = 0;
        for c in consumed.iter().rev() {
            let mut avail = -c.delta.0;
            let s = avail.min(skip);
            skip -= s;
            avail -= s;
            let give = avail.min(need);
            if give > 0 {
                self.add_to_member(m, Points(give), c.lot, c.expires_at)?;
                need -= give;
                restored += give;
            }
        }
        if need > 0 {
            // The burn drew on points above its lots (a negative balance); credit the rest.
            let lot = LotId {
                tx: self.tx.id,
                n: 0,
            };
            self.add_to_member(m, Points(need), lot, None)?;
            restored += need;
        }
        self.points(source, Points(-restored));
        self.points(AccountId::Member(m), Points(restored));
        Ok(())
    }

    fn transfer(&mut self, from: MemberId, to: MemberId, p: Points) -> Result<(), Rejection> {
        let taken = self.take(from, p, None);
        self.points(AccountId::Member(from), Points(-p.0));
        self.points(AccountId::Member(to), p);
        for (n, c) in taken.iter().enumerate() {
            let lot = LotId {
                tx: self.tx.id,
                n: n as u16,
            };
            self.add_to_member(to, Points(-c.delta.0), lot, c.expires_at)?;
        }
        Ok(())
    }

    /// The money legs for `points` priced at `price` per point: `debit` gets `+value`.
    fn money(&mut self, debit: AccountId, credit: AccountId, points: Points, price: Money) {
        let value = price.amount * Decimal::from(points.0);
        if value.is_zero() {
            return;
        }
        self.tx.postings.push(Posting {
            account: debit,
            amount: Amount::Money(Money::new(value, price.currency)),
        });
        self.tx.postings.push(Posting {
            account: credit,
            amount: Amount::Money(Money::new(-value, price.currency)),
        });
    }

    fn finish(mut self, kind: TxKind) -> Transaction {
        let held = held_change(&kind);
        if let Some((m, delta)) = held {
            self.member(m).held.0 += delta;
        }
        self.tx.kind = kind;
        self.tx.member_balances = self
            .touched
            .iter()
            .map(|(m, s)| MemberAfter {
                member: *m,
                posted: s.posted,
                held: s.held,
                prev: s.last,
            })
            .collect();
        debug_assert_eq!(self.tx.imbalance(), (0, vec![]), "transactions balance");
        self.tx
    }
}
