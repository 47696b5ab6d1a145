//! Partner API keys (`G k`): scopes and revocation; secrets derived from the master key, never
//! stored.

use super::*;

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

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

impl Registry {
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
        let Some(mut rec) = self.key_stored(key_id).filter(|k| k.partner == partner.0) else {
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
            .insert(rec.key_id.clone(), Arc::new(rec));
        Ok(())
    }

    /// A key by id, from memory: every key is loaded at start and at each refresh (2 s), so a
    /// key made on another gateway signs requests here from the next refresh.
    pub fn key(&self, key_id: &str) -> Option<Arc<KeyRecord>> {
        self.read().keys.get(key_id).cloned()
    }

    /// Key `key_id` from memory, or else from the store (a key another gateway made since the
    /// last refresh). For operators' calls, never an unauthenticated request's: a request's
    /// key is looked up in memory only, so no store read happens before its signature is
    /// checked.
    pub fn key_stored(&self, key_id: &str) -> Option<KeyRecord> {
        if let Some(k) = self.key(key_id) {
            return Some(KeyRecord::clone(&k));
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
            .insert(rec.key_id.clone(), Arc::new(rec.clone()));
        Some(rec)
    }

    /// A partner's keys, oldest first.
    pub fn keys_of(&self, partner: PartnerId) -> Vec<KeyRecord> {
        let mut keys: Vec<_> = self
            .read()
            .keys
            .values()
            .filter(|k| k.partner == partner.0)
            .map(|k| KeyRecord::clone(k))
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

    /// HMAC-SHA256 keyed by `key`'s secret, ready for a request's canonical string. Made once
    /// per key and copied after: a request costs no derivation of its key's secret. Only keys
    /// the registry holds are kept, so the map is as small as the key list.
    pub fn signing_mac(&self, key: &KeyRecord) -> Hmac<Sha256> {
        if let Some(mac) = self.macs.read().expect("macs lock").get(&key.key_id) {
            return mac.clone();
        }
        let mac = Hmac::<Sha256>::new_from_slice(self.secret_of(&key.key_id).as_bytes())
            .expect("HMAC takes any key length");
        if self.read().keys.contains_key(&key.key_id) {
            self.macs
                .write()
                .expect("macs lock")
                .insert(key.key_id.clone(), mac.clone());
        }
        mac
    }
}
