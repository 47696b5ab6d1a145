//! Points expiry: the programme's policy (rolling, inactivity, tier exemption, never), when a
//! lot expires, when a member's points expire for inactivity, and what a member may still
//! spend at an instant. Expired points are never spendable from the instant they expire, even
//! before the `expire` transaction that moves them to `programme/breakage` is posted.
//!
//! Policy changes are never retroactive: a lot keeps the expiry it was given when earned, and
//! the inactivity clock of a policy counts from no earlier than the policy's start, unless the
//! operator sets `retroactive` (an explicit migration).

use crate::core::types::Timestamp;
use chrono::Datelike;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The UTC month (months since 1970-01) of `t`.
///
/// Each thread keeps the bounds of the last month it computed: the lots of a batch mostly
/// expire in a few months, and a comparison of two instants costs a small part of a calendar
/// date (chrono's date of every new lot's expiry was 6% of the projector's time).
pub fn utc_month(t: Timestamp) -> u32 {
    thread_local! {
        /// The last month computed: its first instant, the next month's, and its number.
        static LAST: std::cell::Cell<(i64, i64, u32)> = const { std::cell::Cell::new((0, 0, 0)) };
    }
    LAST.with(|last| {
        let (start, end, month) = last.get();
        if start <= t.0 && t.0 < end {
            return month;
        }
        let (month, bounds) = utc_month_bounds(t);
        if let Some(bounds) = bounds {
            last.set((bounds.0, bounds.1, month));
        }
        month
    })
}

/// The UTC month of `t` from the calendar, with the month's first instant and the next
/// month's, in milliseconds (none when `t` is outside the calendar's range).
fn utc_month_bounds(t: Timestamp) -> (u32, Option<(i64, i64)>) {
    let Some(d) = chrono::DateTime::from_timestamp_millis(t.0) else {
        return (0, None);
    };
    let month = u32::try_from((d.year() - 1970) * 12 + d.month0() as i32).unwrap_or(0);
    let first = d
        .date_naive()
        .with_day(1)
        .and_then(|day| day.and_hms_opt(0, 0, 0));
    let bounds = first.and_then(|first| {
        let next = first.checked_add_months(chrono::Months::new(1))?;
        Some((
            first.and_utc().timestamp_millis(),
            next.and_utc().timestamp_millis(),
        ))
    });
    (month, bounds)
}

/// What counts as activity for inactivity expiry, one bit each.
pub mod activity {
    /// Earning points.
    pub const EARN: u8 = 1;
    /// Burning points (a burn or a capture).
    pub const BURN: u8 = 2;
    /// Giving points in a transfer.
    pub const TRANSFER_OUT: u8 = 4;
    /// Receiving points in a transfer.
    pub const TRANSFER_IN: u8 = 8;
    /// An operator adjustment.
    pub const ADJUSTMENT: u8 = 16;
    /// Every kind.
    pub const ALL: u8 = EARN | BURN | TRANSFER_OUT | TRANSFER_IN | ADJUSTMENT;
    /// What counts when no policy says otherwise.
    pub const DEFAULT: u8 = EARN | BURN;
}

/// Where a rolling expiry is rounded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundTo {
    /// Exactly N months after the earn.
    Exact,
    /// The end of that month.
    MonthEnd,
    /// The end of that quarter.
    QuarterEnd,
    /// The end of that year.
    YearEnd,
}

/// Lots expire N months after they were earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rolling {
    /// Months, 1 to [`MONTHS_MAX`].
    pub months: u16,
    /// Rounding.
    pub round_to: RoundTo,
}

/// All of a member's points expire after N months without a qualifying activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inactivity {
    /// Months, 1 to [`MONTHS_MAX`].
    pub months: u16,
    /// Which activities count ([`activity`] bits).
    pub activities: u8,
}

/// Longest expiry period, in months (100 years).
pub const MONTHS_MAX: u16 = 1200;

/// The programme's expiry policy. With none set, lots expire after their partner contract's
/// `points_validity_days`, if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryPolicy {
    /// Rolling expiry of each lot; `None`: lots earned under this policy never expire by age.
    pub rolling: Option<Rolling>,
    /// Inactivity expiry of all a member's points; `None`: none.
    pub inactivity: Option<Inactivity>,
    /// Members at this tier level or above keep all their points while there.
    pub exempt_from_tier: Option<u8>,
    /// IANA time zone months and period ends are counted in.
    pub time_zone: String,
    /// Count inactivity from each member's last activity even before this policy began (an
    /// explicit migration); otherwise from no earlier than its start.
    pub retroactive: bool,
    /// Who set it and why.
    pub note: crate::core::types::ChangeNote,
}

/// Why a policy cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The time zone is not an IANA name.
    TimeZone,
    /// A month count is 0 or above [`MONTHS_MAX`].
    Months,
    /// Inactivity counts no activity.
    Activities,
}

/// The expiry policy as stored: the policy and when it took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// The policy.
    pub policy: ExpiryPolicy,
    /// When it took effect.
    pub since: Timestamp,
}

impl InForce {
    /// The stored form.
    pub fn stored(&self) -> StoredPolicy {
        StoredPolicy {
            policy: self.policy.clone(),
            since: self.since,
        }
    }
}

/// A policy in force: since when, with its time zone parsed and its calendar computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    /// The policy.
    pub policy: ExpiryPolicy,
    /// When it took effect (its transaction's time).
    pub since: Timestamp,
    tz: Tz,
    cal: std::sync::Arc<crate::core::tiers::Calendar>,
}

impl ExpiryPolicy {
    /// Checks the policy.
    pub fn check(&self) -> Result<Tz, PolicyError> {
        let tz: Tz = self.time_zone.parse().map_err(|_| PolicyError::TimeZone)?;
        let months_ok = |m: u16| (1..=MONTHS_MAX).contains(&m);
        if self.rolling.is_some_and(|r| !months_ok(r.months))
            || self.inactivity.is_some_and(|i| !months_ok(i.months))
        {
            return Err(PolicyError::Months);
        }
        if self
            .inactivity
            .is_some_and(|i| i.activities & activity::ALL == 0)
        {
            return Err(PolicyError::Activities);
        }
        Ok(tz)
    }

    /// The policy in force from `since`; `None` if it does not check.
    pub fn in_force(self, since: Timestamp) -> Option<InForce> {
        let tz = self.check().ok()?;
        Some(InForce {
            policy: self,
            since,
            tz,
            cal: crate::core::tiers::Calendar::of(tz),
        })
    }
}

impl InForce {
    /// When a lot earned at `at` expires under this policy; `None`: never. Months are counted by
    /// the policy's calendar: the same offset into the month N months later (capped at that
    /// month's end), or the start of the month, quarter or year after it.
    pub fn lot_expiry(&self, at: Timestamp) -> Option<Timestamp> {
        let r = self.policy.rolling?;
        let m = self.cal.month(at);
        let target = m + u32::from(r.months);
        let first_after = match r.round_to {
            RoundTo::Exact => {
                let into = at.0 - self.cal.start(m).0;
                let (start, next) = (self.cal.start(target), self.cal.start(target + 1));
                return Some(Timestamp(
                    start.0.saturating_add(into).min(next.0.saturating_sub(1)),
                ));
            }
            RoundTo::MonthEnd => target + 1,
            RoundTo::QuarterEnd => (target / 3 + 1) * 3,
            RoundTo::YearEnd => (target / 12 + 1) * 12,
        };
        Some(self.cal.start(first_after))
    }

    /// When all the points of a member last active at `last` expire for inactivity; `None`:
    /// never.
    pub fn inactivity_deadline(&self, last: Timestamp) -> Option<Timestamp> {
        let i = self.policy.inactivity?;
        let from = if self.policy.retroactive {
            last
        } else {
            last.max(self.since)
        };
        // N months on by the calendar: the same offset into the month N months later, capped
        // at that month's end (so 31 January plus one month is the last instant of February).
        let m = self.cal.month(from);
        let into = from.0 - self.cal.start(m).0;
        let target = m + u32::from(i.months);
        let (start, next) = (self.cal.start(target), self.cal.start(target + 1));
        Some(Timestamp(
            start.0.saturating_add(into).min(next.0.saturating_sub(1)),
        ))
    }

    /// Which activities count.
    pub fn activities(&self) -> u8 {
        self.policy
            .inactivity
            .map_or(activity::DEFAULT, |i| i.activities)
    }

    /// Whether a member at tier `level` keeps its points.
    pub fn exempt(&self, level: u8) -> bool {
        self.policy.exempt_from_tier.is_some_and(|t| level >= t)
    }
}

/// What of a member's points expires soon, for reminders and the member's own view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expiring {
    /// Dated lots expiring by the furthest horizon: when, and how many points.
    pub lots: Vec<(Timestamp, crate::core::types::Points)>,
    /// When all the member's points expire for inactivity, if they are due to.
    pub inactivity_deadline: Option<Timestamp>,
    /// Points expiring within each horizon, in days (all of them if the inactivity deadline
    /// falls inside).
    pub within: Vec<(u16, crate::core::types::Points)>,
    /// The member's tier keeps its points.
    pub exempt: bool,
}

/// What of member state `s`'s points expires within each of `days` from `now` under `policy`.
/// Points already expired count as expiring now.
pub fn expiring(
    s: &crate::core::state::MemberState,
    policy: Option<&InForce>,
    now: Timestamp,
    days: &[u16],
) -> Expiring {
    use crate::core::types::Points;
    let exempt = policy.is_some_and(|p| p.exempt(s.tier()));
    let horizon = |d: u16| Timestamp(now.0.saturating_add(i64::from(d) * 86_400_000));
    let furthest = horizon(days.iter().copied().max().unwrap_or(0));
    let inactivity_deadline = policy
        .filter(|_| !exempt && !s.lots.is_empty())
        .and_then(|p| p.inactivity_deadline(s.last_activity.max(s.enrolled)));
    let total: i64 = s.lots.total();
    let by = |t: Timestamp| -> i64 {
        if exempt {
            return 0;
        }
        if inactivity_deadline.is_some_and(|d| d <= t) {
            return total;
        }
        s.lots
            .iter()
            .take_while(|l| l.expires_at.is_some_and(|e| e <= t))
            .map(|l| l.remaining.0)
            .sum()
    };
    Expiring {
        lots: if exempt {
            Vec::new()
        } else {
            s.lots
                .iter()
                .filter_map(|l| {
                    l.expires_at
                        .filter(|e| *e <= furthest)
                        .map(|e| (e, l.remaining))
                })
                .collect()
        },
        inactivity_deadline,
        within: days.iter().map(|&d| (d, Points(by(horizon(d))))).collect(),
        exempt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The month straight from the calendar, as `utc_month` computed it before it kept bounds.
    fn calendar_month(t: i64) -> u32 {
        let d = chrono::DateTime::from_timestamp_millis(t).unwrap_or_default();
        u32::try_from((d.year() - 1970) * 12 + d.month0() as i32).unwrap_or(0)
    }

    #[test]
    fn the_kept_month_bounds_answer_as_the_calendar_does() {
        let mut instants = vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        // Each side of every month's first instant from 1969 to 2101, leap Februaries included.
        for year in 1969..=2101 {
            for month in 1..=12 {
                let first = chrono::NaiveDate::from_ymd_opt(year, month, 1)
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .expect("a date")
                    .and_utc()
                    .timestamp_millis();
                instants.extend([first - 1, first, first + 1, first + 86_400_000 * 15]);
            }
        }
        // In order, backwards, and interleaved far apart, so the kept bounds are hit and missed.
        let mut mixed = instants.clone();
        mixed.reverse();
        let mut shuffled = instants.clone();
        {
            use rand::{seq::SliceRandom, SeedableRng};
            shuffled.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(7));
        }
        for t in instants.iter().chain(&mixed).chain(&shuffled) {
            assert_eq!(utc_month(Timestamp(*t)), calendar_month(*t), "at {t}");
        }
        assert_eq!(utc_month(Timestamp(ms("2024-02-29T23:59:59.999Z"))), 649);
        assert_eq!(utc_month(Timestamp(ms("2024-03-01T00:00:00Z"))), 650);
    }

    fn policy(rolling: Option<Rolling>, inactivity: Option<Inactivity>) -> InForce {
        ExpiryPolicy {
            rolling,
            inactivity,
            exempt_from_tier: Some(3),
            time_zone: "Asia/Tehran".into(),
            retroactive: false,
            note: Default::default(),
        }
        .in_force(Timestamp(0))
        .expect("checks")
    }

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("time")
            .timestamp_millis()
    }

    #[test]
    fn rolling_expiry_is_n_months_after_the_earn_rounded_to_the_period_end_in_local_time() {
        // 2026-11-15 12:00 in Tehran (+03:30).
        let earned = Timestamp(ms("2026-11-15T08:30:00Z"));
        let at = |round_to| {
            policy(
                Some(Rolling {
                    months: 36,
                    round_to,
                }),
                None,
            )
            .lot_expiry(earned)
        };
        assert_eq!(
            at(RoundTo::Exact),
            Some(Timestamp(ms("2029-11-15T08:30:00Z")))
        );
        // The end of November 2029 is midnight on 1 December, Tehran time.
        assert_eq!(
            at(RoundTo::MonthEnd),
            Some(Timestamp(ms("2029-11-30T20:30:00Z")))
        );
        assert_eq!(
            at(RoundTo::QuarterEnd),
            Some(Timestamp(ms("2029-12-31T20:30:00Z")))
        );
        assert_eq!(
            at(RoundTo::YearEnd),
            Some(Timestamp(ms("2029-12-31T20:30:00Z")))
        );
        let march = Timestamp(ms("2026-02-10T08:30:00Z"));
        let q = policy(
            Some(Rolling {
                months: 1,
                round_to: RoundTo::QuarterEnd,
            }),
            None,
        );
        assert_eq!(
            q.lot_expiry(march),
            Some(Timestamp(ms("2026-03-31T20:30:00Z")))
        );
        assert_eq!(policy(None, None).lot_expiry(march), None);
    }

    #[test]
    fn inactivity_counts_from_the_last_activity_but_never_from_before_the_policy() {
        let mut p = policy(
            None,
            Some(Inactivity {
                months: 18,
                activities: activity::DEFAULT,
            }),
        );
        p.since = Timestamp(ms("2026-06-01T00:00:00Z"));
        let before = Timestamp(ms("2025-01-01T00:00:00Z"));
        let after = Timestamp(ms("2026-07-01T00:00:00Z"));
        assert_eq!(
            p.inactivity_deadline(before),
            Some(Timestamp(ms("2027-12-01T00:00:00Z")))
        );
        assert_eq!(
            p.inactivity_deadline(after),
            Some(Timestamp(ms("2028-01-01T00:00:00Z")))
        );
        p.policy.retroactive = true;
        assert_eq!(
            p.inactivity_deadline(before),
            Some(Timestamp(ms("2026-07-01T00:00:00Z")))
        );
        assert!(p.exempt(3) && p.exempt(4) && !p.exempt(2));
    }

    #[test]
    fn a_policy_that_cannot_run_is_refused() {
        let mut p = policy(None, None).policy;
        p.time_zone = "Mars/Olympus".into();
        assert_eq!(p.check().err(), Some(PolicyError::TimeZone));
        p.time_zone = "UTC".into();
        p.rolling = Some(Rolling {
            months: 0,
            round_to: RoundTo::Exact,
        });
        assert_eq!(p.check().err(), Some(PolicyError::Months));
        p.rolling = None;
        p.inactivity = Some(Inactivity {
            months: 12,
            activities: 0,
        });
        assert_eq!(p.check().err(), Some(PolicyError::Activities));
    }
}
