//! The cluster command path: many ledger processes (gateways) over one transactional store.
//!
//! The single committer ([`crate::single`]) owns the working state in memory; that is only
//! correct while it is the store's one writer. Here nothing authoritative lives in memory. Each
//! batch of commands runs as store transactions ([`TxnStore::transact`]):
//!
//! - every command's idempotency key, the members, holds, contracts and reversal records it
//!   decides on are read serialisably inside the transaction, so a concurrent writer of any of
//!   them makes the transaction conflict and run again on fresh reads;
//! - [`State::decide`] and [`State::apply`] run on exactly that partial state: the same rules as
//!   the single committer;
//! - the derived records (member, hold, reversal, contract, idempotency, statement) are written
//!   in the same transaction as the journal block;
//! - non-member accounts (partner issuance and redemption, promotions, float, ...) are never
//!   read: their totals are blind atomic adds under [`keys::TOTAL`], so members earning at one
//!   partner never conflict with each other;
//! - the journal block goes under `J seq`, with `seq` from a block of sequence numbers this
//!   process reserved; its commit order is a versionstamped entry under one of
//!   [`JOURNAL_SHARDS`] shard prefixes ([`keys::ORDER`]); readers merge the shards;
//! - a transaction stops taking commands once the writes of the commands pass
//!   [`TXN_BYTES_TARGET`]; its whole write set (journal blocks, member records and the rest,
//!   measured after the last command) must stay under [`TXN_BYTES_MAX`], or it is split in
//!   halves as a conflicting batch is; a single command always fits (every record and journal
//!   value is bounded, see `codec::MEMBER_PART_BYTES` and `codec::PART_FORMAT`).
//!
//! `docs/foundationdb.md` lists, per command, what is read, written and can conflict.

mod chunk;
mod reads;
mod writer;

use crate::error::{LedgerError, WritePath};
use crate::keys;
use crate::shared::open::{LedgerConfig, Started};
use crate::shared::queue::Job;
use crate::shared::status::Shared;
use crate::store::{TxnStore, WriteSet};
use std::time::Duration;

/// A transaction stops taking commands once its writes pass this many bytes (FDB allows
/// 10 MB; staying under 1 MB keeps commits fast and conflicts cheap).
pub const TXN_BYTES_TARGET: usize = 900_000;
/// A transaction's whole write set stays under this many bytes (FoundationDB refuses
/// transactions over 10,000,000 bytes, counting a little more than keys and values).
pub const TXN_BYTES_MAX: usize = 8_000_000;
/// Most commands in one transaction.
pub const TXN_COMMANDS_MAX: usize = 1_000;
/// Attempts of a transaction of several commands before it is split in halves.
const ATTEMPTS_SHARED: u32 = 3;
/// Attempts of a transaction of one command before the command fails as contended.
const ATTEMPTS_ALONE: u32 = 20;
/// Batch sequence numbers reserved per trip to the allocator.
const ID_BLOCK: u64 = 4_096;
/// How often the process holding the system lease looks for holds past their timeout and
/// expiries due, and seals the chain, by default.
pub const SCAN_EVERY: Duration = Duration::from_millis(500);

/// Settings of a process on the cluster path.
#[derive(Debug, Clone, Copy)]
pub struct ClusterConfig {
    /// The journal shard this process appends under (`0..JOURNAL_SHARDS`); give each gateway
    /// its own where possible.
    pub shard: u8,
    /// This process's identity in the system lease. `None` draws a random one at open, and a
    /// restarted process waits for its predecessor's lease to run out (3 s of the clock)
    /// before it posts hold timeouts and expiries. A restarted process given its
    /// predecessor's token takes the lease back at once; two live processes must never share
    /// one.
    pub lease_token: Option<std::num::NonZeroU64>,
    /// How often, on the committer's clock, the lease holder looks for hold timeouts and
    /// expiries due and seals the chain ([`SCAN_EVERY`]; zero: at every batch). An idle
    /// process wakes every [`CommitterConfig::idle_wake`](crate::CommitterConfig) to look.
    pub scan_every: Duration,
}

impl ClusterConfig {
    /// A process appending under journal shard `shard`, with the other settings' defaults.
    pub fn on_shard(shard: u8) -> ClusterConfig {
        ClusterConfig {
            shard,
            lease_token: None,
            scan_every: SCAN_EVERY,
        }
    }
}

/// Marks the store as written on the cluster path (or checks that it is), inside one
/// transaction. A store a single committer wrote cannot switch: its ids and indexes differ.
pub(crate) fn claim_store<S: TxnStore>(store: &S) -> Result<(), LedgerError> {
    store
        .transact(ATTEMPTS_ALONE, &mut |txn| {
            let mut w = WriteSet::default();
            match txn.get(&keys::writer_mode())?.as_deref() {
                Some(b"cluster") => {}
                Some(_) => {
                    return Err(LedgerError::WrongWritePath {
                        written: WritePath::Single,
                        asked: WritePath::Cluster,
                    })
                }
                None => {
                    let journal = txn.range_snapshot(&[keys::JOURNAL], &[keys::JOURNAL + 1], 1)?;
                    if !journal.is_empty() {
                        return Err(LedgerError::WrongWritePath {
                            written: WritePath::Single,
                            asked: WritePath::Cluster,
                        });
                    }
                    w.set(&keys::writer_mode(), b"cluster");
                }
            }
            Ok((w, ()))
        })
        .map(|_| ())
}

/// Opens the cluster path on `store`: one of many processes writing it at once. Nothing is
/// loaded into memory; every batch reads what it decides on inside a store transaction. A
/// store written by a single committer is refused, and vice versa.
pub(crate) fn open<S: TxnStore + Clone>(
    store: &S,
    config: &LedgerConfig,
    cluster: ClusterConfig,
) -> Result<Started<S>, LedgerError> {
    claim_store(store)?;
    let committer = config.committer.checked();
    // Nothing is projected later on this path: reads never wait.
    let shared = Shared::new(u64::MAX, 0, config.on_commit.clone());
    let writer = writer::ClusterWriter::new(
        store.clone(),
        config.policy,
        committer,
        cluster,
        shared.clone(),
    );
    let (jobs, queue) = crossbeam_channel::bounded::<Job>(committer.queue_capacity);
    let failed = shared.clone();
    let writer = std::thread::Builder::new()
        .name("ledger-cluster-writer".into())
        .spawn(move || {
            // Each batch is its own cluster transaction, so storage errors refuse a batch and
            // the writer goes on; a panic (a bug) stops the ledger and says why, and every
            // command queued or sent after it is refused instead of left waiting.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run(&queue)));
            if let Err(panic) = ran {
                let why = format!(
                    "cluster writer panicked: {}",
                    crate::shared::status::panic_text(&*panic)
                );
                tracing::error!(%why, "writer stopped; restart the process");
                failed.fail(why.clone());
                crate::shared::queue::refuse_until_closed(&queue, &why);
            }
        })
        .map_err(|e| LedgerError::Spawn {
            thread: "cluster writer",
            why: e.to_string(),
        })?;
    Ok(Started {
        shared: shared.clone(),
        jobs,
        threads: vec![writer],
        reads: Box::new(reads::ClusterReads { shared }),
    })
}
