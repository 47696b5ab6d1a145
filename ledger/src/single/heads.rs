//! Each member's latest transaction and points, in memory, for readers (single committer).
//!
//! The projector sets a member's head as it projects each transaction, before it announces the
//! batch projected; a read that waited for its own commits to be projected (see
//! [`crate::Ledger::read_snapshot`]) sees them here. Balances are answered from the head alone.
//! Statements and as-of reads start at the head's transaction and follow each transaction's
//! link to the member's previous one ([`crate::core::model::MemberAfter::prev`]) through the journal;
//! a store snapshot taken after the head was read holds every transaction of the chain.
//!
//! At open the heads are built from the recovered state. Split into [`SHARDS`] locked maps so
//! the projector and readers rarely meet on one lock.

use crate::core::model::MemberAfter;
use crate::core::state::{Map, State};
use crate::core::types::{MemberId, Points, TxId};
use std::sync::RwLock;

/// How many maps the heads are split into (a power of two).
const SHARDS: usize = 256;

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

/// The heads of every member.
pub(crate) struct Heads {
    shards: Vec<RwLock<Map<MemberId, Head>>>,
}

impl Heads {
    /// Heads of every member in `state`.
    pub fn from_state(state: &State) -> Heads {
        let heads = Heads {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
        };
        for (m, s) in &state.members {
            heads.set(
                *m,
                Head {
                    tx: s.last.get(),
                    posted: s.posted,
                    held: s.held,
                },
            );
        }
        heads
    }

    fn shard_index(&self, m: MemberId) -> usize {
        // Fibonacci hashing spreads sequential member ids over the shards.
        (m.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARDS.trailing_zeros())) as usize
    }

    fn shard(&self, m: MemberId) -> &RwLock<Map<MemberId, Head>> {
        &self.shards[self.shard_index(m)]
    }

    /// Member `m`'s head, if the member is enrolled.
    pub fn get(&self, m: MemberId) -> Option<Head> {
        self.shard(m).read().expect("heads lock").get(&m).copied()
    }

    /// Sets member `m`'s head.
    pub fn set(&self, m: MemberId, head: Head) {
        self.shard(m).write().expect("heads lock").insert(m, head);
    }

    /// Sets many heads, later entries of a member over earlier ones: shard by shard, each
    /// lock taken once for all of its members (a lock per member would wait on each insert's
    /// memory in turn; inserts under one lock overlap).
    pub fn set_all(&self, mut heads: Vec<(MemberId, Head)>) {
        // Stable: a member's heads keep their order, so its last one is inserted last.
        heads.sort_by_key(|(m, _)| self.shard_index(*m));
        for run in heads.chunk_by(|a, b| self.shard_index(a.0) == self.shard_index(b.0)) {
            let mut shard = self.shards[self.shard_index(run[0].0)]
                .write()
                .expect("heads lock");
            for (m, head) in run {
                shard.insert(*m, *head);
            }
        }
    }
}
