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
use crate::shared::open::{LedgerConfig, Started};
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
    let Loaded {
        state,
        through,
        members_through,
        member_stamps,
        page_changes,
    } = load_state(&snapshot, config.policy)?;
    let keys = Arc::new(KeyIndex::load(&snapshot, config.keys_in_memory)?);
    let shared = Shared::new(through, through, config.on_commit.clone());
    let recovered = bring_forward(
        &snapshot,
        state,
        Watermarks {
            through,
            members_through,
        },
        &member_stamps,
        page_changes,
        config,
    )?;
    drop(snapshot);
    start(store, config, shared, keys, through, recovered, chain)
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
/// covered at all. `page_changes` are the pages stored with a record of changes, and its
/// members: the next record of each holds them again.
fn bring_forward<Snap: crate::store::Snapshot>(
    snapshot: &Snap,
    mut state: State,
    marks: Watermarks,
    member_stamps: &crate::core::state::Map<MemberId, u64>,
    page_changes: Vec<(u64, Vec<MemberId>)>,
    config: &LedgerConfig,
) -> Result<Recovered, LedgerError> {
    let Watermarks {
        through,
        members_through,
    } = marks;
    let mut dirty = DirtyPages::new(config.member_write_delay);
    for (page, members) in page_changes {
        dirty.stored_changes(page, members);
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
            let behind = |m: MemberId| member_stamps.get(&m).is_none_or(|s| *s < seq);
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
        }));
        Ok(())
    })?;
    let rest = rest.unwrap_or_else(|| state.without_members());
    // Only the writer posts expiries and reviews, so only its state keeps the due index.
    state.index_due = true;
    state.rebuild_expiry_due_ahead(crate::shared::prefetch::parts_of);
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
        state,
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
    let heads = Arc::new(Heads::from_state(&state));
    let pages = PageMembers::of(&state);
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
