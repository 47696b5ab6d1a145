//! The web: the operator console under `/console`, the member portal under `/portal`, and
//! their assets under `/assets`. Pages are rendered on the server (minijinja templates from
//! `web/templates`, messages from `web/locales`), in Persian or English; the only script is
//! ours (`web/assets/app.js`) and the vendored chart library, served from here: nothing comes
//! from another origin.
//!
//! Every page answers with a content security policy that allows only this origin, no inline
//! script or style, and no framing. Forms carry the session's CSRF token; a POST without it, or
//! from another site, is refused before anything runs.

// A page's refusal is the response itself (a redirect to sign in, a 403), made once per request.
#![allow(clippy::result_large_err)]

pub mod console;
pub mod dashboard;
pub mod i18n;
pub mod portal;
pub mod session;
pub mod view;

use crate::api::state::AppState;
use crate::ops::error::OpError;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use i18n::{Calendar, Lang};
use serde::Serialize;
use session::{Session, Sessions};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// What the pages keep beside the server's state.
#[derive(Default)]
pub struct Web {
    /// Console and portal sessions, and the portal's sign-in codes.
    pub sessions: Sessions,
    /// Write portal sign-in codes to the log when no provider can send them (the demo only).
    pub codes_in_log: bool,
}

/// The web's routes.
pub fn router(web: Arc<Web>) -> Router<AppState> {
    Router::new()
        .route("/assets/{file}", get(asset))
        .merge(console::routes())
        .merge(portal::routes())
        .route("/", get(|| async { Redirect::to("/portal") }))
        .layer(axum::middleware::from_fn(page_headers))
        .layer(Extension(web))
}

/// The policy every page and asset answers with.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; \
base-uri 'none'; frame-ancestors 'none'";

async fn page_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/assets/app.js"),
    ),
    (
        "chart.umd.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/assets/vendor/chart.umd.min.js"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == file) {
        Some((_, ty, body)) => (
            [
                (header::CONTENT_TYPE, *ty),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// The cookies of a request.
pub fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for v in headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    out
}

/// A session cookie: `__Host-` prefixed, secure, HTTP only, strict same-site.
pub fn session_cookie(name: &str, id: &str) -> String {
    format!("__Host-{name}={id}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// A cookie that ends `name`'s session.
pub fn clear_cookie(name: &str) -> String {
    format!("__Host-{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A visit: the language and calendar it is shown in, and its session if signed in.
pub struct Visit {
    /// The language.
    pub lang: Lang,
    /// The calendar dates are shown in.
    pub cal: Calendar,
    /// The session of the part visited (console or portal), if signed in.
    pub session: Option<(String, Session)>,
    /// The path visited.
    pub path: String,
    /// The client's address.
    pub peer: Option<std::net::IpAddr>,
    /// The request came from this site (or from a plain navigation); false when the browser
    /// says another site sent it.
    pub same_site: bool,
    /// The web state.
    pub web: Arc<Web>,
    /// The server state.
    pub app: AppState,
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let web = parts
            .extensions
            .get::<Arc<Web>>()
            .cloned()
            .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        let jar = cookies(&parts.headers);
        let default = match app.ops.registry.programme_settings().map(|s| s.language) {
            Some(crate::ops::registry::Language::En) => Lang::En,
            _ => Lang::Fa,
        };
        let lang = jar
            .get("lang")
            .and_then(|l| Lang::parse(l))
            .unwrap_or(default);
        let cal = jar
            .get("cal")
            .and_then(|c| Calendar::parse(c))
            .unwrap_or(match lang {
                Lang::Fa => Calendar::SolarHijri,
                Lang::En => Calendar::Gregorian,
            });
        let path = parts.uri.path().to_string();
        let name = if path.starts_with("/console") {
            "console"
        } else {
            "portal"
        };
        let session = match jar.get(&format!("__Host-{name}")).cloned() {
            Some(id) => {
                let (app, web) = (app.clone(), web.clone());
                let found = tokio::task::spawn_blocking(move || {
                    web.sessions
                        .get(&app.ops.registry, &id)
                        .map(|s| s.map(|s| (id, s)))
                })
                .await;
                match found {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "a session could not be read");
                        return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
                    }
                    Err(_) => return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
                }
            }
            None => None,
        };
        let same_site = parts
            .headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v == "same-origin" || v == "none");
        let peer = parts
            .extensions
            .get::<crate::listener::PeerAddr>()
            .map(|p| p.0.ip());
        Ok(Visit {
            lang,
            cal,
            session,
            path,
            peer,
            same_site,
            web,
            app: app.clone(),
        })
    }
}

impl Visit {
    /// The session's CSRF token, or empty.
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |(_, s)| s.csrf.as_str())
    }

    /// Refuses a form post without this session's CSRF token, or from another site.
    pub fn check_form(&self, token: &str) -> Result<(), Response> {
        let ok = self.same_site
            && self
                .session
                .as_ref()
                .is_some_and(|(_, s)| !s.csrf.is_empty() && s.csrf == token);
        if ok {
            Ok(())
        } else {
            Err((
                StatusCode::FORBIDDEN,
                "the form has expired or came from another site; reload the page and try again",
            )
                .into_response())
        }
    }

    /// Ends the visit's session, if any (sign-out, or a credential no longer live).
    pub async fn end_session(&self) {
        if let Some((id, _)) = &self.session {
            let (app, web, id) = (self.app.clone(), self.web.clone(), id.clone());
            let _ =
                tokio::task::spawn_blocking(move || web.sessions.end(&app.ops.registry, &id)).await;
        }
    }

    /// Starts a session for `who`; the cookie that carries it.
    pub async fn start_session(&self, who: session::Who, cookie: &str) -> Result<String, OpError> {
        let (app, web) = (self.app.clone(), self.web.clone());
        let id = crate::api::blocking(move || {
            web.sessions
                .start(&app.ops.registry, who)
                .map_err(crate::ops::partner::registry_error)
        })
        .await?;
        Ok(session_cookie(cookie, &id))
    }

    /// A message in the visit's language.
    pub fn t(&self, key: &str) -> String {
        i18n::text(self.lang, key, &[])
    }
}

fn env() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, src) in view::TEMPLATES {
            env.add_template(name, src).expect("the templates parse");
        }
        env.add_function(
            "t",
            |state: &minijinja::State, key: &str, kw: minijinja::value::Kwargs| {
                let lang = lang_of(state);
                let mut args = Vec::new();
                for k in kw.args() {
                    let v: minijinja::Value = kw.get(k)?;
                    let s = match v.as_i64() {
                        Some(n) => i18n::number(lang, n),
                        None => i18n::digits(lang, &v.to_string()),
                    };
                    args.push((k, s));
                }
                Ok::<_, minijinja::Error>(i18n::text(lang, key, &args))
            },
        );
        env.add_function("reference", || session::token()[..24].to_string());
        env.add_filter("num", |state: &minijinja::State, v: minijinja::Value| {
            let lang = lang_of(state);
            match v.as_i64() {
                Some(n) => i18n::number(lang, n),
                None => match f64::try_from(v.clone()) {
                    Ok(x) => i18n::decimal(lang, x, 1),
                    Err(_) => i18n::digits(lang, &v.to_string()),
                },
            }
        });
        env.add_filter("digits", |state: &minijinja::State, v: minijinja::Value| {
            i18n::digits(lang_of(state), &v.to_string())
        });
        env.add_filter("isodate", |state: &minijinja::State, d: &str| {
            let lang = lang_of(state);
            let cal = state
                .lookup("cal")
                .and_then(|c| c.as_str().and_then(Calendar::parse))
                .unwrap_or(Calendar::Gregorian);
            match chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                Ok(day) => i18n::date(lang, cal, day),
                Err(_) => i18n::digits(lang, d),
            }
        });
        env.add_filter("day", |state: &minijinja::State, ms: i64| {
            let lang = lang_of(state);
            let cal = state
                .lookup("cal")
                .and_then(|c| c.as_str().and_then(Calendar::parse))
                .unwrap_or(Calendar::Gregorian);
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| i18n::date(lang, cal, t.date_naive()))
                .unwrap_or_default()
        });
        env
    })
}

fn lang_of(state: &minijinja::State) -> Lang {
    state
        .lookup("lang")
        .and_then(|l| l.as_str().and_then(Lang::parse))
        .unwrap_or(Lang::En)
}

/// What every page's layout reads.
#[derive(Serialize)]
pub struct Frame<'a, T: Serialize> {
    /// `fa` or `en`.
    pub lang: &'static str,
    /// `rtl` or `ltr`.
    pub dir: &'static str,
    /// The language the switch offers.
    pub other_lang: &'static str,
    /// `gregorian` or `persian`.
    pub cal: &'static str,
    /// The session's CSRF token (every form carries it).
    pub csrf: &'a str,
    /// The path shown (the switch comes back to it).
    pub path: &'a str,
    /// `/console` or `/portal`: the part the page is in.
    pub base: &'static str,
    /// The signed-in operator's name and role, or the member's id.
    pub who: Option<String>,
    /// The operator may change things.
    pub can_write: bool,
    /// The page's own values.
    pub page: T,
}

/// Renders `template` for `visit` with the page's values.
pub fn render<T: Serialize>(visit: &Visit, template: &str, page: T) -> Response {
    render_status(visit, StatusCode::OK, template, page)
}

/// [`render`] with a status.
pub fn render_status<T: Serialize>(
    visit: &Visit,
    status: StatusCode,
    template: &str,
    page: T,
) -> Response {
    let (who, can_write) = match visit.session.as_ref().map(|(_, s)| &s.who) {
        Some(session::Who::Operator { name, role, .. }) => (
            Some(name.clone()),
            *role == crate::ops::registry::Role::Operator,
        ),
        Some(session::Who::Member(m)) => (Some(m.0.to_string()), true),
        None => (None, false),
    };
    let frame = Frame {
        lang: visit.lang.code(),
        dir: visit.lang.dir(),
        other_lang: visit.lang.other().code(),
        cal: visit.cal.code(),
        csrf: visit.csrf(),
        path: &visit.path,
        base: if visit.path.starts_with("/console") {
            "/console"
        } else {
            "/portal"
        },
        who,
        can_write,
        page,
    };
    match html(template, &frame) {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

/// The HTML of `template` for `frame`.
pub fn html<T: Serialize>(template: &str, frame: &Frame<T>) -> Result<String, minijinja::Error> {
    env()
        .get_template(template)?
        .render(minijinja::Value::from(minijinja::value::Serde(frame)))
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "page rendering failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the page could not be shown",
    )
        .into_response()
}

/// The page `template` with the operation's answer, or its refusal.
pub fn show<T: Serialize>(visit: &Visit, template: &str, r: Result<T, OpError>) -> Response {
    match r {
        Ok(page) => render(visit, template, page),
        Err(e) => refusal(visit, &e),
    }
}

/// An operation's refusal as a page: the problem's status and its detail.
pub fn refusal(visit: &Visit, e: &OpError) -> Response {
    #[derive(Serialize)]
    struct P<'a> {
        title: &'a str,
        detail: &'a str,
    }
    render_status(
        visit,
        e.kind.status(),
        "error.html",
        P {
            title: e.kind.title(),
            detail: &e.detail,
        },
    )
}

/// Sets the language or calendar cookie and goes back to `back` (a path on this site).
pub async fn switch(
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let back = q
        .get("back")
        .filter(|b| b.starts_with('/') && !b.starts_with("//"))
        .cloned()
        .unwrap_or_else(|| "/portal".into());
    let mut cookies = Vec::new();
    if let Some(l) = q.get("lang").and_then(|l| Lang::parse(l)) {
        cookies.push(format!(
            "lang={}; Path=/; SameSite=Lax; Max-Age=31536000",
            l.code()
        ));
    }
    if let Some(c) = q.get("cal").and_then(|c| Calendar::parse(c)) {
        cookies.push(format!(
            "cal={}; Path=/; SameSite=Lax; Max-Age=31536000",
            c.code()
        ));
    }
    let mut res = Redirect::to(&back).into_response();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// A redirect that also sets (or clears) a cookie.
pub fn redirect_with_cookie(to: &str, cookie: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_file_is_compiled_in() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/templates");
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).expect("templates folder") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "html") {
                    let rel = p.strip_prefix(&root).expect("under root");
                    files.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        files.sort();
        let mut listed: Vec<String> = view::TEMPLATES.iter().map(|(n, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(files, listed, "web/view.rs lists every template file");
    }

    #[test]
    fn every_template_parses() {
        let env = env();
        for (name, _) in view::TEMPLATES {
            env.get_template(name).expect(name);
        }
    }
}
