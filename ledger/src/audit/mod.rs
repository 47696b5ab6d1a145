//! The audit: recompute every balance, lot and hold from the journal alone, check the ledger's
//! invariants on the way, and compare the result with the stored derived state.
//!
//! Invariants checked, per transaction: ids increase; postings sum to zero per asset; the recorded
//! member points (posted and held) match the recomputation, and each member line links to that
//! member's previous transaction (the chain statements walk); a member goes below zero only by a
//! policy-allowed clawback; a member's lots sum to `max(posted, 0)`; lot changes consume only
//! points a lot has; idempotency keys are unique. Then every stored account balance, open hold,
//! reversal record, contract and idempotency entry must equal its recomputed value, with nothing
//! missing and nothing extra (the single committer's index as `K` chunks, the cluster path's as `I`
//! keys); and every stored member (the cluster path's `M` records, the single committer's `m`
//! pages) must equal the member as recomputed through the batch its record or page says it
//! covers, and a page must hold every member enrolled by then.

use crate::codec::{self, IdemChunk, IdemRecord, MemberPage, MemberRecord};
use crate::core::model::{IdemKey, Transaction, TxKind};
use crate::core::state::{Balance, HoldState, MemberState, Reversed, State};
use crate::core::types::{AccountId, Contract, MemberId, PartnerId, TxId};
use crate::error::LedgerError;
use crate::keys;
use crate::store::Snapshot;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// What an audit that passed looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Journal batches read.
    pub batches: u64,
    /// Transactions read and checked.
    pub transactions: u64,
    /// Posting legs checked for balance.
    pub postings: u64,
    /// Members checked: on the single committer, each one's chain (every transaction's recorded
    /// posted and held points and link to the member's previous transaction); on the cluster
    /// path, each one's record against the final recomputation.
    pub members: usize,
    /// Member records compared, each as of the batch it covers.
    pub member_records: usize,
    /// Non-member account balances compared.
    pub accounts: usize,
    /// Open holds compared.
    pub open_holds: usize,
    /// Idempotency index entries compared.
    pub idempotency_keys: usize,
    /// Points owed to members (sum of member balances).
    pub points_outstanding: i64,
}

/// The first broken invariant the audit found.
#[derive(Debug, thiserror::Error)]
pub enum AuditFailure {
    /// A transaction's postings do not sum to zero for some asset.
    #[error("transaction {tx} does not balance: {detail}")]
    Unbalanced {
        /// The transaction.
        tx: TxId,
        /// Which asset is off, by how much.
        detail: String,
    },
    /// A transaction id is not above its predecessor's.
    #[error("transaction {tx} is out of order after {previous}")]
    OutOfOrder {
        /// The transaction.
        tx: TxId,
        /// Its predecessor.
        previous: TxId,
    },
    /// Two transactions share an id (cluster path: ids come from reserved blocks).
    #[error("transaction id {tx} is used twice")]
    DuplicateId {
        /// The id.
        tx: TxId,
    },
    /// Two transactions share an idempotency key.
    #[error("idempotency key {key} used by transactions {first} and {second}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// First use.
        first: TxId,
        /// Second use.
        second: TxId,
    },
    /// A member went below zero other than by a clawback.
    #[error("account member/{} went to {points} in transaction {tx} without a clawback", .member.0)]
    NegativeMember {
        /// The member.
        member: MemberId,
        /// The balance.
        points: i64,
        /// The transaction.
        tx: TxId,
    },
    /// A transaction's recorded member balance disagrees with the recomputation.
    #[error("account member/{} recorded {recorded} after transaction {tx}, recomputed {recomputed}", .member.0)]
    RecordedBalance {
        /// The member.
        member: MemberId,
        /// The transaction.
        tx: TxId,
        /// What the transaction says.
        recorded: String,
        /// What the journal adds up to.
        recomputed: String,
    },
    /// A transaction's link to the member's previous transaction is not that transaction.
    #[error("account member/{} chain broken at transaction {tx}: it names {recorded:?} as the member's previous transaction, the journal gives {recomputed:?}", .member.0)]
    Chain {
        /// The member.
        member: MemberId,
        /// The transaction.
        tx: TxId,
        /// The previous transaction it names.
        recorded: Option<TxId>,
        /// The member's previous transaction in the journal.
        recomputed: Option<TxId>,
    },
    /// A member's lots do not sum to its positive balance, or a lot went negative.
    #[error("account member/{} lots are inconsistent after transaction {tx}: {detail}", .member.0)]
    Lots {
        /// The member.
        member: MemberId,
        /// The transaction.
        tx: TxId,
        /// What is wrong.
        detail: String,
    },
    /// A stored record differs from the journal's recomputation.
    #[error("account {account}: stored {what} {stored} but the journal gives {recomputed}")]
    Stored {
        /// The account or record name.
        account: String,
        /// Which record.
        what: &'static str,
        /// The stored value.
        stored: String,
        /// The recomputed value.
        recomputed: String,
    },
    /// The derived state does not cover the whole journal.
    #[error("derived state covers the journal through version {projected}, but the journal ends at {journal}")]
    Behind {
        /// Watermark.
        projected: u64,
        /// Last journal version.
        journal: u64,
    },
    /// The store could not be read or decoded.
    #[error(transparent)]
    Read(#[from] LedgerError),
}

impl From<crate::store::StoreError> for AuditFailure {
    fn from(e: crate::store::StoreError) -> Self {
        AuditFailure::Read(e.into())
    }
}

/// Audits the ledger in `snap`. The snapshot must be quiescent or taken after the projector
/// caught up (see [`crate::Ledger::read_snapshot`]).
pub fn audit<Snap: Snapshot>(snap: &Snap) -> Result<AuditReport, AuditFailure> {
    let mut state = State::default();
    let mut report = AuditReport::default();
    let mut keys_seen: HashMap<IdemKey, IdemRecord> = HashMap::new();
    let mut previous = TxId(0);
    let mut last_version = 0u64;
    let mut failure: Option<AuditFailure> = None;
    let cluster = crate::journal::is_cluster_store(snap).map_err(AuditFailure::Read)?;
    // On the cluster path ids come from per-process blocks: unique, not in commit order.
    let mut ids_seen: HashSet<TxId> = HashSet::new();
    let (records, page_through): (HashMap<MemberId, MemberRecord>, HashMap<u64, u64>) = if cluster {
        let records = scan_family(snap, keys::MEMBER, "member record", keys::parse_member)?;
        (records, HashMap::new())
    } else {
        member_pages(snap)?
    };
    let member_what = if cluster {
        "member record"
    } else {
        "member page"
    };
    // Members with no stored state, and the batch that enrolled them: each must be newer than
    // its page (a page holds every member enrolled by the batch it covers).
    let mut unrecorded: Vec<(MemberId, u64)> = Vec::new();
    report.member_records = records.len();
    // The single committer writes a member page some batches after it changed, and says which
    // batch it covers: compare its members when the replay gets there. Cluster records are
    // current.
    let mut records_due: BTreeMap<u64, Vec<MemberId>> = BTreeMap::new();
    if !cluster {
        for (m, r) in &records {
            records_due.entry(r.through).or_default().push(*m);
        }
    }
    crate::journal::for_each_batch(snap, 0, &mut |version, txs| {
        report.batches += 1;
        last_version = version;
        for tx in &txs {
            let order = if cluster {
                if !ids_seen.insert(tx.id) {
                    failure = Some(AuditFailure::DuplicateId { tx: tx.id });
                    return Err(LedgerError::Corrupt("audit stopped".into()));
                }
                TxId(0)
            } else {
                previous
            };
            if let Err(f) = check_transaction(&mut state, tx, order, &mut keys_seen) {
                failure = Some(f);
                return Err(LedgerError::Corrupt("audit stopped".into()));
            }
            if let TxKind::Enrolled { member } = tx.kind {
                if !cluster && !records.contains_key(&member) {
                    unrecorded.push((member, version));
                }
            }
            previous = tx.id;
            report.transactions += 1;
            report.postings += tx.postings.len() as u64;
        }
        for m in records_due.remove(&version).unwrap_or_default() {
            if let Err(f) = stored(
                format!("member/{}", m.0),
                member_what,
                records.get(&m).map(|r| &r.state),
                state.members.get(&m),
            ) {
                failure = Some(f);
                return Err(LedgerError::Corrupt("audit stopped".into()));
            }
        }
        Ok(())
    })
    .map_err(|e| failure.take().unwrap_or(AuditFailure::Read(e)))?;
    let projected = match snap.get(&keys::projected_through())? {
        Some(v) => u64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8])),
        None => 0,
    };
    if !cluster && projected < last_version {
        return Err(AuditFailure::Behind {
            projected,
            journal: last_version,
        });
    }
    if let Some((batch, members)) = records_due.into_iter().next() {
        return Err(AuditFailure::Stored {
            account: format!("member/{}", members[0].0),
            what: member_what,
            stored: format!("as of batch {batch}"),
            recomputed: format!("a journal ending at batch {last_version}"),
        });
    }
    let members_through = match snap.get(&keys::members_through())? {
        Some(v) => u64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8])),
        None => 0,
    };
    for (m, enrolled) in unrecorded {
        let covered = page_through
            .get(&keys::page_of(m))
            .copied()
            .unwrap_or(members_through);
        if covered >= enrolled {
            return Err(AuditFailure::Stored {
                account: format!("member/{}", m.0),
                what: "member page",
                stored: format!("missing from a page covering batch {covered}"),
                recomputed: format!("enrolled in batch {enrolled}"),
            });
        }
    }
    if cluster {
        let current: HashMap<MemberId, MemberState> =
            records.into_iter().map(|(m, r)| (m, r.state)).collect();
        compare_maps(
            &current,
            &state.members,
            |m| format!("member/{}", m.0),
            "member record",
        )?;
        report.members = current.len();
    } else {
        // Every transaction's recorded points and chain link were checked as it was replayed.
        report.members = state.members.len();
    }
    compare_stored(snap, &state, &keys_seen, cluster, &mut report)?;
    report.points_outstanding = state.members.values().map(|m| m.posted.0).sum();
    Ok(report)
}

fn check_transaction(
    state: &mut State,
    tx: &Transaction,
    previous: TxId,
    keys_seen: &mut HashMap<IdemKey, IdemRecord>,
) -> Result<(), AuditFailure> {
    if tx.id <= previous && previous != TxId(0) {
        return Err(AuditFailure::OutOfOrder {
            tx: tx.id,
            previous,
        });
    }
    let (points, money) = tx.imbalance();
    if points != 0 || !money.is_empty() {
        return Err(AuditFailure::Unbalanced {
            tx: tx.id,
            detail: format!("points off by {points}, money off by {money:?}"),
        });
    }
    if let Some(first) = keys_seen.insert(
        tx.key.clone(),
        IdemRecord {
            tx: tx.id,
            digest: tx.digest,
        },
    ) {
        return Err(AuditFailure::DuplicateKey {
            key: tx.key.to_string(),
            first: first.tx,
            second: tx.id,
        });
    }
    for c in tx.lots.iter().filter(|c| c.delta.0 < 0) {
        let has = state
            .members
            .get(&c.member)
            .and_then(|m| m.lots.iter().find(|l| l.id == c.lot))
            .map(|l| l.remaining.0)
            .unwrap_or(0);
        if has < -c.delta.0 {
            return Err(AuditFailure::Lots {
                member: c.member,
                tx: tx.id,
                detail: format!("consumes {} from lot {:?} holding {has}", -c.delta.0, c.lot),
            });
        }
    }
    let before: Vec<(i64, Option<TxId>)> = tx
        .members()
        .map(|m| {
            state
                .members
                .get(&m)
                .map_or((0, None), |s| (s.posted.0, s.last))
        })
        .collect();
    state.apply(tx);
    let clawback = matches!(tx.kind, TxKind::Reversal { clawback, .. } if clawback.0 > 0);
    for (after, (was, prev)) in tx.member_balances.iter().zip(before) {
        let m = after.member;
        let s = &state.members[&m];
        if s.posted != after.posted || s.held != after.held {
            return Err(AuditFailure::RecordedBalance {
                member: m,
                tx: tx.id,
                recorded: format!("posted {}, held {}", after.posted.0, after.held.0),
                recomputed: format!("posted {}, held {}", s.posted.0, s.held.0),
            });
        }
        if after.prev != prev {
            return Err(AuditFailure::Chain {
                member: m,
                tx: tx.id,
                recorded: after.prev,
                recomputed: prev,
            });
        }
        if s.posted.0 < 0 && s.posted.0 < was && !clawback {
            return Err(AuditFailure::NegativeMember {
                member: m,
                points: s.posted.0,
                tx: tx.id,
            });
        }
        let lots: i64 = s.lots.iter().map(|l| l.remaining.0).sum();
        if lots != s.posted.0.max(0) {
            return Err(AuditFailure::Lots {
                member: m,
                tx: tx.id,
                detail: format!("lots sum to {lots}, posted is {}", s.posted.0),
            });
        }
    }
    Ok(())
}

fn stored<T: PartialEq + std::fmt::Debug>(
    account: String,
    what: &'static str,
    stored: Option<&T>,
    recomputed: Option<&T>,
) -> Result<(), AuditFailure> {
    if stored == recomputed {
        return Ok(());
    }
    Err(AuditFailure::Stored {
        account,
        what,
        stored: format!("{stored:?}"),
        recomputed: format!("{recomputed:?}"),
    })
}

/// Scans one key family, decoding each value; returns id -> value.
fn scan_family<Snap: Snapshot, K: std::hash::Hash + Eq, V: serde::de::DeserializeOwned>(
    snap: &Snap,
    tag: u8,
    what: &str,
    parse: impl Fn(&[u8]) -> Option<K>,
) -> Result<HashMap<K, V>, AuditFailure> {
    let mut out = HashMap::new();
    let mut failure = None;
    snap.scan(&[tag], &[tag + 1], &mut |k, v| match parse(k)
        .ok_or_else(|| LedgerError::Corrupt(format!("{what} key {k:?}")))
        .and_then(|id| Ok((id, codec::decode::<V>(what, v)?)))
    {
        Ok((id, val)) => {
            out.insert(id, val);
            true
        }
        Err(e) => {
            failure = Some(e);
            false
        }
    })?;
    match failure {
        Some(e) => Err(AuditFailure::Read(e)),
        None => Ok(out),
    }
}

/// Every member in the single committer's member pages, with the batch its page covers; and
/// the batch each page covers.
#[allow(clippy::type_complexity)]
fn member_pages<Snap: Snapshot>(
    snap: &Snap,
) -> Result<(HashMap<MemberId, MemberRecord>, HashMap<u64, u64>), AuditFailure> {
    let pages: HashMap<u64, MemberPage> = scan_family(
        snap,
        keys::MEMBER_PAGE,
        "member page",
        keys::parse_member_page,
    )?;
    let mut out = HashMap::new();
    let through = pages.iter().map(|(page, p)| (*page, p.through)).collect();
    for (page, p) in pages {
        for (m, state) in p.members {
            if keys::page_of(m) != page {
                return Err(AuditFailure::Stored {
                    account: format!("member/{}", m.0),
                    what: "member page",
                    stored: format!("in page {page}"),
                    recomputed: format!("page {}", keys::page_of(m)),
                });
            }
            out.insert(
                m,
                MemberRecord {
                    through: p.through,
                    state,
                },
            );
        }
    }
    Ok((out, through))
}

fn compare_stored<Snap: Snapshot>(
    snap: &Snap,
    state: &State,
    keys_seen: &HashMap<IdemKey, IdemRecord>,
    cluster: bool,
    report: &mut AuditReport,
) -> Result<(), AuditFailure> {
    let mut accounts: HashMap<AccountId, Balance> =
        scan_family(snap, keys::BALANCE, "balance record", |k| {
            keys::parse_account(&k[1..]).map(|(a, _)| a)
        })?;
    if cluster {
        // Blind-added totals: one key per account and asset; currencies in key order.
        let mut ids = Vec::new();
        snap.scan(&[keys::TOTAL], &[keys::TOTAL + 1], &mut |k, _| {
            if let Some((a, _)) = keys::parse_account(&k[1..]) {
                if ids.last() != Some(&a) {
                    ids.push(a);
                }
            }
            true
        })?;
        for a in ids {
            let b = crate::reads::system_account_balance(snap, a).map_err(AuditFailure::Read)?;
            accounts.insert(a, normalized(b));
        }
        let recomputed: HashMap<AccountId, Balance> = state
            .accounts
            .iter()
            .map(|(a, b)| (*a, normalized(b.clone())))
            .collect();
        compare_maps(&accounts, &recomputed, |a| a.to_string(), "balance")?;
    } else {
        compare_maps(&accounts, &state.accounts, |a| a.to_string(), "balance")?;
    }
    report.accounts = accounts.len();

    let holds: HashMap<TxId, HoldState> =
        scan_family(snap, keys::HOLD, "hold", keys::parse_tail_tx)?;
    compare_maps(&holds, &state.holds, |h| format!("hold {h}"), "open hold")?;
    if cluster {
        let mut timeouts = BTreeSet::new();
        snap.scan(
            &[keys::HOLD_TIMEOUT],
            &[keys::HOLD_TIMEOUT + 1],
            &mut |k, _| {
                timeouts.insert(k.to_vec());
                true
            },
        )?;
        let expected: BTreeSet<Vec<u8>> = state
            .hold_timeouts
            .iter()
            .map(|(at, id)| keys::hold_timeout(*at, *id))
            .collect();
        if let Some(k) = timeouts.symmetric_difference(&expected).next() {
            let id = keys::parse_hold_timeout(k).unwrap_or_default();
            return Err(AuditFailure::Stored {
                account: format!("hold {id}"),
                what: "hold timeout entry",
                stored: timeouts.contains(k).to_string(),
                recomputed: expected.contains(k).to_string(),
            });
        }
    }
    report.open_holds = holds.len();

    let reversed: HashMap<TxId, Reversed> =
        scan_family(snap, keys::REVERSED, "reversed record", keys::parse_tail_tx)?;
    compare_maps(
        &reversed,
        &state.reversed,
        |t| format!("reversals of {t}"),
        "reversed amount",
    )?;

    let contracts: HashMap<PartnerId, Contract> =
        scan_family(snap, keys::CONTRACT, "contract", |k| {
            k.get(1..5)
                .map(|b| PartnerId(u32::from_be_bytes(b.try_into().expect("4 bytes"))))
        })?;
    compare_maps(
        &contracts,
        &state.contracts,
        |p| format!("partner/{}", p.0),
        "contract",
    )?;

    let count = if cluster {
        compare_idempotency_keys(snap, keys_seen)?
    } else {
        compare_idempotency_chunks(snap, keys_seen)?
    };
    report.idempotency_keys = count;
    Ok(())
}

/// The cluster path's idempotency index (one key per command) against the journal's keys.
fn compare_idempotency_keys<Snap: Snapshot>(
    snap: &Snap,
    keys_seen: &HashMap<IdemKey, IdemRecord>,
) -> Result<usize, AuditFailure> {
    let mut count = 0usize;
    let mut failure: Option<AuditFailure> = None;
    let mut by_key: HashMap<Vec<u8>, &IdemRecord> = HashMap::with_capacity(keys_seen.len());
    for (k, r) in keys_seen {
        by_key.insert(keys::idempotency(k), r);
    }
    snap.scan(
        &[keys::IDEMPOTENCY],
        &[keys::IDEMPOTENCY + 1],
        &mut |k, v| {
            count += 1;
            let rec = codec::decode::<IdemRecord>("idempotency record", v);
            let ok = matches!((&rec, by_key.get(k)), (Ok(r), Some(e)) if r == *e);
            if !ok {
                failure = Some(AuditFailure::Stored {
                    account: String::from_utf8_lossy(k).into_owned(),
                    what: "idempotency entry",
                    stored: format!("{rec:?}"),
                    recomputed: format!("{:?}", by_key.get(k)),
                });
            }
            ok
        },
    )?;
    if let Some(f) = failure {
        return Err(f);
    }
    if count != keys_seen.len() {
        return Err(AuditFailure::Stored {
            account: "idempotency index".into(),
            what: "entry count",
            stored: count.to_string(),
            recomputed: keys_seen.len().to_string(),
        });
    }
    Ok(count)
}

/// The single committer's idempotency index chunks against the journal's keys: every
/// committed key's hash and record exactly once, nothing else.
fn compare_idempotency_chunks<Snap: Snapshot>(
    snap: &Snap,
    keys_seen: &HashMap<IdemKey, IdemRecord>,
) -> Result<usize, AuditFailure> {
    let mut expected: HashMap<(u128, TxId), (&IdemKey, &IdemRecord)> =
        HashMap::with_capacity(keys_seen.len());
    for (k, r) in keys_seen {
        expected.insert((crate::keys::hash_key(k), r.tx), (k, r));
    }
    let mut count = 0usize;
    let mut failure: Option<AuditFailure> = None;
    snap.scan(&[keys::IDEM_CHUNK], &[keys::IDEM_CHUNK + 1], &mut |k, v| {
        let chunk = match codec::decode::<IdemChunk>("idempotency chunk", v) {
            Ok(c) => c,
            Err(e) => {
                failure = Some(AuditFailure::Read(e));
                return false;
            }
        };
        for (h, rec) in chunk.entries {
            count += 1;
            match expected.remove(&(h, rec.tx)) {
                Some((_, want)) if *want == rec => {}
                found => {
                    failure = Some(AuditFailure::Stored {
                        account: format!("idempotency chunk {k:?}"),
                        what: "idempotency entry",
                        stored: format!("{rec:?}"),
                        recomputed: match found {
                            Some((key, want)) => format!("{want:?} for {key}"),
                            None => "no such key in the journal (or listed twice)".into(),
                        },
                    });
                    return false;
                }
            }
        }
        true
    })?;
    if let Some(f) = failure {
        return Err(f);
    }
    if let Some((key, rec)) = expected.values().next() {
        return Err(AuditFailure::Stored {
            account: format!("idempotency key {key}"),
            what: "idempotency entry",
            stored: "missing".into(),
            recomputed: format!("{rec:?}"),
        });
    }
    Ok(count)
}

/// `b` with its currencies in code order, as the cluster path's totals list them.
fn normalized(mut b: Balance) -> Balance {
    b.money.sort_by_key(|(c, _)| *c);
    b
}

fn compare_maps<
    K: std::hash::Hash + Eq + Ord + Copy,
    V: PartialEq + std::fmt::Debug,
    S1: std::hash::BuildHasher,
    S2: std::hash::BuildHasher,
>(
    stored_map: &HashMap<K, V, S1>,
    recomputed: &HashMap<K, V, S2>,
    name: impl Fn(&K) -> String,
    what: &'static str,
) -> Result<(), AuditFailure> {
    let mut ids: Vec<K> = stored_map
        .keys()
        .chain(recomputed.keys())
        .copied()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        stored(name(&id), what, stored_map.get(&id), recomputed.get(&id))?;
    }
    Ok(())
}
