//! `loadtest`: drives the gateway's hot path. The HTTP harness builds on the gateway; see
//! `cargo bench -p ledger --bench committer` for the committer benchmark.

fn main() {
    eprintln!("loadtest: the HTTP load harness is not built yet; run `cargo bench -p ledger --bench committer` for the committer benchmark");
    std::process::exit(2);
}
