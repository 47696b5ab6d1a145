//! Recovery: the derived state as the projector last stored it, with its watermarks. The
//! single path's open brings it forward with the journal after them (see `single::open`).

use crate::codec::{self, MemberPage};
use crate::core::model::Policy;
use crate::core::programme::Counter;
use crate::core::state::{Balance, HoldState, Map, State};
use crate::core::types::{Contract, MemberId};
use crate::error::LedgerError;
use crate::keys;
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
    /// The batch each member's page covers (its record of changes, for the members in it).
    pub member_stamps: Map<MemberId, u64>,
    /// The pages with a record of changes stored beside them, and its members.
    pub page_changes: Vec<(u64, Vec<MemberId>)>,
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
    let mut member_stamps = Map::default();
    let mut page_throughs = Map::default();
    let mut page_changes = Vec::new();
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
    // The whole copies first, then the records of changes over them.
    each(keys::MEMBER_PAGE, &mut |k, v| {
        let page = keys::parse_member_page(k)
            .ok_or_else(|| LedgerError::Corrupt("member page key".into()))?;
        let p: MemberPage = codec::decode("member page", v)?;
        page_throughs.insert(page, p.through);
        load_page(&mut state, &mut member_stamps, page, p)?;
        Ok(())
    })?;
    each(keys::MEMBER_PAGE_CHANGES, &mut |k, v| {
        let page = keys::parse_member_page_changes(k)
            .ok_or_else(|| LedgerError::Corrupt("member page changes key".into()))?;
        let p: MemberPage = codec::decode("member page changes", v)?;
        if let Some(whole) = page_throughs.get(&page).filter(|w| **w >= p.through) {
            return Err(LedgerError::Corrupt(format!(
                "member page {page}'s changes are as of batch {}, its whole copy as of {whole}",
                p.through
            )));
        }
        page_changes.push((page, p.members.iter().map(|(m, _)| *m).collect()));
        load_page(&mut state, &mut member_stamps, page, p)?;
        Ok(())
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
        member_stamps,
        page_changes,
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

/// Puts a stored page's members (a whole copy, or a record of changes over it) into `state`,
/// each stamped with the page's batch.
fn load_page(
    state: &mut State,
    member_stamps: &mut Map<MemberId, u64>,
    page: u64,
    p: MemberPage,
) -> Result<(), LedgerError> {
    for (m, s) in p.members {
        if keys::page_of(m) != page {
            return Err(LedgerError::Corrupt(format!(
                "member page {page} holds member {}",
                m.0
            )));
        }
        member_stamps.insert(m, p.through);
        state.members.insert(m, s);
    }
    Ok(())
}
