//! `ledger`: the admin CLI. `ledger verify --data DIR` audits a store (`--store fdb:FILE` a
//! FoundationDB subspace, in builds with the `fdb` feature).

use anyhow::Context;
use clap::{Parser, Subcommand};
use ledger::store::{Engine, EngineSpec, Store};
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
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// `embedded`, or `fdb:<cluster file>` (builds with the `fdb` feature).
        #[arg(long, default_value = "embedded")]
        store: EngineSpec,
        /// FoundationDB key prefix of the ledger.
        #[arg(long, default_value = "coalition/")]
        fdb_subspace: String,
        /// A published chain checkpoint (`POSITION:LINK`, as a period close exports it) the
        /// store must still hold; repeat for several.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<ledger::chain::Checkpoint>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Verify {
            data,
            store,
            fdb_subspace,
            checkpoints,
        } => {
            let verified = verify(&data, &store, &fdb_subspace, &checkpoints);
            Engine::stop_client();
            match verified {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("verify: FAILED: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn verify(
    data: &std::path::Path,
    spec: &EngineSpec,
    subspace: &str,
    checkpoints: &[ledger::chain::Checkpoint],
) -> anyhow::Result<()> {
    if *spec == EngineSpec::Embedded && !data.is_dir() {
        anyhow::bail!("no store at {}", data.display());
    }
    let store = Engine::open(spec, data, subspace.as_bytes()).with_context(|| match spec {
        EngineSpec::Embedded => format!("opening {}", data.display()),
        EngineSpec::Fdb { cluster_file } => format!("connecting through {cluster_file}"),
    })?;
    let cluster = ledger::journal::is_cluster_store(&store.snapshot()?)?;
    match spec {
        EngineSpec::Embedded => println!(
            "verify: store at {} (commit version {})",
            data.display(),
            store.next_version() - 1
        ),
        EngineSpec::Fdb { cluster_file } => {
            println!("verify: FoundationDB subspace {subspace:?} through {cluster_file}")
        }
    }
    // The chain first, on the store as found: opening the ledger writes to it.
    let chain = ledger::chain::verify(&store.snapshot()?, checkpoints)?;
    for f in &chain.findings {
        println!("verify: chain: {f}");
    }
    println!(
        "verify: chain: {} batches, {} chained, {} not yet sealed (cluster path), {} checkpoint(s) matched; head {}",
        chain.batches,
        chain.chained,
        chain.unsealed,
        chain.checkpoints,
        chain
            .head
            .as_ref()
            .map_or_else(|| "none".to_string(), |c| c.to_string())
    );
    // A single-writer store is opened first: that recovers the journal after the projector's
    // watermark into the derived state, so the audit compares a complete projection. The
    // cluster path writes derived state with the journal, so its store is audited as it is.
    let (ledger, snap) = if cluster {
        println!("verify: written on the cluster path (many gateways); journal shards merged in commit order");
        (None, store.snapshot()?)
    } else {
        let ledger =
            Ledger::open(store, LedgerConfig::default()).context("recovering the ledger")?;
        let snap = ledger
            .read_snapshot()
            .context("waiting for derived state")?;
        (Some(ledger), snap)
    };
    let report = ledger::audit::audit(&snap)?;
    println!("verify: journal: {} batches, {} transactions, {} postings: each balanced per asset, ids unique and (single writer) in commit order, idempotency keys unique", report.batches, report.transactions, report.postings);
    println!("verify: members: {} members' transaction chains (each transaction's posted and held points and link to the member's previous one) and {} stored member states (each as of the batch its page or record covers: balance, holds, lots summing to the balance) equal to the journal's recomputation; none below zero except by clawback", report.members, report.member_records);
    println!("verify: accounts: {} system account balances, {} open holds, {} idempotency entries equal to the journal's recomputation", report.accounts, report.open_holds, report.idempotency_keys);
    println!(
        "verify: points outstanding (owed to members): {}",
        report.points_outstanding
    );
    if !chain.findings.is_empty() {
        anyhow::bail!(
            "the journal does not match its hash chain: {} finding(s) above",
            chain.findings.len()
        );
    }
    println!("verify: OK");
    if let Some(l) = ledger {
        l.shutdown();
    }
    Ok(())
}
