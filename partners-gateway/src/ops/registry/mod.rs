//! The gateway's own records: partners, API keys, rate tables, operator tokens and the links from
//! a partner's member references (card numbers, frequent-flyer numbers) to coalition members.
//!
//! They live in the ledger's store under the `G` prefix (see `docs/keyspace.md`), written with a
//! durable commit before the change is acknowledged. Partners, keys, rates and operators are few
//! and are kept in memory; member links can run to millions and are read from the store.
//!
//! Every read-check-write (member id allocation, links, rate table numbering) is one store
//! transaction, so gateways sharing a FoundationDB cluster cannot allocate the same id or link
//! one reference twice. Gateways on a shared store also [`Registry::refresh`] their in-memory
//! view every few seconds and read an unknown key id through to the store, so a key created on
//! one gateway works on every gateway at once, and a revocation reaches them all within the
//! refresh interval.
//!
//! Secrets at rest: a partner key's secret is never stored. It is derived on demand as
//! HMAC-SHA256(master key, key id), where the master key lives outside the store (a file only the
//! gateway can read). Operator tokens are random and stored as their SHA-256.

use crate::programme::rates::RateTable;
use hmac::{Hmac, Mac};
use ledger::store::{
    prefix_end, Durability, Engine, Snapshot, Store, StoreError, Txn, TxnBody, TxnStore, WriteSet,
};
use ledger::{MemberId, PartnerId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use utoipa::ToSchema;

use ledger::keys::gateway::{
    key as key1, KEY, LINK, LINK_BACK, LINK_CODE, NEXT_MEMBER, NEXT_RATE, OPERATOR, PARTNER, RATE,
};
use ledger::keys::GATEWAY as PREFIX;

mod audience;
mod engagement;
mod keys;
mod master_key;
mod members;
mod nonces;
mod notify;
mod operators;
mod partners;
mod profiles;
mod programme;
mod rates;
mod segments;
mod vault;
mod web;
mod webhooks;

pub use engagement::EngTxn;
pub use keys::{random_hex, KeyRecord, KeyScope};
pub use master_key::{create_master_key, load_master_key, write_private};
pub use members::{
    LinkCode, LinkRefused, LINK_CODE_LEN, LINK_CODE_TTL_MS, MEMBER_REFERENCE_LEN_MAX,
};
pub use nonces::{NonceBatch, NONCE_BATCH_MAX};
pub use notify::{
    BroadcastRecord, BroadcastText, Job, JobSource, NotifyCursor, NotifySettings, ProviderRecord,
    SendRecord, TemplateRecord,
};
pub use operators::{operator_id, OperatorRecord, Role};
pub use partners::PartnerRecord;
pub use profiles::{ErasureRecord, ProfileAudit};
pub use programme::{Compiled as CompiledProgramme, Language, OnClose, ProgrammeSettings};
pub use segments::SegmentRecord;
pub use vault::KeyVault;
pub use web::{CodeRecord, SessionRecord, SessionWho};
pub use webhooks::{DeliveryRecord, WebhookCursor, WebhookRecord, LOG_KEPT};

/// Attempts of a registry transaction before it fails as contended.
const TXN_ATTEMPTS: u32 = 20;

#[derive(Default)]
struct Inner {
    partners: BTreeMap<u32, PartnerRecord>,
    keys: HashMap<String, Arc<KeyRecord>>,
    rates: BTreeMap<u32, Vec<Arc<RateTable>>>,
    operators: HashMap<[u8; 32], OperatorRecord>,
    programme: programme::Programme,
}

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record did not decode.
    #[error("corrupt registry record: {0}")]
    Corrupt(String),
    /// The member reference is linked to a different member.
    #[error("reference {reference} is already linked to another member")]
    ReferenceTaken {
        /// The reference.
        reference: String,
    },
}

/// The registry: in-memory view plus durable writes.
pub struct Registry {
    store: Engine,
    master: [u8; 32],
    /// Members' data keys, which their profiles are sealed under.
    vault: KeyVault,
    inner: RwLock<Inner>,
    /// Serialises this process's writers of cached records, so memory follows the store.
    write: Mutex<()>,
    /// Partner references to members, as read or made here. A link never changes once made,
    /// so an entry never goes stale; the cache is bounded, and a miss reads the store.
    links: quick_cache::sync::Cache<(u32, String), u64>,
    /// Each member's reference at a partner (its back link), as made or read here: capture,
    /// void and reversal answer with it without a store read. Trusted only while `links`
    /// still names the member by it (a merge or unlink elsewhere ends that).
    backs: quick_cache::sync::Cache<(u32, u64), Arc<str>>,
    /// Member ids this gateway reserved and has not handed out yet: enrolments take ids from
    /// here, so gateways do not all read and write one counter per enrolment.
    ids: Mutex<std::ops::Range<u64>>,
    /// Each key's HMAC-SHA256 state keyed by its secret, made on a key's first signed request:
    /// a secret is a function of the master key and the key id, so an entry never goes stale.
    macs: RwLock<HashMap<String, Hmac<Sha256>>>,
}

/// Member ids a gateway reserves at a time. Ids left when it stops are never used: ids are
/// unique, not dense.
const MEMBER_ID_BLOCK: u64 = 100;

/// Links the cache keeps unless configured (`links_in_memory`; about 100 bytes each).
pub const LINKS_IN_MEMORY_DEFAULT: usize = 1_000_000;

/// Back links the cache keeps: the members lately linked or answered for.
const BACKS_CACHED: usize = 200_000;

impl Registry {
    /// Loads every cached registry record from `store`, keeping up to
    /// [`LINKS_IN_MEMORY_DEFAULT`] member links in memory.
    pub fn open(
        store: Engine,
        master: [u8; 32],
        vault: KeyVault,
    ) -> Result<Registry, RegistryError> {
        Registry::open_keeping(store, master, vault, LINKS_IN_MEMORY_DEFAULT)
    }

    /// [`Registry::open`], keeping up to `links` member links in memory: a partner's reference
    /// not among them is read from the store on each request that names it.
    pub fn open_keeping(
        store: Engine,
        master: [u8; 32],
        vault: KeyVault,
        links: usize,
    ) -> Result<Registry, RegistryError> {
        let inner = load_all(&store)?;
        Ok(Registry {
            store,
            master,
            vault,
            inner: RwLock::new(inner),
            write: Mutex::new(()),
            links: quick_cache::sync::Cache::new(links.max(1)),
            backs: quick_cache::sync::Cache::new(BACKS_CACHED),
            ids: Mutex::new(0..0),
            macs: RwLock::new(HashMap::new()),
        })
    }

    /// Reloads partners, keys, rate tables and operators from the store: what other gateways
    /// on a shared store changed becomes visible here.
    pub fn refresh(&self) -> Result<(), RegistryError> {
        let _w = self.write.lock().expect("registry write lock");
        let inner = load_all(&self.store)?;
        *self.inner.write().expect("registry lock") = inner;
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().expect("registry lock")
    }

    fn commit(&self, ws: WriteSet) -> Result<(), RegistryError> {
        self.store.commit(ws, Durability::Sync)?;
        Ok(())
    }

    /// Runs `body` as one store transaction (serialisable reads, durable commit).
    fn transact<T>(&self, body: &mut TxnBody<'_, T, RegistryError>) -> Result<T, RegistryError> {
        Ok(self.store.transact(TXN_ATTEMPTS, body)?.1)
    }
}

/// Loads the cached families (partners, keys, rate tables, operators).
fn load_all(store: &Engine) -> Result<Inner, RegistryError> {
    let mut inner = Inner::default();
    let snap = store.snapshot()?;
    let mut failure = None;
    for kind in [PARTNER, KEY, RATE, OPERATOR]
        .into_iter()
        .chain(programme::FAMILIES)
    {
        let begin = [PREFIX, kind];
        snap.scan(&begin, &prefix_end(&begin), &mut |k, v| {
            if let Err(e) = load_record(&mut inner, k, v) {
                failure = Some(e);
                return false;
            }
            true
        })?;
        if let Some(e) = failure.take() {
            return Err(e);
        }
    }
    inner.programme.rebuild();
    Ok(inner)
}

fn load_record(inner: &mut Inner, k: &[u8], v: &[u8]) -> Result<(), RegistryError> {
    let body = &k[2.min(k.len())..];
    match k.get(1).copied() {
        Some(PARTNER) => {
            let r: PartnerRecord = unjson(v)?;
            inner.partners.insert(r.id, r);
        }
        Some(KEY) => {
            let r: KeyRecord = unjson(v)?;
            inner.keys.insert(r.key_id.clone(), Arc::new(r));
        }
        Some(RATE) => {
            let t: RateTable = unjson(v)?;
            let partner = u32::from_be_bytes(
                body.get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| RegistryError::Corrupt("rate key".into()))?,
            );
            // Keys sort by version, so each partner's list stays in version order.
            inner.rates.entry(partner).or_default().push(Arc::new(t));
        }
        Some(OPERATOR) => {
            let hash: [u8; 32] = body
                .try_into()
                .map_err(|_| RegistryError::Corrupt("operator key".into()))?;
            inner.operators.insert(hash, unjson(v)?);
        }
        Some(kind) if programme::FAMILIES.contains(&kind) => inner.programme.load(kind, body, v)?,
        _ => {}
    }
    Ok(())
}

fn be_u32(v: &[u8]) -> Result<u32, RegistryError> {
    v.try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| RegistryError::Corrupt("expected a 4-byte counter".into()))
}

fn be_u64(v: &[u8]) -> Result<u64, RegistryError> {
    Ok(u64::from_be_bytes(v.try_into().map_err(|_| {
        RegistryError::Corrupt("expected an 8-byte integer".into())
    })?))
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("registry records always encode")
}

fn unjson<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(v).map_err(|e| RegistryError::Corrupt(e.to_string()))
}

/// Two registries on one store in `dir`, as two gateways on one cluster (for tests).
#[cfg(test)]
pub(crate) fn two_on_one_store(dir: &std::path::Path) -> (Registry, Registry) {
    let store = Engine::Embedded(ledger::store::EmbeddedStore::open(dir).expect("store"));
    let master = [7u8; 32];
    (
        Registry::open(store.clone(), master, KeyVault::Store).expect("registry a"),
        Registry::open(store, master, KeyVault::Store).expect("registry b"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::store::EmbeddedStore;

    fn two(dir: &std::path::Path) -> (Registry, Registry) {
        two_on_one_store(dir)
    }

    #[test]
    fn gateways_sharing_a_store_learn_each_others_nonces_and_old_batches_are_cleared() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = two(dir.path());
        let batch = |at_ms, hashes: Vec<u128>| NonceBatch { at_ms, hashes };
        a.write_nonces(1, 0, &batch(1_000, vec![11, 12]))
            .expect("write");
        a.write_nonces(1, 1, &batch(5_000, vec![13]))
            .expect("write");
        b.write_nonces(2, 0, &batch(5_000, vec![21]))
            .expect("write");
        // Gateway 2 reads gateway 1's batches within the window, not its own.
        let seen = b.read_nonces(2, 0, &HashMap::new()).expect("read");
        let got: Vec<(u64, u64, Vec<u128>)> =
            seen.into_iter().map(|(g, s, b)| (g, s, b.hashes)).collect();
        assert_eq!(got, vec![(1, 0, vec![11, 12]), (1, 1, vec![13])]);
        // Only what is new since the last read, and only within the window.
        let after: HashMap<u64, u64> = [(1, 0)].into();
        let seen = b.read_nonces(2, 0, &after).expect("read");
        assert_eq!(seen.len(), 1);
        assert!(b
            .read_nonces(2, 2_000, &HashMap::new())
            .expect("read")
            .iter()
            .all(|x| x.2.at_ms >= 2_000));
        assert_eq!(a.forget_nonces(2_000).expect("forget"), 1);
        let left = a.read_nonces(0, 0, &HashMap::new()).expect("read");
        assert_eq!(left.len(), 2, "the batch of 1,000 ms is gone");
    }

    #[test]
    fn a_members_reference_in_memory_is_the_one_the_store_holds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = two(dir.path());
        let p = PartnerId(1);
        let same = |r: &Registry, m: MemberId| {
            let cached = r.reference_cached(p, m);
            let stored = r.reference_of(p, m).expect("read");
            assert!(
                cached.is_none() || cached == stored,
                "{m:?}: memory {cached:?}, store {stored:?}"
            );
            cached
        };
        a.put_partner(PartnerRecord {
            id: p.0,
            name: "Airline".into(),
            requests_per_second: 100,
            burst: 100,
        })
        .expect("partner");
        let (m, created) = a.link(p, "R-1", None).expect("link");
        assert!(created);
        assert_eq!(same(&a, m).as_deref(), Some("R-1"));
        // Another gateway knows it only once it has read it.
        assert_eq!(b.reference_cached(p, m), None);
        assert_eq!(b.reference_of(p, m).expect("read").as_deref(), Some("R-1"));
        assert_eq!(b.reference_cached(p, m).as_deref(), Some("R-1"));
        // A second reference for the member becomes its back link.
        assert_eq!(a.link(p, "R-2", Some(m)).expect("link"), (m, true));
        assert_eq!(same(&a, m).as_deref(), Some("R-2"));
        // Linking the same reference again changes nothing.
        assert_eq!(a.link(p, "R-2", Some(m)).expect("link"), (m, false));
        assert_eq!(same(&a, m).as_deref(), Some("R-2"));
        // A merge moves the absorbed member's references: memory forgets both sides.
        let (gone, _) = a.link(p, "S-1", None).expect("link");
        assert_eq!(same(&a, gone).as_deref(), Some("S-1"));
        assert_eq!(
            a.merge_links(gone, m).expect("merge"),
            vec![(p, "S-1".into())]
        );
        assert_eq!(a.reference_cached(p, gone), None);
        assert_eq!(a.reference_of(p, gone).expect("read"), None);
        same(&a, m);
        // An erasure unlinks every reference, and memory with it.
        let links = a.links_of(m).expect("links");
        assert!(!links.is_empty());
        let record = ErasureRecord {
            at_ms: 1,
            operator: "ops".into(),
            reason: "asked".into(),
            key_destroyed: false,
            profile_deleted: false,
            links_removed: 0,
            closed_by: None,
        };
        a.erase_member(m, record, &links).expect("erase");
        assert_eq!(a.reference_cached(p, m), None);
        assert_eq!(a.reference_of(p, m).expect("read"), None);
    }

    #[test]
    fn an_operator_token_works_until_it_expires_or_is_revoked() {
        let rec = |expires, revoked| OperatorRecord {
            name: "ops".into(),
            role: Role::Operator,
            created_at_ms: 0,
            expires_at_ms: expires,
            revoked_at_ms: revoked,
        };
        assert!(rec(None, None).is_live(i64::MAX));
        assert!(rec(Some(100), None).is_live(99));
        assert!(!rec(Some(100), None).is_live(100));
        assert!(!rec(None, Some(5)).is_live(0));
    }

    #[test]
    fn a_link_code_links_its_member_once_and_only_before_it_expires() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, _) = two(dir.path());
        let (p, now) = (PartnerId(2), 1_000_000);
        let (code, rec) = a
            .issue_link_code(MemberId(7), now, "ops-anna", "asked at the desk")
            .expect("issue");
        assert_eq!(code.len(), LINK_CODE_LEN);
        assert_eq!(rec.expires_at_ms, now + LINK_CODE_TTL_MS);
        let link = |reference: &str, m: u64, code: Option<&str>, at: i64| {
            a.link_with_code(p, reference, MemberId(m), code, at)
                .expect("store")
        };
        assert_eq!(link("R1", 7, None, now), Err(LinkRefused::UnknownCode));
        assert_eq!(
            link("R1", 8, Some(&code), now),
            Err(LinkRefused::OtherMember)
        );
        let late = now + LINK_CODE_TTL_MS + 1;
        assert_eq!(link("R1", 7, Some(&code), late), Err(LinkRefused::Expired));
        // Dashes and case are forgiven.
        let typed = format!("{}-{}", &code[..5].to_lowercase(), &code[5..]);
        assert_eq!(link("R1", 7, Some(&typed), now), Ok((MemberId(7), true)));
        assert_eq!(link("R2", 7, Some(&code), now), Err(LinkRefused::Used));
        assert_eq!(
            link("R1", 7, None, now),
            Ok((MemberId(7), false)),
            "a retry"
        );
        assert_eq!(a.member_of(p, "R1").expect("read"), Some(MemberId(7)));
    }

    #[test]
    fn gateways_sharing_a_store_never_allocate_one_id_or_link_one_reference_twice() {
        let dir = tempfile::tempdir().expect("temp dir");
        never_twice(two(dir.path()));
    }

    /// The same through FoundationDB's faults: conflicts, and commits whose result is unknown
    /// (committed or not). A link whose own earlier attempt committed still answers as new.
    #[test]
    fn gateways_never_allocate_one_id_or_link_one_reference_twice_through_faults() {
        use ledger::store::faults::{Faults, FaultyStore};
        let dir = tempfile::tempdir().expect("temp dir");
        let faults = Faults {
            conflict: 100,
            unknown_committed: 100,
            unknown_lost: 100,
            ..Faults::default()
        };
        let store = FaultyStore::new(EmbeddedStore::open(dir.path()).expect("store"), faults, 3);
        let injected = store.injected();
        let engine = Engine::Faulty(store);
        let master = [7u8; 32];
        never_twice((
            Registry::open(engine.clone(), master, KeyVault::Store).expect("registry a"),
            Registry::open(engine, master, KeyVault::Store).expect("registry b"),
        ));
        assert!(
            injected
                .unknown_committed
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0,
            "{injected:?}"
        );
    }

    fn never_twice((a, b): (Registry, Registry)) {
        let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let r = if i % 2 == 0 { a.clone() } else { b.clone() };
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for n in 0..50 {
                        mine.push(r.allocate_member().expect("allocate").0);
                        // Every thread links the same references: one wins each.
                        let (m, new) = r
                            .link(PartnerId(1), &format!("CARD-{n}"), None)
                            .expect("link");
                        mine.push(m.0);
                        if new {
                            mine.push(u64::MAX - n);
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut ids = Vec::new();
        let mut wins = Vec::new();
        for t in threads {
            for id in t.join().expect("thread") {
                if id > u64::MAX - 100 {
                    wins.push(u64::MAX - id);
                } else {
                    ids.push(id);
                }
            }
        }
        wins.sort_unstable();
        assert_eq!(
            wins,
            (0..50).collect::<Vec<_>>(),
            "each reference linked once"
        );
        let allocated: std::collections::HashSet<u64> = ids.iter().copied().collect();
        // 400 direct allocations plus one per reference.
        assert_eq!(allocated.len(), 400 + 50, "no id handed out twice");
        for n in 0..50 {
            let reference = format!("CARD-{n}");
            assert_eq!(
                a.member_of(PartnerId(1), &reference).expect("read"),
                b.member_of(PartnerId(1), &reference).expect("read")
            );
            // Read once, the link is in memory: the request path needs no store read.
            assert_eq!(
                b.member_cached(PartnerId(1), &reference),
                b.member_of(PartnerId(1), &reference).expect("read")
            );
        }
        assert_eq!(b.member_cached(PartnerId(1), "CARD-unknown"), None);
    }

    #[test]
    fn links_made_here_are_in_memory_and_another_gateway_reads_them_all_in_at_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = two(dir.path());
        // More than two pages of the warm-up, on two partners, the same references on each.
        let n = 25_000u64;
        for partner in [1u32, 2] {
            let links: Vec<(String, MemberId)> = (0..n)
                .map(|i| (format!("CARD-{i}"), MemberId(i * 10 + u64::from(partner))))
                .collect();
            a.link_many(PartnerId(partner), &links).expect("links");
        }
        let (single, created) = a.link(PartnerId(3), "ONE", None).expect("link");
        assert!(created);
        // The gateway that made them answers from memory.
        assert_eq!(a.member_cached(PartnerId(2), "CARD-7"), Some(MemberId(72)));
        assert_eq!(a.member_cached(PartnerId(3), "ONE"), Some(single));
        // The other has read none yet; a stop asked before the first page reads nothing.
        assert_eq!(b.member_cached(PartnerId(1), "CARD-7"), None);
        assert_eq!(b.warm_links(&|| false).expect("warm"), 0);
        assert_eq!(b.member_cached(PartnerId(1), "CARD-7"), None);
        assert_eq!(b.warm_links(&|| true).expect("warm"), 2 * n as usize + 1);
        for i in (0..n).step_by(997).chain([n - 1]) {
            for partner in [1u32, 2] {
                assert_eq!(
                    b.member_cached(PartnerId(partner), &format!("CARD-{i}")),
                    Some(MemberId(i * 10 + u64::from(partner))),
                    "partner {partner}, CARD-{i}"
                );
            }
        }
        assert_eq!(b.member_cached(PartnerId(3), "ONE"), Some(single));
        assert_eq!(b.member_cached(PartnerId(3), "CARD-1"), None);

        // A gateway keeping fewer links holds no more than it keeps, and still answers every
        // reference: those it does not hold, from the store.
        let store = a.store.clone();
        drop((a, b));
        let kept = 30_000;
        let c = Registry::open_keeping(store, [7u8; 32], KeyVault::Store, kept).expect("c");
        assert!(c.warm_links(&|| true).expect("warm") >= kept);
        assert!(c.links.len() <= kept, "{} links held", c.links.len());
        let held = (0..n)
            .flat_map(|i| [1u32, 2].map(|p| (p, format!("CARD-{i}"))))
            .filter(|(p, r)| c.member_cached(PartnerId(*p), r).is_some())
            .count();
        assert!(held <= kept, "{held} links answered from memory");
        for i in (0..n).step_by(499).chain([n - 1]) {
            for partner in [1u32, 2] {
                assert_eq!(
                    c.member_of(PartnerId(partner), &format!("CARD-{i}"))
                        .expect("read"),
                    Some(MemberId(i * 10 + u64::from(partner))),
                    "partner {partner}, CARD-{i}"
                );
            }
        }
    }

    #[test]
    fn a_keys_kept_signing_state_signs_as_its_secret_does_and_only_known_keys_are_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, _) = two(dir.path());
        let (one, secret_one) = a
            .create_key(PartnerId(4), vec![KeyScope::Earn])
            .expect("create key");
        let (two, secret_two) = a
            .create_key(PartnerId(5), vec![KeyScope::Earn])
            .expect("create key");
        let with_secret = |secret: &str, msg: &[u8]| {
            let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
            m.update(msg);
            m.finalize().into_bytes()
        };
        for round in 0..2 {
            for (key, secret) in [(&one, &secret_one), (&two, &secret_two)] {
                let mut m = a.signing_mac(key);
                m.update(b"POST\n/v1/earn");
                assert_eq!(
                    m.finalize().into_bytes(),
                    with_secret(secret, b"POST\n/v1/earn"),
                    "round {round}: a copy of the kept state, never one already used"
                );
            }
        }
        assert_eq!(a.macs.read().expect("macs").len(), 2);
        let stranger = KeyRecord {
            key_id: "pk_not_in_the_registry".into(),
            ..one.clone()
        };
        let mut m = a.signing_mac(&stranger);
        m.update(b"x");
        assert_eq!(
            m.finalize().into_bytes(),
            with_secret(&a.secret_of(&stranger.key_id), b"x")
        );
        assert_eq!(
            a.macs.read().expect("macs").len(),
            2,
            "a key the registry does not hold is not kept"
        );
    }

    #[test]
    fn a_key_made_on_one_gateway_signs_on_another_after_a_refresh_and_so_does_its_revocation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = two(dir.path());
        let (key, secret) = a
            .create_key(PartnerId(4), vec![KeyScope::Read])
            .expect("create key");
        // A request's lookup is in memory only: the key signs on b from its next refresh.
        assert!(
            b.key(&key.key_id).is_none(),
            "no store read before a signature"
        );
        let seen = b
            .key_stored(&key.key_id)
            .expect("an operator's read goes to the store");
        assert_eq!(seen.partner, 4);
        assert_eq!(
            b.secret_of(&key.key_id),
            secret,
            "same master key, same secret"
        );
        a.revoke_key(PartnerId(4), &key.key_id).expect("revoke");
        assert!(b.key(&key.key_id).expect("cached").revoked_at_ms.is_none());
        b.refresh().expect("refresh");
        assert!(b.key(&key.key_id).expect("key").revoked_at_ms.is_some());
        assert!(b.key("pk_unknown").is_none());
    }

    #[test]
    fn rate_table_versions_are_numbered_across_gateways() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = two(dir.path());
        let table: RateTable =
            serde_json::from_value(serde_json::json!({"version": 0, "effective_from_ms": 0, "unit": "EUR", "earn_points_per_unit": "1", "burn_points_per_unit": null}))
                .expect("table");
        assert_eq!(
            a.add_rate_table(PartnerId(2), table.clone())
                .expect("v1")
                .version,
            1
        );
        assert_eq!(
            b.add_rate_table(PartnerId(2), table.clone())
                .expect("v2")
                .version,
            2
        );
        assert_eq!(
            a.add_rate_table(PartnerId(2), table).expect("v3").version,
            3
        );
        a.refresh().expect("refresh");
        let versions: Vec<u32> = a
            .rate_tables(PartnerId(2))
            .iter()
            .map(|t| t.version)
            .collect();
        assert_eq!(versions, vec![1, 2, 3]);
    }
}
