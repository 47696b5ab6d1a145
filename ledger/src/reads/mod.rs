//! Reads over a store snapshot that do not depend on which write path wrote it: a member's
//! chain through the journal, statement lines, system account balances now and as of a time.
//! Each write path answers the reads that do depend on it through [`PathReads`]: the single
//! committer from its heads and key index in memory, the cluster path from its records.

use crate::codec::{self, HistoryEntry, StatementEntry};
use crate::core::model::{IdemKey, MemberAfter, Transaction};
use crate::core::state::Balance;
use crate::core::state::MemberState;
use crate::core::types::{AccountId, MemberId, Points, Timestamp, TxId};
use crate::error::LedgerError;
use crate::journal::{find_transaction, for_each_batch, is_cluster_store};
use crate::keys;
use crate::store::{prefix_end, Snapshot, Store};
use crate::totals::read_totals;
use serde::{Deserialize, Serialize};

/// Most entries on one statement page.
pub const STATEMENT_PAGE_MAX: usize = 1_000;

/// A member's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberBalance {
    /// Sum of postings.
    pub posted: Points,
    /// Reserved by open holds.
    pub pending: Points,
    /// Posted minus pending.
    pub available: Points,
}

/// One page of a member's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementPage {
    /// Entries, newest first.
    pub entries: Vec<StatementEntry>,
    /// Pass as `before` to get the next (older) page; `None` at the end.
    pub next: Option<TxId>,
}

/// What [`PathReads::for_each_recent_batch`] calls with each batch held in memory: its sequence
/// number and transactions; false to stop.
pub(crate) type RecentBatches<'a> =
    dyn FnMut(u64, &[std::sync::Arc<Transaction>]) -> Result<bool, LedgerError> + 'a;

/// The reads each write path answers in its own way.
pub(crate) trait PathReads<S: Store>: Send + Sync {
    /// Waits until reads see every command acknowledged before the call.
    fn catch_up(&self) -> Result<(), LedgerError>;
    /// True when transaction `id`'s batch is durable (its journal block may be visible in the
    /// store a moment before).
    fn is_durable(&self, id: TxId) -> bool;
    /// Member `m`'s points; `None` if not enrolled.
    fn balance(&self, store: &S, m: MemberId) -> Result<Option<MemberBalance>, LedgerError>;
    /// A page of member `m`'s statement, newest first, older than `before`.
    fn statement(
        &self,
        store: &S,
        m: MemberId,
        before: Option<TxId>,
        limit: usize,
    ) -> Result<StatementPage, LedgerError>;
    /// The durable transaction key `key` produced, if any.
    fn transaction_by_key(
        &self,
        store: &S,
        key: &IdemKey,
    ) -> Result<Option<Transaction>, LedgerError>;
    /// Member `m`'s posted points as of `at`.
    fn member_as_of(&self, store: &S, m: MemberId, at: Timestamp) -> Result<Points, LedgerError>;
    /// Member `m`'s whole state (lots, activity, tier, campaign use); `None` if not enrolled.
    fn member_state(&self, store: &S, m: MemberId) -> Result<Option<MemberState>, LedgerError>;

    /// Durable transaction `id` if the path holds it in memory (committed moments ago); `None`
    /// sends the caller to the journal.
    fn recent_transaction(&self, _id: TxId) -> Option<Transaction> {
        None
    }

    /// The durable transaction key `key` produced, if the path holds both in memory (committed
    /// moments ago); `None` sends the caller to [`PathReads::transaction_by_key`], which may
    /// read the store.
    fn recent_by_key(&self, _key: &IdemKey) -> Option<Transaction> {
        None
    }
    /// Calls `f` with batches `first..=last` (each durable) in order, with their sequence
    /// numbers, if the path still holds every one of them in memory (decided moments ago);
    /// stops early when `f` returns false. `None`, without calling `f`, sends the caller to
    /// the journal.
    fn for_each_recent_batch(
        &self,
        _first: u64,
        _last: u64,
        _f: &mut RecentBatches<'_>,
    ) -> Option<Result<(), LedgerError>> {
        None
    }

    /// Idempotency keys held in memory (`None`: the path holds none; every lookup reads the
    /// store).
    fn keys_in_memory(&self) -> Option<usize> {
        None
    }

    /// Reversal totals the writer holds in memory (`None`: the path holds none between
    /// commands; each reversal reads its original's total from the store).
    fn reversal_totals_in_memory(&self) -> Option<usize> {
        None
    }

    /// Keys on disk the filter over them holds at under 1% false positives (`None`: the path
    /// keeps no such filter).
    fn key_filter_capacity(&self) -> Option<usize> {
        None
    }
}

/// Transaction `id` of member `m`'s chain, with its line for `m`.
pub(crate) fn member_link<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    m: MemberId,
    id: TxId,
) -> Result<(Transaction, MemberAfter), LedgerError> {
    let tx = find_transaction(snap, id)?.ok_or_else(|| {
        LedgerError::Corrupt(format!(
            "member/{}: transaction {id} of its chain is not in the journal",
            m.0
        ))
    })?;
    let link = *tx
        .member_balances
        .iter()
        .find(|a| a.member == m)
        .ok_or_else(|| {
            LedgerError::Corrupt(format!(
                "member/{}: transaction {id} of its chain does not touch it",
                m.0
            ))
        })?;
    Ok((tx, link))
}

/// Walks member `m`'s chain back from transaction `from`, calling `visit` with each transaction
/// and its line for `m` until `visit` returns false; returns the next transaction not visited.
pub(crate) fn walk_chain<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    m: MemberId,
    from: Option<TxId>,
    mut visit: impl FnMut(&Transaction, &MemberAfter) -> bool,
) -> Result<Option<TxId>, LedgerError> {
    let mut at = from;
    while let Some(id) = at {
        let (tx, link) = member_link(snap, m, id)?;
        at = link.prev;
        if !visit(&tx, &link) {
            break;
        }
    }
    Ok(at)
}

/// A page of member `m`'s statement, newest first, walking its chain through the journal from
/// `head` (its latest transaction), or from the transaction before `before`. Both write paths
/// answer statements this way: the chain is in commit order on either (each transaction links
/// the member's previous one), where transaction ids are not on the cluster path (each process
/// numbers its transactions from its own block of ids).
pub(crate) fn statement_page<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    m: MemberId,
    head: Option<TxId>,
    before: Option<TxId>,
    limit: usize,
) -> Result<StatementPage, LedgerError> {
    let from = match before {
        None => head,
        Some(id) => member_link(snap, m, id)?.1.prev,
    };
    let mut entries = Vec::new();
    let rest = walk_chain(snap, m, from, |tx, a| {
        entries.push(crate::codec::statement_entry(tx, m, a.posted, a.held));
        entries.len() < limit
    })?;
    let next = rest.and(entries.last().map(|e| e.tx));
    Ok(StatementPage { entries, next })
}

/// Member `m`'s posted points at `at`: its chain walked back from `head` to the last
/// transaction by then.
pub(crate) fn member_points_as_of<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    m: MemberId,
    head: Option<TxId>,
    at: Timestamp,
) -> Result<Points, LedgerError> {
    let mut points = Points::ZERO;
    walk_chain(snap, m, head, |tx, link| {
        if tx.at <= at {
            points = link.posted;
            return false;
        }
        true
    })?;
    Ok(points)
}

/// A non-member account's balance in `snap`: the projector's balance record plus the cluster
/// path's blind-added totals (one or the other is empty, depending on which path wrote the
/// store). Members are read from the heads (single committer) or member records (cluster).
pub(crate) fn system_account_balance<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    a: AccountId,
) -> Result<Balance, LedgerError> {
    debug_assert!(!a.is_member(), "member balances are not balance records");
    let mut b = match snap.get(&keys::balance(a))? {
        Some(v) => codec::decode("balance record", &v)?,
        None => Balance::default(),
    };
    read_totals(snap, a, &mut b)?;
    Ok(b)
}

pub(crate) fn account_balance_as_of<Snap: Snapshot>(
    snap: &Snap,
    a: AccountId,
    at: Timestamp,
) -> Result<Balance, LedgerError> {
    debug_assert!(!a.is_member(), "members are read through their write path");
    if is_cluster_store(snap)? {
        // The cluster path keeps no history entries: replay the whole journal.
        let mut balance = Balance::default();
        for_each_batch(snap, 0, &mut |_, txs| {
            for tx in txs.iter().filter(|t| t.at <= at) {
                for p in tx.postings.iter().filter(|p| p.account == a) {
                    balance.add(p.amount);
                }
            }
            Ok(())
        })?;
        return Ok(balance);
    }
    // History entries hold the balance at the end of each projector flush that touched `a`;
    // replay the journal between the last entry at or before `at` and the next entry.
    let prefix = keys::balance_history_prefix(a);
    let rows = snap.range(&prefix, &prefix_end(&prefix), usize::MAX, false)?;
    let mut base = (0u64, Balance::default());
    let mut next_seq: Option<u64> = None;
    for (k, v) in &rows {
        let seq = u64::from_be_bytes(k[k.len() - 8..].try_into().expect("8-byte seq"));
        let e: HistoryEntry = codec::decode("balance history", v)?;
        if e.at <= at {
            base = (seq, e.balance);
        } else {
            next_seq = Some(seq);
            break;
        }
    }
    let Some(next) = next_seq else {
        return Ok(base.1);
    };
    let (from, mut balance) = base;
    let mut done = false;
    for_each_batch(snap, from, &mut |seq, txs| {
        if done || seq > next {
            done = true;
            return Ok(());
        }
        for tx in txs.iter().filter(|t| t.at <= at) {
            for p in tx.postings.iter().filter(|p| p.account == a) {
                balance.add(p.amount);
            }
        }
        Ok(())
    })?;
    Ok(balance)
}
