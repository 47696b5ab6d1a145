//! What an operator can do: define partners and their contracts, issue and revoke keys, add
//! rate table versions, enrol members, correct points with a reason, read any balance and
//! statement. The HTTP API, the demo set-up and (later) the console call these.

use super::error::{Kind, OpError};
use super::registry::{KeyRecord, KeyScope, PartnerRecord};
use super::statement::{self, Line, StatementOf};
use super::Ops;
use crate::programme::rates::{RateOverride, RateTable};
use ledger::core::rules::adjust::REASON_LEN_MAX;

/// Longest adjustment reason, in characters (a reason may be Persian: up to 4 bytes each).
pub const REASON_CHARS_MAX: usize = 500;

const _: () = assert!(REASON_CHARS_MAX * 4 <= REASON_LEN_MAX);
use ledger::{
    AccountId, Command, Contract, IdemKey, MemberBalance, MemberId, PartnerId, Points, Receipt,
    Timestamp, TxId,
};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Longest partner name, in bytes.
pub const PARTNER_NAME_LEN_MAX: usize = 128;
/// Requests per second a partner gets when its definition names none.
pub const REQUESTS_PER_SECOND_DEFAULT: u32 = 1_000;
/// Most requests per second (and burst) a partner may be given.
pub const REQUESTS_PER_SECOND_MAX: u32 = 1_000_000;
/// Longest validity of earned points, in days (a hundred years).
pub const VALIDITY_DAYS_MAX: u32 = 36_500;
/// How far in the past a rate table may start (clock skew between operator and gateway).
pub const RATE_TABLE_GRACE_MS: i64 = 60_000;

/// A partner's configuration and contract.
#[derive(Debug, Clone)]
pub struct PartnerDefinition {
    /// Display name.
    pub name: String,
    /// Settlement currency (ISO 4217).
    pub currency: String,
    /// What the partner pays per point it issues.
    pub issuance_price_per_point: Decimal,
    /// What the programme reimburses per point redeemed at the partner.
    pub redemption_price_per_point: Decimal,
    /// Points earned at this partner expire after this many days; `None`: never.
    pub points_validity_days: Option<u32>,
    /// Sustained requests per second.
    pub requests_per_second: Option<u32>,
    /// Burst above that.
    pub burst: Option<u32>,
}

/// A partner as operators see it: the registry record and the contract in the ledger.
#[derive(Debug, Clone)]
pub struct Partner {
    /// Gateway record.
    pub record: PartnerRecord,
    /// The contract, once one is set.
    pub contract: Option<Contract>,
}

/// A new rate table version.
#[derive(Debug, Clone)]
pub struct RateDraft {
    /// In force from (ms since the Unix epoch); `None`: now.
    pub effective_from_ms: Option<i64>,
    /// Unit priced: ISO 4217 code or measure.
    pub unit: String,
    /// Points per unit earned.
    pub earn_points_per_unit: Decimal,
    /// Points per unit of money for burns priced in money.
    pub burn_points_per_unit: Option<Decimal>,
    /// Branch overrides.
    pub branches: BTreeMap<String, RateOverride>,
    /// Category overrides.
    pub categories: BTreeMap<String, RateOverride>,
}

/// A manual correction of a member's points.
#[derive(Debug, Clone)]
pub struct Adjustment {
    /// Idempotency key (operator scope).
    pub reference: String,
    /// The member.
    pub member: MemberId,
    /// Signed change to the member's points.
    pub points: i64,
    /// Why, in words finance can audit.
    pub reason: String,
    /// Who made it.
    pub operator: String,
    /// Whether it counts towards the member's tier.
    pub qualifies: bool,
    /// The earlier transaction it corrects (one in a closed period, say).
    pub corrects: Option<ledger::TxId>,
}

/// Every partner. Blocking.
pub fn partners(ops: &Ops) -> Result<Vec<Partner>, OpError> {
    ops.registry
        .partners()
        .into_iter()
        .map(|record| with_contract(ops, record))
        .collect()
}

/// Partner `id`. Blocking.
pub fn partner(ops: &Ops, id: u32) -> Result<Partner, OpError> {
    with_contract(ops, known_partner(ops, id)?)
}

fn with_contract(ops: &Ops, record: PartnerRecord) -> Result<Partner, OpError> {
    let contract = ops.ledger.contract(PartnerId(record.id))?;
    Ok(Partner { record, contract })
}

/// The registry record of partner `id`, or `UnknownPartner`.
pub fn known_partner(ops: &Ops, id: u32) -> Result<PartnerRecord, OpError> {
    ops.registry
        .partner(PartnerId(id))
        .ok_or_else(|| OpError::new(Kind::UnknownPartner, format!("no partner {id}")))
}

/// Validates and applies a partner definition: contract in the ledger, record in the registry.
/// Blocking.
pub fn define_partner(ops: &Ops, id: u32, d: &PartnerDefinition) -> Result<Partner, OpError> {
    if id == 0 {
        return Err(OpError::new(Kind::InvalidRequest, "partner ids start at 1"));
    }
    if d.name.trim().is_empty() || d.name.chars().count() > PARTNER_NAME_LEN_MAX {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("name must be 1 to {PARTNER_NAME_LEN_MAX} characters, not all spaces"),
        ));
    }
    if !crate::programme::rates::is_currency_code(&d.currency) {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("currency {:?} must be three capital letters", d.currency),
        ));
    }
    let currency = d.currency.parse().map_err(|_| {
        OpError::new(
            Kind::UnknownCurrency,
            format!("{:?} is not an ISO 4217 currency code", d.currency),
        )
    })?;
    let prices = [
        ("issuance_price_per_point", d.issuance_price_per_point),
        ("redemption_price_per_point", d.redemption_price_per_point),
    ];
    if let Some((field, _)) = prices.iter().find(|(_, v)| *v < Decimal::ZERO) {
        return Err(OpError::new(
            Kind::InvalidAmount,
            format!("{field} must not be negative"),
        ));
    }
    let contract = Contract {
        partner: PartnerId(id),
        currency,
        issuance_price_per_point: d.issuance_price_per_point,
        redemption_price_per_point: d.redemption_price_per_point,
        points_validity_days: d.points_validity_days,
    };
    // The key names the exact terms: re-sending the same terms replays, new terms post anew.
    let terms = serde_json::to_vec(&contract).expect("contracts encode");
    let digest = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&terms)[..8]);
    ops.ledger.execute_blocking(Command::SetContract {
        key: IdemKey::operator(format!("contract/{id}/{digest}")),
        contract,
    })?;
    let in_range = |v: Option<u32>, max: u32| v.is_none_or(|v| (1..=max).contains(&v));
    if !in_range(d.requests_per_second, REQUESTS_PER_SECOND_MAX)
        || !in_range(d.burst, REQUESTS_PER_SECOND_MAX)
    {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("requests_per_second and burst must be 1 to {REQUESTS_PER_SECOND_MAX}"),
        ));
    }
    if !in_range(d.points_validity_days, VALIDITY_DAYS_MAX) {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("points_validity_days must be 1 to {VALIDITY_DAYS_MAX}, or null for never"),
        ));
    }
    let rps = d.requests_per_second.unwrap_or(REQUESTS_PER_SECOND_DEFAULT);
    let record = PartnerRecord {
        id,
        name: d.name.clone(),
        requests_per_second: rps,
        burst: d.burst.unwrap_or(rps),
    };
    ops.registry
        .put_partner(record.clone())
        .map_err(|e| OpError::new(Kind::Internal, e.to_string()))?;
    with_contract(ops, record)
}

/// Partner `id`'s keys, without secrets.
pub fn keys(ops: &Ops, id: u32) -> Result<Vec<KeyRecord>, OpError> {
    known_partner(ops, id)?;
    Ok(ops.registry.keys_of(PartnerId(id)))
}

/// Issues a key with `scopes` for partner `id`: its record and its secret, shown once.
/// Blocking.
pub fn create_key(
    ops: &Ops,
    id: u32,
    scopes: Vec<KeyScope>,
) -> Result<(KeyRecord, String), OpError> {
    known_partner(ops, id)?;
    if scopes.is_empty() {
        return Err(OpError::new(
            Kind::InvalidRequest,
            "give at least one scope",
        ));
    }
    ops.registry
        .create_key(PartnerId(id), scopes)
        .map_err(|e| OpError::new(Kind::Internal, e.to_string()))
}

/// Revokes partner `id`'s key `key_id`. Blocking.
pub fn revoke_key(ops: &Ops, id: u32, key_id: &str) -> Result<KeyRecord, OpError> {
    known_partner(ops, id)?;
    ops.registry
        .revoke_key(PartnerId(id), key_id)
        .map_err(|e| OpError::new(Kind::Internal, e.to_string()))?
        .ok_or_else(|| OpError::new(Kind::NotFound, format!("partner {id} has no key {key_id}")))
}

/// Every version of partner `id`'s rate table.
pub fn rate_tables(ops: &Ops, id: u32) -> Result<Vec<RateTable>, OpError> {
    known_partner(ops, id)?;
    Ok(ops.registry.rate_tables(PartnerId(id)))
}

/// Validates and stores a rate table version for partner `id`. Blocking.
pub fn add_rate_table(ops: &Ops, id: u32, d: RateDraft) -> Result<RateTable, OpError> {
    known_partner(ops, id)?;
    let now = Timestamp::now().0;
    let effective_from_ms = d.effective_from_ms.unwrap_or(now);
    if effective_from_ms < now - RATE_TABLE_GRACE_MS {
        return Err(OpError::new(
            Kind::RetroactiveRates,
            "effective_from_ms is in the past; rate tables are never retroactive",
        ));
    }
    let table = RateTable {
        version: 0,
        effective_from_ms,
        unit: d.unit,
        earn_points_per_unit: d.earn_points_per_unit,
        burn_points_per_unit: d.burn_points_per_unit,
        branches: d.branches,
        categories: d.categories,
    };
    table.validate()?;
    ops.registry
        .add_rate_table(PartnerId(id), table)
        .map_err(|e| OpError::new(Kind::Internal, e.to_string()))
}

/// Enrols a new member with no partner link yet. Blocking.
pub fn enrol_member(ops: &Ops) -> Result<MemberId, OpError> {
    let m = ops
        .registry
        .allocate_member()
        .map_err(|e| OpError::new(Kind::Internal, e.to_string()))?;
    ops.ledger.execute_blocking(Command::Enrol {
        key: IdemKey::operator(format!("enrol/{}", m.0)),
        member: m,
    })?;
    Ok(m)
}

/// Member `m`'s points. Blocking.
pub fn member_balance(ops: &Ops, m: MemberId) -> Result<MemberBalance, OpError> {
    ops.ledger
        .balance(m)?
        .ok_or_else(|| OpError::new(Kind::UnknownMember, format!("no member {}", m.0)))
}

/// A page of member `m`'s whole statement, newest first. Blocking.
pub fn member_statement(
    ops: &Ops,
    m: MemberId,
    before: Option<TxId>,
    limit: usize,
) -> Result<(Vec<Line>, Option<TxId>), OpError> {
    member_balance(ops, m)?;
    statement::page(&ops.ledger, m, StatementOf::All, before, limit)
}

/// The ledger key of an adjustment is `adjust/` and the operator's reference.
const ADJUSTMENT_KEY_PREFIX: &str = "adjust/";
/// Longest adjustment reference: the ledger's reference limit less the key's prefix.
pub const ADJUSTMENT_REFERENCE_LEN_MAX: usize =
    ledger::IdemKey::REFERENCE_LEN_MAX - ADJUSTMENT_KEY_PREFIX.len();

/// Posts a correction against `programme/adjustments`.
pub async fn adjust(ops: &Ops, a: Adjustment) -> Result<Receipt, OpError> {
    super::check_reference("reference", &a.reference)?;
    if a.reference.len() > ADJUSTMENT_REFERENCE_LEN_MAX {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("reference must be 1 to {ADJUSTMENT_REFERENCE_LEN_MAX} characters"),
        ));
    }
    if a.points == 0 {
        super::check_points("points", 0)?;
    }
    if let Some(c) = a.corrects {
        if ops.ledger.transaction(c)?.is_none() {
            return Err(OpError::new(
                Kind::UnknownTransaction,
                "corrects names no committed transaction",
            ));
        }
    }
    if a.reason.trim().is_empty() || a.reason.chars().count() > REASON_CHARS_MAX {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("reason must be 1 to {REASON_CHARS_MAX} characters, not all spaces"),
        ));
    }
    Ok(ops
        .ledger
        .execute(Command::Adjust {
            key: IdemKey::operator(format!("{ADJUSTMENT_KEY_PREFIX}{}", a.reference)),
            member: a.member,
            points: Points(a.points),
            reason: a.reason.into(),
            operator: a.operator.into(),
            qualifies: a.qualifies,
            corrects: a.corrects,
        })
        .await?)
}

/// The balance of the account named `name` (`member/7`, `partner/2/issuance`, ...). Blocking.
pub fn account(
    ops: &Ops,
    name: &str,
) -> Result<(AccountId, ledger::core::state::Balance), OpError> {
    let account: AccountId = name
        .parse()
        .map_err(|_| OpError::new(Kind::NotFound, format!("no account {name:?}")))?;
    Ok((account, ops.ledger.account_balance(account)?))
}

/// What an audit of the live ledger found, on one consistent snapshot taken while the ledger
/// keeps writing.
#[derive(Debug, Clone)]
pub struct LiveAudit {
    /// The counts of what it checked, when every invariant held.
    pub report: Option<ledger::audit::AuditReport>,
    /// The first broken invariant, when one was.
    pub failure: Option<String>,
    /// Batches durable when the snapshot was taken.
    pub through_version: u64,
    /// How long it took.
    pub took: std::time::Duration,
}

/// Audits the running ledger: recomputes everything from the journal on a read snapshot that
/// covers every command acknowledged before the call, and compares it with the stored derived
/// state. One audit at a time. Blocking; it reads the whole journal.
pub fn audit(ops: &Ops) -> Result<LiveAudit, OpError> {
    use std::sync::atomic::Ordering;
    if ops.audit_running.swap(true, Ordering::AcqRel) {
        return Err(OpError::new(Kind::Unavailable, "an audit is already running").retry_after(10));
    }
    let started = std::time::Instant::now();
    let outcome = (|| {
        let through_version = ops.ledger.committed_version();
        let snap = ops.ledger.read_snapshot()?;
        let (report, failure) = match ledger::audit::audit(&snap) {
            Ok(r) => (Some(r), None),
            Err(f) => (None, Some(f.to_string())),
        };
        Ok(LiveAudit {
            report,
            failure,
            through_version,
            took: started.elapsed(),
        })
    })();
    ops.audit_running.store(false, Ordering::Release);
    outcome
}

/// Issues member `m` a one-time link code, for a member who asks (at a desk, on the phone) to
/// be linked at a partner: the member gives the code to the partner, which links them with it
/// within the code's life. Blocking.
pub fn issue_link_code(
    ops: &Ops,
    m: MemberId,
    operator: &str,
    reason: &str,
) -> Result<(String, super::registry::LinkCode), OpError> {
    member_balance(ops, m)?;
    if reason.trim().is_empty() || reason.chars().count() > REASON_CHARS_MAX {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("reason must be 1 to {REASON_CHARS_MAX} characters, not all spaces"),
        ));
    }
    ops.registry
        .issue_link_code(m, Timestamp::now().0, operator, reason)
        .map_err(|e| OpError::new(Kind::Internal, e.to_string()))
}

/// Longest life of an operator token, in days.
pub const OPERATOR_TOKEN_DAYS_MAX: u32 = 3_650;

/// Creates an operator credential for `name` with `role`, expiring after `expires_in_days`
/// (never when `None`): its token (shown once) and public id. Blocking.
pub fn create_operator(
    ops: &Ops,
    name: &str,
    role: super::registry::Role,
    expires_in_days: Option<u32>,
) -> Result<(String, String), OpError> {
    if name.trim().is_empty() || name.chars().count() > PARTNER_NAME_LEN_MAX {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("name must be 1 to {PARTNER_NAME_LEN_MAX} characters, not all spaces"),
        ));
    }
    if expires_in_days.is_some_and(|d| d == 0 || d > OPERATOR_TOKEN_DAYS_MAX) {
        return Err(OpError::new(
            Kind::InvalidRequest,
            format!("expires_in_days must be 1 to {OPERATOR_TOKEN_DAYS_MAX}"),
        ));
    }
    ops.registry
        .create_operator(name, role, expires_in_days)
        .map_err(|e| OpError::new(Kind::Internal, e.to_string()))
}

/// Revokes the operator credential `id`. Blocking.
pub fn revoke_operator(ops: &Ops, id: &str) -> Result<super::registry::OperatorRecord, OpError> {
    ops.registry
        .revoke_operator(id)
        .map_err(|e| OpError::new(Kind::Internal, e.to_string()))?
        .ok_or_else(|| OpError::new(Kind::NotFound, format!("no operator token {id}")))
}
