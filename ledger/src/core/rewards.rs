//! What engagement needs the ledger to hold atomically: a catalogue reward redeemed under its
//! stock, its per-member limit and its tier eligibility (so no two redemptions can both take the
//! last unit, on either write path), and points granted from the programme or a partner with
//! the origin they trace to (a referral, a survey answered, a draw's prize, a discount code).
//!
//! The gateway keeps the catalogue, the vouchers and the programmes; the ledger only counts
//! units and posts points. Counters change only through [`State::apply`](crate::core::state).

use crate::core::programme::Funder;
use crate::core::types::{MemberId, Money, PartnerId, Points};
use serde::{Deserialize, Serialize};

/// A catalogue reward, numbered by the gateway.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct RewardId(pub u32);

/// The limits a redemption is granted under, as the catalogue stated them when it was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RewardClaim {
    /// The reward.
    pub reward: RewardId,
    /// The catalogue version that priced it.
    pub version: u32,
    /// Most units ever issued (net of none: a returned voucher does not give its unit back);
    /// `None`: unlimited.
    pub stock: Option<u32>,
    /// Most units one member may have; `None`: unlimited.
    pub member_max: Option<u32>,
    /// Only at these tier levels, one bit each (bit 0: the base level); 0: any level.
    pub tiers: u16,
}

/// A catalogue reward redeemed: the member's points burned at the fulfilling partner, who is
/// reimbursed at its redemption price like any burn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redemption {
    /// Redeeming member.
    pub member: MemberId,
    /// The partner that fulfils the reward (its redemption account takes the points).
    pub partner: PartnerId,
    /// Points burned.
    pub points: Points,
    /// Reimbursement per point, from the contract at posting time.
    pub price_per_point: Money,
    /// What was redeemed, and under which limits.
    pub claim: RewardClaim,
    /// Units of the reward issued after this one, and the member's (the counters it left).
    pub issued: u32,
    /// See `issued`.
    pub member_issued: u32,
}

/// What a grant of points traces to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantKind {
    /// A referral's bonus (to the referrer or the referee).
    Referral,
    /// The reward for answering a survey.
    Survey,
    /// A draw's points prize.
    Draw,
    /// A discount code's points bonus.
    Code,
}

/// The origin of a grant: its kind, the gateway's record it came from, and a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantOrigin {
    /// What kind.
    pub kind: GrantKind,
    /// The gateway's record (the referral, survey, draw or code id).
    pub id: u64,
    /// Words an auditor can follow ("referrer of member 12").
    pub note: String,
}

/// Longest grant note, in bytes.
pub const GRANT_NOTE_LEN_MAX: usize = 256;

/// Points granted to a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The member.
    pub member: MemberId,
    /// Points granted.
    pub points: Points,
    /// Who pays: `programme/promotions`, or a partner's issuance account (billed).
    pub funder: Funder,
    /// The funding partner's issuance price per point; `None` for the programme.
    pub price_per_point: Option<Money>,
    /// What it traces to.
    pub origin: GrantOrigin,
}
