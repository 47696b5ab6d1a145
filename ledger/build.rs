//! Sets `cfg(fdb_cluster)` when `FDB_CLUSTER_FILE` names an existing file, so the FoundationDB
//! conformance tests run against that cluster and are otherwise reported as ignored, with why.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fdb_cluster)");
    println!("cargo::rerun-if-env-changed=FDB_CLUSTER_FILE");
    if let Ok(path) = std::env::var("FDB_CLUSTER_FILE") {
        println!("cargo::rerun-if-changed={path}");
        if std::path::Path::new(&path).is_file() {
            println!("cargo::rustc-cfg=fdb_cluster");
        }
    }
}
