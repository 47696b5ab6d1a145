//! The single writer keeps the reversal totals of about `reversal_totals_in_memory` originals
//! in memory, however many were ever reversed; a reversal of an original whose total left
//! memory reads it from the store, and still never undoes more than the original, before and
//! after a restart (which loads no totals at all).

mod support;

use ledger::store::EmbeddedStore;
use ledger::*;
use rust_decimal::Decimal;

const AIR: PartnerId = PartnerId(1);
const WINDOW: usize = 8;
const ORIGINALS: u64 = 200;

fn open(dir: &std::path::Path) -> Ledger<EmbeddedStore> {
    let config = LedgerConfig {
        reversal_totals_in_memory: WINDOW,
        ..LedgerConfig::default()
    };
    Ledger::open(EmbeddedStore::open(dir).expect("store"), config).expect("ledger")
}

fn reverse(
    l: &Ledger<EmbeddedStore>,
    tag: &str,
    original: TxId,
    points: i64,
) -> Result<Receipt, LedgerError> {
    l.execute_blocking(Command::Reverse {
        key: IdemKey::partner(AIR, format!("{tag}-{}", original.0)),
        original,
        points: Some(Points(points)),
    })
}

/// Lets the projector store every batch so far, and the writer see it: a read waits for the
/// projector, and the next batch drops the totals it stored.
fn settle(l: &Ledger<EmbeddedStore>, n: &mut u64) {
    let _ = l.balance(MemberId(1)).expect("read");
    *n += 1;
    l.execute_blocking(Command::Enrol {
        key: IdemKey::operator(format!("settle-{n}")),
        member: MemberId(1_000 + *n),
    })
    .expect("enrol");
}

/// Every original's earn (100 points) has `done` reversed: another `100 - done` goes through
/// and one more point is refused, naming what was left.
fn check_remaining(l: &Ledger<EmbeddedStore>, tag: &str, earns: &[TxId], done: i64) {
    for (i, id) in earns.iter().enumerate().step_by(37) {
        let over = reverse(l, &format!("{tag}-over"), *id, 100 - done + 1);
        assert!(
            matches!(
                over,
                Err(LedgerError::Rejected(Rejection::ReversalExceedsOriginal { remaining, .. }))
                    if remaining == Points(100 - done)
            ),
            "earn {i}: {over:?}"
        );
    }
}

#[test]
fn totals_beyond_the_window_leave_memory_and_are_read_back_exactly() {
    let dir = tempfile::tempdir().expect("dir");
    let l = open(dir.path());
    let cent = Decimal::new(1, 2);
    l.execute_blocking(support::contract(1, cent, cent, None))
        .expect("contract");
    for m in 1..=5 {
        l.execute_blocking(support::enrol(m)).expect("enrol");
    }
    let earns: Vec<TxId> = (0..ORIGINALS)
        .map(|i| {
            l.execute_blocking(support::earn(1, 1 + i % 5, 100, &format!("ticket-{i}")))
                .expect("earn")
                .tx
                .id
        })
        .collect();
    let mut n = 0;
    for id in &earns {
        reverse(&l, "first", *id, 30).expect("a first reversal");
    }
    settle(&l, &mut n);
    settle(&l, &mut n);
    let held = l.reversal_totals_in_memory().expect("single path");
    assert!(
        held <= WINDOW,
        "{held} totals in memory, window {WINDOW}, {ORIGINALS} reversed"
    );

    // Second reversals of every original: the lowest read their totals from the store.
    for id in &earns {
        reverse(&l, "second", *id, 20).expect("a second reversal");
    }
    check_remaining(&l, "a", &earns, 50);
    settle(&l, &mut n);
    settle(&l, &mut n);
    let held = l.reversal_totals_in_memory().expect("single path");
    assert!(
        held <= WINDOW,
        "{held} totals in memory after second reversals"
    );
    let posted = support::posted_sum(&l, 1..=5);
    assert_eq!(
        posted,
        ORIGINALS as i64 * 50,
        "each earn half reversed, once"
    );
    let report = ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
    assert_eq!(report.transactions, 1 + 5 + ORIGINALS * 3 + n);

    // A restart holds no totals until a reversal names one, and reads them back the same.
    l.shutdown();
    let l = open(dir.path());
    assert_eq!(l.reversal_totals_in_memory(), Some(0));
    check_remaining(&l, "b", &earns, 50);
    for id in &earns {
        reverse(&l, "rest", *id, 50).expect("the rest");
    }
    check_remaining(&l, "c", &earns, 100);
    let posted = support::posted_sum(&l, 1..=5);
    assert_eq!(posted, 0, "every earn reversed in full, once");
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
}
