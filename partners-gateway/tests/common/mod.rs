//! A gateway on a temporary store with the demo coalition, and a client that signs like a
//! partner.

#![allow(dead_code)]

use partners_gateway::api::signature as auth;
use partners_gateway::config::Config;
use partners_gateway::{start, Running};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

pub struct Gw {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub creds: HashMap<String, String>,
    pub http: reqwest::Client,
    running: Option<Running>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The problem type's slug, or "" when the answer is not a problem.
    pub fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("/problems/"))
            .unwrap_or("")
    }
}

/// Partner ids of the demo coalition by env prefix.
pub fn partner_prefix(id: u32) -> &'static str {
    partners_gateway::demo::env_prefix(id).expect("a demo partner")
}

impl Gw {
    pub async fn start() -> Gw {
        Gw::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Gw {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests(&dir.path().join("data"));
        tune(&mut config);
        Gw::start_in(dir, config).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: Config) -> Gw {
        let running = start(config).await.expect("gateway starts");
        let creds_path = running
            .demo_credentials
            .clone()
            .unwrap_or_else(|| dir.path().join("data/demo-credentials.env"));
        let creds = read_env(&creds_path);
        Gw {
            base: format!("http://{}", running.addr),
            dir,
            creds,
            http: reqwest::Client::new(),
            running: Some(running),
        }
    }

    /// The running gateway's handler state.
    pub fn app(&self) -> partners_gateway::api::state::AppState {
        self.running
            .as_ref()
            .and_then(Running::state)
            .expect("the gateway runs")
    }

    /// Polls `/readyz` until it answers 200 (at most 30 s): every answer before must be the
    /// warm-up's 503. Returns the 200 answer.
    pub async fn ready(&self) -> Answer {
        for _ in 0..600 {
            let a = self.raw("GET", "/readyz", vec![], vec![]).await;
            if a.status == StatusCode::OK {
                return a;
            }
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
            assert!(
                a.body["detail"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("warming up"),
                "{}",
                a.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the gateway never became ready");
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the gateway; the data directory stays for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.running
            .take()
            .expect("running")
            .stop()
            .await
            .expect("clean stop");
        self.dir
    }

    pub fn cred(&self, name: &str) -> String {
        self.creds
            .get(name)
            .unwrap_or_else(|| panic!("credential {name}"))
            .clone()
    }

    /// A signed request as partner `id` with its demo key.
    pub async fn partner(
        &self,
        id: u32,
        method: &str,
        target: &str,
        body: Option<Value>,
    ) -> Answer {
        let p = partner_prefix(id);
        let (key, secret) = (
            self.cred(&format!("{p}_KEY_ID")),
            self.cred(&format!("{p}_SECRET")),
        );
        self.signed_as(&key, &secret, method, target, body).await
    }

    /// A request signed with `key_id` and `secret`.
    pub async fn signed_as(
        &self,
        key_id: &str,
        secret: &str,
        method: &str,
        target: &str,
        body: Option<Value>,
    ) -> Answer {
        let bytes = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        let ts = now_s().to_string();
        let nonce = format!("n-{}", hex_random());
        let headers = sign_headers(key_id, secret, method, target, &ts, &nonce, &bytes);
        self.raw(method, target, headers, bytes).await
    }

    /// A request with exactly these headers and body bytes.
    pub async fn raw(
        &self,
        method: &str,
        target: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = self
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{target}", self.base),
            )
            .body(body);
        let mut has_ct = false;
        for (k, v) in headers {
            has_ct |= k.eq_ignore_ascii_case("content-type");
            req = req.header(k, v);
        }
        if !has_ct {
            req = req.header("content-type", "application/json");
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// An operator API request with the demo operator (or finance) token.
    pub async fn op(&self, method: &str, target: &str, body: Option<Value>) -> Answer {
        let token = self.cred("OPERATOR_TOKEN");
        self.bearer(&token, method, target, body).await
    }

    pub async fn bearer(
        &self,
        token: &str,
        method: &str,
        target: &str,
        body: Option<Value>,
    ) -> Answer {
        let bytes = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        self.raw(
            method,
            target,
            vec![("authorization".into(), format!("Bearer {token}"))],
            bytes,
        )
        .await
    }

    /// Balances that any change to the ledger would move: the members given and every partner
    /// and programme account.
    pub async fn fingerprint(&self, members: &[u64]) -> Value {
        let mut out = serde_json::Map::new();
        for m in members {
            let a = self
                .op("GET", &format!("/admin/v1/members/{m}"), None)
                .await;
            assert_eq!(a.status, 200, "{:?}", a.body);
            out.insert(format!("member/{m}"), a.body);
        }
        let mut accounts = vec![
            "programme%2Fpromotions".to_string(),
            "programme%2Fadjustments".to_string(),
            "programme%2Ffloat".to_string(),
        ];
        for p in 1..=3 {
            accounts.push(format!("partner%2F{p}%2Fissuance"));
            accounts.push(format!("partner%2F{p}%2Fredemption"));
        }
        for a in accounts {
            let r = self
                .op("GET", &format!("/admin/v1/accounts/{a}"), None)
                .await;
            assert_eq!(r.status, 200, "{a}: {:?}", r.body);
            out.insert(a, r.body);
        }
        Value::Object(out)
    }

    /// Earns `miles` at the airline for demo member `n`.
    pub async fn earn_miles(&self, n: u64, reference: &str, miles: &str) -> Answer {
        self.partner(
            1,
            "POST",
            "/v1/earn",
            Some(
                json!({"reference": reference, "member": format!("FF{n:06}"),
                        "amount": {"value": miles, "unit": "mile"}}),
            ),
        )
        .await
    }
}

pub fn sign_headers(
    key_id: &str,
    secret: &str,
    method: &str,
    target: &str,
    ts: &str,
    nonce: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let canonical = auth::canonical_string(method, path, query, ts, nonce, body);
    vec![
        ("x-key-id".into(), key_id.into()),
        ("x-timestamp".into(), ts.into()),
        ("x-nonce".into(), nonce.into()),
        ("x-signature".into(), auth::sign(secret, &canonical)),
    ]
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn hex_random() -> String {
    partners_gateway::ops::registry::random_hex(12)
}

pub fn read_env(path: &std::path::Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The shell blocks between `begin` and `end` in a doc.
pub fn shell_blocks(doc: &str, begin: &str, end: &str) -> String {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(doc),
    )
    .unwrap();
    let from = text.find(begin).expect("begin marker");
    let to = text.find(end).expect("end marker");
    let mut script = String::new();
    let mut in_sh = false;
    for line in text[from..to].lines() {
        match line.trim_end() {
            "```sh" => in_sh = true,
            "```" if in_sh => in_sh = false,
            l if in_sh => {
                script.push_str(l);
                script.push('\n');
            }
            _ => {}
        }
    }
    script
}

/// The recipe between `begin` and `end` in `doc`, after the `signed` function of docs/api.md's
/// recipe (its first block), with the gateway binary on the `PATH`.
pub fn doc_recipe(doc: &str, begin: &str, end: &str) -> String {
    let api = shell_blocks(
        "docs/api.md",
        "<!-- recipe:begin -->",
        "<!-- recipe:end -->",
    );
    let signing = api
        .split("\n}\n")
        .next()
        .expect("the signed function")
        .to_string()
        + "\n}\n";
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_partners-gateway"))
        .parent()
        .expect("the binary's directory")
        .display()
        .to_string();
    format!("export PATH=\"{bin}:$PATH\"\n") + &signing + &shell_blocks(doc, begin, end)
}

/// Runs `script` with bash against `gw` (the shell recipes of the docs); fails the test unless
/// it succeeds. Its stdout.
pub async fn run_recipe(gw: &Gw, script: &str) -> String {
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -e\n{script}"))
        .current_dir(gw.dir.path())
        .env("GATEWAY", &gw.base)
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "recipe failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A data directory and a loopback port of a test's own, for gateway processes it starts,
/// kills and starts again.
pub struct Fresh {
    /// Holds the directory until the test ends.
    pub dir: tempfile::TempDir,
    /// The data directory.
    pub data: PathBuf,
    /// The port.
    pub port: u16,
    /// `http://127.0.0.1:{port}`.
    pub base: String,
}

impl Fresh {
    pub fn new() -> Fresh {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Fresh {
            dir,
            data,
            base: format!("http://127.0.0.1:{port}"),
            port,
        }
    }

    /// Starts the gateway binary on the data directory (the demo on the first start), ready;
    /// the demo credentials with it.
    pub async fn start(&self) -> (tokio::process::Child, HashMap<String, String>) {
        let child = gateway_process(&self.data, self.port).await;
        (child, read_env(&self.data.join("demo-credentials.env")))
    }
}

/// The gateway binary on `data`, serving the demo (20 members) at `port`, ready: a process a
/// test can kill -9.
pub async fn gateway_process(data: &std::path::Path, port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_partners-gateway"))
        .args(["serve", "--demo", "--demo-members", "20", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the gateway starts");
    let url = format!("http://127.0.0.1:{port}/readyz");
    for _ in 0..300 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            return child;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the gateway never became ready");
}

/// An earn of `miles` at the airline for `member` (its reference there), signed with the demo
/// credentials `creds`, posted to the gateway at `base`: the transaction id.
pub async fn signed_earn(
    http: &reqwest::Client,
    base: &str,
    creds: &HashMap<String, String>,
    reference: &str,
    member: &str,
    miles: &str,
) -> String {
    let body = serde_json::to_vec(&json!({"reference": reference, "member": member,
        "amount": {"value": miles, "unit": "mile"}}))
    .unwrap();
    let headers = sign_headers(
        &creds["SKYWAYS_KEY_ID"],
        &creds["SKYWAYS_SECRET"],
        "POST",
        "/v1/earn",
        &now_s().to_string(),
        &format!("n-{}", hex_random()),
        &body,
    );
    let mut req = http
        .post(format!("{base}/v1/earn"))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let answer: Value = req.send().await.unwrap().json().await.unwrap();
    answer["transaction_id"]
        .as_str()
        .unwrap_or_else(|| panic!("earned: {answer}"))
        .to_string()
}
