//! Surveys: the NPS question and optional others, sent to a segment through the
//! notifications, answered once per member (through the operator API, a partner, or the portal),
//! an optional points reward per answer, and NPS per partner, branch and month.

use super::{grant, invalid, now_ms, reg, require_member, tx_id};
use crate::engagement::model::{in_window, Answer, SurveySpec};
use crate::engagement::nps::Nps;
use crate::ops::error::{Kind, OpError};
use crate::ops::notify::BroadcastDraft;
use crate::ops::registry::BroadcastRecord;
use crate::ops::Ops;
use ledger::keys::gateway::engagement::{RESPONSE, SURVEY};
use ledger::{GrantKind, MemberId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A survey as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SurveyRecord {
    /// Its id.
    pub id: u32,
    /// The definition.
    pub spec: SurveySpec,
    /// Who made it.
    pub author: String,
    /// Why.
    pub reason: String,
    /// When (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// The broadcasts that sent it.
    pub broadcasts: Vec<u32>,
}

/// A member's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Response {
    /// The survey.
    pub survey_id: u32,
    /// The member.
    pub member_id: u64,
    /// The NPS answer, 0 to 10.
    pub score: u8,
    /// The other answers.
    pub answers: Vec<Answer>,
    /// The partner it counts for: the survey's, or the one it was answered at.
    pub partner_id: Option<u32>,
    /// The branch it was answered about, if given.
    pub branch: Option<String>,
    /// When (ms since the Unix epoch).
    pub answered_at_ms: i64,
    /// The reward's grant (decimal string), if the survey pays one.
    pub transaction_id: Option<String>,
}

fn survey_key(id: u32) -> [u8; 4] {
    id.to_be_bytes()
}

fn response_key(id: u32, m: u64) -> Vec<u8> {
    let mut k = id.to_be_bytes().to_vec();
    k.extend_from_slice(&m.to_be_bytes());
    k
}

/// Creates a survey. Blocking.
pub fn create(
    ops: &Ops,
    spec: SurveySpec,
    author: &str,
    reason: &str,
) -> Result<SurveyRecord, OpError> {
    spec.check().map_err(invalid)?;
    crate::engagement::text("reason", reason, 500).map_err(invalid)?;
    super::require_partners(
        ops,
        spec.partner_id.into_iter().chain(spec.funding.partner_id),
    )?;
    let now = now_ms();
    ops.registry
        .engage(&mut |t| {
            let id = t.next_id(SURVEY)? as u32;
            let rec = SurveyRecord {
                id,
                spec: spec.clone(),
                author: author.into(),
                reason: reason.into(),
                created_at_ms: now,
                broadcasts: Vec::new(),
            };
            t.put(SURVEY, &survey_key(id), &rec);
            Ok(Ok(rec))
        })
        .map_err(reg)?
}

/// Survey `id`. Blocking.
pub fn get(ops: &Ops, id: u32) -> Result<SurveyRecord, OpError> {
    ops.registry
        .eng_get(SURVEY, &survey_key(id))
        .map_err(reg)?
        .ok_or_else(|| OpError::new(Kind::NotFound, "no such survey"))
}

/// Every survey. Blocking.
pub fn list(ops: &Ops) -> Result<Vec<SurveyRecord>, OpError> {
    Ok(ops
        .registry
        .eng_scan::<SurveyRecord>(SURVEY, &[], None, usize::MAX)
        .map_err(reg)?
        .into_iter()
        .map(|(_, s)| s)
        .collect())
}

/// Sends survey `id` to a segment: a broadcast through the notifications, recorded on the
/// survey. Blocking.
pub fn send(
    ops: &Ops,
    id: u32,
    d: BroadcastDraft,
    author: &str,
) -> Result<BroadcastRecord, OpError> {
    get(ops, id)?;
    let b = crate::ops::notify::create_broadcast(ops, d, author)?;
    ops.registry
        .engage(&mut |t| {
            let Some(mut s) = t.get::<SurveyRecord>(SURVEY, &survey_key(id))? else {
                return Ok(Err(OpError::new(Kind::NotFound, "no such survey")));
            };
            s.broadcasts.push(b.id);
            t.put(SURVEY, &survey_key(id), &s);
            Ok(Ok(()))
        })
        .map_err(reg)??;
    Ok(b)
}

/// An answer as given.
#[derive(Debug, Clone)]
pub struct AnswerInput {
    /// The NPS answer.
    pub score: i64,
    /// The other answers.
    pub answers: Vec<Answer>,
    /// The partner it was answered at (a partner answering for its member: itself).
    pub partner: Option<u32>,
    /// The branch it is about.
    pub branch: Option<String>,
}

/// Records member `m`'s response to survey `id`, once, and grants its reward. Blocking.
pub fn answer(ops: &Ops, id: u32, m: MemberId, a: AnswerInput) -> Result<Response, OpError> {
    let s = get(ops, id)?;
    let refuse = |why: &str| Err(OpError::new(Kind::SurveyRefused, why.to_string()));
    crate::engagement::within("score", a.score, 0, 10)
        .map_err(|e| OpError::new(Kind::SurveyRefused, e.0))?;
    s.spec
        .check_answers(&a.answers)
        .map_err(|e| OpError::new(Kind::SurveyRefused, e.0))?;
    if let Some(b) = &a.branch {
        crate::engagement::text("branch", b, 32).map_err(invalid)?;
    }
    let state = require_member(ops, m)?;
    if state.standing() != ledger::core::state::Standing::Active {
        return Err(OpError::new(
            Kind::MemberNotActive,
            "the member is not active",
        ));
    }
    let now = now_ms();
    if !in_window(s.spec.valid_from_ms, s.spec.valid_until_ms, now) {
        return refuse("the survey is not open");
    }
    let mut r = Response {
        survey_id: id,
        member_id: m.0,
        score: a.score as u8,
        answers: a.answers,
        partner_id: s.spec.partner_id.or(a.partner),
        branch: a.branch,
        answered_at_ms: now,
        transaction_id: None,
    };
    let key = response_key(id, m.0);
    ops.registry
        .engage(&mut |t| {
            if t.get::<Response>(RESPONSE, &key)?.is_some() {
                return Ok(Err(OpError::new(
                    Kind::SurveyRefused,
                    "the member answered this survey already",
                )));
            }
            t.put(RESPONSE, &key, &r);
            Ok(Ok(()))
        })
        .map_err(reg)??;
    if let Some(points) = s.spec.reward_points {
        let g = grant(
            ops,
            format!("survey:{id}:{}", m.0),
            m,
            points,
            s.spec.funding,
            (
                GrantKind::Survey,
                u64::from(id),
                format!("answered survey {id}"),
            ),
        )?;
        r.transaction_id = Some(tx_id(&g));
        let stored = r.clone();
        ops.registry
            .engage(&mut |t| {
                t.put(RESPONSE, &key, &stored);
                Ok(Ok::<_, OpError>(()))
            })
            .map_err(reg)??;
    }
    Ok(r)
}

/// Survey `id`'s responses, by member. Blocking.
pub fn responses(ops: &Ops, id: u32) -> Result<Vec<Response>, OpError> {
    get(ops, id)?;
    Ok(ops
        .registry
        .eng_scan::<Response>(RESPONSE, &id.to_be_bytes(), None, usize::MAX)
        .map_err(reg)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// How NPS is grouped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grouping {
    /// By partner.
    pub partner: bool,
    /// By branch.
    pub branch: bool,
    /// By month (`YYYY-MM` in the programme's time zone).
    pub month: bool,
}

/// One group's NPS.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NpsRow {
    /// The partner, when grouped by partner (none: answers about no partner).
    pub partner_id: Option<u32>,
    /// The branch, when grouped by branch.
    pub branch: Option<String>,
    /// The month, when grouped by month.
    pub month: Option<String>,
    /// The counts.
    #[serde(flatten)]
    pub counts: Nps,
    /// Promoters minus detractors, in percent of responses, to one decimal place.
    #[schema(value_type = String)]
    pub nps: String,
}

/// A group: partner, branch, month (each when grouped by it).
type GroupKey = (Option<u32>, Option<String>, Option<String>);

/// NPS over the responses of survey `survey` (or every survey), answered in `[from, to)`,
/// grouped as asked. Blocking.
pub fn nps(
    ops: &Ops,
    survey: Option<u32>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    by: Grouping,
) -> Result<Vec<NpsRow>, OpError> {
    let surveys = match survey {
        Some(id) => vec![get(ops, id)?],
        None => list(ops)?,
    };
    let mut groups: BTreeMap<GroupKey, Nps> = BTreeMap::new();
    for s in surveys {
        for r in responses(ops, s.id)? {
            if !in_window(from_ms, to_ms, r.answered_at_ms) {
                continue;
            }
            let month = by.month.then(|| {
                crate::ops::notify::local(ops, r.answered_at_ms)
                    .format("%Y-%m")
                    .to_string()
            });
            let key = (
                r.partner_id.filter(|_| by.partner),
                r.branch.clone().filter(|_| by.branch),
                month,
            );
            groups.entry(key).or_default().add(r.score);
        }
    }
    Ok(groups
        .into_iter()
        .map(|((partner_id, branch, month), counts)| NpsRow {
            partner_id,
            branch,
            month,
            counts,
            nps: counts.score().map(|s| s.to_string()).unwrap_or_default(),
        })
        .collect())
}
