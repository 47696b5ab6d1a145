//! Members' claims: missing points (a purchase the partner did not post) and complaints. A claim
//! moves `open -> in_review -> accepted | rejected` (or straight from open to a decision), each
//! step recorded with who made it and when; nothing moves a decided claim.

use super::{text, within, Invalid};
use crate::programme::rates::Amount;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest claim text or resolution note, in characters.
pub const CLAIM_TEXT_CHARS_MAX: usize = 2_000;

/// What a claim is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimKind {
    /// Points the member should have earned for a purchase.
    MissingPoints,
    /// Anything else the member wants answered.
    Complaint,
}

/// A claim's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Filed, not yet looked at.
    Open,
    /// Being looked at.
    InReview,
    /// Accepted: for missing points, the earn is posted (or the partner's own posting of the
    /// receipt is named).
    Accepted,
    /// Rejected, with a note.
    Rejected,
}

impl ClaimStatus {
    /// Whether a claim in this status may move to `to`.
    pub fn may_become(self, to: ClaimStatus) -> bool {
        use ClaimStatus::*;
        matches!(
            (self, to),
            (Open, InReview)
                | (Open, Accepted)
                | (Open, Rejected)
                | (InReview, Accepted)
                | (InReview, Rejected)
        )
    }

    /// Whether the claim is decided.
    pub fn decided(self) -> bool {
        matches!(self, ClaimStatus::Accepted | ClaimStatus::Rejected)
    }
}

/// A claim as a member files it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimInput {
    /// Missing points, or a complaint.
    pub kind: ClaimKind,
    /// The partner it is about.
    #[serde(deserialize_with = "crate::programme::whole")]
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    pub partner_id: u32,
    /// Missing points: the purchase's date (`YYYY-MM-DD`, the programme's local date).
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub purchase_date: Option<String>,
    /// Missing points: the partner's receipt or booking reference (its idempotency key for the
    /// earn, so the claim and the partner's own posting never both count).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = "^[!-~]+$")]
    pub receipt_reference: Option<String>,
    /// Missing points: what was bought, in the unit of the partner's rate table.
    #[serde(default)]
    pub amount: Option<Amount>,
    /// Missing points: the branch, for branch rates.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 32)]
    pub branch: Option<String>,
    /// The member's words.
    #[schema(min_length = 1, max_length = 2000)]
    pub text: String,
}

impl ClaimInput {
    /// Checks the fields a kind needs are given, and every bound the schema states.
    pub fn check(&self) -> Result<(), Invalid> {
        within("partner_id", self.partner_id, 1, i32::MAX as u32)?;
        text("text", &self.text, CLAIM_TEXT_CHARS_MAX)?;
        if self.kind == ClaimKind::MissingPoints {
            let (Some(_), Some(r), Some(_)) =
                (&self.purchase_date, &self.receipt_reference, &self.amount)
            else {
                return Err(Invalid(
                    "a missing-points claim gives purchase_date, receipt_reference and amount"
                        .into(),
                ));
            };
            let ok = !r.is_empty() && r.len() <= 100 && r.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(Invalid(
                    "receipt_reference is 1 to 100 printable ASCII characters".into(),
                ));
            }
        }
        if let Some(b) = &self.branch {
            text("branch", b, 32)?;
        }
        Ok(())
    }

    /// The purchase date, parsed.
    pub fn date(&self) -> Result<Option<chrono::NaiveDate>, Invalid> {
        self.purchase_date
            .as_deref()
            .map(|d| {
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| Invalid(format!("purchase_date {d:?} is not a date")))
            })
            .transpose()
    }
}

/// Whether a purchase on `purchase` may still be claimed on `today` under a limit of
/// `window_days`: not in the future, and at most that many days ago.
pub fn in_time(purchase: chrono::NaiveDate, today: chrono::NaiveDate, window_days: u32) -> bool {
    let age = (today - purchase).num_days();
    (0..=i64::from(window_days)).contains(&age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn a_decided_claim_stays_decided() {
        use ClaimStatus::*;
        assert!(Open.may_become(InReview));
        assert!(InReview.may_become(Accepted));
        assert!(!Accepted.may_become(Rejected));
        assert!(!Rejected.may_become(Accepted));
        assert!(!InReview.may_become(Open));
    }

    #[test]
    fn a_claim_must_fall_within_the_programme_limit() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(in_time(d("2026-11-01"), d("2026-11-30"), 30));
        assert!(in_time(d("2026-10-31"), d("2026-11-30"), 30));
        assert!(!in_time(d("2026-10-30"), d("2026-11-30"), 30));
        assert!(
            !in_time(d("2026-12-01"), d("2026-11-30"), 30),
            "not in the future"
        );
    }
}
