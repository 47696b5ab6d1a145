//! Every idempotency key the ledger has committed, in the writer's memory, so that a new key
//! (nearly every command) is known to be new without an LSM lookup.
//!
//! Entries are keyed by a 128-bit xxh3 hash of the key's store encoding; about 48 bytes per key
//! with the table's overhead (1M keys: ~50 MB). A hit is confirmed against the transaction it
//! names before it is acted on, so a hash collision can never turn a new command into a replay
//! or a conflict.
//!
//! The table is split into [`SHARDS`] maps by the hash's top bits. A single map holding every
//! key would, on each doubling, rehash all of them at once into fresh memory: with a few
//! million keys that is a ~100 MB allocation the kernel must zero, and a commit stalled for
//! hundreds of milliseconds. Shards grow one at a time, a few hundred kilobytes each, and the
//! memory one shard frees is reused by the next.

use crate::codec::{self, IdemRecord};
use crate::error::LedgerError;
use crate::keys;
use crate::model::IdemKey;
use crate::store::{prefix_end, Snapshot};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// How many maps the index is split into (a power of two).
const SHARDS: usize = 1024;

type Shard = HashMap<u128, IdemRecord, BuildHasherDefault<PreHashed>>;

/// The index.
pub(crate) struct KeyIndex {
    shards: Vec<Shard>,
}

impl Default for KeyIndex {
    fn default() -> KeyIndex {
        KeyIndex {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

/// The shard a hash lives in: its top bits (the map itself uses the low 64).
fn shard_of(hash: u128) -> usize {
    (hash >> (128 - SHARDS.trailing_zeros())) as usize
}

/// The hash of a key's store encoding.
pub(crate) fn hash_encoded(encoded: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(encoded)
}

/// The hash of `key`'s store encoding, built on the stack: this runs for every command.
fn hash_key(key: &IdemKey) -> u128 {
    const LEN_MAX: usize = 6 + IdemKey::REFERENCE_LEN_MAX;
    let (head, n) = keys::idempotency_head(key);
    let r = key.reference.as_bytes();
    if n + r.len() > LEN_MAX {
        return hash_encoded(&keys::idempotency(key));
    }
    let mut buf = [0u8; LEN_MAX];
    buf[..n].copy_from_slice(&head[..n]);
    buf[n..n + r.len()].copy_from_slice(r);
    hash_encoded(&buf[..n + r.len()])
}

impl KeyIndex {
    /// Loads every key of the store's idempotency index (`I` prefix).
    pub fn load<S: Snapshot + ?Sized>(snapshot: &S) -> Result<KeyIndex, LedgerError> {
        let mut index = KeyIndex::default();
        let begin = [keys::IDEMPOTENCY];
        let end = prefix_end(&begin);
        let mut failure = None;
        snapshot.scan(&begin, &end, &mut |k, v| match codec::decode::<IdemRecord>(
            "idempotency record",
            v,
        ) {
            Ok(rec) => {
                index.insert_hash(hash_encoded(k), rec);
                true
            }
            Err(e) => {
                failure = Some(e);
                false
            }
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(index),
        }
    }

    /// The record the key's hash maps to, if any (confirm it before use).
    pub fn get(&self, key: &IdemKey) -> Option<IdemRecord> {
        let h = hash_key(key);
        self.shards[shard_of(h)].get(&h).copied()
    }

    /// Records a committed key.
    pub fn insert(&mut self, key: &IdemKey, rec: IdemRecord) {
        self.insert_hash(hash_key(key), rec);
    }

    fn insert_hash(&mut self, h: u128, rec: IdemRecord) {
        self.shards[shard_of(h)].insert(h, rec);
    }

    /// Keys held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(Shard::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PartnerId;

    #[test]
    fn keys_spread_over_the_shards_and_each_is_found_with_its_record() {
        let mut index = KeyIndex::default();
        let n = 20 * SHARDS as u64;
        for i in 0..n {
            let rec = IdemRecord {
                tx: crate::types::TxId(i),
                digest: crate::model::Digest([i as u8; 16]),
            };
            index.insert(&IdemKey::partner(PartnerId(1), format!("r{i}")), rec);
        }
        assert_eq!(index.len(), n as usize);
        let used = index.shards.iter().filter(|s| !s.is_empty()).count();
        assert!(
            used > SHARDS * 9 / 10,
            "only {used} of {SHARDS} shards used"
        );
        for i in [0, 1, n / 2, n - 1] {
            let got = index
                .get(&IdemKey::partner(PartnerId(1), format!("r{i}")))
                .expect("inserted key found");
            assert_eq!(got.tx, crate::types::TxId(i));
            assert_eq!(got.digest, crate::model::Digest([i as u8; 16]));
        }
        assert!(index.get(&IdemKey::partner(PartnerId(2), "r1")).is_none());
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
                hash_encoded(&keys::idempotency(&key)),
                "{key}"
            );
        }
    }
}
