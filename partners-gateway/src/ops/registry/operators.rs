//! Operator tokens (`G o`), stored as their SHA-256, with a role.

use super::*;

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
    /// The token stops working at this time, ms since the Unix epoch; `None`: never.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// When it was revoked; it no longer works.
    #[serde(default)]
    pub revoked_at_ms: Option<i64>,
}

impl OperatorRecord {
    /// True while the token works at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

/// An operator token's public id: the first 16 hex digits of its hash (never the token).
pub fn operator_id(hash: &[u8; 32]) -> String {
    hex::encode(&hash[..8])
}

impl Registry {
    /// Creates an operator credential valid for `valid_days` (or until revoked) and returns its
    /// token (shown once) and its public id. Its creation and expiry are counted from one
    /// instant.
    pub fn create_operator(
        &self,
        name: &str,
        role: Role,
        valid_days: Option<u32>,
    ) -> Result<(String, String), RegistryError> {
        let token = format!("ot_{}", random_hex(32));
        let now = Timestamp::now().0;
        let rec = OperatorRecord {
            name: name.to_string(),
            role,
            created_at_ms: now,
            expires_at_ms: valid_days.map(|d| now + i64::from(d) * 86_400_000),
            revoked_at_ms: None,
        };
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.put_operator(hash, rec)?;
        Ok((token, operator_id(&hash)))
    }

    fn put_operator(&self, hash: [u8; 32], rec: OperatorRecord) -> Result<(), RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let mut ws = WriteSet::default();
        ws.set_owned(key1(OPERATOR, &hash), json(&rec));
        self.commit(ws)?;
        self.inner
            .write()
            .expect("registry lock")
            .operators
            .insert(hash, rec);
        Ok(())
    }

    /// The operator a bearer token belongs to, while the token is live (not revoked, not
    /// expired).
    pub fn operator(&self, token: &str) -> Option<OperatorRecord> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Timestamp::now().0;
        self.read()
            .operators
            .get(&hash)
            .filter(|r| r.is_live(now))
            .cloned()
    }

    /// The live operator whose token has SHA-256 `hash`.
    pub fn operator_by_hash(&self, hash: &[u8; 32]) -> Option<OperatorRecord> {
        let now = Timestamp::now().0;
        self.read()
            .operators
            .get(hash)
            .filter(|r| r.is_live(now))
            .cloned()
    }

    /// Every operator credential, by public id, live or not.
    pub fn operators(&self) -> Vec<(String, OperatorRecord)> {
        let mut all: Vec<_> = self
            .read()
            .operators
            .iter()
            .map(|(h, r)| (operator_id(h), r.clone()))
            .collect();
        all.sort_by(|a, b| {
            a.1.created_at_ms
                .cmp(&b.1.created_at_ms)
                .then(a.0.cmp(&b.0))
        });
        all
    }

    /// Revokes the operator credential with public id `id`; `None` if there is none.
    pub fn revoke_operator(&self, id: &str) -> Result<Option<OperatorRecord>, RegistryError> {
        let found = self
            .read()
            .operators
            .iter()
            .find(|(h, _)| operator_id(h) == id)
            .map(|(h, r)| (*h, r.clone()));
        let Some((hash, mut rec)) = found else {
            return Ok(None);
        };
        rec.revoked_at_ms.get_or_insert(Timestamp::now().0);
        self.put_operator(hash, rec.clone())?;
        Ok(Some(rec))
    }
}
