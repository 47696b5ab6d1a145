//! Open-addressing tables probed linearly, for the single writer's large in-memory indexes: the
//! key index's shards ([`super::key_index`]) and the members' heads ([`super::heads`]).
//!
//! Those tables are far larger than the caches, and nearly every command touches a slot in
//! each, so every access is a miss to main memory. A general map hides where its slots are;
//! these are flat arrays probed linearly from `hash & mask`, so a thread can ask for the slots
//! of the next few entries before it reaches them ([`Shard::prefetch`]), without the lock, and
//! the misses of a batch overlap instead of following one another.
//!
//! A table doubles before it is three quarters full, so a probe always ends at an empty slot,
//! and removal shifts the rest of a probe run back (no tombstones), so a probe never walks past
//! the first empty slot. Each [`Shard`] publishes, beside its lock, where its slots lie: a hint,
//! which a stale or torn value turns into a fetch of some other line, never a fault.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Slots of a table's first allocation.
const SLOTS_MIN: usize = 16;

/// What a table's slot holds. All-default is the empty slot.
pub(crate) trait Slot: Copy + Default {
    /// The entry's key, or `None` for an empty slot.
    fn key(&self) -> Option<u64>;
}

/// Where in a table a key's probe starts.
pub(crate) trait Hash64 {
    /// The key's hash: its low bits pick its first slot.
    fn hash(&self, key: u64) -> u64;
}

/// For keys that are hashes already.
pub(crate) struct Identity;

impl Hash64 for Identity {
    #[inline]
    fn hash(&self, key: u64) -> u64 {
        key
    }
}

impl Hash64 for foldhash::fast::RandomState {
    #[inline]
    fn hash(&self, key: u64) -> u64 {
        std::hash::BuildHasher::hash_one(self, key)
    }
}

/// The table.
pub(crate) struct Table<S> {
    slots: Vec<S>,
    len: usize,
}

impl<S> Default for Table<S> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<S: Slot> Table<S> {
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
    #[inline]
    fn find(&self, key: u64, hasher: &impl Hash64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = hasher.hash(key) as usize & mask;
        loop {
            match self.slots[i].key() {
                Some(k) if k != key => i = (i + 1) & mask,
                _ => return Some(i),
            }
        }
    }

    /// The entry of `key`, if held.
    #[inline]
    pub fn get(&self, key: u64, hasher: &impl Hash64) -> Option<&S> {
        let s = &self.slots[self.find(key, hasher)?];
        s.key().is_some().then_some(s)
    }

    /// Places `slot` unless an entry for its key is held, which it returns instead, to be read
    /// or overwritten (one probe, where a lookup and then an insert would make two).
    #[inline]
    pub fn claim(&mut self, slot: S, hasher: &impl Hash64) -> Option<&mut S> {
        let key = slot.key().expect("a slot to claim holds an entry");
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow(hasher);
        }
        let i = self.find(key, hasher).expect("a grown table has slots");
        if self.slots[i].key().is_none() {
            self.slots[i] = slot;
            self.len += 1;
            None
        } else {
            Some(&mut self.slots[i])
        }
    }

    /// Removes `key`'s entry, returning it.
    pub fn remove(&mut self, key: u64, hasher: &impl Hash64) -> Option<S> {
        let mut hole = self.find(key, hasher)?;
        let removed = self.slots[hole];
        removed.key()?;
        // Shift back every later entry of the run that may sit in the hole: one whose home
        // is not cyclically after the hole.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let Some(k) = self.slots[j].key() else {
                break;
            };
            let home = hasher.hash(k) as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
        }
        self.slots[hole] = S::default();
        self.len -= 1;
        Some(removed)
    }

    /// Makes room for `more` entries at once: the slots grown to the size that many claims
    /// would have grown them to, with one placing of the entries held rather than one per
    /// doubling.
    pub fn reserve(&mut self, more: usize, hasher: &impl Hash64) {
        if more == 0 {
            return;
        }
        let need = self.len + more;
        let mut size = self.slots.len().max(SLOTS_MIN);
        while need * 4 > size * 3 {
            size *= 2;
        }
        if size > self.slots.len() {
            self.grow_to(size, hasher);
        }
    }

    /// Asks the processor for the slot where `key`'s probe starts.
    #[inline]
    pub fn prefetch(&self, key: u64, hasher: &impl Hash64) {
        if let Some(first) = self.slots.get(hasher.hash(key) as usize & self.mask()) {
            crate::shared::prefetch::line(first as *const S as usize);
        }
    }

    /// Doubles the slots and places every entry again.
    fn grow(&mut self, hasher: &impl Hash64) {
        self.grow_to((self.slots.len() * 2).max(SLOTS_MIN), hasher);
    }

    /// Places every entry again in `size` slots (a power of two, larger than now).
    fn grow_to(&mut self, size: usize, hasher: &impl Hash64) {
        // Written, not allocated zeroed: fresh zeroed memory is mapped to the kernel's zero
        // page on the first read, and the probe reads each slot before writing it. Every page
        // would then take a second fault on that write, and the copy it makes flushes the
        // other cores' TLBs. Writing the empty slots takes one fault a page, with no flush.
        let mut fresh = Vec::with_capacity(size);
        fresh.resize(size, S::default());
        let old = std::mem::replace(&mut self.slots, fresh);
        let mask = size - 1;
        for s in old {
            let Some(k) = s.key() else { continue };
            let mut i = hasher.hash(k) as usize & mask;
            while self.slots[i].key().is_some() {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    /// Where the slots are and how many (0 and 0 before any): what [`Shard::prefetch`] needs
    /// to find a key's first slot.
    pub fn placement(&self) -> (usize, usize) {
        if self.slots.is_empty() {
            return (0, 0);
        }
        (self.slots.as_ptr() as usize, self.slots.len())
    }
}

/// A table behind its lock, and where its slots were last placed (a hint for prefetching
/// without the lock). One cache line each.
#[repr(align(64))]
pub(crate) struct Shard<S> {
    table: RwLock<Table<S>>,
    base: AtomicUsize,
    size: AtomicUsize,
}

impl<S> Default for Shard<S> {
    fn default() -> Self {
        Shard {
            table: RwLock::default(),
            base: AtomicUsize::new(0),
            size: AtomicUsize::new(0),
        }
    }
}

impl<S: Slot> Shard<S> {
    /// The table, to read.
    pub fn read(&self) -> RwLockReadGuard<'_, Table<S>> {
        self.table.read().expect("table lock")
    }

    /// The table, to change; [`Shard::publish`] it after a change that may have moved it.
    pub fn write(&self) -> RwLockWriteGuard<'_, Table<S>> {
        self.table.write().expect("table lock")
    }

    /// Publishes where the table's slots are now.
    pub fn publish(&self, table: &Table<S>) {
        let (base, size) = table.placement();
        self.base.store(base, Ordering::Relaxed);
        self.size.store(size, Ordering::Relaxed);
    }

    /// The table while nothing else shares the shard (no lock taken, no atomic instruction
    /// for fetches ahead to wait on), and the placement published after `change`.
    pub fn change_alone<R>(&mut self, change: impl FnOnce(&mut Table<S>) -> R) -> R {
        let table = self.table.get_mut().expect("table lock");
        let out = change(table);
        let (base, size) = table.placement();
        *self.base.get_mut() = base;
        *self.size.get_mut() = size;
        out
    }

    /// Asks the processor for the slot where `key`'s probe starts, in the table as last
    /// published.
    #[inline]
    pub fn prefetch(&self, key: u64, hasher: &impl Hash64) {
        let size = self.size.load(Ordering::Relaxed);
        if size == 0 {
            return;
        }
        let at = hasher.hash(key) as usize & (size - 1);
        crate::shared::prefetch::line(
            self.base
                .load(Ordering::Relaxed)
                .wrapping_add(at * std::mem::size_of::<S>()),
        );
    }

    /// The published placement (for tests of it).
    #[cfg(test)]
    pub fn published(&self) -> (usize, usize) {
        (
            self.base.load(Ordering::Relaxed),
            self.size.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A key and a value plus one (0: empty), as the key index's slots are.
    #[derive(Clone, Copy, Default, Debug, PartialEq)]
    struct Pair([u64; 2]);

    impl Slot for Pair {
        fn key(&self) -> Option<u64> {
            (self.0[1] != 0).then_some(self.0[0])
        }
    }

    /// A hash that crowds keys into few home slots: long runs, wrap-around.
    struct Crowd(u64);

    impl Hash64 for Crowd {
        fn hash(&self, key: u64) -> u64 {
            key.wrapping_mul(self.0)
        }
    }

    fn value(t: &Pair) -> u64 {
        t.0[1] - 1
    }

    proptest! {
        /// Against a map, over keys crowded into few home slots and removals anywhere in a run;
        /// and the published placement names the table after each change.
        #[test]
        fn the_table_holds_what_a_map_holds(
            ops in proptest::collection::vec((0u8..4, 0u64..64, 0u64..1_000), 1..400),
            spread in prop_oneof![Just(1u64), Just(1u64 << 40), Just(0)],
        ) {
            let hasher = Crowd(spread);
            let shard = Shard::<Pair>::default();
            let mut model: HashMap<u64, u64> = HashMap::new();
            for (op, key, v) in ops {
                let mut table = shard.write();
                match op {
                    0 => {
                        let expected = model.get(&key).copied();
                        if expected.is_none() {
                            model.insert(key, v);
                        }
                        let held = table.claim(Pair([key, v + 1]), &hasher).map(|s| value(s));
                        prop_assert_eq!(held, expected);
                    }
                    1 => {
                        let removed = table.remove(key, &hasher).map(|s| value(&s));
                        prop_assert_eq!(removed, model.remove(&key));
                    }
                    2 => {
                        // Overwrite, as the heads do.
                        let slot = Pair([key, v + 1]);
                        if let Some(held) = table.claim(slot, &hasher) {
                            *held = slot;
                        }
                        model.insert(key, v);
                    }
                    _ => prop_assert_eq!(table.get(key, &hasher).map(value), model.get(&key).copied()),
                }
                shard.publish(&table);
                prop_assert_eq!(table.len(), model.len());
                prop_assert_eq!(shard.published(), table.placement());
            }
            let table = shard.read();
            for (k, v) in &model {
                prop_assert_eq!(table.get(*k, &hasher).map(value), Some(*v));
            }
            prop_assert!(table.slots.len() * 3 >= table.len() * 4);
        }
    }

    #[test]
    fn key_zero_is_an_entry_like_any_other() {
        let mut table = Table::<Pair>::default();
        assert_eq!(table.get(0, &Identity), None);
        assert!(table.claim(Pair([0, 1]), &Identity).is_none());
        assert_eq!(
            table.claim(Pair([0, 6]), &Identity).copied(),
            Some(Pair([0, 1]))
        );
        assert_eq!(table.get(0, &Identity).copied(), Some(Pair([0, 1])));
        assert_eq!(table.remove(0, &Identity), Some(Pair([0, 1])));
        assert_eq!(table.remove(0, &Identity), None);
        assert!(table.is_empty());
    }

    /// Room made at once for the entries to come: their claims move nothing, each entry is
    /// found after, and the size is the one claims alone would have grown to.
    #[test]
    fn a_reserve_makes_room_once_for_what_claims_would_grow_to() {
        for (before, more) in [
            (0u64, 0usize),
            (0, 1),
            (0, 12),
            (0, 13),
            (5, 100),
            (40, 3_000),
        ] {
            let mut table = Table::<Pair>::default();
            let mut grown = Table::<Pair>::default();
            for k in 0..before {
                table.claim(Pair([k, k + 1]), &Identity);
                grown.claim(Pair([k, k + 1]), &Identity);
            }
            table.reserve(more, &Identity);
            let placed = table.placement();
            for k in before..before + more as u64 {
                table.claim(Pair([k, k + 2]), &Identity);
                grown.claim(Pair([k, k + 2]), &Identity);
            }
            assert_eq!(
                table.placement(),
                placed,
                "{before} then {more}: nothing moved"
            );
            assert_eq!(
                table.placement().1,
                grown.placement().1,
                "{before} then {more}"
            );
            assert_eq!(table.len(), before as usize + more);
            for k in 0..before + more as u64 {
                assert!(table.get(k, &Identity).is_some(), "{k}");
            }
        }
    }
}
