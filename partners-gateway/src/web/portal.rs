//! The member portal: sign-in with a one-time code, balance and statement, expiring points,
//! tier progress, rewards and vouchers, surveys, the referral link, profile and consent.
//!
//! Sign-in: the member gives a card number (any partner's member reference), a phone or an
//! email. The answer is the same page whether or not it names a member; a code goes out only
//! when it does, through the programme's SMS (or email) provider. Codes are six digits, live
//! ten minutes, and are spent by their use or five wrong guesses; a member gets at most three
//! in fifteen minutes, an address at most ten code requests, and an address that keeps guessing
//! wrong is refused for a while (`App::check_address`).

use super::session::Who;
use super::{redirect_with_cookie, refusal, render, Visit};
use crate::api::blocking;
use crate::api::state::AppState;
use crate::engagement::model::Localized;
use crate::members::Channel;
use crate::ops::error::{Kind, OpError};
use crate::ops::Ops;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use ledger::MemberId;
use serde::{Deserialize, Serialize};

/// The portal's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/switch", get(super::switch))
        .route("/portal/sign-in", get(sign_in_page).post(request_code))
        .route("/portal/verify", post(verify))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/statement", get(statement))
        .route("/portal/rewards", get(rewards))
        .route("/portal/rewards/{id}/redeem", post(redeem))
        .route("/portal/surveys/{id}", get(survey).post(answer))
        .route("/portal/profile", get(profile).post(consent))
        .route("/portal/transfer", get(transfer_page).post(transfer))
        .route("/portal/join", get(join))
}

/// The text in `lang` of a list of texts by language (the first when none is in `lang`).
pub fn localized(list: &[Localized], lang: &str) -> String {
    list.iter()
        .find(|l| l.language == lang)
        .or(list.first())
        .map(|l| l.text.clone())
        .unwrap_or_default()
}

fn lang_of(code: &str) -> super::i18n::Lang {
    super::i18n::Lang::parse(code).unwrap_or(super::i18n::Lang::En)
}

fn member(v: &Visit) -> Result<MemberId, Response> {
    match v.session.as_ref().map(|(_, s)| &s.who) {
        Some(Who::Member(m)) => Ok(*m),
        _ => Err(Redirect::to("/portal/sign-in").into_response()),
    }
}

#[derive(Serialize, Default)]
struct SignInPage {
    /// The identifier given, when a code was asked for.
    identifier: Option<String>,
    error: Option<String>,
}

async fn sign_in_page(v: Visit) -> Response {
    render(&v, "portal/sign-in.html", SignInPage::default())
}

/// The member an identifier names: a member reference at any partner, a phone or an email.
pub fn identify(ops: &Ops, identifier: &str) -> Option<MemberId> {
    let id = identifier.trim();
    if id.is_empty() || id.len() > 128 {
        return None;
    }
    for p in ops.registry.partners() {
        if let Ok(Some(m)) = ops.registry.member_of(ledger::PartnerId(p.id), id) {
            return Some(m);
        }
    }
    ops.audience.by_contact(ops, id)
}

#[derive(Deserialize)]
struct CodeRequest {
    identifier: String,
}

async fn request_code(
    State(app): State<AppState>,
    v: Visit,
    Form(f): Form<CodeRequest>,
) -> Response {
    if !v.same_site {
        return (StatusCode::FORBIDDEN, "sign in from this site").into_response();
    }
    if let Err(e) = app.check_address(v.peer) {
        return refusal(&v, &e);
    }
    let identifier: String = f.identifier.trim().chars().take(128).collect();
    if v.web.sessions.address_may_ask(v.peer) {
        let (ops, lang, web) = (app.ops.clone(), v.lang, v.web.clone());
        let ident = identifier.clone();
        // Sent in the background: the answer takes as long whether or not a code goes out.
        tokio::spawn(async move {
            let (o, w) = (ops.clone(), web.clone());
            let code = tokio::task::spawn_blocking(move || {
                let m = identify(&o, &ident)?;
                match w.sessions.new_code(&o.registry, m) {
                    Ok(c) => c.map(|c| (m, c)),
                    Err(e) => {
                        tracing::warn!(error = %e, "a sign-in code could not be made");
                        None
                    }
                }
            })
            .await;
            if let Ok(Some((m, code))) = code {
                send_code(&ops, &web, m, &code, lang).await;
            }
        });
    }
    render(
        &v,
        "portal/sign-in.html",
        SignInPage {
            identifier: Some(identifier),
            error: None,
        },
    )
}

/// Sends `code` to member `m` through the SMS provider (else the email one), to the phone (or
/// email) of its profile. Without either, the demo writes it to the log.
async fn send_code(ops: &Ops, web: &super::Web, m: MemberId, code: &str, lang: super::i18n::Lang) {
    let profile = ops.registry.profile(m).ok().flatten();
    let lang = profile
        .as_ref()
        .and_then(|p| p.language.as_deref())
        .and_then(super::i18n::Lang::parse)
        .unwrap_or(lang);
    let text = super::i18n::text(lang, "portal-code-message", &[("code", code.to_string())]);
    let mut sent = false;
    for (channel, to) in [
        (Channel::Sms, profile.as_ref().and_then(|p| p.phone.clone())),
        (
            Channel::Email,
            profile.as_ref().and_then(|p| p.email.clone()),
        ),
    ] {
        let provider = ops.registry.provider(channel).ok().flatten();
        let (Some(to), Some(p)) = (to, provider) else {
            continue;
        };
        let vars = serde_json::json!({
            "to": to, "subject": super::i18n::text(lang, "portal-code-subject", &[]),
            "text": text, "language": lang.code(), "message_id": format!("sign-in:{}:{}", m.0, super::session::token()),
            "member_id": m.0,
        });
        let Ok(body) = crate::notify::render_provider_body(&p.config.body_template, &vars) else {
            continue;
        };
        let id = vars["message_id"].as_str().unwrap_or_default().to_string();
        let outcome = crate::notify::provider::send(client(), &p.config, &id, body).await;
        if outcome.is_ok() {
            sent = true;
            break;
        }
        tracing::warn!(
            member = m.0,
            "a sign-in code could not be sent: {outcome:?}"
        );
    }
    if !sent && web.codes_in_log {
        tracing::info!(
            member = m.0,
            code,
            "demo: the portal sign-in code (no provider)"
        );
        println!(
            "partners-gateway: demo portal sign-in code for member {}: {code}",
            m.0
        );
    }
}

fn client() -> &'static reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(reqwest::Client::new)
}

#[derive(Deserialize)]
struct VerifyForm {
    identifier: String,
    code: String,
}

async fn verify(State(app): State<AppState>, v: Visit, Form(f): Form<VerifyForm>) -> Response {
    if !v.same_site {
        return (StatusCode::FORBIDDEN, "sign in from this site").into_response();
    }
    if let Err(e) = app.check_address(v.peer) {
        return refusal(&v, &e);
    }
    let checked = {
        let (ops, web, ident, code) = (
            app.ops.clone(),
            v.web.clone(),
            f.identifier.clone(),
            f.code.clone(),
        );
        blocking(move || {
            let Some(m) = identify(&ops, &ident) else {
                return Ok(None);
            };
            let ok = web
                .sessions
                .check_code(&ops.registry, m, &code)
                .map_err(crate::ops::partner::registry_error)?;
            Ok(ok.then_some(m))
        })
        .await
    };
    match checked {
        Err(e) => refusal(&v, &e),
        Ok(Some(m)) => match v.start_session(Who::Member(m), "portal").await {
            Ok(cookie) => redirect_with_cookie("/portal", &cookie),
            Err(e) => refusal(&v, &e),
        },
        _ => {
            app.failed_authentication(v.peer);
            super::render_status(
                &v,
                StatusCode::UNAUTHORIZED,
                "portal/sign-in.html",
                SignInPage {
                    identifier: Some(f.identifier.trim().chars().take(128).collect()),
                    error: Some(v.t("portal-code-wrong")),
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
    redirect_with_cookie("/portal/sign-in", &super::clear_cookie("portal"))
}

#[derive(Serialize)]
struct Voucher {
    code: String,
    reward: String,
    status: String,
    expires_at_ms: Option<i64>,
}

#[derive(Serialize)]
struct Tier {
    name: String,
    next: Option<String>,
    qualifying: i64,
    threshold: Option<i64>,
    percent: i64,
}

#[derive(Serialize)]
struct HomePage {
    member: u64,
    balance: i64,
    held: i64,
    expiring: Vec<(i64, i64)>,
    tier: Option<Tier>,
    vouchers: Vec<Voucher>,
    referral_code: Option<String>,
    referral_link: Option<String>,
    lines: Vec<super::console::LineView>,
    surveys: Vec<(u32, String)>,
    /// Members of the member's household pool, and what its owner may spend from it.
    household: Option<(i64, i64)>,
}

fn reward_names(ops: &Ops, lang: &str) -> std::collections::HashMap<u32, String> {
    crate::ops::engagement::rewards::rewards(ops, None)
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.id, localized(&r.spec.names, lang)))
        .collect()
}

fn home_page(ops: &Ops, m: MemberId, lang: &str) -> Result<HomePage, OpError> {
    let b = crate::ops::operator::member_balance(ops, m)?;
    let expiring = crate::ops::programme::expiring(ops, m)?
        .lots
        .iter()
        .take(6)
        .map(|(at, p)| (at.0, p.0))
        .collect();
    let tier = crate::ops::programme::tier(ops, m).ok().and_then(|t| {
        let policy = t.policy?;
        let level = t.state.level as usize;
        // Levels are those above the base: level L is `levels[L - 1]`.
        let name = match level {
            0 => super::i18n::text(lang_of(lang), "tier-base", &[]),
            l => policy.levels.get(l - 1)?.name.clone(),
        };
        let next = policy.levels.get(level);
        let threshold = next.map(|n| n.threshold);
        Some(Tier {
            name,
            next: next.map(|n| n.name.clone()),
            qualifying: t.qualifying,
            threshold,
            percent: threshold.map_or(100, |th| {
                (t.qualifying.max(0) * 100 / th.max(1)).clamp(0, 100)
            }),
        })
    });
    let names = reward_names(ops, lang);
    let vouchers = crate::ops::engagement::rewards::member_vouchers(ops, m)?
        .into_iter()
        .map(|v| Voucher {
            reward: names.get(&v.reward_id).cloned().unwrap_or_default(),
            code: v.code,
            status: format!("{:?}", v.status).to_lowercase(),
            expires_at_ms: v.expires_at_ms,
        })
        .collect();
    let (referral_code, referral_link) = match crate::ops::engagement::referrals::code_of(ops, m) {
        Ok((c, l)) => (Some(c), Some(l)),
        Err(_) => (None, None),
    };
    let answered: Vec<u32> = crate::ops::engagement::surveys::list(ops)?
        .iter()
        .filter(|s| {
            crate::ops::engagement::surveys::responses(ops, s.id)
                .map(|r| r.iter().any(|r| r.member_id == m.0))
                .unwrap_or(false)
        })
        .map(|s| s.id)
        .collect();
    let surveys = crate::ops::engagement::surveys::list(ops)?
        .into_iter()
        .filter(|s| !answered.contains(&s.id))
        .map(|s| (s.id, localized(&s.spec.names, lang)))
        .collect();
    let household = crate::ops::programme::household(ops, m)
        .ok()
        .flatten()
        .map(|h| (h.members.len() as i64, h.spendable().0));
    Ok(HomePage {
        member: m.0,
        balance: b.posted.0,
        held: b.pending.0,
        expiring,
        tier,
        vouchers,
        referral_code,
        referral_link,
        lines: super::console::statement_lines(ops, m, 5)?,
        surveys,
        household,
    })
}

async fn home(State(app): State<AppState>, v: Visit) -> Response {
    let m = match member(&v) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (ops, lang) = (app.ops.clone(), v.lang.code());
    super::show(
        &v,
        "portal/home.html",
        blocking(move || home_page(&ops, m, lang)).await,
    )
}

#[derive(Serialize)]
struct StatementPage {
    lines: Vec<super::console::LineView>,
}

async fn statement(State(app): State<AppState>, v: Visit) -> Response {
    let m = match member(&v) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let ops = app.ops.clone();
    match blocking(move || super::console::statement_lines(&ops, m, 100)).await {
        Ok(lines) => render(&v, "portal/statement.html", StatementPage { lines }),
        Err(e) => refusal(&v, &e),
    }
}

#[derive(Serialize)]
struct RewardView {
    id: u32,
    name: String,
    points: i64,
    partner: String,
    affordable: bool,
}

#[derive(Serialize)]
struct RewardsPage {
    balance: i64,
    rewards: Vec<RewardView>,
    issued: Option<String>,
}

async fn rewards(
    State(app): State<AppState>,
    v: Visit,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let m = match member(&v) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (ops, lang) = (app.ops.clone(), v.lang.code());
    let page = blocking(move || {
        let balance = crate::ops::operator::member_balance(&ops, m)?;
        let spendable = balance.available.0;
        let partners: std::collections::HashMap<u32, String> = ops
            .registry
            .partners()
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect();
        let rewards = crate::ops::engagement::rewards::offered_to(&ops, m)?
            .into_iter()
            .map(|r| RewardView {
                id: r.id,
                name: localized(&r.spec.names, lang),
                points: r.spec.points,
                partner: partners
                    .get(&r.spec.partner_id)
                    .cloned()
                    .unwrap_or_default(),
                affordable: r.spec.points <= spendable,
            })
            .collect();
        Ok(RewardsPage {
            balance: balance.posted.0,
            rewards,
            issued: None,
        })
    })
    .await;
    super::show(
        &v,
        "portal/rewards.html",
        page.map(|mut p| {
            p.issued = q.get("issued").cloned();
            p
        }),
    )
}

#[derive(Deserialize)]
struct RedeemForm {
    csrf: String,
    /// A reference the page made once: a double submit redeems once.
    reference: String,
}

async fn redeem(
    State(app): State<AppState>,
    v: Visit,
    Path(id): Path<u32>,
    Form(f): Form<RedeemForm>,
) -> Response {
    if let Err(r) = v.check_form(&f.csrf) {
        return r;
    }
    let m = match member(&v) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let reference: String = f
        .reference
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    if reference.is_empty() {
        return refusal(&v, &OpError::new(Kind::InvalidRequest, "reference missing"));
    }
    let ops = app.ops.clone();
    let r = crate::ops::engagement::rewards::Redeem {
        member: m,
        reward: id,
        reference: format!("portal-{}-{reference}", m.0),
        prize: false,
    };
    match blocking(move || crate::ops::engagement::rewards::redeem(&ops, &r)).await {
        Ok((voucher, _)) => {
            Redirect::to(&format!("/portal/rewards?issued={}", voucher.code)).into_response()
        }
        Err(e) => refusal(&v, &e),
    }
}

#[derive(Serialize)]
struct SurveyPage {
    id: u32,
    name: String,
    question: String,
    scores: Vec<u8>,
    thanks: bool,
}

async fn survey(State(app): State<AppState>, v: Visit, Path(id): Path<u32>) -> Response {
    if let Err(r) = member(&v) {
        return r;
    }
    let lang = v.lang.code();
    match crate::ops::engagement::surveys::get(&app.ops, id) {
        Ok(s) => render(
            &v,
            "portal/survey.html",
            SurveyPage {
                id,
                name: localized(&s.spec.names, lang),
                question: localized(&s.spec.nps_question, lang),
                scores: (0..=10).collect(),
                thanks: false,
            },
        ),
        Err(e) => refusal(&v, &e),
    }
}

#[derive(Deserialize)]
struct AnswerForm {
    csrf: String,
    score: String,
}

async fn answer(
    State(app): State<AppState>,
    v: Visit,
    Path(id): Path<u32>,
    Form(f): Form<AnswerForm>,
) -> Response {
    if let Err(r) = v.check_form(&f.csrf) {
        return r;
    }
    let m = match member(&v) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Ok(score) = f.score.trim().parse::<i64>() else {
        return refusal(
            &v,
            &OpError::new(Kind::SurveyRefused, v.t("survey-pick-score")),
        );
    };
    let ops = app.ops.clone();
    let input = crate::ops::engagement::surveys::AnswerInput {
        score,
        answers: vec![],
        partner: None,
        branch: None,
    };
    let lang = v.lang.code();
    match blocking(move || {
        crate::ops::engagement::surveys::answer(&ops, id, m, input)?;
        crate::ops::engagement::surveys::get(&ops, id)
    })
    .await
    {
        Ok(s) => render(
            &v,
            "portal/survey.html",
            SurveyPage {
                id,
                name: localized(&s.spec.names, lang),
                question: localized(&s.spec.nps_question, lang),
                scores: vec![],
                thanks: true,
            },
        ),
        Err(e) => refusal(&v, &e),
    }
}

#[derive(Serialize)]
struct ProfilePage {
    profile: Option<crate::members::Profile>,
    consent: Vec<(String, bool)>,
    saved: bool,
}

fn profile_page(ops: &Ops, m: MemberId) -> ProfilePage {
    let profile =
        crate::ops::profiles::get(ops, m, crate::members::Viewer::Operator, "member").ok();
    let consent = [Channel::Sms, Channel::Email, Channel::Push]
        .into_iter()
        .map(|c| {
            let granted = profile
                .as_ref()
                .and_then(|p| p.consent.get(&c))
                .is_some_and(|c| c.granted);
            (channel_code(c).to_string(), granted)
        })
        .collect();
    ProfilePage {
        profile,
        consent,
        saved: false,
    }
}

fn channel_code(c: Channel) -> &'static str {
    match c {
        Channel::Sms => "sms",
        Channel::Email => "email",
        Channel::Push => "push",
    }
}

async fn profile(State(app): State<AppState>, v: Visit) -> Response {
    let m = match member(&v) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let ops = app.ops.clone();
    super::show(
        &v,
        "portal/profile.html",
        blocking(move || Ok(profile_page(&ops, m))).await,
    )
}

async fn consent(
    State(app): State<AppState>,
    v: Visit,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = f
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if let Err(r) = v.check_form(&csrf) {
        return r;
    }
    let m = match member(&v) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let ops = app.ops.clone();
    let wanted: Vec<Channel> = [Channel::Sms, Channel::Email, Channel::Push]
        .into_iter()
        .filter(|c| f.iter().any(|(k, v)| k == channel_code(*c) && v == "on"))
        .collect();
    let done = blocking(move || {
        for c in [Channel::Sms, Channel::Email, Channel::Push] {
            crate::ops::profiles::set_consent(
                &ops,
                m,
                c,
                wanted.contains(&c),
                "portal",
                &format!("member {}", m.0),
            )?;
        }
        let mut p = profile_page(&ops, m);
        p.saved = true;
        Ok(p)
    })
    .await;
    super::show(&v, "portal/profile.html", done)
}

#[derive(Serialize)]
struct TransferPage {
    available: i64,
    done: Option<(i64, String)>,
    error: Option<String>,
}

async fn transfer_page(State(app): State<AppState>, v: Visit) -> Response {
    let m = match member(&v) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let ops = app.ops.clone();
    match blocking(move || crate::ops::operator::member_balance(&ops, m)).await {
        Ok(b) => render(
            &v,
            "portal/transfer.html",
            TransferPage {
                available: b.available.0,
                done: None,
                error: None,
            },
        ),
        Err(e) => refusal(&v, &e),
    }
}

#[derive(Deserialize)]
struct TransferForm {
    csrf: String,
    reference: String,
    to: String,
    points: String,
}

async fn transfer(State(app): State<AppState>, v: Visit, Form(f): Form<TransferForm>) -> Response {
    if let Err(r) = v.check_form(&f.csrf) {
        return r;
    }
    let m = match member(&v) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let ops = app.ops.clone();
    let to = f.to.trim().to_string();
    let found = {
        let (ops, to) = (ops.clone(), to.clone());
        blocking(move || Ok(identify(&ops, &to))).await
    };
    let outcome = match (found, f.points.trim().parse::<i64>()) {
        (Ok(Some(to_member)), Ok(points)) if to_member != m => {
            let reference: String = f
                .reference
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(32)
                .collect();
            crate::ops::programme::transfer(
                &ops,
                crate::ops::programme::OperatorTransfer {
                    reference: format!("portal-{}-{reference}", m.0),
                    from: m,
                    to: to_member,
                    points,
                    consent: format!("member {} in the portal, signed in by one-time code", m.0),
                },
            )
            .await
            .map(|_| (points, to.clone()))
        }
        (Ok(Some(_)), Ok(_)) => Err(OpError::new(Kind::InvalidRequest, v.t("transfer-self"))),
        (Ok(None), _) => Err(OpError::new(Kind::UnknownMember, v.t("transfer-unknown"))),
        (_, Err(_)) => Err(OpError::new(
            Kind::InvalidRequest,
            v.t("adjust-points-whole"),
        )),
        (Err(e), _) => Err(e),
    };
    let available = crate::ops::operator::member_balance(&ops, m)
        .map(|b| b.available.0)
        .unwrap_or(0);
    match outcome {
        Ok(done) => render(
            &v,
            "portal/transfer.html",
            TransferPage {
                available,
                done: Some(done),
                error: None,
            },
        ),
        Err(e) => super::render_status(
            &v,
            e.kind.status(),
            "portal/transfer.html",
            TransferPage {
                available,
                done: None,
                error: Some(e.detail),
            },
        ),
    }
}

#[derive(Serialize)]
struct JoinPage {
    code: String,
}

/// Where a referral link lands: the code to give when joining at a partner.
async fn join(
    v: Visit,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let code: String = q
        .get("ref")
        .map(|c| {
            c.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(32)
                .collect()
        })
        .unwrap_or_default();
    render(&v, "portal/join.html", JoinPage { code })
}
