//! What the run saw: latency per request kind (HDR, microseconds), a per-second timeline,
//! errors by type, and every acknowledged command for the post-run check.

use crate::workload::OpKind;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Highest latency recorded, microseconds (one minute).
pub const LATENCY_US_MAX: u64 = 60_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// An acknowledged command, as the gateway answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    /// Partner that sent it.
    pub partner: u32,
    /// Its reference.
    pub reference: String,
    /// The ledger transaction id in the receipt.
    pub transaction_id: String,
    /// Change to the member's posted points (0 for holds and voids).
    pub member_delta: i64,
}

impl Ack {
    /// The change to the member's posted points that a transaction as the gateway shows it
    /// (`TransactionView`) made: its `points`, except for holds and voids, which reserve and
    /// release without posting.
    pub fn member_delta_of(tx: &serde_json::Value) -> i64 {
        Ack::member_delta(
            tx["kind"].as_str().unwrap_or(""),
            tx["points"].as_i64().unwrap_or(0),
        )
    }

    /// The same from a transaction's kind and points.
    pub fn member_delta(kind: &str, points: i64) -> i64 {
        match kind {
            "hold" | "void" => 0,
            _ => points,
        }
    }
}

/// A command sent without a definite answer (transport failure or 5xx other than overload):
/// it may have been applied, at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unanswered {
    /// Partner.
    pub partner: u32,
    /// Reference.
    pub reference: String,
}

/// One second of the run.
pub struct Second {
    /// Requests completed.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Their latencies.
    pub latency: Histogram<u64>,
}

/// The run's record.
pub struct Recorder {
    started: Instant,
    /// Latency by kind.
    pub latency: BTreeMap<OpKind, Histogram<u64>>,
    /// Errors by `status type` (`422 insufficient-points`, `transport`).
    pub errors: BTreeMap<String, u64>,
    /// Requests answered 2xx.
    pub requests_ok: u64,
    /// Requests that failed as a whole.
    pub requests_failed: u64,
    /// Commands acknowledged (batch items count one each).
    pub commands_ok: u64,
    /// Commands refused (batch items count one each).
    pub commands_failed: u64,
    /// Per-second timeline.
    pub timeline: Vec<Second>,
    /// Acknowledged commands.
    pub acks: Vec<Ack>,
    /// Commands without a definite answer.
    pub unanswered: Vec<Unanswered>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            started: Instant::now(),
            latency: BTreeMap::new(),
            errors: BTreeMap::new(),
            requests_ok: 0,
            requests_failed: 0,
            commands_ok: 0,
            commands_failed: 0,
            timeline: Vec::new(),
            acks: Vec::new(),
            unanswered: Vec::new(),
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records one request's latency and whether it succeeded.
    pub fn request(&mut self, kind: OpKind, latency: Duration, ok: bool) {
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        self.latency
            .entry(kind)
            .or_insert_with(histogram)
            .record(us)
            .expect("clamped into range");
        let second = self.started.elapsed().as_secs() as usize;
        while self.timeline.len() <= second {
            self.timeline.push(Second {
                requests: 0,
                errors: 0,
                latency: histogram(),
            });
        }
        let s = &mut self.timeline[second];
        s.requests += 1;
        s.latency.record(us).expect("clamped into range");
        if ok {
            self.requests_ok += 1;
        } else {
            s.errors += 1;
            self.requests_failed += 1;
        }
    }

    /// Counts a refused command by its error type.
    pub fn error(&mut self, what: String) {
        self.commands_failed += 1;
        *self.errors.entry(what).or_insert(0) += 1;
    }

    /// Records an acknowledged command.
    pub fn ack(&mut self, ack: Ack) {
        self.commands_ok += 1;
        self.acks.push(ack);
    }

    /// All requests' latency merged.
    pub fn overall(&self) -> Histogram<u64> {
        let mut all = histogram();
        for h in self.latency.values() {
            all.add(h).expect("same bounds");
        }
        all
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}
