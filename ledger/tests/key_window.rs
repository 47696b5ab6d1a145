//! The single writer keeps the idempotency keys of about `keys_in_memory` latest transactions
//! in memory; older ones move to the on-disk index and are still answered exactly once, by the
//! writer (a retry replays, a changed command conflicts) and by reads, before and after a
//! restart, which loads only the window.

use ledger::keys;
use ledger::store::EmbeddedStore;
use ledger::*;
use rust_decimal::Decimal;

const AIR: PartnerId = PartnerId(1);
const WINDOW: usize = 100;

fn earn(i: u64, points: i64) -> Command {
    Command::Earn {
        key: IdemKey::partner(AIR, format!("ticket-{i}")),
        member: MemberId(1 + i % 5),
        partner: AIR,
        points: Points(points),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    }
}

fn open(dir: &std::path::Path) -> Ledger<EmbeddedStore> {
    let config = LedgerConfig {
        keys_in_memory: WINDOW,
        ..LedgerConfig::default()
    };
    Ledger::open(EmbeddedStore::open(dir).expect("store"), config).expect("ledger")
}

/// The airline's contract and five members: the receipts of the commands.
fn set_up(l: &Ledger<EmbeddedStore>) -> Vec<Receipt> {
    let mut receipts = vec![l
        .execute_blocking(Command::SetContract {
            key: IdemKey::operator("contract"),
            contract: Contract {
                partner: AIR,
                currency: "EUR".parse().expect("EUR"),
                issuance_price_per_point: Decimal::new(1, 2),
                redemption_price_per_point: Decimal::new(1, 2),
                points_validity_days: None,
            },
        })
        .expect("contract")];
    for m in 1..=5 {
        receipts.push(
            l.execute_blocking(Command::Enrol {
                key: IdemKey::operator(format!("enrol-{m}")),
                member: MemberId(m),
            })
            .expect("enrol"),
        );
    }
    receipts
}

/// Earn `i` is answered exactly once: a retry replays `first`, the same key with other content
/// conflicts naming it, and a read by key finds it.
fn answered_once(l: &Ledger<EmbeddedStore>, i: u64, first: &Receipt) {
    let again = l.execute_blocking(earn(i, 10)).expect("retry");
    assert!(
        again.replayed && again.tx == first.tx,
        "ticket-{i} replayed"
    );
    let changed = l.execute_blocking(earn(i, 11));
    assert!(
        matches!(changed, Err(LedgerError::Rejected(Rejection::IdempotencyConflict { original })) if original == first.tx.id),
        "ticket-{i} with other content: {changed:?}"
    );
    let read = l
        .transaction_by_key(&IdemKey::partner(AIR, format!("ticket-{i}")))
        .expect("read")
        .expect("found");
    assert_eq!(read, *first.tx);
}

#[test]
fn keys_older_than_the_window_are_answered_from_disk_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let l = open(dir.path());
    set_up(&l);
    const N: u64 = 3_000;
    let first: Vec<Receipt> = (0..N)
        .map(|i| l.execute_blocking(earn(i, 10)).expect("earn"))
        .collect();
    // Settle: the projector has moved old keys out; the next batch drops them from memory.
    l.execute_blocking(earn(N, 10)).expect("earn");
    let _ = l.balance(MemberId(1)).expect("read");
    l.execute_blocking(earn(N + 1, 10)).expect("earn");
    let held = l.keys_in_memory().expect("single path");
    assert!(
        held < 4 * WINDOW,
        "{held} keys in memory with a window of {WINDOW}"
    );

    // `earns`: the earns posted so far, each once.
    let check = |l: &Ledger<EmbeddedStore>, earns: u64| {
        for i in [0, 1, 7, N / 2, N - 1] {
            let again = l.execute_blocking(earn(i, 10)).expect("retry");
            assert!(again.replayed, "ticket-{i} replayed");
            assert_eq!(
                again.tx, first[i as usize].tx,
                "ticket-{i}: the first receipt"
            );
            let changed = l.execute_blocking(earn(i, 11));
            assert!(
                matches!(changed, Err(LedgerError::Rejected(Rejection::IdempotencyConflict { original })) if original == first[i as usize].tx.id),
                "ticket-{i} with other content: {changed:?}"
            );
            let read = l
                .transaction_by_key(&IdemKey::partner(AIR, format!("ticket-{i}")))
                .expect("read")
                .expect("found");
            assert_eq!(read, *first[i as usize].tx);
        }
        let posted: i64 = (1..=5)
            .map(|m| {
                l.balance(MemberId(m))
                    .expect("read")
                    .expect("member")
                    .posted
                    .0
            })
            .sum();
        assert_eq!(posted, earns as i64 * 10, "every earn once, no retry twice");
        let report = ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
        assert_eq!(report.idempotency_keys, 1 + 5 + earns as usize);
    };
    check(&l, N + 2);

    l.shutdown();
    let l = open(dir.path());
    let held = l.keys_in_memory().expect("single path");
    assert!(
        held < 4 * WINDOW,
        "a restart loads the window only: {held} keys"
    );
    check(&l, N + 2);
    let fresh = l.execute_blocking(earn(N + 2, 10)).expect("a new key");
    assert!(!fresh.replayed);

    // The filter over keys on disk was sized at this open for those there then plus four
    // windows; as many keys again outgrow it, and a filter twice the keys on disk, filled
    // beside the writer, takes its place. Every key, old or new, is still answered once.
    let sized = l.key_filter_capacity().expect("single path");
    assert!(sized < 2 * N as usize, "sized at open: {sized}");
    let more: Vec<Receipt> = (N + 3..2 * N + 3)
        .map(|i| l.execute_blocking(earn(i, 10)).expect("earn"))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let grown = loop {
        let now = l.key_filter_capacity().expect("single path");
        if now > sized || std::time::Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        grown >= 2 * sized,
        "the filter grew from {sized} to {grown}"
    );
    for (i, receipt) in (N + 3..).zip(&more).step_by(97) {
        let again = l.execute_blocking(earn(i, 10)).expect("retry");
        assert!(
            again.replayed && again.tx == receipt.tx,
            "ticket-{i} replayed"
        );
    }
    check(&l, 2 * N + 3);
}

/// Rewrites every on-disk record of `store` (`l` hash) in the first form (`L` full hash, each
/// transaction with its command's digest), as a store written before the compact form holds
/// them. `committed` is every transaction so far. Returns how many records it rewrote.
fn rewrite_in_first_form(store: &EmbeddedStore, committed: &[Receipt]) -> usize {
    use ledger::store::{Durability, Snapshot, Store, WriteSet};
    let by_tx: std::collections::HashMap<TxId, (u128, &Receipt)> = committed
        .iter()
        .map(|r| (r.tx.id, (keys::hash_key(&r.tx.key), r)))
        .collect();
    let snap = store.snapshot().expect("snapshot");
    let mut w = WriteSet::default();
    let mut rewritten = 0;
    snap.scan(
        &[keys::IDEM_BY_HASH],
        &[keys::IDEM_BY_HASH + 1],
        &mut |k, v| {
            let ids: Vec<TxId> = ledger::codec::decode("record", v).expect("record");
            let mut by_hash: std::collections::BTreeMap<u128, Vec<ledger::codec::IdemRecord>> =
                Default::default();
            for id in ids {
                let (h, r) = by_tx[&id];
                assert_eq!(keys::idempotency_by_hash(keys::disk_hash(h)).as_slice(), k);
                by_hash
                    .entry(h)
                    .or_default()
                    .push(ledger::codec::IdemRecord {
                        tx: id,
                        digest: r.tx.digest,
                    });
            }
            for (h, recs) in by_hash {
                w.set_owned(
                    keys::idempotency_on_disk_v1(h),
                    ledger::codec::encode(&recs),
                );
            }
            w.clear(k);
            rewritten += 1;
            true
        },
    )
    .expect("scan");
    store.commit(w, Durability::Sync).expect("commit");
    rewritten
}

/// How many records of family `family` the store holds.
fn count_family(l: &Ledger<EmbeddedStore>, family: u8) -> usize {
    use ledger::store::Snapshot;
    let mut n = 0;
    l.read_snapshot()
        .expect("snapshot")
        .scan(&[family], &[family + 1], &mut |_, _| {
            n += 1;
            true
        })
        .expect("scan");
    n
}

#[test]
fn records_of_the_first_form_are_still_answered_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let l = open(dir.path());
    let mut committed = set_up(&l);
    const N: u64 = 1_500;
    let mut earns: Vec<Receipt> = (0..N)
        .map(|i| l.execute_blocking(earn(i, 10)).expect("earn"))
        .collect();
    let _ = l.balance(MemberId(1)).expect("read");
    l.shutdown();

    // The store as one written before the compact form: every record on disk in the first form.
    committed.extend(earns.iter().cloned());
    let rewritten =
        rewrite_in_first_form(&EmbeddedStore::open(dir.path()).expect("store"), &committed);
    assert!(rewritten > N as usize / 2, "{rewritten} records rewritten");

    let l = open(dir.path());
    assert_eq!(count_family(&l, keys::IDEM_BY_HASH), 0);
    assert_eq!(count_family(&l, keys::IDEM_ON_DISK_V1), rewritten);
    // New keys move to disk in the compact form beside the old ones.
    earns.extend((N..2 * N).map(|i| l.execute_blocking(earn(i, 10)).expect("earn")));
    let _ = l.balance(MemberId(1)).expect("read");
    l.execute_blocking(earn(2 * N, 10)).expect("earn");
    let compact = count_family(&l, keys::IDEM_BY_HASH);
    assert!(compact > N as usize / 2, "{compact} compact records");

    let check = |l: &Ledger<EmbeddedStore>| {
        for i in (0..2 * N).step_by(53) {
            answered_once(l, i, &earns[i as usize]);
        }
        let report = ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
        assert_eq!(report.idempotency_keys, 1 + 5 + 2 * N as usize + 1);
    };
    check(&l);
    l.shutdown();
    // After a restart too: the filter is rebuilt from both forms.
    let l = open(dir.path());
    check(&l);
}

/// Rewrites every index chunk of `store` (`K` seq) in the first form (each transaction with
/// its command's digest), as a store written before the compact chunks holds them.
/// `committed` is every transaction so far. Returns how many entries it rewrote.
fn rewrite_chunks_in_first_form(store: &EmbeddedStore, committed: &[Receipt]) -> usize {
    use ledger::codec::{IdemChunk, IdemRecord};
    use ledger::store::{Durability, Snapshot, Store, WriteSet};
    let digests: std::collections::HashMap<TxId, _> =
        committed.iter().map(|r| (r.tx.id, r.tx.digest)).collect();
    let snap = store.snapshot().expect("snapshot");
    let mut w = WriteSet::default();
    let mut rewritten = 0;
    snap.scan(&[keys::IDEM_CHUNK], &[keys::IDEM_CHUNK + 1], &mut |k, v| {
        let entries = ledger::codec::key_chunk_entries(v).expect("chunk");
        assert!(
            entries.iter().all(|e| e.digest.is_none()),
            "written compact"
        );
        rewritten += entries.len();
        let first = IdemChunk {
            entries: entries
                .iter()
                .map(|e| {
                    (
                        e.hash,
                        IdemRecord {
                            tx: e.tx,
                            digest: digests[&e.tx],
                        },
                    )
                })
                .collect(),
        };
        w.set_owned(k.to_vec(), ledger::codec::encode(&first));
        true
    })
    .expect("scan");
    store.commit(w, Durability::Sync).expect("commit");
    rewritten
}

/// Index chunks were written with each command's digest until 2026-12-04, and are now written
/// without it. A store whose chunks are all in the first form opens with every key of its
/// window in memory, answers each exactly once, moves those chunks' keys to disk past the
/// window like any others, and passes the audit, before and after a restart.
#[test]
fn index_chunks_of_the_first_form_are_still_loaded_and_moved() {
    let dir = tempfile::tempdir().expect("dir");
    // A window larger than the history: every key stays in the chunks.
    let roomy = |dir: &std::path::Path| {
        let config = LedgerConfig {
            keys_in_memory: 100_000,
            ..LedgerConfig::default()
        };
        Ledger::open(EmbeddedStore::open(dir).expect("store"), config).expect("ledger")
    };
    let l = roomy(dir.path());
    let mut committed = set_up(&l);
    const N: u64 = 600;
    let earns: Vec<Receipt> = (0..N)
        .map(|i| l.execute_blocking(earn(i, 10)).expect("earn"))
        .collect();
    let _ = l.balance(MemberId(1)).expect("read");
    l.shutdown();
    committed.extend(earns.iter().cloned());
    let rewritten =
        rewrite_chunks_in_first_form(&EmbeddedStore::open(dir.path()).expect("store"), &committed);
    assert_eq!(rewritten, committed.len(), "every transaction's key");

    let check = |l: &Ledger<EmbeddedStore>, earned: u64| {
        for i in (0..N).step_by(41) {
            answered_once(l, i, &earns[i as usize]);
        }
        let report = ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
        assert_eq!(report.idempotency_keys, 1 + 5 + earned as usize);
    };
    // Loaded from first-form chunks into memory.
    let l = roomy(dir.path());
    assert_eq!(l.keys_in_memory().expect("single path"), committed.len());
    check(&l, N);
    l.shutdown();

    // With the small window, the first-form chunks' keys move to disk beside compact ones.
    let l = open(dir.path());
    let more: Vec<Receipt> = (N..2 * N)
        .map(|i| l.execute_blocking(earn(i, 10)).expect("earn"))
        .collect();
    let _ = l.balance(MemberId(1)).expect("read");
    l.execute_blocking(earn(2 * N, 10)).expect("earn");
    assert!(count_family(&l, keys::IDEM_BY_HASH) > N as usize);
    let held = l.keys_in_memory().expect("single path");
    assert!(held < 4 * WINDOW, "{held} keys in memory");
    check(&l, 2 * N + 1);
    for (i, receipt) in (N..).zip(&more).step_by(59) {
        answered_once(&l, i, receipt);
    }
    l.shutdown();
    let l = open(dir.path());
    check(&l, 2 * N + 1);
}
