//! The event model: each journal transaction gives zero or more events, each with a stable id
//! (`TRANSACTION-N`: the transaction id and the event's place among its events), so a receiver
//! that sees an id twice knows it is a redelivery.

use ledger::core::model::{Amount, Notice};
use ledger::{AccountId, Transaction, TxKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every event type.
pub const KINDS: &[&str] = &[
    "member.enrolled",
    "points.earned",
    "points.burned",
    "hold.opened",
    "hold.captured",
    "hold.voided",
    "hold.expired",
    "points.reversed",
    "points.transferred",
    "points.adjusted",
    "points.expired",
    "tier.changed",
    "budget.threshold_crossed",
    "period.closed",
    "member.standing_changed",
    "member.merged",
    "points.expiring",
    "member.birthday",
    "member.anniversary",
    "reward.redeemed",
    "points.granted",
];

/// Events that are messages to a member only (no journal transaction, no webhook): a claim's
/// status changed.
pub const MESSAGE_KINDS: &[&str] = &["claim.updated"];

/// An event, as a webhook delivers it (`application/json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Stable id: the transaction's id and the event's place among its events.
    pub id: String,
    /// One of [`KINDS`].
    #[serde(rename = "type")]
    pub kind: String,
    /// When the transaction committed (ms since the Unix epoch).
    pub occurred_at_ms: i64,
    /// The journal transaction it comes from.
    pub transaction_id: String,
    /// The member's coalition id (operator subscriptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
    /// The member, by the partner's own reference (partner subscriptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The partner it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<u32>,
    /// Points to the member (signed), or the points the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    /// The member's posted points after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_balance_after: Option<i64>,
    /// What else the type carries: a tier's move (`1->2`), a threshold (`80%`), a reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the points of a `points.expiring` event expire (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
}

/// The events of one committed transaction, in order.
pub fn events_of(tx: &Transaction) -> Vec<Event> {
    let (_, partner) = ledger::describe(&tx.kind);
    let member = tx.kind.member();
    let points = |m: Option<ledger::MemberId>| -> i64 {
        tx.postings
            .iter()
            .filter_map(|p| match (p.account, p.amount) {
                (AccountId::Member(x), Amount::Points(n)) if m.is_none_or(|m| m == x) => Some(n.0),
                _ => None,
            })
            .sum()
    };
    let mut out: Vec<(&str, Option<i64>, Option<String>)> = Vec::new();
    match &tx.kind {
        TxKind::Enrolled { .. } => out.push(("member.enrolled", None, None)),
        TxKind::Earn { tier, guard, .. } => {
            out.push(("points.earned", Some(points(member)), None));
            if let Some(change) = tier.as_ref().and_then(|t| t.1.as_ref()) {
                out.push((
                    "tier.changed",
                    None,
                    Some(format!("{}->{}", change.from, change.to)),
                ));
            }
            for (_, pct) in guard.iter().flat_map(|g| g.crossed.iter()) {
                out.push(("budget.threshold_crossed", None, Some(format!("{pct}%"))));
            }
        }
        TxKind::Burn { hold: None, .. } => out.push(("points.burned", Some(points(member)), None)),
        TxKind::Burn { hold: Some(_), .. } => {
            out.push(("hold.captured", Some(points(member)), None))
        }
        TxKind::Hold { points: p, .. } => out.push(("hold.opened", Some(p.0), None)),
        TxKind::Void { end, points: p, .. } => out.push((
            match end {
                ledger::core::model::HoldEnd::Expired => "hold.expired",
                _ => "hold.voided",
            },
            Some(p.0),
            None,
        )),
        TxKind::Reversal { .. } => out.push(("points.reversed", Some(points(member)), None)),
        TxKind::Transfer { to, .. } => out.push((
            "points.transferred",
            Some(points(member)),
            Some(format!("to member {}", to.0)),
        )),
        TxKind::Redeemed(r) => out.push((
            "reward.redeemed",
            Some(points(member)),
            Some(format!("reward {}", r.claim.reward.0)),
        )),
        TxKind::Granted(g) => out.push((
            "points.granted",
            Some(points(member)),
            Some(g.origin.note.clone()),
        )),
        TxKind::Adjust { reason, .. } => out.push((
            "points.adjusted",
            Some(points(member)),
            Some(reason.clone()),
        )),
        TxKind::Expire {
            points: p, tier, ..
        } => {
            if p.0 > 0 {
                out.push(("points.expired", Some(points(member)), None));
            }
            if let Some(c) = tier.as_ref().filter(|c| c.from != c.to) {
                out.push(("tier.changed", None, Some(format!("{}->{}", c.from, c.to))));
            }
        }
        TxKind::TierChanged { change, .. } if change.from != change.to => out.push((
            "tier.changed",
            None,
            Some(format!("{}->{}", change.from, change.to)),
        )),
        TxKind::PeriodClosed { period, .. } => {
            out.push(("period.closed", None, Some(period.clone())))
        }
        TxKind::StandingSet {
            standing,
            forfeited,
            ..
        } => out.push((
            "member.standing_changed",
            Some(-forfeited.0),
            Some(standing.name().to_string()),
        )),
        TxKind::Merged(m) => out.push((
            "member.merged",
            Some(-m.points.0),
            Some(format!("into member {}", m.into.0)),
        )),
        TxKind::Noticed { notice, .. } => out.push(match notice {
            Notice::Expiring { days, points, .. } => (
                "points.expiring",
                Some(points.0),
                Some(format!("{days} days")),
            ),
            Notice::Birthday { .. } => ("member.birthday", None, None),
            Notice::Anniversary { years, .. } => {
                ("member.anniversary", None, Some(format!("{years} years")))
            }
        }),
        _ => {}
    }
    let balance = member.and_then(|m| {
        tx.member_balances
            .iter()
            .find(|b| b.member == m)
            .map(|b| b.posted.0)
    });
    out.into_iter()
        .enumerate()
        .map(|(n, (kind, points, detail))| Event {
            id: format!("{}-{n}", tx.id.0),
            kind: kind.to_string(),
            occurred_at_ms: tx.at.0,
            transaction_id: tx.id.0.to_string(),
            member_id: member.map(|m| m.0),
            member: None,
            partner_id: partner.map(|p| p.0),
            points,
            member_balance_after: balance,
            detail,
            expires_at_ms: match &tx.kind {
                TxKind::Noticed {
                    notice: Notice::Expiring { on, .. },
                    ..
                } => Some(on.0),
                _ => None,
            },
        })
        .collect()
}
