//! How a write path is opened: the ledger's settings, and what the handle holds of a started
//! path (its queue, its threads, its reads).

use crate::core::model::Policy;
use crate::error::LedgerError;
use crate::reads::PathReads;
use crate::shared::queue::{CommitterConfig, Job};
use crate::shared::status::{CommitObserver, Shared};
use crate::store::Store;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Ledger settings.
#[derive(Clone)]
pub struct LedgerConfig {
    /// Committer tuning.
    pub committer: CommitterConfig,
    /// Programme policy.
    pub policy: Policy,
    /// Optional hook for metrics on every committed batch.
    pub on_commit: Option<CommitObserver>,
    /// Transactions committed between the first change to a member page (1,024 member ids)
    /// and the write of the stored page (0: with every projector commit). Every change to the
    /// page's members meanwhile is covered by that one write. Each page waits up to as long
    /// again (an offset per page, so that pages changed together are not written together). A
    /// restart replays at most about twice this many transactions for member pages; a clean
    /// shutdown writes them all.
    pub member_write_delay: u64,
    /// Idempotency keys the single writer keeps in memory: those of about this many of the
    /// latest transactions. Older keys move to an on-disk index (`L` records), still answered
    /// exactly once: a key missing from memory is looked up there before it counts as new.
    /// Memory and restart time then follow this window, not the length of history.
    pub keys_in_memory: usize,
    /// Reversal totals (the part of an earn or burn reversed so far) the single writer and its
    /// projector each keep in memory: those of about this many of the highest-numbered
    /// originals reversed. A reversal of an older original reads its total from the store
    /// (one key). Memory and restart time then follow this window, not the number of
    /// originals ever reversed.
    pub reversal_totals_in_memory: usize,
}

impl Default for LedgerConfig {
    fn default() -> LedgerConfig {
        LedgerConfig {
            committer: CommitterConfig::default(),
            policy: Policy::default(),
            on_commit: None,
            member_write_delay: 1_000_000,
            keys_in_memory: 10_000_000,
            reversal_totals_in_memory: 250_000,
        }
    }
}

impl std::fmt::Debug for LedgerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerConfig")
            .field("committer", &self.committer)
            .field("policy", &self.policy)
            .field("member_write_delay", &self.member_write_delay)
            .field("keys_in_memory", &self.keys_in_memory)
            .field("reversal_totals_in_memory", &self.reversal_totals_in_memory)
            .finish_non_exhaustive()
    }
}

/// A write path, started: what the handle holds of it.
pub(crate) struct Started<S: Store> {
    pub shared: Arc<Shared>,
    pub jobs: crossbeam_channel::Sender<Job>,
    /// Joined in this order at shutdown (the writer before what it feeds).
    pub threads: Vec<JoinHandle<()>>,
    pub reads: Box<dyn PathReads<S>>,
}

/// Runs `work` on a thread named `name` within an open's scope `s`. The thread returns what
/// it freed to the kernel before it ends ([`crate::allocator::release_freed`]): the tables it
/// grew left their smaller copies freed in its heap, which no other thread would reuse soon.
pub(crate) fn beside<'scope, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    name: &'static str,
    work: impl FnOnce() -> T + Send + 'scope,
) -> Result<std::thread::ScopedJoinHandle<'scope, T>, LedgerError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(s, move || {
            let out = work();
            crate::allocator::release_freed();
            out
        })
        .map_err(|e| LedgerError::Spawn {
            thread: name,
            why: e.to_string(),
        })
}

/// What the thread `beside` started returned; its panic, if it panicked.
pub(crate) fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
