//! The cluster path's writer: one thread per process takes batches off the queue and runs
//! each as store transactions of at most [`TXN_COMMANDS_MAX`] commands and
//! [`TXN_BYTES_TARGET`] bytes, splitting a conflicting batch in halves until the conflicting
//! command retries alone; it also posts hold expiries it finds by scanning the timeout index.

use super::chunk::Chunk;
use super::{
    ClusterConfig, ATTEMPTS_ALONE, ATTEMPTS_SHARED, ID_BLOCK, TXN_BYTES_MAX, TXN_BYTES_TARGET,
    TXN_COMMANDS_MAX,
};
use crate::journal::JOURNAL_SHARDS;

/// Member records per step of the expiry index sweep after a policy change (a step per scan).
const SWEEP_MEMBERS: usize = 1_000;

use crate::core::model::{Command, IdemKey, Policy, Pricing, Receipt, Scope, Transaction};
use crate::core::types::{Timestamp, TxId};
use crate::error::LedgerError;
use crate::keys;
use crate::shared::queue::{CommitterConfig, Job};
use crate::store::{Snapshot, StoreError, TxnStore, WriteSet};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

/// A block of batch sequence numbers this process reserved.
pub(super) struct IdBlock {
    next: u64,
    end: u64,
}

/// One command of a batch: from a caller, or a hold timeout the writer found.
pub(super) struct Item {
    pub(super) cmd: Command,
    pub(super) pricing: Option<Pricing>,
    /// The command's digest with its pricing.
    pub(super) digest: crate::core::model::Digest,
    /// The expiry index entry (`D` key) that called for this command: cleared with it unless
    /// the member is still due then (an entry written under an earlier policy may be stale).
    pub(super) due: Option<(Timestamp, crate::core::types::MemberId)>,
}

impl Item {
    /// Due work the system posts: unpriced, with the expiry index entry that called for it.
    fn system(cmd: Command, due: Option<(Timestamp, crate::core::types::MemberId)>) -> Item {
        Item {
            digest: cmd.digest(),
            cmd,
            pricing: None,
            due,
        }
    }
}

/// A command's answer.
#[derive(Clone)]
pub(super) enum Outcome {
    New(Box<Transaction>),
    Replay(Box<Transaction>),
    Failed(Arc<LedgerError>),
}

/// A command's answer inside a transaction attempt: a new transaction by its index in the
/// attempt's list, so nothing is copied.
pub(super) enum Decided {
    New(usize),
    Replay(Box<Transaction>),
    Failed(Arc<LedgerError>),
}

pub(super) struct ClusterWriter<S: TxnStore> {
    pub store: S,
    pub policy: Policy,
    pub config: CommitterConfig,
    pub cluster: ClusterConfig,
    pub shared: Arc<crate::shared::status::Shared>,
    ids: IdBlock,
    policies: super::chunk::PolicyCache,
    last_at: Timestamp,
    /// When, on the committer's clock, the last scan for due work ran (`None`: not yet).
    last_scan: Option<Timestamp>,
    /// Batch sequence numbers of the current batch's attempts that did not return success: one
    /// may have committed all the same (`commit_unknown_result`), and a later attempt then
    /// finds its transactions as replays that are in fact the callers' first answers. (A
    /// caller's own retry comes in a later batch, and is a replay.)
    maybe_ours: std::collections::VecDeque<u64>,
    /// This process's token in the system lease, and until when it holds it (ms).
    token: u64,
    lease_until: i64,
}

/// Batches the sealer chains per transaction.
const SEAL_BATCHES: usize = 512;
/// Block bytes the sealer reads per transaction at most (FoundationDB's transactions last 5 s
/// and should read well under 10 MB).
const SEAL_BYTES: usize = 4 << 20;
/// Sealing transactions per scan.
const SEAL_ROUNDS: usize = 8;

/// How long the system lease lasts unless renewed (renewed at half).
const LEASE_MS: i64 = 3_000;

/// Rounds of due work a batch posts before its commands (each round what the one before made
/// due at the same instant).
const DUE_ROUNDS_MAX: usize = 64;

/// Attempts remembered in `maybe_ours`.
const MAYBE_OURS_MAX: usize = 256;

impl<S: TxnStore> ClusterWriter<S> {
    pub fn new(
        store: S,
        policy: Policy,
        config: CommitterConfig,
        cluster: ClusterConfig,
        shared: Arc<crate::shared::status::Shared>,
    ) -> Self {
        ClusterWriter {
            store,
            policy,
            config,
            cluster: ClusterConfig {
                shard: cluster.shard % JOURNAL_SHARDS,
                ..cluster
            },
            shared,
            ids: IdBlock { next: 0, end: 0 },
            policies: Default::default(),
            last_at: Timestamp::default(),
            last_scan: None,
            maybe_ours: std::collections::VecDeque::new(),
            // Random per process unless given (the standard library's hash keys are seeded
            // from the OS).
            token: cluster.lease_token.map_or_else(
                || {
                    use std::hash::{BuildHasher, Hasher};
                    std::collections::hash_map::RandomState::new()
                        .build_hasher()
                        .finish()
                        | 1
                },
                |t| t.get(),
            ),
            lease_until: 0,
        }
    }

    pub fn run(mut self, jobs: &Receiver<Job>) {
        let max = self.config.batch_size_max.min(TXN_COMMANDS_MAX * 8);
        loop {
            let first = match jobs.recv_timeout(self.config.idle_wake) {
                Ok(j) => Some(j),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.release_lease();
                    return;
                }
            };
            let mut batch: Vec<Job> = first.into_iter().collect();
            if !batch.is_empty() {
                batch.extend(jobs.try_iter().take(max - 1));
            }
            if let Err(e) = self.expired_holds().and_then(|due| self.post_due(due)) {
                // Due work goes first: a batch never goes ahead of due work its scan could not
                // read (as the single committer refuses its batch). Its callers may retry; the
                // next batch scans again.
                tracing::warn!(error = %e, "batch refused: due work was not decided (the scan or a round of it failed)");
                self.last_scan = None;
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
                continue;
            }
            if batch.is_empty() {
                continue;
            }
            let (batch, replies): (Vec<Item>, Vec<_>) = batch
                .into_iter()
                .map(|j| {
                    (
                        Item {
                            cmd: j.cmd,
                            pricing: j.pricing,
                            digest: j.digest,
                            due: None,
                        },
                        j.reply,
                    )
                })
                .unzip();
            let outcomes = self.execute(&batch);
            for (outcome, reply) in outcomes.into_iter().zip(replies) {
                let answer = match outcome {
                    Outcome::New(tx) => Ok(Receipt {
                        tx: Arc::new(*tx),
                        replayed: false,
                    }),
                    Outcome::Replay(tx) => Ok(Receipt {
                        tx: Arc::new(*tx),
                        replayed: true,
                    }),
                    Outcome::Failed(e) => Err(unshare(e)),
                };
                let _ = reply.send(answer);
            }
        }
    }

    /// Takes or renews the system lease, and says whether this process holds it: one process
    /// at a time posts the ledger's own commands, so gateways do not race to void the same
    /// holds. A lease not renewed for [`LEASE_MS`] (its holder stopped) passes to the next
    /// process that scans. Processes' clocks are assumed to agree within the lease.
    fn holds_lease(&mut self) -> Result<bool, LedgerError> {
        let now = self.config.clock.now().0;
        if self.lease_until - now > LEASE_MS / 2 {
            return Ok(true);
        }
        let me = self.token;
        let taken = self.store.transact(ATTEMPTS_ALONE, &mut |txn| {
            let mut w = WriteSet::default();
            if let Some(v) = txn.get(&keys::system_lease())? {
                let field = |at: usize| {
                    v.get(at..at + 8)
                        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
                        .ok_or_else(|| LedgerError::Corrupt("system lease".into()))
                };
                let (owner, until) = (field(0)?, field(8)? as i64);
                if owner != me && until > now {
                    return Ok((w, None));
                }
            }
            let until = now + LEASE_MS;
            let mut v = me.to_be_bytes().to_vec();
            v.extend_from_slice(&(until as u64).to_be_bytes());
            w.set_owned(keys::system_lease(), v);
            Ok::<_, LedgerError>((w, Some(until)))
        });
        match taken? {
            (_, Some(until)) => {
                self.lease_until = until;
                Ok(true)
            }
            (_, None) => Ok(false),
        }
    }

    /// Gives the system lease up at shutdown, if this process holds it, so another takes it at
    /// its next scan instead of after the lease runs out.
    fn release_lease(&mut self) {
        if self.lease_until == 0 {
            return;
        }
        // Chain what this process's last batches added, so a clean stop leaves the chain whole.
        if matches!(self.holds_lease(), Ok(true)) {
            if let Err(e) = self.seal_chain() {
                tracing::warn!(error = %e, "journal chain not sealed at shutdown");
            }
        }
        let me = self.token;
        let released = self.store.transact(ATTEMPTS_ALONE, &mut |txn| {
            let mut w = WriteSet::default();
            let mine = txn
                .get(&keys::system_lease())?
                .is_some_and(|v| v.get(..8) == Some(&me.to_be_bytes()[..]));
            if mine {
                w.clear(&keys::system_lease());
            }
            Ok::<_, LedgerError>((w, ()))
        });
        if let Err(e) = released {
            tracing::warn!(error = %e, "system lease not released; it runs out by itself");
        }
    }

    /// Posts `due` (hold timeouts and expiries), then what fell due by posting it, round after
    /// round: an expiry or a tier review can make the member's next deadline due at the same
    /// instant. All of it goes before the batch's own commands, as the single committer posts
    /// everything due at its instant first, so the number of batches never changes when due
    /// work is posted. A failed scan is an error (the batch is refused).
    fn post_due(&mut self, mut due: Vec<Item>) -> Result<(), LedgerError> {
        for _ in 0..DUE_ROUNDS_MAX {
            if due.is_empty() {
                return Ok(());
            }
            let outcomes = self.execute(&due);
            let mut new = false;
            for (item, outcome) in due.iter().zip(outcomes) {
                match outcome {
                    Outcome::New(_) => new = true,
                    Outcome::Replay(_) => {}
                    // Refused on its merits: logged, and the batch goes on.
                    Outcome::Failed(e) if matches!(*e, LedgerError::Rejected(_)) => {
                        tracing::warn!(command = ?item.cmd, error = %e, "due work not applied")
                    }
                    // Not decided (a read failed, the store is contended): the batch must not
                    // go ahead of it.
                    Outcome::Failed(e) => return Err(unshare(e)),
                }
            }
            // Replays and failures only: nothing new can have fallen due.
            if !new {
                return Ok(());
            }
            due = self.scan_due()?;
        }
        Ok(())
    }

    /// Void commands for holds past their timeout and expiries that fell due, at most once per
    /// scan interval, by the process holding the system lease. An error when the lease, the
    /// expiry index sweep or the scans could not be read or written: the caller refuses its
    /// batch rather than decide it ahead of due work.
    pub(super) fn expired_holds(&mut self) -> Result<Vec<Item>, LedgerError> {
        // On the committer's clock, so a test's clock drives the scans too; a clock set back
        // scans at once rather than waiting for it to catch up.
        let now = self.config.clock.now();
        let every = i64::try_from(self.cluster.scan_every.as_millis()).unwrap_or(i64::MAX);
        if let Some(last) = self.last_scan {
            if now.0 >= last.0 && now.0 - last.0 < every {
                return Ok(Vec::new());
            }
        }
        self.last_scan = Some(now);
        if !self.holds_lease()? {
            return Ok(Vec::new());
        }
        // The sweep writes the expiry index entries a policy change calls for: the scan below
        // reads them.
        self.sweep_due()?;
        // The chain is not read by the scan: a failed seal is retried at the next one.
        if let Err(e) = self.seal_chain() {
            tracing::warn!(error = %e, "journal chain not sealed; retried at the next scan");
        }
        self.scan_due()
    }

    /// The hold timeouts and expiry index entries due now, as commands (at most
    /// `hold_expiries_per_batch_max`).
    fn scan_due(&mut self) -> Result<Vec<Item>, LedgerError> {
        let now = self.config.clock.now();
        let end = keys::hold_timeout(Timestamp(now.0.saturating_add(1)), TxId(0));
        let rows = self.store.snapshot().and_then(|s| {
            s.range(
                &[keys::HOLD_TIMEOUT],
                &end,
                self.config.hold_expiries_per_batch_max,
                false,
            )
        })?;
        let mut items: Vec<Item> = rows
            .iter()
            .filter_map(|(k, _)| keys::parse_hold_timeout(k))
            .map(|hold| {
                Item::system(
                    Command::Void {
                        key: IdemKey {
                            scope: Scope::System,
                            reference: format!("hold-timeout/{hold}"),
                        },
                        hold,
                    },
                    None,
                )
            })
            .collect();
        let room = self.config.hold_expiries_per_batch_max - items.len();
        let end = keys::expiry_due(
            Timestamp(now.0.saturating_add(1)),
            crate::core::types::MemberId(0),
        );
        let due = self
            .store
            .snapshot()
            .and_then(|s| s.range(&[keys::EXPIRY_DUE], &end, room, false))?;
        items.extend(
            due.iter()
                .filter_map(|(k, _)| keys::parse_expiry_due(k))
                .map(|(deadline, member)| {
                    Item::system(
                        crate::shared::queue::expire_command(member, deadline),
                        Some((deadline, member)),
                    )
                }),
        );
        Ok(items)
    }

    /// Runs `items` in as many transactions as their size needs; outcomes in item order.
    pub(super) fn execute(&mut self, items: &[Item]) -> Vec<Outcome> {
        // Only this batch's own attempts can hide its first answers.
        self.maybe_ours.clear();
        let mut out = Vec::with_capacity(items.len());
        while out.len() < items.len() {
            let start = out.len();
            let end = (start + TXN_COMMANDS_MAX).min(items.len());
            out.extend(self.run_isolated(&items[start..end]));
        }
        out
    }

    /// Runs a prefix of `items` (as much as fits one transaction) and returns its outcomes.
    /// A transaction that keeps conflicting (or whose result stays unknown, or that is over the
    /// size limit) is split in halves, down to one command, so a contended command never fails
    /// its batch-mates.
    pub(super) fn run_isolated(&mut self, items: &[Item]) -> Vec<Outcome> {
        let attempts = if items.len() == 1 {
            ATTEMPTS_ALONE
        } else {
            ATTEMPTS_SHARED
        };
        match self.run_transaction(items, attempts) {
            Ok(outcomes) => outcomes,
            // Splitting helps a conflict (the contended command ends up alone), an unknown
            // result (the halves find out what committed) and a transaction over the size
            // limit; not a timeout or an unavailable cluster, which fail the batch at once.
            Err(LedgerError::Storage(
                e @ (StoreError::Conflict(_)
                | StoreError::MaybeCommitted(_)
                | StoreError::TransactionTooLarge(_)),
            )) if items.len() > 1 => {
                tracing::debug!(commands = items.len(), error = %e, "batch failed; splitting");
                let half = items.len() / 2;
                let mut out = self.run_isolated(&items[..half]);
                let mut rest = out.len();
                while rest < items.len() {
                    let more = self.run_isolated(&items[rest..]);
                    rest += more.len();
                    out.extend(more);
                }
                out
            }
            Err(e) => {
                // Nothing was written, or (after `commit_unknown_result` ran out of attempts)
                // it may have been: either way a retry with the same key is safe.
                let e = Arc::new(match e {
                    LedgerError::Storage(StoreError::Conflict(why)) => {
                        LedgerError::Contended { why }
                    }
                    other => other,
                });
                vec![Outcome::Failed(e); items.len()]
            }
        }
    }

    /// One transaction over a prefix of `items`; returns the outcomes of the prefix it took.
    pub(super) fn run_transaction(
        &mut self,
        items: &[Item],
        attempts: u32,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let started = Instant::now();
        if self.ids.end - self.ids.next < u64::from(attempts) {
            self.ids = self.reserve_ids()?;
        }
        let at = self.config.clock.now().max(self.last_at);
        let policy = self.policy;
        let shard = self.cluster.shard;
        let first_seq = self.ids.next;
        let ids = &mut self.ids;
        let policies = &mut self.policies;
        let result = self.store.transact(attempts, &mut |txn| {
            let seq = ids.next;
            assert!(seq < ids.end, "a batch sequence outside the reserved block");
            ids.next += 1;
            let mut chunk = Chunk::new(txn, policies, policy, seq, at);
            chunk.prefetch(items)?;
            let mut decided = Vec::with_capacity(items.len());
            for item in items {
                if chunk.writes.bytes >= TXN_BYTES_TARGET && !decided.is_empty() {
                    break;
                }
                decided.push(chunk.process(item));
            }
            let (writes, txs) = chunk.finish(shard);
            if writes.bytes > TXN_BYTES_MAX && decided.len() > 1 {
                return Err(LedgerError::Storage(StoreError::TransactionTooLarge(
                    format!(
                        "{} bytes from {} commands (at most {TXN_BYTES_MAX})",
                        writes.bytes,
                        decided.len()
                    ),
                )));
            }
            Ok::<_, LedgerError>((writes, (decided, seq, txs)))
        });
        let succeeded = result.as_ref().ok().map(|(_, (_, seq, _))| *seq);
        for tried in first_seq..self.ids.next {
            if Some(tried) != succeeded {
                if self.maybe_ours.len() == MAYBE_OURS_MAX {
                    self.maybe_ours.pop_front();
                }
                self.maybe_ours.push_back(tried);
            }
        }
        let (_, (decided, seq, txs)) = result?;
        self.last_at = at;
        if !txs.is_empty() {
            self.shared.committed(seq, txs.len(), started.elapsed());
        }
        let mut txs: Vec<Option<Transaction>> = txs.into_iter().map(Some).collect();
        Ok(decided
            .into_iter()
            .map(|d| match d {
                Decided::New(i) => Outcome::New(Box::new(
                    txs[i]
                        .take()
                        .expect("each new transaction answers one command"),
                )),
                // Committed by an earlier attempt whose result was unknown: the caller's first
                // answer, not a replay.
                Decided::Replay(tx) if self.maybe_ours.contains(&tx.id.seq()) => Outcome::New(tx),
                Decided::Replay(tx) => Outcome::Replay(tx),
                Decided::Failed(e) => Outcome::Failed(e),
            })
            .collect())
    }

    /// One step of the expiry index sweep a policy change starts: the next
    /// [`SWEEP_MEMBERS`] member records (read without conflicts), each given the `D` entry its
    /// deadline under the policies now in force calls for. Entries of the old policy stay until
    /// they fall due, when the expiry they call for finds nothing (a zero posting) and clears
    /// them. Two processes sweeping at once conflict on the cursor; one goes on.
    pub(super) fn sweep_due(&mut self) -> Result<(), LedgerError> {
        let policy = self.policy;
        let policies = &mut self.policies;
        self.store.transact(ATTEMPTS_ALONE, &mut |txn| {
            let mut w = WriteSet::default();
            let Some(cursor) = txn.get(&keys::due_sweep())? else {
                return Ok::<_, LedgerError>((w, ()));
            };
            let from = u64::from_be_bytes(
                cursor
                    .as_slice()
                    .try_into()
                    .map_err(|_| LedgerError::Corrupt("expiry sweep cursor".into()))?,
            );
            let mut state = crate::core::state::State::new(policy);
            let got = txn.get_many(&[keys::expiry_policy(), keys::tier_policy()])?;
            if let Some(v) = &got[0] {
                state.expiry = policies.expiry(v)?;
            }
            if let Some(v) = &got[1] {
                state.tiers = Some(policies.tiers(v)?);
            }
            let rows = txn.range_snapshot(
                &keys::member(crate::core::types::MemberId(from)),
                &[keys::MEMBER + 1],
                SWEEP_MEMBERS,
            )?;
            let mut last = from;
            for (k, v) in &rows {
                let m = keys::parse_member(k)
                    .ok_or_else(|| LedgerError::Corrupt("member key".into()))?;
                let n = crate::codec::MemberRecord::parts_after(v);
                let parts: Vec<Vec<u8>> = if n == 0 {
                    Vec::new()
                } else {
                    txn.range_snapshot(
                        &keys::member_part(m, 1),
                        &keys::member_part(m, n + 1),
                        usize::from(n),
                    )?
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect()
                };
                let r = crate::codec::MemberRecord::from_values(v, &parts)?;
                if let Some(t) = state.deadline(&r.state) {
                    w.set_owned(keys::expiry_due(t, m), Vec::new());
                }
                last = m.0;
            }
            if rows.len() < SWEEP_MEMBERS {
                w.clear(&keys::due_sweep());
            } else {
                w.set(&keys::due_sweep(), &(last + 1).to_be_bytes());
            }
            Ok((w, ()))
        })?;
        Ok(())
    }

    /// Chains the batches committed since the chain's head, in commit order
    /// ([`crate::chain`]): at most [`SEAL_ROUNDS`] transactions of [`SEAL_BATCHES`] batches or
    /// [`SEAL_BYTES`] block bytes each. Two processes sealing at once conflict on the head; one
    /// goes on.
    pub(super) fn seal_chain(&mut self) -> Result<usize, LedgerError> {
        let mut total = 0;
        for _ in 0..SEAL_ROUNDS {
            let (_, n) = self.store.transact(ATTEMPTS_ALONE, &mut |txn| {
                let head = txn
                    .get(&keys::chain_head())?
                    .map(|v| crate::chain::Head::decode(&v))
                    .transpose()?;
                let mut w = WriteSet::default();
                let n = crate::chain::seal_after(
                    &crate::store::TxnSnapshot(txn),
                    head.as_ref(),
                    SEAL_BATCHES,
                    SEAL_BYTES,
                    true,
                    &mut w,
                )?;
                Ok::<_, LedgerError>((w, n))
            })?;
            total += n;
            if n < SEAL_BATCHES {
                break;
            }
        }
        Ok(total)
    }

    /// Reserves the next block of batch sequence numbers (a small transaction on one key).
    pub(super) fn reserve_ids(&self) -> Result<IdBlock, LedgerError> {
        let (_, next) = self.store.transact(ATTEMPTS_ALONE, &mut |txn| {
            let next = match txn.get(&keys::id_blocks())? {
                Some(v) => u64::from_be_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| LedgerError::Corrupt("id block counter".into()))?,
                ),
                None => 1,
            };
            let mut w = WriteSet::default();
            w.set(&keys::id_blocks(), &(next + ID_BLOCK).to_be_bytes());
            Ok::<_, LedgerError>((w, next))
        })?;
        Ok(IdBlock {
            next,
            end: next + ID_BLOCK,
        })
    }
}

pub(super) fn unshare(e: Arc<LedgerError>) -> LedgerError {
    Arc::unwrap_or_clone(e)
}
