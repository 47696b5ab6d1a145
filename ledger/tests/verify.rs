//! `ledger verify` passes on an honest store and fails, naming the account, on a store whose
//! balance record was changed behind the ledger's back.

use ledger::core::state::Balance;
use ledger::store::{Durability, EmbeddedStore, Snapshot, Store, WriteSet};
use ledger::*;
use std::path::Path;
use std::process::Command as Process;

mod support;

fn write_ledger(dir: &Path) {
    let ledger = Ledger::open(
        EmbeddedStore::open(dir).expect("store"),
        LedgerConfig::default(),
    )
    .expect("ledger");
    fill(ledger);
}

/// The same commands written on the cluster path.
fn write_cluster_ledger(dir: &Path) {
    let ledger = Ledger::open_cluster(
        EmbeddedStore::open(dir).expect("store"),
        LedgerConfig::default(),
        ClusterConfig::on_shard(9),
    )
    .expect("ledger");
    fill(ledger);
}

fn fill(ledger: Ledger<EmbeddedStore>) {
    support::five_members_earning(&ledger);
    ledger.shutdown();
}

fn verify(dir: &Path) -> (bool, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["verify", "--data"])
        .arg(dir)
        .output()
        .expect("run ledger verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn tamper(dir: &Path, key: Vec<u8>, value: Vec<u8>) {
    let store = EmbeddedStore::open(dir).expect("store");
    let mut w = WriteSet::default();
    w.set_owned(key, value);
    store.commit(w, Durability::Sync).expect("tamper");
}

#[test]
fn verify_passes_on_an_honest_store_and_names_a_tampered_member() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_ledger(dir.path());
    let (ok, text) = verify(dir.path());
    assert!(ok, "verify should pass:\n{text}");
    assert!(
        text.contains("11 transactions")
            && text.contains("points outstanding (owed to members): 1500"),
        "{text}"
    );

    // A member's balance as read follows its latest transaction in the journal: change the
    // points member 3's earn records for it, in its journal block.
    rewrite_member_line(dir.path(), "e3", MemberId(3), |leg| {
        assert_eq!(leg.posted, Points(300));
        leg.posted.0 += 1;
    });
    let (ok, text) = verify(dir.path());
    assert!(!ok, "verify must fail on a tampered balance:\n{text}");
    assert!(
        text.contains("member/3"),
        "the failure names the account:\n{text}"
    );
}

/// Rewrites member `m`'s line in the journal entry of the earn with reference `reference`.
fn rewrite_member_line(
    dir: &Path,
    reference: &str,
    m: MemberId,
    change: impl FnOnce(&mut ledger::core::model::MemberAfter),
) {
    let store = EmbeddedStore::open(dir).expect("store");
    let snap = store.snapshot().expect("snapshot");
    let blocks = snap
        .range(&[keys::JOURNAL], &[keys::JOURNAL + 1], usize::MAX, false)
        .expect("journal");
    let id = blocks
        .iter()
        .flat_map(|(_, v)| codec::Block::parse(v).expect("block").all().expect("txs"))
        .find(|t| t.key == IdemKey::partner(PartnerId(1), reference))
        .expect("the earn")
        .id;
    let key = keys::journal(id.seq(), 0);
    let raw = snap.get(&key).expect("read").expect("its block");
    drop(snap);
    drop(store);
    let mut txs = codec::Block::parse(&raw)
        .expect("block")
        .all()
        .expect("txs");
    assert_eq!(txs.len(), 1, "one command per batch here");
    change(
        txs[0]
            .member_balances
            .iter_mut()
            .find(|a| a.member == m)
            .expect("the member's line"),
    );
    let mut w = codec::BlockWriter::default();
    w.push(&txs[0]);
    let block = w.finish().pop().expect("one block");
    tamper(dir, key, block.to_vec());
}

#[test]
fn verify_names_a_member_whose_chain_link_was_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_ledger(dir.path());
    rewrite_member_line(dir.path(), "e4", MemberId(4), |leg| {
        assert!(leg.prev.is_some(), "the earn follows the enrolment");
        leg.prev = None;
    });
    let (ok, text) = verify(dir.path());
    assert!(!ok, "verify must fail on a broken chain:\n{text}");
    assert!(
        text.contains("member/4") && text.contains("chain broken"),
        "the failure names the member and the chain:\n{text}"
    );
}

/// Changes member 3's stored page with `change`, behind the ledger's back.
fn rewrite_page_of_3(dir: &std::path::Path, change: impl FnOnce(&mut codec::MemberPage)) {
    let key = keys::member_page(keys::page_of(MemberId(3)));
    let store = EmbeddedStore::open(dir).expect("store");
    let raw = store
        .snapshot()
        .expect("snapshot")
        .get(&key)
        .expect("read")
        .expect("a clean shutdown writes every member page");
    drop(store);
    let mut page: codec::MemberPage = codec::decode("member page", &raw).expect("decode");
    change(&mut page);
    tamper(dir, key, codec::encode(&page));
}

#[test]
fn verify_names_a_member_whose_stored_state_was_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_ledger(dir.path());
    rewrite_page_of_3(dir.path(), |page| {
        let (_, state) = page
            .members
            .iter_mut()
            .find(|(m, _)| *m == MemberId(3))
            .expect("member 3 is in its page");
        assert_eq!(state.posted, Points(300));
        state.posted.0 += 1;
    });
    let (ok, text) = verify(dir.path());
    assert!(!ok, "verify must fail on a tampered member page:\n{text}");
    assert!(
        text.contains("member/3") && text.contains("member page"),
        "the failure names the account and the record:\n{text}"
    );
}

#[test]
fn verify_names_a_member_missing_from_its_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_ledger(dir.path());
    rewrite_page_of_3(dir.path(), |page| {
        let before = page.members.len();
        page.members.retain(|(m, _)| *m != MemberId(3));
        assert_eq!(page.members.len(), before - 1);
    });
    let (ok, text) = verify(dir.path());
    assert!(
        !ok,
        "verify must fail on a member dropped from its page:\n{text}"
    );
    assert!(
        text.contains("member/3") && text.contains("missing from a page"),
        "the failure names the account:\n{text}"
    );
}

#[test]
fn verify_names_an_idempotency_key_missing_from_the_index_chunks() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_ledger(dir.path());
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let chunks = store
        .snapshot()
        .expect("snapshot")
        .range(
            &[keys::IDEM_CHUNK],
            &[keys::IDEM_CHUNK + 1],
            usize::MAX,
            false,
        )
        .expect("read");
    drop(store);
    let total: usize = chunks
        .iter()
        .map(|(_, v)| codec::key_chunk_entries(v).expect("decode").len())
        .sum();
    assert_eq!(total, 11, "one entry per committed command");
    // Drop the last entry of the last chunk: the last command's key.
    let (key, raw) = chunks.last().expect("a chunk").clone();
    let mut chunk: Vec<(u128, TxId)> = codec::key_chunk_entries(&raw)
        .expect("decode")
        .iter()
        .map(|e| (e.hash, e.tx))
        .collect();
    chunk.pop();
    tamper(dir.path(), key, codec::encode_key_chunk(&chunk));
    let (ok, text) = verify(dir.path());
    assert!(!ok, "verify must fail on a missing index entry:\n{text}");
    assert!(
        text.contains("idempotency key partner/1:e5"),
        "the failure names the key:\n{text}"
    );
}

#[test]
fn verify_names_a_tampered_system_account() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_ledger(dir.path());
    let forged = Balance {
        points: Points(-1),
        money: vec![],
    };
    tamper(
        dir.path(),
        keys::balance(AccountId::PartnerIssuance(PartnerId(1))),
        codec::encode(&forged),
    );
    let (ok, text) = verify(dir.path());
    assert!(!ok, "{text}");
    assert!(text.contains("partner/1/issuance"), "{text}");
}

#[test]
fn verify_refuses_a_missing_directory() {
    let (ok, text) = verify(Path::new("/nonexistent/ledger-data"));
    assert!(!ok);
    assert!(text.contains("no store"), "{text}");
}

#[test]
fn verify_audits_a_cluster_path_store_and_names_a_tampered_total() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_cluster_ledger(dir.path());
    let (ok, text) = verify(dir.path());
    assert!(ok, "verify should pass:\n{text}");
    assert!(text.contains("cluster path"), "{text}");
    assert!(
        text.contains("points outstanding (owed to members): 1500"),
        "{text}"
    );
    // One point added to the partner's blind-added total behind the ledger's back.
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let mut w = WriteSet::default();
    w.add(
        &keys::total_points(AccountId::PartnerIssuance(PartnerId(1))),
        1,
    );
    store.commit(w, Durability::Sync).expect("tamper");
    drop(store);
    let (ok, text) = verify(dir.path());
    assert!(!ok, "{text}");
    assert!(text.contains("partner/1/issuance"), "{text}");
}

/// A clean shutdown hands every changed member page to the projector as the writer has it
/// (with the default delay, none came due while the ledger ran): each page covers the last
/// batch, the watermark of member pages reaches it, and the stored members hold their points.
#[test]
fn a_clean_shutdown_leaves_every_member_page_current() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_ledger(dir.path());
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let snapshot = store.snapshot().expect("snapshot");
    let watermark = |key: Vec<u8>| {
        let raw = snapshot.get(&key).expect("read").expect("a watermark");
        u64::from_be_bytes(raw.as_slice().try_into().expect("8 bytes"))
    };
    let projected = watermark(keys::projected_through());
    assert!(projected > 0, "the batches were projected");
    assert_eq!(
        watermark(keys::members_through()),
        projected,
        "every member page is current through the last batch"
    );
    let raw = snapshot
        .get(&keys::member_page(keys::page_of(MemberId(3))))
        .expect("read")
        .expect("the page of members 1 to 5 was written");
    let page: codec::MemberPage = codec::decode("member page", &raw).expect("decode");
    assert_eq!(page.through, projected, "the page is as of the last batch");
    let posted: Vec<(u64, i64)> = page
        .members
        .iter()
        .map(|(m, s)| (m.0, s.posted.0))
        .collect();
    assert_eq!(
        posted,
        vec![(1, 100), (2, 200), (3, 300), (4, 400), (5, 500)],
        "each member's points as earned"
    );
}

/// The stored page of members 1 to 10 and its record of changes, if any: each as (batch,
/// [(member, posted)]).
#[allow(clippy::type_complexity)]
fn page_of_ten(dir: &Path) -> ((u64, Vec<(u64, i64)>), Option<(u64, Vec<(u64, i64)>)>) {
    let store = EmbeddedStore::open(dir).expect("store");
    let snapshot = store.snapshot().expect("snapshot");
    let read = |key: Vec<u8>| {
        snapshot.get(&key).expect("read").map(|raw| {
            let page: codec::MemberPage = codec::decode("member page", &raw).expect("decode");
            let members = page.members.iter().map(|(m, s)| (m.0, s.posted.0));
            (page.through, members.collect::<Vec<_>>())
        })
    };
    let page = keys::page_of(MemberId(1));
    (
        read(keys::member_page(page)).expect("a whole copy"),
        read(keys::member_page_changes(page)),
    )
}

/// Opens the ledger in `dir` with pages written `delay` transactions after they change, runs
/// `commands`, and shuts it down; returns the last batch.
fn session(dir: &Path, delay: u64, commands: Vec<Command>) -> u64 {
    let ledger = Ledger::open(
        EmbeddedStore::open(dir).expect("store"),
        LedgerConfig {
            member_write_delay: delay,
            ..LedgerConfig::default()
        },
    )
    .expect("ledger");
    let mut last = 0;
    for c in commands {
        last = ledger.execute_blocking(c).expect("command").tx.id.seq();
    }
    ledger.shutdown();
    last
}

/// Partner 1's contract, then members 1 to 10 enrolled, each (when `earning`) earning 100 x its
/// id.
fn ten_members(earning: bool) -> Vec<Command> {
    let cent = rust_decimal::Decimal::new(1, 2);
    let mut commands = vec![support::contract(1, cent, cent, None)];
    for m in 1..=10u64 {
        commands.push(support::enrol(m));
        if earning {
            commands.push(support::earn(1, m, 100 * m as i64, &format!("e{m}")));
        }
    }
    commands
}

/// A page written while fewer than half its members changed since its whole copy holds only
/// them, beside the copy; each record holds every member changed since the copy, across
/// restarts; once half have changed the page is written whole again and the record cleared.
/// Every state reads back, recovered, and `verify` passes at each step.
#[test]
fn a_page_with_few_members_changed_is_written_as_those_members() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Written at the shutdown, every member changed: whole.
    let enrolled = session(dir.path(), 1_000_000, ten_members(true));
    let hundreds: Vec<(u64, i64)> = (1..=10).map(|m| (m, 100 * m as i64)).collect();
    assert_eq!(
        page_of_ten(dir.path()),
        ((enrolled, hundreds.clone()), None)
    );

    let three = session(dir.path(), 0, vec![support::earn(1, 3, 7, "x3")]);
    assert_eq!(
        page_of_ten(dir.path()),
        ((enrolled, hundreds.clone()), Some((three, vec![(3, 307)]))),
        "one member of ten changed: written alone, beside the whole copy"
    );
    let (ok, text) = verify(dir.path());
    assert!(ok, "{text}");

    let five = session(dir.path(), 0, vec![support::earn(1, 5, 9, "x5")]);
    assert_eq!(
        page_of_ten(dir.path()),
        ((enrolled, hundreds), Some((five, vec![(3, 307), (5, 509)]))),
        "the record after a restart still holds the member changed before it"
    );
    let (ok, text) = verify(dir.path());
    assert!(ok, "{text}");

    let whole = session(
        dir.path(),
        0,
        [1, 2, 4]
            .map(|m| support::earn(1, m, 1, &format!("y{m}")))
            .into(),
    );
    let mut now: Vec<(u64, i64)> = (1..=10).map(|m| (m, 100 * m as i64)).collect();
    for (m, plus) in [(1, 1), (2, 1), (3, 7), (4, 1), (5, 9)] {
        now[m - 1].1 += plus;
    }
    assert_eq!(
        page_of_ten(dir.path()),
        ((whole, now.clone()), None),
        "five of ten changed: the page whole again, its record cleared"
    );
    let (ok, text) = verify(dir.path());
    assert!(ok, "{text}");

    let ledger = Ledger::open(
        EmbeddedStore::open(dir.path()).expect("store"),
        LedgerConfig::default(),
    )
    .expect("ledger");
    for (m, posted) in now {
        let state = ledger.member_state(MemberId(m)).expect("read");
        assert_eq!(state.map(|s| s.posted.0), Some(posted), "member {m}");
    }
    ledger.shutdown();
}

/// A member whose change is in no stored page, though the member watermark covers it, is
/// named: here member 3's record of changes is removed behind the ledger's back.
#[test]
fn verify_names_a_member_whose_pages_record_of_changes_is_gone() {
    let dir = tempfile::tempdir().expect("temp dir");
    session(dir.path(), 1_000_000, ten_members(false));
    session(dir.path(), 0, vec![support::earn(1, 3, 7, "x3")]);
    let (ok, text) = verify(dir.path());
    assert!(ok, "{text}");

    let store = EmbeddedStore::open(dir.path()).expect("store");
    let mut w = WriteSet::default();
    w.clear(&keys::member_page_changes(keys::page_of(MemberId(3))));
    store.commit(w, Durability::Sync).expect("remove");
    drop(store);
    let (ok, text) = verify(dir.path());
    assert!(!ok, "{text}");
    assert!(
        text.contains("member/3") && text.contains("changed in batch"),
        "the failure names the member:\n{text}"
    );
}
