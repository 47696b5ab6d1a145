//! The one adapter every channel goes through: an HTTP request to the provider the operator
//! configured (an SMS gateway, a mail API, a push service), built from its URL, headers and
//! body template.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// How long a provider may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Longest header list.
pub const HEADERS_MAX: usize = 16;

/// A provider, as the operator configures it for one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderConfig {
    /// Where messages are posted (http or https).
    pub url: String,
    /// Headers sent with each request (an API key, say).
    pub headers: Vec<Header>,
    /// The request body: a template over `to` (phone, address or member id), `subject`,
    /// `text`, `language`, `message_id` and `member_id`, each written as JSON
    /// (`{"to": {{ to }}, "text": {{ text }}}`).
    pub body_template: String,
    /// The body's content type (default `application/json`).
    pub content_type: String,
}

/// A request header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Its name (`x-api-key`).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Its value.
    #[schema(max_length = 2000)]
    pub value: String,
}

/// What a provider answered: its status on 2xx, else the status (if any) and why.
pub use crate::events::delivery::Outcome;

/// Posts `body` to the provider. `message_id` goes in `Idempotency-Key`, so a provider that
/// honours it sends a message at most once however often the gateway retries.
pub async fn send(
    client: &reqwest::Client,
    p: &ProviderConfig,
    message_id: &str,
    body: String,
) -> Outcome {
    let mut req = client
        .post(&p.url)
        .timeout(TIMEOUT)
        .header("content-type", &p.content_type)
        .header("idempotency-key", message_id)
        .body(body);
    for h in &p.headers {
        req = req.header(&h.name, &h.value);
    }
    let answer = req.send().await.map_err(|e| (None, e.to_string()))?;
    let status = answer.status().as_u16();
    if answer.status().is_success() {
        Ok(status)
    } else {
        Err((Some(status), format!("provider answered {status}")))
    }
}

/// Whether `name: value` is a header reqwest can send.
pub fn valid_header(name: &str, value: &str) -> bool {
    reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
        && reqwest::header::HeaderValue::from_str(value).is_ok()
}
