//! `ledger`: the admin CLI. `ledger verify --data DIR` audits a store.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ledger::store::{EmbeddedStore, Store};
use ledger::{Ledger, LedgerConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ledger",
    about = "Coalition points ledger: admin tools",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Recompute every balance, lot and hold from the journal and check the invariants.
    /// Exits 1 naming the first broken account or transaction.
    Verify {
        /// Data directory of the embedded store.
        #[arg(long)]
        data: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Verify { data } => match verify(&data) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("verify: FAILED: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn verify(data: &std::path::Path) -> anyhow::Result<()> {
    if !data.is_dir() {
        anyhow::bail!("no store at {}", data.display());
    }
    let store = EmbeddedStore::open(data).with_context(|| format!("opening {}", data.display()))?;
    println!(
        "verify: store at {} (commit version {})",
        data.display(),
        store.next_version() - 1
    );
    // Opening recovers: the journal after the projector's watermark is replayed into the
    // derived state, so the audit compares a complete projection.
    let ledger = Ledger::open(store, LedgerConfig::default()).context("recovering the ledger")?;
    let snap = ledger
        .read_snapshot()
        .context("waiting for derived state")?;
    let report = ledger::audit::audit(&snap)?;
    println!("verify: journal: {} batches, {} transactions, {} postings: each balanced per asset, ids in commit order, idempotency keys unique", report.batches, report.transactions, report.postings);
    println!("verify: members: {} records equal to the journal's recomputation (balance, holds, lots summing to the balance); none below zero except by clawback", report.members);
    println!("verify: accounts: {} system account balances, {} open holds, {} idempotency entries equal to the journal's recomputation", report.accounts, report.open_holds, report.idempotency_keys);
    println!(
        "verify: points outstanding (owed to members): {}",
        report.points_outstanding
    );
    println!("verify: OK");
    ledger.shutdown();
    Ok(())
}
