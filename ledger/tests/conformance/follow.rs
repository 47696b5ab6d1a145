//! Journal followers (`Ledger::for_each_batch_after`: the gateway's audience, notifier and
//! webhooks) get every batch after their cursor, in commit order, exactly as the journal holds
//! it, on both write paths. On the single path, batches committed moments ago are handed over
//! from memory (counted in `LedgerStats::followed_from_memory`); those memory has let go of, and
//! every batch after a restart or on the cluster path, are read from the store.

use super::{earn_at, open_cluster, seed};
use ledger::core::model::Transaction;
use ledger::core::types::{MemberId, PartnerId};
use ledger::store::{Store, TxnStore};
use ledger::{Ledger, LedgerConfig};
use std::sync::atomic::Ordering;

/// Batches as a follower saw them: position, sequence number, transactions.
type Seen = Vec<(Vec<u8>, u64, Vec<Transaction>)>;

/// Up to `most` batches after `after`, through the ledger.
fn by_ledger<S: Store>(
    l: &Ledger<S>,
    snap: &S::Snapshot,
    after: Option<&[u8]>,
    most: usize,
) -> Seen {
    let mut seen = Seen::new();
    l.for_each_batch_after(snap, after, &mut |pos, seq, txs| {
        seen.push((
            pos.to_vec(),
            seq,
            txs.iter().map(|t| (*t).clone()).collect(),
        ));
        Ok(seen.len() < most)
    })
    .expect("follow through the ledger");
    seen
}

/// Up to `most` batches after `after`, read from the journal.
fn by_journal<S: Store>(snap: &S::Snapshot, after: Option<&[u8]>, most: usize) -> Seen {
    let mut seen = Seen::new();
    ledger::journal::for_each_batch_after(snap, after, &mut |pos, seq, txs| {
        seen.push((pos.to_vec(), seq, txs));
        Ok(seen.len() < most)
    })
    .expect("follow the journal");
    seen
}

fn from_memory<S: Store>(l: &Ledger<S>) -> u64 {
    l.stats().followed_from_memory.load(Ordering::Relaxed)
}

/// `count` earns (keys `{tag}-{i}`) submitted `wave` at a time, so batches of many sizes form;
/// each must commit.
fn post<S: Store>(l: &Ledger<S>, tag: &str, count: u32, wave: u32) {
    for start in (0..count).step_by(wave as usize) {
        let pending: Vec<_> = (start..(start + wave).min(count))
            .map(|i| {
                let m = MemberId(1 + u64::from(i % 3));
                l.submit(earn_at(PartnerId(1 + i % 2), format!("{tag}-{i}"), m, 7))
                    .expect("queued")
            })
            .collect();
        for p in pending {
            p.blocking_recv().expect("answer").expect("earn commits");
        }
    }
}

/// Follows from the start and after each of `cursors` (indexes into the journal's batches),
/// to the end and stopping after two, and checks each against the journal. Returns, per
/// cursor, how many batches memory handed over, and the number of batches in the journal.
fn follow<S: Store>(l: &Ledger<S>, cursors: &[usize]) -> (Vec<u64>, usize) {
    let snap = l.read_snapshot().expect("snapshot");
    let all = by_journal::<S>(&snap, None, usize::MAX);
    assert!(!all.is_empty(), "the journal has batches");
    for w in all.windows(2) {
        assert!(w[0].0 < w[1].0, "positions in commit order");
    }
    let before = from_memory(l);
    assert_eq!(by_ledger(l, &snap, None, usize::MAX), all, "from the start");
    assert_eq!(from_memory(l), before, "from the start: the journal");
    let mut handed = Vec::new();
    for &i in cursors {
        let pos = &all[i].0;
        let rest = &all[i + 1..];
        let before = from_memory(l);
        assert_eq!(
            by_ledger(l, &snap, Some(pos), usize::MAX),
            rest,
            "after batch {i} of {}",
            all.len()
        );
        assert_eq!(
            by_ledger(l, &snap, Some(pos), 2),
            &rest[..rest.len().min(2)],
            "after batch {i}, stopping at two"
        );
        handed.push(from_memory(l) - before);
    }
    (handed, all.len())
}

/// [`follow`] after every batch of the journal: how many batches memory handed over, per cursor.
fn follow_after_each<S: Store>(l: &Ledger<S>) -> Vec<u64> {
    let n = by_journal::<S>(&l.read_snapshot().expect("snapshot"), None, usize::MAX).len();
    let every: Vec<usize> = (0..n).collect();
    let (handed, total) = follow(l, &every);
    assert_eq!(total, n);
    handed
}

/// On the single path: from memory while the writer still holds the batches, from the store
/// once it has let them go and after a restart, the same batches either way.
pub fn ledger_followers_get_the_journals_batches<S: Store + Clone>(open: &mut dyn FnMut() -> S) {
    let l = Ledger::open(open(), LedgerConfig::default()).expect("open ledger");
    seed(&l);
    post(&l, "a", 300, 40);
    let handed = follow_after_each(&l);
    let n = handed.len();
    // Every batch was decided by this writer, and memory keeps far more than these: each
    // follow after batch i is handed the n - 1 - i after it, and the stopped one up to two.
    for (i, h) in handed.iter().enumerate() {
        let rest = (n - 1 - i) as u64;
        assert_eq!(
            *h,
            rest + rest.min(2),
            "after batch {i} of {n}: from memory"
        );
    }

    // Past what memory keeps (16,384 transactions): the first batches come from the store,
    // the latest still from memory.
    post(&l, "b", 20_000, 2_000);
    let n = by_journal::<S>(&l.read_snapshot().expect("snapshot"), None, usize::MAX).len();
    let (handed, _) = follow(&l, &[0, n / 2, n - 3, n - 2, n - 1]);
    assert_eq!(handed[0], 0, "the first batches left memory: the journal");
    assert_eq!(&handed[2..], &[4, 2, 0], "the latest: from memory");
    l.shutdown();

    // After a restart memory holds none of them; batches decided since come from memory again.
    let l = Ledger::open(open(), LedgerConfig::default()).expect("reopen ledger");
    let (handed, total) = follow(&l, &[0, n - 2]);
    assert_eq!(total, n);
    assert_eq!(handed, vec![0, 0], "nothing decided since the restart");
    post(&l, "c", 100, 25);
    let m = by_journal::<S>(&l.read_snapshot().expect("snapshot"), None, usize::MAX).len();
    assert!(m > n, "{m} batches after {n}");
    let (handed, _) = follow(&l, &[n - 2, n - 1, m - 2]);
    assert_eq!(
        handed[0], 0,
        "its next batch was decided before the restart: the journal"
    );
    let since = (m - n) as u64;
    assert_eq!(
        &handed[1..],
        &[since + since.min(2), 2],
        "the batches since the restart: from memory"
    );
    l.shutdown();
}

/// On the cluster path every batch is read from the store, in commit order.
pub fn cluster_followers_get_the_journals_batches<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let l = open_cluster(open(), 0);
    seed(&l);
    post(&l, "a", 120, 40);
    let handed = follow_after_each(&l);
    assert!(handed.iter().all(|h| *h == 0), "{handed:?}");
    l.shutdown();
}
