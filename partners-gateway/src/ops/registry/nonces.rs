//! The nonce journal: every gateway writes the nonces it accepted, in batches, under its own
//! id (`G N gateway sequence`), so that a gateway that starts knows what every gateway accepted
//! within the replay window, and running gateways learn each other's nonces within a fraction
//! of a second. Batches older than the window are cleared.

use super::*;
use ledger::keys::gateway::NONCE;

/// Most nonces in one journal batch (16 bytes each).
pub const NONCE_BATCH_MAX: usize = 4_096;

/// A batch of spent nonces as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NonceBatch {
    /// When it was written, ms since the Unix epoch.
    pub at_ms: i64,
    /// The nonces' hashes.
    pub hashes: Vec<u128>,
}

fn batch_key(gateway: u64, seq: u64) -> Vec<u8> {
    let mut k = key1(NONCE, &gateway.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn parse_batch_key(k: &[u8]) -> Option<(u64, u64)> {
    let body = k.get(2..)?;
    let gateway = u64::from_be_bytes(body.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(body.get(8..16)?.try_into().ok()?);
    Some((gateway, seq))
}

impl Registry {
    /// Writes `batch` as gateway `gateway`'s batch `seq`. Buffered: the store's write-ahead log
    /// makes it durable with the next synced commit (the committer syncs many times a second
    /// under load), so that the journal adds no fsync of its own to the request path.
    pub fn write_nonces(
        &self,
        gateway: u64,
        seq: u64,
        batch: &NonceBatch,
    ) -> Result<(), RegistryError> {
        assert!(batch.hashes.len() <= NONCE_BATCH_MAX);
        let mut ws = WriteSet::default();
        ws.set_owned(batch_key(gateway, seq), json(batch));
        self.store.commit(ws, Durability::Buffered)?;
        Ok(())
    }

    /// Every journal batch after `after` (gateway → last sequence seen) written at or after
    /// `since_ms`, with its gateway and sequence, skipping `own`.
    pub fn read_nonces(
        &self,
        own: u64,
        since_ms: i64,
        after: &HashMap<u64, u64>,
    ) -> Result<Vec<(u64, u64, NonceBatch)>, RegistryError> {
        let snap = self.store.snapshot()?;
        let prefix = [PREFIX, NONCE];
        let mut out = Vec::new();
        let mut failure = None;
        snap.scan(&prefix, &prefix_end(&prefix), &mut |k, v| {
            let Some((gateway, seq)) = parse_batch_key(k) else {
                failure = Some(RegistryError::Corrupt("nonce batch key".into()));
                return false;
            };
            if gateway == own || after.get(&gateway).is_some_and(|last| seq <= *last) {
                return true;
            }
            match unjson::<NonceBatch>(v) {
                Ok(b) if b.at_ms >= since_ms => out.push((gateway, seq, b)),
                Ok(_) => {}
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            }
            true
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Clears the batches written before `before_ms`.
    pub fn forget_nonces(&self, before_ms: i64) -> Result<usize, RegistryError> {
        let snap = self.store.snapshot()?;
        let prefix = [PREFIX, NONCE];
        let mut stale = Vec::new();
        snap.scan(&prefix, &prefix_end(&prefix), &mut |k, v| {
            if unjson::<NonceBatch>(v).is_ok_and(|b| b.at_ms < before_ms) {
                stale.push(k.to_vec());
            }
            true
        })?;
        let mut ws = WriteSet::default();
        for k in &stale {
            ws.clear(k);
        }
        if !stale.is_empty() {
            self.commit(ws)?;
        }
        Ok(stale.len())
    }
}
