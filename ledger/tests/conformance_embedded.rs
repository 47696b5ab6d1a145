//! The engine-independent conformance suite, on the embedded engine.

use ledger::conformance;
use ledger::store::EmbeddedStore;

macro_rules! on_embedded {
    ($($check:ident),* $(,)?) => {$(
        #[test]
        fn $check() {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().to_path_buf();
            conformance::$check(&mut || EmbeddedStore::open(&path).expect("open store"));
        }
    )*};
}

on_embedded!(
    store_orders_keys_and_ranges,
    store_clears_and_clear_ranges,
    store_atomic_add_is_little_endian_and_accumulates,
    store_versions_increase_and_stamp_keys_in_commit_order,
    store_snapshots_are_isolated_from_later_commits,
    store_commits_survive_reopen,
    ledger_commands_balances_and_audit,
    ledger_state_survives_reopen,
);
