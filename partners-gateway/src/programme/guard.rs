//! The points budget guard: a ceiling on the value of points issued as a share of the sales
//! that earned them, per period (month, quarter or year, in the programme's time zone), for the
//! programme and for each partner. The ledger holds the period totals and applies the ceiling
//! atomically (`ledger::GuardCheck`); this file defines the settings and numbers the periods.

use super::rules::{LocalTime, RuleError};
use ledger::{Currency, GuardAction, GuardCheck, GuardScope, PartnerId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The grammar of a ceiling: a share of sales from 0 to 1 with up to 6 decimals.
pub const CEILING_PATTERN: &str = r"^(?:0(?:\.[0-9]{1,6})?|1(?:\.0{1,6})?)$";

/// The period a ceiling counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Calendar month.
    Month,
    /// Calendar quarter.
    Quarter,
    /// Calendar year.
    Year,
}

/// What an earn above the ceiling gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnCeiling {
    /// Refused with `budget-ceiling`.
    Refuse,
    /// Posted with its base points only: no campaign bonus.
    BaseOnly,
}

/// A guard's settings, as an operator sets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardDraft {
    /// Most value of points per unit of sales (`"0.05"` is 5%).
    #[schema(value_type = String, example = "0.05", pattern = r"^(?:0(?:\.[0-9]{1,6})?|1(?:\.0{1,6})?)$")]
    pub ceiling: String,
    /// The period the ratio counts over.
    pub period: Period,
    /// What an earn above the ceiling gets.
    pub on_ceiling: OnCeiling,
    /// Percentages of the ceiling whose first crossing in a period is recorded (default 80
    /// and 100).
    #[serde(
        default = "default_thresholds",
        deserialize_with = "crate::programme::whole_list"
    )]
    #[schema(max_items = 4)]
    pub thresholds: Vec<u32>,
    /// `false` turns the guard off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Why: recorded with the author.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

fn yes() -> bool {
    true
}

fn default_thresholds() -> Vec<u32> {
    vec![80, 100]
}

/// A stored guard version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BudgetGuard {
    /// 0 for the programme, else the partner id.
    pub scope: u32,
    /// Version, from 1.
    pub version: u32,
    /// The settings.
    pub settings: GuardDraft,
    /// The operator who set it.
    pub author: String,
    /// When (ms since the Unix epoch).
    pub recorded_at_ms: i64,
}

impl GuardDraft {
    /// Checks the settings; the ceiling, parsed.
    pub fn check(&self) -> Result<Decimal, RuleError> {
        static GRAMMAR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(CEILING_PATTERN).expect("the ceiling grammar compiles")
        });
        if !GRAMMAR.is_match(&self.ceiling) {
            return Err(RuleError(format!(
                "ceiling {:?} does not match {CEILING_PATTERN}",
                self.ceiling
            )));
        }
        if self.thresholds.len() > ledger::GUARD_THRESHOLDS_MAX
            || self.thresholds.iter().any(|t| !(1..=255).contains(t))
        {
            return Err(RuleError(
                "thresholds: at most 4 percentages, each 1 to 255".into(),
            ));
        }
        if self.reason.trim().is_empty() || self.reason.chars().count() > 200 {
            return Err(RuleError("reason must be 1 to 200 characters".into()));
        }
        self.ceiling
            .parse()
            .map_err(|_| RuleError("ceiling is not a decimal".into()))
    }
}

impl Period {
    fn kind(self) -> u32 {
        match self {
            Period::Month => 1,
            Period::Quarter => 2,
            Period::Year => 3,
        }
    }
}

/// The ledger's number for the period of `p` that `at` falls in: kind x 10,000 + index.
pub fn period_key(p: Period, at: &LocalTime) -> u32 {
    let index = match p {
        Period::Month => at.month,
        Period::Quarter => at.quarter(),
        Period::Year => at.year(),
    };
    p.kind() * 10_000 + index
}

/// A period number as people write it: `2026-11`, `2026-Q4`, `2026`.
pub fn period_label(key: u32) -> String {
    let index = key % 10_000;
    match key / 10_000 {
        1 => format!("{}-{:02}", 1970 + index / 12, index % 12 + 1),
        2 => format!("{}-Q{}", 1970 + index / 4, index % 4 + 1),
        3 => format!("{}", 1970 + index),
        _ => format!("period-{key}"),
    }
}

impl BudgetGuard {
    /// The ledger's check for an earn at `at`; `None` when the guard is off or cannot run (a
    /// programme guard with no programme currency).
    pub fn check_at(
        &self,
        at: &LocalTime,
        programme_currency: Option<Currency>,
    ) -> Option<GuardCheck> {
        if !self.settings.enabled {
            return None;
        }
        // Checked when it was stored; on the earn path only parsed.
        let ceiling: Decimal = self.settings.ceiling.parse().ok()?;
        let (scope, currency) = match self.scope {
            0 => (GuardScope::Programme, Some(programme_currency?)),
            p => (GuardScope::Partner(PartnerId(p)), None),
        };
        Some(GuardCheck {
            scope,
            period: period_key(self.settings.period, at),
            currency,
            ceiling,
            action: match self.settings.on_ceiling {
                OnCeiling::Refuse => GuardAction::Refuse,
                OnCeiling::BaseOnly => GuardAction::BaseOnly,
            },
            thresholds: self
                .settings
                .thresholds
                .iter()
                .filter_map(|t| u8::try_from(*t).ok())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programme::rules::ProgrammeClock;
    use ledger::Timestamp;

    #[test]
    fn periods_are_numbered_and_named_in_the_programme_time_zone() {
        // 2026-12-31 22:00 UTC is 2027-01-01 01:30 in Tehran.
        let at = Timestamp(1_798_754_400_000);
        let utc = ProgrammeClock::default().local(at);
        let tehran = ProgrammeClock {
            tz: chrono_tz::Asia::Tehran,
        }
        .local(at);
        assert_eq!(period_label(period_key(Period::Month, &utc)), "2026-12");
        assert_eq!(period_label(period_key(Period::Month, &tehran)), "2027-01");
        assert_eq!(period_label(period_key(Period::Quarter, &utc)), "2026-Q4");
        assert_eq!(
            period_label(period_key(Period::Quarter, &tehran)),
            "2027-Q1"
        );
        assert_eq!(period_label(period_key(Period::Year, &tehran)), "2027");
    }
}
