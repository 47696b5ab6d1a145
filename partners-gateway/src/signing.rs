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
    let mut pairs: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    pairs.sort_unstable();
    format!(
        "{method}\n{path}\n{}\n{timestamp}\n{nonce}\n{}",
        pairs.join("&"),
        hex::encode(Sha256::digest(body))
    )
}

/// Signs a canonical string with `secret`; what a partner's client does.
pub fn sign(secret: &str, canonical: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}
