//! A transactional store that behaves as FoundationDB does when things go wrong, over any
//! [`TxnStore`] (the embedded engine in tests): it holds every transaction to FoundationDB's
//! size limits, and injects, per commit, the faults a cluster produces:
//!
//! - conflicts (`not_committed`), retried by [`TxnStore::transact`];
//! - `commit_unknown_result`, both when the commit happened and when it did not, retried the
//!   same way, so the retry must find what the first attempt may have written;
//! - timeouts (`transaction_timed_out`), which end the call;
//! - slow commits.
//!
//! Which fault hits which commit comes from a seeded generator: a failing run repeats with its
//! seed. The conformance suite and the model test run the cluster path through it.

use super::{Durability, Store, StoreError, Txn, TxnBody, TxnStore, Version, Write, WriteSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// FoundationDB's largest key, in bytes.
pub const KEY_BYTES_MAX: usize = 10_000;
/// FoundationDB's largest value, in bytes.
pub const VALUE_BYTES_MAX: usize = 100_000;
/// FoundationDB's largest transaction (keys and values written, plus a little per write), in
/// bytes.
pub const TRANSACTION_BYTES_MAX: usize = 10_000_000;

/// How often each fault hits a commit, in parts per thousand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// The commit conflicts.
    pub conflict: u16,
    /// The commit happens, and the caller hears `commit_unknown_result`.
    pub unknown_committed: u16,
    /// The commit does not happen, and the caller hears `commit_unknown_result`.
    pub unknown_lost: u16,
    /// The transaction times out before it commits.
    pub timeout: u16,
    /// The commit takes `slow_ms` longer.
    pub slow: u16,
    /// How much longer a slow commit takes.
    pub slow_ms: u16,
    /// A transaction limit below FoundationDB's, in bytes, to drive what happens above it with
    /// small batches (0: FoundationDB's own, [`TRANSACTION_BYTES_MAX`]).
    pub transaction_bytes_max: u32,
}

impl Faults {
    /// Every fault kind, each on a few percent of commits.
    pub fn all() -> Faults {
        Faults {
            conflict: 40,
            unknown_committed: 20,
            unknown_lost: 20,
            timeout: 5,
            slow: 20,
            slow_ms: 3,
            transaction_bytes_max: 0,
        }
    }
}

/// What was injected so far.
#[derive(Debug, Default)]
pub struct Injected {
    /// Conflicts.
    pub conflicts: AtomicU64,
    /// Unknown results after a commit that happened.
    pub unknown_committed: AtomicU64,
    /// Unknown results after a commit that did not.
    pub unknown_lost: AtomicU64,
    /// Timeouts.
    pub timeouts: AtomicU64,
    /// Slow commits.
    pub slow: AtomicU64,
}

impl Injected {
    /// Faults a retry had to overcome: conflicts and unknown results.
    pub fn retried(&self) -> u64 {
        [&self.conflicts, &self.unknown_committed, &self.unknown_lost]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// A [`TxnStore`] injecting FoundationDB's faults and holding it to FoundationDB's limits.
pub struct FaultyStore<S> {
    inner: S,
    faults: Arc<Mutex<Faults>>,
    rng: Arc<Mutex<u64>>,
    injected: Arc<Injected>,
}

impl<S: Clone> Clone for FaultyStore<S> {
    fn clone(&self) -> Self {
        FaultyStore {
            inner: self.inner.clone(),
            faults: self.faults.clone(),
            rng: self.rng.clone(),
            injected: self.injected.clone(),
        }
    }
}

/// The fault one commit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Conflict,
    UnknownCommitted,
    UnknownLost,
    Timeout,
    Slow,
}

impl<S> FaultyStore<S> {
    /// `inner` with `faults`, drawn from `seed`.
    pub fn new(inner: S, faults: Faults, seed: u64) -> Self {
        FaultyStore {
            inner,
            faults: Arc::new(Mutex::new(faults)),
            rng: Arc::new(Mutex::new(seed.max(1))),
            injected: Arc::new(Injected::default()),
        }
    }

    /// Injects `faults` from now on (in every clone).
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().expect("faults") = faults;
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// What was injected so far (shared by the store's clones).
    pub fn injected(&self) -> Arc<Injected> {
        self.injected.clone()
    }

    fn draw(&self) -> Fault {
        let mut x = self.rng.lock().expect("fault generator");
        let roll = (super::xorshift64star(&mut x) >> 33) % 1_000;
        let f = *self.faults.lock().expect("faults");
        let mut edge = 0u64;
        for (share, fault) in [
            (f.conflict, Fault::Conflict),
            (f.unknown_committed, Fault::UnknownCommitted),
            (f.unknown_lost, Fault::UnknownLost),
            (f.timeout, Fault::Timeout),
            (f.slow, Fault::Slow),
        ] {
            edge += u64::from(share);
            if roll < edge {
                return fault;
            }
        }
        Fault::None
    }
}

/// Holds `writes` to FoundationDB's limits: a key of at most 10,000 bytes, a value of at most
/// 100,000, a transaction of at most 10,000,000.
pub fn check_limits(writes: &WriteSet) -> Result<(), StoreError> {
    check_limits_within(writes, TRANSACTION_BYTES_MAX)
}

/// [`check_limits`] with a transaction limit of `transaction_max` bytes.
fn check_limits_within(writes: &WriteSet, transaction_max: usize) -> Result<(), StoreError> {
    let mut total = 0usize;
    for w in &writes.writes {
        let (key, value) = match w {
            Write::Set(k, v) => (k.len(), v.len()),
            Write::Clear(k) => (k.len(), 0),
            Write::ClearRange(b, e) => (b.len().max(e.len()), b.len() + e.len()),
            Write::Add(k, _) => (k.len(), 8),
            Write::AddWide(k, _) => (k.len(), 16),
            Write::SetVersionstampedKey { prefix, value, .. } => (prefix.len() + 10, value.len()),
        };
        if key > KEY_BYTES_MAX {
            return Err(StoreError::TooLarge(format!(
                "key_too_large: a key of {key} bytes (at most {KEY_BYTES_MAX})"
            )));
        }
        if value > VALUE_BYTES_MAX {
            return Err(StoreError::TooLarge(format!(
                "value_too_large: a value of {value} bytes (at most {VALUE_BYTES_MAX})"
            )));
        }
        total += key + value + 32;
    }
    if total > transaction_max {
        return Err(StoreError::TransactionTooLarge(format!(
            "transaction_too_large: {total} bytes (at most {transaction_max})"
        )));
    }
    Ok(())
}

impl<S: Store> Store for FaultyStore<S> {
    type Snapshot = S::Snapshot;

    fn snapshot(&self) -> Result<Self::Snapshot, StoreError> {
        self.inner.snapshot()
    }

    fn commit(&self, writes: WriteSet, durability: Durability) -> Result<Version, StoreError> {
        check_limits(&writes)?;
        self.inner.commit(writes, durability)
    }

    fn next_version(&self) -> Version {
        self.inner.next_version()
    }

    fn reads_from_threads(&self) -> bool {
        self.inner.reads_from_threads()
    }
}

/// The body's own error, or the wrapper's decision not to commit.
enum Wrapped<E> {
    Body(E),
    Abort(StoreError),
}

impl<E: From<StoreError>> From<StoreError> for Wrapped<E> {
    fn from(e: StoreError) -> Self {
        Wrapped::Body(E::from(e))
    }
}

impl<S: TxnStore> TxnStore for FaultyStore<S> {
    fn transact<T, E: From<StoreError>>(
        &self,
        attempts: u32,
        body: &mut TxnBody<'_, T, E>,
    ) -> Result<(Version, T), E> {
        let attempts = attempts.max(1);
        let mut last = StoreError::Conflict("no attempt ran".into());
        let limit = match self.faults.lock().expect("faults").transaction_bytes_max {
            0 => TRANSACTION_BYTES_MAX,
            n => n as usize,
        };
        for _ in 0..attempts {
            let fault = self.draw();
            let mut run = |txn: &dyn Txn| -> Result<(WriteSet, T), Wrapped<E>> {
                let (writes, out) = body(txn).map_err(Wrapped::Body)?;
                check_limits_within(&writes, limit).map_err(Wrapped::Abort)?;
                match fault {
                    Fault::Conflict => Err(Wrapped::Abort(StoreError::Conflict(
                        "injected not_committed".into(),
                    ))),
                    Fault::UnknownLost => Err(Wrapped::Abort(StoreError::MaybeCommitted(
                        "injected commit_unknown_result (not committed)".into(),
                    ))),
                    Fault::Timeout => Err(Wrapped::Abort(StoreError::Timeout(
                        "injected transaction_timed_out".into(),
                    ))),
                    Fault::Slow | Fault::None | Fault::UnknownCommitted => Ok((writes, out)),
                }
            };
            match self.inner.transact(1, &mut run) {
                Ok((v, out)) => match fault {
                    Fault::UnknownCommitted => {
                        self.injected
                            .unknown_committed
                            .fetch_add(1, Ordering::Relaxed);
                        last = StoreError::MaybeCommitted(
                            "injected commit_unknown_result (committed)".into(),
                        );
                    }
                    Fault::Slow => {
                        self.injected.slow.fetch_add(1, Ordering::Relaxed);
                        let ms = self.faults.lock().expect("faults").slow_ms;
                        std::thread::sleep(Duration::from_millis(u64::from(ms)));
                        return Ok((v, out));
                    }
                    _ => return Ok((v, out)),
                },
                Err(Wrapped::Body(e)) => return Err(e),
                Err(Wrapped::Abort(e)) => {
                    let counter = match &e {
                        StoreError::Conflict(_) => &self.injected.conflicts,
                        StoreError::MaybeCommitted(_) => &self.injected.unknown_lost,
                        StoreError::Timeout(_) => &self.injected.timeouts,
                        // A limit broken: no retry helps.
                        _ => return Err(e.into()),
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if matches!(e, StoreError::Timeout(_)) {
                        return Err(e.into());
                    }
                    last = e;
                }
            }
        }
        Err(StoreError::gave_up(attempts, last).into())
    }
}
