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
use fjall::{AbstractTree, Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
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
    /// Optimistic transactions (see [`EmbeddedStore::set_optimistic`]).
    optimistic: std::sync::atomic::AtomicBool,
    /// In optimistic mode, the keys each recent transaction wrote, by commit version.
    recent: Mutex<std::collections::VecDeque<(Version, Vec<Vec<u8>>)>>,
    /// Transaction attempts refused as conflicts, and transactions committed.
    conflicts: AtomicU64,
    committed: AtomicU64,
    /// The latest memtables, kept alive past fjall's own use of them.
    memtables: Mutex<Memtables>,
}

/// How many of the latest memtables the store keeps alive (the active one among them).
const MEMTABLES_KEPT: usize = 3;

/// A memtable, kept only to be dropped later.
type Held = Arc<dyn std::any::Any + Send + Sync>;

/// The latest memtables, so that each is freed on the store's own reaper thread rather than
/// under fjall's lock.
///
/// When fjall rotates a memtable it also forgets old versions of the tree, under the lock every
/// write and read takes; the version that held the last reference to the previous memtable
/// frees it there. Freeing a 64 MiB memtable of small entries took 20 ms of one core here, and
/// for those 20 ms the writer, syncer and projector all waited (a 21 ms stall of every commit
/// once per memtable, `docs/benchmarks.md`). Holding each memtable until two more have become
/// active means fjall's reference is never the last one: the reaper drops it, and nothing
/// waits. The cost is one more memtable held for one more rotation (at most 64 MiB).
struct Memtables {
    /// By memtable id, oldest first.
    held: std::collections::VecDeque<(u64, Held)>,
    /// To the reaper thread, which drops what it is sent.
    reaper: Option<std::sync::mpsc::Sender<Held>>,
}

impl Memtables {
    /// Starts the reaper thread.
    fn start() -> Memtables {
        let (tx, rx) = std::sync::mpsc::channel::<Held>();
        let started = std::thread::Builder::new()
            .name("ledger-reaper".into())
            .spawn(move || {
                for memtable in rx {
                    drop(memtable);
                }
            });
        Memtables {
            held: Default::default(),
            // Without the thread, old memtables are dropped where fjall drops them.
            reaper: started.ok().map(|_| tx),
        }
    }

    /// Notes the memtable active now (`id`), and hands the oldest kept to the reaper once more
    /// than [`MEMTABLES_KEPT`] have been seen.
    fn note(&mut self, id: u64, memtable: impl FnOnce() -> Held) {
        let Some(reaper) = &self.reaper else { return };
        if self.held.back().is_some_and(|(last, _)| *last == id) {
            return;
        }
        self.held.push_back((id, memtable()));
        while self.held.len() > MEMTABLES_KEPT {
            let (_, oldest) = self.held.pop_front().expect("more than kept");
            let _ = reaper.send(oldest);
        }
    }
}

/// Recent transactions an optimistic transaction's reads are checked against; one that began
/// before the oldest of them conflicts (FoundationDB's `transaction_too_old`, in spirit).
const RECENT_COMMITS: usize = 4_096;

/// The longest [`EmbeddedStore::settle`] waits for compactions.
pub const SETTLE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        StoreError::Engine(e.to_string())
    }
}

/// Settings of the embedded engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Bytes of the block cache: blocks and blob values read back (member pages, idempotency
    /// chunks, records). The process's memory holds this much once enough has been read, plus
    /// the memtables (up to three of 64 MiB) and what the ledger keeps in its windows.
    pub cache_bytes: u64,
}

impl EmbeddedOptions {
    /// The block cache's size unless configured: 256 MiB.
    pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            cache_bytes: EmbeddedOptions::DEFAULT_CACHE_BYTES,
        }
    }
}

/// What the embedded engine holds in memory, by its own accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineMemory {
    /// Bytes in the block cache now.
    pub cache_bytes: u64,
    /// The block cache's capacity.
    pub cache_capacity: u64,
    /// Bytes in memtables, the active one and those sealed and waiting for their flush.
    pub memtable_bytes: u64,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in directory `path`, with the default settings.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::open_with(path, EmbeddedOptions::default())
    }

    /// Opens (or creates) the store in directory `path`.
    pub fn open_with(path: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore, StoreError> {
        let db = Database::builder(path)
            // The ledger fsyncs explicitly on every durable commit.
            .manual_journal_persist(true)
            // fjall's write-ahead log is written once and fsynced at once: compressing it would
            // cost the writer's thread CPU on the commit path (flushed tables still compress).
            .journal_compression(fjall::CompressionType::None)
            .cache_size(options.cache_bytes)
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
                optimistic: std::sync::atomic::AtomicBool::new(false),
                recent: Mutex::new(std::collections::VecDeque::new()),
                conflicts: AtomicU64::new(0),
                committed: AtomicU64::new(0),
                memtables: Mutex::new(Memtables::start()),
            }),
        })
    }

    /// Makes the next `n` commits of [`TxnStore::transact`] fail as conflicts, as a busy
    /// FoundationDB cluster would, so tests can drive the retry and batch-splitting paths.
    /// (Transactions on this engine are serialised and never conflict on their own.)
    pub fn inject_conflicts(&self, n: u64) {
        self.inner.injected_conflicts.store(n, Ordering::Release);
    }

    /// Runs transactions as FoundationDB does: bodies concurrently, without the commit lock,
    /// and at commit each key a body read with [`Txn::get`] is checked against the keys
    /// transactions committed since it began; one written meanwhile makes a conflict, and the
    /// attempt runs again. For measuring how often the cluster path's transactions conflict
    /// with several writers; by default transactions are serialised and never conflict. (Plain
    /// [`Store::commit`]s are not checked against: only transactions are.)
    pub fn set_optimistic(&self, on: bool) {
        self.inner.optimistic.store(on, Ordering::Release);
    }

    /// Transaction attempts refused as conflicts, and transactions committed, so far.
    pub fn transaction_counts(&self) -> (u64, u64) {
        (
            self.inner.conflicts.load(Ordering::Relaxed),
            self.inner.committed.load(Ordering::Relaxed),
        )
    }

    /// Bytes the store occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.inner.db.disk_space().unwrap_or(0)
    }

    /// Writes what the active memtable holds to tables now, then waits for the compactions that
    /// follow to finish: for the end of a bulk load (the demo's seed), so that the
    /// background work of what it wrote happens before traffic rather than in its first
    /// seconds. A memtable is flushed when full in any case; this only chooses when. Returns at
    /// once for an empty memtable, and stops waiting after [`SETTLE_WAIT_MAX`].
    pub fn settle(&self) -> Result<(), StoreError> {
        let kv = &self.inner.kv;
        if kv.tree.active_memtable().is_empty() {
            return Ok(());
        }
        kv.rotate_memtable_and_wait()?;
        // A flush hands compaction requests to the workers as it ends: quiet means no flush
        // queued and no compaction running for several polls in a row.
        let db = &self.inner.db;
        let deadline = std::time::Instant::now() + SETTLE_WAIT_MAX;
        let mut quiet = 0;
        while quiet < 5 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            if db.outstanding_flushes() == 0 && db.active_compactions() == 0 {
                quiet += 1;
            } else {
                quiet = 0;
            }
        }
        Ok(())
    }

    /// What the engine holds in memory, by its own accounting.
    pub fn memory(&self) -> EngineMemory {
        let db = &self.inner.db;
        EngineMemory {
            cache_bytes: db.cache_size(),
            cache_capacity: db.cache_capacity(),
            memtable_bytes: db.write_buffer_size(),
        }
    }

    /// What the embedded engine holds in memory and how far behind its background work is,
    /// one line for benches that watch a long-running process: memtable bytes, sealed
    /// memtables, block cache bytes, tables, blob files, journals, tree versions kept for open
    /// snapshots, and snapshot instants tracked.
    pub fn engine_report(&self) -> String {
        let db = &self.inner.db;
        let kv = &self.inner.kv;
        format!(
            "memtables {} MB ({} sealed), cache {} MB, {} tables, {} blob files, {} journals, {} old versions, {} snapshot instants",
            db.write_buffer_size() / 1_000_000,
            kv.sealed_memtable_count(),
            db.cache_size() / 1_000_000,
            kv.table_count(),
            kv.blob_file_count(),
            db.journal_count(),
            kv.tree.version_free_list_len(),
            db.supervisor.snapshot_tracker.len(),
        )
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
                    let key = super::versionstamped_key(prefix, version, order);
                    batch.insert(&inner.kv, key, value);
                }
            }
        }
        batch.insert(&inner.kv, VERSION_KEY, version.to_be_bytes().to_vec());
        batch.commit()?;
        inner.version.store(version, Ordering::Release);
        let active = inner.kv.tree.active_memtable();
        inner
            .memtables
            .lock()
            .expect("memtables lock poisoned by a panic")
            .note(active.id(), move || active);
        Ok(version)
    }
}

impl TxnStore for EmbeddedStore {
    /// Serialised by default: transactions hold the commit lock from first read to commit, so
    /// every read is current and none can conflict (except the ones
    /// [`Self::inject_conflicts`] asks for). Optimistic with [`Self::set_optimistic`].
    fn transact<T, E: From<StoreError>>(
        &self,
        attempts: u32,
        body: &mut TxnBody<'_, T, E>,
    ) -> Result<(Version, T), E> {
        let inner = &self.inner;
        let optimistic = inner.optimistic.load(Ordering::Acquire);
        for _ in 0..attempts.max(1) {
            let serial = (!optimistic).then(|| {
                inner
                    .commit_lock
                    .lock()
                    .expect("commit lock poisoned by a panic")
            });
            let txn = EmbeddedTxn {
                kv: &inner.kv,
                version: inner.version.load(Ordering::Acquire),
                reads: optimistic.then(|| Mutex::new(Vec::new())),
            };
            let (writes, out) = body(&txn)?;
            let _guard = match serial {
                Some(g) => g,
                None => inner
                    .commit_lock
                    .lock()
                    .expect("commit lock poisoned by a panic"),
            };
            let injected = inner
                .injected_conflicts
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
            if injected || (optimistic && self.conflicts_with_recent(&txn)) {
                inner.conflicts.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let written: Vec<Vec<u8>> = if optimistic {
                writes.writes.iter().filter_map(written_key).collect()
            } else {
                Vec::new()
            };
            let version = self.commit_locked(writes, Durability::Sync)?;
            inner.committed.fetch_add(1, Ordering::Relaxed);
            if optimistic {
                let mut recent = inner.recent.lock().expect("recent commits");
                if recent.len() == RECENT_COMMITS {
                    recent.pop_front();
                }
                recent.push_back((version, written));
            }
            return Ok((version, out));
        }
        Err(StoreError::Conflict(format!("gave up after {} attempts", attempts.max(1))).into())
    }
}

impl EmbeddedStore {
    /// Whether a transaction committed after `txn` began wrote a key `txn` read (under the
    /// commit lock).
    fn conflicts_with_recent(&self, txn: &EmbeddedTxn<'_>) -> bool {
        let reads = txn
            .reads
            .as_ref()
            .map(|r| r.lock().expect("reads").clone())
            .unwrap_or_default();
        let recent = self.inner.recent.lock().expect("recent commits");
        if recent.front().is_some_and(|(v, _)| *v > txn.version + 1)
            && recent.len() == RECENT_COMMITS
        {
            return true;
        }
        recent
            .iter()
            .filter(|(v, _)| *v > txn.version)
            .any(|(_, keys)| keys.iter().any(|k| reads.contains(k)))
    }
}

/// The key a write changes, for conflict checks (a range clear names its start).
fn written_key(w: &Write) -> Option<Vec<u8>> {
    match w {
        Write::Set(k, _) | Write::Clear(k) | Write::Add(k, _) | Write::AddWide(k, _) => {
            Some(k.clone())
        }
        Write::ClearRange(b, _) => Some(b.clone()),
        Write::SetVersionstampedKey { .. } => None,
    }
}

/// The reads of one embedded transaction: the latest committed data (under the commit lock,
/// or in optimistic mode checked at commit).
struct EmbeddedTxn<'a> {
    kv: &'a Keyspace,
    version: Version,
    /// Keys read, in optimistic mode.
    reads: Option<Mutex<Vec<Vec<u8>>>>,
}

impl Txn for EmbeddedTxn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(r) = &self.reads {
            r.lock().expect("reads").push(key.to_vec());
        }
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

pub(super) fn le_i64(v: &[u8]) -> Result<i64, StoreError> {
    let bytes: [u8; 8] = v.try_into().map_err(|_| {
        StoreError::InvalidWrite(format!(
            "atomic add on a {}-byte value; expected 8",
            v.len()
        ))
    })?;
    Ok(i64::from_le_bytes(bytes))
}

pub(super) fn le_i128(v: &[u8]) -> Result<i128, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each memtable is held until two newer ones have become active, then dropped on the
    /// reaper thread, never on the committing one.
    #[test]
    fn memtables_are_kept_past_two_rotations_and_freed_by_the_reaper() {
        struct Table(std::sync::mpsc::Sender<(u64, String)>, u64);
        impl Drop for Table {
            fn drop(&mut self) {
                let thread = std::thread::current().name().unwrap_or("").to_string();
                let _ = self.0.send((self.1, thread));
            }
        }
        let (dropped_tx, dropped) = std::sync::mpsc::channel();
        let mut kept = Memtables::start();
        let mut made = 0;
        // Many commits see each memtable; only the first of them keeps it.
        for id in [1, 1, 1, 2, 2, 3, 3, 3, 4, 5] {
            kept.note(id, || {
                made += 1;
                Arc::new(Table(dropped_tx.clone(), id))
            });
        }
        assert_eq!(made, 5);
        assert_eq!(
            kept.held.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        let freed: Vec<(u64, String)> = (0..2)
            .map(|_| {
                dropped
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .expect("the reaper frees the oldest")
            })
            .collect();
        assert_eq!(
            freed,
            [
                (1, "ledger-reaper".to_string()),
                (2, "ledger-reaper".to_string())
            ]
        );
        assert!(dropped.try_recv().is_err(), "nothing else freed yet");
    }

    /// Settling leaves the active memtable empty, nothing sealed and no compaction running,
    /// puts what was written in a table, and keeps it readable; on an empty memtable it makes
    /// no table.
    #[test]
    fn settle_writes_the_active_memtable_to_a_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let mut w = WriteSet::default();
        for i in 0..1_000u32 {
            w.set(&i.to_be_bytes(), b"value");
        }
        store.commit(w, Durability::Sync).expect("commit");
        let kv = &store.inner.kv;
        assert_eq!(kv.table_count(), 0);
        assert!(!kv.tree.active_memtable().is_empty());
        store.settle().expect("settle");
        assert!(kv.tree.active_memtable().is_empty());
        assert_eq!(kv.sealed_memtable_count(), 0);
        assert_eq!(store.inner.db.outstanding_flushes(), 0);
        assert_eq!(store.inner.db.active_compactions(), 0);
        let tables = kv.table_count();
        assert!(tables > 0, "the memtable's entries are in a table");
        let snap = store.snapshot().expect("snapshot");
        assert_eq!(
            snap.get(&7u32.to_be_bytes()).expect("read").as_deref(),
            Some(&b"value"[..])
        );
        store.settle().expect("settle with an empty memtable");
        assert_eq!(kv.table_count(), tables, "nothing to write, no table made");
    }

    fn held_ids(store: &EmbeddedStore) -> Vec<u64> {
        let kept = store.inner.memtables.lock().expect("lock");
        kept.held.iter().map(|(id, _)| *id).collect()
    }

    /// The store notes fjall's active memtable at every commit: after each rotation it holds
    /// the new one, and never more than three.
    #[test]
    fn commits_keep_the_latest_three_memtables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let mut seen = Vec::new();
        for i in 0..6u8 {
            let mut w = WriteSet::default();
            w.set(b"k", &[i]);
            store.commit(w, Durability::Sync).expect("commit");
            let held = held_ids(&store);
            assert!(held.len() <= MEMTABLES_KEPT);
            let active = store.inner.kv.tree.active_memtable().id();
            assert_eq!(held.last(), Some(&active));
            seen.push(active);
            assert!(store.inner.kv.rotate_memtable().expect("rotates"));
        }
        seen.dedup();
        assert_eq!(seen.len(), 6, "each commit saw a new memtable: {seen:?}");
        let held = held_ids(&store);
        assert_eq!(held, seen[3..]);
    }
}
