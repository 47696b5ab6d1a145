//! The partners gateway: the signed partner HTTP API and the operator API in front of the
//! coalition points ledger, on the embedded store.
//!
//! Map: [`server`] assembles the router; [`api::partner`] and [`api::operator`] hold the
//! handlers; [`auth`] signs and verifies; [`rates`] converts quantities to points; [`registry`]
//! keeps partners, keys, rates and member links; [`problem`] turns every failure into
//! `application/problem+json`; [`demo`] seeds the demo coalition.

pub mod api;
pub mod config;
pub mod demo;
pub mod engagement;
pub mod events;
pub mod listener;
pub mod members;
pub mod nonce_journal;
pub mod notify;
pub mod ops;
pub mod programme;
pub mod server;
pub mod signing;
pub mod simulate;
pub mod web;

use anyhow::Context;
use api::state::{App, AppState, Limits};
use clap::{Parser, Subcommand};
use config::{Config, LogFormat, ServeArgs};
use ledger::store::{EmbeddedOptions, Engine, EngineSpec};
use ledger::{CommitterConfig, Ledger, LedgerConfig};
use ops::registry::{Registry, Role};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "partners-gateway",
    about = "Coalition points ledger: partners gateway",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP service.
    Serve(Box<ServeArgs>),
    /// Create an operator token (run while the service is stopped; the token is printed once).
    OperatorToken {
        /// Data directory of the embedded store.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Who holds the token.
        #[arg(long)]
        name: String,
        /// `operator` or `finance`.
        #[arg(long, default_value = "operator")]
        role: String,
        /// The token stops working after this many days [default: never].
        #[arg(long)]
        expires_in_days: Option<u16>,
        /// The master key file the service uses [default: DATA/gateway-master.key].
        #[arg(long)]
        master_key_file: Option<PathBuf>,
        /// The store the service uses: `embedded` or `fdb:<cluster file>`.
        #[arg(long, default_value = "embedded")]
        store: EngineSpec,
        /// FoundationDB key prefix the service uses.
        #[arg(long, default_value = config::DEFAULT_SUBSPACE)]
        fdb_subspace: String,
    },
    /// Create the master key file that partner secrets derive from (once, before the first
    /// start; refuses to overwrite one).
    InitKey {
        /// Where to write it (mode 0600) [default: DATA/gateway-master.key].
        #[arg(long, default_value = "data/gateway-master.key")]
        file: PathBuf,
    },
    /// What-if: replay a history of partner transactions (CSV) through a programme (TOML):
    /// the production pricing, campaigns, guards and posting engine, in memory. Prints points
    /// issued by partner and month, each campaign's cost, the value of points against sales,
    /// the liability at each month end and the budget breaches.
    Simulate {
        /// The programme file (see `docs/programme.md`).
        #[arg(long)]
        programme: PathBuf,
        /// The history (CSV; `-` reads standard input).
        #[arg(long)]
        history: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a history in the demo coalition's shape, for `simulate`.
    SimulateHistory {
        /// Earns to write.
        #[arg(long, default_value_t = 1_000_000)]
        transactions: u64,
        /// Distinct members.
        #[arg(long, default_value_t = 200_000)]
        members: u64,
        /// Calendar year the earns spread over.
        #[arg(long, default_value_t = 2026)]
        year: i32,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Recompute a draw's winners from its published entry list and its revealed seed, and
    /// check the seed against the commitment (see `docs/engagement.md`).
    DrawVerify {
        /// The entry list as published (`GET /admin/v1/draws/{id}/entries`).
        #[arg(long)]
        entries: PathBuf,
        /// The revealed seed (hex).
        #[arg(long)]
        seed: String,
        /// The commitment published before the draw closed (hex of SHA-256 of the seed).
        #[arg(long)]
        commitment: Option<String>,
        /// Number of prizes.
        #[arg(long)]
        prizes: usize,
    },
    /// Audit a running service without stopping it (`GET /admin/v1/audit`): prints what was
    /// checked, exits 1 if an invariant is broken. (`ledger verify --data` audits a stopped
    /// store.)
    Audit {
        /// The service's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An operator or finance token (from the environment, so it stays out of `ps`).
        #[arg(long, env = "LEDGER_OPERATOR_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// A finance report of a running service, on one snapshot of it: `trial-balance`,
    /// `liability`, `breakage`, `revenue`, `settlements`, `periods`, `periods/2026-10`,
    /// `exports/journal`, ... (`GET /admin/v1/finance/REPORT`), printed as the service answers
    /// it (JSON, or the export's CSV or NDJSON, streamed). `ledger finance` reads a store
    /// directly.
    Finance {
        /// The report's path under `/admin/v1/finance/`.
        report: String,
        /// Query parameters, `name=value` (`at_ms=...`, `period=2026-10`, `format=ndjson`).
        #[arg(long = "with")]
        with: Vec<String>,
        /// The service's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An operator or finance token (from the environment, so it stays out of `ps`).
        #[arg(long, env = "LEDGER_OPERATOR_TOKEN", hide_env_values = true)]
        token: String,
    },
}

/// Parses the command line and runs it.
pub fn run_cli() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Serve(args) => {
            let config = Config::resolve(*args)?;
            init_logging(config.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve_until_signal(config))
        }
        Cmd::OperatorToken {
            data,
            name,
            role,
            expires_in_days,
            master_key_file,
            store,
            fdb_subspace,
        } => {
            let role = match role.as_str() {
                "operator" => Role::Operator,
                "finance" => Role::Finance,
                other => anyhow::bail!("role must be operator or finance, not {other:?}"),
            };
            let vault = key_vault(&store, &data)?;
            let store = open_store(&store, &data, &fdb_subspace, EmbeddedOptions::default())?;
            let master_path = master_key_file.unwrap_or_else(|| data.join("gateway-master.key"));
            let master = ops::registry::load_master_key(&master_path)?;
            let registry = Registry::open(store, master, vault)?;
            let (token, id) =
                registry.create_operator(&name, role, expires_in_days.map(u32::from))?;
            eprintln!("operator token {id} for {name:?}; shown once:");
            println!("{token}");
            Ok(())
        }
        Cmd::InitKey { file } => {
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            ops::registry::create_master_key(&file)?;
            println!(
                "created master key {} (mode 600); keep it backed up and private",
                file.display()
            );
            Ok(())
        }
        Cmd::Simulate {
            programme,
            history,
            json,
        } => {
            let text = std::fs::read_to_string(&programme)
                .with_context(|| format!("reading {}", programme.display()))?;
            let file: simulate::ProgrammeFile = toml::from_str(&text)
                .with_context(|| format!("parsing {}", programme.display()))?;
            let mut sim = simulate::Simulation::new(file)?;
            let started = std::time::Instant::now();
            if history.as_os_str() == "-" {
                simulate::replay(&mut sim, std::io::stdin().lock())?;
            } else {
                let f = std::fs::File::open(&history)
                    .with_context(|| format!("opening {}", history.display()))?;
                simulate::replay(&mut sim, std::io::BufReader::with_capacity(1 << 20, f))?;
            }
            let report = sim.finish();
            let took = started.elapsed();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            eprintln!(
                "simulated {} rows in {:.1} s ({:.0} rows/s)",
                report.rows,
                took.as_secs_f64(),
                report.rows as f64 / took.as_secs_f64().max(1e-9)
            );
            Ok(())
        }
        Cmd::SimulateHistory {
            transactions,
            members,
            year,
            seed,
            out,
        } => {
            let f = std::fs::File::create(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            simulate::write_history(
                std::io::BufWriter::new(f),
                transactions,
                members,
                year,
                seed,
            )?;
            eprintln!("wrote {transactions} earns to {}", out.display());
            Ok(())
        }
        Cmd::DrawVerify {
            entries,
            seed,
            commitment,
            prizes,
        } => {
            use engagement::draw;
            let seed = draw::parse_seed(&seed).map_err(anyhow::Error::msg)?;
            if let Some(c) = commitment {
                let actual = draw::commitment(&seed);
                anyhow::ensure!(
                    actual == c.trim().to_ascii_lowercase(),
                    "the seed does not match the commitment: SHA-256(seed) is {actual}"
                );
            }
            let f = std::fs::File::open(&entries)
                .with_context(|| format!("opening {}", entries.display()))?;
            let list =
                draw::read_entries(std::io::BufReader::new(f)).map_err(anyhow::Error::msg)?;
            let won = draw::winners(&list, &seed, prizes)
                .map_err(|_| anyhow::anyhow!("the entries add up past 2^64"))?;
            for (i, m) in won.iter().enumerate() {
                println!("{},{m}", i + 1);
            }
            Ok(())
        }
        Cmd::Finance {
            report,
            with,
            url,
            token,
        } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(finance_report(&url, &token, &report, &with))
        }
        Cmd::Audit { url, token } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let ok = runtime.block_on(audit_running_service(&url, &token))?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// Prints finance report `report` of the service at `url`, streaming the answer.
async fn finance_report(
    url: &str,
    token: &str,
    report: &str,
    with: &[String],
) -> anyhow::Result<()> {
    use std::io::Write;
    let target = format!(
        "{}/admin/v1/finance/{}",
        url.trim_end_matches('/'),
        report.trim_start_matches('/')
    );
    let query: Vec<(&str, &str)> = with
        .iter()
        .map(|q| q.split_once('=').unwrap_or((q.as_str(), "")))
        .collect();
    let mut answer = reqwest::Client::new()
        .get(&target)
        .query(&query)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reaching {target}"))?;
    let status = answer.status();
    if !status.is_success() {
        let body = answer.text().await.unwrap_or_default();
        anyhow::bail!("{target} answered {status}: {body}");
    }
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = answer.chunk().await.context("reading the answer")? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(())
}

/// Runs the live audit of the service at `url` and prints its findings; true when it passed.
async fn audit_running_service(url: &str, token: &str) -> anyhow::Result<bool> {
    let target = format!("{}/admin/v1/audit", url.trim_end_matches('/'));
    let answer = reqwest::Client::new()
        .get(&target)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reaching {target}"))?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.context("reading the answer")?;
    if !status.is_success() {
        anyhow::bail!("{target} answered {status}: {}", body["detail"]);
    }
    let audit: api::operator::AuditView =
        serde_json::from_value(body).context("reading the audit")?;
    println!(
        "audit: through batch {}: {} batches, {} transactions, {} postings, {} members, {} member records, {} accounts, {} open holds, {} idempotency keys in {} ms",
        audit.through_version,
        audit.batches,
        audit.transactions,
        audit.postings,
        audit.members,
        audit.member_records,
        audit.accounts,
        audit.open_holds,
        audit.idempotency_keys,
        audit.took_ms
    );
    match &audit.failure {
        None => {
            println!(
                "audit: OK; points outstanding (owed to members): {}",
                audit.points_outstanding
            );
            Ok(true)
        }
        Some(why) => {
            println!("audit: FAILED: {why}");
            Ok(false)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn serve_until_signal(config: Config) -> anyhow::Result<()> {
    let run_for = config.seconds.map(Duration::from_secs);
    let running = start(config).await?;
    let stop = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => shutdown_signal().await,
        }
    };
    stop.await;
    println!("partners-gateway: shutting down: draining requests and the committer");
    let stopped = running.stop().await;
    ledger::store::Engine::stop_client();
    stopped
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A running gateway.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The demo credentials file, when `demo` was set.
    pub demo_credentials: Option<PathBuf>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The handlers' state, held weakly: the shutdown waits for the last strong reference.
    app: std::sync::Weak<App>,
}

impl Running {
    /// The handlers' state while the gateway runs (`None` once it has stopped): for an
    /// embedding process, and for tests that set what a request cannot, such as the warm-up.
    pub fn state(&self) -> Option<AppState> {
        self.app.upgrade()
    }

    /// Stops accepting connections, lets in-flight requests finish, then drains the committer.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("server task")?
    }
}

/// Opens the store and the ledger, seeds the demo if asked, and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let app = tokio::task::spawn_blocking({
        let config = config.clone();
        move || open_app(&config)
    })
    .await
    .context("opening task")??;
    if config.writer == config::WriterPath::Cluster {
        refresh_registry(Arc::downgrade(&app));
    }
    // Every nonce accepted within the replay window, by any gateway, is known before serving.
    let journal = tokio::task::spawn_blocking({
        let app = app.clone();
        move || nonce_journal::NonceJournal::open(&app)
    })
    .await
    .context("nonce journal task")??;
    let journal = Arc::new(std::sync::Mutex::new(journal));
    nonce_journal::spawn(Arc::downgrade(&app), journal.clone());
    ops::webhooks::spawn(Arc::downgrade(&app.ops));
    ops::audience::spawn(Arc::downgrade(&app.ops));
    ops::notify::spawn(Arc::downgrade(&app.ops));
    ops::engagement::spawn(Arc::downgrade(&app.ops));
    let demo_credentials = if config.demo {
        let (app, data, n) = (app.clone(), config.data.clone(), config.demo_members);
        let days = config.demo_history_days;
        Some(tokio::task::spawn_blocking(move || demo::seed(&app.ops, &data, n, days)).await??)
    } else {
        None
    };
    warm_links(app.clone());
    let listener =
        listen(config.listen).with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "partners-gateway: listening on http://{addr} (data in {})",
        config.data.display()
    );
    if let Some(p) = &demo_credentials {
        println!(
            "partners-gateway: demo coalition ready; credentials in {}",
            p.display()
        );
    }
    let (router, _) = server::router(app.clone());
    let weak_app = Arc::downgrade(&app);
    let connections = config.connections;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let drain = app.clone();
        listener::serve(listener, router, connections, async move {
            let _ = stopped.await;
            drain.start_draining();
        })
        .await;
        // The nonces accepted since the last flush reach the journal before the stop.
        let flush = {
            let (app, journal) = (app.clone(), journal.clone());
            tokio::task::spawn_blocking(move || {
                journal.lock().expect("nonce journal lock").tick(&app)
            })
        };
        if let Ok(Err(e)) = flush.await {
            tracing::warn!(error = %e, "the last nonce journal flush failed");
        }
        // The audience's state, so that the next start folds the journal from here.
        let save = {
            let ops = app.ops.clone();
            tokio::task::spawn_blocking(move || ops.audience.save(&ops))
        };
        if let Ok(Err(e)) = save.await {
            e.log_round("the audience's save at shutdown");
        }
        // Connection tasks and blocking reads may still hold the state for a moment after the
        // listener closes; the committer is drained once they let go.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let held = |app: &AppState| Arc::strong_count(app) > 1 || Arc::strong_count(&app.ops) > 1;
        while held(&app) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let still_held =
            || anyhow::anyhow!("requests still hold the ledger 10 s after shutdown began");
        let app = Arc::try_unwrap(app).map_err(|_| still_held())?;
        let ops = Arc::try_unwrap(app.ops).map_err(|_| still_held())?;
        tokio::task::spawn_blocking(move || ops.ledger.shutdown()).await?;
        Ok(())
    });
    Ok(Running {
        addr,
        demo_credentials,
        stop,
        task,
        app: weak_app,
    })
}

/// Connections the kernel queues before the accept loop takes them. A burst of partner
/// connections larger than the queue loses SYNs, which clients retry only after 1, 3, 7 s.
const ACCEPT_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Reads the partners' member links into memory beside the first requests, so a gateway that
/// restarts under load answers from memory soon instead of reading the store for every member
/// it has not seen yet. `/readyz` says "warming up" until it is done. Stops early when
/// shutdown begins.
fn warm_links(app: AppState) {
    /// Ends the warm-up however the task ends, a panic included.
    struct Warming(AppState);
    impl Drop for Warming {
        fn drop(&mut self) {
            self.0.set_warming(false);
        }
    }
    app.set_warming(true);
    let warming = Warming(app);
    tokio::task::spawn_blocking(move || {
        let app = &warming.0;
        let started = std::time::Instant::now();
        match app.ops.registry.warm_links(&|| !app.draining()) {
            Ok(n) => tracing::info!(
                links = n,
                took_ms = started.elapsed().as_millis() as u64,
                "member links in memory"
            ),
            Err(e) => tracing::warn!(error = %e, "reading member links into memory failed"),
        }
    });
}

/// How often a gateway on a shared store reloads partners, keys, rates and operators.
const REGISTRY_REFRESH: Duration = Duration::from_secs(2);

/// On a shared store, keeps this gateway's registry view current with what other gateways
/// change. Holds the app weakly, so shutdown is not delayed.
fn refresh_registry(app: std::sync::Weak<App>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REGISTRY_REFRESH).await;
            let Some(app) = app.upgrade() else { return };
            match tokio::task::spawn_blocking(move || app.ops.registry.refresh()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "registry refresh failed"),
                Err(e) => tracing::warn!(error = %e, "registry refresh task failed"),
            }
        }
    });
}

/// Makes `data` 0700 and every file the process creates from now on private (umask 077).
fn private_files(data: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", data.display()))?;
        // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
        unsafe {
            libc::umask(0o077);
        }
    }
    Ok(())
}

/// Where members' data keys are kept: files beside the embedded store (`data/member-keys`), or
/// records of the FoundationDB store.
fn key_vault(spec: &EngineSpec, data: &Path) -> anyhow::Result<ops::registry::KeyVault> {
    Ok(match spec {
        EngineSpec::Embedded => {
            let dir = data.join("member-keys");
            ops::registry::KeyVault::files(&dir)
                .with_context(|| format!("creating {}", dir.display()))?
        }
        EngineSpec::Fdb { .. } => ops::registry::KeyVault::Store,
    })
}

/// Opens the configured engine: the embedded store in `data`, or the FoundationDB subspace.
fn open_store(
    spec: &EngineSpec,
    data: &Path,
    subspace: &str,
    embedded: EmbeddedOptions,
) -> anyhow::Result<Engine> {
    // The data directory also holds demo credentials and, by default, the master key: only the
    // service's user may enter it, and what it creates there is private (umask 077).
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    private_files(data)?;
    Engine::open(spec, data, subspace.as_bytes(), embedded).with_context(|| match spec {
        EngineSpec::Embedded => format!("opening the store at {}", data.display()),
        EngineSpec::Fdb { cluster_file } => {
            format!("connecting to FoundationDB through {cluster_file}")
        }
    })
}

fn open_app(config: &Config) -> anyhow::Result<AppState> {
    let embedded = EmbeddedOptions {
        cache_bytes: config.store_cache_mb << 20,
    };
    let store = open_store(&config.store, &config.data, &config.fdb_subspace, embedded)?;
    // Only the demo creates a missing master key; a real deployment creates it once, on purpose.
    if config.demo && !config.master_key_file.exists() {
        ops::registry::create_master_key(&config.master_key_file)?;
    }
    let master = ops::registry::load_master_key(&config.master_key_file)?;
    let registry = Registry::open_keeping(
        store.clone(),
        master,
        key_vault(&config.store, &config.data)?,
        config.links_in_memory,
    )?;
    let on_commit: ledger::CommitObserver = Arc::new(|txs, took| {
        metrics::histogram!("ledger_batch_size").record(txs as f64);
        metrics::histogram!("ledger_commit_duration_seconds").record(took.as_secs_f64());
        metrics::counter!("ledger_transactions_total").increment(txs as u64);
    });
    let ledger_config = LedgerConfig {
        committer: CommitterConfig {
            batch_size_max: config.batch_size_max,
            linger: Duration::from_micros(config.linger_us),
            queue_capacity: config.queue_capacity,
            // The demo dates its history in the past; the offset is 0 otherwise.
            clock: if config.demo && config.demo_history_days > 0 {
                ledger::Clock::shifted(&demo::CLOCK_OFFSET)
            } else {
                ledger::Clock::system()
            },
            ..CommitterConfig::default()
        },
        on_commit: Some(on_commit),
        keys_in_memory: config.keys_in_memory,
        reversal_totals_in_memory: config.reversal_totals_in_memory,
        member_write_delay: config.member_write_delay,
        ..LedgerConfig::default()
    };
    let ledger = if config.writer == config::WriterPath::Cluster {
        tracing::info!(
            shard = config.journal_shard,
            subspace = %config.fdb_subspace,
            "opening the ledger on the cluster path"
        );
        Ledger::open_cluster(
            store,
            ledger_config,
            ledger::ClusterConfig::on_shard(config.journal_shard),
        )
    } else {
        Ledger::open(store, ledger_config)
    }
    .context("opening the ledger")?;
    let nonces = api::signature::NonceCache::new(
        Duration::from_secs(config.clock_skew_seconds),
        config.nonce_cache_capacity,
    );
    let ops = ops::Ops {
        ledger,
        registry,
        batch_commands_max: config.batch_commands_max,
        audit_running: Default::default(),
        audience: Default::default(),
        referral_sweep: Default::default(),
    };
    let mut app = App::new(
        ops,
        nonces,
        Limits {
            body_bytes_max: config.body_bytes_max,
            batch_commands_max: config.batch_commands_max,
            request_timeout: Duration::from_millis(config.connections.request_timeout_ms.max(1)),
            in_flight_max: config.connections.in_flight_max.max(1),
        },
        server::metrics_handle(),
    );
    app.demo = config.demo;
    Ok(Arc::new(app))
}
