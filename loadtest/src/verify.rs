//! The post-run check: every acknowledged command is in the ledger with the receipt that was
//! returned; no command was applied twice; commands without an answer were applied at most
//! once; the ledger's audit passes; and the points owed to members moved by exactly what the
//! harness expects.

use crate::client::{Client, Reply};
use crate::recorder::Recorder;
use anyhow::Context;
use ledger::audit::AuditReport;
use ledger::store::{EmbeddedStore, Store};
use ledger::{AccountId, Scope};
use partners_gateway::config::Config;
use std::collections::HashMap;
use std::path::PathBuf;

/// What the ledger holds for one (partner, reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Transaction id.
    pub transaction_id: String,
    /// Change to the member's posted points.
    pub member_delta: i64,
    /// How many transactions carry this key (must be 1).
    pub copies: u32,
}

/// Where the check looks things up.
pub trait Lookup {
    /// The transaction a partner's reference produced.
    fn find(&self, partner: u32, reference: &str) -> Option<Found>;
}

impl Lookup for HashMap<(u32, String), Found> {
    fn find(&self, partner: u32, reference: &str) -> Option<Found> {
        self.get(&(partner, reference.to_string())).cloned()
    }
}

/// The check's result.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verification {
    /// Acknowledged commands checked.
    pub acknowledged: usize,
    /// Commands without an answer that the ledger applied (once).
    pub applied_without_answer: usize,
    /// Points owed to members: expected change and actual change.
    pub outstanding_expected_delta: i64,
    /// Actual change.
    pub outstanding_actual_delta: i64,
    /// Everything that was wrong; empty when the check passed.
    pub failures: Vec<String>,
}

/// Checks the run against `lookup` and the actual change in points owed to members.
pub fn check(rec: &Recorder, lookup: &dyn Lookup, outstanding_actual_delta: i64) -> Verification {
    let mut v = Verification {
        acknowledged: rec.acks.len(),
        outstanding_actual_delta,
        ..Verification::default()
    };
    let mut expected: i64 = 0;
    for ack in &rec.acks {
        expected += ack.member_delta;
        match lookup.find(ack.partner, &ack.reference) {
            None => v.failures.push(format!(
                "acknowledged partner {} reference {} (transaction {}) is not in the ledger",
                ack.partner, ack.reference, ack.transaction_id
            )),
            Some(f) if f.transaction_id != ack.transaction_id || f.member_delta != ack.member_delta => {
                v.failures.push(format!(
                    "partner {} reference {}: acknowledged transaction {} ({:+} points), ledger has {} ({:+} points)",
                    ack.partner, ack.reference, ack.transaction_id, ack.member_delta, f.transaction_id, f.member_delta
                ))
            }
            Some(f) if f.copies != 1 => v.failures.push(format!(
                "partner {} reference {} was applied {} times",
                ack.partner, ack.reference, f.copies
            )),
            Some(_) => {}
        }
    }
    for u in &rec.unanswered {
        if let Some(f) = lookup.find(u.partner, &u.reference) {
            if f.copies != 1 {
                v.failures.push(format!(
                    "unanswered partner {} reference {} was applied {} times",
                    u.partner, u.reference, f.copies
                ));
            }
            v.applied_without_answer += 1;
            expected += f.member_delta;
        }
    }
    v.outstanding_expected_delta = expected;
    if expected != outstanding_actual_delta {
        v.failures.push(format!(
            "points owed to members changed by {outstanding_actual_delta}, the acknowledged commands add up to {expected}"
        ));
    }
    v
}

/// A gateway the harness starts for itself on a temporary embedded store.
pub struct OwnGateway {
    runtime: tokio::runtime::Runtime,
    running: Option<partners_gateway::Running>,
    _dir: tempfile::TempDir,
    data: PathBuf,
    /// Its URL.
    pub base: String,
    /// The demo credentials file.
    pub credentials: PathBuf,
}

impl OwnGateway {
    /// Starts a gateway with the demo coalition and `members` members.
    pub fn start(members: u64, batch_size_max: usize) -> anyhow::Result<OwnGateway> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let mut config = Config::for_tests(&data);
        config.demo_members = members;
        config.batch_size_max = batch_size_max;
        config.nonce_cache_capacity = 50_000_000;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gateway")
            .enable_all()
            .build()?;
        let running = runtime.block_on(partners_gateway::start(config))?;
        let credentials = running
            .demo_credentials
            .clone()
            .context("the demo wrote credentials")?;
        Ok(OwnGateway {
            base: format!("http://{}", running.addr),
            running: Some(running),
            runtime,
            _dir: dir,
            data,
            credentials,
        })
    }

    /// Stops the gateway (draining the committer), then checks the run against its store:
    /// journal, audit, points outstanding. Returns the check and the postings committed.
    pub fn stop_and_verify(self, rec: &Recorder) -> anyhow::Result<(Verification, u64)> {
        let (journal, audit) = self.stop_and_read()?;
        // The demo seeds no points, so everything members are owed is the run's doing.
        let owed = audit.as_ref().map_or(0, |r| r.points_outstanding);
        let mut v = check(rec, &journal, owed);
        let postings = match audit {
            Ok(report) => report.postings,
            Err(e) => {
                v.failures.push(format!("ledger audit failed: {e}"));
                0
            }
        };
        Ok((v, postings))
    }

    /// Stops the gateway and reads its journal (by partner reference) and its audit.
    pub fn stop_and_read(mut self) -> anyhow::Result<(JournalIndex, Result<AuditReport, String>)> {
        if let Some(r) = self.running.take() {
            self.runtime.block_on(r.stop())?;
        }
        let store = EmbeddedStore::open(&self.data)?;
        let snap = store.snapshot()?;
        let journal = journal_lookup(&snap)?;
        let audit = ledger::audit::audit(&snap).map_err(|e| e.to_string());
        Ok((journal, audit))
    }
}

/// The journal's partner transactions by (partner, reference).
pub type JournalIndex = HashMap<(u32, String), Found>;

/// Every partner-scoped transaction in the journal, by (partner, reference), with copies.
pub fn journal_lookup<S: ledger::store::Snapshot>(snap: &S) -> anyhow::Result<JournalIndex> {
    let mut map: HashMap<(u32, String), Found> = HashMap::new();
    ledger::journal::for_each_batch(snap, 0, &mut |_, txs| {
        for tx in txs {
            let Scope::Partner(p) = tx.key.scope else {
                continue;
            };
            let member_delta = tx
                .kind
                .member()
                .map_or(0, |m| tx.points_to(AccountId::Member(m)).0);
            map.entry((p.0, tx.key.reference.clone()))
                .and_modify(|f| f.copies += 1)
                .or_insert(Found {
                    transaction_id: tx.id.0.to_string(),
                    member_delta,
                    copies: 1,
                });
        }
        Ok(())
    })?;
    Ok(map)
}

/// Sum of posted points of members `1..=members`, read over the API.
pub async fn outstanding_over_http(client: &Client, members: u64) -> anyhow::Result<i64> {
    let mut total = 0;
    for m in 1..=members {
        let path = format!("/v1/members/{}", crate::workload::member_reference(1, m));
        match client.send(1, "GET", &path, Default::default()).await {
            Reply::Http { status: 200, body } => {
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                total += v["posted"].as_i64().unwrap_or(0);
            }
            Reply::Http { status, .. } => anyhow::bail!("balance of member {m}: HTTP {status}"),
            Reply::Transport(e) => anyhow::bail!("balance of member {m}: {e}"),
        }
    }
    Ok(total)
}

/// The check against a gateway the harness did not start: lookups by reference over the API.
pub async fn verify_over_http(
    client: &Client,
    rec: &Recorder,
    members: u64,
    before: i64,
) -> anyhow::Result<Verification> {
    let mut found: HashMap<(u32, String), Found> = HashMap::new();
    let keys = rec
        .acks
        .iter()
        .map(|a| (a.partner, a.reference.clone()))
        .chain(
            rec.unanswered
                .iter()
                .map(|u| (u.partner, u.reference.clone())),
        );
    for (partner, reference) in keys {
        let path = format!("/v1/transactions/{reference}");
        if let Reply::Http { status: 200, body } =
            client.send(partner, "GET", &path, Default::default()).await
        {
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            found.insert(
                (partner, reference),
                Found {
                    transaction_id: v["transaction_id"].as_str().unwrap_or("").to_string(),
                    member_delta: crate::recorder::Ack::member_delta_of(&v),
                    copies: 1,
                },
            );
        }
    }
    let after = outstanding_over_http(client, members).await?;
    Ok(check(rec, &found, after - before))
}
