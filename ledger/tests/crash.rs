//! Crash test: SIGKILL a process that is committing, reopen the store, and check that every
//! acknowledged command is there with the id it was acknowledged with, that retries after the
//! crash are answered from the journal, and that the audit holds (nothing half-applied).

use ledger::store::EmbeddedStore;
use ledger::*;
use rand::Rng;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn child_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ledger-crash-child"))
}

/// Runs the child until it has acknowledged some commands, kills it, returns its lines.
fn run_and_kill(dir: &Path, cycle: u64, kill_after: Duration) -> Vec<String> {
    let mut child = Process::new(child_binary())
        .arg(dir)
        .arg(cycle.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let lines = lines.clone();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().expect("lines").push(line);
            }
        })
    };
    let start = Instant::now();
    while !lines.lock().expect("lines").iter().any(|l| l == "READY") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "child never became ready"
        );
        assert!(
            child.try_wait().expect("poll child").is_none(),
            "child exited early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(kill_after);
    child.kill().expect("SIGKILL child");
    child.wait().expect("reap child");
    reader.join().expect("reader");
    let out = lines.lock().expect("lines").clone();
    out
}

#[test]
fn every_acknowledged_command_survives_sigkill_and_the_audit_holds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = rand::rng();
    let mut acked_before: HashMap<String, u64> = HashMap::new();
    let mut total_acked = 0usize;
    let started = Instant::now();
    for cycle in 0..8u64 {
        let kill_after = Duration::from_millis(rng.random_range(50..700));
        let lines = run_and_kill(dir.path(), cycle, kill_after);
        let mut acked: HashMap<String, u64> = HashMap::new();
        for line in &lines {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["ACK", reference, id] => {
                    acked.insert(reference.to_string(), id.parse().expect("tx id"));
                }
                ["RETRY", reference, id, replayed] => {
                    if let Some(first) = acked_before.get(*reference) {
                        assert_eq!(
                            id.parse::<u64>().expect("tx id"),
                            *first,
                            "a retry after the crash returns the original transaction"
                        );
                        assert_eq!(
                            *replayed, "true",
                            "a retry of {reference} after the crash must be a replay"
                        );
                    }
                }
                _ => {}
            }
        }
        assert!(
            !acked.is_empty() || cycle > 0,
            "cycle {cycle}: the child acknowledged nothing"
        );
        total_acked += acked.len();

        let ledger = Ledger::open(
            EmbeddedStore::open(dir.path()).expect("reopen store"),
            LedgerConfig::default(),
        )
        .expect("recover ledger");
        for (reference, id) in &acked {
            let tx = ledger
                .transaction_by_key(&IdemKey::partner(PartnerId(1), reference.clone()))
                .expect("read")
                .unwrap_or_else(|| {
                    panic!("cycle {cycle}: acknowledged {reference} is missing after SIGKILL")
                });
            assert_eq!(
                tx.id.0, *id,
                "cycle {cycle}: {reference} has a different id after recovery"
            );
        }
        let report = audit::audit(&ledger.read_snapshot().expect("snapshot"))
            .unwrap_or_else(|e| panic!("cycle {cycle}: audit failed after SIGKILL: {e}"));
        assert!(report.transactions as usize >= acked.len());
        ledger.shutdown();
        acked_before = acked;
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "crash test is bounded to two minutes"
        );
    }
    assert!(
        total_acked > 100,
        "too few acknowledged commands to mean anything: {total_acked}"
    );
}
