//! Member-to-member transfers under the programme's transfer policy: a minimum, a maximum per
//! transfer, per day and per year for the giving member, and a fee in points to
//! `programme/fees`. Days and years are counted in the policy's time zone.

use crate::core::types::{Points, Timestamp};
use chrono::{Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The programme's transfer policy. Every limit left out is no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferPolicy {
    /// Smallest transfer.
    pub min: Option<Points>,
    /// Largest transfer.
    pub max_per_transfer: Option<Points>,
    /// Most a member gives per day.
    pub max_per_day: Option<Points>,
    /// Most a member gives per calendar year.
    pub max_per_year: Option<Points>,
    /// Fee in points the giver pays on each transfer, to `programme/fees`.
    pub fee: Points,
    /// IANA time zone days and years are counted in.
    pub time_zone: String,
    /// Who set it and why.
    pub note: crate::core::types::ChangeNote,
}

/// What a member has given: today and this year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TransferUse {
    /// The day `day_points` counts (days since 1970-01-01, local).
    pub day: u32,
    /// Points given that day.
    pub day_points: Points,
    /// The year `year_points` counts.
    pub year: i32,
    /// Points given that year.
    pub year_points: Points,
}

impl TransferUse {
    /// Points already given on `day` and in `year`.
    pub fn used(&self, day: u32, year: i32) -> (Points, Points) {
        (
            if self.day == day {
                self.day_points
            } else {
                Points::ZERO
            },
            if self.year == year {
                self.year_points
            } else {
                Points::ZERO
            },
        )
    }

    /// Counts `p` given on `day` in `year`.
    pub(crate) fn add(&mut self, p: Points, day: u32, year: i32) {
        let (d, y) = self.used(day, year);
        self.day = day;
        self.day_points = Points(d.0 + p.0);
        self.year = year;
        self.year_points = Points(y.0 + p.0);
    }
}

impl TransferPolicy {
    /// The time zone, if it is an IANA name.
    pub fn tz(&self) -> Option<Tz> {
        self.time_zone.parse().ok()
    }

    /// The local day (days since 1970-01-01) and year of `at`.
    pub fn day_and_year(&self, at: Timestamp) -> (u32, i32) {
        let tz = self.tz().unwrap_or(Tz::UTC);
        let local = tz
            .timestamp_millis_opt(at.0)
            .single()
            .map(|t| t.date_naive())
            .unwrap_or_default();
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date");
        let day = u32::try_from(local.signed_duration_since(epoch).num_days()).unwrap_or(0);
        (day, local.year())
    }
}

/// Most members a household pool holds besides its owner.
pub const POOL_MEMBERS_MAX: usize = 8;

/// A member's place in a household pool. Points never move when members join or leave: each
/// keeps its own lots, and the owner's burns draw on its own points first, then on each
/// member's in the order they joined, soonest expiry first within each.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PoolLink {
    /// In no pool.
    #[default]
    None,
    /// Owns the pool of these members, in the order they joined.
    Owner(thin_vec::ThinVec<crate::core::types::MemberId>),
    /// Belongs to the pool of this owner.
    Member(crate::core::types::MemberId),
}
