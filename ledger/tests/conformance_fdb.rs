//! The engine-independent conformance suite, unchanged, on FoundationDB.
//!
//! Runs when `FDB_CLUSTER_FILE` names a cluster file at build time (and `libfdb_c` is
//! installed): `FDB_CLUSTER_FILE=/etc/foundationdb/fdb.cluster cargo test -p ledger --features fdb`.
//! Otherwise every test here is reported as ignored, with the reason. Each test works in its own
//! subspace and clears it before and after.

#![cfg(feature = "fdb")]

#[macro_use]
mod conformance;
use ledger::store::fdb::FdbStore;

fn subspace(test: &str) -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("ledger-conformance/{test}/{}-{nanos}/", std::process::id()).into_bytes()
}

macro_rules! on_fdb {
    ($($check:ident),* $(,)?) => {$(
        #[test]
        #[cfg_attr(
            not(fdb_cluster),
            ignore = "FDB_CLUSTER_FILE does not name a cluster file at build time; set it (and install libfdb_c) to run the conformance suite on FoundationDB"
        )]
        fn $check() {
            let cluster = std::env::var("FDB_CLUSTER_FILE").expect("FDB_CLUSTER_FILE is set");
            let prefix = subspace(stringify!($check));
            let first = FdbStore::open(&cluster, &prefix).expect("connect to the cluster");
            first.clear_subspace().expect("clear the test subspace");
            // Each "open" is a new client handle on the same subspace: a reopen, as the suite
            // means it, for an engine whose state lives in the cluster.
            conformance::$check(&mut || FdbStore::open(&cluster, &prefix).expect("reopen"));
            first.clear_subspace().expect("clear the test subspace");
        }
    )*};
}

for_each_conformance_check!(on_fdb);
