//! Earn rules and campaigns: conditions on the purchase, its time in the programme's time zone
//! and the member; an effect (a multiplier on base points, a fixed bonus, a bonus per unit);
//! stacking by priority (exclusive or stackable); limits (caps per member per day, month and
//! campaign, a campaign budget) and who funds the points. Pure: no HTTP, no store.
//!
//! The order, written down once (`docs/programme.md`):
//! 1. the rate table prices the purchase into **base points** (`rates`);
//! 2. every campaign in force whose conditions hold computes its bonus from the base points
//!    (a multiplier of 2 adds base x 1), the purchase's quantity or a fixed number;
//! 3. campaigns are taken by priority, highest first (then lowest id): a stackable campaign
//!    adds its bonus; an exclusive one applies only if nothing applied before it, and then
//!    nothing after it does;
//! 4. the ledger grants each bonus what its caps and the campaign budget leave, atomically, and
//!    checks the member conditions only it can hold (first earn at the partner, days since
//!    enrolment);
//! 5. the points budget guard may refuse the earn or take it down to its base points.

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use ledger::{
    AwardLimits, AwardRequest, CampaignId, Funder, MemberCondition, PartnerId, Points, Timestamp,
    AWARDS_PER_EARN_MAX,
};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Longest campaign name, reason or author, in characters.
pub const TEXT_LEN_MAX: usize = 200;
/// Most values in one condition list.
pub const LIST_MAX: usize = 64;
/// Largest fixed bonus, cap or budget in points.
pub const POINTS_MAX: i64 = 1_000_000_000_000;
/// The grammar of a multiplier: 1 to 100 with up to 4 decimals.
pub const FACTOR_PATTERN: &str = r"^(?:[1-9][0-9]?(?:\.[0-9]{1,4})?|100(?:\.0{1,4})?)$";
/// The grammar of points per unit: a positive decimal up to 1,000,000 with up to 4 decimals.
pub const PER_UNIT_PATTERN: &str = r"^(?:[1-9][0-9]{0,5}(?:\.[0-9]{1,4})?|1000000(?:\.0{1,4})?|0\.(?:[1-9][0-9]{0,3}|0[1-9][0-9]{0,2}|00[1-9][0-9]?|000[1-9]))$";
/// The grammar of a minimum purchase: a decimal up to 10^12 with up to 3 decimals.
pub const MIN_AMOUNT_PATTERN: &str = r"^(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,3})?$";
/// A calendar date.
pub const DATE_PATTERN: &str = r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$";
/// A time of day, `HH:MM`.
pub const TIME_PATTERN: &str = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$";
/// A payment method or channel name.
pub const TAG_PATTERN: &str = r"^[a-z0-9_-]{1,32}$";

/// Days of the week, as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Day {
    fn of(w: Weekday) -> Day {
        match w {
            Weekday::Mon => Day::Mon,
            Weekday::Tue => Day::Tue,
            Weekday::Wed => Day::Wed,
            Weekday::Thu => Day::Thu,
            Weekday::Fri => Day::Fri,
            Weekday::Sat => Day::Sat,
            Weekday::Sun => Day::Sun,
        }
    }
}

/// When a campaign applies. Every list left empty matches anything; every condition given must
/// hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Partner ids.
    #[serde(default, deserialize_with = "crate::programme::whole_list")]
    #[schema(max_items = 64, value_type = Vec<u32>)]
    pub partners: Vec<u32>,
    /// Branch names (as partners send them).
    #[serde(default)]
    #[schema(max_items = 64, value_type = Vec<String>)]
    pub branches: Vec<String>,
    /// Product categories.
    #[serde(default)]
    #[schema(max_items = 64, value_type = Vec<String>)]
    pub categories: Vec<String>,
    /// Units of the purchase (`EUR`, `mile`, `litre`).
    #[serde(default)]
    #[schema(max_items = 64, value_type = Vec<String>)]
    pub units: Vec<String>,
    /// Smallest purchase, in the purchase's unit.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,3})?$")]
    pub min_amount: Option<String>,
    /// Days of the week, in the programme's time zone.
    #[serde(default)]
    #[schema(max_items = 7)]
    pub days_of_week: Vec<Day>,
    /// From this time of day (inclusive), in the programme's time zone.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub time_from: Option<String>,
    /// Until this time of day (exclusive); earlier than `time_from` spans midnight.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub time_until: Option<String>,
    /// At least this many whole days since the member enrolled.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(maximum = 100_000)]
    pub enrolled_days_min: Option<u32>,
    /// At most this many whole days since the member enrolled.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(maximum = 100_000)]
    pub enrolled_days_max: Option<u32>,
    /// Only the member's first earn at the partner.
    #[serde(default)]
    pub first_earn_at_partner: bool,
    /// Payment methods, when the partner sends one (`card`, `cash`, `wallet`).
    #[serde(default)]
    #[schema(max_items = 64, value_type = Vec<String>)]
    pub payment_methods: Vec<String>,
    /// Channels, when the partner sends one (`store`, `web`, `app`).
    #[serde(default)]
    #[schema(max_items = 64, value_type = Vec<String>)]
    pub channels: Vec<String>,
    /// Member tier levels (0 is the base level); the ledger checks the member's level when
    /// it posts the earn.
    #[serde(default, deserialize_with = "crate::programme::whole_list")]
    #[schema(max_items = 16)]
    pub tiers: Vec<u32>,
    /// Only in the member's birthday month (in the programme's time zone), from the birth date
    /// of its profile.
    #[serde(default)]
    pub birthday_month: bool,
    /// Only members in any of these segments (`/admin/v1/segments`), as of the last journal
    /// transaction the segment facts include.
    #[serde(default, deserialize_with = "crate::programme::whole_list")]
    #[schema(max_items = 16, value_type = Vec<u32>)]
    pub segments: Vec<u32>,
}

/// What a campaign gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    /// Base points times `factor` in all: the bonus is base x (factor - 1), rounded down.
    Multiplier {
        /// 1 to 100 (`"2"` is double points).
        #[schema(value_type = String, pattern = r"^(?:[1-9][0-9]?(?:\.[0-9]{1,4})?|100(?:\.0{1,4})?)$")]
        factor: String,
    },
    /// A fixed bonus.
    Fixed {
        /// Points.
        #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
        #[serde(deserialize_with = "crate::programme::whole")]
        points: i64,
    },
    /// A bonus per unit of the purchase (per litre, per mile, per euro), rounded down.
    PerUnit {
        /// Points per unit.
        #[schema(value_type = String)]
        points_per_unit: String,
    },
}

/// Caps and budget. Each left out is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most bonus points per member per day (programme time zone).
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub member_per_day: Option<i64>,
    /// Most bonus points per member per calendar month.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub member_per_month: Option<i64>,
    /// Most bonus points per member over the campaign.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub member_per_campaign: Option<i64>,
    /// Most bonus points the campaign gives in all.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub budget: Option<i64>,
    /// Whether a refund (reversal) gives its bonus back to the caps and the budget (default
    /// true).
    #[serde(default = "yes")]
    pub refund_returns_room: bool,
}

fn yes() -> bool {
    true
}

/// A campaign as an operator defines it: one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignDraft {
    /// Display name.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Why this version: recorded with its author.
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
    /// In force from this time (ms since the Unix epoch; default now, never in the past).
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 253_402_300_799_000_i64)]
    pub effective_from_ms: Option<i64>,
    /// `false` pauses the campaign from `effective_from_ms`.
    #[serde(default = "yes")]
    pub active: bool,
    /// First day (programme time zone), inclusive.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$")]
    pub starts_on: Option<String>,
    /// Last day, inclusive.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$")]
    pub ends_on: Option<String>,
    /// When it applies.
    #[serde(default)]
    pub conditions: Conditions,
    /// What it gives.
    pub effect: Effect,
    /// Higher first (default 0).
    #[serde(default, deserialize_with = "crate::programme::whole")]
    #[schema(maximum = 1_000_000)]
    pub priority: u32,
    /// Applies alone: only if no campaign of higher priority applied, and then no other does.
    #[serde(default)]
    pub exclusive: bool,
    /// Caps and budget.
    #[serde(default)]
    pub limits: Limits,
    /// The partner that pays for the bonus points (billed at its issuance price); left out, the
    /// programme pays from `programme/promotions`.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 4_294_967_295_u64)]
    pub funded_by: Option<u32>,
}

/// A stored campaign version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Campaign {
    /// Campaign id.
    pub id: u32,
    /// Version, from 1.
    pub version: u32,
    /// The definition.
    pub definition: CampaignDraft,
    /// In force from (ms since the Unix epoch).
    pub in_force_from_ms: i64,
    /// The operator who recorded this version.
    pub author: String,
    /// When it was recorded (ms since the Unix epoch).
    pub recorded_at_ms: i64,
}

/// Why a campaign definition cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

fn bad(msg: impl Into<String>) -> RuleError {
    RuleError(msg.into())
}

/// A campaign version compiled for evaluation: parsed once, when the registry changes.
#[derive(Debug, Clone)]
struct Compiled {
    id: u32,
    version: u32,
    from_ms: i64,
    active: bool,
    starts: Option<NaiveDate>,
    ends: Option<NaiveDate>,
    partners: Vec<u32>,
    branches: Vec<String>,
    categories: Vec<String>,
    units: Vec<String>,
    min_amount: Option<Decimal>,
    days: u8,
    time: Option<(NaiveTime, NaiveTime)>,
    payment_methods: Vec<String>,
    channels: Vec<String>,
    birthday_month: bool,
    segments: Vec<u32>,
    effect: CompiledEffect,
    priority: u32,
    exclusive: bool,
    funder: Funder,
    limits: Limits,
    requires: MemberCondition,
}

#[derive(Debug, Clone, Copy)]
enum CompiledEffect {
    Extra(Decimal),
    Fixed(i64),
    PerUnit(Decimal),
}

fn date(s: &Option<String>, what: &str) -> Result<Option<NaiveDate>, RuleError> {
    s.as_deref()
        .map(|d| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| bad(format!("{what} {d:?} is not a date")))
        })
        .transpose()
}

fn time(s: &Option<String>, what: &str) -> Result<Option<NaiveTime>, RuleError> {
    s.as_deref()
        .map(|t| {
            NaiveTime::parse_from_str(t, "%H:%M")
                .map_err(|_| bad(format!("{what} {t:?} is not HH:MM")))
        })
        .transpose()
}

fn decimal(s: &str, pattern: &str, what: &str) -> Result<Decimal, RuleError> {
    let ok = regex::Regex::new(pattern)
        .expect("rule grammars compile")
        .is_match(s);
    if !ok {
        return Err(bad(format!("{what} {s:?} does not match {pattern}")));
    }
    s.parse()
        .map_err(|_| bad(format!("{what} {s:?} is not a decimal")))
}

fn names(list: &[String], what: &str, max_len: usize) -> Result<(), RuleError> {
    if list.len() > LIST_MAX {
        return Err(bad(format!("at most {LIST_MAX} {what}")));
    }
    if list
        .iter()
        .any(|s| s.is_empty() || s.chars().count() > max_len)
    {
        return Err(bad(format!(
            "{what} must be 1 to {max_len} characters each"
        )));
    }
    Ok(())
}

fn text(s: &str, what: &str) -> Result<(), RuleError> {
    if s.trim().is_empty() || s.chars().count() > TEXT_LEN_MAX {
        return Err(bad(format!(
            "{what} must be 1 to {TEXT_LEN_MAX} characters"
        )));
    }
    Ok(())
}

fn tags(list: &[String], what: &str) -> Result<(), RuleError> {
    names(list, what, 32)?;
    let grammar = regex::Regex::new(TAG_PATTERN).expect("tag grammar compiles");
    match list.iter().find(|t| !grammar.is_match(t)) {
        Some(t) => Err(bad(format!("{what} {t:?} does not match {TAG_PATTERN}"))),
        None => Ok(()),
    }
}

impl CampaignDraft {
    /// Checks the definition and compiles it; every error says which field and why.
    pub fn check(&self) -> Result<(), RuleError> {
        self.compile(0, 0, 0).map(|_| ())
    }

    fn compile(&self, id: u32, version: u32, from_ms: i64) -> Result<Compiled, RuleError> {
        text(&self.name, "name")?;
        text(&self.reason, "reason")?;
        let c = &self.conditions;
        names(&c.branches, "branches", super::rates::NAME_LEN_MAX)?;
        names(&c.categories, "categories", super::rates::NAME_LEN_MAX)?;
        names(&c.units, "units", super::rates::NAME_LEN_MAX)?;
        tags(&c.payment_methods, "payment methods")?;
        tags(&c.channels, "channels")?;
        if c.partners.len() > LIST_MAX || c.partners.contains(&0) {
            return Err(bad(format!(
                "partners: at most {LIST_MAX} ids, each from 1"
            )));
        }
        if c.tiers.iter().any(|t| *t > 15) {
            return Err(bad("tiers are levels 0 to 15"));
        }
        if c.segments.len() > 16 || c.segments.contains(&0) {
            return Err(bad("segments: at most 16 ids, each from 1"));
        }
        let starts = date(&self.starts_on, "starts_on")?;
        let ends = date(&self.ends_on, "ends_on")?;
        if let (Some(s), Some(e)) = (starts, ends) {
            if e < s {
                return Err(bad("ends_on is before starts_on"));
            }
        }
        let time = match (
            time(&c.time_from, "time_from")?,
            time(&c.time_until, "time_until")?,
        ) {
            (None, None) => None,
            (Some(f), Some(u)) if f != u => Some((f, u)),
            (Some(_), Some(_)) => return Err(bad("time_from and time_until must differ")),
            _ => return Err(bad("give both time_from and time_until, or neither")),
        };
        if let (Some(lo), Some(hi)) = (c.enrolled_days_min, c.enrolled_days_max) {
            if hi < lo {
                return Err(bad("enrolled_days_max is below enrolled_days_min"));
            }
        }
        let min_amount = c
            .min_amount
            .as_deref()
            .map(|m| decimal(m, MIN_AMOUNT_PATTERN, "min_amount"))
            .transpose()?;
        let effect = match &self.effect {
            Effect::Multiplier { factor } => {
                CompiledEffect::Extra(decimal(factor, FACTOR_PATTERN, "factor")? - Decimal::ONE)
            }
            Effect::Fixed { points } if (1..=POINTS_MAX).contains(points) => {
                CompiledEffect::Fixed(*points)
            }
            Effect::Fixed { .. } => {
                return Err(bad(format!("fixed points must be 1 to {POINTS_MAX}")))
            }
            Effect::PerUnit { points_per_unit } => CompiledEffect::PerUnit(decimal(
                points_per_unit,
                PER_UNIT_PATTERN,
                "points_per_unit",
            )?),
        };
        let l = &self.limits;
        for (v, what) in [
            (l.member_per_day, "member_per_day"),
            (l.member_per_month, "member_per_month"),
            (l.member_per_campaign, "member_per_campaign"),
            (l.budget, "budget"),
        ] {
            if v.is_some_and(|v| !(1..=POINTS_MAX).contains(&v)) {
                return Err(bad(format!("{what} must be 1 to {POINTS_MAX}")));
            }
        }
        if self.funded_by == Some(0) {
            return Err(bad("funded_by is a partner id, from 1"));
        }
        Ok(Compiled {
            id,
            version,
            from_ms,
            active: self.active,
            starts,
            ends,
            partners: c.partners.clone(),
            branches: c.branches.clone(),
            categories: c.categories.clone(),
            units: c.units.clone(),
            min_amount,
            days: c.days_of_week.iter().fold(0u8, |m, d| m | 1 << (*d as u8)),
            time,
            payment_methods: c.payment_methods.clone(),
            channels: c.channels.clone(),
            birthday_month: c.birthday_month,
            segments: c.segments.clone(),
            effect,
            priority: self.priority,
            exclusive: self.exclusive,
            funder: match self.funded_by {
                Some(p) => Funder::Partner(PartnerId(p)),
                None => Funder::Programme,
            },
            limits: self.limits,
            requires: MemberCondition {
                first_earn_at_partner: c.first_earn_at_partner,
                enrolled_days_min: c.enrolled_days_min,
                enrolled_days_max: c.enrolled_days_max,
                tiers: c.tiers.iter().fold(0u16, |m, t| m | 1 << (*t).min(15)),
            },
        })
    }
}

/// The programme's clock: its time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgrammeClock {
    /// The IANA time zone.
    pub tz: Tz,
}

impl Default for ProgrammeClock {
    fn default() -> Self {
        ProgrammeClock { tz: Tz::UTC }
    }
}

/// A moment in the programme's time zone, with the period numbers caps and the guard count in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// The local date.
    pub date: NaiveDate,
    /// The local time of day.
    pub time: NaiveTime,
    /// Days since 1970-01-01 (local).
    pub day: u32,
    /// Months since 1970-01 (local).
    pub month: u32,
}

impl LocalTime {
    /// Quarters since 1970-Q1.
    pub fn quarter(&self) -> u32 {
        self.month / 3
    }

    /// Years since 1970.
    pub fn year(&self) -> u32 {
        self.month / 12
    }
}

impl ProgrammeClock {
    /// `at` in the programme's time zone.
    pub fn local(&self, at: Timestamp) -> LocalTime {
        let utc = chrono::DateTime::from_timestamp_millis(at.0).unwrap_or_default();
        let local = self.tz.from_utc_datetime(&utc.naive_utc()).naive_local();
        let date = local.date();
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date");
        let day = u32::try_from(date.signed_duration_since(epoch).num_days()).unwrap_or(0);
        let month = u32::try_from((date.year() - 1970) * 12 + date.month0() as i32).unwrap_or(0);
        LocalTime {
            date,
            time: local.time().with_nanosecond(0).unwrap_or_default(),
            day,
            month,
        }
    }
}

/// What the rules see of one earn.
#[derive(Clone)]
pub struct EarnFacts<'a> {
    /// The earning partner.
    pub partner: PartnerId,
    /// Branch, if sent.
    pub branch: Option<&'a str>,
    /// Category, if sent.
    pub category: Option<&'a str>,
    /// The purchase's unit.
    pub unit: &'a str,
    /// The purchase's quantity.
    pub quantity: Decimal,
    /// Base points from the rate table.
    pub base: Points,
    /// When, in the programme's time zone.
    pub at: LocalTime,
    /// Payment method, if sent.
    pub payment_method: Option<&'a str>,
    /// Channel, if sent.
    pub channel: Option<&'a str>,
    /// What the rules may ask of the member (`None`: nothing known, so birthday and segment
    /// conditions do not hold).
    pub member: Option<&'a dyn MemberSignals>,
}

/// What campaign conditions may ask about the earning member.
pub trait MemberSignals {
    /// The month (1 to 12) of the member's birth date, if its profile has one.
    fn birth_month(&self) -> Option<u32>;
    /// Whether the member is in segment `id`.
    fn in_segment(&self, id: u32) -> bool;
}

/// A campaign that applied to an earn, before the ledger's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The campaign.
    pub campaign: u32,
    /// Its version.
    pub version: u32,
    /// Bonus points its effect computed.
    pub points: i64,
    /// Member conditions the ledger checks at posting.
    pub requires: MemberCondition,
    /// Who pays.
    pub funder: Funder,
    /// Caps and budget.
    pub limits: Limits,
}

impl Applied {
    /// The ledger's award request, with the caps counted in the earn's local day and month.
    pub fn request(&self, at: LocalTime) -> AwardRequest {
        let l = &self.limits;
        AwardRequest {
            campaign: CampaignId(self.campaign),
            version: self.version,
            points: Points(self.points),
            funder: self.funder,
            limits: AwardLimits {
                member_day: l.member_per_day.map(Points),
                member_month: l.member_per_month.map(Points),
                member_total: l.member_per_campaign.map(Points),
                budget: l.budget.map(Points),
                day: at.day,
                month: at.month,
                refund_returns_room: l.refund_returns_room,
            },
            requires: self.requires,
        }
    }
}

/// Every campaign version, compiled; evaluation picks the version in force.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Versions per campaign, oldest `from_ms` first.
    campaigns: BTreeMap<u32, Vec<Compiled>>,
}

impl RuleSet {
    /// Compiles every stored version. A version that no longer compiles (stored by an older
    /// gateway) is left out and named in the error list.
    pub fn build(versions: &[Campaign]) -> (RuleSet, Vec<String>) {
        let mut set = RuleSet::default();
        let mut errors = Vec::new();
        for c in versions {
            match c.definition.compile(c.id, c.version, c.in_force_from_ms) {
                Ok(k) => set.campaigns.entry(c.id).or_default().push(k),
                Err(e) => errors.push(format!("campaign {} version {}: {e}", c.id, c.version)),
            }
        }
        for v in set.campaigns.values_mut() {
            v.sort_by_key(|k| (k.from_ms, k.version));
        }
        (set, errors)
    }

    /// True when no campaign was ever defined.
    pub fn is_empty(&self) -> bool {
        self.campaigns.is_empty()
    }

    /// The campaigns that apply to an earn at `now`, in stacking order, with their bonuses.
    pub fn evaluate(&self, f: &EarnFacts<'_>, now: Timestamp) -> Vec<Applied> {
        let mut matching: Vec<&Compiled> = self
            .campaigns
            .values()
            .filter_map(|versions| versions.iter().rev().find(|k| k.from_ms <= now.0))
            .filter(|k| k.matches(f))
            .collect();
        matching.sort_by_key(|k| (std::cmp::Reverse(k.priority), k.id));
        let mut out = Vec::new();
        for k in matching {
            let points = k.bonus(f);
            if points <= 0 {
                continue;
            }
            if k.exclusive && !out.is_empty() {
                continue;
            }
            out.push(Applied {
                campaign: k.id,
                version: k.version,
                points,
                requires: k.requires,
                funder: k.funder,
                limits: k.limits,
            });
            if k.exclusive || out.len() == AWARDS_PER_EARN_MAX {
                break;
            }
        }
        out
    }

    /// The ledger's award requests for what [`RuleSet::evaluate`] found.
    pub fn awards(&self, f: &EarnFacts<'_>, now: Timestamp) -> Vec<AwardRequest> {
        self.evaluate(f, now)
            .iter()
            .map(|a| a.request(f.at))
            .collect()
    }
}

fn listed(list: &[String], v: Option<&str>) -> bool {
    list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
}

impl Compiled {
    fn matches(&self, f: &EarnFacts<'_>) -> bool {
        self.active
            && (self.partners.is_empty() || self.partners.contains(&f.partner.0))
            && listed(&self.units, Some(f.unit))
            && listed(&self.branches, f.branch)
            && listed(&self.categories, f.category)
            && listed(&self.payment_methods, f.payment_method)
            && listed(&self.channels, f.channel)
            && (!self.birthday_month
                || f.member.and_then(|m| m.birth_month()) == Some(f.at.date.month()))
            && (self.segments.is_empty()
                || f.member
                    .is_some_and(|m| self.segments.iter().any(|s| m.in_segment(*s))))
            && self.min_amount.is_none_or(|m| f.quantity >= m)
            && self.starts.is_none_or(|s| f.at.date >= s)
            && self.ends.is_none_or(|e| f.at.date <= e)
            && (self.days == 0 || self.days & (1 << (Day::of(f.at.date.weekday()) as u8)) != 0)
            && self.time.is_none_or(|(from, until)| {
                let t = f.at.time;
                if from < until {
                    from <= t && t < until
                } else {
                    t >= from || t < until
                }
            })
    }

    fn bonus(&self, f: &EarnFacts<'_>) -> i64 {
        let points = match self.effect {
            CompiledEffect::Extra(x) => Decimal::from(f.base.0) * x,
            CompiledEffect::Fixed(p) => Decimal::from(p),
            CompiledEffect::PerUnit(r) => f.quantity * r,
        };
        points
            .round_dp_with_strategy(0, RoundingStrategy::ToZero)
            .try_into()
            .unwrap_or(0i64)
            .clamp(0, POINTS_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(effect: Effect) -> CampaignDraft {
        CampaignDraft {
            name: "test".into(),
            reason: "test".into(),
            effective_from_ms: None,
            active: true,
            starts_on: None,
            ends_on: None,
            conditions: Conditions::default(),
            effect,
            priority: 0,
            exclusive: false,
            limits: Limits::default(),
            funded_by: None,
        }
    }

    fn double() -> CampaignDraft {
        draft(Effect::Multiplier { factor: "2".into() })
    }

    fn set(drafts: Vec<CampaignDraft>) -> RuleSet {
        let versions: Vec<Campaign> = drafts
            .into_iter()
            .enumerate()
            .map(|(i, d)| Campaign {
                id: i as u32 + 1,
                version: 1,
                definition: d,
                in_force_from_ms: 0,
                author: "t".into(),
                recorded_at_ms: 0,
            })
            .collect();
        let (s, errors) = RuleSet::build(&versions);
        assert!(errors.is_empty(), "{errors:?}");
        s
    }

    /// Friday 2026-11-27 18:30 in Tehran (15:00 UTC).
    const FRIDAY_EVENING: Timestamp = Timestamp(1_795_791_600_000);

    fn tehran() -> ProgrammeClock {
        ProgrammeClock {
            tz: chrono_tz::Asia::Tehran,
        }
    }

    fn facts(at: Timestamp) -> EarnFacts<'static> {
        EarnFacts {
            partner: PartnerId(2),
            branch: Some("station-003"),
            category: Some("premium-fuel"),
            unit: "litre",
            quantity: Decimal::new(405, 1),
            base: Points(162),
            at: tehran().local(at),
            payment_method: Some("card"),
            channel: Some("store"),
            member: None,
        }
    }

    struct Member {
        birth_month: Option<u32>,
        segments: Vec<u32>,
    }

    impl MemberSignals for Member {
        fn birth_month(&self) -> Option<u32> {
            self.birth_month
        }
        fn in_segment(&self, id: u32) -> bool {
            self.segments.contains(&id)
        }
    }

    #[test]
    fn birthday_and_segment_conditions_ask_the_member() {
        let mut d = draft(Effect::Fixed { points: 50 });
        d.conditions.birthday_month = true;
        let mut e = draft(Effect::Fixed { points: 70 });
        e.conditions.segments = vec![3, 4];
        let versions: Vec<Campaign> = [d, e]
            .into_iter()
            .enumerate()
            .map(|(i, definition)| Campaign {
                id: i as u32 + 1,
                version: 1,
                definition,
                in_force_from_ms: 0,
                author: "a".into(),
                recorded_at_ms: 0,
            })
            .collect();
        let (s, errors) = RuleSet::build(&versions);
        assert!(errors.is_empty(), "{errors:?}");
        let month = tehran().local(FRIDAY_EVENING).date.month();
        let mut f = facts(FRIDAY_EVENING);
        assert!(bonuses(&s, &f).is_empty(), "nothing known of the member");
        let born_then = Member {
            birth_month: Some(month),
            segments: vec![4],
        };
        f.member = Some(&born_then);
        assert_eq!(bonuses(&s, &f), vec![(1, 50), (2, 70)]);
        let other = Member {
            birth_month: Some(month % 12 + 1),
            segments: vec![5],
        };
        f.member = Some(&other);
        assert!(bonuses(&s, &f).is_empty());
    }

    fn bonuses(s: &RuleSet, f: &EarnFacts<'_>) -> Vec<(u32, i64)> {
        s.evaluate(f, FRIDAY_EVENING)
            .iter()
            .map(|a| (a.campaign, a.points))
            .collect()
    }

    #[test]
    fn effects_multiply_base_points_give_a_fixed_bonus_or_pay_per_unit_rounding_down() {
        let s = set(vec![
            double(),
            draft(Effect::Multiplier {
                factor: "1.5".into(),
            }),
            draft(Effect::Fixed { points: 500 }),
            draft(Effect::PerUnit {
                points_per_unit: "0.5".into(),
            }),
        ]);
        // 162 base: x2 adds 162, x1.5 adds 81, fixed 500, 40.5 litres x 0.5 = 20.25 -> 20.
        assert_eq!(
            bonuses(&s, &facts(FRIDAY_EVENING)),
            vec![(1, 162), (2, 81), (3, 500), (4, 20)]
        );
    }

    #[test]
    fn each_condition_must_hold() {
        let with = |f: &dyn Fn(&mut Conditions)| {
            let mut d = double();
            f(&mut d.conditions);
            d
        };
        let yes = [
            with(&|c| c.partners = vec![2]),
            with(&|c| c.branches = vec!["station-003".into()]),
            with(&|c| c.categories = vec!["premium-fuel".into()]),
            with(&|c| c.units = vec!["litre".into()]),
            with(&|c| c.min_amount = Some("40.5".into())),
            with(&|c| c.days_of_week = vec![Day::Fri]),
            with(&|c| {
                c.time_from = Some("18:30".into());
                c.time_until = Some("19:00".into());
            }),
            with(&|c| c.payment_methods = vec!["card".into()]),
            with(&|c| c.channels = vec!["store".into(), "web".into()]),
        ];
        let no = [
            with(&|c| c.partners = vec![1, 3]),
            with(&|c| c.branches = vec!["station-001".into()]),
            with(&|c| c.categories = vec!["diesel".into()]),
            with(&|c| c.units = vec!["EUR".into()]),
            with(&|c| c.min_amount = Some("40.501".into())),
            with(&|c| c.days_of_week = vec![Day::Sat, Day::Sun]),
            // 18:30 is the end of the window, which is exclusive.
            with(&|c| {
                c.time_from = Some("08:00".into());
                c.time_until = Some("18:30".into());
            }),
            with(&|c| c.payment_methods = vec!["cash".into()]),
            with(&|c| c.channels = vec!["app".into()]),
        ];
        let f = facts(FRIDAY_EVENING);
        for (i, d) in yes.into_iter().enumerate() {
            assert_eq!(
                bonuses(&set(vec![d]), &f),
                vec![(1, 162)],
                "condition {i} holds"
            );
        }
        for (i, d) in no.into_iter().enumerate() {
            assert_eq!(bonuses(&set(vec![d]), &f), vec![], "condition {i} fails");
        }
        // A branch condition fails when the partner sends no branch.
        let mut bare = facts(FRIDAY_EVENING);
        bare.branch = None;
        assert!(bonuses(
            &set(vec![with(&|c| c.branches = vec!["station-003".into()])]),
            &bare
        )
        .is_empty());
    }

    #[test]
    fn a_time_window_may_span_midnight_in_the_programme_time_zone() {
        let mut d = double();
        d.conditions.time_from = Some("22:00".into());
        d.conditions.time_until = Some("02:00".into());
        let s = set(vec![d]);
        // 22:00 Tehran is 18:30 UTC; 01:59 is 22:29 UTC; 02:00 is 22:30 UTC.
        let at = |utc_ms: i64| bonuses(&s, &facts(Timestamp(utc_ms)));
        let base = 1_795_791_600_000; // 15:00 UTC, 18:30 Tehran
        assert!(at(base + 12_600_000 - 1_000).is_empty(), "21:59:59");
        assert_eq!(at(base + 12_600_000).len(), 1, "22:00:00");
        assert_eq!(at(base + 27_000_000 - 1_000).len(), 1, "01:59:59");
        assert!(at(base + 27_000_000).is_empty(), "02:00:00");
    }

    #[test]
    fn a_calendar_window_counts_whole_local_days() {
        let mut d = double();
        d.starts_on = Some("2026-11-27".into());
        d.ends_on = Some("2026-11-27".into());
        let s = set(vec![d]);
        // 2026-11-26 20:29:59 UTC is 23:59:59 on the 26th in Tehran; a second later, the 27th.
        let eve = Timestamp(1_795_724_999_000);
        assert!(bonuses(&s, &facts(eve)).is_empty());
        assert_eq!(bonuses(&s, &facts(Timestamp(eve.0 + 1_000))).len(), 1);
        // The 27th ends at 20:30 UTC.
        let end = Timestamp(1_795_811_400_000);
        assert_eq!(bonuses(&s, &facts(Timestamp(end.0 - 1_000))).len(), 1);
        assert!(bonuses(&s, &facts(end)).is_empty());
    }

    #[test]
    fn stacking_takes_priority_order_and_an_exclusive_campaign_applies_alone() {
        let mut high = draft(Effect::Fixed { points: 100 });
        high.priority = 10;
        let mut exclusive = draft(Effect::Fixed { points: 300 });
        exclusive.priority = 5;
        exclusive.exclusive = true;
        let low = draft(Effect::Fixed { points: 7 });
        // The higher stackable campaign applied first, so the exclusive one is skipped.
        let s = set(vec![high.clone(), exclusive.clone(), low.clone()]);
        assert_eq!(bonuses(&s, &facts(FRIDAY_EVENING)), vec![(1, 100), (3, 7)]);
        // On top, the exclusive campaign applies and nothing after it.
        let mut top = exclusive.clone();
        top.priority = 20;
        let s = set(vec![high, top, low]);
        assert_eq!(bonuses(&s, &facts(FRIDAY_EVENING)), vec![(2, 300)]);
        // Equal priorities go by id.
        let s = set(vec![
            draft(Effect::Fixed { points: 1 }),
            draft(Effect::Fixed { points: 2 }),
        ]);
        assert_eq!(bonuses(&s, &facts(FRIDAY_EVENING)), vec![(1, 1), (2, 2)]);
    }

    #[test]
    fn the_version_in_force_is_the_latest_started_and_a_paused_one_gives_nothing() {
        let mut paused = double();
        paused.active = false;
        let versions = vec![
            Campaign {
                id: 1,
                version: 1,
                definition: double(),
                in_force_from_ms: 0,
                author: "a".into(),
                recorded_at_ms: 0,
            },
            Campaign {
                id: 1,
                version: 2,
                definition: paused,
                in_force_from_ms: FRIDAY_EVENING.0 + 1,
                author: "a".into(),
                recorded_at_ms: 0,
            },
        ];
        let (s, _) = RuleSet::build(&versions);
        let f = facts(FRIDAY_EVENING);
        assert_eq!(s.evaluate(&f, FRIDAY_EVENING).len(), 1);
        assert!(s.evaluate(&f, Timestamp(FRIDAY_EVENING.0 + 1)).is_empty());
    }

    #[test]
    fn definitions_the_programme_cannot_run_are_refused_with_the_reason() {
        type Change = Box<dyn Fn(&mut CampaignDraft)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|d| d.conditions.tiers = vec![16]), "tiers"),
            (Box::new(|d| d.conditions.segments = vec![0]), "segments"),
            (
                Box::new(|d| d.starts_on = Some("2026-02-30".into())),
                "not a date",
            ),
            (
                Box::new(|d| {
                    d.starts_on = Some("2026-03-02".into());
                    d.ends_on = Some("2026-03-01".into());
                }),
                "before",
            ),
            (
                Box::new(|d| d.conditions.time_from = Some("10:00".into())),
                "both",
            ),
            (
                Box::new(|d| {
                    d.effect = Effect::Multiplier {
                        factor: "0.5".into(),
                    }
                }),
                "factor",
            ),
            (
                Box::new(|d| d.effect = Effect::Fixed { points: 0 }),
                "fixed",
            ),
            (Box::new(|d| d.limits.budget = Some(0)), "budget"),
            (
                Box::new(|d| d.conditions.channels = vec!["Web Shop".into()]),
                "channels",
            ),
            (Box::new(|d| d.name = " ".into()), "name"),
        ];
        for (change, why) in cases {
            let mut d = double();
            change(&mut d);
            let e = d.check().expect_err(why);
            assert!(e.0.contains(why), "{why}: {}", e.0);
        }
    }
}
