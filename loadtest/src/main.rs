//! `loadtest`: drives the partners gateway with a coalition's signed traffic, reports latency
//! and throughput, and checks afterwards that nothing acknowledged was lost.
//!
//! ```sh
//! # Peak: closed loop, 64 connections, 20 s, on its own gateway.
//! cargo run --release -p loadtest -- --connections 64 --seconds 20
//! # Latency at a fixed rate (open loop).
//! cargo run --release -p loadtest -- --rate 15000 --seconds 20
//! # Batches of 100 commands.
//! cargo run --release -p loadtest -- --connections 8 --batch-size 100 --seconds 20
//! ```

use clap::Parser;
use loadtest::workload::Mix;
use loadtest::{report, run, Mode, Options};
use std::path::PathBuf;
use std::time::Duration;

/// The gateway it starts runs in this process: the same allocator as `partners-gateway`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "loadtest",
    about = "Load harness for the partners gateway",
    version
)]
struct Args {
    /// Gateway URL (loopback only); omit to start a gateway on a temporary embedded store.
    #[arg(long)]
    target: Option<String>,
    /// Partner credentials (the demo's demo-credentials.env) for --target.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Closed loop with this many connections (the default mode, 64 connections).
    #[arg(long, conflicts_with = "rate")]
    connections: Option<usize>,
    /// Open loop at this many requests per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Stop after this many requests, if sooner.
    #[arg(long)]
    requests: Option<u64>,
    /// Commands per request through /v1/batch; 0 sends single requests.
    #[arg(long, default_value_t = 0)]
    batch_size: usize,
    /// Members (own gateway: enrolled by the demo; --target: its demo members).
    #[arg(long, default_value_t = 100_000)]
    members: u64,
    /// Zipf exponent of member popularity (0 is uniform).
    #[arg(long, default_value_t = 1.0)]
    skew: f64,
    /// Operation mix: earn=70,burn=22,hold=8,refund=2 (refund: percent of earns refunded).
    #[arg(long, default_value = "earn=70,burn=22,hold=8,refund=2")]
    mix: Mix,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Open loop: most requests in flight (and connections); later requests queue, and their
    /// wait counts from the intended send time.
    #[arg(long, default_value_t = 512)]
    in_flight_max: usize,
    /// Own gateway: the committer's batch limit.
    #[arg(long, default_value_t = 8192)]
    gateway_batch_size_max: usize,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the throughput and latency chart (SVG) here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Skip the post-run check.
    #[arg(long)]
    no_verify: bool,
    /// Define this many campaigns (two per partner apply to every earn) before the run.
    #[arg(long, default_value_t = 0)]
    campaigns: usize,
    /// The harness's async worker threads [default: 1 for a closed loop, which leaves the rest
    /// of a small machine to the gateway it measures; 2 for an open loop, which must send on
    /// time]. Give more when the gateway runs on another machine.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    client_threads: Option<u16>,
}

fn main() -> anyhow::Result<()> {
    ledger::allocator::tune();
    let a = Args::parse();
    let mode = match (a.rate, a.connections) {
        (Some(rate), _) => Mode::Open { rate },
        (None, c) => Mode::Closed {
            connections: c.unwrap_or(64),
        },
    };
    let outcome = run(Options {
        target: a.target,
        credentials: a.credentials,
        mode,
        duration: Duration::from_secs(a.seconds.max(1)),
        requests_max: a.requests,
        batch_size: a.batch_size,
        members: a.members.max(1),
        skew: a.skew,
        mix: a.mix,
        seed: a.seed,
        in_flight_max: a.in_flight_max,
        progress: true,
        verify: !a.no_verify,
        gateway_batch_size_max: a.gateway_batch_size_max,
        campaigns: a.campaigns,
        client_threads: a.client_threads.map(usize::from),
    })?;
    let summary = report::summary(&outcome);
    print!("{}", report::text(&summary));
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_vec_pretty(&summary)?)?;
        println!("summary: {}", p.display());
    }
    if let Some(p) = &a.svg {
        report::svg(&summary, p)?;
        println!("chart: {}", p.display());
    }
    if summary
        .verification
        .as_ref()
        .is_some_and(|v| !v.failures.is_empty())
    {
        std::process::exit(1);
    }
    Ok(())
}
