//! Sessions of the console and the portal, and the portal's one-time sign-in codes.
//!
//! A session id is 256 random bits in a `__Host-` cookie (`Secure`, `HttpOnly`,
//! `SameSite=Strict`, path `/`); the store keeps only its SHA-256 (`G h`, through
//! `ops/registry/web.rs`), so every gateway on the store knows the session and a restart signs
//! no one out. Each session has its own CSRF token, which every form carries and every POST
//! must return. Sessions end after 30 minutes without a request, 12 hours after sign-in, or at
//! sign-out. An operator's session is checked against the operator's credential at every
//! request, so a revoked or expired token ends it.
//!
//! Codes: six digits, kept as their SHA-256 with an expiry and a count of wrong guesses, read
//! and changed in one store transaction, so two gateways cannot both accept a code or both
//! send a member's fourth code in the window. Every call here does store I/O: callers run it
//! off the async threads.

use crate::ops::registry::{Registry, RegistryError, Role, SessionRecord, SessionWho};
use ledger::{MemberId, Timestamp};
use rand::RngCore;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle time that ends a session.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// Longest session.
pub const LONGEST: Duration = Duration::from_secs(12 * 3600);
/// A session's last use is written at most this often.
const SEEN_EVERY_MS: i64 = 60_000;
/// Expired sessions are swept at most this often, by the gateway signing someone in.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// A sign-in code's life.
pub const CODE_LIFE: Duration = Duration::from_secs(10 * 60);
/// Wrong guesses that spend a code.
pub const CODE_TRIES: u32 = 5;
/// Codes one member may be sent in [`CODE_WINDOW`].
pub const CODES_PER_WINDOW: usize = 3;
/// See [`CODES_PER_WINDOW`].
pub const CODE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Code requests one address may make in [`CODE_WINDOW`] (on each gateway).
pub const ASKS_PER_ADDRESS: usize = 10;
/// Addresses whose asks are remembered at most.
const ADDRESSES_MAX: usize = 100_000;

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// An operator or finance user, by its token's SHA-256 (the token itself is never kept).
    Operator {
        /// SHA-256 of the token.
        token_hash: [u8; 32],
        /// Its name.
        name: String,
        /// Whether it may change things (`operator`) or only read (`finance`).
        role: Role,
    },
    /// A member of the programme.
    Member(MemberId),
}

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub who: Who,
    /// The CSRF token its forms carry.
    pub csrf: String,
}

/// What a gateway keeps beside the stored sessions: its own per-address limit on code
/// requests, and when it last swept.
pub struct Sessions {
    asked: Mutex<HashMap<std::net::IpAddr, Vec<Instant>>>,
    swept: Mutex<Instant>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            asked: Mutex::default(),
            swept: Mutex::new(Instant::now()),
        }
    }
}

/// SHA-256 of `s`: how a session id, a code and an operator token are kept.
pub fn hash(s: &str) -> [u8; 32] {
    sha2::Sha256::digest(s.as_bytes()).into()
}

/// A fresh random token: 32 bytes, hex.
pub fn token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn now_ms() -> i64 {
    Timestamp::now().0
}

fn to_stored(who: &Who) -> SessionWho {
    match who {
        Who::Operator {
            token_hash,
            name,
            role,
        } => SessionWho::Operator {
            token_hash: hex::encode(token_hash),
            name: name.clone(),
            role: *role,
        },
        Who::Member(m) => SessionWho::Member { member: m.0 },
    }
}

fn from_stored(w: &SessionWho) -> Option<Who> {
    Some(match w {
        SessionWho::Operator {
            token_hash,
            name,
            role,
        } => Who::Operator {
            token_hash: hex::decode(token_hash).ok()?.try_into().ok()?,
            name: name.clone(),
            role: *role,
        },
        SessionWho::Member { member } => Who::Member(MemberId(*member)),
    })
}

fn expired(r: &SessionRecord, now: i64) -> bool {
    now - r.seen_ms >= IDLE.as_millis() as i64 || now - r.started_ms >= LONGEST.as_millis() as i64
}

impl Sessions {
    /// Starts a session for `who`; returns its id (for the cookie).
    pub fn start(&self, reg: &Registry, who: Who) -> Result<String, RegistryError> {
        let id = token();
        let now = now_ms();
        reg.put_web_session(
            &hash(&id),
            &SessionRecord {
                who: to_stored(&who),
                csrf: token(),
                started_ms: now,
                seen_ms: now,
            },
        )?;
        let due = {
            let mut swept = self.swept.lock().expect("sweep time");
            let due = swept.elapsed() >= SWEEP_EVERY;
            if due {
                *swept = Instant::now();
            }
            due
        };
        if due {
            reg.sweep_web_sessions(10_000, &|r| expired(r, now))?;
        }
        Ok(id)
    }

    /// The live session with this id (its last use written when a minute old).
    pub fn get(&self, reg: &Registry, id: &str) -> Result<Option<Session>, RegistryError> {
        let k = hash(id);
        let Some(mut r) = reg.web_session(&k)? else {
            return Ok(None);
        };
        let now = now_ms();
        if expired(&r, now) {
            reg.end_web_session(&k)?;
            return Ok(None);
        }
        if now - r.seen_ms >= SEEN_EVERY_MS {
            r.seen_ms = now;
            reg.put_web_session(&k, &r)?;
        }
        Ok(from_stored(&r.who).map(|who| Session { who, csrf: r.csrf }))
    }

    /// Ends the session with this id.
    pub fn end(&self, reg: &Registry, id: &str) -> Result<(), RegistryError> {
        reg.end_web_session(&hash(id))
    }

    /// Sessions stored (at most 100,000 counted).
    pub fn live(&self, reg: &Registry) -> usize {
        reg.web_sessions(100_000).unwrap_or(0)
    }

    /// Whether `peer` may ask for another code ([`ASKS_PER_ADDRESS`] in the window); counts
    /// the ask.
    pub fn address_may_ask(&self, peer: Option<std::net::IpAddr>) -> bool {
        let Some(ip) = peer else { return true };
        let now = Instant::now();
        let mut asked = self.asked.lock().expect("code asks");
        if asked.len() > ADDRESSES_MAX {
            asked.retain(|_, v| v.iter().any(|t| now.duration_since(*t) < CODE_WINDOW));
        }
        let v = asked.entry(ip).or_default();
        v.retain(|t| now.duration_since(*t) < CODE_WINDOW);
        if v.len() >= ASKS_PER_ADDRESS {
            return false;
        }
        v.push(now);
        true
    }

    /// A new six-digit code for `m`, unless `m` was sent [`CODES_PER_WINDOW`] codes in the
    /// window already. A new code replaces the one before.
    pub fn new_code(&self, reg: &Registry, m: MemberId) -> Result<Option<String>, RegistryError> {
        let now = now_ms();
        let window = CODE_WINDOW.as_millis() as i64;
        let code = format!("{:06}", rand::rng().next_u32() % 1_000_000);
        reg.web_code(m.0, &mut |old| {
            let mut r = old.clone().unwrap_or_default();
            r.sent_ms.retain(|t| now - t < window);
            if r.sent_ms.len() >= CODES_PER_WINDOW {
                return (old, None);
            }
            r.sent_ms.push(now);
            r.code_hash = hex::encode(hash(&code));
            r.expires_ms = now + CODE_LIFE.as_millis() as i64;
            r.tries = 0;
            (Some(r), Some(code.clone()))
        })
    }

    /// Whether `code` is `m`'s live code; a right code is spent, and [`CODE_TRIES`] wrong ones
    /// spend it too.
    pub fn check_code(
        &self,
        reg: &Registry,
        m: MemberId,
        code: &str,
    ) -> Result<bool, RegistryError> {
        let now = now_ms();
        let given = hex::encode(hash(code.trim()));
        reg.web_code(m.0, &mut |old| {
            let Some(mut r) = old.clone() else {
                return (None, false);
            };
            if r.code_hash.is_empty() || now >= r.expires_ms {
                return (old, false);
            }
            // Compared in constant time.
            let same = given.len() == r.code_hash.len()
                && given
                    .bytes()
                    .zip(r.code_hash.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            if same {
                r.code_hash.clear();
                return (Some(r), true);
            }
            r.tries += 1;
            if r.tries >= CODE_TRIES {
                r.code_hash.clear();
            }
            (Some(r), false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::registry::two_on_one_store as two;

    #[test]
    fn a_code_is_spent_by_its_use_or_by_five_wrong_guesses_on_any_gateway() {
        let dir = tempfile::tempdir().expect("dir");
        let (a, b) = two(dir.path());
        let s = Sessions::default();
        let m = MemberId(7);
        let code = s.new_code(&a, m).expect("store").expect("a code");
        assert_eq!(code.len(), 6);
        assert!(!s.check_code(&b, MemberId(8), &code).expect("store"));
        // Sent by one gateway, accepted by the other, once.
        assert!(s.check_code(&b, m, &code).expect("store"));
        assert!(!s.check_code(&a, m, &code).expect("store"), "used once");
        let code = s.new_code(&b, m).expect("store").expect("a second code");
        let wrong = if code == "000000" { "000001" } else { "000000" };
        for _ in 0..CODE_TRIES {
            assert!(!s.check_code(&a, m, wrong).expect("store"));
        }
        assert!(
            !s.check_code(&a, m, &code).expect("store"),
            "spent by wrong guesses"
        );
        // Three codes in the window, across gateways, then none.
        assert!(s.new_code(&a, m).expect("store").is_some());
        assert!(s.new_code(&b, m).expect("store").is_none());
    }

    #[test]
    fn sessions_are_known_to_every_gateway_and_end_everywhere() {
        let dir = tempfile::tempdir().expect("dir");
        let (a, b) = two(dir.path());
        let s = Sessions::default();
        let id = s.start(&a, Who::Member(MemberId(3))).expect("start");
        let got = s
            .get(&b, &id)
            .expect("store")
            .expect("live on the other gateway");
        assert_eq!(got.who, Who::Member(MemberId(3)));
        assert_eq!(got.csrf.len(), 64);
        assert!(s.get(&a, "not-a-session").expect("store").is_none());
        assert_eq!(s.live(&a), 1);
        s.end(&b, &id).expect("end");
        assert!(s.get(&a, &id).expect("store").is_none());
        // An idle session is over.
        let old = SessionRecord {
            who: SessionWho::Member { member: 4 },
            csrf: token(),
            started_ms: now_ms() - 3_600_000,
            seen_ms: now_ms() - IDLE.as_millis() as i64 - 1,
        };
        a.put_web_session(&hash("idle"), &old).expect("put");
        assert!(s.get(&b, "idle").expect("store").is_none());
    }
}
