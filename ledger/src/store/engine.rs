//! [`Engine`]: the store a process was configured with, chosen at start-up.
//!
//! `embedded` opens the fjall engine in a data directory; `fdb:<cluster file>` (built with the
//! `fdb` feature) connects to a FoundationDB cluster. Both implement [`Store`] and
//! [`TxnStore`]; this enum forwards to whichever was chosen, so the gateway and tools are
//! written once.

use super::{
    EmbeddedOptions, EmbeddedStore, KeyValue, Snapshot, Store, StoreError, TxnBody, TxnStore,
    Version, WriteSet,
};
use crate::store::Durability;
use std::path::Path;

/// Where a process keeps the ledger, as written in configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineSpec {
    /// The embedded engine in the process's data directory; one writer process.
    Embedded,
    /// A FoundationDB cluster, through this cluster file; many writer processes.
    Fdb {
        /// Path of the cluster file.
        cluster_file: String,
    },
}

impl std::str::FromStr for EngineSpec {
    type Err = String;

    /// `embedded`, or `fdb:` followed by a cluster file path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "embedded" => Ok(EngineSpec::Embedded),
            Some(("fdb", path)) if !path.is_empty() => Ok(EngineSpec::Fdb {
                cluster_file: path.to_string(),
            }),
            _ => Err(format!(
                "store {s:?} is not understood: use \"embedded\" or \"fdb:<cluster file>\", \
                 for example fdb:/etc/foundationdb/fdb.cluster"
            )),
        }
    }
}

/// An open store of either engine.
#[derive(Clone)]
pub enum Engine {
    /// The embedded engine.
    Embedded(EmbeddedStore),
    /// FoundationDB.
    #[cfg(feature = "fdb")]
    Fdb(super::fdb::FdbStore),
    /// The embedded engine behind [`FaultyStore`](super::faults::FaultyStore): FoundationDB's
    /// limits and faults, for tests of what runs on an `Engine` (the gateway's registry). Never
    /// chosen by configuration.
    Faulty(super::faults::FaultyStore<EmbeddedStore>),
}

impl Engine {
    /// Opens `spec`: the embedded engine in `data` with `embedded`'s settings, or the
    /// FoundationDB subspace `subspace`.
    pub fn open(
        spec: &EngineSpec,
        data: &Path,
        subspace: &[u8],
        embedded: EmbeddedOptions,
    ) -> Result<Engine, StoreError> {
        match spec {
            EngineSpec::Embedded => {
                let _ = subspace;
                Ok(Engine::Embedded(EmbeddedStore::open_with(data, embedded)?))
            }
            #[cfg(feature = "fdb")]
            EngineSpec::Fdb { cluster_file } => Ok(Engine::Fdb(super::fdb::FdbStore::open(
                cluster_file,
                subspace,
            )?)),
            #[cfg(not(feature = "fdb"))]
            EngineSpec::Fdb { .. } => Err(StoreError::Engine(
                "this build has no FoundationDB engine: build with `--features fdb` (needs \
                 libfdb_c 7.3 to link; see docs/foundationdb.md)"
                    .into(),
            )),
        }
    }

    /// Stops the engine's client machinery for good, once every store is dropped and before
    /// the process exits: FoundationDB's network thread (nothing to do for the embedded
    /// engine, or when no FoundationDB store was opened).
    pub fn stop_client() {
        #[cfg(feature = "fdb")]
        super::fdb::stop_network();
    }

    /// Ends a bulk load: the embedded engine writes its active memtable to tables now and
    /// waits for the compactions that follow ([`EmbeddedStore::settle`]); FoundationDB keeps
    /// no memtable or compaction of ours.
    pub fn settle(&self) -> Result<(), StoreError> {
        match self {
            Engine::Embedded(s) => s.settle(),
            #[cfg(feature = "fdb")]
            Engine::Fdb(_) => Ok(()),
            Engine::Faulty(s) => s.inner().settle(),
        }
    }

    /// True for an engine many processes may write at once (they must use the cluster path).
    pub fn is_shared(&self) -> bool {
        !matches!(self, Engine::Embedded(_))
    }
}

/// A snapshot of either engine.
pub enum EngineSnapshot {
    /// The embedded engine's.
    Embedded(super::embedded::EmbeddedSnapshot),
    /// FoundationDB's.
    #[cfg(feature = "fdb")]
    Fdb(super::fdb::FdbSnapshot),
}

macro_rules! forward {
    ($self:ident, $x:ident => $e:expr) => {
        match $self {
            Self::Embedded($x) => $e,
            #[cfg(feature = "fdb")]
            Self::Fdb($x) => $e,
        }
    };
}

impl Snapshot for EngineSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        forward!(self, s => s.get(key))
    }

    fn get_with(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool, StoreError> {
        forward!(self, s => s.get_with(key, f))
    }

    fn range(
        &self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>, StoreError> {
        forward!(self, s => s.range(begin, end, limit, reverse))
    }

    fn scan(
        &self,
        begin: &[u8],
        end: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        forward!(self, s => s.scan(begin, end, f))
    }

    fn version(&self) -> Version {
        forward!(self, s => s.version())
    }
}

impl Store for Engine {
    type Snapshot = EngineSnapshot;

    fn snapshot(&self) -> Result<EngineSnapshot, StoreError> {
        match self {
            Engine::Embedded(s) => Ok(EngineSnapshot::Embedded(s.snapshot()?)),
            #[cfg(feature = "fdb")]
            Engine::Fdb(s) => Ok(EngineSnapshot::Fdb(s.snapshot()?)),
            Engine::Faulty(s) => Ok(EngineSnapshot::Embedded(s.snapshot()?)),
        }
    }

    fn commit(&self, writes: WriteSet, durability: Durability) -> Result<Version, StoreError> {
        match self {
            Engine::Embedded(s) => s.commit(writes, durability),
            #[cfg(feature = "fdb")]
            Engine::Fdb(s) => s.commit(writes, durability),
            Engine::Faulty(s) => s.commit(writes, durability),
        }
    }

    fn next_version(&self) -> Version {
        match self {
            Engine::Embedded(s) => s.next_version(),
            #[cfg(feature = "fdb")]
            Engine::Fdb(s) => s.next_version(),
            Engine::Faulty(s) => s.next_version(),
        }
    }
}

impl TxnStore for Engine {
    fn transact<T, E: From<StoreError>>(
        &self,
        attempts: u32,
        body: &mut TxnBody<'_, T, E>,
    ) -> Result<(Version, T), E> {
        match self {
            Engine::Embedded(s) => s.transact(attempts, body),
            #[cfg(feature = "fdb")]
            Engine::Fdb(s) => s.transact(attempts, body),
            Engine::Faulty(s) => s.transact(attempts, body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!("embedded".parse::<EngineSpec>(), Ok(EngineSpec::Embedded));
        assert_eq!(
            "fdb:/etc/foundationdb/fdb.cluster".parse::<EngineSpec>(),
            Ok(EngineSpec::Fdb {
                cluster_file: "/etc/foundationdb/fdb.cluster".into()
            })
        );
        for bad in ["", "fdb:", "rocksdb", "fdb"] {
            let e = bad.parse::<EngineSpec>().expect_err(bad);
            assert!(e.contains("fdb:<cluster file>"), "{e}");
        }
    }
}
