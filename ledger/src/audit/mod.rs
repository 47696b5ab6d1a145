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

use crate::codec::{self, IdemRecord, MemberRecord};
use crate::core::model::{IdemKey, Transaction, TxKind};
use crate::core::programme::PolicyVersion;
use crate::core::state::{MemberState, State};
use crate::core::types::{MemberId, TxId};
use crate::error::LedgerError;
use crate::keys;
use crate::store::Snapshot;
use std::collections::{BTreeMap, HashMap, HashSet};

mod stored;

use stored::{compare_maps, compare_stored, member_pages, scan_raw, stored_equal};
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
    let cluster = crate::journal::is_cluster_store(snap).map_err(AuditFailure::Read)?;
    let stored = StoredMembers::read(snap, cluster)?;
    let mut report = AuditReport {
        member_records: stored.records.len(),
        ..AuditReport::default()
    };
    let replay = Replay::run(snap, cluster, &stored, &mut report)?;
    check_watermarks(snap, cluster, &replay, stored.what)?;
    check_unrecorded(snap, &replay.unrecorded, &stored.page_through)?;
    report.members = if cluster {
        let current: HashMap<MemberId, MemberState> = stored
            .records
            .into_iter()
            .map(|(m, r)| (m, r.state))
            .collect();
        compare_maps(
            &current,
            &replay.state.members,
            |m| format!("member/{}", m.0),
            "member record",
        )?;
        current.len()
    } else {
        // Every transaction's recorded points and chain link were checked as it was replayed.
        replay.state.members.len()
    };
    compare_stored(snap, &replay.state, &replay.keys_seen, cluster, &mut report)?;
    check_policy_versions(snap, &replay.policy_versions)?;
    report.points_outstanding = replay.state.members.values().map(|m| m.posted.0).sum();
    Ok(report)
}

/// Member states as stored: the cluster path's records, or the single path's pages with the
/// batch each page covers.
struct StoredMembers {
    records: HashMap<MemberId, MemberRecord>,
    page_through: HashMap<u64, u64>,
    what: &'static str,
}

impl StoredMembers {
    fn read<Snap: Snapshot>(snap: &Snap, cluster: bool) -> Result<StoredMembers, AuditFailure> {
        if cluster {
            // In member order: the reads of their parts come in one order on every run.
            let heads: std::collections::BTreeMap<MemberId, Vec<u8>> =
                scan_raw(snap, keys::MEMBER, keys::parse_member)?
                    .into_iter()
                    .collect();
            let mut records = HashMap::with_capacity(heads.len());
            for (m, head) in heads {
                let n = MemberRecord::parts_after(&head);
                let parts = snap
                    .range(
                        &keys::member_part(m, 1),
                        &keys::member_part(m, n + 1),
                        usize::from(n),
                        false,
                    )?
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect::<Vec<_>>();
                records.insert(
                    m,
                    MemberRecord::from_values(&head, &parts).map_err(AuditFailure::Read)?,
                );
            }
            return Ok(StoredMembers {
                records,
                page_through: HashMap::new(),
                what: "member record",
            });
        }
        let (records, page_through) = member_pages(snap)?;
        Ok(StoredMembers {
            records,
            page_through,
            what: "member page",
        })
    }
}

/// The whole journal replayed in commit order through [`State::apply`], each transaction
/// checked, each stored member page compared when the replay reaches the batch it covers.
struct Replay {
    state: State,
    keys_seen: HashMap<IdemKey, IdemRecord>,
    last_version: u64,
    /// Members with no stored state, and the batch that enrolled them: each must be newer than
    /// its page (a page holds every member enrolled by the batch it covers).
    unrecorded: Vec<(MemberId, u64)>,
    /// Stored member pages the replay never reached.
    records_due: BTreeMap<u64, Vec<MemberId>>,
    /// Every policy version the journal sets, by (tag, transaction).
    policy_versions: HashMap<(u8, TxId), PolicyVersion>,
}

impl Replay {
    fn run<Snap: Snapshot>(
        snap: &Snap,
        cluster: bool,
        stored: &StoredMembers,
        report: &mut AuditReport,
    ) -> Result<Replay, AuditFailure> {
        let mut r = Replay {
            state: State::default(),
            keys_seen: HashMap::new(),
            last_version: 0,
            unrecorded: Vec::new(),
            records_due: BTreeMap::new(),
            policy_versions: HashMap::new(),
        };
        // The single committer writes a member page some batches after it changed, and says
        // which batch it covers: compare its members when the replay gets there. Cluster
        // records are current.
        if !cluster {
            for (m, rec) in &stored.records {
                r.records_due.entry(rec.through).or_default().push(*m);
            }
        }
        // Every member page (with its record of changes) covers the batches through this one:
        // a member changed by one of them after its stored state's batch is stale.
        let members_through = if cluster {
            0
        } else {
            read_watermark(snap, &keys::members_through())?
        };
        let mut previous = TxId(0);
        // On the cluster path ids come from per-process blocks: unique, not in commit order.
        let mut ids_seen: HashSet<TxId> = HashSet::new();
        let mut failure: Option<AuditFailure> = None;
        let mut stop = |f: AuditFailure| {
            failure = Some(f);
            Err(LedgerError::Corrupt("audit stopped".into()))
        };
        crate::journal::for_each_batch(snap, 0, &mut |version, txs| {
            report.batches += 1;
            r.last_version = version;
            for tx in &txs {
                if cluster && !ids_seen.insert(tx.id) {
                    return stop(AuditFailure::DuplicateId { tx: tx.id });
                }
                let order = if cluster { TxId(0) } else { previous };
                if let Err(f) = check_transaction(&mut r.state, tx, order, &mut r.keys_seen) {
                    return stop(f);
                }
                if let TxKind::Enrolled { member } = tx.kind {
                    if !cluster && !stored.records.contains_key(&member) {
                        r.unrecorded.push((member, version));
                    }
                }
                let stale = (version <= members_through)
                    .then(|| {
                        tx.members().find_map(|m| {
                            let rec = stored.records.get(&m)?;
                            (rec.through < version).then_some((m, rec))
                        })
                    })
                    .flatten();
                if let Some((m, rec)) = stale {
                    return stop(AuditFailure::Stored {
                        account: format!("member/{}", m.0),
                        what: stored.what,
                        stored: format!("as of batch {}", rec.through),
                        recomputed: format!(
                            "changed in batch {version}, which every page covers \
                             (through {members_through})"
                        ),
                    });
                }
                if let Some(v) = PolicyVersion::of(tx) {
                    r.policy_versions.insert((v.policy.tag(), v.tx), v);
                }
                previous = tx.id;
                report.transactions += 1;
                report.postings += tx.postings.len() as u64;
            }
            for m in r.records_due.remove(&version).unwrap_or_default() {
                let account = format!("member/{}", m.0);
                let kept = stored.records.get(&m).map(|rec| &rec.state);
                if let Err(f) = stored_equal(account, stored.what, kept, r.state.members.get(&m)) {
                    return stop(f);
                }
            }
            Ok(())
        })
        .map_err(|e| failure.take().unwrap_or(AuditFailure::Read(e)))?;
        Ok(r)
    }
}

/// The stored policy versions (`Y h`) are exactly those the journal sets.
fn check_policy_versions<Snap: Snapshot>(
    snap: &Snap,
    replayed: &HashMap<(u8, TxId), PolicyVersion>,
) -> Result<(), AuditFailure> {
    let prefix = [keys::POLICY, b'h'];
    let mut stored = HashMap::new();
    let mut bad = None;
    snap.scan(&prefix, &crate::store::prefix_end(&prefix), &mut |k, v| {
        let parsed = (k.len() == 11)
            .then(|| {
                (
                    k[2],
                    TxId(u64::from_be_bytes(k[3..11].try_into().expect("8 bytes"))),
                )
            })
            .ok_or_else(|| LedgerError::Corrupt(format!("policy version key {k:?}")))
            .and_then(|id| Ok((id, codec::decode::<PolicyVersion>("policy version", v)?)));
        match parsed {
            Ok((id, version)) => {
                stored.insert(id, version);
                true
            }
            Err(e) => {
                bad = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = bad {
        return Err(AuditFailure::Read(e));
    }
    compare_maps(
        &stored,
        replayed,
        |(tag, tx)| format!("policy {} version {}", char::from(*tag), tx.0),
        "policy version",
    )
}

fn read_watermark<Snap: Snapshot>(snap: &Snap, key: &[u8]) -> Result<u64, AuditFailure> {
    Ok(match snap.get(key)? {
        Some(v) => u64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8])),
        None => 0,
    })
}

/// The projector's watermark covers the journal, and every stored member page was reached.
fn check_watermarks<Snap: Snapshot>(
    snap: &Snap,
    cluster: bool,
    replay: &Replay,
    what: &'static str,
) -> Result<(), AuditFailure> {
    let projected = read_watermark(snap, &keys::projected_through())?;
    if !cluster && projected < replay.last_version {
        return Err(AuditFailure::Behind {
            projected,
            journal: replay.last_version,
        });
    }
    if let Some((batch, members)) = replay.records_due.iter().next() {
        return Err(AuditFailure::Stored {
            account: format!("member/{}", members[0].0),
            what,
            stored: format!("as of batch {batch}"),
            recomputed: format!("a journal ending at batch {}", replay.last_version),
        });
    }
    Ok(())
}

/// Every member enrolled by the batch its page covers is in that page.
fn check_unrecorded<Snap: Snapshot>(
    snap: &Snap,
    unrecorded: &[(MemberId, u64)],
    page_through: &HashMap<u64, u64>,
) -> Result<(), AuditFailure> {
    let members_through = read_watermark(snap, &keys::members_through())?;
    for (m, enrolled) in unrecorded {
        let covered = page_through
            .get(&keys::page_of(*m))
            .copied()
            .unwrap_or(members_through);
        if covered >= *enrolled {
            return Err(AuditFailure::Stored {
                account: format!("member/{}", m.0),
                what: "member page",
                stored: format!("missing from a page covering batch {covered}"),
                recomputed: format!("enrolled in batch {enrolled}"),
            });
        }
    }
    Ok(())
}

/// Expired points are never spent, and only expired points are expired: a lot consumed by a
/// burn, capture, transfer or adjustment was not expired when it committed, and a lot an
/// expiry consumed was.
fn check_expiry(
    state: &State,
    tx: &Transaction,
    c: &crate::core::model::LotChange,
    found: Option<(&crate::core::state::MemberState, &crate::core::state::Lot)>,
) -> Result<(), AuditFailure> {
    let Some((m, lot)) = found else {
        return Ok(());
    };
    let expired = state.lot_expired(m, lot, tx.at);
    let problem = match &tx.kind {
        TxKind::Expire { .. } if !expired => Some("expires a lot not yet expired"),
        TxKind::Burn { .. }
        | TxKind::Redeemed(_)
        | TxKind::Transfer { .. }
        | TxKind::Adjust { .. }
            if expired =>
        {
            Some("spends an expired lot")
        }
        _ => None,
    };
    match problem {
        Some(what) => Err(AuditFailure::Lots {
            member: c.member,
            tx: tx.id,
            detail: format!("{what}: lot {:?}", c.lot),
        }),
        None => Ok(()),
    }
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
        let member = state.members.get(&c.member);
        let lot = member.and_then(|m| m.lots.unordered().find(|l| l.id == c.lot));
        let has = lot.map(|l| l.remaining.0).unwrap_or(0);
        if has < -c.delta.0 {
            return Err(AuditFailure::Lots {
                member: c.member,
                tx: tx.id,
                detail: format!("consumes {} from lot {:?} holding {has}", -c.delta.0, c.lot),
            });
        }
        check_expiry(state, tx, c, member.zip(lot))?;
    }
    let before: Vec<(i64, Option<TxId>)> = tx
        .members()
        .map(|m| {
            state
                .members
                .get(&m)
                .map_or((0, None), |s| (s.posted.0, s.last.get()))
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
        let lots: i64 = s.lots.total();
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
