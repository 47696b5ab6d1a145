//! Webhook subscriptions, their delivery cursors and delivery logs, and the dispatcher's lease.
//! A subscription's secret is never stored: like a partner key's, it is derived from the master
//! key (HMAC-SHA256(master, `webhook/ID`)).

use super::{be_u64, json, key1, unjson, Registry, RegistryError};
use hmac::{Hmac, Mac};
use ledger::keys::gateway::{DISPATCH_LEASE, NEXT_CAMPAIGN, WEBHOOK, WEBHOOK_CURSOR, WEBHOOK_LOG};
use ledger::store::{prefix_end, Durability, Snapshot, Store, WriteSet};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

/// Delivery log entries kept per subscription (older ones are cleared).
pub const LOG_KEPT: u64 = 1_000;

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookRecord {
    /// Its id.
    pub id: u32,
    /// The partner that owns it; `None`: an operator's.
    pub partner: Option<u32>,
    /// Where events are posted.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Who created it.
    pub created_by: String,
    /// When (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// Stopped: nothing more is delivered.
    pub disabled: bool,
}

/// Where a subscription's deliveries stand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCursor {
    /// The commit-order position of the last journal batch whose events are all handled.
    pub after: Option<Vec<u8>>,
    /// Events of the next batch already handled (delivered or dead).
    pub done: u32,
    /// Events delivered.
    pub delivered: u64,
    /// Events given up on (dead letters).
    pub dead: u64,
    /// The next delivery log sequence number.
    pub log_seq: u64,
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryRecord {
    /// The event.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// `delivered`, `failed` (retried later) or `dead` (given up).
    pub outcome: String,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
}

fn id_key(kind: u8, id: u32) -> Vec<u8> {
    key1(kind, &id.to_be_bytes())
}

fn log_key(id: u32, seq: u64) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.extend_from_slice(&seq.to_be_bytes());
    key1(WEBHOOK_LOG, &body)
}

impl Registry {
    /// Records a new subscription starting after commit-order position `after` (events from
    /// then on).
    pub fn add_webhook(
        &self,
        mut rec: WebhookRecord,
        after: Option<Vec<u8>>,
    ) -> Result<WebhookRecord, RegistryError> {
        self.transact(&mut |txn| {
            let counter = key1(NEXT_CAMPAIGN, b"w");
            let id = match txn.get(&counter)? {
                Some(v) => super::be_u32(&v)?,
                None => 1,
            };
            let mut ws = WriteSet::default();
            ws.set_owned(counter, (id + 1).to_be_bytes().to_vec());
            rec.id = id;
            ws.set_owned(id_key(WEBHOOK, id), json(&rec));
            ws.set_owned(
                id_key(WEBHOOK_CURSOR, id),
                json(&WebhookCursor {
                    after: after.clone(),
                    ..WebhookCursor::default()
                }),
            );
            Ok((ws, rec.clone()))
        })
    }

    /// Every subscription, by id.
    pub fn webhooks(&self) -> Result<Vec<WebhookRecord>, RegistryError> {
        let snap = self.store.snapshot()?;
        let begin = [ledger::keys::GATEWAY, WEBHOOK];
        snap.range(&begin, &prefix_end(&begin), usize::MAX, false)?
            .iter()
            .map(|(_, v)| unjson(v))
            .collect()
    }

    /// Subscription `id`.
    pub fn webhook(&self, id: u32) -> Result<Option<WebhookRecord>, RegistryError> {
        let snap = self.store.snapshot()?;
        snap.get(&id_key(WEBHOOK, id))?
            .map(|v| unjson(&v))
            .transpose()
    }

    /// Stops subscription `id`.
    pub fn disable_webhook(&self, id: u32) -> Result<Option<WebhookRecord>, RegistryError> {
        let Some(mut rec) = self.webhook(id)? else {
            return Ok(None);
        };
        rec.disabled = true;
        let mut ws = WriteSet::default();
        ws.set_owned(id_key(WEBHOOK, id), json(&rec));
        self.commit(ws)?;
        Ok(Some(rec))
    }

    /// The subscription's secret, derived from the master key.
    pub fn webhook_secret(&self, id: u32) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.master).expect("any key length");
        mac.update(format!("webhook/{id}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Where subscription `id`'s deliveries stand.
    pub fn webhook_cursor(&self, id: u32) -> Result<WebhookCursor, RegistryError> {
        let snap = self.store.snapshot()?;
        Ok(match snap.get(&id_key(WEBHOOK_CURSOR, id))? {
            Some(v) => unjson(&v)?,
            None => WebhookCursor::default(),
        })
    }

    /// Records `log` entries and the cursor they leave, in one durable commit; clears log
    /// entries older than the last [`LOG_KEPT`].
    pub fn record_deliveries(
        &self,
        id: u32,
        mut cursor: WebhookCursor,
        log: &[DeliveryRecord],
    ) -> Result<WebhookCursor, RegistryError> {
        let mut ws = WriteSet::default();
        for r in log {
            ws.set_owned(log_key(id, cursor.log_seq), json(r));
            cursor.log_seq += 1;
        }
        if cursor.log_seq > LOG_KEPT {
            ws.clear_range(&log_key(id, 0), &log_key(id, cursor.log_seq - LOG_KEPT));
        }
        ws.set_owned(id_key(WEBHOOK_CURSOR, id), json(&cursor));
        self.store.commit(ws, Durability::Sync)?;
        Ok(cursor)
    }

    /// Moves subscription `id`'s cursor (a replay from an earlier position).
    pub fn set_webhook_cursor(
        &self,
        id: u32,
        after: Option<Vec<u8>>,
        done: u32,
    ) -> Result<(), RegistryError> {
        let mut c = self.webhook_cursor(id)?;
        c.after = after;
        c.done = done;
        let mut ws = WriteSet::default();
        ws.set_owned(id_key(WEBHOOK_CURSOR, id), json(&c));
        self.commit(ws)
    }

    /// The newest `limit` delivery attempts of subscription `id`, newest first.
    pub fn deliveries(&self, id: u32, limit: usize) -> Result<Vec<DeliveryRecord>, RegistryError> {
        let snap = self.store.snapshot()?;
        let begin = log_key(id, 0);
        let end = log_key(id, u64::MAX);
        snap.range(&begin, &end, limit, true)?
            .iter()
            .map(|(_, v)| unjson(v))
            .collect()
    }

    /// Takes or renews the dispatcher lease for `token` until `until_ms`; false when another
    /// gateway holds it.
    pub fn dispatch_lease(
        &self,
        token: u64,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, RegistryError> {
        self.transact(&mut |txn| {
            let k = key1(DISPATCH_LEASE, &[]);
            let mut ws = WriteSet::default();
            if let Some(v) = txn.get(&k)? {
                let owner = be_u64(v.get(..8).unwrap_or(&[]))?;
                let until = be_u64(v.get(8..16).unwrap_or(&[]))? as i64;
                if owner != token && until > now_ms {
                    return Ok((ws, false));
                }
            }
            let mut v = token.to_be_bytes().to_vec();
            v.extend_from_slice(&(until_ms as u64).to_be_bytes());
            ws.set_owned(k, v);
            Ok((ws, true))
        })
    }
}
