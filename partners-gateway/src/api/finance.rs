//! The finance API under `/admin/v1/finance`: reports on one snapshot of the live ledger,
//! period close, breakage overrides, reconciliation and streamed exports. Readable by operators
//! and the finance role; the finance role may also close periods, override breakage and
//! reconcile (its only writes).

use super::{blocking, ApiJson, JsonResult, Path, Query};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::ops::error::{Kind, OpError};
use crate::ops::finance::{self as fin, ExportRequest, PeriodSummary};
use crate::ops::registry::OperatorRecord;
use crate::programme::rates::decimal_str;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ledger::finance::breakage::{Estimate, Override};
use ledger::finance::export::Format;
use ledger::finance::reconcile::Reconciliation;
use ledger::finance::reports::{
    ClosedPeriod, Liability, RevenueSchedule, Settlement, TrialBalance,
};
use ledger::{MemberId, PartnerId, Timestamp};
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the finance routes.
pub fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(trial_balance))
        .routes(routes!(liability))
        .routes(routes!(breakage))
        .routes(routes!(override_breakage))
        .routes(routes!(revenue))
        .routes(routes!(settlements))
        .routes(routes!(list_periods, close_period))
        .routes(routes!(period))
        .routes(routes!(reconcile))
        .routes(routes!(export))
}

/// The latest instant a query may name (the end of year 9999), in ms since the epoch.
const AT_MAX: i64 = 253_402_300_799_999;

/// An instant, in ms since the Unix epoch.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AtQuery {
    /// The instant (default: now).
    #[param(minimum = 0, maximum = 253_402_300_799_999_i64)]
    pub at_ms: Option<i64>,
}

fn instant(ms: Option<i64>, name: &str) -> Result<Option<Timestamp>, OpError> {
    match ms {
        Some(t) if !(0..=AT_MAX).contains(&t) => Err(OpError::new(
            Kind::InvalidRequest,
            format!("{name} is ms since 1970, at most {AT_MAX}"),
        )),
        other => Ok(other.map(Timestamp)),
    }
}

/// The breakage estimate's maturity, and a month.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EstimateQuery {
    /// Months after which a cohort counts as mature (default 24).
    #[param(minimum = 1, maximum = 240)]
    pub maturity_months: Option<u32>,
    /// The month (`yyyy-mm`, default this month).
    #[param(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub period: Option<String>,
}

impl EstimateQuery {
    fn maturity(&self) -> Result<u32, OpError> {
        match self.maturity_months {
            None => Ok(fin::MATURITY_MONTHS_DEFAULT),
            Some(m) if (1..=240).contains(&m) => Ok(m),
            Some(_) => Err(OpError::new(
                Kind::InvalidRequest,
                "maturity_months is 1 to 240",
            )),
        }
    }

    fn month(&self) -> Result<Option<u32>, OpError> {
        self.period.as_deref().map(fin::parse_month).transpose()
    }
}

/// Every account's balance at an instant: points and money per currency; totals are zero.
#[utoipa::path(get, path = "/admin/v1/finance/trial-balance", tag = "finance", params(AtQuery),
    responses((status = 200, body = TrialBalance),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn trial_balance(
    State(app): State<AppState>,
    Query(q): Query<AtQuery>,
) -> JsonResult<TrialBalance> {
    let at = instant(q.at_ms, "at_ms")?;
    Ok(Json(
        blocking(move || fin::trial_balance(&app.ops, at)).await?,
    ))
}

/// The breakage estimate's maturity.
#[derive(Debug, Deserialize, IntoParams)]
pub struct MaturityQuery {
    /// Months after which a cohort counts as mature (default 24).
    #[param(minimum = 1, maximum = 240)]
    pub maturity_months: Option<u32>,
}

/// Points owed to members now, by issuing partner, cohort and expiry month, valued at the
/// issuance price and at the redemption prices in force.
#[utoipa::path(get, path = "/admin/v1/finance/liability", tag = "finance", params(MaturityQuery),
    responses((status = 200, body = Liability),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn liability(
    State(app): State<AppState>,
    Query(q): Query<MaturityQuery>,
) -> JsonResult<Liability> {
    let m = EstimateQuery {
        maturity_months: q.maturity_months,
        period: None,
    }
    .maturity()?;
    Ok(Json(blocking(move || fin::liability(&app.ops, m)).await?))
}

/// The breakage estimate per cohort at the end of a month, with the redemption curve it
/// follows and the override in force.
#[utoipa::path(get, path = "/admin/v1/finance/breakage", tag = "finance", params(EstimateQuery),
    responses((status = 200, body = Estimate),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn breakage(
    State(app): State<AppState>,
    Query(q): Query<EstimateQuery>,
) -> JsonResult<Estimate> {
    let (m, month) = (q.maturity()?, q.month()?);
    Ok(Json(
        blocking(move || fin::breakage(&app.ops, month, m)).await?,
    ))
}

/// An override of the breakage estimate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// The rate, a share of points issued between 0 and 1.
    #[schema(value_type = String, example = "0.15", pattern = r"^(?:0(?:\.[0-9]{1,10})?|1(?:\.0{1,10})?)$")]
    #[serde(deserialize_with = "decimal_str::price")]
    pub rate: Decimal,
    /// The cohort (`yyyy-mm`) it applies to; every cohort when absent.
    #[schema(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    #[serde(default)]
    pub cohort: Option<String>,
    /// Why, in words an auditor can follow.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// Overrides the breakage estimate, for every cohort or one, with a reason. Every override is
/// kept; the latest applies from the moment it was made, so revenue shows it as a catch-up
/// in that period.
#[utoipa::path(post, path = "/admin/v1/finance/breakage/overrides", tag = "finance",
    request_body = OverrideRequest,
    responses((status = 200, body = Override),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn override_breakage(
    State(app): State<AppState>,
    Extension(op): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<OverrideRequest>,
) -> JsonResult<Override> {
    let cohort = r.cohort.as_deref().map(fin::parse_month).transpose()?;
    Ok(Json(
        blocking(move || fin::set_breakage_override(&app.ops, r.rate, cohort, &r.reason, &op.name))
            .await?,
    ))
}

/// The IFRS 15 revenue schedule per currency, month by month through a month: opening
/// deferred revenue, billed, recognised from redemptions and from breakage, catch-up, closing.
#[utoipa::path(get, path = "/admin/v1/finance/revenue", tag = "finance", params(EstimateQuery),
    responses((status = 200, body = Vec<RevenueSchedule>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn revenue(
    State(app): State<AppState>,
    Query(q): Query<EstimateQuery>,
) -> JsonResult<Vec<RevenueSchedule>> {
    let (m, month) = (q.maturity()?, q.month()?);
    Ok(Json(
        blocking(move || fin::revenue(&app.ops, month, m)).await?,
    ))
}

/// A month, and optionally a partner.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SettlementQuery {
    /// The month (`yyyy-mm`).
    #[param(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub period: String,
    /// One partner (default: every partner with a contract).
    #[param(minimum = 0, maximum = 4_294_967_295_u64)]
    pub partner: Option<u32>,
}

/// Each partner's settlement statement for a month, in its contract's currency: issued and
/// billed, redeemed and reimbursed, reversals of each, the net and who pays it.
#[utoipa::path(get, path = "/admin/v1/finance/settlements", tag = "finance", params(SettlementQuery),
    responses((status = 200, body = Vec<Settlement>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn settlements(
    State(app): State<AppState>,
    Query(q): Query<SettlementQuery>,
) -> JsonResult<Vec<Settlement>> {
    let month = fin::parse_month(&q.period)?;
    let partner = q.partner.map(PartnerId);
    Ok(Json(
        blocking(move || fin::settlements(&app.ops, month, partner)).await?,
    ))
}

/// Every closed period, with its checkpoint.
#[utoipa::path(get, path = "/admin/v1/finance/periods", tag = "finance",
    responses((status = 200, body = Vec<PeriodSummary>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn list_periods(State(app): State<AppState>) -> JsonResult<Vec<PeriodSummary>> {
    Ok(Json(blocking(move || fin::periods(&app.ops)).await?))
}

/// A period to close.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// The month (`yyyy-mm`, in the programme's time zone); every earlier month closes with it.
    #[schema(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub period: String,
}

/// Closes a month: afterwards no transaction is dated inside it (corrections post in the open
/// period and say what they correct), and its reports are final, with the chain checkpoint at
/// the close and a digest over them. Closing a month that is not over, or one closed already,
/// answers `period-refused`; a retry of the same close answers as the first did.
#[utoipa::path(post, path = "/admin/v1/finance/periods", tag = "finance",
    request_body = CloseRequest,
    responses((status = 200, body = ClosedPeriod),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn close_period(
    State(app): State<AppState>,
    Extension(op): Extension<OperatorRecord>,
    ApiJson(r): ApiJson<CloseRequest>,
) -> JsonResult<ClosedPeriod> {
    fin::close_period(&app.ops, &r.period, &op.name).await?;
    Ok(Json(
        blocking(move || fin::closed_period(&app.ops, &r.period, fin::MATURITY_MONTHS_DEFAULT))
            .await?,
    ))
}

/// A closed period's final reports: trial balance at its end, liability at its close, the
/// partners' statements, the checkpoint and the digest.
#[utoipa::path(get, path = "/admin/v1/finance/periods/{period}", tag = "finance",
    params(("period" = String, Path, description = "The month, `yyyy-mm`", pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")),
    responses((status = 200, body = ClosedPeriod),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn period(
    State(app): State<AppState>,
    Path(period): Path<String>,
) -> JsonResult<ClosedPeriod> {
    fin::parse_month(&period)?;
    Ok(Json(
        blocking(move || fin::closed_period(&app.ops, &period, fin::MATURITY_MONTHS_DEFAULT))
            .await?,
    ))
}

/// A partner's file for a month, to compare with the ledger.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// The partner.
    #[schema(minimum = 0, maximum = 4_294_967_295_u64)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub partner: u32,
    /// The month (`yyyy-mm`).
    #[schema(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub period: String,
    /// The file: CSV with a header naming `reference` and any of `time`, `member_reference`,
    /// `amount`, `points`. The request must fit the gateway's body limit (`body_bytes_max`,
    /// 1 MiB by default); larger files go through `ledger reconcile`.
    #[schema(max_length = 500_000)]
    pub csv: String,
}

/// Compares a partner's file with the ledger: matched, missing from the ledger, missing from
/// the file, and fields that differ.
#[utoipa::path(post, path = "/admin/v1/finance/reconciliations", tag = "finance",
    request_body = ReconcileRequest,
    responses((status = 200, body = Reconciliation),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn reconcile(
    State(app): State<AppState>,
    ApiJson(r): ApiJson<ReconcileRequest>,
) -> JsonResult<Reconciliation> {
    let month = fin::parse_month(&r.period)?;
    Ok(Json(
        blocking(move || fin::reconcile(&app.ops, PartnerId(r.partner), month, &r.csv)).await?,
    ))
}

/// What to export.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportQuery {
    /// `csv` (default) or `ndjson`.
    #[param(pattern = "^(csv|ndjson)$")]
    pub format: Option<String>,
    /// Transactions dated from this instant (ms since the epoch).
    #[param(minimum = 0, maximum = 253_402_300_799_999_i64)]
    pub from_ms: Option<i64>,
    /// ... to this one (exclusive); the trial balance's instant.
    #[param(minimum = 0, maximum = 253_402_300_799_999_i64)]
    pub to_ms: Option<i64>,
    /// The member, for `statement`.
    #[param(minimum = 0, maximum = 18_446_744_073_709_551_615_u64)]
    pub member: Option<u64>,
    /// The month (`yyyy-mm`), for `settlements` (default: this month).
    #[param(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub period: Option<String>,
}

/// Streams a dataset as CSV or NDJSON: `journal`, `postings`, `statement` (one member),
/// `trial-balance`, `liability` or `settlements`. Rows are read a batch at a time, so
/// millions take bounded memory. `docs/finance.md` has the columns.
#[utoipa::path(get, path = "/admin/v1/finance/exports/{dataset}", tag = "finance",
    params(("dataset" = String, Path, description = "journal, postings, statement, trial-balance, liability or settlements",
        pattern = "^(journal|postings|statement|trial-balance|liability|settlements)$"), ExportQuery),
    responses((status = 200, description = "The rows", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"))),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn export(
    State(app): State<AppState>,
    Path(dataset): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, OpError> {
    let format = match q.format.as_deref() {
        None | Some("csv") => Format::Csv,
        Some("ndjson") => Format::Ndjson,
        Some(_) => {
            return Err(OpError::new(
                Kind::InvalidRequest,
                "format is csv or ndjson",
            ))
        }
    };
    let req = ExportRequest {
        dataset,
        format,
        from: instant(q.from_ms, "from_ms")?,
        to: instant(q.to_ms, "to_ms")?,
        member: q.member.map(MemberId),
        month: q.period.as_deref().map(fin::parse_month).transpose()?,
    };
    stream_export(app, req).await
}

/// Checks an export, then streams it as its rows are made (the console's downloads too).
pub async fn stream_export(app: AppState, req: ExportRequest) -> Result<Response, OpError> {
    let format = req.format;
    let check = app.clone();
    let req2 = req.clone();
    blocking(move || fin::check_export(&check.ops, &req2)).await?;
    // A bounded channel: the reader's pace sets the export's, and memory stays at a few
    // chunks.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut sink = |chunk: Vec<u8>| tx.blocking_send(Ok(Bytes::from(chunk))).is_ok();
        if let Err(e) = fin::export(&app.ops, &req, &mut sink) {
            tracing::warn!(error = %e.detail, "export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.detail)));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Ndjson => "application/x-ndjson",
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}
