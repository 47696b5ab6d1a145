//! Reconciliation of a partner's own record of a period with the ledger.
//!
//! The partner's file is CSV with a header row and the columns `reference`, `time`,
//! `member_reference`, `amount`, `points` (`amount` or `points` may be empty; signs: earns and
//! burn reversals positive, burns and earn reversals negative, as the points move for the
//! member). Rows are matched on the partner's reference, the one it posted under.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// A row of the partner's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileRow {
    /// The partner's reference.
    pub reference: String,
    /// When, as the partner wrote it.
    #[serde(default)]
    pub time: String,
    /// The partner's member reference.
    #[serde(default)]
    pub member_reference: String,
    /// The amount the partner sent (money or quantity), if given.
    #[serde(default)]
    pub amount: Option<Decimal>,
    /// The points, if given.
    #[serde(default)]
    pub points: Option<i64>,
}

/// A ledger transaction of the partner, as reconciliation compares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerRow {
    /// The partner's reference.
    pub reference: String,
    /// The transaction.
    pub tx: String,
    /// Its kind.
    pub kind: &'static str,
    /// When it was posted (RFC 3339).
    pub at: String,
    /// The partner's member reference, where the partner has one.
    pub member_reference: Option<String>,
    /// The amount the partner sent, when a rate table priced it.
    pub amount: Option<Decimal>,
    /// Points to the member (signed).
    pub points: i64,
}

/// A matched reference whose fields differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Difference {
    /// The reference.
    pub reference: String,
    /// The ledger transaction.
    pub tx: String,
    /// `points`, `amount` or `member_reference`.
    pub field: &'static str,
    /// The file's value.
    pub file: String,
    /// The ledger's value.
    pub ledger: String,
}

/// The result, as the partner reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reconciliation {
    /// Rows in the file.
    pub file_rows: usize,
    /// Ledger transactions of the partner in the period.
    pub ledger_rows: usize,
    /// References in both, every field equal.
    pub matched: Vec<String>,
    /// File rows the ledger does not have.
    pub missing_from_ledger: Vec<FileRow>,
    /// Ledger transactions the file does not have.
    pub missing_from_file: Vec<LedgerRow>,
    /// References in both whose fields differ, one entry per field.
    pub differences: Vec<Difference>,
}

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct FileError {
    /// The line (1 is the header).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// Rows at most in one file.
pub const FILE_ROWS_MAX: usize = 1_000_000;

/// Parses a partner's file.
pub fn parse(bytes: &[u8]) -> Result<Vec<FileRow>, FileError> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = r
        .headers()
        .map_err(|e| FileError {
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    if !headers.iter().any(|h| h == "reference") {
        return Err(FileError {
            line: 1,
            message: "the header must name a `reference` column (and `time`, `member_reference`, `amount`, `points`)".into(),
        });
    }
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for (i, rec) in r.deserialize::<FileRow>().enumerate() {
        let line = i as u64 + 2;
        let row = rec.map_err(|e| FileError {
            line,
            message: e.to_string(),
        })?;
        if row.reference.is_empty() {
            return Err(FileError {
                line,
                message: "empty reference".into(),
            });
        }
        if !seen.insert(row.reference.clone()) {
            return Err(FileError {
                line,
                message: format!("reference {:?} appears twice", row.reference),
            });
        }
        if rows.len() == FILE_ROWS_MAX {
            return Err(FileError {
                line,
                message: format!("at most {FILE_ROWS_MAX} rows"),
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Compares `file` with `ledger`.
pub fn reconcile(file: Vec<FileRow>, ledger: Vec<LedgerRow>) -> Reconciliation {
    let (file_rows, ledger_rows) = (file.len(), ledger.len());
    let mut by_ref: BTreeMap<String, LedgerRow> = ledger
        .into_iter()
        .map(|l| (l.reference.clone(), l))
        .collect();
    let mut out = Reconciliation {
        file_rows,
        ledger_rows,
        matched: Vec::new(),
        missing_from_ledger: Vec::new(),
        missing_from_file: Vec::new(),
        differences: Vec::new(),
    };
    for f in file {
        let Some(l) = by_ref.remove(&f.reference) else {
            out.missing_from_ledger.push(f);
            continue;
        };
        let mut differs = false;
        let mut diff = |field: &'static str, file: String, ledger: String| {
            differs = true;
            out.differences.push(Difference {
                reference: f.reference.clone(),
                tx: l.tx.clone(),
                field,
                file,
                ledger,
            });
        };
        if let Some(p) = f.points.filter(|p| *p != l.points) {
            diff("points", p.to_string(), l.points.to_string());
        }
        if let Some(a) = f.amount {
            let same = l.amount.is_some_and(|b| b.normalize() == a.normalize());
            if !same {
                diff(
                    "amount",
                    a.to_string(),
                    l.amount.map(|b| b.to_string()).unwrap_or_default(),
                );
            }
        }
        if !f.member_reference.is_empty()
            && l.member_reference.as_deref() != Some(f.member_reference.as_str())
        {
            diff(
                "member_reference",
                f.member_reference.clone(),
                l.member_reference.clone().unwrap_or_default(),
            );
        }
        if !differs {
            out.matched.push(f.reference.clone());
        }
    }
    out.missing_from_file = by_ref.into_values().collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(reference: &str, points: i64, amount: Option<i64>, member: &str) -> LedgerRow {
        LedgerRow {
            reference: reference.into(),
            tx: format!("tx-{reference}"),
            kind: "earn",
            at: String::new(),
            member_reference: Some(member.into()),
            amount: amount.map(Decimal::from),
            points,
        }
    }

    #[test]
    fn every_kind_of_difference_is_listed() {
        let file = parse(
            b"reference,time,member_reference,amount,points\n\
              r1,2026-10-01T10:00:00Z,card-1,10.00,100\n\
              r2,2026-10-02T10:00:00Z,card-2,20,200\n\
              r3,2026-10-03T10:00:00Z,card-3,30,300\n\
              r4,2026-10-04T10:00:00Z,card-9,40,400\n\
              r5,2026-10-05T10:00:00Z,card-5,50,\n",
        )
        .expect("file");
        let result = reconcile(
            file,
            vec![
                ledger("r1", 100, Some(10), "card-1"),
                ledger("r2", 250, Some(20), "card-2"),
                ledger("r4", 400, Some(40), "card-4"),
                ledger("r5", 500, Some(55), "card-5"),
                ledger("r6", 600, Some(60), "card-6"),
            ],
        );
        assert_eq!(result.matched, vec!["r1".to_string()]);
        assert_eq!(
            result
                .missing_from_ledger
                .iter()
                .map(|r| r.reference.as_str())
                .collect::<Vec<_>>(),
            vec!["r3"]
        );
        assert_eq!(
            result
                .missing_from_file
                .iter()
                .map(|r| r.reference.as_str())
                .collect::<Vec<_>>(),
            vec!["r6"]
        );
        let diffs: Vec<(&str, &str, &str, &str)> = result
            .differences
            .iter()
            .map(|d| {
                (
                    d.reference.as_str(),
                    d.field,
                    d.file.as_str(),
                    d.ledger.as_str(),
                )
            })
            .collect();
        assert_eq!(
            diffs,
            vec![
                ("r2", "points", "200", "250"),
                ("r4", "member_reference", "card-9", "card-4"),
                ("r5", "amount", "50", "55"),
            ]
        );
        assert_eq!((result.file_rows, result.ledger_rows), (5, 5));
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line() {
        let e = parse(b"reference,points\nr1,10\nr1,11\n").expect_err("duplicate");
        assert_eq!(e.line, 3);
        let e = parse(b"reference,points\nr1,ten\n").expect_err("not a number");
        assert_eq!(e.line, 2);
        let e = parse(b"ref,points\nr1,10\n").expect_err("no reference column");
        assert_eq!(e.line, 1);
    }
}
