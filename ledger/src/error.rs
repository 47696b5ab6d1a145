//! Errors at the ledger's boundary: why a command was refused ([`Rejection`], from the core),
//! and why the ledger could not act at all ([`LedgerError`]). One variant per cause, each
//! saying what the caller can do next.

pub use crate::core::rejection::Rejection;
use crate::store::StoreError;
use std::time::Duration;

/// Which write path wrote a store, or is asked to open it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePath {
    /// One process, one writer (the embedded default).
    Single,
    /// Many processes, one serialisable transaction per batch (FoundationDB).
    Cluster,
}

impl std::fmt::Display for WritePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WritePath::Single => "single-writer",
            WritePath::Cluster => "cluster",
        })
    }
}

/// Why the ledger could not process a command or a read at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// The command was refused on its merits; nothing changed.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The committer's queue is full; retry later.
    #[error("ledger overloaded: the command queue is full, retry later")]
    Overloaded,
    /// The writer stopped after a storage failure (`why`, the first one). Memory may be ahead
    /// of disk, so nothing more is accepted: restart the process to recover from the journal.
    #[error("ledger stopped: {why}; restart to recover from disk")]
    Stopped {
        /// The failure that stopped it.
        why: String,
    },
    /// The ledger is shutting down: its writer no longer takes commands.
    #[error("ledger is shutting down")]
    ShuttingDown,
    /// A thread of the ledger could not be started.
    #[error("cannot start the {thread} thread: {why}")]
    Spawn {
        /// Which thread.
        thread: &'static str,
        /// The operating system's reason.
        why: String,
    },
    /// The store was written by the other write path; open it with that one.
    #[error("this store is written by a {written} ledger; it cannot be opened as a {asked} one")]
    WrongWritePath {
        /// The path that wrote the store.
        written: WritePath,
        /// The path asked for.
        asked: WritePath,
    },
    /// A read waited this long for derived state to cover earlier commits; retry.
    #[error("derived state is behind the journal after {waited:?}; retry")]
    ReadBehind {
        /// How long the read waited.
        waited: Duration,
    },
    /// On the cluster path, the records this command decides on kept conflicting with other
    /// writers through every attempt; nothing was written, and a retry with the same key is
    /// safe.
    #[error("too much contention on this command's records ({why}); retry")]
    Contended {
        /// The store's last conflict.
        why: String,
    },
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    /// Stored bytes did not decode or contradict each other: the store is corrupt or from an
    /// incompatible version. The text names the record.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<postcard::Error> for LedgerError {
    fn from(e: postcard::Error) -> Self {
        LedgerError::Corrupt(e.to_string())
    }
}
