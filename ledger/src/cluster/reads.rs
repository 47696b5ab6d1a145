//! The cluster path's reads: everything is in the store, written with the journal in the same
//! transaction (member records, statement lines, one idempotency record per command), so a
//! read never waits for a projector.

use crate::codec::{self, IdemRecord, MemberRecord, StatementEntry};
use crate::core::model::{IdemKey, Transaction};
use crate::core::state::MemberState;
use crate::core::types::{MemberId, Points, Timestamp, TxId};
use crate::error::LedgerError;
use crate::journal::find_transaction;
use crate::keys;
use crate::reads::{MemberBalance, PathReads, StatementPage};
use crate::shared::status::Shared;
use crate::store::{prefix_end, Snapshot, Store};
use std::sync::Arc;

pub(super) struct ClusterReads {
    pub shared: Arc<Shared>,
}

impl<S: Store> PathReads<S> for ClusterReads {
    fn catch_up(&self) -> Result<(), LedgerError> {
        self.shared.check()
    }

    fn is_durable(&self, _: TxId) -> bool {
        // A cluster transaction is visible only once committed.
        true
    }

    fn balance(&self, store: &S, m: MemberId) -> Result<Option<MemberBalance>, LedgerError> {
        self.shared.check()?;
        member_balance(&store.snapshot()?, m)
    }

    fn member_state(&self, store: &S, m: MemberId) -> Result<Option<MemberState>, LedgerError> {
        self.shared.check()?;
        Ok(MemberRecord::read(&store.snapshot()?, m)?.map(|r| r.state))
    }

    fn statement(
        &self,
        store: &S,
        m: MemberId,
        before: Option<TxId>,
        limit: usize,
    ) -> Result<StatementPage, LedgerError> {
        self.shared.check()?;
        cluster_statement(&store.snapshot()?, m, before, limit)
    }

    fn transaction_by_key(
        &self,
        store: &S,
        key: &IdemKey,
    ) -> Result<Option<Transaction>, LedgerError> {
        self.shared.check()?;
        let snap = store.snapshot()?;
        match snap.get(&keys::idempotency(key))? {
            Some(v) => {
                let rec: IdemRecord = codec::decode("idempotency record", &v)?;
                find_transaction(&snap, rec.tx)
            }
            None => Ok(None),
        }
    }

    fn member_as_of(&self, store: &S, m: MemberId, at: Timestamp) -> Result<Points, LedgerError> {
        self.shared.check()?;
        let snap = store.snapshot()?;
        // Statement lines carry the balance after each transaction, newest first.
        let prefix = keys::statement_prefix(m);
        for (_, v) in snap.range(&prefix, &prefix_end(&prefix), usize::MAX, true)? {
            let e: StatementEntry = codec::decode("statement entry", &v)?;
            if e.at <= at {
                return Ok(e.balance_after);
            }
        }
        Ok(Points::ZERO)
    }
}

/// A member's points from its record; `None` if not enrolled. (The cluster path writes member
/// records with every change; the single committer answers from its heads.)
fn member_balance<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    m: MemberId,
) -> Result<Option<MemberBalance>, LedgerError> {
    Ok(match MemberRecord::read(snap, m)? {
        Some(r) => Some(MemberBalance {
            posted: r.state.posted,
            pending: r.state.held,
            available: r.state.available(),
        }),
        None => None,
    })
}

/// A page of the cluster path's statement lines (`S` member tx), newest first.
fn cluster_statement<Snap: Snapshot + ?Sized>(
    snap: &Snap,
    m: MemberId,
    before: Option<TxId>,
    limit: usize,
) -> Result<StatementPage, LedgerError> {
    let begin = keys::statement_prefix(m);
    let end = match before {
        Some(id) => keys::statement(m, id),
        None => prefix_end(&begin),
    };
    let rows = snap.range(&begin, &end, limit + 1, true)?;
    let mut entries = rows
        .iter()
        .map(|(_, v)| codec::decode::<StatementEntry>("statement entry", v))
        .collect::<Result<Vec<_>, _>>()?;
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.tx)
    } else {
        None
    };
    Ok(StatementPage { entries, next })
}
