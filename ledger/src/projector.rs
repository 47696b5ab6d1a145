//! The projector: keeps the store's derived state (member pages, balances, holds, reversal
//! totals, contracts, the idempotency index) and each member's head in memory current from
//! committed batches, off the writer's hot path.
//!
//! It mirrors the writer's [`State`] by applying the same transactions, coalesces many batches
//! into one storage commit, and records the last batch it covered (the watermark) in that same
//! commit. The idempotency index (one chunk per commit), balances, holds, reversal totals and
//! contracts are always exactly "the journal through the watermark". It sets each member's
//! head before it announces the batch projected, so reads that wait for it see their writes.
//! No statement lines are written: statements walk each member's chain through the journal.
//!
//! Member states are the exception. They are stored in pages of [`MEMBERS_PER_PAGE`] ids, and
//! a changed page is written [`member_write_delay`] transactions (plus a per-page offset of up
//! to as many again, so that pages changed together are not written together) after its oldest
//! unwritten change, so that the many changes to its members meanwhile cost one write of one
//! key (one key per member changed was the projector's and the LSM's largest cost). Each page
//! says which batch it covers, and a second watermark says through which batch every page is
//! current. Balance reads never use them (they read the heads). A restart brings each page
//! forward with the journal after its own batch (see `Ledger::open`). Commits are
//! [`Durability::Buffered`]: the synced journal is the truth, and all of this is rebuilt from
//! it.
//!
//! [`member_write_delay`]: crate::LedgerConfig::member_write_delay
//! [`MEMBERS_PER_PAGE`]: crate::keys::MEMBERS_PER_PAGE

use crate::codec::{
    self, HistoryEntry, IdemChunk, IdemRecord, MemberPageRef, MemberRecord, StatementEntry,
};
use crate::committer::Batch;
use crate::heads::{Head, Heads};
use crate::keys;
use crate::model::{Transaction, TxKind};
use crate::state::{Map, State};
use crate::store::{Durability, Store, WriteSet};
use crate::types::{AccountId, MemberId, PartnerId, Points, Timestamp, TxId};
use crossbeam_channel::Receiver;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

/// Most transactions folded into one projector commit. The embedded store applies a commit
/// under its journal lock, which the committer's synced commits also take, so a projector
/// commit is kept to a few milliseconds (about 3 derived keys per transaction, ~1.3 µs each).
const FLUSH_TXS_MAX: usize = 4_096;

pub(crate) struct Projector<S: Store> {
    pub store: S,
    pub mirror: State,
    pub shared: Arc<crate::ledger::Shared>,
    /// Member pages changed since they were last written.
    pub dirty: DirtyPages,
    /// The enrolled members of each page, by id.
    pub pages: PageMembers,
    /// The last batch projected.
    pub last_seq: u64,
    /// Each member's latest transaction and points, for readers.
    pub heads: Arc<Heads>,
}

/// The enrolled members of each member page, by id, so a page is written from the mirror
/// without probing every id it could hold.
#[derive(Default)]
pub(crate) struct PageMembers(Map<u64, Vec<MemberId>>);

impl PageMembers {
    /// The pages of every member in `s`.
    pub fn of(s: &State) -> PageMembers {
        let mut pages = PageMembers::default();
        for m in s.members.keys() {
            pages.0.entry(keys::page_of(*m)).or_default().push(*m);
        }
        for members in pages.0.values_mut() {
            members.sort_unstable();
        }
        pages
    }

    /// Adds a newly enrolled member.
    pub fn add(&mut self, m: MemberId) {
        let members = self.0.entry(keys::page_of(m)).or_default();
        if let Err(at) = members.binary_search(&m) {
            members.insert(at, m);
        }
    }

    /// Page `page`'s members, by id.
    fn members(&self, page: u64) -> &[MemberId] {
        self.0.get(&page).map_or(&[], Vec::as_slice)
    }
}

/// Member pages whose stored copy is behind the mirror.
///
/// A page changed after `at` projected transactions is written once `delay` plus a per-page
/// offset in `[0, delay)` more have been projected. Writing every page exactly `delay` after
/// its change would write in bursts: traffic spread over many members dirties nearly every page
/// within a few batches, and they would all come due together, again and again. The offsets
/// (the page number times the golden ratio, modulo 1) spread them evenly instead.
pub(crate) struct DirtyPages {
    delay: u64,
    /// Page to (batch, transactions projected before it) of its oldest unwritten change.
    since: Map<u64, (u64, u64)>,
    /// The same changes in order of change, for the watermark. An entry is stale once its page
    /// was written (the page may have changed again since, with a newer entry further back).
    order: VecDeque<(u64, u64, u64)>,
    /// The same changes by when they are due: (due, page, batch, projected before).
    due: BinaryHeap<Reverse<(u64, u64, u64, u64)>>,
    /// Transactions projected so far by this process.
    projected: u64,
}

impl DirtyPages {
    /// Pages written `delay` (plus their offset) transactions after they change.
    pub fn new(delay: u64) -> DirtyPages {
        DirtyPages {
            delay,
            since: Map::default(),
            order: VecDeque::new(),
            due: BinaryHeap::new(),
            projected: 0,
        }
    }

    /// Page `page`'s offset: in `[0, delay)`, spread evenly over consecutive pages.
    fn offset(&self, page: u64) -> u64 {
        let fraction = page.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        ((u128::from(fraction) * u128::from(self.delay)) >> 32) as u64
    }

    /// Notes that member `m`'s page changed in batch `seq`.
    pub fn touch(&mut self, m: MemberId, seq: u64) {
        let page = keys::page_of(m);
        if let std::collections::hash_map::Entry::Vacant(e) = self.since.entry(page) {
            let at = self.projected;
            e.insert((seq, at));
            self.order.push_back((page, seq, at));
            let due = at + self.delay + self.offset(page);
            self.due.push(Reverse((due, page, seq, at)));
        }
    }

    /// Counts `n` more transactions projected.
    pub fn advance(&mut self, n: u64) {
        self.projected += n;
    }

    /// Takes the pages due now (with `all`, every changed page).
    fn take_due(&mut self, all: bool) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&Reverse((when, page, seq, at))) = self.due.peek() {
            let live = self.since.get(&page) == Some(&(seq, at));
            if live && !all && when > self.projected {
                break;
            }
            self.due.pop();
            if live {
                self.since.remove(&page);
                due.push(page);
            }
        }
        due
    }

    /// The batch through which every member page is current, given that `last` is the
    /// latest batch projected.
    fn through(&mut self, last: u64) -> u64 {
        while let Some(&(page, seq, at)) = self.order.front() {
            if self.since.get(&page) == Some(&(seq, at)) {
                return seq - 1;
            }
            self.order.pop_front();
        }
        last
    }

    /// Pages waiting to be written.
    pub fn len(&self) -> usize {
        self.since.len()
    }
}

/// What a run of transactions touched, so derived records are written once per flush.
#[derive(Default)]
pub(crate) struct Touched {
    pub members: BTreeSet<MemberId>,
    pub accounts: BTreeSet<AccountId>,
    pub holds: BTreeSet<TxId>,
    pub reversed: BTreeSet<TxId>,
    pub contracts: BTreeSet<PartnerId>,
}

impl<S: Store> Projector<S> {
    pub fn run(mut self, batches: Receiver<Arc<Batch>>) {
        self.project(&batches);
        // The writer has stopped: write every changed member page, so the next start replays
        // nothing for members.
        let skip = self
            .shared
            .skip_shutdown_writes
            .load(std::sync::atomic::Ordering::Acquire);
        if !skip && self.shared.failure().is_none() && self.dirty.len() > 0 {
            if let Err(e) = self.flush(&[]) {
                tracing::error!(error = %e, "member pages not written at shutdown; the next start replays the journal for them");
            }
        }
    }

    fn project(&mut self, batches: &Receiver<Arc<Batch>>) {
        while let Ok(first) = batches.recv() {
            let mut group = vec![first];
            let mut n = group[0].txs.len();
            while n < FLUSH_TXS_MAX {
                match batches.try_recv() {
                    Ok(b) => {
                        n += b.txs.len();
                        group.push(b);
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = self.flush(&group) {
                tracing::error!(error = %e, "projector stopped: storage failed; restart to rebuild derived state");
                self.shared
                    .fail(format!("projector stopped after a storage failure: {e}"));
                return;
            }
        }
    }

    /// Projects `group` (with an empty group: writes every waiting member page).
    fn flush(&mut self, group: &[Arc<Batch>]) -> Result<(), crate::LedgerError> {
        let mut w = WriteSet::default();
        let mut touched = Touched::default();
        let mut chunk = IdemChunk::default();
        for batch in group {
            for tx in &batch.txs {
                self.mirror.apply(tx);
                touched.note_records(tx);
                if let TxKind::Enrolled { member } = tx.kind {
                    self.pages.add(member);
                }
                for a in &tx.member_balances {
                    self.heads.set(a.member, Head::of(tx.id, a));
                    self.dirty.touch(a.member, batch.seq);
                }
                chunk.entries.push((
                    crate::key_index::hash_key(&tx.key),
                    IdemRecord {
                        tx: tx.id,
                        digest: tx.digest,
                    },
                ));
            }
            self.dirty.advance(batch.txs.len() as u64);
        }

        if let Some(last) = group.last() {
            self.last_seq = last.seq;
            w.set_owned(keys::idempotency_chunk(last.seq), codec::encode(&chunk));
            self.write_accounts(&mut w, &touched, last.seq, last.at);
        }
        for page in self.dirty.take_due(group.is_empty()) {
            self.write_page(&mut w, page);
        }
        write_records(&mut w, &self.mirror, &touched, None);
        w.set(&keys::projected_through(), &self.last_seq.to_be_bytes());
        w.set(
            &keys::members_through(),
            &self.dirty.through(self.last_seq).to_be_bytes(),
        );
        w.sort_by_key();
        self.store.commit(w, Durability::Buffered)?;
        self.shared.projected_to(self.last_seq);
        Ok(())
    }

    /// Writes member page `page` as the mirror has it, through the last batch projected.
    fn write_page(&self, w: &mut WriteSet, page: u64) {
        let members = self
            .pages
            .members(page)
            .iter()
            .map(|m| {
                let state = self
                    .mirror
                    .members
                    .get(m)
                    .expect("a page's members are enrolled");
                (*m, state)
            })
            .collect();
        w.set_owned(
            keys::member_page(page),
            codec::encode(&MemberPageRef {
                through: self.last_seq,
                members,
            }),
        );
    }

    fn write_accounts(&self, w: &mut WriteSet, t: &Touched, seq: u64, at: Timestamp) {
        for a in &t.accounts {
            let b = self.mirror.accounts.get(a).cloned().unwrap_or_default();
            w.set_owned(
                keys::balance_history(*a, seq),
                codec::encode(&HistoryEntry {
                    at,
                    balance: b.clone(),
                }),
            );
            w.set_owned(keys::balance(*a), codec::encode(&b));
        }
    }
}

/// Writes the member, hold, reversal and contract records `t` names, as they stand in `s`.
/// Member records are the cluster path's, written with the transaction that changes them (the
/// single committer's projector writes member pages instead and names no members). With
/// `timeouts` (the cluster path: hold id to expiry, for every hold seen), the hold timeout
/// index is kept too.
pub(crate) fn write_records(
    w: &mut WriteSet,
    s: &State,
    t: &Touched,
    timeouts: Option<&HashMap<TxId, Timestamp>>,
) {
    for m in &t.members {
        let state = s
            .members
            .get(m)
            .expect("a touched member exists in the state")
            .clone();
        w.set_owned(
            keys::member(*m),
            codec::encode(&MemberRecord { through: 0, state }),
        );
    }
    for h in &t.holds {
        match s.holds.get(h) {
            Some(state) => {
                w.set_owned(keys::hold(*h), codec::encode(state));
                if timeouts.is_some() {
                    w.set_owned(keys::hold_timeout(state.expires_at, *h), Vec::new());
                }
            }
            None => {
                w.clear(&keys::hold(*h));
                if let Some(at) = timeouts.and_then(|t| t.get(h)) {
                    w.clear(&keys::hold_timeout(*at, *h));
                }
            }
        }
    }
    for r in &t.reversed {
        w.set_owned(keys::reversed(*r), codec::encode(&s.reversed[r]));
    }
    for p in &t.contracts {
        w.set_owned(keys::contract(*p), codec::encode(&s.contracts[p]));
    }
}

/// The cluster path's statement lines (`S` member tx) for `tx`. (The single committer writes
/// none: each member's transactions are chained through the journal, see [`MemberAfter`].)
///
/// [`MemberAfter`]: crate::model::MemberAfter
pub(crate) fn write_statement_lines(w: &mut WriteSet, tx: &Transaction) {
    for a in &tx.member_balances {
        let entry = statement_entry(tx, a.member, a.posted, a.held);
        w.set_owned(keys::statement(a.member, tx.id), codec::encode(&entry));
    }
}

impl Touched {
    /// Notes the records other than members that `tx` changes: accounts, holds, reversal totals,
    /// contracts. (Members are the caller's: the projector writes them late, the cluster path
    /// with every change.)
    pub fn note_records(&mut self, tx: &Transaction) {
        for p in &tx.postings {
            if !p.account.is_member() {
                self.accounts.insert(p.account);
            }
        }
        match &tx.kind {
            TxKind::Hold { .. } => {
                self.holds.insert(tx.id);
            }
            TxKind::Burn { hold: Some(h), .. } | TxKind::Void { hold: h, .. } => {
                self.holds.insert(*h);
            }
            TxKind::Reversal { original, .. } => {
                self.reversed.insert(*original);
            }
            TxKind::ContractSet(c) => {
                self.contracts.insert(c.partner);
            }
            _ => {}
        }
    }
}

/// The statement line of transaction `tx` for member `m`.
pub fn statement_entry(
    tx: &Transaction,
    m: MemberId,
    balance_after: Points,
    held_after: Points,
) -> StatementEntry {
    let (kind, partner) = describe(&tx.kind);
    StatementEntry {
        tx: tx.id,
        at: tx.at,
        kind: kind.to_string(),
        partner,
        points: tx.points_to(AccountId::Member(m)),
        balance_after,
        held_after,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages all changed at once are written at an even pace, each between one and two delays
    /// later, and the watermark says how far every stored page is current.
    #[test]
    fn page_writes_are_spread_and_each_page_is_written_within_twice_the_delay() {
        let delay = 1_000u64;
        let mut dirty = DirtyPages::new(delay);
        let pages = 100u64;
        for p in 0..pages {
            dirty.touch(MemberId(p * keys::MEMBERS_PER_PAGE), 1);
        }
        dirty.advance(10);
        let mut written_at: Map<u64, u64> = Map::default();
        let mut most_in_one_flush = 0;
        for flush in 1..=(3 * delay / 10) {
            let due = dirty.take_due(false);
            most_in_one_flush = most_in_one_flush.max(due.len());
            for p in due {
                assert!(written_at.insert(p, flush * 10).is_none(), "page {p} twice");
            }
            if dirty.len() > 0 {
                assert_eq!(
                    dirty.through(flush + 1),
                    0,
                    "a page still covers batch 0 only"
                );
            }
            dirty.advance(10);
        }
        assert_eq!(written_at.len() as u64, pages, "every page written");
        assert!(
            written_at
                .values()
                .all(|&at| (delay..=2 * delay).contains(&at)),
            "each page between one and two delays: {:?}..{:?}",
            written_at.values().min(),
            written_at.values().max()
        );
        assert!(
            most_in_one_flush <= 2,
            "no burst: {most_in_one_flush} pages in one flush of 10 transactions"
        );
        let first_half = written_at
            .values()
            .filter(|&&at| at < delay + delay / 2)
            .count();
        assert!(
            (40..=60).contains(&first_half),
            "{first_half} of 100 pages in the first half of the window: an even pace"
        );
        assert_eq!(dirty.through(7), 7, "nothing waits: every page is current");
    }

    #[test]
    fn a_zero_delay_or_a_shutdown_takes_every_changed_page_at_once() {
        let mut dirty = DirtyPages::new(0);
        dirty.touch(MemberId(5), 3);
        dirty.touch(MemberId(6), 3);
        dirty.touch(MemberId(5_000), 4);
        let mut due = dirty.take_due(false);
        due.sort_unstable();
        assert_eq!(due, vec![0, 4]);
        assert_eq!(dirty.len(), 0);
        assert_eq!(dirty.through(4), 4);

        let mut dirty = DirtyPages::new(1_000_000);
        dirty.touch(MemberId(5), 3);
        dirty.touch(MemberId(5_000), 4);
        assert!(dirty.take_due(false).is_empty(), "not due yet");
        assert_eq!(dirty.through(4), 2);
        let mut due = dirty.take_due(true);
        due.sort_unstable();
        assert_eq!(due, vec![0, 4]);
        assert_eq!(dirty.through(4), 4);
    }
}
