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
//!     awards: vec![], guard: None, purchase: None,
//! }).unwrap();
//! assert!(!r.replayed);
//! assert_eq!(ledger.balance(MemberId(7)).unwrap().unwrap().available, Points(1200));
//! ledger.shutdown();
//! ```

use crate::cluster::ClusterConfig;
use crate::core::expiry::{InForce, StoredPolicy};
use crate::core::model::{Command, IdemKey, Pricing, Receipt, Transaction};
use crate::core::programme::{Counter, CounterKey, GuardKey, GuardTotals};
use crate::core::state::Balance;
use crate::core::state::MemberState;
use crate::core::tiers::Tiers;
use crate::core::types::{AccountId, Contract, MemberId, PartnerId, Points, Timestamp, TxId};
use crate::error::LedgerError;
use crate::journal::find_transaction;
use crate::reads::{
    account_balance_as_of, system_account_balance, MemberBalance, PathReads, StatementPage,
    STATEMENT_PAGE_MAX,
};
pub use crate::shared::open::LedgerConfig;
use crate::shared::open::Started;
use crate::shared::queue::{Job, Pending};
use crate::shared::status::{LedgerStats, Shared};
use crate::store::{Snapshot, Store, TxnStore};
use crate::{codec, keys};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

/// What [`Ledger::for_each_batch_after`] calls with each batch: its commit-order position,
/// sequence number and transactions; false to stop.
pub type FollowedBatches<'a> =
    dyn FnMut(&[u8], u64, &[&Transaction]) -> Result<bool, LedgerError> + 'a;

/// The ledger: a running write path over a store, and its reads. The one-process path
/// ([`crate::single`]) is a committer and a projector; the many-process path
/// ([`crate::cluster`]) a writer whose every batch is a store transaction.
pub struct Ledger<S: Store> {
    store: S,
    shared: Arc<Shared>,
    jobs: Option<crossbeam_channel::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    reads: Box<dyn PathReads<S>>,
    /// The expiry policy as last read, in force with its calendar (built once per policy).
    expiry_read: std::sync::Mutex<Option<(StoredPolicy, Option<InForce>)>>,
    /// The tier policy as last read, with its calendar.
    tiers_read: std::sync::Mutex<Option<Tiers>>,
    /// The finance book, once asked for, in the time zone it was asked in.
    finance: std::sync::Mutex<Option<Arc<crate::finance::Finance>>>,
}

impl<S: Store + Clone> Ledger<S> {
    /// Opens the ledger on `store` on the one-process path: loads derived state, replays the
    /// journal after it, and starts the committer and projector threads.
    pub fn open(store: S, config: LedgerConfig) -> Result<Ledger<S>, LedgerError> {
        let started = crate::single::open(&store, &config)?;
        Ok(Ledger::started(store, started))
    }

    fn started(store: S, s: Started<S>) -> Ledger<S> {
        Ledger {
            store,
            shared: s.shared,
            jobs: Some(s.jobs),
            threads: s.threads,
            reads: s.reads,
            expiry_read: std::sync::Mutex::new(None),
            tiers_read: std::sync::Mutex::new(None),
            finance: std::sync::Mutex::new(None),
        }
    }
}

impl<S: TxnStore + Clone> Ledger<S> {
    /// Opens the ledger on the cluster path: one of many processes writing `store` at once.
    /// Nothing is loaded into memory; every batch reads what it decides on inside a store
    /// transaction. A store written by a single committer is refused, and vice versa.
    pub fn open_cluster(
        store: S,
        config: LedgerConfig,
        cluster: ClusterConfig,
    ) -> Result<Ledger<S>, LedgerError> {
        let started = crate::cluster::open(&store, &config, cluster)?;
        Ok(Ledger::started(store, started))
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
        self.shared.check()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(LedgerError::ShuttingDown)?;
        jobs.try_send(Job::new(cmd, pricing, reply))
            .map_err(|e| match e {
                crossbeam_channel::TrySendError::Full(_) => LedgerError::Overloaded,
                crossbeam_channel::TrySendError::Disconnected(_) => self.stopped(),
            })?;
        Ok(answer)
    }

    /// Why the writer no longer answers: its failure, or a shutdown.
    fn stopped(&self) -> LedgerError {
        match self.shared.failure() {
            Some(why) => LedgerError::Stopped { why },
            None => LedgerError::ShuttingDown,
        }
    }

    /// Submits `cmd` and waits for its durable receipt.
    pub async fn execute(&self, cmd: Command) -> Result<Receipt, LedgerError> {
        let pending = self.submit(cmd)?;
        pending.await.map_err(|_| self.stopped())?
    }

    /// Submits `cmd` and blocks the thread until its durable receipt. Not for async contexts.
    pub fn execute_blocking(&self, cmd: Command) -> Result<Receipt, LedgerError> {
        let pending = self.submit(cmd)?;
        pending.blocking_recv().map_err(|_| self.stopped())?
    }

    /// The last commit version the committer made durable.
    pub fn committed_version(&self) -> u64 {
        self.shared.committed_version()
    }

    /// Counters about the committer.
    pub fn stats(&self) -> &LedgerStats {
        &self.shared.stats
    }

    /// Waits until the derived state covers every commit made before this call, then returns a
    /// snapshot that includes it. Reads built on it see their own writes. The audit runs on
    /// one of these while the ledger keeps writing.
    pub fn read_snapshot(&self) -> Result<S::Snapshot, LedgerError> {
        self.reads.catch_up()?;
        Ok(self.store.snapshot()?)
    }

    /// A member's posted, pending and available points; `None` if not enrolled.
    pub fn balance(&self, m: MemberId) -> Result<Option<MemberBalance>, LedgerError> {
        self.reads.balance(&self.store, m)
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

    /// A page of member `m`'s statement, newest first: at most `limit` entries (1 to
    /// [`STATEMENT_PAGE_MAX`]) older than transaction `before` (from the latest with `None`).
    pub fn statement(
        &self,
        m: MemberId,
        before: Option<TxId>,
        limit: usize,
    ) -> Result<StatementPage, LedgerError> {
        let limit = limit.clamp(1, STATEMENT_PAGE_MAX);
        self.reads.statement(&self.store, m, before, limit)
    }

    /// The committed transaction `id`, once its batch is durable.
    pub fn transaction(&self, id: TxId) -> Result<Option<Transaction>, LedgerError> {
        if !self.reads.is_durable(id) {
            return Ok(None);
        }
        if let Some(tx) = self.reads.recent_transaction(id) {
            return Ok(Some(tx));
        }
        find_transaction(&self.store.snapshot()?, id)
    }

    /// The transaction an idempotency key produced, if this process holds it in memory
    /// (committed moments ago, on the single path): no store read, so an async task may call
    /// it. `None` says nothing; [`Ledger::transaction_by_key`] answers for certain.
    pub fn recent_transaction_by_key(&self, key: &IdemKey) -> Option<Transaction> {
        self.reads.recent_by_key(key)
    }

    /// Calls `f` with every batch of `snapshot` (one of [`Ledger::read_snapshot`]'s) after
    /// commit-order position `after`, in commit order: its position, sequence number and
    /// transactions, as [`crate::journal::for_each_batch_after`] gives them; stops early when
    /// `f` returns false. A journal follower that keeps up (the gateway's audience, its
    /// notifier and webhooks) asks for batches committed moments ago: on the single path those
    /// still held in memory are handed over as the writer decided them, instead of being read
    /// from the store and decoded again. The rest, and every batch on the cluster path, come
    /// from the journal.
    pub fn for_each_batch_after(
        &self,
        snapshot: &S::Snapshot,
        after: Option<&[u8]>,
        f: &mut FollowedBatches<'_>,
    ) -> Result<(), LedgerError> {
        if let Some(done) = self.follow_recent(snapshot, after, f) {
            return done;
        }
        crate::journal::for_each_batch_after(snapshot, after, &mut |position, seq, txs| {
            let txs: Vec<&Transaction> = txs.iter().collect();
            f(position, seq, &txs)
        })
    }

    /// [`Ledger::for_each_batch_after`] from memory, if the path holds every batch after
    /// `after` through the last in `snapshot`; `None` (having called `f` for none) otherwise.
    fn follow_recent(
        &self,
        snapshot: &S::Snapshot,
        after: Option<&[u8]>,
        f: &mut FollowedBatches<'_>,
    ) -> Option<Result<(), LedgerError>> {
        // Single-path positions are a batch's sequence number, 8 bytes; from the start, the
        // journal (memory holds only what the writer decided since it opened).
        let first = u64::from_be_bytes(after?.try_into().ok()?).checked_add(1)?;
        let last = match crate::journal::last_position(snapshot) {
            Ok(Some(p)) => u64::from_be_bytes(p.as_slice().try_into().ok()?),
            Ok(None) => return Some(Ok(())),
            Err(e) => return Some(Err(e)),
        };
        self.reads
            .for_each_recent_batch(first, last, &mut |seq, batch| {
                let txs: Vec<&Transaction> = batch.iter().map(|t| &**t).collect();
                self.shared
                    .stats
                    .followed_from_memory
                    .fetch_add(1, Ordering::Relaxed);
                f(&crate::journal::single_position(seq), seq, &txs)
            })
    }

    /// The transaction an idempotency key produced, if any.
    pub fn transaction_by_key(&self, key: &IdemKey) -> Result<Option<Transaction>, LedgerError> {
        self.reads.transaction_by_key(&self.store, key)
    }

    /// Account `a`'s balance as of time `at` (every transaction committed at or before it).
    pub fn balance_as_of(&self, a: AccountId, at: Timestamp) -> Result<Balance, LedgerError> {
        if let AccountId::Member(m) = a {
            return Ok(Balance {
                points: self.reads.member_as_of(&self.store, m, at)?,
                money: vec![],
            });
        }
        let snap = self.read_snapshot()?;
        if crate::journal::is_cluster_store(&snap)? {
            // No balance history on the cluster path: the finance book's days, and the
            // journal of `at`'s own day.
            let finance = self.finance(None);
            let book = finance.book_at(&snap)?;
            return crate::finance::reports::balance_at(&book, &snap, a, at);
        }
        account_balance_as_of(&snap, a, at)
    }

    /// The finance book in time zone `tz` (the one already kept when `None`, UTC if there is
    /// none): built from the journal on first use, then brought up to date by every report.
    /// Asking for another zone starts a new book.
    pub fn finance(&self, tz: Option<chrono_tz::Tz>) -> Arc<crate::finance::Finance> {
        let mut kept = self.finance.lock().unwrap_or_else(|e| e.into_inner());
        match (&*kept, tz) {
            (Some(f), None) => return f.clone(),
            (Some(f), Some(tz)) if f.time_zone() == tz => return f.clone(),
            _ => {}
        }
        let f = Arc::new(crate::finance::Finance::new(
            tz.unwrap_or(chrono_tz::Tz::UTC),
        ));
        *kept = Some(f.clone());
        f
    }

    /// Partner `p`'s contract, if one was set.
    pub fn contract(&self, p: PartnerId) -> Result<Option<Contract>, LedgerError> {
        let snap = self.read_snapshot()?;
        match snap.get(&keys::contract(p))? {
            Some(v) => Ok(Some(codec::decode("contract record", &v)?)),
            None => Ok(None),
        }
    }

    /// A programme counter (campaign awards, a member's campaign use, a guard period), as of
    /// every commit made before this call.
    pub fn counter(&self, k: &CounterKey) -> Result<Option<Counter>, LedgerError> {
        let snap = self.read_snapshot()?;
        match snap.get(&keys::counter(k))? {
            Some(v) => Ok(Some(codec::decode("programme counter", &v)?)),
            None => Ok(None),
        }
    }

    /// Member `m`'s whole state (lots with their expiry, last activity, tier); `None` if not
    /// enrolled.
    pub fn member_state(&self, m: MemberId) -> Result<Option<MemberState>, LedgerError> {
        self.reads.member_state(&self.store, m)
    }

    /// The tier policy in force, if one was set.
    pub fn tier_policy(&self) -> Result<Option<crate::core::tiers::TierPolicy>, LedgerError> {
        match self.read_snapshot()?.get(&keys::tier_policy())? {
            Some(v) => Ok(Some(codec::decode("tier policy", &v)?)),
            None => Ok(None),
        }
    }

    /// Every version of the policy tagged `tag` (`e` expiry, `t` transfer, `r` tier), oldest
    /// first.
    pub fn policy_versions(
        &self,
        tag: u8,
    ) -> Result<Vec<crate::core::programme::PolicyVersion>, LedgerError> {
        let snap = self.read_snapshot()?;
        let prefix = keys::policy_versions(tag);
        let mut raw = Vec::new();
        snap.scan(&prefix, &crate::store::prefix_end(&prefix), &mut |_, v| {
            raw.push(v.to_vec());
            true
        })?;
        raw.iter()
            .map(|v| codec::decode("policy version", v))
            .collect()
    }

    /// The transfer policy in force, if one was set.
    pub fn transfer_policy(
        &self,
    ) -> Result<Option<crate::core::transfers::TransferPolicy>, LedgerError> {
        match self.read_snapshot()?.get(&keys::transfer_policy())? {
            Some(v) => Ok(Some(codec::decode("transfer policy", &v)?)),
            None => Ok(None),
        }
    }

    /// The expiry policy in force, if one was set.
    pub fn expiry_policy(&self) -> Result<Option<StoredPolicy>, LedgerError> {
        match self.read_snapshot()?.get(&keys::expiry_policy())? {
            Some(v) => Ok(Some(codec::decode("expiry policy", &v)?)),
            None => Ok(None),
        }
    }

    /// The expiry policy in force, with its calendar, if one was set: what member reads of
    /// expiring points evaluate against. The calendar is built once per policy.
    pub fn expiry_in_force(&self) -> Result<Option<InForce>, LedgerError> {
        let Some(stored) = self.expiry_policy()? else {
            return Ok(None);
        };
        let mut last = self.expiry_read.lock().expect("expiry policy cache");
        if let Some((_, p)) = last.as_ref().filter(|(s, _)| *s == stored) {
            return Ok(p.clone());
        }
        let p = stored.policy.clone().in_force(stored.since);
        *last = Some((stored, p.clone()));
        Ok(p)
    }

    /// The tier policy in force, with its calendar, if one was set (built once per policy).
    pub fn tiers_in_force(&self) -> Result<Option<Tiers>, LedgerError> {
        let Some(policy) = self.tier_policy()? else {
            return Ok(None);
        };
        let mut last = self.tiers_read.lock().expect("tier policy cache");
        if let Some(t) = last.as_ref().filter(|t| t.policy == policy) {
            return Ok(Some(t.clone()));
        }
        let t = Tiers::new(policy);
        *last = Some(t.clone());
        Ok(Some(t))
    }

    /// Points in dated lots, by the UTC month they expire in (months since 1970-01): what is
    /// left of them, whether already expired (not yet posted) or still to come.
    pub fn expiring_by_month(&self) -> Result<Vec<(u32, Points)>, LedgerError> {
        let snap = self.read_snapshot()?;
        let mut out: std::collections::BTreeMap<u32, i64> = Default::default();
        for (k, c) in counters(&snap, b'x')? {
            if let (CounterKey::Expiring(m), Counter::Points(p)) = (k, c) {
                *out.entry(m).or_default() += p.0;
            }
        }
        // The cluster path's blind-added totals (`W`), empty on the single writer.
        for (k, v) in snap.range(
            &[keys::EXPIRING_TOTAL],
            &[keys::EXPIRING_TOTAL + 1],
            usize::MAX,
            false,
        )? {
            let m = k
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes);
            let n = <[u8; 8]>::try_from(v.as_slice())
                .ok()
                .map(i64::from_le_bytes);
            match (m, n) {
                (Some(m), Some(n)) => *out.entry(m).or_default() += n,
                _ => return Err(LedgerError::Corrupt(format!("expiring total {k:?}"))),
            }
        }
        Ok(out
            .into_iter()
            .filter(|(_, p)| *p != 0)
            .map(|(m, p)| (m, Points(p)))
            .collect())
    }

    /// Every guard period's totals, in key order.
    pub fn guard_totals(&self) -> Result<Vec<(GuardKey, GuardTotals)>, LedgerError> {
        counters(&self.read_snapshot()?, b'g')?
            .into_iter()
            .map(|(k, c)| match (k, c) {
                (CounterKey::Guard(g), Counter::Guard(t)) => Ok((g, t)),
                (k, _) => Err(LedgerError::Corrupt(format!("guard counter {k:?}"))),
            })
            .collect()
    }

    /// Idempotency keys the writer holds in memory (the single path; `None` on the cluster
    /// path, which holds none): about `LedgerConfig::keys_in_memory` at most, however long the
    /// history.
    pub fn keys_in_memory(&self) -> Option<usize> {
        self.reads.keys_in_memory()
    }

    /// Reversal totals the writer holds in memory, as of its last batch (the single path;
    /// `None` on the cluster path, which holds none between commands): about
    /// `LedgerConfig::reversal_totals_in_memory` at most, however many originals were ever
    /// reversed.
    pub fn reversal_totals_in_memory(&self) -> Option<usize> {
        self.reads.reversal_totals_in_memory()
    }

    /// How many idempotency keys on disk the Bloom filter over them holds at under 1% false
    /// positives (the single path; `None` on the cluster path). It doubles, filled beside the
    /// writer, once the keys on disk pass it.
    pub fn key_filter_capacity(&self) -> Option<usize> {
        self.reads.key_filter_capacity()
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

    /// Stops accepting commands, lets the write path finish, and waits for it.
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
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl<S: Store> Drop for Ledger<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every programme counter of kind `kind` (`Q kind …`) in `snap`, decoded.
fn counters<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    kind: u8,
) -> Result<Vec<(CounterKey, Counter)>, LedgerError> {
    let prefix = [keys::COUNTER, kind];
    snap.range(&prefix, &[keys::COUNTER, kind + 1], usize::MAX, false)?
        .into_iter()
        .map(|(k, v)| {
            let key = keys::parse_counter(&k)
                .ok_or_else(|| LedgerError::Corrupt(format!("counter key {k:?}")))?;
            Ok((key, codec::decode("programme counter", &v)?))
        })
        .collect()
}
