//! The canonical string and HMAC-SHA256 signature every signed message carries: partners'
//! requests to the gateway (`api::signature`) and the gateway's webhook deliveries to
//! receivers (`events`), so one verification recipe serves both.
//!
//! ```text
//! METHOD \n PATH \n SORTED_QUERY \n TIMESTAMP \n NONCE \n hex(SHA-256(body))
//! ```

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The canonical string a partner signs.
pub fn canonical_string(
    method: &str,
    path: &str,
    query: Option<&str>,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> String {
    let mut out = Vec::with_capacity(160);
    let parts = Canonical {
        method,
        path,
        query,
        timestamp,
        nonce,
        body,
    };
    write_canonical(|b| out.extend_from_slice(b), &parts);
    String::from_utf8(out).expect("the parts are text and the body's digest is hex")
}

/// What a canonical string is made of.
pub struct Canonical<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The request path.
    pub path: &'a str,
    /// The query string, unsorted, if any.
    pub query: Option<&'a str>,
    /// Unix seconds, as sent.
    pub timestamp: &'a str,
    /// The nonce, as sent.
    pub nonce: &'a str,
    /// The body.
    pub body: &'a [u8],
}

/// Feeds the canonical string's bytes to `sink` in order, building no string: how the gateway
/// verifies a request (into the key's MAC) without allocating it. [`canonical_string`] is this
/// with a buffer for a sink, so the two cannot differ.
pub fn write_canonical(mut sink: impl FnMut(&[u8]), c: &Canonical<'_>) {
    sink(c.method.as_bytes());
    sink(b"\n");
    sink(c.path.as_bytes());
    sink(b"\n");
    if let Some(q) = c.query.filter(|q| !q.is_empty()) {
        let mut pairs: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
        pairs.sort_unstable();
        for (i, p) in pairs.iter().enumerate() {
            if i > 0 {
                sink(b"&");
            }
            sink(p.as_bytes());
        }
    }
    sink(b"\n");
    sink(c.timestamp.as_bytes());
    sink(b"\n");
    sink(c.nonce.as_bytes());
    sink(b"\n");
    let mut digest_hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(c.body), &mut digest_hex)
        .expect("a SHA-256 digest is 32 bytes, 64 in hex");
    sink(&digest_hex);
}

/// Signs a canonical string with `secret`; what a partner's client does.
pub fn sign(secret: &str, canonical: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical string as the API documents it, written the plain way.
    fn documented(m: &str, p: &str, q: Option<&str>, ts: &str, n: &str, body: &[u8]) -> String {
        let mut pairs: Vec<&str> = q
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .collect();
        pairs.sort_unstable();
        format!(
            "{m}\n{p}\n{}\n{ts}\n{n}\n{}",
            pairs.join("&"),
            hex::encode(Sha256::digest(body))
        )
    }

    /// Method, path, query, timestamp, nonce, body.
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a str,
        &'a str,
        &'a [u8],
    );

    #[test]
    fn the_canonical_bytes_fed_to_a_mac_are_the_documented_string() {
        let cases: [Case; 7] = [
            ("POST", "/v1/earn", None, "1700000000", "n-1", br#"{"a":1}"#),
            ("GET", "/v1/rates", Some(""), "1", "nonce_x", b""),
            ("GET", "/v1/x", Some("b=2&a=1"), "100", "n", b""),
            ("GET", "/v1/x", Some("&&c=3&&a=1&"), "100", "n", b"body"),
            ("GET", "/v1/x", Some("&&"), "100", "n", b""),
            (
                "POST",
                "/v1/members/عضو",
                Some("z=ی&a="),
                "9",
                "~.-_",
                "بدنه".as_bytes(),
            ),
            ("DELETE", "", None, "", "", &[0xff, 0x00, 0x10]),
        ];
        for (m, p, q, ts, n, body) in cases {
            let want = documented(m, p, q, ts, n, body);
            assert_eq!(canonical_string(m, p, q, ts, n, body), want);
            let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").expect("any key length");
            let parts = Canonical {
                method: m,
                path: p,
                query: q,
                timestamp: ts,
                nonce: n,
                body,
            };
            write_canonical(|b| mac.update(b), &parts);
            assert_eq!(
                hex::encode(mac.finalize().into_bytes()),
                sign("secret", &want),
                "{m} {p} {q:?}"
            );
        }
    }
}
