//! Sessions of the console and the portal, and the portal's one-time sign-in codes.
//!
//! A session id is 256 random bits in a `__Host-` cookie (`Secure`, `HttpOnly`,
//! `SameSite=Strict`, path `/`); the server keeps only its SHA-256. Each session has its own
//! CSRF token, which every form carries and every POST must return. Sessions end after 30
//! minutes without a request, 12 hours after sign-in, or at sign-out. An operator's session is
//! checked against the operator's token at every request, so a revoked token ends it.

use ledger::MemberId;
use rand::RngCore;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle time that ends a session.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// Longest session.
pub const LONGEST: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most (the oldest go first when full).
pub const SESSIONS_MAX: usize = 100_000;

/// A sign-in code's life.
pub const CODE_LIFE: Duration = Duration::from_secs(10 * 60);
/// Wrong guesses that spend a code.
pub const CODE_TRIES: u32 = 5;
/// Codes one member may be sent in [`CODE_WINDOW`].
pub const CODES_PER_WINDOW: usize = 3;
/// See [`CODES_PER_WINDOW`].
pub const CODE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Who a session is.
#[derive(Debug, Clone)]
pub enum Who {
    /// An operator or finance user, by the token it signed in with (kept server-side only).
    Operator {
        /// The token, checked again at every request.
        token: String,
        /// Its name.
        name: String,
        /// Whether it may change things (`operator`) or only read (`finance`).
        role: crate::ops::registry::Role,
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
    started: Instant,
    seen: Instant,
}

/// A sign-in code sent to a member.
#[derive(Debug, Clone)]
struct Pending {
    code_hash: [u8; 32],
    expires: Instant,
    tries: u32,
}

/// The gateway's sessions and pending codes.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    codes: Mutex<HashMap<MemberId, Pending>>,
    sent: Mutex<HashMap<MemberId, Vec<Instant>>>,
    asked: Mutex<HashMap<std::net::IpAddr, Vec<Instant>>>,
}

/// Code requests one address may make in [`CODE_WINDOW`].
pub const ASKS_PER_ADDRESS: usize = 10;

fn hash(s: &str) -> [u8; 32] {
    sha2::Sha256::digest(s.as_bytes()).into()
}

/// A fresh random token: 32 bytes, hex.
pub fn token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Sessions {
    /// Starts a session for `who`; returns its id (for the cookie).
    pub fn start(&self, who: Who) -> String {
        let id = token();
        let now = Instant::now();
        let mut map = self.map.lock().expect("sessions");
        if map.len() >= SESSIONS_MAX {
            map.retain(|_, s| now.duration_since(s.seen) < IDLE);
            if map.len() >= SESSIONS_MAX {
                if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(
            hash(&id),
            Session {
                who,
                csrf: token(),
                started: now,
                seen: now,
            },
        );
        id
    }

    /// The live session with this id, marked as seen.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().expect("sessions");
        let k = hash(id);
        let s = map.get_mut(&k)?;
        if now.duration_since(s.seen) >= IDLE || now.duration_since(s.started) >= LONGEST {
            map.remove(&k);
            return None;
        }
        s.seen = now;
        Some(s.clone())
    }

    /// Ends the session with this id.
    pub fn end(&self, id: &str) {
        self.map.lock().expect("sessions").remove(&hash(id));
    }

    /// Sessions live now.
    pub fn live(&self) -> usize {
        self.map.lock().expect("sessions").len()
    }

    /// Whether `peer` may ask for another code ([`ASKS_PER_ADDRESS`] in the window); counts
    /// the ask.
    pub fn address_may_ask(&self, peer: Option<std::net::IpAddr>) -> bool {
        let Some(ip) = peer else { return true };
        let now = Instant::now();
        let mut asked = self.asked.lock().expect("code asks");
        if asked.len() > SESSIONS_MAX {
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
    pub fn new_code(&self, m: MemberId) -> Option<String> {
        let now = Instant::now();
        {
            let mut sent = self.sent.lock().expect("codes sent");
            sent.retain(|_, v| {
                v.retain(|t| now.duration_since(*t) < CODE_WINDOW);
                !v.is_empty()
            });
            let v = sent.entry(m).or_default();
            if v.len() >= CODES_PER_WINDOW {
                return None;
            }
            v.push(now);
        }
        let code = format!("{:06}", rand::rng().next_u32() % 1_000_000);
        self.codes.lock().expect("codes").insert(
            m,
            Pending {
                code_hash: hash(&code),
                expires: now + CODE_LIFE,
                tries: 0,
            },
        );
        Some(code)
    }

    /// Whether `code` is `m`'s live code; a right code is spent, and [`CODE_TRIES`] wrong ones
    /// spend it too.
    pub fn check_code(&self, m: MemberId, code: &str) -> bool {
        let now = Instant::now();
        let mut codes = self.codes.lock().expect("codes");
        let Some(p) = codes.get_mut(&m) else {
            return false;
        };
        if now >= p.expires {
            codes.remove(&m);
            return false;
        }
        let given = hash(code.trim());
        // Compared in constant time.
        let same = given
            .iter()
            .zip(p.code_hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if same {
            codes.remove(&m);
            return true;
        }
        p.tries += 1;
        if p.tries >= CODE_TRIES {
            codes.remove(&m);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_spent_by_its_use_or_by_five_wrong_guesses() {
        let s = Sessions::default();
        let m = MemberId(7);
        let code = s.new_code(m).expect("a code");
        assert_eq!(code.len(), 6);
        assert!(!s.check_code(MemberId(8), &code));
        assert!(s.check_code(m, &code));
        assert!(!s.check_code(m, &code), "used once");
        let code = s.new_code(m).expect("a second code");
        let wrong = if code == "000000" { "000001" } else { "000000" };
        for _ in 0..CODE_TRIES {
            assert!(!s.check_code(m, wrong));
        }
        assert!(!s.check_code(m, &code), "spent by wrong guesses");
        // Three codes in the window, then none.
        assert!(s.new_code(m).is_some());
        assert!(s.new_code(m).is_none());
    }

    #[test]
    fn sessions_are_found_by_id_and_end() {
        let s = Sessions::default();
        let id = s.start(Who::Member(MemberId(3)));
        let got = s.get(&id).expect("live");
        assert!(matches!(got.who, Who::Member(MemberId(3))));
        assert_eq!(got.csrf.len(), 64);
        assert!(s.get("not-a-session").is_none());
        s.end(&id);
        assert!(s.get(&id).is_none());
    }
}
