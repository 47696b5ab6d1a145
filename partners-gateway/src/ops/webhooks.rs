//! Webhooks: operators and partners subscribe a URL to event types; a dispatcher delivers each
//! event derived from the journal, in commit order, signed, at least once.
//!
//! - **Cursor.** Each subscription has a cursor in the store (the last journal batch whose
//!   events are all handled, and how many of the next batch's are). A round delivers up to
//!   [`READ_AHEAD`] events, then moves it, durably, past every event up to the first that
//!   failed: a crash redelivers at most the round in flight, and receivers dedupe on the event
//!   id.
//! - **Order.** Each member's events go one at a time, in commit order, so they arrive in the
//!   order they happened; [`IN_FLIGHT`] members' go at once. A member's failed event holds back
//!   its later ones; other members' events delivered after it in the round go again with it.
//! - **Retries.** A failed delivery (no answer in 5 s, or not 2xx) is retried after 1, 2, 4, ...
//!   seconds (at most a minute apart); after [`ATTEMPTS_MAX`] attempts the event is a dead
//!   letter (logged) and the next goes.
//! - **Bounded.** The dispatcher reads at most [`READ_AHEAD`] events per subscription per round
//!   from a store snapshot, off the request path; a slow or dead receiver holds back only its
//!   own subscription.
//! - **One dispatcher.** Gateways sharing a store take a lease (`G D`); only its holder
//!   delivers.

use super::error::{Kind, OpError};
use super::registry::{DeliveryRecord, WebhookCursor, WebhookRecord};
use super::Ops;
use crate::events::{events_of, Event, KINDS};
use ledger::{PartnerId, Timestamp, TxId};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Attempts before an event is a dead letter.
pub const ATTEMPTS_MAX: u32 = 8;
/// Events read ahead per subscription per round.
pub const READ_AHEAD: usize = 512;
/// Members whose events a subscription delivers at once.
pub const IN_FLIGHT: usize = 16;
/// How long one subscription's rounds may follow each other before the next subscription's.
const BUSY: Duration = Duration::from_secs(1);
/// Transactions a second the ledger commits above which deliveries yield to it.
const YIELD_ABOVE_TPS: f64 = 2_000.0;
/// Journal batches scanned per subscription per round at most.
const SCAN_BATCHES: usize = 4_096;
/// How often the dispatcher looks for events.
pub const EVERY: Duration = Duration::from_millis(200);
/// The dispatcher lease's length.
const LEASE_MS: i64 = 10_000;
/// Longest URL.
pub const URL_LEN_MAX: usize = 2_048;

/// Event types a partner may subscribe to (those of its own transactions).
pub const PARTNER_KINDS: &[&str] = &[
    "points.earned",
    "points.burned",
    "hold.opened",
    "hold.captured",
    "hold.voided",
    "hold.expired",
    "points.reversed",
    "tier.changed",
];

/// What a subscriber asks for.
#[derive(Debug, Clone)]
pub struct WebhookDraft {
    /// Where to post.
    pub url: String,
    /// Event types.
    pub events: Vec<String>,
}

fn not_found() -> OpError {
    OpError::new(Kind::NotFound, "no such webhook")
}

/// Checks a draft: an http(s) URL with a host, known event types the subscriber may have.
fn check(d: &WebhookDraft, partner: Option<PartnerId>) -> Result<Vec<String>, OpError> {
    let bad = |m: String| Err(OpError::new(Kind::WebhookRefused, m));
    if d.url.chars().count() > URL_LEN_MAX {
        return bad(format!("url must be at most {URL_LEN_MAX} characters"));
    }
    // As the API document states it: `^https?://[^\s/?#]+[^\s]*$`.
    let rest = d
        .url
        .strip_prefix("https://")
        .or_else(|| d.url.strip_prefix("http://"));
    let spaced = d.url.chars().any(|c| c.is_whitespace() || c == '\u{feff}');
    if spaced || rest.is_none_or(|r| r.chars().next().is_none_or(|c| "/?#".contains(c))) {
        return bad("url must be an http or https URL with a host, without spaces".into());
    }
    if d.events.len() > KINDS.len() {
        return bad(format!("events names at most {} types", KINDS.len()));
    }
    if !crate::events::delivery::usable_url(&d.url) {
        return bad("url must be an http or https URL with a host".into());
    }
    let allowed = if partner.is_some() {
        PARTNER_KINDS
    } else {
        KINDS
    };
    let mut events: Vec<String> = Vec::new();
    for e in &d.events {
        if !allowed.contains(&e.as_str()) {
            return bad(format!(
                "unknown event type {e:?}; one of {}",
                allowed.join(", ")
            ));
        }
        if !events.contains(e) {
            events.push(e.clone());
        }
    }
    if events.is_empty() {
        return bad("events names at least one event type".into());
    }
    Ok(events)
}

/// Creates a subscription (a partner's when `partner`), receiving events from now on; returns
/// it and its secret, shown once. Blocking.
pub fn create(
    ops: &Ops,
    partner: Option<PartnerId>,
    d: WebhookDraft,
    created_by: &str,
) -> Result<(WebhookRecord, String), OpError> {
    let events = check(&d, partner)?;
    let after = ledger::journal::last_position(&ops.ledger.read_snapshot()?)?;
    let rec = ops
        .registry
        .add_webhook(
            WebhookRecord {
                id: 0,
                partner: partner.map(|p| p.0),
                url: d.url,
                events,
                created_by: created_by.to_string(),
                created_at_ms: Timestamp::now().0,
                disabled: false,
            },
            after,
        )
        .map_err(super::partner::registry_error)?;
    let secret = ops.registry.webhook_secret(rec.id);
    Ok((rec, secret))
}

/// The subscriptions the caller may see (a partner's own; an operator every one). Blocking.
pub fn list(ops: &Ops, partner: Option<PartnerId>) -> Result<Vec<WebhookRecord>, OpError> {
    Ok(ops
        .registry
        .webhooks()
        .map_err(super::partner::registry_error)?
        .into_iter()
        .filter(|w| partner.is_none_or(|p| w.partner == Some(p.0)))
        .collect())
}

/// Subscription `id`, if the caller may see it.
fn visible(ops: &Ops, partner: Option<PartnerId>, id: u32) -> Result<WebhookRecord, OpError> {
    match ops
        .registry
        .webhook(id)
        .map_err(super::partner::registry_error)?
    {
        Some(w) if partner.is_none_or(|p| w.partner == Some(p.0)) => Ok(w),
        _ => Err(not_found()),
    }
}

/// Stops subscription `id`. Blocking.
pub fn disable(ops: &Ops, partner: Option<PartnerId>, id: u32) -> Result<WebhookRecord, OpError> {
    visible(ops, partner, id)?;
    ops.registry
        .disable_webhook(id)
        .map_err(super::partner::registry_error)?
        .ok_or_else(not_found)
}

/// Subscription `id`'s newest delivery attempts, and where its cursor stands. Blocking.
pub fn deliveries(
    ops: &Ops,
    partner: Option<PartnerId>,
    id: u32,
    limit: usize,
) -> Result<(WebhookCursor, Vec<DeliveryRecord>), OpError> {
    visible(ops, partner, id)?;
    let cursor = ops
        .registry
        .webhook_cursor(id)
        .map_err(super::partner::registry_error)?;
    let log = ops
        .registry
        .deliveries(id, limit)
        .map_err(super::partner::registry_error)?;
    Ok((cursor, log))
}

/// Replays subscription `id` from event `from` (its id, `TRANSACTION-N`): every event of that
/// transaction's batch from the start of the batch is delivered again, and everything after.
/// Blocking.
pub fn replay(ops: &Ops, partner: Option<PartnerId>, id: u32, from: &str) -> Result<(), OpError> {
    visible(ops, partner, id)?;
    let digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    let tx: u64 = match from.split_once('-') {
        // Past u64: no such transaction (found below as none).
        Some((t, n)) if digits(t, 20) && digits(n, 5) => Some(t.parse().unwrap_or(u64::MAX)),
        _ => None,
    }
    .ok_or_else(|| OpError::new(Kind::InvalidRequest, "from is an event id, TRANSACTION-N"))?;
    let seq = TxId(tx).seq();
    let snap = ops.ledger.read_snapshot()?;
    // The position of the batch before the one holding the transaction.
    let mut before: Option<Vec<u8>> = None;
    let mut found = false;
    ledger::journal::for_each_raw_batch(&snap, None, &mut |b| {
        if b.seq == seq {
            found = true;
            return Ok(false);
        }
        before = Some(b.position);
        Ok(true)
    })?;
    if !found {
        return Err(OpError::new(Kind::NotFound, "no such event"));
    }
    ops.registry
        .set_webhook_cursor(id, before, 0)
        .map_err(super::partner::registry_error)
}

/// An event waiting for delivery, with where it stands in the journal.
struct Pending {
    event: Event,
    /// Its batch's position, and the position of the batch read before it.
    position: Vec<u8>,
    prev: Option<Vec<u8>>,
    index: u32,
    last_in_batch: bool,
}

/// The next events for `w` after its cursor, and the position of the last batch read that had
/// none for it (so the cursor can move past batches with nothing to deliver). Blocking.
fn pending(
    ops: &Ops,
    w: &WebhookRecord,
    cursor: &WebhookCursor,
) -> Result<(Vec<Pending>, Option<Vec<u8>>), OpError> {
    let snap = ops.ledger.read_snapshot()?;
    let mut out: Vec<Pending> = Vec::new();
    let mut empty_upto: Option<Vec<u8>> = None;
    let mut first = true;
    let mut scanned = 0;
    let mut prev = cursor.after.clone();
    let mut failure = None;
    ops.ledger
        .for_each_batch_after(&snap, cursor.after.as_deref(), &mut |pos, _, txs| {
            scanned += 1;
            let mut events: Vec<Event> = txs
                .iter()
                .copied()
                .flat_map(events_of)
                .filter(|e| w.events.contains(&e.kind))
                .filter(|e| w.partner.is_none_or(|p| e.partner_id == Some(p)))
                .collect();
            if let Some(p) = w.partner {
                for e in &mut events {
                    if let Some(m) = e.member_id.take() {
                        match ops.registry.reference_of(PartnerId(p), ledger::MemberId(m)) {
                            Ok(r) => e.member = r,
                            Err(err) => {
                                failure = Some(err);
                                return Ok(false);
                            }
                        }
                    }
                }
            }
            let skip = if first { cursor.done as usize } else { 0 };
            first = false;
            let n = events.len();
            if n <= skip {
                if out.is_empty() {
                    empty_upto = Some(pos.to_vec());
                }
            } else {
                for (i, event) in events.into_iter().enumerate().skip(skip) {
                    out.push(Pending {
                        event,
                        position: pos.to_vec(),
                        prev: prev.clone(),
                        index: i as u32,
                        last_in_batch: i + 1 == n,
                    });
                }
            }
            prev = Some(pos.to_vec());
            Ok(out.len() < READ_AHEAD && scanned < SCAN_BATCHES)
        })?;
    if let Some(e) = failure {
        return Err(super::partner::registry_error(e));
    }
    Ok((out, empty_upto))
}

/// A subscription's event being retried.
struct Retry {
    event_id: String,
    attempts: u32,
    next: Instant,
}

/// Delay before retry `attempt` (1-based): 1, 2, 4, ... seconds, at most 60.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// The dispatcher's state in one gateway.
struct Dispatcher {
    client: crate::events::delivery::Client,
    token: u64,
    retries: HashMap<u32, Retry>,
}

/// Starts the dispatcher; it stops when the operations are dropped.
pub fn spawn(ops: Weak<Ops>) {
    tokio::spawn(async move {
        let mut d = Dispatcher {
            client: crate::events::delivery::client(),
            token: rand::random(),
            retries: HashMap::new(),
        };
        loop {
            tokio::time::sleep(EVERY).await;
            let Some(ops) = ops.upgrade() else { return };
            if let Err(e) = d.round(&ops).await {
                e.log_round("webhook round");
            }
        }
    });
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpError::new(Kind::Internal, format!("webhook task failed: {e}")))?
}

impl Dispatcher {
    async fn round(&mut self, ops: &Arc<Ops>) -> Result<(), OpError> {
        let (o, token) = (ops.clone(), self.token);
        let subs = blocking(move || {
            // With nothing to deliver, no lease is taken: an idle gateway writes nothing.
            let subs: Vec<WebhookRecord> = list(&o, None)?
                .into_iter()
                .filter(|w| !w.disabled)
                .collect();
            if subs.is_empty() {
                return Ok(subs);
            }
            let now = Timestamp::now().0;
            let holder = o
                .registry
                .dispatch_lease(token, now, now + LEASE_MS)
                .map_err(super::partner::registry_error)?;
            Ok(if holder { subs } else { Vec::new() })
        })
        .await?;
        for w in subs {
            // A subscription with more waiting goes on at once, for up to a second a round
            // (so one busy subscription does not hold back the others for longer). While the
            // ledger is busy with partners' traffic, it yields: after each round it waits nine
            // times as long as the round took, so deliveries take a tenth of the time, and
            // catch up when the traffic falls.
            let started = Instant::now();
            loop {
                let (round, committed) = (
                    Instant::now(),
                    ops.ledger
                        .stats()
                        .transactions
                        .load(std::sync::atomic::Ordering::Relaxed),
                );
                let more = self.subscription(ops, w.clone()).await?;
                if !more || started.elapsed() >= BUSY {
                    break;
                }
                let took = round.elapsed();
                let rate = (ops
                    .ledger
                    .stats()
                    .transactions
                    .load(std::sync::atomic::Ordering::Relaxed)
                    - committed) as f64
                    / took.as_secs_f64().max(1e-6);
                if rate > YIELD_ABOVE_TPS {
                    tokio::time::sleep(took * 9).await;
                }
            }
        }
        Ok(())
    }

    /// Delivers what is due for `w`: up to [`READ_AHEAD`] events at a time, each member's in
    /// order and [`IN_FLIGHT`] members at once; then the cursor moves past every event up to the
    /// first that failed, in one commit.
    ///
    /// True when a full round went through and more may be waiting.
    async fn subscription(&mut self, ops: &Arc<Ops>, w: WebhookRecord) -> Result<bool, OpError> {
        if self
            .retries
            .get(&w.id)
            .is_some_and(|r| r.next > Instant::now())
        {
            return Ok(false);
        }
        let (o, wc) = (ops.clone(), w.clone());
        let (mut cursor, events, empty_upto) = blocking(move || {
            let cursor = o
                .registry
                .webhook_cursor(wc.id)
                .map_err(super::partner::registry_error)?;
            let (events, empty) = pending(&o, &wc, &cursor)?;
            Ok((cursor, events, empty))
        })
        .await?;
        if let Some(p) = empty_upto {
            cursor.after = Some(p);
            cursor.done = 0;
            if events.is_empty() {
                self.save(ops, w.id, cursor, Vec::new()).await?;
                return Ok(false);
            }
        }
        let full = events.len() >= READ_AHEAD;
        let results = self.deliver_round(ops, &w, &events).await;
        let mut log = Vec::new();
        let mut handled = events.len();
        for (i, (p, r)) in events.iter().zip(&results).enumerate() {
            let Some((attempt, result)) = r else { continue };
            let (outcome, status, error) = match result {
                Ok(s) => ("delivered", Some(*s), None),
                Err((s, e)) if *attempt >= ATTEMPTS_MAX => ("dead", *s, Some(e.clone())),
                Err((s, e)) => ("failed", *s, Some(e.clone())),
            };
            log.push(DeliveryRecord {
                event_id: p.event.id.clone(),
                event_type: p.event.kind.clone(),
                attempt: *attempt,
                at_ms: Timestamp::now().0,
                outcome: outcome.to_string(),
                status,
                error,
            });
            if i >= handled {
                continue;
            }
            match outcome {
                "delivered" => cursor.delivered += 1,
                "dead" => cursor.dead += 1,
                _ => {
                    self.retries.insert(
                        w.id,
                        Retry {
                            event_id: p.event.id.clone(),
                            attempts: *attempt,
                            next: Instant::now() + backoff(*attempt),
                        },
                    );
                    handled = i;
                }
            }
        }
        if handled == events.len() {
            self.retries.remove(&w.id);
        }
        if let Some(last) = handled.checked_sub(1).map(|i| &events[i]) {
            if last.last_in_batch {
                cursor.after = Some(last.position.clone());
                cursor.done = 0;
            } else {
                cursor.after = last.prev.clone();
                cursor.done = last.index + 1;
            }
        }
        self.save(ops, w.id, cursor, log).await?;
        Ok(full && handled == events.len())
    }

    /// Posts `events`, each member's in order (stopping at its first failure), members
    /// [`IN_FLIGHT`] at a time. Each event's attempt number and result; `None`: not attempted
    /// (an earlier event of its member failed).
    async fn deliver_round(
        &self,
        ops: &Arc<Ops>,
        w: &WebhookRecord,
        events: &[Pending],
    ) -> Vec<Option<(u32, crate::events::delivery::Outcome)>> {
        let groups = super::grouped(0..events.len(), |i| {
            let e = &events[*i].event;
            match (&e.member_id, &e.member) {
                (Some(id), _) => id.to_string(),
                (None, Some(r)) => r.clone(),
                (None, None) => String::new(),
            }
        });
        let secret = Arc::new(ops.registry.webhook_secret(w.id));
        let gate = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut set = tokio::task::JoinSet::new();
        for idx in groups {
            let jobs: Vec<(usize, u32, Event)> = idx
                .into_iter()
                .map(|i| {
                    let e = &events[i].event;
                    let attempt = match self.retries.get(&w.id) {
                        Some(r) if r.event_id == e.id => r.attempts + 1,
                        _ => 1,
                    };
                    (i, attempt, e.clone())
                })
                .collect();
            let (client, url, secret, gate, id) = (
                self.client.clone(),
                w.url.clone(),
                secret.clone(),
                gate.clone(),
                w.id,
            );
            set.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let mut out = Vec::new();
                for (i, attempt, e) in jobs {
                    let body = serde_json::to_vec(&e).expect("events serialise");
                    let r = crate::events::delivery::deliver(
                        &client,
                        &url,
                        &secret,
                        id,
                        &e.id,
                        body,
                        Timestamp::now().0 / 1000,
                    )
                    .await;
                    let stop = r.is_err();
                    out.push((i, attempt, r));
                    if stop {
                        break;
                    }
                }
                out
            });
        }
        let mut results = vec![None; events.len()];
        while let Some(done) = set.join_next().await {
            for (i, attempt, r) in done.unwrap_or_default() {
                results[i] = Some((attempt, r));
            }
        }
        results
    }

    async fn save(
        &self,
        ops: &Arc<Ops>,
        id: u32,
        cursor: WebhookCursor,
        log: Vec<DeliveryRecord>,
    ) -> Result<WebhookCursor, OpError> {
        let o = ops.clone();
        blocking(move || {
            o.registry
                .record_deliveries(id, cursor, &log)
                .map_err(super::partner::registry_error)
        })
        .await
    }
}
