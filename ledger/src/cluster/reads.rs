//! The cluster path's reads: everything is in the store, written with the journal in the same
//! transaction (member records, statement lines, one idempotency record per command), so a
//! read never waits for a projector.

use crate::codec::{self, IdemRecord, MemberRecord};
use crate::core::model::{IdemKey, Transaction};
use crate::core::state::MemberState;
use crate::core::types::{MemberId, Points, Timestamp, TxId};
use crate::error::LedgerError;
use crate::journal::find_transaction;
use crate::keys;
use crate::reads::{member_points_as_of, statement_page, MemberBalance, PathReads, StatementPage};
use crate::shared::status::Shared;
use crate::store::{Snapshot, Store};
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
        let snap = store.snapshot()?;
        let head = MemberRecord::read(&snap, m)?.and_then(|r| r.state.last.get());
        statement_page(&snap, m, head, before, limit)
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
        let head = MemberRecord::read(&snap, m)?.and_then(|r| r.state.last.get());
        member_points_as_of(&snap, m, head, at)
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
