//! The projector: keeps the store's derived state (member pages, balances, holds, reversal
//! totals, contracts, the idempotency index) and each member's head in memory current from
//! committed batches, off the writer's hot path.
//!
//! It keeps the writer's [`State`] but for the members (accounts, holds, reversal totals,
//! contracts, counters) by applying the same transactions, coalesces many batches into one
//! storage commit, and records the last batch it covered (the watermark) in that same commit.
//! The idempotency index (one chunk per commit), balances, holds, reversal totals and contracts
//! are always exactly "the journal through the watermark". It sets each member's head from the
//! balances each transaction records, before it announces the batch projected, so reads that
//! wait for it see their writes. No statement lines are written: statements walk each member's
//! chain through the journal.
//!
//! Member states are the exception. They are stored in pages of [`MEMBERS_PER_PAGE`] ids, and
//! a changed page is written [`member_write_delay`] transactions (plus a per-page offset of up
//! to as many again, so that pages changed together are not written together) after its oldest
//! unwritten change, so that the many changes to its members meanwhile cost one write of one
//! key (one key per member changed was the projector's and the LSM's largest cost). The writer
//! keeps the count of changed pages ([`super::pages::DirtyPages`]) and, when a page comes due,
//! encodes its members from its own state into the batch (one buffer); the projector writes it
//! as is in the commit that covers that batch, so the projector keeps no member state of its own (a second
//! copy of every member, brought forward by applying every transaction again, cost it about
//! 40% of its time and doubled the members' memory). Each page says which batch it covers,
//! and a second watermark, which the writer computes with the page copies, says through which
//! batch every page is current. Balance reads never use them (they read the heads). A restart
//! brings each page forward with the journal after its own batch (see `Ledger::open`). Commits
//! are [`Durability::Buffered`]: the synced journal is the truth, and all of this is rebuilt
//! from it.
//!
//! [`member_write_delay`]: crate::LedgerConfig::member_write_delay
//! [`MEMBERS_PER_PAGE`]: crate::keys::MEMBERS_PER_PAGE

use crate::codec::{self, HistoryEntry};
use crate::core::state::State;
use crate::core::types::{Timestamp, TxId};
use crate::keys;
use crate::shared::queue::{Batch, PageForm};
use crate::shared::records::{write_records, Touched};
use crate::single::heads::{Head, Heads};
use crate::single::key_index::{by_hash, KeyIndex};
use crate::store::{Durability, Snapshot, Store, Version, WriteSet};
use crossbeam_channel::Receiver;
use std::sync::Arc;

/// Most transactions folded into one projector commit. The embedded store applies a commit
/// under its journal lock, which the committer's synced commits also take, so a projector
/// commit is kept to a few milliseconds (about 3 derived keys per transaction, ~1.3 µs each).
const FLUSH_TXS_MAX: usize = 4_096;

/// Most idempotency entries one commit moves to disk (whole chunks; at least one).
const SPILL_MAX: usize = 16_384;

/// Entries a commit moved to disk, at the commit's version: the writer drops them from memory
/// once its snapshot includes that version.
pub(crate) type Spilled = (Version, Vec<(u128, crate::core::types::TxId)>);

pub(crate) struct Projector<S: Store> {
    pub store: S,
    /// The state as of the last batch projected, but for the members (see
    /// [`State::without_members`]): accounts, holds, contracts, counters, and a window of the
    /// reversal totals (the others are read from the store when a reversal names them).
    pub rest: State,
    /// Which reversal totals `rest` holds.
    pub reversals: crate::single::reversals::Window,
    pub shared: Arc<crate::shared::status::Shared>,
    /// The last batch projected.
    pub last_seq: u64,
    /// Each member's latest transaction and points, for readers.
    pub heads: Arc<Heads>,
    /// The writer's idempotency keys in memory, and how many it keeps.
    pub keys: Arc<KeyIndex>,
    pub keys_in_memory: usize,
    /// Where entries moved to disk are handed to the writer.
    pub spilled: crossbeam_channel::Sender<Spilled>,
    /// The thread filling a larger filter over the keys on disk, if one was started, and the
    /// channel whose closing stops it.
    pub grower: Option<(crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl<S: Store + Clone> Projector<S> {
    pub fn run(mut self, batches: Receiver<Arc<Batch>>) {
        self.project(&batches);
        if let Some((alive, thread)) = self.grower.take() {
            drop(alive);
            let _ = thread.join();
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

    /// Projects `group`. A batch without transactions carries only member pages: the
    /// writer's last pages, at shutdown.
    fn flush(&mut self, group: &[Arc<Batch>]) -> Result<(), crate::LedgerError> {
        // The syncer hands batches on in commit order, each once.
        let mut last = self.last_seq;
        for b in group.iter().filter(|b| !b.txs.is_empty()) {
            assert!(b.seq > last, "batch {} projected after batch {last}", b.seq);
            last = b.seq;
        }
        // Totals the group's reversals build on that memory does not hold: as this projector
        // last stored them.
        let txs = || group.iter().flat_map(|b| b.txs.iter().map(|t| &**t));
        let read = self.reversals.to_read(&self.rest, txs());
        if !read.is_empty() {
            let snapshot = self.store.snapshot()?;
            self.reversals
                .read(&mut self.rest, &snapshot, &read, last)?;
        }
        let mut w = WriteSet::default();
        let mut touched = Touched::default();
        let mut chunk: Vec<(u128, TxId)> = Vec::new();
        let mut heads = Vec::new();
        for batch in group {
            for (i, tx) in batch.txs.iter().enumerate() {
                crate::shared::prefetch::transactions(&batch.txs, i);
                self.rest.apply_to_rest(tx);
                touched.note_records(tx);
                for a in &tx.member_balances {
                    heads.push((a.member, Head::of(tx.id, a)));
                }
                chunk.push((crate::keys::hash_key(&tx.key), tx.id));
            }
            self.reversals
                .changed(batch.txs.iter().map(|t| &**t), batch.seq);
            for copy in &batch.pages {
                // Encoded by the writer as of this batch.
                match copy.form {
                    PageForm::Whole { clear_changes } => {
                        w.set(&keys::member_page(copy.page), &copy.encoded);
                        if clear_changes {
                            w.clear(&keys::member_page_changes(copy.page));
                        }
                    }
                    PageForm::Changes => {
                        w.set(&keys::member_page_changes(copy.page), &copy.encoded);
                    }
                }
            }
        }
        self.heads.set_all(heads);

        if let Some(last) = group.iter().rev().find(|b| !b.txs.is_empty()) {
            self.last_seq = last.seq;
            w.set_owned(
                keys::idempotency_chunk(last.seq),
                codec::encode_key_chunk(&chunk),
            );
            self.write_accounts(&mut w, &touched, last.seq, last.at);
        }
        write_records(&mut w, &self.rest, &touched, None);
        w.set(&keys::projected_through(), &self.last_seq.to_be_bytes());
        if let Some(last) = group.last() {
            w.set(
                &keys::members_through(),
                &last.members_through.to_be_bytes(),
            );
        }
        if let Some(paged) = group.iter().rev().find(|b| !b.pages.is_empty()) {
            w.set(&keys::members_held(), &paged.members_held.to_be_bytes());
        }
        let Spill {
            moved: spill,
            by_disk,
            on_disk,
        } = self.spill(&mut w)?;
        w.sort_by_key();
        let version = self.store.commit(w, Durability::Buffered)?;
        // Every total this commit wrote is stored as memory holds it.
        self.reversals.trim(&mut self.rest, u64::MAX);
        if !spill.is_empty() {
            // In the filter before the writer can drop them from memory; in hash order, so
            // the filter's blocks are walked in order.
            self.keys.filter_insert(by_disk.iter().map(|(h, _)| *h));
            self.keys.mark_spilled();
            self.keys.leave(spill.len());
            // The writer may have stopped; its memory then goes with it.
            let _ = self.spilled.send((version, spill));
            self.grow_filter(on_disk);
        }
        self.shared.projected_to(self.last_seq);
        Ok(())
    }

    /// When memory holds more keys than the window (and a sixteenth), moves the oldest index
    /// chunks' entries to on-disk records by hash, in this commit, down to the window, at most
    /// [`SPILL_MAX`] a commit.
    fn spill(&mut self, w: &mut WriteSet) -> Result<Spill, crate::LedgerError> {
        let held = self.keys.staying();
        let window = self.keys_in_memory.max(1);
        if held <= window + window / 16 {
            return Ok(Spill::default());
        }
        let want = (held - window).min(SPILL_MAX);
        let snapshot = self.store.snapshot()?;
        let mut moved: Vec<(u128, TxId)> = Vec::new();
        let mut chunks = Vec::new();
        let mut failure = None;
        let begin = [keys::IDEM_CHUNK];
        snapshot.scan(&begin, &crate::store::prefix_end(&begin), &mut |k, v| {
            match codec::key_chunk_entries(v) {
                Ok(entries) => {
                    chunks.push(k.to_vec());
                    moved.extend(entries.into_iter().map(|e| (e.hash, e.tx)));
                    moved.len() < want
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        // By on-disk hash, each hash's transactions in the order moved (a stable sort), and
        // written in key order: one record a hash, encoded into one buffer reused for all.
        let mut by_disk: Vec<(u64, TxId)> = moved
            .iter()
            .map(|(h, tx)| (keys::disk_hash(*h), *tx))
            .collect();
        by_disk.sort_by_key(|e| e.0);
        let filter = self.keys.current_filter();
        let mut ids: Vec<TxId> = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        for group in by_disk.chunk_by(|a, b| a.0 == b.0) {
            let h = group[0].0;
            // Another key of this hash may be on disk already (nearly never): keep both.
            ids.clear();
            if !filter.surely_absent(h) {
                ids = by_hash(&snapshot, h)?;
            }
            ids.extend(group.iter().map(|e| e.1));
            codec::encode_into(&ids, &mut buf);
            w.set(&keys::idempotency_by_hash(h), &buf);
        }
        for k in chunks {
            w.clear(&k);
        }
        let before = match snapshot.get(&keys::keys_on_disk())? {
            Some(v) => u64::from_be_bytes(v.as_slice().try_into().map_err(|_| {
                crate::LedgerError::Corrupt("count of keys on disk is not 8 bytes".into())
            })?),
            None => 0,
        };
        let on_disk = before + moved.len() as u64;
        w.set(&keys::keys_on_disk(), &on_disk.to_be_bytes());
        Ok(Spill {
            moved,
            by_disk,
            on_disk: on_disk as usize,
        })
    }

    /// Once the keys on disk outgrow the filter over them, fills one twice as large on a thread
    /// of its own (the store scanned while the writer goes on) and puts it in use. Keys moved
    /// to disk meanwhile go into both, so the new one misses none.
    fn grow_filter(&mut self, on_disk: usize) {
        let Some(larger) = self.keys.start_growth(on_disk) else {
            return;
        };
        if let Some((_, thread)) = self.grower.take() {
            // The last one has finished (it was no longer growing); collect it.
            let _ = thread.join();
        }
        let (alive, stop) = crossbeam_channel::bounded::<()>(0);
        let (keys, store) = (self.keys.clone(), self.store.clone());
        let spawned = std::thread::Builder::new()
            .name("ledger-key-filter".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let filled = keys.fill_larger(larger, &store, &stop);
                match filled {
                    Ok(true) => tracing::info!(
                        keys_on_disk = on_disk,
                        capacity = keys.filter_capacity(),
                        seconds = started.elapsed().as_secs_f64(),
                        "filter over idempotency keys on disk grown"
                    ),
                    Ok(false) => {}
                    Err(e) => {
                        keys.abandon_growth();
                        tracing::error!(error = %e, "filter over keys on disk not grown; more new keys read the disk");
                    }
                }
            });
        match spawned {
            Ok(thread) => self.grower = Some((alive, thread)),
            Err(e) => {
                self.keys.abandon_growth();
                tracing::error!(error = %e, "filter over keys on disk not grown: no thread");
            }
        }
    }

    fn write_accounts(&self, w: &mut WriteSet, t: &Touched, seq: u64, at: Timestamp) {
        for a in &t.accounts {
            let b = self.rest.accounts.get(a).cloned().unwrap_or_default();
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

/// What a commit's spill moved to disk: the entries, as they left the index chunks and by
/// on-disk hash in order, and the keys on disk once the commit lands.
#[derive(Default)]
struct Spill {
    moved: Vec<(u128, crate::core::types::TxId)>,
    by_disk: Vec<(u64, crate::core::types::TxId)>,
    on_disk: usize,
}
