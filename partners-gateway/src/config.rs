//! Service settings: a TOML file (`--config`), overridden by flags, over defaults.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! store = "embedded"          # or "fdb:/etc/foundationdb/fdb.cluster" (built with --features fdb)
//! fdb_subspace = "coalition/"  # FoundationDB only: key prefix every gateway of one ledger shares
//! journal_shard = 3            # FoundationDB only: this gateway's journal shard, 0-15
//! writer = "single"            # embedded only: "cluster" runs the many-gateway command path
//!                              # on the embedded store (for testing it without FoundationDB)
//! data = "./data"
//! batch_size_max = 8192
//! linger_us = 0
//! queue_capacity = 65536
//! keys_in_memory = 10000000   # idempotency keys of the latest transactions kept in memory;
//!                             # older ones are answered from the on-disk index
//! reversal_totals_in_memory = 250000  # reversal totals of the latest originals kept in
//!                             # memory; a reversal of an older one reads its total from disk
//! member_write_delay = 1000000  # single writer: transactions a member page waits after a
//!                             # change before it is written; a restart after a crash replays
//!                             # up to about twice this many
//! store_cache_mb = 256        # embedded only: the store's block cache, in MiB
//! links_in_memory = 1000000   # partners' member references kept in memory (about 100 bytes
//!                             # each); a request naming another reads it from the store
//! log_format = "text"         # or "json"
//! body_bytes_max = 1048576
//! batch_commands_max = 1000
//! clock_skew_seconds = 300
//! nonce_cache_capacity = 20000000
//!
//! [connections]               # limits on connections and time (every field optional)
//! max = 10000                 # open connections at once; more are closed at accept
//! per_ip_max = 1000           # open connections from one address
//! header_read_timeout_ms = 5000   # a client must send its request head within this
//! request_timeout_ms = 30000  # a request must be answered within this (503 after)
//! in_flight_max = 4096        # requests handled at once; more answer 503 at once
//! ```

use anyhow::Context;
use clap::{Args, ValueEnum};
use ledger::store::EngineSpec;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The largest block cache accepted, in MiB (1 TiB).
const STORE_CACHE_MB_MAX: u64 = 1 << 20;

/// The block cache unless configured, in MiB: the embedded engine's own default.
const STORE_CACHE_MB_DEFAULT: u64 = ledger::store::EmbeddedOptions::DEFAULT_CACHE_BYTES >> 20;

/// How the ledger writes: one writer owning the store, or the many-gateway cluster path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum WriterPath {
    /// One committer owns the store and keeps the working state in memory (embedded only).
    Single,
    /// Every batch is a store transaction; many gateways may share the store.
    Cluster,
}

/// FoundationDB subspace when none is configured.
pub const DEFAULT_SUBSPACE: &str = "coalition/";

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Limits on connections and time: what a slow or greedy client can hold.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Open connections at once; more are closed at accept.
    pub max: usize,
    /// Open connections from one IP address.
    pub per_ip_max: usize,
    /// A client must send its whole request head within this many milliseconds.
    pub header_read_timeout_ms: u64,
    /// A request must be answered within this many milliseconds (then 503; a command it
    /// submitted may still commit, and a retry with its reference is safe).
    pub request_timeout_ms: u64,
    /// Requests handled at once; more answer 503 `overloaded` at once.
    pub in_flight_max: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max: 10_000,
            per_ip_max: 1_000,
            header_read_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            in_flight_max: 4_096,
        }
    }
}

/// The settings file; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    store: Option<String>,
    fdb_subspace: Option<String>,
    journal_shard: Option<u8>,
    writer: Option<WriterPath>,
    data: Option<PathBuf>,
    master_key_file: Option<PathBuf>,
    batch_size_max: Option<usize>,
    linger_us: Option<u64>,
    queue_capacity: Option<usize>,
    keys_in_memory: Option<usize>,
    reversal_totals_in_memory: Option<usize>,
    member_write_delay: Option<u64>,
    store_cache_mb: Option<u64>,
    links_in_memory: Option<usize>,
    log_format: Option<LogFormat>,
    body_bytes_max: Option<usize>,
    batch_commands_max: Option<usize>,
    clock_skew_seconds: Option<u64>,
    nonce_cache_capacity: Option<usize>,
    connections: Option<ConnectionLimits>,
    demo: Option<bool>,
    demo_members: Option<u64>,
    demo_history_days: Option<u32>,
}

/// `serve` flags; each overrides the file.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML settings file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Storage engine: `embedded`, or `fdb:<cluster file>` for many gateways on one
    /// FoundationDB cluster (needs a build with `--features fdb`) [default: embedded].
    #[arg(long)]
    pub store: Option<String>,
    /// FoundationDB key prefix shared by every gateway of one ledger [default: coalition/].
    #[arg(long)]
    pub fdb_subspace: Option<String>,
    /// FoundationDB journal shard this gateway appends under, 0 to 15 [default: chosen at
    /// random at start].
    #[arg(long)]
    pub journal_shard: Option<u8>,
    /// Command path: `single` (one writer owns the store; embedded only) or `cluster` (every
    /// batch a store transaction; always used on FoundationDB) [default: by store].
    #[arg(long)]
    pub writer: Option<WriterPath>,
    /// Data directory of the embedded store [default: ./data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// File holding the 32-byte master key (hex) partner secrets derive from
    /// [default: DATA/gateway-master.key, created on first start].
    #[arg(long)]
    pub master_key_file: Option<PathBuf>,
    /// Most commands per storage commit [default: 8192].
    #[arg(long)]
    pub batch_size_max: Option<usize>,
    /// Microseconds the committer waits for more commands [default: 0].
    #[arg(long)]
    pub linger_us: Option<u64>,
    /// Commands that may queue before requests get 503 [default: 65536].
    #[arg(long)]
    pub queue_capacity: Option<usize>,
    /// Idempotency keys of the latest transactions the writer keeps in memory; older keys are
    /// answered from the on-disk index [default: 10000000].
    #[arg(long)]
    pub keys_in_memory: Option<usize>,
    /// Reversal totals (the part of an earn or burn reversed so far) of the latest originals
    /// the writer keeps in memory; a reversal of an older original reads its total from the
    /// store [default: 250000].
    #[arg(long)]
    pub reversal_totals_in_memory: Option<usize>,
    /// Single writer: transactions a member page waits after a change before it is written
    /// (many changes to a page's members, one write). A page write encodes all of its 1,024
    /// members, so the writer's cost a transaction grows with members over this; a restart
    /// after a crash replays up to about twice this many transactions [default: 1000000].
    #[arg(long)]
    pub member_write_delay: Option<u64>,
    /// The embedded store's block cache in MiB: blocks and values read back from disk. The
    /// process holds this much once enough has been read [default: 256].
    #[arg(long)]
    pub store_cache_mb: Option<u64>,
    /// Partners' member references (a partner's id for a member, to the member) kept in
    /// memory, about 100 bytes each, read at start before the gateway reports ready: a request
    /// naming a reference not among them reads it from the store. A coalition whose active
    /// members hold more references than this, at every partner together, is faster with more
    /// [default: 1000000].
    #[arg(long)]
    pub links_in_memory: Option<usize>,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Largest request body in bytes [default: 1 MiB].
    #[arg(long)]
    pub body_bytes_max: Option<usize>,
    /// Most commands in one batch request [default: 1000].
    #[arg(long)]
    pub batch_commands_max: Option<usize>,
    /// Accepted clock skew of signed requests, seconds [default: 300].
    #[arg(long)]
    pub clock_skew_seconds: Option<u64>,
    /// Nonces remembered at most [default: 20,000,000].
    #[arg(long)]
    pub nonce_cache_capacity: Option<usize>,
    /// Seed the demo coalition (if the store has no partners yet) and write its credentials to
    /// DATA/demo-credentials.env.
    #[arg(long)]
    pub demo: bool,
    /// Members the demo enrols [default: 3000].
    #[arg(long)]
    pub demo_members: Option<u64>,
    /// Days of activity the demo posts for its members, dated in the past, so the dashboards
    /// have a history [default: 365; 0: none].
    #[arg(long)]
    pub demo_history_days: Option<u32>,
    /// Stop after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long)]
    pub seconds: Option<u64>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Storage engine.
    pub store: EngineSpec,
    /// FoundationDB subspace prefix.
    pub fdb_subspace: String,
    /// FoundationDB journal shard.
    pub journal_shard: u8,
    /// Command path.
    pub writer: WriterPath,
    /// Data directory.
    pub data: PathBuf,
    /// Master key file.
    pub master_key_file: PathBuf,
    /// Committer batch limit.
    pub batch_size_max: usize,
    /// Committer linger.
    pub linger_us: u64,
    /// Committer queue capacity.
    pub queue_capacity: usize,
    /// Idempotency keys kept in memory.
    pub keys_in_memory: usize,
    /// Reversal totals kept in memory.
    pub reversal_totals_in_memory: usize,
    /// Transactions a member page waits after a change (single writer).
    pub member_write_delay: u64,
    /// The embedded store's block cache, in MiB.
    pub store_cache_mb: u64,
    /// Partners' member references kept in memory.
    pub links_in_memory: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Body limit.
    pub body_bytes_max: usize,
    /// Batch request limit.
    pub batch_commands_max: usize,
    /// Clock skew window.
    pub clock_skew_seconds: u64,
    /// Nonce cache bound.
    pub nonce_cache_capacity: usize,
    /// Limits on connections and time.
    pub connections: ConnectionLimits,
    /// Seed the demo coalition.
    pub demo: bool,
    /// Demo members.
    pub demo_members: u64,
    /// Days of history the demo posts.
    pub demo_history_days: u32,
    /// Run time limit.
    pub seconds: Option<u64>,
}

impl Config {
    /// Defaults for data directory `data`, listening on an ephemeral loopback port.
    pub fn for_tests(data: &Path) -> Config {
        let ledger_default = ledger::LedgerConfig::default();
        Config {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            store: EngineSpec::Embedded,
            fdb_subspace: DEFAULT_SUBSPACE.into(),
            journal_shard: 0,
            writer: WriterPath::Single,
            data: data.to_path_buf(),
            master_key_file: data.join("gateway-master.key"),
            batch_size_max: 8192,
            linger_us: 0,
            queue_capacity: 65_536,
            keys_in_memory: ledger_default.keys_in_memory,
            reversal_totals_in_memory: ledger_default.reversal_totals_in_memory,
            member_write_delay: ledger_default.member_write_delay,
            store_cache_mb: STORE_CACHE_MB_DEFAULT,
            links_in_memory: crate::ops::registry::LINKS_IN_MEMORY_DEFAULT,
            log_format: LogFormat::Text,
            body_bytes_max: 1 << 20,
            batch_commands_max: 1000,
            clock_skew_seconds: 300,
            nonce_cache_capacity: 1_000_000,
            connections: ConnectionLimits::default(),
            demo: true,
            demo_members: 50,
            demo_history_days: 0,
            seconds: None,
        }
    }

    /// File, then flags, over defaults.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
        let ledger_default = ledger::LedgerConfig::default();
        let file: FileConfig = match &args.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let store: EngineSpec = args
            .store
            .or(file.store)
            .unwrap_or_else(|| "embedded".into())
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?;
        let fdb_subspace = args
            .fdb_subspace
            .or(file.fdb_subspace)
            .unwrap_or_else(|| DEFAULT_SUBSPACE.into());
        if fdb_subspace.is_empty() || fdb_subspace.as_bytes()[0] == 0xff {
            anyhow::bail!("fdb_subspace must be non-empty and must not start with byte 0xff");
        }
        let shards = ledger::journal::JOURNAL_SHARDS;
        let journal_shard = match args.journal_shard.or(file.journal_shard) {
            Some(s) if s < shards => s,
            Some(s) => anyhow::bail!("journal_shard must be 0 to {}, got {s}", shards - 1),
            None => rand::random_range(0..shards),
        };
        let writer = match (args.writer.or(file.writer), &store) {
            (Some(WriterPath::Single), EngineSpec::Fdb { .. }) => anyhow::bail!(
                "writer \"single\" cannot run on FoundationDB: gateways sharing a cluster use \"cluster\""
            ),
            (Some(w), _) => w,
            (None, EngineSpec::Embedded) => WriterPath::Single,
            (None, EngineSpec::Fdb { .. }) => WriterPath::Cluster,
        };
        let data = args
            .data
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from("data"));
        let master_key_file = args
            .master_key_file
            .or(file.master_key_file)
            .unwrap_or_else(|| data.join("gateway-master.key"));
        let batch_size_max = args.batch_size_max.or(file.batch_size_max).unwrap_or(8192);
        if !(1..=60_000).contains(&batch_size_max) {
            anyhow::bail!("batch_size_max must be 1 to 60000, got {batch_size_max}");
        }
        let store_cache_mb = args
            .store_cache_mb
            .or(file.store_cache_mb)
            .unwrap_or(STORE_CACHE_MB_DEFAULT);
        if !(1..=STORE_CACHE_MB_MAX).contains(&store_cache_mb) {
            anyhow::bail!("store_cache_mb must be 1 to {STORE_CACHE_MB_MAX}, got {store_cache_mb}");
        }
        Ok(Config {
            store,
            fdb_subspace,
            journal_shard,
            writer,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid address")),
            data,
            master_key_file,
            batch_size_max,
            linger_us: args.linger_us.or(file.linger_us).unwrap_or(0),
            queue_capacity: args
                .queue_capacity
                .or(file.queue_capacity)
                .unwrap_or(65_536)
                .max(1),
            keys_in_memory: args
                .keys_in_memory
                .or(file.keys_in_memory)
                .unwrap_or(ledger_default.keys_in_memory)
                .max(1),
            reversal_totals_in_memory: args
                .reversal_totals_in_memory
                .or(file.reversal_totals_in_memory)
                .unwrap_or(ledger_default.reversal_totals_in_memory)
                .max(1),
            member_write_delay: args
                .member_write_delay
                .or(file.member_write_delay)
                .unwrap_or(ledger_default.member_write_delay)
                .max(1),
            store_cache_mb,
            links_in_memory: args
                .links_in_memory
                .or(file.links_in_memory)
                .unwrap_or(crate::ops::registry::LINKS_IN_MEMORY_DEFAULT),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            body_bytes_max: args
                .body_bytes_max
                .or(file.body_bytes_max)
                .unwrap_or(1 << 20),
            batch_commands_max: args
                .batch_commands_max
                .or(file.batch_commands_max)
                .unwrap_or(1000)
                .max(1),
            clock_skew_seconds: args
                .clock_skew_seconds
                .or(file.clock_skew_seconds)
                .unwrap_or(300)
                .max(1),
            nonce_cache_capacity: args
                .nonce_cache_capacity
                .or(file.nonce_cache_capacity)
                .unwrap_or(20_000_000),
            connections: file.connections.unwrap_or_default(),
            demo: args.demo || file.demo.unwrap_or(false),
            demo_members: args.demo_members.or(file.demo_members).unwrap_or(3000),
            demo_history_days: args
                .demo_history_days
                .or(file.demo_history_days)
                .unwrap_or(365),
            seconds: args.seconds,
        })
    }
}
