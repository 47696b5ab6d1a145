//! Engagement operations: the rewards catalogue and vouchers ([`rewards`]), discount codes
//! ([`codes`]), referrals ([`referrals`]), draws ([`draws`]), surveys and NPS ([`surveys`]),
//! and members' claims ([`claims`]).
//!
//! What must be atomic lives in one place: a reward's stock and a member's limit in the ledger
//! (`Command::Redeem`, counted in the same decision as the burn), a voucher's or a code's use in
//! one registry transaction, points in the ledger under an idempotency key derived from the
//! record they trace to (`Command::Grant`), so a retry or a second gateway can never pay twice.
//!
//! The operations are blocking (a registry transaction, then a ledger command, then a registry
//! transaction): the HTTP handlers run them on the blocking pool.

pub mod claims;
pub mod codes;
pub mod draws;
pub mod referrals;
pub mod rewards;
pub mod surveys;

use super::error::{Kind, OpError};
use super::registry::RegistryError;
use super::Ops;
use crate::engagement::model::Funding;
use crate::engagement::Invalid;
use ledger::{Command, GrantKind, GrantOrigin, IdemKey, MemberId, Points, Receipt, Timestamp};
use std::sync::{Mutex, Weak};
use std::time::Duration;

fn reg(e: RegistryError) -> OpError {
    super::partner::registry_error(e)
}

fn invalid(e: Invalid) -> OpError {
    OpError::new(Kind::InvalidRule, e.0)
}

fn now_ms() -> i64 {
    Timestamp::now().0
}

/// Fails with 404 unless member `m` is enrolled.
fn require_member(ops: &Ops, m: MemberId) -> Result<ledger::core::state::MemberState, OpError> {
    ops.ledger
        .member_state(m)?
        .ok_or_else(|| OpError::new(Kind::UnknownMember, "no such member"))
}

/// Fails with 404 `unknown-partner` unless every partner in `partners` exists.
fn require_partners(ops: &Ops, partners: impl IntoIterator<Item = u32>) -> Result<(), OpError> {
    for p in partners {
        if ops.registry.partner(ledger::PartnerId(p)).is_none() {
            return Err(OpError::new(
                Kind::UnknownPartner,
                format!("no partner {p}"),
            ));
        }
    }
    Ok(())
}

/// Grants `points` to `member` under the operator key `key`, traced to `origin`. Blocking.
fn grant(
    ops: &Ops,
    key: String,
    member: MemberId,
    points: i64,
    funding: Funding,
    origin: (GrantKind, u64, String),
) -> Result<Receipt, OpError> {
    let (kind, id, note) = origin;
    Ok(ops.ledger.execute_blocking(Command::Grant {
        key: IdemKey::operator(key),
        member,
        points: Points(points),
        funder: funding.funder(),
        origin: Box::new(GrantOrigin { kind, id, note }),
    })?)
}

/// Checks an operator's or partner's reference for an engagement write: 1 to 100 printable
/// ASCII characters (the key it makes carries a prefix within the ledger's 128).
fn check_reference(r: &str) -> Result<(), OpError> {
    super::programme::check_change_reference(r)
}

/// Where a sweep over a family of waiting records left off. Each sweep reads the next page after
/// it, and the first page again once a page comes back short, so every record is seen in turn
/// however many wait before it in key order (records a sweep leaves waiting, a referral whose
/// window is still open, would otherwise hold back every record after the first page).
#[derive(Default)]
pub struct Cursor(Mutex<Option<Vec<u8>>>);

impl Cursor {
    /// The bodies of the next page, at most `limit`, of `family`'s records.
    fn page(&self, ops: &Ops, family: u8, limit: usize) -> Result<Vec<Vec<u8>>, OpError> {
        let mut after = self.0.lock().expect("sweep cursor");
        let page = ops
            .registry
            .eng_scan::<serde::de::IgnoredAny>(family, &[], after.as_deref(), limit)
            .map_err(reg)?;
        *after = match page.last() {
            Some((body, _)) if page.len() >= limit => Some(body.clone()),
            _ => None,
        };
        Ok(page.into_iter().map(|(body, _)| body).collect())
    }
}

/// Does the work that falls due: vouchers past their expiry, referrals whose referee
/// qualified (or whose window passed), draws past their closing time. Blocking. Returns how
/// many records it moved.
pub fn run_due(ops: &Ops) -> Result<usize, OpError> {
    let now = now_ms();
    Ok(rewards::sweep(ops, now)? + referrals::sweep(ops, now)? + draws::close_due(ops, now)?)
}

/// Runs [`run_due`] every 30 seconds while the gateway lives.
pub fn spawn(ops: Weak<Ops>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let Some(o) = ops.upgrade() else { return };
            match tokio::task::spawn_blocking(move || run_due(&o)).await {
                Ok(Err(e)) => e.log_round("engagement sweep"),
                Err(e) => tracing::warn!(error = %e, "engagement sweep task failed"),
                Ok(Ok(_)) => {}
            }
        }
    });
}

/// A transaction id as the API shows it.
fn tx_id(r: &Receipt) -> String {
    r.tx.id.0.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::keys::gateway::engagement::REFERRAL_PENDING;

    #[test]
    fn a_cursor_pages_through_every_record_in_turn_and_starts_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ops = crate::ops::ops_on(dir.path());
        let body = |i: u64| i.to_be_bytes().to_vec();
        ops.registry
            .engage(&mut |t| {
                for i in 1..=5 {
                    t.put(REFERRAL_PENDING, &body(i), &());
                }
                Ok(Ok::<_, OpError>(()))
            })
            .expect("store")
            .expect("puts");
        let c = Cursor::default();
        let pages: Vec<Vec<Vec<u8>>> = (0..4)
            .map(|_| c.page(&ops, REFERRAL_PENDING, 2).expect("page"))
            .collect();
        assert_eq!(
            pages,
            vec![
                vec![body(1), body(2)],
                vec![body(3), body(4)],
                vec![body(5)],
                vec![body(1), body(2)],
            ]
        );
        // A record removed behind the cursor, and one added ahead of it: the pages follow.
        ops.registry
            .engage(&mut |t| {
                t.clear(REFERRAL_PENDING, &body(3));
                t.put(REFERRAL_PENDING, &body(6), &());
                Ok(Ok::<_, OpError>(()))
            })
            .expect("store")
            .expect("changes");
        assert_eq!(
            c.page(&ops, REFERRAL_PENDING, 2).expect("page"),
            vec![body(4), body(5)]
        );
        assert_eq!(
            c.page(&ops, REFERRAL_PENDING, 2).expect("page"),
            vec![body(6)]
        );
        assert_eq!(
            c.page(&ops, REFERRAL_PENDING, 10).expect("page"),
            vec![body(1), body(2), body(4), body(5), body(6)]
        );
    }
}
