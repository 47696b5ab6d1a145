//! The single path's reads: balances from each member's head in memory, statements and as-of
//! balances by walking the member's chain through the journal from its head, idempotency keys
//! through the key index. Each read first waits until the projector covers every batch
//! committed before it began (read-your-writes).

use super::heads::Heads;
use super::key_index::KeyIndex;
use crate::core::model::{IdemKey, Transaction};
use crate::core::state::{MemberState, State};
use crate::core::types::{MemberId, Points, Timestamp, TxId};
use crate::error::LedgerError;
use crate::journal::find_transaction;
use crate::reads::{
    member_points_as_of, statement_page, walk_chain, MemberBalance, PathReads, RecentBatches,
    StatementPage,
};
use crate::shared::status::Shared;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// How long a read waits for the projector to catch up with commits made before it.
const READ_WAIT_MAX: Duration = Duration::from_secs(10);

pub(super) struct SingleReads {
    /// Every committed idempotency key (shared with the writer).
    pub keys: Arc<KeyIndex>,
    /// Each member's latest transaction and points (set by the projector).
    pub heads: Arc<Heads>,
    pub shared: Arc<Shared>,
    /// The latest batches the writer decided (shared with it).
    pub recent: Arc<super::recent::Recent>,
}

impl SingleReads {
    /// The transactions key `key` may name in memory: its own entry and any whose key shares
    /// its hash. The committer adds a key as it decides the command, before the batch is
    /// durable; a hit counts only once the transaction it names is durable and has this key.
    /// A key whose command was answered is always found.
    fn key_candidates(&self, key: &IdemKey) -> Vec<TxId> {
        self.keys
            .get(key)
            .into_iter()
            .chain(self.keys.colliding(key))
            .collect()
    }

    /// The durable transaction with `key` among `candidates` that the recent ring still holds.
    fn recent_by_key_of(&self, candidates: &[TxId], key: &IdemKey) -> Option<Transaction> {
        candidates.iter().find_map(|&id| {
            self.is_durable_here(id)
                .then(|| self.recent.get(id))
                .flatten()
                .filter(|tx| tx.key == *key)
                .map(|tx| Transaction::clone(&tx))
        })
    }

    fn is_durable_here(&self, id: TxId) -> bool {
        id.seq() <= self.shared.committed_version()
    }
}

impl<S: Store> PathReads<S> for SingleReads {
    fn keys_in_memory(&self) -> Option<usize> {
        Some(self.keys.len())
    }

    fn reversal_totals_in_memory(&self) -> Option<usize> {
        Some(self.shared.reversal_totals())
    }

    fn for_each_recent_batch(
        &self,
        first: u64,
        last: u64,
        f: &mut RecentBatches<'_>,
    ) -> Option<Result<(), LedgerError>> {
        if last > self.shared.committed_version() {
            return None;
        }
        let batches = self.recent.batches(first, last)?;
        let mut each = || {
            for b in &batches {
                if !f(b.seq, &b.txs)? {
                    break;
                }
            }
            Ok(())
        };
        Some(each())
    }

    fn recent_transaction(&self, id: TxId) -> Option<Transaction> {
        self.is_durable_here(id)
            .then(|| self.recent.get(id))
            .flatten()
            .map(|t| Transaction::clone(&t))
    }

    fn key_filter_capacity(&self) -> Option<usize> {
        Some(self.keys.filter_capacity())
    }

    fn catch_up(&self) -> Result<(), LedgerError> {
        self.shared
            .wait_projected(self.shared.committed_version(), READ_WAIT_MAX)
    }

    fn is_durable(&self, id: TxId) -> bool {
        self.is_durable_here(id)
    }

    fn balance(&self, _: &S, m: MemberId) -> Result<Option<MemberBalance>, LedgerError> {
        PathReads::<S>::catch_up(self)?;
        Ok(self.heads.get(m).map(|h| MemberBalance {
            posted: h.posted,
            pending: h.held,
            available: Points(h.posted.0 - h.held.0),
        }))
    }

    fn statement(
        &self,
        store: &S,
        m: MemberId,
        before: Option<TxId>,
        limit: usize,
    ) -> Result<StatementPage, LedgerError> {
        PathReads::<S>::catch_up(self)?;
        let Some(head) = self.heads.get(m) else {
            return Ok(StatementPage {
                entries: vec![],
                next: None,
            });
        };
        // Taken after the head was read: it holds the head's transaction and all before it.
        statement_page(&store.snapshot()?, m, head.tx, before, limit)
    }

    fn recent_by_key(&self, key: &IdemKey) -> Option<Transaction> {
        self.recent_by_key_of(&self.key_candidates(key), key)
    }

    fn transaction_by_key(
        &self,
        store: &S,
        key: &IdemKey,
    ) -> Result<Option<Transaction>, LedgerError> {
        let candidates = self.key_candidates(key);
        // Committed moments ago: in memory, no store read.
        if let Some(tx) = self.recent_by_key_of(&candidates, key) {
            return Ok(Some(tx));
        }
        let snap = store.snapshot()?;
        for id in candidates {
            if !PathReads::<S>::is_durable(self, id) {
                continue;
            }
            if let Some(tx) = find_transaction(&snap, id)? {
                if tx.key == *key {
                    return Ok(Some(tx));
                }
            }
        }
        let hash = crate::keys::hash_key(key);
        if !self.keys.spilled() || self.keys.surely_absent(hash) {
            return Ok(None);
        }
        // Older than the keys memory holds: on disk. The writer may have dropped the key from
        // memory after this snapshot was taken but before the lookup above, so a miss is
        // confirmed on a snapshot taken after it.
        for snap in [snap, store.snapshot()?] {
            for id in self.keys.on_disk(&snap, hash)? {
                if let Some(tx) = find_transaction(&snap, id)? {
                    if tx.key == *key {
                        return Ok(Some(tx));
                    }
                }
            }
        }
        Ok(None)
    }

    fn member_state(&self, store: &S, m: MemberId) -> Result<Option<MemberState>, LedgerError> {
        // The member's page as the projector last wrote it, brought forward by the member's
        // transactions since, walked back from its head.
        PathReads::<S>::catch_up(self)?;
        let Some(head) = self.heads.get(m) else {
            return Ok(None);
        };
        let snap = store.snapshot()?;
        let (through, base) = match crate::recovery::stored_member(&snap, m)? {
            Some((through, s)) => (through, Some(s)),
            None => (0, None),
        };
        let mut newer = Vec::new();
        walk_chain(&snap, m, head.tx, |tx, _| {
            if base.is_some() && tx.id.seq() <= through {
                return false;
            }
            newer.push(tx.clone());
            true
        })?;
        let mut state = State::default();
        if let Some(s) = base {
            state.members.insert(m, s);
        }
        for tx in newer.iter().rev() {
            state.apply_to_members(tx, |x| x == m);
        }
        Ok(state.members.remove(&m))
    }

    fn member_as_of(&self, store: &S, m: MemberId, at: Timestamp) -> Result<Points, LedgerError> {
        // Walk the member's chain back from its head to the last transaction by `at`.
        PathReads::<S>::catch_up(self)?;
        let head = self.heads.get(m).and_then(|h| h.tx);
        member_points_as_of(&store.snapshot()?, m, head, at)
    }
}
