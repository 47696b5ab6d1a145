//! Derived records both write paths keep in the store: holds, reversal totals, contracts,
//! member records and statement lines (the cluster path's), written from a [`State`] for what a
//! run of transactions [`Touched`].

use crate::codec::{self, MemberRecord};
use crate::core::model::{Transaction, TxKind};
use crate::core::programme::CounterKey;
use crate::core::state::{counters_touched, State};
use crate::core::types::{AccountId, MemberId, PartnerId, Timestamp, TxId};
use crate::keys;
use crate::store::WriteSet;
use std::collections::{BTreeSet, HashMap};

/// What a run of transactions touched, so derived records are written once per flush.
#[derive(Default)]
pub(crate) struct Touched {
    pub members: BTreeSet<MemberId>,
    pub accounts: BTreeSet<AccountId>,
    pub holds: BTreeSet<TxId>,
    pub reversed: BTreeSet<TxId>,
    pub contracts: BTreeSet<PartnerId>,
    pub counters: BTreeSet<CounterKey>,
    pub expiry_policy: bool,
    pub transfer_policy: bool,
    pub tier_policy: bool,
    /// An accounting period was closed.
    pub closed_period: bool,
    /// Policy versions set, as (key, record).
    pub policy_versions: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What the cluster path knows of the records it rewrites: every hold's timeout, and how many
/// parts each member's record had when read.
pub(crate) struct ClusterRecords {
    /// Hold id to timeout, for every hold seen.
    pub hold_expiry: HashMap<TxId, Timestamp>,
    /// Parts after the `M` value of each member record read.
    pub parts: HashMap<crate::core::types::MemberId, u16>,
}

/// Writes the member, hold, reversal and contract records `t` names, as they stand in `s`.
/// Member records are the cluster path's, written with the transaction that changes them (the
/// single committer's projector writes member pages instead and names no members). With
/// `timeouts` (the cluster path: hold id to expiry, for every hold seen), the hold timeout
/// index is kept too.
pub(crate) fn write_records(
    w: &mut WriteSet,
    s: &State,
    t: &Touched,
    cluster: Option<&ClusterRecords>,
) {
    let timeouts = cluster.map(|c| &c.hold_expiry);
    for m in &t.members {
        let state = s
            .members
            .get(m)
            .expect("a touched member exists in the state")
            .clone();
        let mut values = MemberRecord { through: 0, state }.to_values().into_iter();
        w.set_owned(
            keys::member(*m),
            values.next().expect("a record has a value"),
        );
        let mut part = 0u16;
        for v in values {
            part += 1;
            w.set_owned(keys::member_part(*m, part), v);
        }
        // Parts a longer earlier record had.
        let before = cluster.map_or(0, |c| c.parts.get(m).copied().unwrap_or(0));
        for stale in part + 1..=before {
            w.clear(&keys::member_part(*m, stale));
        }
    }
    for h in &t.holds {
        match s.holds.get(h) {
            Some(state) => {
                w.set_owned(keys::hold(*h), codec::encode(state));
                if timeouts.is_some() {
                    w.set_owned(keys::hold_timeout(state.expires_at, *h), Vec::new());
                }
            }
            None => {
                w.clear(&keys::hold(*h));
                if let Some(at) = timeouts.and_then(|t| t.get(h)) {
                    w.clear(&keys::hold_timeout(*at, *h));
                }
            }
        }
    }
    for r in &t.reversed {
        w.set_owned(keys::reversed(*r), codec::encode(&s.reversed[r]));
    }
    for p in &t.contracts {
        w.set_owned(keys::contract(*p), codec::encode(&s.contracts[p]));
    }
    for k in &t.counters {
        w.set_owned(keys::counter(k), codec::encode(&s.counters[k]));
    }
    if let Some(p) = s.expiry.as_ref().filter(|_| t.expiry_policy) {
        w.set_owned(keys::expiry_policy(), codec::encode(&p.stored()));
    }
    if let Some(p) = s.transfers.as_ref().filter(|_| t.transfer_policy) {
        w.set_owned(keys::transfer_policy(), codec::encode(p));
    }
    if let Some(p) = s.tiers.as_ref().filter(|_| t.tier_policy) {
        w.set_owned(keys::tier_policy(), codec::encode(&p.policy));
    }
    if t.closed_period {
        w.set_owned(
            keys::closed_period(),
            codec::encode_closed_period(s.closed_through),
        );
    }
    for (k, v) in &t.policy_versions {
        w.set_owned(k.clone(), v.clone());
    }
}

impl Touched {
    /// Notes the records other than members that `tx` changes: accounts, holds, reversal totals,
    /// contracts. (Members are the caller's: the projector writes them late, the cluster path
    /// with every change.)
    pub fn note_records(&mut self, tx: &Transaction) {
        for p in &tx.postings {
            if !p.account.is_member() {
                self.accounts.insert(p.account);
            }
        }
        match &tx.kind {
            TxKind::Hold { .. } => {
                self.holds.insert(tx.id);
            }
            TxKind::Burn { hold: Some(h), .. } | TxKind::Void { hold: h, .. } => {
                self.holds.insert(*h);
            }
            TxKind::Reversal { original, .. } => {
                self.reversed.insert(*original);
            }
            TxKind::Merged(m) => self.holds.extend(m.holds.iter().copied()),
            TxKind::ContractSet(c) => {
                self.contracts.insert(c.partner);
            }
            TxKind::ExpiryPolicySet(_) => self.expiry_policy = true,
            TxKind::TransferPolicySet(_) => self.transfer_policy = true,
            TxKind::TierPolicySet(_) => self.tier_policy = true,
            TxKind::PeriodClosed { .. } => self.closed_period = true,
            _ => {}
        }
        if let Some(v) = crate::core::programme::PolicyVersion::of(tx) {
            self.policy_versions.push((
                keys::policy_version(v.policy.tag(), v.tx),
                codec::encode(&v),
            ));
        }
        self.counters.extend(counters_touched(tx));
    }
}
