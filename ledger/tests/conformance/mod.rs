//! The conformance suite every storage engine must pass, unchanged. Test code: each engine's
//! test file includes it with `mod conformance;`, so none of it is in the library.
//!
//! Each check takes a function that opens a handle on one fresh, empty store (calling it again
//! reopens the same data, as a process restart would) and panics with a message on the first
//! violation. An engine's test file passes its own test-making macro to
//! `for_each_conformance_check!`, so every engine runs the same list, one test per check:
//!
//! ```text
//! mod conformance;
//! macro_rules! on_embedded { ($($check:ident),*) => {$( #[test] fn $check() { ... } )*} }
//! for_each_conformance_check!(on_embedded);
//! ```

use ledger::core::model::{Command, IdemKey};
use ledger::core::types::{AccountId, Contract, MemberId, PartnerId, Points, Timestamp, TxId};
use ledger::store::{Durability, Snapshot, Store, TxnStore, WriteSet};
use ledger::{ClusterConfig, Ledger, LedgerConfig, LedgerError, Rejection, WritePath};
use rust_decimal::Decimal;
use std::collections::HashMap;

mod expiry;
mod finance;
mod follow;
mod households;
mod lifecycle;
mod programme;
mod rewards;
// Used through `for_each_conformance_check!` by the files that run the suite.
#[allow(unused_imports)]
pub use expiry::*;
#[allow(unused_imports)]
pub use finance::*;
#[allow(unused_imports)]
pub use follow::*;
#[allow(unused_imports)]
pub use households::*;
#[allow(unused_imports)]
pub use lifecycle::*;
#[allow(unused_imports)]
pub use programme::*;
#[allow(unused_imports)]
pub use rewards::*;

/// Calls `$make!(check, check, ...)` with every check of the suite: the one list each engine's
/// test file runs.
#[allow(unused_macros)]
macro_rules! for_each_conformance_check {
    ($make:ident) => {
        $make!(
            store_orders_keys_and_ranges,
            store_clears_and_clear_ranges,
            store_atomic_add_is_little_endian_and_accumulates,
            store_versions_increase_and_stamp_keys_in_commit_order,
            store_snapshots_are_isolated_from_later_commits,
            store_commits_survive_reopen,
            ledger_commands_balances_and_audit,
            ledger_state_survives_reopen,
            ledger_member_records_catch_up_after_a_crash,
            cluster_commands_balances_and_audit,
            cluster_state_survives_reopen,
            cluster_processes_share_one_store,
            cluster_statements_follow_commit_order_across_processes,
            cluster_holds_expire,
            cluster_and_single_writer_stores_do_not_mix,
            ledger_campaign_awards_caps_and_budget,
            cluster_campaign_awards_caps_and_budget,
            ledger_budget_is_never_overspent_under_concurrency,
            cluster_budget_is_never_overspent_across_processes,
            ledger_points_expire_to_breakage_once,
            cluster_points_expire_to_breakage_once,
            ledger_inactivity_expiry_is_reset_by_activity,
            cluster_inactivity_expiry_is_reset_by_activity,
            ledger_transfers_keep_to_their_limits_and_pay_their_fee,
            cluster_transfers_keep_to_their_limits_and_pay_their_fee,
            ledger_tiers_upgrade_at_once_and_downgrade_at_the_period_end,
            cluster_tiers_upgrade_at_once_and_downgrade_at_the_period_end,
            ledger_a_policy_change_reaches_members_who_never_transact_again,
            cluster_a_policy_change_reaches_members_who_never_transact_again,
            ledger_household_pools_spend_together_and_leave_with_their_own,
            cluster_household_pools_spend_together_and_leave_with_their_own,
            ledger_tiers_qualify_on_spend_by_category_and_on_flagged_adjustments,
            cluster_tiers_qualify_on_spend_by_category_and_on_flagged_adjustments,
            ledger_journal_is_chained_and_periods_close,
            cluster_journal_is_chained_and_periods_close,
            ledger_members_are_suspended_closed_and_merged,
            cluster_members_are_suspended_closed_and_merged,
            ledger_rewards_are_never_oversold_and_grants_post_their_origin,
            cluster_rewards_are_never_oversold_and_grants_post_their_origin,
            ledger_followers_get_the_journals_batches,
            cluster_followers_get_the_journals_batches,
        );
    };
}

fn commit<S: Store>(s: &S, f: impl FnOnce(&mut WriteSet)) -> u64 {
    let mut w = WriteSet::default();
    f(&mut w);
    s.commit(w, Durability::Sync).expect("commit")
}

/// Keys come back in byte order; ranges honour bounds, limits and direction.
pub fn store_orders_keys_and_ranges<S: Store>(open: &mut dyn FnMut() -> S) {
    let s = open();
    commit(&s, |w| {
        for k in [&b"b"[..], b"a", b"ab", b"c\x00", b"c", b"\x00"] {
            w.set(k, k);
        }
    });
    let snap = s.snapshot().expect("snapshot");
    let all: Vec<Vec<u8>> = snap
        .range(b"", b"\xfe", 100, false)
        .expect("range")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let want: Vec<Vec<u8>> = [&b"\x00"[..], b"a", b"ab", b"b", b"c", b"c\x00"]
        .iter()
        .map(|k| k.to_vec())
        .collect();
    assert_eq!(all, want, "ascending byte order");
    let page: Vec<Vec<u8>> = snap
        .range(b"a", b"c", 2, false)
        .expect("range")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        page,
        vec![b"a".to_vec(), b"ab".to_vec()],
        "begin inclusive, limit honoured"
    );
    let rev: Vec<Vec<u8>> = snap
        .range(b"a", b"c", 2, true)
        .expect("range")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        rev,
        vec![b"b".to_vec(), b"ab".to_vec()],
        "reverse from the end, end exclusive"
    );
    assert!(
        snap.range(b"c", b"a", 10, false).expect("range").is_empty(),
        "empty when begin >= end"
    );
    assert_eq!(snap.get(b"ab").expect("get"), Some(b"ab".to_vec()));
    assert_eq!(snap.get(b"zz").expect("get"), None);
    let mut lent = Vec::new();
    assert!(snap
        .get_with(b"c\x00", &mut |v| lent = v.to_vec())
        .expect("get_with"));
    assert_eq!(lent, b"c\x00".to_vec(), "a lent value is the stored one");
    assert!(
        !snap
            .get_with(b"zz", &mut |_| panic!("no value to lend"))
            .expect("get_with"),
        "an absent key lends nothing"
    );
    let mut scanned = Vec::new();
    snap.scan(b"a", b"c", &mut |k, _| {
        scanned.push(k.to_vec());
        scanned.len() < 2
    })
    .expect("scan");
    assert_eq!(
        scanned,
        vec![b"a".to_vec(), b"ab".to_vec()],
        "scan stops when told"
    );
}

/// Clear removes one key; clear-range removes exactly `[begin, end)`.
pub fn store_clears_and_clear_ranges<S: Store>(open: &mut dyn FnMut() -> S) {
    let s = open();
    commit(&s, |w| {
        for i in 0u8..10 {
            w.set(&[b'k', i], &[i]);
        }
    });
    commit(&s, |w| {
        w.clear(&[b'k', 0]);
        w.clear_range(&[b'k', 3], &[b'k', 6]);
    });
    let snap = s.snapshot().expect("snapshot");
    let left: Vec<u8> = snap
        .range(b"k", b"l", 100, false)
        .expect("range")
        .into_iter()
        .map(|(k, _)| k[1])
        .collect();
    assert_eq!(left, vec![1, 2, 6, 7, 8, 9]);
}

/// Atomic add treats the value as a little-endian i64, absent as zero, and accumulates.
pub fn store_atomic_add_is_little_endian_and_accumulates<S: Store>(open: &mut dyn FnMut() -> S) {
    let s = open();
    commit(&s, |w| {
        w.add(b"n", 5);
        w.add(b"n", -7);
    });
    commit(&s, |w| w.add(b"n", 100));
    commit(&s, |w| w.set(b"m", &41i64.to_le_bytes()));
    commit(&s, |w| w.add(b"m", 1));
    // 16-byte adds carry across the 64-bit boundary and below zero (money totals).
    commit(&s, |w| {
        w.add_wide(b"w", i128::from(u64::MAX));
        w.add_wide(b"w", 1);
    });
    commit(&s, |w| w.add_wide(b"v", -3));
    let snap = s.snapshot().expect("snapshot");
    assert_eq!(
        snap.get(b"w").expect("get"),
        Some((1i128 << 64).to_le_bytes().to_vec())
    );
    assert_eq!(
        snap.get(b"v").expect("get"),
        Some((-3i128).to_le_bytes().to_vec())
    );
    assert_eq!(
        snap.get(b"n").expect("get"),
        Some(98i64.to_le_bytes().to_vec())
    );
    assert_eq!(
        snap.get(b"m").expect("get"),
        Some(42i64.to_le_bytes().to_vec())
    );
}

/// Every commit gets a higher version; versionstamped keys sort in commit order.
pub fn store_versions_increase_and_stamp_keys_in_commit_order<S: Store>(
    open: &mut dyn FnMut() -> S,
) {
    let s = open();
    let mut versions = Vec::new();
    for i in 0u8..5 {
        versions.push(commit(&s, |w| {
            w.set_versionstamped_key(b"j", 1, vec![i, 1]);
            w.set_versionstamped_key(b"j", 0, vec![i, 0]);
        }));
    }
    assert!(
        versions.windows(2).all(|v| v[0] < v[1]),
        "versions increase: {versions:?}"
    );
    let snap = s.snapshot().expect("snapshot");
    assert!(snap.version() >= versions[4]);
    let rows = snap.range(b"j", b"k", 100, false).expect("range");
    assert!(
        rows.iter()
            .all(|(k, _)| k.len() == 1 + ledger::store::VERSIONSTAMP_LEN),
        "a versionstamped key is its prefix then {} stamp bytes",
        ledger::store::VERSIONSTAMP_LEN
    );
    let values: Vec<Vec<u8>> = rows.into_iter().map(|(_, v)| v).collect();
    let want: Vec<Vec<u8>> = (0u8..5).flat_map(|i| [vec![i, 0], vec![i, 1]]).collect();
    assert_eq!(
        values, want,
        "journal order = commit order, then order within the commit"
    );
}

/// A snapshot does not see commits made after it, and reads never wait for the writer.
pub fn store_snapshots_are_isolated_from_later_commits<S: Store>(open: &mut dyn FnMut() -> S) {
    let s = open();
    commit(&s, |w| w.set(b"x", b"1"));
    let before = s.snapshot().expect("snapshot");
    commit(&s, |w| {
        w.set(b"x", b"2");
        w.set(b"y", b"new");
    });
    assert_eq!(before.get(b"x").expect("get"), Some(b"1".to_vec()));
    assert_eq!(before.get(b"y").expect("get"), None);
    assert_eq!(
        before.range(b"", b"\xfe", 10, false).expect("range").len(),
        1
    );
    let after = s.snapshot().expect("snapshot");
    assert_eq!(after.get(b"x").expect("get"), Some(b"2".to_vec()));
    assert!(after.version() > before.version());
}

/// A synced commit is there after the store is closed and opened again.
pub fn store_commits_survive_reopen<S: Store>(open: &mut dyn FnMut() -> S) {
    let s = open();
    let v = commit(&s, |w| {
        w.set(b"durable", b"yes");
        w.add(b"count", 3);
    });
    drop(s);
    let s = open();
    let snap = s.snapshot().expect("snapshot");
    assert_eq!(snap.get(b"durable").expect("get"), Some(b"yes".to_vec()));
    assert_eq!(
        snap.get(b"count").expect("get"),
        Some(3i64.to_le_bytes().to_vec())
    );
    assert!(s.next_version() > v, "versions continue after reopen");
}

fn contract(partner: u32) -> Contract {
    Contract {
        partner: PartnerId(partner),
        currency: "EUR".parse().expect("EUR"),
        issuance_price_per_point: Decimal::new(1, 2),
        redemption_price_per_point: Decimal::new(8, 3),
        points_validity_days: Some(365),
    }
}

/// The programme every ledger test here starts from (and other suites may): partners 1 and 2
/// under a EUR contract, members 1 to 3 enrolled.
pub fn seed<S: Store + Clone>(l: &Ledger<S>) {
    for p in [1, 2] {
        l.execute_blocking(Command::SetContract {
            key: IdemKey::operator(format!("c{p}")),
            contract: contract(p),
        })
        .expect("contract");
    }
    for m in 1..=3 {
        l.execute_blocking(Command::Enrol {
            key: IdemKey::operator(format!("e{m}")),
            member: MemberId(m),
        })
        .expect("enrol");
    }
}
/// A plain earn at `partner`: no bonus, award, guard or purchase, keyed by `reference` in the
/// partner's scope.
fn earn_at(
    partner: PartnerId,
    reference: impl Into<String>,
    member: MemberId,
    points: i64,
) -> Command {
    Command::Earn {
        key: IdemKey::partner(partner, reference),
        member,
        partner,
        points: Points(points),
        bonus: Points(0),
        awards: vec![],
        guard: None,
        purchase: None,
    }
}

fn rejected(r: Result<ledger::Receipt, LedgerError>) -> Rejection {
    match r {
        Err(LedgerError::Rejected(x)) => x,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The ledger on this engine: commands, receipts, rejections, balances and a passing audit.
pub fn ledger_commands_balances_and_audit<S: Store + Clone>(open: &mut dyn FnMut() -> S) {
    commands_balances_and_audit(&mut || {
        Ledger::open(open(), LedgerConfig::default()).expect("open ledger")
    });
}

/// The same commands, receipts, balances and audit on the cluster path.
pub fn cluster_commands_balances_and_audit<S: TxnStore + Clone>(open: &mut dyn FnMut() -> S) {
    commands_balances_and_audit(&mut || open_cluster(open(), 0));
}

fn open_cluster<S: TxnStore + Clone>(store: S, shard: u8) -> Ledger<S> {
    Ledger::open_cluster(
        store,
        LedgerConfig::default(),
        ClusterConfig::on_shard(shard),
    )
    .expect("open ledger in cluster mode")
}

fn commands_balances_and_audit<S: Store + Clone>(open: &mut dyn FnMut() -> Ledger<S>) {
    let l = open();
    seed(&l);
    let (p1, p2, m1, m2) = (PartnerId(1), PartnerId(2), MemberId(1), MemberId(2));
    let earn = Command::Earn {
        key: IdemKey::partner(p1, "e-1"),
        member: m1,
        partner: p1,
        points: Points(1000),
        bonus: Points(100),
        awards: vec![],
        guard: None,
        purchase: None,
    };
    let r = l.execute_blocking(earn.clone()).expect("earn");
    assert!(!r.replayed);
    let again = l.execute_blocking(earn).expect("replay");
    assert!(
        again.replayed && again.tx == r.tx,
        "a retry returns the original receipt"
    );
    let conflict = earn_at(p1, "e-1", m1, 5);
    assert_eq!(
        rejected(l.execute_blocking(conflict)),
        Rejection::IdempotencyConflict { original: r.tx.id }
    );
    l.execute_blocking(Command::Burn {
        key: IdemKey::partner(p2, "b-1"),
        member: m1,
        partner: p2,
        points: Points(300),
    })
    .expect("burn");
    let over = Command::Burn {
        key: IdemKey::partner(p2, "b-2"),
        member: m1,
        partner: p2,
        points: Points(10_000),
    };
    assert!(matches!(
        rejected(l.execute_blocking(over)),
        Rejection::InsufficientPoints { .. }
    ));
    let hold = l
        .execute_blocking(Command::Hold {
            key: IdemKey::partner(p2, "h-1"),
            member: m1,
            partner: p2,
            points: Points(200),
            timeout_ms: 600_000,
        })
        .expect("hold");
    l.execute_blocking(Command::Capture {
        key: IdemKey::partner(p2, "c-1"),
        hold: hold.tx.id,
        points: Some(Points(150)),
    })
    .expect("capture");
    l.execute_blocking(Command::Transfer {
        key: IdemKey::operator("t-1"),
        from: m1,
        to: m2,
        points: Points(50),
        consent: None,
    })
    .expect("transfer");
    let b1 = l.balance(m1).expect("read").expect("member 1");
    assert_eq!(
        (b1.posted, b1.pending, b1.available),
        (Points(600), Points(0), Points(600))
    );
    assert_eq!(
        l.balance(m2).expect("read").expect("member 2").posted,
        Points(50)
    );
    assert_eq!(
        l.account_balance(ledger::AccountId::PartnerIssuance(p1))
            .expect("read")
            .points,
        Points(-1000)
    );
    assert_eq!(
        l.account_balance(ledger::AccountId::PartnerRedemption(p2))
            .expect("read")
            .points,
        Points(450)
    );
    let snap = l.read_snapshot().expect("snapshot");
    let report = ledger::audit::audit(&snap).expect("audit passes");
    assert_eq!(report.points_outstanding, 650);
    assert_eq!(
        report.transactions,
        2 + 3 + 5,
        "contracts, enrolments, and the five accepted commands"
    );
    l.shutdown();
}

/// Everything acknowledged is there after a restart, and the audit still holds.
pub fn ledger_state_survives_reopen<S: Store + Clone>(open: &mut dyn FnMut() -> S) {
    state_survives_reopen(&mut || {
        Ledger::open(open(), LedgerConfig::default()).expect("open ledger")
    });
}

/// Member records written some transactions after the member changed (a small
/// `member_write_delay`), then a stop without the shutdown's writes, as after a crash: the
/// restart brings each record forward from its own batch, so balances, holds, lots and the
/// audit agree with the journal, and so do later commands.
pub fn ledger_member_records_catch_up_after_a_crash<S: Store + Clone>(open: &mut dyn FnMut() -> S) {
    let config = || LedgerConfig {
        member_write_delay: 3,
        ..LedgerConfig::default()
    };
    let (p1, p2) = (PartnerId(1), PartnerId(2));
    let (m1, m2, m3) = (MemberId(1), MemberId(2), MemberId(3));
    let earn = |key: &str, m: MemberId, points: i64| earn_at(p1, key, m, points);
    let mut expected = Vec::new();
    for round in 0..3 {
        let l = Ledger::open(open(), config()).expect("open ledger");
        if round == 0 {
            seed(&l);
        }
        for i in 0..4 {
            l.execute_blocking(earn(&format!("r{round}-e{i}"), m1, 50))
                .expect("earn m1");
        }
        let earn2 = l
            .execute_blocking(earn(&format!("r{round}-e-m2"), m2, 40))
            .expect("earn m2")
            .tx
            .id;
        let hold = l
            .execute_blocking(Command::Hold {
                key: IdemKey::partner(p2, format!("r{round}-h")),
                member: m1,
                partner: p2,
                points: Points(70),
                timeout_ms: 600_000,
            })
            .expect("hold")
            .tx
            .id;
        l.execute_blocking(Command::Capture {
            key: IdemKey::partner(p2, format!("r{round}-cap")),
            hold,
            points: Some(Points(20)),
        })
        .expect("capture");
        l.execute_blocking(Command::Hold {
            key: IdemKey::partner(p2, format!("r{round}-h2")),
            member: m1,
            partner: p2,
            points: Points(15),
            timeout_ms: 600_000,
        })
        .expect("second hold");
        l.execute_blocking(Command::Transfer {
            key: IdemKey::operator(format!("r{round}-t")),
            from: m1,
            to: m3,
            points: Points(25),
            consent: None,
        })
        .expect("transfer");
        l.execute_blocking(Command::Reverse {
            key: IdemKey::partner(p1, format!("r{round}-rev")),
            original: earn2,
            points: Some(Points(10)),
        })
        .expect("reversal");
        let report = ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit");
        assert!(
            report.member_records > 0,
            "records were written during the run"
        );
        expected = [m1, m2, m3]
            .iter()
            .map(|m| l.balance(*m).expect("read").expect("member"))
            .collect();
        l.stop_as_if_crashed();

        let l = Ledger::open(open(), config()).expect("reopen ledger");
        let after: Vec<_> = [m1, m2, m3]
            .iter()
            .map(|m| l.balance(*m).expect("read").expect("member"))
            .collect();
        assert_eq!(after, expected, "balances after the restart, round {round}");
        ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit after restart");
        l.stop_as_if_crashed();
    }
    assert_eq!(
        (expected[0].posted, expected[0].pending),
        (Points(3 * (4 * 50 - 20 - 25)), Points(3 * 15)),
        "member 1: earns of 4 x 50, captures of 20, transfers of 25; open holds of 15"
    );
    assert_eq!(
        expected[1].posted,
        Points(3 * 30),
        "member 2: earns of 40 less 10"
    );
    assert_eq!(expected[2].posted, Points(3 * 25), "member 3: transfers in");
}

/// The same on the cluster path, where "reopen" is a new process on the same store.
pub fn cluster_state_survives_reopen<S: TxnStore + Clone>(open: &mut dyn FnMut() -> S) {
    state_survives_reopen(&mut || open_cluster(open(), 3));
}

fn state_survives_reopen<S: Store + Clone>(open: &mut dyn FnMut() -> Ledger<S>) {
    let (p1, m1) = (PartnerId(1), MemberId(1));
    let hold_id;
    {
        let l = open();
        seed(&l);
        for i in 0..20 {
            l.execute_blocking(earn_at(p1, format!("e{i}"), m1, 10))
                .expect("earn");
        }
        hold_id = l
            .execute_blocking(Command::Hold {
                key: IdemKey::partner(p1, "h"),
                member: m1,
                partner: p1,
                points: Points(30),
                timeout_ms: 600_000,
            })
            .expect("hold")
            .tx
            .id;
        l.shutdown();
    }
    let l = open();
    let b = l.balance(m1).expect("read").expect("member");
    assert_eq!((b.posted, b.pending), (Points(200), Points(30)));
    let replay = l
        .execute_blocking(earn_at(p1, "e3", m1, 10))
        .expect("replay after reopen");
    assert!(replay.replayed, "idempotency survives a restart");
    l.execute_blocking(Command::Void {
        key: IdemKey::partner(p1, "v"),
        hold: hold_id,
    })
    .expect("void the hold opened before the restart");
    assert_eq!(
        l.balance(m1).expect("read").expect("member").available,
        Points(200)
    );
    let page = l.statement(m1, None, 5).expect("statement");
    assert_eq!(page.entries.len(), 5);
    assert!(page.next.is_some());
    ledger::audit::audit(&l.read_snapshot().expect("snapshot")).expect("audit passes after reopen");
    l.shutdown();
}

/// Two processes (two ledgers, each with its own writer) on one store, racing on the same
/// members with the same idempotency keys: nothing is applied twice, no member goes below zero,
/// every receipt is in the journal once, and the audit holds.
pub fn cluster_processes_share_one_store<S: TxnStore + Clone>(open: &mut dyn FnMut() -> S) {
    let store = open();
    let a = open_cluster(store.clone(), 0);
    let b = open_cluster(store.clone(), 1);
    seed(&a);
    let (p1, p2) = (PartnerId(1), PartnerId(2));
    for m in 1..=3 {
        a.execute_blocking(earn_at(p1, format!("start-{m}"), MemberId(m), 100))
            .expect("opening earn");
    }
    // Each command goes to both processes at once: the same key, raced.
    let commands: Vec<Command> = (0..120)
        .map(|i| {
            let member = MemberId(1 + i % 3);
            match i % 4 {
                0 => Command::Earn {
                    key: IdemKey::partner(p1, format!("race-{i}")),
                    member,
                    partner: p1,
                    points: Points(7),
                    bonus: Points(1),
                    awards: vec![],
                    guard: None,
                    purchase: None,
                },
                1 | 2 => Command::Burn {
                    key: IdemKey::partner(p2, format!("race-{i}")),
                    member,
                    partner: p2,
                    points: Points(13),
                },
                _ => Command::Transfer {
                    key: IdemKey::operator(format!("race-{i}")),
                    from: member,
                    to: MemberId(1 + (i + 1) % 3),
                    points: Points(5),
                    consent: None,
                },
            }
        })
        .collect();
    let pending: Vec<_> = commands
        .iter()
        .map(|c| {
            (
                a.submit(c.clone()).expect("submit to a"),
                b.submit(c.clone()).expect("submit to b"),
            )
        })
        .collect();
    let mut applied = 0;
    for (i, (pa, pb)) in pending.into_iter().enumerate() {
        let ra = pa.blocking_recv().expect("answer from a");
        let rb = pb.blocking_recv().expect("answer from b");
        // A rejection writes nothing, so the other process may still apply the command
        // later (a retry after a refusal is a new attempt); an acceptance is applied once.
        let mut fresh = Vec::new();
        for r in [&ra, &rb] {
            match r {
                Ok(receipt) if !receipt.replayed => fresh.push(receipt.tx.clone()),
                Ok(_) => {}
                Err(LedgerError::Rejected(Rejection::InsufficientPoints { .. })) => {}
                Err(e) => panic!("command {i}: unexpected answer {e:?}"),
            }
        }
        assert!(fresh.len() <= 1, "command {i} applied twice: {fresh:?}");
        if let (Ok(x), Ok(y)) = (&ra, &rb) {
            assert_eq!(
                x.tx, y.tx,
                "command {i}: both processes answer with one transaction"
            );
            assert_eq!(
                fresh.len(),
                1,
                "command {i}: one process applies, the other replays"
            );
        }
        let replays = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Ok(x) if x.replayed))
            .count();
        assert!(
            replays == 0 || fresh.len() == 1,
            "command {i}: a replay of a command nobody applied"
        );
        applied += fresh.len();
    }
    assert!(applied > 40, "most commands apply ({applied} did)");
    let snap = a.read_snapshot().expect("snapshot");
    let report = ledger::audit::audit(&snap).expect("audit passes");
    let mut total = 0;
    for m in 1..=3 {
        let bal = b.balance(MemberId(m)).expect("read").expect("member");
        assert!(bal.posted.0 >= 0, "member {m} went below zero: {bal:?}");
        total += bal.posted.0;
    }
    assert_eq!(report.points_outstanding, total);
    let issued = b
        .account_balance(AccountId::PartnerIssuance(p1))
        .expect("read")
        .points;
    let burned = b
        .account_balance(AccountId::PartnerRedemption(p2))
        .expect("read")
        .points;
    let promotions = b
        .account_balance(AccountId::Promotions)
        .expect("read")
        .points;
    assert_eq!(
        -issued.0 - promotions.0 - burned.0,
        total,
        "points issued minus points burned is what members hold"
    );
    // Every transaction is in the journal once, under its own key.
    let mut seen: HashMap<String, ledger::TxId> = HashMap::new();
    ledger::journal::for_each_batch(&snap, 0, &mut |_, txs| {
        for tx in txs {
            assert!(
                seen.insert(tx.key.to_string(), tx.id).is_none(),
                "key {} applied twice",
                tx.key
            );
        }
        Ok(())
    })
    .expect("read journal");
    a.shutdown();
    b.shutdown();
}

/// Two processes number transactions from their own blocks of ids, so ids are not in commit
/// order: a member's statement (newest first, page by page) and its balance as of a time follow
/// the order the transactions committed in, whichever process posted them.
pub fn cluster_statements_follow_commit_order_across_processes<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let store = open();
    let a = open_cluster(store.clone(), 0);
    seed(&a);
    let b = open_cluster(store.clone(), 1);
    let p1 = PartnerId(1);
    let earn = |l: &Ledger<S>, reference: &str, points: i64| {
        l.execute_blocking(earn_at(p1, reference, MemberId(1), points))
            .expect("earn")
            .tx
    };
    // `b` reserves its block after `a`'s: its ids are the larger, though `a` posts last.
    let first = earn(&b, "at-b", 100);
    let second = earn(&a, "at-a", 50);
    assert!(
        first.id > second.id,
        "ids out of commit order: {first:?} {second:?}"
    );
    for l in [&a, &b] {
        let page = l.statement(MemberId(1), None, 10).expect("statement");
        let lines: Vec<(TxId, i64)> = page
            .entries
            .iter()
            .map(|e| (e.tx, e.balance_after.0))
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            &lines[..2],
            &[(second.id, 150), (first.id, 100)],
            "newest first, in commit order"
        );
        // Page by page, the same order.
        let one = l.statement(MemberId(1), None, 1).expect("page 1");
        assert_eq!(one.entries[0].tx, second.id);
        let two = l.statement(MemberId(1), one.next, 1).expect("page 2");
        assert_eq!(two.entries[0].tx, first.id);
        // As of now the member has both earns; as of the first, only it.
        let now = l
            .balance_as_of(AccountId::Member(MemberId(1)), second.at)
            .expect("as of");
        assert_eq!(now.points, Points(150));
        let before = l
            .balance_as_of(AccountId::Member(MemberId(1)), Timestamp(second.at.0 - 1))
            .expect("as of");
        assert!(
            before.points == Points(100) || first.at == second.at,
            "as of before the second earn: {before:?}"
        );
    }
    a.shutdown();
    b.shutdown();
}

/// On the cluster path, a hold left open past its timeout voids itself (any process may do it,
/// once).
pub fn cluster_holds_expire<S: TxnStore + Clone>(open: &mut dyn FnMut() -> S) {
    let store = open();
    let a = open_cluster(store.clone(), 0);
    let b = open_cluster(store.clone(), 1);
    seed(&a);
    let (p1, m1) = (PartnerId(1), MemberId(1));
    a.execute_blocking(earn_at(p1, "e", m1, 100)).expect("earn");
    let hold = b
        .execute_blocking(Command::Hold {
            key: IdemKey::partner(p1, "h"),
            member: m1,
            partner: p1,
            points: Points(60),
            timeout_ms: 50,
        })
        .expect("hold")
        .tx
        .id;
    assert_eq!(
        a.balance(m1).expect("read").expect("member").available,
        Points(40)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let bal = a.balance(m1).expect("read").expect("member");
        if bal.pending == Points(0) {
            assert_eq!(bal.available, Points(100));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hold did not expire within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let after = a.execute_blocking(Command::Capture {
        key: IdemKey::partner(p1, "late-capture"),
        hold,
        points: None,
    });
    assert_eq!(rejected(after), Rejection::HoldNotOpen { hold });
    // One process at a time posts the ledger's own commands, under a lease; when it stops,
    // another takes over. Stopping a, then b, stops the lease holder once for sure.
    let expires = |l: &Ledger<S>, reference: &str| {
        l.execute_blocking(Command::Hold {
            key: IdemKey::partner(p1, reference),
            member: m1,
            partner: p1,
            points: Points(10),
            timeout_ms: 50,
        })
        .expect("hold");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while l.balance(m1).expect("read").expect("member").pending != Points(0) {
            assert!(
                std::time::Instant::now() < deadline,
                "hold {reference} did not expire within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    a.shutdown();
    expires(&b, "h-after-a");
    let c = open_cluster(store, 2);
    b.shutdown();
    expires(&c, "h-after-b");
    let report = ledger::audit::audit(&c.read_snapshot().expect("snapshot")).expect("audit");
    assert_eq!(report.open_holds, 0);
    c.shutdown();
}

/// A store written by one path cannot be opened by the other: their ids and indexes differ.
pub fn cluster_and_single_writer_stores_do_not_mix<S: TxnStore + Clone>(
    open: &mut dyn FnMut() -> S,
) {
    let store = open();
    let l = open_cluster(store.clone(), 0);
    seed(&l);
    l.shutdown();
    match Ledger::open(store.clone(), LedgerConfig::default()) {
        Err(LedgerError::WrongWritePath { written, asked }) => {
            assert_eq!((written, asked), (WritePath::Cluster, WritePath::Single))
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a single-writer ledger opened a cluster store"),
    }
    let again = open_cluster(store, 0);
    assert_eq!(
        again.balance(MemberId(1)).expect("read").map(|b| b.posted),
        Some(Points(0))
    );
    again.shutdown();
}
