//! Recovery: the derived state as the projector last stored it, with its watermarks. The
//! single path's open brings it forward with the journal after them (see `single::open`).

use crate::codec::{self, MemberPage};
use crate::core::model::Policy;
use crate::core::programme::Counter;
use crate::core::state::{Balance, HoldState, Map, MemberState, State};
use crate::core::types::{Contract, MemberId};
use crate::error::LedgerError;
use crate::keys;
use crate::shared::open::{beside, joined};
use crate::store::Snapshot;

/// A callback over one stored record.
type RecordFn<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), LedgerError> + 'a;

/// Derived state as stored, with its watermarks.
pub(crate) struct Loaded {
    /// Members as of their pages' batches; everything else as of `through`.
    pub state: State,
    /// The projector's watermark.
    pub through: u64,
    /// Every member page covers at least the batches through this one.
    pub members_through: u64,
    /// The batch each member's stored state is as of.
    pub stamps: Stamps,
}

/// The batch each member's stored state is as of, by page: a member's page's record of changes
/// if that holds the member, else the page's whole copy. Kept by page, not by member: over
/// 10,000,000 members a map by member took a tenth of an open's time to fill, one cache miss an
/// insert.
#[derive(Debug, Default)]
pub(crate) struct Stamps {
    /// Each page's whole copy's batch.
    whole: Map<u64, u64>,
    /// Each page's record of changes stored beside its whole copy: its batch, and its members
    /// in order.
    changes: Map<u64, (u64, Vec<MemberId>)>,
}

impl Stamps {
    /// The batch member `m`'s stored state is as of; `None` if no page holds the member.
    /// (A member a page's whole copy does not hold enrolled after it: no batch up to the
    /// copy's names the member, so its stamp is never asked for one.)
    pub fn of(&self, m: MemberId) -> Option<u64> {
        let page = keys::page_of(m);
        if let Some((through, members)) = self.changes.get(&page) {
            if members.binary_search(&m).is_ok() {
                return Some(*through);
            }
        }
        self.whole.get(&page).copied()
    }

    /// The pages with a record of changes stored beside them, and its members.
    pub fn changed_pages(&self) -> impl Iterator<Item = (u64, &[MemberId])> {
        self.changes
            .iter()
            .map(|(p, (_, members))| (*p, members.as_slice()))
    }
}

pub(crate) fn read_seq<Snap: Snapshot>(
    snap: &Snap,
    key: &[u8],
    what: &str,
) -> Result<u64, LedgerError> {
    match snap.get(key)? {
        Some(v) => Ok(u64::from_be_bytes(
            v.as_slice()
                .try_into()
                .map_err(|_| LedgerError::Corrupt(what.into()))?,
        )),
        None => Ok(0),
    }
}

/// Loads the derived state and its watermarks from a snapshot.
pub(crate) fn load_state<Snap: Snapshot>(
    snap: &Snap,
    policy: Policy,
) -> Result<Loaded, LedgerError> {
    let mut state = State::new(policy);
    let through = read_seq(snap, &keys::projected_through(), "watermark")?;
    let members_through = read_seq(snap, &keys::members_through(), "member watermark")?;
    // The members' map at its final size at once, where the store says how many members there
    // were (a hint: more are inserted as usual; a size that cannot be had is not asked for).
    let held = read_seq(snap, &keys::members_held(), "members held")?;
    if let Ok(held) = usize::try_from(held) {
        let _ = state.members.try_reserve(held);
    }
    let mut stamps = Stamps::default();
    let mut failure: Option<LedgerError> = None;
    let mut each = |tag: u8, f: &mut RecordFn<'_>| -> Result<(), LedgerError> {
        snap.scan(&[tag], &[tag + 1], &mut |k, v| match f(k, v) {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        })?;
        match failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    };
    // The members go into their map on a thread of their own, in the order read, while this
    // one reads and decodes the pages after them: over millions of members, each insert is a
    // cache miss, and decoding a page is as long again.
    let mut members = std::mem::take(&mut state.members);
    std::thread::scope(|s| {
        let (pages, read) = std::sync::mpsc::sync_channel::<PageStates>(PAGES_IN_FLIGHT);
        let inserter = beside(s, "ledger-members", move || {
            for page in read {
                members.extend(page);
            }
            members
        })?;
        let scanned = read_pages(&mut each, &mut stamps, &mut |states| {
            // Refused only if the thread panicked: its join resumes the panic.
            let _ = pages.send(states);
        });
        drop(pages);
        state.members = joined(inserter);
        scanned
    })?;
    each(keys::BALANCE, &mut |k, v| {
        let (a, _) = keys::parse_account(&k[1..])
            .ok_or_else(|| LedgerError::Corrupt("balance key".into()))?;
        state
            .accounts
            .insert(a, codec::decode::<Balance>("balance record", v)?);
        Ok(())
    })?;
    each(keys::CONTRACT, &mut |_, v| {
        let c: Contract = codec::decode("contract", v)?;
        state.contracts.insert(c.partner, c);
        Ok(())
    })?;
    each(keys::HOLD, &mut |k, v| {
        let id = keys::parse_tail_tx(k).ok_or_else(|| LedgerError::Corrupt("hold key".into()))?;
        let h: HoldState = codec::decode("hold", v)?;
        state.hold_timeouts.insert((h.expires_at, id));
        state.holds.insert(id, h);
        Ok(())
    })?;
    each(keys::POLICY, &mut |k, v| {
        if k == keys::expiry_policy().as_slice() {
            let p: crate::core::expiry::StoredPolicy = codec::decode("expiry policy", v)?;
            state.expiry = p.policy.in_force(p.since);
        } else if k == keys::closed_period().as_slice() {
            state.closed_through = codec::decode_closed_period(v)?;
        } else if k == keys::transfer_policy().as_slice() {
            state.transfers = Some(codec::decode("transfer policy", v)?);
        } else if k == keys::tier_policy().as_slice() {
            state.tiers = Some(crate::core::tiers::Tiers::new(codec::decode(
                "tier policy",
                v,
            )?));
        }
        Ok(())
    })?;
    each(keys::COUNTER, &mut |k, v| {
        let key =
            keys::parse_counter(k).ok_or_else(|| LedgerError::Corrupt("counter key".into()))?;
        state
            .counters
            .insert(key, codec::decode::<Counter>("programme counter", v)?);
        Ok(())
    })?;
    Ok(Loaded {
        state,
        through,
        members_through,
        stamps,
    })
}

/// Member `m`'s stored state and the batch it is as of: from its page's record of changes if
/// that holds it, else from the page's whole copy.
pub(crate) fn stored_member<Snap: Snapshot>(
    snap: &Snap,
    m: MemberId,
) -> Result<Option<(u64, crate::core::state::MemberState)>, LedgerError> {
    let page = keys::page_of(m);
    for (key, what) in [
        (keys::member_page_changes(page), "member page changes"),
        (keys::member_page(page), "member page"),
    ] {
        if let Some(v) = snap.get(&key)? {
            let p: MemberPage = codec::decode(what, &v)?;
            if let Some((_, s)) = p.members.into_iter().find(|(id, _)| *id == m) {
                return Ok(Some((p.through, s)));
            }
        }
    }
    Ok(None)
}

/// A stored page's members and their states.
type PageStates = Vec<(MemberId, MemberState)>;

/// Pages decoded ahead of the thread that puts their members into the map.
const PAGES_IN_FLIGHT: usize = 16;

/// Reads the member pages with `each`: the whole copies first, then the records of changes
/// over them, each page's members handed to `put` in that order, and stamped.
fn read_pages(
    each: &mut dyn FnMut(u8, &mut RecordFn<'_>) -> Result<(), LedgerError>,
    stamps: &mut Stamps,
    put: &mut dyn FnMut(PageStates),
) -> Result<(), LedgerError> {
    each(keys::MEMBER_PAGE, &mut |k, v| {
        let page = keys::parse_member_page(k)
            .ok_or_else(|| LedgerError::Corrupt("member page key".into()))?;
        let p: MemberPage = codec::decode("member page", v)?;
        stamps.whole.insert(page, p.through);
        put(checked(page, p.members)?);
        Ok(())
    })?;
    each(keys::MEMBER_PAGE_CHANGES, &mut |k, v| {
        let page = keys::parse_member_page_changes(k)
            .ok_or_else(|| LedgerError::Corrupt("member page changes key".into()))?;
        let p: MemberPage = codec::decode("member page changes", v)?;
        if let Some(whole) = stamps.whole.get(&page).filter(|w| **w >= p.through) {
            return Err(LedgerError::Corrupt(format!(
                "member page {page}'s changes are as of batch {}, its whole copy as of {whole}",
                p.through
            )));
        }
        let mut members: Vec<MemberId> = p.members.iter().map(|(m, _)| *m).collect();
        members.sort_unstable();
        stamps.changes.insert(page, (p.through, members));
        put(checked(page, p.members)?);
        Ok(())
    })
}

/// Page `page`'s stored members, once each is found to belong to it.
fn checked(page: u64, members: PageStates) -> Result<PageStates, LedgerError> {
    match members.iter().find(|(m, _)| keys::page_of(*m) != page) {
        Some((m, _)) => Err(LedgerError::Corrupt(format!(
            "member page {page} holds member {}",
            m.0
        ))),
        None => Ok(members),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Policy;
    use crate::core::types::Points;
    use crate::store::{Durability, EmbeddedStore, Store, WriteSet};

    fn state(posted: i64) -> MemberState {
        MemberState {
            posted: Points(posted),
            ..MemberState::default()
        }
    }

    /// A stored page: whether it is a record of changes, its page, its batch, and its members
    /// by id with their points.
    type Stored<'a> = (bool, u64, u64, &'a [(u64, i64)]);

    /// A store holding `pages`.
    fn store(pages: &[Stored<'_>]) -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().expect("dir");
        let store = EmbeddedStore::open(dir.path()).expect("store");
        let mut w = WriteSet::default();
        for (changes, page, through, members) in pages {
            let p = MemberPage {
                through: *through,
                members: members
                    .iter()
                    .map(|(m, points)| (MemberId(*m), state(*points)))
                    .collect(),
            };
            let key = match changes {
                true => keys::member_page_changes(*page),
                false => keys::member_page(*page),
            };
            w.set(&key, &codec::encode(&p));
        }
        store.commit(w, Durability::Sync).expect("commit");
        (dir, store)
    }

    #[test]
    fn each_member_is_stamped_with_the_record_that_holds_it() {
        let per = keys::MEMBERS_PER_PAGE;
        let (_dir, store) = store(&[
            (false, 0, 10, &[(1, 5), (2, 6), (3, 7)]),
            (true, 0, 14, &[(3, 8), (4, 9)]),
            (false, 2, 12, &[(2 * per, 1)]),
            (true, 3, 13, &[(3 * per + 5, 2)]),
        ]);
        let loaded =
            load_state(&store.snapshot().expect("snapshot"), Policy::default()).expect("load");
        let stamp = |m: u64| loaded.stamps.of(MemberId(m));
        // The whole copy's batch, the record of changes' for those it holds again or adds.
        assert_eq!((stamp(1), stamp(2)), (Some(10), Some(10)));
        assert_eq!((stamp(3), stamp(4)), (Some(14), Some(14)));
        assert_eq!(stamp(2 * per), Some(12));
        assert_eq!(stamp(3 * per + 5), Some(13));
        // No page holds these.
        assert_eq!((stamp(per), stamp(5 * per)), (None, None));
        // The states: the record of changes over the whole copy.
        let posted = |m: u64| loaded.state.members.get(&MemberId(m)).map(|s| s.posted.0);
        assert_eq!(
            [1, 2, 3, 4, 2 * per, 3 * per + 5].map(posted),
            [Some(5), Some(6), Some(8), Some(9), Some(1), Some(2)]
        );
        assert_eq!(loaded.state.members.len(), 6);
        let mut changed: Vec<(u64, Vec<MemberId>)> = loaded
            .stamps
            .changed_pages()
            .map(|(p, m)| (p, m.to_vec()))
            .collect();
        changed.sort();
        assert_eq!(
            changed,
            vec![
                (0, vec![MemberId(3), MemberId(4)]),
                (3, vec![MemberId(3 * per + 5)])
            ]
        );
    }

    #[test]
    fn a_page_holding_a_member_of_another_is_refused() {
        let per = keys::MEMBERS_PER_PAGE;
        for changes in [false, true] {
            let (_dir, store) = store(&[
                (false, 0, 10, &[(1, 5)]),
                (changes, 1, 11, &[(per, 1), (per + 1, 2), (3 * per, 3)]),
            ]);
            let err = load_state(&store.snapshot().expect("snapshot"), Policy::default())
                .err()
                .expect("refused");
            assert!(
                matches!(&err, LedgerError::Corrupt(why) if why.contains(&format!("member page 1 holds member {}", 3 * per))),
                "{err}"
            );
        }
    }

    #[test]
    fn changes_not_newer_than_their_whole_copy_are_refused() {
        let (_dir, store) = store(&[(false, 0, 10, &[(1, 5)]), (true, 0, 10, &[(1, 6)])]);
        let err = load_state(&store.snapshot().expect("snapshot"), Policy::default())
            .err()
            .expect("refused");
        assert!(
            matches!(&err, LedgerError::Corrupt(why) if why.contains("changes are as of batch 10")),
            "{err}"
        );
    }
}
