//! The audience's saved state (`G A`): bytes the audience encodes, stored as chunks of one
//! generation and a head naming it, so that a restart folds the journal from the saved cursor
//! instead of from its start.
//!
//! The chunks are written a few at a time (a FoundationDB transaction holds at most 10 MB),
//! then one transaction writes the head and clears every other generation's chunks. A reader
//! reads the head, then its generation's chunks, and takes them only if their length and
//! SHA-256 are the head's: a save cut short, or one whose chunks another gateway's save
//! cleared, is never read as a whole.

use super::{key1, Registry, RegistryError};
use ledger::keys::gateway::AUDIENCE;
use ledger::store::{prefix_end, Snapshot, Store, WriteSet};
use sha2::{Digest, Sha256};

/// Bytes a chunk holds (FoundationDB takes values of up to 100,000 bytes).
const CHUNK: usize = 64 * 1024;
/// Chunks written in one transaction (4 MiB).
const CHUNKS_PER_TXN: usize = 64;

fn head_key() -> Vec<u8> {
    key1(AUDIENCE, b"h")
}

/// `G A c`, then the generation and the chunk number when given.
fn chunk_key(generation: Option<u64>, chunk: Option<u32>) -> Vec<u8> {
    let mut k = key1(AUDIENCE, b"c");
    if let Some(g) = generation {
        k.extend_from_slice(&g.to_be_bytes());
    }
    if let Some(c) = chunk {
        k.extend_from_slice(&c.to_be_bytes());
    }
    k
}

/// What the head says: the generation, its chunks, the length and the digest of the whole.
struct Head {
    generation: u64,
    chunks: u32,
    len: u64,
    sha: [u8; 32],
}

impl Head {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(52);
        v.extend_from_slice(&self.generation.to_be_bytes());
        v.extend_from_slice(&self.chunks.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v.extend_from_slice(&self.sha);
        v
    }

    fn decode(v: &[u8]) -> Option<Head> {
        if v.len() != 52 {
            return None;
        }
        Some(Head {
            generation: u64::from_be_bytes(v[0..8].try_into().ok()?),
            chunks: u32::from_be_bytes(v[8..12].try_into().ok()?),
            len: u64::from_be_bytes(v[12..20].try_into().ok()?),
            sha: v[20..52].try_into().ok()?,
        })
    }
}

impl Registry {
    /// Stores `bytes` as the audience's saved state, replacing the one saved before.
    pub fn save_audience(&self, bytes: &[u8]) -> Result<(), RegistryError> {
        let generation: u64 = rand::random();
        let pieces: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
        for (n, group) in pieces.chunks(CHUNKS_PER_TXN).enumerate() {
            let first = n * CHUNKS_PER_TXN;
            self.transact(&mut |_| {
                let mut ws = WriteSet::default();
                for (i, piece) in group.iter().enumerate() {
                    let c = u32::try_from(first + i).expect("fewer than 2^32 chunks");
                    ws.set_owned(chunk_key(Some(generation), Some(c)), piece.to_vec());
                }
                Ok((ws, ()))
            })?;
        }
        let head = Head {
            generation,
            chunks: u32::try_from(pieces.len()).expect("fewer than 2^32 chunks"),
            len: bytes.len() as u64,
            sha: Sha256::digest(bytes).into(),
        };
        self.transact(&mut |_| {
            let mut ws = WriteSet::default();
            ws.set_owned(head_key(), head.encode());
            // Every other generation: the one this replaces, and any a save cut short left.
            let all = chunk_key(None, None);
            let this = chunk_key(Some(generation), None);
            ws.clear_range(&all, &this);
            ws.clear_range(&prefix_end(&this), &prefix_end(&all));
            Ok((ws, ()))
        })
    }

    /// The audience's saved state, if one is stored whole.
    ///
    /// The chunks are read [`CHUNKS_PER_TXN`] to a snapshot, so no read outlasts FoundationDB's
    /// five seconds however large the state: a generation's chunks never change, and if a newer
    /// save clears them meanwhile, the gap shows and nothing is read.
    pub fn load_audience(&self) -> Result<Option<Vec<u8>>, RegistryError> {
        let Some(head) = self
            .store
            .snapshot()?
            .get(&head_key())?
            .as_deref()
            .and_then(Head::decode)
        else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(usize::try_from(head.len).unwrap_or(0));
        let mut next = 0u32;
        let mut gap = false;
        while next < head.chunks && !gap {
            let begin = chunk_key(Some(head.generation), Some(next));
            let last = next.saturating_add(CHUNKS_PER_TXN as u32).min(head.chunks);
            let end = chunk_key(Some(head.generation), Some(last));
            let before = next;
            self.store.snapshot()?.scan(&begin, &end, &mut |k, v| {
                if k[k.len() - 4..] != next.to_be_bytes() {
                    gap = true;
                    return false;
                }
                bytes.extend_from_slice(v);
                next += 1;
                true
            })?;
            gap |= next != last || next == before;
        }
        let whole = !gap
            && next == head.chunks
            && bytes.len() as u64 == head.len
            && <[u8; 32]>::from(Sha256::digest(&bytes)) == head.sha;
        Ok(whole.then_some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A save replaces the one before and leaves no other generation's chunks; a state whose
    /// chunks do not add up to the head is not read.
    #[test]
    fn a_saved_state_is_read_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (reg, other) = super::super::two_on_one_store(dir.path());
        assert_eq!(reg.load_audience().unwrap(), None, "nothing saved yet");
        let big: Vec<u8> = (0..(CHUNK * CHUNKS_PER_TXN * 2 + 17))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        reg.save_audience(&big).unwrap();
        assert_eq!(other.load_audience().unwrap().as_deref(), Some(&big[..]));
        reg.save_audience(b"small").unwrap();
        assert_eq!(reg.load_audience().unwrap().as_deref(), Some(&b"small"[..]));
        let snap = reg.store.snapshot().unwrap();
        let all = chunk_key(None, None);
        let chunks = snap
            .range(&all, &prefix_end(&all), usize::MAX, false)
            .unwrap();
        assert_eq!(chunks.len(), 1, "the first save's chunks are cleared");
        reg.save_audience(b"").unwrap();
        assert_eq!(reg.load_audience().unwrap().as_deref(), Some(&b""[..]));

        // A chunk changed under the head: its digest no longer matches.
        reg.save_audience(&big).unwrap();
        let head = Head::decode(&snap_head(&reg)).unwrap();
        reg.transact(&mut |_| {
            let mut ws = WriteSet::default();
            ws.set_owned(chunk_key(Some(head.generation), Some(1)), vec![0; CHUNK]);
            Ok((ws, ()))
        })
        .unwrap();
        assert_eq!(reg.load_audience().unwrap(), None, "a changed chunk");
        // A chunk missing.
        reg.save_audience(&big).unwrap();
        let head = Head::decode(&snap_head(&reg)).unwrap();
        reg.transact(&mut |_| {
            let mut ws = WriteSet::default();
            ws.clear(&chunk_key(Some(head.generation), Some(3)));
            Ok((ws, ()))
        })
        .unwrap();
        assert_eq!(reg.load_audience().unwrap(), None, "a missing chunk");
    }

    fn snap_head(reg: &Registry) -> Vec<u8> {
        reg.store
            .snapshot()
            .unwrap()
            .get(&head_key())
            .unwrap()
            .unwrap()
    }
}
