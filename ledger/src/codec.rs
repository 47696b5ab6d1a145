//! Byte encodings of stored records: journal blocks and derived-state values.
//!
//! Records are postcard (compact, serde-driven). A journal block is
//! `[format u8][table check u32 LE][count u32 LE][(offset u32 LE, check u32 LE); count]
//! [postcard transaction; count]`, so one transaction can be decoded, and checked, without its
//! neighbours; the table check covers the count and the table, so an altered count cannot hide
//! a transaction. A transaction too
//! large for a block (a burn drawing on thousands of lots) is written as consecutive part
//! blocks, `[PART_FORMAT][index u16 LE][count u16 LE][check u64 LE][bytes]`, each within
//! FoundationDB's value limit. A transaction's check is the low 32 bits of the XXH3-64 of its
//! bytes, a part's the XXH3-64 of its index, count and bytes: a block the disk or a read gave back altered is
//! refused as corrupt instead of decoded into other amounts, as TigerBeetle checksums what it
//! reads. Blocks written before the checks (formats 1 and 2, without them) still read.

use crate::core::model::{describe, Digest, Transaction};
use crate::core::types::{AccountId, MemberId, PartnerId, Points, Timestamp, TxId};
use crate::error::LedgerError;
use crate::store::Value;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Format byte of journal blocks written by this version: checked.
pub const BLOCK_FORMAT: u8 = 3;

/// Format byte of journal blocks written before blocks carried a check.
const BLOCK_FORMAT_UNCHECKED: u8 = 1;

/// Header bytes of a block: format, table check, count.
const BLOCK_HEADER: usize = 1 + 4 + 4;

/// Bytes of a block's table per transaction: offset and check.
const BLOCK_ENTRY: usize = 4 + 4;

/// A journal block stays under this many bytes (FoundationDB values are limited to 100 kB).
pub const BLOCK_BYTES_MAX: usize = 64 * 1024;

/// Format byte of a part of one transaction too large for a block: checked.
pub const PART_FORMAT: u8 = 4;

/// Format byte of a part written before parts carried a check.
const PART_FORMAT_UNCHECKED: u8 = 2;

/// Header bytes of a part block: format, index, count, check.
const PART_HEADER: usize = 1 + 2 + 2 + 8;

/// The check of a block's bytes after its header's check field.
fn check(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Encodes a record.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("in-memory records always encode")
}

/// Encodes a record into `buf`, cleared first: the same bytes as [`encode`], in a buffer the
/// caller reuses from record to record.
pub fn encode_into<T: Serialize>(v: &T, buf: &mut Vec<u8>) {
    buf.clear();
    *buf = postcard::to_extend(v, std::mem::take(buf)).expect("in-memory records always encode");
}

/// Decodes a record, naming what failed.
pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, LedgerError> {
    postcard::from_bytes(bytes).map_err(|e| LedgerError::Corrupt(format!("{what}: {e}")))
}

/// Packs encoded transactions into journal blocks of at most [`BLOCK_BYTES_MAX`] bytes, each
/// built once in the [`Value`] the store keeps (no block-sized buffer of its own, no copy at
/// commit). Kept across batches, it reuses its buffers.
#[derive(Default)]
pub struct BlockWriter {
    blocks: Vec<Value>,
    body: Vec<u8>,
    offsets: Vec<u32>,
    checks: Vec<u32>,
    scratch: Vec<u8>,
    head: Vec<u8>,
}

impl BlockWriter {
    /// Appends one transaction, starting a new block when this one is full.
    pub fn push(&mut self, tx: &Transaction) {
        let scratch = std::mem::take(&mut self.scratch);
        self.scratch = postcard::to_extend(tx, scratch).expect("transactions always encode");
        if BLOCK_HEADER + BLOCK_ENTRY + self.scratch.len() > BLOCK_BYTES_MAX {
            self.push_parts();
            return;
        }
        if self.body.capacity() == 0 {
            // Sized once: growing by doubling would copy and fault in fresh pages per block.
            self.body.reserve(BLOCK_BYTES_MAX);
        }
        let projected = BLOCK_HEADER
            + BLOCK_ENTRY * (self.offsets.len() + 1)
            + self.body.len()
            + self.scratch.len();
        if !self.offsets.is_empty() && projected > BLOCK_BYTES_MAX {
            self.seal();
        }
        self.offsets.push(self.body.len() as u32);
        self.checks.push(check(&self.scratch) as u32);
        self.body.extend_from_slice(&self.scratch);
        self.scratch.clear();
    }

    /// Writes the transaction in `scratch` as part blocks of its own.
    fn push_parts(&mut self) {
        if !self.offsets.is_empty() {
            self.seal();
        }
        let pieces: Vec<&[u8]> = self.scratch.chunks(BLOCK_BYTES_MAX - PART_HEADER).collect();
        let count = u16::try_from(pieces.len()).expect("a transaction of under 4 GB");
        for (i, piece) in pieces.into_iter().enumerate() {
            let mut head = Vec::with_capacity(PART_HEADER);
            head.push(PART_FORMAT);
            head.extend_from_slice(&(i as u16).to_le_bytes());
            head.extend_from_slice(&count.to_le_bytes());
            let mut covered = head[1..5].to_vec();
            covered.extend_from_slice(piece);
            head.extend_from_slice(&check(&covered).to_le_bytes());
            self.blocks.push(Value::fused(&head, piece));
        }
        self.scratch.clear();
    }

    /// Ends the block being filled: its header and table, then its transactions, written once
    /// into the value stored.
    fn seal(&mut self) {
        let n = self.offsets.len();
        let head = &mut self.head;
        head.clear();
        head.push(BLOCK_FORMAT);
        head.extend_from_slice(&[0; 4]);
        head.extend_from_slice(&(n as u32).to_le_bytes());
        for (o, c) in self.offsets.iter().zip(&self.checks) {
            head.extend_from_slice(&o.to_le_bytes());
            head.extend_from_slice(&c.to_le_bytes());
        }
        let table = check(&head[5..]) as u32;
        head[1..5].copy_from_slice(&table.to_le_bytes());
        self.blocks.push(Value::fused(head, &self.body));
        self.body.clear();
        self.offsets.clear();
        self.checks.clear();
    }

    /// The finished blocks, in order; the writer is then empty, ready for the next batch.
    pub fn finish(&mut self) -> Vec<Value> {
        if !self.offsets.is_empty() {
            self.seal();
        }
        std::mem::take(&mut self.blocks)
    }
}

/// What one stored journal value gives, read in order through an [`Assembler`].
pub enum Fed<'a> {
    /// A block of whole transactions.
    Block(Block<'a>),
    /// A part of a large transaction; more follow.
    Pending,
    /// The last part of a large transaction: the transaction.
    Whole(Box<Transaction>),
}

/// Reads a batch's journal values in order, putting large transactions' parts together.
#[derive(Default)]
pub struct Assembler {
    bytes: Vec<u8>,
    next: u16,
}

impl Assembler {
    /// Takes the next stored value of the batch.
    pub fn feed<'a>(&mut self, value: &'a [u8]) -> Result<Fed<'a>, LedgerError> {
        let bad = |why: &str| LedgerError::Corrupt(format!("journal part: {why}"));
        let header = match value.first() {
            Some(&PART_FORMAT) => PART_HEADER,
            Some(&PART_FORMAT_UNCHECKED) => 5,
            _ => {
                if self.next != 0 {
                    return Err(bad("a block where a part was due"));
                }
                return Block::parse(value).map(Fed::Block);
            }
        };
        let field = |at: usize| {
            value
                .get(at..at + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or_else(|| bad("short header"))
        };
        let (index, count) = (field(1)?, field(3)?);
        if index != self.next || index >= count {
            return Err(bad("parts out of order"));
        }
        let bytes = value.get(header..).ok_or_else(|| bad("short header"))?;
        if header == PART_HEADER {
            let stored = u64::from_le_bytes(value[5..13].try_into().expect("8 bytes"));
            let mut covered = value[1..5].to_vec();
            covered.extend_from_slice(bytes);
            if stored != check(&covered) {
                return Err(bad("check mismatch: the part was altered"));
            }
        }
        self.bytes.extend_from_slice(bytes);
        if index + 1 < count {
            self.next += 1;
            return Ok(Fed::Pending);
        }
        let tx = decode("journal transaction", &self.bytes)?;
        self.bytes.clear();
        self.next = 0;
        Ok(Fed::Whole(Box::new(tx)))
    }

    /// Takes the next stored value and gives its whole transactions.
    pub fn transactions(&mut self, value: &[u8]) -> Result<Vec<Transaction>, LedgerError> {
        Ok(match self.feed(value)? {
            Fed::Block(b) => b.all()?,
            Fed::Pending => Vec::new(),
            Fed::Whole(tx) => vec![*tx],
        })
    }
}

/// A decoded view of one journal block: its table and body as stored, read in place (a read
/// of one transaction allocates nothing for the others).
pub struct Block<'a> {
    /// The table: per transaction its offset, then (checked formats) its check.
    table: &'a [u8],
    /// Bytes of a table entry: 8 with checks, 4 in blocks written before them.
    entry: usize,
    body: &'a [u8],
}

/// The little-endian `u32` at `at` in `bytes` (within bounds: checked by [`Block::parse`]).
fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

impl<'a> Block<'a> {
    /// Parses a block's header.
    pub fn parse(bytes: &'a [u8]) -> Result<Block<'a>, LedgerError> {
        let bad = |why: &str| LedgerError::Corrupt(format!("journal block: {why}"));
        let (entry, count_at) = match bytes.first() {
            Some(&BLOCK_FORMAT) => (BLOCK_ENTRY, 5),
            Some(&BLOCK_FORMAT_UNCHECKED) => (4, 1),
            _ => return Err(bad("unknown format")),
        };
        let n = u32::from_le_bytes(
            bytes
                .get(count_at..count_at + 4)
                .ok_or_else(|| bad("short header"))?
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        let body_at = n
            .checked_mul(entry)
            .and_then(|o| o.checked_add(count_at + 4))
            .ok_or_else(|| bad("short offset table"))?;
        let table = bytes
            .get(count_at + 4..body_at)
            .ok_or_else(|| bad("short offset table"))?;
        if entry == BLOCK_ENTRY {
            let stored = u32::from_le_bytes(bytes[1..5].try_into().expect("4 bytes"));
            if stored != check(&bytes[5..body_at]) as u32 {
                return Err(bad("check mismatch: the table was altered"));
            }
        }
        let body = &bytes[body_at..];
        let mut previous: Option<u32> = None;
        for i in 0..n {
            let o = word(table, i * entry);
            if previous.is_some_and(|p| p >= o) {
                return Err(bad("offsets out of order"));
            }
            previous = Some(o);
        }
        if previous.is_some_and(|o| o as usize >= body.len()) {
            return Err(bad("offsets out of order"));
        }
        Ok(Block { table, entry, body })
    }

    /// Number of transactions in the block.
    pub fn len(&self) -> usize {
        self.table.len() / self.entry
    }

    /// True when the block holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Decodes transaction `i`.
    pub fn get(&self, i: usize) -> Result<Transaction, LedgerError> {
        let at = i * self.entry;
        let start = word(self.table, at) as usize;
        let end = if i + 1 < self.len() {
            word(self.table, at + self.entry) as usize
        } else {
            self.body.len()
        };
        let bytes = &self.body[start..end];
        if self.entry == BLOCK_ENTRY && word(self.table, at + 4) != check(bytes) as u32 {
            return Err(LedgerError::Corrupt(format!(
                "journal block: check mismatch: transaction {i} was altered"
            )));
        }
        decode("journal transaction", bytes)
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

/// A chunk of the idempotency index (`K` seq) in its first form, as stores written before
/// 2026-12-04 hold it: the key hash and record of every transaction one projector commit
/// covered, through batch `seq`. Still read ([`key_chunk_entries`]); chunks are now written
/// in the compact form ([`encode_key_chunk`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IdemChunk {
    /// (xxh3-128 of the key's store encoding, record), in commit order.
    pub entries: Vec<(u128, IdemRecord)>,
}

/// The opening of a compact index chunk: the varint of `u32::MAX`. Read as a first-form chunk,
/// it declares four billion entries, which no chunk holds (one is a projector commit's
/// transactions), so the two forms are never confused, and a reader that knows only the first
/// form refuses a compact chunk as corrupt instead of reading it as empty.
const KEY_CHUNK_MARK: [u8; 5] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F];

/// Encodes an index chunk in the compact form: [`KEY_CHUNK_MARK`], then per transaction the
/// xxh3-128 of its key (16 bytes, big-endian) and its id as a LEB128 varint of the difference
/// from the entry before (wrapping; from 0 for the first): about 17 bytes an entry, since a
/// chunk lists consecutive transactions in commit order. Not the command's digest: the
/// writer's memory holds none, and a key found is confirmed against its transaction in the
/// journal, which holds it. (A first-form entry took about 38 bytes, its digest 16 of them.)
pub fn encode_key_chunk(entries: &[(u128, TxId)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(KEY_CHUNK_MARK.len() + entries.len() * 18);
    out.extend_from_slice(&KEY_CHUNK_MARK);
    let mut prev = 0u64;
    for (h, tx) in entries {
        out.extend_from_slice(&h.to_be_bytes());
        let mut d = tx.0.wrapping_sub(prev);
        while d >= 0x80 {
            out.push((d as u8) | 0x80);
            d >>= 7;
        }
        out.push(d as u8);
        prev = tx.0;
    }
    out
}

/// One entry of an index chunk of either form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyChunkEntry {
    /// xxh3-128 of the key's store encoding.
    pub hash: u128,
    /// The transaction it produced.
    pub tx: TxId,
    /// The command's digest: first-form chunks only.
    pub digest: Option<Digest>,
}

/// The entries of an index chunk (`K` seq), of either form, in commit order.
pub fn key_chunk_entries(v: &[u8]) -> Result<Vec<KeyChunkEntry>, LedgerError> {
    let Some(mut body) = v.strip_prefix(&KEY_CHUNK_MARK[..]) else {
        return Ok(decode::<IdemChunk>("idempotency chunk", v)?
            .entries
            .into_iter()
            .map(|(hash, r)| KeyChunkEntry {
                hash,
                tx: r.tx,
                digest: Some(r.digest),
            })
            .collect());
    };
    let cut = || LedgerError::Corrupt("idempotency chunk: cut inside an entry".into());
    let mut entries = Vec::with_capacity(body.len() / 17);
    let mut prev = 0u64;
    while !body.is_empty() {
        let (h, rest) = body.split_first_chunk::<16>().ok_or_else(cut)?;
        let mut d = 0u64;
        let mut used = 0;
        loop {
            let b = *rest.get(used).ok_or_else(cut)?;
            if used == 9 && b > 1 {
                return Err(LedgerError::Corrupt(
                    "idempotency chunk: a transaction id beyond 64 bits".into(),
                ));
            }
            d |= u64::from(b & 0x7F) << (7 * used);
            used += 1;
            if b & 0x80 == 0 {
                // Only the shortest form: one chunk has one encoding.
                if b == 0 && used > 1 {
                    return Err(LedgerError::Corrupt(
                        "idempotency chunk: a transaction id not in its shortest form".into(),
                    ));
                }
                break;
            }
        }
        prev = prev.wrapping_add(d);
        entries.push(KeyChunkEntry {
            hash: u128::from_be_bytes(*h),
            tx: TxId(prev),
            digest: None,
        });
        body = &rest[used..];
    }
    Ok(entries)
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

/// Largest piece of a member record in one value: FoundationDB takes values of up to
/// 100,000 bytes.
pub const MEMBER_PART_BYTES: usize = 90_000;

/// First byte of a member record stored in parts. (A whole record's encoding starts with its
/// `through`, a varint, 0 on the cluster path: never this.)
const PARTED: u8 = 0xfe;

impl MemberRecord {
    /// The record's stored values: the `M` value first, then the parts under `N` (none for a
    /// record that fits one value). The `M` value of a parted record names how many parts
    /// follow.
    pub fn to_values(&self) -> Vec<Vec<u8>> {
        let whole = encode(self);
        if whole.len() <= MEMBER_PART_BYTES {
            return vec![whole];
        }
        let mut pieces = whole.chunks(MEMBER_PART_BYTES);
        let first = pieces.next().expect("a long record has a first piece");
        let rest: Vec<Vec<u8>> = pieces.map(<[u8]>::to_vec).collect();
        let mut head = Vec::with_capacity(3 + first.len());
        head.push(PARTED);
        head.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        head.extend_from_slice(first);
        let mut out = vec![head];
        out.extend(rest);
        out
    }

    /// How many parts follow the `M` value `head`.
    pub fn parts_after(head: &[u8]) -> u16 {
        match head {
            [PARTED, a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 0,
        }
    }

    /// The record from its `M` value and the parts that follow it, in order.
    pub fn from_values(head: &[u8], parts: &[Vec<u8>]) -> Result<MemberRecord, LedgerError> {
        let n = usize::from(Self::parts_after(head));
        if n == 0 {
            return decode("member record", head);
        }
        if parts.len() != n {
            return Err(LedgerError::Corrupt(format!(
                "member record: {} of {n} parts",
                parts.len()
            )));
        }
        let mut whole = head[3..].to_vec();
        for p in parts {
            whole.extend_from_slice(p);
        }
        decode("member record", &whole)
    }

    /// Member `m`'s record as `snap` has it, parts and all.
    pub fn read<S: crate::store::Snapshot + ?Sized>(
        snap: &S,
        m: crate::core::types::MemberId,
    ) -> Result<Option<MemberRecord>, LedgerError> {
        let Some(head) = snap.get(&crate::keys::member(m))? else {
            return Ok(None);
        };
        let n = Self::parts_after(&head);
        let parts = (1..=n)
            .map(|i| {
                snap.get(&crate::keys::member_part(m, i))?.ok_or_else(|| {
                    LedgerError::Corrupt(format!("member {} record part {i} missing", m.0))
                })
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        Self::from_values(&head, &parts).map(Some)
    }
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

/// Encodes a page exactly as [`encode`] encodes `MemberPageRef { through, members }`, one
/// member at a time, calling `before(i)` before the `i`th (the writer asks there for the
/// memory of the members a few on).
pub fn encode_member_page(
    through: u64,
    members: &[(
        crate::core::types::MemberId,
        &crate::core::state::MemberState,
    )],
    before: impl Fn(usize),
) -> Vec<u8> {
    const EXPECT: &str = "in-memory records always encode";
    // A struct is its fields in order; a sequence is its length (a varint) and its elements.
    let out = Vec::with_capacity(16 + members.len() * 48);
    let mut out = postcard::to_extend(&through, out).expect(EXPECT);
    out = postcard::to_extend(&members.len(), out).expect(EXPECT);
    for (i, member) in members.iter().enumerate() {
        before(i);
        out = postcard::to_extend(member, out).expect(EXPECT);
    }
    out
}

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

/// The stored end of the last closed period ([`crate::keys::closed_period`]): milliseconds, 8 bytes
/// big-endian.
pub fn encode_closed_period(through: Timestamp) -> Vec<u8> {
    through.0.to_be_bytes().to_vec()
}

/// The end of the last closed period, as [`encode_closed_period`] stored it.
pub fn decode_closed_period(v: &[u8]) -> Result<Timestamp, LedgerError> {
    v.try_into()
        .map(|b| Timestamp(i64::from_be_bytes(b)))
        .map_err(|_| LedgerError::Corrupt(format!("closed period record of {} bytes", v.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{IdemKey, TxKind};
    use crate::core::types::MemberId;

    #[test]
    fn a_record_encoded_into_a_reused_buffer_has_the_bytes_encode_gives() {
        let mut buf = vec![0xAB; 40];
        for ids in [vec![7u64, 300, 1 << 40], vec![], vec![u64::MAX]] {
            encode_into(&ids, &mut buf);
            assert_eq!(buf, encode(&ids));
        }
    }

    #[test]
    fn index_chunks_of_both_forms_are_read_and_never_confused() {
        let entries: Vec<(u128, TxId)> = (0..300u64)
            .map(|i| {
                (
                    u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835),
                    TxId(i * 7 + 1),
                )
            })
            .collect();
        let compact = encode_key_chunk(&entries);
        // Ids 7 apart: one byte each but the first (1).
        assert_eq!(compact.len(), 5 + 300 * 17);
        let read = key_chunk_entries(&compact).expect("compact");
        assert_eq!(
            read.iter().map(|e| (e.hash, e.tx)).collect::<Vec<_>>(),
            entries
        );
        assert!(read.iter().all(|e| e.digest.is_none()));

        // The first form, with its digests, as older stores hold it.
        let first = IdemChunk {
            entries: entries
                .iter()
                .map(|&(h, tx)| {
                    (
                        h,
                        IdemRecord {
                            tx,
                            digest: Digest([tx.0 as u8; 16]),
                        },
                    )
                })
                .collect(),
        };
        let read = key_chunk_entries(&encode(&first)).expect("first form");
        assert_eq!(read.len(), 300);
        assert!(read.iter().zip(&entries).all(|(e, &(h, tx))| e.hash == h
            && e.tx == tx
            && e.digest == Some(Digest([tx.0 as u8; 16]))));
        // An empty first-form chunk too.
        assert!(key_chunk_entries(&encode(&IdemChunk::default()))
            .expect("empty")
            .is_empty());

        // A reader of the first form refuses a compact chunk rather than reading it as another
        // list, and a compact chunk cut inside an entry is refused.
        assert!(decode::<IdemChunk>("chunk", &compact).is_err());
        assert!(matches!(
            key_chunk_entries(&compact[..compact.len() - 5]),
            Err(LedgerError::Corrupt(_))
        ));
        // Ids far apart and out of order still round-trip (the difference wraps).
        let odd = [
            (1u128, TxId(u64::MAX)),
            (2, TxId(3)),
            (3, TxId(1 << 40)),
            (4, TxId(0)),
        ];
        let read = key_chunk_entries(&encode_key_chunk(&odd)).expect("odd");
        assert_eq!(read.iter().map(|e| (e.hash, e.tx)).collect::<Vec<_>>(), odd);
        // A difference not in its shortest form is refused, so that a chunk has one encoding
        // (found by the records fuzz target: `[0x80, 0x00]` read as 0 and written back as
        // `[0x00]`; the input below is the crash's first entry with that ending).
        let mut padded = KEY_CHUNK_MARK.to_vec();
        padded.extend_from_slice(&[
            0xFF, 0xFF, 0x10, 0, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        ]);
        padded.extend_from_slice(&[0xED, 0xEA, 0xE9, 0xE8, 0xE8, 0xE7, 0xFF, 0xFF, 0x00]);
        assert!(matches!(
            key_chunk_entries(&padded),
            Err(LedgerError::Corrupt(_))
        ));
        padded.truncate(padded.len() - 9);
        padded.push(0x05);
        assert_eq!(key_chunk_entries(&padded).expect("shortest")[0].tx, TxId(5));
        // A varint running past 64 bits is refused.
        let mut long = KEY_CHUNK_MARK.to_vec();
        long.extend_from_slice(&[0u8; 16]);
        long.extend_from_slice(&[0xFF; 10]);
        long.push(0x01);
        assert!(key_chunk_entries(&long).is_err());
    }

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
            lots: Default::default(),
            member_balances: Default::default(),
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
    fn a_writer_kept_across_batches_writes_what_a_fresh_one_writes() {
        let batches: Vec<Vec<Transaction>> = vec![
            (0..700).map(|i| tx(i, 100)).collect(),
            vec![tx(1, 5), tx(2, 200_000), tx(3, 7)],
            Vec::new(),
            (0..3).map(|i| tx(i, 1)).collect(),
        ];
        let mut kept = BlockWriter::default();
        for txs in &batches {
            let mut fresh = BlockWriter::default();
            for t in txs {
                kept.push(t);
                fresh.push(t);
            }
            let (a, b) = (kept.finish(), fresh.finish());
            assert_eq!(a, b);
            assert_eq!(a.is_empty(), txs.is_empty());
            let mut parts = Assembler::default();
            let back: Vec<Transaction> = a
                .iter()
                .flat_map(|v| parts.transactions(v).expect("reads back"))
                .collect();
            assert_eq!(&back, txs);
        }
    }

    #[test]
    fn a_transaction_larger_than_a_block_goes_in_parts_and_comes_back_whole() {
        let mut w = BlockWriter::default();
        // Small, huge (300 kB: five parts), small.
        let txs = vec![tx(0, 10), tx(1, 300_000), tx(2, 10)];
        for t in &txs {
            w.push(t);
        }
        let blocks = w.finish();
        assert!(blocks.iter().all(|b| b.len() <= BLOCK_BYTES_MAX));
        assert_eq!(blocks.iter().filter(|b| b[0] == PART_FORMAT).count(), 5);
        let mut parts = Assembler::default();
        let decoded: Vec<Transaction> = blocks
            .iter()
            .flat_map(|b| parts.transactions(b).expect("decodes"))
            .collect();
        assert_eq!(decoded, txs);
        // Parts out of order, or a block where a part was due, are corruption.
        let mut parts = Assembler::default();
        assert!(parts.feed(&blocks[2]).is_err());
        let mut parts = Assembler::default();
        assert!(matches!(parts.feed(&blocks[1]), Ok(Fed::Pending)));
        assert!(parts.feed(&blocks[0]).is_err());
    }

    #[test]
    fn a_member_record_over_the_value_limit_is_stored_in_parts() {
        use crate::core::model::LotId;
        use crate::core::state::{Lot, MemberState};
        let state = MemberState {
            posted: Points(20_000),
            lots: (0..20_000u32)
                .map(|n| Lot {
                    id: LotId {
                        tx: TxId::new(u64::from(n) + 1, 0),
                        n: 0,
                    },
                    expires_at: Some(Timestamp(1_800_000_000_000 + i64::from(n))),
                    remaining: Points(1),
                })
                .collect(),
            ..MemberState::default()
        };
        let r = MemberRecord { through: 0, state };
        let values = r.to_values();
        assert!(values.len() > 1 && values.iter().all(|v| v.len() <= MEMBER_PART_BYTES + 3));
        assert_eq!(
            usize::from(MemberRecord::parts_after(&values[0])),
            values.len() - 1
        );
        let back = MemberRecord::from_values(&values[0], &values[1..]).expect("decodes");
        assert_eq!(back, r);
        assert!(MemberRecord::from_values(&values[0], &values[1..2]).is_err());
        // A small record is one value, as before.
        let small = MemberRecord {
            through: 0,
            state: MemberState::default(),
        };
        assert_eq!(small.to_values(), vec![encode(&small)]);
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
    fn a_block_or_part_altered_by_one_bit_is_refused_and_an_unchecked_one_still_reads() {
        let mut w = BlockWriter::default();
        for i in 0..4 {
            w.push(&tx(i, 40));
        }
        w.push(&tx(9, 100_000));
        let blocks = w.finish();
        assert_eq!(blocks[0][0], BLOCK_FORMAT);
        assert!(blocks[1..].iter().all(|b| b[0] == PART_FORMAT));
        for b in &blocks {
            for at in [1, 3, 5, 6, 9, 13, 17, b.len() / 2, b.len() - 1] {
                let mut bad = b.to_vec();
                bad[at] ^= 0x10;
                let mut parts = Assembler::default();
                if b[0] == PART_FORMAT && b[1] != 0 {
                    // A later part: feed the parts before it unaltered.
                    for earlier in &blocks[1..] {
                        if earlier == b {
                            break;
                        }
                        parts.feed(earlier).expect("an earlier part");
                    }
                }
                let err = parts.transactions(&bad).expect_err("refused");
                assert!(
                    matches!(&err, LedgerError::Corrupt(why) if why.contains("mismatch") || why.contains("order") || why.contains("short")),
                    "byte {at}: {err:?}"
                );
            }
        }
        // The same block as written before the checks: format 1, offsets only.
        let n = u32::from_le_bytes(blocks[0][5..9].try_into().expect("4")) as usize;
        let mut old = vec![BLOCK_FORMAT_UNCHECKED];
        old.extend_from_slice(&blocks[0][5..9]);
        for e in blocks[0][9..9 + 8 * n].chunks_exact(8) {
            old.extend_from_slice(&e[..4]);
        }
        old.extend_from_slice(&blocks[0][9 + 8 * n..]);
        let read = Block::parse(&old)
            .expect("an unchecked block")
            .all()
            .expect("decodes");
        assert_eq!(read, (0..4).map(|i| tx(i, 40)).collect::<Vec<_>>());
    }

    #[test]
    fn a_borrowed_member_page_decodes_as_an_owned_one() {
        use crate::core::model::LotId;
        use crate::core::state::{Lot, MemberState};
        let a = MemberState {
            posted: Points(120),
            held: Points(20),
            lots: [Lot {
                id: LotId {
                    tx: TxId::new(3, 1),
                    n: 0,
                },
                expires_at: Some(Timestamp(86_400_000)),
                remaining: Points(120),
            }]
            .into(),
            last: crate::core::types::MaybeTx::some(TxId::new(9, 4)),
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
                standing: crate::core::state::Standing::Merged(MemberId(4)),
            })),
        };
        let b = MemberState::default();
        let written = encode(&MemberPageRef {
            through: 17,
            members: vec![(MemberId(2048), &a), (MemberId(2049), &b)],
        });
        let read: MemberPage = decode("member page", &written).expect("decodes");
        assert_eq!(read.through, 17);
        assert_eq!(
            read.members,
            vec![(MemberId(2048), a.clone()), (MemberId(2049), b.clone())]
        );

        // Encoded member by member, as the writer does, a page is the same bytes: empty, two
        // members, and 300 (a length of two bytes), states of every shape, ids past one byte.
        let mut c = a.clone();
        c.lots.insert(Lot {
            id: LotId {
                tx: TxId::new(2, 7),
                n: 1,
            },
            expires_at: None,
            remaining: Points(1),
        });
        c.extras = None;
        let shapes = [&a, &b, &c];
        for (through, n) in [(0u64, 0usize), (17, 2), (u64::MAX, 300)] {
            let members: Vec<(MemberId, &MemberState)> = (0..n)
                .map(|i| (MemberId(1_000_000 + i as u64 * 131), shapes[i % 3]))
                .collect();
            let whole = encode(&MemberPageRef {
                through,
                members: members.clone(),
            });
            let called = std::cell::Cell::new(0);
            let each = encode_member_page(through, &members, |i| {
                assert_eq!(i, called.get(), "called before each member, in order");
                called.set(i + 1);
            });
            assert_eq!(each, whole, "{n} members");
            assert_eq!(called.get(), n);
            let read: MemberPage = decode("member page", &whole).expect("decodes");
            assert_eq!(read.members.len(), n);
            assert_eq!(read.through, through);
        }
    }
}
