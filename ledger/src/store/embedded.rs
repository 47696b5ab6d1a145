//! The embedded engine: the [`Store`] interface over fjall, an LSM-tree in pure Rust.
//!
//! One keyspace holds every key, large values separated into blob files. Commits are
//! serialised by a mutex (the ledger has one writer anyway), applied as one fjall write batch,
//! and, for [`Durability::Sync`], fsynced before `commit` returns. The commit version is stored under the system key `\xff/version` in the
//! same batch, so it survives restarts and every snapshot knows its own version.

use super::{
    Durability, KeyValue, Snapshot, Store, StoreError, Txn, TxnBody, TxnStore, Version, Write,
    WriteSet,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const VERSION_KEY: &[u8] = b"\xff/version";

/// The embedded store. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    kv: Keyspace,
    commit_lock: Mutex<()>,
    version: AtomicU64,
    /// Transaction commits still to be refused as conflicts (tests of the retry path).
    injected_conflicts: AtomicU64,
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        StoreError::Engine(e.to_string())
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in directory `path`.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        let db = Database::builder(path)
            // The ledger fsyncs explicitly on every durable commit.
            .manual_journal_persist(true)
            // fjall's write-ahead log is written once and fsynced at once: compressing it would
            // cost the writer's thread CPU on the commit path (flushed tables still compress).
            .journal_compression(fjall::CompressionType::None)
            .cache_size(256 * 1024 * 1024)
            .open()?;
        // Values of 1 KiB or more (journal blocks, member pages, idempotency chunks) live in
        // blob files that compaction does not rewrite: the tree holds their keys and pointers.
        // Rewriting them level after level was most of fjall's background I/O, and that I/O
        // made the committer's fsyncs slow.
        //
        // Blob files of 4 MiB rather than fjall's 64 MiB: a memtable flush writes its blobs
        // into a page cache the kernel does not write back by itself, then fsyncs each file as
        // it is finished. One 50 MB fsync filled the disk's queue, and the committer's fsync
        // behind it took 20 ms or more; a flush now reaches the disk 4 MiB at a time.
        // (fjall keeps a keyspace's options from its creation: stores created before keep
        // 64 MiB blob files.)
        let kv = db.keyspace("kv", || {
            KeyspaceCreateOptions::default().with_kv_separation(Some(
                fjall::KvSeparationOptions::default().file_target_size(4 * 1024 * 1024),
            ))
        })?;
        let version = match kv.get(VERSION_KEY)? {
            Some(v) => decode_version(&v)?,
            None => 0,
        };
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                kv,
                commit_lock: Mutex::new(()),
                version: AtomicU64::new(version),
                injected_conflicts: AtomicU64::new(0),
            }),
        })
    }

    /// Makes the next `n` commits of [`TxnStore::transact`] fail as conflicts, as a busy
    /// FoundationDB cluster would, so tests can drive the retry and batch-splitting paths.
    /// (Transactions on this engine are serialised and never conflict on their own.)
    pub fn inject_conflicts(&self, n: u64) {
        self.inner.injected_conflicts.store(n, Ordering::Release);
    }

    /// Bytes the store occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.inner.db.disk_space().unwrap_or(0)
    }
}

fn decode_version(v: &[u8]) -> Result<Version, StoreError> {
    let bytes: [u8; 8] = v
        .try_into()
        .map_err(|_| StoreError::Engine("version record is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

fn check_user_key(key: &[u8]) -> Result<(), StoreError> {
    if key.first() == Some(&super::SYSTEM_PREFIX) {
        return Err(StoreError::InvalidWrite(
            "keys starting with 0xff are reserved".into(),
        ));
    }
    Ok(())
}

impl Store for EmbeddedStore {
    type Snapshot = EmbeddedSnapshot;

    fn snapshot(&self) -> Result<EmbeddedSnapshot, StoreError> {
        let snap = self.inner.db.snapshot();
        let version = match snap.get(&self.inner.kv, VERSION_KEY)? {
            Some(v) => decode_version(&v)?,
            None => 0,
        };
        Ok(EmbeddedSnapshot {
            snap,
            kv: self.inner.kv.clone(),
            version,
        })
    }

    fn commit(&self, writes: WriteSet, durability: Durability) -> Result<Version, StoreError> {
        let _guard = self
            .inner
            .commit_lock
            .lock()
            .expect("commit lock poisoned by a panic");
        self.commit_locked(writes, durability)
    }

    fn next_version(&self) -> Version {
        self.inner.version.load(Ordering::Acquire) + 1
    }
}

impl EmbeddedStore {
    /// Applies `writes` as the next version; the caller holds the commit lock.
    fn commit_locked(
        &self,
        writes: WriteSet,
        durability: Durability,
    ) -> Result<Version, StoreError> {
        let inner = &self.inner;
        let version = inner.version.load(Ordering::Acquire) + 1;
        let mut batch = inner.db.batch();
        if durability == Durability::Sync {
            batch = batch.durability(Some(PersistMode::SyncAll));
        }
        // Atomic adds read the latest value; later adds in the same set see earlier ones.
        let mut added: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut wide: Vec<(Vec<u8>, i128)> = Vec::new();
        for w in writes.writes {
            match w {
                Write::Set(k, v) => {
                    check_user_key(&k)?;
                    batch.insert(&inner.kv, k, v);
                }
                Write::Clear(k) => {
                    check_user_key(&k)?;
                    batch.remove(&inner.kv, k);
                }
                Write::ClearRange(b, e) => {
                    check_user_key(&b)?;
                    for kv in inner.kv.range(b..e) {
                        let key = kv.key()?;
                        if key.first() != Some(&super::SYSTEM_PREFIX) {
                            batch.remove(&inner.kv, key);
                        }
                    }
                }
                Write::Add(k, delta) => {
                    check_user_key(&k)?;
                    let current = match added.iter().find(|(key, _)| *key == k) {
                        Some((_, v)) => *v,
                        None => match inner.kv.get(&k)? {
                            Some(v) => le_i64(&v)?,
                            None => 0,
                        },
                    };
                    let next = current.wrapping_add(delta);
                    batch.insert(&inner.kv, k.clone(), next.to_le_bytes().to_vec());
                    match added.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = next,
                        None => added.push((k, next)),
                    }
                }
                Write::AddWide(k, delta) => {
                    check_user_key(&k)?;
                    let current = match wide.iter().find(|(key, _)| *key == k) {
                        Some((_, v)) => *v,
                        None => match inner.kv.get(&k)? {
                            Some(v) => le_i128(&v)?,
                            None => 0,
                        },
                    };
                    let next = current.wrapping_add(delta);
                    batch.insert(&inner.kv, k.clone(), next.to_le_bytes().to_vec());
                    match wide.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = next,
                        None => wide.push((k, next)),
                    }
                }
                Write::SetVersionstampedKey {
                    prefix,
                    order,
                    value,
                } => {
                    check_user_key(&prefix)?;
                    let mut key = prefix;
                    key.extend_from_slice(&version.to_be_bytes());
                    key.extend_from_slice(&0u16.to_be_bytes());
                    key.extend_from_slice(&order.to_be_bytes());
                    batch.insert(&inner.kv, key, value);
                }
            }
        }
        batch.insert(&inner.kv, VERSION_KEY, version.to_be_bytes().to_vec());
        batch.commit()?;
        inner.version.store(version, Ordering::Release);
        Ok(version)
    }
}

impl TxnStore for EmbeddedStore {
    /// Transactions hold the commit lock from first read to commit, so they are serialised:
    /// every read is current and none can conflict (except the ones [`Self::inject_conflicts`]
    /// asks for).
    fn transact<T, E: From<StoreError>>(
        &self,
        attempts: u32,
        body: &mut TxnBody<'_, T, E>,
    ) -> Result<(Version, T), E> {
        let inner = &self.inner;
        for _ in 0..attempts.max(1) {
            let _guard = inner
                .commit_lock
                .lock()
                .expect("commit lock poisoned by a panic");
            let txn = EmbeddedTxn {
                kv: &inner.kv,
                version: inner.version.load(Ordering::Acquire),
            };
            let (writes, out) = body(&txn)?;
            let injected = inner
                .injected_conflicts
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
            if injected {
                continue;
            }
            let version = self.commit_locked(writes, Durability::Sync)?;
            return Ok((version, out));
        }
        Err(StoreError::Conflict(format!("gave up after {} attempts", attempts.max(1))).into())
    }
}

/// The reads of one embedded transaction: the latest committed data, under the commit lock.
struct EmbeddedTxn<'a> {
    kv: &'a Keyspace,
    version: Version,
}

impl Txn for EmbeddedTxn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.kv.get(key)?.map(|v| v.to_vec()))
    }

    fn range_snapshot(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        if begin >= end {
            return Ok(Vec::new());
        }
        collect_range(self.kv.range(begin..end), limit, false)
    }

    fn read_version(&self) -> Version {
        self.version
    }
}

fn le_i64(v: &[u8]) -> Result<i64, StoreError> {
    let bytes: [u8; 8] = v.try_into().map_err(|_| {
        StoreError::InvalidWrite(format!(
            "atomic add on a {}-byte value; expected 8",
            v.len()
        ))
    })?;
    Ok(i64::from_le_bytes(bytes))
}

fn le_i128(v: &[u8]) -> Result<i128, StoreError> {
    let bytes: [u8; 16] = v.try_into().map_err(|_| {
        StoreError::InvalidWrite(format!(
            "wide atomic add on a {}-byte value; expected 16",
            v.len()
        ))
    })?;
    Ok(i128::from_le_bytes(bytes))
}

/// Up to `limit` user pairs (system keys skipped) from a fjall range, ascending or descending.
fn collect_range(
    iter: impl DoubleEndedIterator<Item = fjall::Guard>,
    limit: usize,
    reverse: bool,
) -> Result<Vec<KeyValue>, StoreError> {
    let mut out = Vec::new();
    let mut push = |g: fjall::Guard| -> Result<bool, StoreError> {
        let (k, v) = g.into_inner()?;
        if k.first() != Some(&super::SYSTEM_PREFIX) {
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out.len() < limit)
    };
    if reverse {
        for g in iter.rev() {
            if !push(g)? {
                break;
            }
        }
    } else {
        for g in iter {
            if !push(g)? {
                break;
            }
        }
    }
    Ok(out)
}

/// A point-in-time view of an [`EmbeddedStore`].
pub struct EmbeddedSnapshot {
    snap: fjall::Snapshot,
    kv: Keyspace,
    version: Version,
}

impl Snapshot for EmbeddedSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.snap.get(&self.kv, key)?.map(|v| v.to_vec()))
    }

    fn get_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, StoreError> {
        Ok(match self.snap.get(&self.kv, key)? {
            Some(v) => {
                f(&v);
                true
            }
            None => false,
        })
    }

    fn range(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>, StoreError> {
        if begin >= end {
            return Ok(Vec::new());
        }
        collect_range(self.snap.range(&self.kv, begin..end), limit, reverse)
    }

    fn scan(
        &self,
        begin: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if begin >= end {
            return Ok(());
        }
        for g in self.snap.range(&self.kv, begin..end) {
            let (k, v) = g.into_inner()?;
            if k.first() == Some(&super::SYSTEM_PREFIX) {
                continue;
            }
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn version(&self) -> Version {
        self.version
    }
}
