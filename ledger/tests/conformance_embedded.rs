//! The engine-independent conformance suite, on the embedded engine.

#[macro_use]
mod conformance;
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

for_each_conformance_check!(on_embedded);
