//! What the programme's rules need the ledger to hold atomically: campaign awards on an earn
//! (with per-member caps per day, month and campaign, and a campaign budget that is never
//! overspent), first-earn-at-a-partner, and the points budget guard (the value of points issued
//! as a share of the sales that earned them, per period).
//!
//! The gateway evaluates the rules (conditions, effects, stacking: `partners-gateway`'s
//! `programme::rules`) and hands the ledger the awards it computed with their limits; the ledger
//! grants each award what its limits leave, inside the one serial decision (single writer) or
//! the one serialisable store transaction (cluster path), so no two earns can both take the
//! last of a budget. Every counter changes only through [`State::apply`](crate::core::state)
//! from what the transaction records.

use crate::core::types::{Currency, MemberId, Money, PartnerId, Points, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A campaign (an earn rule with its own budget and caps), numbered by the gateway.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct CampaignId(pub u32);

/// Who pays for an award's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Funder {
    /// The programme operator: the points come from `programme/promotions`.
    Programme,
    /// A partner: the points come from its issuance account, billed at its issuance price.
    Partner(PartnerId),
}

/// Most awards one earn may carry.
pub const AWARDS_PER_EARN_MAX: usize = 16;
/// Most guard checks one earn may carry (the programme's and the partner's, per period kind).
pub const GUARD_CHECKS_MAX: usize = 8;
/// Most thresholds one guard check may raise events at.
pub const GUARD_THRESHOLDS_MAX: usize = 4;

/// A campaign's award on one earn, as the rules computed it, with the limits it is granted under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwardRequest {
    /// The campaign.
    pub campaign: CampaignId,
    /// The campaign version that computed it.
    pub version: u32,
    /// Points the rule's effect gives, before limits.
    pub points: Points,
    /// Who pays.
    pub funder: Funder,
    /// Caps and budget.
    pub limits: AwardLimits,
    /// Conditions on the member that only the ledger can check atomically.
    pub requires: MemberCondition,
}

/// The limits an award is granted under. `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AwardLimits {
    /// Most points per member per programme-local day.
    pub member_day: Option<Points>,
    /// Most points per member per programme-local month.
    pub member_month: Option<Points>,
    /// Most points per member over the campaign's life.
    pub member_total: Option<Points>,
    /// Most points the campaign awards in all.
    pub budget: Option<Points>,
    /// The earn's programme-local day (days since 1970-01-01) the day cap counts in.
    pub day: u32,
    /// The earn's programme-local month (months since 1970-01) the month cap counts in.
    pub month: u32,
    /// Whether a reversal gives the reversed points back to the caps and the budget.
    pub refund_returns_room: bool,
}

/// Member conditions the ledger checks when it grants an award.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberCondition {
    /// Only if the member has never earned at this partner before.
    pub first_earn_at_partner: bool,
    /// Only if the member enrolled at least this many whole days before the earn.
    pub enrolled_days_min: Option<u32>,
    /// Only if the member enrolled at most this many whole days before the earn.
    pub enrolled_days_max: Option<u32>,
    /// Only at these tier levels, one bit each (bit 0: the base level); 0: any level.
    pub tiers: u16,
}

/// Which limit reduced an award below what its rule computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limited {
    /// A member condition did not hold: nothing granted.
    Condition,
    /// The per-member daily cap.
    MemberDay,
    /// The per-member monthly cap.
    MemberMonth,
    /// The per-member campaign cap.
    MemberTotal,
    /// The campaign budget.
    Budget,
    /// The points budget guard took the earn down to its base points.
    Guard,
}

/// An award as granted, recorded on the earn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    /// The campaign.
    pub campaign: CampaignId,
    /// Its version.
    pub version: u32,
    /// Points the rule computed.
    pub asked: Points,
    /// Points granted.
    pub points: Points,
    /// What cut it, if anything did.
    pub limited: Option<Limited>,
    /// Who pays.
    pub funder: Funder,
    /// The funding partner's issuance price per point (zero for the programme).
    pub price_per_point: Money,
    /// The day and month the caps counted it in.
    pub day: u32,
    /// See `day`.
    pub month: u32,
    /// Whether a reversal gives room back.
    pub refund_returns_room: bool,
}

/// Where a guard ceiling applies.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub enum GuardScope {
    /// All partners together (earns in the check's currency).
    #[default]
    Programme,
    /// One partner.
    Partner(PartnerId),
}

/// What happens when an earn would take the ratio above the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuardAction {
    /// Refuse the earn.
    Refuse,
    /// Post the base points only: no bonus, no awards.
    BaseOnly,
}

/// The points budget guard on one earn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardRequest {
    /// The sale that earned the points.
    pub sale: Decimal,
    /// Its currency: the guard counts the earn only when it is the earning partner's contract
    /// currency.
    pub currency: Currency,
    /// The ceilings that apply.
    pub checks: Vec<GuardCheck>,
}

/// One ceiling: the value of points issued in `period` at most `ceiling` of the sales.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardCheck {
    /// Programme or partner.
    pub scope: GuardScope,
    /// The period the earn falls in (the gateway's numbering: see [`GuardKey`]).
    pub period: u32,
    /// The currency the check counts (earns in others are outside it); `None`: the earning
    /// partner's contract currency (a partner's own guard).
    pub currency: Option<Currency>,
    /// Most value of points per unit of sales (0.05 is 5%).
    pub ceiling: Decimal,
    /// What to do above it.
    pub action: GuardAction,
    /// Percentages of the ceiling at which the ratio's first crossing is recorded (80, 100).
    pub thresholds: Vec<u8>,
}

/// The guard's record on an earn: what it counted, and the thresholds this earn crossed first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardRecord {
    /// The sale counted.
    pub sale: Decimal,
    /// The value of the points posted (points times the earning partner's issuance price).
    pub value: Decimal,
    /// The periods counted in.
    pub keys: Vec<GuardKey>,
    /// Thresholds first crossed by this earn: (period, percent of the ceiling).
    pub crossed: Vec<(GuardKey, u8)>,
}

/// A guard counter: scope and period. Periods are numbered by the gateway: `kind * 10_000 +
/// index`, with kind 1 month (months since 1970-01), 2 quarter, 3 year.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct GuardKey {
    /// Programme or partner.
    pub scope: GuardScope,
    /// The period.
    pub period: u32,
}

/// What a reversal gives back of one award.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwardBack {
    /// The campaign.
    pub campaign: CampaignId,
    /// The version that granted the award.
    pub version: u32,
    /// Points taken back.
    pub points: Points,
    /// Who paid, and at what price.
    pub funder: Funder,
    /// See [`Granted::price_per_point`].
    pub price_per_point: Money,
    /// Room returned to caps and budget (zero when the campaign does not return it).
    pub room: Points,
    /// The day and month the caps counted the original in.
    pub day: u32,
    /// See `day`.
    pub month: u32,
}

/// What a reversal takes back from the guard's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardBack {
    /// Sales taken back (the reversed share of the original sale).
    pub sale: Decimal,
    /// Value taken back.
    pub value: Decimal,
    /// The original's periods.
    pub keys: Vec<GuardKey>,
}

/// The key of a programme counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CounterKey {
    /// Points a campaign has awarded (net of returned room).
    Campaign(CampaignId),
    /// A guard period's totals.
    Guard(GuardKey),
    /// A member has earned at a partner whose id is too large for the member's bitmap.
    EarnedAt(MemberId, PartnerId),
    /// Points in lots expiring in a month (UTC; months since 1970-01), not yet expired or spent.
    Expiring(u32),
    /// Units of a catalogue reward issued.
    Reward(crate::core::rewards::RewardId),
    /// Units of a catalogue reward one member has had.
    RewardMember(MemberId, crate::core::rewards::RewardId),
}

/// A programme counter's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Counter {
    /// Points awarded.
    Awarded(Points),
    /// A guard period's totals.
    Guard(GuardTotals),
    /// Presence.
    Seen,
    /// A number of points.
    Points(Points),
}

/// A member's use of each campaign it has had awards from, kept in the member's state (so it
/// is written with the member, not as a key of its own per member and campaign). A `ThinVec`:
/// one pointer in every member's state, no allocation until the first award.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CampaignUses(thin_vec::ThinVec<(CampaignId, MemberUse)>);

impl CampaignUses {
    /// Every campaign's use, in the order of their first awards, as the vector itself: for a
    /// prefetch that must not read its header.
    pub(crate) fn thin(&self) -> &thin_vec::ThinVec<(CampaignId, MemberUse)> {
        &self.0
    }

    /// The use of campaign `c`.
    pub fn get(&self, c: CampaignId) -> MemberUse {
        self.0
            .iter()
            .find(|(id, _)| *id == c)
            .map(|(_, u)| *u)
            .unwrap_or_default()
    }

    /// Counts `p` points (negative: room given back) on `day` and in `month`.
    pub(crate) fn add(&mut self, c: CampaignId, p: Points, day: u32, month: u32) {
        let v = &mut self.0;
        let i = match v.iter().position(|(id, _)| *id == c) {
            Some(i) => i,
            None => {
                v.push((c, MemberUse::default()));
                v.len() - 1
            }
        };
        v[i].1.add(p, day, month);
    }

    /// Every campaign used, with its use.
    pub fn iter(&self) -> impl Iterator<Item = &(CampaignId, MemberUse)> {
        self.0.iter()
    }
}

/// A member's use of a campaign: in all, in the current day and the current month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberUse {
    /// Points in all.
    pub total: Points,
    /// The day `day_points` counts.
    pub day: u32,
    /// Points on `day`.
    pub day_points: Points,
    /// The month `month_points` counts.
    pub month: u32,
    /// Points in `month`.
    pub month_points: Points,
}

impl MemberUse {
    /// Points already used on `day`.
    pub fn on_day(&self, day: u32) -> Points {
        if self.day == day {
            self.day_points
        } else {
            Points::ZERO
        }
    }

    /// Points already used in `month`.
    pub fn in_month(&self, month: u32) -> Points {
        if self.month == month {
            self.month_points
        } else {
            Points::ZERO
        }
    }

    /// Counts `p` points on `day` and in `month` (negative to give room back).
    pub(crate) fn add(&mut self, p: Points, day: u32, month: u32) {
        self.total.0 += p.0;
        if self.day == day {
            self.day_points.0 += p.0;
        } else if day > self.day && p.0 > 0 {
            self.day = day;
            self.day_points = p;
        }
        if self.month == month {
            self.month_points.0 += p.0;
        } else if month > self.month && p.0 > 0 {
            self.month = month;
            self.month_points = p;
        }
    }
}

/// A guard period's totals, and the thresholds already crossed in it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GuardTotals {
    /// Sales counted.
    pub sales: Decimal,
    /// Value of points issued.
    pub value: Decimal,
    /// Percentages of the ceiling whose crossing has been recorded.
    pub crossed: Vec<u8>,
}

impl GuardTotals {
    /// Value per unit of sales; `None` without sales.
    pub fn ratio(&self) -> Option<Decimal> {
        (!self.sales.is_zero()).then(|| self.value / self.sales)
    }
}

/// Whole days from `from` to `to` (zero if `to` is earlier).
pub(crate) fn whole_days(from: Timestamp, to: Timestamp) -> u32 {
    u32::try_from(to.0.saturating_sub(from.0).max(0) / 86_400_000).unwrap_or(u32::MAX)
}

/// Partner ids below this are kept in each member's bitmap; larger ones as counters.
pub const PARTNER_BITS: u32 = 64;

/// The bit of `partner` in a member's earned-at bitmap, if it has one.
pub(crate) fn partner_bit(partner: PartnerId) -> Option<u64> {
    (partner.0 < PARTNER_BITS).then(|| 1u64 << partner.0)
}

/// A programme policy as set: one of the ledger's three.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyOf {
    /// The expiry policy.
    Expiry(crate::core::expiry::ExpiryPolicy),
    /// The transfer policy.
    Transfer(crate::core::transfers::TransferPolicy),
    /// The tier policy.
    Tier(crate::core::tiers::TierPolicy),
}

impl PolicyOf {
    /// The kind's tag in the version keys: `e`, `t` or `r`.
    pub fn tag(&self) -> u8 {
        match self {
            PolicyOf::Expiry(_) => b'e',
            PolicyOf::Transfer(_) => b't',
            PolicyOf::Tier(_) => b'r',
        }
    }
}

/// One version of a programme policy, as its transaction set it: kept for every change, so
/// operators and auditors see what was in force when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// The transaction that set it.
    pub tx: crate::core::types::TxId,
    /// When it took effect.
    pub at: crate::core::types::Timestamp,
    /// The policy, with its change note.
    pub policy: PolicyOf,
}

impl PolicyVersion {
    /// The version `tx` records, if it sets a policy.
    pub fn of(tx: &crate::core::model::Transaction) -> Option<PolicyVersion> {
        use crate::core::model::TxKind;
        let policy = match &tx.kind {
            TxKind::ExpiryPolicySet(p) => PolicyOf::Expiry((**p).clone()),
            TxKind::TransferPolicySet(p) => PolicyOf::Transfer((**p).clone()),
            TxKind::TierPolicySet(p) => PolicyOf::Tier((**p).clone()),
            _ => return None,
        };
        Some(PolicyVersion {
            tx: tx.id,
            at: tx.at,
            policy,
        })
    }
}
