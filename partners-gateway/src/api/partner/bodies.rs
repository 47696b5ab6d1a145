//! The partner API's request and response bodies (serde and OpenAPI), and their conversion into
//! the operations' own inputs.

use super::*;

/// Link a member reference (card, frequent-flyer or phone number) to a coalition member.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The partner's reference for the member; later requests address the member by it.
    #[schema(example = "FF000042")]
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub reference: String,
    /// An existing coalition member (their coalition number) to link; omit to enrol a new one.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    pub member_id: Option<u64>,
    /// The member's one-time link code (from an operator, or later the member portal); needed
    /// with `member_id`. Dashes and case do not matter.
    #[schema(min_length = 1, max_length = 32, example = "7KQ2-9MXD4H")]
    pub link_code: Option<String>,
}

/// The member a reference names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EnrolView {
    /// The partner's reference.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub member: String,
    /// The coalition member id.
    pub member_id: u64,
    /// True when this request created the link.
    pub created: bool,
}

/// Earn points for a purchase, a flight or a fill-up.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EarnRequest {
    /// Idempotency key: the partner's receipt or booking reference.
    #[schema(example = "rcpt-2026-000123")]
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The member, by the partner's reference.
    #[schema(example = "FF000042")]
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub member: String,
    /// What was bought, in the unit of the partner's rate table.
    pub amount: Amount,
    /// Branch (station, store) for branch rates.
    #[schema(min_length = 1, max_length = 32)]
    pub branch: Option<String>,
    /// Product category for category rates.
    #[schema(min_length = 1, max_length = 32)]
    pub category: Option<String>,
    /// How the member paid (`card`, `cash`, `wallet`), for campaigns that name payment methods.
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9_-]{1,32}$")]
    #[serde(default)]
    pub payment_method: Option<String>,
    /// Where the purchase was made (`store`, `web`, `app`), for campaigns that name channels.
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9_-]{1,32}$")]
    #[serde(default)]
    pub channel: Option<String>,
    /// The purchase's value in money (ISO 4217), when `amount` is in miles or litres: the points
    /// budget guard weighs points against it.
    #[serde(default)]
    pub sale_amount: Option<Amount>,
}

/// Burn points at once. Give `points`, or `amount` to price it with the rate table (rounds up).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BurnRequest {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The member, by the partner's reference.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub member: String,
    /// Points to burn.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, nullable = false)]
    #[serde(default, deserialize_with = "crate::api::whole::points_present")]
    pub points: Option<i64>,
    /// Or a price in money to convert.
    #[schema(nullable = false)]
    #[serde(default, deserialize_with = "present_value")]
    pub amount: Option<Amount>,
    /// Branch for branch rates.
    #[schema(min_length = 1, max_length = 32)]
    pub branch: Option<String>,
    /// Category for category rates.
    #[schema(min_length = 1, max_length = 32)]
    pub category: Option<String>,
}

/// A field that may be absent but, when present, is not `null` (`points` and `amount`: exactly
/// one of them is given).
fn present_value<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Reserve points for a later capture.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// Idempotency key; also names the hold in capture and void.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The member, by the partner's reference.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub member: String,
    /// Points to reserve.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, nullable = false)]
    #[serde(default, deserialize_with = "crate::api::whole::points_present")]
    pub points: Option<i64>,
    /// Or a price in money to convert.
    #[schema(nullable = false)]
    #[serde(default, deserialize_with = "present_value")]
    pub amount: Option<Amount>,
    /// Branch for branch rates.
    #[schema(min_length = 1, max_length = 32)]
    pub branch: Option<String>,
    /// Category for category rates.
    #[schema(min_length = 1, max_length = 32)]
    pub category: Option<String>,
    /// The hold voids itself after this many seconds.
    #[schema(example = 900)]
    #[schema(minimum = 1, maximum = 2_592_000)]
    #[serde(deserialize_with = "crate::api::whole::required")]
    pub timeout_seconds: u32,
}

/// Capture a hold in full or in part.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Idempotency key of the capture.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub reference: String,
    /// Points to capture; omit to capture the whole hold. The rest is released.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(default, deserialize_with = "crate::api::whole::points_nullable")]
    pub points: Option<i64>,
}

/// Release a hold.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    /// Idempotency key of the void.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub reference: String,
}

/// Undo all or part of an earlier earn (a refund) or burn (a cancelled redemption).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalRequest {
    /// Idempotency key of the reversal.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The reference of the earn or burn to undo.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub original_reference: String,
    /// Points to undo; omit to undo whatever is left.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(default, deserialize_with = "crate::api::whole::points_nullable")]
    pub points: Option<i64>,
}

/// One command of a batch: the single request's body plus `op` (and, for capture and void,
/// `hold_reference`). Read by `batch_command`, which reads the fields straight from the body
/// when `op` comes first; written (and documented) as the internally tagged enum it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum BatchCommand {
    /// As `POST /v1/earn`.
    Earn(EarnRequest),
    /// As `POST /v1/burn`.
    Burn(BurnRequest),
    /// As `POST /v1/holds`.
    Hold(HoldRequest),
    /// As `POST /v1/holds/{hold}/capture`.
    Capture {
        /// The hold's reference.
        #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
        hold_reference: String,
        /// Idempotency key of the capture.
        #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
        reference: String,
        /// Points to capture; omit for all.
        #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
        #[serde(default, deserialize_with = "crate::api::whole::points_nullable")]
        points: Option<i64>,
    },
    /// As `POST /v1/holds/{hold}/void`.
    Void {
        /// The hold's reference.
        #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
        hold_reference: String,
        /// Idempotency key of the void.
        #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
        reference: String,
    },
    /// As `POST /v1/reversals`.
    Reversal(ReversalRequest),
}

/// Many commands in one request; each succeeds or fails on its own.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The commands, at most the batch limit (1,000 by default).
    #[schema(min_items = 1, max_items = 1000)]
    pub commands: Vec<BatchCommand>,
}

/// One command's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    /// The status the single request would have had.
    pub status: u16,
    /// The transaction, on success.
    pub transaction: Option<TransactionView>,
    /// The problem, on failure.
    pub problem: Option<Problem>,
}

/// Results in the order of the commands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// One result per command.
    pub results: Vec<BatchResult>,
}

/// Price an earn or a burn without posting it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// `earn` or `burn`.
    pub operation: Operation,
    /// The quantity to price.
    pub amount: Amount,
    /// Branch for branch rates.
    #[schema(min_length = 1, max_length = 32)]
    pub branch: Option<String>,
    /// Category for category rates.
    #[schema(min_length = 1, max_length = 32)]
    pub category: Option<String>,
    /// How the member paid (`card`, `cash`, `wallet`), for campaigns that name payment methods.
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9_-]{1,32}$")]
    #[serde(default)]
    pub payment_method: Option<String>,
    /// Where the purchase was made (`store`, `web`, `app`), for campaigns that name channels.
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9_-]{1,32}$")]
    #[serde(default)]
    pub channel: Option<String>,
}

/// A campaign bonus in a quote, before the caps and budget the ledger applies at posting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct QuoteBonus {
    /// The campaign.
    pub campaign_id: u32,
    /// Its version in force.
    pub version: u32,
    /// Bonus points its effect gives.
    pub points: i64,
    /// The partner that pays for them; absent: the programme.
    pub funded_by: Option<u32>,
    /// Conditions on the member checked when the earn is posted (`first_earn_at_partner`,
    /// `enrolled_days`).
    pub checked_at_posting: Vec<String>,
}

/// Give points from one member to another, both known to this partner.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// Idempotency key.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub reference: String,
    /// The giving member, by the partner's reference.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub from: String,
    /// The receiving member, by the partner's reference.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub to: String,
    /// Points given (the programme's fee, if any, comes on top).
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::api::whole::points")]
    pub points: i64,
    /// How the giving member consented, as the partner attests it (a signed form's number, an
    /// in-app confirmation id); recorded on the transaction.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub consent: String,
}

impl From<TransferRequest> for op::Transfer {
    fn from(r: TransferRequest) -> Self {
        op::Transfer {
            reference: r.reference,
            from: r.from,
            to: r.to,
            points: r.points,
            consent: r.consent,
        }
    }
}

/// A price in points.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct QuoteView {
    /// `earn` or `burn`.
    pub operation: Operation,
    /// Points after rounding (earn down, burn up): the base points of an earn.
    pub points: i64,
    /// Campaign bonuses that apply now (earns), in stacking order.
    pub bonuses: Vec<QuoteBonus>,
    /// Base points and bonuses together, before caps and budgets.
    pub total_points: i64,
    /// Rate table version used.
    pub rate_version: u32,
    /// Points per unit applied.
    pub points_per_unit: String,
    /// `down` (earn) or `up` (burn).
    pub rounding: String,
}

impl From<EnrolRequest> for op::Enrol {
    fn from(r: EnrolRequest) -> Self {
        op::Enrol {
            reference: r.reference,
            member_id: r.member_id,
            link_code: r.link_code,
        }
    }
}

impl From<EarnRequest> for op::Earn {
    fn from(r: EarnRequest) -> Self {
        op::Earn {
            reference: r.reference,
            member: r.member,
            amount: r.amount,
            branch: r.branch,
            category: r.category,
            context: op::EarnContext {
                payment_method: r.payment_method,
                channel: r.channel,
                sale_amount: r.sale_amount,
            },
        }
    }
}

impl From<BurnRequest> for op::Burn {
    fn from(r: BurnRequest) -> Self {
        op::Burn {
            reference: r.reference,
            member: r.member,
            points: r.points,
            amount: r.amount,
            branch: r.branch,
            category: r.category,
        }
    }
}

impl From<HoldRequest> for op::Hold {
    fn from(r: HoldRequest) -> Self {
        op::Hold {
            reference: r.reference,
            member: r.member,
            points: r.points,
            amount: r.amount,
            branch: r.branch,
            category: r.category,
            timeout_seconds: r.timeout_seconds,
        }
    }
}

impl From<ReversalRequest> for op::Reversal {
    fn from(r: ReversalRequest) -> Self {
        op::Reversal {
            reference: r.reference,
            original_reference: r.original_reference,
            points: r.points,
        }
    }
}

impl From<BatchCommand> for PartnerCommand {
    fn from(c: BatchCommand) -> Self {
        match c {
            BatchCommand::Earn(r) => PartnerCommand::Earn(r.into()),
            BatchCommand::Burn(r) => PartnerCommand::Burn(r.into()),
            BatchCommand::Hold(r) => PartnerCommand::Hold(r.into()),
            BatchCommand::Capture {
                hold_reference,
                reference,
                points,
            } => PartnerCommand::Capture {
                hold_reference,
                reference,
                points,
            },
            BatchCommand::Void {
                hold_reference,
                reference,
            } => PartnerCommand::Void {
                hold_reference,
                reference,
            },
            BatchCommand::Reversal(r) => PartnerCommand::Reversal(r.into()),
        }
    }
}

impl From<QuoteRequest> for op::Quote {
    fn from(r: QuoteRequest) -> Self {
        op::Quote {
            operation: r.operation,
            amount: r.amount,
            branch: r.branch,
            category: r.category,
            context: op::EarnContext {
                payment_method: r.payment_method,
                channel: r.channel,
                sale_amount: None,
            },
        }
    }
}
