//! The journal's hash chain, period close and the finance book, on every engine and both
//! write paths.

use ledger::core::model::{Command, IdemKey};
use ledger::core::types::{Contract, MemberId, PartnerId, Points, Timestamp};
use ledger::store::{Store, TxnStore};
use ledger::{ClusterConfig, Ledger, LedgerConfig, LedgerError, Rejection};
use rust_decimal::Decimal;

fn chain_and_close<S: Store + Clone>(store: &S, l: Ledger<S>) {
    let p = PartnerId(1);
    l.execute_blocking(Command::SetContract {
        key: IdemKey::operator("c"),
        contract: Contract {
            partner: p,
            currency: "EUR".parse().expect("EUR"),
            issuance_price_per_point: Decimal::new(1, 2),
            redemption_price_per_point: Decimal::new(1, 2),
            points_validity_days: None,
        },
    })
    .expect("contract");
    for m in 1..=3u64 {
        l.execute_blocking(Command::Enrol {
            key: IdemKey::operator(format!("m{m}")),
            member: MemberId(m),
        })
        .expect("enrol");
        l.execute_blocking(Command::Earn {
            key: IdemKey::partner(p, format!("e{m}")),
            member: MemberId(m),
            partner: p,
            points: Points(100 * m as i64),
            bonus: Points(0),
            awards: vec![],
            guard: None,
            purchase: None,
        })
        .expect("earn");
    }
    let through = Timestamp(Timestamp::now().0 - 1_000);
    l.execute_blocking(Command::ClosePeriod {
        key: IdemKey::operator("close"),
        period: "p1".into(),
        through,
    })
    .expect("close");
    let again = l.execute_blocking(Command::ClosePeriod {
        key: IdemKey::operator("close-again"),
        period: "p1".into(),
        through,
    });
    assert!(matches!(
        again,
        Err(LedgerError::Rejected(Rejection::PeriodClosed { .. }))
    ));
    let late = l
        .execute_blocking(Command::Burn {
            key: IdemKey::partner(p, "b1"),
            member: MemberId(3),
            partner: p,
            points: Points(50),
        })
        .expect("burn");
    assert!(late.tx.at >= through);
    // The book: the trial balance sums to zero, and members hold what they earned and burned.
    let snap = l.read_snapshot().expect("snapshot");
    let finance = l.finance(None);
    let book = finance.book_at(&snap).expect("book");
    let tb = ledger::finance::reports::trial_balance(&book, &snap, Timestamp::now())
        .expect("trial balance");
    assert!(tb.total_points.is_zero());
    let members = tb
        .lines
        .iter()
        .find(|x| x.account == "members")
        .expect("members line");
    assert_eq!(members.points, Decimal::from(550));
    assert_eq!(book.closes.len(), 1);
    let position = book.closes[0].position.clone();
    drop(book);
    drop(snap);
    l.shutdown();
    // Every batch chained; the close's checkpoint verifies.
    let snap = store.snapshot().expect("snapshot");
    let checkpoint = ledger::finance::reports::checkpoint_at(&snap, &position)
        .expect("read")
        .expect("the close is chained");
    let report =
        ledger::chain::verify(&snap, &[checkpoint.parse().expect("checkpoint")]).expect("verify");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.batches, report.chained);
    assert_eq!(report.unsealed, 0);
    assert_eq!(report.checkpoints, 1);
}

/// The chain, a close and the book on the single writer.
pub fn ledger_journal_is_chained_and_periods_close<S: Store + Clone>(open: &mut dyn FnMut() -> S) {
    let store = open();
    let l = Ledger::open(store.clone(), LedgerConfig::default()).expect("open ledger");
    chain_and_close(&store, l);
}

/// The same on the cluster path (the chain sealed by the lease holder).
pub fn cluster_journal_is_chained_and_periods_close<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let store = open();
    let l = Ledger::open_cluster(
        store.clone(),
        LedgerConfig::default(),
        ClusterConfig::on_shard(6),
    )
    .expect("open ledger in cluster mode");
    chain_and_close(&store, l);
}
