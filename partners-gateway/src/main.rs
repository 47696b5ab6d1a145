//! `partners-gateway`: the partner-facing HTTP service. Until the HTTP API lands, `serve --demo`
//! runs the ledger on the embedded store with a demo coalition and reports what it committed.

fn main() -> anyhow::Result<()> {
    partners_gateway::run_cli()
}
