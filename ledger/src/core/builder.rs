//! The posting builder: accumulates the legs, lot changes and member lines of one transaction
//! while a rule decides it, on working copies of the members it touches (the state itself is
//! not changed). Lots are consumed soonest-expiry first; burn reversals restore the lots the
//! burn drew on.

use crate::core::lots::Lots;
use crate::core::model::{
    Amount, Digest, IdemKey, LotChange, LotChanges, LotId, MemberAfter, MemberLines, Posting,
    Transaction, TxKind,
};
use crate::core::rejection::Rejection;
use crate::core::state::{held_changes, Lot, State};
use crate::core::types::{AccountId, MemberId, Money, Points, Timestamp, TxId};
use rust_decimal::Decimal;

/// Accumulates the legs of one transaction while `decide` builds it.
pub(crate) struct Builder<'a> {
    state: &'a State,
    tx: Transaction,
    /// Working copies of the members this transaction touches (nearly always one or two: held
    /// in place, no allocation).
    touched: smallvec::SmallVec<[(MemberId, Working<'a>); 2]>,
}

/// What the builder changes of a member while it decides: the points posted and held, and the
/// lots. The rest of the member's state (tier, campaigns, standing, pool) is read from the
/// state and changed only by `State::apply`, so it is not copied. Nor are the lots: a member
/// may hold thousands, and a command changes one or a few, so the working copy is the
/// member's lots as they are plus this transaction's changes to them ([`Working::lots`]).
pub(crate) struct Working<'a> {
    pub posted: Points,
    pub held: Points,
    /// The member's lots before this transaction.
    base: &'a Lots,
    /// This transaction's changes to them so far, in order (nearly always one or two).
    changes: LotChanges,
    /// The member's latest transaction before this one.
    last: Option<TxId>,
}

/// A member's lots before its first transaction.
static NO_LOTS: Lots = Lots::new();

impl Default for Working<'_> {
    fn default() -> Self {
        Working {
            posted: Points(0),
            held: Points(0),
            base: &NO_LOTS,
            changes: LotChanges::new(),
            last: None,
        }
    }
}

impl Working<'_> {
    /// Lot `id`, whose expiry is `expires_at`, as this transaction has left it so far, if any
    /// of it remains: found by its place in consumption order, so a member holding thousands
    /// of lots is not walked (a refund names its earn's lot, which may be anywhere).
    fn lot(&self, id: LotId, expires_at: Option<Timestamp>) -> Option<Lot> {
        let mut lot = Lot {
            id,
            expires_at,
            remaining: Points(0),
        };
        let before = self.base.find(lot.order()).map(|l| l.remaining.0);
        let changed = self.changes.iter().filter(|c| c.lot == id);
        lot.remaining.0 = before.unwrap_or(0) + changed.map(|c| c.delta.0).sum::<i64>();
        (lot.remaining.0 > 0).then_some(lot)
    }

    /// The member's lots as this transaction has left them so far, in consumption order
    /// (soonest expiry first): its lots before, with this transaction's changes, read lazily,
    /// so a command that needs the first few lots does not walk the rest.
    fn lots(&self) -> impl Iterator<Item = Lot> + '_ {
        // The net change to each lot this transaction changed, in consumption order.
        let mut net: Vec<Lot> = self
            .changes
            .iter()
            .map(|c| Lot {
                id: c.lot,
                expires_at: c.expires_at,
                remaining: c.delta,
            })
            .collect();
        net.sort_by_key(Lot::order);
        net.dedup_by(|later, first| {
            let same = later.id == first.id;
            if same {
                first.remaining.0 += later.remaining.0;
            }
            same
        });
        let mut base = self.base.iter().copied().peekable();
        let mut net = net.into_iter().peekable();
        std::iter::from_fn(move || loop {
            let lot = match (base.peek(), net.peek()) {
                (None, None) => return None,
                (Some(_), None) => base.next(),
                (None, Some(_)) => net.next(),
                (Some(b), Some(n)) => match b.order().cmp(&n.order()) {
                    std::cmp::Ordering::Less => base.next(),
                    std::cmp::Ordering::Greater => net.next(),
                    std::cmp::Ordering::Equal => {
                        let delta = n.remaining.0;
                        net.next();
                        base.next().map(|mut l| {
                            l.remaining.0 += delta;
                            l
                        })
                    }
                },
            }?;
            debug_assert!(lot.remaining.0 >= 0, "lot {:?} went negative", lot.id);
            if lot.remaining.0 > 0 {
                return Some(lot);
            }
        })
    }
}

impl<'a> Builder<'a> {
    pub(crate) fn new(
        state: &'a State,
        key: IdemKey,
        digest: Digest,
        id: TxId,
        at: Timestamp,
    ) -> Builder<'a> {
        Builder {
            state,
            tx: Transaction {
                id,
                at,
                key,
                digest,
                kind: TxKind::Enrolled {
                    member: MemberId(0),
                },
                postings: Vec::new(),
                lots: LotChanges::new(),
                member_balances: MemberLines::new(),
                pricing: None,
            },
            touched: smallvec::SmallVec::new(),
        }
    }

    pub(crate) fn member(&mut self, m: MemberId) -> &mut Working<'a> {
        let i = match self.touched.iter().position(|(id, _)| *id == m) {
            Some(i) => i,
            None => {
                let w = match self.state.members.get(&m) {
                    Some(s) => Working {
                        posted: s.posted,
                        held: s.held,
                        base: &s.lots,
                        changes: LotChanges::new(),
                        last: s.last.get(),
                    },
                    None => Working::default(),
                };
                self.touched.push((m, w));
                self.touched.len() - 1
            }
        };
        &mut self.touched[i].1
    }

    /// When the transaction commits.
    pub(crate) fn at(&self) -> Timestamp {
        self.tx.at
    }

    /// The transaction's id.
    pub(crate) fn id(&self) -> crate::core::types::TxId {
        self.tx.id
    }

    pub(crate) fn touch(&mut self, m: MemberId) {
        self.member(m);
    }

    pub(crate) fn points(&mut self, account: AccountId, p: Points) {
        self.posting(Posting {
            account,
            amount: Amount::Points(p),
        });
    }

    /// Adds a leg. The first one makes room for the six legs of an earn with its money legs
    /// and a bonus: one allocation, where growing one leg at a time would copy twice.
    fn posting(&mut self, leg: Posting) {
        if self.tx.postings.capacity() == 0 {
            self.tx.postings.reserve_exact(6);
        }
        self.tx.postings.push(leg);
    }

    /// Credits `p` points from `source` to member `m`, in a new lot.
    pub(crate) fn credit(
        &mut self,
        m: MemberId,
        source: AccountId,
        p: Points,
        expires_at: Option<Timestamp>,
    ) -> Result<(), Rejection> {
        if p.0 == 0 {
            return Ok(());
        }
        let lot = LotId {
            tx: self.tx.id,
            n: self.tx.lots.len() as u16,
        };
        self.add_to_member(m, p, lot, expires_at)?;
        self.points(source, Points(-p.0));
        self.points(AccountId::Member(m), p);
        Ok(())
    }

    /// The lot the next credit would open.
    pub(crate) fn next_lot(&self) -> LotId {
        LotId {
            tx: self.tx.id,
            n: self.tx.lots.len() as u16,
        }
    }

    /// Credits member `m` from several sources at once, all into one new lot (an earn's base
    /// points, bonus and campaign awards): one change to the member, one leg per source.
    pub(crate) fn credit_from(
        &mut self,
        m: MemberId,
        sources: &[(AccountId, Points)],
        expires_at: Option<Timestamp>,
    ) -> Result<(), Rejection> {
        let total = sources
            .iter()
            .try_fold(0i64, |t, (_, p)| t.checked_add(p.0))
            .ok_or(Rejection::BalanceOverflow { member: m })?;
        if total == 0 {
            return Ok(());
        }
        let lot = self.next_lot();
        self.add_to_member(m, Points(total), lot, expires_at)?;
        for &(source, p) in sources.iter().filter(|(_, p)| p.0 != 0) {
            self.points(source, Points(-p.0));
            self.points(AccountId::Member(m), p);
        }
        Ok(())
    }

    /// Adds points to a member: what is above zero goes into lot `lot`.
    pub(crate) fn add_to_member(
        &mut self,
        m: MemberId,
        p: Points,
        lot: LotId,
        expires_at: Option<Timestamp>,
    ) -> Result<(), Rejection> {
        let s = self.member(m);
        let before = s.posted.0;
        let after = before
            .checked_add(p.0)
            .ok_or(Rejection::BalanceOverflow { member: m })?;
        s.posted = Points(after);
        let into_lot = after.max(0) - before.max(0);
        if into_lot > 0 {
            let change = LotChange {
                member: m,
                lot,
                expires_at,
                delta: Points(into_lot),
            };
            s.changes.push(change);
            self.tx.lots.push(change);
        }
        Ok(())
    }

    /// Takes `p` points from member `m` to `dest`, consuming lots oldest-expiry first.
    pub(crate) fn debit(
        &mut self,
        m: MemberId,
        dest: AccountId,
        p: Points,
    ) -> Result<LotChanges, Rejection> {
        let taken = self.take(m, p, None, false);
        self.points(AccountId::Member(m), Points(-p.0));
        self.points(dest, p);
        Ok(taken)
    }

    /// Removes `p` points from member `m`'s posted balance and lots; `first` (a lot and its
    /// expiry) is drained first.
    ///
    /// Expired lots are never spent: only a reversal (`first`, its own earn's lot) may draw on
    /// them, taking back points that would expire anyway, and a merge (`expired_too`), which
    /// moves every lot, due or not, to the survivor, where the due ones expire.
    pub(crate) fn take(
        &mut self,
        m: MemberId,
        p: Points,
        first: Option<(LotId, Option<Timestamp>)>,
        expired_too: bool,
    ) -> LotChanges {
        let at = self.tx.at;
        let state = self.state;
        let before = state.members.get(&m);
        let s = self.member(m);
        let from_lots = s.posted.0.max(0) - (s.posted.0 - p.0).max(0);
        s.posted.0 -= p.0;
        let mut need = from_lots;
        let mut changes = LotChanges::new();
        let draw = |l: Lot, need: &mut i64, changes: &mut LotChanges| {
            let n = (*need).min(l.remaining.0);
            *need -= n;
            changes.push(LotChange {
                member: m,
                lot: l.id,
                expires_at: l.expires_at,
                delta: Points(-n),
            });
        };
        if need > 0 {
            // `first` (a reversal's own lot) is drained first, then the rest in order; with
            // `first` or `expired_too`, lots already due are drawn on too.
            debug_assert!(first.is_none_or(|(id, expires_at)| {
                s.lot(id, expires_at) == s.lots().find(|l| l.id == id)
            }));
            if let Some(own) = first.and_then(|(id, expires_at)| s.lot(id, expires_at)) {
                draw(own, &mut need, &mut changes);
            }
            let first = first.map(|(id, _)| id);
            for l in s.lots() {
                if need == 0 {
                    break;
                }
                let skip = Some(l.id) == first
                    || (first.is_none()
                        && !expired_too
                        && before.is_some_and(|b| state.lot_expired(b, &l, at)));
                if !skip {
                    draw(l, &mut need, &mut changes);
                }
            }
        }
        debug_assert_eq!(need, 0, "lots must cover the positive balance");
        s.changes.extend_from_slice(&changes);
        self.tx.lots.extend_from_slice(&changes);
        changes
    }

    /// Takes `p` points from member `m` to `dest` for a reversal of an earn: the earn's own lot
    /// (`own_lot`, expiring at `expires_at`) first, then the member's other lots in order.
    pub(crate) fn take_for_reversal(
        &mut self,
        m: MemberId,
        (own_lot, expires_at): (LotId, Option<Timestamp>),
        dest: AccountId,
        p: Points,
    ) -> Result<(), Rejection> {
        if p.0 == 0 {
            return Ok(());
        }
        self.take(m, p, Some((own_lot, expires_at)), false);
        self.points(AccountId::Member(m), Points(-p.0));
        self.points(dest, p);
        Ok(())
    }

    /// Moves `lots` (all expired) of member `m` to `programme/breakage`, whole.
    pub(crate) fn expire<'l>(
        &mut self,
        m: MemberId,
        lots: impl IntoIterator<Item = &'l Lot>,
    ) -> Points {
        let changes: LotChanges = lots
            .into_iter()
            .map(|l| LotChange {
                member: m,
                lot: l.id,
                expires_at: l.expires_at,
                delta: Points(-l.remaining.0),
            })
            .collect();
        let total: i64 = -changes.iter().map(|c| c.delta.0).sum::<i64>();
        let s = self.member(m);
        s.posted.0 -= total;
        s.changes.extend_from_slice(&changes);
        self.tx.lots.extend(changes);
        if total != 0 {
            self.points(AccountId::Member(m), Points(-total));
            self.points(AccountId::Breakage, Points(total));
        }
        Points(total)
    }

    /// Gives back `n` points of burn `orig` to the lots it consumed, newest consumption first,
    /// skipping the `already` points earlier reversals restored.
    pub(crate) fn restore(
        &mut self,
        m: MemberId,
        source: AccountId,
        orig: &Transaction,
        already: Points,
        n: Points,
    ) -> Result<(), Rejection> {
        // Every lot the original drew on, whoever's (a pool owner's burn draws on its
        // household's): the last drawn comes back first.
        let consumed: Vec<LotChange> = orig
            .lots
            .iter()
            .filter(|c| c.delta.0 < 0)
            .copied()
            .collect();
        let mut skip = already.0;
        let mut need = n.0;
        let mut restored: Vec<(MemberId, i64)> = Vec::new();
        for c in consumed.iter().rev() {
            let mut avail = -c.delta.0;
            let s = avail.min(skip);
            skip -= s;
            avail -= s;
            let give = avail.min(need);
            if give > 0 {
                self.add_to_member(c.member, Points(give), c.lot, c.expires_at)?;
                need -= give;
                match restored.iter_mut().find(|r| r.0 == c.member) {
                    Some(r) => r.1 += give,
                    None => restored.push((c.member, give)),
                }
            }
        }
        if need > 0 {
            // The burn drew on points above its lots (a negative balance); credit the rest.
            let lot = LotId {
                tx: self.tx.id,
                n: 0,
            };
            self.add_to_member(m, Points(need), lot, None)?;
            match restored.iter_mut().find(|r| r.0 == m) {
                Some(r) => r.1 += need,
                None => restored.push((m, need)),
            }
        }
        let total: i64 = restored.iter().map(|r| r.1).sum();
        self.points(source, Points(-total));
        for (member, p) in restored {
            self.points(AccountId::Member(member), Points(p));
        }
        Ok(())
    }

    /// Moves `p` spendable points of `from` to `to`, each lot with its expiry date.
    pub(crate) fn transfer(
        &mut self,
        from: MemberId,
        to: MemberId,
        p: Points,
    ) -> Result<(), Rejection> {
        self.move_points(from, to, p, false)
    }

    /// Moves every point of `from` (its whole posted balance, `p`) to `to`, each lot with its
    /// expiry date, including lots already due that the ledger's expiry has not posted yet:
    /// they expire at `to` instead (a merge).
    pub(crate) fn transfer_all(
        &mut self,
        from: MemberId,
        to: MemberId,
        p: Points,
    ) -> Result<(), Rejection> {
        self.move_points(from, to, p, true)
    }

    fn move_points(
        &mut self,
        from: MemberId,
        to: MemberId,
        p: Points,
        expired_too: bool,
    ) -> Result<(), Rejection> {
        let taken = self.take(from, p, None, expired_too);
        self.points(AccountId::Member(from), Points(-p.0));
        self.points(AccountId::Member(to), p);
        for (n, c) in taken.iter().enumerate() {
            let lot = LotId {
                tx: self.tx.id,
                n: n as u16,
            };
            self.add_to_member(to, Points(-c.delta.0), lot, c.expires_at)?;
        }
        Ok(())
    }

    /// The money legs for `points` priced at `price` per point: `debit` gets `+value`.
    pub(crate) fn money(
        &mut self,
        debit: AccountId,
        credit: AccountId,
        points: Points,
        price: Money,
    ) {
        let value = price.amount * Decimal::from(points.0);
        if value.is_zero() {
            return;
        }
        self.posting(Posting {
            account: debit,
            amount: Amount::Money(Money::new(value, price.currency)),
        });
        self.posting(Posting {
            account: credit,
            amount: Amount::Money(Money::new(-value, price.currency)),
        });
    }

    pub(crate) fn finish(mut self, kind: TxKind) -> Transaction {
        let mask = self
            .state
            .expiry
            .as_ref()
            .map_or(crate::core::expiry::activity::DEFAULT, |p| p.activities());
        for (m, delta) in held_changes(&kind).into_iter().flatten() {
            self.member(m).held.0 += delta;
        }
        self.tx.kind = kind;
        self.tx.member_balances = self
            .touched
            .iter()
            .map(|(m, s)| MemberAfter {
                member: *m,
                posted: s.posted,
                held: s.held,
                prev: s.last,
                active: activity_of(&self.tx.kind, *m) & mask != 0,
            })
            .collect();
        debug_assert_eq!(self.tx.imbalance(), (0, vec![]), "transactions balance");
        self.tx
    }
}

/// The activity `kind` is for member `m` ([`crate::core::expiry::activity`] bits; 0: none).
fn activity_of(kind: &TxKind, m: MemberId) -> u8 {
    use crate::core::expiry::activity;
    match kind {
        TxKind::Earn { .. } => activity::EARN,
        TxKind::Burn { .. } | TxKind::Redeemed(_) => activity::BURN,
        TxKind::Transfer { from, .. } if *from == m => activity::TRANSFER_OUT,
        TxKind::Transfer { .. } => activity::TRANSFER_IN,
        TxKind::Adjust { .. } => activity::ADJUSTMENT,
        _ => 0,
    }
}
