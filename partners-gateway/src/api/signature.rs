//! Request signing for partners, and bearer tokens for operators.
//!
//! A partner signs every request with HMAC-SHA256, keyed by its secret (the ASCII string it was
//! given), over the canonical string
//!
//! ```text
//! METHOD \n PATH \n SORTED_QUERY \n TIMESTAMP \n NONCE \n hex(SHA-256(body))
//! ```
//!
//! and sends `x-key-id`, `x-timestamp` (Unix seconds), `x-nonce` and `x-signature` (hex).
//! `SORTED_QUERY` is the raw query string's `&`-separated pairs sorted bytewise (empty when there
//! is no query). The timestamp must be within the skew window of the gateway's clock, and a
//! nonce is accepted once per key within twice that window, so a captured request cannot be
//! replayed.

use crate::ops::error::{Kind, OpError};
use crate::ops::registry::{KeyRecord, Registry};
use crate::ops::PartnerCaller;
use hmac::Mac;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Header names.
pub const KEY_ID: &str = "x-key-id";
/// Unix seconds.
pub const TIMESTAMP: &str = "x-timestamp";
/// A value the partner never reuses (16 to 64 characters).
pub const NONCE: &str = "x-nonce";
/// Hex HMAC-SHA256 of the canonical string.
pub const SIGNATURE: &str = "x-signature";

/// Nonce length limits, in bytes.
pub const NONCE_LEN_MIN: usize = 16;
/// Upper limit.
pub const NONCE_LEN_MAX: usize = 64;

/// The signed parts of a request.
pub struct SignedRequest<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Path, as sent.
    pub path: &'a str,
    /// Raw query string, if any.
    pub query: Option<&'a str>,
    /// The four headers, if present.
    pub key_id: Option<&'a str>,
    /// `x-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `x-nonce`.
    pub nonce: Option<&'a str>,
    /// `x-signature`.
    pub signature: Option<&'a str>,
    /// The body bytes.
    pub body: &'a [u8],
}

pub use crate::signing::{canonical_string, sign};
use crate::signing::{write_canonical, Canonical};

/// Checks a partner request's signature, clock skew and nonce. Returns the caller.
pub fn verify(
    registry: &Registry,
    key: std::sync::Arc<KeyRecord>,
    nonces: &NonceCache,
    req: &SignedRequest<'_>,
    now_s: i64,
) -> Result<PartnerCaller, OpError> {
    let (Some(key_id), Some(ts), Some(nonce), Some(sig)) =
        (req.key_id, req.timestamp, req.nonce, req.signature)
    else {
        return Err(OpError::new(
            Kind::Unauthenticated,
            format!("sign the request: send {KEY_ID}, {TIMESTAMP}, {NONCE} and {SIGNATURE}"),
        ));
    };
    let ts_s: i64 = ts.parse().map_err(|_| {
        OpError::new(
            Kind::StaleTimestamp,
            format!("{TIMESTAMP} must be Unix seconds"),
        )
    })?;
    let skew = nonces.skew.as_secs();
    // `abs_diff`: a timestamp near i64::MIN must not overflow into the window.
    if now_s.abs_diff(ts_s) > skew {
        return Err(OpError::new(
            Kind::StaleTimestamp,
            format!("timestamp {ts_s} is more than {skew} s from the gateway's clock ({now_s})"),
        ));
    }
    let nonce_ok = (NONCE_LEN_MIN..=NONCE_LEN_MAX).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
    if !nonce_ok {
        return Err(OpError::new(
            Kind::BadSignature,
            format!(
                "{NONCE} must be {NONCE_LEN_MIN} to {NONCE_LEN_MAX} characters of A-Z, a-z, 0-9, -, _, . and ~"
            ),
        ));
    }
    debug_assert_eq!(key.key_id, key_id, "the key precheck found");
    let mut mac = registry.signing_mac(&key);
    let parts = Canonical {
        method: req.method,
        path: req.path,
        query: req.query,
        timestamp: ts,
        nonce,
        body: req.body,
    };
    write_canonical(|b| mac.update(b), &parts);
    // A signature is 32 bytes, 64 hex digits; other lengths are decoded as they come, to be
    // refused as not matching (or as not hex).
    let mut sig_array = [0u8; 32];
    let sig_vec;
    let sig_bytes: &[u8] = if hex::decode_to_slice(sig, &mut sig_array).is_ok() {
        &sig_array
    } else {
        sig_vec = hex::decode(sig)
            .map_err(|_| OpError::new(Kind::BadSignature, format!("{SIGNATURE} must be hex")))?;
        &sig_vec
    };
    // Constant-time comparison.
    mac.verify_slice(sig_bytes).map_err(|_| {
        OpError::new(
            Kind::BadSignature,
            "the signature does not match the canonical request; see docs/api.md",
        )
    })?;
    if key.revoked_at_ms.is_some() {
        return Err(OpError::new(
            Kind::KeyRevoked,
            format!("key {key_id} was revoked"),
        ));
    }
    Ok(PartnerCaller {
        partner: ledger::PartnerId(key.partner),
        key,
    })
}

/// The four signature headers are present (readable as text).
pub fn has_signature_headers(headers: &axum::http::HeaderMap) -> Result<(), OpError> {
    let present = |n: &str| headers.get(n).is_some_and(|v| v.to_str().is_ok());
    if [KEY_ID, TIMESTAMP, NONCE, SIGNATURE]
        .iter()
        .all(|n| present(n))
    {
        return Ok(());
    }
    Err(OpError::new(
        Kind::Unauthenticated,
        format!("sign the request: send {KEY_ID}, {TIMESTAMP}, {NONCE} and {SIGNATURE}"),
    ))
}

/// What can be checked of a signed request before its body is read: the four headers are
/// there, and the key exists and is not revoked.
pub fn precheck(
    registry: &Registry,
    headers: &axum::http::HeaderMap,
) -> Result<std::sync::Arc<KeyRecord>, OpError> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let (Some(key_id), Some(_), Some(_), Some(_)) = (
        header(KEY_ID),
        header(TIMESTAMP),
        header(NONCE),
        header(SIGNATURE),
    ) else {
        return Err(OpError::new(
            Kind::Unauthenticated,
            format!("sign the request: send {KEY_ID}, {TIMESTAMP}, {NONCE} and {SIGNATURE}"),
        ));
    };
    let key = registry
        .key(key_id)
        .ok_or_else(|| OpError::new(Kind::UnknownKey, format!("unknown key id {key_id:?}")))?;
    if key.revoked_at_ms.is_some() {
        return Err(OpError::new(
            Kind::KeyRevoked,
            format!("key {key_id} was revoked"),
        ));
    }
    Ok(key)
}

/// Records `req`'s nonce as seen, or refuses a replay. Called after the partner's rate limit
/// admitted the request, so that refused requests never fill the cache (one throttled partner
/// could otherwise lock every partner out).
pub fn spend_nonce(nonces: &NonceCache, req: &SignedRequest<'_>) -> Result<(), OpError> {
    let (Some(key_id), Some(nonce)) = (req.key_id, req.nonce) else {
        return Err(OpError::new(
            Kind::Unauthenticated,
            format!("sign the request: send {KEY_ID} and {NONCE}"),
        ));
    };
    nonces.check_and_insert(key_id, nonce)
}

const NONCE_SHARDS: usize = 16;

/// Remembers nonces for at least twice the skew window, in two rotating generations per shard.
/// Entries are 128-bit digests of (key id, nonce). Bounded: when full, new requests are refused
/// with 503 rather than letting memory grow.
pub struct NonceCache {
    skew: Duration,
    shard_capacity: usize,
    shards: Vec<Mutex<Generations>>,
    /// Nonces accepted here and not yet written to the nonce journal.
    pending: Mutex<Vec<u128>>,
    /// Nonces held, over all shards (for the fill metric).
    entries: std::sync::atomic::AtomicUsize,
}

/// Nonce ids are SHA-256 digests, which no caller can choose: they are hashed with foldhash,
/// cheaper than the standard library's SipHash.
type Ids = HashSet<u128, foldhash::fast::RandomState>;

struct Generations {
    current: Ids,
    previous: Ids,
    rotated: Instant,
}

impl NonceCache {
    /// A cache for a clock-skew window of `skew` holding at most `capacity` nonces.
    pub fn new(skew: Duration, capacity: usize) -> NonceCache {
        let shards = (0..NONCE_SHARDS)
            .map(|_| {
                Mutex::new(Generations {
                    current: Ids::default(),
                    previous: Ids::default(),
                    rotated: Instant::now(),
                })
            })
            .collect();
        NonceCache {
            skew,
            shard_capacity: capacity.div_ceil(NONCE_SHARDS).max(1),
            shards,
            pending: Mutex::new(Vec::new()),
            entries: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Nonces held now, and the most the cache holds. Size the capacity from the peak rate of
    /// accepted requests × 2 × the skew (a nonce is kept that long): the default 20,000,000
    /// covers 33,000 requests per second at the default skew of 300 s.
    pub fn fill(&self) -> (usize, usize) {
        (
            self.entries.load(std::sync::atomic::Ordering::Relaxed),
            self.shard_capacity * NONCE_SHARDS,
        )
    }

    /// Up to `max` nonces accepted since the last call, for the nonce journal.
    pub fn take_pending(&self, max: usize) -> Vec<u128> {
        let mut p = self.pending.lock().expect("pending nonces lock");
        let n = p.len().min(max);
        p.drain(..n).collect()
    }

    /// Marks nonces another gateway (or this one before a restart) accepted as seen.
    pub fn learn(&self, ids: &[u128]) {
        for id in ids {
            let mut g = self.shards[(*id as usize) % NONCE_SHARDS]
                .lock()
                .expect("nonce shard lock");
            if g.current.insert(*id) {
                self.entries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// The skew window.
    pub fn skew(&self) -> Duration {
        self.skew
    }

    fn check_and_insert(&self, key_id: &str, nonce: &str) -> Result<(), OpError> {
        let mut h = Sha256::new();
        h.update(key_id.as_bytes());
        h.update([0]);
        h.update(nonce.as_bytes());
        let d = h.finalize();
        let id = u128::from_le_bytes(d[..16].try_into().expect("16 bytes"));
        let mut g = self.shards[(id as usize) % NONCE_SHARDS]
            .lock()
            .expect("nonce shard lock");
        // A request is accepted while its timestamp is within ±skew, so a nonce must be kept
        // for 2 × skew; each generation spans 2 × skew and two are kept.
        if g.rotated.elapsed() >= self.skew * 2 {
            let current = std::mem::take(&mut g.current);
            let dropped = std::mem::replace(&mut g.previous, current);
            self.entries
                .fetch_sub(dropped.len(), std::sync::atomic::Ordering::Relaxed);
            g.rotated = Instant::now();
        }
        let replayed = || {
            OpError::new(
                Kind::ReplayedNonce,
                "this nonce was already used with this key; sign each request with a new nonce",
            )
        };
        if g.previous.contains(&id) {
            return Err(replayed());
        }
        if g.current.len() + g.previous.len() >= self.shard_capacity {
            if g.current.contains(&id) {
                return Err(replayed());
            }
            return Err(
                OpError::new(Kind::Overloaded, "the replay cache is full; retry shortly")
                    .retry_after(1),
            );
        }
        // One probe: the insert finds a nonce already seen in this generation.
        if !g.current.insert(id) {
            return Err(replayed());
        }
        drop(g);
        self.entries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.pending.lock().expect("pending nonces lock").push(id);
        Ok(())
    }
}

/// Reads `Authorization: Bearer <token>`.
pub fn bearer(header: Option<&str>) -> Result<&str, OpError> {
    header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            OpError::new(
                Kind::Unauthenticated,
                "send an operator token as Authorization: Bearer <token>",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_string_sorts_the_query_and_hashes_the_body() {
        let c = canonical_string("GET", "/v1/x", Some("b=2&a=1"), "100", "n", b"");
        assert_eq!(
            c,
            "GET\n/v1/x\na=1&b=2\n100\nn\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn nonce_is_accepted_once() {
        let cache = NonceCache::new(Duration::from_secs(60), 1000);
        cache.check_and_insert("k", "nonce-0000000001").unwrap();
        let e = cache.check_and_insert("k", "nonce-0000000001").unwrap_err();
        assert_eq!(e.kind, Kind::ReplayedNonce);
        // Same nonce under another key is a different request.
        cache.check_and_insert("k2", "nonce-0000000001").unwrap();
    }

    #[test]
    fn nonce_cache_refuses_when_full() {
        let cache = NonceCache::new(Duration::from_secs(60), NONCE_SHARDS);
        let mut refused = 0;
        for i in 0..200 {
            if let Err(e) = cache.check_and_insert("k", &format!("nonce-{i:012}")) {
                assert_eq!(e.kind, Kind::Overloaded);
                refused += 1;
            }
        }
        assert!(refused >= 200 - NONCE_SHARDS, "refused {refused}");
        // A nonce the full cache holds is still refused as a replay, and counts once.
        let held = (0..200)
            .map(|i| format!("nonce-{i:012}"))
            .find(|n| {
                cache.check_and_insert("k", n).map_err(|e| e.kind) == Err(Kind::ReplayedNonce)
            })
            .expect("the full cache holds some nonce");
        let (entries, _) = cache.fill();
        assert_eq!(
            cache.check_and_insert("k", &held).unwrap_err().kind,
            Kind::ReplayedNonce
        );
        assert_eq!(cache.fill().0, entries);
    }

    #[test]
    fn a_nonce_from_the_previous_generation_is_still_a_replay() {
        let cache = NonceCache::new(Duration::from_millis(250), 1000);
        cache.check_and_insert("k", "nonce-0000000001").unwrap();
        // Past 2 x skew, the next check rotates: the nonce moves to the previous generation
        // (and the checks after it fall well within the new generation's 500 ms).
        std::thread::sleep(Duration::from_millis(600));
        cache.check_and_insert("k", "nonce-0000000002").unwrap();
        assert_eq!(
            cache
                .check_and_insert("k", "nonce-0000000001")
                .unwrap_err()
                .kind,
            Kind::ReplayedNonce
        );
        assert_eq!(
            cache
                .check_and_insert("k", "nonce-0000000002")
                .unwrap_err()
                .kind,
            Kind::ReplayedNonce
        );
    }
}
