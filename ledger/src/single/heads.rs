//! Each member's latest transaction and points, in memory, for readers (single committer).
//!
//! The projector sets a member's head as it projects each transaction, before it announces the
//! batch projected; a read that waited for its own commits to be projected (see
//! [`crate::Ledger::read_snapshot`]) sees them here. Balances are answered from the head alone.
//! Statements and as-of reads start at the head's transaction and follow each transaction's
//! link to the member's previous one ([`crate::core::model::MemberAfter::prev`]) through the journal;
//! a store snapshot taken after the head was read holds every transaction of the chain.
//!
//! At open the heads are built from the recovered state. Split into [`SHARDS`] locked tables so
//! the projector and readers rarely meet on one lock.

use super::open_table::{Shard, Slot};
use crate::core::model::MemberAfter;
use crate::core::state::State;
use crate::core::types::{MemberId, Points, TxId};

/// How many tables the heads are split into (a power of two).
const SHARDS: usize = 256;

/// How many heads ahead [`Heads::set_all`] asks for a slot before it writes one.
const SET_AHEAD: usize = 16;

/// A member as of its latest transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The member's latest transaction (`None` only for a member recovered without one).
    pub tx: Option<TxId>,
    /// Posted points after it.
    pub posted: Points,
    /// Held points after it.
    pub held: Points,
}

impl Head {
    /// The head after transaction `tx` left member `a` as it says.
    pub fn of(tx: TxId, a: &MemberAfter) -> Head {
        Head {
            tx: Some(tx),
            posted: a.posted,
            held: a.held,
        }
    }
}

/// One slot of a shard's table: 32 bytes, two to a cache line. `tx` is 0 for an empty slot, 1
/// for a member without a transaction, and a transaction's id plus 2 otherwise. A slot's place
/// is the member's hash, keyed per process, so ids cannot be picked to collide.
#[derive(Debug, Clone, Copy, Default)]
struct HeadSlot {
    member: u64,
    tx: u64,
    posted: i64,
    held: i64,
}

impl HeadSlot {
    fn new(m: MemberId, head: Head) -> HeadSlot {
        HeadSlot {
            member: m.0,
            tx: head.tx.map_or(1, |t| {
                t.0.checked_add(2)
                    .expect("a transaction id below u64::MAX - 1")
            }),
            posted: head.posted.0,
            held: head.held.0,
        }
    }

    fn head(&self) -> Head {
        Head {
            tx: (self.tx > 1).then(|| TxId(self.tx - 2)),
            posted: Points(self.posted),
            held: Points(self.held),
        }
    }
}

impl Slot for HeadSlot {
    #[inline]
    fn key(&self) -> Option<u64> {
        (self.tx != 0).then_some(self.member)
    }
}

/// The heads of every member.
pub(crate) struct Heads {
    shards: Vec<Shard<HeadSlot>>,
    hasher: foldhash::fast::RandomState,
}

impl Heads {
    fn empty() -> Heads {
        Heads {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Heads of every member in `state`: each shard's heads gathered, then put into its table
    /// made its final size at once. The state holds each member once, so nothing is sorted, and
    /// no table doubles as it fills.
    pub fn from_state(state: &State) -> Heads {
        let mut all = Heads::empty();
        let each = state.members.len() / SHARDS;
        let mut by_shard: Vec<Vec<(MemberId, Head)>> = (0..SHARDS)
            .map(|_| Vec::with_capacity(each + each / 8 + 16))
            .collect();
        for (m, s) in &state.members {
            by_shard[all.shard_index(*m)].push((
                *m,
                Head {
                    tx: s.last.get(),
                    posted: s.posted,
                    held: s.held,
                },
            ));
        }
        let hasher = &all.hasher;
        for (shard, heads) in all.shards.iter_mut().zip(by_shard) {
            shard.change_alone(|table| {
                table.reserve(heads.len(), hasher);
                for (m, _) in heads.iter().take(SET_AHEAD) {
                    table.prefetch(m.0, hasher);
                }
                for (i, (m, head)) in heads.iter().enumerate() {
                    if let Some((next, _)) = heads.get(i + SET_AHEAD) {
                        table.prefetch(next.0, hasher);
                    }
                    let slot = HeadSlot::new(*m, *head);
                    if let Some(held) = table.claim(slot, hasher) {
                        *held = slot;
                    }
                }
            });
        }
        all
    }

    fn shard_index(&self, m: MemberId) -> usize {
        // Fibonacci hashing spreads sequential member ids over the shards.
        (m.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARDS.trailing_zeros())) as usize
    }

    /// Member `m`'s head, if the member is enrolled.
    pub fn get(&self, m: MemberId) -> Option<Head> {
        self.shards[self.shard_index(m)]
            .read()
            .get(m.0, &self.hasher)
            .map(HeadSlot::head)
    }

    /// Asks for the slot member `m` would be found in (a hint only: the table may have moved).
    fn prefetch(&self, m: MemberId) {
        self.shards[self.shard_index(m)].prefetch(m.0, &self.hasher);
    }

    /// Sets many heads, later entries of a member over earlier ones: shard by shard, each
    /// lock taken once for all of its members, and each slot asked for [`SET_AHEAD`] heads
    /// before it is written (the members lie scattered over tables far larger than the caches:
    /// one write at a time would wait on each slot's memory in turn).
    pub fn set_all(&self, mut heads: Vec<(MemberId, Head)>) {
        // Stable: a member's heads keep their order, so its last one is written last.
        heads.sort_by_key(|(m, _)| self.shard_index(*m));
        for (m, _) in heads.iter().take(SET_AHEAD) {
            self.prefetch(*m);
        }
        let mut i = 0;
        for run in heads.chunk_by(|a, b| self.shard_index(a.0) == self.shard_index(b.0)) {
            let shard = &self.shards[self.shard_index(run[0].0)];
            let mut table = shard.write();
            for (m, head) in run {
                if let Some((next, _)) = heads.get(i + SET_AHEAD) {
                    self.prefetch(*next);
                }
                let slot = HeadSlot::new(*m, *head);
                if let Some(held) = table.claim(slot, &self.hasher) {
                    *held = slot;
                }
                i += 1;
            }
            shard.publish(&table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn head(tx: Option<u64>, posted: i64) -> Head {
        Head {
            tx: tx.map(TxId),
            posted: Points(posted),
            held: Points(posted / 3),
        }
    }

    /// Members enough for the tables of 256 shards to grow a few times.
    const MEMBERS: u64 = 10_000;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Heads set in batches, members repeated within and across them, answer as a map
        /// given the same heads one by one answers; and each shard's hint names its table.
        #[test]
        fn the_heads_hold_what_a_map_holds(
            batches in proptest::collection::vec(
                proptest::collection::vec(
                    (0u64..MEMBERS, proptest::option::of(0u64..1_000_000), -50i64..50),
                    0..3_000,
                ),
                1..5,
            ),
            spread in prop_oneof![Just(1u64), Just(1u64 << 40), Just(u64::MAX / MEMBERS)],
        ) {
            let heads = Heads::empty();
            let mut model: HashMap<MemberId, Head> = HashMap::new();
            for batch in batches {
                let batch: Vec<(MemberId, Head)> = batch
                    .into_iter()
                    .map(|(m, tx, p)| (MemberId(m.wrapping_mul(spread)), head(tx, p)))
                    .collect();
                for (m, h) in &batch {
                    model.insert(*m, *h);
                }
                heads.set_all(batch);
            }
            for m in 0..MEMBERS {
                let m = MemberId(m.wrapping_mul(spread));
                prop_assert_eq!(heads.get(m), model.get(&m).copied());
            }
            let held: usize = heads.shards.iter().map(|s| s.read().len()).sum();
            prop_assert_eq!(held, model.len());
            for s in &heads.shards {
                prop_assert_eq!(s.published(), s.read().placement());
            }
        }
    }

    /// A member recovered without a transaction keeps `None`; the largest transaction id the
    /// slot can hold comes back as it went in.
    #[test]
    fn a_head_without_a_transaction_and_the_largest_id_round_trip() {
        let heads = Heads::empty();
        heads.set_all(
            [
                (MemberId(7), head(None, 12)),
                (MemberId(8), head(Some(u64::MAX - 2), -4)),
                (MemberId(u64::MAX), head(Some(0), 1)),
            ]
            .to_vec(),
        );
        assert_eq!(heads.get(MemberId(7)), Some(head(None, 12)));
        assert_eq!(heads.get(MemberId(8)), Some(head(Some(u64::MAX - 2), -4)));
        assert_eq!(heads.get(MemberId(u64::MAX)), Some(head(Some(0), 1)));
        assert_eq!(heads.get(MemberId(9)), None);
    }

    /// The heads built from a state answer each member's latest transaction and points, hold
    /// no one else, and each shard's table is the size the same heads set one by one grow it to.
    #[test]
    fn the_heads_of_a_state_are_its_members_and_their_tables_are_sized_once() {
        for members in [0u64, 1, 200, 5_000, 40_000] {
            let mut state = State::new(crate::core::model::Policy::default());
            for m in 0..members {
                let id = MemberId(m * 3 + 1);
                state.members.insert(
                    id,
                    crate::core::state::MemberState {
                        posted: Points(m as i64 - 7),
                        held: Points((m % 5) as i64),
                        last: match m % 4 {
                            0 => crate::core::types::MaybeTx::default(),
                            _ => crate::core::types::MaybeTx::some(TxId(m * 11)),
                        },
                        ..Default::default()
                    },
                );
            }
            let built = Heads::from_state(&state);
            let one_by_one = Heads::empty();
            for (m, s) in &state.members {
                one_by_one.set_all(vec![(
                    *m,
                    Head {
                        tx: s.last.get(),
                        posted: s.posted,
                        held: s.held,
                    },
                )]);
            }
            for (m, s) in &state.members {
                let expected = Head {
                    tx: s.last.get(),
                    posted: s.posted,
                    held: s.held,
                };
                assert_eq!(built.get(*m), Some(expected), "{m:?} of {members}");
            }
            for m in [MemberId(0), MemberId(2), MemberId(members * 3 + 1)] {
                assert_eq!(built.get(m), None, "{m:?} of {members}");
            }
            for (shard, alone) in built.shards.iter().zip(&one_by_one.shards) {
                let (table, other) = (shard.read(), alone.read());
                assert_eq!(table.len(), other.len());
                assert_eq!(
                    table.placement().1,
                    other.placement().1,
                    "{members} members"
                );
                assert_eq!(shard.published(), table.placement());
            }
        }
    }
}
