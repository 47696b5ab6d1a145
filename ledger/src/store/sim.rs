//! The simulated store of the deterministic simulation (`ledger/tests/simulation.rs`), in the
//! manner of TigerBeetle's VOPR and FoundationDB's simulated disk: an ordered, versioned key
//! space in memory whose "disk" is a log of commit records, and a seeded generator that
//! decides, operation by operation, the faults a machine and its disk produce:
//!
//! - the process dies before an operation (a crash at any step), or just after a durable
//!   commit reached the disk and before the caller heard of it;
//! - a durable commit's fsync fails, and the commit may or may not be on the disk;
//! - a read fails its engine checksum (the embedded engine checksums its blocks, and reports
//!   such a read as an error);
//! - a read returns a value with one bit flipped, on keys the simulation names (the ledger's
//!   journal blocks, which carry their own check);
//! - an operation is slow.
//!
//! [`SimStore::crash`] gives what survives on the disk: every synced record, and a prefix of
//! the records written after the last fsync chosen by the generator: all of them, none, or a
//! cut through the middle of one (a torn last write). [`SimStore::recover`] reads the disk
//! back as an engine does its write-ahead log: each record carries a checksum, and a torn last
//! record is dropped, so commits stay atomic.
//!
//! Everything comes from one seed: the same seed and the same sequence of operations give the
//! same faults, and [`SimStore::trace`] fingerprints the operations so that a test can check a
//! run repeated itself. For tests only; never chosen by configuration. It keeps every version
//! of every key (runs are short).

use super::{
    xorshift64star as next, Durability, KeyValue, Snapshot, Store, StoreError, Txn, TxnBody,
    TxnStore, Version, Write, WriteSet, SYSTEM_PREFIX,
};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often each fault hits an operation, in parts per million.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimFaults {
    /// The process dies before the operation.
    pub crash: u32,
    /// A durable commit reaches the disk, then the process dies before it returns.
    pub crash_after_sync: u32,
    /// A durable commit's fsync fails; whether the commit is on the disk is drawn too.
    pub fsync_error: u32,
    /// A read fails its checksum in the engine and returns an error.
    pub read_error: u32,
    /// A read of a value under [`SimStore::flip_values_under`] returns it with one bit
    /// flipped (silent corruption the engine did not catch).
    pub flip: u32,
    /// The operation takes [`SimFaults::slow_us`] longer.
    pub slow: u32,
    /// How much longer a slow operation takes, in microseconds.
    pub slow_us: u32,
    /// A read-write transaction's commit conflicts (FoundationDB's `not_committed`), and
    /// [`TxnStore::transact`] runs its body again.
    pub conflict: u32,
}

/// What the generator injected, and what crashes cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCounts {
    /// Operations run.
    pub ops: u64,
    /// Crashes before an operation.
    pub crashes: u64,
    /// Crashes after a durable commit reached the disk.
    pub crashes_after_sync: u64,
    /// Failed fsyncs whose commit reached the disk.
    pub fsync_errors_landed: u64,
    /// Failed fsyncs whose commit did not.
    pub fsync_errors_lost: u64,
    /// Reads failed by their checksum.
    pub read_errors: u64,
    /// Reads returned with a flipped bit.
    pub flips: u64,
    /// Slow operations.
    pub slow: u64,
    /// Commits written after the last fsync and lost by a crash.
    pub lost_unsynced: u64,
    /// Crashes that tore the last record on the disk.
    pub torn: u64,
    /// Transaction commits refused as conflicts.
    pub conflicts: u64,
    /// Transaction commits whose fsync failed, retried as an unknown result.
    pub unknown_results: u64,
}

/// What survived a crash: the disk's bytes.
#[derive(Debug, Clone)]
pub struct SimDisk {
    bytes: Vec<u8>,
    counts: SimCounts,
    rng: u64,
    trace: u64,
    label: u64,
}

/// One resolved write of a commit record.
#[derive(Debug, Clone)]
enum Effect {
    Set(Vec<u8>, Arc<[u8]>),
    Clear(Vec<u8>),
    ClearRange(Vec<u8>, Vec<u8>),
}

/// Every version of each key: `(version, value)`, oldest first; `None` is a removal.
type Versions = Vec<(Version, Option<Arc<[u8]>>)>;

struct Sim {
    data: BTreeMap<Vec<u8>, Versions>,
    version: Version,
    /// The disk: commit records, each `[length u32][xxh3 u64][version u64][effects]`.
    log: Vec<u8>,
    /// Bytes of `log` an fsync made durable.
    synced: usize,
    faults: SimFaults,
    rng: u64,
    dead: bool,
    flip_prefix: Option<Vec<u8>>,
    trace: u64,
    counts: SimCounts,
    /// The seed the store was made with, kept across crashes (names it in traces).
    label: u64,
}

/// The simulated store. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct SimStore {
    sim: Arc<Mutex<Sim>>,
}

/// A snapshot of the simulated store at one version.
pub struct SimSnapshot {
    sim: Arc<Mutex<Sim>>,
    version: Version,
}

/// The fault one operation gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Crash,
    CrashAfterSync,
    FsyncError,
    ReadError,
    Flip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Snapshot,
    Read,
    Commit(Durability),
}

fn dead() -> StoreError {
    StoreError::Engine("simulated crash: the process is gone".into())
}

impl Sim {
    fn empty(faults: SimFaults, rng: u64) -> Sim {
        Sim {
            data: BTreeMap::new(),
            version: 0,
            log: Vec::new(),
            synced: 0,
            faults,
            rng: rng.max(1),
            dead: false,
            flip_prefix: None,
            trace: 0xcbf2_9ce4_8422_2325,
            counts: SimCounts::default(),
            label: rng,
        }
    }

    fn note(&mut self, tag: u8, bytes: &[u8]) {
        let mut h = xxhash_rust::xxh3::xxh3_64(bytes);
        h ^= u64::from(tag);
        self.trace = (self.trace ^ h).wrapping_mul(0x0100_0000_01b3);
    }

    /// Runs the generator for one operation: the fault it gets, after any slowness.
    fn draw(&mut self, op: Op) -> Result<Fault, StoreError> {
        if self.dead {
            return Err(dead());
        }
        self.counts.ops += 1;
        if let Some(which) = std::env::var_os("SIM_TRACE_OPS") {
            // Every operation of the stores made with the seeds named (or `all`), with the
            // thread that made it: two runs of a seed that differ show where.
            let which = which.to_string_lossy();
            if which == "all" || which.split(',').any(|x| x.parse() == Ok(self.label)) {
                let thread = std::thread::current();
                let name = thread.name().unwrap_or("caller");
                eprintln!("OP[{}] {} {op:?} {name}", self.label, self.counts.ops);
            }
        }
        let f = self.faults;
        let roll = |x: &mut u64| (next(x) >> 11) % 1_000_000;
        if f.slow > 0 && roll(&mut self.rng) < u64::from(f.slow) {
            self.counts.slow += 1;
            std::thread::sleep(Duration::from_micros(u64::from(f.slow_us)));
        }
        let r = roll(&mut self.rng);
        let mut at = 0u64;
        let mut hit = |p: u32| {
            at += u64::from(p);
            r < at
        };
        if hit(f.crash) {
            self.dead = true;
            self.counts.crashes += 1;
            return Ok(Fault::Crash);
        }
        Ok(match op {
            Op::Commit(Durability::Sync) if hit(f.crash_after_sync) => Fault::CrashAfterSync,
            Op::Commit(Durability::Sync) if hit(f.fsync_error) => Fault::FsyncError,
            Op::Read if hit(f.read_error) => Fault::ReadError,
            Op::Read if hit(f.flip) => Fault::Flip,
            _ => Fault::None,
        })
    }

    /// Whether a transaction's commit conflicts (drawn before the commit's own operation).
    fn conflicts(&mut self) -> bool {
        let p = u64::from(self.faults.conflict);
        let hit = p > 0 && (next(&mut self.rng) >> 11) % 1_000_000 < p;
        self.counts.conflicts += u64::from(hit);
        hit
    }

    fn value_at(&self, key: &[u8], version: Version) -> Option<Arc<[u8]>> {
        visible(self.data.get(key)?, version)
    }

    /// Resolves `writes` against the latest version into the effects of one record.
    fn resolve(&self, writes: WriteSet, version: Version) -> Result<Vec<Effect>, StoreError> {
        let mut effects: Vec<Effect> = Vec::with_capacity(writes.writes.len());
        let current = |effects: &[Effect], k: &[u8]| -> Option<Arc<[u8]>> {
            for e in effects.iter().rev() {
                match e {
                    Effect::Set(key, v) if key == k => return Some(v.clone()),
                    Effect::Clear(key) if key == k => return None,
                    Effect::ClearRange(b, e) if b.as_slice() <= k && k < e.as_slice() => {
                        return None
                    }
                    _ => {}
                }
            }
            self.value_at(k, self.version)
        };
        for w in writes.writes {
            match w {
                Write::Set(k, v) => {
                    user_key(&k)?;
                    effects.push(Effect::Set(k, v[..].into()));
                }
                Write::Clear(k) => {
                    user_key(&k)?;
                    effects.push(Effect::Clear(k));
                }
                Write::ClearRange(b, e) => {
                    user_key(&b)?;
                    effects.push(Effect::ClearRange(b, e));
                }
                Write::Add(k, delta) => {
                    user_key(&k)?;
                    let now = match current(&effects, &k) {
                        Some(v) => super::embedded::le_i64(&v)?,
                        None => 0,
                    };
                    let next = now.wrapping_add(delta).to_le_bytes();
                    effects.push(Effect::Set(k, next.as_slice().into()));
                }
                Write::AddWide(k, delta) => {
                    user_key(&k)?;
                    let now = match current(&effects, &k) {
                        Some(v) => super::embedded::le_i128(&v)?,
                        None => 0,
                    };
                    let next = now.wrapping_add(delta).to_le_bytes();
                    effects.push(Effect::Set(k, next.as_slice().into()));
                }
                Write::SetVersionstampedKey {
                    prefix,
                    order,
                    value,
                } => {
                    user_key(&prefix)?;
                    let key = super::versionstamped_key(prefix, version, order);
                    effects.push(Effect::Set(key, value.into()));
                }
            }
        }
        Ok(effects)
    }

    fn apply(&mut self, version: Version, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Set(k, v) => self
                    .data
                    .entry(k.clone())
                    .or_default()
                    .push((version, Some(v.clone()))),
                Effect::Clear(k) => {
                    if let Some(vs) = self.data.get_mut(k) {
                        vs.push((version, None));
                    }
                }
                Effect::ClearRange(b, e) => {
                    let range = (Bound::Included(b.clone()), Bound::Excluded(e.clone()));
                    for (_, vs) in self.data.range_mut::<Vec<u8>, _>(range) {
                        if vs.last().is_some_and(|(_, v)| v.is_some()) {
                            vs.push((version, None));
                        }
                    }
                }
            }
        }
        self.version = version;
    }

    fn append(&mut self, version: Version, effects: &[Effect]) {
        let payload = encode_record(version, effects);
        self.note(b'c', &payload);
        self.log
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.log
            .extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
        self.log.extend_from_slice(&payload);
    }

    fn commit(&mut self, writes: WriteSet, durability: Durability) -> Result<Version, StoreError> {
        self.commit_or_unknown(writes, durability)?
            .ok_or_else(|| StoreError::Engine("simulated fsync failure".into()))
    }

    /// A commit; `Ok(None)` when its fsync failed, and whether it is on the disk is unknown to
    /// the caller (the generator decided).
    fn commit_or_unknown(
        &mut self,
        writes: WriteSet,
        durability: Durability,
    ) -> Result<Option<Version>, StoreError> {
        let fault = self.draw(Op::Commit(durability))?;
        if fault == Fault::Crash {
            return Err(dead());
        }
        let version = self.version + 1;
        let effects = self.resolve(writes, version)?;
        match fault {
            Fault::FsyncError => {
                // The commit may or may not be on the disk: the write reached the page cache,
                // the fsync failed, and whether the pages were written is unknown.
                if next(&mut self.rng) & 1 == 1 {
                    self.counts.fsync_errors_landed += 1;
                    self.append(version, &effects);
                    self.synced = self.log.len();
                    self.apply(version, &effects);
                } else {
                    self.counts.fsync_errors_lost += 1;
                }
                Ok(None)
            }
            Fault::CrashAfterSync => {
                self.append(version, &effects);
                self.synced = self.log.len();
                self.apply(version, &effects);
                self.dead = true;
                self.counts.crashes_after_sync += 1;
                Err(dead())
            }
            _ => {
                self.append(version, &effects);
                if durability == Durability::Sync {
                    self.synced = self.log.len();
                }
                self.apply(version, &effects);
                Ok(Some(version))
            }
        }
    }

    /// A read's fault: an error, or the value with a bit flipped if it is under the prefix.
    fn read_fault(&mut self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        self.note(b'r', key);
        match self.draw(Op::Read)? {
            Fault::Crash => Err(dead()),
            Fault::ReadError => {
                self.counts.read_errors += 1;
                Err(StoreError::Engine(
                    "simulated corrupted block: checksum mismatch".into(),
                ))
            }
            Fault::Flip => Ok(Some(next(&mut self.rng))),
            _ => Ok(None),
        }
    }

    fn flip(&mut self, key: &[u8], value: &mut [u8], bit: u64) {
        let under = self
            .flip_prefix
            .as_deref()
            .is_some_and(|p| key.starts_with(p));
        if under && !value.is_empty() {
            let at = (bit as usize / 8) % value.len();
            value[at] ^= 1 << (bit % 8);
            self.counts.flips += 1;
        }
    }
}

fn visible(vs: &Versions, version: Version) -> Option<Arc<[u8]>> {
    vs.iter()
        .rev()
        .find(|(v, _)| *v <= version)
        .and_then(|(_, value)| value.clone())
}

fn user_key(key: &[u8]) -> Result<(), StoreError> {
    if key.first() == Some(&SYSTEM_PREFIX) {
        return Err(StoreError::InvalidWrite(
            "keys starting with 0xff are reserved".into(),
        ));
    }
    Ok(())
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode_record(version: Version, effects: &[Effect]) -> Vec<u8> {
    let mut out = version.to_le_bytes().to_vec();
    for e in effects {
        match e {
            Effect::Set(k, v) => {
                out.push(0);
                put(&mut out, k);
                put(&mut out, v);
            }
            Effect::Clear(k) => {
                out.push(1);
                put(&mut out, k);
            }
            Effect::ClearRange(b, e) => {
                out.push(2);
                put(&mut out, b);
                put(&mut out, e);
            }
        }
    }
    out
}

fn decode_record(bytes: &[u8]) -> Option<(Version, Vec<Effect>)> {
    let version = Version::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let mut at = 8;
    let take = |at: &mut usize| -> Option<Vec<u8>> {
        let n = u32::from_le_bytes(bytes.get(*at..*at + 4)?.try_into().ok()?) as usize;
        let v = bytes.get(*at + 4..*at + 4 + n)?.to_vec();
        *at += 4 + n;
        Some(v)
    };
    let mut effects = Vec::new();
    while at < bytes.len() {
        let tag = bytes[at];
        at += 1;
        effects.push(match tag {
            0 => Effect::Set(take(&mut at)?, take(&mut at)?.into()),
            1 => Effect::Clear(take(&mut at)?),
            2 => Effect::ClearRange(take(&mut at)?, take(&mut at)?),
            _ => return None,
        });
    }
    Some((version, effects))
}

impl SimStore {
    /// An empty store whose faults come from `seed`.
    pub fn new(faults: SimFaults, seed: u64) -> SimStore {
        SimStore {
            sim: Arc::new(Mutex::new(Sim::empty(faults, seed))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().expect("simulated store")
    }

    /// Changes the fault rates from now on.
    pub fn set_faults(&self, faults: SimFaults) {
        self.lock().faults = faults;
    }

    /// Reads of values whose keys start with `prefix` may come back with a bit flipped
    /// ([`SimFaults::flip`]).
    pub fn flip_values_under(&self, prefix: &[u8]) {
        self.lock().flip_prefix = Some(prefix.to_vec());
    }

    /// Whether the simulated process died (every operation now fails).
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// What was injected so far, over this store and the ones it was recovered from.
    pub fn counts(&self) -> SimCounts {
        self.lock().counts
    }

    /// A fingerprint of every operation so far: the same seed and workload give the same one.
    pub fn trace(&self) -> u64 {
        self.lock().trace
    }

    /// The process dies (if it has not) and the disk is read as it stands: every synced
    /// record, then, of the records written after the last fsync, all, none, or a prefix cut
    /// anywhere, through the middle of a record too (a torn write), as the generator draws.
    pub fn crash(&self) -> SimDisk {
        let mut s = self.lock();
        s.dead = true;
        let unsynced = s.log.len() - s.synced;
        let cut = match next(&mut s.rng) % 3 {
            0 => s.log.len(),
            1 => s.synced,
            _ => s.synced + (next(&mut s.rng) % (unsynced as u64 + 1)) as usize,
        };
        let mut counts = s.counts;
        let (whole, torn) = records_in(&s.log[s.synced..cut]);
        counts.lost_unsynced += (records_in(&s.log[s.synced..]).0 - whole) as u64;
        counts.torn += u64::from(torn);
        let mut bytes = s.log[..cut].to_vec();
        bytes.shrink_to_fit();
        let rng = next(&mut s.rng);
        SimDisk {
            bytes,
            counts,
            rng,
            trace: s.trace,
            label: s.label,
        }
    }

    /// A new process's store, read from `disk` as an engine reads its write-ahead log: records
    /// in order while each is whole and its checksum holds; a torn last one is dropped.
    pub fn recover(disk: SimDisk, faults: SimFaults) -> SimStore {
        let mut s = Sim::empty(faults, disk.rng);
        let mut at = 0;
        while let Some((len, sum)) = header(&disk.bytes[at..]) {
            let Some(payload) = disk.bytes.get(at + 12..at + 12 + len) else {
                break;
            };
            if xxhash_rust::xxh3::xxh3_64(payload) != sum {
                break;
            }
            let Some((version, effects)) = decode_record(payload) else {
                break;
            };
            s.apply(version, &effects);
            at += 12 + len;
        }
        s.log = disk.bytes[..at].to_vec();
        s.synced = at;
        s.counts = disk.counts;
        s.trace = disk.trace;
        s.label = disk.label;
        SimStore {
            sim: Arc::new(Mutex::new(s)),
        }
    }
}

fn header(bytes: &[u8]) -> Option<(usize, u64)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let sum = u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
    Some((len, sum))
}

/// Whole records in `bytes`, and whether a partial one follows them.
fn records_in(bytes: &[u8]) -> (usize, bool) {
    let (mut n, mut at) = (0, 0);
    while let Some((len, _)) = header(&bytes[at..]) {
        if at + 12 + len > bytes.len() {
            return (n, true);
        }
        at += 12 + len;
        n += 1;
    }
    (n, at < bytes.len())
}

impl Store for SimStore {
    type Snapshot = SimSnapshot;

    fn snapshot(&self) -> Result<SimSnapshot, StoreError> {
        let mut s = self.lock();
        if s.draw(Op::Snapshot)? == Fault::Crash {
            return Err(dead());
        }
        Ok(SimSnapshot {
            sim: self.sim.clone(),
            version: s.version,
        })
    }

    fn commit(&self, writes: WriteSet, durability: Durability) -> Result<Version, StoreError> {
        self.lock().commit(writes, durability)
    }

    fn next_version(&self) -> Version {
        self.lock().version + 1
    }

    fn reads_from_threads(&self) -> bool {
        false
    }
}

/// Read-write transactions, as the cluster path runs them. The simulation drives one writer
/// at a time, so a transaction's reads are current when it commits; the faults stand in for
/// what concurrency and a cluster add: a commit refused as a conflict
/// ([`SimFaults::conflict`]), and a durable commit whose fsync failed, reported as FoundationDB
/// reports `commit_unknown_result` (it may have landed, as the generator drew). Both run `body`
/// again on fresh reads, as FoundationDB's retry loop does; a crash or a failed read ends the
/// call.
impl TxnStore for SimStore {
    fn transact<T, E: From<StoreError>>(
        &self,
        attempts: u32,
        body: &mut TxnBody<'_, T, E>,
    ) -> Result<(Version, T), E> {
        let attempts = attempts.max(1);
        let mut last = StoreError::Conflict("no attempt ran".into());
        for _ in 0..attempts {
            let txn = SimTxn {
                sim: self.sim.clone(),
                version: self.lock().version,
            };
            let (writes, out) = body(&txn)?;
            let mut s = self.lock();
            if s.conflicts() {
                last = StoreError::Conflict("simulated conflict".into());
                continue;
            }
            match s.commit_or_unknown(writes, Durability::Sync)? {
                Some(version) => return Ok((version, out)),
                None => {
                    s.counts.unknown_results += 1;
                    last = StoreError::MaybeCommitted("simulated fsync failure".into());
                }
            }
        }
        Err(StoreError::gave_up(attempts, last).into())
    }
}

/// The reads of one simulated transaction: the latest version when it began.
struct SimTxn {
    sim: Arc<Mutex<Sim>>,
    version: Version,
}

impl Txn for SimTxn {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        SimSnapshot {
            sim: self.sim.clone(),
            version: self.version,
        }
        .get(key)
    }

    fn range_snapshot(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        SimSnapshot {
            sim: self.sim.clone(),
            version: self.version,
        }
        .range(begin, end, limit, false)
    }

    fn read_version(&self) -> Version {
        self.version
    }
}

impl SimSnapshot {
    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().expect("simulated store")
    }
}

impl Snapshot for SimSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut s = self.lock();
        let fault = s.read_fault(key)?;
        let Some(v) = s.value_at(key, self.version) else {
            return Ok(None);
        };
        let mut v = v.to_vec();
        if let Some(bit) = fault {
            s.flip(key, &mut v, bit);
        }
        Ok(Some(v))
    }

    fn range(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut s = self.lock();
        let fault = s.read_fault(begin)?;
        let range = (
            Bound::Included(begin.to_vec()),
            Bound::Excluded(end.to_vec()),
        );
        let visible_pairs = |it: &mut dyn Iterator<Item = (&Vec<u8>, &Versions)>| {
            it.filter_map(|(k, vs)| visible(vs, self.version).map(|v| (k.clone(), v.to_vec())))
                .take(limit)
                .collect::<Vec<KeyValue>>()
        };
        if begin >= end {
            return Ok(Vec::new());
        }
        let mut out = if reverse {
            visible_pairs(&mut s.data.range::<Vec<u8>, _>(range).rev())
        } else {
            visible_pairs(&mut s.data.range::<Vec<u8>, _>(range))
        };
        if let (Some(bit), Some((k, v))) = (fault, out.first_mut()) {
            let k = k.clone();
            s.flip(&k, v, bit);
        }
        Ok(out)
    }

    fn scan(
        &self,
        begin: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        // Read in pages, each a read of its own (faults included), without holding the lock
        // while `f` runs.
        let mut from = begin.to_vec();
        loop {
            let page = self.range(&from, end, 256, false)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            from = last.clone();
            from.push(0);
            let full = page.len() == 256;
            for (k, v) in &page {
                if !f(k, v) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn version(&self) -> Version {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(k: &str, v: &str) -> WriteSet {
        let mut w = WriteSet::default();
        w.set(k.as_bytes(), v.as_bytes());
        w
    }

    #[test]
    fn snapshots_see_their_version_and_a_crash_keeps_what_was_synced() {
        let s = SimStore::new(SimFaults::default(), 7);
        s.commit(set("a", "1"), Durability::Sync).unwrap();
        let before = s.snapshot().unwrap();
        s.commit(set("a", "2"), Durability::Buffered).unwrap();
        let mut w = WriteSet::default();
        w.add(b"n", 5);
        w.add(b"n", 2);
        w.set_versionstamped_key(b"o", 1, b"x".to_vec());
        s.commit(w, Durability::Buffered).unwrap();
        assert_eq!(before.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        let now = s.snapshot().unwrap();
        assert_eq!(now.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(now.get(b"n").unwrap(), Some(7i64.to_le_bytes().to_vec()));
        assert_eq!(now.range(b"o", b"p", 10, false).unwrap().len(), 1);
        // Many crashes of the same disk: the synced record always survives, the unsynced ones
        // as a prefix (never the third without the second), and a torn one never half.
        let mut kept = [0; 3];
        for seed in 1..200 {
            let s2 = SimStore::new(SimFaults::default(), seed);
            {
                let mut a = s2.lock();
                let b = s.lock();
                a.log = b.log.clone();
                a.synced = b.synced;
            }
            let r = SimStore::recover(s2.crash(), SimFaults::default());
            let snap = r.snapshot().unwrap();
            let a = snap.get(b"a").unwrap().expect("synced survives");
            let n = snap.get(b"n").unwrap();
            assert!(n.is_none() || a == b"2", "a prefix of the unsynced records");
            kept[usize::from(a == b"2") + usize::from(n.is_some())] += 1;
        }
        assert!(
            kept.iter().all(|&k| k > 0),
            "all, some and none kept: {kept:?}"
        );
    }

    #[test]
    fn faults_come_from_the_seed() {
        let run = |seed| {
            let s = SimStore::new(
                SimFaults {
                    crash: 20_000,
                    read_error: 50_000,
                    fsync_error: 50_000,
                    ..SimFaults::default()
                },
                seed,
            );
            let mut outcomes = Vec::new();
            for i in 0..200 {
                if s.is_dead() {
                    break;
                }
                outcomes.push(
                    s.commit(set(&format!("k{i}"), "v"), Durability::Sync)
                        .is_ok(),
                );
                if let Ok(snap) = s.snapshot() {
                    outcomes.push(snap.get(b"k1").is_ok());
                }
            }
            (outcomes, s.trace(), s.counts())
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42).0, run(43).0);
        let (_, _, c) = run(42);
        assert!(c.read_errors + c.fsync_errors_landed + c.fsync_errors_lost + c.crashes > 0);
    }
}
