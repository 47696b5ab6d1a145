//! Partners: name and request allowance, kept in memory (`G p`).

use super::*;

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

impl Registry {
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
}
