//! Reading the journal: one transaction by id, or every transaction in commit order.
//!
//! A single committer numbers its batches in commit order, so `J seq` order is commit order.
//! On the cluster path ([`crate::cluster`]) sequence numbers come from blocks each process
//! reserved, so commit order is recorded separately: a versionstamped entry per batch under one
//! of [`JOURNAL_SHARDS`] shard prefixes. [`for_each_batch`] merges the shards
//! by versionstamp.

use crate::codec::{Assembler, Fed};
use crate::core::model::Transaction;
use crate::core::types::TxId;
use crate::error::LedgerError;
use crate::keys;
use crate::store::{prefix_end, Snapshot, VERSIONSTAMP_LEN};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Shard prefixes of the commit-order index; appends spread over this many key ranges.
pub const JOURNAL_SHARDS: u8 = 16;

/// True when the store in `snap` was written on the cluster path.
pub fn is_cluster_store<Snap: Snapshot + ?Sized>(snap: &Snap) -> Result<bool, LedgerError> {
    Ok(snap.get(&keys::writer_mode())?.as_deref() == Some(b"cluster"))
}

/// The committed transaction `id`, if the journal has it.
pub fn find_transaction<S: Snapshot + ?Sized>(
    snapshot: &S,
    id: TxId,
) -> Result<Option<Transaction>, LedgerError> {
    // Point reads of the batch's blocks in order, to the one holding the slot (a batch has a
    // few blocks; a point read costs far less than setting up a range scan over the LSM).
    let mut slot = usize::from(id.slot());
    let mut parts = Assembler::default();
    for order in 0..=u16::MAX {
        let mut found: Option<Result<Option<Transaction>, LedgerError>> = None;
        let present = snapshot.get_with(
            &keys::journal(id.seq(), order),
            &mut |value| match parts.feed(value) {
                Ok(Fed::Block(block)) if slot < block.len() => {
                    found = Some(block.get(slot).map(Some))
                }
                Ok(Fed::Block(block)) => slot -= block.len(),
                Ok(Fed::Pending) => {}
                Ok(Fed::Whole(tx)) if slot == 0 => found = Some(Ok(Some(*tx))),
                Ok(Fed::Whole(_)) => slot -= 1,
                Err(e) => found = Some(Err(e)),
            },
        )?;
        if !present {
            return Ok(None);
        }
        if let Some(result) = found {
            return result;
        }
    }
    Ok(None)
}

/// Calls `f` with every batch committed after sequence `after`, in commit order: the batch's
/// sequence number and its transactions. On a cluster-path store `after` must be 0 (sequence
/// numbers there are not in commit order; [`for_each_batch_after`] reads from a commit-order
/// position on either path).
pub fn for_each_batch<S: Snapshot + ?Sized>(
    snapshot: &S,
    after: u64,
    f: &mut dyn FnMut(u64, Vec<Transaction>) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    if is_cluster_store(snapshot)? {
        if after != 0 {
            // Sequence numbers there are not in commit order: a cursor is a position.
            return Err(LedgerError::WrongWritePath {
                written: crate::error::WritePath::Cluster,
                asked: crate::error::WritePath::Single,
            });
        }
        return for_each_batch_after(snapshot, None, &mut |_, seq, txs| {
            f(seq, txs)?;
            Ok(true)
        });
    }
    let begin = keys::journal(after.saturating_add(1), 0);
    let end = prefix_end(&keys::journal_prefix());
    let mut current: Option<(u64, Vec<Transaction>)> = None;
    let mut failure: Option<LedgerError> = None;
    let mut parts = Assembler::default();
    snapshot.scan(&begin, &end, &mut |k, v| {
        let step = (|| -> Result<(), LedgerError> {
            let (version, _) = keys::parse_journal(k)
                .ok_or_else(|| LedgerError::Corrupt(format!("bad journal key {k:?}")))?;
            let txs = parts.transactions(v)?;
            // After the read: every transaction of a batch's block carries the batch's sequence.
            if let Some(tx) = txs.iter().find(|t| t.id.seq() != version) {
                return Err(LedgerError::Corrupt(format!(
                    "journal block of batch {version} holds transaction {}",
                    tx.id
                )));
            }
            match &mut current {
                Some((v0, acc)) if *v0 == version => acc.extend(txs),
                _ => {
                    if let Some((v0, acc)) = current.take() {
                        f(v0, acc)?;
                    }
                    current = Some((version, txs));
                }
            }
            Ok(())
        })();
        match step {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some((v0, acc)) = current {
        f(v0, acc)?;
    }
    Ok(())
}

/// Entries read per shard per round trip while merging.
const MERGE_PAGE: usize = 512;

/// One shard's commit-order entries, read a page at a time.
struct ShardCursor {
    next: Vec<u8>,
    end: Vec<u8>,
    buffered: VecDeque<([u8; VERSIONSTAMP_LEN], u64)>,
    done: bool,
}

impl ShardCursor {
    fn new(shard: u8) -> ShardCursor {
        let prefix = keys::order_prefix(shard);
        ShardCursor {
            next: prefix.to_vec(),
            end: prefix_end(&prefix),
            buffered: VecDeque::new(),
            done: false,
        }
    }

    /// The shard's next entry: (versionstamp and order, batch sequence).
    fn pop<S: Snapshot + ?Sized>(
        &mut self,
        snapshot: &S,
    ) -> Result<Option<([u8; VERSIONSTAMP_LEN], u64)>, LedgerError> {
        if self.buffered.is_empty() && !self.done {
            let rows = snapshot.range(&self.next, &self.end, MERGE_PAGE, false)?;
            self.done = rows.len() < MERGE_PAGE;
            if let Some((k, _)) = rows.last() {
                self.next = k.clone();
                self.next.push(0);
            }
            for (k, v) in rows {
                let stamp: [u8; VERSIONSTAMP_LEN] = k
                    .get(2..)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| LedgerError::Corrupt(format!("commit-order key {k:?}")))?;
                let seq = v
                    .as_slice()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| LedgerError::Corrupt(format!("commit-order value {v:?}")))?;
                self.buffered.push_back((stamp, seq));
            }
        }
        Ok(self.buffered.pop_front())
    }
}

/// A journal batch as stored: where it stands in commit order, its sequence number and its
/// blocks' bytes in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBatch {
    /// Its commit-order position: the sequence number (8 bytes, big-endian) on the single
    /// path, the commit versionstamp (12 bytes) on the cluster path. Byte order is commit order.
    pub position: Vec<u8>,
    /// The batch sequence number its transaction ids carry.
    pub seq: u64,
    /// Its journal blocks' values, in block order.
    pub blocks: Vec<Vec<u8>>,
}

/// The commit-order position of batch `seq` on the single path.
pub fn single_position(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

/// Calls `f` with every batch after commit-order position `after` (from the start when
/// `None`), in commit order, as stored; stops early when `f` returns false. Works on both
/// write paths: positions come from [`RawBatch::position`].
pub fn for_each_raw_batch<S: Snapshot + ?Sized>(
    snapshot: &S,
    after: Option<&[u8]>,
    f: &mut dyn FnMut(RawBatch) -> Result<bool, LedgerError>,
) -> Result<(), LedgerError> {
    if is_cluster_store(snapshot)? {
        return for_each_merged_raw(snapshot, after, f);
    }
    let from = match after {
        None => 0,
        Some(p) => u64::from_be_bytes(
            p.try_into()
                .map_err(|_| LedgerError::Corrupt(format!("single-path position {p:?}")))?,
        )
        .saturating_add(1),
    };
    let begin = keys::journal(from, 0);
    let end = prefix_end(&keys::journal_prefix());
    let mut current: Option<RawBatch> = None;
    let mut failure: Option<LedgerError> = None;
    let mut stopped = false;
    snapshot.scan(&begin, &end, &mut |k, v| {
        let Some((seq, _)) = keys::parse_journal(k) else {
            failure = Some(LedgerError::Corrupt(format!("bad journal key {k:?}")));
            return false;
        };
        match &mut current {
            Some(b) if b.seq == seq => b.blocks.push(v.to_vec()),
            _ => {
                if let Some(b) = current.take() {
                    match f(b) {
                        Ok(true) => {}
                        Ok(false) => {
                            stopped = true;
                            return false;
                        }
                        Err(e) => {
                            failure = Some(e);
                            return false;
                        }
                    }
                }
                current = Some(RawBatch {
                    position: single_position(seq),
                    seq,
                    blocks: vec![v.to_vec()],
                });
            }
        }
        true
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if let (Some(b), false) = (current, stopped) {
        f(b)?;
    }
    Ok(())
}

/// [`for_each_raw_batch`] on the cluster path: the shards merged by versionstamp.
fn for_each_merged_raw<S: Snapshot + ?Sized>(
    snapshot: &S,
    after: Option<&[u8]>,
    f: &mut dyn FnMut(RawBatch) -> Result<bool, LedgerError>,
) -> Result<(), LedgerError> {
    let mut cursors: Vec<ShardCursor> = (0..JOURNAL_SHARDS)
        .map(|shard| {
            let mut c = ShardCursor::new(shard);
            if let Some(p) = after {
                c.next.extend_from_slice(p);
                c.next.push(0);
            }
            c
        })
        .collect();
    let mut heap = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if let Some((stamp, seq)) = c.pop(snapshot)? {
            heap.push(Reverse((stamp, i, seq)));
        }
    }
    while let Some(Reverse((stamp, i, seq))) = heap.pop() {
        let begin = keys::journal(seq, 0);
        let end = keys::journal(seq + 1, 0);
        let blocks: Vec<Vec<u8>> = snapshot
            .range(&begin, &end, usize::MAX, false)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let go_on = f(RawBatch {
            position: stamp.to_vec(),
            seq,
            blocks,
        })?;
        if !go_on {
            return Ok(());
        }
        if let Some((stamp, seq)) = cursors[i].pop(snapshot)? {
            heap.push(Reverse((stamp, i, seq)));
        }
    }
    Ok(())
}

/// What [`for_each_batch_after`] calls with each batch: its position, sequence and
/// transactions; false to stop.
pub type PositionedBatches<'a> =
    dyn FnMut(&[u8], u64, Vec<Transaction>) -> Result<bool, LedgerError> + 'a;

/// Calls `f` with every batch after commit-order position `after` (from the start when
/// `None`), decoded, in commit order, on either write path: its position, sequence and
/// transactions. Stops early when `f` returns false.
pub fn for_each_batch_after<S: Snapshot + ?Sized>(
    snapshot: &S,
    after: Option<&[u8]>,
    f: &mut PositionedBatches<'_>,
) -> Result<(), LedgerError> {
    for_each_raw_batch(snapshot, after, &mut |raw| {
        let mut parts = Assembler::default();
        let mut txs = Vec::new();
        for b in &raw.blocks {
            txs.extend(parts.transactions(b)?);
        }
        if txs.is_empty() {
            return Err(LedgerError::Corrupt(format!(
                "journal batch {} has no transactions",
                raw.seq
            )));
        }
        if let Some(tx) = txs.iter().find(|t| t.id.seq() != raw.seq) {
            return Err(LedgerError::Corrupt(format!(
                "journal block of batch {} holds transaction {}",
                raw.seq, tx.id
            )));
        }
        f(&raw.position, raw.seq, txs)
    })
}

/// The commit-order position of the last committed batch, if any, on either path.
pub fn last_position<S: Snapshot + ?Sized>(snapshot: &S) -> Result<Option<Vec<u8>>, LedgerError> {
    if is_cluster_store(snapshot)? {
        let mut best: Option<Vec<u8>> = None;
        for shard in 0..JOURNAL_SHARDS {
            let prefix = keys::order_prefix(shard);
            if let Some((k, _)) = snapshot
                .range(&prefix, &prefix_end(&prefix), 1, true)?
                .into_iter()
                .next()
            {
                let stamp = k.get(2..).unwrap_or_default().to_vec();
                if best.as_ref().is_none_or(|b| stamp > *b) {
                    best = Some(stamp);
                }
            }
        }
        return Ok(best);
    }
    let j = keys::journal_prefix();
    Ok(snapshot
        .range(&j, &prefix_end(&j), 1, true)?
        .into_iter()
        .next()
        .and_then(|(k, _)| keys::parse_journal(&k))
        .map(|(seq, _)| single_position(seq)))
}
