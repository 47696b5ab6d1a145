//! Sends requests signed as a partner signs them (see `docs/api.md`).

use partners_gateway::api::signature::{canonical_string, sign};
use std::collections::HashMap;
use std::path::Path;

/// A partner's credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Key id.
    pub key_id: String,
    /// Signing secret.
    pub secret: String,
}

/// The three demo partners' credentials, read from a `demo-credentials.env` file.
pub fn read_credentials(path: &Path) -> anyhow::Result<HashMap<u32, Credentials>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading credentials {}: {e}", path.display()))?;
    let env: HashMap<&str, &str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let mut out = HashMap::new();
    for (id, prefix, ..) in partners_gateway::demo::PARTNERS {
        let get = |k: &str| {
            env.get(format!("{prefix}_{k}").as_str())
                .map(|s| s.to_string())
                .ok_or_else(|| anyhow::anyhow!("{} lacks {prefix}_{k}", path.display()))
        };
        out.insert(
            id,
            Credentials {
                key_id: get("KEY_ID")?,
                secret: get("SECRET")?,
            },
        );
    }
    Ok(out)
}

/// An HTTP client for one gateway.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    partners: std::sync::Arc<HashMap<u32, Credentials>>,
}

/// What came back.
pub enum Reply {
    /// An HTTP answer.
    Http {
        /// Status.
        status: u16,
        /// Body.
        body: Vec<u8>,
    },
    /// No answer: the request may or may not have been applied.
    Transport(String),
}

impl Client {
    /// A client for `base` (`http://127.0.0.1:8080`); loopback only.
    pub fn new(base: &str, partners: HashMap<u32, Credentials>) -> anyhow::Result<Client> {
        let url = reqwest::Url::parse(base)?;
        let host = url.host_str().unwrap_or("");
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            anyhow::bail!("load tests target loopback addresses only, not {host}");
        }
        Ok(Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(4096)
                .tcp_nodelay(true)
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            partners: std::sync::Arc::new(partners),
        })
    }

    /// Sends one request signed as `partner`.
    pub async fn send(&self, partner: u32, method: &str, target: &str, body: &[u8]) -> Reply {
        let Some(c) = self.partners.get(&partner) else {
            return Reply::Transport(format!("no credentials for partner {partner}"));
        };
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let nonce = format!("{:032x}", rand::random::<u128>());
        let signature = sign(
            &c.secret,
            &canonical_string(method, path, query, &ts, &nonce, body),
        );
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let res = self
            .http
            .request(method, format!("{}{target}", self.base))
            .header("content-type", "application/json")
            .header("x-key-id", &c.key_id)
            .header("x-timestamp", ts)
            .header("x-nonce", nonce)
            .header("x-signature", signature)
            .body(body.to_vec())
            .send()
            .await;
        match res {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.bytes().await {
                    Ok(b) => Reply::Http {
                        status,
                        body: b.to_vec(),
                    },
                    Err(e) => Reply::Transport(e.to_string()),
                }
            }
            Err(e) => Reply::Transport(e.to_string()),
        }
    }
}
