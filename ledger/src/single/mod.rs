//! The one-process write path (the embedded default): a single writer owns the working state
//! in memory and group-commits batches of commands as journal blocks, one fsync per batch.
//!
//! ```text
//! queue --> committer: writer thread (decide a batch against State, index its keys)
//!             --> committer: syncer thread (journal blocks, one commit + fsync, answer callers)
//!             --> projector thread (derived records, member pages, heads, watermark)
//! ```
//!
//! Architecture invariant: only this folder knows the single writer's memory (the key index,
//! the heads, member pages); the handle sees it through [`PathReads`]. A storage failure stops
//! the writer for good: memory may be ahead of disk, and a restart recovers from the journal.

pub(crate) mod committer;
pub(crate) mod heads;
pub(crate) mod key_index;
pub(crate) mod open_table;
pub(crate) mod pages;
pub(crate) mod projector;
mod reads;
pub(crate) mod recent;
pub(crate) mod reversals;

use crate::core::state::State;
use crate::core::types::{MemberId, TxId};
use crate::error::{LedgerError, WritePath};
use crate::journal::{for_each_batch, is_cluster_store};
use crate::recovery::{load_state, Loaded};
use crate::shared::open::{beside, joined, LedgerConfig, Started};
use crate::shared::queue::{Batch, Job, PROJECTOR_QUEUE_BATCHES};
use crate::shared::status::Shared;
use crate::store::Store;
use committer::Writer;
use heads::Heads;
use key_index::KeyIndex;
use pages::{DirtyPages, PageMembers};
use projector::Projector;
use reversals::Window;
use std::sync::Arc;

/// Opens the single path on `store`: loads derived state, brings it forward with the journal
/// after its watermarks, and starts the committer and projector threads.
pub(crate) fn open<S: Store + Clone>(
    store: &S,
    config: &LedgerConfig,
) -> Result<Started<S>, LedgerError> {
    let snapshot = store.snapshot()?;
    if is_cluster_store(&snapshot)? {
        return Err(LedgerError::WrongWritePath {
            written: WritePath::Cluster,
            asked: WritePath::Single,
        });
    }
    let chain = open_chain(store)?;
    let started = std::time::Instant::now();
    let Load {
        keys,
        through,
        recovered,
        threads,
    } = load(store, &snapshot, config)?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        threads,
        keys_in_memory = keys.len(),
        replayed_batches = recovered.tail.len(),
        "the ledger's state loaded"
    );
    drop(snapshot);
    let shared = Shared::new(through, through, config.on_commit.clone());
    start(
        store,
        config,
        shared,
        Arc::new(keys),
        through,
        recovered,
        chain,
    )
}

/// What an open loads before it starts the threads.
struct Load {
    /// The keys of the latest transactions.
    keys: KeyIndex,
    /// The projector's watermark.
    through: u64,
    /// The state brought forward with the journal, and what recovery hands on.
    recovered: Recovered,
    /// The threads that read the store: 2, or 1 where the store is read from one only. (The
    /// members' map is filled on a thread of its own either way: `recovery::load_state`.)
    threads: usize,
}

/// The key index, and the members' state brought forward with the journal.
///
/// Each is a pass over millions of records whose time goes to cache misses, and neither reads
/// what the other makes, so where the store takes reads from two threads they run at once:
/// the index from a second snapshot, on a thread of its own. Nothing writes to the store
/// during an open, so both snapshots see one version (checked: if they differ, the load runs
/// on one thread). [`Store::reads_from_threads`] is false for the simulated store, whose
/// faults are drawn operation by operation in order: its loads run one after the other, in
/// the order a seed repeats.
fn load<S: Store>(
    store: &S,
    snapshot: &S::Snapshot,
    config: &LedgerConfig,
) -> Result<Load, LedgerError> {
    let second = match store.reads_from_threads() {
        true => Some(store.snapshot()?).filter(|s| {
            crate::store::Snapshot::version(s) == crate::store::Snapshot::version(snapshot)
        }),
        false => None,
    };
    let Some(keys_snapshot) = second else {
        let loaded = load_state(snapshot, config.policy)?;
        let keys = KeyIndex::load(snapshot, config.keys_in_memory)?;
        let (through, recovered) = recover(snapshot, loaded, config)?;
        return Ok(Load {
            keys,
            through,
            recovered,
            threads: 1,
        });
    };
    std::thread::scope(|s| {
        let keys = beside(s, "ledger-key-load", move || {
            KeyIndex::load(&keys_snapshot, config.keys_in_memory)
        })?;
        let recovered =
            load_state(snapshot, config.policy).and_then(|l| recover(snapshot, l, config));
        let keys = joined(keys);
        let (through, recovered) = recovered?;
        Ok(Load {
            keys: keys?,
            through,
            recovered,
            threads: 2,
        })
    })
}

/// The state `loaded` brought forward with the journal: its watermark, and what recovery hands
/// the writer and projector.
fn recover<Snap: crate::store::Snapshot>(
    snapshot: &Snap,
    loaded: Loaded,
    config: &LedgerConfig,
) -> Result<(u64, Recovered), LedgerError> {
    let Loaded {
        state,
        through,
        members_through,
        stamps,
    } = loaded;
    let recovered = bring_forward(
        snapshot,
        state,
        Watermarks {
            through,
            members_through,
        },
        &stamps,
        config,
    )?;
    Ok((through, recovered))
}

/// The journal's hash chain. A store written before the chain existed (no head) is chained
/// from its first batch; once there is a head, every batch is chained in its own commit, so a
/// batch after the head without a record is left for `verify` to report, not chained over.
fn open_chain<S: Store>(store: &S) -> Result<crate::chain::Chainer, LedgerError> {
    loop {
        let snapshot = store.snapshot()?;
        let head = crate::chain::head(&snapshot)?;
        if head.is_some() {
            return Ok(crate::chain::Chainer::new(head.as_ref(), false));
        }
        let mut writes = crate::store::WriteSet::default();
        let n = crate::chain::seal_after(
            &snapshot,
            head.as_ref(),
            10_000,
            64 << 20,
            false,
            &mut writes,
        )?;
        if n == 0 {
            return Ok(crate::chain::Chainer::new(head.as_ref(), false));
        }
        store.commit(writes, crate::store::Durability::Sync)?;
    }
}

/// What recovery brought forward: the writer's state, the projector's (the state as of the
/// watermark, but for the members and the reversal totals), the member pages that changed
/// since their stored batch, the journal batches the projector has yet to cover, and which
/// reversal totals each of the writer and the projector holds.
struct Recovered {
    state: State,
    rest: State,
    dirty: DirtyPages,
    tail: Vec<Arc<Batch>>,
    reversals: Window,
    rest_reversals: Window,
}

/// The projector's watermarks as stored: the batch it covered, and the batch through which
/// every member page is current.
struct Watermarks {
    through: u64,
    members_through: u64,
}

/// Brings member pages forward to the watermark, each from the batch it covers (they are
/// written later than the rest; see `projector`), then replays what the projector had not
/// covered at all. The pages stored with a record of changes (`stamps`) hold its members
/// again in the next record of each.
fn bring_forward<Snap: crate::store::Snapshot>(
    snapshot: &Snap,
    mut state: State,
    marks: Watermarks,
    stamps: &crate::recovery::Stamps,
    config: &LedgerConfig,
) -> Result<Recovered, LedgerError> {
    let Watermarks {
        through,
        members_through,
    } = marks;
    let mut dirty = DirtyPages::new(config.member_write_delay);
    for (page, members) in stamps.changed_pages() {
        dirty.stored_changes(page, members.iter().copied());
    }
    let mut rest: Option<State> = None;
    // Stored reversal totals are those of originals through the watermark; none is in memory
    // yet. Those the journal's tail reverses are read before they are applied.
    let window = || {
        Window::new(
            config.reversal_totals_in_memory,
            TxId::in_batch(through + 1, 0),
        )
    };
    let mut reversals = window();
    let mut tail: Vec<Arc<Batch>> = Vec::new();
    for_each_batch(snapshot, members_through.min(through), &mut |seq, txs| {
        if seq <= through {
            let behind = |m: MemberId| stamps.of(m).is_none_or(|s| s < seq);
            for tx in &txs {
                state.apply_to_members(tx, behind);
                for m in tx.members().filter(|m| behind(*m)) {
                    dirty.touch(m, seq);
                }
            }
            return Ok(());
        }
        if rest.is_none() {
            rest = Some(state.without_members());
        }
        let read = reversals.to_read(&state, txs.iter());
        reversals.read(&mut state, snapshot, &read, seq)?;
        reversals.changed(txs.iter(), seq);
        for tx in &txs {
            state.apply(tx);
            for m in tx.members() {
                dirty.touch(m, seq);
            }
        }
        dirty.advance(txs.len() as u64);
        let at = txs.last().map(|t| t.at).unwrap_or_default();
        tail.push(Arc::new(Batch {
            seq,
            at,
            txs: txs.into_iter().map(Arc::new).collect(),
            pages: Vec::new(),
            members_through: dirty.through(seq),
            members_held: state.members.len() as u64,
        }));
        Ok(())
    })?;
    let rest = rest.unwrap_or_else(|| state.without_members());
    // Only the writer posts expiries and reviews, so only its state keeps the due index (built
    // at the start, beside the readers' heads).
    state.index_due = true;
    Ok(Recovered {
        state,
        rest,
        dirty,
        tail,
        reversals,
        rest_reversals: window(),
    })
}

/// Keys on disk up to which the filter over them is rebuilt during open rather than beside the
/// writer.
const FILTER_REBUILT_INLINE_MAX: usize = 1_000_000;

/// Starts the projector and the committer on the recovered state, and hands the projector the
/// journal batches it has yet to cover.
fn start<S: Store + Clone>(
    store: &S,
    config: &LedgerConfig,
    shared: Arc<Shared>,
    keys: Arc<KeyIndex>,
    through: u64,
    recovered: Recovered,
    chain: crate::chain::Chainer,
) -> Result<Started<S>, LedgerError> {
    let committer = config.committer.checked();
    let keys_in_memory = config.keys_in_memory;
    let Recovered {
        mut state,
        rest,
        dirty,
        tail,
        reversals,
        rest_reversals,
    } = recovered;
    let last_at = tail.last().map(|b| b.at).unwrap_or_default();
    let last_seq = tail.last().map(|b| b.seq).unwrap_or(through);
    assert!(
        last_seq >= through,
        "the journal tail starts after the watermark"
    );
    shared.recovered_through(last_seq);
    shared.set_reversal_totals(reversals.len());
    let (to_projector, from_writer) =
        crossbeam_channel::bounded::<Arc<Batch>>(PROJECTOR_QUEUE_BATCHES);
    // Three passes over every member, which only read the state: the readers' heads on a thread
    // of their own, beside the writer's due index and its pages' member lists. (No store
    // operation: the simulation's order of those stays as it is.)
    let (heads, due, pages) = std::thread::scope(|s| {
        let heads = beside(s, "ledger-heads", || Heads::from_state(&state))?;
        let due = state.expiry_due_ahead(crate::shared::prefetch::parts_of);
        let pages = PageMembers::of(&state);
        let heads = joined(heads);
        Ok::<_, LedgerError>((Arc::new(heads), due, pages))
    })?;
    if let Some(due) = due {
        state.expiry_due = due;
    }
    let (spilled_to, spilled) = crossbeam_channel::unbounded();
    let mut writer_alive_guard = None;
    let projector = Projector {
        keys: keys.clone(),
        keys_in_memory,
        spilled: spilled_to,
        store: store.clone(),
        heads: heads.clone(),
        rest,
        reversals: rest_reversals,
        shared: shared.clone(),
        last_seq: through,
        grower: None,
    };
    let projector = std::thread::Builder::new()
        .name("ledger-projector".into())
        .spawn(move || projector.run(from_writer))
        .map_err(|e| LedgerError::Spawn {
            thread: "projector",
            why: e.to_string(),
        })?;
    let recent = Arc::new(recent::Recent::default());
    let writer = Writer {
        store: store.clone(),
        state,
        keys: keys.clone(),
        config: committer,
        shared: shared.clone(),
        to_projector,
        last_at,
        next_seq: last_seq + 1,
        recent: recent.clone(),
        chain: Some(chain),
        spilled,
        leaving: std::collections::VecDeque::new(),
        filter: keys.current_filter(),
        alive: None,
        pages,
        dirty,
        reversals,
    };
    if !keys.filter_ready() && keys.on_disk_at_open <= FILTER_REBUILT_INLINE_MAX {
        // Few keys on disk: rebuilt before the writer starts (a fraction of a second), and
        // before the projector has the journal's tail, so that its commits never interleave
        // with this scan (the simulation repeats a seed's store operations in one order).
        let (_alive, writer_alive) = crossbeam_channel::bounded::<()>(0);
        keys.rebuild_filter(store, &writer_alive)?;
    }
    for b in tail {
        writer.remember(&b.txs);
        writer
            .to_projector
            .send(b)
            .map_err(|_| LedgerError::Stopped {
                why: "the projector stopped during recovery".into(),
            })?;
    }
    let mut threads = Vec::new();
    if !keys.filter_ready() {
        // The filter over keys on disk, rebuilt beside the writer, which reads the disk for
        // every key missing from memory until it is done. It stops when the writer does.
        let (keys, store) = (keys.clone(), store.clone());
        let (alive, writer_alive) = crossbeam_channel::bounded::<()>(0);
        writer_alive_guard = Some(alive);
        let started = std::time::Instant::now();
        threads.push(
            std::thread::Builder::new()
                .name("ledger-key-filter".into())
                .spawn(move || match keys.rebuild_filter(&store, &writer_alive) {
                    Ok(true) => tracing::info!(
                        seconds = started.elapsed().as_secs_f64(),
                        "filter over idempotency keys on disk rebuilt"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "filter over keys on disk not rebuilt; every new key reads the disk"),
                })
                .map_err(|e| LedgerError::Spawn {
                    thread: "key filter",
                    why: e.to_string(),
                })?,
        );
    }
    let (jobs, queue) = crossbeam_channel::bounded::<Job>(committer.queue_capacity);
    let mut writer = writer;
    writer.alive = writer_alive_guard;
    let writer = std::thread::Builder::new()
        .name("ledger-committer".into())
        .spawn(move || writer.run(queue))
        .map_err(|e| LedgerError::Spawn {
            thread: "committer",
            why: e.to_string(),
        })?;
    Ok(Started {
        shared: shared.clone(),
        jobs,
        threads: [writer, projector].into_iter().chain(threads).collect(),
        reads: Box::new(reads::SingleReads {
            keys,
            heads,
            shared,
            recent,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Command, IdemKey};
    use crate::core::types::{Contract, MemberId, PartnerId, Points};
    use crate::store::{
        Durability, EmbeddedSnapshot, EmbeddedStore, StoreError, Version, WriteSet,
    };
    use crate::Ledger;

    /// The embedded store, read from one thread at a time, as the simulated store is.
    #[derive(Clone)]
    struct OneThread(EmbeddedStore);

    impl Store for OneThread {
        type Snapshot = EmbeddedSnapshot;
        fn snapshot(&self) -> Result<EmbeddedSnapshot, StoreError> {
            self.0.snapshot()
        }
        fn commit(&self, writes: WriteSet, durability: Durability) -> Result<Version, StoreError> {
            self.0.commit(writes, durability)
        }
        fn next_version(&self) -> Version {
            self.0.next_version()
        }
        fn reads_from_threads(&self) -> bool {
            false
        }
    }

    const AIR: PartnerId = PartnerId(1);

    /// Keys past a window of 50, and member pages written 7 transactions late.
    fn windows_small() -> LedgerConfig {
        LedgerConfig {
            keys_in_memory: 50,
            member_write_delay: 7,
            ..LedgerConfig::default()
        }
    }

    /// A store of 40 members, about 1,500 earns and 300 burns, with keys past a window of 50 and
    /// member pages written 7 transactions late, stopped as a crash stops it: the open has
    /// member pages, records of changes, keys on disk and a journal tail to bring forward.
    fn crashed_store(dir: &std::path::Path, config: &LedgerConfig) -> Vec<crate::Receipt> {
        let l =
            Ledger::open(EmbeddedStore::open(dir).expect("store"), config.clone()).expect("ledger");
        let mut receipts = vec![l
            .execute_blocking(Command::SetContract {
                key: IdemKey::operator("contract"),
                contract: Contract {
                    partner: AIR,
                    currency: "EUR".parse().expect("EUR"),
                    issuance_price_per_point: rust_decimal::Decimal::new(1, 2),
                    redemption_price_per_point: rust_decimal::Decimal::new(1, 2),
                    points_validity_days: Some(365),
                },
            })
            .expect("contract")];
        for m in 0..40 {
            receipts.push(
                l.execute_blocking(Command::Enrol {
                    key: IdemKey::operator(format!("enrol-{m}")),
                    member: MemberId(m),
                })
                .expect("enrol"),
            );
        }
        for i in 0..1_800u64 {
            let member = MemberId(i * 7 % 40);
            let key = IdemKey::partner(AIR, format!("c-{i}"));
            // Every member has earned by the 40th command (7 and 40 are coprime).
            let cmd = if i >= 40 && i % 6 == 5 {
                Command::Burn {
                    key,
                    member,
                    partner: AIR,
                    points: Points(3),
                }
            } else {
                Command::Earn {
                    key,
                    member,
                    partner: AIR,
                    points: Points(10 + (i % 5) as i64),
                    bonus: Points(0),
                    awards: vec![],
                    guard: None,
                    purchase: None,
                }
            };
            receipts.push(l.execute_blocking(cmd).expect("command"));
        }
        l.stop_as_if_crashed();
        receipts
    }

    #[test]
    fn a_load_on_two_threads_holds_what_a_load_on_one_holds() {
        let dir = tempfile::tempdir().expect("dir");
        let config = windows_small();
        let receipts = crashed_store(dir.path(), &config);
        let store = EmbeddedStore::open(dir.path()).expect("store");
        let two = load(&store, &store.snapshot().expect("snapshot"), &config).expect("load");
        let one_store = OneThread(store.clone());
        let one = load(
            &one_store,
            &one_store.snapshot().expect("snapshot"),
            &config,
        )
        .expect("load");
        assert_eq!((two.threads, one.threads), (2, 1));

        assert_eq!(two.through, one.through);
        assert_eq!(
            two.recovered.state, one.recovered.state,
            "the writer's state"
        );
        assert_eq!(
            two.recovered.rest, one.recovered.rest,
            "the projector's state"
        );
        let seqs = |l: &Load| l.recovered.tail.iter().map(|b| b.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&two), seqs(&one), "the journal's tail");
        assert_eq!(two.recovered.state.members.len(), 40);

        assert_eq!(two.keys.len(), one.keys.len());
        // Some keys from the stored chunks; the rest moved to disk, or come with the tail.
        assert!(
            (1..receipts.len() / 2).contains(&two.keys.len()),
            "{} keys loaded",
            two.keys.len()
        );
        let mut in_memory = 0;
        for r in &receipts {
            let found = two.keys.get(&r.tx.key);
            assert_eq!(found, one.keys.get(&r.tx.key), "{:?}", r.tx.key);
            if let Some(id) = found {
                assert_eq!(id, r.tx.id, "{:?}", r.tx.key);
                in_memory += 1;
            }
        }
        assert_eq!(
            in_memory,
            two.keys.len(),
            "every key in memory is a committed one"
        );
    }

    #[test]
    fn the_members_held_record_sizes_the_members_map_and_nothing_else() {
        let dir = tempfile::tempdir().expect("dir");
        let config = windows_small();
        crashed_store(dir.path(), &config);
        let store = EmbeddedStore::open(dir.path()).expect("store");
        let held = |store: &EmbeddedStore| {
            crate::recovery::read_seq(
                &store.snapshot().expect("snapshot"),
                &crate::keys::members_held(),
                "members held",
            )
            .expect("read")
        };
        // Written with the member pages: every member had enrolled before the first was due.
        assert_eq!(held(&store), 40);
        let loaded = |store: &EmbeddedStore| {
            load(store, &store.snapshot().expect("snapshot"), &config)
                .expect("load")
                .recovered
        };
        let as_written = loaded(&store);
        assert_eq!(as_written.state.members.len(), 40);
        let set = |value: Option<u64>| {
            let mut w = WriteSet::default();
            match value {
                Some(v) => w.set(&crate::keys::members_held(), &v.to_be_bytes()),
                None => w.clear(&crate::keys::members_held()),
            }
            store.commit(w, Durability::Sync).expect("commit");
        };
        // A larger count is taken as the map's size; the state is the same.
        set(Some(100_000));
        let sized = loaded(&store);
        assert!(
            sized.state.members.capacity() >= 100_000,
            "capacity {}",
            sized.state.members.capacity()
        );
        assert_eq!(sized.state, as_written.state);
        assert_eq!(sized.rest, as_written.rest);
        // A count no map could have, none, or one too small: the same state, the map grown as
        // it fills.
        for value in [Some(u64::MAX), None, Some(1)] {
            set(value);
            let other = loaded(&store);
            assert!(other.state.members.capacity() < 100_000, "{value:?}");
            assert_eq!(other.state, as_written.state, "{value:?}");
            assert_eq!(other.rest, as_written.rest, "{value:?}");
        }
    }
}
