//! Finance: the trial balance at any instant, the points liability and its value, breakage,
//! IFRS 15 revenue, partner settlement, closed periods with their checkpoints, reconciliation
//! and streamed exports. `docs/finance.md` has the accounting model and each report.
//!
//! Everything is derived from the journal: [`Finance`] folds committed batches, in commit order
//! on either write path, into a [`Book`] of incrementally kept aggregates, and every report
//! reads one store snapshot (the book is first brought up to it).

pub mod book;
pub mod breakage;
pub mod export;
pub mod reconcile;
pub mod reports;
pub mod revenue;

pub use book::Book;

use crate::core::model::{describe, Scope, Transaction, TxKind};
use crate::core::types::{MemberId, PartnerId, Timestamp};
use crate::error::LedgerError;
use crate::keys;
use crate::store::{prefix_end, Snapshot, WriteSet};
use breakage::Override;
use std::sync::{Mutex, MutexGuard};

/// The finance book of a running ledger, brought up to date on demand, and saved to the store
/// now and then so a new process starts from the saved book and folds only what came after.
pub struct Finance {
    book: Mutex<Book>,
    tz: chrono_tz::Tz,
    /// Whether the saved book was looked for yet, and the transactions folded at the last save
    /// or load.
    saved: Mutex<(bool, u64)>,
}

/// Transactions folded since the last save after which a report saves the book.
pub const SAVE_EVERY: u64 = 1_000_000;

/// Bytes per saved chunk (within FoundationDB's 100,000-byte values).
const CHUNK_BYTES: usize = 90_000;
/// Chunks per commit when saving (within FoundationDB's 10,000,000-byte transactions).
const CHUNKS_PER_COMMIT: usize = 64;

/// What `F S` says of the saved book.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    /// Its chunks' generation (random, so savers on two gateways never mix chunks).
    pub generation: u64,
    /// How many chunks.
    pub chunks: u32,
    /// The time zone of its days and months.
    pub tz: String,
    /// Transactions it folded.
    pub transactions: u64,
}

impl Finance {
    /// An empty book whose days and months are those of `tz`.
    pub fn new(tz: chrono_tz::Tz) -> Finance {
        Finance {
            book: Mutex::new(Book::new(tz)),
            tz,
            saved: Mutex::new((false, 0)),
        }
    }

    /// The time zone of its days and months.
    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.tz
    }

    /// The book, with every batch `snapshot` holds folded in. The first call starts from the
    /// saved book, if there is one in this time zone.
    pub fn book_at<S: Snapshot + ?Sized>(
        &self,
        snapshot: &S,
    ) -> Result<MutexGuard<'_, Book>, LedgerError> {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
            if !saved.0 {
                saved.0 = true;
                if let Some(b) = load(snapshot, self.tz)? {
                    saved.1 = b.transactions;
                    *book = b;
                }
            }
        }
        catch_up(&mut book, snapshot)?;
        Ok(book)
    }

    /// [`Finance::book_at`], then the book saved to `store` when [`SAVE_EVERY`] transactions
    /// were folded since it was last saved or loaded.
    pub fn book_saving<St: crate::store::Store>(
        &self,
        store: &St,
        snapshot: &St::Snapshot,
    ) -> Result<MutexGuard<'_, Book>, LedgerError> {
        let book = self.book_at(snapshot)?;
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        if book.transactions >= saved.1 + SAVE_EVERY {
            save(store, &book)?;
            saved.1 = book.transactions;
        }
        Ok(book)
    }
}

/// Folds every batch of `snapshot` after the book's position into it.
pub fn catch_up<S: Snapshot + ?Sized>(book: &mut Book, snapshot: &S) -> Result<u64, LedgerError> {
    let after = book.position.clone();
    let mut n = 0;
    crate::journal::for_each_batch_after(snapshot, after.as_deref(), &mut |position, _, txs| {
        book.apply_batch(position, &txs, &mut |id| {
            crate::journal::find_transaction(snapshot, id)
                .ok()
                .flatten()
        });
        n += 1;
        Ok(true)
    })?;
    Ok(n)
}

/// How far apart the cluster path's writers' clocks may be, at most, for a journal scan that
/// stops early: a scan for what is dated up to `t` stops at the first batch dated entirely
/// after `t` plus this. (The single writer's times never go back; the cluster path's system
/// lease already assumes clocks agree within seconds.)
pub const CLOCK_SKEW_MS: i64 = 600_000;

/// Calls `f` with every transaction dated in `[from, to]` (either end open when `None`), in
/// commit order: from the first batch of `from`'s day, to the first batch dated entirely
/// after `to` and the clock skew. `f` returns false to stop.
pub fn for_each_dated<S: Snapshot + ?Sized>(
    book: &Book,
    snapshot: &S,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    f: &mut dyn FnMut(&Transaction) -> Result<bool, LedgerError>,
) -> Result<(), LedgerError> {
    let start = match from {
        Some(t) => match book.position_for_day(book.day(t)) {
            Some(p) => before(p),
            // Nothing in the book is dated so late: only batches it has not folded yet.
            None => book.position.clone(),
        },
        None => None,
    };
    let stop = to.map(|t| t.0.saturating_add(CLOCK_SKEW_MS));
    crate::journal::for_each_batch_after(snapshot, start.as_deref(), &mut |_, _, txs| {
        if let Some(s) = stop {
            if txs.iter().all(|t| t.at.0 > s) {
                return Ok(false);
            }
        }
        for tx in &txs {
            if from.is_some_and(|f| tx.at < f) || to.is_some_and(|t| tx.at > t) {
                continue;
            }
            if !f(tx)? {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// The position just before `p` (same length, one less), so a read "after" it starts at `p`;
/// `None` before the first.
pub(crate) fn before(p: &[u8]) -> Option<Vec<u8>> {
    let mut v = p.to_vec();
    for b in v.iter_mut().rev() {
        if *b > 0 {
            *b -= 1;
            return Some(v);
        }
        *b = 0xff;
    }
    None
}

/// Saves `book` to `store`: its chunks under a new generation, then, in one commit, `F S`
/// naming it and every other generation's chunks cleared (another gateway's save in flight
/// included: its reader then finds chunks missing and folds from the journal instead).
pub fn save<St: crate::store::Store>(store: &St, book: &Book) -> Result<Saved, LedgerError> {
    use crate::store::Durability;
    let bytes = postcard::to_allocvec(book)
        .map_err(|e| LedgerError::Corrupt(format!("finance book: {e}")))?;
    let generation = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(book.transactions);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
    for (g, group) in chunks.chunks(CHUNKS_PER_COMMIT).enumerate() {
        let mut w = WriteSet::default();
        for (i, c) in group.iter().enumerate() {
            let n = (g * CHUNKS_PER_COMMIT + i) as u32;
            w.set(&keys::book_chunk(generation, n), c);
        }
        store.commit(w, Durability::Buffered)?;
    }
    let saved = Saved {
        generation,
        chunks: chunks.len() as u32,
        tz: book.time_zone().name().to_string(),
        transactions: book.transactions,
    };
    let mut w = WriteSet::default();
    w.set_owned(
        keys::book_saved(),
        postcard::to_allocvec(&saved).expect("a small record encodes"),
    );
    let all = keys::book_chunks(0);
    let all = &all[..2];
    let mine = keys::book_chunks(generation);
    w.clear_range(all, &mine);
    w.clear_range(&prefix_end(&mine), &prefix_end(all));
    store.commit(w, Durability::Sync)?;
    Ok(saved)
}

/// The saved book in `snapshot`, if there is one in time zone `tz`.
pub fn load<S: Snapshot + ?Sized>(
    snapshot: &S,
    tz: chrono_tz::Tz,
) -> Result<Option<Book>, LedgerError> {
    let Some(v) = snapshot.get(&keys::book_saved())? else {
        return Ok(None);
    };
    let saved: Saved = postcard::from_bytes(&v)
        .map_err(|e| LedgerError::Corrupt(format!("saved finance book record: {e}")))?;
    if saved.tz != tz.name() {
        return Ok(None);
    }
    let prefix = keys::book_chunks(saved.generation);
    let mut bytes = Vec::new();
    let mut n = 0u32;
    snapshot.scan(&prefix, &prefix_end(&prefix), &mut |_, v| {
        bytes.extend_from_slice(v);
        n += 1;
        true
    })?;
    // A save cleared by another gateway's, or one that does not decode: fold the journal.
    if n != saved.chunks {
        tracing::warn!(
            generation = saved.generation,
            chunks = n,
            of = saved.chunks,
            "saved finance book incomplete; folding the journal"
        );
        return Ok(None);
    }
    match postcard::from_bytes::<Book>(&bytes) {
        Ok(mut book) => {
            book.set_time_zone(tz);
            Ok(Some(book))
        }
        Err(e) => {
            tracing::warn!(error = %e, "saved finance book unreadable; folding the journal");
            Ok(None)
        }
    }
}

/// Every breakage override, oldest first.
pub fn overrides<S: Snapshot + ?Sized>(snapshot: &S) -> Result<Vec<Override>, LedgerError> {
    let prefix = keys::breakage_overrides();
    snapshot
        .range(&prefix, &prefix_end(&prefix), usize::MAX, false)?
        .into_iter()
        .map(|(_, v)| {
            serde_json::from_slice(&v)
                .map_err(|e| LedgerError::Corrupt(format!("breakage override: {e}")))
        })
        .collect()
}

/// The write that records `o` (the `n`-th override made in its millisecond).
pub fn override_write(o: &Override, n: u32) -> WriteSet {
    let mut w = WriteSet::default();
    w.set_owned(
        keys::breakage_override(o.at, n),
        serde_json::to_vec(o).expect("an override serialises"),
    );
    w
}

/// The partner's transactions dated in `[from, to)`, as reconciliation compares them;
/// `member_ref` gives the partner's reference of a member.
pub fn ledger_rows<S: Snapshot + ?Sized>(
    book: &Book,
    snapshot: &S,
    partner: PartnerId,
    from: Timestamp,
    to: Timestamp,
    member_ref: &mut dyn FnMut(MemberId) -> Option<String>,
) -> Result<Vec<reconcile::LedgerRow>, LedgerError> {
    let mut rows = Vec::new();
    let last = Timestamp(to.0 - 1);
    for_each_dated(book, snapshot, Some(from), Some(last), &mut |tx| {
        if tx.key.scope == Scope::Partner(partner)
            && matches!(
                tx.kind,
                TxKind::Earn { .. } | TxKind::Burn { .. } | TxKind::Reversal { .. }
            )
        {
            rows.push(ledger_row(book, tx, member_ref));
        }
        Ok(true)
    })?;
    Ok(rows)
}

fn ledger_row(
    book: &Book,
    tx: &Transaction,
    member_ref: &mut dyn FnMut(MemberId) -> Option<String>,
) -> reconcile::LedgerRow {
    let points = tx
        .postings
        .iter()
        .filter_map(|p| match (p.account, p.amount) {
            (crate::core::types::AccountId::Member(_), crate::core::model::Amount::Points(x)) => {
                Some(x.0)
            }
            _ => None,
        })
        .sum();
    reconcile::LedgerRow {
        reference: tx.key.reference.clone(),
        tx: tx.id.0.to_string(),
        kind: describe(&tx.kind).0,
        at: reports::iso(book, tx.at),
        member_reference: tx.kind.member().and_then(member_ref),
        amount: tx.pricing.as_ref().map(|p| p.quantity),
        points,
    }
}
