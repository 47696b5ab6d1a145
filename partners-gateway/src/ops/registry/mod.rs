//! The gateway's own records: partners, API keys, rate tables, operator tokens and the links from
//! a partner's member references (card numbers, frequent-flyer numbers) to coalition members.
//!
//! They live in the ledger's store under the `G` prefix (see `docs/keyspace.md`), written with a
//! durable commit before the change is acknowledged. Partners, keys, rates and operators are few
//! and are kept in memory; member links can run to millions and are read from the store.
//!
//! Every read-check-write (member id allocation, links, rate table numbering) is one store
//! transaction, so gateways sharing a FoundationDB cluster cannot allocate the same id or link
//! one reference twice. Gateways on a shared store also [`Registry::refresh`] their in-memory
//! view every few seconds and read an unknown key id through to the store, so a key created on
//! one gateway works on every gateway at once, and a revocation reaches them all within the
//! refresh interval.
//!
//! Secrets at rest: a partner key's secret is never stored. It is derived on demand as
//! HMAC-SHA256(master key, key id), where the master key lives outside the store (a file only the
//! gateway can read). Operator tokens are random and stored as their SHA-256.

use crate::programme::rates::RateTable;
use hmac::{Hmac, Mac};
use ledger::store::{
    prefix_end, Durability, Engine, Snapshot, Store, StoreError, Txn, TxnBody, TxnStore, WriteSet,
};
use ledger::{MemberId, PartnerId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, RwLock};
use utoipa::ToSchema;

use ledger::keys::gateway::{
    key as key1, KEY, LINK, LINK_BACK, NEXT_MEMBER, NEXT_RATE, OPERATOR, PARTNER, RATE,
};
use ledger::keys::GATEWAY as PREFIX;
/// Attempts of a registry transaction before it fails as contended.
const TXN_ATTEMPTS: u32 = 20;

/// Longest partner member reference, in bytes.
pub const MEMBER_REFERENCE_LEN_MAX: usize = 64;

/// A partner merchant as the gateway knows it (its contract lives in the ledger).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PartnerRecord {
    /// Partner id.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Sustained requests per second allowed.
    pub requests_per_second: u32,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Earn, reverse earns, enrol and link members.
    Earn,
    /// Burn, hold, capture, void, reverse burns.
    Burn,
    /// Balances, statements, transactions, quotes, rates.
    Read,
}

/// A partner API key. The secret is not part of the record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyRecord {
    /// Public key id, sent with every request.
    pub key_id: String,
    /// Owning partner.
    pub partner: u32,
    /// What the key may do.
    pub scopes: Vec<KeyScope>,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Revocation time, if revoked.
    pub revoked_at_ms: Option<i64>,
}

/// Operator roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Configures partners, keys, rates, members and adjustments.
    Operator,
    /// Reads everything, changes nothing.
    Finance,
}

/// An operator credential. The token itself is not stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorRecord {
    /// Who holds it (recorded on adjustments).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
}

#[derive(Default)]
struct Inner {
    partners: BTreeMap<u32, PartnerRecord>,
    keys: HashMap<String, KeyRecord>,
    rates: BTreeMap<u32, Vec<RateTable>>,
    operators: HashMap<[u8; 32], OperatorRecord>,
}

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record did not decode.
    #[error("corrupt registry record: {0}")]
    Corrupt(String),
    /// The member reference is linked to a different member.
    #[error("reference {reference} is already linked to another member")]
    ReferenceTaken {
        /// The reference.
        reference: String,
    },
}

/// The registry: in-memory view plus durable writes.
pub struct Registry {
    store: Engine,
    master: [u8; 32],
    inner: RwLock<Inner>,
    /// Serialises this process's writers of cached records, so memory follows the store.
    write: Mutex<()>,
}

impl Registry {
    /// Loads every cached registry record from `store`.
    pub fn open(store: Engine, master: [u8; 32]) -> Result<Registry, RegistryError> {
        let inner = load_all(&store)?;
        Ok(Registry {
            store,
            master,
            inner: RwLock::new(inner),
            write: Mutex::new(()),
        })
    }

    /// Reloads partners, keys, rate tables and operators from the store: what other gateways
    /// on a shared store changed becomes visible here.
    pub fn refresh(&self) -> Result<(), RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let inner = load_all(&self.store)?;
        *self.inner.write().expect("registry lock") = inner;
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().expect("registry lock")
    }

    fn commit(&self, ws: WriteSet) -> Result<(), RegistryError> {
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }

    /// Runs `body` as one store transaction (serialisable reads, durable commit).
    fn transact<T>(&self, body: &mut TxnBody<'_, T, RegistryError>) -> Result<T, RegistryError> {
        Ok(self.store.transact(TXN_ATTEMPTS, body)?.1)
    }

    /// A partner by id.
    pub fn partner(&self, id: PartnerId) -> Option<PartnerRecord> {
        self.read().partners.get(&id.0).cloned()
    }

    /// Every partner, by id.
    pub fn partners(&self) -> Vec<PartnerRecord> {
        self.read().partners.values().cloned().collect()
    }

    /// Creates or replaces a partner record.
    pub fn put_partner(&self, rec: PartnerRecord) -> Result<(), RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let mut ws = WriteSet::default();
        ws.set_owned(key1(PARTNER, &rec.id.to_be_bytes()), json(&rec));
        self.commit(ws)?;
        self.inner
            .write()
            .expect("registry lock")
            .partners
            .insert(rec.id, rec);
        Ok(())
    }

    /// Issues a new key for `partner` and returns it with its secret (shown once).
    pub fn create_key(
        &self,
        partner: PartnerId,
        scopes: Vec<KeyScope>,
    ) -> Result<(KeyRecord, String), RegistryError> {
        let key_id = format!("pk_{}", random_hex(12));
        let rec = KeyRecord {
            key_id: key_id.clone(),
            partner: partner.0,
            scopes,
            created_at_ms: Timestamp::now().0,
            revoked_at_ms: None,
        };
        self.put_key(rec.clone())?;
        let secret = self.secret_of(&key_id);
        Ok((rec, secret))
    }

    /// Revokes `key_id` if it belongs to `partner`; returns the updated record.
    pub fn revoke_key(
        &self,
        partner: PartnerId,
        key_id: &str,
    ) -> Result<Option<KeyRecord>, RegistryError> {
        let Some(mut rec) = self.key(key_id).filter(|k| k.partner == partner.0) else {
            return Ok(None);
        };
        if rec.revoked_at_ms.is_none() {
            rec.revoked_at_ms = Some(Timestamp::now().0);
            self.put_key(rec.clone())?;
        }
        Ok(Some(rec))
    }

    fn put_key(&self, rec: KeyRecord) -> Result<(), RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let mut ws = WriteSet::default();
        ws.set_owned(key1(KEY, rec.key_id.as_bytes()), json(&rec));
        self.commit(ws)?;
        self.inner
            .write()
            .expect("registry lock")
            .keys
            .insert(rec.key_id.clone(), rec);
        Ok(())
    }

    /// A key by id. An id this process has not seen is read from the store (another gateway
    /// may have just created it).
    pub fn key(&self, key_id: &str) -> Option<KeyRecord> {
        if let Some(k) = self.read().keys.get(key_id) {
            return Some(k.clone());
        }
        if key_id.is_empty() || key_id.len() > 64 {
            return None;
        }
        let v = self
            .store
            .snapshot()
            .and_then(|s| s.get(&key1(KEY, key_id.as_bytes())))
            .ok()??;
        let rec: KeyRecord = unjson(&v).ok()?;
        self.inner
            .write()
            .expect("registry lock")
            .keys
            .insert(rec.key_id.clone(), rec.clone());
        Some(rec)
    }

    /// A partner's keys, oldest first.
    pub fn keys_of(&self, partner: PartnerId) -> Vec<KeyRecord> {
        let mut keys: Vec<_> = self
            .read()
            .keys
            .values()
            .filter(|k| k.partner == partner.0)
            .cloned()
            .collect();
        keys.sort_by(|a, b| (a.created_at_ms, &a.key_id).cmp(&(b.created_at_ms, &b.key_id)));
        keys
    }

    /// The signing secret of `key_id`: HMAC-SHA256(master, key id), hex.
    pub fn secret_of(&self, key_id: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.master).expect("HMAC takes any key length");
        mac.update(b"partner-key-secret/v1/");
        mac.update(key_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Adds a rate table version for `partner`, numbering it after the last one.
    pub fn add_rate_table(
        &self,
        partner: PartnerId,
        mut table: RateTable,
    ) -> Result<RateTable, RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let counter = key1(NEXT_RATE, &partner.0.to_be_bytes());
        let prefix = key1(RATE, &partner.0.to_be_bytes());
        table.version = self.transact(&mut |txn| {
            let version = match txn.get(&counter)? {
                Some(v) => be_u32(&v)?,
                // Stores from before the counter: one past the highest version written.
                None => txn
                    .range_snapshot(&prefix, &prefix_end(&prefix), usize::MAX)?
                    .last()
                    .map_or(Ok(1), |(k, _)| be_u32(&k[k.len() - 4..]).map(|v| v + 1))?,
            };
            let mut k = prefix.clone();
            k.extend_from_slice(&version.to_be_bytes());
            let mut t = table.clone();
            t.version = version;
            let mut ws = WriteSet::default();
            ws.set_owned(k, json(&t));
            ws.set_owned(counter.clone(), (version + 1).to_be_bytes().to_vec());
            Ok((ws, version))
        })?;
        let mut inner = self.inner.write().expect("registry lock");
        let list = inner.rates.entry(partner.0).or_default();
        list.push(table.clone());
        list.sort_by_key(|t| t.version);
        list.dedup_by_key(|t| t.version);
        Ok(table)
    }

    /// Every rate table version of `partner`, oldest first.
    pub fn rate_tables(&self, partner: PartnerId) -> Vec<RateTable> {
        self.read()
            .rates
            .get(&partner.0)
            .cloned()
            .unwrap_or_default()
    }

    /// The rate table in force for `partner` at `at`: the latest `effective_from` not after
    /// `at`, and among equals the highest version.
    pub fn rate_in_force(&self, partner: PartnerId, at: Timestamp) -> Option<RateTable> {
        let inner = self.read();
        inner
            .rates
            .get(&partner.0)?
            .iter()
            .filter(|t| t.effective_from_ms <= at.0)
            .max_by_key(|t| (t.effective_from_ms, t.version))
            .cloned()
    }

    /// Creates an operator credential and returns its token (shown once).
    pub fn create_operator(&self, name: &str, role: Role) -> Result<String, RegistryError> {
        let token = format!("ot_{}", random_hex(32));
        let rec = OperatorRecord {
            name: name.to_string(),
            role,
            created_at_ms: Timestamp::now().0,
        };
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let _w = self.write.lock().expect("registry write lock");
        let mut ws = WriteSet::default();
        ws.set_owned(key1(OPERATOR, &hash), json(&rec));
        self.commit(ws)?;
        self.inner
            .write()
            .expect("registry lock")
            .operators
            .insert(hash, rec);
        Ok(token)
    }

    /// The operator a bearer token belongs to.
    pub fn operator(&self, token: &str) -> Option<OperatorRecord> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.read().operators.get(&hash).cloned()
    }

    /// The member `reference` names at `partner`.
    pub fn member_of(
        &self,
        partner: PartnerId,
        reference: &str,
    ) -> Result<Option<MemberId>, RegistryError> {
        let snap = self.store.snapshot()?;
        match snap.get(&link_key(partner, reference))? {
            Some(v) => Ok(Some(MemberId(be_u64(&v)?))),
            None => Ok(None),
        }
    }

    /// `partner`'s reference for `member`, if linked.
    pub fn reference_of(
        &self,
        partner: PartnerId,
        member: MemberId,
    ) -> Result<Option<String>, RegistryError> {
        let snap = self.store.snapshot()?;
        match snap.get(&link_back_key(partner, member))? {
            Some(v) => Ok(Some(String::from_utf8(v).map_err(|e| {
                RegistryError::Corrupt(format!("member reference: {e}"))
            })?)),
            None => Ok(None),
        }
    }

    /// Links `reference` at `partner` to `member`, or to a newly allocated member when `member`
    /// is `None`. Returns the member and whether the link is new. Linking the same reference to
    /// the same member again changes nothing.
    pub fn link(
        &self,
        partner: PartnerId,
        reference: &str,
        member: Option<MemberId>,
    ) -> Result<(MemberId, bool), RegistryError> {
        let link = link_key(partner, reference);
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            if let Some(v) = txn.get(&link)? {
                let existing = MemberId(be_u64(&v)?);
                return match member {
                    Some(m) if m != existing => Err(RegistryError::ReferenceTaken {
                        reference: reference.to_string(),
                    }),
                    _ => Ok((ws, (existing, false))),
                };
            }
            let m = match member {
                Some(m) => m,
                None => MemberId(allocate(txn, &mut ws, 1)?.start),
            };
            ws.set_owned(link.clone(), m.0.to_be_bytes().to_vec());
            ws.set_owned(link_back_key(partner, m), reference.as_bytes().to_vec());
            Ok((ws, (m, true)))
        })
    }

    /// Allocates a member id without a partner link (operator enrolment).
    pub fn allocate_member(&self) -> Result<MemberId, RegistryError> {
        Ok(MemberId(self.allocate_members(1)?.start))
    }

    /// Allocates `n` consecutive member ids in one transaction (bulk enrolment).
    pub fn allocate_members(&self, n: u64) -> Result<std::ops::Range<u64>, RegistryError> {
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            let ids = allocate(txn, &mut ws, n)?;
            Ok((ws, ids))
        })
    }

    /// Links many new references at `partner` in one transaction (bulk onboarding).
    /// References already linked are refused as a whole.
    pub fn link_many(
        &self,
        partner: PartnerId,
        links: &[(String, MemberId)],
    ) -> Result<(), RegistryError> {
        let keys: Vec<Vec<u8>> = links.iter().map(|(r, _)| link_key(partner, r)).collect();
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            for (((reference, member), key), taken) in
                links.iter().zip(&keys).zip(txn.get_many(&keys)?)
            {
                if taken.is_some() {
                    return Err(RegistryError::ReferenceTaken {
                        reference: reference.clone(),
                    });
                }
                ws.set_owned(key.clone(), member.0.to_be_bytes().to_vec());
                ws.set_owned(
                    link_back_key(partner, *member),
                    reference.as_bytes().to_vec(),
                );
            }
            Ok((ws, ()))
        })
    }
}

/// Reserves `n` member ids from the counter, inside `txn`.
fn allocate(
    txn: &dyn Txn,
    ws: &mut WriteSet,
    n: u64,
) -> Result<std::ops::Range<u64>, RegistryError> {
    let counter = vec![PREFIX, NEXT_MEMBER];
    let first = match txn.get(&counter)? {
        Some(v) => be_u64(&v)?,
        None => 1,
    }
    .max(1);
    ws.set_owned(counter, (first + n).to_be_bytes().to_vec());
    Ok(first..first + n)
}

/// Loads the cached families (partners, keys, rate tables, operators).
fn load_all(store: &Engine) -> Result<Inner, RegistryError> {
    let mut inner = Inner::default();
    let snap = store.snapshot()?;
    let mut failure = None;
    for kind in [PARTNER, KEY, RATE, OPERATOR] {
        let begin = [PREFIX, kind];
        snap.scan(&begin, &prefix_end(&begin), &mut |k, v| {
            if let Err(e) = load_record(&mut inner, k, v) {
                failure = Some(e);
                return false;
            }
            true
        })?;
        if let Some(e) = failure.take() {
            return Err(e);
        }
    }
    Ok(inner)
}

fn load_record(inner: &mut Inner, k: &[u8], v: &[u8]) -> Result<(), RegistryError> {
    let body = &k[2.min(k.len())..];
    match k.get(1).copied() {
        Some(PARTNER) => {
            let r: PartnerRecord = unjson(v)?;
            inner.partners.insert(r.id, r);
        }
        Some(KEY) => {
            let r: KeyRecord = unjson(v)?;
            inner.keys.insert(r.key_id.clone(), r);
        }
        Some(RATE) => {
            let t: RateTable = unjson(v)?;
            let partner = u32::from_be_bytes(
                body.get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| RegistryError::Corrupt("rate key".into()))?,
            );
            // Keys sort by version, so each partner's list stays in version order.
            inner.rates.entry(partner).or_default().push(t);
        }
        Some(OPERATOR) => {
            let hash: [u8; 32] = body
                .try_into()
                .map_err(|_| RegistryError::Corrupt("operator key".into()))?;
            inner.operators.insert(hash, unjson(v)?);
        }
        _ => {}
    }
    Ok(())
}

fn link_key(partner: PartnerId, reference: &str) -> Vec<u8> {
    let mut k = key1(LINK, &partner.0.to_be_bytes());
    k.extend_from_slice(reference.as_bytes());
    k
}

fn link_back_key(partner: PartnerId, member: MemberId) -> Vec<u8> {
    let mut k = key1(LINK_BACK, &partner.0.to_be_bytes());
    k.extend_from_slice(&member.0.to_be_bytes());
    k
}

fn be_u32(v: &[u8]) -> Result<u32, RegistryError> {
    v.try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| RegistryError::Corrupt("expected a 4-byte counter".into()))
}

fn be_u64(v: &[u8]) -> Result<u64, RegistryError> {
    Ok(u64::from_be_bytes(v.try_into().map_err(|_| {
        RegistryError::Corrupt("expected an 8-byte integer".into())
    })?))
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("registry records always encode")
}

fn unjson<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(v).map_err(|e| RegistryError::Corrupt(e.to_string()))
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

/// Reads the master key from `path` (64 hex characters), creating it with mode 0600 if absent.
pub fn load_or_create_master_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context;
    if !path.exists() {
        write_private(path, &random_hex(32), true)
            .with_context(|| format!("creating master key {}", path.display()))?;
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading master key {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .with_context(|| format!("master key {} is not hex", path.display()))?;
    bytes.try_into().map_err(|_| {
        anyhow::anyhow!(
            "master key {} must be 32 bytes (64 hex characters)",
            path.display()
        )
    })
}

/// Writes `text` to `path` readable by the owner only (mode 0600), synced to disk. With
/// `create_new`, fails if the file exists rather than replacing it.
pub fn write_private(path: &Path, text: &str, create_new: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if create_new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::store::EmbeddedStore;

    /// Two registries on one store, as two gateways on one cluster.
    fn two(dir: &Path) -> (Registry, Registry) {
        let store = Engine::Embedded(EmbeddedStore::open(dir).expect("store"));
        let master = [7u8; 32];
        (
            Registry::open(store.clone(), master).expect("registry a"),
            Registry::open(store, master).expect("registry b"),
        )
    }

    #[test]
    fn gateways_sharing_a_store_never_allocate_one_id_or_link_one_reference_twice() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = two(dir.path());
        let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let r = if i % 2 == 0 { a.clone() } else { b.clone() };
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for n in 0..50 {
                        mine.push(r.allocate_member().expect("allocate").0);
                        // Every thread links the same references: one wins each.
                        let (m, new) = r
                            .link(PartnerId(1), &format!("CARD-{n}"), None)
                            .expect("link");
                        mine.push(m.0);
                        if new {
                            mine.push(u64::MAX - n);
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut ids = Vec::new();
        let mut wins = Vec::new();
        for t in threads {
            for id in t.join().expect("thread") {
                if id > u64::MAX - 100 {
                    wins.push(u64::MAX - id);
                } else {
                    ids.push(id);
                }
            }
        }
        wins.sort_unstable();
        assert_eq!(
            wins,
            (0..50).collect::<Vec<_>>(),
            "each reference linked once"
        );
        let allocated: std::collections::HashSet<u64> = ids.iter().copied().collect();
        // 400 direct allocations plus one per reference.
        assert_eq!(allocated.len(), 400 + 50, "no id handed out twice");
        for n in 0..50 {
            let reference = format!("CARD-{n}");
            assert_eq!(
                a.member_of(PartnerId(1), &reference).expect("read"),
                b.member_of(PartnerId(1), &reference).expect("read")
            );
        }
    }

    #[test]
    fn a_key_made_on_one_gateway_signs_on_another_and_its_revocation_follows_a_refresh() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = two(dir.path());
        let (key, secret) = a
            .create_key(PartnerId(4), vec![KeyScope::Read])
            .expect("create key");
        let seen = b.key(&key.key_id).expect("read through to the store");
        assert_eq!(seen.partner, 4);
        assert_eq!(
            b.secret_of(&key.key_id),
            secret,
            "same master key, same secret"
        );
        a.revoke_key(PartnerId(4), &key.key_id).expect("revoke");
        assert!(b.key(&key.key_id).expect("cached").revoked_at_ms.is_none());
        b.refresh().expect("refresh");
        assert!(b.key(&key.key_id).expect("key").revoked_at_ms.is_some());
        assert!(b.key("pk_unknown").is_none());
    }

    #[test]
    fn rate_table_versions_are_numbered_across_gateways() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = two(dir.path());
        let table: RateTable =
            serde_json::from_value(serde_json::json!({"version": 0, "effective_from_ms": 0, "unit": "EUR", "earn_points_per_unit": "1", "burn_points_per_unit": null}))
                .expect("table");
        assert_eq!(
            a.add_rate_table(PartnerId(2), table.clone())
                .expect("v1")
                .version,
            1
        );
        assert_eq!(
            b.add_rate_table(PartnerId(2), table.clone())
                .expect("v2")
                .version,
            2
        );
        assert_eq!(
            a.add_rate_table(PartnerId(2), table).expect("v3").version,
            3
        );
        a.refresh().expect("refresh");
        let versions: Vec<u32> = a
            .rate_tables(PartnerId(2))
            .iter()
            .map(|t| t.version)
            .collect();
        assert_eq!(versions, vec![1, 2, 3]);
    }
}
