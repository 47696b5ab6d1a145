//! The journal is tamper-evident on both write paths: `ledger verify` names a reason, an
//! operator, a timestamp and an amount edited inside a journal block, a batch deleted (with or
//! without its chain record) and batches reordered; and a published checkpoint catches a chain
//! rewritten from the edit onwards.

use ledger::chain::{ChainRecord, Head};
use ledger::store::{Durability, EmbeddedStore, Snapshot, Store, WriteSet};
use ledger::*;
use std::path::Path;
use std::process::Command as Process;

mod support;

/// A contract, five members who earn, and an operator's adjustment: one command per batch.
fn write(dir: &Path, cluster: bool) {
    let store = EmbeddedStore::open(dir).expect("store");
    let ledger = if cluster {
        Ledger::open_cluster(store, LedgerConfig::default(), ClusterConfig::on_shard(3))
    } else {
        Ledger::open(store, LedgerConfig::default())
    }
    .expect("ledger");
    support::five_members_earning(&ledger);
    ledger
        .execute_blocking(Command::Adjust {
            key: IdemKey::operator("goodwill"),
            member: MemberId(2),
            points: Points(25),
            reason: "missed flight".into(),
            operator: "ops@example".into(),
            qualifies: false,
            corrects: None,
        })
        .expect("adjust");
    ledger.shutdown();
}

fn verify(dir: &Path, checkpoint: Option<&str>) -> (bool, String) {
    let mut cmd = Process::new(env!("CARGO_BIN_EXE_ledger"));
    cmd.args(["verify", "--data"]).arg(dir);
    if let Some(c) = checkpoint {
        cmd.args(["--checkpoint", c]);
    }
    let out = cmd.output().expect("run ledger verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The batch holding the transaction with `key`, and that transaction.
fn find(store: &EmbeddedStore, key: &IdemKey) -> (u64, Transaction) {
    let snap = store.snapshot().expect("snapshot");
    let mut found = None;
    journal::for_each_batch_after(&snap, None, &mut |_, seq, txs| {
        if let Some(tx) = txs.into_iter().find(|t| t.key == *key) {
            found = Some((seq, tx));
        }
        Ok(true)
    })
    .expect("journal");
    found.expect("the transaction")
}

/// Rewrites the transaction with `key` in its journal block with `change`, keeping the block
/// well formed (and, for amounts, balanced): a careful forger's edit.
fn edit(dir: &Path, key: &IdemKey, change: impl FnOnce(&mut Transaction)) -> u64 {
    let store = EmbeddedStore::open(dir).expect("store");
    let (seq, mut tx) = find(&store, key);
    change(&mut tx);
    let mut w = codec::BlockWriter::default();
    w.push(&tx);
    let mut writes = WriteSet::default();
    writes.set_value(keys::journal(seq, 0), w.finish().pop().expect("one block"));
    store.commit(writes, Durability::Sync).expect("tamper");
    seq
}

fn cases(cluster: bool) {
    let fresh = || {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), cluster);
        dir
    };
    let honest = fresh();
    let (ok, text) = verify(honest.path(), None);
    assert!(ok, "an honest store verifies:\n{text}");
    assert!(
        text.contains("verify: chain: 12 batches, 12 chained, 0 not yet sealed"),
        "every batch chained:\n{text}"
    );
    let changed = |seq: u64| format!("(batch {seq}): journal bytes changed");

    let goodwill = IdemKey::operator("goodwill");
    for (what, dir, seq) in [
        {
            let d = fresh();
            let seq = edit(d.path(), &goodwill, |tx| match &mut tx.kind {
                TxKind::Adjust { reason, .. } => *reason = "data error".into(),
                other => panic!("not the adjustment: {other:?}"),
            });
            ("reason", d, seq)
        },
        {
            let d = fresh();
            let seq = edit(d.path(), &goodwill, |tx| match &mut tx.kind {
                TxKind::Adjust { operator, .. } => *operator = "someone@else".into(),
                other => panic!("not the adjustment: {other:?}"),
            });
            ("operator", d, seq)
        },
        {
            let d = fresh();
            let seq = edit(d.path(), &IdemKey::partner(PartnerId(1), "e3"), |tx| {
                tx.at = tx.at.plus_ms(-86_400_000)
            });
            ("timestamp", d, seq)
        },
        {
            let d = fresh();
            let seq = edit(d.path(), &IdemKey::partner(PartnerId(1), "e4"), |tx| {
                for p in &mut tx.postings {
                    if let ledger::core::model::Amount::Points(x) = &mut p.amount {
                        // Both legs, so the transaction still balances.
                        x.0 += x.0.signum() * 10;
                    }
                }
            });
            ("amount", d, seq)
        },
    ] {
        let (ok, text) = verify(dir.path(), None);
        assert!(!ok, "an edited {what} fails verify:\n{text}");
        assert!(
            text.contains(&changed(seq)),
            "verify names the batch whose {what} changed ({seq}):\n{text}"
        );
    }

    // A batch deleted from the journal; then also its chain record, as a careful forger would.
    for with_record in [false, true] {
        let dir = fresh();
        let store = EmbeddedStore::open(dir.path()).expect("store");
        let (seq, _) = find(&store, &IdemKey::partner(PartnerId(1), "e2"));
        let snap = store.snapshot().expect("snapshot");
        let position = chain_position(&snap, seq);
        let mut w = WriteSet::default();
        w.clear(&keys::journal(seq, 0));
        if cluster {
            // The commit-order entry goes with it.
            let order = order_key(&snap, seq);
            w.clear(&order);
        }
        if with_record {
            w.clear(&keys::chain(&position));
        }
        drop(snap);
        store.commit(w, Durability::Sync).expect("delete");
        drop(store);
        let (ok, text) = verify(dir.path(), None);
        assert!(!ok, "a deleted batch fails verify:\n{text}");
        if with_record {
            assert!(
                text.contains("chain link does not follow from the previous record"),
                "the chain breaks at the next batch:\n{text}"
            );
            if !cluster {
                assert!(
                    text.contains(&format!("batches {seq} to {seq} missing")),
                    "{text}"
                );
            }
        } else {
            assert!(
                text.contains(&format!(
                    "(batch {seq}): chained but missing from the journal (deleted)"
                )),
                "verify names the deleted batch:\n{text}"
            );
        }
    }

    // Two batches swap places.
    {
        let dir = fresh();
        let store = EmbeddedStore::open(dir.path()).expect("store");
        let (a, _) = find(&store, &IdemKey::partner(PartnerId(1), "e1"));
        let (b, _) = find(&store, &IdemKey::partner(PartnerId(1), "e5"));
        let snap = store.snapshot().expect("snapshot");
        let mut w = WriteSet::default();
        if cluster {
            // Commit order is the versionstamped entries: swap the batches they name.
            let (ka, kb) = (order_key(&snap, a), order_key(&snap, b));
            w.set(&ka, &b.to_be_bytes());
            w.set(&kb, &a.to_be_bytes());
        } else {
            let va = snap.get(&keys::journal(a, 0)).expect("read").expect("a");
            let vb = snap.get(&keys::journal(b, 0)).expect("read").expect("b");
            w.set(&keys::journal(a, 0), &vb);
            w.set(&keys::journal(b, 0), &va);
        }
        drop(snap);
        store.commit(w, Durability::Sync).expect("swap");
        drop(store);
        let (ok, text) = verify(dir.path(), None);
        assert!(!ok, "reordered batches fail verify:\n{text}");
        assert_eq!(
            text.matches("(batches reordered)").count(),
            2,
            "verify names both reordered batches:\n{text}"
        );
    }

    // An edit with the whole chain rewritten after it passes the chain alone; the checkpoint
    // published before the edit catches it.
    {
        let dir = fresh();
        let published = {
            let store = EmbeddedStore::open(dir.path()).expect("store");
            let snap = store.snapshot().expect("snapshot");
            chain::head(&snap)
                .expect("head")
                .expect("chained")
                .checkpoint()
        };
        let seq = edit(dir.path(), &goodwill, |tx| match &mut tx.kind {
            TxKind::Adjust { reason, .. } => *reason = "data error".into(),
            other => panic!("not the adjustment: {other:?}"),
        });
        let store = EmbeddedStore::open(dir.path()).expect("store");
        let snap = store.snapshot().expect("snapshot");
        // The record before the edited batch, as the head to chain on from.
        let mut before: Option<Head> = None;
        for (k, v) in snap
            .range(&[keys::CHAIN], &[keys::CHAIN + 1], usize::MAX, false)
            .expect("chain")
        {
            let record = ChainRecord::decode(&v).expect("record");
            if record.seq == seq {
                break;
            }
            before = Some(Head {
                position: k[1..].to_vec(),
                record,
            });
        }
        let mut w = WriteSet::default();
        chain::seal_after(
            &snap,
            before.as_ref(),
            usize::MAX,
            usize::MAX,
            cluster,
            &mut w,
        )
        .expect("reseal");
        drop(snap);
        store.commit(w, Durability::Sync).expect("rewrite chain");
        drop(store);
        let (ok, text) = verify(dir.path(), None);
        assert!(ok, "a consistent rewrite passes the chain alone:\n{text}");
        let (ok, text) = verify(dir.path(), Some(&published.to_string()));
        assert!(!ok, "the published checkpoint catches the rewrite:\n{text}");
        assert!(
            text.contains("rewritten since it was published"),
            "verify says the checkpoint no longer matches:\n{text}"
        );
        // And an honest store matches its own checkpoint.
        let (ok, text) = verify(honest.path(), Some(&published_head(honest.path())));
        assert!(ok, "{text}");
        assert!(text.contains("1 checkpoint(s) matched"), "{text}");
    }
}

fn published_head(dir: &Path) -> String {
    let store = EmbeddedStore::open(dir).expect("store");
    let snap = store.snapshot().expect("snapshot");
    chain::head(&snap)
        .expect("head")
        .expect("chained")
        .checkpoint()
        .to_string()
}

/// The chain position of batch `seq`.
fn chain_position<S: Snapshot>(snap: &S, seq: u64) -> Vec<u8> {
    snap.range(&[keys::CHAIN], &[keys::CHAIN + 1], usize::MAX, false)
        .expect("chain")
        .into_iter()
        .find(|(_, v)| ChainRecord::decode(v).expect("record").seq == seq)
        .map(|(k, _)| k[1..].to_vec())
        .expect("batch is chained")
}

/// The commit-order entry naming batch `seq` (cluster path).
fn order_key<S: Snapshot>(snap: &S, seq: u64) -> Vec<u8> {
    snap.range(&[keys::ORDER], &[keys::ORDER + 1], usize::MAX, false)
        .expect("order")
        .into_iter()
        .find(|(_, v)| v.as_slice() == seq.to_be_bytes())
        .map(|(k, _)| k)
        .expect("batch in commit order")
}

#[test]
fn verify_names_every_kind_of_tampering_on_the_single_path() {
    cases(false);
}

#[test]
fn verify_names_every_kind_of_tampering_on_the_cluster_path() {
    cases(true);
}
