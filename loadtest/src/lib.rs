//! The load harness: drives the gateway's hot path with a coalition's traffic, signed as
//! partners sign it, measures latency without coordinated omission, and proves afterwards that
//! every acknowledged command is in the ledger exactly as acknowledged.
//!
//! ```no_run
//! use loadtest::{run, Mode, Options};
//! let outcome = run(Options { mode: Mode::Closed { connections: 64 }, ..Options::default() }).unwrap();
//! assert!(outcome.verification.unwrap().failures.is_empty());
//! ```

pub mod campaigns;
pub mod client;
pub mod recorder;
pub mod report;
pub mod verify;
pub mod workload;

use client::{Client, Reply};
use recorder::{Ack, Recorder, Unanswered};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workload::{Mix, Op, OpKind, Workload};

/// Closed loop (N connections, each sending its next request when the last is answered) or
/// open loop (a fixed arrival rate; latency from each request's intended send time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// N connections.
    Closed {
        /// Concurrent connections.
        connections: usize,
    },
    /// Requests per second.
    Open {
        /// Arrival rate.
        rate: f64,
    },
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Gateway URL (loopback); `None` starts a gateway on a temporary embedded store.
    pub target: Option<String>,
    /// Partner credentials file for `target` (the demo's `demo-credentials.env`).
    pub credentials: Option<PathBuf>,
    /// Load model.
    pub mode: Mode,
    /// Run time limit.
    pub duration: Duration,
    /// Request limit; the run stops at whichever limit comes first.
    pub requests_max: Option<u64>,
    /// Commands per request; 0 sends single requests, more uses `/v1/batch`.
    pub batch_size: usize,
    /// Members (the gateway's demo members `1..=members`).
    pub members: u64,
    /// Zipf exponent of member popularity.
    pub skew: f64,
    /// Operation mix.
    pub mix: Mix,
    /// Random seed.
    pub seed: u64,
    /// Open loop: most requests in flight, hence most connections; later requests wait for one
    /// (and the wait counts as latency). Bounded because a burst of new connections overflows
    /// the listener's accept backlog, and dropped SYNs come back only after 1, 3, 7 s retries.
    pub in_flight_max: usize,
    /// Print a progress line every second.
    pub progress: bool,
    /// Check the outcome after the run.
    pub verify: bool,
    /// Own gateway: the committer's batch limit.
    pub gateway_batch_size_max: usize,
    /// Campaigns to define before the run (`campaigns.rs`).
    pub campaigns: usize,
    /// The harness's own async worker threads; `None` chooses by mode (see
    /// [`Options::threads`]).
    pub client_threads: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: None,
            credentials: None,
            mode: Mode::Closed { connections: 64 },
            duration: Duration::from_secs(10),
            requests_max: None,
            batch_size: 0,
            members: 100_000,
            skew: 1.0,
            mix: Mix::default(),
            seed: 1,
            in_flight_max: 512,
            progress: true,
            verify: true,
            gateway_batch_size_max: 8192,
            campaigns: 0,
            client_threads: None,
        }
    }
}

impl Options {
    /// The harness's async worker threads: as given, else one for a closed loop and two for an
    /// open loop. The harness shares the machine with the gateway it measures. In a closed loop
    /// a second client thread mostly competed with the gateway's workers for the same two cores:
    /// one thread gave 1.10 times the peak (`docs/benchmarks.md`, 2026-12-03). An open loop
    /// must send on time, and its latency counts from each request's intended send time, so a
    /// lone client thread preempted by the gateway shows as the gateway's latency: its p99 was
    /// higher with one thread than with two.
    pub fn threads(&self) -> usize {
        let default = match self.mode {
            Mode::Closed { .. } => 1,
            Mode::Open { .. } => 2,
        };
        self.client_threads.unwrap_or(default).max(1)
    }
}

/// A run's results.
pub struct Outcome {
    /// Everything recorded.
    pub recorder: Recorder,
    /// Wall time of the load phase.
    pub elapsed: Duration,
    /// The post-run check, if asked for.
    pub verification: Option<verify::Verification>,
    /// Posting legs committed during the run (own gateway: counted by the audit).
    pub postings: Option<u64>,
}

struct Shared {
    client: Client,
    rec: Mutex<Recorder>,
    deadline: Instant,
    sent: std::sync::atomic::AtomicU64,
    requests_max: u64,
    batch_size: usize,
}

impl Shared {
    /// Takes a request slot; false once a limit is reached.
    fn take_slot(&self) -> bool {
        Instant::now() < self.deadline
            && self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < self.requests_max
    }
}

/// Runs the load, then (if asked) the post-run check.
pub fn run(opts: Options) -> anyhow::Result<Outcome> {
    let own = match &opts.target {
        Some(_) => None,
        None => Some(verify::OwnGateway::start(
            opts.members,
            opts.gateway_batch_size_max,
        )?),
    };
    let (base, creds) = match (&own, &opts.target) {
        (Some(g), _) => (g.base.clone(), client::read_credentials(&g.credentials)?),
        (None, Some(t)) => {
            let path = opts
                .credentials
                .clone()
                .ok_or_else(|| anyhow::anyhow!("--credentials is needed with --target"))?;
            (t.clone(), client::read_credentials(&path)?)
        }
        (None, None) => unreachable!("own gateway or target"),
    };
    let client = Client::new(&base, creds)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads())
        .enable_all()
        .build()?;
    if opts.campaigns > 0 {
        let creds_file = match (&own, &opts.credentials) {
            (Some(g), _) => g.credentials.clone(),
            (None, Some(p)) => p.clone(),
            (None, None) => anyhow::bail!("--credentials is needed with --target"),
        };
        let token = campaigns::operator_token(&creds_file)?;
        runtime.block_on(campaigns::define(&base, &token, opts.campaigns))?;
    }
    let before = if opts.verify && own.is_none() {
        Some(runtime.block_on(verify::outstanding_over_http(&client, opts.members))?)
    } else {
        None
    };
    runtime.block_on(wait_ready(&client))?;
    runtime.block_on(warm_up(&client, &opts));
    let started = Instant::now();
    let shared = Arc::new(Shared {
        client: client.clone(),
        rec: Mutex::new(Recorder::new()),
        deadline: started + opts.duration,
        sent: std::sync::atomic::AtomicU64::new(0),
        requests_max: opts.requests_max.unwrap_or(u64::MAX),
        batch_size: opts.batch_size,
    });
    runtime.block_on(drive(shared.clone(), &opts));
    let elapsed = started.elapsed();
    let rec = Arc::try_unwrap(shared)
        .map_err(|_| anyhow::anyhow!("requests still running"))?
        .rec
        .into_inner()
        .expect("recorder lock");
    let (verification, postings) = if !opts.verify {
        (None, None)
    } else if let Some(g) = own {
        let (v, postings) = g.stop_and_verify(&rec)?;
        (Some(v), Some(postings))
    } else {
        let v = runtime.block_on(verify::verify_over_http(
            &client,
            &rec,
            opts.members,
            before.unwrap_or(0),
        ))?;
        (Some(v), None)
    };
    Ok(Outcome {
        recorder: rec,
        elapsed,
        verification,
        postings,
    })
}

/// Waits until the gateway's `/readyz` answers 200, as a load balancer would before sending it
/// traffic (a gateway warms its member links after it starts listening), for at most
/// [`READY_WAIT_MAX`].
async fn wait_ready(client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_WAIT_MAX;
    loop {
        let last = match client.send(1, "GET", "/readyz", Default::default()).await {
            Reply::Http { status: 200, .. } => return Ok(()),
            Reply::Http { status, body } => {
                format!("{status} {}", String::from_utf8_lossy(&body))
            }
            Reply::Transport(e) => e,
        };
        if Instant::now() >= deadline {
            anyhow::bail!("the gateway was not ready within {READY_WAIT_MAX:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The longest the harness waits for the gateway to become ready.
const READY_WAIT_MAX: Duration = Duration::from_secs(120);

/// Opens the connections the run will use before the clock starts, so connection set-up is not
/// measured as request latency.
async fn warm_up(client: &Client, opts: &Options) {
    let n = match opts.mode {
        Mode::Closed { connections } => connections,
        Mode::Open { .. } => opts.in_flight_max,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n.max(1) {
        let c = client.clone();
        tasks.spawn(async move { c.send(1, "GET", "/v1/rates", Default::default()).await });
    }
    while tasks.join_next().await.is_some() {}
}

async fn drive(shared: Arc<Shared>, opts: &Options) {
    let run_id = format!("lt{:x}", rand::random::<u32>());
    let progress = opts
        .progress
        .then(|| tokio::spawn(progress_lines(shared.clone())));
    match opts.mode {
        Mode::Closed { connections } => {
            let mut tasks = tokio::task::JoinSet::new();
            for w in 0..connections.max(1) {
                let wl = Workload::new(&run_id, w, opts.members, opts.skew, opts.mix, opts.seed);
                tasks.spawn(closed_loop(shared.clone(), wl));
            }
            while tasks.join_next().await.is_some() {}
        }
        Mode::Open { rate } => open_loop(shared.clone(), opts, &run_id, rate).await,
    }
    if let Some(p) = progress {
        p.abort();
        let _ = p.await;
    }
}

async fn closed_loop(shared: Arc<Shared>, mut wl: Workload) {
    while shared.take_slot() {
        let (mut op, items) = next_request(&shared, &mut wl);
        let body = body_of(&mut op);
        let t0 = Instant::now();
        let reply = shared.client.send(op.partner, "POST", &op.path, body).await;
        for (i, points) in settle(&shared, &op, &items, reply, t0.elapsed()) {
            wl.acknowledged(items.get(i).unwrap_or(&op), points);
        }
    }
}

async fn open_loop(shared: Arc<Shared>, opts: &Options, run_id: &str, rate: f64) {
    let mut wl = Workload::new(run_id, 0, opts.members, opts.skew, opts.mix, opts.seed);
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.in_flight_max.max(1)));
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<(Op, i64)>();
    let start = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut tasks = tokio::task::JoinSet::new();
    let mut i: u64 = 0;
    while shared.take_slot() {
        let intended = start + interval.mul_f64(i as f64);
        i += 1;
        tokio::time::sleep_until(intended).await;
        while let Ok((op, points)) = acked_rx.try_recv() {
            wl.acknowledged(&op, points);
        }
        let (mut op, items) = next_request(&shared, &mut wl);
        let body = body_of(&mut op);
        let (shared, permits, acked_tx) = (shared.clone(), permits.clone(), acked_tx.clone());
        tasks.spawn(async move {
            // Waiting for a permit is queueing; it counts from the intended send time.
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            let reply = shared.client.send(op.partner, "POST", &op.path, body).await;
            let latency = intended.elapsed();
            for (i, points) in settle(&shared, &op, &items, reply, latency) {
                let _ = acked_tx.send((items.get(i).unwrap_or(&op).clone(), points));
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

fn next_request(shared: &Shared, wl: &mut Workload) -> (Op, Vec<Op>) {
    if shared.batch_size == 0 {
        return (wl.next_op(), Vec::new());
    }
    let partner = 1 + (rand::random::<u32>() % 3);
    let items: Vec<Op> = (0..shared.batch_size)
        .map(|_| wl.next_for(partner))
        .collect();
    let op = Op {
        kind: OpKind::Batch,
        partner,
        path: "/v1/batch".into(),
        reference: String::new(),
        body: workload::batch_body(&items),
    };
    (op, items)
}

/// The request's body, taken out of `op`: what follows reads its kind, partner and reference only.
fn body_of(op: &mut Op) -> hyper::body::Bytes {
    std::mem::take(&mut op.body).into()
}

/// Records a reply; returns (item index, points) of each acknowledged command.
fn settle(
    shared: &Shared,
    op: &Op,
    items: &[Op],
    reply: Reply,
    latency: Duration,
) -> Vec<(usize, i64)> {
    let mut rec = shared.rec.lock().expect("recorder lock");
    let mut acked = Vec::new();
    match reply {
        Reply::Transport(e) => {
            rec.request(op.kind, latency, false);
            let what = if e.contains("timed out") {
                "timeout"
            } else {
                "transport"
            };
            for o in commands_of(op, items) {
                rec.error(what.to_string());
                rec.unanswered.push(Unanswered {
                    partner: o.partner,
                    reference: o.reference.clone(),
                });
            }
        }
        Reply::Http { status, body } => {
            let ok = status / 100 == 2;
            rec.request(op.kind, latency, ok);
            if !ok {
                let p: ProblemLite = serde_json::from_slice(&body).unwrap_or_default();
                for o in commands_of(op, items) {
                    refused(&mut rec, o, status, &p);
                }
            } else if op.kind == OpKind::Batch {
                let b: BatchLite = serde_json::from_slice(&body).unwrap_or_default();
                for (i, (o, r)) in items.iter().zip(b.results.iter()).enumerate() {
                    match (&r.transaction, &r.problem) {
                        (Some(tx), _) if r.status / 100 == 2 => {
                            acked.push((i, record_ack(&mut rec, o, tx)))
                        }
                        (_, p) => refused(
                            &mut rec,
                            o,
                            r.status,
                            p.as_ref().unwrap_or(&ProblemLite::default()),
                        ),
                    }
                }
            } else {
                let tx: TxLite = serde_json::from_slice(&body).unwrap_or_default();
                acked.push((0, record_ack(&mut rec, op, &tx)));
            }
        }
    }
    acked
}

/// The fields of a transaction answer the harness reads (the rest is skipped unparsed).
#[derive(Debug, Default, serde::Deserialize)]
struct TxLite {
    #[serde(default)]
    transaction_id: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    points: i64,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ProblemLite {
    #[serde(default, rename = "type")]
    kind: String,
}

#[derive(Debug, serde::Deserialize)]
struct ItemLite {
    status: u16,
    #[serde(default)]
    transaction: Option<TxLite>,
    #[serde(default)]
    problem: Option<ProblemLite>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct BatchLite {
    #[serde(default)]
    results: Vec<ItemLite>,
}

fn commands_of<'a>(op: &'a Op, items: &'a [Op]) -> Vec<&'a Op> {
    if items.is_empty() {
        vec![op]
    } else {
        items.iter().collect()
    }
}

fn record_ack(rec: &mut Recorder, op: &Op, tx: &TxLite) -> i64 {
    rec.ack(Ack {
        partner: op.partner,
        reference: op.reference.clone(),
        transaction_id: tx.transaction_id.clone(),
        member_delta: Ack::member_delta(&tx.kind, tx.points),
    });
    tx.points
}

fn refused(rec: &mut Recorder, op: &Op, status: u16, problem: &ProblemLite) {
    let slug = problem
        .kind
        .strip_prefix("/problems/")
        .unwrap_or("unknown")
        .to_string();
    // An internal error or an unavailable ledger leaves the outcome unknown; an overload, a
    // rate limit and every 4xx mean nothing was applied.
    if status == 500 || (status == 503 && slug != "overloaded") {
        rec.unanswered.push(Unanswered {
            partner: op.partner,
            reference: op.reference.clone(),
        });
    }
    rec.error(format!("{status} {slug}"));
}

async fn progress_lines(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let rec = shared.rec.lock().expect("recorder lock");
        let t = rec.elapsed().as_secs();
        let last = t.checked_sub(1).and_then(|s| rec.timeline.get(s as usize));
        let all = rec.overall();
        println!(
            "t={t:>3}s  last second: {:>7} req/s  {:>5} errors  |  so far: p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
            last.map_or(0, |s| s.requests),
            last.map_or(0, |s| s.errors),
            all.value_at_quantile(0.5) as f64 / 1000.0,
            all.value_at_quantile(0.99) as f64 / 1000.0,
            rec.commands_failed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{Mode, Options};

    #[test]
    fn the_harness_takes_one_thread_in_a_closed_loop_two_in_an_open_loop_or_as_told() {
        let closed = Options {
            mode: Mode::Closed { connections: 128 },
            ..Options::default()
        };
        let open = Options {
            mode: Mode::Open { rate: 15_000.0 },
            ..Options::default()
        };
        assert_eq!(closed.threads(), 1);
        assert_eq!(open.threads(), 2);
        let told = |n| Options {
            client_threads: Some(n),
            ..closed.clone()
        };
        assert_eq!(told(3).threads(), 3);
        assert_eq!(told(0).threads(), 1);
    }
}
