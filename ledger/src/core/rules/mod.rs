//! The posting rules, one file per command: each checks its command against the [`State`] and
//! names the legs of the transaction it commits, in a [`Builder`]. Nothing here changes the
//! state; [`State::apply`] does, by the recorded effects.
//!
//! Each way a command can be refused is its own [`Rejection`] variant, checked in a fixed order,
//! one check a line.

pub mod adjust;
mod awards;
pub mod contract;
mod earn;
mod expiry;
mod hold;
pub mod lifecycle;
pub mod pool;
mod reversal;
mod reward;
pub mod transfer;

use crate::core::builder::Builder;
use crate::core::model::{Command, Digest, IdemKey, Scope, Transaction};
use crate::core::rejection::Rejection;
use crate::core::state::{History, HoldState, MemberState, Standing, State};
use crate::core::types::{Contract, MemberId, PartnerId, Points, Timestamp, TxId};

/// Why `decide` did not produce a transaction.
#[derive(Debug)]
pub enum DecideError<E> {
    /// The command breaks a rule.
    Rejected(Rejection),
    /// The engine could not look something up in its [`History`].
    Failed(E),
}

impl<E> From<Rejection> for DecideError<E> {
    fn from(r: Rejection) -> Self {
        DecideError::Rejected(r)
    }
}

impl State {
    /// Checks `cmd` and builds the transaction it commits as `id` at `at`. Changes nothing.
    pub fn decide<H: History + ?Sized>(
        &self,
        cmd: &Command,
        digest: Digest,
        id: TxId,
        at: Timestamp,
        history: &H,
    ) -> Result<Transaction, DecideError<H::Error>> {
        let mut tx = self.decide_keyless(cmd, digest, id, at, history)?;
        tx.key = cmd.key().clone();
        Ok(tx)
    }

    /// [`State::decide`], leaving the transaction's key empty: for a caller that owns the
    /// command and moves its key into the transaction, where a copy would cost an allocation
    /// per command.
    pub(crate) fn decide_keyless<H: History + ?Sized>(
        &self,
        cmd: &Command,
        digest: Digest,
        id: TxId,
        at: Timestamp,
        history: &H,
    ) -> Result<Transaction, DecideError<H::Error>> {
        let placeholder = IdemKey {
            scope: Scope::System,
            reference: String::new(),
        };
        let mut b = Builder::new(self, placeholder, digest, id, at);
        let kind = match cmd {
            Command::SetContract { key, contract } => contract::set(key, contract)?,
            Command::Enrol { member, .. } => contract::enrol(self, &mut b, *member)?,
            Command::Earn {
                key,
                member,
                partner,
                points,
                bonus,
                awards,
                guard,
                purchase,
            } => earn::earn(
                self,
                &mut b,
                &earn::EarnCmd {
                    key,
                    member: *member,
                    partner: *partner,
                    points: *points,
                    bonus: *bonus,
                    awards,
                    guard: guard.as_deref(),
                    purchase: purchase.as_deref(),
                },
            )?,
            Command::Burn {
                key,
                member,
                partner,
                points,
            } => earn::burn(self, &mut b, key, *member, *partner, *points)?,
            Command::Hold {
                key,
                member,
                partner,
                points,
                timeout_ms,
            } => hold::hold(self, &mut b, key, *member, *partner, *points, *timeout_ms)?,
            Command::Capture { key, hold, points } => {
                hold::capture(self, &mut b, key, *hold, *points)?
            }
            Command::Void { key, hold } => hold::void(self, &mut b, key, *hold)?,
            Command::Reverse {
                key,
                original,
                points,
            } => reversal::reverse(self, &mut b, key, *original, *points, history)?,
            Command::Transfer {
                from,
                to,
                points,
                consent,
                ..
            } => transfer::transfer(
                self,
                &mut b,
                &transfer::TransferCmd {
                    from: *from,
                    to: *to,
                    points: *points,
                    consent: consent.as_deref(),
                },
            )?,
            Command::SetTransferPolicy { key, policy } => transfer::set_policy(key, policy)?,
            Command::SetTierPolicy { key, policy } => expiry::set_tier_policy(key, policy)?,
            Command::SetTier {
                key,
                member,
                level,
                until,
                reason,
            } => expiry::set_tier(self, &mut b, key, *member, *level, *until, reason)?,
            Command::Adjust {
                key,
                member,
                points,
                reason,
                operator,
                qualifies,
                corrects,
            } => adjust::adjust(
                self,
                &mut b,
                &adjust::AdjustCmd {
                    key,
                    member: *member,
                    points: *points,
                    reason,
                    operator,
                    qualifies: *qualifies,
                    corrects: *corrects,
                },
            )?,
            Command::ClosePeriod {
                key,
                period,
                through,
            } => adjust::close_period(self, &b, key, period, *through)?,
            Command::JoinPool {
                key,
                owner,
                member,
                consent,
            } => pool::join(self, &mut b, key, *owner, *member, consent)?,
            Command::LeavePool { key, member } => pool::leave(self, &mut b, key, *member)?,
            Command::SetStanding {
                key,
                member,
                standing,
                forfeit,
                note,
            } => lifecycle::set_standing(self, &mut b, key, *member, *standing, *forfeit, note)?,
            Command::Merge {
                key,
                from,
                into,
                note,
            } => lifecycle::merge(self, &mut b, key, *from, *into, note)?,
            Command::Notice {
                key,
                member,
                notice,
            } => lifecycle::notice(self, key, *member, *notice)?,
            Command::SetExpiryPolicy { key, policy } => expiry::set_policy(key, policy)?,
            Command::Expire { key, member } => expiry::expire(self, &mut b, key, *member)?,
            Command::Redeem {
                key,
                member,
                partner,
                points,
                claim,
            } => reward::redeem(self, &mut b, key, *member, *partner, *points, claim)?,
            Command::Grant {
                key,
                member,
                points,
                funder,
                origin,
            } => reward::grant(self, &mut b, key, *member, *points, *funder, origin)?,
        };
        Ok(b.finish(kind))
    }

    /// Points of one command: positive and within the programme's per-command limit.
    fn check_points(&self, points: Points) -> Result<(), Rejection> {
        if points.0 <= 0 {
            return Err(Rejection::PointsNotPositive { points });
        }
        if points.0 > self.policy.points_per_command_max {
            return Err(Rejection::PointsAboveLimit {
                points,
                max: Points(self.policy.points_per_command_max),
            });
        }
        Ok(())
    }

    fn contract(&self, p: PartnerId) -> Result<&Contract, Rejection> {
        self.contracts.get(&p).ok_or(Rejection::UnknownPartner(p))
    }

    fn require_member(&self, m: MemberId) -> Result<&MemberState, Rejection> {
        self.members.get(&m).ok_or(Rejection::UnknownMember(m))
    }

    /// Member `m`, enrolled and active: a suspended, closed or merged member neither earns
    /// nor burns.
    fn require_active(&self, m: MemberId) -> Result<&MemberState, Rejection> {
        let s = self.require_member(m)?;
        match s.standing() {
            Standing::Active => Ok(s),
            other => Err(standing_refusal(m, other)),
        }
    }

    /// Member `m`, enrolled and not merged away (a suspended or closed member is still
    /// corrected and reversed against).
    fn require_unmerged(&self, m: MemberId) -> Result<&MemberState, Rejection> {
        let s = self.require_member(m)?;
        match s.standing() {
            Standing::Merged(into) => Err(Rejection::MemberMerged { member: m, into }),
            _ => Ok(s),
        }
    }

    /// What member `m` may spend at `at` covers `p`: posted less held less expired.
    fn require_available(&self, m: MemberId, p: Points, at: Timestamp) -> Result<(), Rejection> {
        let s = self.require_member(m)?;
        let available = self.spendable(s, at);
        if available < p {
            return Err(Rejection::InsufficientPoints {
                available,
                requested: p,
            });
        }
        Ok(())
    }

    fn open_hold(&self, key: &IdemKey, hold: TxId) -> Result<HoldState, Rejection> {
        let h = self
            .holds
            .get(&hold)
            .ok_or(Rejection::HoldNotOpen { hold })?;
        visible_to(key, h.partner, hold)?;
        Ok(*h)
    }
}

fn standing_refusal(m: MemberId, standing: Standing) -> Rejection {
    match standing {
        Standing::Merged(into) => Rejection::MemberMerged { member: m, into },
        other => Rejection::MemberNotActive {
            member: m,
            standing: other.name(),
        },
    }
}

fn require_system(key: &IdemKey) -> Result<(), Rejection> {
    match key.scope {
        Scope::System => Ok(()),
        _ => Err(Rejection::NeedsSystem),
    }
}

fn require_operator(key: &IdemKey) -> Result<(), Rejection> {
    match key.scope {
        Scope::Operator => Ok(()),
        _ => Err(Rejection::NeedsOperator),
    }
}

fn require_partner(key: &IdemKey, partner: PartnerId) -> Result<(), Rejection> {
    match key.scope {
        Scope::Partner(p) if p == partner => Ok(()),
        Scope::Operator => Ok(()),
        _ => Err(Rejection::ScopeMismatch { partner }),
    }
}

/// A partner sees only its own transactions; others answer as unknown.
fn visible_to(key: &IdemKey, owner: PartnerId, id: TxId) -> Result<(), Rejection> {
    match key.scope {
        Scope::Partner(p) if p != owner => Err(Rejection::UnknownTransaction(id)),
        _ => Ok(()),
    }
}
