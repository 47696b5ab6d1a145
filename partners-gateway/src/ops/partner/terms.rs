//! The programme's terms of one earn: the campaigns that apply (with their caps and funding)
//! and the points budget guard's checks, for the ledger to grant atomically.

use super::super::error::{Kind, OpError};
use super::check_name;
use crate::ops::registry::CompiledProgramme;
use crate::programme::rates::{is_currency_code, Amount};
use crate::programme::rules::{Applied, EarnFacts, LocalTime, MemberSignals};
use ledger::{AwardRequest, GuardRequest, PartnerId, Points, Timestamp};
use rust_decimal::Decimal;

/// What an earn carries besides its purchase: how it was paid and through which channel, and
/// the money value of a purchase not priced in money (for the budget guard).
#[derive(Debug, Clone, Default)]
pub struct EarnContext {
    /// `card`, `cash`, `wallet`: matched by campaigns that name payment methods.
    pub payment_method: Option<String>,
    /// `store`, `web`, `app`: matched by campaigns that name channels.
    pub channel: Option<String>,
    /// The purchase's value in money when `amount` is in miles or litres.
    pub sale_amount: Option<Amount>,
}

/// The terms of one earn.
pub struct Terms {
    /// Campaigns applied, in stacking order, before the ledger's limits.
    pub applied: Vec<Applied>,
    /// The ledger's award requests for them.
    pub awards: Vec<AwardRequest>,
    /// The guard, when a ceiling applies and the sale's money value is known.
    pub guard: Option<Box<GuardRequest>>,
}

/// The purchase an earn or a quote prices.
pub struct Purchase<'a> {
    pub partner: PartnerId,
    pub amount: &'a Amount,
    pub quantity: Decimal,
    pub base: Points,
    pub branch: Option<&'a str>,
    pub category: Option<&'a str>,
}

impl Purchase<'_> {
    /// What the ledger counts towards tiers: the spend, when the amount is money, and the
    /// category. `None` when there is neither.
    pub fn for_tiers(&self) -> Option<Box<ledger::core::tiers::Purchase>> {
        let spend = self
            .amount
            .unit
            .parse::<ledger::Currency>()
            .ok()
            .map(|c| ledger::Money::new(self.quantity, c));
        let category = self.category.map(str::to_string);
        (spend.is_some() || category.is_some())
            .then(|| Box::new(ledger::core::tiers::Purchase { spend, category }))
    }
}

/// Evaluates the programme's campaigns and guards for `p` at `now`.
pub fn terms(
    programme: &CompiledProgramme,
    p: &Purchase<'_>,
    cx: &EarnContext,
    member: Option<&dyn MemberSignals>,
    now: Timestamp,
) -> Result<Terms, OpError> {
    check_tag("payment_method", cx.payment_method.as_deref())?;
    check_tag("channel", cx.channel.as_deref())?;
    let at = programme.clock.local(now);
    let applied = if programme.rules.is_empty() {
        Vec::new()
    } else {
        programme.rules.evaluate(
            &EarnFacts {
                partner: p.partner,
                branch: p.branch,
                category: p.category,
                unit: &p.amount.unit,
                quantity: p.quantity,
                base: p.base,
                at,
                payment_method: cx.payment_method.as_deref(),
                channel: cx.channel.as_deref(),
                member,
            },
            now,
        )
    };
    let awards = applied.iter().map(|a| a.request(at)).collect();
    let guard = guard(programme, p, cx, &at)?;
    Ok(Terms {
        applied,
        awards,
        guard,
    })
}

fn guard(
    programme: &CompiledProgramme,
    p: &Purchase<'_>,
    cx: &EarnContext,
    at: &LocalTime,
) -> Result<Option<Box<GuardRequest>>, OpError> {
    let sale = match (&cx.sale_amount, is_currency_code(&p.amount.unit)) {
        (Some(s), _) => {
            if !is_currency_code(&s.unit) {
                return Err(OpError::new(
                    Kind::InvalidRequest,
                    "sale_amount must be in a currency (ISO 4217)",
                ));
            }
            Some((s.parse()?, s.unit.as_str()))
        }
        (None, true) => Some((p.quantity, p.amount.unit.as_str())),
        (None, false) => None,
    };
    if programme.guards.is_empty() {
        return Ok(None);
    }
    let Some((sale, unit)) = sale else {
        return Ok(None);
    };
    let checks: Vec<_> = [0, p.partner.0]
        .iter()
        .filter_map(|scope| programme.guards.get(scope))
        .filter_map(|g| g.check_at(at, programme.currency))
        .collect();
    if checks.is_empty() {
        return Ok(None);
    }
    let currency = unit
        .parse()
        .map_err(|_| OpError::new(Kind::UnknownCurrency, format!("unknown currency {unit:?}")))?;
    Ok(Some(Box::new(GuardRequest {
        sale,
        currency,
        checks,
    })))
}

/// A payment method or channel: 1 to 32 of `a-z 0-9 _ -`.
fn check_tag(field: &str, v: Option<&str>) -> Result<(), OpError> {
    check_name(field, v)?;
    match v {
        Some(s)
            if !s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
            }) =>
        {
            Err(OpError::new(
                Kind::InvalidRequest,
                format!("{field} must be 1 to 32 of a-z, 0-9, _ and -"),
            ))
        }
        _ => Ok(()),
    }
}
