//! Member profiles and their audit log. Personal data lives here, outside the journal (which
//! holds only member ids), so erasing a person never touches the books.

use super::{json, key1, unjson, Registry, RegistryError};
use crate::members::Profile;
use ledger::keys::gateway::{PROFILE, PROFILE_AUDIT};
use ledger::store::{Durability, Snapshot, Store, WriteSet};
use ledger::MemberId;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use utoipa::ToSchema;

/// One read or change of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProfileAudit {
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// Who: an operator's name, or `partner/ID`.
    pub who: String,
    /// `read`, `update` or `consent`.
    pub action: String,
    /// The fields changed (updates), or the channel (consent).
    pub fields: Vec<String>,
}

/// Orders entries of one gateway written in the same millisecond.
static AUDIT_SEQ: AtomicU32 = AtomicU32::new(0);

/// `member ++ at_ms ++ seq ++ random`: time order, then this gateway's order within a
/// millisecond; the random tail keeps two gateways' entries of the same instant apart.
fn audit_key(m: MemberId, at_ms: i64) -> Vec<u8> {
    let mut body = m.0.to_be_bytes().to_vec();
    body.extend_from_slice(&(at_ms as u64).to_be_bytes());
    body.extend_from_slice(&AUDIT_SEQ.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    body.extend_from_slice(&rand::random::<u32>().to_be_bytes());
    key1(PROFILE_AUDIT, &body)
}

impl Registry {
    /// Member `m`'s profile, if one was recorded.
    pub fn profile(&self, m: MemberId) -> Result<Option<Profile>, RegistryError> {
        let snap = self.store.snapshot()?;
        snap.get(&key1(PROFILE, &m.0.to_be_bytes()))?
            .map(|v| unjson(&v))
            .transpose()
    }

    /// Records `profile` for `m` (when `Some`) and the audit entry, in one durable commit.
    pub fn record_profile(
        &self,
        m: MemberId,
        profile: Option<&Profile>,
        audit: &ProfileAudit,
    ) -> Result<(), RegistryError> {
        let mut ws = WriteSet::default();
        if let Some(p) = profile {
            ws.set_owned(key1(PROFILE, &m.0.to_be_bytes()), json(p));
        }
        ws.set_owned(audit_key(m, audit.at_ms), json(audit));
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }

    /// The newest `limit` audit entries of `m`'s profile, newest first.
    pub fn profile_audit(
        &self,
        m: MemberId,
        limit: usize,
    ) -> Result<Vec<ProfileAudit>, RegistryError> {
        let snap = self.store.snapshot()?;
        let begin = key1(PROFILE_AUDIT, &m.0.to_be_bytes());
        let end = ledger::store::prefix_end(&begin);
        snap.range(&begin, &end, limit, true)?
            .iter()
            .map(|(_, v)| unjson(v))
            .collect()
    }
}
