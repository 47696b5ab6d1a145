//! The partners gateway. This first cut runs the ledger on the embedded store with a demo
//! coalition and a trickle of demo traffic; the signed HTTP API builds on it.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ledger::store::EmbeddedStore;
use ledger::{
    Command, Contract, IdemKey, Ledger, LedgerConfig, LedgerError, MemberId, PartnerId, Points,
};
use rust_decimal::Decimal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "partners-gateway",
    about = "Coalition points ledger: partner gateway",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the service on the embedded store.
    Serve {
        /// Data directory of the embedded store.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Seed a demo coalition (an airline, a fuel retailer, a telecom; 5,000 members) and
        /// post demo traffic.
        #[arg(long)]
        demo: bool,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        seconds: Option<u64>,
    },
}

/// The demo coalition's partners: id, name, currency, issuance and redemption price per point.
pub const DEMO_PARTNERS: [(u32, &str, &str, i64, i64); 3] = [
    (1, "SkyWays airline", "EUR", 12, 8),
    (2, "FuelCo stations", "EUR", 10, 7),
    (3, "TeleNet telecom", "GBP", 9, 6),
];

/// Members the demo enrols.
pub const DEMO_MEMBERS: u64 = 5_000;

/// Parses the command line and runs it.
pub fn run_cli() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    match Cli::parse().command {
        Cmd::Serve {
            data,
            demo,
            seconds,
        } => serve(&data, demo, seconds.map(Duration::from_secs)),
    }
}

fn serve(data: &std::path::Path, demo: bool, run_for: Option<Duration>) -> anyhow::Result<()> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let store = EmbeddedStore::open(data)
        .with_context(|| format!("opening store at {}", data.display()))?;
    let ledger = Ledger::open(store, LedgerConfig::default()).context("opening the ledger")?;
    println!(
        "partners-gateway: ledger open on the embedded store at {}",
        data.display()
    );
    if demo {
        seed_demo(&ledger)?;
    }
    let started = Instant::now();
    let mut n: u64 = 0;
    while run_for.is_none_or(|d| started.elapsed() < d) {
        if demo {
            demo_traffic(&ledger, &mut n)?;
        }
        std::thread::sleep(Duration::from_secs(1));
        if demo && n.is_multiple_of(50) {
            let b = ledger
                .balance(MemberId(1))?
                .context("demo member 1 exists")?;
            println!("partners-gateway: {n} demo commands posted; member 1 has {} available ({} pending)", b.available.0, b.pending.0);
        }
    }
    ledger.shutdown();
    Ok(())
}

fn seed_demo(ledger: &Ledger<EmbeddedStore>) -> anyhow::Result<()> {
    for (id, name, currency, issue, redeem) in DEMO_PARTNERS {
        let contract = Contract {
            partner: PartnerId(id),
            currency: currency.parse()?,
            issuance_price_per_point: Decimal::new(issue, 3),
            redemption_price_per_point: Decimal::new(redeem, 3),
            points_validity_days: Some(730),
        };
        ledger.execute_blocking(Command::SetContract {
            key: IdemKey::operator(format!("demo-contract-{id}")),
            contract,
        })?;
        println!("partners-gateway: demo partner {id}: {name}");
    }
    let pending: Vec<_> = (1..=DEMO_MEMBERS)
        .map(|m| {
            ledger.submit(Command::Enrol {
                key: IdemKey::operator(format!("demo-enrol-{m}")),
                member: MemberId(m),
            })
        })
        .collect::<Result<_, _>>()?;
    for p in pending {
        p.blocking_recv().context("ledger stopped")??;
    }
    println!(
        "partners-gateway: demo coalition ready: {} partners, {DEMO_MEMBERS} members",
        DEMO_PARTNERS.len()
    );
    Ok(())
}

fn demo_traffic(ledger: &Ledger<EmbeddedStore>, n: &mut u64) -> anyhow::Result<()> {
    for _ in 0..10 {
        *n += 1;
        let member = MemberId(1 + (*n * 7919) % DEMO_MEMBERS);
        let partner = PartnerId(1 + (*n % 3) as u32);
        let cmd = if n.is_multiple_of(4) {
            Command::Burn {
                key: IdemKey::partner(partner, format!("demo-{n}")),
                member,
                partner,
                points: Points(50),
            }
        } else {
            Command::Earn {
                key: IdemKey::partner(partner, format!("demo-{n}")),
                member,
                partner,
                points: Points(100),
                bonus: Points(0),
            }
        };
        match ledger.execute_blocking(cmd) {
            Ok(_) | Err(LedgerError::Rejected(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
