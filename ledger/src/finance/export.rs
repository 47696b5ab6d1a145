//! Streamed exports: the journal, its postings and a member's statement, read a batch at a time
//! and written in chunks, so millions of rows take bounded memory; and the reports' rows.
//! Times are RFC 3339 with the programme's offset; money is a decimal string. `docs/finance.md`
//! has the column dictionary.

use super::book::Book;
use super::reports::{iso, Liability, Settlement, TrialBalance};
use crate::core::model::{describe, Amount, Scope, Transaction, TxKind};
use crate::core::types::{AccountId, MemberId, Timestamp};
use crate::error::LedgerError;
use crate::store::Snapshot;
use serde::Serialize;
use std::str::FromStr;

/// An export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(Format::Csv),
            "ndjson" => Ok(Format::Ndjson),
            _ => Err(format!("unknown format {s:?}: csv or ndjson")),
        }
    }
}

/// Bytes handed to the sink at a time.
const CHUNK: usize = 64 * 1024;

/// Writes rows of one type in `format` to a sink in chunks. The sink returns false when its
/// reader went away; writing stops there.
pub struct RowWriter<'a> {
    format: Format,
    buf: Vec<u8>,
    header: bool,
    sink: &'a mut dyn FnMut(Vec<u8>) -> bool,
    /// Rows written.
    pub rows: u64,
    open: bool,
}

impl<'a> RowWriter<'a> {
    /// A writer into `sink`.
    pub fn new(format: Format, sink: &'a mut dyn FnMut(Vec<u8>) -> bool) -> Self {
        RowWriter {
            format,
            buf: Vec::with_capacity(CHUNK + 4096),
            header: false,
            sink,
            rows: 0,
            open: true,
        }
    }

    /// Writes one row; false once the reader went away.
    pub fn row<T: Serialize>(&mut self, row: &T) -> Result<bool, LedgerError> {
        if !self.open {
            return Ok(false);
        }
        match self.format {
            Format::Ndjson => {
                serde_json::to_writer(&mut self.buf, row)
                    .map_err(|e| LedgerError::Corrupt(format!("export row: {e}")))?;
                self.buf.push(b'\n');
            }
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(!self.header)
                    .from_writer(&mut self.buf);
                w.serialize(row)
                    .map_err(|e| LedgerError::Corrupt(format!("export row: {e}")))?;
                w.flush()
                    .map_err(|e| LedgerError::Corrupt(format!("export row: {e}")))?;
                self.header = true;
            }
        }
        self.rows += 1;
        if self.buf.len() >= CHUNK {
            self.open = (self.sink)(std::mem::take(&mut self.buf));
        }
        Ok(self.open)
    }

    /// Hands over what is left.
    pub fn finish(mut self) -> u64 {
        if self.open && !self.buf.is_empty() {
            (self.sink)(std::mem::take(&mut self.buf));
        }
        self.rows
    }
}

/// A journal row: one transaction.
#[derive(Debug, Serialize)]
pub struct JournalRow {
    /// Transaction id (decimal, as the API gives it).
    pub tx: String,
    /// Commit time.
    pub at: String,
    /// What it is.
    pub kind: &'static str,
    /// `partner/ID`, `operator` or `system`.
    pub scope: String,
    /// The idempotency reference it was posted under.
    pub reference: String,
    /// The partner it concerns, if any.
    pub partner: Option<u32>,
    /// The member it concerns, if any.
    pub member: Option<u64>,
    /// Net points to members' accounts.
    pub member_points: i64,
    /// The quantity the partner sent, when a rate table priced it.
    pub quantity: Option<String>,
    /// Its unit.
    pub unit: Option<String>,
    /// Reason, operator, period or original, where the kind has one.
    pub detail: String,
}

/// A posting row.
#[derive(Debug, Serialize)]
pub struct PostingRow {
    /// Transaction id.
    pub tx: String,
    /// Commit time.
    pub at: String,
    /// The transaction's kind.
    pub kind: &'static str,
    /// The account.
    pub account: String,
    /// `points` or a currency code.
    pub asset: String,
    /// The signed amount, decimal.
    pub amount: String,
}

/// A member's statement row.
#[derive(Debug, Serialize)]
pub struct StatementRow {
    /// Transaction id.
    pub tx: String,
    /// Commit time.
    pub at: String,
    /// The transaction's kind.
    pub kind: &'static str,
    /// Its partner, if any.
    pub partner: Option<u32>,
    /// The member's points change.
    pub points: i64,
    /// The member's posted points after it.
    pub balance: i64,
    /// Reason, operator, period or original, where the kind has one.
    pub detail: String,
}

/// Which journal export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    /// One row per transaction.
    Journal,
    /// One row per posting.
    Postings,
    /// One member's transactions.
    Statement(MemberId),
}

fn detail(tx: &Transaction) -> String {
    match &tx.kind {
        TxKind::Adjust {
            reason,
            operator,
            corrects,
            ..
        } => match corrects {
            Some(c) => format!("{reason} (by {operator}; corrects {})", c.0),
            None => format!("{reason} (by {operator})"),
        },
        TxKind::Reversal { original, .. } => format!("reverses {}", original.0),
        TxKind::PeriodClosed { period, .. } => format!("closes {period}"),
        TxKind::Void { hold, .. } => format!("voids {}", hold.0),
        TxKind::Burn { hold: Some(h), .. } => format!("captures {}", h.0),
        TxKind::Redeemed(r) => format!("reward {}", r.claim.reward.0),
        TxKind::Granted(g) => format!("{:?} {}: {}", g.origin.kind, g.origin.id, g.origin.note),
        _ => String::new(),
    }
}

fn scope_name(s: &Scope) -> String {
    match s {
        Scope::Partner(p) => format!("partner/{}", p.0),
        Scope::Operator => "operator".into(),
        Scope::System => "system".into(),
    }
}

/// Streams `dataset` for transactions dated in `[from, to)` to `out`; returns the rows written.
pub fn export<S: Snapshot + ?Sized>(
    book: &Book,
    snapshot: &S,
    dataset: Dataset,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    out: &mut RowWriter<'_>,
) -> Result<u64, LedgerError> {
    let last = to.map(|t| Timestamp(t.0 - 1));
    super::for_each_dated(book, snapshot, from, last, &mut |tx| {
        let (kind, partner) = describe(&tx.kind);
        let at = iso(book, tx.at);
        let go_on = match dataset {
            Dataset::Journal => out.row(&JournalRow {
                tx: tx.id.0.to_string(),
                at,
                kind,
                scope: scope_name(&tx.key.scope),
                reference: tx.key.reference.clone(),
                partner: partner.map(|p| p.0),
                member: tx.kind.member().map(|m| m.0),
                member_points: member_points(tx, None),
                quantity: tx.pricing.as_ref().map(|p| p.quantity.to_string()),
                unit: tx.pricing.as_ref().map(|p| p.unit.clone()),
                detail: detail(tx),
            })?,
            Dataset::Postings => {
                let mut ok = true;
                for p in &tx.postings {
                    let (asset, amount) = match p.amount {
                        Amount::Points(x) => ("points".to_string(), x.0.to_string()),
                        Amount::Money(m) => (m.currency.code().to_string(), m.amount.to_string()),
                    };
                    ok = out.row(&PostingRow {
                        tx: tx.id.0.to_string(),
                        at: at.clone(),
                        kind,
                        account: p.account.to_string(),
                        asset,
                        amount,
                    })?;
                    if !ok {
                        break;
                    }
                }
                ok
            }
            Dataset::Statement(m) => match tx.member_balances.iter().find(|b| b.member == m) {
                Some(b) => out.row(&StatementRow {
                    tx: tx.id.0.to_string(),
                    at,
                    kind,
                    partner: partner.map(|p| p.0),
                    points: member_points(tx, Some(m)),
                    balance: b.posted.0,
                    detail: detail(tx),
                })?,
                None => true,
            },
        };
        Ok(go_on)
    })?;
    Ok(out.rows)
}

fn member_points(tx: &Transaction, only: Option<MemberId>) -> i64 {
    tx.postings
        .iter()
        .filter_map(|p| match (p.account, p.amount) {
            (AccountId::Member(m), Amount::Points(x)) if only.is_none_or(|o| o == m) => Some(x.0),
            _ => None,
        })
        .sum()
}

/// A trial balance row: one account and asset.
#[derive(Debug, Serialize)]
pub struct TrialRow<'a> {
    /// The account.
    pub account: &'a str,
    /// `points` or a currency code.
    pub asset: &'a str,
    /// Its balance.
    pub balance: String,
}

/// Writes a trial balance's rows.
pub fn trial_rows(tb: &TrialBalance, out: &mut RowWriter<'_>) -> Result<(), LedgerError> {
    for l in &tb.lines {
        out.row(&TrialRow {
            account: &l.account,
            asset: "points",
            balance: l.points.to_string(),
        })?;
        for (c, v) in &l.money {
            out.row(&TrialRow {
                account: &l.account,
                asset: c,
                balance: v.to_string(),
            })?;
        }
    }
    Ok(())
}

/// A liability row: one group of one dimension, in one currency.
#[derive(Debug, Serialize)]
pub struct LiabilityRow<'a> {
    /// `issuer`, `cohort`, `expiry` or `total`.
    pub dimension: &'a str,
    /// The group.
    pub group: &'a str,
    /// Points outstanding.
    pub points: i64,
    /// The currency of the values.
    pub currency: &'a str,
    /// Issuance value.
    pub issuance_value: String,
    /// Redemption value.
    pub redemption_value: String,
    /// Expected cost.
    pub expected_cost: String,
}

/// Writes a liability report's rows.
pub fn liability_rows(l: &Liability, out: &mut RowWriter<'_>) -> Result<(), LedgerError> {
    let dims = [
        ("issuer", &l.by_issuer),
        ("cohort", &l.by_cohort),
        ("expiry", &l.by_expiry),
    ];
    let total = [l.total.clone()];
    for (dim, lines) in dims
        .into_iter()
        .map(|(d, v)| (d, v.as_slice()))
        .chain(std::iter::once(("total", total.as_slice())))
    {
        for line in lines {
            let mut currencies: Vec<&String> = line
                .issuance_value
                .keys()
                .chain(line.redemption_value.keys())
                .collect();
            currencies.sort();
            currencies.dedup();
            let get = |m: &std::collections::BTreeMap<String, rust_decimal::Decimal>, c: &str| {
                m.get(c)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "0".into())
            };
            for c in currencies {
                out.row(&LiabilityRow {
                    dimension: dim,
                    group: &line.group,
                    points: line.points,
                    currency: c,
                    issuance_value: get(&line.issuance_value, c),
                    redemption_value: get(&line.redemption_value, c),
                    expected_cost: get(&line.expected_cost, c),
                })?;
            }
        }
    }
    Ok(())
}

/// Writes settlement statements' rows.
pub fn settlement_rows(s: &[Settlement], out: &mut RowWriter<'_>) -> Result<(), LedgerError> {
    for r in s {
        out.row(r)?;
    }
    Ok(())
}
