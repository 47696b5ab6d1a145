//! Every idempotency key the ledger has committed, in memory, so that a new key (nearly every
//! command) is known to be new without an LSM lookup, and a key's transaction is found without
//! a per-key index in the store.
//!
//! Each entry is 74 bits of a 128-bit xxh3 hash of the key's store encoding (10 choose the shard,
//! 64 are the table's key) and the id of the transaction the key committed: one 16-byte slot of
//! an open-addressing table ([`super::open_table`]) that is between three eighths and three
//! quarters full. A hit is confirmed against the transaction it names
//! (whose key and command digest the journal holds) before it is acted on. Two keys with one
//! hash are both kept: the first in its shard, the others in a small overflow map; so a
//! collision can never turn a new command into a replay or a conflict, nor hide a committed key.
//!
//! The store holds the index as chunks (`K` seq): the projector writes, with each commit, the
//! entries of the transactions it covers, one value per commit instead of one key per command.
//! [`KeyIndex::load`] reads them back; the journal after the watermark supplies the rest.
//!
//! Memory holds the keys of about the latest `keys_in_memory` transactions only. Beyond that,
//! the projector moves the oldest chunks' entries to point records by hash (`l` hash, see
//! [`KeyIndex::on_disk`]) in one commit with the chunks' removal, and hands them to the writer, which
//! drops them from memory once its snapshot includes that commit. From then on a key missing
//! from memory is looked up on disk before it counts as new ([`KeyIndex::spilled`] says
//! whether any is there), so a retry of a key of any age is still answered exactly once, and
//! memory and restart time follow the window, not the length of history.
//!
//! A record on disk is as small as a lookup allows: 9 bytes of key (the low 64 bits of the
//! hash) and the transaction ids, about 6 bytes. Those records are spread over the whole key
//! range, so each merge of the LSM's levels rewrites them; past the window they were most of
//! the store's background work (`docs/benchmarks.md`). Neither the full hash nor the command's
//! digest is needed there: every hit is confirmed against its transaction in the journal,
//! which holds both. Records of the first form (`L`, full hash and digest) are still read.
//!
//! Nearly every command's key is new, and a lookup on disk costs microseconds, so a Bloom
//! filter over the keys on disk ([`DiskFilter`], 10 bits a key, under 1% false positives)
//! answers "certainly not there" first. It is filled as keys move to disk and, after a
//! restart, rebuilt from the records on disk by a background thread; until then every miss reads
//! the disk. Once the keys on disk pass its capacity, a filter of twice as many is filled from
//! the records on disk beside the writer and replaces it, so its false positives stay under 1%
//! however long the process runs. At about 1.25 bytes a key on disk, it is the one part of the
//! index that still follows history, an order of magnitude below the entries themselves.
//!
//! The index is split into [`SHARDS`] tables by the hash's top bits. A single table holding every
//! key would, on each doubling, rehash all of them at once into fresh memory: with a few
//! million keys that is a ~100 MB allocation the kernel must zero, and a commit stalled for
//! hundreds of milliseconds. Shards grow one at a time, a few hundred kilobytes each. Each
//! shard has its own lock: the writer inserts, readers ([`crate::Ledger::transaction_by_key`])
//! look up, and neither waits on more than one shard. The writer fetches a batch's slots a few
//! commands ahead of claiming them ([`KeyIndex::prefetch`]), without the lock.

use super::open_table::{Identity, Shard, Slot};
use crate::codec::{self, IdemRecord};
use crate::core::model::IdemKey;
use crate::core::types::TxId;
use crate::error::LedgerError;
use crate::keys::{self, hash_key};
use crate::store::{prefix_end, Snapshot, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// How many maps the index is split into (a power of two).
const SHARDS: usize = 1024;

/// A slot of the index: the low 64 bits of a key's hash, and the transaction's id plus one (0
/// marks an empty slot; an id never reaches `u64::MAX`, see [`crate::core::types::MaybeTx`]).
#[derive(Clone, Copy, Default)]
struct KeySlot([u64; 2]);

impl KeySlot {
    fn new(key: u64, tx: TxId) -> KeySlot {
        KeySlot([
            key,
            tx.0.checked_add(1)
                .expect("a transaction id below u64::MAX"),
        ])
    }

    fn tx(&self) -> TxId {
        TxId(self.0[1] - 1)
    }
}

impl Slot for KeySlot {
    #[inline]
    fn key(&self) -> Option<u64> {
        (self.0[1] != 0).then_some(self.0[0])
    }
}

/// The index.
pub(crate) struct KeyIndex {
    shards: Vec<Shard<KeySlot>>,
    /// Entries whose hash another key's entry already holds in its shard.
    overflow: RwLock<HashMap<u128, Vec<TxId>>>,
    /// Entries held.
    count: AtomicUsize,
    /// Whether any key's record is on disk only (`l` or `L` records exist).
    spilled: AtomicBool,
    /// Entries written to disk whose removal from memory the writer has yet to make.
    leaving: AtomicUsize,
    /// Which hashes may be on disk. Replaced by a larger one, filled beside the writer, once
    /// the keys on disk outgrow it ([`KeyIndex::start_growth`]).
    filter: RwLock<Arc<DiskFilter>>,
    /// The larger filter being filled, if any: keys moved to disk meanwhile go into both.
    growing: Mutex<Option<Arc<DiskFilter>>>,
    /// Keys on disk when the index was loaded.
    pub on_disk_at_open: usize,
    /// Whether records of the first form (`L`) were on disk at open: lookups then read them too.
    v1_on_disk: bool,
}

/// Bits of filter per key on disk, and probes per key: under 1% false positives at capacity
/// (0.96% with the bits of a key in one block, as calculated for blocks of 512 bits).
const FILTER_BITS_PER_KEY: usize = 10;
const FILTER_PROBES: u32 = 7;
/// The smallest filter, in keys (5 kB).
const FILTER_KEYS_MIN: usize = 4_096;

/// A Bloom filter over the hashes of the keys on disk, sized at open for those there then plus
/// four windows' worth to come (a million while none is on disk). Bits are set atomically, so
/// the projector adds while the writer tests. Beyond its capacity it would still never miss a
/// key, only claim more new keys (each then read from disk); so once the keys on disk pass its
/// capacity, a filter of twice as many is filled beside the writer and takes its place.
///
/// A key's bits all fall in one block of one cache line, so a test or an insert costs one
/// miss, not one a bit, and the writer can fetch a command's block ahead
/// ([`DiskFilter::prefetch`]). Its block is chosen by the hash's high bits, so hashes in
/// order (the projector's spill) walk the blocks in order.
pub(crate) struct DiskFilter {
    blocks: Vec<Block>,
    /// Keys it holds at under 1% false positives.
    capacity: usize,
    /// Whether every key on disk is in it (false while the background rebuild runs).
    ready: AtomicBool,
}

/// One cache line of the filter: 512 bits.
#[repr(align(64))]
#[derive(Default)]
struct Block([std::sync::atomic::AtomicU64; 8]);

impl DiskFilter {
    fn with_capacity(keys: usize) -> DiskFilter {
        let capacity = keys.max(FILTER_KEYS_MIN);
        let blocks = capacity.saturating_mul(FILTER_BITS_PER_KEY).div_ceil(512);
        DiskFilter {
            blocks: (0..blocks).map(|_| Block::default()).collect(),
            capacity,
            ready: AtomicBool::new(false),
        }
    }

    /// The block of a key of hash `h`: its 64 bits mapped onto the filter's length by a
    /// multiply (no power of two needed, so the filter is as long as its capacity asks).
    fn block(&self, h: u64) -> &Block {
        &self.blocks[((u128::from(h) * self.blocks.len() as u128) >> 64) as usize]
    }

    /// The key's bits in its block: nine bits each from a second hash, mixed from the first
    /// (splitmix64's finaliser), as (word, bit in it).
    fn bits(h: u64) -> impl Iterator<Item = (usize, u64)> {
        let mut b = h ^ (h >> 30);
        b = b.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        b ^= b >> 27;
        b = b.wrapping_mul(0x94d0_49bb_1331_11eb);
        b ^= b >> 31;
        (0..FILTER_PROBES).map(move |i| {
            let bit = (b >> (9 * i)) & 511;
            ((bit / 64) as usize, 1 << (bit % 64))
        })
    }

    /// Adds a key by its [`keys::disk_hash`].
    pub fn insert(&self, h: u64) {
        let block = self.block(h);
        for (word, bit) in Self::bits(h) {
            block.0[word].fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// Whether a key of [`keys::disk_hash`] `h` is certainly not on disk.
    pub fn surely_absent(&self, h: u64) -> bool {
        if !self.ready.load(Ordering::Acquire) {
            return false;
        }
        let block = self.block(h);
        Self::bits(h).any(|(word, bit)| block.0[word].load(Ordering::Relaxed) & bit == 0)
    }

    /// Asks the processor to fetch the block a test of `h` reads (a hint only).
    pub fn prefetch(&self, h: u64) {
        crate::shared::prefetch::line(self.block(h) as *const Block as usize);
    }
}

impl Default for KeyIndex {
    fn default() -> KeyIndex {
        KeyIndex {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            overflow: RwLock::default(),
            count: AtomicUsize::new(0),
            spilled: AtomicBool::new(false),
            leaving: AtomicUsize::new(0),
            filter: RwLock::new(Arc::new(DiskFilter::with_capacity(0))),
            growing: Mutex::new(None),
            on_disk_at_open: 0,
            v1_on_disk: false,
        }
    }
}

/// Keys a filter's fill reads under one snapshot before it takes the next. The store keeps
/// every version of its tree back to the oldest snapshot open, and with them each memtable
/// flushed since: one snapshot held through a scan of tens of millions of keys (a minute or
/// more) held hundreds of megabytes of memtables that way.
const FILL_KEYS_PER_SNAPSHOT: usize = 65_536;

/// Inserts the hash of every record of keys on disk (both forms) into `filter`, then marks it
/// complete. Reads `FILL_KEYS_PER_SNAPSHOT` keys at a time, each batch from a fresh snapshot
/// of `store`, resuming after the last key read. None is missed: records of keys on disk are
/// only ever written, never removed, so a key present when the fill started is in every later
/// snapshot. Returns false if it stopped because `alive` closed.
fn fill<St: Store + ?Sized>(
    filter: &DiskFilter,
    store: &St,
    alive: &crossbeam_channel::Receiver<()>,
) -> Result<bool, LedgerError> {
    for family in [keys::IDEM_BY_HASH, keys::IDEM_ON_DISK_V1] {
        let prefix = [family];
        let end = prefix_end(&prefix);
        let mut from = prefix.to_vec();
        loop {
            if matches!(
                alive.try_recv(),
                Err(crossbeam_channel::TryRecvError::Disconnected)
            ) {
                return Ok(false);
            }
            let mut n = 0;
            let mut last = None;
            store.snapshot()?.scan(&from, &end, &mut |k, _| {
                if let Some(h) = disk_hash_of(k) {
                    filter.insert(h);
                }
                n += 1;
                if n < FILL_KEYS_PER_SNAPSHOT {
                    return true;
                }
                last = Some(k.to_vec());
                false
            })?;
            let Some(mut next) = last else { break };
            // The least key after the last one read.
            next.push(0);
            from = next;
        }
    }
    filter.ready.store(true, Ordering::Release);
    Ok(true)
}

/// The [`keys::disk_hash`] a record on disk is stored under, read from its key (either form).
fn disk_hash_of(k: &[u8]) -> Option<u64> {
    match *k.first()? {
        keys::IDEM_BY_HASH => Some(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?)),
        keys::IDEM_ON_DISK_V1 => Some(keys::disk_hash(u128::from_be_bytes(
            k.get(1..17)?.try_into().ok()?,
        ))),
        _ => None,
    }
}

/// The transactions of the record (`l`) of keys of [`keys::disk_hash`] `h`, empty if none.
pub(crate) fn by_hash<S: Snapshot + ?Sized>(
    snapshot: &S,
    h: u64,
) -> Result<Vec<TxId>, LedgerError> {
    match snapshot.get(&keys::idempotency_by_hash(h))? {
        Some(v) => codec::decode("on-disk idempotency record", &v),
        None => Ok(Vec::new()),
    }
}

/// Entries of an index chunk a load fetches the slot of before it inserts one.
const LOAD_AHEAD: usize = 16;

/// Adds `tx` to the entries of hash `h` beyond the one its shard holds; false if held already.
fn add_other(overflow: &mut HashMap<u128, Vec<TxId>>, h: u128, tx: TxId) -> bool {
    let others = overflow.entry(h).or_default();
    if others.contains(&tx) {
        return false;
    }
    others.push(tx);
    true
}

/// The shard a hash lives in: its top bits.
fn shard_of(hash: u128) -> usize {
    (hash >> (128 - SHARDS.trailing_zeros())) as usize
}

/// A hash's key within its shard: its low 64 bits.
fn in_shard(hash: u128) -> u64 {
    hash as u64
}

impl KeyIndex {
    /// Loads every entry of the store's index chunks (`K` prefix).
    pub fn load<S: Snapshot + ?Sized>(
        snapshot: &S,
        window: usize,
    ) -> Result<KeyIndex, LedgerError> {
        let mut index = KeyIndex::default();
        let begin = [keys::IDEM_CHUNK];
        let end = prefix_end(&begin);
        let mut failure = None;
        snapshot.scan(
            &begin,
            &end,
            &mut |_, v| match codec::key_chunk_entries(v) {
                Ok(entries) => {
                    // A chunk's keys land in random slots of a table of millions: each slot
                    // is fetched `LOAD_AHEAD` entries before its insert, so that the misses
                    // overlap instead of stalling one entry each.
                    for (i, e) in entries.iter().enumerate() {
                        if let Some(next) = entries.get(i + LOAD_AHEAD) {
                            index.prefetch(next.hash);
                        }
                        index.insert_loading(e.hash, e.tx);
                    }
                    true
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            },
        )?;
        if let Some(e) = failure {
            return Err(e);
        }
        let exists = |family: u8| -> Result<bool, LedgerError> {
            let prefix = [family];
            Ok(!snapshot
                .range(&prefix, &prefix_end(&prefix), 1, false)?
                .is_empty())
        };
        let v1 = exists(keys::IDEM_ON_DISK_V1)?;
        let any = v1 || exists(keys::IDEM_BY_HASH)?;
        let count =
            match snapshot.get(&keys::keys_on_disk())? {
                Some(v) => u64::from_be_bytes(v.as_slice().try_into().map_err(|_| {
                    LedgerError::Corrupt("count of keys on disk is not 8 bytes".into())
                })?) as usize,
                None => 0,
            };
        // Room for four windows of keys to come (at most 256 million); small while nothing is on
        // disk. Past its capacity only more new keys read the disk, until the next open.
        let room = if any {
            window.min(1 << 26).saturating_mul(4)
        } else {
            1 << 20
        };
        let filter = DiskFilter::with_capacity(count.saturating_add(room));
        // Nothing on disk: the empty filter is complete.
        filter.ready.store(!any, Ordering::Release);
        index.filter = RwLock::new(Arc::new(filter));
        index.on_disk_at_open = count;
        index.v1_on_disk = v1;
        index.spilled.store(any, Ordering::Release);
        Ok(index)
    }

    /// The transactions of the keys of hash `h` that left memory, read from the store: the
    /// candidates a key of that hash may have committed (a collision names others too).
    pub fn on_disk<S: Snapshot + ?Sized>(
        &self,
        snapshot: &S,
        h: u128,
    ) -> Result<Vec<TxId>, LedgerError> {
        let mut ids = by_hash(snapshot, keys::disk_hash(h))?;
        if self.v1_on_disk {
            if let Some(v) = snapshot.get(&keys::idempotency_on_disk_v1(h))? {
                let recs: Vec<IdemRecord> = codec::decode("on-disk idempotency record", &v)?;
                ids.extend(recs.into_iter().map(|r| r.tx));
            }
        }
        Ok(ids)
    }

    /// Fills the filter from every record on disk in `store` (those there at open, read in
    /// batches from fresh snapshots; keys moved to disk later are added as they move), then
    /// marks it complete. Runs on a thread of its own. Returns false if it stopped because
    /// `writer_alive` closed (the writer stopped).
    pub fn rebuild_filter<St: Store + ?Sized>(
        &self,
        store: &St,
        writer_alive: &crossbeam_channel::Receiver<()>,
    ) -> Result<bool, LedgerError> {
        let filter = self.current_filter();
        fill(&filter, store, writer_alive)
    }

    /// The filter in use.
    pub fn current_filter(&self) -> Arc<DiskFilter> {
        self.filter.read().expect("key filter lock").clone()
    }

    /// Whether the filter is complete (every key on disk in it).
    pub fn filter_ready(&self) -> bool {
        self.current_filter().ready.load(Ordering::Acquire)
    }

    /// How many keys on disk the filter in use holds at under 1% false positives.
    pub fn filter_capacity(&self) -> usize {
        self.current_filter().capacity
    }

    /// Whether a key of hash `h` is certainly not on disk.
    pub fn surely_absent(&self, h: u128) -> bool {
        self.filter
            .read()
            .expect("key filter lock")
            .surely_absent(keys::disk_hash(h))
    }

    /// Adds keys now on disk, by [`keys::disk_hash`], to the filter in use and to the one being
    /// filled, if any.
    pub fn filter_insert(&self, hashes: impl Iterator<Item = u64> + Clone) {
        let growing = self.growing.lock().expect("key filter lock");
        if let Some(g) = growing.as_ref() {
            hashes.clone().for_each(|h| g.insert(h));
        }
        let current = self.current_filter();
        hashes.for_each(|h| current.insert(h));
    }

    /// With `on_disk` keys on disk, past the filter's capacity and no larger filter being
    /// filled: starts one for twice as many, into which keys moved to disk from now on also go.
    /// The caller then takes a snapshot (which holds every key moved before) and fills it with
    /// [`KeyIndex::fill_larger`].
    pub fn start_growth(&self, on_disk: usize) -> Option<Arc<DiskFilter>> {
        let mut growing = self.growing.lock().expect("key filter lock");
        if growing.is_some() || on_disk <= self.filter_capacity() {
            return None;
        }
        let larger = Arc::new(DiskFilter::with_capacity(on_disk.saturating_mul(2)));
        *growing = Some(larger.clone());
        Some(larger)
    }

    /// Gives up on the larger filter being filled (the filter in use stays).
    pub fn abandon_growth(&self) {
        *self.growing.lock().expect("key filter lock") = None;
    }

    /// Fills `larger` (from [`KeyIndex::start_growth`]) with every key on disk in `store`,
    /// read in batches from fresh snapshots taken after growth started, and puts it in use.
    /// Returns false, leaving the filter in use as it was, if `alive` closed first.
    pub fn fill_larger<St: Store + ?Sized>(
        &self,
        larger: Arc<DiskFilter>,
        store: &St,
        alive: &crossbeam_channel::Receiver<()>,
    ) -> Result<bool, LedgerError> {
        let done = fill(&larger, store, alive);
        let mut growing = self.growing.lock().expect("key filter lock");
        *growing = None;
        if matches!(done, Ok(true)) {
            // Under the lock that inserts take: no key moved to disk is missed in the swap.
            *self.filter.write().expect("key filter lock") = larger;
        }
        done
    }

    /// Entries held in memory.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Entries held in memory that are not on their way out.
    pub fn staying(&self) -> usize {
        self.len()
            .saturating_sub(self.leaving.load(Ordering::Acquire))
    }

    /// Notes `n` entries now on disk, to leave memory once the writer sees them there.
    pub fn leave(&self, n: usize) {
        self.leaving.fetch_add(n, Ordering::AcqRel);
    }

    /// Notes `n` entries gone from memory.
    pub fn left(&self, n: usize) {
        self.leaving.fetch_sub(n, Ordering::AcqRel);
    }

    /// Whether some keys are on disk only: a key missing from memory must be looked up there.
    pub fn spilled(&self) -> bool {
        self.spilled.load(Ordering::Acquire)
    }

    /// Notes that keys are now on disk (before any leaves memory).
    pub fn mark_spilled(&self) {
        self.spilled.store(true, Ordering::Release);
    }

    /// Drops entry (`h`, `tx`) from memory (its record is on disk).
    pub fn remove_hash(&self, h: u128, tx: TxId) {
        if self.take_slot(h, tx) {
            self.count.fetch_sub(1, Ordering::AcqRel);
            // A colliding entry, if any, takes the shard's slot.
            let mut overflow = self.overflow.write().expect("key index overflow lock");
            if let Some(others) = overflow.get_mut(&h) {
                let next = others.remove(0);
                if others.is_empty() {
                    overflow.remove(&h);
                }
                let shard = &self.shards[shard_of(h)];
                let mut table = shard.write();
                table.claim(KeySlot::new(in_shard(h), next), &Identity);
                shard.publish(&table);
            }
            return;
        }
        let mut overflow = self.overflow.write().expect("key index overflow lock");
        if let Some(others) = overflow.get_mut(&h) {
            if let Some(i) = others.iter().position(|t| *t == tx) {
                others.remove(i);
                self.count.fetch_sub(1, Ordering::AcqRel);
            }
            if others.is_empty() {
                overflow.remove(&h);
            }
        }
    }

    /// Drops entries (`h`, `tx`) from memory (their records are on disk), as
    /// [`KeyIndex::remove_hash`] does each, with the slots of the next few asked for ahead so
    /// that their misses overlap, and the count changed once. While no two keys held share a
    /// hash (nearly always), the overflow map's lock is not taken for each: only the writer
    /// adds entries, and it is the caller, so no collision appears meanwhile.
    pub fn remove_hashes(&self, entries: &[(u128, TxId)]) {
        if !self
            .overflow
            .read()
            .expect("key index overflow lock")
            .is_empty()
        {
            for &(h, tx) in entries {
                self.remove_hash(h, tx);
            }
            return;
        }
        // Twice the writer's distance for a command's slot: a removal does less work between.
        const AHEAD: usize = 2 * crate::shared::prefetch::AHEAD;
        for &(h, _) in entries.iter().take(AHEAD) {
            self.prefetch(h);
        }
        let mut removed = 0;
        for (i, &(h, tx)) in entries.iter().enumerate() {
            if let Some(&(next, _)) = entries.get(i + AHEAD) {
                self.prefetch(next);
            }
            removed += usize::from(self.take_slot(h, tx));
        }
        self.count.fetch_sub(removed, Ordering::AcqRel);
    }

    /// Empties hash `h`'s slot in its shard if it holds `tx`; whether it did.
    fn take_slot(&self, h: u128, tx: TxId) -> bool {
        let mut table = self.shards[shard_of(h)].write();
        let held = table.get(in_shard(h), &Identity).map(KeySlot::tx) == Some(tx);
        if held {
            table.remove(in_shard(h), &Identity);
        }
        held
    }

    /// The transaction the key's hash maps to first, if any (confirm it before use; on a
    /// mismatch, [`KeyIndex::colliding`] holds the others of that hash).
    pub fn get(&self, key: &IdemKey) -> Option<TxId> {
        self.get_hash(hash_key(key))
    }

    /// [`KeyIndex::get`] by the key's hash ([`hash_key`]).
    pub fn get_hash(&self, h: u128) -> Option<TxId> {
        self.shards[shard_of(h)]
            .read()
            .get(in_shard(h), &Identity)
            .map(KeySlot::tx)
    }

    /// Transactions beyond the first whose keys share `key`'s hash (nearly always none).
    pub fn colliding(&self, key: &IdemKey) -> Vec<TxId> {
        let overflow = self.overflow.read().expect("key index overflow lock");
        if overflow.is_empty() {
            return Vec::new();
        }
        overflow.get(&hash_key(key)).cloned().unwrap_or_default()
    }

    /// Records the transaction a key committed.
    pub fn insert(&self, key: &IdemKey, tx: TxId) {
        self.insert_hash(hash_key(key), tx);
    }

    /// Records `tx` as hash `h`'s entry unless the shard already holds one for it, which it
    /// returns instead: one probe, where a lookup and then an insert would make two.
    pub fn claim(&self, h: u128, tx: TxId) -> Option<TxId> {
        let shard = &self.shards[shard_of(h)];
        let mut table = shard.write();
        let held = table
            .claim(KeySlot::new(in_shard(h), tx), &Identity)
            .map(|s| s.tx());
        shard.publish(&table);
        drop(table);
        if held.is_none() {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        held
    }

    /// Asks the processor to fetch the slot hash `h`'s claim will probe first, without the
    /// shard's lock: the writer does so for the commands ahead of the one it decides, so that
    /// their misses overlap (a lock's atomic makes each probe wait for the one before).
    pub fn prefetch(&self, h: u128) {
        self.shards[shard_of(h)].prefetch(in_shard(h), &Identity);
    }

    /// Records an entry by hash; an entry already held is not added twice.
    pub fn insert_hash(&self, h: u128, tx: TxId) {
        let shard = &self.shards[shard_of(h)];
        let mut table = shard.write();
        let held = table
            .claim(KeySlot::new(in_shard(h), tx), &Identity)
            .map(|s| s.tx());
        shard.publish(&table);
        drop(table);
        let added = match held {
            None => true,
            Some(t) if t == tx => false,
            Some(_) => add_other(
                &mut self.overflow.write().expect("key index overflow lock"),
                h,
                tx,
            ),
        };
        if added {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// [`KeyIndex::insert_hash`] while the index is being loaded, before anything shares it:
    /// no lock is taken, so no atomic instruction waits for the slots fetched ahead.
    fn insert_loading(&mut self, h: u128, tx: TxId) {
        let held = self.shards[shard_of(h)].change_alone(|table| {
            table
                .claim(KeySlot::new(in_shard(h), tx), &Identity)
                .map(|s| s.tx())
        });
        let added = match held {
            None => true,
            Some(t) if t == tx => false,
            Some(_) => add_other(
                self.overflow.get_mut().expect("key index overflow lock"),
                h,
                tx,
            ),
        };
        if added {
            *self.count.get_mut() += 1;
        }
    }

    /// Keys held, counted entry by entry (the count's check).
    #[cfg(test)]
    fn counted(&self) -> usize {
        let overflow: usize = self
            .overflow
            .read()
            .expect("lock")
            .values()
            .map(Vec::len)
            .sum();
        let first: usize = self.shards.iter().map(|s| s.read().len()).sum();
        first + overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::PartnerId;
    use crate::store::{
        Durability, EmbeddedSnapshot, EmbeddedStore, StoreError, Version, WriteSet,
    };

    /// The embedded store, counting the snapshots taken of it.
    struct Counted {
        inner: EmbeddedStore,
        snapshots: AtomicUsize,
    }

    impl Store for Counted {
        type Snapshot = EmbeddedSnapshot;
        fn snapshot(&self) -> Result<EmbeddedSnapshot, StoreError> {
            self.snapshots.fetch_add(1, Ordering::Relaxed);
            self.inner.snapshot()
        }
        fn commit(&self, writes: WriteSet, durability: Durability) -> Result<Version, StoreError> {
            self.inner.commit(writes, durability)
        }
        fn next_version(&self) -> Version {
            self.inner.next_version()
        }
    }

    #[test]
    fn a_fill_reads_every_key_on_disk_in_batches_each_from_a_fresh_snapshot() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Counted {
            inner: EmbeddedStore::open(dir.path()).expect("store"),
            snapshots: AtomicUsize::new(0),
        };
        // Two full batches and a few more of records by hash, and three of the first form.
        let n = 2 * FILL_KEYS_PER_SNAPSHOT as u64 + 7;
        let hash = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut w = WriteSet::default();
        for i in 0..n {
            w.set(
                &keys::idempotency_by_hash(hash(i)),
                &codec::encode(&vec![TxId(i)]),
            );
        }
        let first_form: Vec<u128> = (1..=3u128).map(|i| i << 100 | i).collect();
        for &h in &first_form {
            w.set(&keys::idempotency_on_disk_v1(h), b"first form");
        }
        store.commit(w, Durability::Sync).expect("commit");
        let filter = DiskFilter::with_capacity(2 * n as usize);
        let (_alive, alive) = crossbeam_channel::bounded::<()>(0);
        assert!(fill(&filter, &store, &alive).expect("fill"));
        assert!(filter.ready.load(Ordering::Acquire));
        // Every key, on either side of each batch's end, is in the filter.
        let missed: Vec<u64> = (0..n).filter(|&i| filter.surely_absent(hash(i))).collect();
        assert!(missed.is_empty(), "keys missed by the fill: {missed:?}");
        for &h in &first_form {
            assert!(!filter.surely_absent(keys::disk_hash(h)));
        }
        // And the filter is not simply full: hashes never written are mostly absent.
        let present = (n..n + 10_000)
            .filter(|&i| !filter.surely_absent(hash(i)))
            .count();
        assert!(
            present < 500,
            "{present} of 10,000 absent hashes seem present"
        );
        // Three batches of records by hash, one of the first form: a snapshot each.
        assert_eq!(store.snapshots.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn keys_spread_over_the_shards_and_each_is_found_with_its_record() {
        let index = KeyIndex::default();
        let n = 20 * SHARDS as u64;
        for i in 0..n {
            index.insert(&IdemKey::partner(PartnerId(1), format!("r{i}")), TxId(i));
        }
        assert_eq!(index.len(), n as usize);
        assert_eq!(index.counted(), n as usize);
        let used = index.shards.iter().filter(|s| !s.read().is_empty()).count();
        assert!(
            used > SHARDS * 9 / 10,
            "only {used} of {SHARDS} shards used"
        );
        for i in [0, 1, n / 2, n - 1] {
            let got = index
                .get(&IdemKey::partner(PartnerId(1), format!("r{i}")))
                .expect("inserted key found");
            assert_eq!(got, TxId(i));
        }
        assert!(index.get(&IdemKey::partner(PartnerId(2), "r1")).is_none());
    }

    #[test]
    fn a_load_of_the_index_chunks_holds_what_inserts_one_by_one_hold() {
        let dir = tempfile::tempdir().expect("dir");
        let store = EmbeddedStore::open(dir.path()).expect("store");
        let key = |i: u64| IdemKey::partner(PartnerId(1), format!("k{i}"));
        let one = KeyIndex::default();
        let mut w = WriteSet::default();
        // Five chunks of 1,000 keys (many more than a load fetches ahead); each also gives the
        // first key's hash another transaction, and the last repeats an entry of the first.
        for seq in 1..=5u64 {
            let mut chunk: Vec<(u128, TxId)> = (0..1_000)
                .map(|j| (hash_key(&key(seq * 1_000 + j)), TxId(seq * 1_000 + j)))
                .collect();
            chunk.push((hash_key(&key(0)), TxId(seq)));
            if seq == 5 {
                chunk.push((hash_key(&key(1_000)), TxId(1_000)));
            }
            for &(h, tx) in &chunk {
                one.insert_hash(h, tx);
            }
            w.set(
                &keys::idempotency_chunk(seq),
                &codec::encode_key_chunk(&chunk),
            );
        }
        store.commit(w, Durability::Sync).expect("commit");
        let loaded = KeyIndex::load(&store.snapshot().expect("snapshot"), 1 << 20).expect("load");
        assert_eq!(loaded.len(), 5_005);
        assert_eq!((one.len(), loaded.counted()), (5_005, 5_005));
        for i in (1_000..6_000).step_by(7) {
            assert_eq!(loaded.get(&key(i)), Some(TxId(i)), "key {i}");
            assert_eq!(loaded.get(&key(i)), one.get(&key(i)));
        }
        assert_eq!(loaded.get(&key(0)), Some(TxId(1)));
        assert_eq!(
            loaded.colliding(&key(0)),
            vec![TxId(2), TxId(3), TxId(4), TxId(5)]
        );
        assert!(loaded.get(&key(6_000)).is_none());
        // Each shard's hint for prefetching names its table as the load left it.
        for s in &loaded.shards {
            let table = s.read();
            if table.is_empty() {
                continue;
            }
            assert_eq!(s.published(), table.placement());
        }
    }

    #[test]
    fn records_sharing_a_hash_are_all_kept_and_none_twice() {
        let index = KeyIndex::default();
        let key = IdemKey::partner(PartnerId(3), "shared");
        let h = hash_key(&key);
        for tx in [1, 2, 3, 2, 1] {
            index.insert_hash(h, TxId(tx));
        }
        assert_eq!(index.get(&key), Some(TxId(1)));
        assert_eq!(index.colliding(&key), vec![TxId(2), TxId(3)]);
        assert_eq!(index.len(), 3);
        assert_eq!(index.counted(), 3);
        // Leaving memory: the first, and a colliding one takes its slot.
        index.remove_hash(h, TxId(1));
        assert_eq!(index.get(&key), Some(TxId(2)));
        assert_eq!(index.colliding(&key), vec![TxId(3)]);
        index.remove_hash(h, TxId(3));
        index.remove_hash(h, TxId(9));
        assert_eq!((index.len(), index.counted()), (1, 1));
        assert!(index.colliding(&key).is_empty());
        assert!(index
            .colliding(&IdemKey::partner(PartnerId(3), "other"))
            .is_empty());
    }

    #[test]
    fn keys_leave_memory_in_a_batch_as_one_by_one() {
        // Two indexes given the same entries, one emptied key by key, the other in batches;
        // then, with a shared hash, the batch takes the colliding path.
        let (one, many) = (KeyIndex::default(), KeyIndex::default());
        let entries: Vec<(u128, TxId)> = (0..5_000u64)
            .map(|i| {
                (
                    hash_key(&IdemKey::partner(PartnerId(1), format!("k{i}"))),
                    TxId(i),
                )
            })
            .collect();
        for &(h, tx) in &entries {
            one.insert_hash(h, tx);
            many.insert_hash(h, tx);
        }
        // Every other entry leaves, and one named with another transaction stays.
        let mut leaving: Vec<(u128, TxId)> = entries.iter().copied().step_by(2).collect();
        leaving.push((entries[1].0, TxId(999_999)));
        for &(h, tx) in &leaving {
            one.remove_hash(h, tx);
        }
        for part in leaving.chunks(700) {
            many.remove_hashes(part);
        }
        assert_eq!((many.len(), many.counted()), (2_500, 2_500));
        for &(h, _) in &entries {
            assert_eq!(many.get_hash(h), one.get_hash(h));
        }
        assert_eq!(many.get_hash(entries[1].0), Some(TxId(1)));
        assert_eq!(many.get_hash(entries[0].0), None);

        let key = IdemKey::partner(PartnerId(3), "shared");
        let h = hash_key(&key);
        many.insert_hash(h, TxId(10));
        many.insert_hash(h, TxId(11));
        many.remove_hashes(&[(h, TxId(10)), (entries[3].0, TxId(3))]);
        assert_eq!(many.get(&key), Some(TxId(11)));
        assert!(many.colliding(&key).is_empty());
        assert_eq!(many.get_hash(entries[3].0), None);
        assert_eq!((many.len(), many.counted()), (2_500, 2_500));
    }

    #[test]
    fn the_filter_never_misses_a_key_and_rarely_claims_one() {
        let f = DiskFilter::with_capacity(100_000);
        let keys: Vec<u64> = (0..100_000u64)
            .map(|i| {
                keys::disk_hash(hash_key(&IdemKey::partner(
                    PartnerId(1),
                    format!("on-disk-{i}"),
                )))
            })
            .collect();
        assert!(!f.surely_absent(keys[0]), "not ready: never claims absence");
        f.ready.store(true, Ordering::Release);
        assert!(
            keys.iter().all(|h| f.surely_absent(*h)),
            "empty: all absent"
        );
        for h in &keys {
            f.insert(*h);
        }
        assert!(
            keys.iter().all(|h| !f.surely_absent(*h)),
            "no false negative"
        );
        let false_positives = (0..100_000u64)
            .map(|i| {
                keys::disk_hash(hash_key(&IdemKey::partner(
                    PartnerId(1),
                    format!("new-{i}"),
                )))
            })
            .filter(|h| !f.surely_absent(*h))
            .count();
        // 0.96% as calculated at capacity, for 7 bits of a key in one block of 512.
        assert!(
            (700..1_200).contains(&false_positives),
            "{false_positives} of 100,000 new keys claimed"
        );
    }

    #[test]
    fn a_key_hashes_as_its_store_encoding_does() {
        for key in [
            IdemKey::partner(PartnerId(7), "rcpt-1"),
            IdemKey::operator("enrol/3"),
            IdemKey::operator("x".repeat(IdemKey::REFERENCE_LEN_MAX + 10)),
        ] {
            assert_eq!(
                hash_key(&key),
                keys::hash_encoded(&keys::idempotency(&key)),
                "{key}"
            );
        }
    }
}
