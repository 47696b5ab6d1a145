//! Member profiles and their audit log. Personal data lives here, outside the journal (which
//! holds only member ids), so erasing a person never touches the books. A profile is sealed
//! under its member's data key ([`super::vault`]): destroying the key erases every copy.

use super::vault::{is_sealed, open, seal};
use super::{json, key1, unjson, Registry, RegistryError};
use crate::members::Profile;
use ledger::keys::gateway::{ERASURE, PROFILE, PROFILE_AUDIT, PROFILE_CHANGE};
use ledger::store::{prefix_end, Durability, Snapshot, Store, WriteSet};
use ledger::{MemberId, Timestamp};
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

/// Notes in `ws` that member `m`'s profile changed.
fn note_change(ws: &mut WriteSet, m: MemberId) {
    let mut body = (Timestamp::now().0.max(0) as u64).to_be_bytes().to_vec();
    body.extend_from_slice(&AUDIT_SEQ.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    body.extend_from_slice(&rand::random::<u32>().to_be_bytes());
    body.extend_from_slice(&m.0.to_be_bytes());
    ws.set_owned(key1(PROFILE_CHANGE, &body), Vec::new());
}

impl Registry {
    /// The newest profile change's key (where a reader of the changes starts).
    pub fn last_profile_change(&self) -> Result<Option<Vec<u8>>, RegistryError> {
        let begin = key1(PROFILE_CHANGE, &[]);
        Ok(self
            .store
            .snapshot()?
            .range(&begin, &prefix_end(&begin), 1, true)?
            .into_iter()
            .next()
            .map(|(k, _)| k))
    }

    /// Profile changes after key `after`, oldest first, at most `limit`: each change's key and
    /// member.
    pub fn profile_changes_after(
        &self,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, MemberId)>, RegistryError> {
        let begin = key1(PROFILE_CHANGE, &[]);
        let mut from = after.to_vec();
        from.push(0);
        let from = if from < begin { begin.clone() } else { from };
        self.store
            .snapshot()?
            .range(&from, &prefix_end(&begin), limit, false)?
            .into_iter()
            .map(|(k, _)| {
                let id = k
                    .len()
                    .checked_sub(8)
                    .and_then(|i| <[u8; 8]>::try_from(&k[i..]).ok())
                    .ok_or_else(|| RegistryError::Corrupt("profile change key".into()))?;
                Ok((k, MemberId(u64::from_be_bytes(id))))
            })
            .collect()
    }

    /// Member `m`'s profile, if one was recorded (and not erased).
    pub fn profile(&self, m: MemberId) -> Result<Option<Profile>, RegistryError> {
        let snap = self.store.snapshot()?;
        let Some(v) = snap.get(&key1(PROFILE, &m.0.to_be_bytes()))? else {
            return Ok(None);
        };
        if !is_sealed(&v) {
            return unjson(&v).map(Some);
        }
        match self.member_key(m, false)? {
            Some(k) => unjson(&open(&k, m, &v)?).map(Some),
            // The key is gone: the member was erased (the record goes with it).
            None => Ok(None),
        }
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
            let k = self
                .member_key(m, true)?
                .expect("a key is created when asked for");
            ws.set_owned(key1(PROFILE, &m.0.to_be_bytes()), seal(&k, m, &json(p)));
            note_change(&mut ws, m);
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

/// The record that a member's personal data was erased, kept for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErasureRecord {
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// The operator who carried it out.
    pub operator: String,
    /// Why (the request it answers), as the operator recorded it.
    pub reason: String,
    /// Whether the member had a data key (a profile) that was destroyed.
    pub key_destroyed: bool,
    /// Whether a profile record was deleted.
    pub profile_deleted: bool,
    /// Partner references unlinked.
    pub links_removed: u32,
    /// The ledger transaction that closed the member, when it was still open.
    pub closed_by: Option<String>,
}

impl Registry {
    /// Erases member `m`'s personal data: destroys its data key (every copy of its profile, in
    /// any file, becomes unreadable), deletes the profile and every partner reference linked to
    /// it, and records the erasure. The ledger keeps the member's id and journal. Idempotent:
    /// a second call finds nothing more and returns the first record.
    pub fn erase_member(
        &self,
        m: MemberId,
        mut record: ErasureRecord,
        links: &[(ledger::PartnerId, String)],
    ) -> Result<ErasureRecord, RegistryError> {
        let erasure = key1(ERASURE, &m.0.to_be_bytes());
        if let Some(v) = self.store.snapshot()?.get(&erasure)? {
            return unjson(&v);
        }
        record.key_destroyed = self.destroy_member_key(m)?;
        let profile = key1(PROFILE, &m.0.to_be_bytes());
        record.profile_deleted = self.store.snapshot()?.get(&profile)?.is_some();
        let mut ws = WriteSet::default();
        ws.clear(&profile);
        for (p, reference) in links {
            self.unlink_in(&mut ws, *p, m, reference);
        }
        record.links_removed = links.len() as u32;
        ws.set_owned(erasure, json(&record));
        note_change(&mut ws, m);
        self.store.commit(ws, Durability::Sync)?;
        Ok(record)
    }

    /// Calls `f` with every member's profile, in member id order (members whose key is gone are
    /// skipped).
    pub fn for_each_profile(
        &self,
        f: &mut dyn FnMut(MemberId, Profile),
    ) -> Result<(), RegistryError> {
        let snap = self.store.snapshot()?;
        let begin = key1(PROFILE, &[]);
        let mut failure = None;
        snap.scan(&begin, &prefix_end(&begin), &mut |k, v| {
            let Ok(id) = <[u8; 8]>::try_from(&k[2..]) else {
                failure = Some(RegistryError::Corrupt("profile key".into()));
                return false;
            };
            let m = MemberId(u64::from_be_bytes(id));
            let plain = if is_sealed(v) {
                match self.member_key(m, false) {
                    Ok(Some(key)) => open(&key, m, v),
                    Ok(None) => return true,
                    Err(e) => Err(e),
                }
            } else {
                Ok(v.to_vec())
            };
            match plain.and_then(|p| unjson(&p)) {
                Ok(p) => {
                    f(m, p);
                    true
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// The record of member `m`'s erasure, if it was erased.
    pub fn erasure(&self, m: MemberId) -> Result<Option<ErasureRecord>, RegistryError> {
        self.store
            .snapshot()?
            .get(&key1(ERASURE, &m.0.to_be_bytes()))?
            .map(|v| unjson(&v))
            .transpose()
    }

    /// Moves member `from`'s profile to `into` when `into` has none (a merge): sealed again
    /// under `into`'s key; `from`'s record and key go.
    pub fn move_profile(&self, from: MemberId, into: MemberId) -> Result<bool, RegistryError> {
        let Some(p) = self.profile(from)? else {
            return Ok(false);
        };
        let moved = self.profile(into)?.is_none();
        let mut ws = WriteSet::default();
        if moved {
            let k = self
                .member_key(into, true)?
                .expect("a key is created when asked for");
            ws.set_owned(
                key1(PROFILE, &into.0.to_be_bytes()),
                seal(&k, into, &json(&p)),
            );
        }
        ws.clear(&key1(PROFILE, &from.0.to_be_bytes()));
        note_change(&mut ws, from);
        note_change(&mut ws, into);
        self.store.commit(ws, Durability::Sync)?;
        self.destroy_member_key(from)?;
        Ok(moved)
    }
}
