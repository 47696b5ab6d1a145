//! Replay protection that survives restarts and reaches every gateway sharing a store: the
//! nonces a gateway accepts are written to the nonce journal in the store (`ops::registry`,
//! `G N`) every [`FLUSH_EVERY`]; a gateway that starts learns every nonce accepted within the
//! replay window (2 × the clock skew) before it serves; running gateways learn each other's
//! every [`FLUSH_EVERY`] too. Batches older than the window are cleared.
//!
//! What is left: between two running gateways, a captured request can be replayed at the
//! other within about two flush intervals of its first use; after a crash (not a clean stop),
//! the nonces not yet written, or written but not yet synced by a later commit, are not in the
//! journal (`docs/security.md`).

use crate::api::state::App;
use crate::ops::registry::{NonceBatch, RegistryError, NONCE_BATCH_MAX};
use ledger::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How often accepted nonces are written, and other gateways' read.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often batches older than the replay window are cleared.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// This gateway's place in the nonce journal.
pub struct NonceJournal {
    /// Random per process: each run writes its own batches.
    gateway: u64,
    next_seq: u64,
    /// The last batch read of each other gateway.
    seen: HashMap<u64, u64>,
    last_forget: Instant,
}

impl NonceJournal {
    /// Learns every nonce any gateway accepted within the replay window; call before serving.
    pub fn open(app: &App) -> Result<NonceJournal, RegistryError> {
        let mut j = NonceJournal {
            gateway: rand::random(),
            next_seq: 0,
            seen: HashMap::new(),
            last_forget: Instant::now(),
        };
        j.learn(app)?;
        Ok(j)
    }

    fn window_start_ms(app: &App) -> i64 {
        let window = i64::try_from(app.nonces.skew().as_millis() * 2).unwrap_or(i64::MAX);
        Timestamp::now().0.saturating_sub(window)
    }

    fn learn(&mut self, app: &App) -> Result<usize, RegistryError> {
        let since = Self::window_start_ms(app);
        let batches = app
            .ops
            .registry
            .read_nonces(self.gateway, since, &self.seen)?;
        let mut learned = 0;
        for (gateway, seq, batch) in batches {
            app.nonces.learn(&batch.hashes);
            learned += batch.hashes.len();
            let last = self.seen.entry(gateway).or_insert(seq);
            *last = (*last).max(seq);
        }
        Ok(learned)
    }

    /// Writes the nonces accepted since the last call, learns the other gateways' new ones, and
    /// now and then clears batches older than the window.
    pub fn tick(&mut self, app: &App) -> Result<(), RegistryError> {
        loop {
            let hashes = app.nonces.take_pending(NONCE_BATCH_MAX);
            if hashes.is_empty() {
                break;
            }
            let batch = NonceBatch {
                at_ms: Timestamp::now().0,
                hashes,
            };
            app.ops
                .registry
                .write_nonces(self.gateway, self.next_seq, &batch)?;
            self.next_seq += 1;
        }
        self.learn(app)?;
        if self.last_forget.elapsed() >= FORGET_EVERY {
            self.last_forget = Instant::now();
            app.ops.registry.forget_nonces(Self::window_start_ms(app))?;
        }
        Ok(())
    }
}

/// Ticks `journal` every [`FLUSH_EVERY`] while the gateway runs.
pub fn spawn(app: Weak<App>, journal: Arc<Mutex<NonceJournal>>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(FLUSH_EVERY).await;
            let Some(app) = app.upgrade() else { return };
            let journal = journal.clone();
            let done = tokio::task::spawn_blocking(move || {
                journal.lock().expect("nonce journal lock").tick(&app)
            })
            .await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "nonce journal tick failed"),
                Err(e) => tracing::warn!(error = %e, "nonce journal task failed"),
            }
        }
    });
}
