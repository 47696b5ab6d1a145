//! The operator console: sign-in with an operator token, the programme dashboard, members,
//! campaigns, configuration, finance and operations. Every change goes through the same
//! operation the operator API calls, so it is checked, versioned and logged the same way.

use super::dashboard::{self, Dashboard};
use super::session::Who;
use super::{redirect_with_cookie, refusal, render, render_status, Visit};
use crate::api::blocking;
use crate::api::state::AppState;
use crate::members::analytics::month_of_day;
use crate::members::segments::day_number;
use crate::ops::error::{Kind, OpError};
use crate::ops::registry::Role;
use crate::ops::Ops;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use ledger::{MemberId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The console's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/dashboard") }),
        )
        .route("/console/switch", get(super::switch))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/dashboard", get(dashboard_page))
        .route("/console/dashboard/{file}", get(dashboard_csv))
        .route("/console/members", get(members_page))
        .route("/console/members/{id}", get(member_page))
        .route("/console/members/{id}/adjust", post(adjust))
        .route(
            "/console/campaigns",
            get(campaigns_page).post(create_campaign),
        )
        .route("/console/config", get(config_page).post(edit_config))
        .route("/console/finance", get(finance_page))
        .route("/console/finance/close", post(close_period))
        .route("/console/finance/reconcile", post(reconcile))
        .route("/console/finance/export/{dataset}", get(finance_export))
        .route("/console/operations", get(operations_page))
}

/// The signed-in operator, or the way to the sign-in page. A revoked or expired token ends the
/// session at its next request.
struct Operator {
    name: String,
    role: Role,
    /// Its credential, for the operator API called in-process.
    record: crate::ops::registry::OperatorRecord,
}

fn operator(app: &AppState, v: &Visit) -> Result<Operator, Response> {
    let to_sign_in = || Redirect::to("/console/sign-in").into_response();
    let Some((_, s)) = &v.session else {
        return Err(to_sign_in());
    };
    let Who::Operator { token_hash, .. } = &s.who else {
        return Err(to_sign_in());
    };
    // Revoked or expired: the session is over (its record is swept with the expired ones).
    let Some(record) = app.ops.registry.operator_by_hash(token_hash) else {
        return Err(to_sign_in());
    };
    Ok(Operator {
        name: record.name.clone(),
        role: record.role,
        record,
    })
}

fn writer(app: &AppState, v: &Visit) -> Result<Operator, Response> {
    let op = operator(app, v)?;
    if op.role != Role::Operator {
        return Err(refusal(
            v,
            &OpError::new(Kind::ForbiddenRole, v.t("finance-reads-only")),
        ));
    }
    Ok(op)
}

#[derive(Serialize, Default)]
struct SignInPage {
    error: Option<String>,
}

async fn sign_in_page(v: Visit) -> Response {
    render(&v, "console/sign-in.html", SignInPage::default())
}

#[derive(Deserialize)]
struct SignInForm {
    token: String,
}

async fn sign_in(State(app): State<AppState>, v: Visit, Form(f): Form<SignInForm>) -> Response {
    if !v.same_site {
        return (StatusCode::FORBIDDEN, "sign in from this site").into_response();
    }
    if let Err(e) = app.check_address(v.peer) {
        return refusal(&v, &e);
    }
    let token = f.token.trim().to_string();
    match app.ops.registry.operator(&token) {
        Some(op) => {
            let who = Who::Operator {
                token_hash: super::session::hash(&token),
                name: op.name.clone(),
                role: op.role,
            };
            match v.start_session(who, "console").await {
                Ok(cookie) => {
                    tracing::info!(operator = %op.name, "console sign-in");
                    redirect_with_cookie("/console/dashboard", &cookie)
                }
                Err(e) => refusal(&v, &e),
            }
        }
        None => {
            app.failed_authentication(v.peer);
            render_status(
                &v,
                StatusCode::UNAUTHORIZED,
                "console/sign-in.html",
                SignInPage {
                    error: Some(v.t("sign-in-unknown-token")),
                },
            )
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn sign_out(v: Visit, Form(f): Form<CsrfForm>) -> Response {
    if let Err(r) = v.check_form(&f.csrf) {
        return r;
    }
    v.end_session().await;
    redirect_with_cookie("/console/sign-in", &super::clear_cookie("console"))
}

/// Today's day number and month in the programme's time zone.
fn today(ops: &Ops) -> (i32, i32) {
    let d = day_number(crate::ops::audience::today(ops));
    (d, month_of_day(d))
}

/// The dashboard in `lang` and `cal`, from the aggregates brought up to the journal's end.
/// Blocking.
pub fn dashboard_of(
    ops: &Ops,
    lang: super::i18n::Lang,
    cal: super::i18n::Calendar,
) -> Result<Dashboard, OpError> {
    ops.audience.catch_up(ops)?;
    let partners: Vec<(u32, String, i64)> = crate::ops::operator::partners(ops)?
        .into_iter()
        .map(|p| {
            let minor = p
                .contract
                .as_ref()
                .map_or(100, |c| 10i64.pow(c.currency.minor_units()));
            (p.record.id, p.record.name.clone(), minor)
        })
        .collect();
    let by_partner = crate::ops::engagement::surveys::nps(
        ops,
        None,
        None,
        None,
        crate::ops::engagement::surveys::Grouping {
            partner: true,
            branch: false,
            month: false,
        },
    )?;
    let overall = crate::ops::engagement::surveys::nps(
        ops,
        None,
        None,
        None,
        crate::ops::engagement::surveys::Grouping::default(),
    )?;
    let score = |s: &str| s.parse::<f64>().ok();
    let nps = (
        overall.first().and_then(|r| score(&r.nps)),
        by_partner
            .iter()
            .filter_map(|r| Some((r.partner_id?, score(&r.nps)?)))
            .collect(),
    );
    let (today, now) = today(ops);
    Ok(ops.audience.with_analytics(|a, facts| {
        dashboard::build(
            a,
            facts,
            &dashboard::Context {
                lang,
                cal,
                now,
                today,
                partners: &partners,
                minor_per_unit: facts.minor_per_unit,
                nps,
            },
        )
    }))
}

/// The dashboard page's values.
#[derive(Serialize)]
pub struct DashboardPage {
    /// The figures.
    pub dashboard: Dashboard,
    /// The charts as JSON, for the page's script.
    pub charts_json: String,
}

async fn dashboard_page(State(app): State<AppState>, v: Visit) -> Response {
    if let Err(r) = operator(&app, &v) {
        return r;
    }
    let (ops, lang, cal) = (app.ops.clone(), v.lang, v.cal);
    match blocking(move || dashboard_of(&ops, lang, cal)).await {
        Ok(dashboard) => {
            let charts_json = serde_json::to_string(&dashboard.charts).unwrap_or_default();
            render(
                &v,
                "console/dashboard.html",
                DashboardPage {
                    dashboard,
                    charts_json,
                },
            )
        }
        Err(e) => refusal(&v, &e),
    }
}

fn csv_response(name: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

async fn dashboard_csv(
    State(app): State<AppState>,
    v: Visit,
    Path(file): Path<String>,
) -> Response {
    if let Err(r) = operator(&app, &v) {
        return r;
    }
    let Some(id) = file.strip_suffix(".csv") else {
        return refusal(&v, &OpError::new(Kind::NotFound, "no such export"));
    };
    let (ops, lang, cal) = (app.ops.clone(), v.lang, v.cal);
    let d = match blocking(move || dashboard_of(&ops, lang, cal)).await {
        Ok(d) => d,
        Err(e) => return refusal(&v, &e),
    };
    let body = if id == "partners" {
        dashboard::partners_csv(&d)
    } else if id == "figures" {
        kpis_csv(&d, lang)
    } else {
        match d.charts.iter().find(|c| c.id == id) {
            Some(c) => dashboard::csv(c),
            None => return refusal(&v, &OpError::new(Kind::NotFound, "no such chart")),
        }
    };
    match body {
        Ok(b) => csv_response(&file, b),
        Err(e) => refusal(&v, &OpError::new(Kind::Internal, e.to_string())),
    }
}

/// A member found by a search.
#[derive(Serialize)]
struct Found {
    id: u64,
    balance: i64,
    tier: u8,
    active: bool,
}

#[derive(Serialize)]
struct MembersPage {
    q: String,
    found: Vec<Found>,
    searched: bool,
}

/// Members matching `q`: a member id, a partner's member reference, a phone, an email or a
/// full name.
pub fn find_members(ops: &Ops, q: &str) -> Result<Vec<MemberId>, OpError> {
    let q = q.trim();
    let mut out = Vec::new();
    if q.is_empty() {
        return Ok(out);
    }
    if let Ok(n) = q.parse::<u64>() {
        if ops.ledger.balance(MemberId(n))?.is_some() {
            out.push(MemberId(n));
        }
    }
    for p in ops.registry.partners() {
        if let Ok(Some(m)) = ops.registry.member_of(ledger::PartnerId(p.id), q) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    if let Some(m) = ops.audience.by_contact(ops, q) {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    for m in ops.audience.by_name(ops, q, 50) {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

async fn members_page(
    State(app): State<AppState>,
    v: Visit,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = operator(&app, &v) {
        return r;
    }
    let query = q.get("q").cloned().unwrap_or_default();
    let ops = app.ops.clone();
    let q2 = query.clone();
    let found = blocking(move || {
        let ids = find_members(&ops, &q2)?;
        Ok(ids
            .into_iter()
            .map(|m| {
                let row = ops.audience.row(m).unwrap_or_default();
                Found {
                    id: m.0,
                    balance: row.balance,
                    tier: row.tier,
                    active: row.active,
                }
            })
            .collect::<Vec<_>>())
    })
    .await;
    match found {
        Ok(found) => render(
            &v,
            "console/members.html",
            MembersPage {
                searched: !query.trim().is_empty(),
                q: query,
                found,
            },
        ),
        Err(e) => refusal(&v, &e),
    }
}

/// A statement line as the member page shows it.
#[derive(Serialize)]
pub struct LineView {
    /// Transaction id.
    pub tx: u64,
    /// When (ms).
    pub at_ms: i64,
    /// What kind.
    pub kind: String,
    /// Points moved.
    pub points: i64,
    /// Balance after.
    pub balance: i64,
}

/// Member `m`'s latest statement lines.
pub fn statement_lines(ops: &Ops, m: MemberId, limit: usize) -> Result<Vec<LineView>, OpError> {
    let (lines, _) = crate::ops::operator::member_statement(ops, m, None, limit)?;
    Ok(lines
        .into_iter()
        .map(|l| LineView {
            tx: l.tx.0,
            at_ms: l.at.0,
            kind: l.kind.to_string(),
            points: l.points,
            balance: l.balance_after,
        })
        .collect())
}

#[derive(Serialize)]
struct MemberPage {
    id: u64,
    balance: i64,
    held: i64,
    profile: Option<crate::members::Profile>,
    links: Vec<(String, String)>,
    lines: Vec<LineView>,
    expiring: Vec<(i64, i64)>,
    /// The member's tier's name and its qualifying points.
    tier: Option<(String, i64)>,
    done: Option<String>,
}

async fn member_page(
    State(app): State<AppState>,
    v: Visit,
    Path(id): Path<u64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let op = match operator(&app, &v) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let ops = app.ops.clone();
    let m = MemberId(id);
    let lang = v.lang;
    let page = blocking(move || {
        let b = crate::ops::operator::member_balance(&ops, m)?;
        let viewer = match op.role {
            Role::Operator => crate::members::Viewer::Operator,
            Role::Finance => crate::members::Viewer::Finance,
        };
        let profile = crate::ops::profiles::get(&ops, m, viewer, &op.name).ok();
        let names: HashMap<u32, String> = ops
            .registry
            .partners()
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect();
        let links = ops
            .registry
            .links_of(m)
            .map_err(crate::ops::partner::registry_error)?
            .into_iter()
            .map(|(p, r)| (names.get(&p.0).cloned().unwrap_or_default(), r))
            .collect();
        let expiring = crate::ops::programme::expiring(&ops, m)?
            .lots
            .iter()
            .map(|(at, p)| (at.0, p.0))
            .collect();
        Ok(MemberPage {
            id: m.0,
            balance: b.posted.0,
            held: b.pending.0,
            profile,
            links,
            lines: statement_lines(&ops, m, 50)?,
            expiring,
            tier: crate::ops::programme::tier(&ops, m).ok().and_then(|t| {
                let name = match t.state.level as usize {
                    0 => super::i18n::text(lang, "tier-base", &[]),
                    l => t.policy?.levels.get(l - 1)?.name.clone(),
                };
                Some((name, t.qualifying))
            }),
            done: None,
        })
    })
    .await;
    super::show(
        &v,
        "console/member.html",
        page.map(|mut p| {
            p.done = q.get("done").cloned();
            p
        }),
    )
}

#[derive(Deserialize)]
struct AdjustForm {
    csrf: String,
    points: String,
    reason: String,
    reference: String,
}

async fn adjust(
    State(app): State<AppState>,
    v: Visit,
    Path(id): Path<u64>,
    Form(f): Form<AdjustForm>,
) -> Response {
    if let Err(r) = v.check_form(&f.csrf) {
        return r;
    }
    let op = match writer(&app, &v) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Ok(points) = f.points.trim().parse::<i64>() else {
        return refusal(
            &v,
            &OpError::new(Kind::InvalidRequest, v.t("adjust-points-whole")),
        );
    };
    let a = crate::ops::operator::Adjustment {
        reference: f.reference.trim().to_string(),
        member: MemberId(id),
        points,
        reason: f.reason.trim().to_string(),
        operator: op.name,
        qualifies: false,
        corrects: None,
    };
    match crate::ops::operator::adjust(&app.ops, a).await {
        Ok(r) => Redirect::to(&format!("/console/members/{id}?done={}", r.tx.id.0)).into_response(),
        Err(e) => refusal(&v, &e),
    }
}

#[derive(Serialize)]
struct CampaignRow {
    id: u32,
    version: u32,
    name: String,
    active: bool,
    starts_on: Option<String>,
    ends_on: Option<String>,
    author: String,
    effect: String,
}

#[derive(Serialize)]
struct CampaignsPage {
    campaigns: Vec<CampaignRow>,
    partners: Vec<(u32, String)>,
    error: Option<String>,
    created: Option<String>,
}

fn campaigns_view(ops: &Ops) -> Result<CampaignsPage, OpError> {
    let campaigns = crate::ops::programme::campaigns(ops)?
        .into_iter()
        .filter_map(|c| c.versions.last().cloned())
        .map(|c| {
            let d = &c.definition;
            CampaignRow {
                id: c.id,
                version: c.version,
                name: d.name.clone(),
                active: d.active,
                starts_on: d.starts_on.clone(),
                ends_on: d.ends_on.clone(),
                author: c.author.clone(),
                effect: serde_json::to_string(&d.effect).unwrap_or_default(),
            }
        })
        .collect();
    Ok(CampaignsPage {
        campaigns,
        partners: ops
            .registry
            .partners()
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect(),
        error: None,
        created: None,
    })
}

async fn campaigns_page(
    State(app): State<AppState>,
    v: Visit,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = operator(&app, &v) {
        return r;
    }
    super::show(
        &v,
        "console/campaigns.html",
        campaigns_view(&app.ops).map(|mut p| {
            p.created = q.get("created").cloned();
            p
        }),
    )
}

#[derive(Deserialize)]
struct CampaignForm {
    csrf: String,
    name: String,
    reason: String,
    #[serde(default)]
    partner: String,
    effect: String,
    value: String,
    #[serde(default)]
    starts_on: String,
    #[serde(default)]
    ends_on: String,
    #[serde(default)]
    budget: String,
}

/// The campaign a form describes, as the operator API's body.
fn campaign_json(f: &CampaignForm) -> serde_json::Value {
    let mut conditions = serde_json::Map::new();
    if let Ok(p) = f.partner.trim().parse::<u32>() {
        conditions.insert("partners".into(), serde_json::json!([p]));
    }
    let value = f.value.trim();
    let effect = match f.effect.as_str() {
        "fixed" => {
            serde_json::json!({"kind": "fixed", "points": value.parse::<i64>().unwrap_or(0)})
        }
        "per_unit" => serde_json::json!({"kind": "per_unit", "points_per_unit": value}),
        _ => serde_json::json!({"kind": "multiplier", "factor": value}),
    };
    let mut body = serde_json::json!({
        "name": f.name.trim(),
        "reason": f.reason.trim(),
        "conditions": conditions,
        "effect": effect,
    });
    let day = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    if let Some(d) = day(&f.starts_on) {
        body["starts_on"] = d.into();
    }
    if let Some(d) = day(&f.ends_on) {
        body["ends_on"] = d.into();
    }
    if let Ok(b) = f.budget.trim().parse::<i64>() {
        body["limits"] = serde_json::json!({"budget": b});
    }
    body
}

async fn create_campaign(
    State(app): State<AppState>,
    v: Visit,
    Form(f): Form<CampaignForm>,
) -> Response {
    if let Err(r) = v.check_form(&f.csrf) {
        return r;
    }
    let op = match writer(&app, &v) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let ops = app.ops.clone();
    let body = campaign_json(&f);
    let saved = blocking(move || {
        let draft = serde_json::from_value(body)
            .map_err(|e| OpError::new(Kind::InvalidRule, e.to_string()))?;
        crate::ops::programme::save_campaign(&ops, None, draft, &op.name)
    })
    .await;
    match saved {
        Ok(c) => Redirect::to(&format!("/console/campaigns?created={}", c.id)).into_response(),
        Err(e) => match campaigns_view(&app.ops) {
            Ok(mut p) => {
                p.error = Some(e.detail);
                render_status(&v, e.kind.status(), "console/campaigns.html", p)
            }
            Err(e) => refusal(&v, &e),
        },
    }
}

#[derive(Serialize)]
struct PartnerView {
    id: u32,
    name: String,
    currency: String,
    keys: usize,
    rate_version: Option<u32>,
    earn_unit: Option<String>,
}

/// An editor on the configuration page: a target, whether it needs an id, and a body to start
/// from (the current values where the API's shape allows, else an example).
#[derive(Serialize)]
struct Editor {
    target: &'static str,
    id: Option<u32>,
    body: String,
}

#[derive(Serialize)]
struct ConfigPage {
    editors: Vec<Editor>,
    partners: Vec<PartnerView>,
    programme: Option<crate::ops::registry::ProgrammeSettings>,
    rewards: Vec<(u32, String, i64, Option<u32>)>,
    tiers: String,
    expiry: String,
}

async fn config_page(State(app): State<AppState>, v: Visit) -> Response {
    if let Err(r) = operator(&app, &v) {
        return r;
    }
    let ops = app.ops.clone();
    let lang = v.lang;
    let page = blocking(move || {
        let mut partners = Vec::new();
        for p in crate::ops::operator::partners(&ops)? {
            let id = p.record.id;
            let tables = crate::ops::operator::rate_tables(&ops, id)?;
            let last = tables.last();
            partners.push(PartnerView {
                id,
                name: p.record.name.clone(),
                currency: p
                    .contract
                    .as_ref()
                    .map(|c| c.currency.code().to_string())
                    .unwrap_or_default(),
                keys: crate::ops::operator::keys(&ops, id)?.len(),
                rate_version: last.map(|t| t.version),
                earn_unit: last.map(|t| t.unit.clone()),
            });
        }
        let rewards = crate::ops::engagement::rewards::rewards(&ops, None)?
            .into_iter()
            .map(|r| {
                let name = super::portal::localized(&r.spec.names, lang.code());
                (r.id, name, r.spec.points, r.spec.stock)
            })
            .collect();
        let tiers = ops.ledger.tier_policy()?;
        let expiry = ops.ledger.expiry_policy()?;
        let editors = editors(&ops, tiers.as_ref());
        Ok(ConfigPage {
            editors,
            partners,
            programme: ops.registry.programme_settings(),
            rewards,
            tiers: serde_json::to_string_pretty(&tiers).unwrap_or_default(),
            expiry: serde_json::to_string_pretty(&expiry).unwrap_or_default(),
        })
    })
    .await;
    super::show(&v, "console/config.html", page)
}

#[derive(Serialize)]
struct FinancePage {
    partners: Vec<(u32, String)>,
    /// The breakage rate in force (per cent of points expected never to be redeemed).
    breakage_percent: String,
    /// The revenue schedule's latest rows, per currency.
    revenue: Vec<(String, Vec<ledger::finance::revenue::ScheduleRow>)>,
    /// Last month's settlement per partner.
    settlements: Vec<ledger::finance::reports::Settlement>,
    trial: Option<ledger::finance::reports::TrialBalance>,
    liability_points: i64,
    liability_value: Vec<(String, String)>,
    periods: Vec<crate::ops::finance::PeriodSummary>,
    suggested: String,
    closed: Option<String>,
}

async fn finance_page(
    State(app): State<AppState>,
    v: Visit,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = operator(&app, &v) {
        return r;
    }
    let ops = app.ops.clone();
    let page = blocking(move || {
        let trial = crate::ops::finance::trial_balance(&ops, None)?;
        let l = crate::ops::finance::liability(&ops, 24)?;
        let periods = crate::ops::finance::periods(&ops)?;
        let today = crate::ops::audience::today(&ops);
        let last = chrono::Datelike::with_day(&today, 1).unwrap_or(today) - chrono::Days::new(1);
        let suggested = last.format("%Y-%m").to_string();
        let breakage = crate::ops::finance::breakage(&ops, None, 24)?;
        let revenue = crate::ops::finance::revenue(&ops, None, 24)?
            .into_iter()
            .map(|r| {
                let n = r.rows.len();
                (
                    r.currency,
                    r.rows.into_iter().skip(n.saturating_sub(6)).collect(),
                )
            })
            .collect();
        let settlements = crate::ops::finance::settlements(
            &ops,
            crate::ops::finance::parse_month(&suggested)?,
            None,
        )?;
        Ok(FinancePage {
            breakage_percent: (breakage.rate * rust_decimal::Decimal::from(100))
                .round_dp(1)
                .to_string(),
            revenue,
            settlements,
            partners: ops
                .registry
                .partners()
                .into_iter()
                .map(|p| (p.id, p.name))
                .collect(),
            trial: Some(trial),
            liability_points: l.points,
            liability_value: l
                .total
                .redemption_value
                .iter()
                .map(|(c, v)| (c.clone(), v.round_dp(2).to_string()))
                .collect(),
            periods,
            suggested,
            closed: None,
        })
    })
    .await;
    super::show(
        &v,
        "console/finance.html",
        page.map(|mut p| {
            p.closed = q.get("closed").cloned();
            p
        }),
    )
}

#[derive(Deserialize)]
struct CloseForm {
    csrf: String,
    period: String,
}

async fn close_period(State(app): State<AppState>, v: Visit, Form(f): Form<CloseForm>) -> Response {
    if let Err(r) = v.check_form(&f.csrf) {
        return r;
    }
    // Closing a period is one of finance's own writes.
    let op = match operator(&app, &v) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let period = f.period.trim().to_string();
    match crate::ops::finance::close_period(&app.ops, &period, &op.name).await {
        Ok(()) => Redirect::to(&format!("/console/finance?closed={period}")).into_response(),
        Err(e) => refusal(&v, &e),
    }
}

async fn finance_export(
    State(app): State<AppState>,
    v: Visit,
    Path(dataset): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = operator(&app, &v) {
        return r;
    }
    let Some(dataset) = dataset.strip_suffix(".csv").map(str::to_string) else {
        return refusal(&v, &OpError::new(Kind::NotFound, "no such export"));
    };
    let month = match q.get("period").filter(|p| !p.is_empty()) {
        Some(p) => match crate::ops::finance::parse_month(p) {
            Ok(m) => Some(m),
            Err(e) => return refusal(&v, &e),
        },
        None => None,
    };
    let name = format!("{dataset}.csv");
    let req = crate::ops::finance::ExportRequest {
        dataset,
        format: ledger::finance::export::Format::Csv,
        from: None,
        to: None,
        member: q.get("member").and_then(|m| m.parse().ok()).map(MemberId),
        month,
    };
    match crate::api::finance::stream_export(app.clone(), req).await {
        Ok(mut res) => {
            if let Ok(h) = format!("attachment; filename=\"{name}\"").parse() {
                res.headers_mut().insert(header::CONTENT_DISPOSITION, h);
            }
            res
        }
        Err(e) => refusal(&v, &e),
    }
}

#[derive(Serialize)]
struct OperationsPage {
    metrics: Vec<(String, String)>,
    /// Each subscription with its latest deliveries.
    webhooks: Vec<(
        crate::ops::registry::WebhookRecord,
        Vec<crate::ops::registry::DeliveryRecord>,
    )>,
    queued: u64,
    by_status: Vec<(String, u64)>,
    sessions: usize,
    changes: Vec<Change>,
}

/// A change to the programme's configuration, as the audit log shows it.
#[derive(Serialize)]
struct Change {
    at_ms: i64,
    what: String,
    version: u32,
    author: String,
    reason: String,
}

/// The latest `n` changes: campaign versions, programme settings, budget guards and rewards,
/// each with its author and reason.
fn changes(ops: &Ops, n: usize) -> Result<Vec<Change>, OpError> {
    let mut out = Vec::new();
    for c in crate::ops::programme::campaigns(ops)? {
        for v in c.versions {
            out.push(Change {
                at_ms: v.recorded_at_ms,
                what: format!("campaign {} ({})", v.id, v.definition.name),
                version: v.version,
                author: v.author,
                reason: v.definition.reason,
            });
        }
    }
    if let Some(s) = ops.registry.programme_settings() {
        out.push(Change {
            at_ms: s.recorded_at_ms,
            what: "programme settings".into(),
            version: s.version,
            author: s.author,
            reason: s.reason,
        });
    }
    for g in ops.registry.guards() {
        out.push(Change {
            at_ms: g.recorded_at_ms,
            what: format!("budget guard {:?}", g.scope),
            version: g.version,
            author: g.author,
            reason: g.settings.reason.clone(),
        });
    }
    for r in crate::ops::engagement::rewards::rewards(ops, None)? {
        out.push(Change {
            at_ms: r.updated_at_ms,
            what: format!("reward {}", r.id),
            version: r.version,
            author: r.author,
            reason: r.reason,
        });
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.at_ms));
    out.truncate(n);
    Ok(out)
}

/// The headline figures as CSV.
fn kpis_csv(d: &Dashboard, lang: super::i18n::Lang) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["figure", "value"])?;
    for k in &d.kpis {
        w.write_record([super::i18n::text(lang, k.key, &[]), k.value.clone()])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// The figures the operations page shows, read from the Prometheus text.
fn metric_lines(text: &str) -> Vec<(String, String)> {
    let wanted = [
        "http_requests_total",
        "http_request_duration_seconds_count",
        "http_request_duration_seconds_sum",
        "ledger_committed_transactions",
        "requests_shed_total",
        "webhook_deliveries_total",
        "notifications_sent_total",
    ];
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| wanted.iter().any(|w| l.starts_with(w)))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .take(60)
        .collect()
}

async fn operations_page(State(app): State<AppState>, v: Visit) -> Response {
    if let Err(r) = operator(&app, &v) {
        return r;
    }
    let ops = app.ops.clone();
    let text = app.metrics.render();
    let web = v.web.clone();
    let page = blocking(move || {
        let sessions = web.sessions.live(&ops.registry);
        let notifications = crate::ops::notify::status(&ops, 100)?;
        Ok(OperationsPage {
            metrics: metric_lines(&text),
            webhooks: crate::ops::webhooks::list(&ops, None)?
                .into_iter()
                .map(|w| {
                    let log = crate::ops::webhooks::deliveries(&ops, None, w.id, 5)
                        .map(|(_, l)| l)
                        .unwrap_or_default();
                    (w, log)
                })
                .collect(),
            queued: notifications.queued,
            by_status: notifications.by_status.into_iter().collect(),
            sessions,
            changes: changes(&ops, 40)?,
        })
    })
    .await;
    super::show(&v, "console/operations.html", page)
}

fn pretty(v: serde_json::Value) -> String {
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The configuration page's editors, each with the body its API route takes.
fn editors(ops: &Ops, tiers: Option<&ledger::core::tiers::TierPolicy>) -> Vec<Editor> {
    use serde_json::json;
    let settings = ops.registry.programme_settings();
    let levels: Vec<serde_json::Value> = tiers.map_or_else(
        || vec![json!({"name": "Silver", "threshold": 1500})],
        |t| {
            t.levels
                .iter()
                .map(|l| json!({"name": l.name, "threshold": l.threshold}))
                .collect()
        },
    );
    let first = crate::ops::operator::partners(ops)
        .ok()
        .and_then(|p| p.into_iter().next());
    let mut out = vec![
        Editor {
            target: "programme",
            id: None,
            body: pretty(json!({
                "time_zone": settings.as_ref().map_or("UTC".to_string(), |s| s.time_zone.clone()),
                "currency": settings.as_ref().and_then(|s| s.currency.clone()),
                "language": settings.as_ref().map(|s| s.language),
                "reason": "",
            })),
        },
        Editor {
            target: "tier-policy",
            id: None,
            body: pretty(json!({
                "reference": format!("tiers-{}", Timestamp::now().0),
                "levels": levels, "basis": "points", "window": "rolling12_months",
                "grace_periods": 1, "reason": "",
            })),
        },
        Editor {
            target: "expiry-policy",
            id: None,
            body: pretty(json!({
                "reference": format!("expiry-{}", Timestamp::now().0),
                "rolling": {"months": 12, "round_to": "month_end"}, "reason": "",
            })),
        },
        Editor {
            target: "programme-guard",
            id: None,
            body: pretty(
                json!({"ceiling": "0.03", "period": "month", "on_ceiling": "base_only", "reason": ""}),
            ),
        },
    ];
    if let Some(p) = first {
        let c = p.contract.as_ref();
        out.push(Editor {
            target: "partner",
            id: Some(p.record.id),
            body: pretty(json!({
                "name": p.record.name,
                "currency": c.map(|c| c.currency.code().to_string()),
                "issuance_price_per_point": c.map(|c| c.issuance_price_per_point.to_string()),
                "redemption_price_per_point": c.map(|c| c.redemption_price_per_point.to_string()),
                "points_validity_days": c.and_then(|c| c.points_validity_days),
                "requests_per_second": p.record.requests_per_second,
                "burst": p.record.burst,
            })),
        });
        out.push(Editor {
            target: "rates",
            id: Some(p.record.id),
            body: pretty(json!({"unit": "EUR", "earn_points_per_unit": "1"})),
        });
        out.push(Editor {
            target: "key",
            id: Some(p.record.id),
            body: pretty(json!({"scopes": ["earn", "burn", "read"]})),
        });
    }
    // The latest campaign's definition, to change, pause or end it as a new version.
    if let Some(c) = crate::ops::programme::campaigns(ops).ok().and_then(|cs| {
        cs.into_iter()
            .rev()
            .find_map(|c| c.versions.last().cloned())
    }) {
        let mut d = serde_json::to_value(&c.definition).unwrap_or_default();
        d["reason"] = json!("");
        if let Some(o) = d.as_object_mut() {
            o.remove("effective_from_ms");
        }
        out.push(Editor {
            target: "campaign",
            id: Some(c.id),
            body: pretty(d),
        });
    }
    out.push(Editor {
        target: "reward-new",
        id: None,
        body: pretty(json!({"reason": "", "spec": {
            "names": [{"language": "fa", "text": ""}, {"language": "en", "text": ""}],
            "partner_id": 1, "points": 1000, "stock": 100, "per_member_max": 2, "voucher_days": 60,
            "on_expiry": "return"}})),
    });
    out
}

/// Calls the operator API in-process as the signed-in operator: the change is
/// checked, versioned and logged with its author exactly as over HTTP. Returns the status and
/// the answer's JSON.
async fn call_api(
    app: &AppState,
    op: &crate::ops::registry::OperatorRecord,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    use tower::ServiceExt;
    let (router, _) = crate::api::operator::router(app.clone()).split_for_parts();
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .extension(crate::api::operator::Delegated(op.clone()))
        .body(axum::body::Body::from(body.to_string()));
    let Ok(req) = req else {
        return (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"detail": "bad request"}),
        );
    };
    let res = match router.with_state(app.clone()).oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 4 << 20)
        .await
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// What the configuration page can change, each through its operator API route.
const EDITABLE: &[(&str, &str, &str)] = &[
    ("programme", "PUT", "/admin/v1/programme"),
    ("tier-policy", "PUT", "/admin/v1/tier-policy"),
    ("expiry-policy", "PUT", "/admin/v1/expiry-policy"),
    (
        "programme-guard",
        "PUT",
        "/admin/v1/budget-guards/programme",
    ),
    ("partner", "PUT", "/admin/v1/partners/{id}"),
    ("rates", "POST", "/admin/v1/partners/{id}/rates"),
    ("key", "POST", "/admin/v1/partners/{id}/keys"),
    ("campaign", "PUT", "/admin/v1/campaigns/{id}"),
    ("reward-new", "POST", "/admin/v1/rewards"),
    ("reward", "PUT", "/admin/v1/rewards/{id}"),
];

#[derive(Deserialize)]
struct EditForm {
    csrf: String,
    target: String,
    #[serde(default)]
    id: String,
    body: String,
}

#[derive(Serialize)]
struct EditResult {
    target: String,
    ok: bool,
    status: u16,
    detail: String,
    answer: String,
    body: String,
    id: String,
}

async fn edit_config(State(app): State<AppState>, v: Visit, Form(f): Form<EditForm>) -> Response {
    if let Err(r) = v.check_form(&f.csrf) {
        return r;
    }
    let op = match writer(&app, &v) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some((_, method, path)) = EDITABLE.iter().find(|(t, _, _)| *t == f.target) else {
        return refusal(
            &v,
            &OpError::new(Kind::NotFound, "nothing of that name to edit"),
        );
    };
    let path = if path.contains("{id}") {
        match f.id.trim().parse::<u32>() {
            Ok(id) => path.replace("{id}", &id.to_string()),
            Err(_) => {
                return refusal(
                    &v,
                    &OpError::new(Kind::InvalidRequest, v.t("config-id-needed")),
                )
            }
        }
    } else {
        path.to_string()
    };
    let (status, answer) = match serde_json::from_str::<serde_json::Value>(&f.body) {
        Ok(body) => call_api(&app, &op.record, method, &path, &body).await,
        Err(e) => (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"detail": format!("{}: {e}", v.t("config-not-json"))}),
        ),
    };
    let ok = status.is_success();
    render_status(
        &v,
        if ok { StatusCode::OK } else { status },
        "console/edited.html",
        EditResult {
            target: f.target,
            ok,
            status: status.as_u16(),
            detail: answer["detail"].as_str().unwrap_or_default().to_string(),
            answer: serde_json::to_string_pretty(&answer).unwrap_or_default(),
            body: f.body,
            id: f.id,
        },
    )
}

#[derive(Serialize)]
struct Reconciled {
    ok: bool,
    detail: String,
    matched: usize,
    missing_from_ledger: Vec<serde_json::Value>,
    missing_from_file: Vec<serde_json::Value>,
    differences: Vec<serde_json::Value>,
}

async fn reconcile(
    State(app): State<AppState>,
    v: Visit,
    mut form: axum::extract::Multipart,
) -> Response {
    let mut fields: HashMap<String, String> = HashMap::new();
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        match field.text().await {
            Ok(t) => {
                fields.insert(name, t);
            }
            Err(e) => {
                return refusal(&v, &OpError::new(Kind::InvalidRequest, e.to_string()));
            }
        }
    }
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    if let Err(r) = v.check_form(&get("csrf")) {
        return r;
    }
    let op = match operator(&app, &v) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body = serde_json::json!({
        "partner": get("partner").trim().parse::<u32>().unwrap_or(0),
        "period": get("period").trim(),
        "csv": get("csv"),
    });
    let (status, a) = call_api(
        &app,
        &op.record,
        "POST",
        "/admin/v1/finance/reconciliations",
        &body,
    )
    .await;
    let list = |k: &str| a[k].as_array().cloned().unwrap_or_default();
    render_status(
        &v,
        if status.is_success() {
            StatusCode::OK
        } else {
            status
        },
        "console/reconciled.html",
        Reconciled {
            ok: status.is_success(),
            detail: a["detail"].as_str().unwrap_or_default().to_string(),
            matched: list("matched").len(),
            missing_from_ledger: list("missing_from_ledger"),
            missing_from_file: list("missing_from_file"),
            differences: list("differences"),
        },
    )
}
