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
}

impl Registry {
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
}
