//! One transaction attempt on the cluster path: the partial state it reads (two rounds of
//! concurrent reads), the same `decide`/`apply` as the single writer on that state, and the
//! writes that follow (journal block, commit-order entry, derived records, blind totals).

use super::writer::{Decided, Item};
use crate::totals::add_totals;

use crate::codec::{self, BlockWriter, IdemRecord, MemberRecord};
use crate::core::model::{Command, IdemKey, Policy, Transaction, TxKind};
use crate::core::programme::{
    AwardRequest, Counter, CounterKey, Funder, GuardKey, GuardRequest, PARTNER_BITS,
};
use crate::core::rules::DecideError;
use crate::core::state::{History, HoldState, Reversed, State};
use crate::core::types::{Contract, MemberId, PartnerId, Timestamp, TxId};
use crate::error::{LedgerError, Rejection};
use crate::keys;
use crate::shared::records::{write_records, ClusterRecords, Touched};
use crate::store::{Txn, TxnSnapshot, WriteSet};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The work of one transaction attempt: the partial state it read, what it decided, and the
/// writes that follow.
/// The policies as last read, with their calendars: every transaction attempt reads them, and a
/// calendar is built only when the stored policy changes.
#[derive(Default)]
pub(super) struct PolicyCache {
    expiry: Option<(Vec<u8>, Option<crate::core::expiry::InForce>)>,
    tiers: Option<(Vec<u8>, crate::core::tiers::Tiers)>,
}

impl PolicyCache {
    pub(super) fn expiry(
        &mut self,
        v: &[u8],
    ) -> Result<Option<crate::core::expiry::InForce>, LedgerError> {
        if let Some((_, p)) = self.expiry.as_ref().filter(|(raw, _)| raw == v) {
            return Ok(p.clone());
        }
        let p: crate::core::expiry::StoredPolicy = codec::decode("expiry policy", v)?;
        let p = p.policy.in_force(p.since);
        self.expiry = Some((v.to_vec(), p.clone()));
        Ok(p)
    }

    pub(super) fn tiers(&mut self, v: &[u8]) -> Result<crate::core::tiers::Tiers, LedgerError> {
        if let Some((_, t)) = self.tiers.as_ref().filter(|(raw, _)| raw == v) {
            return Ok(t.clone());
        }
        let t = crate::core::tiers::Tiers::new(codec::decode("tier policy", v)?);
        self.tiers = Some((v.to_vec(), t.clone()));
        Ok(t)
    }
}

pub(super) struct Chunk<'t> {
    txn: &'t dyn Txn,
    policies: &'t mut PolicyCache,
    seq: u64,
    at: Timestamp,
    state: State,
    /// Store keys already read into `state` (present or not); never read twice, so what this
    /// transaction changed is not overwritten by a stale read.
    loaded: HashSet<Vec<u8>>,
    /// Idempotency records read, by key.
    idem: HashMap<IdemKey, Option<IdemRecord>>,
    /// Expiry of every hold seen, to clear its timeout entry when it closes.
    records: ClusterRecords,
    in_chunk: HashMap<IdemKey, usize>,
    /// Each member's expiry deadline as read, to move its `D` entry when it changes.
    deadlines: HashMap<MemberId, Option<Timestamp>>,
    /// Expiry index entries the chunk's commands were called for (see `Item::due`).
    called: Vec<(Timestamp, MemberId)>,
    /// Originals of reversals, read from the journal once per attempt.
    originals: HashMap<TxId, Transaction>,
    txs: Vec<Transaction>,
    pub(super) writes: WriteSet,
    touched: Touched,
}

/// A record a command needs before it can be decided.
pub(super) enum Need {
    Member(MemberId),
    Contract(PartnerId),
    Hold(TxId),
    Reversed(TxId),
    Counter(CounterKey),
    /// The expiry policy (every command reads it: spending depends on what has expired).
    Policy,
    /// The transfer policy (transfers read it).
    TransferPolicy,
    /// The tier policy (earns, reversals and the ledger's own reviews read it).
    TierPolicy,
    /// The end of the last closed period (every transaction reads it: none is dated before
    /// it, whatever this process's clock says).
    ClosedPeriod,
}

impl<'t> Chunk<'t> {
    pub(super) fn new(
        txn: &'t dyn Txn,
        policies: &'t mut PolicyCache,
        policy: Policy,
        seq: u64,
        at: Timestamp,
    ) -> Chunk<'t> {
        Chunk {
            txn,
            policies,
            seq,
            at,
            state: State::new(policy),
            loaded: HashSet::new(),
            idem: HashMap::new(),
            records: ClusterRecords {
                hold_expiry: HashMap::new(),
                parts: HashMap::new(),
            },
            deadlines: HashMap::new(),
            called: Vec::new(),
            in_chunk: HashMap::new(),
            originals: HashMap::new(),
            txs: Vec::new(),
            writes: WriteSet::default(),
            touched: Touched::default(),
        }
    }

    /// Reads everything the commands name, in two rounds of concurrent reads: idempotency
    /// keys, members, contracts, holds and reversal records; then what the holds and the
    /// reversed originals point at.
    pub(super) fn prefetch(&mut self, items: &[Item]) -> Result<(), LedgerError> {
        let keys: Vec<IdemKey> = items
            .iter()
            .map(|i| i.cmd.key().clone())
            .filter(|k| !self.idem.contains_key(k))
            .collect();
        let raw: Vec<Vec<u8>> = keys.iter().map(keys::idempotency).collect();
        for (k, v) in keys.into_iter().zip(self.txn.get_many(&raw)?) {
            let rec = v
                .map(|v| codec::decode::<IdemRecord>("idempotency record", &v))
                .transpose()?;
            self.idem.insert(k, rec);
        }
        self.load(vec![Need::Policy, Need::TierPolicy, Need::ClosedPeriod])?;
        let first: Vec<Need> = items.iter().flat_map(|i| needs(&i.cmd)).collect();
        self.load(first)?;
        let mut second = Vec::new();
        for item in items {
            second.extend(self.second_needs(&item.cmd)?);
        }
        self.load(second)
    }

    /// Reads what `cmd` needs (a no-op for what `prefetch` read).
    pub(super) fn load_for(&mut self, cmd: &Command) -> Result<(), LedgerError> {
        self.load(vec![Need::Policy, Need::TierPolicy, Need::ClosedPeriod])?;
        self.load(needs(cmd))?;
        let more = self.second_needs(cmd)?;
        self.load(more)
    }

    /// The records a hold or a reversed original points at.
    pub(super) fn second_needs(&mut self, cmd: &Command) -> Result<Vec<Need>, LedgerError> {
        Ok(match cmd {
            Command::Capture { hold, .. } | Command::Void { hold, .. } => {
                match self.state.holds.get(hold) {
                    Some(h) => vec![Need::Member(h.member), Need::Contract(h.partner)],
                    None => vec![],
                }
            }
            Command::Reverse { original, .. } => {
                let id = *original;
                if id.seq() != self.seq && !self.originals.contains_key(&id) {
                    // Journal entries never change: read once, without a conflict range.
                    if let Some(tx) = crate::journal::find_transaction(&TxnSnapshot(self.txn), id)?
                    {
                        self.originals.insert(id, tx);
                    }
                }
                match self.transaction(id)? {
                    Some(tx) => reversal_needs(&tx),
                    None => vec![],
                }
            }
            // A pool owner's burn may draw on its household; a member leaving changes its
            // owner's record, an owner leaving every member's.
            Command::Burn { member, .. } => self.pool_needs(*member, false),
            Command::LeavePool { member, .. } => self.pool_needs(*member, true),
            Command::Merge { from, .. } => self.holds_of(*from)?,
            _ => vec![],
        })
    }

    /// The open holds of member `m` (a merge moves them). No index names a member's holds, so
    /// this scans the open holds without conflicts and reads `m`'s with them: a hold opened
    /// meanwhile changes `m`'s record, which the merge read, and a capture or void changes the
    /// hold's.
    fn holds_of(&self, m: MemberId) -> Result<Vec<Need>, LedgerError> {
        if !self
            .state
            .members
            .get(&m)
            .is_some_and(|s| s.held.is_positive())
        {
            return Ok(vec![]);
        }
        const PAGE: usize = 10_000;
        let mut out = Vec::new();
        let mut begin = vec![keys::HOLD];
        let end = vec![keys::HOLD + 1];
        loop {
            let page = self.txn.range_snapshot(&begin, &end, PAGE)?;
            for (k, v) in &page {
                let h: HoldState = codec::decode("hold", v)?;
                if h.member == m {
                    let id = k[1..]
                        .try_into()
                        .map(|b: [u8; 8]| TxId(u64::from_be_bytes(b)))
                        .map_err(|_| LedgerError::Corrupt("hold key".into()))?;
                    out.push(Need::Hold(id));
                }
            }
            match page.last() {
                Some((k, _)) if page.len() == PAGE => {
                    begin = k.clone();
                    begin.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    /// The other members of `m`'s household pool: the members it owns, and (with `owner`) the
    /// owner it belongs to.
    fn pool_needs(&self, m: MemberId, owner: bool) -> Vec<Need> {
        use crate::core::transfers::PoolLink;
        match self.state.members.get(&m).and_then(|s| s.extras.as_deref()) {
            Some(x) => match &x.pool {
                PoolLink::Owner(v) => v.iter().map(|m| Need::Member(*m)).collect(),
                PoolLink::Member(o) if owner => vec![Need::Member(*o)],
                _ => vec![],
            },
            None => vec![],
        }
    }

    /// Reads the records in `needs` not read yet, together, into the partial state.
    pub(super) fn load(&mut self, needs: Vec<Need>) -> Result<(), LedgerError> {
        let mut wanted: Vec<(Vec<u8>, Need)> = Vec::new();
        for n in needs {
            let k = match &n {
                Need::Member(m) => keys::member(*m),
                Need::Contract(p) => keys::contract(*p),
                Need::Hold(h) => keys::hold(*h),
                Need::Reversed(t) => keys::reversed(*t),
                Need::Counter(c) => keys::counter(c),
                Need::Policy => keys::expiry_policy(),
                Need::TransferPolicy => keys::transfer_policy(),
                Need::TierPolicy => keys::tier_policy(),
                Need::ClosedPeriod => keys::closed_period(),
            };
            if self.loaded.insert(k.clone()) {
                wanted.push((k, n));
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let raw: Vec<Vec<u8>> = wanted.iter().map(|(k, _)| k.clone()).collect();
        for ((_, need), v) in wanted.into_iter().zip(self.txn.get_many(&raw)?) {
            let Some(v) = v else { continue };
            match need {
                Need::Member(m) => {
                    let n = MemberRecord::parts_after(&v);
                    let parts = if n == 0 {
                        Vec::new()
                    } else {
                        let keys: Vec<Vec<u8>> = (1..=n).map(|i| keys::member_part(m, i)).collect();
                        self.txn
                            .get_many(&keys)?
                            .into_iter()
                            .map(|p| {
                                p.ok_or_else(|| {
                                    LedgerError::Corrupt(format!(
                                        "member {} record part missing",
                                        m.0
                                    ))
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?
                    };
                    self.records.parts.insert(m, n);
                    let r = MemberRecord::from_values(&v, &parts)?;
                    self.deadlines.insert(m, self.state.deadline(&r.state));
                    self.state.members.insert(m, r.state);
                }
                Need::Policy => {
                    self.state.expiry = self.policies.expiry(&v)?;
                }
                Need::ClosedPeriod => {
                    let through = codec::decode_closed_period(&v)?;
                    self.state.closed_through = through;
                    self.at = self.at.max(through);
                }
                Need::TransferPolicy => {
                    self.state.transfers = Some(codec::decode("transfer policy", &v)?);
                }
                Need::TierPolicy => {
                    self.state.tiers = Some(self.policies.tiers(&v)?);
                }
                Need::Contract(p) => {
                    let c: Contract = codec::decode("contract", &v)?;
                    self.state.contracts.insert(p, c);
                }
                Need::Hold(id) => {
                    let h: HoldState = codec::decode("hold", &v)?;
                    self.records.hold_expiry.insert(id, h.expires_at);
                    self.state.hold_timeouts.insert((h.expires_at, id));
                    self.state.holds.insert(id, h);
                }
                Need::Reversed(id) => {
                    let r: Reversed = codec::decode("reversed record", &v)?;
                    self.state.reversed.insert(id, r);
                }
                Need::Counter(k) => {
                    let c: Counter = codec::decode("programme counter", &v)?;
                    self.state.counters.insert(k, c);
                }
            }
        }
        Ok(())
    }

    pub(super) fn transaction(&self, id: TxId) -> Result<Option<Transaction>, LedgerError> {
        ChunkHistory {
            txn: self.txn,
            txs: &self.txs,
            seq: self.seq,
            originals: &self.originals,
        }
        .transaction(id)
    }

    /// Decides one command on the partial state; a new transaction joins the chunk.
    pub(super) fn process(&mut self, item: &Item) -> Decided {
        self.called.extend(item.due);
        match self.try_process(item) {
            Ok(d) => d,
            Err(e) => Decided::Failed(Arc::new(e)),
        }
    }

    pub(super) fn try_process(&mut self, item: &Item) -> Result<Decided, LedgerError> {
        let cmd = &item.cmd;
        let key = cmd.key();
        if key.reference.is_empty() || key.reference.len() > IdemKey::REFERENCE_LEN_MAX {
            return Err(Rejection::ReferenceLength {
                len_max: IdemKey::REFERENCE_LEN_MAX,
            }
            .into());
        }
        let digest = item.digest;
        let existing = match self.in_chunk.get(key) {
            Some(&i) => Some((self.txs[i].id, self.txs[i].digest)),
            None => self
                .idem
                .get(key)
                .copied()
                .flatten()
                .map(|r| (r.tx, r.digest)),
        };
        if let Some((id, d)) = existing {
            if d != digest {
                return Err(Rejection::IdempotencyConflict { original: id }.into());
            }
            return match self.transaction(id)? {
                Some(tx) => Ok(Decided::Replay(Box::new(tx))),
                None => Err(LedgerError::Corrupt(format!(
                    "idempotency key {key} names missing transaction {id}"
                ))),
            };
        }
        self.load_for(cmd)?;
        let id = TxId::in_batch(self.seq, self.txs.len());
        let history = ChunkHistory {
            txn: self.txn,
            txs: &self.txs,
            seq: self.seq,
            originals: &self.originals,
        };
        let mut tx = match self.state.decide(cmd, digest, id, self.at, &history) {
            Ok(tx) => tx,
            Err(DecideError::Rejected(r)) => return Err(r.into()),
            Err(DecideError::Failed(e)) => return Err(e),
        };
        tx.pricing = item.pricing.clone();
        if let TxKind::Hold { expires_at, .. } = tx.kind {
            self.records.hold_expiry.insert(tx.id, expires_at);
        }
        self.state.apply(&tx);
        self.touched.members.extend(tx.members());
        self.touched.note_records(&tx);
        // Points expiring per month are blind-added: every earn would conflict on its month.
        self.touched
            .counters
            .retain(|k| !matches!(k, CounterKey::Expiring(_)));
        for c in &tx.lots {
            if let Some(at) = c.expires_at {
                let month = crate::core::expiry::utc_month(at);
                self.writes.add(&keys::expiring_total(month), c.delta.0);
            }
        }
        self.writes.set_owned(
            keys::idempotency(&tx.key),
            codec::encode(&IdemRecord {
                tx: tx.id,
                digest: tx.digest,
            }),
        );
        add_totals(&mut self.writes, &tx)?;
        self.in_chunk.insert(key.clone(), self.txs.len());
        self.txs.push(tx);
        Ok(Decided::New(self.txs.len() - 1))
    }

    /// The chunk's writes: journal block, commit-order entry, and the derived records of
    /// everything it touched.
    pub(super) fn finish(mut self, shard: u8) -> (WriteSet, Vec<Transaction>) {
        self.clear_called();
        if self.txs.is_empty() {
            return (self.writes, self.txs);
        }
        let mut blocks = BlockWriter::default();
        for tx in &self.txs {
            blocks.push(tx);
        }
        let w = &mut self.writes;
        for (order, block) in blocks.finish().into_iter().enumerate() {
            w.set_value(keys::journal(self.seq, order as u16), block);
        }
        w.set_versionstamped_key(
            &keys::order_prefix(shard),
            0,
            self.seq.to_be_bytes().to_vec(),
        );
        write_records(
            &mut self.writes,
            &self.state,
            &self.touched,
            Some(&self.records),
        );
        for m in &self.touched.members {
            let new = self
                .state
                .members
                .get(m)
                .and_then(|s| self.state.deadline(s));
            let old = self.deadlines.get(m).copied().flatten();
            if new != old {
                if let Some(t) = old {
                    self.writes.clear(&keys::expiry_due(t, *m));
                }
                if let Some(t) = new {
                    self.writes.set_owned(keys::expiry_due(t, *m), Vec::new());
                }
            }
        }
        if self.touched.expiry_policy || self.touched.tier_policy {
            // Members' deadlines moved: sweep the index from the first member.
            self.writes.set(&keys::due_sweep(), &0u64.to_be_bytes());
        }
        (self.writes, self.txs)
    }

    /// Clears each expiry index entry a command was called for, unless its member is due then
    /// still (as its state now stands under the policies in force).
    fn clear_called(&mut self) {
        for (t, m) in std::mem::take(&mut self.called) {
            let now_due = self
                .state
                .members
                .get(&m)
                .and_then(|s| self.state.deadline(s));
            if now_due != Some(t) {
                self.writes.clear(&keys::expiry_due(t, m));
            }
        }
    }
}

/// The records `cmd` reads directly (holds and originals lead to more; see `prefetch`).
pub(super) fn needs(cmd: &Command) -> Vec<Need> {
    match cmd {
        Command::SetContract { contract, .. } => vec![Need::Contract(contract.partner)],
        Command::Enrol { member, .. } | Command::Adjust { member, .. } => {
            vec![Need::Member(*member)]
        }
        Command::Earn {
            member,
            partner,
            awards,
            guard,
            ..
        } => earn_needs(*member, *partner, awards, guard.as_deref()),
        Command::Burn {
            member, partner, ..
        }
        | Command::Hold {
            member, partner, ..
        } => vec![Need::Member(*member), Need::Contract(*partner)],
        Command::Capture { hold, .. } | Command::Void { hold, .. } => vec![Need::Hold(*hold)],
        Command::Reverse { original, .. } => vec![Need::Reversed(*original)],
        Command::Transfer { from, to, .. } => {
            vec![Need::Member(*from), Need::Member(*to), Need::TransferPolicy]
        }
        Command::Expire { member, .. } => vec![Need::Member(*member)],
        Command::SetExpiryPolicy { .. }
        | Command::ClosePeriod { .. }
        | Command::SetTransferPolicy { .. }
        | Command::SetTierPolicy { .. } => vec![],
        Command::SetTier { member, .. } | Command::LeavePool { member, .. } => {
            vec![Need::Member(*member)]
        }
        Command::JoinPool { owner, member, .. } => {
            vec![Need::Member(*owner), Need::Member(*member)]
        }
        Command::SetStanding { member, .. } | Command::Notice { member, .. } => {
            vec![Need::Member(*member)]
        }
        Command::Merge { from, into, .. } => vec![Need::Member(*from), Need::Member(*into)],
        // The reward's counters are read with conflicts: two redemptions of the last unit
        // cannot both commit on one reading.
        Command::Redeem {
            member,
            partner,
            claim,
            ..
        } => vec![
            Need::Member(*member),
            Need::Contract(*partner),
            Need::Counter(CounterKey::Reward(claim.reward)),
            Need::Counter(CounterKey::RewardMember(*member, claim.reward)),
        ],
        Command::Grant { member, funder, .. } => match funder {
            Funder::Partner(p) => vec![Need::Member(*member), Need::Contract(*p)],
            Funder::Programme => vec![Need::Member(*member)],
        },
    }
}

/// An earn reads its member, its partner's contract, each funding partner's, and the counters
/// its awards and guard checks count in (read with conflicts: two earns that take from the same
/// budget or cap cannot both commit on one reading).
fn earn_needs(
    member: MemberId,
    partner: PartnerId,
    awards: &[AwardRequest],
    guard: Option<&GuardRequest>,
) -> Vec<Need> {
    let mut v = vec![Need::Member(member), Need::Contract(partner)];
    if partner.0 >= PARTNER_BITS {
        v.push(Need::Counter(CounterKey::EarnedAt(member, partner)));
    }
    for a in awards {
        if let Funder::Partner(f) = a.funder {
            v.push(Need::Contract(f));
        }
        v.push(Need::Counter(CounterKey::Campaign(a.campaign)));
    }
    for c in guard.map(|g| g.checks.as_slice()).unwrap_or_default() {
        v.push(Need::Counter(CounterKey::Guard(GuardKey {
            scope: c.scope,
            period: c.period,
        })));
    }
    v
}

/// A reversal reads the original's members and the counters it gives room back to.
fn reversal_needs(original: &Transaction) -> Vec<Need> {
    let mut v: Vec<Need> = original.members().map(Need::Member).collect();
    if let TxKind::Earn { awards, guard, .. } = &original.kind {
        for g in awards {
            v.push(Need::Counter(CounterKey::Campaign(g.campaign)));
        }
        for k in guard.iter().flat_map(|g| g.keys.iter()) {
            v.push(Need::Counter(CounterKey::Guard(*k)));
        }
    }
    v
}

/// Lookups of committed transactions inside a transaction: this chunk, the originals already
/// read, then the journal.
pub(super) struct ChunkHistory<'a> {
    txn: &'a dyn Txn,
    txs: &'a [Transaction],
    seq: u64,
    originals: &'a HashMap<TxId, Transaction>,
}

impl History for ChunkHistory<'_> {
    type Error = LedgerError;

    fn transaction(&self, id: TxId) -> Result<Option<Transaction>, LedgerError> {
        if id.seq() == self.seq {
            return Ok(self.txs.get(usize::from(id.slot())).cloned());
        }
        if let Some(tx) = self.originals.get(&id) {
            return Ok(Some(tx.clone()));
        }
        crate::journal::find_transaction(&TxnSnapshot(self.txn), id)
    }
}
