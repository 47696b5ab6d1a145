//! Draws: entries by points held at the close or bought by burning points, prizes of points or
//! rewards, and winners anyone can recompute.
//!
//! A draw is created with the operator's commitment, `hex(SHA-256(seed))`, so the seed is fixed
//! before anyone knows the entries. At its closing time the entries are frozen and published
//! (`member_id,entries`, with the list's SHA-256 on the draw); the operator then reveals the
//! seed, the gateway checks it against the commitment, computes the winners with
//! `engagement::draw::winners` and posts each prize as a ledger transaction keyed by the draw
//! and the prize (so a repeated reveal pays nothing twice). `partners-gateway draw-verify`
//! recomputes the winners from the published list and the seed.

use super::{grant, invalid, now_ms, reg, require_member};
use crate::engagement::draw::{self, Entry};
use crate::engagement::model::{check_commitment, DrawSpec, EntryRule};
use crate::ops::error::{Kind, OpError};
use crate::ops::Ops;
use ledger::keys::gateway::engagement::{DRAW, DRAW_ENTRY, DRAW_PURCHASE};
use ledger::{Command, GrantKind, IdemKey, LedgerError, MemberId, PartnerId, Points};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// A draw's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DrawStatus {
    /// Taking entries.
    Open,
    /// Entries frozen and published; waiting for the seed.
    Closed,
    /// Winners drawn and prizes posted.
    Drawn,
}

/// A winner and its prize.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Winner {
    /// The prize's place (0: first prize).
    pub prize: u32,
    /// The member.
    pub member_id: u64,
    /// The prize's grant (decimal string).
    pub transaction_id: Option<String>,
    /// A reward prize's voucher.
    pub voucher_code: Option<String>,
    /// Why the prize was not paid (the winner is no longer active), if it was not.
    pub unpaid: Option<String>,
}

/// A draw as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DrawRecord {
    /// Its id.
    pub id: u32,
    /// The definition (with the commitment).
    pub spec: DrawSpec,
    /// Status.
    pub status: DrawStatus,
    /// Members with entries, once closed.
    pub members: u64,
    /// Entries in all, once closed.
    pub entries: u64,
    /// `hex(SHA-256)` of the published entry list, once closed.
    pub entry_list_sha256: Option<String>,
    /// The revealed seed (hex), once drawn.
    pub seed: Option<String>,
    /// The winners, in prize order, once drawn.
    pub winners: Vec<Winner>,
    /// Who made it.
    pub author: String,
    /// Why.
    pub reason: String,
    /// When it was closed (ms since the Unix epoch).
    pub closed_at_ms: Option<i64>,
}

fn draw_key(id: u32) -> [u8; 4] {
    id.to_be_bytes()
}

fn entry_key(id: u32, m: u64) -> Vec<u8> {
    let mut k = id.to_be_bytes().to_vec();
    k.extend_from_slice(&m.to_be_bytes());
    k
}

fn refuse(why: &str) -> OpError {
    OpError::new(Kind::DrawRefused, why.to_string())
}

/// Creates a draw. It must carry its commitment and close in the future. Blocking.
pub fn create(
    ops: &Ops,
    spec: DrawSpec,
    author: &str,
    reason: &str,
) -> Result<DrawRecord, OpError> {
    spec.check().map_err(invalid)?;
    crate::engagement::text("reason", reason, 500).map_err(invalid)?;
    match &spec.commitment {
        Some(c) => check_commitment(c).map_err(invalid)?,
        None => {
            return Err(invalid(crate::engagement::Invalid(
                "a draw is created with its commitment, hex(SHA-256(seed)), so the seed is fixed before the entries are known".into(),
            )))
        }
    }
    if spec.closes_at_ms <= now_ms() {
        return Err(invalid(crate::engagement::Invalid(
            "closes_at_ms must be in the future".into(),
        )));
    }
    if let EntryRule::Bought { partner_id, .. } = spec.entry {
        super::require_partners(ops, [partner_id])?;
    }
    super::require_partners(ops, spec.prizes.iter().filter_map(|p| p.funding.partner_id))?;
    for p in &spec.prizes {
        if let Some(r) = p.reward_id {
            super::rewards::reward(ops, r)?;
        }
    }
    ops.registry
        .engage(&mut |t| {
            let id = t.next_id(DRAW)? as u32;
            let rec = DrawRecord {
                id,
                spec: spec.clone(),
                status: DrawStatus::Open,
                members: 0,
                entries: 0,
                entry_list_sha256: None,
                seed: None,
                winners: Vec::new(),
                author: author.into(),
                reason: reason.into(),
                closed_at_ms: None,
            };
            t.put(DRAW, &draw_key(id), &rec);
            Ok(Ok(rec))
        })
        .map_err(reg)?
}

/// Draw `id`. Blocking.
pub fn get(ops: &Ops, id: u32) -> Result<DrawRecord, OpError> {
    ops.registry
        .eng_get(DRAW, &draw_key(id))
        .map_err(reg)?
        .ok_or_else(|| OpError::new(Kind::NotFound, "no such draw"))
}

/// Every draw. Blocking.
pub fn list(ops: &Ops) -> Result<Vec<DrawRecord>, OpError> {
    Ok(ops
        .registry
        .eng_scan::<DrawRecord>(DRAW, &[], None, usize::MAX)
        .map_err(reg)?
        .into_iter()
        .map(|(_, d)| d)
        .collect())
}

/// A purchase of entries, as recorded under its reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Purchase {
    /// The draw.
    pub draw_id: u32,
    /// The member.
    pub member_id: u64,
    /// Entries bought.
    pub entries: u64,
    /// Points burned.
    pub points: i64,
    /// The burn (decimal string), once posted.
    pub transaction_id: Option<String>,
    /// The member's entries in the draw after it.
    pub member_entries: u64,
}

/// Buys `entries` entries in draw `id` for member `m` by burning points at the sponsoring
/// partner. Blocking. Returns the purchase and whether it answers a retry.
pub fn buy(
    ops: &Ops,
    id: u32,
    m: MemberId,
    entries: u64,
    reference: &str,
) -> Result<(Purchase, bool), OpError> {
    super::check_reference(reference)?;
    crate::engagement::within("entries", entries, 1, 100_000).map_err(invalid)?;
    require_member(ops, m)?;
    let d = get(ops, id)?;
    let EntryRule::Bought {
        points_per_entry,
        partner_id,
        entries_per_member_max,
    } = d.spec.entry
    else {
        return Err(refuse(
            "entries in this draw come from points held, not bought",
        ));
    };
    let mut pref = id.to_be_bytes().to_vec();
    pref.extend_from_slice(reference.as_bytes());
    let now = now_ms();
    let ek = entry_key(id, m.0);
    let (mut p, replayed) = ops
        .registry
        .engage(&mut |t| {
            if let Some(prev) = t.get::<Purchase>(DRAW_PURCHASE, &pref)? {
                if prev.member_id != m.0 || prev.entries != entries {
                    return Ok(Err(OpError::new(
                        Kind::IdempotencyConflict,
                        "the reference was used for another purchase",
                    )));
                }
                return Ok(Ok((prev, true)));
            }
            let cur: DrawRecord = t.get(DRAW, &draw_key(id))?.expect("read above");
            if cur.status != DrawStatus::Open || now >= cur.spec.closes_at_ms {
                return Ok(Err(refuse("the draw is closed")));
            }
            let had: u64 = t.get(DRAW_ENTRY, &ek)?.unwrap_or(0);
            if had + entries > u64::from(entries_per_member_max) {
                return Ok(Err(refuse("that is more entries than one member may buy")));
            }
            let p = Purchase {
                draw_id: id,
                member_id: m.0,
                entries,
                points: points_per_entry * entries as i64,
                transaction_id: None,
                member_entries: had + entries,
            };
            t.put(DRAW_ENTRY, &ek, &(had + entries));
            t.put(DRAW_PURCHASE, &pref, &p);
            Ok(Ok((p, false)))
        })
        .map_err(reg)??;
    if p.transaction_id.is_some() {
        return Ok((p, replayed));
    }
    let burn = Command::Burn {
        key: IdemKey::operator(format!("draw:{id}:{reference}")),
        member: m,
        partner: PartnerId(partner_id),
        points: Points(p.points),
    };
    match ops.ledger.execute_blocking(burn) {
        Ok(r) => {
            p.transaction_id = Some(r.tx.id.0.to_string());
            let rec = p.clone();
            ops.registry
                .engage(&mut |t| {
                    t.put(DRAW_PURCHASE, &pref, &rec);
                    Ok(Ok::<_, OpError>(()))
                })
                .map_err(reg)??;
            Ok((p, replayed))
        }
        Err(LedgerError::Rejected(why)) => {
            ops.registry
                .engage(&mut |t| {
                    let had: u64 = t.get(DRAW_ENTRY, &ek)?.unwrap_or(0);
                    t.put(DRAW_ENTRY, &ek, &had.saturating_sub(entries));
                    t.clear(DRAW_PURCHASE, &pref);
                    Ok(Ok::<_, OpError>(()))
                })
                .map_err(reg)??;
            Err(why.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Closes every open draw whose time has come. Blocking. Returns how many it closed.
pub fn close_due(ops: &Ops, now: i64) -> Result<usize, OpError> {
    let mut closed = 0;
    for d in list(ops)? {
        if d.status == DrawStatus::Open && now >= d.spec.closes_at_ms {
            close(ops, d)?;
            closed += 1;
        }
    }
    Ok(closed)
}

/// Rows written per commit while a draw closes.
const ENTRY_ROWS_PER_COMMIT: usize = 10_000;

/// Freezes and publishes draw `d`'s entries.
fn close(ops: &Ops, mut d: DrawRecord) -> Result<(), OpError> {
    if let EntryRule::PointsHeld { points_per_entry } = d.spec.entry {
        // Everything committed before now is in the facts once caught up.
        ops.audience.catch_up(ops)?;
        let rows: Vec<(u8, Vec<u8>, u64)> = ops.audience.with_facts(|f| {
            f.rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.enrolled && r.active && r.balance >= points_per_entry)
                .map(|(m, r)| {
                    let n = (r.balance / points_per_entry) as u64;
                    (DRAW_ENTRY, entry_key(d.id, m as u64), n)
                })
                .collect()
        });
        for chunk in rows.chunks(ENTRY_ROWS_PER_COMMIT) {
            ops.registry.eng_put_all(chunk).map_err(reg)?;
        }
    }
    let entries = entries_of(ops, d.id)?;
    d.members = entries.len() as u64;
    d.entries = entries.iter().map(|e| e.entries).sum();
    d.entry_list_sha256 = Some(hex::encode(Sha256::digest(draw::write_entries(&entries))));
    d.status = DrawStatus::Closed;
    d.closed_at_ms = Some(now_ms());
    let id = d.id;
    ops.registry
        .engage(&mut |t| {
            let cur: Option<DrawRecord> = t.get(DRAW, &draw_key(id))?;
            if cur.is_some_and(|c| c.status == DrawStatus::Open) {
                t.put(DRAW, &draw_key(id), &d);
            }
            Ok(Ok::<_, OpError>(()))
        })
        .map_err(reg)?
}

/// Draw `id`'s entries, by member id.
fn entries_of(ops: &Ops, id: u32) -> Result<Vec<Entry>, OpError> {
    Ok(ops
        .registry
        .eng_scan::<u64>(DRAW_ENTRY, &id.to_be_bytes(), None, usize::MAX)
        .map_err(reg)?
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(body, n)| Entry {
            member: u64::from_be_bytes(body[4..12].try_into().expect("8-byte member")),
            entries: n,
        })
        .collect())
}

/// Draw `id`'s published entry list (`member_id,entries`), once closed. Blocking.
pub fn entry_list(ops: &Ops, id: u32) -> Result<String, OpError> {
    let d = get(ops, id)?;
    if d.status == DrawStatus::Open {
        return Err(refuse("the entries are published when the draw closes"));
    }
    Ok(draw::write_entries(&entries_of(ops, id)?))
}

/// Reveals draw `id`'s seed: checked against the commitment, the winners drawn and each prize
/// posted. Blocking. A repeated reveal of a drawn draw answers with it.
pub fn reveal(ops: &Ops, id: u32, seed_hex: &str) -> Result<DrawRecord, OpError> {
    let mut d = get(ops, id)?;
    let seed = draw::parse_seed(seed_hex).map_err(|e| OpError::new(Kind::InvalidRule, e))?;
    if Some(draw::commitment(&seed)) != d.spec.commitment {
        return Err(refuse("the seed does not match the draw's commitment"));
    }
    match d.status {
        DrawStatus::Drawn => return Ok(d),
        DrawStatus::Open => return Err(refuse("the draw has not closed")),
        DrawStatus::Closed => {}
    }
    let entries = entries_of(ops, id)?;
    let won = draw::winners(&entries, &seed, d.spec.prizes.len())
        .map_err(|_| OpError::new(Kind::Internal, "the draw's entries add up past u64"))?;
    let mut winners = Vec::with_capacity(won.len());
    for (i, member) in won.into_iter().enumerate() {
        winners.push(pay(ops, &d, i, MemberId(member))?);
    }
    d.winners = winners;
    d.seed = Some(hex::encode(&seed));
    d.status = DrawStatus::Drawn;
    let rec = d.clone();
    ops.registry
        .engage(&mut |t| {
            t.put(DRAW, &draw_key(id), &rec);
            Ok(Ok::<_, OpError>(()))
        })
        .map_err(reg)??;
    Ok(d)
}

/// Posts prize `i` of draw `d` to `member`.
fn pay(ops: &Ops, d: &DrawRecord, i: usize, member: MemberId) -> Result<Winner, OpError> {
    let prize = &d.spec.prizes[i];
    let note = format!("prize {} of draw {}", i + 1, d.id);
    let (points, reward) = match (prize.points, prize.reward_id) {
        (Some(p), _) => (p, None),
        (None, Some(r)) => (super::rewards::reward(ops, r)?.spec.points, Some(r)),
        (None, None) => return Err(OpError::new(Kind::Internal, "a prize gives nothing")),
    };
    let paid = grant(
        ops,
        format!("draw:{}:prize:{i}", d.id),
        member,
        points,
        prize.funding,
        (GrantKind::Draw, u64::from(d.id), note),
    );
    // A winner suspended, closed or merged since it entered keeps its place but not the prize;
    // the draw is not redrawn (its result is what the seed and the entries give).
    let g = match paid {
        Err(e) if e.kind == Kind::MemberNotActive => {
            return Ok(Winner {
                prize: i as u32,
                member_id: member.0,
                transaction_id: None,
                voucher_code: None,
                unpaid: Some(e.detail),
            })
        }
        other => other?,
    };
    let voucher_code = match reward {
        Some(r) => {
            let (v, _) = super::rewards::redeem(
                ops,
                &super::rewards::Redeem {
                    member,
                    reward: r,
                    reference: format!("draw-{}-prize-{i}", d.id),
                    prize: true,
                },
            )?;
            Some(crate::engagement::codes::display(&v.code))
        }
        None => None,
    };
    Ok(Winner {
        prize: i as u32,
        member_id: member.0,
        transaction_id: Some(g.tx.id.0.to_string()),
        voucher_code,
        unpaid: None,
    })
}
