//! The command queue both write paths take work from: a command with the channel its answer
//! goes to, the committed batch handed on, and the limits of both (checked against each other
//! by [`CommitterConfig::checked`]).

use crate::core::model::{Command, Digest, Pricing, Receipt, Transaction};
use crate::core::types::Timestamp;
use crate::error::LedgerError;
use std::sync::Arc;
use std::time::Duration;

/// Where a command's answer goes.
pub(crate) type Reply = tokio::sync::oneshot::Sender<Result<Receipt, LedgerError>>;

/// A waiting command's answer.
pub type Pending = tokio::sync::oneshot::Receiver<Result<Receipt, LedgerError>>;

/// A command waiting for the writer, with the channel its answer goes to.
pub(crate) struct Job {
    pub cmd: Command,
    pub pricing: Option<Pricing>,
    pub reply: Reply,
    /// The hash of the command's key ([`crate::keys::hash_key`]) and its digest with its
    /// pricing: computed by the submitting thread, so that the one writer does not.
    pub hash: u128,
    pub digest: Digest,
}

impl Job {
    /// A job for `cmd`, its hash and digest computed here, on the caller's thread.
    pub(crate) fn new(cmd: Command, pricing: Option<Pricing>, reply: Reply) -> Job {
        Job {
            hash: crate::keys::hash_key(cmd.key()),
            digest: cmd.digest_priced(pricing.as_ref()),
            cmd,
            pricing,
            reply,
        }
    }
}

/// Answers every command that reaches a stopped writer with `why`, until the ledger drops its
/// sender. A channel keeps what it holds until its last sender goes, even after its receiver
/// is dropped: a command sent after the writer's last drain would otherwise wait forever.
pub(crate) fn refuse_until_closed(jobs: &crossbeam_channel::Receiver<Job>, why: &str) {
    for job in jobs.iter() {
        refuse(job.reply, why);
    }
}

/// Answers a caller that the ledger stopped, and why.
pub(crate) fn refuse(reply: Reply, why: &str) {
    let _ = reply.send(Err(LedgerError::Stopped {
        why: why.to_string(),
    }));
}

/// A committed batch, as handed to the projector.
pub(crate) struct Batch {
    pub seq: u64,
    pub at: Timestamp,
    /// Shared with the receipts of their commands.
    pub txs: Vec<Arc<Transaction>>,
    /// Member pages due to be written, copied from the writer's state as of this batch.
    pub pages: Vec<PageCopy>,
    /// The batch through which every member page is current once this batch's pages are
    /// written.
    pub members_through: u64,
    /// Members the writer held as of this batch (0 in a batch refused whole).
    pub members_held: u64,
}

/// A member page as of the batch that carries it, encoded from the writer's state (a
/// [`MemberPage`](crate::codec::MemberPage) whose `through` is that batch): one buffer, where
/// a copy of each member's state would take several allocations for the projector to free.
/// Whole, or only the members changed since its last whole copy (`form`).
pub(crate) struct PageCopy {
    pub page: u64,
    pub encoded: Vec<u8>,
    pub form: PageForm,
    /// Members encoded.
    pub members: u64,
}

/// How a member page is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageForm {
    /// Every member, as the page's whole copy; `clear_changes` when a record of changes is
    /// stored beside the old copy, which the new one makes stale.
    Whole { clear_changes: bool },
    /// The members changed since the page's last whole copy (every one of them again: the
    /// record replaces the one before it).
    Changes,
}

/// Transactions one batch may commit: a [`TxId`](crate::TxId) keeps the slot in 16 bits.
pub const BATCH_TXS_MAX: usize = 1 << 16;
/// Most commands one batch takes from the queue.
pub const BATCH_SIZE_MAX: usize = 60_000;
/// Most hold expiries one batch posts (each is a transaction of the batch too).
pub const HOLD_EXPIRIES_PER_BATCH_MAX: usize = 4_096;
/// Most commands the queue holds.
pub const QUEUE_CAPACITY_MAX: usize = 1 << 20;
/// Committed batches that may wait for the projector before the writer blocks.
pub const PROJECTOR_QUEUE_BATCHES: usize = 64;

// A batch's commands plus its hold expiries always fit the id's slot.
const _: () = assert!(BATCH_SIZE_MAX + HOLD_EXPIRIES_PER_BATCH_MAX <= BATCH_TXS_MAX);

/// Committer tuning. Every limit has a default sized for a small machine.
#[derive(Debug, Clone, Copy)]
pub struct CommitterConfig {
    /// Most commands in one storage commit (1 to [`BATCH_SIZE_MAX`]).
    pub batch_size_max: usize,
    /// How long the writer waits for more commands after the first before committing.
    pub linger: Duration,
    /// Commands that may wait in the queue (1 to [`QUEUE_CAPACITY_MAX`]); beyond that,
    /// submission fails with `Overloaded`.
    pub queue_capacity: usize,
    /// Hold timeouts and points expiries processed per batch (1 to
    /// [`HOLD_EXPIRIES_PER_BATCH_MAX`]).
    pub hold_expiries_per_batch_max: usize,
    /// The clock batches are stamped with.
    pub clock: crate::clock::Clock,
    /// How often an idle writer wakes to post the hold timeouts and points expiries that fell
    /// due without a command to carry them.
    pub idle_wake: Duration,
}

impl Default for CommitterConfig {
    fn default() -> Self {
        CommitterConfig {
            batch_size_max: 8192,
            linger: Duration::ZERO,
            queue_capacity: 65_536,
            hold_expiries_per_batch_max: 1024,
            clock: crate::clock::Clock::system(),
            idle_wake: Duration::from_millis(100),
        }
    }
}

impl CommitterConfig {
    /// This configuration with every limit brought into its range, so that a batch's commands
    /// plus its hold expiries always fit a transaction id's slot.
    pub fn checked(self) -> CommitterConfig {
        let c = CommitterConfig {
            batch_size_max: self.batch_size_max.clamp(1, BATCH_SIZE_MAX),
            linger: self.linger,
            queue_capacity: self.queue_capacity.clamp(1, QUEUE_CAPACITY_MAX),
            hold_expiries_per_batch_max: self
                .hold_expiries_per_batch_max
                .clamp(1, HOLD_EXPIRIES_PER_BATCH_MAX),
            clock: self.clock,
            idle_wake: self.idle_wake.max(Duration::from_millis(1)),
        };
        assert!(c.batch_size_max + c.hold_expiries_per_batch_max <= BATCH_TXS_MAX);
        c
    }
}

/// The ledger's own command that posts member `member`'s points due at `deadline` to breakage.
/// Its key names the member and the date, so a restart that posts it again replays it.
pub(crate) fn expire_command(
    member: crate::core::types::MemberId,
    deadline: crate::core::types::Timestamp,
) -> crate::core::model::Command {
    crate::core::model::Command::Expire {
        key: crate::core::model::IdemKey {
            scope: crate::core::model::Scope::System,
            reference: format!("expire/{}/{}", member.0, deadline.0),
        },
        member,
    }
}
