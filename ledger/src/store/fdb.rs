//! The FoundationDB engine: the [`Store`] trait over real FDB transactions (API 7.3).
//!
//! Built with the `fdb` feature. It compiles anywhere. Linking and running need `libfdb_c`
//! and a cluster file; see `docs/foundationdb.md`.
//!
//! - Every key lives under the store's subspace prefix, so several ledgers (or test runs) can
//!   share a cluster.
//! - [`Store::commit`] is one FDB transaction with explicit timeout and retry limits. Atomic adds
//!   are FDB's little-endian `ADD` mutation; versionstamped keys are FDB's
//!   `SET_VERSIONSTAMPED_KEY`, with the key holding FDB's 10-byte stamp followed by the write's
//!   2-byte order.
//! - [`Store::commit`] (the registry's and the gateway's own writes, not the ledger's commands)
//!   also writes a marker key whose value FDB stamps with the commit's version. After
//!   `commit_unknown_result`, the retry within the same call first reads the marker: if it is
//!   there, the earlier attempt committed, and its version is returned with nothing written
//!   twice. The marker covers only that case, within one call: a failed marker read, a timeout
//!   or a restart leave the outcome unknown to the caller. The ledger's commands do not rely on
//!   it: their exactly-once comes from idempotency keys read and written in the same
//!   transaction ([`TxnStore::transact`]).
//! - A snapshot is a read-only transaction at a fixed read version, with snapshot reads. FDB
//!   keeps a read version for 5 s, so a scan that runs longer fails with `transaction_too_old`.

use super::{
    Durability, KeyValue, Snapshot, Store, StoreError, Txn, TxnBody, TxnStore, Version, Write,
    WriteSet,
};
use foundationdb::options::{MutationType, StreamingMode, TransactionOption};
use foundationdb::{Database, FdbError, KeySelector, RangeOption, Transaction};
use futures::executor::block_on;
use std::sync::{Arc, Mutex};

/// Milliseconds one commit may take, retries included, before it fails.
pub const COMMIT_TIMEOUT_MS: i32 = 5_000;
/// Milliseconds one attempt of a transaction may take (within [`COMMIT_TIMEOUT_MS`] for all).
pub const ATTEMPT_TIMEOUT_MS: i32 = 1_000;
/// The longest backoff `on_error` waits between attempts (FoundationDB's default is 1 s, with
/// which 20 attempts cannot fit the deadline).
pub const RETRY_DELAY_MAX_MS: i32 = 100;
/// Retries of one commit after retryable errors (conflicts, `commit_unknown_result`).
pub const COMMIT_RETRY_LIMIT: i32 = 20;

/// Under the engine's own `0xff` range of the subspace, invisible to the ledger's keys.
const MARKER: &[u8] = b"\xffcommit-marker/";

/// FoundationDB's error codes the store tells apart, as its documentation's error table names
/// them.
mod code {
    pub const NOT_COMMITTED: i32 = 1020;
    pub const TIMED_OUT: i32 = 1031;
    pub const TRANSACTION_TOO_LARGE: i32 = 2101;
    pub const KEY_TOO_LARGE: i32 = 2102;
    pub const VALUE_TOO_LARGE: i32 = 2103;
}

/// An FDB error by kind: a conflict, a timeout, a commit that may have happened, another
/// retryable hiccup, a size limit, or anything else.
impl From<FdbError> for StoreError {
    fn from(e: FdbError) -> Self {
        let what = format!("foundationdb: {e} (code {})", e.code());
        match e.code() {
            code::NOT_COMMITTED => StoreError::Conflict(what),
            code::TIMED_OUT => StoreError::Timeout(what),
            code::TRANSACTION_TOO_LARGE => StoreError::TransactionTooLarge(what),
            code::KEY_TOO_LARGE | code::VALUE_TOO_LARGE => StoreError::TooLarge(what),
            _ if e.is_maybe_committed() => StoreError::MaybeCommitted(what),
            _ if e.is_retryable() => StoreError::Unavailable(what),
            _ => StoreError::Engine(what),
        }
    }
}

/// The FDB client network of this process.
enum Network {
    NotStarted,
    Running(foundationdb::api::NetworkAutoStop),
    Failed(String),
    Stopped,
}

static NETWORK: Mutex<Network> = Mutex::new(Network::NotStarted);

/// Starts the FDB client network thread, once per process: the first store opened starts it,
/// and [`stop_network`] stops it before the process exits. A failed start is reported, to this
/// caller and every later one, with FoundationDB's reason.
fn network() -> Result<(), StoreError> {
    let mut n = NETWORK.lock().expect("network lock");
    match &*n {
        Network::Running(_) => Ok(()),
        Network::Failed(why) => Err(StoreError::Engine(format!(
            "the FoundationDB client network failed to start: {why}"
        ))),
        Network::Stopped => Err(StoreError::Engine(
            "the FoundationDB client network was stopped; it cannot start again in this process"
                .into(),
        )),
        Network::NotStarted => {
            let started = foundationdb::api::FdbApiBuilder::default()
                .build()
                // SAFETY: the network starts once per process (under this lock), and its guard
                // is kept here until `stop_network` drops it, which stops and joins the thread.
                .and_then(|b| unsafe { b.boot() });
            match started {
                Ok(guard) => {
                    *n = Network::Running(guard);
                    Ok(())
                }
                Err(e) => {
                    let why = format!("{e} (code {})", e.code());
                    *n = Network::Failed(why.clone());
                    Err(StoreError::Engine(format!(
                        "the FoundationDB client network failed to start: {why}"
                    )))
                }
            }
        }
    }
}

/// Stops the FDB client network and waits for its thread: call once, before the process exits
/// and after every store is dropped. Nothing to do when it never started.
pub fn stop_network() {
    let mut n = NETWORK.lock().expect("network lock");
    if let Network::Running(guard) = std::mem::replace(&mut *n, Network::Stopped) {
        drop(guard);
    }
}

/// A store in one subspace of a FoundationDB cluster.
#[derive(Clone)]
pub struct FdbStore {
    db: Arc<Database>,
    prefix: Arc<Vec<u8>>,
    last_marker: Arc<Mutex<Option<Vec<u8>>>>,
}

impl FdbStore {
    /// Connects through `cluster_file` to the subspace `prefix` (for example `b"pts/"`).
    pub fn open(cluster_file: &str, prefix: &[u8]) -> Result<FdbStore, StoreError> {
        if prefix.is_empty() || prefix[0] == super::SYSTEM_PREFIX {
            return Err(StoreError::InvalidWrite(
                "the subspace prefix must be non-empty and must not start with 0xff".into(),
            ));
        }
        network()?;
        let db = Database::new(Some(cluster_file))?;
        Ok(FdbStore {
            db: Arc::new(db),
            prefix: Arc::new(prefix.to_vec()),
            last_marker: Arc::new(Mutex::new(None)),
        })
    }

    fn key(&self, k: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + k.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(k);
        out
    }

    /// Removes every key of the subspace (tests clean up with it).
    pub fn clear_subspace(&self) -> Result<(), StoreError> {
        let end = super::prefix_end(&self.prefix);
        let trx = self.db.create_trx()?;
        trx.clear_range(&self.prefix, &end);
        block_on(trx.commit()).map_err(|e| StoreError::from(*e))?;
        Ok(())
    }

    fn apply(&self, trx: &Transaction, writes: &WriteSet, marker: &[u8], previous: Option<&[u8]>) {
        self.apply_writes(trx, writes);
        // The marker's value becomes the commit's 10-byte versionstamp (offset 0).
        let mut stamp = vec![0u8; 10];
        stamp.extend_from_slice(&0u32.to_le_bytes());
        trx.atomic_op(marker, &stamp, MutationType::SetVersionstampedValue);
        if let Some(p) = previous {
            trx.clear(p);
        }
    }

    fn apply_writes(&self, trx: &Transaction, writes: &WriteSet) {
        for w in &writes.writes {
            match w {
                Write::Set(k, v) => trx.set(&self.key(k), v),
                Write::Clear(k) => trx.clear(&self.key(k)),
                Write::ClearRange(b, e) => trx.clear_range(&self.key(b), &self.key(e)),
                Write::Add(k, d) => {
                    trx.atomic_op(&self.key(k), &d.to_le_bytes(), MutationType::Add)
                }
                Write::AddWide(k, d) => {
                    trx.atomic_op(&self.key(k), &d.to_le_bytes(), MutationType::Add)
                }
                Write::SetVersionstampedKey {
                    prefix,
                    order,
                    value,
                } => {
                    let mut key = self.key(prefix);
                    let offset = key.len() as u32;
                    key.extend_from_slice(&[0u8; 10]);
                    key.extend_from_slice(&order.to_be_bytes());
                    key.extend_from_slice(&offset.to_le_bytes());
                    trx.atomic_op(&key, value, MutationType::SetVersionstampedKey);
                }
            }
        }
    }

    async fn commit_async(&self, writes: &WriteSet) -> Result<Version, StoreError> {
        check_user_keys(writes)?;
        let mut marker = self.key(MARKER);
        marker.extend_from_slice(&rand_suffix());
        let previous = self.last_marker.lock().expect("marker lock").clone();
        let mut trx = self.db.create_trx()?;
        let mut maybe_committed = false;
        loop {
            trx.set_option(TransactionOption::Timeout(COMMIT_TIMEOUT_MS))?;
            trx.set_option(TransactionOption::RetryLimit(COMMIT_RETRY_LIMIT))?;
            if maybe_committed {
                if let Some(stamp) = trx.get(&marker, false).await? {
                    *self.last_marker.lock().expect("marker lock") = Some(marker);
                    return Ok(stamp_version(&stamp));
                }
            }
            self.apply(&trx, writes, &marker, previous.as_deref());
            match trx.commit().await {
                Ok(done) => {
                    let v = done.committed_version()?;
                    *self.last_marker.lock().expect("marker lock") = Some(marker);
                    return Ok(v as u64);
                }
                Err(e) => {
                    maybe_committed |= e.is_maybe_committed();
                    trx = e.on_error().await?;
                }
            }
        }
    }
}

/// Keys starting with `0xff` belong to the engine, as on every engine.
fn check_user_keys(writes: &WriteSet) -> Result<(), StoreError> {
    let first = |w: &Write| match w {
        Write::Set(k, _) | Write::Clear(k) | Write::Add(k, _) | Write::AddWide(k, _) => {
            k.first().copied()
        }
        Write::ClearRange(b, _) => b.first().copied(),
        Write::SetVersionstampedKey { prefix, .. } => prefix.first().copied(),
    };
    match writes
        .writes
        .iter()
        .find(|w| first(w) == Some(super::SYSTEM_PREFIX))
    {
        Some(w) => Err(StoreError::InvalidWrite(format!(
            "keys starting with 0xff belong to the engine: {w:?}"
        ))),
        None => Ok(()),
    }
}

fn stamp_version(stamp: &[u8]) -> Version {
    let mut v = [0u8; 8];
    v.copy_from_slice(&stamp[..8.min(stamp.len())]);
    u64::from_be_bytes(v)
}

fn rand_suffix() -> [u8; 16] {
    use std::time::{SystemTime, UNIX_EPOCH};
    // Unique per commit within and across processes: time, process id and a counter.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&(t ^ (u64::from(std::process::id()) << 40)).to_be_bytes());
    out[8..].copy_from_slice(&n.to_be_bytes());
    out
}

impl Store for FdbStore {
    type Snapshot = FdbSnapshot;

    fn snapshot(&self) -> Result<FdbSnapshot, StoreError> {
        let trx = self.db.create_trx()?;
        let version = block_on(trx.get_read_version())?;
        Ok(FdbSnapshot {
            trx,
            prefix: self.prefix.clone(),
            version: version as u64,
        })
    }

    fn commit(&self, writes: WriteSet, _durability: Durability) -> Result<Version, StoreError> {
        // Every FDB commit is durable on the cluster's logs when it returns.
        block_on(self.commit_async(&writes))
    }

    fn next_version(&self) -> Version {
        self.snapshot().map_or(0, |s| s.version + 1)
    }
}

impl TxnStore for FdbStore {
    /// One FDB transaction, run up to `attempts` times. Each attempt may take
    /// [`ATTEMPT_TIMEOUT_MS`], all of them together [`COMMIT_TIMEOUT_MS`] (FDB keeps a
    /// transaction's timeout across `on_error`, counted from its creation, so each attempt sets
    /// it to the time used so far plus one attempt's). Backoff is capped at
    /// [`RETRY_DELAY_MAX_MS`] so the attempts fit. Reads through [`Txn::get`] add read conflict
    /// ranges. Conflicts, `commit_unknown_result` and other retryable errors go through
    /// `on_error` and run `body` again; a timeout or a size limit ends the call at once, as its
    /// own [`StoreError`] kind. No commit marker is written: the ledger reads and writes each
    /// command's idempotency key inside `body`, so a retry after `commit_unknown_result` finds
    /// its own earlier commit.
    fn transact<T, E: From<StoreError>>(
        &self,
        attempts: u32,
        body: &mut TxnBody<'_, T, E>,
    ) -> Result<(Version, T), E> {
        let attempts = attempts.max(1);
        let started = std::time::Instant::now();
        let mut trx = self.db.create_trx().map_err(StoreError::from)?;
        let mut last = StoreError::Conflict("no attempt ran".into());
        for _ in 0..attempts {
            let used = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
            if used >= COMMIT_TIMEOUT_MS {
                return Err(StoreError::Timeout(format!(
                    "{used} ms used of {COMMIT_TIMEOUT_MS}; last: {last}"
                ))
                .into());
            }
            let limit = used
                .saturating_add(ATTEMPT_TIMEOUT_MS)
                .min(COMMIT_TIMEOUT_MS);
            trx.set_option(TransactionOption::Timeout(limit))
                .map_err(StoreError::from)?;
            trx.set_option(TransactionOption::MaxRetryDelay(RETRY_DELAY_MAX_MS))
                .map_err(StoreError::from)?;
            let read_version = block_on(trx.get_read_version()).map_err(StoreError::from)? as u64;
            let txn = FdbTxn {
                trx: &trx,
                prefix: &self.prefix,
                read_version,
                failed: Mutex::new(None),
            };
            let outcome = body(&txn);
            let failed = txn.failed.lock().expect("txn error lock").take();
            if let Some(e) = failed {
                // A read failed: retry when FDB says so, else give up with the read's error.
                if !e.is_retryable() {
                    return Err(StoreError::from(e).into());
                }
                last = StoreError::from(e);
                trx = block_on(trx.on_error(e)).map_err(StoreError::from)?;
                continue;
            }
            let (writes, out) = outcome?;
            check_user_keys(&writes)?;
            self.apply_writes(&trx, &writes);
            match block_on(trx.commit()) {
                Ok(done) => {
                    let v = done.committed_version().map_err(StoreError::from)?;
                    return Ok((v as u64, out));
                }
                Err(e) => {
                    let kind = StoreError::from(*e);
                    if !kind.is_transient() || matches!(kind, StoreError::Timeout(_)) {
                        return Err(kind.into());
                    }
                    last = kind;
                    trx = block_on(e.on_error()).map_err(StoreError::from)?;
                }
            }
        }
        Err(StoreError::gave_up(attempts, last).into())
    }
}

/// The reads of one FDB read-write transaction.
struct FdbTxn<'a> {
    trx: &'a Transaction,
    prefix: &'a [u8],
    read_version: Version,
    /// The first FDB error a read hit; `transact` decides whether to retry.
    failed: Mutex<Option<FdbError>>,
}

impl FdbTxn<'_> {
    fn key(&self, k: &[u8]) -> Vec<u8> {
        let mut out = self.prefix.to_vec();
        out.extend_from_slice(k);
        out
    }

    fn note<T>(&self, r: Result<T, FdbError>) -> Result<T, StoreError> {
        r.map_err(|e| {
            self.failed.lock().expect("txn error lock").get_or_insert(e);
            StoreError::from(e)
        })
    }
}

impl Txn for FdbTxn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.note(block_on(self.trx.get(&self.key(key), false)))?;
        Ok(v.map(|v| v.to_vec()))
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let reads = keys.iter().map(|k| self.trx.get(&self.key(k), false));
        let values = self.note(block_on(futures::future::try_join_all(reads)))?;
        Ok(values.into_iter().map(|v| v.map(|v| v.to_vec())).collect())
    }

    fn range_snapshot(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let (b, e) = (self.key(begin), self.key(end));
        self.note(read_range(self.trx, self.prefix.len(), b, e, limit, false))
    }

    fn read_version(&self) -> Version {
        self.read_version
    }
}

/// Up to `limit` pairs of `[begin, end)` (full keys) read at snapshot isolation, following FDB's
/// pages; keys are returned without their first `strip` bytes (the subspace prefix).
fn read_range(
    trx: &Transaction,
    strip: usize,
    begin: Vec<u8>,
    end: Vec<u8>,
    limit: usize,
    reverse: bool,
) -> Result<Vec<KeyValue>, FdbError> {
    let mut out = Vec::new();
    let mut opt = RangeOption {
        begin: KeySelector::first_greater_or_equal(begin),
        end: KeySelector::first_greater_or_equal(end),
        limit: Some(limit),
        reverse,
        mode: StreamingMode::WantAll,
        ..RangeOption::default()
    };
    let mut iteration = 1;
    while out.len() < limit {
        let values = block_on(trx.get_range(&opt, iteration, true))?;
        for kv in values.iter() {
            out.push((
                kv.key()[strip.min(kv.key().len())..].to_vec(),
                kv.value().to_vec(),
            ));
        }
        match opt.next_range(&values) {
            Some(next) => opt = next,
            None => break,
        }
        iteration += 1;
    }
    out.truncate(limit);
    Ok(out)
}

/// A read-only view at one read version.
pub struct FdbSnapshot {
    trx: Transaction,
    prefix: Arc<Vec<u8>>,
    version: Version,
}

impl FdbSnapshot {
    fn key(&self, k: &[u8]) -> Vec<u8> {
        let mut out = self.prefix.to_vec();
        out.extend_from_slice(k);
        out
    }

    fn strip<'a>(&self, k: &'a [u8]) -> &'a [u8] {
        &k[self.prefix.len().min(k.len())..]
    }
}

impl Snapshot for FdbSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(block_on(self.trx.get(&self.key(key), true))?.map(|v| v.to_vec()))
    }

    fn range(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let (b, e) = (self.key(begin), self.key(end));
        Ok(read_range(
            &self.trx,
            self.prefix.len(),
            b,
            e,
            limit,
            reverse,
        )?)
    }

    fn scan(
        &self,
        begin: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let (b, e) = (self.key(begin), self.key(end));
        let mut opt = RangeOption {
            begin: KeySelector::first_greater_or_equal(b),
            end: KeySelector::first_greater_or_equal(e),
            mode: StreamingMode::Iterator,
            ..RangeOption::default()
        };
        let mut iteration = 1;
        loop {
            let values = block_on(self.trx.get_range(&opt, iteration, true))?;
            for kv in values.iter() {
                if !f(self.strip(kv.key()), kv.value()) {
                    return Ok(());
                }
            }
            match opt.next_range(&values) {
                Some(next) => opt = next,
                None => return Ok(()),
            }
            iteration += 1;
        }
    }

    fn version(&self) -> Version {
        self.version
    }
}
