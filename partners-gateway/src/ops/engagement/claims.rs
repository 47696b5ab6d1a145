//! Members' claims and complaints: filed with the partner they concern, resolved by that
//! partner or an operator, each step in the claim's history, the member told of each change
//! (a `claim.updated` message through the notifications), response times per partner.
//!
//! An accepted missing-points claim posts the earn the partner would have posted: priced by the
//! same code, under the partner's own idempotency key, the receipt reference. So a claim and the
//! partner's late posting of the same receipt never both count, in either order: a claim after
//! the posting finds the receipt taken and names the partner's transaction; a posting after the
//! claim answers as a replay (or a conflict, if the amounts differ).

use super::{invalid, now_ms, reg, require_member};
use crate::engagement::claims::{
    in_time, ClaimInput, ClaimKind, ClaimStatus, CLAIM_TEXT_CHARS_MAX,
};
use crate::engagement::within;
use crate::events::Event;
use crate::ops::error::{Kind, OpError};
use crate::ops::partner::{earn_for, post_blocking, Earn};
use crate::ops::Ops;
use ledger::keys::gateway::engagement::{CLAIM, MEMBER_CLAIM, PARTNER_CLAIM};
use ledger::{IdemKey, LedgerError, MemberId, PartnerId, Rejection, TxKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The claims settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimSettings {
    /// Days after a purchase within which its missing points may be claimed.
    #[serde(deserialize_with = "crate::programme::whole")]
    #[schema(minimum = 1, maximum = 365)]
    pub window_days: u32,
}

impl Default for ClaimSettings {
    fn default() -> Self {
        ClaimSettings { window_days: 90 }
    }
}

/// One step of a claim's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimStep {
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// The status it moved to.
    pub status: ClaimStatus,
    /// Who: `operator:{name}`, `partner:{id}`, or `member`.
    pub by: String,
    /// The note given.
    pub note: Option<String>,
}

/// Who credited an accepted missing-points claim's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreditedBy {
    /// The claim's own earn.
    Claim,
    /// The partner's own posting of the receipt, before the claim was accepted.
    Partner,
}

/// A claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimRecord {
    /// Its id.
    pub id: u64,
    /// The member.
    pub member_id: u64,
    /// What the member filed.
    pub input: ClaimInput,
    /// Status.
    pub status: ClaimStatus,
    /// Every step, oldest first.
    pub history: Vec<ClaimStep>,
    /// An accepted missing-points claim's earn (decimal string).
    pub transaction_id: Option<String>,
    /// Who credited it.
    pub credited_by: Option<CreditedBy>,
    /// Whether accepting it has tried to post its earn (tells its own earlier earn from the
    /// partner's when the receipt is found posted).
    #[serde(default)]
    pub credit_attempted: bool,
    /// When filed (ms since the Unix epoch).
    pub filed_at_ms: i64,
    /// When decided.
    pub decided_at_ms: Option<i64>,
}

fn claim_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn member_key(m: u64, id: u64) -> Vec<u8> {
    let mut k = m.to_be_bytes().to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn partner_key(p: u32, id: u64) -> Vec<u8> {
    let mut k = p.to_be_bytes().to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The claims settings in force. Blocking.
pub fn settings(ops: &Ops) -> Result<ClaimSettings, OpError> {
    Ok(ops
        .registry
        .eng_get(CLAIM, &[])
        .map_err(reg)?
        .unwrap_or_default())
}

/// Sets the claims settings. Blocking.
pub fn set_settings(ops: &Ops, s: ClaimSettings) -> Result<ClaimSettings, OpError> {
    within("window_days", s.window_days, 1, 365).map_err(invalid)?;
    ops.registry
        .engage(&mut |t| {
            t.put(CLAIM, &[], &s);
            Ok(Ok::<_, OpError>(s))
        })
        .map_err(reg)?
}

/// Files member `m`'s claim, by `by`. Blocking.
pub fn file(ops: &Ops, m: MemberId, input: ClaimInput, by: &str) -> Result<ClaimRecord, OpError> {
    input.check().map_err(invalid)?;
    super::require_partners(ops, [input.partner_id])?;
    require_member(ops, m)?;
    if let Some(a) = &input.amount {
        a.parse()?;
    }
    let refuse = |why: String| Err(OpError::new(Kind::ClaimRefused, why));
    if let Some(d) = input
        .date()
        .map_err(|e| OpError::new(Kind::ClaimRefused, e.0))?
    {
        let today = crate::ops::audience::today(ops);
        let window = settings(ops)?.window_days;
        if !in_time(d, today, window) {
            return refuse(format!(
                "a purchase is claimed within {window} days of it, and not before it"
            ));
        }
    }
    let now = now_ms();
    let rec = ops
        .registry
        .engage(&mut |t| {
            let id = t.next_id(CLAIM)?;
            let rec = ClaimRecord {
                id,
                member_id: m.0,
                input: input.clone(),
                status: ClaimStatus::Open,
                history: vec![ClaimStep {
                    at_ms: now,
                    status: ClaimStatus::Open,
                    by: by.into(),
                    note: None,
                }],
                transaction_id: None,
                credited_by: None,
                credit_attempted: false,
                filed_at_ms: now,
                decided_at_ms: None,
            };
            t.put(CLAIM, &claim_key(id), &rec);
            t.put(MEMBER_CLAIM, &member_key(m.0, id), &());
            t.put(PARTNER_CLAIM, &partner_key(input.partner_id, id), &());
            Ok(Ok::<_, OpError>(rec))
        })
        .map_err(reg)??;
    tell(ops, &rec)?;
    Ok(rec)
}

/// Claim `id`, as `partner` (when given) may see it: another partner's answers as unknown.
/// Blocking.
pub fn get(ops: &Ops, id: u64, partner: Option<PartnerId>) -> Result<ClaimRecord, OpError> {
    ops.registry
        .eng_get::<ClaimRecord>(CLAIM, &claim_key(id))
        .map_err(reg)?
        .filter(|c| partner.is_none_or(|p| p.0 == c.input.partner_id))
        .ok_or_else(|| OpError::new(Kind::NotFound, "no such claim"))
}

/// Member `m`'s claims, oldest first. Blocking.
pub fn of_member(ops: &Ops, m: MemberId) -> Result<Vec<ClaimRecord>, OpError> {
    require_member(ops, m)?;
    by_index(ops, MEMBER_CLAIM, &m.0.to_be_bytes(), 8)
}

/// Partner `p`'s claims (all, or those in `status`), oldest first, at most `limit`. Blocking.
pub fn of_partner(
    ops: &Ops,
    p: PartnerId,
    status: Option<ClaimStatus>,
    limit: usize,
) -> Result<Vec<ClaimRecord>, OpError> {
    let mut v = by_index(ops, PARTNER_CLAIM, &p.0.to_be_bytes(), 4)?;
    v.retain(|c| status.is_none_or(|s| c.status == s));
    v.truncate(limit);
    Ok(v)
}

fn by_index(
    ops: &Ops,
    family: u8,
    prefix: &[u8],
    skip: usize,
) -> Result<Vec<ClaimRecord>, OpError> {
    let rows = ops
        .registry
        .eng_scan::<()>(family, prefix, None, 100_000)
        .map_err(reg)?;
    let mut out = Vec::with_capacity(rows.len());
    for (body, ()) in rows {
        if let Some(c) = ops
            .registry
            .eng_get(CLAIM, &body[skip..skip + 8])
            .map_err(reg)?
        {
            out.push(c);
        }
    }
    Ok(out)
}

/// A decision on a claim.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The status it moves to.
    pub status: ClaimStatus,
    /// A note for the member (required to reject).
    pub note: Option<String>,
    /// Who: `operator:{name}` or `partner:{id}`.
    pub by: String,
}

/// Moves claim `id` on, as `partner` (its partner) or an operator (`None`). Accepting a
/// missing-points claim posts its earn first. Blocking.
pub fn decide(
    ops: &Ops,
    id: u64,
    partner: Option<PartnerId>,
    d: Decision,
) -> Result<ClaimRecord, OpError> {
    if let Some(n) = &d.note {
        crate::engagement::text("note", n, CLAIM_TEXT_CHARS_MAX).map_err(invalid)?;
    }
    let c = get(ops, id, partner)?;
    let refuse = |why: &str| Err(OpError::new(Kind::ClaimRefused, why.to_string()));
    if !c.status.may_become(d.status) {
        return refuse(&format!(
            "a claim {} cannot become {}",
            name(c.status),
            name(d.status)
        ));
    }
    if d.status == ClaimStatus::Rejected && d.note.is_none() {
        return refuse("a rejection gives the member a note");
    }
    let credit = match (d.status, c.input.kind) {
        (ClaimStatus::Accepted, ClaimKind::MissingPoints) => Some(credit(ops, &c)?),
        _ => None,
    };
    let now = now_ms();
    let rec = ops
        .registry
        .engage(&mut |t| {
            let Some(mut cur) = t.get::<ClaimRecord>(CLAIM, &claim_key(id))? else {
                return Ok(Err(OpError::new(Kind::NotFound, "no such claim")));
            };
            if !cur.status.may_become(d.status) {
                return Ok(Err(OpError::new(
                    Kind::ClaimRefused,
                    "the claim moved meanwhile",
                )));
            }
            cur.status = d.status;
            cur.history.push(ClaimStep {
                at_ms: now,
                status: d.status,
                by: d.by.clone(),
                note: d.note.clone(),
            });
            if d.status.decided() {
                cur.decided_at_ms = Some(now);
            }
            if let Some((tx, by)) = &credit {
                cur.transaction_id = Some(tx.clone());
                cur.credited_by = Some(*by);
            }
            t.put(CLAIM, &claim_key(id), &cur);
            Ok(Ok(cur))
        })
        .map_err(reg)??;
    tell(ops, &rec)?;
    Ok(rec)
}

fn name(s: ClaimStatus) -> &'static str {
    match s {
        ClaimStatus::Open => "open",
        ClaimStatus::InReview => "in review",
        ClaimStatus::Accepted => "accepted",
        ClaimStatus::Rejected => "rejected",
    }
}

/// Posts claim `c`'s earn under the partner's key for its receipt; when the partner posted the
/// receipt already, names that transaction instead (refused if it credited another member).
fn credit(ops: &Ops, c: &ClaimRecord) -> Result<(String, CreditedBy), OpError> {
    let i = &c.input;
    let (Some(reference), Some(amount)) = (&i.receipt_reference, &i.amount) else {
        return Err(OpError::new(
            Kind::Internal,
            "a missing-points claim has its receipt",
        ));
    };
    let partner = PartnerId(i.partner_id);
    let key = IdemKey::partner(partner, reference);
    let earn = Earn {
        reference: reference.clone(),
        member: String::new(),
        amount: amount.clone(),
        branch: i.branch.clone(),
        category: None,
        context: Default::default(),
    };
    let theirs = |tx: ledger::Transaction, by: CreditedBy| match tx.kind {
        TxKind::Earn { member, .. } if member.0 == c.member_id => Ok((tx.id.0.to_string(), by)),
        _ => Err(OpError::new(
            Kind::ClaimRefused,
            "the partner posted this receipt for another member",
        )),
    };
    if let Some(tx) = ops.ledger.transaction_by_key(&key)? {
        // Posted before this claim tried: the partner's; after: this claim's earlier attempt.
        let by = if c.credit_attempted {
            CreditedBy::Claim
        } else {
            CreditedBy::Partner
        };
        return theirs(tx, by);
    }
    let id = c.id;
    ops.registry
        .engage(&mut |t| {
            if let Some(mut cur) = t.get::<ClaimRecord>(CLAIM, &claim_key(id))? {
                cur.credit_attempted = true;
                t.put(CLAIM, &claim_key(id), &cur);
            }
            Ok(Ok::<_, OpError>(()))
        })
        .map_err(reg)??;
    let prepared = earn_for(ops, partner, key.clone(), MemberId(c.member_id), &earn)?;
    match post_blocking(ops, prepared) {
        Ok(r) => theirs(r.tx.as_ref().clone(), CreditedBy::Claim),
        Err(LedgerError::Rejected(Rejection::IdempotencyConflict { .. })) => {
            let tx = ops
                .ledger
                .transaction_by_key(&key)?
                .ok_or_else(|| OpError::new(Kind::Internal, "a taken key names no transaction"))?;
            theirs(tx, CreditedBy::Partner)
        }
        Err(e) => Err(e.into()),
    }
}

/// Tells the member of the claim's status (a `claim.updated` message).
fn tell(ops: &Ops, c: &ClaimRecord) -> Result<(), OpError> {
    let step = c.history.len();
    crate::ops::notify::notify_member(
        ops,
        Event {
            id: format!("claim-{}-{step}", c.id),
            kind: "claim.updated".into(),
            occurred_at_ms: c.history.last().map_or(c.filed_at_ms, |s| s.at_ms),
            transaction_id: c.transaction_id.clone().unwrap_or_default(),
            member_id: Some(c.member_id),
            member: None,
            partner_id: Some(c.input.partner_id),
            points: None,
            member_balance_after: None,
            detail: Some(format!("claim {} {}", c.id, name(c.status))),
            expires_at_ms: None,
        },
    )?;
    Ok(())
}

/// One partner's claim handling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ResponseTimes {
    /// The partner.
    pub partner_id: u32,
    /// Claims filed in the period.
    pub filed: u64,
    /// Of them, decided.
    pub decided: u64,
    /// Of them, accepted.
    pub accepted: u64,
    /// Still open or in review.
    pub waiting: u64,
    /// Median hours from filing to decision (decided claims), to one decimal.
    pub median_hours: Option<String>,
    /// The 90th percentile.
    pub p90_hours: Option<String>,
    /// The longest.
    pub max_hours: Option<String>,
}

/// Response times per partner over the claims filed in `[from, to)`. Blocking.
pub fn response_times(
    ops: &Ops,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<Vec<ResponseTimes>, OpError> {
    let all = ops
        .registry
        .eng_scan::<serde_json::Value>(CLAIM, &[], None, usize::MAX)
        .map_err(reg)?;
    let mut by: BTreeMap<u32, (ResponseTimes, Vec<i64>)> = BTreeMap::new();
    for (body, v) in all.into_iter().filter(|(b, _)| b.len() == 8) {
        let c: ClaimRecord = serde_json::from_value(v)
            .map_err(|e| OpError::new(Kind::Internal, format!("corrupt claim {body:?}: {e}")))?;
        if !crate::engagement::model::in_window(from_ms, to_ms, c.filed_at_ms) {
            continue;
        }
        let (r, times) = by.entry(c.input.partner_id).or_default();
        r.partner_id = c.input.partner_id;
        r.filed += 1;
        match c.decided_at_ms {
            Some(at) => {
                r.decided += 1;
                r.accepted += u64::from(c.status == ClaimStatus::Accepted);
                times.push(at - c.filed_at_ms);
            }
            None => r.waiting += 1,
        }
    }
    Ok(by
        .into_values()
        .map(|(mut r, mut times)| {
            times.sort_unstable();
            let hours = |ms: i64| {
                (rust_decimal::Decimal::from(ms) / rust_decimal::Decimal::from(3_600_000))
                    .round_dp(1)
                    .to_string()
            };
            let at =
                |q: usize| times.get((times.len() * q / 100).min(times.len().saturating_sub(1)));
            if !times.is_empty() {
                r.median_hours = at(50).map(|t| hours(*t));
                r.p90_hours = at(90).map(|t| hours(*t));
                r.max_hours = times.last().map(|t| hours(*t));
            }
            r
        })
        .collect())
}
