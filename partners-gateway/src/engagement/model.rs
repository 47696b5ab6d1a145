//! The definitions operators and partners give: rewards, discount code sets, the referral
//! policy, draws and surveys, each with the checks it must pass before it is stored.

use super::{text, within, Invalid};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most points any one reward, prize, bonus or answer reward gives or costs.
pub const POINTS_MAX: i64 = 1_000_000_000;
/// Longest name or question, in characters of any script.
pub const NAME_CHARS_MAX: usize = 200;
/// Most languages a text is given in.
pub const LANGUAGES_MAX: usize = 8;
/// Latest instant accepted (ms since the Unix epoch): the year 2200.
pub const INSTANT_MS_MAX: i64 = 7_258_118_400_000;

/// A text in one language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Localized {
    /// Language tag (`fa`, `en`, `en-GB`).
    #[schema(min_length = 2, max_length = 5, pattern = "^[a-z]{2}(-[A-Z]{2})?$")]
    pub language: String,
    /// The text.
    #[schema(min_length = 1, max_length = 200)]
    pub text: String,
}

/// Checks a text given per language: 1 to 8 languages, each once, each text 1 to 200
/// characters.
pub fn check_texts(field: &str, texts: &[Localized]) -> Result<(), Invalid> {
    if texts.is_empty() || texts.len() > LANGUAGES_MAX {
        return Err(Invalid(format!(
            "{field} is given in 1 to {LANGUAGES_MAX} languages"
        )));
    }
    for (i, t) in texts.iter().enumerate() {
        if !crate::members::profile::is_language_tag(&t.language) {
            return Err(Invalid(format!(
                "{field}: {:?} is not a language tag such as fa or en-GB",
                t.language
            )));
        }
        if texts[..i].iter().any(|o| o.language == t.language) {
            return Err(Invalid(format!("{field}: {} is given twice", t.language)));
        }
        text(field, &t.text, NAME_CHARS_MAX)?;
    }
    Ok(())
}

/// Checks an optional window `[from, until)` of instants.
pub fn check_window(from: Option<i64>, until: Option<i64>) -> Result<(), Invalid> {
    for (f, v) in [("valid_from_ms", from), ("valid_until_ms", until)] {
        if let Some(v) = v {
            within(f, v, 0, INSTANT_MS_MAX)?;
        }
    }
    if let (Some(f), Some(u)) = (from, until) {
        if u <= f {
            return Err(Invalid("valid_until_ms must be after valid_from_ms".into()));
        }
    }
    Ok(())
}

/// Whether `at` lies in the window `[from, until)`.
pub fn in_window(from: Option<i64>, until: Option<i64>, at: i64) -> bool {
    from.is_none_or(|f| at >= f) && until.is_none_or(|u| at < u)
}

/// Who pays for points the programme gives (a bonus, a prize, a reward for answering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Funding {
    /// The partner that pays (billed at its issuance price); absent: the programme
    /// (`programme/promotions`).
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    pub partner_id: Option<u32>,
}

impl Funding {
    /// The ledger's funder.
    pub fn funder(&self) -> ledger::Funder {
        match self.partner_id {
            Some(p) => ledger::Funder::Partner(ledger::PartnerId(p)),
            None => ledger::Funder::Programme,
        }
    }
}

/// What happens to a voucher's points when it expires unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnExpiry {
    /// The burn is reversed: the points come back to the member, and the partner's
    /// reimbursement is taken back with them.
    #[default]
    Return,
    /// The points stay redeemed (the partner keeps its reimbursement, as for an unused gift
    /// card).
    Forfeit,
}

/// A catalogue reward, as an operator or its fulfilling partner defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardSpec {
    /// Its name, per language.
    #[schema(min_items = 1, max_items = 8)]
    #[serde(deserialize_with = "super::objects")]
    pub names: Vec<Localized>,
    /// The partner that fulfils it (redeems its vouchers, and is reimbursed for its points).
    #[serde(deserialize_with = "crate::programme::whole")]
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    pub partner_id: u32,
    /// Its price in points.
    #[serde(deserialize_with = "crate::programme::whole")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub points: i64,
    /// Most vouchers ever issued; absent: unlimited.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 2_147_483_647)]
    pub stock: Option<u32>,
    /// Most vouchers one member may have; absent: unlimited.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    pub per_member_max: Option<u32>,
    /// When it is first offered (ms since the Unix epoch); absent: at once.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub valid_from_ms: Option<i64>,
    /// When it stops being offered; absent: never.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub valid_until_ms: Option<i64>,
    /// Days a voucher is valid from its issue (unless `voucher_expires_at_ms` comes first).
    #[serde(
        default = "default_voucher_days",
        deserialize_with = "crate::programme::whole"
    )]
    #[schema(minimum = 1, maximum = 3650)]
    pub voucher_days: u32,
    /// A fixed date every voucher expires at, when earlier than `voucher_days` gives.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub voucher_expires_at_ms: Option<i64>,
    /// What an unused voucher's points do when it expires.
    #[serde(default)]
    pub on_expiry: OnExpiry,
    /// Only members at these tier levels; empty: any.
    #[serde(default, deserialize_with = "crate::programme::whole_list")]
    #[schema(max_items = 16)]
    pub tiers: Vec<u32>,
    /// Only members in one of these segments; empty: any.
    #[serde(default, deserialize_with = "crate::programme::whole_list")]
    #[schema(max_items = 16)]
    pub segments: Vec<u32>,
    /// Whether it is offered (a retired reward keeps its vouchers).
    #[serde(default = "yes")]
    pub active: bool,
}

fn default_voucher_days() -> u32 {
    90
}

fn yes() -> bool {
    true
}

impl RewardSpec {
    /// Checks every bound the schema states, and the dates.
    pub fn check(&self) -> Result<(), Invalid> {
        check_texts("names", &self.names)?;
        within("partner_id", self.partner_id, 1, i32::MAX as u32)?;
        within("points", self.points, 1, POINTS_MAX)?;
        if let Some(s) = self.stock {
            within("stock", s, 0, i32::MAX as u32)?;
        }
        if let Some(m) = self.per_member_max {
            within("per_member_max", m, 1, i32::MAX as u32)?;
        }
        check_window(self.valid_from_ms, self.valid_until_ms)?;
        within("voucher_days", self.voucher_days, 1, 3650)?;
        if let Some(v) = self.voucher_expires_at_ms {
            within("voucher_expires_at_ms", v, 0, INSTANT_MS_MAX)?;
        }
        if self.tiers.len() > 16 || self.tiers.iter().any(|t| *t > 15) {
            return Err(Invalid("tiers are up to 16 levels, each 0 to 15".into()));
        }
        if self.segments.len() > 16
            || self
                .segments
                .iter()
                .any(|s| *s == 0 || *s > i32::MAX as u32)
        {
            return Err(Invalid(
                "segments are up to 16 segment ids, each 1 or more".into(),
            ));
        }
        Ok(())
    }

    /// The tier levels as the ledger's bitmap (0: any).
    pub fn tier_bits(&self) -> u16 {
        self.tiers.iter().fold(0u16, |b, t| b | 1 << (*t).min(15))
    }

    /// When a voucher issued at `at` expires.
    pub fn voucher_expiry(&self, at: i64) -> i64 {
        let by_days = at.saturating_add(i64::from(self.voucher_days) * 86_400_000);
        self.voucher_expires_at_ms
            .map_or(by_days, |fixed| fixed.min(by_days))
    }
}

/// What a discount code gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CodeEffect {
    /// Bonus points, granted on use.
    Points {
        /// Points.
        #[serde(deserialize_with = "crate::programme::whole")]
        #[schema(minimum = 1, maximum = 1_000_000_000)]
        points: i64,
        /// Who pays.
        #[serde(default, deserialize_with = "super::object")]
        funding: Funding,
    },
    /// A discount the partner applies at its till, named by a reference the partner knows.
    Discount {
        /// The partner's own reference for the discount (`10-percent-fuel`).
        #[schema(min_length = 1, max_length = 64)]
        reference: String,
    },
}

/// Whether the codes of a set are each used once, or one code is shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CodeKind {
    /// `count` unique codes, each usable once.
    Unique {
        /// How many codes to make.
        #[serde(deserialize_with = "crate::programme::whole")]
        #[schema(minimum = 1, maximum = 10_000)]
        count: u32,
    },
    /// One code everyone may use, up to `max_uses` times in all.
    Shared {
        /// The code (letters and digits; dashes and spaces are ignored).
        #[schema(min_length = 4, max_length = 40, pattern = "^[A-Za-z0-9 -]{4,40}$")]
        code: String,
        /// Most uses in all; absent: unlimited.
        #[serde(default, deserialize_with = "crate::programme::whole_option")]
        #[schema(minimum = 1, maximum = 2_147_483_647)]
        max_uses: Option<u32>,
    },
}

/// A set of discount codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeSetSpec {
    /// A name for operators.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Unique codes or one shared code.
    pub codes: CodeKind,
    /// What a use gives.
    pub effect: CodeEffect,
    /// Only at this partner; a discount needs one.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    pub partner_id: Option<u32>,
    /// Most uses per member.
    #[serde(default = "one", deserialize_with = "crate::programme::whole")]
    #[schema(minimum = 1, maximum = 1000)]
    pub per_member_max: u32,
    /// When the codes start to work (ms since the Unix epoch).
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub valid_from_ms: Option<i64>,
    /// When they stop.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub valid_until_ms: Option<i64>,
}

fn one() -> u32 {
    1
}

impl CodeSetSpec {
    /// Checks every bound the schema states, and that a discount names its partner.
    pub fn check(&self) -> Result<(), Invalid> {
        text("name", &self.name, NAME_CHARS_MAX)?;
        match &self.codes {
            CodeKind::Unique { count } => within("count", *count, 1, 10_000)?,
            CodeKind::Shared { code, max_uses } => {
                let n = super::codes::normalise(code).filter(|c| c.len() >= 4);
                if n.is_none() {
                    return Err(Invalid(
                        "a shared code is 4 to 40 letters and digits (dashes and spaces ignored)"
                            .into(),
                    ));
                }
                if let Some(m) = max_uses {
                    within("max_uses", *m, 1, i32::MAX as u32)?;
                }
            }
        }
        match &self.effect {
            CodeEffect::Points { points, funding } => {
                within("points", *points, 1, POINTS_MAX)?;
                if let Some(p) = funding.partner_id {
                    within("funding.partner_id", p, 1, i32::MAX as u32)?;
                }
            }
            CodeEffect::Discount { reference } => {
                text("reference", reference, 64)?;
                if self.partner_id.is_none() {
                    return Err(Invalid(
                        "a discount code names the partner_id that applies it".into(),
                    ));
                }
            }
        }
        if let Some(p) = self.partner_id {
            within("partner_id", p, 1, i32::MAX as u32)?;
        }
        within("per_member_max", self.per_member_max, 1, 1000)?;
        check_window(self.valid_from_ms, self.valid_until_ms)
    }
}

/// The referral programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferralPolicy {
    /// Whether new referrals are taken.
    pub enabled: bool,
    /// Points to the referrer.
    #[serde(deserialize_with = "crate::programme::whole")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub referrer_points: i64,
    /// Points to the referee.
    #[serde(deserialize_with = "crate::programme::whole")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub referee_points: i64,
    /// Who pays both bonuses.
    #[serde(default, deserialize_with = "super::object")]
    pub funding: Funding,
    /// Days after enrolling within which the referee's first qualifying earn must come.
    #[serde(deserialize_with = "crate::programme::whole")]
    #[schema(minimum = 1, maximum = 365)]
    pub window_days: u32,
    /// Fewest points the qualifying earn must give (the partner's base points).
    #[serde(default, deserialize_with = "crate::programme::whole")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub min_earn_points: i64,
    /// Most rewarded referrals per referrer; absent: no cap.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 100_000)]
    pub referrer_cap: Option<u32>,
    /// The start of a referral link; the member's code follows it.
    #[serde(default = "default_link_base")]
    #[schema(min_length = 1, max_length = 200)]
    pub link_base: String,
}

fn default_link_base() -> String {
    "/portal/join?ref=".into()
}

impl Default for ReferralPolicy {
    fn default() -> Self {
        ReferralPolicy {
            enabled: false,
            referrer_points: 0,
            referee_points: 0,
            funding: Funding::default(),
            window_days: 30,
            min_earn_points: 0,
            referrer_cap: None,
            link_base: default_link_base(),
        }
    }
}

impl ReferralPolicy {
    /// Checks every bound the schema states.
    pub fn check(&self) -> Result<(), Invalid> {
        within("referrer_points", self.referrer_points, 0, POINTS_MAX)?;
        within("referee_points", self.referee_points, 0, POINTS_MAX)?;
        if let Some(p) = self.funding.partner_id {
            within("funding.partner_id", p, 1, i32::MAX as u32)?;
        }
        within("window_days", self.window_days, 1, 365)?;
        within("min_earn_points", self.min_earn_points, 0, POINTS_MAX)?;
        if let Some(c) = self.referrer_cap {
            within("referrer_cap", c, 1, 100_000)?;
        }
        text("link_base", &self.link_base, 200)
    }
}

/// How a draw's entries come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryRule {
    /// One entry per `points_per_entry` points a member holds when the draw closes.
    PointsHeld {
        /// Points per entry.
        #[serde(deserialize_with = "crate::programme::whole")]
        #[schema(minimum = 1, maximum = 1_000_000_000)]
        points_per_entry: i64,
    },
    /// Entries bought by burning points at the sponsoring partner.
    Bought {
        /// Points per entry.
        #[serde(deserialize_with = "crate::programme::whole")]
        #[schema(minimum = 1, maximum = 1_000_000_000)]
        points_per_entry: i64,
        /// The partner whose redemption account takes the points.
        #[serde(deserialize_with = "crate::programme::whole")]
        #[schema(minimum = 1, maximum = 2_147_483_647)]
        partner_id: u32,
        /// Most entries one member may buy.
        #[serde(deserialize_with = "crate::programme::whole")]
        #[schema(minimum = 1, maximum = 100_000)]
        entries_per_member_max: u32,
    },
}

/// A draw's prize: points, or a reward from the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Prize {
    /// Points, granted to the winner.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub points: Option<i64>,
    /// Or a reward: its voucher is issued to the winner (the programme pays its points).
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    pub reward_id: Option<u32>,
    /// Who pays the points.
    #[serde(default, deserialize_with = "super::object")]
    pub funding: Funding,
}

/// A draw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrawSpec {
    /// A name, per language.
    #[schema(min_items = 1, max_items = 8)]
    #[serde(deserialize_with = "super::objects")]
    pub names: Vec<Localized>,
    /// How entries come.
    pub entry: EntryRule,
    /// The prizes, first prize first.
    #[schema(min_items = 1, max_items = 100)]
    #[serde(deserialize_with = "super::objects")]
    pub prizes: Vec<Prize>,
    /// When entries close (ms since the Unix epoch): the cut-off for points held.
    #[serde(deserialize_with = "crate::programme::whole")]
    #[schema(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub closes_at_ms: i64,
    /// `hex(SHA-256(seed))`, committed before the draw closes (may be given later, but before
    /// it closes).
    #[serde(default)]
    #[schema(min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")]
    pub commitment: Option<String>,
}

impl DrawSpec {
    /// Checks every bound the schema states.
    pub fn check(&self) -> Result<(), Invalid> {
        check_texts("names", &self.names)?;
        match &self.entry {
            EntryRule::PointsHeld { points_per_entry } => {
                within("points_per_entry", *points_per_entry, 1, POINTS_MAX)?
            }
            EntryRule::Bought {
                points_per_entry,
                partner_id,
                entries_per_member_max,
            } => {
                within("points_per_entry", *points_per_entry, 1, POINTS_MAX)?;
                within("partner_id", *partner_id, 1, i32::MAX as u32)?;
                within(
                    "entries_per_member_max",
                    *entries_per_member_max,
                    1,
                    100_000,
                )?;
            }
        }
        if self.prizes.is_empty() || self.prizes.len() > 100 {
            return Err(Invalid("a draw has 1 to 100 prizes".into()));
        }
        for (i, p) in self.prizes.iter().enumerate() {
            match (p.points, p.reward_id) {
                (Some(pts), None) => within(&format!("prizes[{i}].points"), pts, 1, POINTS_MAX)?,
                (None, Some(r)) => {
                    within(&format!("prizes[{i}].reward_id"), r, 1, i32::MAX as u32)?
                }
                _ => {
                    return Err(Invalid(format!(
                        "prizes[{i}] gives points or a reward_id, one of the two"
                    )))
                }
            }
        }
        within("closes_at_ms", self.closes_at_ms, 0, INSTANT_MS_MAX)?;
        if let Some(c) = &self.commitment {
            check_commitment(c)?;
        }
        Ok(())
    }
}

/// Checks a commitment is 64 lower-case hex digits.
pub fn check_commitment(c: &str) -> Result<(), Invalid> {
    if c.len() != 64
        || !c
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Invalid(
            "commitment is hex(SHA-256(seed)): 64 lower-case hex digits".into(),
        ));
    }
    Ok(())
}

/// A survey question besides the NPS one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Its id in answers (`q1`, `service`).
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9_]{1,32}$")]
    pub id: String,
    /// The question, per language.
    #[schema(min_items = 1, max_items = 8)]
    #[serde(deserialize_with = "super::objects")]
    pub texts: Vec<Localized>,
    /// Choices, when the answer is one of them; empty: free text (up to 1,000 characters).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub choices: Vec<String>,
}

/// A survey: the NPS question and optional others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveySpec {
    /// A name, per language.
    #[schema(min_items = 1, max_items = 8)]
    #[serde(deserialize_with = "super::objects")]
    pub names: Vec<Localized>,
    /// The NPS question, per language ("How likely are you to recommend ...?").
    #[schema(min_items = 1, max_items = 8)]
    #[serde(deserialize_with = "super::objects")]
    pub nps_question: Vec<Localized>,
    /// Other questions.
    #[serde(default, deserialize_with = "super::objects")]
    #[schema(max_items = 20)]
    pub questions: Vec<Question>,
    /// The partner it asks about, if one (answers count towards its NPS).
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 2_147_483_647)]
    pub partner_id: Option<u32>,
    /// Points for answering, once per member.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub reward_points: Option<i64>,
    /// Who pays them.
    #[serde(default, deserialize_with = "super::object")]
    pub funding: Funding,
    /// When it opens (ms since the Unix epoch); absent: at once.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub valid_from_ms: Option<i64>,
    /// When it closes; absent: never.
    #[serde(default, deserialize_with = "crate::programme::whole_option")]
    #[schema(minimum = 0, maximum = 7_258_118_400_000_i64)]
    pub valid_until_ms: Option<i64>,
}

/// Longest free-text answer, in characters.
pub const ANSWER_CHARS_MAX: usize = 1_000;

impl SurveySpec {
    /// Checks every bound the schema states, and that question ids are unique.
    pub fn check(&self) -> Result<(), Invalid> {
        check_texts("names", &self.names)?;
        check_texts("nps_question", &self.nps_question)?;
        if self.questions.len() > 20 {
            return Err(Invalid("a survey has at most 20 other questions".into()));
        }
        for (i, q) in self.questions.iter().enumerate() {
            let ok_id = !q.id.is_empty()
                && q.id.len() <= 32
                && q.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok_id {
                return Err(Invalid(format!(
                    "questions[{i}].id is 1 to 32 of a-z, 0-9 and _"
                )));
            }
            if self.questions[..i].iter().any(|o| o.id == q.id) {
                return Err(Invalid(format!("question id {} is given twice", q.id)));
            }
            check_texts(&format!("questions[{i}].texts"), &q.texts)?;
            if q.choices.len() > 20 {
                return Err(Invalid(format!("questions[{i}] has at most 20 choices")));
            }
            for c in &q.choices {
                text(&format!("questions[{i}].choices"), c, NAME_CHARS_MAX)?;
            }
        }
        if let Some(p) = self.partner_id {
            within("partner_id", p, 1, i32::MAX as u32)?;
        }
        if let Some(p) = self.reward_points {
            within("reward_points", p, 1, POINTS_MAX)?;
        }
        if let Some(p) = self.funding.partner_id {
            within("funding.partner_id", p, 1, i32::MAX as u32)?;
        }
        check_window(self.valid_from_ms, self.valid_until_ms)
    }

    /// Checks answers against the questions: each names a question once, a choice question's
    /// answer is one of its choices, free text is 1 to 1,000 characters.
    pub fn check_answers(&self, answers: &[Answer]) -> Result<(), Invalid> {
        for (i, a) in answers.iter().enumerate() {
            let Some(q) = self.questions.iter().find(|q| q.id == a.question) else {
                return Err(Invalid(format!(
                    "the survey has no question {:?}",
                    a.question
                )));
            };
            if answers[..i].iter().any(|o| o.question == a.question) {
                return Err(Invalid(format!(
                    "question {} is answered twice",
                    a.question
                )));
            }
            if !q.choices.is_empty() && !q.choices.contains(&a.answer) {
                return Err(Invalid(format!(
                    "question {} takes one of its choices",
                    a.question
                )));
            }
            text(
                &format!("the answer to {}", a.question),
                &a.answer,
                ANSWER_CHARS_MAX,
            )?;
        }
        Ok(())
    }
}

/// An answer to one of a survey's other questions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The question's id.
    #[schema(min_length = 1, max_length = 32)]
    pub question: String,
    /// The answer: one of its choices, or free text.
    #[schema(min_length = 1, max_length = 1000)]
    pub answer: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reward() -> RewardSpec {
        serde_json::from_value(serde_json::json!({
            "names": [{"language": "en", "text": "Fuel voucher"}, {"language": "fa", "text": "کارت سوخت"}],
            "partner_id": 2, "points": 500, "stock": 10
        }))
        .expect("a reward")
    }

    #[test]
    fn a_reward_is_checked_and_its_voucher_expiry_is_the_earlier_date() {
        let r = reward();
        assert_eq!(r.check(), Ok(()));
        assert_eq!(r.voucher_days, 90);
        assert_eq!(r.voucher_expiry(1_000), 1_000 + 90 * 86_400_000);
        let fixed = RewardSpec {
            voucher_expires_at_ms: Some(5_000),
            ..r.clone()
        };
        assert_eq!(fixed.voucher_expiry(1_000), 5_000);
        let twice = RewardSpec {
            names: vec![r.names[0].clone(), r.names[0].clone()],
            ..r.clone()
        };
        assert!(twice.check().is_err());
        assert_eq!(
            RewardSpec {
                tiers: vec![0, 2],
                ..r
            }
            .tier_bits(),
            0b101
        );
    }

    #[test]
    fn a_discount_code_set_names_its_partner() {
        let s: CodeSetSpec = serde_json::from_value(serde_json::json!({
            "name": "Fuel 10%", "codes": {"kind": "shared", "code": "FUEL-10", "max_uses": 100},
            "effect": {"kind": "discount", "reference": "fuel-10"}
        }))
        .expect("a code set");
        assert!(s.check().unwrap_err().0.contains("partner_id"));
        assert_eq!(
            CodeSetSpec {
                partner_id: Some(2),
                ..s
            }
            .check(),
            Ok(())
        );
    }

    #[test]
    fn survey_answers_name_known_questions_once() {
        let s: SurveySpec = serde_json::from_value(serde_json::json!({
            "names": [{"language": "en", "text": "Visit"}],
            "nps_question": [{"language": "en", "text": "Recommend us?"}],
            "questions": [{"id": "staff", "texts": [{"language": "en", "text": "Staff?"}], "choices": ["good", "bad"]}]
        }))
        .expect("a survey");
        assert_eq!(s.check(), Ok(()));
        let a = |q: &str, v: &str| Answer {
            question: q.into(),
            answer: v.into(),
        };
        assert_eq!(s.check_answers(&[a("staff", "good")]), Ok(()));
        assert!(s.check_answers(&[a("staff", "meh")]).is_err());
        assert!(s.check_answers(&[a("other", "x")]).is_err());
        assert!(s
            .check_answers(&[a("staff", "good"), a("staff", "bad")])
            .is_err());
    }
}
