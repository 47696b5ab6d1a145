//! `ledger`: the admin CLI. `ledger verify --data DIR` audits a store (`--store fdb:FILE` a
//! FoundationDB subspace, in builds with the `fdb` feature).

use anyhow::Context;
use clap::{Parser, Subcommand};
use ledger::store::{EmbeddedOptions, Engine, EngineSpec, Store};
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

/// Where the store is.
#[derive(clap::Args)]
struct StoreArgs {
    /// Data directory of the embedded store.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// `embedded`, or `fdb:<cluster file>` (builds with the `fdb` feature).
    #[arg(long, default_value = "embedded")]
    store: EngineSpec,
    /// FoundationDB key prefix of the ledger.
    #[arg(long, default_value = "coalition/")]
    fdb_subspace: String,
}

impl StoreArgs {
    fn open(&self) -> anyhow::Result<Engine> {
        if self.store == EngineSpec::Embedded && !self.data.is_dir() {
            anyhow::bail!("no store at {}", self.data.display());
        }
        Engine::open(
            &self.store,
            &self.data,
            self.fdb_subspace.as_bytes(),
            EmbeddedOptions::default(),
        )
        .with_context(|| match &self.store {
            EngineSpec::Embedded => format!("opening {}", self.data.display()),
            EngineSpec::Fdb { cluster_file } => format!("connecting through {cluster_file}"),
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Recompute every balance, lot and hold from the journal and check the invariants.
    /// Exits 1 naming the first broken account or transaction.
    Verify {
        #[command(flatten)]
        at: StoreArgs,
        /// A published chain checkpoint (`POSITION:LINK`, as a period close exports it) the
        /// store must still hold; repeat for several.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<ledger::chain::Checkpoint>,
    },
    /// Finance reports from the journal, on one snapshot: `trial-balance`, `liability`,
    /// `breakage`, `revenue`, `settlements`, `periods` (with their checkpoints), `period`,
    /// `reconcile` (a partner's CSV), and `export-journal`, `export-postings`,
    /// `export-statement` (streamed CSV or NDJSON to stdout). Reads a FoundationDB store while
    /// gateways run; an embedded store only when its gateway is stopped (a live embedded
    /// gateway answers the same reports under `/admin/v1/finance`).
    Finance {
        /// The report.
        report: String,
        #[command(flatten)]
        at: StoreArgs,
        /// The programme's time zone (IANA name): its days and months.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// The instant (ms since the epoch) for `trial-balance`; the end of exports.
        #[arg(long)]
        at_ms: Option<i64>,
        /// The start of exports (ms since the epoch).
        #[arg(long)]
        from_ms: Option<i64>,
        /// A month, `yyyy-mm` (settlements, period, reconcile, breakage, revenue).
        #[arg(long)]
        period: Option<String>,
        /// A partner id (settlements, reconcile).
        #[arg(long)]
        partner: Option<u32>,
        /// A member id (export-statement).
        #[arg(long)]
        member: Option<u64>,
        /// The partner's CSV file (reconcile).
        #[arg(long)]
        csv: Option<PathBuf>,
        /// `csv` or `ndjson` (exports).
        #[arg(long, default_value = "csv")]
        format: String,
        /// Months after which a cohort is mature (breakage, liability, revenue).
        #[arg(long, default_value_t = 24)]
        maturity_months: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        cmd @ Cmd::Finance { .. } => {
            let done = finance(cmd);
            Engine::stop_client();
            match done {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("finance: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Verify { at, checkpoints } => {
            let verified = verify(&at, &checkpoints);
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

fn finance(cmd: Cmd) -> anyhow::Result<()> {
    use ledger::finance::{self, reports, Book};
    let Cmd::Finance {
        report,
        at,
        tz,
        at_ms,
        from_ms,
        period,
        partner,
        member,
        csv,
        format,
        maturity_months,
    } = cmd
    else {
        unreachable!("called for finance only")
    };
    let tz: chrono_tz::Tz = tz
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown time zone {tz:?}"))?;
    let engine = at.open()?;
    let snap = engine.snapshot()?;
    let mut book = Book::new(tz);
    finance::catch_up(&mut book, &snap)?;
    let overrides = finance::overrides(&snap)?;
    let now = ledger::Timestamp::now();
    let month = |p: &Option<String>| -> anyhow::Result<u32> {
        match p {
            None => Ok(book.month(now)),
            Some(s) => {
                let (y, m) = s
                    .split_once('-')
                    .ok_or_else(|| anyhow::anyhow!("--period is yyyy-mm"))?;
                Ok(y.parse::<u32>()? * 100 + m.parse::<u32>()?)
            }
        }
    };
    let print = |v: &dyn erased::Json| -> anyhow::Result<()> {
        println!("{}", v.json()?);
        Ok(())
    };
    match report.as_str() {
        "trial-balance" => print(&reports::trial_balance(
            &book,
            &snap,
            at_ms.map_or(now, ledger::Timestamp),
        )?),
        "liability" => {
            let rate =
                reports::breakage_at(&book, book.month(now), maturity_months, &overrides).rate;
            print(&reports::liability(&book, now, book.buckets(), rate))
        }
        "breakage" => print(&reports::breakage_at(
            &book,
            month(&period)?,
            maturity_months,
            &overrides,
        )),
        "revenue" => print(&reports::revenue(
            &book,
            month(&period)?,
            maturity_months,
            &overrides,
        )),
        "settlements" => {
            let all = reports::settlements(&book, month(&period)?);
            let chosen: Vec<_> = all
                .into_iter()
                .filter(|s| partner.is_none_or(|p| p == s.partner))
                .collect();
            print(&chosen)
        }
        "periods" => {
            for c in &book.closes {
                println!(
                    "{}\t{}\t{}\t{}",
                    c.period,
                    reports::iso(&book, c.from),
                    reports::iso(&book, c.through),
                    reports::checkpoint_at(&snap, &c.position)?
                        .unwrap_or_else(|| "not sealed yet".into())
                );
            }
            Ok(())
        }
        "period" => {
            let p = period.ok_or_else(|| anyhow::anyhow!("--period names the closed month"))?;
            let c = book
                .closes
                .iter()
                .find(|c| c.period == p)
                .ok_or_else(|| anyhow::anyhow!("period {p} is not closed"))?;
            print(&reports::closed_period(
                &book,
                &snap,
                c,
                maturity_months,
                &overrides,
            )?)
        }
        "reconcile" => {
            let p = ledger::PartnerId(partner.ok_or_else(|| anyhow::anyhow!("--partner"))?);
            let file = std::fs::read(csv.ok_or_else(|| anyhow::anyhow!("--csv FILE"))?)?;
            let rows = finance::reconcile::parse(&file)?;
            let m = month(&period)?;
            let ledger_rows = finance::ledger_rows(
                &book,
                &snap,
                p,
                book.month_start(m),
                book.month_start(Book::next_month(m)),
                &mut |_| None,
            )?;
            print(&finance::reconcile::reconcile(rows, ledger_rows))
        }
        "export-journal" | "export-postings" | "export-statement" => {
            use std::io::Write;
            let dataset = match report.as_str() {
                "export-journal" => finance::export::Dataset::Journal,
                "export-postings" => finance::export::Dataset::Postings,
                _ => finance::export::Dataset::Statement(ledger::MemberId(
                    member.ok_or_else(|| anyhow::anyhow!("--member"))?,
                )),
            };
            let format: finance::export::Format =
                format.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            let mut sink = |chunk: Vec<u8>| lock.write_all(&chunk).is_ok();
            let mut w = finance::export::RowWriter::new(format, &mut sink);
            finance::export::export(
                &book,
                &snap,
                dataset,
                from_ms.map(ledger::Timestamp),
                at_ms.map(ledger::Timestamp),
                &mut w,
            )?;
            let rows = w.finish();
            eprintln!("finance: {rows} rows");
            Ok(())
        }
        other => anyhow::bail!("no report {other:?}; see `ledger finance --help`"),
    }
}

/// Serialises any report as pretty JSON.
mod erased {
    pub trait Json {
        fn json(&self) -> serde_json::Result<String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Result<String> {
            serde_json::to_string_pretty(self)
        }
    }
}

fn verify(at: &StoreArgs, checkpoints: &[ledger::chain::Checkpoint]) -> anyhow::Result<()> {
    let store = at.open()?;
    let (data, spec, subspace) = (&at.data, &at.store, &at.fdb_subspace);
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
