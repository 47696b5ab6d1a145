//! The rewards catalogue and its vouchers.
//!
//! A redemption is two registry transactions around one ledger command: the voucher is written
//! `pending` under the caller's reference (so a retry finds the same code), the ledger burns the
//! reward's price at the fulfilling partner under its stock and limits (`Command::Redeem`), and
//! the voucher becomes `issued`. A refusal deletes the pending voucher; a crash leaves it
//! pending, and the retry, a look-up or the sweep settles it from the ledger's answer.
//!
//! The fulfilling partner redeems a voucher at its till in one transaction, so of two tills
//! presenting the same code at once exactly one succeeds. Expired vouchers are swept: their
//! burn reversed (points back to the member, the partner's reimbursement taken back) or kept,
//! as the reward said when the voucher was issued.

use super::{check_reference, invalid, now_ms, reg, require_member, tx_id};
use crate::engagement::codes;
use crate::engagement::model::{in_window, OnExpiry, RewardSpec};
use crate::ops::error::{Kind, OpError};
use crate::ops::registry::EngTxn;
use crate::ops::{Ops, PartnerCaller};
use ledger::keys::gateway::engagement::{
    MEMBER_VOUCHER, REWARD, VOUCHER, VOUCHER_BY_REFERENCE, VOUCHER_EXPIRY,
};
use ledger::{Command, IdemKey, LedgerError, MemberId, PartnerId, Points, RewardClaim, RewardId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A reward as stored: its definition, version and who made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RewardRecord {
    /// Its id.
    pub id: u32,
    /// The definition.
    pub spec: RewardSpec,
    /// Version, from 1.
    pub version: u32,
    /// Who made this version.
    pub author: String,
    /// Why.
    pub reason: String,
    /// When (ms since the Unix epoch).
    pub updated_at_ms: i64,
}

/// A voucher's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VoucherStatus {
    /// Written before its burn; becomes issued once the burn is durable.
    Pending,
    /// Valid: the fulfilling partner may redeem it.
    Issued,
    /// Redeemed at the partner's till.
    Redeemed,
    /// Expired unused; its points stayed redeemed.
    Expired,
    /// Expired unused; its burn was reversed, the points returned.
    Returned,
}

/// A voucher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VoucherRecord {
    /// The code (16 characters of Crockford base32, shown in groups of four).
    pub code: String,
    /// The reward.
    pub reward_id: u32,
    /// The reward's version when issued.
    pub reward_version: u32,
    /// The member.
    pub member_id: u64,
    /// The fulfilling partner.
    pub partner_id: u32,
    /// Points burned.
    pub points: i64,
    /// The reference it was issued under.
    pub reference: String,
    /// Status.
    pub status: VoucherStatus,
    /// The burn (decimal string), once issued.
    pub transaction_id: Option<String>,
    /// When issued (ms since the Unix epoch).
    pub issued_at_ms: Option<i64>,
    /// When it expires unused.
    pub expires_at_ms: Option<i64>,
    /// What its expiry does with the points.
    pub on_expiry: OnExpiry,
    /// When redeemed.
    pub redeemed_at_ms: Option<i64>,
    /// The partner's reference for the redemption (its till receipt).
    pub redeemed_reference: Option<String>,
    /// The branch that redeemed it.
    pub branch: Option<String>,
    /// The reversal that returned its points, if it expired so.
    pub returned_transaction_id: Option<String>,
    /// When the redemption was asked for (ms since the Unix epoch).
    #[serde(default)]
    pub requested_at_ms: i64,
}

/// How long a pending voucher may wait for its burn: far longer than any command lives (the
/// request timeout, a FoundationDB transaction's 5 s). Older, with no burn under its reference,
/// the redemption was never made, and the voucher is dropped.
const PENDING_MS_MAX: i64 = 5 * 60_000;

fn reward_key(id: u32) -> [u8; 4] {
    id.to_be_bytes()
}

fn member_voucher_key(m: u64, code: &str) -> Vec<u8> {
    let mut k = m.to_be_bytes().to_vec();
    k.extend_from_slice(code.as_bytes());
    k
}

fn expiry_key(at: i64, code: &str) -> Vec<u8> {
    let mut k = (at.max(0) as u64).to_be_bytes().to_vec();
    k.extend_from_slice(code.as_bytes());
    k
}

/// Defines reward `id` (0: a new one) with `spec`, by `author` for `reason`. A partner may
/// define only rewards it fulfils. Blocking.
pub fn put_reward(
    ops: &Ops,
    id: u32,
    spec: RewardSpec,
    author: &str,
    reason: &str,
    partner: Option<PartnerId>,
) -> Result<RewardRecord, OpError> {
    spec.check().map_err(invalid)?;
    crate::engagement::text("reason", reason, 500).map_err(invalid)?;
    if let Some(p) = partner {
        if p.0 != spec.partner_id {
            return Err(OpError::new(
                Kind::ForbiddenScope,
                "a partner defines only rewards it fulfils itself",
            ));
        }
    }
    super::require_partners(ops, [spec.partner_id])?;
    for s in &spec.segments {
        super::super::audience::segment(ops, *s)?;
    }
    let now = now_ms();
    ops.registry
        .engage(&mut |t| {
            let (id, version) = if id == 0 {
                (t.next_id(REWARD)? as u32, 1)
            } else {
                match t.get::<RewardRecord>(REWARD, &reward_key(id))? {
                    Some(old) if partner.is_none_or(|p| p.0 == old.spec.partner_id) => {
                        (id, old.version + 1)
                    }
                    _ => return Ok(Err(OpError::new(Kind::NotFound, "no such reward"))),
                }
            };
            let rec = RewardRecord {
                id,
                spec: spec.clone(),
                version,
                author: author.to_string(),
                reason: reason.to_string(),
                updated_at_ms: now,
            };
            t.put(REWARD, &reward_key(id), &rec);
            Ok(Ok(rec))
        })
        .map_err(reg)?
}

/// Reward `id`. Blocking.
pub fn reward(ops: &Ops, id: u32) -> Result<RewardRecord, OpError> {
    ops.registry
        .eng_get(REWARD, &reward_key(id))
        .map_err(reg)?
        .ok_or_else(|| OpError::new(Kind::NotFound, "no such reward"))
}

/// Every reward (a partner: those it fulfils), by id. Blocking.
pub fn rewards(ops: &Ops, partner: Option<PartnerId>) -> Result<Vec<RewardRecord>, OpError> {
    Ok(ops
        .registry
        .eng_scan::<RewardRecord>(REWARD, &[], None, usize::MAX)
        .map_err(reg)?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| partner.is_none_or(|p| p.0 == r.spec.partner_id))
        .collect())
}

/// The rewards member `m` may redeem now: active, in their dates, in its segments and tiers,
/// not out of stock, under its limit. Blocking.
pub fn offered_to(ops: &Ops, m: MemberId) -> Result<Vec<RewardRecord>, OpError> {
    let state = require_member(ops, m)?;
    let now = now_ms();
    let today = crate::ops::audience::today(ops);
    Ok(rewards(ops, None)?
        .into_iter()
        .filter(|r| {
            let s = &r.spec;
            s.active
                && in_window(s.valid_from_ms, s.valid_until_ms, now)
                && (s.tiers.is_empty() || s.tiers.contains(&u32::from(state.tier())))
                && (s.segments.is_empty()
                    || s.segments
                        .iter()
                        .any(|g| ops.audience.in_segment(*g, m, today)))
        })
        .collect())
}

/// Whether the programme offers reward `r` to member `m` now (a draw's prize skips this).
fn check_offered(ops: &Ops, r: &RewardRecord, m: MemberId) -> Result<(), OpError> {
    let s = &r.spec;
    let refuse = |why: &str| Err(OpError::new(Kind::RewardRefused, why.to_string()));
    if !s.active {
        return refuse("the reward is retired");
    }
    if !in_window(s.valid_from_ms, s.valid_until_ms, now_ms()) {
        return refuse("the reward is not offered at this date");
    }
    let today = crate::ops::audience::today(ops);
    if !s.segments.is_empty()
        && !s
            .segments
            .iter()
            .any(|g| ops.audience.in_segment(*g, m, today))
    {
        return refuse("the reward is offered to other segments");
    }
    Ok(())
}

/// How a redemption is asked for.
#[derive(Debug, Clone)]
pub struct Redeem {
    /// The member.
    pub member: MemberId,
    /// The reward.
    pub reward: u32,
    /// The caller's reference (idempotency key).
    pub reference: String,
    /// A draw's prize: the programme's offer rules (dates, segments, tiers) do not apply.
    pub prize: bool,
}

/// The ledger key of a redemption under `reference`.
fn redeem_key(reference: &str) -> IdemKey {
    IdemKey::operator(format!("reward:{reference}"))
}

/// Redeems a reward for a member, issuing its voucher. Blocking. Returns the voucher and
/// whether it answers a retry.
pub fn redeem(ops: &Ops, r: &Redeem) -> Result<(VoucherRecord, bool), OpError> {
    check_reference(&r.reference)?;
    let reward = reward(ops, r.reward)?;
    require_member(ops, r.member)?;
    if !r.prize {
        check_offered(ops, &reward, r.member)?;
    }
    let s = &reward.spec;
    let fresh = ops
        .registry
        .engage(&mut |t| pending(t, &reward, r))
        .map_err(reg)??;
    let (voucher, replayed) = fresh;
    if voucher.status != VoucherStatus::Pending {
        return Ok((voucher, true));
    }
    let claim = RewardClaim {
        reward: RewardId(reward.id),
        version: reward.version,
        stock: s.stock,
        member_max: s.per_member_max,
        tiers: if r.prize { 0 } else { s.tier_bits() },
    };
    let cmd = Command::Redeem {
        key: redeem_key(&r.reference),
        member: r.member,
        partner: PartnerId(voucher.partner_id),
        points: Points(voucher.points),
        claim,
    };
    match ops.ledger.execute_blocking(cmd) {
        Ok(receipt) => {
            let v = settle(ops, &voucher.code, Some(&receipt), &reward.spec)?
                .ok_or_else(|| OpError::new(Kind::Internal, "an issued voucher vanished"))?;
            Ok((v, replayed || receipt.replayed))
        }
        Err(LedgerError::Rejected(why)) => {
            discard(ops, &voucher)?;
            Err(why.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The voucher under `r.reference`: the one a first attempt wrote, or a new pending one.
fn pending(
    t: &mut EngTxn<'_>,
    reward: &RewardRecord,
    r: &Redeem,
) -> Result<Result<(VoucherRecord, bool), OpError>, crate::ops::registry::RegistryError> {
    if let Some(code) = t.get::<String>(VOUCHER_BY_REFERENCE, r.reference.as_bytes())? {
        let Some(v) = t.get::<VoucherRecord>(VOUCHER, code.as_bytes())? else {
            return Ok(Err(OpError::new(
                Kind::Internal,
                "a reference names no voucher",
            )));
        };
        if v.member_id != r.member.0 || v.reward_id != reward.id {
            return Ok(Err(OpError::new(
                Kind::IdempotencyConflict,
                "the reference was used for another member or reward",
            )));
        }
        return Ok(Ok((v, true)));
    }
    let code = codes::normalise(&codes::new_code(4)).expect("a new code normalises");
    let v = VoucherRecord {
        code: code.clone(),
        reward_id: reward.id,
        reward_version: reward.version,
        member_id: r.member.0,
        partner_id: reward.spec.partner_id,
        points: reward.spec.points,
        reference: r.reference.clone(),
        status: VoucherStatus::Pending,
        transaction_id: None,
        issued_at_ms: None,
        expires_at_ms: None,
        on_expiry: reward.spec.on_expiry,
        redeemed_at_ms: None,
        redeemed_reference: None,
        branch: None,
        returned_transaction_id: None,
        requested_at_ms: super::now_ms(),
    };
    t.put(VOUCHER, code.as_bytes(), &v);
    t.put(VOUCHER_BY_REFERENCE, r.reference.as_bytes(), &code);
    t.put(MEMBER_VOUCHER, &member_voucher_key(r.member.0, &code), &());
    Ok(Ok((v, false)))
}

/// Deletes a pending voucher whose burn the ledger refused, so a retry is judged afresh.
fn discard(ops: &Ops, v: &VoucherRecord) -> Result<(), OpError> {
    ops.registry
        .engage(&mut |t| {
            t.clear(VOUCHER, v.code.as_bytes());
            t.clear(VOUCHER_BY_REFERENCE, v.reference.as_bytes());
            t.clear(MEMBER_VOUCHER, &member_voucher_key(v.member_id, &v.code));
            Ok(Ok::<_, OpError>(()))
        })
        .map_err(reg)?
}

/// Marks pending voucher `code` issued by `receipt` (or, with none, by what the ledger holds
/// under its reference). With no burn yet it stays pending, or, older than
/// [`PENDING_MS_MAX`], is dropped (`None`).
fn settle(
    ops: &Ops,
    code: &str,
    receipt: Option<&ledger::Receipt>,
    spec: &RewardSpec,
) -> Result<Option<VoucherRecord>, OpError> {
    let Some(v) = voucher(ops, code)? else {
        return Ok(None);
    };
    if v.status != VoucherStatus::Pending {
        return Ok(Some(v));
    }
    let tx = match receipt {
        Some(r) => Some(r.tx.as_ref().clone()),
        None => ops.ledger.transaction_by_key(&redeem_key(&v.reference))?,
    };
    let Some(tx) = tx else {
        if now_ms() - v.requested_at_ms > PENDING_MS_MAX {
            discard(ops, &v)?;
            return Ok(None);
        }
        return Ok(Some(v));
    };
    let at = tx.at.0;
    let expires = spec.voucher_expiry(at);
    let id = tx.id.0.to_string();
    ops.registry
        .engage(&mut |t| {
            let Some(mut cur) = t.get::<VoucherRecord>(VOUCHER, code.as_bytes())? else {
                return Ok(Err(OpError::new(Kind::NotFound, "no such voucher")));
            };
            if cur.status == VoucherStatus::Pending {
                cur.status = VoucherStatus::Issued;
                cur.transaction_id = Some(id.clone());
                cur.issued_at_ms = Some(at);
                cur.expires_at_ms = Some(expires);
                t.put(VOUCHER, code.as_bytes(), &cur);
                t.put(VOUCHER_EXPIRY, &expiry_key(expires, code), &());
            }
            Ok(Ok(Some(cur)))
        })
        .map_err(reg)?
}

/// Voucher `v` as it stands: one left pending by a crash between its burn and its issue is
/// settled from the ledger first (issued, still pending, or dropped: `None`), so whoever reads
/// it sees it as soon as it is the member's.
fn settled(ops: &Ops, v: VoucherRecord) -> Result<Option<VoucherRecord>, OpError> {
    if v.status != VoucherStatus::Pending {
        return Ok(Some(v));
    }
    settle(ops, &v.code, None, &reward(ops, v.reward_id)?.spec)
}

/// Voucher `code` as typed (normalised), if it exists. Blocking.
pub fn voucher(ops: &Ops, code: &str) -> Result<Option<VoucherRecord>, OpError> {
    let Some(c) = codes::normalise(code) else {
        return Ok(None);
    };
    ops.registry.eng_get(VOUCHER, c.as_bytes()).map_err(reg)
}

/// Voucher `code` as its fulfilling partner sees it: a pending one settled first; another
/// partner's answers as unknown. Blocking.
pub fn partner_voucher(
    ops: &Ops,
    caller: &PartnerCaller,
    code: &str,
) -> Result<VoucherRecord, OpError> {
    let unknown = || OpError::new(Kind::NotFound, "no such voucher");
    let v = voucher(ops, code)?
        .filter(|v| v.partner_id == caller.partner.0)
        .ok_or_else(unknown)?;
    let v = settled(ops, v)?.ok_or_else(unknown)?;
    if v.status == VoucherStatus::Pending {
        return Err(unknown());
    }
    Ok(v)
}

/// A till's redemption of a voucher.
#[derive(Debug, Clone)]
pub struct TillRedemption {
    /// The code as typed.
    pub code: String,
    /// The till's reference (a retry with the same one answers as a replay).
    pub reference: String,
    /// The branch.
    pub branch: Option<String>,
}

/// Redeems a voucher at its fulfilling partner's till, exactly once. Blocking. Returns the
/// voucher and whether it answers a retry.
pub fn redeem_at_till(
    ops: &Ops,
    caller: &PartnerCaller,
    r: &TillRedemption,
) -> Result<(VoucherRecord, bool), OpError> {
    check_reference(&r.reference)?;
    if let Some(b) = &r.branch {
        crate::engagement::text("branch", b, 32).map_err(invalid)?;
    }
    let v = partner_voucher(ops, caller, &r.code)?;
    let now = now_ms();
    ops.registry
        .engage(&mut |t| {
            let Some(mut cur) = t.get::<VoucherRecord>(VOUCHER, v.code.as_bytes())? else {
                return Ok(Err(OpError::new(Kind::NotFound, "no such voucher")));
            };
            let refuse = |why: &str| Ok(Err(OpError::new(Kind::VoucherRefused, why.to_string())));
            match cur.status {
                VoucherStatus::Redeemed
                    if cur.redeemed_reference.as_deref() == Some(r.reference.as_str()) =>
                {
                    return Ok(Ok((cur, true)))
                }
                VoucherStatus::Redeemed => return refuse("the voucher was already redeemed"),
                VoucherStatus::Expired | VoucherStatus::Returned => {
                    return refuse("the voucher has expired")
                }
                VoucherStatus::Pending | VoucherStatus::Issued => {}
            }
            if cur.expires_at_ms.is_some_and(|e| now >= e) {
                return refuse("the voucher has expired");
            }
            if let Some(e) = cur.expires_at_ms {
                t.clear(VOUCHER_EXPIRY, &expiry_key(e, &cur.code));
            }
            cur.status = VoucherStatus::Redeemed;
            cur.redeemed_at_ms = Some(now);
            cur.redeemed_reference = Some(r.reference.clone());
            cur.branch = r.branch.clone();
            t.put(VOUCHER, cur.code.as_bytes(), &cur);
            Ok(Ok((cur, false)))
        })
        .map_err(reg)?
}

/// Member `m`'s vouchers, in code order. Blocking.
pub fn member_vouchers(ops: &Ops, m: MemberId) -> Result<Vec<VoucherRecord>, OpError> {
    require_member(ops, m)?;
    let codes = ops
        .registry
        .eng_scan::<()>(MEMBER_VOUCHER, &m.0.to_be_bytes(), None, 10_000)
        .map_err(reg)?;
    let mut out = Vec::with_capacity(codes.len());
    for (body, ()) in codes {
        let code = String::from_utf8_lossy(&body[8..]).into_owned();
        let Some(v) = ops
            .registry
            .eng_get::<VoucherRecord>(VOUCHER, code.as_bytes())
            .map_err(reg)?
        else {
            continue;
        };
        out.extend(settled(ops, v)?);
    }
    Ok(out)
}

/// Most vouchers one sweep moves.
const SWEEP_MAX: usize = 1_000;

/// Expires the issued vouchers whose date has come: a `return` voucher's burn is reversed
/// (key `voucher-return:{code}`), a `forfeit` one is marked expired. Blocking. Returns how
/// many it moved.
pub fn sweep(ops: &Ops, now: i64) -> Result<usize, OpError> {
    let due = ops
        .registry
        .eng_scan::<()>(VOUCHER_EXPIRY, &[], None, SWEEP_MAX)
        .map_err(reg)?;
    let mut moved = 0;
    for (body, ()) in due {
        let at = i64::from_be_bytes(body[..8].try_into().expect("8-byte time"));
        if at > now {
            break;
        }
        let code = String::from_utf8_lossy(&body[8..]).into_owned();
        let Some(v) = ops
            .registry
            .eng_get::<VoucherRecord>(VOUCHER, code.as_bytes())
            .map_err(reg)?
        else {
            continue;
        };
        let returned = match (v.status, v.on_expiry, &v.transaction_id) {
            (VoucherStatus::Issued, OnExpiry::Return, Some(tx)) => {
                let original = ledger::TxId(tx.parse().map_err(|_| {
                    OpError::new(Kind::Internal, "a voucher's transaction id is not a number")
                })?);
                let r = ops.ledger.execute_blocking(Command::Reverse {
                    key: IdemKey::operator(format!("voucher-return:{code}")),
                    original,
                    points: None,
                })?;
                Some(tx_id(&r))
            }
            _ => None,
        };
        ops.registry
            .engage(&mut |t| {
                t.clear(VOUCHER_EXPIRY, &body);
                if let Some(mut cur) = t.get::<VoucherRecord>(VOUCHER, code.as_bytes())? {
                    if cur.status == VoucherStatus::Issued {
                        cur.status = if returned.is_some() {
                            VoucherStatus::Returned
                        } else {
                            VoucherStatus::Expired
                        };
                        cur.returned_transaction_id = returned.clone();
                        t.put(VOUCHER, code.as_bytes(), &cur);
                    }
                }
                Ok(Ok::<_, OpError>(()))
            })
            .map_err(reg)??;
        moved += 1;
    }
    Ok(moved)
}
