//! A durable commit that fails stops the ledger: no caller of a batch that did not reach the
//! disk is told it succeeded (also with the writer already deciding the batches after it),
//! every later command is refused, and a reopened store holds exactly what was acknowledged.

use ledger::store::{
    Durability, EmbeddedSnapshot, EmbeddedStore, Store, StoreError, TxnBody, TxnStore, Version,
    WriteSet,
};
use ledger::*;

// Only `seed` is used here; the suite itself runs from the engines' test files.
#[allow(dead_code, unused_macros)]
mod conformance;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The embedded store, whose durable commits fail once `broken` is set (and whose
/// transactions then panic, below).
#[derive(Clone)]
struct Breakable {
    inner: EmbeddedStore,
    broken: Arc<AtomicBool>,
}

impl Breakable {
    /// The store in `dir`, whole, and the switch that breaks it.
    fn open(dir: &std::path::Path) -> (Breakable, Arc<AtomicBool>) {
        let broken = Arc::new(AtomicBool::new(false));
        let store = Breakable {
            inner: EmbeddedStore::open(dir).expect("store"),
            broken: broken.clone(),
        };
        (store, broken)
    }
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
    let (store, broken) = Breakable::open(dir.path());
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

/// What a caller heard: its key, and whether it was acknowledged.
type Heard = (IdemKey, bool);

#[test]
fn commands_sent_while_the_writer_stops_are_all_answered() {
    // Callers keep sending while the disk fails under them: a command that passed the failure
    // check just before the writer's last drain still reaches the queue, and must be answered
    // (refused), not left waiting. Many rounds, since the moment of failure moves each time.
    const ROUNDS: usize = 60;
    const SENDERS: usize = 3;
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, broken) = Breakable::open(dir.path());
        let ledger = Arc::new(Ledger::open(store, LedgerConfig::default()).expect("ledger"));
        conformance::seed(&ledger);
        let (heard, answers) = std::sync::mpsc::channel::<Vec<Heard>>();
        let senders: Vec<_> = (0..SENDERS)
            .map(|t| {
                let (ledger, heard) = (ledger.clone(), heard.clone());
                std::thread::spawn(move || {
                    let mut pending = Vec::new();
                    let mut refused_at_once = 0;
                    for i in 0.. {
                        let key = IdemKey::partner(AIR, format!("r{round}-t{t}-{i}"));
                        let cmd = earn(key.reference.clone(), 1 + i % 3);
                        match ledger.submit(cmd) {
                            Ok(answer) => pending.push((key, answer)),
                            Err(_) => refused_at_once += 1,
                        }
                        if refused_at_once == 200 {
                            break;
                        }
                    }
                    let told = pending
                        .into_iter()
                        .map(|(key, answer)| {
                            let ok = matches!(answer.blocking_recv(), Ok(Ok(_)));
                            (key, ok)
                        })
                        .collect();
                    let _ = heard.send(told);
                })
            })
            .collect();
        drop(heard);
        std::thread::sleep(std::time::Duration::from_millis(5 + (round as u64 % 7) * 3));
        broken.store(true, Ordering::Release);
        let mut told = Vec::new();
        for _ in 0..SENDERS {
            let part = answers
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("round {round}: a caller was never answered"));
            told.extend(part);
        }
        for s in senders {
            s.join().expect("sender");
        }
        assert!(
            ledger.failure().is_some(),
            "round {round}: the ledger stopped"
        );
        drop(Arc::try_unwrap(ledger).ok().expect("the only handle left"));

        let store = EmbeddedStore::open(dir.path()).expect("store reopens");
        let ledger = Ledger::open(store, LedgerConfig::default()).expect("ledger reopens");
        for (key, acknowledged) in &told {
            let found = ledger.transaction_by_key(key).expect("read").is_some();
            assert_eq!(
                found, *acknowledged,
                "round {round}: {key} acknowledged {acknowledged} but in the journal {found}"
            );
        }
        audit::audit(&ledger.read_snapshot().expect("snapshot")).expect("audit passes");
    }
}

/// On the cluster path, a transaction of a broken store panics: a bug under the writer, not a
/// storage error (those refuse a batch, and the writer goes on).
impl TxnStore for Breakable {
    fn transact<T, E: From<StoreError>>(
        &self,
        attempts: u32,
        body: &mut TxnBody<'_, T, E>,
    ) -> Result<(Version, T), E> {
        if self.broken.load(Ordering::Acquire) {
            panic!("a bug under the cluster writer");
        }
        self.inner.transact(attempts, body)
    }
}

#[test]
fn a_panicking_cluster_writer_stops_the_ledger_and_answers_every_caller() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, broken) = Breakable::open(dir.path());
    let ledger = Ledger::open_cluster(store, LedgerConfig::default(), ClusterConfig::on_shard(1))
        .expect("ledger");
    conformance::seed(&ledger);
    let before = ledger
        .execute_blocking(earn("before".into(), 1))
        .expect("earn before the panic");

    broken.store(true, Ordering::Release);
    let pending: Vec<_> = (0..500)
        .map(|i| ledger.submit(earn(format!("after-{i}"), 1 + i % 3)))
        .collect();
    let (told, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let acknowledged = pending
            .into_iter()
            .filter_map(Result::ok)
            .map(|answer| answer.blocking_recv())
            .filter(|answer| matches!(answer, Ok(Ok(_))))
            .count();
        let _ = told.send(acknowledged);
    });
    let acknowledged = answers
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("every caller is answered");
    assert_eq!(acknowledged, 0, "nothing is acknowledged after the panic");
    let why = ledger.failure().expect("the ledger says it stopped");
    assert!(why.contains("a bug under the cluster writer"), "{why}");
    match ledger.execute_blocking(earn("later".into(), 1)) {
        Err(LedgerError::Stopped { why }) => assert!(why.contains("cluster writer panicked")),
        other => panic!("a stopped ledger refuses new work with its reason: {other:?}"),
    }
    drop(ledger);

    let store = EmbeddedStore::open(dir.path()).expect("store reopens");
    let ledger = Ledger::open_cluster(store, LedgerConfig::default(), ClusterConfig::on_shard(1))
        .expect("ledger reopens");
    let found = ledger
        .transaction_by_key(&before.tx.key)
        .expect("read")
        .expect("the acknowledged earn survives");
    assert_eq!(found, *before.tx);
    assert!(ledger
        .transaction_by_key(&IdemKey::partner(AIR, "after-0".to_string()))
        .expect("read")
        .is_none());
}
