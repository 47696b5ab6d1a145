//! One webhook delivery: the event's JSON posted to the receiver, signed as partners sign their
//! requests (`crate::signing`): `x-webhook-id` (the subscription), `x-timestamp` (Unix
//! seconds), `x-nonce` (the event id), `x-signature` (hex HMAC-SHA256 of the canonical string
//! `POST \n PATH \n SORTED_QUERY \n TIMESTAMP \n NONCE \n hex(SHA-256(body))`, keyed by the
//! subscription's secret).

use std::time::Duration;

/// Header naming the subscription.
pub const WEBHOOK_ID: &str = "x-webhook-id";

/// How long a receiver may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `url` is one a delivery can be posted to: http or https, with a host.
pub fn usable_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some())
}

/// What a receiver answered: its status on 2xx, else the status (if any) and why.
pub type Outcome = Result<u16, (Option<u16>, String)>;

/// The HTTP client deliveries go through.
pub type Client = reqwest::Client;

/// An HTTP client for deliveries: no redirects followed (a receiver answers where it was
/// asked).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client builds")
}

/// Posts `body` (the event `event_id`) to `url`, signed with `secret`. The receiver's status
/// when it answered 2xx; otherwise why not.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    subscription: u32,
    event_id: &str,
    body: Vec<u8>,
    now_s: i64,
) -> Outcome {
    let parsed = reqwest::Url::parse(url).map_err(|e| (None, format!("bad url: {e}")))?;
    let timestamp = now_s.to_string();
    let canonical = crate::signing::canonical_string(
        "POST",
        parsed.path(),
        parsed.query(),
        &timestamp,
        event_id,
        &body,
    );
    let answer = client
        .post(parsed)
        .timeout(TIMEOUT)
        .header("content-type", "application/json")
        .header(WEBHOOK_ID, subscription.to_string())
        .header("x-timestamp", &timestamp)
        .header("x-nonce", event_id)
        .header("x-signature", crate::signing::sign(secret, &canonical))
        .body(body)
        .send()
        .await
        .map_err(|e| (None, e.to_string()))?;
    let status = answer.status().as_u16();
    if answer.status().is_success() {
        Ok(status)
    } else {
        Err((Some(status), format!("receiver answered {status}")))
    }
}
