//! Engagement records (`G e ++ family ++ body`; families in `ledger::keys::gateway::engagement`):
//! typed reads, scans and read-check-write transactions over them. What each record means is
//! the business of `ops/engagement/`; this file only knows where records live.

use super::{json, unjson, Registry, RegistryError};
use ledger::keys::gateway::engagement::NEXT_ID;
use ledger::keys::gateway::{key as key1, ENGAGEMENT};
use ledger::store::{prefix_end, Durability, Snapshot, Store, Txn, WriteSet};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn ekey(family: u8, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 + body.len());
    b.push(family);
    b.extend_from_slice(body);
    key1(ENGAGEMENT, &b)
}

/// One engagement transaction: reads see the store (with conflicts on the cluster store),
/// writes are collected and committed together, or not at all.
pub struct EngTxn<'a> {
    txn: &'a dyn Txn,
    ws: WriteSet,
}

impl EngTxn<'_> {
    /// The record at `family ++ body`.
    pub fn get<T: DeserializeOwned>(
        &self,
        family: u8,
        body: &[u8],
    ) -> Result<Option<T>, RegistryError> {
        self.txn
            .get(&ekey(family, body))?
            .map(|v| unjson(&v))
            .transpose()
    }

    /// Writes `v` at `family ++ body`.
    pub fn put<T: Serialize>(&mut self, family: u8, body: &[u8], v: &T) {
        self.ws.set_owned(ekey(family, body), json(v));
    }

    /// Clears `family ++ body`.
    pub fn clear(&mut self, family: u8, body: &[u8]) {
        self.ws.clear(&ekey(family, body));
    }

    /// The next id of `family`, from 1.
    pub fn next_id(&mut self, family: u8) -> Result<u64, RegistryError> {
        let id: u64 = self.get(NEXT_ID, &[family])?.unwrap_or(1);
        self.put(NEXT_ID, &[family], &(id + 1));
        Ok(id)
    }
}

/// The body of an engagement transaction: `Ok(Err(_))` is a refusal, which writes nothing.
pub type EngBody<'f, T, E> = dyn FnMut(&mut EngTxn<'_>) -> Result<Result<T, E>, RegistryError> + 'f;

impl Registry {
    /// Runs `f` as one store transaction (retried on conflict), and commits its writes durably
    /// unless it answers `Ok(Err(_))`: a refusal writes nothing.
    pub fn engage<T, E>(&self, f: &mut EngBody<'_, T, E>) -> Result<Result<T, E>, RegistryError> {
        self.transact(&mut |txn| {
            let mut t = EngTxn {
                txn,
                ws: WriteSet::default(),
            };
            let out = f(&mut t)?;
            let ws = if out.is_ok() {
                t.ws
            } else {
                WriteSet::default()
            };
            Ok((ws, out))
        })
    }

    /// The record at `family ++ body`, from a snapshot.
    pub fn eng_get<T: DeserializeOwned>(
        &self,
        family: u8,
        body: &[u8],
    ) -> Result<Option<T>, RegistryError> {
        self.store
            .snapshot()?
            .get(&ekey(family, body))?
            .map(|v| unjson(&v))
            .transpose()
    }

    /// Up to `limit` records under `family ++ prefix`, after `after` (a body, exclusive) when
    /// given, in key order: each with its body (the key past the family byte).
    pub fn eng_scan<T: DeserializeOwned>(
        &self,
        family: u8,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, RegistryError> {
        let start = ekey(family, prefix);
        let end = prefix_end(&start);
        let begin = match after {
            Some(a) => {
                let mut k = ekey(family, a);
                k.push(0);
                k.max(start.clone())
            }
            None => start.clone(),
        };
        let skip = ekey(family, &[]).len();
        self.store
            .snapshot()?
            .range(&begin, &end, limit, false)?
            .iter()
            .map(|(k, v)| Ok((k[skip..].to_vec(), unjson(v)?)))
            .collect()
    }

    /// Writes `items` (family, body, record) in one durable commit, without reading: records
    /// only this caller makes (a draw's entry rows as it closes).
    pub fn eng_put_all<T: Serialize>(
        &self,
        items: &[(u8, Vec<u8>, T)],
    ) -> Result<(), RegistryError> {
        let mut ws = WriteSet::default();
        for (family, body, v) in items {
            ws.set_owned(ekey(*family, body), json(v));
        }
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }
}
