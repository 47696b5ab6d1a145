//! Enrolment and what a partner reads: balances, statements, its own transactions, quotes and
//! its rate tables.

use super::*;

/// Enrol a new member, or link an existing coalition member, under the partner's reference.
#[derive(Debug, Clone)]
pub struct Enrol {
    /// The partner's reference for the member.
    pub reference: String,
    /// An existing coalition member to link; `None` enrols a new one.
    pub member_id: Option<u64>,
    /// The member's one-time link code: their proof that they agree to the link. Needed with
    /// `member_id`.
    pub link_code: Option<String>,
}

/// Links `r.reference` to a member (a new one unless `r.member_id` names one); the member and
/// whether this call made the link. Linking an existing member needs the member's one-time
/// link code; an unknown member, a missing, wrong, spent or expired code all answer alike, so
/// that a partner learns nothing of which coalition numbers exist. Blocking.
pub fn enrol(ops: &Ops, caller: &PartnerCaller, r: &Enrol) -> Result<(MemberId, bool), OpError> {
    caller.require(KeyScope::Earn)?;
    check_member_reference(&r.reference)?;
    let (member, created) = match r.member_id {
        None => ops
            .registry
            .link(caller.partner, &r.reference, None)
            .map_err(registry_error)?,
        Some(m) => {
            let now = Timestamp::now().0;
            let linked = ops
                .registry
                .link_with_code(
                    caller.partner,
                    &r.reference,
                    MemberId(m),
                    r.link_code.as_deref(),
                    now,
                )
                .map_err(registry_error)?;
            linked.map_err(|why| {
                tracing::info!(partner = caller.partner.0, ?why, "member link refused");
                OpError::new(
                    Kind::UnknownMember,
                    "no member with that coalition number and link code; ask the member for a \
                     current link code",
                )
            })?
        }
    };
    // A new member, or one whose enrolment was cut short by a crash, is enrolled now; the
    // enrolment key is fixed per member, so this is safe to repeat.
    if ops.ledger.balance(member)?.is_none() {
        ops.ledger.execute_blocking(Command::Enrol {
            key: IdemKey::operator(format!("enrol/{}", member.0)),
            member,
        })?;
    }
    Ok((member, created))
}

/// The member's points, by the partner's reference. Blocking.
pub fn balance(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
) -> Result<ledger::MemberBalance, OpError> {
    caller.require(KeyScope::Read)?;
    let m = member_of(ops, caller, reference)?;
    ops.ledger.balance(m)?.ok_or_else(|| {
        OpError::new(
            Kind::UnknownMember,
            format!("no member with reference {reference:?}"),
        )
    })
}

/// The member's points expiring in the next 30, 60 and 90 days, and from which lots.
/// Blocking.
pub fn expiring(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
) -> Result<ledger::core::expiry::Expiring, OpError> {
    caller.require(KeyScope::Read)?;
    let m = member_of(ops, caller, reference)?;
    crate::ops::programme::expiring(ops, m)
}

/// The member's tier and its progress. Blocking.
pub fn tier(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
) -> Result<crate::ops::programme::TierStanding, OpError> {
    caller.require(KeyScope::Read)?;
    let m = member_of(ops, caller, reference)?;
    crate::ops::programme::tier(ops, m)
}

/// A household as a partner sees it: each member's reference at the partner (`None` for
/// members it does not know) and what it may spend, the owner first.
pub type PartnerHousehold = Vec<(Option<String>, ledger::Points)>;

/// The household pool the member owns or belongs to. Blocking.
pub fn household(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
) -> Result<Option<PartnerHousehold>, OpError> {
    caller.require(KeyScope::Read)?;
    let m = member_of(ops, caller, reference)?;
    let Some(h) = crate::ops::programme::household(ops, m)? else {
        return Ok(None);
    };
    h.members
        .iter()
        .map(|p| {
            let r = reference_of(ops, caller, p.member)?;
            Ok((r, p.spendable))
        })
        .collect::<Result<Vec<_>, OpError>>()
        .map(Some)
}

/// A page of the member's statement at this partner, newest first. Blocking.
pub fn statement(
    ops: &Ops,
    caller: &PartnerCaller,
    reference: &str,
    before: Option<ledger::TxId>,
    limit: usize,
) -> Result<(Vec<crate::ops::statement::Line>, Option<ledger::TxId>), OpError> {
    caller.require(KeyScope::Read)?;
    let m = member_of(ops, caller, reference)?;
    let of = crate::ops::statement::StatementOf::Partner(caller.partner);
    crate::ops::statement::page(&ops.ledger, m, of, before, limit)
}

/// The partner's own transaction posted under `reference`. Blocking.
pub fn transaction(ops: &Ops, caller: &PartnerCaller, reference: &str) -> Result<Posted, OpError> {
    caller.require(KeyScope::Read)?;
    let tx = own_transaction(ops, caller, reference)?;
    let member_ref = match tx.kind.member() {
        Some(m) => reference_of(ops, caller, m)?,
        None => None,
    };
    Ok(Posted {
        tx: Arc::new(tx),
        member_ref,
        replayed: false,
    })
}

/// Price a quantity without posting anything.
#[derive(Debug, Clone)]
pub struct Quote {
    /// Earn or burn.
    pub operation: Operation,
    /// The quantity.
    pub amount: Amount,
    /// Branch for branch rates.
    pub branch: Option<String>,
    /// Category for category rates.
    pub category: Option<String>,
    /// Payment method and channel, for campaigns (earns only).
    pub context: super::EarnContext,
}

/// A quote: the base points, and for an earn the campaigns that would apply.
pub struct Quoted {
    /// The rate table's price.
    pub priced: crate::programme::rates::Priced,
    /// Campaigns that apply now, in stacking order, before caps and budgets (which the ledger
    /// applies when the earn is posted).
    pub applied: Vec<crate::programme::rules::Applied>,
}

/// The points `q` is worth under the rate table in force, and (earns) the campaign bonuses.
pub fn quote(ops: &Ops, caller: &PartnerCaller, q: &Quote) -> Result<Quoted, OpError> {
    caller.require(KeyScope::Read)?;
    check_name("branch", q.branch.as_deref())?;
    check_name("category", q.category.as_deref())?;
    let quantity = q.amount.parse()?;
    let priced = rate_table(ops, caller.partner)?.price(
        q.operation,
        quantity,
        &q.amount.unit,
        q.branch.as_deref(),
        q.category.as_deref(),
    )?;
    let applied = match q.operation {
        Operation::Earn => {
            super::terms::terms(
                &ops.registry.programme(),
                &super::terms::Purchase {
                    partner: caller.partner,
                    amount: &q.amount,
                    quantity,
                    base: priced.points,
                    branch: q.branch.as_deref(),
                    category: q.category.as_deref(),
                },
                &q.context,
                None,
                ledger::Timestamp::now(),
            )?
            .applied
        }
        Operation::Burn => Vec::new(),
    };
    Ok(Quoted { priced, applied })
}

/// Every version of the partner's rate table, oldest first.
pub fn rates(ops: &Ops, caller: &PartnerCaller) -> Result<Vec<RateTable>, OpError> {
    caller.require(KeyScope::Read)?;
    Ok(ops.registry.rate_tables(caller.partner))
}
