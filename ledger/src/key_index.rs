//! Every idempotency key the ledger has committed, in the writer's memory, so that a new key
//! (nearly every command) is known to be new without an LSM lookup.
//!
//! Entries are keyed by a 128-bit xxh3 hash of the key's store encoding; about 48 bytes per key
//! with the table's overhead (1M keys: ~50 MB). A hit is confirmed against the transaction it
//! names before it is acted on, so a hash collision can never turn a new command into a replay
//! or a conflict.

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

/// The index.
#[derive(Default)]
pub(crate) struct KeyIndex {
    map: HashMap<u128, IdemRecord, BuildHasherDefault<PreHashed>>,
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
                index.map.insert(hash_encoded(k), rec);
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
        self.map.get(&hash_key(key)).copied()
    }

    /// Records a committed key.
    pub fn insert(&mut self, key: &IdemKey, rec: IdemRecord) {
        self.map.insert(hash_key(key), rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PartnerId;

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
