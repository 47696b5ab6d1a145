//! What the handle, the writer threads and the projector share: the committed and projected
//! watermarks, the first failure, and the counters.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::LedgerError;

/// Called after every durable batch with the number of transactions and the batch's time from
/// the first command taken off the queue to the end of the fsync.
pub type CommitObserver = Arc<dyn Fn(usize, Duration) + Send + Sync>;

/// Counters the ledger keeps about itself.
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Storage commits by the committer.
    pub batches: AtomicU64,
    /// Transactions committed.
    pub transactions: AtomicU64,
    /// Sum of batch commit durations, microseconds.
    pub commit_us_total: AtomicU64,
    /// Batches journal followers were handed from memory rather than read from the journal
    /// ([`crate::Ledger::for_each_batch_after`]).
    pub followed_from_memory: AtomicU64,
    /// Member pages the single writer copied whole for the projector to write.
    pub pages_written_whole: AtomicU64,
    /// Member pages it copied as their members changed since the whole copy.
    pub pages_written_as_changes: AtomicU64,
    /// Members encoded into those copies, both forms.
    pub page_members_encoded: AtomicU64,
}

impl LedgerStats {
    /// The single writer's member page copies so far.
    pub fn page_writes(&self) -> PageWrites {
        PageWrites {
            whole: self.pages_written_whole.load(Ordering::Relaxed),
            changes: self.pages_written_as_changes.load(Ordering::Relaxed),
            members: self.page_members_encoded.load(Ordering::Relaxed),
        }
    }
}

/// Member page copies counted ([`LedgerStats::page_writes`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageWrites {
    /// Pages copied whole.
    pub whole: u64,
    /// Pages copied as their members changed since the whole copy.
    pub changes: u64,
    /// Members encoded into either.
    pub members: u64,
}

impl PageWrites {
    /// The copies counted since `before`.
    pub fn since(&self, before: &PageWrites) -> PageWrites {
        PageWrites {
            whole: self.whole - before.whole,
            changes: self.changes - before.changes,
            members: self.members - before.members,
        }
    }
}

/// State shared by the handle, the writer threads and the projector.
pub(crate) struct Shared {
    projected: Mutex<u64>,
    projected_cv: Condvar,
    committed: AtomicU64,
    failure: Mutex<Option<String>>,
    /// Set by `Ledger::stop_as_if_crashed`: the projector skips its shutdown writes.
    pub(crate) skip_shutdown_writes: AtomicBool,
    pub stats: LedgerStats,
    on_commit: Option<CommitObserver>,
    /// Reversal totals the single writer holds in memory (as of its last batch).
    reversal_totals: AtomicUsize,
}

impl Shared {
    /// Batches through `projected` are projected and through `committed` durable.
    pub fn new(projected: u64, committed: u64, on_commit: Option<CommitObserver>) -> Arc<Shared> {
        assert!(projected == u64::MAX || projected <= committed);
        Arc::new(Shared {
            projected: Mutex::new(projected),
            projected_cv: Condvar::new(),
            committed: AtomicU64::new(committed),
            failure: Mutex::new(None),
            skip_shutdown_writes: AtomicBool::new(false),
            stats: LedgerStats::default(),
            on_commit,
            reversal_totals: AtomicUsize::new(0),
        })
    }

    /// The last batch projected: the store holds its derived records (a snapshot taken after
    /// this returns includes them).
    pub fn projected(&self) -> u64 {
        *self.projected.lock().expect("projected lock")
    }

    /// Notes how many reversal totals the single writer holds in memory.
    pub fn set_reversal_totals(&self, n: usize) {
        self.reversal_totals.store(n, Ordering::Relaxed);
    }

    /// Reversal totals the single writer holds in memory.
    pub fn reversal_totals(&self) -> usize {
        self.reversal_totals.load(Ordering::Relaxed)
    }

    /// Marks batches through `seq` projected and wakes the readers waiting for them.
    pub fn projected_to(&self, seq: u64) {
        let mut projected = self.projected.lock().expect("projected lock");
        debug_assert!(seq >= *projected, "the projector never goes back");
        *projected = seq;
        self.projected_cv.notify_all();
    }

    /// Batch `seq` of `txs` transactions is durable; `took` from its first command to fsync.
    pub fn committed(&self, seq: u64, txs: usize, took: Duration) {
        let before = self.committed.swap(seq, Ordering::AcqRel);
        debug_assert!(seq >= before, "batches are published in order");
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .transactions
            .fetch_add(txs as u64, Ordering::Relaxed);
        self.stats
            .commit_us_total
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if let Some(f) = &self.on_commit {
            f(txs, took);
        }
    }

    /// Batches through `seq` are durable already (recovered from the journal at open).
    pub fn recovered_through(&self, seq: u64) {
        self.committed.store(seq, Ordering::Release);
    }

    /// The last batch published as durable.
    pub fn committed_version(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Records the first failure; the ledger accepts nothing after it.
    pub fn fail(&self, why: String) {
        self.failure
            .lock()
            .expect("failure lock")
            .get_or_insert(why);
        self.projected_cv.notify_all();
    }

    /// The first failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("failure lock").clone()
    }

    /// `Stopped` with the first failure, if there was one.
    pub fn check(&self) -> Result<(), LedgerError> {
        match self.failure() {
            Some(why) => Err(LedgerError::Stopped { why }),
            None => Ok(()),
        }
    }

    /// Waits, at most `wait_max`, until every batch through `target` is projected.
    pub fn wait_projected(&self, target: u64, wait_max: Duration) -> Result<(), LedgerError> {
        let started = Instant::now();
        let deadline = started + wait_max;
        let mut projected = self.projected.lock().expect("projected lock");
        while *projected < target {
            self.check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LedgerError::ReadBehind {
                    waited: started.elapsed(),
                });
            }
            projected = self
                .projected_cv
                .wait_timeout(projected, left)
                .expect("projected lock")
                .0;
        }
        Ok(())
    }
}

/// What a panic said, when it said it in text.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
