//! One shard of the key index ([`super::key_index`]): an open-addressing table from the low 64
//! bits of a key's hash to the transaction the key committed.
//!
//! Nearly every command claims a new key, and the table is far larger than the caches, so a
//! claim costs a miss to main memory. A general map hides where its slots are; this one is a
//! flat array probed linearly from `key & mask`, so the writer can fetch a batch's slots ahead
//! of deciding it ([`KeyTable::placement`], [`prefetch`]), and the misses of a batch overlap instead of
//! following one another behind each shard's lock.
//!
//! A slot is 16 bytes: the key and the transaction id plus one (0 marks an empty slot; an id
//! never reaches `u64::MAX`, see [`crate::core::types::MaybeTx`]). The table doubles before it is
//! three quarters full, and removal shifts the rest of a probe run back (no tombstones), so a
//! probe never walks past the first empty slot.

use crate::core::types::TxId;

/// A slot: key, and transaction id plus one (0: empty).
type Slot = [u64; 2];

/// Slots of a table's first allocation.
const SLOTS_MIN: usize = 16;

/// The table.
#[derive(Default)]
pub(crate) struct KeyTable {
    slots: Vec<Slot>,
    len: usize,
}

impl KeyTable {
    /// Entries held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no entry.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The index of `key`'s slot, or of the empty slot its probe ends at.
    fn find(&self, key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = key as usize & mask;
        loop {
            let [k, t] = self.slots[i];
            if t == 0 || k == key {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The transaction of `key`, if held.
    pub fn get(&self, key: u64) -> Option<TxId> {
        let i = self.find(key)?;
        let [_, t] = self.slots[i];
        (t != 0).then(|| TxId(t - 1))
    }

    /// Holds `tx` for `key` unless the table already holds an entry for it, which it returns
    /// instead (one probe).
    pub fn claim(&mut self, key: u64, tx: TxId) -> Option<TxId> {
        let stored =
            tx.0.checked_add(1)
                .expect("a transaction id below u64::MAX");
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let i = self.find(key).expect("a grown table has slots");
        match self.slots[i] {
            [_, 0] => {
                self.slots[i] = [key, stored];
                self.len += 1;
                None
            }
            [_, t] => Some(TxId(t - 1)),
        }
    }

    /// Removes `key`'s entry, returning its transaction.
    pub fn remove(&mut self, key: u64) -> Option<TxId> {
        let mut hole = self.find(key)?;
        let [_, t] = self.slots[hole];
        if t == 0 {
            return None;
        }
        // Shift back every later entry of the run that may sit in the hole: one whose home
        // is not cyclically after the hole.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let [k, u] = self.slots[j];
            if u == 0 {
                break;
            }
            let home = k as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
        }
        self.slots[hole] = [0, 0];
        self.len -= 1;
        Some(TxId(t - 1))
    }

    /// Doubles the slots (zeroed memory: no pass to mark them empty) and places every entry
    /// again.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(SLOTS_MIN);
        // Written, not allocated zeroed: fresh zeroed memory is mapped to the kernel's zero
        // page on the first read, and the probe reads each slot before writing it. Every page
        // would then take a second fault on that write, and the copy it makes flushes the
        // other cores' TLBs. Writing the zeros takes one fault a page, with no flush.
        let mut fresh = Vec::with_capacity(size);
        fresh.resize(size, [0, 0]);
        let old = std::mem::replace(&mut self.slots, fresh);
        let mask = size - 1;
        for [k, t] in old {
            if t == 0 {
                continue;
            }
            let mut i = k as usize & mask;
            while self.slots[i][1] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = [k, t];
        }
    }

    /// Where the slots are and how many: what [`prefetch`] needs to find a key's first slot,
    /// published by the key index beside the lock (a hint: the slots may move after).
    pub fn placement(&self) -> (usize, usize) {
        (self.slots.as_ptr() as usize, self.slots.len())
    }
}

/// Asks the processor to bring the slot where `key`'s probe starts, in a table last seen at
/// `base` with `size` slots, into its caches. A hint only: a stale or torn `base` and `size`
/// fetch some other line, never a fault.
#[inline]
pub(crate) fn prefetch(base: usize, size: usize, key: u64) {
    if size == 0 {
        return;
    }
    crate::shared::prefetch::line(
        base.wrapping_add((key as usize & (size - 1)) * std::mem::size_of::<Slot>()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Against a map, over keys crowded into few home slots (long runs, wrap-around) and
        /// removals anywhere in a run.
        #[test]
        fn the_table_holds_what_a_map_holds(
            ops in proptest::collection::vec((0u8..3, 0u64..64, 0u64..1_000), 1..400),
            spread in prop_oneof![Just(1u64), Just(1u64 << 40)],
        ) {
            let mut table = KeyTable::default();
            let mut model: HashMap<u64, TxId> = HashMap::new();
            for (op, k, tx) in ops {
                // Keys that share their low bits pile into one run.
                let key = k.wrapping_mul(spread);
                match op {
                    0 => {
                        let expected = model.get(&key).copied();
                        if expected.is_none() {
                            model.insert(key, TxId(tx));
                        }
                        prop_assert_eq!(table.claim(key, TxId(tx)), expected);
                    }
                    1 => prop_assert_eq!(table.remove(key), model.remove(&key)),
                    _ => prop_assert_eq!(table.get(key), model.get(&key).copied()),
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for (k, tx) in &model {
                prop_assert_eq!(table.get(*k), Some(*tx));
            }
            prop_assert!(table.slots.len() * 3 >= table.len() * 4);
        }
    }

    #[test]
    fn transaction_zero_and_key_zero_are_entries_like_any_other() {
        let mut table = KeyTable::default();
        assert_eq!(table.get(0), None);
        assert_eq!(table.claim(0, TxId(0)), None);
        assert_eq!(table.claim(0, TxId(5)), Some(TxId(0)));
        assert_eq!(table.get(0), Some(TxId(0)));
        assert_eq!(table.remove(0), Some(TxId(0)));
        assert_eq!(table.remove(0), None);
        assert!(table.is_empty());
    }
}
