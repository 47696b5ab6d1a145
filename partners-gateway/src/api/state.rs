//! The gateway's shared state, passed to every handler.

use crate::api::signature::NonceCache;
use crate::ops::error::{Kind, OpError};
use crate::ops::registry::PartnerRecord;
use crate::ops::Ops;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use ledger::PartnerId;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
    /// Most commands in one batch request.
    pub batch_commands_max: usize,
    /// A request must be answered within this.
    pub request_timeout: std::time::Duration,
    /// Requests handled at once.
    pub in_flight_max: usize,
}

/// Everything a handler needs.
pub struct App {
    /// The operations, and the ledger and registry they work on.
    pub ops: Arc<Ops>,
    /// Seen nonces.
    pub nonces: NonceCache,
    /// Request limits.
    pub limits: Limits,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    limiters: Mutex<HashMap<u32, PartnerLimiter>>,
    draining: AtomicBool,
    /// Start-up work that makes requests fast is still running (the member links read into
    /// memory): `/readyz` says so, and the gateway answers meanwhile, only slower.
    warming: AtomicBool,
    /// One permit per request being handled.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Failed authentications per address: over [`AUTH_FAILURES_PER_SECOND`] (burst
    /// [`AUTH_FAILURES_BURST`]), the address is refused before any work for a moment.
    auth_failures: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Addresses refused until the given instant.
    blocked: Mutex<HashMap<std::net::IpAddr, std::time::Instant>>,
    /// Entries in `blocked`, read without the lock (almost always zero).
    blocked_count: std::sync::atomic::AtomicUsize,
    /// Serving the demo coalition: the portal writes sign-in codes to the log when no
    /// provider can send them.
    pub demo: bool,
}

/// Most addresses blocked at once.
const BLOCKED_ADDRESSES_MAX: usize = 100_000;

/// Failed authentications an address may make per second before it is refused outright.
pub const AUTH_FAILURES_PER_SECOND: u32 = 20;
/// ... and in a burst.
pub const AUTH_FAILURES_BURST: u32 = 100;
/// How long an address that failed too often is refused.
pub const AUTH_BLOCK: std::time::Duration = std::time::Duration::from_secs(1);

/// A partner's limiter and the (rate, burst) it was built for.
type PartnerLimiter = (u32, u32, Arc<DefaultDirectRateLimiter>);

/// The state handlers receive.
pub type AppState = Arc<App>;

impl App {
    /// Assembles the state.
    pub fn new(ops: Ops, nonces: NonceCache, limits: Limits, metrics: PrometheusHandle) -> App {
        App {
            ops: Arc::new(ops),
            nonces,
            limits,
            metrics,
            in_flight: Arc::new(tokio::sync::Semaphore::new(limits.in_flight_max)),
            auth_failures: RateLimiter::keyed(
                Quota::per_second(NonZeroU32::new(AUTH_FAILURES_PER_SECOND).expect("non-zero"))
                    .allow_burst(NonZeroU32::new(AUTH_FAILURES_BURST).expect("non-zero")),
            ),
            blocked: Mutex::new(HashMap::new()),
            blocked_count: std::sync::atomic::AtomicUsize::new(0),
            limiters: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            warming: AtomicBool::new(false),
            demo: false,
        }
    }

    /// Refuses an address that failed authentication too often, for [`AUTH_BLOCK`].
    pub fn check_address(&self, peer: Option<std::net::IpAddr>) -> Result<(), OpError> {
        let Some(ip) = peer else { return Ok(()) };
        if self.blocked_count.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let mut blocked = self.blocked.lock().expect("blocked lock");
        let answer = match blocked.get(&ip) {
            Some(until) if *until > std::time::Instant::now() => Err(OpError::new(
                Kind::RateLimited,
                "too many failed authentications from this address; retry shortly",
            )
            .retry_after(AUTH_BLOCK.as_secs().max(1))),
            Some(_) => {
                blocked.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        };
        self.blocked_count.store(blocked.len(), Ordering::Relaxed);
        answer
    }

    /// Counts a failed authentication from `peer`; over the budget, blocks the address.
    pub fn failed_authentication(&self, peer: Option<std::net::IpAddr>) {
        let Some(ip) = peer else { return };
        if self.auth_failures.check_key(&ip).is_err() {
            metrics::counter!("addresses_blocked_total").increment(1);
            let mut blocked = self.blocked.lock().expect("blocked lock");
            // Bounded: expired entries go when the map would grow past a limit.
            if blocked.len() >= BLOCKED_ADDRESSES_MAX {
                let now = std::time::Instant::now();
                blocked.retain(|_, until| *until > now);
            }
            if blocked.len() < BLOCKED_ADDRESSES_MAX {
                blocked.insert(ip, std::time::Instant::now() + AUTH_BLOCK);
            }
            self.blocked_count.store(blocked.len(), Ordering::Relaxed);
        }
    }

    /// Takes one request from `partner`'s allowance, or says when to retry.
    pub fn admit(&self, partner: &PartnerRecord) -> Result<(), OpError> {
        self.admit_n(partner, 1)
    }

    /// Takes `n` commands from `partner`'s allowance (a batch counts each of its commands), or
    /// says when to retry.
    pub fn admit_n(&self, partner: &PartnerRecord, n: u32) -> Result<(), OpError> {
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        let limiter = {
            let mut map = self.limiters.lock().expect("limiter lock");
            let entry = map.entry(partner.id).or_insert_with(|| {
                (
                    0,
                    0,
                    Arc::new(limiter(partner.requests_per_second, partner.burst)),
                )
            });
            if (entry.0, entry.1) != (partner.requests_per_second, partner.burst) {
                *entry = (
                    partner.requests_per_second,
                    partner.burst,
                    Arc::new(limiter(partner.requests_per_second, partner.burst)),
                );
            }
            entry.2.clone()
        };
        let limited = |wait: std::time::Duration| {
            OpError::new(
                Kind::RateLimited,
                format!(
                    "partner {} is limited to {} commands per second (a batch counts each, up to a burst of {})",
                    partner.id, partner.requests_per_second, partner.burst
                ),
            )
            .retry_after(wait.as_secs().max(1))
        };
        match limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(limited(not_until.wait_time_from(
                governor::clock::Clock::now(&governor::clock::DefaultClock::default()),
            ))),
            // More commands at once than the burst allows: never admissible as one request.
            Err(_) => Err(limited(std::time::Duration::from_secs(1))),
        }
    }

    /// Marks the gateway as draining: `/readyz` fails so load balancers stop sending.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True once shutdown began.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks start-up work as running (`true`) or done (`false`): `/readyz` answers 503 while
    /// it runs, so a load balancer sends traffic once requests are fast.
    pub fn set_warming(&self, on: bool) {
        self.warming.store(on, Ordering::Release);
    }

    /// True while start-up work runs.
    pub fn warming(&self) -> bool {
        self.warming.load(Ordering::Acquire)
    }

    /// The partner record of an authenticated caller.
    pub fn partner(&self, p: PartnerId) -> Result<PartnerRecord, OpError> {
        self.ops.registry.partner(p).ok_or_else(|| {
            OpError::new(Kind::UnknownPartner, "the key's partner is not configured")
        })
    }
}

fn limiter(per_second: u32, burst: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_second.max(1)).expect("at least 1");
    let burst = NonZeroU32::new(burst.max(per_second).max(1)).expect("at least 1");
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}
