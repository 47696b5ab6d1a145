//! The journal's hash chain: tamper evidence from the journal alone.
//!
//! Every journal batch, in commit order, gets a chain record (`T ++ position`, [`keys::chain`]):
//! the SHA-256 of its blocks' bytes (`content`), and a `link` that hashes the previous batch's
//! link, the batch's position and sequence, and its content. On the cluster path the last
//! record is also kept as the chain's head (`P c`), which sealers read with a conflict.
//!
//! - **Single path**: the syncer chains each batch in the same commit as its journal blocks, so
//!   every durable batch is chained.
//! - **Cluster path**: writers cannot know the previous link without all of them conflicting on
//!   it, so they write none. The process holding the system lease seals the batches after the
//!   head in versionstamp order (a batch committed later always gets a later versionstamp than
//!   any the sealer has read), in its own transactions, a second or less behind.
//!
//! [`verify`] recomputes every content digest and link and names each difference: a block whose
//! bytes changed, a batch holding another's bytes (reordered), a batch deleted, inserted or not
//! chained, and a broken link. A published [`Checkpoint`] (a position and its link, exported at
//! each period close) catches the one thing the chain alone cannot: a rewrite of the whole chain
//! from some batch onwards.

use crate::error::LedgerError;
use crate::journal::{for_each_raw_batch, RawBatch};
use crate::keys;
use crate::store::{prefix_end, Snapshot, WriteSet};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The link before the first batch.
pub const GENESIS: Hash = [0; 32];

/// A batch's chain record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainRecord {
    /// The batch sequence number.
    pub seq: u64,
    /// SHA-256 of the batch's blocks ([`content_of`]).
    pub content: Hash,
    /// [`link`] of the previous record's link and this batch.
    pub link: Hash,
}

impl ChainRecord {
    const LEN: usize = 8 + 32 + 32;

    /// The stored value.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.content);
        v.extend_from_slice(&self.link);
        v
    }

    /// The record a stored value holds.
    pub fn decode(v: &[u8]) -> Result<ChainRecord, LedgerError> {
        if v.len() != Self::LEN {
            return Err(LedgerError::Corrupt(format!(
                "chain record of {} bytes",
                v.len()
            )));
        }
        let mut content = [0; 32];
        let mut link = [0; 32];
        content.copy_from_slice(&v[8..40]);
        link.copy_from_slice(&v[40..72]);
        Ok(ChainRecord {
            seq: u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
            content,
            link,
        })
    }
}

/// The chain's last record and its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Commit-order position of the last chained batch.
    pub position: Vec<u8>,
    /// Its record.
    pub record: ChainRecord,
}

impl Head {
    /// The stored value of the head key.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + self.position.len() + ChainRecord::LEN);
        v.push(self.position.len() as u8);
        v.extend_from_slice(&self.position);
        v.extend_from_slice(&self.record.encode());
        v
    }

    /// The head a stored value holds.
    pub fn decode(v: &[u8]) -> Result<Head, LedgerError> {
        let n = usize::from(*v.first().ok_or_else(|| corrupt("empty chain head"))?);
        let position = v
            .get(1..1 + n)
            .ok_or_else(|| corrupt("chain head position"))?;
        Ok(Head {
            position: position.to_vec(),
            record: ChainRecord::decode(&v[1 + n..])?,
        })
    }

    /// The head as a publishable checkpoint.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            position: self.position.clone(),
            link: self.record.link,
        }
    }
}

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(what.to_string())
}

/// SHA-256 over a batch's blocks: each block's length (8 bytes, big-endian), then its bytes.
pub fn content_of<'a>(blocks: impl IntoIterator<Item = &'a [u8]>) -> Hash {
    let mut h = Sha256::new();
    for b in blocks {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    }
    h.finalize().into()
}

/// The link of a batch: SHA-256 of a domain tag, the previous link, the batch's position (its
/// length, then its bytes), its sequence number and its content digest.
pub fn link(prev: &Hash, position: &[u8], seq: u64, content: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(b"coalition-ledger chain v1");
    h.update(prev);
    h.update([position.len() as u8]);
    h.update(position);
    h.update(seq.to_be_bytes());
    h.update(content);
    h.finalize().into()
}

/// The chain's head, if any batch is chained: the head record (`P c`, which the cluster path's
/// sealers read with a conflict), or else the last chain record (the single path writes no
/// head: its syncer is the only one chaining).
pub fn head<S: Snapshot + ?Sized>(snapshot: &S) -> Result<Option<Head>, LedgerError> {
    if let Some(v) = snapshot.get(&keys::chain_head())? {
        return Head::decode(&v).map(Some);
    }
    let last = snapshot.range(&[keys::CHAIN], &prefix_end(&[keys::CHAIN]), 1, true)?;
    last.into_iter()
        .next()
        .map(|(k, v)| {
            Ok(Head {
                position: k[1..].to_vec(),
                record: ChainRecord::decode(&v)?,
            })
        })
        .transpose()
}

/// Chains batches as they commit (the single path's syncer), or as they are sealed (the
/// cluster path's sealer, which also keeps the head record).
#[derive(Debug, Clone)]
pub struct Chainer {
    prev: Hash,
    write_head: bool,
}

impl Chainer {
    /// Goes on from `head` (the start of the chain when `None`); `write_head`: keep the head
    /// record (`P c`) current too.
    pub fn new(head: Option<&Head>, write_head: bool) -> Chainer {
        Chainer {
            prev: head.map_or(GENESIS, |h| h.record.link),
            write_head,
        }
    }

    /// Adds batch `seq` at `position` with `blocks` to `writes`: its record, and the new head
    /// when the chainer keeps one.
    pub fn append<'a>(
        &mut self,
        position: &[u8],
        seq: u64,
        blocks: impl IntoIterator<Item = &'a [u8]>,
        writes: &mut WriteSet,
    ) {
        let content = content_of(blocks);
        let record = ChainRecord {
            seq,
            content,
            link: link(&self.prev, position, seq, &content),
        };
        self.prev = record.link;
        writes.set_owned(keys::chain(position), record.encode());
        if self.write_head {
            writes.set_owned(
                keys::chain_head(),
                Head {
                    position: position.to_vec(),
                    record,
                }
                .encode(),
            );
        }
    }
}

/// Chains the batches after `head` (at most `batches_max`, or until `bytes_max` block bytes
/// were read), adding their records to `writes` (and the new head record, when `write_head`);
/// returns how many it chained. The cluster path's sealer runs it inside a transaction that
/// read the head with a conflict; the single path runs it at open for batches written before
/// the chain existed.
pub fn seal_after<S: Snapshot + ?Sized>(
    snapshot: &S,
    head: Option<&Head>,
    batches_max: usize,
    bytes_max: usize,
    write_head: bool,
    writes: &mut WriteSet,
) -> Result<usize, LedgerError> {
    let mut chainer = Chainer::new(head, write_head);
    let mut n = 0;
    let mut bytes = 0;
    for_each_raw_batch(snapshot, head.map(|h| h.position.as_slice()), &mut |b| {
        bytes += b.blocks.iter().map(Vec::len).sum::<usize>();
        chainer.append(
            &b.position,
            b.seq,
            b.blocks.iter().map(Vec::as_slice),
            writes,
        );
        n += 1;
        Ok(n < batches_max && bytes < bytes_max)
    })?;
    Ok(n)
}

/// A published chain position and its link: `ledger verify --checkpoint` checks a copy of the
/// store against it. Written `POSITION:LINK`, both in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Commit-order position of the batch.
    pub position: Vec<u8>,
    /// Its link.
    pub link: Hash,
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", hex(&self.position), hex(&self.link))
    }
}

/// Why a checkpoint did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a checkpoint is POSITION:LINK in hex (LINK 64 digits): {0}")]
pub struct BadCheckpoint(String);

impl FromStr for Checkpoint {
    type Err = BadCheckpoint;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCheckpoint(s.to_string());
        let (p, l) = s.trim().split_once(':').ok_or_else(bad)?;
        let position = unhex(p).filter(|p| !p.is_empty() && p.len() < 64);
        let link = unhex(l).and_then(|l| Hash::try_from(l.as_slice()).ok());
        match (position, link) {
            (Some(position), Some(link)) => Ok(Checkpoint { position, link }),
            _ => Err(bad()),
        }
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A position as people read it: the batch number on the single path, the versionstamp in hex
/// on the cluster path.
pub fn show_position(p: &[u8]) -> String {
    match <[u8; 8]>::try_from(p) {
        Ok(b) => format!("batch {}", u64::from_be_bytes(b)),
        Err(_) => format!("position {}", hex(p)),
    }
}

/// A difference [`verify`] found between the journal and its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The batch's block bytes are not the ones chained.
    Changed {
        /// Where.
        position: Vec<u8>,
        /// Its sequence.
        seq: u64,
    },
    /// The batch holds the bytes chained at another position: batches were reordered.
    Reordered {
        /// Where.
        position: Vec<u8>,
        /// The position whose bytes it holds.
        holds: Vec<u8>,
    },
    /// The chain has a record for a batch the journal no longer has.
    Deleted {
        /// Where.
        position: Vec<u8>,
        /// The deleted batch's sequence.
        seq: u64,
    },
    /// A batch with no chain record before the chain's head: inserted, or (single path) never
    /// chained.
    Unchained {
        /// Where.
        position: Vec<u8>,
        /// Its sequence.
        seq: u64,
    },
    /// A record's link does not follow from the one before: a record before it was removed or
    /// a record was rewritten.
    Broken {
        /// Where.
        position: Vec<u8>,
    },
    /// Single path: batch numbers jump (a batch was removed with its chain record).
    Missing {
        /// The first missing sequence number.
        from: u64,
        /// The next present one.
        to: u64,
    },
    /// The published checkpoint's link differs from the chain's at its position (or the
    /// position is absent).
    Checkpoint {
        /// The checkpoint.
        expected: Checkpoint,
        /// What the chain has there.
        found: Option<Hash>,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Changed { position, seq } => write!(
                f,
                "{} (batch {seq}): journal bytes changed since they were chained",
                show_position(position)
            ),
            Finding::Reordered { position, holds } => write!(
                f,
                "{}: holds the bytes chained at {} (batches reordered)",
                show_position(position),
                show_position(holds)
            ),
            Finding::Deleted { position, seq } => write!(
                f,
                "{} (batch {seq}): chained but missing from the journal (deleted)",
                show_position(position)
            ),
            Finding::Unchained { position, seq } => write!(
                f,
                "{} (batch {seq}): in the journal but not in the chain (inserted)",
                show_position(position)
            ),
            Finding::Broken { position } => write!(
                f,
                "{}: chain link does not follow from the previous record (a batch before it was removed, or its record rewritten)",
                show_position(position)
            ),
            Finding::Missing { from, to } => write!(
                f,
                "batches {from} to {} missing from the journal and the chain (deleted)",
                to - 1
            ),
            Finding::Checkpoint { expected, found } => match found {
                Some(l) => write!(
                    f,
                    "checkpoint {}: the chain has link {} there (rewritten since it was published)",
                    expected,
                    hex(l)
                ),
                None => write!(
                    f,
                    "checkpoint {}: no chain record at that position",
                    expected
                ),
            },
        }
    }
}

/// What [`verify`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainReport {
    /// Journal batches read.
    pub batches: u64,
    /// Of which chained.
    pub chained: u64,
    /// Cluster path: batches after the chain's head, not yet sealed.
    pub unsealed: u64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// The chain's head, as a checkpoint.
    pub head: Option<Checkpoint>,
    /// Every difference, in commit order.
    pub findings: Vec<Finding>,
}

/// Reads chain records in pages.
struct Records<'a, S: Snapshot + ?Sized> {
    snapshot: &'a S,
    next: Vec<u8>,
    end: Vec<u8>,
    page: std::collections::VecDeque<(Vec<u8>, ChainRecord)>,
    done: bool,
}

impl<'a, S: Snapshot + ?Sized> Records<'a, S> {
    fn new(snapshot: &'a S) -> Self {
        Records {
            snapshot,
            next: vec![keys::CHAIN],
            end: prefix_end(&[keys::CHAIN]),
            page: Default::default(),
            done: false,
        }
    }

    fn peek(&mut self) -> Result<Option<&(Vec<u8>, ChainRecord)>, LedgerError> {
        if self.page.is_empty() && !self.done {
            let rows = self.snapshot.range(&self.next, &self.end, 1024, false)?;
            self.done = rows.len() < 1024;
            if let Some((k, _)) = rows.last() {
                self.next = k.clone();
                self.next.push(0);
            }
            for (k, v) in rows {
                self.page
                    .push_back((k[1..].to_vec(), ChainRecord::decode(&v)?));
            }
        }
        Ok(self.page.front())
    }

    fn pop(&mut self) -> Option<(Vec<u8>, ChainRecord)> {
        self.page.pop_front()
    }
}

/// Checks the journal against its chain, and the chain against each published checkpoint.
/// Reads one snapshot; memory stays bounded (one page of records, one batch at a time).
pub fn verify<S: Snapshot + ?Sized>(
    snapshot: &S,
    checkpoints: &[Checkpoint],
) -> Result<ChainReport, LedgerError> {
    let cluster = crate::journal::is_cluster_store(snapshot)?;
    let head = head(snapshot)?;
    let mut report = ChainReport {
        head: head.as_ref().map(Head::checkpoint),
        ..ChainReport::default()
    };
    let mut records = Records::new(snapshot);
    let mut prev = GENESIS;
    let mut last_seq: Option<u64> = None;
    // Batches whose bytes differ from their record: (position, content now).
    let mut suspects: Vec<(Vec<u8>, u64, Hash)> = Vec::new();
    let check_link = |report: &mut ChainReport, prev: &mut Hash, p: &[u8], r: &ChainRecord| {
        if link(prev, p, r.seq, &r.content) != r.link {
            report.findings.push(Finding::Broken {
                position: p.to_vec(),
            });
        }
        *prev = r.link;
    };
    let mut step = |b: RawBatch| -> Result<bool, LedgerError> {
        report.batches += 1;
        // Records of batches the journal no longer has.
        while let Some((p, _)) = records.peek()? {
            if p.as_slice() >= b.position.as_slice() {
                break;
            }
            let (p, r) = records.pop().expect("peeked");
            report.findings.push(Finding::Deleted {
                position: p.clone(),
                seq: r.seq,
            });
            check_link(&mut report, &mut prev, &p, &r);
        }
        if !cluster {
            if let Some(l) = last_seq {
                if b.seq > l + 1 {
                    report.findings.push(Finding::Missing {
                        from: l + 1,
                        to: b.seq,
                    });
                }
            }
            last_seq = Some(b.seq);
        }
        let content = content_of(b.blocks.iter().map(Vec::as_slice));
        match records.peek()? {
            Some((p, _)) if *p == b.position => {
                let (p, r) = records.pop().expect("peeked");
                report.chained += 1;
                if r.content != content || r.seq != b.seq {
                    suspects.push((p.clone(), b.seq, content));
                }
                check_link(&mut report, &mut prev, &p, &r);
            }
            Some(_) => report.findings.push(Finding::Unchained {
                position: b.position.clone(),
                seq: b.seq,
            }),
            None if cluster => report.unsealed += 1,
            None => report.findings.push(Finding::Unchained {
                position: b.position.clone(),
                seq: b.seq,
            }),
        }
        Ok(true)
    };
    for_each_raw_batch(snapshot, None, &mut step)?;
    while records.peek()?.is_some() {
        let (p, r) = records.pop().expect("peeked");
        report.findings.push(Finding::Deleted {
            position: p.clone(),
            seq: r.seq,
        });
        check_link(&mut report, &mut prev, &p, &r);
    }
    if !suspects.is_empty() {
        // Whose chained bytes does each changed batch hold? One more pass over the records.
        let wanted: HashSet<Hash> = suspects.iter().map(|s| s.2).collect();
        let mut owner: HashMap<Hash, Vec<u8>> = HashMap::new();
        let mut all = Records::new(snapshot);
        while all.peek()?.is_some() {
            let (p, r) = all.pop().expect("peeked");
            if wanted.contains(&r.content) {
                owner.insert(r.content, p);
            }
        }
        for (position, seq, content) in suspects {
            report.findings.push(match owner.get(&content) {
                Some(holds) if *holds != position => Finding::Reordered {
                    position,
                    holds: holds.clone(),
                },
                _ => Finding::Changed { position, seq },
            });
        }
        report
            .findings
            .sort_by(|a, b| position_of(a).cmp(position_of(b)));
    }
    for c in checkpoints {
        report.checkpoints += 1;
        let found = snapshot
            .get(&keys::chain(&c.position))?
            .map(|v| ChainRecord::decode(&v))
            .transpose()?
            .map(|r| r.link);
        if found != Some(c.link) {
            report.findings.push(Finding::Checkpoint {
                expected: c.clone(),
                found,
            });
        }
    }
    Ok(report)
}

fn position_of(f: &Finding) -> &[u8] {
    match f {
        Finding::Changed { position, .. }
        | Finding::Reordered { position, .. }
        | Finding::Deleted { position, .. }
        | Finding::Unchained { position, .. }
        | Finding::Broken { position } => position,
        Finding::Missing { .. } | Finding::Checkpoint { .. } => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_through_its_text_form() {
        let c = Checkpoint {
            position: 7u64.to_be_bytes().to_vec(),
            link: [0xab; 32],
        };
        assert_eq!(c.to_string().parse::<Checkpoint>(), Ok(c.clone()));
        assert!("07:abc".parse::<Checkpoint>().is_err());
        assert!("zz:00".parse::<Checkpoint>().is_err());
    }

    #[test]
    fn a_link_covers_the_previous_link_position_sequence_and_content() {
        let c = content_of([b"block".as_slice()]);
        let base = link(&GENESIS, b"p", 1, &c);
        assert_ne!(base, link(&[1; 32], b"p", 1, &c));
        assert_ne!(base, link(&GENESIS, b"q", 1, &c));
        assert_ne!(base, link(&GENESIS, b"p", 2, &c));
        assert_ne!(
            base,
            link(&GENESIS, b"p", 1, &content_of([b"blocK".as_slice()]))
        );
        // Block boundaries count: one block of "ab" is not two blocks "a", "b".
        assert_ne!(
            content_of([b"ab".as_slice()]),
            content_of([b"a".as_slice(), b"b".as_slice()])
        );
    }
}
