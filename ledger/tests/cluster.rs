//! The cluster path's retry and splitting rules, driven on the embedded engine, whose
//! transactions never conflict by themselves: `EmbeddedStore::inject_conflicts` makes the next
//! commits fail as a contended FoundationDB cluster would.

use ledger::store::EmbeddedStore;
use ledger::*;
use rust_decimal::Decimal;
use std::sync::atomic::Ordering;

const AIR: PartnerId = PartnerId(1);

fn open(dir: &std::path::Path) -> (EmbeddedStore, Ledger<EmbeddedStore>) {
    let store = EmbeddedStore::open(dir).expect("store");
    let ledger = Ledger::open_cluster(
        store.clone(),
        LedgerConfig::default(),
        ClusterConfig::on_shard(2),
    )
    .expect("ledger");
    ledger
        .execute_blocking(Command::SetContract {
            key: IdemKey::operator("contract"),
            contract: Contract {
                partner: AIR,
                currency: "EUR".parse().expect("EUR"),
                issuance_price_per_point: Decimal::new(1, 2),
                redemption_price_per_point: Decimal::new(75, 4),
                points_validity_days: None,
            },
        })
        .expect("contract");
    for m in 1..=8 {
        ledger
            .execute_blocking(Command::Enrol {
                key: IdemKey::operator(format!("enrol-{m}")),
                member: MemberId(m),
            })
            .expect("enrol");
    }
    (store, ledger)
}

fn earn(reference: &str, member: u64, points: i64) -> Command {
    Command::Earn {
        key: IdemKey::partner(AIR, reference),
        member: MemberId(member),
        partner: AIR,
        points: Points(points),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    }
}

fn audit_of(l: &Ledger<EmbeddedStore>) -> audit::AuditReport {
    audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit passes")
}

#[test]
fn a_conflicting_batch_is_retried_and_split_and_every_command_commits_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, l) = open(dir.path());
    store.inject_conflicts(7);
    let pending: Vec<_> = (1..=8)
        .map(|m| l.submit(earn(&format!("e{m}"), m, 100)).expect("submit"))
        .collect();
    for (m, p) in (1..=8).zip(pending) {
        let r = p
            .blocking_recv()
            .expect("answer")
            .expect("commits despite conflicts");
        assert!(!r.replayed);
        assert_eq!(
            l.balance(MemberId(m))
                .expect("read")
                .expect("member")
                .posted,
            Points(100)
        );
    }
    let report = audit_of(&l);
    assert_eq!(report.points_outstanding, 800);
    assert_eq!(report.transactions, 1 + 8 + 8);
}

#[test]
fn a_command_that_keeps_conflicting_fails_alone_and_a_retry_applies_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, l) = open(dir.path());
    store.inject_conflicts(1_000);
    let failed = l.execute_blocking(earn("contended", 1, 50));
    match failed {
        Err(LedgerError::Contended { why }) => assert!(!why.is_empty()),
        other => panic!("expected a contention failure, got {other:?}"),
    }
    store.inject_conflicts(0);
    assert_eq!(
        l.balance(MemberId(1))
            .expect("read")
            .expect("member")
            .posted,
        Points(0),
        "a failed command changes nothing"
    );
    let r = l.execute_blocking(earn("contended", 1, 50)).expect("retry");
    assert!(!r.replayed, "the first attempt never committed");
    assert_eq!(audit_of(&l).points_outstanding, 50);
}

#[test]
fn large_batches_are_split_into_transactions_under_the_size_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_store, l) = open(dir.path());
    let before = l.stats().batches.load(Ordering::Relaxed);
    let n = 2_500u64;
    let pending: Vec<_> = (0..n)
        .map(|i| {
            l.submit(earn(&format!("bulk-{i}"), 1 + i % 8, 3))
                .expect("submit")
        })
        .collect();
    for p in pending {
        p.blocking_recv().expect("answer").expect("earn");
    }
    let transactions = l.stats().batches.load(Ordering::Relaxed) - before;
    assert!(
        transactions >= n / cluster::TXN_COMMANDS_MAX as u64,
        "{n} commands took {transactions} transactions"
    );
    let report = audit_of(&l);
    assert_eq!(report.points_outstanding, 3 * n as i64);
}

#[test]
fn a_single_writer_store_is_not_opened_on_the_cluster_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let single = Ledger::open(store.clone(), LedgerConfig::default()).expect("ledger");
    single
        .execute_blocking(Command::Enrol {
            key: IdemKey::operator("enrol"),
            member: MemberId(1),
        })
        .expect("enrol");
    single.shutdown();
    match Ledger::open_cluster(store, LedgerConfig::default(), ClusterConfig::on_shard(0)) {
        Err(LedgerError::WrongWritePath { written, asked }) => {
            assert_eq!((written, asked), (WritePath::Single, WritePath::Cluster))
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a single-writer store opened on the cluster path"),
    }
}
