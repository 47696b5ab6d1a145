//! The gateway's own records: partners, API keys, rate tables, operator tokens and the links from
//! a partner's member references (card numbers, frequent-flyer numbers) to coalition members.
//!
//! They live in the ledger's store under the `G` prefix (see `docs/keyspace.md`), written with a
//! durable commit before the change is acknowledged. Partners, keys, rates and operators are few
//! and are kept in memory; member links can run to millions and are read from the store.
//!
//! Secrets at rest: a partner key's secret is never stored. It is derived on demand as
//! HMAC-SHA256(master key, key id), where the master key lives outside the store (a file only the
//! gateway can read). Operator tokens are random and stored as their SHA-256.

use crate::rates::RateTable;
use hmac::{Hmac, Mac};
use ledger::store::{prefix_end, Durability, EmbeddedStore, Snapshot, Store, StoreError, WriteSet};
use ledger::{MemberId, PartnerId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, RwLock};
use utoipa::ToSchema;

const PREFIX: u8 = b'G';
const PARTNER: u8 = b'p';
const KEY: u8 = b'k';
const RATE: u8 = b'r';
const OPERATOR: u8 = b'o';
const LINK: u8 = b'l';
const LINK_BACK: u8 = b'L';
const NEXT_MEMBER: u8 = b'n';

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
    next_member: u64,
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
    store: EmbeddedStore,
    master: [u8; 32],
    inner: RwLock<Inner>,
    /// Serialises writers so read-check-write sequences (id allocation, links) are atomic.
    write: Mutex<()>,
}

impl Registry {
    /// Loads every registry record from `store`.
    pub fn open(store: EmbeddedStore, master: [u8; 32]) -> Result<Registry, RegistryError> {
        let mut inner = Inner::default();
        let snap = store.snapshot()?;
        let mut failure = None;
        let begin = [PREFIX];
        let end = prefix_end(&begin);
        snap.scan(&begin, &end, &mut |k, v| {
            if let Err(e) = load_record(&mut inner, k, v) {
                failure = Some(e);
                return false;
            }
            true
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(Registry {
            store,
            master,
            inner: RwLock::new(inner),
            write: Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().expect("registry lock")
    }

    fn commit(&self, ws: WriteSet) -> Result<(), RegistryError> {
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
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

    /// A key by id.
    pub fn key(&self, key_id: &str) -> Option<KeyRecord> {
        self.read().keys.get(key_id).cloned()
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
        table.version = self
            .read()
            .rates
            .get(&partner.0)
            .and_then(|v| v.last())
            .map_or(1, |t| t.version + 1);
        let mut k = key1(RATE, &partner.0.to_be_bytes());
        k.extend_from_slice(&table.version.to_be_bytes());
        let mut ws = WriteSet::default();
        ws.set_owned(k, json(&table));
        self.commit(ws)?;
        self.inner
            .write()
            .expect("registry lock")
            .rates
            .entry(partner.0)
            .or_default()
            .push(table.clone());
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
        let _w = self.write.lock().expect("registry write lock");
        if let Some(existing) = self.member_of(partner, reference)? {
            return match member {
                Some(m) if m != existing => Err(RegistryError::ReferenceTaken {
                    reference: reference.to_string(),
                }),
                _ => Ok((existing, false)),
            };
        }
        let mut ws = WriteSet::default();
        let allocated = member.is_none();
        let member = member.unwrap_or_else(|| MemberId(self.allocate(&mut ws)));
        ws.set_owned(
            link_key(partner, reference),
            member.0.to_be_bytes().to_vec(),
        );
        ws.set_owned(
            link_back_key(partner, member),
            reference.as_bytes().to_vec(),
        );
        self.commit(ws)?;
        if allocated {
            self.inner.write().expect("registry lock").next_member = member.0 + 1;
        }
        Ok((member, true))
    }

    /// Allocates a member id without a partner link (operator enrolment).
    pub fn allocate_member(&self) -> Result<MemberId, RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let mut ws = WriteSet::default();
        let m = self.allocate(&mut ws);
        self.commit(ws)?;
        self.inner.write().expect("registry lock").next_member = m + 1;
        Ok(MemberId(m))
    }

    /// Allocates `n` consecutive member ids in one commit (bulk enrolment).
    pub fn allocate_members(&self, n: u64) -> Result<std::ops::Range<u64>, RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let first = self.read_next_member().max(1);
        let mut ws = WriteSet::default();
        ws.set_owned(
            vec![PREFIX, NEXT_MEMBER],
            (first + n).to_be_bytes().to_vec(),
        );
        self.commit(ws)?;
        self.inner.write().expect("registry lock").next_member = first + n;
        Ok(first..first + n)
    }

    /// Links many new references at `partner` in one commit (bulk onboarding). References
    /// already linked are refused as a whole.
    pub fn link_many(
        &self,
        partner: PartnerId,
        links: &[(String, MemberId)],
    ) -> Result<(), RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let mut ws = WriteSet::default();
        for (reference, member) in links {
            if self.member_of(partner, reference)?.is_some() {
                return Err(RegistryError::ReferenceTaken {
                    reference: reference.clone(),
                });
            }
            ws.set_owned(
                link_key(partner, reference),
                member.0.to_be_bytes().to_vec(),
            );
            ws.set_owned(
                link_back_key(partner, *member),
                reference.as_bytes().to_vec(),
            );
        }
        self.commit(ws)
    }

    fn read_next_member(&self) -> u64 {
        self.read().next_member
    }

    /// Writes the counter past the next id into `ws` and returns the id. Caller holds `write`.
    fn allocate(&self, ws: &mut WriteSet) -> u64 {
        let m = self.read_next_member().max(1);
        ws.set_owned(vec![PREFIX, NEXT_MEMBER], (m + 1).to_be_bytes().to_vec());
        m
    }
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
        Some(NEXT_MEMBER) => inner.next_member = be_u64(v)?,
        _ => {}
    }
    Ok(())
}

fn key1(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + body.len());
    k.push(PREFIX);
    k.push(kind);
    k.extend_from_slice(body);
    k
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
