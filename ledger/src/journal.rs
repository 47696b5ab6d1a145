//! Reading the journal: one transaction by id, or every transaction in commit order.

use crate::codec::Block;
use crate::error::LedgerError;
use crate::keys;
use crate::model::Transaction;
use crate::store::{prefix_end, Snapshot};
use crate::types::TxId;

/// The committed transaction `id`, if the journal has it.
pub fn find_transaction<S: Snapshot + ?Sized>(
    snapshot: &S,
    id: TxId,
) -> Result<Option<Transaction>, LedgerError> {
    let begin = keys::journal(id.seq(), 0);
    let end = keys::journal(id.seq() + 1, 0);
    let mut slot = usize::from(id.slot());
    for (_, value) in snapshot.range(&begin, &end, usize::MAX, false)? {
        let block = Block::parse(&value)?;
        if slot < block.len() {
            return block.get(slot).map(Some);
        }
        slot -= block.len();
    }
    Ok(None)
}

/// Calls `f` with every batch committed after version `after`, in commit order: the batch's
/// version and its transactions.
pub fn for_each_batch<S: Snapshot + ?Sized>(
    snapshot: &S,
    after: u64,
    f: &mut dyn FnMut(u64, Vec<Transaction>) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    let begin = keys::journal(after.saturating_add(1), 0);
    let end = prefix_end(&keys::journal_prefix());
    let mut current: Option<(u64, Vec<Transaction>)> = None;
    let mut failure: Option<LedgerError> = None;
    snapshot.scan(&begin, &end, &mut |k, v| {
        let step = (|| -> Result<(), LedgerError> {
            let (version, _) = keys::parse_journal(k)
                .ok_or_else(|| LedgerError::Corrupt(format!("bad journal key {k:?}")))?;
            let txs = Block::parse(v)?.all()?;
            match &mut current {
                Some((v0, acc)) if *v0 == version => acc.extend(txs),
                _ => {
                    if let Some((v0, acc)) = current.take() {
                        f(v0, acc)?;
                    }
                    current = Some((version, txs));
                }
            }
            Ok(())
        })();
        match step {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some((v0, acc)) = current {
        f(v0, acc)?;
    }
    Ok(())
}
