//! The projector: keeps the store's derived state (member records, balances, holds, indexes,
//! statements) current from committed batches, off the writer's hot path.
//!
//! It mirrors the writer's [`State`] by applying the same transactions, coalesces many batches
//! into one storage commit, and records the last version it covered (the watermark) in that same
//! commit. Derived state is therefore always exactly "the journal through the watermark"; a
//! restart reloads it and replays the journal after the watermark. Its commits are
//! [`Durability::Buffered`]: the synced journal is the truth, and this is rebuilt from it.

use crate::codec::{self, HistoryEntry, IdemRecord, StatementEntry};
use crate::committer::Batch;
use crate::keys;
use crate::model::{Transaction, TxKind};
use crate::state::State;
use crate::store::{Durability, Store, WriteSet};
use crate::types::{AccountId, MemberId, PartnerId, Points, Timestamp, TxId};
use crossbeam_channel::Receiver;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Most transactions folded into one projector commit. The embedded store applies a commit
/// under its journal lock, which the committer's synced commits also take, so a projector
/// commit is kept to a few milliseconds (about 3 derived keys per transaction, ~1.3 µs each).
const FLUSH_TXS_MAX: usize = 4_096;

pub(crate) struct Projector<S: Store> {
    pub store: S,
    pub mirror: State,
    pub shared: Arc<crate::ledger::Shared>,
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

    fn flush(&mut self, group: &[Arc<Batch>]) -> Result<(), crate::LedgerError> {
        let mut w = WriteSet::default();
        let mut touched = Touched::default();
        for batch in group {
            for tx in &batch.txs {
                self.mirror.apply(tx);
                index_transaction(&mut w, &mut touched, tx);
            }
        }
        let last = group.last().expect("a flush has at least one batch");
        self.write_touched(&mut w, &touched, last.seq, last.at);
        w.set(&keys::projected_through(), &last.seq.to_be_bytes());
        w.sort_by_key();
        self.store.commit(w, Durability::Buffered)?;
        self.shared.projected_to(last.seq);
        Ok(())
    }

    fn write_touched(&self, w: &mut WriteSet, t: &Touched, seq: u64, at: Timestamp) {
        let s = &self.mirror;
        for a in &t.accounts {
            let b = s.accounts.get(a).cloned().unwrap_or_default();
            w.set_owned(
                keys::balance_history(*a, seq),
                codec::encode(&HistoryEntry {
                    at,
                    balance: b.clone(),
                }),
            );
            w.set_owned(keys::balance(*a), codec::encode(&b));
        }
        write_records(w, s, t, None);
    }
}

/// Writes the member, hold, reversal and contract records `t` names, as they stand in `s`.
/// With `timeouts` (the cluster path: hold id to expiry, for every hold seen), the hold timeout
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
            .expect("a touched member exists in the state");
        w.set_owned(keys::member(*m), codec::encode(state));
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

/// Writes `tx`'s idempotency and statement entries and notes what it touched.
pub(crate) fn index_transaction(w: &mut WriteSet, t: &mut Touched, tx: &Transaction) {
    w.set_owned(
        keys::idempotency(&tx.key),
        codec::encode(&IdemRecord {
            tx: tx.id,
            digest: tx.digest,
        }),
    );
    for &(m, balance_after) in &tx.member_balances {
        t.members.insert(m);
        let entry = statement_entry(tx, m, balance_after);
        w.set_owned(keys::statement(m, tx.id), codec::encode(&entry));
    }
    for p in &tx.postings {
        if !p.account.is_member() {
            t.accounts.insert(p.account);
        }
    }
    match &tx.kind {
        TxKind::Hold { .. } => {
            t.holds.insert(tx.id);
        }
        TxKind::Burn { hold: Some(h), .. } | TxKind::Void { hold: h, .. } => {
            t.holds.insert(*h);
        }
        TxKind::Reversal { original, .. } => {
            t.reversed.insert(*original);
        }
        TxKind::ContractSet(c) => {
            t.contracts.insert(c.partner);
        }
        _ => {}
    }
}

/// The statement line of transaction `tx` for member `m`.
pub fn statement_entry(tx: &Transaction, m: MemberId, balance_after: Points) -> StatementEntry {
    let (kind, partner) = describe(&tx.kind);
    StatementEntry {
        tx: tx.id,
        at: tx.at,
        kind: kind.to_string(),
        partner,
        points: tx.points_to(AccountId::Member(m)),
        balance_after,
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
