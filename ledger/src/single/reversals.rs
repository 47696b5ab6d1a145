//! The reversal totals the single path keeps in memory: a window of the latest originals, not
//! every earn or burn ever reversed.
//!
//! Every original with a reversal has a stored total (`keys::reversed`), which only the
//! projector writes. The writer and the projector each hold in memory the totals of the
//! highest-numbered originals reversed, about [`crate::LedgerConfig::reversal_totals_in_memory`]
//! of them, and read any other from the store when a reversal names it. So memory follows the
//! window, not the length of history, and a refund of a recent purchase (the usual case) reads
//! nothing.
//!
//! What makes a total memory lacks safe to read from the store:
//! - originals are dropped lowest id first, and only those below [`Window::read_below`] were
//!   ever dropped (or predate this start); an original at or above it that memory does not hold
//!   has never been reversed, and has no stored total;
//! - the writer drops a total only once the store holds it as memory does: its last change is
//!   in a batch the projector has covered, and the writer read that watermark before taking
//!   the snapshot it reads from, so the snapshot includes the projector's commit.

use crate::core::model::{Transaction, TxKind};
use crate::core::state::{Reversed, State};
use crate::core::types::TxId;
use crate::error::LedgerError;
use crate::keys;
use crate::store::Snapshot;
use std::collections::BTreeMap;

/// Which reversal totals a state holds, and which it must read from the store.
pub(crate) struct Window {
    /// The originals whose totals the state holds, each with the batch that last changed (or
    /// read) it.
    held: BTreeMap<TxId, u64>,
    /// Originals below this id may have a stored total the state does not hold.
    read_below: TxId,
    /// Most totals held, but for those whose changes the store does not hold yet.
    max: usize,
}

impl Window {
    /// A window over a state holding no totals, on a store whose stored totals all belong to
    /// originals below `read_below` (those of the batches the projector had covered).
    pub fn new(max: usize, read_below: TxId) -> Window {
        Window {
            held: BTreeMap::new(),
            read_below,
            max: max.max(1),
        }
    }

    /// The originals `txs` reverses whose totals must be read from the store before they are
    /// decided or applied against `state` (each once).
    pub fn to_read<'a>(
        &self,
        state: &State,
        txs: impl Iterator<Item = &'a Transaction>,
    ) -> Vec<TxId> {
        let mut out: Vec<TxId> = txs
            .filter_map(|tx| match tx.kind {
                TxKind::Reversal { original, .. } => Some(original),
                _ => None,
            })
            .filter(|o| self.must_read(state, *o))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether a reversal of `original` must read its stored total first.
    pub fn must_read(&self, state: &State, original: TxId) -> bool {
        original < self.read_below && !state.reversed.contains_key(&original)
    }

    /// Reads the stored totals of `originals` from `snapshot` into `state`, as of batch `seq`.
    /// An original without one has had no reversal: memory goes on holding nothing for it.
    pub fn read<Snap: Snapshot + ?Sized>(
        &mut self,
        state: &mut State,
        snapshot: &Snap,
        originals: &[TxId],
        seq: u64,
    ) -> Result<(), LedgerError> {
        for &original in originals {
            if let Some(v) = snapshot.get(&keys::reversed(original))? {
                let total: Reversed = crate::codec::decode("reversed record", &v)?;
                state.reversed.insert(original, total);
                self.held.insert(original, seq);
            }
        }
        Ok(())
    }

    /// Notes the totals `txs`, applied as batch `seq`, changed.
    pub fn changed<'a>(&mut self, txs: impl Iterator<Item = &'a Transaction>, seq: u64) {
        for tx in txs {
            if let TxKind::Reversal { original, .. } = tx.kind {
                self.held.insert(original, seq);
            }
        }
    }

    /// Drops from `state` the lowest originals' totals beyond the window whose last change the
    /// store holds (a batch through `stored_through`). A total changed later stays, and so do
    /// those above it, until a later call: it is never more than the projector's lag.
    pub fn trim(&mut self, state: &mut State, stored_through: u64) {
        while self.held.len() > self.max {
            let Some((&original, &seq)) = self.held.first_key_value() else {
                return;
            };
            if seq > stored_through {
                return;
            }
            self.held.pop_first();
            state.reversed.remove(&original);
            self.read_below = self.read_below.max(TxId(original.0 + 1));
        }
    }

    /// Totals held.
    pub fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{IdemKey, Transaction};
    use crate::core::types::{MemberId, PartnerId, Points};
    use crate::store::{EmbeddedStore, Store, WriteSet};

    fn reversal(of: TxId) -> Transaction {
        Transaction {
            id: TxId::in_batch(of.seq() + 100, 0),
            at: crate::core::types::Timestamp(5),
            key: IdemKey::operator("r"),
            digest: Default::default(),
            kind: TxKind::Reversal {
                original: of,
                member: MemberId(1),
                partner: PartnerId(1),
                points: Points(1),
                bonus: Points(0),
                clawback: Points(0),
                awards: vec![],
                guard: None,
                tier: None,
            },
            postings: vec![],
            lots: Default::default(),
            member_balances: Default::default(),
            pricing: None,
        }
    }

    #[test]
    fn a_total_leaves_memory_only_once_stored_and_is_then_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let store = EmbeddedStore::open(dir.path()).expect("store");
        let mut state = State::default();
        let mut w = Window::new(2, TxId::in_batch(1, 0));
        // Originals of batches 1..=4, each reversed in batch 5 (a total of 1 point each).
        let originals: Vec<TxId> = (1..=4).map(|s| TxId::in_batch(s, 0)).collect();
        let txs: Vec<Transaction> = originals.iter().map(|o| reversal(*o)).collect();
        assert_eq!(w.to_read(&state, txs.iter()), vec![] as Vec<TxId>);
        for tx in &txs {
            state.apply_to_rest(tx);
        }
        w.changed(txs.iter(), 5);
        // Not stored yet: nothing leaves.
        w.trim(&mut state, 4);
        assert_eq!((w.len(), state.reversed.len()), (4, 4));
        // The projector stores batch 5: the two lowest leave, the window's two stay.
        let mut ws = WriteSet::default();
        for o in &originals {
            ws.set_owned(keys::reversed(*o), crate::codec::encode(&state.reversed[o]));
        }
        store
            .commit(ws, crate::store::Durability::Buffered)
            .expect("commit");
        w.trim(&mut state, 5);
        assert_eq!(w.len(), 2);
        let kept: Vec<TxId> = {
            let mut k: Vec<TxId> = state.reversed.keys().copied().collect();
            k.sort();
            k
        };
        assert_eq!(kept, originals[2..].to_vec());
        // A second reversal of a dropped original reads its total; a held one reads nothing;
        // an original never reversed above every dropped one reads nothing.
        let fresh = TxId::in_batch(9, 0);
        let again = [
            reversal(originals[0]),
            reversal(originals[3]),
            reversal(fresh),
        ];
        let wanted = w.to_read(&state, again.iter());
        assert_eq!(wanted, vec![originals[0]]);
        w.read(&mut state, &store.snapshot().expect("snapshot"), &wanted, 6)
            .expect("read");
        assert_eq!(state.reversed[&originals[0]].points, Points(1));
        for tx in &again {
            state.apply_to_rest(tx);
        }
        w.changed(again.iter(), 6);
        assert_eq!(state.reversed[&originals[0]].points, Points(2));
        assert_eq!(state.reversed[&originals[3]].points, Points(2));
        assert_eq!(state.reversed[&fresh].points, Points(1));
        // Batch 6 is not stored: the re-read original, the lowest, holds the rest in memory.
        w.trim(&mut state, 5);
        assert_eq!(w.len(), 4);
        assert_eq!(state.reversed.len(), 4);
    }
}
