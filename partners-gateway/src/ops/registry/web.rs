//! The console's and the portal's sessions and sign-in codes (`G h`), kept in the store so
//! every gateway sharing it knows them and a restart signs no one out. What they mean is the
//! business of `web/session.rs`.

use super::{json, unjson, Registry, RegistryError, Role};
use ledger::keys::gateway::{key as key1, WEB};
use ledger::store::{prefix_end, Durability, Snapshot, Store, Txn, WriteSet};
use serde::{Deserialize, Serialize};

const SESSION: u8 = b's';
const CODE: u8 = b'c';

fn wkey(family: u8, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 + body.len());
    b.push(family);
    b.extend_from_slice(body);
    key1(WEB, &b)
}

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionWho {
    /// An operator, by its token's SHA-256 (hex), checked live at every request.
    Operator {
        /// The token's SHA-256, hex (as the operator record is kept).
        token_hash: String,
        /// Its name.
        name: String,
        /// Its role.
        role: Role,
    },
    /// A member.
    Member {
        /// The member id.
        member: u64,
    },
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Who.
    pub who: SessionWho,
    /// The CSRF token its forms carry.
    pub csrf: String,
    /// When it began (ms since the Unix epoch).
    pub started_ms: i64,
    /// When it was last used, to the minute.
    pub seen_ms: i64,
}

/// A member's sign-in codes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The live code's SHA-256, hex (empty: none).
    pub code_hash: String,
    /// When it stops working (ms).
    pub expires_ms: i64,
    /// Wrong guesses at it.
    pub tries: u32,
    /// When codes were sent, within the rate window (ms).
    pub sent_ms: Vec<i64>,
}

impl Registry {
    /// The session whose id has SHA-256 `hash`.
    pub fn web_session(&self, hash: &[u8; 32]) -> Result<Option<SessionRecord>, RegistryError> {
        self.store
            .snapshot()?
            .get(&wkey(SESSION, hash))?
            .map(|v| unjson(&v))
            .transpose()
    }

    /// Writes a session, durably.
    pub fn put_web_session(
        &self,
        hash: &[u8; 32],
        rec: &SessionRecord,
    ) -> Result<(), RegistryError> {
        let mut ws = WriteSet::default();
        ws.set_owned(wkey(SESSION, hash), json(rec));
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }

    /// Ends a session, durably.
    pub fn end_web_session(&self, hash: &[u8; 32]) -> Result<(), RegistryError> {
        let mut ws = WriteSet::default();
        ws.clear(&wkey(SESSION, hash));
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }

    /// Sessions stored (live or not yet swept).
    pub fn web_sessions(&self, limit: usize) -> Result<usize, RegistryError> {
        let start = wkey(SESSION, &[]);
        Ok(self
            .store
            .snapshot()?
            .range(&start, &prefix_end(&start), limit, false)?
            .len())
    }

    /// Clears up to `limit` sessions for which `dead` holds; returns how many.
    pub fn sweep_web_sessions(
        &self,
        limit: usize,
        dead: &dyn Fn(&SessionRecord) -> bool,
    ) -> Result<usize, RegistryError> {
        let start = wkey(SESSION, &[]);
        let rows = self
            .store
            .snapshot()?
            .range(&start, &prefix_end(&start), limit, false)?;
        let mut ws = WriteSet::default();
        let mut n = 0;
        for (k, v) in rows {
            if unjson::<SessionRecord>(&v).map_or(true, |r| dead(&r)) {
                ws.clear(&k);
                n += 1;
            }
        }
        if n > 0 {
            self.store.commit(ws, Durability::Sync)?;
        }
        Ok(n)
    }

    /// Reads member `m`'s codes record, lets `f` decide the new one (`None`: clear it) and an
    /// answer, and commits both in one transaction (retried on conflict).
    pub fn web_code<T>(
        &self,
        m: u64,
        f: &mut dyn FnMut(Option<CodeRecord>) -> (Option<CodeRecord>, T),
    ) -> Result<T, RegistryError> {
        let key = wkey(CODE, &m.to_be_bytes());
        self.transact(&mut |txn: &dyn Txn| {
            let old: Option<CodeRecord> = txn.get(&key)?.map(|v| unjson(&v)).transpose()?;
            let (new, out) = f(old);
            let mut ws = WriteSet::default();
            match new {
                Some(r) => ws.set_owned(key.clone(), json(&r)),
                None => ws.clear(&key),
            }
            Ok((ws, out))
        })
    }
}
