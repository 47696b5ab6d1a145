//! Every idempotency key the ledger has committed, in memory, so that a new key (nearly every
//! command) is known to be new without an LSM lookup, and a key's transaction is found without
//! a per-key index in the store.
//!
//! Each entry is 74 bits of a 128-bit xxh3 hash of the key's store encoding (10 choose the shard,
//! 64 are the table's key) and the id of the transaction the key committed: 16 bytes per key,
//! about 20 with the table's overhead. A hit is confirmed against the transaction it names
//! (whose key and command digest the journal holds) before it is acted on. Two keys with one
//! hash are both kept: the first in its shard, the others in a small overflow map; so a
//! collision can never turn a new command into a replay or a conflict, nor hide a committed key.
//!
//! The store holds the index as chunks (`K` seq): the projector writes, with each commit, the
//! entries of the transactions it covers, one value per commit instead of one key per command.
//! [`KeyIndex::load`] reads them back; the journal after the watermark supplies the rest.
//!
//! Memory holds the keys of about the latest `keys_in_memory` transactions only. Beyond that,
//! the projector moves the oldest chunks' entries to point records by hash (`L` hash, see
//! [`on_disk`]) in one commit with the chunks' removal, and hands them to the writer, which
//! drops them from memory once its snapshot includes that commit. From then on a key missing
//! from memory is looked up on disk before it counts as new ([`KeyIndex::spilled`] says
//! whether any is there), so a retry of a key of any age is still answered exactly once, and
//! memory and restart time follow the window, not the length of history.
//!
//! The table is split into [`SHARDS`] maps by the hash's top bits. A single map holding every
//! key would, on each doubling, rehash all of them at once into fresh memory: with a few
//! million keys that is a ~100 MB allocation the kernel must zero, and a commit stalled for
//! hundreds of milliseconds. Shards grow one at a time, a few hundred kilobytes each. Each
//! shard has its own lock: the writer inserts, readers ([`crate::Ledger::transaction_by_key`])
//! look up, and neither waits on more than one shard.

use crate::codec::IdemRecord;
use crate::codec::{self, IdemChunk};
use crate::core::model::IdemKey;
use crate::core::types::TxId;
use crate::error::LedgerError;
use crate::keys::{self, hash_key};
use crate::store::{prefix_end, Snapshot};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::RwLock;

/// The key is already a uniform hash; take its low 64 bits instead of hashing again.
#[derive(Default)]
pub(crate) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// How many maps the index is split into (a power of two).
const SHARDS: usize = 1024;

type Shard = HashMap<u64, TxId, BuildHasherDefault<PreHashed>>;

/// The index.
pub(crate) struct KeyIndex {
    shards: Vec<RwLock<Shard>>,
    /// Entries whose hash another key's entry already holds in its shard.
    overflow: RwLock<HashMap<u128, Vec<TxId>>>,
    /// Entries held.
    count: AtomicUsize,
    /// Whether any key's record is on disk only (`L` records exist).
    spilled: AtomicBool,
    /// Entries written to disk whose removal from memory the writer has yet to make.
    leaving: AtomicUsize,
}

impl Default for KeyIndex {
    fn default() -> KeyIndex {
        KeyIndex {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            overflow: RwLock::default(),
            count: AtomicUsize::new(0),
            spilled: AtomicBool::new(false),
            leaving: AtomicUsize::new(0),
        }
    }
}

/// The records of keys with hash `h` that left memory: read from the store.
pub(crate) fn on_disk<S: Snapshot + ?Sized>(
    snapshot: &S,
    h: u128,
) -> Result<Vec<IdemRecord>, LedgerError> {
    match snapshot.get(&keys::idempotency_on_disk(h))? {
        Some(v) => codec::decode("on-disk idempotency record", &v),
        None => Ok(Vec::new()),
    }
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
    pub fn load<S: Snapshot + ?Sized>(snapshot: &S) -> Result<KeyIndex, LedgerError> {
        let index = KeyIndex::default();
        let begin = [keys::IDEM_CHUNK];
        let end = prefix_end(&begin);
        let mut failure = None;
        snapshot.scan(&begin, &end, &mut |_, v| match codec::decode::<IdemChunk>(
            "idempotency chunk",
            v,
        ) {
            Ok(chunk) => {
                for (h, rec) in chunk.entries {
                    index.insert_hash(h, rec.tx);
                }
                true
            }
            Err(e) => {
                failure = Some(e);
                false
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let on_disk = [keys::IDEM_ON_DISK];
        let any = !snapshot
            .range(&on_disk, &prefix_end(&on_disk), 1, false)?
            .is_empty();
        index.spilled.store(any, Ordering::Release);
        Ok(index)
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
        let mut shard = self.shards[shard_of(h)].write().expect("key index lock");
        if shard.get(&in_shard(h)) == Some(&tx) {
            shard.remove(&in_shard(h));
            self.count.fetch_sub(1, Ordering::AcqRel);
            drop(shard);
            // A colliding entry, if any, takes the shard's slot.
            let mut overflow = self.overflow.write().expect("key index overflow lock");
            if let Some(others) = overflow.get_mut(&h) {
                let next = others.remove(0);
                if others.is_empty() {
                    overflow.remove(&h);
                }
                self.shards[shard_of(h)]
                    .write()
                    .expect("key index lock")
                    .insert(in_shard(h), next);
            }
            return;
        }
        drop(shard);
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

    /// The transaction the key's hash maps to first, if any (confirm it before use; on a
    /// mismatch, [`KeyIndex::colliding`] holds the others of that hash).
    pub fn get(&self, key: &IdemKey) -> Option<TxId> {
        self.get_hash(hash_key(key))
    }

    /// [`KeyIndex::get`] by the key's hash ([`hash_key`]).
    pub fn get_hash(&self, h: u128) -> Option<TxId> {
        self.shards[shard_of(h)]
            .read()
            .expect("key index lock")
            .get(&in_shard(h))
            .copied()
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

    /// Records an entry by hash; an entry already held is not added twice.
    pub fn insert_hash(&self, h: u128, tx: TxId) {
        let mut shard = self.shards[shard_of(h)].write().expect("key index lock");
        match shard.entry(in_shard(h)) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(tx);
                self.count.fetch_add(1, Ordering::AcqRel);
            }
            std::collections::hash_map::Entry::Occupied(e) if *e.get() == tx => {}
            std::collections::hash_map::Entry::Occupied(_) => {
                drop(shard);
                let mut overflow = self.overflow.write().expect("key index overflow lock");
                let others = overflow.entry(h).or_default();
                if !others.contains(&tx) {
                    others.push(tx);
                    self.count.fetch_add(1, Ordering::AcqRel);
                }
            }
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
        let first: usize = self
            .shards
            .iter()
            .map(|s| s.read().expect("lock").len())
            .sum();
        first + overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::PartnerId;

    #[test]
    fn keys_spread_over_the_shards_and_each_is_found_with_its_record() {
        let index = KeyIndex::default();
        let n = 20 * SHARDS as u64;
        for i in 0..n {
            index.insert(&IdemKey::partner(PartnerId(1), format!("r{i}")), TxId(i));
        }
        assert_eq!(index.len(), n as usize);
        assert_eq!(index.counted(), n as usize);
        let used = index
            .shards
            .iter()
            .filter(|s| !s.read().expect("lock").is_empty())
            .count();
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
