//! Stored derived state against the replay: member pages and records, account balances,
//! holds, reversal totals, contracts and the idempotency index.

use crate::codec::{self, IdemRecord, MemberPage, MemberRecord};
use crate::core::model::IdemKey;
use crate::core::programme::{Counter, CounterKey};
use crate::core::state::{Balance, HoldState, Reversed, State};
use crate::core::types::{AccountId, Contract, MemberId, PartnerId, Points, TxId};
use crate::error::LedgerError;
use crate::keys;
use crate::store::Snapshot;
use std::collections::{BTreeSet, HashMap};

use super::{AuditFailure, AuditReport};

pub(super) fn stored_equal<T: PartialEq + std::fmt::Debug>(
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
pub(super) fn scan_family<
    Snap: Snapshot,
    K: std::hash::Hash + Eq,
    V: serde::de::DeserializeOwned,
>(
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

/// Every member in the single committer's member pages, with the batch its page covers (its
/// page's record of changes, for the members in it); and the batch each page covers.
#[allow(clippy::type_complexity)]
pub(super) fn member_pages<Snap: Snapshot>(
    snap: &Snap,
) -> Result<(HashMap<MemberId, MemberRecord>, HashMap<u64, u64>), AuditFailure> {
    let wholes: HashMap<u64, MemberPage> = scan_family(
        snap,
        keys::MEMBER_PAGE,
        "member page",
        keys::parse_member_page,
    )?;
    let changes: HashMap<u64, MemberPage> = scan_family(
        snap,
        keys::MEMBER_PAGE_CHANGES,
        "member page changes",
        keys::parse_member_page_changes,
    )?;
    let mut through: HashMap<u64, u64> =
        wholes.iter().map(|(page, p)| (*page, p.through)).collect();
    for (page, p) in &changes {
        if let Some(whole) = through.get(page).filter(|w| **w >= p.through) {
            return Err(AuditFailure::Stored {
                account: format!("member page {page}"),
                what: "member page changes",
                stored: format!("as of batch {}", p.through),
                recomputed: format!("after its whole copy's batch {whole}"),
            });
        }
        through.insert(*page, p.through);
    }
    let mut out = HashMap::new();
    // The whole copies first, then the records of changes over them.
    for (page, p) in wholes.into_iter().chain(changes) {
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

pub(super) fn compare_stored<Snap: Snapshot>(
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

    let mut counters: HashMap<CounterKey, Counter> = scan_family(
        snap,
        keys::COUNTER,
        "programme counter",
        keys::parse_counter,
    )?;
    if cluster {
        // The cluster path blind-adds the points expiring per month (`W`).
        let totals: HashMap<u32, Vec<u8>> = scan_raw(snap, keys::EXPIRING_TOTAL, |k| {
            k.get(1..5)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        })?;
        for (month, v) in totals {
            let n: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| AuditFailure::Read(LedgerError::Corrupt("expiring total".into())))?;
            counters.insert(
                CounterKey::Expiring(month),
                Counter::Points(Points(i64::from_le_bytes(n))),
            );
        }
    }
    compare_maps(
        &counters,
        &state.counters,
        |k| format!("counter {k:?}"),
        "programme counter",
    )?;

    let stored_policy = match snap.get(&keys::expiry_policy())? {
        Some(v) => Some(codec::decode::<crate::core::expiry::StoredPolicy>(
            "expiry policy",
            &v,
        )?),
        None => None,
    };
    let recomputed_policy = state.expiry.as_ref().map(|p| p.stored());
    stored_equal(
        "programme".to_string(),
        "expiry policy",
        stored_policy.as_ref(),
        recomputed_policy.as_ref(),
    )?;

    let stored_transfers = match snap.get(&keys::transfer_policy())? {
        Some(v) => Some(codec::decode::<crate::core::transfers::TransferPolicy>(
            "transfer policy",
            &v,
        )?),
        None => None,
    };
    stored_equal(
        "programme".to_string(),
        "transfer policy",
        stored_transfers.as_ref(),
        state.transfers.as_ref(),
    )?;

    let stored_tiers = match snap.get(&keys::tier_policy())? {
        Some(v) => Some(codec::decode::<crate::core::tiers::TierPolicy>(
            "tier policy",
            &v,
        )?),
        None => None,
    };
    stored_equal(
        "programme".to_string(),
        "tier policy",
        stored_tiers.as_ref(),
        state.tiers.as_ref().map(|t| &t.policy),
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
    // By the part of the hash every form of entry holds, and the transaction (one per key).
    let mut expected: HashMap<(u64, TxId), (&IdemKey, &IdemRecord, u128)> =
        HashMap::with_capacity(keys_seen.len());
    for (k, r) in keys_seen {
        let h = crate::keys::hash_key(k);
        expected.insert((crate::keys::disk_hash(h), r.tx), (k, r, h));
    }
    let mut count = 0usize;
    let mut failure: Option<AuditFailure> = None;
    // The chunks, then the records of keys older than the writer's memory window.
    for (family, what) in [
        (keys::IDEM_CHUNK, "idempotency chunk"),
        (keys::IDEM_BY_HASH, "on-disk idempotency record"),
        (
            keys::IDEM_ON_DISK_V1,
            "on-disk idempotency record (first form)",
        ),
    ] {
        snap.scan(&[family], &[family + 1], &mut |k, v| {
            let entries = match stored_entries(family, k, v) {
                Ok(e) => e,
                Err(e) => {
                    failure = Some(AuditFailure::Read(e));
                    return false;
                }
            };
            for e in entries {
                count += 1;
                let found = expected.remove(&(e.disk_hash, e.tx));
                let agrees = found.is_some_and(|(_, want, h)| {
                    e.hash.is_none_or(|eh| eh == h) && e.digest.is_none_or(|d| d == want.digest)
                });
                if !agrees {
                    failure = Some(AuditFailure::Stored {
                        account: format!("{what} {k:?}"),
                        what: "idempotency entry",
                        stored: format!("{e:?}"),
                        recomputed: match found {
                            Some((key, want, h)) => format!("{want:?}, hash {h:#x}, for {key}"),
                            None => "no such key in the journal (or listed twice)".into(),
                        },
                    });
                    return false;
                }
            }
            true
        })?;
        if let Some(f) = failure.take() {
            return Err(f);
        }
    }
    if let Some((key, rec, _)) = expected.values().next() {
        return Err(AuditFailure::Stored {
            account: format!("idempotency key {key}"),
            what: "idempotency entry",
            stored: "missing".into(),
            recomputed: format!("{rec:?}"),
        });
    }
    Ok(count)
}

/// One entry of the single committer's idempotency index as stored: what its form holds.
#[derive(Debug)]
struct StoredEntry {
    disk_hash: u64,
    tx: TxId,
    /// The full hash, in chunks and first-form records.
    hash: Option<u128>,
    /// The command's digest, in first-form chunks and records.
    digest: Option<crate::core::model::Digest>,
}

/// The entries of one stored value of the idempotency index: a chunk (`K`), an on-disk record
/// (`l` hash) or a first-form on-disk record (`L` hash).
fn stored_entries(family: u8, k: &[u8], v: &[u8]) -> Result<Vec<StoredEntry>, LedgerError> {
    let full = |h: u128, r: IdemRecord| StoredEntry {
        disk_hash: keys::disk_hash(h),
        tx: r.tx,
        hash: Some(h),
        digest: Some(r.digest),
    };
    let bad_key = || LedgerError::Corrupt(format!("on-disk idempotency key {k:?}"));
    match family {
        keys::IDEM_CHUNK => Ok(codec::key_chunk_entries(v)?
            .into_iter()
            .map(|e| StoredEntry {
                disk_hash: keys::disk_hash(e.hash),
                tx: e.tx,
                hash: Some(e.hash),
                digest: e.digest,
            })
            .collect()),
        keys::IDEM_BY_HASH => {
            let h = k
                .get(1..9)
                .filter(|_| k.len() == 9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(bad_key)?;
            let ids: Vec<TxId> = codec::decode("on-disk idempotency record", v)?;
            Ok(ids
                .into_iter()
                .map(|tx| StoredEntry {
                    disk_hash: h,
                    tx,
                    hash: None,
                    digest: None,
                })
                .collect())
        }
        _ => {
            let h = k
                .get(1..17)
                .and_then(|b| b.try_into().ok())
                .map(u128::from_be_bytes)
                .ok_or_else(bad_key)?;
            let recs: Vec<IdemRecord> = codec::decode("on-disk idempotency record", v)?;
            Ok(recs.into_iter().map(|r| full(h, r)).collect())
        }
    }
}

/// `b` with its currencies in code order, as the cluster path's totals list them.
fn normalized(mut b: Balance) -> Balance {
    b.money.sort_by_key(|(c, _)| *c);
    b
}

/// Every key of family `tag` with its raw value, by `parse`d id.
pub(super) fn scan_raw<Snap: Snapshot, K: std::hash::Hash + Eq>(
    snap: &Snap,
    tag: u8,
    parse: impl Fn(&[u8]) -> Option<K>,
) -> Result<HashMap<K, Vec<u8>>, AuditFailure> {
    let mut out = HashMap::new();
    let mut bad = None;
    snap.scan(&[tag], &[tag + 1], &mut |k, v| match parse(k) {
        Some(id) => {
            out.insert(id, v.to_vec());
            true
        }
        None => {
            bad = Some(k.to_vec());
            false
        }
    })?;
    match bad {
        Some(k) => Err(AuditFailure::Read(LedgerError::Corrupt(format!(
            "key {k:?}"
        )))),
        None => Ok(out),
    }
}

pub(super) fn compare_maps<
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
        stored_equal(name(&id), what, stored_map.get(&id), recomputed.get(&id))?;
    }
    Ok(())
}
