//! The most recently decided batches, in memory: the writer's lookups of a transaction a
//! command names (a reversal, a capture, a retry), and reads of a transaction by id or key
//! once it is durable, are answered from here instead of reading and decoding its journal
//! block. A hold is captured, and a purchase refunded, usually moments after it was posted.

use crate::core::model::Transaction;
use crate::core::types::TxId;
use crate::shared::queue::Batch;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Transactions of the most recent batches kept.
pub(crate) const RECENT_TXS_MAX: usize = 16_384;

/// The latest decided batches, oldest first, up to [`RECENT_TXS_MAX`] transactions. Their
/// sequence numbers are consecutive: only a batch with transactions takes one. A batch is kept
/// once decided, before it is durable: readers use a transaction only once its batch is.
#[derive(Default)]
pub(crate) struct Recent {
    inner: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    batches: VecDeque<Arc<Batch>>,
    /// Transactions in `batches`.
    txs: usize,
}

impl Recent {
    /// Keeps `batch` (the writer's latest), dropping the oldest beyond [`RECENT_TXS_MAX`].
    ///
    /// The batches leaving usually hold the last reference to their transactions: they are
    /// dropped after the lock is released, so that readers never wait for a thousand
    /// transactions to be freed.
    pub fn keep(&self, batch: Arc<Batch>) {
        let mut left = Vec::new();
        let mut ring = self.inner.lock().expect("recent batches lock");
        ring.txs += batch.txs.len();
        ring.batches.push_back(batch);
        while ring.txs > RECENT_TXS_MAX && ring.batches.len() > 1 {
            if let Some(old) = ring.batches.pop_front() {
                ring.txs -= old.txs.len();
                left.push(old);
            }
        }
        drop(ring);
        for old in left {
            free(old);
        }
    }

    /// Batches `first..=last`, in order, if every one of them is still kept (empty when
    /// `first > last`). The caller says which are durable: a kept batch may not be yet.
    pub fn batches(&self, first: u64, last: u64) -> Option<Vec<Arc<Batch>>> {
        if first > last {
            return Some(Vec::new());
        }
        let n = usize::try_from(last - first).ok()?.checked_add(1)?;
        let ring = self.inner.lock().expect("recent batches lock");
        let start = usize::try_from(first.checked_sub(ring.batches.front()?.seq)?).ok()?;
        let out: Vec<Arc<Batch>> = ring.batches.range(start..).take(n).cloned().collect();
        drop(ring);
        // Sequence numbers are consecutive, so the ends say the whole range is there.
        (out.len() == n
            && out.first().map(|b| b.seq) == Some(first)
            && out.last().map(|b| b.seq) == Some(last))
        .then_some(out)
    }

    /// Transaction `id`, if its batch is still kept.
    pub fn get(&self, id: TxId) -> Option<Arc<Transaction>> {
        let ring = self.inner.lock().expect("recent batches lock");
        let first = ring.batches.front()?.seq;
        let batch = ring
            .batches
            .get(usize::try_from(id.seq().checked_sub(first)?).ok()?)
            .filter(|b| b.seq == id.seq())?;
        batch
            .txs
            .get(usize::from(id.slot()))
            .filter(|t| t.id == id)
            .cloned()
    }
}

/// Drops a batch leaving the ring. When the ring held its last reference (as nearly always:
/// the projector and the callers are done with it by then), its transactions are dropped one
/// by one with what each will read and free asked for a few ahead: they were written and read
/// on other cores thousands of transactions ago, and dropping them in a plain loop waited on a
/// miss to memory for each of their heap blocks in turn.
fn free(batch: Arc<Batch>) {
    let Ok(batch) = Arc::try_unwrap(batch) else {
        return;
    };
    let mut txs = batch.txs.into_iter();
    loop {
        crate::shared::prefetch::dropping(txs.as_slice());
        if txs.next().is_none() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Digest, IdemKey, TxKind};
    use crate::core::types::{MemberId, Timestamp};

    fn batch(seq: u64, n: u16) -> Arc<Batch> {
        let txs = (0..n)
            .map(|slot| {
                Arc::new(Transaction {
                    id: TxId::new(seq, slot),
                    at: Timestamp(5),
                    key: IdemKey::operator(format!("{seq}/{slot}")),
                    digest: Digest::default(),
                    kind: TxKind::Enrolled {
                        member: MemberId(seq * 100_000 + u64::from(slot)),
                    },
                    postings: vec![],
                    lots: Default::default(),
                    member_balances: Default::default(),
                    pricing: None,
                })
            })
            .collect();
        Arc::new(Batch {
            seq,
            at: Timestamp(5),
            txs,
            pages: vec![],
            members_through: 0,
            members_held: 0,
        })
    }

    #[test]
    fn finds_each_kept_transaction_by_id_and_drops_the_oldest_batches_beyond_the_limit() {
        let recent = Recent::default();
        assert!(recent.get(TxId::new(1, 0)).is_none());
        // Batches 1..=20 of 1,000 transactions: 16,384 keeps the latest 16.
        for seq in 1..=20 {
            recent.keep(batch(seq, 1_000));
        }
        let kept: Vec<u64> = (1..=20)
            .filter(|&seq| recent.get(TxId::new(seq, 0)).is_some())
            .collect();
        assert_eq!(kept, (5..=20).collect::<Vec<_>>(), "batches kept");
        let t = recent.get(TxId::new(12, 345)).expect("kept");
        assert_eq!(t.id, TxId::new(12, 345));
        assert_eq!(t.key, IdemKey::operator("12/345"));
        // A slot past the batch's end, a batch not yet decided, one dropped: none.
        assert!(recent.get(TxId::new(12, 1_000)).is_none());
        assert!(recent.get(TxId::new(21, 0)).is_none());
        assert!(recent.get(TxId::new(4, 999)).is_none());
    }
}
