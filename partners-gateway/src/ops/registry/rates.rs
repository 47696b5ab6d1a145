//! Rate table versions per partner (`G r`), numbered in a store transaction (`G v`).

use super::*;

impl Registry {
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
        list.push(Arc::new(table.clone()));
        list.sort_by_key(|t| t.version);
        list.dedup_by_key(|t| t.version);
        Ok(table)
    }

    /// Every rate table version of `partner`, oldest first.
    pub fn rate_tables(&self, partner: PartnerId) -> Vec<RateTable> {
        self.read()
            .rates
            .get(&partner.0)
            .map(|l| l.iter().map(|t| RateTable::clone(t)).collect())
            .unwrap_or_default()
    }

    /// The rate table in force for `partner` at `at`: the latest `effective_from` not after
    /// `at`, and among equals the highest version.
    pub fn rate_in_force(&self, partner: PartnerId, at: Timestamp) -> Option<Arc<RateTable>> {
        let inner = self.read();
        inner
            .rates
            .get(&partner.0)?
            .iter()
            .filter(|t| t.effective_from_ms <= at.0)
            .max_by_key(|t| (t.effective_from_ms, t.version))
            .cloned()
    }
}
