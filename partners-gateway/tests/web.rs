//! The console and the portal over HTTP, as a browser talks to them: sessions in `__Host-`
//! cookies, the CSRF token every form must return, the content security policy, the finance
//! role's read-only console, a revoked token ending its session, the portal's one-time codes
//! (nothing learned about who is a member, a code spent once), and the dashboard's CSV.
//! The same journeys run in a real browser in `web/tests/journeys.mjs`.

mod common;

use axum::routing::post;
use common::Gw;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A browser without a cookie jar or redirects: the test carries the cookie itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// Sends `req` with the cookie, if any, and reads the page.
async fn send(mut req: reqwest::RequestBuilder, cookie: Option<&str>) -> Page {
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let res = req.send().await.expect("request");
    Page {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap_or_default(),
    }
}

async fn get(gw: &Gw, path: &str, cookie: Option<&str>) -> Page {
    send(browser().get(format!("{}{path}", gw.base)), cookie).await
}

async fn post_form(
    gw: &Gw,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
    site: &str,
) -> Page {
    let req = browser()
        .post(format!("{}{path}", gw.base))
        .header("sec-fetch-site", site)
        .form(form);
    send(req, cookie).await
}

/// The `name=value` of a Set-Cookie answer, checked to carry the session cookie's attributes.
fn session_cookie(p: &Page, name: &str) -> String {
    let set = p
        .headers
        .get(SET_COOKIE)
        .unwrap_or_else(|| panic!("a cookie is set: {} {}", p.status, p.body))
        .to_str()
        .expect("ascii");
    assert!(set.starts_with(&format!("__Host-{name}=")), "{set}");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    set.split(';').next().expect("pair").to_string()
}

/// The CSRF token in a page's forms.
fn csrf(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf token");
    let rest = &body[at + 19..];
    rest[..rest.find('"').expect("end")].to_string()
}

async fn sign_in(gw: &Gw, token: &str) -> String {
    let p = post_form(
        gw,
        "/console/sign-in",
        None,
        &[("token", token)],
        "same-origin",
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    session_cookie(&p, "console")
}

async fn balance(gw: &Gw, m: u64) -> i64 {
    let r = gw.op("GET", &format!("/admin/v1/members/{m}"), None).await;
    r.body["posted"].as_i64().expect("posted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_need_a_session_and_answer_with_a_strict_policy() {
    let gw = Gw::start().await;
    let p = get(&gw, "/console/dashboard", None).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.headers[LOCATION], "/console/sign-in");
    let csp = p.headers["content-security-policy"].to_str().unwrap();
    assert_eq!(csp, partners_gateway::web::CSP);
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    // A wrong token: 401, no session.
    let bad = post_form(
        &gw,
        "/console/sign-in",
        None,
        &[("token", "nope")],
        "same-origin",
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.headers.get(SET_COOKIE).is_none());
    // A sign-in posted from another site is refused.
    let token = gw.cred("OPERATOR_TOKEN");
    let cross = post_form(
        &gw,
        "/console/sign-in",
        None,
        &[("token", &token)],
        "cross-site",
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert!(cross.headers.get(SET_COOKIE).is_none());
    let cookie = sign_in(&gw, &token).await;
    for (path, lang, text) in [
        ("/console/dashboard", "en", "Programme dashboard"),
        ("/console/members", "en", "Members"),
        ("/console/finance", "en", "Trial balance"),
        ("/console/campaigns", "fa", "کمپین"),
        ("/console/config", "fa", "پیکربندی"),
        ("/console/operations", "fa", "عملیات"),
    ] {
        let c = format!("{cookie}; lang={lang}");
        let p = get(&gw, path, Some(&c)).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.body);
        assert!(p.body.contains(text), "{path} in {lang}");
        let dir = if lang == "fa" { "rtl" } else { "ltr" };
        assert!(
            p.body.contains(&format!("lang=\"{lang}\" dir=\"{dir}\"")),
            "{path}"
        );
        assert!(!p.body.contains("<script>"), "{path}: no inline script");
        assert!(!p.body.contains(" style=\""), "{path}: no inline style");
    }
    // Assets are served from here, with their types.
    let js = get(&gw, "/assets/chart.umd.min.js", None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(
        get(&gw, "/assets/nothing.js", None).await.status,
        StatusCode::NOT_FOUND
    );
    // Signing out: `a_session_outlives_a_restart_and_sign_out_ends_it_for_good`.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_token_or_from_another_site_changes_nothing() {
    let gw = Gw::start().await;
    let cookie = sign_in(&gw, &gw.cred("OPERATOR_TOKEN")).await;
    let page = get(&gw, "/console/members/3", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let token = csrf(&page.body);
    let before = balance(&gw, 3).await;
    let form = |t: &str| {
        vec![
            ("csrf", t.to_string()),
            ("points", "100".to_string()),
            ("reason", "goodwill".to_string()),
            ("reference", "web-test-1".to_string()),
        ]
    };
    let send = |f: Vec<(&'static str, String)>, site: &'static str| {
        let gw = &gw;
        let cookie = cookie.clone();
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(gw, "/console/members/3/adjust", Some(&cookie), &pairs, site).await
        }
    };
    assert_eq!(
        send(form("wrong"), "same-origin").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(form(""), "same-origin").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(form(&token), "cross-site").await.status,
        StatusCode::FORBIDDEN
    );
    // Without the session cookie, the right token is no use either.
    let pairs = form(&token);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let anon = post_form(
        &gw,
        "/console/members/3/adjust",
        None,
        &pairs,
        "same-origin",
    )
    .await;
    assert_eq!(anon.status, StatusCode::FORBIDDEN);
    assert_eq!(balance(&gw, 3).await, before, "nothing posted");
    let ok = send(form(&token), "same-origin").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(balance(&gw, 3).await, before + 100);
    // The same reference again (a double submit) posts nothing twice.
    let again = send(form(&token), "same-origin").await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.headers[LOCATION], ok.headers[LOCATION]);
    assert_eq!(balance(&gw, 3).await, before + 100);
    // Bad input is refused with a page that says why, and changes nothing.
    let bad = [
        ("csrf", token.clone()),
        ("points", "ten".to_string()),
        ("reason", "x".to_string()),
        ("reference", "web-test-2".to_string()),
    ];
    let pairs: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let english = format!("{cookie}; lang=en");
    let refused = post_form(
        &gw,
        "/console/members/3/adjust",
        Some(&english),
        &pairs,
        "same-origin",
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains("whole number"));
    assert_eq!(balance(&gw, 3).await, before + 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_reads_the_console_and_a_revoked_token_ends_its_session() {
    let gw = Gw::start().await;
    let fin = sign_in(&gw, &gw.cred("FINANCE_TOKEN")).await;
    let page = get(&gw, "/console/members/4", Some(&fin)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.body.contains("/adjust\""),
        "no adjustment form for finance"
    );
    let before = balance(&gw, 4).await;
    let form = [
        ("csrf", csrf(&page.body)),
        ("points", "50".into()),
        ("reason", "x".into()),
        ("reference", "fin-1".into()),
    ];
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = post_form(
        &gw,
        "/console/members/4/adjust",
        Some(&fin),
        &pairs,
        "same-origin",
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(balance(&gw, 4).await, before);
    // A new operator signs in; its token is revoked; its next page asks it to sign in.
    let made = gw
        .op(
            "POST",
            "/admin/v1/operators",
            Some(json!({"name": "temp", "role": "operator"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let token = made.body["token"].as_str().expect("token").to_string();
    let id = made.body["id"].as_str().expect("id").to_string();
    let cookie = sign_in(&gw, &token).await;
    assert_eq!(
        get(&gw, "/console/dashboard", Some(&cookie)).await.status,
        StatusCode::OK
    );
    let revoked = gw
        .op("POST", &format!("/admin/v1/operators/{id}/revoke"), None)
        .await;
    assert!(revoked.status.is_success(), "{:?}", revoked.body);
    let after = get(&gw, "/console/dashboard", Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.headers[LOCATION], "/console/sign-in");
}

type Inbox = Arc<Mutex<Vec<Value>>>;

async fn fake_sms() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let got = inbox.clone();
    let app = axum::Router::new().route(
        "/sms",
        post(move |body: axum::Json<Value>| {
            let got = got.clone();
            async move {
                got.lock().unwrap().push(body.0);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/sms"), inbox)
}

async fn code_for(inbox: &Inbox, phone: &str, after: usize) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let got = inbox.lock().unwrap().clone();
        if let Some(m) = got.iter().skip(after).find(|m| m["to"] == phone) {
            let text = m["text"].as_str().expect("text");
            let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
            return digits[..6].to_string();
        }
        assert!(Instant::now() < end, "no code reached {phone}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_codes_tell_nothing_of_who_is_a_member_and_work_once() {
    let gw = Gw::start().await;
    let (url, inbox) = fake_sms().await;
    let p = gw
        .op(
            "PUT",
            "/admin/v1/notifications/providers/sms",
            Some(json!({"url": url, "headers": [],
                "body_template": "{\"to\": {{ to }}, \"text\": {{ text }}}"})),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    let phone = "+989121110007";
    let prof = gw
        .op(
            "PUT",
            "/admin/v1/members/7/profile",
            Some(json!({"name": "Sara", "phone": phone, "language": "en"})),
        )
        .await;
    assert_eq!(prof.status, 200, "{:?}", prof.body);
    let ask = |id: &'static str| {
        let gw = &gw;
        async move {
            let p = post_form(
                gw,
                "/portal/sign-in",
                None,
                &[("identifier", id)],
                "same-origin",
            )
            .await;
            assert_eq!(p.status, StatusCode::OK);
            assert!(p.headers.get(SET_COOKIE).is_none());
            p.body.replace(id, "ID")
        }
    };
    // A card of a member and a card of no one get the same page.
    let unknown = ask("TN999999").await;
    let known = ask("TN000007").await;
    assert_eq!(unknown, known, "the answer tells nothing");
    let code = code_for(&inbox, phone, 0).await;
    // A wrong code is refused; the right one signs in once.
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let w = post_form(
        &gw,
        "/portal/verify",
        None,
        &[("identifier", "TN000007"), ("code", wrong)],
        "same-origin",
    )
    .await;
    assert_eq!(w.status, StatusCode::UNAUTHORIZED);
    let ok = post_form(
        &gw,
        "/portal/verify",
        None,
        &[("identifier", "TN000007"), ("code", &code)],
        "same-origin",
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let cookie = session_cookie(&ok, "portal");
    let again = post_form(
        &gw,
        "/portal/verify",
        None,
        &[("identifier", "TN000007"), ("code", &code)],
        "same-origin",
    )
    .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "a code works once");
    // The phone itself signs in too (its code goes to the same phone).
    let sent = inbox.lock().unwrap().len();
    ask("+98 912 111 0007").await;
    let code2 = code_for(&inbox, phone, sent).await;
    let by_phone = post_form(
        &gw,
        "/portal/verify",
        None,
        &[("identifier", "+98 912 111 0007"), ("code", &code2)],
        "same-origin",
    )
    .await;
    assert_eq!(by_phone.status, StatusCode::SEE_OTHER);
    // The member's home page shows its balance; a console cookie is not a portal one.
    gw.op(
        "POST",
        "/admin/v1/members/7/adjustments",
        Some(json!({"reference": "portal-test", "points": 1234, "reason": "welcome"})),
    )
    .await;
    let home = get(&gw, "/portal", Some(&format!("{cookie}; lang=en"))).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("1,234"), "{}", home.body);
    let console = get(
        &gw,
        "/console/dashboard",
        Some(&cookie.replace("portal", "console")),
    )
    .await;
    assert_eq!(console.status, StatusCode::SEE_OTHER);
    // A fourth code within the window is not sent (three a member).
    let before = inbox.lock().unwrap().len();
    ask("TN000007").await;
    ask("TN000007").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        inbox.lock().unwrap().len(),
        before + 1,
        "three codes in fifteen minutes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_counts_what_was_posted_and_its_csv_says_the_same() {
    let gw = Gw::start().await;
    for (i, litres) in [10, 20, 30].into_iter().enumerate() {
        let r = gw
            .partner(
                2,
                "POST",
                "/v1/earn",
                Some(json!({"reference": format!("dash-{i}"), "member": "FC000005",
                    "amount": {"value": litres.to_string(), "unit": "litre"}, "branch": "station-001"})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let cookie = sign_in(&gw, &gw.cred("OPERATOR_TOKEN")).await;
    let c = format!("{cookie}; lang=en");
    let csv = get(&gw, "/console/dashboard/points-by-month.csv", Some(&c)).await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    assert!(csv.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("points-by-month.csv"));
    let rows: Vec<&str> = csv.body.trim().lines().collect();
    assert_eq!(rows.len(), 13, "a header and twelve months");
    assert_eq!(rows[0], ",Issued,Redeemed,Expired");
    // Two points a litre at station 1: 120 points issued this month (the last row).
    let last: Vec<&str> = rows[12].split(',').collect();
    assert_eq!(last[1], "120", "{}", csv.body);
    let partners = get(&gw, "/console/dashboard/partners.csv", Some(&c)).await;
    assert!(
        partners
            .body
            .lines()
            .any(|l| l.starts_with("FuelCo stations,120,0,3,")),
        "{}",
        partners.body
    );
    let page = get(&gw, "/console/dashboard", Some(&c)).await;
    assert!(
        page.body.contains("data-kpi=\"kpi-members\">50<"),
        "{}",
        page.body
    );
    assert_eq!(
        get(&gw, "/console/dashboard/nothing.csv", Some(&c))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changes_go_through_the_api_checks_and_name_their_author() {
    let gw = Gw::start().await;
    let cookie = sign_in(&gw, &gw.cred("OPERATOR_TOKEN")).await;
    let c = format!("{cookie}; lang=en");
    let page = get(&gw, "/console/config", Some(&c)).await;
    assert!(page.body.contains("name=\"target\" value=\"tier-policy\""));
    let token = csrf(&page.body);
    let edit = |body: String| {
        let (gw, c, token) = (&gw, c.clone(), token.clone());
        async move {
            post_form(
                gw,
                "/console/config",
                Some(&c),
                &[("csrf", &token), ("target", "tier-policy"), ("body", &body)],
                "same-origin",
            )
            .await
        }
    };
    // Refused by the API's own check: nothing recorded, the reason shown, the body kept.
    let bad = json!({"reference": "t-0", "levels": [{"name": "Silver", "threshold": 0}],
        "basis": "points", "window": "rolling12_months", "grace_periods": 1, "reason": "review"});
    let refused = edit(bad.to_string()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains("thresholds of 1"), "{}", refused.body);
    assert!(refused.body.contains("&quot;t-0&quot;") || refused.body.contains("t-0"));
    let none = gw.op("GET", "/admin/v1/policies/tier/versions", None).await;
    assert_eq!(
        none.body["versions"].as_array().map_or(0, Vec::len),
        0,
        "{:?}",
        none.body
    );
    assert_eq!(
        edit("{not json".into()).await.status,
        StatusCode::BAD_REQUEST
    );
    let good = json!({"reference": "t-1", "levels": [{"name": "نقره‌ای", "threshold": 1500}],
        "basis": "points", "window": "rolling12_months", "grace_periods": 1, "reason": "launch tiers"});
    let saved = edit(good.to_string()).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let v = gw.op("GET", "/admin/v1/policies/tier/versions", None).await;
    let versions = v.body["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "{:?}", v.body);
    let text = versions[0].to_string();
    assert!(
        text.contains("demo-operator") && text.contains("launch tiers"),
        "{text}"
    );
    // Only the listed targets, and not for the finance role.
    let other = post_form(
        &gw,
        "/console/config",
        Some(&c),
        &[("csrf", &token), ("target", "operators"), ("body", "{}")],
        "same-origin",
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    // A campaign made in the console, then paused from its editor: a second version.
    let made = post_form(
        &gw,
        "/console/campaigns",
        Some(&c),
        &[
            ("csrf", &token),
            ("name", "Double Friday"),
            ("reason", "promo"),
            ("partner", "2"),
            ("effect", "multiplier"),
            ("value", "2"),
        ],
        "same-origin",
    )
    .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let cfg = get(&gw, "/console/config", Some(&c)).await;
    let at = cfg
        .body
        .find("value=\"campaign\"")
        .expect("a campaign editor");
    let rest = &cfg.body[at..];
    let start = rest.find("required>").expect("textarea") + "required>".len();
    let text = &rest[start..start + rest[start..].find("</textarea>").expect("end")];
    let text = text.replace("&quot;", "\"").replace("&#x2f;", "/");
    let mut body: Value = serde_json::from_str(&text).expect("the editor holds the definition");
    assert_eq!(body["name"], "Double Friday");
    body["active"] = json!(false);
    body["reason"] = json!("paused for the holiday");
    let id = made.headers[LOCATION]
        .to_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .to_string();
    let paused = post_form(
        &gw,
        "/console/config",
        Some(&c),
        &[
            ("csrf", &token),
            ("target", "campaign"),
            ("id", &id),
            ("body", &body.to_string()),
        ],
        "same-origin",
    )
    .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    let versions = gw
        .op("GET", &format!("/admin/v1/campaigns/{id}"), None)
        .await;
    let text = versions.body.to_string();
    assert!(
        text.contains("paused for the holiday") && text.contains("demo-operator"),
        "{text}"
    );
    let fin = sign_in(&gw, &gw.cred("FINANCE_TOKEN")).await;
    let fin_page = get(&gw, "/console/config", Some(&fin)).await;
    assert!(
        !fin_page.body.contains("name=\"target\""),
        "no editors for finance"
    );
    let fin_post = post_form(
        &gw,
        "/console/config",
        Some(&fin),
        &[
            ("csrf", &csrf(&fin_page.body)),
            ("target", "tier-policy"),
            ("body", &good.to_string()),
        ],
        "same-origin",
    )
    .await;
    assert_eq!(fin_post.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_file_uploaded_in_the_console_is_reconciled() {
    let gw = Gw::start().await;
    let earn = gw
        .partner(
            1,
            "POST",
            "/v1/earn",
            Some(json!({"reference": "REC-1", "member": "FF000009",
                "amount": {"value": "1000", "unit": "mile"}})),
        )
        .await;
    assert_eq!(earn.status, 200, "{:?}", earn.body);
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let cookie = sign_in(&gw, &gw.cred("FINANCE_TOKEN")).await;
    let c = format!("{cookie}; lang=en");
    let page = get(&gw, "/console/finance", Some(&c)).await;
    let token = csrf(&page.body);
    let file = "reference,time,member_reference,amount,points\nREC-1,,FF000009,1000,1000\nREC-X,,FF000009,5,5\n";
    let boundary = "xBOUNDARYx";
    let mut body = String::new();
    for (name, value, filename) in [
        ("csrf", token.as_str(), None),
        ("partner", "1", None),
        ("period", month.as_str(), None),
        ("csv", file, Some("skyways.csv")),
    ] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
        ));
        if let Some(f) = filename {
            body.push_str(&format!("; filename=\"{f}\"\r\nContent-Type: text/csv"));
        }
        body.push_str(&format!("\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let res = browser()
        .post(format!("{}/console/finance/reconcile", gw.base))
        .header(COOKIE, &c)
        .header("sec-fetch-site", "same-origin")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("1 lines match the ledger"), "{html}");
    assert!(
        html.contains("REC-X"),
        "the line missing from the ledger is named: {html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlives_a_restart_and_sign_out_ends_it_for_good() {
    let gw = Gw::start().await;
    let cookie = sign_in(&gw, &gw.cred("OPERATOR_TOKEN")).await;
    assert_eq!(
        get(&gw, "/console/dashboard", Some(&cookie)).await.status,
        StatusCode::OK
    );
    let data = gw.data_dir();
    let dir = gw.stop().await;
    let config = partners_gateway::config::Config::for_tests(&data);
    let gw = Gw::start_in(dir, config).await;
    let page = get(&gw, "/console/members", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "the session is in the store");
    let out = post_form(
        &gw,
        "/console/sign-out",
        Some(&cookie),
        &[("csrf", &csrf(&page.body))],
        "same-origin",
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        get(&gw, "/console/members", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );
}
