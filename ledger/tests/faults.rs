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
        ClusterConfig::on_shard(3),
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
        transaction_bytes_max: 0,
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

/// A member with 20,000 open lots, and transactions that each move thousands of them, on the
/// cluster path held to FoundationDB's limits: every record and journal block within 100 kB,
/// every transaction within 10 MB.
#[test]
fn a_member_with_20000_open_lots_passes_through_the_cluster_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_store, l) = open(dir.path(), Faults::default(), 1);
    for wave in 0..20 {
        let pending: Vec<_> = (0..1_000)
            .map(|i| {
                l.submit(earn(&format!("lot-{wave}-{i}"), 1, 3))
                    .expect("queue")
            })
            .collect();
        for p in pending {
            p.blocking_recv().expect("answer").expect("earn");
        }
    }
    let s = l.member_state(MemberId(1)).expect("read").expect("member");
    assert_eq!((s.lots.len(), s.posted.0), (20_000, 60_000));
    // One burn takes 15,000 lots; a transfer moves 4,000 more to member 2.
    let burn = l
        .execute_blocking(Command::Burn {
            key: IdemKey::partner(AIR, "big-burn"),
            member: MemberId(1),
            partner: AIR,
            points: Points(45_000),
        })
        .expect("burn");
    assert_eq!(burn.tx.lots.len(), 15_000);
    let gift = l
        .execute_blocking(Command::Transfer {
            key: IdemKey::operator("big-gift"),
            from: MemberId(1),
            to: MemberId(2),
            points: Points(12_000),
            consent: None,
        })
        .expect("transfer");
    assert_eq!(gift.tx.lots.len(), 8_000);
    // The burn reversed: its 15,000 lots come back.
    l.execute_blocking(Command::Reverse {
        key: IdemKey::partner(AIR, "big-burn-back"),
        original: burn.tx.id,
        points: None,
    })
    .expect("reversal");
    assert_eq!((posted(&l, 1), posted(&l, 2)), (48_000, 12_000));
    let s = l.member_state(MemberId(1)).expect("read").expect("member");
    assert_eq!(s.lots.len(), 16_000);
    let report = audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
    assert_eq!(report.points_outstanding, 60_000);
    l.shutdown();
}

/// A batch of the largest commands (adjustments with the longest reason and operator), as
/// many as one transaction takes, within FoundationDB's transaction limit.
#[test]
fn a_batch_of_maximum_size_commands_fits_the_transaction_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_store, l) = open(dir.path(), Faults::default(), 1);
    let reason = "ر".repeat(ledger::core::rules::adjust::REASON_LEN_MAX / 2);
    let operator = "o".repeat(ledger::core::rules::adjust::OPERATOR_LEN_MAX);
    let pending: Vec<_> = (0..2_000u64)
        .map(|i| {
            l.submit(Command::Adjust {
                key: IdemKey::operator(format!("adj-{i:0>110}")),
                member: MemberId(1 + i % MEMBERS),
                points: Points(1),
                reason: reason.as_str().into(),
                operator: operator.as_str().into(),
                qualifies: false,
                corrects: None,
            })
            .expect("queue")
        })
        .collect();
    for p in pending {
        p.blocking_recv().expect("answer").expect("adjustment");
    }
    let report = audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
    assert_eq!(report.points_outstanding, 2_000);
    l.shutdown();
}

/// A transaction over the size limit is split in halves until each part fits: every command
/// applies, none fails for the size of its batch-mates.
#[test]
fn a_batch_over_the_transaction_limit_is_split_until_it_fits() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 20 kB a transaction: a few adjustments of the longest reason each.
    let small = Faults {
        transaction_bytes_max: 20_000,
        ..Faults::default()
    };
    let (store, l) = open(dir.path(), small, 1);
    let reason = "r".repeat(ledger::core::rules::adjust::REASON_LEN_MAX);
    let pending: Vec<_> = (0..200u64)
        .map(|i| {
            l.submit(Command::Adjust {
                key: IdemKey::operator(format!("big-{i}")),
                member: MemberId(1 + i % MEMBERS),
                points: Points(1),
                reason: reason.as_str().into(),
                operator: "ops".into(),
                qualifies: false,
                corrects: None,
            })
            .expect("queue")
        })
        .collect();
    for p in pending {
        let r = p.blocking_recv().expect("answer").expect("applied");
        assert!(!r.replayed);
    }
    let report = audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
    assert_eq!(report.points_outstanding, 200);
    drop(store);
    l.shutdown();
}

/// Four processes on one store whose transactions run concurrently and conflict as
/// FoundationDB's do (the embedded engine's optimistic mode): conflicts happen, are retried or
/// split, and every command applies exactly once.
#[test]
fn four_writers_conflict_for_real_and_every_command_applies_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (faulty, first) = open(dir.path(), Faults::default(), 1);
    first.shutdown();
    let store = faulty.inner().clone();
    store.set_optimistic(true);
    let writers: Vec<_> = (0..4u8)
        .map(|shard| {
            Ledger::open_cluster(
                store.clone(),
                LedgerConfig::default(),
                ClusterConfig::on_shard(shard),
            )
            .expect("writer")
        })
        .collect();
    let mut expected = [0i64; MEMBERS as usize + 1];
    std::thread::scope(|scope| {
        let threads: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(w, l)| {
                scope.spawn(move || {
                    let mut expected = [0i64; MEMBERS as usize + 1];
                    for wave in 0..20u64 {
                        // Two members shared by every writer: conflicts are certain.
                        let pending: Vec<_> = (0..10u64)
                            .map(|i| {
                                let m = 1 + (wave + i) % 2;
                                expected[m as usize] += 5;
                                let c = Command::Earn {
                                    key: IdemKey::partner(AIR, format!("w{w}-{wave}-{i}")),
                                    member: MemberId(m),
                                    partner: AIR,
                                    points: Points(5),
                                    bonus: Points(0),
                                    awards: vec![],
                                    guard: None,
                                    purchase: None,
                                };
                                l.submit(c).expect("queue")
                            })
                            .collect();
                        for p in pending {
                            p.blocking_recv().expect("answer").expect("applied");
                        }
                    }
                    expected
                })
            })
            .collect();
        for t in threads {
            for (m, p) in t.join().expect("writer thread").iter().enumerate() {
                expected[m] += p;
            }
        }
    });
    let (conflicts, committed) = store.transaction_counts();
    assert!(
        conflicts > 0,
        "{conflicts} conflicts in {committed} commits"
    );
    let l = &writers[0];
    for m in 1..=2 {
        let b = l.balance(MemberId(m)).expect("read").expect("member");
        assert_eq!(b.posted.0, expected[m as usize], "member {m}");
    }
    audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
    for w in writers {
        w.shutdown();
    }
}
