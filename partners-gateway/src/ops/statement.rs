//! Statements as a caller may see them: operators see every line; a partner sees the movements
//! it caused (its earns, burns, holds, captures, voids, hold expiries and reversals), paged so
//! that a page is short only at the end.

use super::error::{Kind, OpError};
use ledger::TxKind;

/// One statement line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The transaction.
    pub tx: ledger::TxId,
    /// When it committed.
    pub at: ledger::Timestamp,
    /// `earn`, `burn`, `hold`, `capture`, `void`, `expiry`, `reversal`, `transfer`,
    /// `adjustment`, `enrol`.
    pub kind: String,
    /// Change to posted points.
    pub points: i64,
    /// Change to held points.
    pub held: i64,
    /// Posted points after it.
    pub balance_after: i64,
    /// Held points after it.
    pub held_after: i64,
}

/// Most statement lines one request reads while it looks for the lines a partner may see; a
/// page that reaches it ends early, with `next` set.
pub const STATEMENT_SCAN_MAX: usize = 10_000;

/// Whose lines a statement shows.
#[derive(Debug, Clone, Copy)]
pub enum StatementOf {
    /// Everything (operators).
    All,
    /// The movements this partner caused: its earns, burns, holds, captures, voids and hold
    /// expiries, and reversals of its transactions.
    Partner(ledger::PartnerId),
}

/// A page of member `m`'s statement, newest first, as `of` may see it: up to `limit` lines
/// older than `before`. Lines the caller may not see are skipped without ending the page, so
/// a page is short only at the end of the statement (or after [`STATEMENT_SCAN_MAX`] lines).
pub fn page(
    ledger: &ledger::Ledger<ledger::store::Engine>,
    m: ledger::MemberId,
    of: StatementOf,
    before: Option<ledger::TxId>,
    limit: usize,
) -> Result<(Vec<Line>, Option<ledger::TxId>), OpError> {
    if let Some(id) = before {
        // A cursor must be a line of this member's statement; anything else is the caller's
        // mistake, not a corrupt store.
        let known = ledger.transaction(id)?;
        if !known.is_some_and(|tx| tx.members().any(|x| x == m)) {
            return Err(OpError::new(
                Kind::UnknownTransaction,
                "before is not a line of this statement; pass a previous page's next",
            ));
        }
    }
    // One line more than asked, so that `next` is set only when a further line exists.
    let mut lines: Vec<(ledger::TxId, Line)> = Vec::with_capacity(limit + 1);
    let mut cursor = before;
    let mut scanned = 0;
    while lines.len() <= limit {
        let want = (limit + 1 - lines.len()).clamp(1, ledger::STATEMENT_PAGE_MAX);
        let page = ledger.statement(m, cursor, want)?;
        for e in &page.entries {
            scanned += 1;
            cursor = Some(e.tx);
            if let Some(line) = statement_line(ledger, e, of)? {
                lines.push((e.tx, line));
            }
        }
        if page.next.is_none() {
            break;
        }
        if scanned >= STATEMENT_SCAN_MAX && lines.len() <= limit {
            let lines = lines.into_iter().map(|(_, l)| l).collect();
            return Ok((lines, cursor));
        }
    }
    let next = if lines.len() > limit {
        lines.truncate(limit);
        lines.last().map(|(id, _)| *id)
    } else {
        None
    };
    Ok((lines.into_iter().map(|(_, l)| l).collect(), next))
}

/// The line `e` becomes for `of`, or `None` when `of` may not see it.
fn statement_line(
    ledger: &ledger::Ledger<ledger::store::Engine>,
    e: &ledger::codec::StatementEntry,
    of: StatementOf,
) -> Result<Option<Line>, OpError> {
    let (mut kind, mut partner) = (e.kind.clone(), e.partner);
    let mut held = 0;
    if matches!(e.kind.as_str(), "hold" | "capture" | "void") {
        let tx = ledger.transaction(e.tx)?.ok_or_else(|| {
            OpError::new(
                Kind::Internal,
                format!("statement line {} has no transaction", e.tx),
            )
        })?;
        match &tx.kind {
            TxKind::Hold { points, .. } => held = points.0,
            TxKind::Burn {
                points, released, ..
            } => held = -(points.0 + released.0),
            TxKind::Void {
                hold, points, end, ..
            } => {
                held = -points.0;
                if *end == ledger::core::model::HoldEnd::Expired {
                    kind = "expiry".into();
                }
                // A void names its hold; the hold names the partner.
                partner = match ledger.transaction(*hold)?.map(|h| h.kind) {
                    Some(TxKind::Hold { partner, .. }) => Some(partner),
                    _ => None,
                };
            }
            _ => {}
        }
    }
    if let StatementOf::Partner(p) = of {
        if partner != Some(p) {
            return Ok(None);
        }
    }
    Ok(Some(Line {
        tx: e.tx,
        at: e.at,
        kind,
        points: e.points.0,
        held,
        balance_after: e.balance_after.0,
        held_after: e.held_after.0,
    }))
}
