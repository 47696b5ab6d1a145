//! A durable commit that fails stops the ledger: no caller of a batch that did not reach the
//! disk is told it succeeded (also with the writer already deciding the batches after it),
//! every later command is refused, and a reopened store holds exactly what was acknowledged.

use ledger::store::{
    Durability, EmbeddedSnapshot, EmbeddedStore, Store, StoreError, Version, WriteSet,
};
use ledger::*;

// Only `seed` is used here; the suite itself runs from the engines' test files.
#[allow(dead_code, unused_macros)]
mod conformance;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The embedded store, whose durable commits fail once `broken` is set.
#[derive(Clone)]
struct Breakable {
    inner: EmbeddedStore,
    broken: Arc<AtomicBool>,
}

impl Store for Breakable {
    type Snapshot = EmbeddedSnapshot;

    fn snapshot(&self) -> Result<EmbeddedSnapshot, StoreError> {
        self.inner.snapshot()
    }

    fn commit(&self, writes: WriteSet, durability: Durability) -> Result<Version, StoreError> {
        if durability == Durability::Sync && self.broken.load(Ordering::Acquire) {
            return Err(StoreError::Engine("disk gone".into()));
        }
        self.inner.commit(writes, durability)
    }

    fn next_version(&self) -> Version {
        self.inner.next_version()
    }
}

const AIR: PartnerId = PartnerId(1);

fn earn(reference: String, member: u64) -> Command {
    Command::Earn {
        key: IdemKey::partner(AIR, reference),
        member: MemberId(member),
        partner: AIR,
        points: Points(100),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    }
}

#[test]
fn a_failed_durable_commit_answers_no_one_with_success_and_stops_the_ledger() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = Arc::new(AtomicBool::new(false));
    let store = Breakable {
        inner: EmbeddedStore::open(dir.path()).expect("store"),
        broken: broken.clone(),
    };
    let ledger = Ledger::open(store, LedgerConfig::default()).expect("ledger");
    conformance::seed(&ledger);
    let before: Vec<Receipt> = (0..20)
        .map(|i| {
            ledger
                .execute_blocking(earn(format!("ok-{i}"), 1 + i % 3))
                .expect("earn before the failure")
        })
        .collect();

    broken.store(true, Ordering::Release);
    // Many commands at once, so the writer decides more batches while the first one fails.
    let pending: Vec<_> = (0..2_000)
        .map(|i| ledger.submit(earn(format!("lost-{i}"), 1 + i % 3)))
        .collect();
    let mut refused = 0;
    for p in pending {
        match p {
            Err(_) => refused += 1,
            Ok(answer) => match answer.blocking_recv() {
                Ok(Ok(receipt)) => panic!("acknowledged after the disk failed: {receipt:?}"),
                Ok(Err(_)) | Err(_) => refused += 1,
            },
        }
    }
    assert_eq!(refused, 2_000, "every command after the failure is refused");
    let why = ledger.failure().expect("the ledger says it stopped");
    assert!(why.contains("disk gone"), "{why}");
    assert!(
        ledger.execute_blocking(earn("after".into(), 1)).is_err(),
        "a stopped ledger refuses new work"
    );
    drop(ledger);

    let store = EmbeddedStore::open(dir.path()).expect("store reopens");
    let ledger = Ledger::open(store, LedgerConfig::default()).expect("ledger reopens");
    for r in &before {
        let found = ledger
            .transaction_by_key(&r.tx.key)
            .expect("read")
            .expect("an acknowledged earn survives");
        assert_eq!(found, *r.tx);
    }
    for i in [0, 999, 1_999] {
        assert!(
            ledger
                .transaction_by_key(&IdemKey::partner(AIR, format!("lost-{i}")))
                .expect("read")
                .is_none(),
            "lost-{i} was refused and is not in the journal"
        );
    }
    let posted: i64 = (1..=3)
        .map(|m| {
            ledger
                .balance(MemberId(m))
                .expect("read")
                .expect("enrolled")
                .posted
                .0
        })
        .sum();
    assert_eq!(posted, 20 * 100, "exactly the acknowledged earns");
    let report = audit::audit(&ledger.read_snapshot().expect("snapshot")).expect("audit passes");
    assert_eq!(
        report.transactions,
        2 + 3 + 20,
        "2 contracts, 3 enrolments, 20 earns"
    );
}
