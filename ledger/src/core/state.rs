//! The working state of the posting engine, and the one way it changes.
//!
//! [`State::decide`] (in [`rules`](crate::core::rules)) checks a command against the state and
//! builds the [`Transaction`] it would commit, without changing anything. [`State::apply`]
//! changes the state by a transaction's recorded effects. The writer calls both; restart replay
//! and the audit call only `apply`, so there is one way state changes.

use crate::core::due::DueIndex;
use crate::core::expiry::{utc_month, InForce};
use crate::core::lots::Lots;
use crate::core::model::{Amount, Command, LotChange, LotId, Policy, Transaction, TxKind};
use crate::core::programme::{
    partner_bit, CampaignId, CampaignUses, Counter, CounterKey, GuardKey, GuardTotals, MemberUse,
    PARTNER_BITS,
};
use crate::core::tiers::{TierState, Tiers};
use crate::core::transfers::{PoolLink, TransferPolicy, TransferUse};
use crate::core::types::{
    AccountId, Contract, Currency, MaybeTx, MemberId, PartnerId, Points, Timestamp, TxId,
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
    pub(crate) fn order(&self) -> (bool, Timestamp, LotId) {
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
    /// Open lots in consumption order; they sum to `max(posted, 0)`. Runs of rings: burns
    /// drain a front and earns add at a back, each in constant time however many lots a busy
    /// card holds, whatever the lifetimes of the points it earns ([`Lots`]).
    pub lots: Lots,
    /// The member's latest transaction: the head of its chain through the journal.
    pub last: MaybeTx,
    /// When the member enrolled.
    pub enrolled: Timestamp,
    /// Partners (ids below [`PARTNER_BITS`]) the member has earned at, one bit each; larger ids
    /// are [`CounterKey::EarnedAt`] counters.
    pub earned_at: u64,
    /// The member's use of each campaign, for its caps.
    pub campaigns: CampaignUses,
    /// The member's latest qualifying activity (inactivity expiry counts from it).
    pub last_activity: Timestamp,
    /// What few members have: a tier above the base, transfers given. Boxed, so a member
    /// without them costs one pointer.
    pub extras: Option<Box<MemberExtras>>,
}

/// The rarer parts of a member's state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberExtras {
    /// The member's tier.
    pub tier: TierState,
    /// Points the member has given today and this year.
    pub transfers: TransferUse,
    /// The member's household pool.
    pub pool: PoolLink,
    /// Whether the member may earn and burn: active, suspended, closed or merged away.
    pub standing: Standing,
}

/// A member's standing in the programme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Standing {
    /// Earns and burns.
    #[default]
    Active,
    /// Neither earns nor burns until reinstated; the balance is kept.
    Suspended,
    /// Closed for good: neither earns nor burns, and its balance was kept or forfeited as the
    /// programme's policy said when it closed.
    Closed,
    /// Merged into the member named: its points, lots, holds and tier moved there.
    Merged(MemberId),
}

impl Standing {
    /// The standing's name in the API and the journal's readers.
    pub fn name(&self) -> &'static str {
        match self {
            Standing::Active => "active",
            Standing::Suspended => "suspended",
            Standing::Closed => "closed",
            Standing::Merged(_) => "merged",
        }
    }
}

// Every enrolled member holds one of these in the writer's memory: its size is a budget. The
// programme's fields (enrolment time, partners earned at, campaign use, last activity, tier)
// took it from 56 to 96 bytes; a member's lots and campaign uses are on the heap. The lots
// became a ring (8 bytes more than a `Vec`), paid for by the latest transaction's id in 8 bytes
// instead of an `Option<TxId>`'s 16. Lots in runs (`Lots`, so that earns of points with
// different lifetimes each go at a run's end) took it to 104: the pointer to the runs after the
// first, which nearly every member leaves empty.
const _: () = assert!(std::mem::size_of::<MemberState>() <= 104);
// A member with a tier, transfers, a household pool or a standing other than active pays this
// too, once, on the heap (the pool link took it from 80 to 96 bytes, the standing to 104; a
// pool's member list is on the heap).
const _: () = assert!(std::mem::size_of::<MemberExtras>() <= 104);

impl MemberState {
    /// The member's tier level (0: the base level).
    pub fn tier(&self) -> u8 {
        self.extras.as_ref().map_or(0, |x| x.tier.level)
    }

    /// The member's standing (active unless suspended, closed or merged).
    pub fn standing(&self) -> Standing {
        self.extras
            .as_ref()
            .map_or(Standing::Active, |x| x.standing)
    }

    /// The rarer parts of the state, created on first use.
    pub fn extras_mut(&mut self) -> &mut MemberExtras {
        self.extras.get_or_insert_with(Default::default)
    }

    /// The members of the pool this member owns, in the order they joined (empty: it owns
    /// none).
    pub fn pool_members(&self) -> &[MemberId] {
        match self.extras.as_deref().map(|x| &x.pool) {
            Some(PoolLink::Owner(v)) => v,
            _ => &[],
        }
    }

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
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reversed {
    /// Partner-issued (earn) or burned points already reversed.
    pub points: Points,
    /// Bonus points already reversed (earns only).
    pub bonus: Points,
    /// Points of each campaign award already reversed, in the earn's award order.
    pub awards: Vec<Points>,
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
    /// Amounts reversed so far, per original earn or burn: every one in a state rebuilt from
    /// the journal; in the single path's writer and projector, a window of the latest, the
    /// others read from the store when a reversal names them (see `single::reversals`).
    pub reversed: Map<TxId, Reversed>,
    /// Programme counters: campaign budgets, guard periods, first earns at wide partner ids.
    pub counters: Map<CounterKey, Counter>,
    /// The expiry policy in force, if one was set.
    pub expiry: Option<InForce>,
    /// The transfer policy in force, if one was set.
    pub transfers: Option<TransferPolicy>,
    /// The tier policy in force, if one was set, with its calendar.
    pub tiers: Option<Tiers>,
    /// When each member with expiring points has some due: its earliest lot expiry or its
    /// inactivity deadline. Derived from the members (rebuilt at open), so never stored; kept
    /// only where `index_due` is set (the single writer's state: the projector and the audit
    /// need no index).
    pub expiry_due: DueIndex,
    /// Whether `apply` keeps `expiry_due`.
    pub index_due: bool,
    /// Programme settings.
    pub policy: Policy,
    /// The end (exclusive) of the last closed accounting period: no transaction is dated
    /// before it (zero: none closed).
    pub closed_through: Timestamp,
}

/// Where the engine reads transactions it no longer holds in memory (the journal, on the
/// write paths). The core does not know what can go wrong there: `Error` is the reader's.
pub trait History {
    /// Why a lookup failed.
    type Error;
    /// The committed transaction `id`, if any.
    fn transaction(&self, id: TxId) -> Result<Option<Transaction>, Self::Error>;
}

impl State {
    /// An empty ledger under `policy`.
    pub fn new(policy: Policy) -> State {
        State {
            policy,
            ..State::default()
        }
    }

    /// A copy of everything but the members (and their due index) and the reversal totals:
    /// what the single path's projector starts from, since the writer hands it copies of the
    /// member pages it writes, and it reads the totals it needs from the store as it goes
    /// (see `single::reversals`).
    pub fn without_members(&self) -> State {
        State {
            members: Map::default(),
            accounts: self.accounts.clone(),
            contracts: self.contracts.clone(),
            holds: self.holds.clone(),
            hold_timeouts: self.hold_timeouts.clone(),
            reversed: Map::default(),
            counters: self.counters.clone(),
            expiry: self.expiry.clone(),
            transfers: self.transfers.clone(),
            tiers: self.tiers.clone(),
            expiry_due: Default::default(),
            index_due: false,
            policy: self.policy,
            closed_through: self.closed_through,
        }
    }

    /// A member's state, if enrolled.
    pub fn member(&self, m: MemberId) -> Option<&MemberState> {
        self.members.get(&m)
    }

    /// The member whose state deciding `cmd` reads first: the one it names, or the holder of
    /// the hold it captures or voids (a reversal's member is in its original, not known here).
    pub fn member_named(&self, cmd: &Command) -> Option<MemberId> {
        match cmd {
            Command::Enrol { member, .. }
            | Command::Earn { member, .. }
            | Command::Burn { member, .. }
            | Command::Hold { member, .. }
            | Command::SetTier { member, .. }
            | Command::Expire { member, .. }
            | Command::Adjust { member, .. }
            | Command::JoinPool { member, .. }
            | Command::LeavePool { member, .. }
            | Command::SetStanding { member, .. }
            | Command::Notice { member, .. }
            | Command::Redeem { member, .. }
            | Command::Grant { member, .. } => Some(*member),
            Command::Transfer { from, .. } | Command::Merge { from, .. } => Some(*from),
            Command::Capture { hold, .. } | Command::Void { hold, .. } => {
                self.holds.get(hold).map(|h| h.member)
            }
            Command::SetContract { .. }
            | Command::Reverse { .. }
            | Command::SetExpiryPolicy { .. }
            | Command::SetTransferPolicy { .. }
            | Command::SetTierPolicy { .. }
            | Command::ClosePeriod { .. } => None,
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
        if !self.index_due {
            self.change_members(tx, &include);
            return;
        }
        // Nearly always one or two members: on the stack.
        let before: smallvec::SmallVec<[(MemberId, Option<Timestamp>); 4]> = tx
            .members()
            .filter(|m| include(*m))
            .map(|m| (m, self.members.get(&m).and_then(|s| self.deadline(s))))
            .collect();
        self.change_members(tx, &include);
        for (m, old) in before {
            let new = self.members.get(&m).and_then(|s| self.deadline(s));
            if new != old {
                if let Some(t) = old {
                    self.expiry_due.remove(t, m);
                }
                if let Some(t) = new {
                    self.expiry_due.insert(t, m);
                }
            }
        }
    }

    fn change_members(&mut self, tx: &Transaction, include: &impl Fn(MemberId) -> bool) {
        for a in tx
            .member_balances
            .iter()
            .filter(|a| a.active && include(a.member))
        {
            self.members.entry(a.member).or_default().last_activity = tx.at;
        }
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
        for (m, delta) in held_changes(&tx.kind)
            .into_iter()
            .flatten()
            .filter(|(m, _)| include(*m))
        {
            self.members.entry(m).or_default().held.0 += delta;
        }
        for m in tx.members().filter(|m| include(*m)) {
            self.members.entry(m).or_default().last = MaybeTx::some(tx.id);
        }
        match &tx.kind {
            TxKind::Enrolled { member } if include(*member) => {
                self.members.entry(*member).or_default().enrolled = tx.at;
            }
            TxKind::Earn {
                member,
                partner,
                awards,
                tier,
                ..
            } if include(*member) => {
                let s = self.members.entry(*member).or_default();
                if let Some(bit) = partner_bit(*partner) {
                    s.earned_at |= bit;
                }
                for g in awards.iter().filter(|g| g.points.is_positive()) {
                    s.campaigns.add(g.campaign, g.points, g.day, g.month);
                }
                if let Some(t) = tier {
                    let x = s.extras_mut();
                    x.tier.mark(t.0);
                    if let Some(c) = &t.1 {
                        x.tier.change(c, tx.at);
                    }
                }
            }
            TxKind::Reversal {
                member,
                tier: Some(mark),
                ..
            } if include(*member) => {
                let x = self.members.entry(*member).or_default().extras_mut();
                x.tier.mark(*mark);
            }
            TxKind::Expire {
                member,
                tier: Some(c),
                ..
            } if include(*member) => {
                let x = self.members.entry(*member).or_default().extras_mut();
                x.tier.change(c, tx.at);
            }
            TxKind::TierChanged { member, change } if include(*member) => {
                let x = self.members.entry(*member).or_default().extras_mut();
                x.tier.change(change, tx.at);
            }
            TxKind::Adjust {
                member,
                tier: Some(t),
                ..
            } if include(*member) => {
                let x = self.members.entry(*member).or_default().extras_mut();
                x.tier.mark(t.0);
                if let Some(c) = &t.1 {
                    x.tier.change(c, tx.at);
                }
            }
            _ => {}
        }
        self.change_pools(tx, include);
        self.change_standing(tx, include);
        match &tx.kind {
            TxKind::Transfer {
                from,
                points,
                fee,
                day,
                year,
                ..
            } if include(*from) => {
                let s = self.members.entry(*from).or_default();
                s.extras_mut()
                    .transfers
                    .add(Points(points.0 + fee.0), *day, *year);
            }
            TxKind::Reversal { member, awards, .. } if include(*member) => {
                let s = self.members.entry(*member).or_default();
                for b in awards.iter().filter(|b| b.room.is_positive()) {
                    s.campaigns
                        .add(b.campaign, Points(-b.room.0), b.day, b.month);
                }
            }
            _ => {}
        }
    }

    /// Standings set, and what a merge records of the survivor.
    fn change_standing(&mut self, tx: &Transaction, include: &impl Fn(MemberId) -> bool) {
        match &tx.kind {
            TxKind::StandingSet {
                member, standing, ..
            } if include(*member) => {
                self.members
                    .entry(*member)
                    .or_default()
                    .extras_mut()
                    .standing = *standing;
            }
            TxKind::Merged(m) => {
                if include(m.from) {
                    let x = self.members.entry(m.from).or_default().extras_mut();
                    x.standing = Standing::Merged(m.into);
                    x.tier = TierState::default();
                }
                if include(m.into) {
                    let s = self.members.entry(m.into).or_default();
                    s.earned_at = m.earned_at;
                    s.last_activity = m.last_activity;
                    if let Some(t) = &m.tier {
                        s.extras_mut().tier = t.clone();
                    }
                }
            }
            _ => {}
        }
    }

    /// Household pools joined and left.
    fn change_pools(&mut self, tx: &Transaction, include: &impl Fn(MemberId) -> bool) {
        match &tx.kind {
            TxKind::PoolJoined { owner, member, .. } => {
                if include(*owner) {
                    let x = self.members.entry(*owner).or_default().extras_mut();
                    match &mut x.pool {
                        PoolLink::Owner(v) => v.push(*member),
                        p => *p = PoolLink::Owner(thin_vec::thin_vec![*member]),
                    }
                }
                if include(*member) {
                    self.members.entry(*member).or_default().extras_mut().pool =
                        PoolLink::Member(*owner);
                }
            }
            TxKind::PoolLeft { owner, members } => {
                if include(*owner) {
                    let x = self.members.entry(*owner).or_default().extras_mut();
                    if let PoolLink::Owner(v) = &mut x.pool {
                        v.retain(|m| !members.contains(m));
                        if v.is_empty() {
                            x.pool = PoolLink::None;
                        }
                    }
                }
                for m in members.iter().filter(|m| include(**m)) {
                    self.members.entry(*m).or_default().extras_mut().pool = PoolLink::None;
                }
            }
            _ => {}
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
            TxKind::ExpiryPolicySet(p) => {
                self.expiry = (**p).clone().in_force(tx.at);
                self.rebuild_expiry_due();
            }
            TxKind::TransferPolicySet(p) => {
                self.transfers = Some((**p).clone());
            }
            TxKind::PeriodClosed { through, .. } => {
                self.closed_through = self.closed_through.max(*through);
            }
            TxKind::TierPolicySet(p) => {
                self.tiers = Some(Tiers::new((**p).clone()));
                self.rebuild_expiry_due();
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
            TxKind::Merged(m) => {
                for h in &m.holds {
                    self.holds
                        .get_mut(h)
                        .expect("a merge moves only open holds")
                        .member = m.into;
                }
            }
            TxKind::Reversal {
                original,
                points,
                bonus,
                awards,
                ..
            } => {
                let r = self.reversed.entry(*original).or_default();
                r.points.0 += points.0;
                r.bonus.0 += bonus.0;
                if r.awards.len() < awards.len() {
                    r.awards.resize(awards.len(), Points::ZERO);
                }
                for (done, back) in r.awards.iter_mut().zip(awards) {
                    done.0 += back.points.0;
                }
            }
            _ => {}
        }
        self.apply_counters(tx);
    }

    /// Changes the programme counters by what `tx` records ([`counter_changes`]).
    fn apply_counters(&mut self, tx: &Transaction) {
        counter_changes(tx, |key, change| match (key, change) {
            (CounterKey::Campaign(c), CounterChange::Points(p)) => self.add_awarded(c, Points(p)),
            (CounterKey::Guard(k), CounterChange::Guard { sales, value }) => {
                let t = self.guard_totals(k);
                t.sales += sales;
                t.value += value;
            }
            (CounterKey::Guard(k), CounterChange::Crossed(pct)) => {
                self.guard_totals(k).crossed.push(pct)
            }
            (key, CounterChange::Seen) => {
                self.counters.insert(key, Counter::Seen);
            }
            (key, CounterChange::Points(d)) => {
                let e = self
                    .counters
                    .entry(key)
                    .or_insert(Counter::Points(Points::ZERO));
                if let Counter::Points(p) = e {
                    p.0 += d;
                }
            }
            (key, change) => panic!("counter {key:?} cannot take {change:?}"),
        });
    }

    fn add_awarded(&mut self, c: CampaignId, p: Points) {
        let e = self
            .counters
            .entry(CounterKey::Campaign(c))
            .or_insert(Counter::Awarded(Points::ZERO));
        match e {
            Counter::Awarded(a) => a.0 += p.0,
            other => panic!("campaign counter holds {other:?}"),
        }
    }

    fn guard_totals(&mut self, k: GuardKey) -> &mut GuardTotals {
        let e = self
            .counters
            .entry(CounterKey::Guard(k))
            .or_insert(Counter::Guard(GuardTotals::default()));
        match e {
            Counter::Guard(t) => t,
            other => panic!("guard counter holds {other:?}"),
        }
    }

    /// Units a reward counter holds (see [`CounterKey::Reward`]).
    pub fn units(&self, k: CounterKey) -> u32 {
        match self.counters.get(&k) {
            Some(Counter::Points(p)) => u32::try_from(p.0).unwrap_or(u32::MAX),
            _ => 0,
        }
    }

    /// Points campaign `c` has awarded.
    pub fn awarded(&self, c: CampaignId) -> Points {
        match self.counters.get(&CounterKey::Campaign(c)) {
            Some(Counter::Awarded(p)) => *p,
            _ => Points::ZERO,
        }
    }

    /// Member `m`'s use of campaign `c`.
    pub fn campaign_use(&self, m: MemberId, c: CampaignId) -> MemberUse {
        self.members
            .get(&m)
            .map(|s| s.campaigns.get(c))
            .unwrap_or_default()
    }

    /// A guard period's totals.
    pub fn guard(&self, k: GuardKey) -> GuardTotals {
        match self.counters.get(&CounterKey::Guard(k)) {
            Some(Counter::Guard(t)) => t.clone(),
            _ => GuardTotals::default(),
        }
    }

    /// Whether member `m` has earned at `p` before.
    pub fn has_earned_at(&self, m: MemberId, p: PartnerId) -> bool {
        match partner_bit(p) {
            Some(bit) => self.members.get(&m).is_some_and(|s| s.earned_at & bit != 0),
            None => self.counters.contains_key(&CounterKey::EarnedAt(m, p)),
        }
    }

    /// When member state `s` next has points due to expire; `None`: never (no lots, a tier
    /// exempt from expiry, or no expiry dates and no inactivity policy).
    ///
    /// Also a tier review or the end of a tier override: the ledger's own work on the member
    /// falls due at the earliest of them.
    pub fn deadline(&self, s: &MemberState) -> Option<Timestamp> {
        let tier = self
            .tiers
            .as_ref()
            .zip(s.extras.as_ref())
            .and_then(|(p, x)| p.due(&x.tier));
        let expiry =
            if s.lots.is_empty() || self.expiry.as_ref().is_some_and(|p| p.exempt(s.tier())) {
                None
            } else {
                let lot = s.lots.front().and_then(|l| l.expires_at);
                let idle = self
                    .expiry
                    .as_ref()
                    .and_then(|p| p.inactivity_deadline(s.last_activity.max(s.enrolled)));
                [lot, idle].into_iter().flatten().min()
            };
        [tier, expiry].into_iter().flatten().min()
    }

    /// Rebuilds the expiry index from every member (after recovery, or a policy change).
    pub fn rebuild_expiry_due(&mut self) {
        self.rebuild_expiry_due_ahead(|_| {});
    }

    /// [`State::rebuild_expiry_due`], showing `ahead` each member's state 16 members before
    /// its deadline is read: the caller's hint to fetch what the state points to (its lots,
    /// its tier), where each of a million members would otherwise stall on those reads in turn.
    pub fn rebuild_expiry_due_ahead(&mut self, ahead: impl Fn(&MemberState)) {
        if let Some(due) = self.expiry_due_ahead(ahead) {
            self.expiry_due = due;
        }
    }

    /// The due index [`State::rebuild_expiry_due_ahead`] builds, from a shared borrow (so that
    /// other passes over the members may run beside it); `None` if this state keeps no due
    /// index.
    pub fn expiry_due_ahead(&self, ahead: impl Fn(&MemberState)) -> Option<DueIndex> {
        if !self.index_due {
            return None;
        }
        // A map not changed in between is walked in the same order each time.
        let mut lead = self.members.values();
        lead.by_ref().take(16).for_each(&ahead);
        let due: DueIndex = self
            .members
            .iter()
            .filter_map(|(m, s)| {
                if let Some(next) = lead.next() {
                    ahead(next);
                }
                self.deadline(s).map(|t| (t, *m))
            })
            .collect();
        Some(due)
    }

    /// Members with points due to expire at or before `now`, soonest first, at most `limit`,
    /// with the deadline the index holds.
    pub fn due_expiries(&mut self, now: Timestamp, limit: usize) -> Vec<(Timestamp, MemberId)> {
        self.expiry_due.due(now, limit)
    }

    /// Whether all of member state `s`'s points have expired for inactivity at `at`.
    pub fn inactive(&self, s: &MemberState, at: Timestamp) -> bool {
        self.expiry.as_ref().is_some_and(|p| {
            !p.exempt(s.tier())
                && p.inactivity_deadline(s.last_activity.max(s.enrolled))
                    .is_some_and(|d| d <= at)
        })
    }

    /// Whether `lot` of member state `s` has expired at `at` (from that instant on).
    pub fn lot_expired(&self, s: &MemberState, lot: &Lot, at: Timestamp) -> bool {
        if self.expiry.as_ref().is_some_and(|p| p.exempt(s.tier())) {
            return false;
        }
        lot.expires_at.is_some_and(|e| e <= at) || self.inactive(s, at)
    }

    /// Points of member state `s` expired at `at` but not yet moved to breakage.
    pub fn expired_points(&self, s: &MemberState, at: Timestamp) -> Points {
        if self.expiry.as_ref().is_some_and(|p| p.exempt(s.tier())) {
            return Points::ZERO;
        }
        if self.inactive(s, at) {
            return Points(s.lots.total());
        }
        Points(
            s.lots
                .iter()
                .take_while(|l| l.expires_at.is_some_and(|e| e <= at))
                .map(|l| l.remaining.0)
                .sum(),
        )
    }

    /// What member state `s` may spend at `at`: posted, less held, less expired.
    pub fn spendable(&self, s: &MemberState, at: Timestamp) -> Points {
        Points(s.posted.0 - s.held.0 - self.expired_points(s, at).0)
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

/// A change a transaction makes to one programme counter.
#[derive(Debug, Clone, Copy)]
enum CounterChange {
    /// Points added (negative: taken away): a campaign's awards, a month's expiring points.
    Points(i64),
    /// Sales and value added to a guard period.
    Guard {
        /// Sales.
        sales: Decimal,
        /// Value of points.
        value: Decimal,
    },
    /// A guard threshold crossed for the first time.
    Crossed(u8),
    /// Presence.
    Seen,
}

/// Every change `tx` records to the programme counters, handed to `out` in order: the one
/// list both applying them and finding the records to write come from. Handed over, not
/// collected: a list of them, returned and iterated, was copied twice for every transaction
/// the writer and the projector apply.
fn counter_changes(tx: &Transaction, mut out: impl FnMut(CounterKey, CounterChange)) {
    for c in &tx.lots {
        if let Some(at) = c.expires_at {
            out(
                CounterKey::Expiring(utc_month(at)),
                CounterChange::Points(c.delta.0),
            );
        }
    }
    match &tx.kind {
        TxKind::Earn {
            member,
            partner,
            awards,
            guard,
            ..
        } => {
            if partner.0 >= PARTNER_BITS {
                out(CounterKey::EarnedAt(*member, *partner), CounterChange::Seen);
            }
            for g in awards.iter().filter(|g| g.points.is_positive()) {
                out(
                    CounterKey::Campaign(g.campaign),
                    CounterChange::Points(g.points.0),
                );
            }
            if let Some(g) = guard {
                for k in &g.keys {
                    let change = CounterChange::Guard {
                        sales: g.sale,
                        value: g.value,
                    };
                    out(CounterKey::Guard(*k), change);
                }
                for (k, pct) in &g.crossed {
                    out(CounterKey::Guard(*k), CounterChange::Crossed(*pct));
                }
            }
        }
        TxKind::Redeemed(r) => {
            let id = r.claim.reward;
            out(CounterKey::Reward(id), CounterChange::Points(1));
            out(
                CounterKey::RewardMember(r.member, id),
                CounterChange::Points(1),
            );
        }
        TxKind::Reversal { awards, guard, .. } => {
            for b in awards.iter().filter(|b| b.room.is_positive()) {
                out(
                    CounterKey::Campaign(b.campaign),
                    CounterChange::Points(-b.room.0),
                );
            }
            if let Some(g) = guard {
                for k in &g.keys {
                    let change = CounterChange::Guard {
                        sales: -g.sale,
                        value: -g.value,
                    };
                    out(CounterKey::Guard(*k), change);
                }
            }
        }
        _ => {}
    }
}

/// The programme counters `tx` changes.
pub fn counters_touched(tx: &Transaction) -> Vec<CounterKey> {
    let mut keys = Vec::new();
    counter_changes(tx, |k, _| keys.push(k));
    keys
}

/// How a transaction of kind `kind` changes a member's held points: the member and the change
/// (an enrolment names its new member with no change).
/// The changes `kind` makes to members' held points (a merge moves the absorbed member's holds
/// to the survivor: two changes).
pub(crate) fn held_changes(kind: &TxKind) -> [Option<(MemberId, i64)>; 2] {
    let one = match kind {
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
        TxKind::Merged(m) if m.held.is_positive() => {
            return [Some((m.from, -m.held.0)), Some((m.into, m.held.0))]
        }
        _ => None,
    };
    [one, None]
}

pub(crate) fn apply_lot(m: &mut MemberState, c: &LotChange) {
    m.lots.apply(c);
}
