//! Byte encodings of stored records: journal blocks and derived-state values.
//!
//! Records are postcard (compact, serde-driven). A journal block is
//! `[format u8][count u32 LE][offset u32 LE; count][postcard transaction; count]`, so one
//! transaction can be decoded without decoding its neighbours.

use crate::core::model::{describe, Digest, Transaction};
use crate::core::types::{AccountId, MemberId, PartnerId, Points, Timestamp, TxId};
use crate::error::LedgerError;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Format byte of journal blocks written by this version.
pub const BLOCK_FORMAT: u8 = 1;

/// A journal block stays under this many bytes (FoundationDB values are limited to 100 kB).
pub const BLOCK_BYTES_MAX: usize = 64 * 1024;

/// Encodes a record.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("in-memory records always encode")
}

/// Decodes a record, naming what failed.
pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, LedgerError> {
    postcard::from_bytes(bytes).map_err(|e| LedgerError::Corrupt(format!("{what}: {e}")))
}

/// Packs encoded transactions into journal blocks of at most [`BLOCK_BYTES_MAX`] bytes.
#[derive(Default)]
pub struct BlockWriter {
    blocks: Vec<Vec<u8>>,
    body: Vec<u8>,
    offsets: Vec<u32>,
    scratch: Vec<u8>,
}

impl BlockWriter {
    /// Appends one transaction, starting a new block when this one is full.
    pub fn push(&mut self, tx: &Transaction) {
        let scratch = std::mem::take(&mut self.scratch);
        self.scratch = postcard::to_extend(tx, scratch).expect("transactions always encode");
        if self.body.capacity() == 0 {
            // Sized once: growing by doubling would copy and fault in fresh pages per block.
            self.body.reserve(BLOCK_BYTES_MAX);
        }
        let projected = 5 + 4 * (self.offsets.len() + 1) + self.body.len() + self.scratch.len();
        if !self.offsets.is_empty() && projected > BLOCK_BYTES_MAX {
            self.seal();
        }
        self.offsets.push(self.body.len() as u32);
        self.body.extend_from_slice(&self.scratch);
        self.scratch.clear();
    }

    fn seal(&mut self) {
        let n = self.offsets.len();
        let mut block = Vec::with_capacity(5 + 4 * n + self.body.len());
        block.push(BLOCK_FORMAT);
        block.extend_from_slice(&(n as u32).to_le_bytes());
        for o in &self.offsets {
            block.extend_from_slice(&o.to_le_bytes());
        }
        block.extend_from_slice(&self.body);
        self.blocks.push(block);
        self.body.clear();
        self.offsets.clear();
    }

    /// The finished blocks, in order.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        if !self.offsets.is_empty() {
            self.seal();
        }
        self.blocks
    }
}

/// A decoded view of one journal block.
pub struct Block<'a> {
    offsets: Vec<usize>,
    body: &'a [u8],
}

impl<'a> Block<'a> {
    /// Parses a block's header.
    pub fn parse(bytes: &'a [u8]) -> Result<Block<'a>, LedgerError> {
        let bad = |why: &str| LedgerError::Corrupt(format!("journal block: {why}"));
        if bytes.first() != Some(&BLOCK_FORMAT) {
            return Err(bad("unknown format"));
        }
        let n = u32::from_le_bytes(
            bytes
                .get(1..5)
                .ok_or_else(|| bad("short header"))?
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        let body_at = 5 + 4 * n;
        let header = bytes
            .get(5..body_at)
            .ok_or_else(|| bad("short offset table"))?;
        let offsets: Vec<usize> = header
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as usize)
            .collect();
        let body = &bytes[body_at..];
        if offsets.windows(2).any(|w| w[0] >= w[1])
            || offsets.last().is_some_and(|&o| o >= body.len())
        {
            return Err(bad("offsets out of order"));
        }
        Ok(Block { offsets, body })
    }

    /// Number of transactions in the block.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when the block holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Decodes transaction `i`.
    pub fn get(&self, i: usize) -> Result<Transaction, LedgerError> {
        let start = self.offsets[i];
        let end = self.offsets.get(i + 1).copied().unwrap_or(self.body.len());
        decode("journal transaction", &self.body[start..end])
    }

    /// Decodes every transaction in order.
    pub fn all(&self) -> Result<Vec<Transaction>, LedgerError> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

/// The idempotency index's value: which transaction a key produced, and its command's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    /// The transaction.
    pub tx: TxId,
    /// Digest of the command that produced it.
    pub digest: Digest,
}

/// A chunk of the idempotency index (`K` seq): the key hash and record of every transaction
/// one projector commit covered, through batch `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IdemChunk {
    /// (xxh3-128 of the key's store encoding, record), in commit order.
    pub entries: Vec<(u128, IdemRecord)>,
}

/// One line of a member's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementEntry {
    /// The transaction.
    pub tx: TxId,
    /// When it committed.
    pub at: Timestamp,
    /// What kind of transaction: `earn`, `burn`, `hold`, `void`, ...
    pub kind: String,
    /// The partner involved, if any.
    pub partner: Option<PartnerId>,
    /// Change to the member's posted points.
    pub points: Points,
    /// Posted points after the transaction.
    pub balance_after: Points,
    /// Points held by open holds after the transaction.
    pub held_after: Points,
}

/// A member record as the cluster path stores it (one key per member, current with every
/// transaction; `through` is 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The last batch whose effects the record includes.
    pub through: u64,
    /// The member's state then.
    pub state: crate::core::state::MemberState,
}

/// A page of member states as the single committer's projector stores it: every enrolled
/// member whose id falls in the page, as of batch `through`, by id. A page is written some
/// time after one of its members changes, so that many changes cost one write; recovery
/// brings each page forward with the journal after its own batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberPage<S = crate::core::state::MemberState> {
    /// The last batch whose effects the page includes.
    pub through: u64,
    /// Each member and its state then, by id.
    pub members: Vec<(crate::core::types::MemberId, S)>,
}

/// A page being written, borrowing the states (encodes exactly as [`MemberPage`]).
pub type MemberPageRef<'a> = MemberPage<&'a crate::core::state::MemberState>;

/// A balance-history entry of a non-member account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Commit time of the last batch included.
    pub at: Timestamp,
    /// The balance then.
    pub balance: crate::core::state::Balance,
}

/// The statement line of transaction `tx` for member `m`.
pub fn statement_entry(
    tx: &Transaction,
    m: MemberId,
    balance_after: Points,
    held_after: Points,
) -> StatementEntry {
    let (kind, partner) = describe(&tx.kind);
    StatementEntry {
        tx: tx.id,
        at: tx.at,
        kind: kind.to_string(),
        partner,
        points: tx.points_to(AccountId::Member(m)),
        balance_after,
        held_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{IdemKey, TxKind};
    use crate::core::types::MemberId;

    fn tx(i: u16, pad: usize) -> Transaction {
        Transaction {
            id: TxId::new(1, i),
            at: Timestamp(5),
            key: IdemKey::operator("x".repeat(pad)),
            digest: Digest::default(),
            kind: TxKind::Enrolled {
                member: MemberId(u64::from(i)),
            },
            postings: vec![],
            lots: vec![],
            member_balances: vec![],
            pricing: None,
        }
    }

    #[test]
    fn blocks_split_at_the_size_limit_and_decode_every_transaction_back() {
        let mut w = BlockWriter::default();
        let txs: Vec<Transaction> = (0..800).map(|i| tx(i, 100)).collect();
        for t in &txs {
            w.push(t);
        }
        let blocks = w.finish();
        assert!(
            blocks.len() > 1,
            "800 x ~130 bytes must not fit one 64 kB block"
        );
        assert!(blocks.iter().all(|b| b.len() <= BLOCK_BYTES_MAX));
        let decoded: Vec<Transaction> = blocks
            .iter()
            .flat_map(|b| {
                Block::parse(b)
                    .expect("valid block")
                    .all()
                    .expect("decodes")
            })
            .collect();
        assert_eq!(decoded, txs);
    }

    #[test]
    fn a_truncated_block_is_reported_corrupt() {
        let mut w = BlockWriter::default();
        w.push(&tx(0, 3));
        let block = w.finish().remove(0);
        assert!(Block::parse(&block[..3]).is_err());
        assert!(Block::parse(&[9, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn a_borrowed_member_page_decodes_as_an_owned_one() {
        use crate::core::model::LotId;
        use crate::core::state::{Lot, MemberState};
        let a = MemberState {
            posted: Points(120),
            held: Points(20),
            lots: vec![Lot {
                id: LotId {
                    tx: TxId::new(3, 1),
                    n: 0,
                },
                expires_at: Some(Timestamp(86_400_000)),
                remaining: Points(120),
            }],
            last: Some(TxId::new(9, 4)),
            enrolled: Timestamp(5),
            earned_at: 0b101,
            campaigns: {
                let mut c = crate::core::programme::CampaignUses::default();
                c.add(
                    crate::core::programme::CampaignId(3),
                    Points(40),
                    20_000,
                    657,
                );
                c
            },
            last_activity: Timestamp(7),
            extras: Some(Box::new(crate::core::state::MemberExtras {
                tier: crate::core::tiers::TierState {
                    level: 2,
                    ..Default::default()
                },
                transfers: Default::default(),
                pool: crate::core::transfers::PoolLink::Member(MemberId(9)),
            })),
        };
        let b = MemberState::default();
        let written = encode(&MemberPageRef {
            through: 17,
            members: vec![(MemberId(2048), &a), (MemberId(2049), &b)],
        });
        let read: MemberPage = decode("member page", &written).expect("decodes");
        assert_eq!(read.through, 17);
        assert_eq!(read.members, vec![(MemberId(2048), a), (MemberId(2049), b)]);
    }
}
