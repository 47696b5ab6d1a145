//! The committer: the single writer, in two threads.
//!
//! The writer takes commands from a bounded queue, decides a batch of them against its
//! in-memory [`State`] and hands the batch to the syncer, then decides the next batch while the
//! syncer encodes this one as journal blocks, commits them to storage and waits for them to be
//! durable. Only then does the syncer publish the batch as committed, answer every
//! caller and hand the batch to the projector. (Besides the batch being synced, up to
//! [`SYNC_QUEUE`] decided batches wait for it, and then share one commit and fsync; a slow
//! fsync is then followed by one more, not by one per waiting batch.) Batches are numbered by
//! the committer's own journal sequence (the store's commit versions also count the
//! projector's commits). A rejected command fails alone; its batch-mates commit. A storage
//! failure stops both: memory may then be ahead of disk, so the only safe continuation is a
//! restart from disk. No caller of a batch that did not reach the disk is answered with
//! success.

use crate::codec::BlockWriter;
use crate::core::model::{Command, IdemKey, Pricing, Receipt, Transaction};
use crate::core::rules::DecideError;
use crate::core::state::{History, State};
use crate::core::types::{MemberId, Timestamp, TxId};
use crate::error::{LedgerError, Rejection};
use crate::keys;
use crate::shared::prefetch;
use crate::shared::queue::{Batch, CommitterConfig, Job, PageCopy, PageForm, Reply};
use crate::single::key_index::KeyIndex;
use crate::store::{Durability, Snapshot, Store, WriteSet};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct Writer<S: Store> {
    pub store: S,
    pub state: State,
    /// Every idempotency key committed (shared with readers).
    pub keys: Arc<KeyIndex>,
    pub config: CommitterConfig,
    pub shared: Arc<crate::shared::status::Shared>,
    pub to_projector: Sender<Arc<Batch>>,
    pub last_at: Timestamp,
    /// Journal sequence number of the next batch; transaction ids embed it.
    pub next_seq: u64,
    /// The latest decided batches (shared with reads), so that a command naming a recent
    /// transaction (the usual case) does not read the journal.
    pub recent: Arc<crate::single::recent::Recent>,
    /// The journal's hash chain, handed to the syncer, which chains each batch it commits.
    pub chain: Option<crate::chain::Chainer>,
    /// Idempotency entries the projector moved to disk, and those not yet dropped from memory
    /// (until the writer's snapshot includes the commit that moved them).
    pub spilled: Receiver<crate::single::projector::Spilled>,
    pub leaving: VecDeque<crate::single::projector::Spilled>,
    /// The filter over keys on disk, as of the last entries dropped from memory: taken once a
    /// batch (a lock per key would have the writer and projector contend for one cache line).
    /// Any key the writer no longer holds in memory went to disk before it took this filter,
    /// so the filter holds it, whether the projector put it there or a larger filter's fill did.
    pub filter: Arc<crate::single::key_index::DiskFilter>,
    /// Held while the writer runs: the key filter's rebuild stops when it is dropped.
    pub alive: Option<Sender<()>>,
    /// Member pages changed since they were last handed to the projector.
    pub dirty: crate::single::pages::DirtyPages,
    /// The enrolled members of each page, by id.
    pub pages: crate::single::pages::PageMembers,
    /// Which reversal totals `state` holds (the others are read from the store).
    pub reversals: crate::single::reversals::Window,
}

/// Decided batches that may wait for the syncer (the writer blocks beyond that).
const SYNC_QUEUE: usize = 4;

/// A state of at least this many members is freed on a thread of its own when the writer stops.
const FREE_APART_MEMBERS_MIN: usize = 100_000;

/// Frees `state`, which the writer has done with; `apart` (a state of
/// [`FREE_APART_MEMBERS_MIN`] members or more) on a thread of its own (returned), which the
/// shutdown does not wait for. Its pages are handed over and every batch is durable (or, after a
/// failure, refused) by then, and freeing a million members' states one by one takes about a
/// second: the half of a graceful restart that is not the open. A process that exits meanwhile
/// leaves the rest to the system.
fn release<T: Send + 'static>(state: T, apart: bool) -> Option<std::thread::JoinHandle<()>> {
    if !apart {
        drop(state);
        return None;
    }
    // Should the thread not start, `spawn` drops the closure, and the state with it, here.
    std::thread::Builder::new()
        .name("ledger-free".into())
        .spawn(move || drop(state))
        .ok()
}

/// A decided batch on its way to the syncer, which writes its transactions to the journal
/// (none: every command was rejected or replayed), and each caller's answer, to send once the
/// writes are durable.
struct Sealed {
    started: Instant,
    batch: Arc<Batch>,
    answers: Vec<(Reply, Result<Receipt, LedgerError>)>,
}

/// Commits sealed batches in order, durably, then answers their callers and feeds the
/// projector.
struct Syncer<S: Store> {
    store: S,
    chain: crate::chain::Chainer,
    shared: Arc<crate::shared::status::Shared>,
    to_projector: Sender<Arc<Batch>>,
    /// Kept from batch to batch, so its buffers are reused.
    blocks: BlockWriter,
}

impl<S: Store> Syncer<S> {
    fn run(mut self, sealed: Receiver<Sealed>) {
        while let Ok(first) = sealed.recv() {
            // Batches that waited while the last commit was syncing share one commit and fsync.
            let mut group = vec![first];
            group.extend(sealed.try_iter());
            if let Some(why) = self.shared.failure() {
                for s in group {
                    answer_all(s.answers, &why);
                }
                continue;
            }
            self.sync(group);
        }
    }

    /// Commits `group` durably, then answers its callers and feeds the projector; on a storage
    /// failure, fails the ledger and answers every caller with it.
    fn sync(&mut self, group: Vec<Sealed>) {
        let mut writes = WriteSet::default();
        for s in group.iter().filter(|s| !s.batch.txs.is_empty()) {
            // The batch's journal blocks, encoded here rather than on the writer's thread, and
            // chained in the same commit.
            let seq = s.batch.seq;
            // The transactions were written on the writer's core: each is fetched a few ahead.
            for (i, tx) in s.batch.txs.iter().enumerate() {
                prefetch::transactions(&s.batch.txs, i);
                self.blocks.push(tx);
            }
            let blocks = self.blocks.finish();
            let position = crate::journal::single_position(seq);
            self.chain
                .append(&position, seq, blocks.iter().map(|b| &b[..]), &mut writes);
            for (order, block) in blocks.into_iter().enumerate() {
                writes.set_value(keys::journal(seq, order as u16), block);
            }
        }
        if !writes.writes.is_empty() {
            if let Err(e) = self.store.commit(writes, Durability::Sync) {
                let why = storage_failed(&self.shared, &e);
                for s in group {
                    answer_all(s.answers, &why);
                }
                return;
            }
        }
        let mut projector_stopped = false;
        for s in group {
            if !s.batch.txs.is_empty() {
                // Publish before answering, so a read after a receipt waits for its projection.
                self.shared
                    .committed(s.batch.seq, s.batch.txs.len(), s.started.elapsed());
            }
            // The batch is durable: its answers stand even if the projector has stopped.
            for (reply, answer) in s.answers {
                let _ = reply.send(answer);
            }
            // Blocks when the projector is far behind: back-pressure instead of unbounded
            // memory.
            if !s.batch.txs.is_empty()
                && !projector_stopped
                && self.to_projector.send(s.batch).is_err()
            {
                projector_stopped = true;
                tracing::error!("committer stopped: the projector stopped");
                self.shared.fail("projector stopped".to_string());
            }
        }
    }
}

/// Fails the ledger after storage error `e`: logs it and returns the reason callers are given.
fn storage_failed(shared: &crate::shared::status::Shared, e: &dyn std::fmt::Display) -> String {
    tracing::error!(error = %e, "committer stopped: storage failed; restart to recover from disk");
    let why = format!("writer stopped after a storage failure: {e}");
    shared.fail(why.clone());
    why
}

/// Answers every caller with `why` as the reason the ledger is unavailable.
fn answer_all(answers: Vec<(Reply, Result<Receipt, LedgerError>)>, why: &str) {
    for (reply, _) in answers {
        crate::shared::queue::refuse(reply, why);
    }
}

enum Outcome {
    New(usize),
    Replay(Box<Transaction>),
    Failed(LedgerError),
}

impl<S: Store + Clone> Writer<S> {
    pub fn run(mut self, jobs: Receiver<Job>) {
        let (to_syncer, sealed) = crossbeam_channel::bounded::<Sealed>(SYNC_QUEUE);
        let syncer = Syncer {
            store: self.store.clone(),
            chain: self.chain.take().expect("the writer runs once"),
            shared: self.shared.clone(),
            to_projector: self.to_projector.clone(),
            blocks: BlockWriter::default(),
        };
        std::thread::scope(|scope| {
            let started = std::thread::Builder::new()
                .name("ledger-syncer".into())
                .spawn_scoped(scope, move || {
                    // A panicking syncer fails the ledger; the writer then sees its channel
                    // closed and refuses everything after.
                    let shared = syncer.shared.clone();
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        syncer.run(sealed)
                    }));
                    if let Err(panic) = ran {
                        let why = format!(
                            "syncer panicked: {}",
                            crate::shared::status::panic_text(&*panic)
                        );
                        tracing::error!(%why, "committer stopped; restart to recover from disk");
                        shared.fail(why);
                    }
                });
            if let Err(e) = started {
                let why = format!("cannot start the syncer: {e}");
                self.shared.fail(why.clone());
                self.stop(&jobs, Vec::new(), &why);
                return;
            }
            // A panic in a rule leaves the state half-changed: the ledger stops, as after a
            // storage failure, and says why, instead of leaving callers waiting.
            let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.decide(&jobs, &to_syncer)
            }));
            if let Err(panic) = decided {
                let why = format!(
                    "writer panicked: {}",
                    crate::shared::status::panic_text(&*panic)
                );
                tracing::error!(%why, "committer stopped; restart to recover from disk");
                self.shared.fail(why.clone());
                self.stop(&jobs, Vec::new(), &why);
            }
            // Closing the channel lets the syncer finish what it holds and stop.
            drop(to_syncer);
        });
        self.hand_over_pages();
        let state = std::mem::take(&mut self.state);
        let apart = state.members.len() >= FREE_APART_MEMBERS_MIN;
        release(state, apart);
        // The writer returns on its own only after a failure (otherwise the queue closed): a
        // caller that passed the failure check before the last drain may still send.
        if let Some(why) = self.shared.failure() {
            crate::shared::queue::refuse_until_closed(&jobs, &why);
        }
    }

    /// Once the syncer has handed on every batch: copies every changed member page for the
    /// projector to write, so the next start replays nothing for members. Nothing after a
    /// failure (memory may be ahead of disk then), nor when the ledger is told to skip it.
    fn hand_over_pages(&mut self) {
        let skip = self
            .shared
            .skip_shutdown_writes
            .load(std::sync::atomic::Ordering::Acquire);
        if skip || self.shared.failure().is_some() || self.dirty.len() == 0 {
            return;
        }
        // Every batch decided is durable: the pages are as of the last one.
        let seq = self.next_seq - 1;
        let (pages, members_through) = self.take_pages(true, seq);
        let last = Batch {
            seq,
            at: self.last_at,
            txs: Vec::new(),
            pages,
            members_through,
            members_held: self.state.members.len() as u64,
        };
        if self.to_projector.send(Arc::new(last)).is_err() {
            tracing::error!("member pages not written at shutdown: the projector stopped; the next start replays the journal for them");
        }
    }

    /// Decides batch after batch until the queue closes or storage fails.
    fn decide(&mut self, jobs: &Receiver<Job>, to_syncer: &Sender<Sealed>) {
        let mut batch: Vec<Job> = Vec::with_capacity(self.config.batch_size_max);
        loop {
            let Some(first) = self.next_job(jobs, to_syncer) else {
                return;
            };
            batch.push(first);
            self.gather(jobs, &mut batch);
            if let Some(why) = self.shared.failure() {
                self.stop(jobs, std::mem::take(&mut batch), &why);
                return;
            }
            match self.decide_batch(&mut batch) {
                Ok(sealed) => {
                    if let Err(crossbeam_channel::SendError(sealed)) = to_syncer.send(sealed) {
                        let why = self.shared.failure().unwrap_or("syncer stopped".into());
                        answer_all(sealed.answers, &why);
                        self.stop(jobs, Vec::new(), &why);
                        return;
                    }
                }
                Err(e) => {
                    let why = storage_failed(&self.shared, &e);
                    self.stop(jobs, std::mem::take(&mut batch), &why);
                    return;
                }
            }
        }
    }

    /// Answers `batch` and everything queued with `why`.
    fn stop(&self, jobs: &Receiver<Job>, batch: Vec<Job>, why: &str) {
        for j in batch.into_iter().chain(jobs.try_iter()) {
            crate::shared::queue::refuse(j.reply, why);
        }
    }

    /// Blocks for the next command, waking to expire holds while idle.
    fn next_job(&mut self, jobs: &Receiver<Job>, to_syncer: &Sender<Sealed>) -> Option<Job> {
        loop {
            match jobs.recv_timeout(self.config.idle_wake) {
                Ok(j) => return Some(j),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    if self.shared.failure().is_some() {
                        return None;
                    }
                    let now = self.clock();
                    if !self.state.expired_holds(now, 1).is_empty()
                        || !self.state.due_expiries(now, 1).is_empty()
                    {
                        let sent = match self.decide_batch(&mut Vec::new()) {
                            Ok(sealed) => to_syncer.send(sealed).is_ok(),
                            Err(e) => {
                                storage_failed(&self.shared, &e);
                                false
                            }
                        };
                        if !sent {
                            return None;
                        }
                    }
                }
            }
        }
    }

    fn gather(&self, jobs: &Receiver<Job>, batch: &mut Vec<Job>) {
        let max = self.config.batch_size_max;
        batch.extend(jobs.try_iter().take(max - batch.len()));
        if self.config.linger.is_zero() {
            return;
        }
        let deadline = Instant::now() + self.config.linger;
        while batch.len() < max {
            match jobs.recv_deadline(deadline) {
                Ok(j) => batch.push(j),
                Err(_) => return,
            }
            batch.extend(jobs.try_iter().take(max - batch.len()));
        }
    }

    /// The batch's time: never before the last batch's, nor inside a closed period.
    fn clock(&self) -> Timestamp {
        self.config
            .clock
            .now()
            .max(self.last_at)
            .max(self.state.closed_through)
    }

    /// Decides `batch` (emptying it) and the hold timeouts due, and seals the result for the
    /// syncer.
    fn decide_batch(&mut self, batch: &mut Vec<Job>) -> Result<Sealed, LedgerError> {
        let started = Instant::now();
        let seq = self.next_seq;
        let at = self.clock();
        // Read before the snapshot: the snapshot includes every batch projected through it.
        let stored_through = self.shared.projected();
        let snapshot = self.store.snapshot()?;
        self.forget_spilled(snapshot.version());
        self.reversals.trim(&mut self.state, stored_through);
        self.shared.set_reversal_totals(self.reversals.len());
        // Each transaction goes into its own `Arc` as it is decided (the receipts and the recent
        // batches share it): a 528-byte transaction is copied once, not into a list and again.
        let mut txs: Vec<Arc<Transaction>> = Vec::with_capacity(batch.len());

        // What fell due at `at`: hold timeouts, then expiries and tier reviews. Their keys are
        // looked up before any is decided, so that a read failing here refuses the whole batch
        // and changes nothing: due work is posted all together, never split by a read error.
        let mut timeouts: Vec<Command> = self
            .state
            .expired_holds(at, self.config.hold_expiries_per_batch_max)
            .into_iter()
            .map(|hold| Command::Void {
                key: IdemKey {
                    scope: crate::core::model::Scope::System,
                    reference: format!("hold-timeout/{hold}"),
                },
                hold,
            })
            .collect();
        let room = self
            .config
            .hold_expiries_per_batch_max
            .saturating_sub(timeouts.len());
        let mut tried = std::collections::HashSet::new();
        let mut due = self.state.due_expiries(at, room);
        let first: Vec<Command> = due
            .iter()
            .map(|(deadline, member)| crate::shared::queue::expire_command(*member, *deadline))
            .collect();
        let mut found = match self.look_up(timeouts.iter().chain(&first), &snapshot, &txs, seq) {
            Ok(found) => found.into_iter(),
            Err(e) => {
                tracing::warn!(error = %e, "batch refused: a read for due work failed");
                return Ok(self.refuse(batch, started, seq, at, e));
            }
        };
        for cmd in &mut timeouts {
            let known = found.next();
            match self.process(cmd, &mut None, None, seq, at, &snapshot, &mut txs, known) {
                Outcome::New(_) | Outcome::Replay(_) => {}
                Outcome::Failed(e) => {
                    tracing::warn!(key = %cmd.key(), error = %e, "hold timeout not applied")
                }
            }
        }
        // Everything due at `at`, within the batch's room: an expiry can make the member's next
        // deadline due too (a later lot, a tier review), which this batch then posts as well.
        let mut round = 0;
        while !due.is_empty() {
            if round > 0 {
                let cmds: Vec<Command> = due
                    .iter()
                    .map(|(d, m)| crate::shared::queue::expire_command(*m, *d))
                    .collect();
                // Part of this instant's due work is decided in memory already: a read failing
                // now stops the writer (a restart posts it all again, together).
                found = self.look_up(cmds.iter(), &snapshot, &txs, seq)?.into_iter();
            }
            for (deadline, member) in due {
                tried.insert((deadline, member));
                let mut cmd = crate::shared::queue::expire_command(member, deadline);
                let known = found.next();
                match self.process(
                    &mut cmd, &mut None, None, seq, at, &snapshot, &mut txs, known,
                ) {
                    Outcome::New(_) | Outcome::Replay(_) => {}
                    Outcome::Failed(e) => {
                        tracing::warn!(member = member.0, error = %e, "expiry not posted")
                    }
                }
            }
            round += 1;
            let room = self
                .config
                .hold_expiries_per_batch_max
                .saturating_sub(txs.len());
            due = self
                .state
                .due_expiries(at, room + tried.len())
                .into_iter()
                .filter(|d| !tried.contains(d))
                .take(room)
                .collect();
        }
        // The key index's slots for the commands' keys (hashed by the submitting threads) are
        // asked for all together first, with the members' lookups (neither waits on the other:
        // a slot's page walk, a miss in the TLB nearly always, overlaps the next ones instead
        // of stalling one command each), and again a few commands ahead of each claim; so is
        // each command's member, keeping where each state lies.
        // Past the window, so is each key's block of the filter over keys on disk.
        let filter = self.keys.spilled().then(|| self.filter.clone());
        let ahead: Vec<(u128, Option<MemberId>, usize)> = batch
            .iter()
            .map(|j| {
                self.keys.prefetch(j.hash);
                if let Some(f) = &filter {
                    f.prefetch(crate::keys::disk_hash(j.hash));
                }
                let m = self.state.member_named(&j.cmd);
                (j.hash, m, prefetch::member_at(&self.state, m))
            })
            .collect();
        for (.., at) in ahead.iter().take(2 * prefetch::AHEAD) {
            prefetch::member(*at);
        }
        let outcomes: Vec<Outcome> = batch
            .iter_mut()
            .enumerate()
            .map(|(i, j)| {
                if let Some((h, m, _)) = ahead.get(i + prefetch::AHEAD) {
                    self.keys.prefetch(*h);
                    if let Some(f) = &filter {
                        f.prefetch(crate::keys::disk_hash(*h));
                    }
                    prefetch::member_parts(&self.state, *m);
                }
                if let Some((.., at)) = ahead.get(i + 2 * prefetch::AHEAD) {
                    prefetch::member(*at);
                }
                if let Some((_, m, _)) = ahead.get(i + prefetch::AHEAD / 2) {
                    prefetch::member_months(&self.state, *m);
                }
                self.process(
                    &mut j.cmd,
                    &mut j.pricing,
                    Some((j.hash, j.digest)),
                    seq,
                    at,
                    &snapshot,
                    &mut txs,
                    None,
                )
            })
            .collect();
        drop(snapshot);
        self.reversals.changed(txs.iter().map(|t| &**t), seq);

        let (pages, members_through) = if txs.is_empty() {
            (Vec::new(), 0)
        } else {
            // The next batch builds on this one at once; should this one not reach the disk,
            // the syncer fails the ledger and nothing after it is answered.
            self.next_seq = seq + 1;
            self.last_at = at;
            self.cut_pages(seq, &txs)
        };
        let txs = Arc::new(Batch {
            seq,
            at,
            txs,
            pages,
            members_through,
            members_held: self.state.members.len() as u64,
        });
        if !txs.txs.is_empty() {
            self.recent.keep(txs.clone());
        }
        let answers = batch
            .drain(..)
            .zip(outcomes)
            .map(|(job, outcome)| {
                let answer = match outcome {
                    Outcome::New(i) => Ok(Receipt {
                        tx: txs.txs[i].clone(),
                        replayed: false,
                    }),
                    Outcome::Replay(tx) => Ok(Receipt {
                        tx: Arc::new(*tx),
                        replayed: true,
                    }),
                    Outcome::Failed(e) => Err(e),
                };
                (job.reply, answer)
            })
            .collect();
        Ok(Sealed {
            started,
            batch: txs,
            answers,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn process(
        &mut self,
        cmd: &mut Command,
        pricing: &mut Option<Pricing>,
        submitted: Option<(u128, crate::core::model::Digest)>,
        seq: u64,
        at: Timestamp,
        snapshot: &S::Snapshot,
        txs: &mut Vec<Arc<Transaction>>,
        known: Option<Option<Transaction>>,
    ) -> Outcome {
        let key = cmd.key();
        if key.reference.is_empty() || key.reference.len() > IdemKey::REFERENCE_LEN_MAX {
            return Outcome::Failed(
                Rejection::ReferenceLength {
                    len_max: IdemKey::REFERENCE_LEN_MAX,
                }
                .into(),
            );
        }
        let (hash, digest) = submitted.unwrap_or_else(|| {
            (
                crate::keys::hash_key(key),
                cmd.digest_priced(pricing.as_ref()),
            )
        });
        let id = TxId::in_batch(seq, txs.len());
        // A key memory does not hold (nearly every command's) takes its entry for the
        // transaction it would commit in the same probe that finds it absent; the entry goes
        // again if the command commits nothing. Entries are indexed as they are decided, so a
        // repeat later in this batch finds its original here (and the transaction in `txs`).
        // Readers confirm every hit against the journal, so they see the key only once its
        // batch is durable; and a failed commit stops the writer, so no decision is taken on a
        // key whose transaction was lost.
        let (found, claimed) = match known {
            Some(found) => (Ok(found), false),
            None => match self.keys.claim(hash, id) {
                None => (self.find_on_disk(key, hash, snapshot, txs, seq), true),
                Some(held) => (self.find_held(key, hash, held, snapshot, txs, seq), false),
            },
        };
        let outcome = match found {
            Ok(Some(original)) if original.digest != digest => Outcome::Failed(
                Rejection::IdempotencyConflict {
                    original: original.id,
                }
                .into(),
            ),
            Ok(Some(original)) => Outcome::Replay(Box::new(original)),
            Ok(None) => self.decide_one(cmd, pricing, digest, id, at, snapshot, txs, seq),
            Err(e) => Outcome::Failed(e),
        };
        match outcome {
            Outcome::New(_) if !claimed => self.keys.insert_hash(hash, id),
            Outcome::New(_) => {}
            _ if claimed => self.keys.remove_hash(hash, id),
            _ => {}
        }
        outcome
    }

    /// Decides a command whose key is new, and applies the transaction it commits as `id`.
    #[allow(clippy::too_many_arguments)]
    fn decide_one(
        &mut self,
        cmd: &mut Command,
        pricing: &mut Option<Pricing>,
        digest: crate::core::model::Digest,
        id: TxId,
        at: Timestamp,
        snapshot: &S::Snapshot,
        txs: &mut Vec<Arc<Transaction>>,
        seq: u64,
    ) -> Outcome {
        if let Command::Reverse { original, .. } = cmd {
            if self.reversals.must_read(&self.state, *original) {
                let read = self
                    .reversals
                    .read(&mut self.state, snapshot, &[*original], seq);
                if let Err(e) = read {
                    return Outcome::Failed(e);
                }
            }
        }
        let history = BatchHistory {
            snapshot,
            txs,
            seq,
            recent: &self.recent,
        };
        // The command is answered once decided: its key and pricing move into the transaction.
        match self.state.decide_keyless(cmd, digest, id, at, &history) {
            Ok(mut tx) => {
                let key = cmd.key_mut();
                tx.key = IdemKey {
                    scope: key.scope,
                    reference: std::mem::take(&mut key.reference),
                };
                tx.pricing = pricing.take();
                self.state.apply(&tx);
                txs.push(Arc::new(tx));
                Outcome::New(txs.len() - 1)
            }
            Err(DecideError::Rejected(r)) => Outcome::Failed(r.into()),
            Err(DecideError::Failed(e)) => Outcome::Failed(e),
        }
    }

    /// Looks up the keys of `cmds` (system commands of due work): what each key committed,
    /// if anything, or the first read that failed.
    fn look_up<'a>(
        &self,
        cmds: impl Iterator<Item = &'a Command>,
        snapshot: &S::Snapshot,
        txs: &[Arc<Transaction>],
        seq: u64,
    ) -> Result<Vec<Option<Transaction>>, LedgerError> {
        cmds.map(|cmd| {
            let key = cmd.key();
            self.find_key(key, crate::keys::hash_key(key), snapshot, txs, seq)
        })
        .collect()
    }

    /// A batch refused as a whole before anything was decided: every command is answered with
    /// `why` (a caller may retry), and nothing is written.
    fn refuse(
        &self,
        batch: &mut Vec<Job>,
        started: Instant,
        seq: u64,
        at: Timestamp,
        why: LedgerError,
    ) -> Sealed {
        let answers = batch
            .drain(..)
            .map(|job| (job.reply, Err(why.clone())))
            .collect();
        Sealed {
            started,
            batch: Arc::new(Batch {
                seq,
                at,
                txs: Vec::new(),
                pages: Vec::new(),
                members_through: 0,
                members_held: 0,
            }),
            answers,
        }
    }

    /// Notes the member pages that `txs`, batch `seq`, changed, and copies those now due to be
    /// written. Returns the copies, for the projector to write in the commit that covers this
    /// batch, and the batch through which every page is then current.
    fn cut_pages(&mut self, seq: u64, txs: &[Arc<Transaction>]) -> (Vec<PageCopy>, u64) {
        for tx in txs {
            if let crate::core::model::TxKind::Enrolled { member } = tx.kind {
                self.pages.add(member);
            }
            for m in tx.members() {
                self.dirty.touch(m, seq);
            }
        }
        self.dirty.advance(txs.len() as u64);
        self.take_pages(false, seq)
    }

    /// Copies the member pages due (with `all`, every changed page) as of batch `seq`, and says
    /// through which batch every page is current once they are written.
    fn take_pages(&mut self, all: bool, seq: u64) -> (Vec<PageCopy>, u64) {
        let copies: Vec<PageCopy> = self
            .dirty
            .take_due(all)
            .into_iter()
            .map(|p| {
                let form = self.dirty.form(p, self.pages.members(p).len());
                self.pages.copy(p, &self.state, seq, form)
            })
            .collect();
        if !copies.is_empty() {
            let stats = &self.shared.stats;
            let whole = copies
                .iter()
                .filter(|c| matches!(c.form, PageForm::Whole { .. }))
                .count() as u64;
            let members: u64 = copies.iter().map(|c| c.members).sum();
            stats
                .pages_written_whole
                .fetch_add(whole, Ordering::Relaxed);
            stats
                .pages_written_as_changes
                .fetch_add(copies.len() as u64 - whole, Ordering::Relaxed);
            stats
                .page_members_encoded
                .fetch_add(members, Ordering::Relaxed);
        }
        (copies, self.dirty.through(seq))
    }

    /// Drops from memory the idempotency entries whose on-disk records `version` includes:
    /// from now on they are looked up there.
    fn forget_spilled(&mut self, version: crate::store::Version) {
        self.leaving.extend(self.spilled.try_iter());
        while self.leaving.front().is_some_and(|(v, _)| *v <= version) {
            let (_, entries) = self.leaving.pop_front().expect("a front");
            self.keys.remove_hashes(&entries);
            self.keys.left(entries.len());
        }
        self.filter = self.keys.current_filter();
    }

    /// Looks an idempotency key (of hash `hash`) up in the in-memory index of every key decided,
    /// this batch's included, and returns the transaction it committed. A hit is confirmed
    /// against the transaction it names; should a hash collision name another key's
    /// transaction, the others of that hash decide.
    fn find_key(
        &self,
        key: &IdemKey,
        hash: u128,
        snapshot: &S::Snapshot,
        txs: &[Arc<Transaction>],
        seq: u64,
    ) -> Result<Option<Transaction>, LedgerError> {
        match self.keys.get_hash(hash) {
            Some(held) => self.find_held(key, hash, held, snapshot, txs, seq),
            None => self.find_on_disk(key, hash, snapshot, txs, seq),
        }
    }

    /// Like [`Self::find_key`], once memory was found to hold transaction `held` for the hash.
    fn find_held(
        &self,
        key: &IdemKey,
        hash: u128,
        held: TxId,
        snapshot: &S::Snapshot,
        txs: &[Arc<Transaction>],
        seq: u64,
    ) -> Result<Option<Transaction>, LedgerError> {
        // Another key with the same hash may hold the first entry: then look through the others.
        let ids = std::iter::once(held).chain(self.keys.colliding(key));
        if let Some(tx) = self.first_of(key, ids, snapshot, txs, seq)? {
            return Ok(Some(tx));
        }
        self.find_on_disk(key, hash, snapshot, txs, seq)
    }

    /// The first of transactions `ids` whose key is `key` (a hash names candidates only).
    fn first_of(
        &self,
        key: &IdemKey,
        ids: impl Iterator<Item = TxId>,
        snapshot: &S::Snapshot,
        txs: &[Arc<Transaction>],
        seq: u64,
    ) -> Result<Option<Transaction>, LedgerError> {
        for id in ids {
            if let Some(tx) = self.original_of(id, snapshot, txs, seq)? {
                if tx.key == *key {
                    return Ok(Some(tx));
                }
            }
        }
        Ok(None)
    }

    /// A key absent from memory may be older than the keys memory holds: its record is then
    /// on disk (`l` hash), which `snapshot` includes (see [`Self::forget_spilled`]).
    fn find_on_disk(
        &self,
        key: &IdemKey,
        hash: u128,
        snapshot: &S::Snapshot,
        txs: &[Arc<Transaction>],
        seq: u64,
    ) -> Result<Option<Transaction>, LedgerError> {
        if !self.keys.spilled() || self.filter.surely_absent(crate::keys::disk_hash(hash)) {
            return Ok(None);
        }
        let ids = self.keys.on_disk(snapshot, hash)?;
        self.first_of(key, ids.into_iter(), snapshot, txs, seq)
    }

    /// The transaction a retried key produced: only read when the retry is a true replay.
    fn original_of(
        &self,
        id: TxId,
        snapshot: &S::Snapshot,
        txs: &[Arc<Transaction>],
        seq: u64,
    ) -> Result<Option<Transaction>, LedgerError> {
        BatchHistory {
            snapshot,
            txs,
            seq,
            recent: &self.recent,
        }
        .transaction(id)
    }

    /// Indexes the keys of batches replayed at open (the writer indexes its own as it decides).
    pub fn remember(&self, txs: &[Arc<Transaction>]) {
        for tx in txs {
            self.keys.insert(&tx.key, tx.id);
        }
    }
}

/// Lookups of committed transactions for `decide`: the batch being built, the recent batches
/// in memory, then the journal.
struct BatchHistory<'a, Snap: Snapshot> {
    snapshot: &'a Snap,
    txs: &'a [Arc<Transaction>],
    seq: u64,
    recent: &'a crate::single::recent::Recent,
}

impl<Snap: Snapshot> History for BatchHistory<'_, Snap> {
    type Error = LedgerError;

    fn transaction(&self, id: TxId) -> Result<Option<Transaction>, LedgerError> {
        if id.seq() == self.seq {
            return Ok(self
                .txs
                .get(usize::from(id.slot()))
                .map(|t| Transaction::clone(t)));
        }
        if let Some(t) = self.recent.get(id) {
            return Ok(Some(Transaction::clone(&t)));
        }
        crate::journal::find_transaction(self.snapshot, id)
    }
}

#[cfg(test)]
mod tests {
    use super::release;

    /// Notes the name of the thread it is dropped on.
    struct Noted(std::sync::mpsc::Sender<Option<String>>);

    impl Drop for Noted {
        fn drop(&mut self) {
            let _ = self
                .0
                .send(std::thread::current().name().map(str::to_string));
        }
    }

    /// A small state is freed before `release` returns, on the writer's own thread; a large one
    /// on a thread of its own, which `release` does not wait for.
    #[test]
    fn a_large_state_is_freed_apart_and_a_small_one_at_once() {
        let (tx, rx) = std::sync::mpsc::channel();
        assert!(release(Noted(tx.clone()), false).is_none());
        let here = std::thread::current().name().map(str::to_string);
        assert_eq!(rx.try_recv().expect("freed before release returned"), here);

        let freeing = release(Noted(tx), true).expect("a thread of its own");
        assert_eq!(freeing.thread().name(), Some("ledger-free"));
        freeing.join().expect("the thread freed it");
        assert_eq!(
            rx.try_recv().expect("freed on that thread"),
            Some("ledger-free".to_string())
        );
    }
}
