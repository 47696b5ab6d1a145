//! Finance for the finance role and operators: reports on one store snapshot of the live
//! ledger, period close, breakage overrides, reconciliation of a partner's file and streamed
//! exports. The reports are the ledger's (`ledger::finance`); this module picks the programme's
//! time zone, checks inputs and names what it could not find.

use super::error::{Kind, OpError};
use super::Ops;
use ledger::finance::breakage::{Estimate, Override};
use ledger::finance::export::{Dataset, Format, RowWriter};
use ledger::finance::reconcile::Reconciliation;
use ledger::finance::reports::{
    self, ClosedPeriod, Liability, RevenueSchedule, Settlement, TrialBalance,
};
use ledger::finance::Book;
use ledger::store::Store;
use ledger::{Command, IdemKey, MemberId, PartnerId, Timestamp};
use rust_decimal::Decimal;

/// Months after which a cohort counts as mature, unless asked otherwise.
pub const MATURITY_MONTHS_DEFAULT: u32 = 24;

/// The programme's time zone (its settings; UTC before any).
fn time_zone(ops: &Ops) -> chrono_tz::Tz {
    ops.registry
        .programme_settings()
        .and_then(|s| s.time_zone.parse().ok())
        .unwrap_or(chrono_tz::Tz::UTC)
}

/// Runs `f` on the book brought up to one snapshot of the live ledger. Blocking.
fn with_book<T>(
    ops: &Ops,
    f: impl FnOnce(
        &Book,
        &<ledger::store::Engine as Store>::Snapshot,
        &[Override],
    ) -> Result<T, OpError>,
) -> Result<T, OpError> {
    let snap = ops.ledger.read_snapshot()?;
    let finance = ops.ledger.finance(Some(time_zone(ops)));
    let book = finance.book_saving(ops.ledger.store(), &snap)?;
    let overrides = ledger::finance::overrides(&snap)?;
    f(&book, &snap, &overrides)
}

/// A month named `yyyy-mm`, as `yyyymm`.
pub fn parse_month(s: &str) -> Result<u32, OpError> {
    let bad = || {
        OpError::new(
            Kind::InvalidRequest,
            format!("{s:?} is not a month (yyyy-mm)"),
        )
    };
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    let (y, m): (u32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if y.to_string().len() > 4 || y > 9999 || !(1..=12).contains(&m) || s.len() != 7 {
        return Err(bad());
    }
    Ok(y * 100 + m)
}

fn this_month(book: &Book) -> u32 {
    book.month(Timestamp::now())
}

/// The trial balance at `at` (now when `None`). Blocking.
pub fn trial_balance(ops: &Ops, at: Option<Timestamp>) -> Result<TrialBalance, OpError> {
    with_book(ops, |book, snap, _| {
        Ok(reports::trial_balance(
            book,
            snap,
            at.unwrap_or_else(Timestamp::now),
        )?)
    })
}

/// The liability now, valued with the breakage estimate now. Blocking.
pub fn liability(ops: &Ops, maturity_months: u32) -> Result<Liability, OpError> {
    with_book(ops, |book, _, overrides| {
        let now = Timestamp::now();
        let rate = reports::breakage_at(book, book.month(now), maturity_months, overrides).rate;
        Ok(reports::liability(book, now, book.buckets(), rate))
    })
}

/// The breakage estimate at the end of `month` (this month when `None`). Blocking.
pub fn breakage(ops: &Ops, month: Option<u32>, maturity_months: u32) -> Result<Estimate, OpError> {
    with_book(ops, |book, _, overrides| {
        Ok(reports::breakage_at(
            book,
            month.unwrap_or_else(|| this_month(book)),
            maturity_months,
            overrides,
        ))
    })
}

/// Longest override reason, in characters.
pub const REASON_CHARS_MAX: usize = 500;

/// Records an operator's override of the breakage estimate (for every cohort, or one). Blocking.
pub fn set_breakage_override(
    ops: &Ops,
    rate: Decimal,
    cohort: Option<u32>,
    reason: &str,
    author: &str,
) -> Result<Override, OpError> {
    if rate < Decimal::ZERO || rate > Decimal::ONE {
        return Err(OpError::new(
            Kind::InvalidAmount,
            "rate is a share between 0 and 1",
        ));
    }
    if reason.trim().is_empty() || reason.chars().count() > REASON_CHARS_MAX {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("reason must be 1 to {REASON_CHARS_MAX} characters, not all spaces"),
        ));
    }
    let o = Override {
        rate,
        cohort,
        author: author.to_string(),
        reason: reason.to_string(),
        at: Timestamp::now().0,
    };
    let n = ledger::finance::overrides(&ops.ledger.read_snapshot()?)?
        .iter()
        .filter(|x| x.at == o.at)
        .count() as u32;
    ops.ledger
        .store()
        .commit(
            ledger::finance::override_write(&o, n),
            ledger::store::Durability::Sync,
        )
        .map_err(OpError::from)?;
    Ok(o)
}

/// The revenue schedule per currency through `month` (this month when `None`). Blocking.
pub fn revenue(
    ops: &Ops,
    month: Option<u32>,
    maturity_months: u32,
) -> Result<Vec<RevenueSchedule>, OpError> {
    with_book(ops, |book, _, overrides| {
        Ok(reports::revenue(
            book,
            month.unwrap_or_else(|| this_month(book)),
            maturity_months,
            overrides,
        ))
    })
}

/// Settlement statements for `month`, of one partner or every partner. Blocking.
pub fn settlements(
    ops: &Ops,
    month: u32,
    partner: Option<PartnerId>,
) -> Result<Vec<Settlement>, OpError> {
    if let Some(p) = partner {
        ops.registry
            .partner(p)
            .ok_or_else(|| OpError::new(Kind::UnknownPartner, format!("no partner {}", p.0)))?;
    }
    with_book(ops, |book, _, _| {
        Ok(reports::settlements(book, month)
            .into_iter()
            .filter(|s| partner.is_none_or(|p| p.0 == s.partner))
            .collect())
    })
}

/// A closed period, as listed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PeriodSummary {
    /// The period's name (`yyyy-mm`).
    pub period: String,
    /// Its start and end (exclusive), RFC 3339.
    pub from: String,
    /// See `from`.
    pub through: String,
    /// The close transaction's id.
    pub close_tx: String,
    /// The chain checkpoint at the close (`POSITION:LINK`), for `ledger verify --checkpoint`.
    pub checkpoint: Option<String>,
}

/// Every closed period, oldest first. Blocking.
pub fn periods(ops: &Ops) -> Result<Vec<PeriodSummary>, OpError> {
    with_book(ops, |book, snap, _| {
        book.closes
            .iter()
            .map(|c| {
                let checkpoint = ledger::finance::reports::checkpoint_at(snap, &c.position)?;
                Ok(PeriodSummary {
                    period: c.period.clone(),
                    from: reports::iso(book, c.from),
                    through: reports::iso(book, c.through),
                    close_tx: c.tx.0.to_string(),
                    checkpoint,
                })
            })
            .collect()
    })
}

/// The final reports of closed period `period`. Blocking.
pub fn closed_period(
    ops: &Ops,
    period: &str,
    maturity_months: u32,
) -> Result<ClosedPeriod, OpError> {
    with_book(ops, |book, snap, overrides| {
        let c = book
            .closes
            .iter()
            .find(|c| c.period == period)
            .ok_or_else(|| {
                OpError::new(Kind::NotFound, format!("period {period} is not closed"))
            })?;
        Ok(reports::closed_period(
            book,
            snap,
            c,
            maturity_months,
            overrides,
        )?)
    })
}

/// Closes month `period` (`yyyy-mm`, in the programme's time zone), and every month before it:
/// a ledger command, so no transaction is dated inside it afterwards, on any gateway. A retry
/// of the same close answers as the first did.
pub async fn close_period(ops: &Ops, period: &str, operator: &str) -> Result<(), OpError> {
    let month = parse_month(period)?;
    let through = Book::new(time_zone(ops)).month_start(Book::next_month(month));
    let receipt = ops
        .ledger
        .execute(Command::ClosePeriod {
            key: IdemKey::operator(format!("close/{period}")),
            period: period.to_string(),
            through,
        })
        .await?;
    tracing::info!(period, operator, tx = receipt.tx.id.0, "period closed");
    Ok(())
}

/// Compares partner `partner`'s file for month `month` with the ledger. Blocking.
pub fn reconcile(
    ops: &Ops,
    partner: PartnerId,
    month: u32,
    csv: &str,
) -> Result<Reconciliation, OpError> {
    ops.registry
        .partner(partner)
        .ok_or_else(|| OpError::new(Kind::UnknownPartner, format!("no partner {}", partner.0)))?;
    let file = ledger::finance::reconcile::parse(csv.as_bytes())
        .map_err(|e| OpError::new(Kind::FileInvalid, e.to_string()))?;
    with_book(ops, |book, snap, _| {
        let from = book.month_start(month);
        let to = book.month_start(Book::next_month(month));
        let mut failure = None;
        let rows = ledger::finance::ledger_rows(
            book,
            snap,
            partner,
            from,
            to,
            &mut |m: MemberId| match ops.registry.reference_of(partner, m) {
                Ok(r) => r,
                Err(e) => {
                    failure = Some(e);
                    None
                }
            },
        )?;
        if let Some(e) = failure {
            return Err(super::partner::registry_error(e));
        }
        Ok(ledger::finance::reconcile::reconcile(file, rows))
    })
}

/// What an export covers.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// `journal`, `postings`, `statement`, `trial-balance`, `liability` or `settlements`.
    pub dataset: String,
    /// CSV or NDJSON.
    pub format: Format,
    /// Transactions dated from (journal, postings, statement).
    pub from: Option<Timestamp>,
    /// ... to (exclusive).
    pub to: Option<Timestamp>,
    /// The member (statement).
    pub member: Option<MemberId>,
    /// The month (settlements), or the instant (trial balance, as `to`).
    pub month: Option<u32>,
}

/// Checks an export request before anything is streamed.
pub fn check_export(ops: &Ops, r: &ExportRequest) -> Result<(), OpError> {
    match r.dataset.as_str() {
        "journal" | "postings" | "trial-balance" | "liability" => Ok(()),
        "statement" => {
            let m = r.member.ok_or_else(|| {
                // No member named is no statement to find: 404, as for an unknown member.
                OpError::new(Kind::UnknownMember, "a statement export names its member")
            })?;
            match ops.ledger.balance(m)? {
                Some(_) => Ok(()),
                None => Err(OpError::new(Kind::UnknownMember, "no such member")),
            }
        }
        "settlements" => Ok(()),
        other => Err(OpError::new(
            Kind::NotFound,
            format!("no dataset {other:?}: journal, postings, statement, trial-balance, liability or settlements"),
        )),
    }
}

/// Streams the export to `sink` in chunks; stops when `sink` returns false. Blocking.
pub fn export(
    ops: &Ops,
    r: &ExportRequest,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<u64, OpError> {
    with_book(ops, |book, snap, overrides| {
        let mut out = RowWriter::new(r.format, sink);
        let journal = |d: Dataset, out: &mut RowWriter<'_>| {
            ledger::finance::export::export(book, snap, d, r.from, r.to, out)
        };
        match r.dataset.as_str() {
            "journal" => {
                journal(Dataset::Journal, &mut out)?;
            }
            "postings" => {
                journal(Dataset::Postings, &mut out)?;
            }
            "statement" => {
                let m = r.member.unwrap_or(MemberId(0));
                journal(Dataset::Statement(m), &mut out)?;
            }
            "trial-balance" => {
                let tb = reports::trial_balance(book, snap, r.to.unwrap_or_else(Timestamp::now))?;
                ledger::finance::export::trial_rows(&tb, &mut out)?;
            }
            "liability" => {
                let now = Timestamp::now();
                let rate =
                    reports::breakage_at(book, book.month(now), MATURITY_MONTHS_DEFAULT, overrides)
                        .rate;
                let l = reports::liability(book, now, book.buckets(), rate);
                ledger::finance::export::liability_rows(&l, &mut out)?;
            }
            _ => {
                let month = r.month.unwrap_or_else(|| this_month(book));
                ledger::finance::export::settlement_rows(
                    &reports::settlements(book, month),
                    &mut out,
                )?;
            }
        }
        Ok(out.finish())
    })
}
