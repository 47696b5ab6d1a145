//! The storage interface the ledger is written against, shaped like FoundationDB's model.
//!
//! An ordered byte-key space; consistent read snapshots with point and range reads; write sets
//! with set, clear, clear-range, atomic little-endian add and versionstamped keys, applied
//! atomically by [`Store::commit`], which returns the commit's [`Version`]. Versions increase
//! with every commit; versionstamped keys built from them sort in commit order. (The ledger's
//! own journal is numbered by its single committer; see `committer.rs`.)
//!
//! ```
//! use ledger::store::{EmbeddedStore, Store, Snapshot, WriteSet, Durability};
//! let dir = tempfile::tempdir().unwrap();
//! let store = EmbeddedStore::open(dir.path()).unwrap();
//! let mut w = WriteSet::default();
//! w.set(b"a/1", b"one");
//! w.add(b"counter", 5);
//! let v = store.commit(w, Durability::Sync).unwrap();
//! let snap = store.snapshot().unwrap();
//! assert_eq!(snap.get(b"a/1").unwrap().as_deref(), Some(&b"one"[..]));
//! assert_eq!(snap.get(b"counter").unwrap(), Some(5i64.to_le_bytes().to_vec()));
//! assert!(snap.version() >= v);
//! ```

mod embedded;
mod engine;
pub mod faults;
#[cfg(feature = "fdb")]
pub mod fdb;
pub mod sim;

pub use embedded::{EmbeddedOptions, EmbeddedSnapshot, EmbeddedStore, EngineMemory};
pub use engine::{Engine, EngineSnapshot, EngineSpec};

/// A commit version. A later commit never has a smaller one; on the embedded engine each
/// commit's is one more than the last, while FoundationDB may give commits resolved together
/// the same version (a versionstamp's batch position then tells them apart).
pub type Version = u64;

/// Length of the suffix a versionstamped key gets, as in FoundationDB: the commit version
/// (8 bytes, big-endian), the commit's position within the engine's commit batch (2 bytes;
/// always 0 on the embedded engine), then the write's own order within its commit (2 bytes).
pub const VERSIONSTAMP_LEN: usize = 12;

/// The key a versionstamped write gets on an engine whose commits are not batched with others
/// (the embedded and simulated ones): `prefix`, the commit version, a batch position of 0,
/// then the write's own `order`.
pub(crate) fn versionstamped_key(mut prefix: Vec<u8>, version: Version, order: u16) -> Vec<u8> {
    prefix.extend_from_slice(&version.to_be_bytes());
    prefix.extend_from_slice(&0u16.to_be_bytes());
    prefix.extend_from_slice(&order.to_be_bytes());
    prefix
}

/// Keys starting with this byte belong to the engine itself, never to the ledger.
pub const SYSTEM_PREFIX: u8 = 0xff;

/// A storage failure. The ledger treats these as fatal for the writer: it stops and the
/// process restarts from what is durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The engine reported an error.
    #[error("storage engine: {0}")]
    Engine(String),
    /// A write was not valid for the engine (a key in the system range, a bad add operand).
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    /// A read-write transaction kept conflicting with concurrent ones and ran out of attempts.
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// The transaction's deadline passed (`transaction_timed_out`). It may have committed; a
    /// retry with the same idempotency keys finds out.
    #[error("transaction timed out: {0}")]
    Timeout(String),
    /// The last attempt's commit may or may not have happened (`commit_unknown_result`) and no
    /// attempt was left to find out. A retry with the same idempotency keys finds out.
    #[error("commit result unknown: {0}")]
    MaybeCommitted(String),
    /// A transient cluster error other than a conflict (too old, a process behind, throttled)
    /// outlasted the attempts.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A key or value above the engine's limit: no retry or split helps (a bug: every record
    /// is bounded by construction).
    #[error("too large: {0}")]
    TooLarge(String),
    /// The transaction as a whole is above the engine's limit: fewer commands per
    /// transaction help.
    #[error("transaction too large: {0}")]
    TransactionTooLarge(String),
}

impl StoreError {
    /// What a transaction that ran out of its `attempts` ends with: its last attempt's error,
    /// a conflict saying how many attempts it took.
    pub(crate) fn gave_up(attempts: u32, last: StoreError) -> StoreError {
        match last {
            StoreError::Conflict(why) => {
                StoreError::Conflict(format!("gave up after {attempts} attempts: {why}"))
            }
            other => other,
        }
    }

    /// Whether trying again later, with the same idempotency keys, can succeed: the caller is
    /// told to retry (503), not that something broke.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict(_)
                | StoreError::Timeout(_)
                | StoreError::MaybeCommitted(_)
                | StoreError::Unavailable(_)
        )
    }
}

/// How durable a commit must be before [`Store::commit`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage (fsync) before returning.
    Sync,
    /// Atomic and visible, made durable by the next `Sync` commit or a clean shutdown. For
    /// derived state that can be rebuilt from synced data.
    Buffered,
}

/// A value to store: immutable bytes, shared by reference count, in the layout the embedded
/// engine's memtable keeps. A value built as one (a journal block) moves into the memtable as
/// it is; a `Vec` given to [`WriteSet::set_owned`] is copied into one once.
pub use byteview::ByteView as Value;

/// One write in a [`WriteSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Set `key` to `value`.
    Set(Vec<u8>, Value),
    /// Remove `key`.
    Clear(Vec<u8>),
    /// Remove every key in `[begin, end)`.
    ClearRange(Vec<u8>, Vec<u8>),
    /// Add a signed 64-bit little-endian integer to the value at `key` (absent counts as 0).
    Add(Vec<u8>, i64),
    /// Add a signed 128-bit little-endian integer to the 16-byte value at `key` (absent
    /// counts as 0): fixed-point money totals.
    AddWide(Vec<u8>, i128),
    /// Set `prefix ++ versionstamp` to `value`; the versionstamp is filled in at commit.
    SetVersionstampedKey {
        /// Key bytes before the versionstamp.
        prefix: Vec<u8>,
        /// Order of this write within the commit (the versionstamp's last two bytes).
        order: u16,
        /// Value.
        value: Vec<u8>,
    },
}

/// The writes of one transaction, applied atomically in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    /// The writes, in order.
    pub writes: Vec<Write>,
    /// Approximate bytes of keys and values, to keep transactions inside engine limits.
    pub bytes: usize,
}

impl WriteSet {
    /// Puts a set of plain sets and clears in key order (writes to one key keep their order),
    /// so an engine inserting them into a sorted memtable walks it once instead of jumping.
    /// Leaves any other set as it is: range clears, adds and versionstamped keys may depend
    /// on the order they were given in.
    pub fn sort_by_key(&mut self) {
        let plain = self
            .writes
            .iter()
            .all(|w| matches!(w, Write::Set(..) | Write::Clear(_)));
        if plain {
            self.writes.sort_by(|a, b| match (a, b) {
                (Write::Set(x, _) | Write::Clear(x), Write::Set(y, _) | Write::Clear(y)) => {
                    x.cmp(y)
                }
                _ => std::cmp::Ordering::Equal,
            });
        }
    }

    /// Set `key` to `value`.
    pub fn set(&mut self, key: &[u8], value: &[u8]) {
        self.bytes += key.len() + value.len();
        self.writes
            .push(Write::Set(key.to_vec(), Value::new(value)));
    }

    /// Set `key` to an owned `value` (copied once into a [`Value`]).
    pub fn set_owned(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.bytes += key.len() + value.len();
        self.writes.push(Write::Set(key, Value::from(value)));
    }

    /// Set `key` to `value`, without copying it.
    pub fn set_value(&mut self, key: Vec<u8>, value: Value) {
        self.bytes += key.len() + value.len();
        self.writes.push(Write::Set(key, value));
    }

    /// Remove `key`.
    pub fn clear(&mut self, key: &[u8]) {
        self.bytes += key.len();
        self.writes.push(Write::Clear(key.to_vec()));
    }

    /// Remove every key in `[begin, end)`.
    pub fn clear_range(&mut self, begin: &[u8], end: &[u8]) {
        self.bytes += begin.len() + end.len();
        self.writes
            .push(Write::ClearRange(begin.to_vec(), end.to_vec()));
    }

    /// Atomically add `delta` to the little-endian i64 at `key`.
    pub fn add(&mut self, key: &[u8], delta: i64) {
        self.bytes += key.len() + 8;
        self.writes.push(Write::Add(key.to_vec(), delta));
    }

    /// Atomically add `delta` to the little-endian i128 at `key`.
    pub fn add_wide(&mut self, key: &[u8], delta: i128) {
        self.bytes += key.len() + 16;
        self.writes.push(Write::AddWide(key.to_vec(), delta));
    }

    /// Set `prefix ++ versionstamp(order)` to `value`.
    pub fn set_versionstamped_key(&mut self, prefix: &[u8], order: u16, value: Vec<u8>) {
        self.bytes += prefix.len() + VERSIONSTAMP_LEN + value.len();
        self.writes.push(Write::SetVersionstampedKey {
            prefix: prefix.to_vec(),
            order,
            value,
        });
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// A key-value pair read from a snapshot.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A consistent, read-only view of the store at one version. Later commits are invisible to it
/// and it never blocks writers.
pub trait Snapshot: Send {
    /// The value at `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Calls `f` with the value at `key`, if any, without copying it where the engine can
    /// lend it; returns whether there was one.
    fn get_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, StoreError> {
        Ok(match self.get(key)? {
            Some(v) => {
                f(&v);
                true
            }
            None => false,
        })
    }

    /// Up to `limit` pairs with `begin <= key < end`, ascending, or descending when `reverse`.
    fn range(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>, StoreError>;

    /// Calls `f` for every pair with `begin <= key < end`, ascending, until `f` returns false.
    fn scan(
        &self,
        begin: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;

    /// The last version committed when this snapshot was taken.
    fn version(&self) -> Version;
}

/// An ordered key-value store with atomic, versioned commits.
pub trait Store: Send + Sync + 'static {
    /// The snapshot type.
    type Snapshot: Snapshot + 'static;

    /// A consistent view of everything committed so far.
    fn snapshot(&self) -> Result<Self::Snapshot, StoreError>;

    /// Applies `writes` atomically; returns the new commit version. With
    /// [`Durability::Sync`], the commit is on stable storage when this returns.
    fn commit(&self, writes: WriteSet, durability: Durability) -> Result<Version, StoreError>;

    /// The version the next commit will get, when the caller is the store's only writer (the
    /// embedded engine, on the single-writer path). On FoundationDB only an estimate: the read
    /// version plus one.
    fn next_version(&self) -> Version;

    /// Whether snapshots may be read from several threads at once, as the open does (the key
    /// index beside the members' state). False for the simulated store, whose faults are drawn
    /// for its operations in the order they come: a seed repeats only if one thread reads.
    fn reads_from_threads(&self) -> bool {
        true
    }
}

/// Reads inside a read-write transaction ([`TxnStore::transact`]).
pub trait Txn: Send + Sync {
    /// The value at `key`. The transaction conflicts with any concurrent commit that writes
    /// `key`, so what it decides on this value stays true when it commits (serializable).
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// [`Txn::get`] of every key in `keys`, issued together (one round trip on a networked
    /// engine); values in the order of `keys`.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Up to `limit` pairs with `begin <= key < end`, ascending, read without a conflict: for
    /// records that never change once written (journal blocks).
    fn range_snapshot(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError>;

    /// The version the transaction reads at.
    fn read_version(&self) -> Version;
}

/// Conflict-free reads of a transaction, seen as a [`Snapshot`] (journal lookups).
pub struct TxnSnapshot<'a>(pub &'a dyn Txn);

impl Snapshot for TxnSnapshot<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut end = key.to_vec();
        end.push(0);
        Ok(self.0.range_snapshot(key, &end, 1)?.pop().map(|(_, v)| v))
    }

    fn range(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>, StoreError> {
        if reverse {
            return Err(StoreError::Engine(
                "reverse ranges are not read inside transactions".into(),
            ));
        }
        self.0.range_snapshot(begin, end, limit)
    }

    fn scan(
        &self,
        begin: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for (k, v) in self.0.range_snapshot(begin, end, usize::MAX)? {
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn version(&self) -> Version {
        self.0.read_version()
    }
}

/// The work of one transaction attempt: reads through the [`Txn`], returns the writes to
/// commit and a result.
pub type TxnBody<'a, T, E> = dyn FnMut(&dyn Txn) -> Result<(WriteSet, T), E> + 'a;

/// A store with serializable read-write transactions: what many ledger processes sharing one
/// store need (see `docs/foundationdb.md`).
pub trait TxnStore: Store {
    /// Runs `body` in a transaction, then commits the writes it returns, durably. When the
    /// commit conflicts with a concurrent one (or may or may not have happened), `body` runs
    /// again on fresh reads, up to `attempts` times in all; then the error is
    /// [`StoreError::Conflict`]. `body` must therefore decide everything from what it reads.
    /// An error from `body` aborts without writing anything.
    fn transact<T, E: From<StoreError>>(
        &self,
        attempts: u32,
        body: &mut TxnBody<'_, T, E>,
    ) -> Result<(Version, T), E>;
}

/// xorshift64*: the small seeded generator the fault-injecting stores draw their faults from
/// (a seed must repeat a run exactly, across versions of any crate).
pub(crate) fn xorshift64star(x: &mut u64) -> u64 {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The end of the key range holding every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![SYSTEM_PREFIX]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorting_by_key_keeps_the_order_of_writes_to_one_key() {
        let mut w = WriteSet::default();
        w.set(b"m", b"1");
        w.clear(b"b");
        w.set(b"m", b"2");
        w.set(b"a", b"x");
        w.sort_by_key();
        assert_eq!(
            w.writes,
            vec![
                Write::Set(b"a".to_vec(), b"x".into()),
                Write::Clear(b"b".to_vec()),
                Write::Set(b"m".to_vec(), b"1".into()),
                Write::Set(b"m".to_vec(), b"2".into()),
            ]
        );
    }

    #[test]
    fn a_set_with_order_dependent_writes_is_left_as_given() {
        let mut w = WriteSet::default();
        w.set(b"z", b"1");
        w.clear_range(b"a", b"zz");
        w.set(b"b", b"2");
        let before = w.clone();
        w.sort_by_key();
        assert_eq!(w, before);
    }
}
