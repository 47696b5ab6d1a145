//! Segment definitions (`G S id`), each replaced whole on a change with its author and reason.

use super::{be_u32, json, key1, unjson, Registry, RegistryError};
use crate::members::segments::SegmentRules;
use ledger::keys::gateway::{NEXT_CAMPAIGN, SEGMENT};
use ledger::store::{prefix_end, Snapshot, Store, WriteSet};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A segment as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SegmentRecord {
    /// Its id.
    pub id: u32,
    /// Its name, as operators know it.
    pub name: String,
    /// Who is in it.
    pub rules: SegmentRules,
    /// Version, from 1; each change makes the next.
    pub version: u32,
    /// Who made this version.
    pub author: String,
    /// Why.
    pub reason: String,
    /// When (ms since the Unix epoch).
    pub updated_at_ms: i64,
}

fn segment_key(id: u32) -> Vec<u8> {
    key1(SEGMENT, &id.to_be_bytes())
}

impl Registry {
    /// Records segment `rec`: a new one (id 0: numbered here) or the next version of `rec.id`.
    /// `None` when `rec.id` names no segment.
    pub fn put_segment(
        &self,
        mut rec: SegmentRecord,
    ) -> Result<Option<SegmentRecord>, RegistryError> {
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            if rec.id == 0 {
                let counter = key1(NEXT_CAMPAIGN, b"S");
                let id = match txn.get(&counter)? {
                    Some(v) => be_u32(&v)?,
                    None => 1,
                };
                ws.set_owned(counter, (id + 1).to_be_bytes().to_vec());
                rec.id = id;
                rec.version = 1;
            } else {
                let Some(v) = txn.get(&segment_key(rec.id))? else {
                    return Ok((ws, None));
                };
                let old: SegmentRecord = unjson(&v)?;
                rec.version = old.version + 1;
            }
            ws.set_owned(segment_key(rec.id), json(&rec));
            Ok((ws, Some(rec.clone())))
        })
    }

    /// Every segment, by id.
    pub fn segments(&self) -> Result<Vec<SegmentRecord>, RegistryError> {
        let snap = self.store.snapshot()?;
        let begin = key1(SEGMENT, &[]);
        snap.range(&begin, &prefix_end(&begin), usize::MAX, false)?
            .iter()
            .map(|(_, v)| unjson(v))
            .collect()
    }

    /// Segment `id`.
    pub fn segment(&self, id: u32) -> Result<Option<SegmentRecord>, RegistryError> {
        self.store
            .snapshot()?
            .get(&segment_key(id))?
            .map(|v| unjson(&v))
            .transpose()
    }
}
