//! `partners-gateway`: the partner-facing HTTP service over the ledger (`serve`), and its
//! operator commands. See `docs/api.md` and `partners-gateway --help`.

/// mimalloc: the committer and projector allocate per command; on the committer benchmark it
/// cut CPU per transaction by about a fifth against the system allocator (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    ledger::allocator::tune();
    partners_gateway::run_cli()
}
