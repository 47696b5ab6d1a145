//! Discount codes: sets of unique single-use codes, or one shared code with a use limit; each
//! use gives bonus points (granted in the ledger) or a discount reference the partner applies.
//!
//! A use is one registry transaction that checks the code's dates, its uses, the member's uses
//! and the caller's reference, and records the use; the bonus is then granted under a key made
//! from the use's reference, so a retry re-grants nothing. A grant the ledger refuses gives the
//! use back.

use super::{grant, invalid, now_ms, reg, require_member, tx_id};
use crate::engagement::codes;
use crate::engagement::model::{in_window, CodeEffect, CodeKind, CodeSetSpec};
use crate::ops::error::{Kind, OpError};
use crate::ops::registry::{EngTxn, RegistryError};
use crate::ops::Ops;
use ledger::keys::gateway::engagement::{CODE, CODE_MEMBER, CODE_SET, CODE_USE};
use ledger::{GrantKind, MemberId, PartnerId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A code set as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CodeSetRecord {
    /// Its id.
    pub id: u32,
    /// The definition.
    pub spec: CodeSetSpec,
    /// Who made it.
    pub author: String,
    /// Why.
    pub reason: String,
    /// When (ms since the Unix epoch).
    pub created_at_ms: i64,
}

/// A code's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct CodeState {
    set: u32,
    uses: u32,
}

/// Who uses a code: a partner at its till, or an operator for a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCaller {
    /// A partner.
    Partner(PartnerId),
    /// An operator.
    Operator,
}

impl CodeCaller {
    fn scope(self) -> String {
        match self {
            CodeCaller::Partner(p) => format!("p{}", p.0),
            CodeCaller::Operator => "op".into(),
        }
    }
}

/// One use of a code, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CodeUse {
    /// The code.
    pub code: String,
    /// Its set.
    pub set_id: u32,
    /// The member.
    pub member_id: u64,
    /// The caller's reference.
    pub reference: String,
    /// When (ms since the Unix epoch).
    pub used_at_ms: i64,
    /// Bonus points granted, if the code gives points.
    pub points: Option<i64>,
    /// The grant (decimal string), once posted.
    pub transaction_id: Option<String>,
    /// The discount the partner applies, if the code gives one.
    pub discount_reference: Option<String>,
    /// True when this answers a retry.
    #[serde(default)]
    pub replayed: bool,
}

/// Code `code` (normalised) of a set as people read it: a shared code as the operator wrote it,
/// a unique one in groups of four.
fn shown(spec: &CodeSetSpec, code: &str) -> String {
    match &spec.codes {
        CodeKind::Shared { code: chosen, .. } => chosen.trim().to_ascii_uppercase(),
        CodeKind::Unique { .. } => codes::display(code),
    }
}

fn set_key(id: u32) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

fn set_code_key(id: u32, code: &str) -> Vec<u8> {
    let mut k = set_key(id);
    k.extend_from_slice(code.as_bytes());
    k
}

fn member_key(code: &str, m: u64) -> Vec<u8> {
    let mut k = code.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&m.to_be_bytes());
    k
}

fn use_key(caller: CodeCaller, reference: &str) -> Vec<u8> {
    format!("{}\0{reference}", caller.scope()).into_bytes()
}

/// Creates a code set (and its codes) by `author` for `reason`. Blocking. Returns the set and
/// its codes as people read them.
pub fn create_set(
    ops: &Ops,
    spec: CodeSetSpec,
    author: &str,
    reason: &str,
) -> Result<(CodeSetRecord, Vec<String>), OpError> {
    spec.check().map_err(invalid)?;
    crate::engagement::text("reason", reason, 500).map_err(invalid)?;
    let funder = match &spec.effect {
        CodeEffect::Points { funding, .. } => funding.partner_id,
        CodeEffect::Discount { .. } => None,
    };
    super::require_partners(ops, spec.partner_id.into_iter().chain(funder))?;
    let now = now_ms();
    ops.registry
        .engage(&mut |t| {
            let id = t.next_id(CODE_SET)? as u32;
            let made = match &spec.codes {
                CodeKind::Unique { count } => unique_codes(t, *count)?,
                CodeKind::Shared { code, .. } => {
                    let c = codes::normalise(code).expect("checked");
                    if t.get::<CodeState>(CODE, c.as_bytes())?.is_some() {
                        return Ok(Err(OpError::new(
                            Kind::CodeRefused,
                            "that code is taken by another set",
                        )));
                    }
                    vec![c]
                }
            };
            for c in &made {
                t.put(CODE, c.as_bytes(), &CodeState { set: id, uses: 0 });
                t.put(CODE_SET, &set_code_key(id, c), &());
            }
            let rec = CodeSetRecord {
                id,
                spec: spec.clone(),
                author: author.into(),
                reason: reason.into(),
                created_at_ms: now,
            };
            t.put(CODE_SET, &set_key(id), &rec);
            Ok(Ok((rec, made.iter().map(|c| shown(&spec, c)).collect())))
        })
        .map_err(reg)?
}

fn unique_codes(t: &mut EngTxn<'_>, count: u32) -> Result<Vec<String>, RegistryError> {
    let mut out: Vec<String> = Vec::with_capacity(count as usize);
    while out.len() < count as usize {
        let c = codes::normalise(&codes::new_code(3)).expect("a new code normalises");
        // 60 bits: a collision is rare, and checked.
        if !out.contains(&c) && t.get::<CodeState>(CODE, c.as_bytes())?.is_none() {
            out.push(c);
        }
    }
    Ok(out)
}

/// Code set `id` with its codes and their uses. Blocking.
pub fn set(ops: &Ops, id: u32) -> Result<(CodeSetRecord, Vec<(String, u32)>), OpError> {
    let rows = ops
        .registry
        .eng_scan::<serde_json::Value>(CODE_SET, &set_key(id), None, usize::MAX)
        .map_err(reg)?;
    let mut rec: Option<CodeSetRecord> = None;
    let mut out = Vec::new();
    for (body, v) in rows {
        if body.len() == 4 {
            rec = Some(
                serde_json::from_value::<CodeSetRecord>(v)
                    .map_err(|e| OpError::new(Kind::Internal, format!("corrupt code set: {e}")))?,
            );
        } else {
            let c = String::from_utf8_lossy(&body[4..]).into_owned();
            let uses = ops
                .registry
                .eng_get::<CodeState>(CODE, c.as_bytes())
                .map_err(reg)?
                .map_or(0, |s| s.uses);
            out.push((c, uses));
        }
    }
    let rec = rec.ok_or_else(|| OpError::new(Kind::NotFound, "no such code set"))?;
    let out = out
        .into_iter()
        .map(|(c, uses)| (shown(&rec.spec, &c), uses))
        .collect();
    Ok((rec, out))
}

/// Every code set. Blocking.
pub fn sets(ops: &Ops) -> Result<Vec<CodeSetRecord>, OpError> {
    let rows = ops
        .registry
        .eng_scan::<serde_json::Value>(CODE_SET, &[], None, usize::MAX)
        .map_err(reg)?;
    rows.into_iter()
        .filter(|(b, _)| b.len() == 4)
        .map(|(_, v)| {
            serde_json::from_value(v)
                .map_err(|e| OpError::new(Kind::Internal, format!("corrupt code set: {e}")))
        })
        .collect()
}

/// A use of a code, as asked.
#[derive(Debug, Clone)]
pub struct UseCode {
    /// The code as typed.
    pub code: String,
    /// The member.
    pub member: MemberId,
    /// The caller's reference (idempotency key).
    pub reference: String,
    /// Who uses it.
    pub caller: CodeCaller,
}

/// Uses a code for a member. Blocking.
pub fn use_code(ops: &Ops, u: &UseCode) -> Result<CodeUse, OpError> {
    super::check_reference(&u.reference)?;
    let unknown = || OpError::new(Kind::NotFound, "no such code");
    let code = codes::normalise(&u.code).ok_or_else(unknown)?;
    let state = require_member(ops, u.member)?;
    if state.standing() != ledger::core::state::Standing::Active {
        return Err(OpError::new(
            Kind::MemberNotActive,
            "the member is not active",
        ));
    }
    let now = now_ms();
    let (mut used, spec) = ops
        .registry
        .engage(&mut |t| record_use(t, u, &code, now))
        .map_err(reg)??;
    if used.replayed && used.transaction_id.is_some() {
        return Ok(used);
    }
    if let (Some(points), CodeEffect::Points { funding, .. }) = (used.points, &spec.effect) {
        let key = format!("code:{}:{}", u.caller.scope(), u.reference);
        let origin = (
            GrantKind::Code,
            u64::from(used.set_id),
            format!("code {}", used.code),
        );
        match grant(ops, key, u.member, points, *funding, origin) {
            Ok(r) => used.transaction_id = Some(tx_id(&r)),
            Err(e) => {
                if matches!(
                    e.kind,
                    Kind::Overloaded | Kind::Unavailable | Kind::Internal
                ) {
                    return Err(e);
                }
                give_back(ops, u, &code)?;
                return Err(e);
            }
        }
        let rec = used.clone();
        ops.registry
            .engage(&mut |t| {
                let mut stored = rec.clone();
                stored.replayed = false;
                t.put(CODE_USE, &use_key(u.caller, &u.reference), &stored);
                Ok(Ok::<_, OpError>(()))
            })
            .map_err(reg)??;
    }
    Ok(used)
}

/// Checks and records a use in one transaction.
fn record_use(
    t: &mut EngTxn<'_>,
    u: &UseCode,
    code: &str,
    now: i64,
) -> Result<Result<(CodeUse, CodeSetSpec), OpError>, RegistryError> {
    let unknown = || Ok(Err(OpError::new(Kind::NotFound, "no such code")));
    let refuse = |why: &str| Ok(Err(OpError::new(Kind::CodeRefused, why.to_string())));
    let Some(mut st) = t.get::<CodeState>(CODE, code.as_bytes())? else {
        return unknown();
    };
    let Some(set) = t.get::<CodeSetRecord>(CODE_SET, &set_key(st.set))? else {
        return unknown();
    };
    let spec = set.spec;
    if let (Some(p), CodeCaller::Partner(c)) = (spec.partner_id, u.caller) {
        if p != c.0 {
            return unknown();
        }
    }
    if let Some(prev) = t.get::<CodeUse>(CODE_USE, &use_key(u.caller, &u.reference))? {
        if codes::normalise(&prev.code).as_deref() != Some(code) || prev.member_id != u.member.0 {
            return Ok(Err(OpError::new(
                Kind::IdempotencyConflict,
                "the reference was used for another code or member",
            )));
        }
        return Ok(Ok((
            CodeUse {
                replayed: true,
                ..prev
            },
            spec,
        )));
    }
    if !in_window(spec.valid_from_ms, spec.valid_until_ms, now) {
        return refuse("the code is not valid at this date");
    }
    match spec.codes {
        CodeKind::Unique { .. } if st.uses >= 1 => return refuse("the code was already used"),
        CodeKind::Shared {
            max_uses: Some(m), ..
        } if st.uses >= m => return refuse("the code is used up"),
        _ => {}
    }
    let mk = member_key(code, u.member.0);
    let mine: u32 = t.get(CODE_MEMBER, &mk)?.unwrap_or(0);
    if mine >= spec.per_member_max {
        return refuse("the member has used the code as often as it may");
    }
    st.uses += 1;
    t.put(CODE, code.as_bytes(), &st);
    t.put(CODE_MEMBER, &mk, &(mine + 1));
    let (points, discount) = match &spec.effect {
        CodeEffect::Points { points, .. } => (Some(*points), None),
        CodeEffect::Discount { reference } => (None, Some(reference.clone())),
    };
    let used = CodeUse {
        code: shown(&spec, code),
        set_id: st.set,
        member_id: u.member.0,
        reference: u.reference.clone(),
        used_at_ms: now,
        points,
        transaction_id: None,
        discount_reference: discount,
        replayed: false,
    };
    t.put(CODE_USE, &use_key(u.caller, &u.reference), &used);
    Ok(Ok((used, spec)))
}

/// Undoes a recorded use whose bonus the ledger refused.
fn give_back(ops: &Ops, u: &UseCode, code: &str) -> Result<(), OpError> {
    ops.registry
        .engage(&mut |t| {
            if let Some(mut st) = t.get::<CodeState>(CODE, code.as_bytes())? {
                st.uses = st.uses.saturating_sub(1);
                t.put(CODE, code.as_bytes(), &st);
            }
            let mk = member_key(code, u.member.0);
            let mine: u32 = t.get(CODE_MEMBER, &mk)?.unwrap_or(0);
            t.put(CODE_MEMBER, &mk, &mine.saturating_sub(1));
            t.clear(CODE_USE, &use_key(u.caller, &u.reference));
            Ok(Ok::<_, OpError>(()))
        })
        .map_err(reg)?
}
