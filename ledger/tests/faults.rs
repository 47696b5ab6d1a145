//! The cluster path through FoundationDB's faults ([`FaultyStore`] over the embedded engine):
//! conflicts and unknown commit results are retried and every command applies exactly once;
//! a timeout fails the call with an error the caller may retry, and the retry applies once.

use ledger::store::faults::{Faults, FaultyStore};
use ledger::store::{EmbeddedStore, StoreError};
use ledger::*;
use rust_decimal::Decimal;
use std::sync::atomic::Ordering;

const AIR: PartnerId = PartnerId(1);
const MEMBERS: u64 = 8;

type Store = FaultyStore<EmbeddedStore>;

fn open(dir: &std::path::Path, faults: Faults, seed: u64) -> (Store, Ledger<Store>) {
    let store = FaultyStore::new(
        EmbeddedStore::open(dir).expect("store"),
        Faults::default(),
        seed,
    );
    let ledger = Ledger::open_cluster(
        store.clone(),
        LedgerConfig::default(),
        ClusterConfig { shard: 3 },
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
    for m in 1..=MEMBERS {
        ledger
            .execute_blocking(Command::Enrol {
                key: IdemKey::operator(format!("enrol-{m}")),
                member: MemberId(m),
            })
            .expect("enrol");
    }
    store.set_faults(faults);
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

fn posted(l: &Ledger<Store>, m: u64) -> i64 {
    l.balance(MemberId(m))
        .expect("read")
        .expect("member")
        .posted
        .0
}

#[test]
fn conflicts_and_unknown_results_are_retried_and_every_command_applies_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = Faults {
        conflict: 150,
        unknown_committed: 100,
        unknown_lost: 100,
        timeout: 0,
        slow: 20,
        slow_ms: 1,
    };
    let (store, l) = open(dir.path(), faults, 7);
    // Waves of 5 commands submitted together: batches of several commands, split when a
    // fault outlasts their shared attempts.
    let mut expected = [0i64; MEMBERS as usize + 1];
    let mut first: Vec<(Command, TxId)> = Vec::new();
    for wave in 0..80 {
        let cmds: Vec<Command> = (0..5u64)
            .map(|i| {
                let n = wave * 5 + i;
                earn(&format!("e-{n}"), 1 + n % MEMBERS, 10 + (n % 7) as i64)
            })
            .collect();
        let pending: Vec<_> = cmds
            .iter()
            .map(|c| l.submit(c.clone()).expect("queue"))
            .collect();
        for (c, p) in cmds.into_iter().zip(pending) {
            let r = p.blocking_recv().expect("answer").expect("applied");
            assert!(
                !r.replayed,
                "a first answer, even when an unknown result hid the commit"
            );
            if let Command::Earn { member, points, .. } = &c {
                expected[member.0 as usize] += points.0;
            }
            first.push((c, r.tx.id));
        }
    }
    let injected = store.injected();
    assert!(
        injected.conflicts.load(Ordering::Relaxed) > 0
            && injected.unknown_committed.load(Ordering::Relaxed) > 0
            && injected.unknown_lost.load(Ordering::Relaxed) > 0,
        "every kind was injected: {injected:?}"
    );
    for m in 1..=MEMBERS {
        assert_eq!(posted(&l, m), expected[m as usize], "member {m}");
    }
    // Every command again: a replay of the one transaction it made.
    for (c, id) in first {
        let r = l.execute_blocking(c).expect("retry");
        assert!(r.replayed);
        assert_eq!(r.tx.id, id);
    }
    let report = audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
    assert_eq!(report.points_outstanding, expected.iter().sum::<i64>());
    l.shutdown();
}

#[test]
fn a_timeout_answers_a_retryable_error_and_the_retry_applies_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let every_commit = Faults {
        timeout: 1_000,
        ..Faults::default()
    };
    let (store, l) = open(dir.path(), every_commit, 11);
    match l.execute_blocking(earn("t-1", 1, 100)) {
        Err(LedgerError::Storage(e @ StoreError::Timeout(_))) => assert!(e.is_transient()),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(posted(&l, 1), 0, "nothing applied");
    store.set_faults(Faults::default());
    let r = l.execute_blocking(earn("t-1", 1, 100)).expect("the retry");
    assert!(!r.replayed);
    assert_eq!(posted(&l, 1), 100);
    assert!(
        l.execute_blocking(earn("t-1", 1, 100))
            .expect("again")
            .replayed
    );
    assert_eq!(posted(&l, 1), 100);
    l.shutdown();
}
