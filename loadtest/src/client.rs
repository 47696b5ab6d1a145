//! Sends requests signed as a partner signs them (see `docs/api.md`).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
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

/// An HTTP/1.1 client for one gateway: its own small pool of keep-alive connections, each a
/// hyper connection, so that the harness spends little of the machine it shares with the
/// gateway (a general client resolves and parses the URL and checks a pool out per request).
#[derive(Clone)]
pub struct Client {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    addr: std::net::SocketAddr,
    /// The `Host` header.
    host: String,
    partners: HashMap<u32, Credentials>,
    /// Connections ready for a request.
    idle: std::sync::Mutex<Vec<Sender>>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// How long a request may take, answer included.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What came back.
pub enum Reply {
    /// An HTTP answer.
    Http {
        /// Status.
        status: u16,
        /// Body.
        body: Bytes,
    },
    /// No answer: the request may or may not have been applied.
    Transport(String),
}

impl Client {
    /// A client for `base` (`http://127.0.0.1:8080`); loopback only.
    pub fn new(base: &str, partners: HashMap<u32, Credentials>) -> anyhow::Result<Client> {
        let uri: hyper::Uri = base.trim_end_matches('/').parse()?;
        if uri.scheme_str() != Some("http") {
            anyhow::bail!("the gateway URL must be http://host:port, not {base}");
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("{base} names no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(authority.host(), port))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{base}: no address"))?;
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "load tests target loopback addresses only, not {}",
                authority.host()
            );
        }
        Ok(Client {
            inner: std::sync::Arc::new(Inner {
                addr,
                host: authority.to_string(),
                partners,
                idle: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }

    /// Sends one request signed as `partner`.
    pub async fn send(&self, partner: u32, method: &str, target: &str, body: Bytes) -> Reply {
        match tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.try_send(partner, method, target, body),
        )
        .await
        {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => Reply::Transport(e),
            Err(_) => Reply::Transport(format!("no answer within {REQUEST_TIMEOUT:?}")),
        }
    }

    async fn try_send(
        &self,
        partner: u32,
        method: &str,
        target: &str,
        body: Bytes,
    ) -> Result<Reply, String> {
        let Some(c) = self.inner.partners.get(&partner) else {
            return Err(format!("no credentials for partner {partner}"));
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
            &canonical_string(method, path, query, &ts, &nonce, &body),
        );
        let request = |body: Bytes| {
            hyper::Request::builder()
                .method(method)
                .uri(target)
                .header(hyper::header::HOST, &self.inner.host)
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header("x-key-id", &c.key_id)
                .header("x-timestamp", &ts)
                .header("x-nonce", &nonce)
                .header("x-signature", &signature)
                .body(Full::new(body))
                .map_err(|e| e.to_string())
        };
        let mut sender = self.connection().await?;
        let res = match sender.send_request(request(body.clone())?).await {
            Ok(res) => res,
            // The connection closed before the request was written (the server ended an idle
            // connection): nothing was applied, so it goes once more on a new connection.
            Err(e) if e.is_canceled() => {
                sender = self.connect().await?;
                sender
                    .send_request(request(body)?)
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        self.inner.idle.lock().expect("pool lock").push(sender);
        Ok(Reply::Http { status, body })
    }

    /// An idle connection ready for a request, or a new one.
    async fn connection(&self) -> Result<Sender, String> {
        loop {
            let idle = self.inner.idle.lock().expect("pool lock").pop();
            match idle {
                Some(mut s) => {
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                None => return self.connect().await,
            }
        }
    }

    async fn connect(&self) -> Result<Sender, String> {
        let stream = tokio::net::TcpStream::connect(self.inner.addr)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.inner.addr))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(sender)
    }
}
