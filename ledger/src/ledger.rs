//! The ledger handle: open (with recovery), submit commands, read balances and history.
//!
//! ```
//! use ledger::*;
//! use rust_decimal::Decimal;
//! let dir = tempfile::tempdir().unwrap();
//! let ledger = Ledger::open(store::EmbeddedStore::open(dir.path()).unwrap(), LedgerConfig::default()).unwrap();
//! let airline = PartnerId(1);
//! ledger.execute_blocking(Command::SetContract {
//!     key: IdemKey::operator("contract-1"),
//!     contract: Contract {
//!         partner: airline,
//!         currency: "EUR".parse().unwrap(),
//!         issuance_price_per_point: Decimal::new(1, 2),
//!         redemption_price_per_point: Decimal::new(8, 3),
//!         points_validity_days: Some(730),
//!     },
//! }).unwrap();
//! ledger.execute_blocking(Command::Enrol { key: IdemKey::operator("enrol-7"), member: MemberId(7) }).unwrap();
//! let r = ledger.execute_blocking(Command::Earn {
//!     key: IdemKey::partner(airline, "flight-LH123"),
//!     member: MemberId(7), partner: airline, points: Points(1200), bonus: Points(0),
//! }).unwrap();
//! assert!(!r.replayed);
//! assert_eq!(ledger.balance(MemberId(7)).unwrap().unwrap().available, Points(1200));
//! ledger.shutdown();
//! ```

use crate::codec::{self, HistoryEntry, IdemRecord, MemberPage, MemberRecord, StatementEntry};
use crate::committer::{Batch, CommitterConfig, Job, Writer};
use crate::error::LedgerError;
use crate::heads::Heads;
use crate::key_index::KeyIndex;
use crate::keys;
use crate::model::{Command, IdemKey, Policy, Pricing, Receipt, Transaction};
use crate::projector::{DirtyPages, PageMembers, Projector};
use crate::state::{Balance, HoldState, Reversed, State};
use crate::store::{prefix_end, Snapshot, Store, TxnStore};
use crate::types::{AccountId, Contract, MemberId, PartnerId, Points, Timestamp, TxId};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Called after every durable batch with the number of transactions and the batch's time from
/// the first command taken off the queue to the end of the fsync.
pub type CommitObserver = Arc<dyn Fn(usize, Duration) + Send + Sync>;

/// Ledger settings.
#[derive(Clone)]
pub struct LedgerConfig {
    /// Committer tuning.
    pub committer: CommitterConfig,
    /// Programme policy.
    pub policy: Policy,
    /// Optional hook for metrics on every committed batch.
    pub on_commit: Option<CommitObserver>,
    /// Transactions committed between the first change to a member page (1,024 member ids)
    /// and the write of the stored page (0: with every projector commit). Every change to the
    /// page's members meanwhile is covered by that one write. Each page waits up to as long
    /// again (an offset per page, so that pages changed together are not written together). A
    /// restart replays at most about twice this many transactions for member pages; a clean
    /// shutdown writes them all.
    pub member_write_delay: u64,
}

impl Default for LedgerConfig {
    fn default() -> LedgerConfig {
        LedgerConfig {
            committer: CommitterConfig::default(),
            policy: Policy::default(),
            on_commit: None,
            member_write_delay: 1_000_000,
        }
    }
}

impl std::fmt::Debug for LedgerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerConfig")
            .field("committer", &self.committer)
            .field("policy", &self.policy)
            .field("member_write_delay", &self.member_write_delay)
            .finish_non_exhaustive()
    }
}

/// A member's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberBalance {
    /// Sum of postings.
    pub posted: Points,
    /// Reserved by open holds.
    pub pending: Points,
    /// Posted minus pending.
    pub available: Points,
}

/// One page of a member's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementPage {
    /// Entries, newest first.
    pub entries: Vec<StatementEntry>,
    /// Pass as `before` to get the next (older) page; `None` at the end.
    pub next: Option<TxId>,
}

/// Counters the ledger keeps about itself.
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Storage commits by the committer.
    pub batches: AtomicU64,
    /// Transactions committed.
    pub transactions: AtomicU64,
    /// Sum of batch commit durations, microseconds.
    pub commit_us_total: AtomicU64,
}

/// State shared by the handle, the writer and the projector.
pub(crate) struct Shared {
    projected: Mutex<u64>,
    projected_cv: Condvar,
    committed: AtomicU64,
    failure: Mutex<Option<String>>,
    /// Set by [`Ledger::stop_as_if_crashed`]: the projector skips its shutdown writes.
    pub(crate) skip_shutdown_writes: std::sync::atomic::AtomicBool,
    pub stats: LedgerStats,
    on_commit: Option<CommitObserver>,
}

impl Shared {
    pub fn projected_to(&self, seq: u64) {
        *self.projected.lock().expect("projected lock") = seq;
        self.projected_cv.notify_all();
    }

    pub fn committed(&self, seq: u64, txs: usize, took: Duration) {
        self.committed.store(seq, Ordering::Release);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .transactions
            .fetch_add(txs as u64, Ordering::Relaxed);
        self.stats
            .commit_us_total
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if let Some(f) = &self.on_commit {
            f(txs, took);
        }
    }

    pub fn fail(&self, why: String) {
        self.failure
            .lock()
            .expect("failure lock")
            .get_or_insert(why);
        self.projected_cv.notify_all();
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("failure lock").clone()
    }
}

/// How long a read waits for the projector to catch up with commits made before it.
const READ_WAIT_MAX: Duration = Duration::from_secs(10);

/// A waiting command's answer.
pub type Pending = tokio::sync::oneshot::Receiver<Result<Receipt, LedgerError>>;

/// The ledger: a running committer and projector over a store (or, on the cluster path, a
/// writer whose every batch is a store transaction; see [`crate::cluster`]).
pub struct Ledger<S: Store> {
    store: S,
    shared: Arc<Shared>,
    jobs: Option<crossbeam_channel::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    projector: Option<JoinHandle<()>>,
    /// The single committer's in-memory indexes; `None` on the cluster path, whose derived
    /// state is all in the store, written with the journal (so its reads never wait).
    memory: Option<Memory>,
}

/// What the single committer keeps in memory for readers.
struct Memory {
    /// Every committed idempotency key (the cluster path's index is in the store, one key per
    /// command).
    keys: Arc<KeyIndex>,
    /// Each member's latest transaction and points.
    heads: Arc<Heads>,
}

impl<S: Store + Clone> Ledger<S> {
    /// Opens the ledger on `store`: loads derived state, replays the journal after it, and
    /// starts the committer and projector threads.
    pub fn open(store: S, config: LedgerConfig) -> Result<Ledger<S>, LedgerError> {
        let batch_max = config.committer.batch_size_max.clamp(1, 60_000);
        let committer = CommitterConfig {
            batch_size_max: batch_max,
            ..config.committer
        };
        let snapshot = store.snapshot()?;
        if crate::cluster::is_cluster_store(&snapshot)? {
            return Err(LedgerError::Unavailable(
                "this store is written by cluster-mode ledgers; open it in cluster mode".into(),
            ));
        }
        let Loaded {
            mut state,
            through,
            members_through,
            member_stamps,
        } = load_state(&snapshot, config.policy)?;
        let keys = Arc::new(KeyIndex::load(&snapshot)?);
        let shared = Arc::new(Shared {
            projected: Mutex::new(through),
            projected_cv: Condvar::new(),
            committed: AtomicU64::new(through),
            failure: Mutex::new(None),
            skip_shutdown_writes: Default::default(),
            stats: LedgerStats::default(),
            on_commit: config.on_commit.clone(),
        });
        // Bring member pages forward to the watermark, each from the batch it covers (they are
        // written later than the rest; see `projector`). Then replay what the projector had not
        // covered at all, and hand it those batches.
        let mut dirty = DirtyPages::new(config.member_write_delay);
        let mut mirror: Option<State> = None;
        let mut tail: Vec<Arc<Batch>> = Vec::new();
        crate::journal::for_each_batch(
            &snapshot,
            members_through.min(through),
            &mut |seq, txs| {
                if seq <= through {
                    let behind = |m: MemberId| member_stamps.get(&m).is_none_or(|s| *s < seq);
                    for tx in &txs {
                        state.apply_to_members(tx, behind);
                        for m in tx.members().filter(|m| behind(*m)) {
                            dirty.touch(m, seq);
                        }
                    }
                    return Ok(());
                }
                if mirror.is_none() {
                    mirror = Some(state.clone());
                }
                for tx in &txs {
                    state.apply(tx);
                }
                let at = txs.last().map(|t| t.at).unwrap_or_default();
                let txs = txs.into_iter().map(Arc::new).collect();
                tail.push(Arc::new(Batch { seq, at, txs }));
                Ok(())
            },
        )?;
        drop(snapshot);
        let mirror = mirror.unwrap_or_else(|| state.clone());
        let last_at = tail.last().map(|b| b.at).unwrap_or_default();
        let last_seq = tail.last().map(|b| b.seq).unwrap_or(through);
        if let Some(b) = tail.last() {
            shared.committed.store(b.seq, Ordering::Release);
        }
        let (to_projector, from_writer) = crossbeam_channel::bounded::<Arc<Batch>>(64);
        let heads = Arc::new(Heads::from_state(&state));
        let projector = Projector {
            store: store.clone(),
            heads: heads.clone(),
            pages: PageMembers::of(&mirror),
            mirror,
            shared: shared.clone(),
            dirty,
            last_seq: through,
        };
        let projector = std::thread::Builder::new()
            .name("ledger-projector".into())
            .spawn(move || projector.run(from_writer))
            .map_err(|e| LedgerError::Unavailable(format!("cannot start projector: {e}")))?;
        let writer = Writer {
            store: store.clone(),
            state,
            keys: keys.clone(),
            config: committer,
            shared: shared.clone(),
            to_projector,
            last_at,
            next_seq: last_seq + 1,
            recent: std::collections::VecDeque::new(),
            recent_txs: 0,
        };
        for b in tail {
            writer.remember(&b.txs);
            writer.to_projector.send(b).map_err(|_| {
                LedgerError::Unavailable("projector stopped during recovery".into())
            })?;
        }
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(committer.queue_capacity.max(1));
        let writer = std::thread::Builder::new()
            .name("ledger-committer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| LedgerError::Unavailable(format!("cannot start committer: {e}")))?;
        Ok(Ledger {
            store,
            shared,
            jobs: Some(jobs),
            writer: Some(writer),
            projector: Some(projector),
            memory: Some(Memory { keys, heads }),
        })
    }
}

impl<S: TxnStore + Clone> Ledger<S> {
    /// Opens the ledger on the cluster path: one of many processes writing `store` at once.
    /// Nothing is loaded into memory; every batch reads what it decides on inside a store
    /// transaction. A store written by a single committer is refused, and vice versa.
    pub fn open_cluster(
        store: S,
        config: LedgerConfig,
        cluster: crate::cluster::ClusterConfig,
    ) -> Result<Ledger<S>, LedgerError> {
        crate::cluster::claim_store(&store)?;
        let committer = CommitterConfig {
            batch_size_max: config.committer.batch_size_max.max(1),
            ..config.committer
        };
        let shared = Arc::new(Shared {
            projected: Mutex::new(u64::MAX),
            projected_cv: Condvar::new(),
            committed: AtomicU64::new(0),
            failure: Mutex::new(None),
            skip_shutdown_writes: Default::default(),
            stats: LedgerStats::default(),
            on_commit: config.on_commit.clone(),
        });
        let writer = crate::cluster::ClusterWriter::new(
            store.clone(),
            config.policy,
            committer,
            cluster,
            shared.clone(),
        );
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(committer.queue_capacity.max(1));
        let writer = std::thread::Builder::new()
            .name("ledger-cluster-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| LedgerError::Unavailable(format!("cannot start writer: {e}")))?;
        Ok(Ledger {
            store,
            shared,
            jobs: Some(jobs),
            writer: Some(writer),
            projector: None,
            memory: None,
        })
    }
}

impl<S: Store> Ledger<S> {
    /// Queues `cmd`; fails at once with [`LedgerError::Overloaded`] when the queue is full.
    pub fn submit(&self, cmd: Command) -> Result<Pending, LedgerError> {
        self.submit_priced(cmd, None)
    }

    /// Queues `cmd` with the pricing it was converted under; the transaction records it and a
    /// retry must repeat it to count as the same command.
    pub fn submit_priced(
        &self,
        cmd: Command,
        pricing: Option<Pricing>,
    ) -> Result<Pending, LedgerError> {
        if let Some(why) = self.shared.failure() {
            return Err(LedgerError::Unavailable(why));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| LedgerError::Unavailable("ledger is shutting down".into()))?;
        jobs.try_send(Job {
            cmd,
            pricing,
            reply,
        })
        .map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => LedgerError::Overloaded,
            crossbeam_channel::TrySendError::Disconnected(_) => {
                LedgerError::Unavailable("committer stopped".into())
            }
        })?;
        Ok(answer)
    }

    /// Submits `cmd` and waits for its durable receipt.
    pub async fn execute(&self, cmd: Command) -> Result<Receipt, LedgerError> {
        let pending = self.submit(cmd)?;
        pending
            .await
            .map_err(|_| LedgerError::Unavailable("committer stopped".into()))?
    }

    /// Submits `cmd` and blocks the thread until its durable receipt. Not for async contexts.
    pub fn execute_blocking(&self, cmd: Command) -> Result<Receipt, LedgerError> {
        let pending = self.submit(cmd)?;
        pending
            .blocking_recv()
            .map_err(|_| LedgerError::Unavailable("committer stopped".into()))?
    }

    /// The last commit version the committer made durable.
    pub fn committed_version(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    /// Counters about the committer.
    pub fn stats(&self) -> &LedgerStats {
        &self.shared.stats
    }

    /// Waits until the derived state covers every commit made before this call, then returns a
    /// snapshot that includes it. Reads built on it see their own writes.
    pub fn read_snapshot(&self) -> Result<S::Snapshot, LedgerError> {
        self.wait_projected()?;
        Ok(self.store.snapshot()?)
    }

    /// Waits until the derived state (and the heads) cover every commit made before this call.
    fn wait_projected(&self) -> Result<(), LedgerError> {
        if self.memory.is_none() {
            return match self.shared.failure() {
                Some(why) => Err(LedgerError::Unavailable(why)),
                None => Ok(()),
            };
        }
        let target = self.committed_version();
        let deadline = Instant::now() + READ_WAIT_MAX;
        let mut projected = self.shared.projected.lock().expect("projected lock");
        while *projected < target {
            if let Some(why) = self.shared.failure() {
                return Err(LedgerError::Unavailable(why));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LedgerError::Unavailable(
                    "derived state is behind the journal; retry".into(),
                ));
            }
            projected = self
                .shared
                .projected_cv
                .wait_timeout(projected, left)
                .expect("projected lock")
                .0;
        }
        Ok(())
    }

    /// A member's posted, pending and available points; `None` if not enrolled.
    pub fn balance(&self, m: MemberId) -> Result<Option<MemberBalance>, LedgerError> {
        let Some(memory) = &self.memory else {
            return member_balance(&self.read_snapshot()?, m);
        };
        self.wait_projected()?;
        Ok(memory.heads.get(m).map(|h| MemberBalance {
            posted: h.posted,
            pending: h.held,
            available: Points(h.posted.0 - h.held.0),
        }))
    }

    /// Any account's current balance (members: posted points).
    pub fn account_balance(&self, a: AccountId) -> Result<Balance, LedgerError> {
        if let AccountId::Member(m) = a {
            let posted = self.balance(m)?.map(|b| b.posted).unwrap_or_default();
            return Ok(Balance {
                points: posted,
                money: vec![],
            });
        }
        system_account_balance(&self.read_snapshot()?, a)
    }

    /// A page of member `m`'s statement, newest first: at most `limit` entries (1 to 1,000)
    /// older than transaction `before` (from the latest with `None`).
    pub fn statement(
        &self,
        m: MemberId,
        before: Option<TxId>,
        limit: usize,
    ) -> Result<StatementPage, LedgerError> {
        let limit = limit.clamp(1, 1000);
        let Some(memory) = &self.memory else {
            return cluster_statement(&self.read_snapshot()?, m, before, limit);
        };
        self.wait_projected()?;
        let Some(head) = memory.heads.get(m) else {
            return Ok(StatementPage {
                entries: vec![],
                next: None,
            });
        };
        // Taken after the head was read: it holds the head's transaction and all before it.
        let snap = self.store.snapshot()?;
        let from = match before {
            None => head.tx,
            Some(id) => member_link(&snap, m, id)?.1.prev,
        };
        let mut entries = Vec::new();
        let rest = walk_chain(&snap, m, from, |tx, a| {
            entries.push(crate::projector::statement_entry(tx, m, a.posted, a.held));
            entries.len() < limit
        })?;
        let next = rest.and(entries.last().map(|e| e.tx));
        Ok(StatementPage { entries, next })
    }

    /// The committed transaction `id`.
    pub fn transaction(&self, id: TxId) -> Result<Option<Transaction>, LedgerError> {
        let snap = self.store.snapshot()?;
        self.durable_transaction(&snap, id)
    }

    /// Transaction `id` from the journal in `snap`, once durable. The single committer's
    /// journal blocks are visible in the store a moment before their fsync completes; a batch
    /// counts only once the writer has published it as committed.
    fn durable_transaction(
        &self,
        snap: &S::Snapshot,
        id: TxId,
    ) -> Result<Option<Transaction>, LedgerError> {
        if self.memory.is_some() && id.seq() > self.shared.committed.load(Ordering::Acquire) {
            return Ok(None);
        }
        crate::journal::find_transaction(snap, id)
    }

    /// The transaction an idempotency key produced, if any.
    pub fn transaction_by_key(&self, key: &IdemKey) -> Result<Option<Transaction>, LedgerError> {
        let Some(memory) = &self.memory else {
            let snap = self.read_snapshot()?;
            return match snap.get(&keys::idempotency(key))? {
                Some(v) => {
                    let rec: IdemRecord = codec::decode("idempotency record", &v)?;
                    crate::journal::find_transaction(&snap, rec.tx)
                }
                None => Ok(None),
            };
        };
        // The committer adds a key as it decides the command, before the batch is durable; a
        // hit counts only once the transaction it names is durable and has this key. A key
        // whose command was answered is always found.
        let candidates = memory
            .keys
            .get(key)
            .into_iter()
            .chain(memory.keys.colliding(key));
        let snap = self.store.snapshot()?;
        for id in candidates {
            if let Some(tx) = self.durable_transaction(&snap, id)? {
                if tx.key == *key {
                    return Ok(Some(tx));
                }
            }
        }
        Ok(None)
    }

    /// Account `a`'s balance as of time `at` (every transaction committed at or before it).
    pub fn balance_as_of(&self, a: AccountId, at: Timestamp) -> Result<Balance, LedgerError> {
        let (AccountId::Member(m), Some(memory)) = (a, &self.memory) else {
            return balance_as_of(&self.read_snapshot()?, a, at);
        };
        // Walk the member's chain back from its head to the last transaction by `at`.
        self.wait_projected()?;
        let head = memory.heads.get(m).and_then(|h| h.tx);
        let snap = self.store.snapshot()?;
        let mut points = Points::ZERO;
        walk_chain(&snap, m, head, |tx, link| {
            if tx.at <= at {
                points = link.posted;
                return false;
            }
            true
        })?;
        Ok(Balance {
            points,
            money: vec![],
        })
    }

    /// Partner `p`'s contract, if one was set.
    pub fn contract(&self, p: PartnerId) -> Result<Option<Contract>, LedgerError> {
        let snap = self.read_snapshot()?;
        match snap.get(&keys::contract(p))? {
            Some(v) => Ok(Some(codec::decode("contract record", &v)?)),
            None => Ok(None),
        }
    }

    /// Why the ledger stopped accepting work, if it did (a storage failure stops the writer).
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// Commands waiting in the committer's queue.
    pub fn queue_depth(&self) -> usize {
        self.jobs.as_ref().map_or(0, |j| j.len())
    }

    /// A read-only handle on the store, for the audit and tools.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Stops accepting commands, lets the committer and projector finish, and waits for them.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Stops like [`Ledger::shutdown`], but leaves out the projector's shutdown writes (member
    /// records still waiting), as a crash after the projector's last commit would. For tests
    /// of recovery.
    #[doc(hidden)]
    pub fn stop_as_if_crashed(mut self) {
        self.shared
            .skip_shutdown_writes
            .store(true, Ordering::Release);
        self.stop();
    }

    fn stop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(p) = self.projector.take() {
            let _ = p.join();
        }
    }
}

impl<S: Store> Drop for Ledger<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A member's points from its record; `None` if not enrolled. (The cluster path writes member
/// records with every change; the single committer answers from its heads.)
pub(crate) fn member_balance<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    m: MemberId,
) -> Result<Option<MemberBalance>, LedgerError> {
    Ok(match snap.get(&keys::member(m))? {
        Some(v) => {
            let r: MemberRecord = codec::decode("member record", &v)?;
            Some(MemberBalance {
                posted: r.state.posted,
                pending: r.state.held,
                available: r.state.available(),
            })
        }
        None => None,
    })
}

/// Transaction `id` of member `m`'s chain, with its line for `m`.
fn member_link<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    m: MemberId,
    id: TxId,
) -> Result<(Transaction, crate::model::MemberAfter), LedgerError> {
    let tx = crate::journal::find_transaction(snap, id)?.ok_or_else(|| {
        LedgerError::Corrupt(format!(
            "member/{}: transaction {id} of its chain is not in the journal",
            m.0
        ))
    })?;
    let link = *tx
        .member_balances
        .iter()
        .find(|a| a.member == m)
        .ok_or_else(|| {
            LedgerError::Corrupt(format!(
                "member/{}: transaction {id} of its chain does not touch it",
                m.0
            ))
        })?;
    Ok((tx, link))
}

/// Walks member `m`'s chain back from transaction `from`, calling `visit` with each transaction
/// and its line for `m` until `visit` returns false; returns the next transaction not visited.
fn walk_chain<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    m: MemberId,
    from: Option<TxId>,
    mut visit: impl FnMut(&Transaction, &crate::model::MemberAfter) -> bool,
) -> Result<Option<TxId>, LedgerError> {
    let mut at = from;
    while let Some(id) = at {
        let (tx, link) = member_link(snap, m, id)?;
        at = link.prev;
        if !visit(&tx, &link) {
            break;
        }
    }
    Ok(at)
}

/// A page of the cluster path's statement lines (`S` member tx), newest first.
fn cluster_statement<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    m: MemberId,
    before: Option<TxId>,
    limit: usize,
) -> Result<StatementPage, LedgerError> {
    let begin = keys::statement_prefix(m);
    let end = match before {
        Some(id) => keys::statement(m, id),
        None => prefix_end(&begin),
    };
    let rows = snap.range(&begin, &end, limit + 1, true)?;
    let mut entries = rows
        .iter()
        .map(|(_, v)| codec::decode::<StatementEntry>("statement entry", v))
        .collect::<Result<Vec<_>, _>>()?;
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.tx)
    } else {
        None
    };
    Ok(StatementPage { entries, next })
}

/// A non-member account's balance in `snap`: the projector's balance record plus the cluster
/// path's blind-added totals (one or the other is empty, depending on which path wrote the
/// store). Members are read from the heads (single committer) or member records (cluster).
pub(crate) fn system_account_balance<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    a: AccountId,
) -> Result<Balance, LedgerError> {
    debug_assert!(!a.is_member(), "member balances are not balance records");
    let mut b = match snap.get(&keys::balance(a))? {
        Some(v) => codec::decode("balance record", &v)?,
        None => Balance::default(),
    };
    crate::cluster::read_totals(snap, a, &mut b)?;
    Ok(b)
}

fn balance_as_of<Snap: Snapshot>(
    snap: &Snap,
    a: AccountId,
    at: Timestamp,
) -> Result<Balance, LedgerError> {
    if let AccountId::Member(m) = a {
        // Statement entries carry the balance after each transaction.
        let prefix = keys::statement_prefix(m);
        let mut found = Points::ZERO;
        let mut entries = snap
            .range(&prefix, &prefix_end(&prefix), usize::MAX, true)?
            .into_iter();
        for (_, v) in entries.by_ref() {
            let e: StatementEntry = codec::decode("statement entry", &v)?;
            if e.at <= at {
                found = e.balance_after;
                break;
            }
        }
        return Ok(Balance {
            points: found,
            money: vec![],
        });
    }
    if crate::cluster::is_cluster_store(snap)? {
        // The cluster path keeps no history entries: replay the whole journal.
        let mut balance = Balance::default();
        crate::journal::for_each_batch(snap, 0, &mut |_, txs| {
            for tx in txs.iter().filter(|t| t.at <= at) {
                for p in tx.postings.iter().filter(|p| p.account == a) {
                    balance.add(p.amount);
                }
            }
            Ok(())
        })?;
        return Ok(balance);
    }
    // History entries hold the balance at the end of each projector flush that touched `a`;
    // replay the journal between the last entry at or before `at` and the next entry.
    let prefix = keys::balance_history_prefix(a);
    let rows = snap.range(&prefix, &prefix_end(&prefix), usize::MAX, false)?;
    let mut base = (0u64, Balance::default());
    let mut next_seq: Option<u64> = None;
    for (k, v) in &rows {
        let seq = u64::from_be_bytes(k[k.len() - 8..].try_into().expect("8-byte seq"));
        let e: HistoryEntry = codec::decode("balance history", v)?;
        if e.at <= at {
            base = (seq, e.balance);
        } else {
            next_seq = Some(seq);
            break;
        }
    }
    let Some(next) = next_seq else {
        return Ok(base.1);
    };
    let (from, mut balance) = base;
    let mut done = false;
    crate::journal::for_each_batch(snap, from, &mut |seq, txs| {
        if done || seq > next {
            done = true;
            return Ok(());
        }
        for tx in txs.iter().filter(|t| t.at <= at) {
            for p in tx.postings.iter().filter(|p| p.account == a) {
                balance.add(p.amount);
            }
        }
        Ok(())
    })?;
    Ok(balance)
}

/// A callback over one stored record.
type RecordFn<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), LedgerError> + 'a;

/// Derived state as stored, with its watermarks.
pub(crate) struct Loaded {
    /// Members as of their pages' batches; everything else as of `through`.
    pub state: State,
    /// The projector's watermark.
    pub through: u64,
    /// Every member page covers at least the batches through this one.
    pub members_through: u64,
    /// The batch each member's page covers.
    pub member_stamps: crate::state::Map<MemberId, u64>,
}

fn read_seq<Snap: Snapshot>(snap: &Snap, key: &[u8], what: &str) -> Result<u64, LedgerError> {
    match snap.get(key)? {
        Some(v) => Ok(u64::from_be_bytes(
            v.as_slice()
                .try_into()
                .map_err(|_| LedgerError::Corrupt(what.into()))?,
        )),
        None => Ok(0),
    }
}

/// Loads the derived state and its watermarks from a snapshot.
pub(crate) fn load_state<Snap: Snapshot>(
    snap: &Snap,
    policy: Policy,
) -> Result<Loaded, LedgerError> {
    let mut state = State::new(policy);
    let through = read_seq(snap, &keys::projected_through(), "watermark")?;
    let members_through = read_seq(snap, &keys::members_through(), "member watermark")?;
    let mut member_stamps = crate::state::Map::default();
    let mut failure: Option<LedgerError> = None;
    let mut each = |tag: u8, f: &mut RecordFn<'_>| -> Result<(), LedgerError> {
        snap.scan(&[tag], &[tag + 1], &mut |k, v| match f(k, v) {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        })?;
        match failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    };
    each(keys::MEMBER_PAGE, &mut |k, v| {
        let page = keys::parse_member_page(k)
            .ok_or_else(|| LedgerError::Corrupt("member page key".into()))?;
        let p: MemberPage = codec::decode("member page", v)?;
        for (m, s) in p.members {
            if keys::page_of(m) != page {
                return Err(LedgerError::Corrupt(format!(
                    "member page {page} holds member {}",
                    m.0
                )));
            }
            member_stamps.insert(m, p.through);
            state.members.insert(m, s);
        }
        Ok(())
    })?;
    each(keys::BALANCE, &mut |k, v| {
        let (a, _) = keys::parse_account(&k[1..])
            .ok_or_else(|| LedgerError::Corrupt("balance key".into()))?;
        state
            .accounts
            .insert(a, codec::decode::<Balance>("balance record", v)?);
        Ok(())
    })?;
    each(keys::CONTRACT, &mut |_, v| {
        let c: Contract = codec::decode("contract", v)?;
        state.contracts.insert(c.partner, c);
        Ok(())
    })?;
    each(keys::HOLD, &mut |k, v| {
        let id = keys::parse_tail_tx(k).ok_or_else(|| LedgerError::Corrupt("hold key".into()))?;
        let h: HoldState = codec::decode("hold", v)?;
        state.hold_timeouts.insert((h.expires_at, id));
        state.holds.insert(id, h);
        Ok(())
    })?;
    each(keys::REVERSED, &mut |k, v| {
        let id =
            keys::parse_tail_tx(k).ok_or_else(|| LedgerError::Corrupt("reversed key".into()))?;
        state
            .reversed
            .insert(id, codec::decode::<Reversed>("reversed record", v)?);
        Ok(())
    })?;
    Ok(Loaded {
        state,
        through,
        members_through,
        member_stamps,
    })
}
