//! The cluster command path: many ledger processes (gateways) over one transactional store.
//!
//! The single committer ([`crate::committer`]) owns the working state in memory; that is only
//! correct while it is the store's one writer. Here nothing authoritative lives in memory. Each
//! batch of commands runs as store transactions ([`TxnStore::transact`]):
//!
//! - every command's idempotency key, the members, holds, contracts and reversal records it
//!   decides on are read serialisably inside the transaction, so a concurrent writer of any of
//!   them makes the transaction conflict and run again on fresh reads;
//! - [`State::decide`] and [`State::apply`] run on exactly that partial state: the same rules as
//!   the single committer;
//! - the derived records (member, hold, reversal, contract, idempotency, statement) are written
//!   in the same transaction as the journal block;
//! - non-member accounts (partner issuance and redemption, promotions, float, ...) are never
//!   read: their totals are blind atomic adds under [`keys::TOTAL`], so members earning at one
//!   partner never conflict with each other;
//! - the journal block goes under `J seq`, with `seq` from a block of sequence numbers this
//!   process reserved; its commit order is a versionstamped entry under one of
//!   [`JOURNAL_SHARDS`] shard prefixes ([`keys::ORDER`]); readers merge the shards;
//! - a transaction stays under [`TXN_BYTES_TARGET`]; a batch that conflicts is split in halves
//!   until the conflicting command retries alone, so it never fails its batch-mates.
//!
//! `docs/foundationdb.md` lists, per command, what is read, written and can conflict.

use crate::codec::{self, BlockWriter, IdemRecord, MemberRecord};
use crate::committer::{CommitterConfig, Job};
use crate::error::{LedgerError, Rejection};
use crate::keys;
use crate::model::{Command, IdemKey, Policy, Pricing, Receipt, Scope, Transaction, TxKind};
use crate::projector::{write_records, write_statement_lines, Touched};
use crate::state::{DecideError, History, HoldState, Reversed, State};
use crate::store::{Snapshot, StoreError, Txn, TxnSnapshot, TxnStore, WriteSet};
use crate::types::{AccountId, Contract, Timestamp, TxId};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shard prefixes of the commit-order index; appends spread over this many key ranges.
pub const JOURNAL_SHARDS: u8 = 16;
/// A transaction stops taking commands once its writes pass this many bytes (FDB allows
/// 10 MB; staying under 1 MB keeps commits fast and conflicts cheap).
pub const TXN_BYTES_TARGET: usize = 900_000;
/// Most commands in one transaction.
pub const TXN_COMMANDS_MAX: usize = 1_000;
/// Attempts of a transaction of several commands before it is split in halves.
const ATTEMPTS_SHARED: u32 = 3;
/// Attempts of a transaction of one command before the command fails as contended.
const ATTEMPTS_ALONE: u32 = 20;
/// Batch sequence numbers reserved per trip to the allocator.
const ID_BLOCK: u64 = 4_096;
/// How often an idle process looks for holds past their timeout.
const EXPIRY_SCAN_EVERY: Duration = Duration::from_millis(500);

/// Settings of a process on the cluster path.
#[derive(Debug, Clone, Copy)]
pub struct ClusterConfig {
    /// The journal shard this process appends under (`0..JOURNAL_SHARDS`); give each gateway
    /// its own where possible.
    pub shard: u8,
}

/// Marks the store as written on the cluster path (or checks that it is), inside one
/// transaction. A store a single committer wrote cannot switch: its ids and indexes differ.
pub(crate) fn claim_store<S: TxnStore>(store: &S) -> Result<(), LedgerError> {
    store
        .transact(ATTEMPTS_ALONE, &mut |txn| {
            let mut w = WriteSet::default();
            match txn.get(&keys::writer_mode())?.as_deref() {
                Some(b"cluster") => {}
                Some(other) => {
                    return Err(LedgerError::Unavailable(format!(
                        "this store is written by a {} ledger; it cannot be opened in cluster mode",
                        String::from_utf8_lossy(other)
                    )))
                }
                None => {
                    let journal = txn.range_snapshot(&[keys::JOURNAL], &[keys::JOURNAL + 1], 1)?;
                    if !journal.is_empty() {
                        return Err(LedgerError::Unavailable(
                            "this store already has a single-writer journal; it cannot be \
                             opened in cluster mode"
                                .into(),
                        ));
                    }
                    w.set(&keys::writer_mode(), b"cluster");
                }
            }
            Ok((w, ()))
        })
        .map(|_| ())
}

/// True when the store in `snap` was written on the cluster path.
pub fn is_cluster_store<Snap: Snapshot + ?Sized>(snap: &Snap) -> Result<bool, LedgerError> {
    Ok(snap.get(&keys::writer_mode())?.as_deref() == Some(b"cluster"))
}

/// A block of batch sequence numbers this process reserved.
struct IdBlock {
    next: u64,
    end: u64,
}

/// One command of a batch: from a caller, or a hold timeout the writer found.
struct Item {
    cmd: Command,
    pricing: Option<Pricing>,
}

/// A command's answer.
#[derive(Clone)]
enum Outcome {
    New(Box<Transaction>),
    Replay(Box<Transaction>),
    Failed(Arc<LedgerError>),
}

/// A command's answer inside a transaction attempt: a new transaction by its index in the
/// attempt's list, so nothing is copied.
enum Decided {
    New(usize),
    Replay(Box<Transaction>),
    Failed(Arc<LedgerError>),
}

pub(crate) struct ClusterWriter<S: TxnStore> {
    pub store: S,
    pub policy: Policy,
    pub config: CommitterConfig,
    pub cluster: ClusterConfig,
    pub shared: Arc<crate::ledger::Shared>,
    ids: IdBlock,
    last_at: Timestamp,
    last_scan: Instant,
}

impl<S: TxnStore> ClusterWriter<S> {
    pub fn new(
        store: S,
        policy: Policy,
        config: CommitterConfig,
        cluster: ClusterConfig,
        shared: Arc<crate::ledger::Shared>,
    ) -> Self {
        ClusterWriter {
            store,
            policy,
            config,
            cluster: ClusterConfig {
                shard: cluster.shard % JOURNAL_SHARDS,
            },
            shared,
            ids: IdBlock { next: 0, end: 0 },
            last_at: Timestamp::default(),
            last_scan: Instant::now() - EXPIRY_SCAN_EVERY,
        }
    }

    pub fn run(mut self, jobs: Receiver<Job>) {
        let max = self.config.batch_size_max.min(TXN_COMMANDS_MAX * 8);
        loop {
            let first = match jobs.recv_timeout(Duration::from_millis(100)) {
                Ok(j) => Some(j),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch: Vec<Job> = first.into_iter().collect();
            if !batch.is_empty() {
                batch.extend(jobs.try_iter().take(max - 1));
            }
            let mut items = self.expired_holds();
            let internal = items.len();
            if batch.is_empty() && internal == 0 {
                continue;
            }
            let (batch, replies): (Vec<Item>, Vec<_>) = batch
                .into_iter()
                .map(|j| {
                    (
                        Item {
                            cmd: j.cmd,
                            pricing: j.pricing,
                        },
                        j.reply,
                    )
                })
                .unzip();
            items.extend(batch);
            let outcomes = self.execute(&items);
            let mut replies = replies.into_iter();
            for (i, outcome) in outcomes.into_iter().enumerate() {
                if i < internal {
                    if let Outcome::Failed(e) = outcome {
                        tracing::warn!(command = ?items[i].cmd, error = %e, "hold timeout not applied");
                    }
                    continue;
                }
                let Some(reply) = replies.next() else { break };
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

    /// Void commands for holds past their timeout, at most once per scan interval. Every
    /// process scans; two voiding the same hold conflict, and the loser replays.
    fn expired_holds(&mut self) -> Vec<Item> {
        if self.last_scan.elapsed() < EXPIRY_SCAN_EVERY {
            return Vec::new();
        }
        self.last_scan = Instant::now();
        let now = Timestamp::now();
        let end = keys::hold_timeout(Timestamp(now.0.saturating_add(1)), TxId(0));
        let rows = match self.store.snapshot().and_then(|s| {
            s.range(
                &[keys::HOLD_TIMEOUT],
                &end,
                self.config.hold_expiries_per_batch_max,
                false,
            )
        }) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "hold timeout scan failed");
                return Vec::new();
            }
        };
        rows.iter()
            .filter_map(|(k, _)| keys::parse_hold_timeout(k))
            .map(|hold| Item {
                cmd: Command::Void {
                    key: IdemKey {
                        scope: Scope::System,
                        reference: format!("hold-timeout/{hold}"),
                    },
                    hold,
                },
                pricing: None,
            })
            .collect()
    }

    /// Runs `items` in as many transactions as their size needs; outcomes in item order.
    fn execute(&mut self, items: &[Item]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(items.len());
        while out.len() < items.len() {
            let start = out.len();
            let end = (start + TXN_COMMANDS_MAX).min(items.len());
            out.extend(self.run_isolated(&items[start..end]));
        }
        out
    }

    /// Runs a prefix of `items` (as much as fits one transaction) and returns its outcomes.
    /// A transaction that keeps conflicting is split in halves, down to one command, so a
    /// contended command never fails its batch-mates.
    fn run_isolated(&mut self, items: &[Item]) -> Vec<Outcome> {
        let attempts = if items.len() == 1 {
            ATTEMPTS_ALONE
        } else {
            ATTEMPTS_SHARED
        };
        match self.run_transaction(items, attempts) {
            Ok(outcomes) => outcomes,
            Err(LedgerError::Storage(StoreError::Conflict(why))) if items.len() > 1 => {
                tracing::debug!(commands = items.len(), %why, "batch conflicted; splitting");
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
                    LedgerError::Storage(StoreError::Conflict(why)) => LedgerError::Unavailable(
                        format!("too much contention on this command's records ({why}); retry"),
                    ),
                    other => other,
                });
                vec![Outcome::Failed(e); items.len()]
            }
        }
    }

    /// One transaction over a prefix of `items`; returns the outcomes of the prefix it took.
    fn run_transaction(
        &mut self,
        items: &[Item],
        attempts: u32,
    ) -> Result<Vec<Outcome>, LedgerError> {
        let started = Instant::now();
        if self.ids.end - self.ids.next < u64::from(attempts) {
            self.ids = self.reserve_ids()?;
        }
        let at = Timestamp::now().max(self.last_at);
        let policy = self.policy;
        let shard = self.cluster.shard;
        let ids = &mut self.ids;
        let (_, (decided, seq, txs)) = self.store.transact(attempts, &mut |txn| {
            let seq = ids.next;
            ids.next += 1;
            let mut chunk = Chunk::new(txn, policy, seq, at);
            chunk.prefetch(items)?;
            let mut decided = Vec::with_capacity(items.len());
            for item in items {
                if chunk.writes.bytes >= TXN_BYTES_TARGET && !decided.is_empty() {
                    break;
                }
                decided.push(chunk.process(item));
            }
            let (writes, txs) = chunk.finish(shard);
            Ok::<_, LedgerError>((writes, (decided, seq, txs)))
        })?;
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
                Decided::Replay(tx) => Outcome::Replay(tx),
                Decided::Failed(e) => Outcome::Failed(e),
            })
            .collect())
    }

    /// Reserves the next block of batch sequence numbers (a small transaction on one key).
    fn reserve_ids(&self) -> Result<IdBlock, LedgerError> {
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

fn unshare(e: Arc<LedgerError>) -> LedgerError {
    Arc::try_unwrap(e).unwrap_or_else(|shared| match &*shared {
        LedgerError::Rejected(r) => LedgerError::Rejected(r.clone()),
        LedgerError::Overloaded => LedgerError::Overloaded,
        other => LedgerError::Unavailable(other.to_string()),
    })
}

/// The work of one transaction attempt: the partial state it read, what it decided, and the
/// writes that follow.
struct Chunk<'t> {
    txn: &'t dyn Txn,
    seq: u64,
    at: Timestamp,
    state: State,
    /// Store keys already read into `state` (present or not); never read twice, so what this
    /// transaction changed is not overwritten by a stale read.
    loaded: HashSet<Vec<u8>>,
    /// Idempotency records read, by key.
    idem: HashMap<IdemKey, Option<IdemRecord>>,
    /// Expiry of every hold seen, to clear its timeout entry when it closes.
    hold_expiry: HashMap<TxId, Timestamp>,
    in_chunk: HashMap<IdemKey, usize>,
    /// Originals of reversals, read from the journal once per attempt.
    originals: HashMap<TxId, Transaction>,
    txs: Vec<Transaction>,
    writes: WriteSet,
    touched: Touched,
}

/// A record a command needs before it can be decided.
enum Need {
    Member(crate::types::MemberId),
    Contract(crate::types::PartnerId),
    Hold(TxId),
    Reversed(TxId),
}

impl<'t> Chunk<'t> {
    fn new(txn: &'t dyn Txn, policy: Policy, seq: u64, at: Timestamp) -> Chunk<'t> {
        Chunk {
            txn,
            seq,
            at,
            state: State::new(policy),
            loaded: HashSet::new(),
            idem: HashMap::new(),
            hold_expiry: HashMap::new(),
            in_chunk: HashMap::new(),
            originals: HashMap::new(),
            txs: Vec::new(),
            writes: WriteSet::default(),
            touched: Touched::default(),
        }
    }

    /// Reads everything the commands name, in two rounds of concurrent reads: idempotency
    /// keys, members, contracts, holds and reversal records; then what the holds and the
    /// reversed originals point at.
    fn prefetch(&mut self, items: &[Item]) -> Result<(), LedgerError> {
        let keys: Vec<IdemKey> = items
            .iter()
            .map(|i| i.cmd.key().clone())
            .filter(|k| !self.idem.contains_key(k))
            .collect();
        let raw: Vec<Vec<u8>> = keys.iter().map(keys::idempotency).collect();
        for (k, v) in keys.into_iter().zip(self.txn.get_many(&raw)?) {
            let rec = v
                .map(|v| codec::decode::<IdemRecord>("idempotency record", &v))
                .transpose()?;
            self.idem.insert(k, rec);
        }
        let first: Vec<Need> = items.iter().flat_map(|i| needs(&i.cmd)).collect();
        self.load(first)?;
        let mut second = Vec::new();
        for item in items {
            second.extend(self.second_needs(&item.cmd)?);
        }
        self.load(second)
    }

    /// Reads what `cmd` needs (a no-op for what `prefetch` read).
    fn load_for(&mut self, cmd: &Command) -> Result<(), LedgerError> {
        self.load(needs(cmd))?;
        let more = self.second_needs(cmd)?;
        self.load(more)
    }

    /// The records a hold or a reversed original points at.
    fn second_needs(&mut self, cmd: &Command) -> Result<Vec<Need>, LedgerError> {
        Ok(match cmd {
            Command::Capture { hold, .. } | Command::Void { hold, .. } => {
                match self.state.holds.get(hold) {
                    Some(h) => vec![Need::Member(h.member), Need::Contract(h.partner)],
                    None => vec![],
                }
            }
            Command::Reverse { original, .. } => {
                let id = *original;
                if id.seq() != self.seq && !self.originals.contains_key(&id) {
                    // Journal entries never change: read once, without a conflict range.
                    if let Some(tx) = crate::journal::find_transaction(&TxnSnapshot(self.txn), id)?
                    {
                        self.originals.insert(id, tx);
                    }
                }
                match self.transaction(id)? {
                    Some(tx) => tx.members().map(Need::Member).collect(),
                    None => vec![],
                }
            }
            _ => vec![],
        })
    }

    /// Reads the records in `needs` not read yet, together, into the partial state.
    fn load(&mut self, needs: Vec<Need>) -> Result<(), LedgerError> {
        let mut wanted: Vec<(Vec<u8>, Need)> = Vec::new();
        for n in needs {
            let k = match &n {
                Need::Member(m) => keys::member(*m),
                Need::Contract(p) => keys::contract(*p),
                Need::Hold(h) => keys::hold(*h),
                Need::Reversed(t) => keys::reversed(*t),
            };
            if self.loaded.insert(k.clone()) {
                wanted.push((k, n));
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let raw: Vec<Vec<u8>> = wanted.iter().map(|(k, _)| k.clone()).collect();
        for ((_, need), v) in wanted.into_iter().zip(self.txn.get_many(&raw)?) {
            let Some(v) = v else { continue };
            match need {
                Need::Member(m) => {
                    let r: MemberRecord = codec::decode("member record", &v)?;
                    self.state.members.insert(m, r.state);
                }
                Need::Contract(p) => {
                    let c: Contract = codec::decode("contract", &v)?;
                    self.state.contracts.insert(p, c);
                }
                Need::Hold(id) => {
                    let h: HoldState = codec::decode("hold", &v)?;
                    self.hold_expiry.insert(id, h.expires_at);
                    self.state.hold_timeouts.insert((h.expires_at, id));
                    self.state.holds.insert(id, h);
                }
                Need::Reversed(id) => {
                    let r: Reversed = codec::decode("reversed record", &v)?;
                    self.state.reversed.insert(id, r);
                }
            }
        }
        Ok(())
    }

    fn transaction(&self, id: TxId) -> Result<Option<Transaction>, LedgerError> {
        ChunkHistory {
            txn: self.txn,
            txs: &self.txs,
            seq: self.seq,
            originals: &self.originals,
        }
        .transaction(id)
    }

    /// Decides one command on the partial state; a new transaction joins the chunk.
    fn process(&mut self, item: &Item) -> Decided {
        match self.try_process(item) {
            Ok(d) => d,
            Err(e) => Decided::Failed(Arc::new(e)),
        }
    }

    fn try_process(&mut self, item: &Item) -> Result<Decided, LedgerError> {
        let cmd = &item.cmd;
        let key = cmd.key();
        if key.reference.is_empty() || key.reference.len() > IdemKey::REFERENCE_LEN_MAX {
            return Err(Rejection::Invalid(format!(
                "reference must be 1..={} bytes",
                IdemKey::REFERENCE_LEN_MAX
            ))
            .into());
        }
        let digest = match &item.pricing {
            Some(p) => cmd.digest_with(p),
            None => cmd.digest(),
        };
        let existing = match self.in_chunk.get(key) {
            Some(&i) => Some((self.txs[i].id, self.txs[i].digest)),
            None => self
                .idem
                .get(key)
                .copied()
                .flatten()
                .map(|r| (r.tx, r.digest)),
        };
        if let Some((id, d)) = existing {
            if d != digest {
                return Err(Rejection::IdempotencyConflict { original: id }.into());
            }
            return match self.transaction(id)? {
                Some(tx) => Ok(Decided::Replay(Box::new(tx))),
                None => Err(LedgerError::Corrupt(format!(
                    "idempotency key {key} names missing transaction {id}"
                ))),
            };
        }
        self.load_for(cmd)?;
        let id = TxId::new(self.seq, self.txs.len() as u16);
        let history = ChunkHistory {
            txn: self.txn,
            txs: &self.txs,
            seq: self.seq,
            originals: &self.originals,
        };
        let mut tx = match self.state.decide(cmd, digest, id, self.at, &history) {
            Ok(tx) => tx,
            Err(DecideError::Rejected(r)) => return Err(r.into()),
            Err(DecideError::Failed(e)) => return Err(e),
        };
        tx.pricing = item.pricing.clone();
        if let TxKind::Hold { expires_at, .. } = tx.kind {
            self.hold_expiry.insert(tx.id, expires_at);
        }
        self.state.apply(&tx);
        self.touched.members.extend(tx.members());
        self.touched.note_records(&tx);
        write_statement_lines(&mut self.writes, &tx);
        self.writes.set_owned(
            keys::idempotency(&tx.key),
            codec::encode(&IdemRecord {
                tx: tx.id,
                digest: tx.digest,
            }),
        );
        add_totals(&mut self.writes, &tx)?;
        self.in_chunk.insert(key.clone(), self.txs.len());
        self.txs.push(tx);
        Ok(Decided::New(self.txs.len() - 1))
    }

    /// The chunk's writes: journal block, commit-order entry, and the derived records of
    /// everything it touched.
    fn finish(mut self, shard: u8) -> (WriteSet, Vec<Transaction>) {
        if self.txs.is_empty() {
            return (self.writes, self.txs);
        }
        let mut blocks = BlockWriter::default();
        for tx in &self.txs {
            blocks.push(tx);
        }
        let w = &mut self.writes;
        for (order, block) in blocks.finish().into_iter().enumerate() {
            w.set_owned(keys::journal(self.seq, order as u16), block);
        }
        w.set_versionstamped_key(
            &keys::order_prefix(shard),
            0,
            self.seq.to_be_bytes().to_vec(),
        );
        write_records(
            &mut self.writes,
            &self.state,
            &self.touched,
            Some(&self.hold_expiry),
        );
        (self.writes, self.txs)
    }
}

/// The records `cmd` reads directly (holds and originals lead to more; see `prefetch`).
fn needs(cmd: &Command) -> Vec<Need> {
    match cmd {
        Command::SetContract { contract, .. } => vec![Need::Contract(contract.partner)],
        Command::Enrol { member, .. } | Command::Adjust { member, .. } => {
            vec![Need::Member(*member)]
        }
        Command::Earn {
            member, partner, ..
        }
        | Command::Burn {
            member, partner, ..
        }
        | Command::Hold {
            member, partner, ..
        } => vec![Need::Member(*member), Need::Contract(*partner)],
        Command::Capture { hold, .. } | Command::Void { hold, .. } => vec![Need::Hold(*hold)],
        Command::Reverse { original, .. } => vec![Need::Reversed(*original)],
        Command::Transfer { from, to, .. } => vec![Need::Member(*from), Need::Member(*to)],
    }
}

/// Blind adds of `tx`'s non-member postings to the account totals: points as i64, money as
/// i128 at [`keys::MONEY_SCALE`] decimal places.
fn add_totals(w: &mut WriteSet, tx: &Transaction) -> Result<(), LedgerError> {
    for p in &tx.postings {
        if p.account.is_member() {
            continue;
        }
        match p.amount {
            crate::model::Amount::Points(x) => w.add(&keys::total_points(p.account), x.0),
            crate::model::Amount::Money(m) => {
                w.add_wide(&keys::total_money(p.account, m.currency), fixed(m.amount)?)
            }
        }
    }
    Ok(())
}

/// `d` as an integer count of 10^-MONEY_SCALE units.
pub(crate) fn fixed(d: Decimal) -> Result<i128, LedgerError> {
    if d.scale() > keys::MONEY_SCALE {
        return Err(Rejection::InvalidAmount(format!(
            "{d} has more than {} decimal places",
            keys::MONEY_SCALE
        ))
        .into());
    }
    let mut d = d;
    d.rescale(keys::MONEY_SCALE);
    Ok(d.mantissa())
}

/// Adds the cluster-path totals of account `a` (see [`add_totals`]) to `b`.
pub(crate) fn read_totals<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    a: AccountId,
    b: &mut crate::state::Balance,
) -> Result<(), LedgerError> {
    let prefix = keys::total_prefix(a);
    for (k, v) in snap.range(
        &prefix,
        &crate::store::prefix_end(&prefix),
        usize::MAX,
        false,
    )? {
        match &k[prefix.len()..] {
            [0] => {
                let n = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| LedgerError::Corrupt("points total".into()))?;
                b.points.0 += i64::from_le_bytes(n);
            }
            [1, code @ ..] => {
                let c = std::str::from_utf8(code)
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| LedgerError::Corrupt(format!("money total key {k:?}")))?;
                let n = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| LedgerError::Corrupt("money total".into()))?;
                let amount =
                    Decimal::from_i128_with_scale(i128::from_le_bytes(n), keys::MONEY_SCALE);
                b.add(crate::model::Amount::Money(crate::types::Money::new(
                    amount.normalize(),
                    c,
                )));
            }
            _ => return Err(LedgerError::Corrupt(format!("total key {k:?}"))),
        }
    }
    Ok(())
}

/// Lookups of committed transactions inside a transaction: this chunk, the originals already
/// read, then the journal.
struct ChunkHistory<'a> {
    txn: &'a dyn Txn,
    txs: &'a [Transaction],
    seq: u64,
    originals: &'a HashMap<TxId, Transaction>,
}

impl History for ChunkHistory<'_> {
    fn transaction(&self, id: TxId) -> Result<Option<Transaction>, LedgerError> {
        if id.seq() == self.seq {
            return Ok(self.txs.get(usize::from(id.slot())).cloned());
        }
        if let Some(tx) = self.originals.get(&id) {
            return Ok(Some(tx.clone()));
        }
        crate::journal::find_transaction(&TxnSnapshot(self.txn), id)
    }
}
