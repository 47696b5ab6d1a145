//! Referrals: each member's referral code and link; a referee named with a code when it joins;
//! both members' bonuses once the referee's first qualifying earn comes within the window.
//!
//! Refused: a programme that takes no referrals, an unknown code, a member referring itself (or
//! a member merged into it), a referrer and referee of one household (the same household pool,
//! or the same phone or email in their profiles), a referee that has earned already or joined
//! longer ago than the window, a referee referred before, a referrer at its cap. Each bonus is a
//! grant keyed by the referee (`referral:{referee}:referrer`, `...:referee`), so a sweep run
//! twice, or by two gateways, pays once; each names the referral it comes from.

use super::{grant, invalid, now_ms, reg, require_member, tx_id};
use crate::engagement::codes;
use crate::engagement::model::ReferralPolicy;
use crate::ops::error::{Kind, OpError};
use crate::ops::Ops;
use ledger::core::state::{MemberState, Standing};
use ledger::core::transfers::PoolLink;
use ledger::keys::gateway::engagement::{
    REFERRAL, REFERRAL_BY_REFERRER, REFERRAL_CODE, REFERRAL_OWNER, REFERRAL_PENDING,
    REFERRAL_POLICY,
};
use ledger::{GrantKind, MemberId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The referral policy as stored, with who set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReferralPolicyRecord {
    /// The policy.
    pub policy: ReferralPolicy,
    /// Version, from 1 (0: never set).
    pub version: u32,
    /// Who set it.
    pub author: String,
    /// Why.
    pub reason: String,
}

/// A referral's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReferralStatus {
    /// Waiting for the referee's qualifying earn.
    Pending,
    /// Both bonuses granted.
    Rewarded,
    /// The window passed with no qualifying earn.
    Lapsed,
}

/// A referral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReferralRecord {
    /// The member referred.
    pub referee_id: u64,
    /// The member who referred it.
    pub referrer_id: u64,
    /// The code used.
    pub code: String,
    /// When the referral was recorded (ms since the Unix epoch).
    pub referred_at_ms: i64,
    /// The end of the window for the qualifying earn.
    pub window_ends_at_ms: i64,
    /// Status.
    pub status: ReferralStatus,
    /// Points for each, as the policy said when the referral was made.
    pub referrer_points: i64,
    /// See `referrer_points`.
    pub referee_points: i64,
    /// The qualifying earn (decimal string).
    pub qualifying_transaction_id: Option<String>,
    /// The referrer's bonus.
    pub referrer_transaction_id: Option<String>,
    /// The referee's bonus.
    pub referee_transaction_id: Option<String>,
}

/// The referral policy in force (the default, disabled, until set). Blocking.
pub fn policy(ops: &Ops) -> Result<ReferralPolicyRecord, OpError> {
    Ok(ops
        .registry
        .eng_get(REFERRAL_POLICY, &[])
        .map_err(reg)?
        .unwrap_or(ReferralPolicyRecord {
            policy: ReferralPolicy::default(),
            version: 0,
            author: String::new(),
            reason: String::new(),
        }))
}

/// Sets the referral policy. Referrals already made keep the points they were made under.
/// Blocking.
pub fn set_policy(
    ops: &Ops,
    p: ReferralPolicy,
    author: &str,
    reason: &str,
) -> Result<ReferralPolicyRecord, OpError> {
    p.check().map_err(invalid)?;
    crate::engagement::text("reason", reason, 500).map_err(invalid)?;
    super::require_partners(ops, p.funding.partner_id)?;
    ops.registry
        .engage(&mut |t| {
            let old: Option<ReferralPolicyRecord> = t.get(REFERRAL_POLICY, &[])?;
            let rec = ReferralPolicyRecord {
                policy: p.clone(),
                version: old.map_or(1, |o| o.version + 1),
                author: author.into(),
                reason: reason.into(),
            };
            t.put(REFERRAL_POLICY, &[], &rec);
            Ok(Ok(rec))
        })
        .map_err(reg)?
}

/// Member `m`'s referral code (made on first asking) and link. Blocking.
pub fn code_of(ops: &Ops, m: MemberId) -> Result<(String, String), OpError> {
    require_member(ops, m)?;
    let key = m.0.to_be_bytes();
    let code = ops
        .registry
        .engage(&mut |t| {
            if let Some(c) = t.get::<String>(REFERRAL_CODE, &key)? {
                return Ok(Ok::<_, OpError>(c));
            }
            loop {
                let c = codes::normalise(&codes::new_code(2)).expect("a new code normalises");
                if t.get::<u64>(REFERRAL_OWNER, c.as_bytes())?.is_none() {
                    t.put(REFERRAL_CODE, &key, &c);
                    t.put(REFERRAL_OWNER, c.as_bytes(), &m.0);
                    return Ok(Ok(c));
                }
            }
        })
        .map_err(reg)??;
    let shown = codes::display(&code);
    let link = format!("{}{shown}", policy(ops)?.policy.link_base);
    Ok((shown, link))
}

/// The household a member belongs to: its pool's owner, if it is in a pool.
fn household(s: &MemberState, m: MemberId) -> Option<MemberId> {
    match s.extras.as_deref().map(|x| &x.pool) {
        Some(PoolLink::Owner(_)) => Some(m),
        Some(PoolLink::Member(o)) => Some(*o),
        _ => None,
    }
}

/// Whether two members' profiles share a phone or an email.
fn same_contact(ops: &Ops, a: MemberId, b: MemberId) -> Result<bool, OpError> {
    let (Some(pa), Some(pb)) = (
        ops.registry.profile(a).map_err(reg)?,
        ops.registry.profile(b).map_err(reg)?,
    ) else {
        return Ok(false);
    };
    let same = |x: &Option<String>, y: &Option<String>| matches!((x, y), (Some(x), Some(y)) if x.trim().eq_ignore_ascii_case(y.trim()));
    Ok(same(&pa.phone, &pb.phone) || same(&pa.email, &pb.email))
}

/// Records that `referee` was referred with `code`. Blocking. Returns the referral and whether
/// it answers a retry.
pub fn refer(ops: &Ops, referee: MemberId, code: &str) -> Result<(ReferralRecord, bool), OpError> {
    let refuse = |why: &str| Err(OpError::new(Kind::ReferralRefused, why.to_string()));
    let p = policy(ops)?.policy;
    let ee = require_member(ops, referee)?;
    if !p.enabled {
        return refuse("the programme takes no referrals");
    }
    let Some(c) = codes::normalise(code) else {
        return refuse("no such referral code");
    };
    let Some(referrer) = ops
        .registry
        .eng_get::<u64>(REFERRAL_OWNER, c.as_bytes())
        .map_err(reg)?
        .map(MemberId)
    else {
        return refuse("no such referral code");
    };
    if let Some(prev) = ops
        .registry
        .eng_get::<ReferralRecord>(REFERRAL, &referee.0.to_be_bytes())
        .map_err(reg)?
    {
        if prev.referrer_id == referrer.0 {
            return Ok((prev, true));
        }
        return refuse("the member was referred already");
    }
    let er = require_member(ops, referrer)?;
    if referrer == referee || ee.standing() == Standing::Merged(referrer) {
        return refuse("a member cannot refer itself");
    }
    if er.standing() != Standing::Active || ee.standing() != Standing::Active {
        return refuse("both members must be active");
    }
    let same_pool =
        household(&er, referrer).is_some() && household(&er, referrer) == household(&ee, referee);
    if same_pool || same_contact(ops, referrer, referee)? {
        return refuse("the referrer and the referee are one household");
    }
    if ee.earned_at != 0 {
        return refuse("the referee has earned already");
    }
    let now = now_ms();
    let window_ms = i64::from(p.window_days) * 86_400_000;
    if now - ee.enrolled.0 > window_ms {
        return refuse("the referee joined longer ago than the referral window");
    }
    let rec = ReferralRecord {
        referee_id: referee.0,
        referrer_id: referrer.0,
        code: codes::display(&c),
        referred_at_ms: now,
        window_ends_at_ms: ee.enrolled.0 + window_ms,
        status: ReferralStatus::Pending,
        referrer_points: p.referrer_points,
        referee_points: p.referee_points,
        qualifying_transaction_id: None,
        referrer_transaction_id: None,
        referee_transaction_id: None,
    };
    ops.registry
        .engage(&mut |t| {
            let ee_key = referee.0.to_be_bytes();
            if let Some(prev) = t.get::<ReferralRecord>(REFERRAL, &ee_key)? {
                return Ok(if prev.referrer_id == referrer.0 {
                    Ok((prev, true))
                } else {
                    Err(OpError::new(
                        Kind::ReferralRefused,
                        "the member was referred already",
                    ))
                });
            }
            // The referrer's count is one record, read with a conflict: two referrals racing
            // for the last place under the cap cannot both commit.
            let er_key = referrer.0.to_be_bytes();
            let made: u32 = t.get(REFERRAL_BY_REFERRER, &er_key)?.unwrap_or(0);
            t.put(REFERRAL_BY_REFERRER, &er_key, &(made + 1));
            if p.referrer_cap.is_some_and(|cap| made >= cap) {
                return Ok(Err(OpError::new(
                    Kind::ReferralRefused,
                    "the referrer has made as many referrals as it may",
                )));
            }
            let mut by = referrer.0.to_be_bytes().to_vec();
            by.extend_from_slice(&ee_key);
            t.put(REFERRAL, &ee_key, &rec);
            t.put(REFERRAL_BY_REFERRER, &by, &());
            t.put(REFERRAL_PENDING, &ee_key, &());
            Ok(Ok((rec.clone(), false)))
        })
        .map_err(reg)?
}

/// The referral that brought member `m` in, if any. Blocking.
pub fn referral_of(ops: &Ops, m: MemberId) -> Result<Option<ReferralRecord>, OpError> {
    ops.registry
        .eng_get(REFERRAL, &m.0.to_be_bytes())
        .map_err(reg)
}

/// The referrals member `m` made. Blocking.
pub fn referrals_by(ops: &Ops, m: MemberId) -> Result<Vec<ReferralRecord>, OpError> {
    require_member(ops, m)?;
    let rows = ops
        .registry
        .eng_scan::<serde_json::Value>(REFERRAL_BY_REFERRER, &m.0.to_be_bytes(), None, 100_000)
        .map_err(reg)?;
    let mut out = Vec::with_capacity(rows.len());
    // The 8-byte body is the referrer's count; each referral is `referrer ++ referee`.
    for (body, _) in rows.into_iter().filter(|(b, _)| b.len() == 16) {
        if let Some(r) = ops.registry.eng_get(REFERRAL, &body[8..16]).map_err(reg)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// The referee's earns in its window, oldest first: (transaction, partner-issued points).
fn earns_in_window(ops: &Ops, r: &ReferralRecord) -> Result<Vec<(ledger::TxId, i64)>, OpError> {
    let page = ops
        .ledger
        .statement(MemberId(r.referee_id), None, ledger::STATEMENT_PAGE_MAX)?;
    let mut out: Vec<(ledger::TxId, i64)> = Vec::new();
    for e in page.entries.iter().filter(|e| e.kind == "earn") {
        if e.at.0 > r.window_ends_at_ms {
            continue;
        }
        if let Some(tx) = ops.ledger.transaction(e.tx)? {
            if let ledger::TxKind::Earn { points, .. } = tx.kind {
                out.push((e.tx, points.0));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Pending referrals one sweep looks at: the next after where the last left off.
const SWEEP_MAX: usize = 1_000;

/// Moves pending referrals on: bonuses for those whose referee qualified, lapsed for those
/// whose window passed, [`SWEEP_MAX`] at a time, each sweep after the last. Blocking. Returns
/// how many it moved.
pub fn sweep(ops: &Ops, now: i64) -> Result<usize, OpError> {
    let p = policy(ops)?.policy;
    let pending = ops.referral_sweep.page(ops, REFERRAL_PENDING, SWEEP_MAX)?;
    let mut moved = 0;
    for body in pending {
        let Some(mut r) = ops
            .registry
            .eng_get::<ReferralRecord>(REFERRAL, &body)
            .map_err(reg)?
        else {
            continue;
        };
        let qualifying = earns_in_window(ops, &r)?
            .into_iter()
            .find(|(_, pts)| *pts >= p.min_earn_points);
        match qualifying {
            Some((tx, _)) => {
                r.qualifying_transaction_id = Some(tx.0.to_string());
                reward(ops, &mut r, &p)?;
                r.status = ReferralStatus::Rewarded;
            }
            None if now > r.window_ends_at_ms => r.status = ReferralStatus::Lapsed,
            None => continue,
        }
        ops.registry
            .engage(&mut |t| {
                t.put(REFERRAL, &body, &r);
                t.clear(REFERRAL_PENDING, &body);
                Ok(Ok::<_, OpError>(()))
            })
            .map_err(reg)??;
        moved += 1;
    }
    Ok(moved)
}

/// Grants both bonuses of referral `r` (each once, by its key).
fn reward(ops: &Ops, r: &mut ReferralRecord, p: &ReferralPolicy) -> Result<(), OpError> {
    let id = r.referee_id;
    if r.referrer_points > 0 {
        let note = format!("referred member {id}");
        let g = grant(
            ops,
            format!("referral:{id}:referrer"),
            MemberId(r.referrer_id),
            r.referrer_points,
            p.funding,
            (GrantKind::Referral, id, note),
        )?;
        r.referrer_transaction_id = Some(tx_id(&g));
    }
    if r.referee_points > 0 {
        let note = format!("referred by member {}", r.referrer_id);
        let g = grant(
            ops,
            format!("referral:{id}:referee"),
            MemberId(id),
            r.referee_points,
            p.funding,
            (GrantKind::Referral, id, note),
        )?;
        r.referee_transaction_id = Some(tx_id(&g));
    }
    Ok(())
}
