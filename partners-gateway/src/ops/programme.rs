//! What operators do with the programme's rules: campaigns (versioned, effective-dated, each
//! version with its author and reason), the points budget guard per programme and partner, the
//! programme's time zone and currency, and the budget's standing per period. Nothing here knows
//! HTTP.

use super::error::{Kind, OpError};
use super::Ops;
use crate::ops::registry::ProgrammeSettings;
use crate::programme::guard::{period_label, BudgetGuard, GuardDraft};
use crate::programme::rules::{Campaign, CampaignDraft, RuleError, POINTS_MAX};
use ledger::{CampaignId, Counter, CounterKey, GuardScope, PartnerId, Points, Timestamp};
use rust_decimal::Decimal;

/// How far in the past `effective_from_ms` may be (clock skew between operator and gateway).
const GRACE_MS: i64 = 60_000;

fn invalid(e: RuleError) -> OpError {
    OpError::new(Kind::InvalidRule, e.0)
}

fn internal(e: impl std::fmt::Display) -> OpError {
    OpError::new(Kind::Internal, e.to_string())
}

/// Checks a draft against the registry: known partners, a start that is not in the past.
fn check(ops: &Ops, d: &CampaignDraft, now: i64) -> Result<i64, OpError> {
    d.check().map_err(invalid)?;
    let unknown: Vec<u32> = d
        .conditions
        .partners
        .iter()
        .chain(d.funded_by.iter())
        .copied()
        .filter(|p| ops.registry.partner(PartnerId(*p)).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(OpError::new(
            Kind::InvalidRule,
            format!("unknown partners {unknown:?}"),
        ));
    }
    let from = d.effective_from_ms.unwrap_or(now);
    if from < now - GRACE_MS {
        return Err(OpError::new(
            Kind::InvalidRule,
            "effective_from_ms is in the past; campaign versions are never retroactive",
        ));
    }
    Ok(from.max(now))
}

/// Records a new campaign (`id: None`) or a new version of campaign `id`. Blocking.
pub fn save_campaign(
    ops: &Ops,
    id: Option<u32>,
    draft: CampaignDraft,
    author: &str,
) -> Result<Campaign, OpError> {
    let now = Timestamp::now().0;
    let from = check(ops, &draft, now)?;
    for s in &draft.conditions.segments {
        if ops.registry.segment(*s).map_err(internal)?.is_none() {
            return Err(OpError::new(
                Kind::InvalidRule,
                format!("segments: no segment {s}"),
            ));
        }
    }
    let c = Campaign {
        id: 0,
        version: 0,
        definition: draft,
        in_force_from_ms: from,
        author: author.to_string(),
        recorded_at_ms: now,
    };
    ops.registry
        .add_campaign(id, c)
        .map_err(internal)?
        .ok_or_else(|| unknown_campaign(id.unwrap_or_default()))
}

fn unknown_campaign(id: u32) -> OpError {
    OpError::new(Kind::UnknownCampaign, format!("no campaign {id}"))
}

/// A campaign: its versions, the one in force, and the points it has given.
pub struct CampaignState {
    /// Every version, oldest first.
    pub versions: Vec<Campaign>,
    /// The version in force now, if one is.
    pub in_force: Option<u32>,
    /// Bonus points granted, net of room given back by refunds.
    pub awarded: Points,
}

/// Every campaign's state. Blocking (reads the ledger's counters).
pub fn campaigns(ops: &Ops) -> Result<Vec<CampaignState>, OpError> {
    let mut by_id: std::collections::BTreeMap<u32, Vec<Campaign>> = Default::default();
    for c in ops.registry.campaigns() {
        by_id.entry(c.id).or_default().push(c);
    }
    by_id
        .into_values()
        .map(|versions| state_of(ops, versions))
        .collect()
}

/// One campaign's state. Blocking.
pub fn campaign(ops: &Ops, id: u32) -> Result<CampaignState, OpError> {
    let versions: Vec<Campaign> = ops
        .registry
        .campaigns()
        .into_iter()
        .filter(|c| c.id == id)
        .collect();
    if versions.is_empty() {
        return Err(unknown_campaign(id));
    }
    state_of(ops, versions)
}

fn state_of(ops: &Ops, versions: Vec<Campaign>) -> Result<CampaignState, OpError> {
    let now = Timestamp::now().0;
    let id = versions[0].id;
    let in_force = versions
        .iter()
        .filter(|c| c.in_force_from_ms <= now)
        .max_by_key(|c| (c.in_force_from_ms, c.version))
        .map(|c| c.version);
    let awarded = match ops.ledger.counter(&CounterKey::Campaign(CampaignId(id)))? {
        Some(Counter::Awarded(p)) => p,
        _ => Points::ZERO,
    };
    Ok(CampaignState {
        versions,
        in_force,
        awarded,
    })
}

/// Records a new version of the points budget guard of the programme (`partner: None`) or of a
/// partner. Blocking.
pub fn set_guard(
    ops: &Ops,
    partner: Option<u32>,
    draft: GuardDraft,
    author: &str,
) -> Result<BudgetGuard, OpError> {
    draft.check().map_err(invalid)?;
    let scope = match partner {
        Some(p) => {
            if ops.registry.partner(PartnerId(p)).is_none() {
                return Err(OpError::new(
                    Kind::UnknownPartner,
                    format!("no partner {p}"),
                ));
            }
            p
        }
        None => {
            if draft.enabled && ops.registry.programme().currency.is_none() {
                return Err(OpError::new(
                    Kind::InvalidRule,
                    "the programme-wide guard needs the programme's currency: set it first (PUT /admin/v1/programme)",
                ));
            }
            0
        }
    };
    let g = BudgetGuard {
        scope,
        version: 0,
        settings: draft,
        author: author.to_string(),
        recorded_at_ms: Timestamp::now().0,
    };
    ops.registry.set_guard(scope, g).map_err(internal)
}

/// Every guard version.
pub fn guards(ops: &Ops) -> Vec<BudgetGuard> {
    ops.registry.guards()
}

/// Programme settings as an operator sets them.
#[derive(Debug, Clone)]
pub struct SettingsDraft {
    /// IANA time zone.
    pub time_zone: String,
    /// ISO 4217 currency.
    pub currency: Option<String>,
    /// What a closed member's points become.
    pub on_close: super::registry::OnClose,
    /// The pages' default language.
    pub language: super::registry::Language,
    /// Why.
    pub reason: String,
}

/// Records new programme settings. Blocking.
pub fn set_programme(
    ops: &Ops,
    d: SettingsDraft,
    author: &str,
) -> Result<ProgrammeSettings, OpError> {
    if d.time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(OpError::new(
            Kind::InvalidRule,
            format!(
                "{:?} is not an IANA time zone (such as Asia/Tehran)",
                d.time_zone
            ),
        ));
    }
    if let Some(c) = &d.currency {
        if c.parse::<ledger::Currency>().is_err() {
            return Err(OpError::new(
                Kind::UnknownCurrency,
                format!("{c:?} is not an ISO 4217 currency"),
            ));
        }
    }
    if d.reason.trim().is_empty() || d.reason.chars().count() > 200 {
        return Err(OpError::new(
            Kind::InvalidRule,
            "reason must be 1 to 200 characters",
        ));
    }
    ops.registry
        .set_programme(ProgrammeSettings {
            version: 0,
            time_zone: d.time_zone,
            currency: d.currency,
            on_close: d.on_close,
            language: d.language,
            reason: d.reason,
            author: author.to_string(),
            recorded_at_ms: Timestamp::now().0,
        })
        .map_err(internal)
}

/// One guard period's standing.
#[derive(Debug, Clone)]
pub struct BudgetPeriod {
    /// `None` the programme, else the partner.
    pub partner: Option<u32>,
    /// `2026-11`, `2026-Q4`, `2026`.
    pub period: String,
    /// Sales counted.
    pub sales: Decimal,
    /// Value of points issued.
    pub value: Decimal,
    /// Value per unit of sales.
    pub ratio: Option<Decimal>,
    /// The ceiling in force now, if the guard is on.
    pub ceiling: Option<Decimal>,
    /// Thresholds (percent of the ceiling) crossed in the period, first crossing recorded on the
    /// earn that crossed.
    pub crossed: Vec<u8>,
}

/// Every guard period's standing, newest first. Blocking.
pub fn budget(ops: &Ops) -> Result<Vec<BudgetPeriod>, OpError> {
    let programme = ops.registry.programme();
    let mut out: Vec<BudgetPeriod> = ops
        .ledger
        .guard_totals()?
        .into_iter()
        .map(|(k, t)| {
            let scope = match k.scope {
                GuardScope::Programme => 0,
                GuardScope::Partner(p) => p.0,
            };
            let ceiling = programme
                .guards
                .get(&scope)
                .filter(|g| g.settings.enabled)
                .and_then(|g| g.settings.check().ok());
            BudgetPeriod {
                partner: (scope != 0).then_some(scope),
                period: period_label(k.period),
                ratio: t.ratio(),
                sales: t.sales,
                value: t.value,
                ceiling,
                crossed: t.crossed,
            }
        })
        .collect();
    out.sort_by(|a, b| b.period.cmp(&a.period).then(a.partner.cmp(&b.partner)));
    Ok(out)
}

/// The expiry policy as an operator sets it (the time zone is the programme's).
#[derive(Debug, Clone)]
pub struct ExpiryDraft {
    /// Idempotency key of the change.
    pub reference: String,
    /// Rolling: months after the earn, and rounding.
    pub rolling: Option<ledger::core::expiry::Rolling>,
    /// Inactivity: months, and which activities count.
    pub inactivity: Option<ledger::core::expiry::Inactivity>,
    /// Tier level from which members keep their points.
    pub exempt_from_tier: Option<u8>,
    /// Count inactivity from before this policy (an explicit migration).
    pub retroactive: bool,
    /// Who changes it and why.
    pub note: ledger::core::types::ChangeNote,
}

/// Longest reference of a policy change, a tier override or an operator transfer (its ledger
/// key adds a prefix within the key's 128 bytes).
pub const CHANGE_REFERENCE_LEN_MAX: usize = 100;

/// Longest reason for a policy change, in characters.
pub const CHANGE_REASON_CHARS_MAX: usize = 500;

/// The note a policy change is journaled with: the operator, and why (1 to 500 characters,
/// not all spaces).
pub fn change_note(author: &str, reason: &str) -> Result<ledger::core::types::ChangeNote, OpError> {
    if reason.trim().is_empty() || reason.chars().count() > CHANGE_REASON_CHARS_MAX {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("reason must be 1 to {CHANGE_REASON_CHARS_MAX} characters, not all spaces"),
        ));
    }
    Ok(ledger::core::types::ChangeNote {
        author: author.to_string(),
        reason: reason.to_string(),
    })
}

/// An operator's reference for a journaled change: 1 to 100 printable characters.
pub fn check_change_reference(r: &str) -> Result<(), OpError> {
    super::check_reference("reference", r)?;
    if r.len() > CHANGE_REFERENCE_LEN_MAX {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("reference must be 1 to {CHANGE_REFERENCE_LEN_MAX} characters"),
        ));
    }
    Ok(())
}

/// Sets the expiry policy: a ledger command, so the change is journaled with its time and
/// takes effect atomically for every later command. Blocking.
pub fn set_expiry_policy(ops: &Ops, d: ExpiryDraft) -> Result<ledger::Receipt, OpError> {
    check_change_reference(&d.reference)?;
    let time_zone = ops
        .registry
        .programme_settings()
        .map_or_else(|| "UTC".to_string(), |s| s.time_zone);
    let policy = ledger::core::expiry::ExpiryPolicy {
        rolling: d.rolling,
        inactivity: d.inactivity,
        exempt_from_tier: d.exempt_from_tier,
        time_zone,
        retroactive: d.retroactive,
        note: d.note,
    };
    Ok(ops
        .ledger
        .execute_blocking(ledger::Command::SetExpiryPolicy {
            key: ledger::IdemKey::operator(format!("expiry-policy/{}", d.reference)),
            policy: Box::new(policy),
        })?)
}

/// The points of member `m` expiring within 30, 60 and 90 days, and from which lots. Blocking.
pub fn expiring(ops: &Ops, m: ledger::MemberId) -> Result<ledger::core::expiry::Expiring, OpError> {
    let state = ops
        .ledger
        .member_state(m)?
        .ok_or_else(|| OpError::new(Kind::UnknownMember, "no such member".to_string()))?;
    let policy = ops.ledger.expiry_in_force()?;
    Ok(ledger::core::expiry::expiring(
        &state,
        policy.as_ref(),
        Timestamp::now(),
        &[30, 60, 90],
    ))
}

/// A transfer an operator makes for a member (a call-centre request, a household move).
#[derive(Debug, Clone)]
pub struct OperatorTransfer {
    /// Idempotency key.
    pub reference: String,
    /// Giving member.
    pub from: ledger::MemberId,
    /// Receiving member.
    pub to: ledger::MemberId,
    /// Points.
    pub points: i64,
    /// How the giving member consented, as the operator records it.
    pub consent: String,
}

/// Posts an operator's transfer under the programme's transfer policy.
pub async fn transfer(ops: &Ops, t: OperatorTransfer) -> Result<ledger::Receipt, OpError> {
    check_change_reference(&t.reference)?;
    super::check_consent(&t.consent)?;
    let points = super::check_points("points", t.points)?;
    Ok(ops
        .ledger
        .execute(ledger::Command::Transfer {
            key: ledger::IdemKey::operator(format!("transfer/{}", t.reference)),
            from: t.from,
            to: t.to,
            points,
            consent: Some(t.consent),
        })
        .await?)
}

/// The transfer policy as an operator sets it (the time zone is the programme's).
#[derive(Debug, Clone)]
pub struct TransferDraft {
    /// Idempotency key of the change.
    pub reference: String,
    /// Limits and fee.
    pub min: Option<i64>,
    /// See `min`.
    pub max_per_transfer: Option<i64>,
    /// See `min`.
    pub max_per_day: Option<i64>,
    /// See `min`.
    pub max_per_year: Option<i64>,
    /// Fee in points.
    pub fee: i64,
    /// Who changes it and why.
    pub note: ledger::core::types::ChangeNote,
}

/// Sets the transfer policy (a journaled ledger command). Blocking.
pub fn set_transfer_policy(ops: &Ops, d: TransferDraft) -> Result<ledger::Receipt, OpError> {
    check_change_reference(&d.reference)?;
    let limits = [d.min, d.max_per_transfer, d.max_per_day, d.max_per_year];
    if limits
        .iter()
        .flatten()
        .any(|l| !(1..=POINTS_MAX).contains(l))
        || !(0..=POINTS_MAX).contains(&d.fee)
    {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("limits must be 1 to {POINTS_MAX} points, the fee 0 to {POINTS_MAX}"),
        ));
    }
    let time_zone = ops
        .registry
        .programme_settings()
        .map_or_else(|| "UTC".to_string(), |s| s.time_zone);
    Ok(ops
        .ledger
        .execute_blocking(ledger::Command::SetTransferPolicy {
            key: ledger::IdemKey::operator(format!("transfer-policy/{}", d.reference)),
            policy: Box::new(ledger::core::transfers::TransferPolicy {
                min: d.min.map(ledger::Points),
                max_per_transfer: d.max_per_transfer.map(ledger::Points),
                max_per_day: d.max_per_day.map(ledger::Points),
                max_per_year: d.max_per_year.map(ledger::Points),
                fee: ledger::Points(d.fee),
                time_zone,
                note: d.note,
            }),
        })?)
}

/// Sets the tier policy (a journaled ledger command; the time zone is the programme's).
/// Blocking.
pub fn set_tier_policy(
    ops: &Ops,
    reference: &str,
    mut policy: ledger::core::tiers::TierPolicy,
) -> Result<ledger::Receipt, OpError> {
    check_change_reference(reference)?;
    policy.time_zone = ops
        .registry
        .programme_settings()
        .map_or_else(|| "UTC".to_string(), |s| s.time_zone);
    Ok(ops
        .ledger
        .execute_blocking(ledger::Command::SetTierPolicy {
            key: ledger::IdemKey::operator(format!("tier-policy/{reference}")),
            policy: Box::new(policy),
        })?)
}

/// Holds member `m` at `level` until `until`, with a reason. Blocking.
pub fn set_tier(
    ops: &Ops,
    reference: &str,
    m: ledger::MemberId,
    level: u8,
    until: Timestamp,
    reason: &str,
) -> Result<ledger::Receipt, OpError> {
    check_change_reference(reference)?;
    if !(0..=TIME_MS_MAX).contains(&until.0) {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("until_ms must be 0 to {TIME_MS_MAX} (the end of year 9999)"),
        ));
    }
    Ok(ops.ledger.execute_blocking(ledger::Command::SetTier {
        key: ledger::IdemKey::operator(format!("tier/{reference}")),
        member: m,
        level,
        until,
        reason: reason.to_string(),
    })?)
}

/// The latest instant an operator may name, in ms since the Unix epoch: 9999-12-31T23:59:59Z.
pub const TIME_MS_MAX: i64 = 253_402_300_799_000;

/// A member's tier and its progress to the next level.
pub struct TierStanding {
    /// The policy.
    pub policy: Option<ledger::core::tiers::TierPolicy>,
    /// The member's tier state.
    pub state: ledger::core::tiers::TierState,
    /// Qualifying total of the current window.
    pub qualifying: i64,
    /// The next period-end review.
    pub next_review: Option<Timestamp>,
}

/// Member `m`'s tier standing. Blocking.
pub fn tier(ops: &Ops, m: ledger::MemberId) -> Result<TierStanding, OpError> {
    let s = ops
        .ledger
        .member_state(m)?
        .ok_or_else(|| OpError::new(Kind::UnknownMember, "no such member".to_string()))?;
    let state = s.extras.map(|x| x.tier).unwrap_or_default();
    let tiers = ops.ledger.tiers_in_force()?;
    let policy = tiers.as_ref().map(|t| t.policy.clone());
    let now = Timestamp::now();
    Ok(TierStanding {
        qualifying: tiers.as_ref().map_or(0, |p| p.window_total(&state, now)),
        next_review: tiers.as_ref().and_then(|p| p.due(&state)),
        policy,
        state,
    })
}

/// One member of a household pool and what it may spend now.
pub struct Pooled {
    /// The member.
    pub member: ledger::MemberId,
    /// Posted, less held, less expired.
    pub spendable: ledger::Points,
}

/// A household pool: its owner first, then its members in the order they joined (the order
/// an owner's burn draws on them).
pub struct Household {
    /// The owner, then the members.
    pub members: Vec<Pooled>,
}

impl Household {
    /// What the owner may spend from the pool.
    pub fn spendable(&self) -> ledger::Points {
        ledger::Points(self.members.iter().map(|m| m.spendable.0).sum())
    }
}

/// The household pool member `m` owns or belongs to; `None` when it is in none. Blocking.
pub fn household(ops: &Ops, m: ledger::MemberId) -> Result<Option<Household>, OpError> {
    use ledger::core::transfers::PoolLink;
    let unknown = || OpError::new(Kind::UnknownMember, "no such member".to_string());
    let state = ops.ledger.member_state(m)?.ok_or_else(unknown)?;
    let (owner, owner_state) = match state.extras.as_deref().map(|x| &x.pool) {
        Some(PoolLink::Owner(_)) => (m, state),
        Some(PoolLink::Member(o)) => (*o, ops.ledger.member_state(*o)?.ok_or_else(unknown)?),
        _ => return Ok(None),
    };
    let policy = ops.ledger.expiry_in_force()?;
    let now = Timestamp::now();
    let spendable = |s: &ledger::core::state::MemberState| {
        let expired = ledger::core::expiry::expiring(s, policy.as_ref(), now, &[0]).within[0].1;
        ledger::Points((s.posted.0 - s.held.0 - expired.0).max(0))
    };
    let mut members = vec![Pooled {
        member: owner,
        spendable: spendable(&owner_state),
    }];
    for x in owner_state.pool_members() {
        let s = ops.ledger.member_state(*x)?.ok_or_else(unknown)?;
        members.push(Pooled {
            member: *x,
            spendable: spendable(&s),
        });
    }
    Ok(Some(Household { members }))
}

/// Joins `member` to `owner`'s household pool (an operator acting for both). Blocking.
pub fn join_household(
    ops: &Ops,
    reference: &str,
    owner: ledger::MemberId,
    member: ledger::MemberId,
    consent: &str,
) -> Result<ledger::Receipt, OpError> {
    check_change_reference(reference)?;
    super::check_consent(consent)?;
    Ok(ops.ledger.execute_blocking(ledger::Command::JoinPool {
        key: ledger::IdemKey::operator(format!("household/{reference}")),
        owner,
        member,
        consent: consent.to_string(),
    })?)
}

/// Takes `member` out of its household pool (an owner leaving dissolves it). Blocking.
pub fn leave_household(
    ops: &Ops,
    reference: &str,
    member: ledger::MemberId,
) -> Result<ledger::Receipt, OpError> {
    check_change_reference(reference)?;
    Ok(ops.ledger.execute_blocking(ledger::Command::LeavePool {
        key: ledger::IdemKey::operator(format!("household/{reference}")),
        member,
    })?)
}
