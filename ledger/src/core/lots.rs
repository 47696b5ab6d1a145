//! A member's open lots, in consumption order: soonest expiry first, never-expiring last, lots
//! of one expiry by id ([`Lot::order`]).
//!
//! Earns at partners whose points last for different times do not arrive in that order. A
//! member who earns points that last 12 months at one partner and 24 at another gets each new
//! 12-month lot ahead of every 24-month lot earned in the last year: in one sorted ring, every
//! such earn moved the shorter side of the ring, thousands of lots for a busy card. So the lots
//! are kept in a few runs, each in consumption order and each grown at its ends: a lot goes at
//! the back of the run whose last lot is the latest before it (an earn of either kind, at the
//! back of its own run), or at the front of a run it precedes; only when it falls inside every
//! run does it start a run of its own, up to [`RUNS`], and past that it is inserted where the
//! fewest lots move. Reading them in consumption order merges the runs' fronts.
//!
//! Nearly every member holds one run, kept inline in the member's state; the others are on the
//! heap. How the lots are split into runs is not part of the state: two `Lots` holding the same
//! lots are equal, and they are stored and read back as one list in consumption order.

use crate::core::model::{LotChange, LotId};
use crate::core::state::Lot;
use crate::core::types::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{vec_deque, VecDeque};

/// A lot's place in consumption order ([`Lot::order`]).
pub(crate) type Order = (bool, Timestamp, LotId);

/// The most runs a member's lots are split into: one for each lifetime of points the member
/// earns (partners' contracts rarely differ in more than a few), and one for lots given back
/// into the middle (a burn's reversal).
pub const RUNS: usize = 4;

/// A member's open lots (see the module's documentation).
#[derive(Debug, Clone, Default)]
pub struct Lots {
    /// The first run. Empty only when every run is.
    first: VecDeque<Lot>,
    /// The other runs, none of them empty; `None` while the first holds every lot. Boxed, so
    /// that a member whose lots are in one run pays one pointer for them, not a `Vec`'s three
    /// words.
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<VecDeque<Lot>>>>,
}

/// Where a change put a lot, or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// At the front or back of a run (nothing else moved), or in a run of its own.
    End,
    /// Inside a run: the lots on the shorter side of it moved.
    Inside,
}

/// Where lot `key` sits in a run (its two halves, as a ring holds them): `Ok(i)` where a lot
/// has that place, `Err(i)` where one would go. The search gallops from the back, then halves
/// what is left: a lot a command names in the middle (a refund's earn) is nearly always among
/// the latest, a few probes from the back, where a plain halving of a member's hundreds of lots
/// would miss the cache at every step.
pub(crate) fn search_lots((front, back): (&[Lot], &[Lot]), key: Order) -> Result<usize, usize> {
    let (half, offset) = match back.first() {
        Some(l) if l.order() <= key => (back, front.len()),
        _ => (front, 0),
    };
    // Every lot from `hi` on is after `key`.
    let mut hi = half.len();
    let mut step = 1;
    let lo = loop {
        match hi.checked_sub(step) {
            Some(p) if half[p].order() > key => {
                hi = p;
                step *= 2;
            }
            Some(p) => break p,
            None => break 0,
        }
    };
    match half[lo..hi].binary_search_by(|l| l.order().cmp(&key)) {
        Ok(i) => Ok(offset + lo + i),
        Err(i) => Err(offset + lo + i),
    }
}

/// Where lot `key` sits in `run`: a lot at either end is found without the search (an earn's
/// lot after the last, a burn's the first).
fn place_in(run: &VecDeque<Lot>, key: Order) -> Result<usize, usize> {
    match (run.front(), run.back()) {
        (Some(f), Some(b)) => {
            if b.order() < key {
                Err(run.len())
            } else if f.order() == key {
                Ok(0)
            } else if key < f.order() {
                Err(0)
            } else {
                search_lots(run.as_slices(), key)
            }
        }
        _ => Err(0),
    }
}

impl Lots {
    /// No lots.
    pub const fn new() -> Lots {
        Lots {
            first: VecDeque::new(),
            more: None,
        }
    }

    /// How many lots.
    pub fn len(&self) -> usize {
        self.runs().map(VecDeque::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    /// The runs, the first first.
    fn runs(&self) -> impl Iterator<Item = &VecDeque<Lot>> {
        std::iter::once(&self.first).chain(self.more.iter().flat_map(|m| m.iter()))
    }

    /// How many runs the lots are split into (1 with none).
    pub fn run_count(&self) -> usize {
        1 + self.more.as_ref().map_or(0, |m| m.len())
    }

    /// The memory each run holds, as two slices (a ring's halves): for fetching ahead.
    pub(crate) fn slices(&self) -> impl Iterator<Item = &[Lot]> {
        self.runs().flat_map(|r| {
            let (a, b) = r.as_slices();
            [a, b]
        })
    }

    /// The first lot in consumption order: the next a burn draws on.
    pub fn front(&self) -> Option<&Lot> {
        self.runs()
            .filter_map(VecDeque::front)
            .min_by_key(|l| l.order())
    }

    /// The last lot in consumption order.
    pub fn back(&self) -> Option<&Lot> {
        self.runs()
            .filter_map(VecDeque::back)
            .max_by_key(|l| l.order())
    }

    /// The ends of the first run: where the next burn or earn of nearly every member falls
    /// (for fetching ahead; no comparison across runs).
    pub(crate) fn first_run_ends(&self) -> (Option<&Lot>, Option<&Lot>) {
        (self.first.front(), self.first.back())
    }

    /// Every lot in consumption order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            runs: self.runs().map(|r| r.iter().peekable()).collect(),
            left: self.len(),
        }
    }

    /// Every lot, run by run: for what needs no order (a sum, a lookup by id), without the
    /// merge [`Lots::iter`] does.
    pub fn unordered(&self) -> impl Iterator<Item = &Lot> {
        self.runs().flat_map(|r| r.iter())
    }

    /// The points the lots hold.
    pub fn total(&self) -> i64 {
        self.unordered().map(|l| l.remaining.0).sum()
    }

    /// The lot at `key` in consumption order ([`Lot::order`]), if held.
    pub(crate) fn find(&self, key: Order) -> Option<&Lot> {
        self.runs()
            .find_map(|r| place_in(r, key).ok().map(|i| &r[i]))
    }

    /// Adds a lot the member does not hold (points in a new lot, or a lot moved from another
    /// member).
    pub fn insert(&mut self, lot: Lot) -> Placed {
        debug_assert!(self.find(lot.order()).is_none(), "lot {:?} is held", lot.id);
        let key = lot.order();
        // The run whose last lot is the latest before `key` takes it at its back; failing
        // that, the run it precedes whose first lot is soonest takes it at its front.
        let mut back: Option<(Order, usize)> = None;
        let mut front: Option<(Order, usize)> = None;
        for (i, r) in self.runs().enumerate() {
            let (Some(f), Some(b)) = (r.front(), r.back()) else {
                continue;
            };
            if b.order() < key && back.is_none_or(|(o, _)| b.order() > o) {
                back = Some((b.order(), i));
            }
            if key < f.order() && front.is_none_or(|(o, _)| f.order() < o) {
                front = Some((f.order(), i));
            }
        }
        if let Some((_, i)) = back {
            self.run_mut(i).push_back(lot);
            return Placed::End;
        }
        if let Some((_, i)) = front {
            self.run_mut(i).push_front(lot);
            return Placed::End;
        }
        if self.first.is_empty() {
            self.first.push_back(lot);
            return Placed::End;
        }
        let more = self.more.get_or_insert_with(Default::default);
        if more.len() + 1 < RUNS {
            more.push(VecDeque::from([lot]));
            return Placed::End;
        }
        // Inside every run, and no room for another: where the fewest lots move.
        let (i, at) = self
            .runs()
            .enumerate()
            .map(|(i, r)| {
                let at = match place_in(r, key) {
                    Ok(at) | Err(at) => at,
                };
                (at.min(r.len() - at), i, at)
            })
            .min()
            .map(|(_, i, at)| (i, at))
            .expect("a run");
        self.run_mut(i).insert(at, lot);
        Placed::Inside
    }

    fn run(&self, i: usize) -> &VecDeque<Lot> {
        match i {
            0 => &self.first,
            _ => &self.more.as_ref().expect("more runs")[i - 1],
        }
    }

    fn run_mut(&mut self, i: usize) -> &mut VecDeque<Lot> {
        match i {
            0 => &mut self.first,
            _ => &mut self.more.as_mut().expect("more runs")[i - 1],
        }
    }

    /// Applies lot change `c`: points into a new lot, or drawn from (or given back to) one
    /// held. A lot drawn to zero leaves.
    pub(crate) fn apply(&mut self, c: &LotChange) -> Placed {
        let key = (
            c.expires_at.is_none(),
            c.expires_at.unwrap_or_default(),
            c.lot,
        );
        let found = if self.more.is_none() {
            // One run, as nearly every member has: a new lot at either end goes there.
            match place_in(&self.first, key) {
                Ok(at) => Some((0, at)),
                Err(at) if at == 0 || at == self.first.len() => {
                    let lot = new_lot(c);
                    match at {
                        0 => self.first.push_front(lot),
                        _ => self.first.push_back(lot),
                    }
                    return Placed::End;
                }
                Err(_) => None,
            }
        } else {
            (0..self.run_count()).find_map(|i| place_in(self.run(i), key).ok().map(|at| (i, at)))
        };
        let Some((i, at)) = found else {
            return self.insert(new_lot(c));
        };
        let run = self.run_mut(i);
        let lot = &mut run[at];
        lot.remaining.0 += c.delta.0;
        assert!(
            lot.remaining.0 >= 0,
            "lot {:?} of member {} went negative",
            c.lot,
            c.member.0
        );
        if lot.remaining.0 != 0 {
            return Placed::End;
        }
        let placed = if at == 0 || at + 1 == run.len() {
            Placed::End
        } else {
            Placed::Inside
        };
        run.remove(at);
        if run.is_empty() {
            self.drop_run(i);
        }
        placed
    }

    /// Drops empty run `i`, keeping the first run the one that is empty only when all are.
    fn drop_run(&mut self, i: usize) {
        let Some(more) = self.more.as_mut() else {
            return;
        };
        if i == 0 {
            self.first = more.swap_remove(0);
        } else {
            more.swap_remove(i - 1);
        }
        if more.is_empty() {
            self.more = None;
        }
    }
}

/// The lot change `c` opens: points into a lot the member does not hold.
fn new_lot(c: &LotChange) -> Lot {
    assert!(
        c.delta.0 > 0,
        "journal consumes lot {:?} that member {} does not have",
        c.lot,
        c.member.0
    );
    Lot {
        id: c.lot,
        expires_at: c.expires_at,
        remaining: c.delta,
    }
}

/// A member's lots in consumption order: the runs' fronts merged.
pub struct Iter<'a> {
    runs: smallvec::SmallVec<[std::iter::Peekable<vec_deque::Iter<'a, Lot>>; 1]>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Lot;

    fn next(&mut self) -> Option<&'a Lot> {
        let lot = if self.runs.len() == 1 {
            self.runs[0].next()
        } else {
            let i = (0..self.runs.len())
                .filter_map(|i| self.runs[i].peek().map(|l| (l.order(), i)))
                .min()?
                .1;
            self.runs[i].next()
        }?;
        self.left -= 1;
        Some(lot)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Lots {
    type Item = &'a Lot;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Lots in any order, each held once.
impl FromIterator<Lot> for Lots {
    fn from_iter<I: IntoIterator<Item = Lot>>(lots: I) -> Lots {
        let mut first: Vec<Lot> = lots.into_iter().collect();
        first.sort_by_key(Lot::order);
        Lots {
            first: first.into(),
            more: None,
        }
    }
}

impl<const N: usize> From<[Lot; N]> for Lots {
    fn from(lots: [Lot; N]) -> Lots {
        lots.into_iter().collect()
    }
}

impl PartialEq for Lots {
    fn eq(&self, other: &Lots) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Lots {}

/// Stored as one list in consumption order: the bytes a single ring of the same lots has.
impl Serialize for Lots {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Lots {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lots, D::Error> {
        let first = VecDeque::<Lot>::deserialize(d)?;
        if first
            .iter()
            .zip(first.iter().skip(1))
            .any(|(a, b)| a.order() >= b.order())
        {
            return Err(serde::de::Error::custom("lots out of consumption order"));
        }
        Ok(Lots { first, more: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::LotChange;
    use crate::core::types::{MemberId, Points, TxId};
    use rand::{Rng, SeedableRng};

    /// The search from the back answers as a plain halving of the whole list does, for lots
    /// present and absent, wherever the ring's two halves split and however long they are.
    #[test]
    fn searching_lots_from_the_back_finds_what_halving_finds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..2_000u64 {
            let n = rng.random_range(0..300usize);
            // Distinct expiries, even ones only: an odd one is never present.
            let mut lots: Vec<Lot> = (0..n)
                .map(|i| Lot {
                    id: LotId {
                        tx: TxId(round * 1_000 + i as u64),
                        n: 0,
                    },
                    expires_at: (i + 1 < n || rng.random_range(0..2) == 0)
                        .then_some(Timestamp(2 * i as i64)),
                    remaining: Points(1),
                })
                .collect();
            lots.sort_by_key(Lot::order);
            let split = rng.random_range(0..=n);
            let halves = (&lots[..split], &lots[split..]);
            for _ in 0..20 {
                let key = if n > 0 && rng.random_range(0..2) == 0 {
                    lots[rng.random_range(0..n)].order()
                } else {
                    let t = rng.random_range(-1..2 * n as i64 + 1);
                    let id = LotId {
                        tx: TxId(rng.random_range(0..round * 1_000 + 1_000)),
                        n: 0,
                    };
                    (rng.random_range(0..8) == 0, Timestamp(t), id)
                };
                assert_eq!(
                    search_lots(halves, key),
                    lots.binary_search_by(|l| l.order().cmp(&key)),
                    "round {round}, {n} lots split at {split}"
                );
            }
        }
    }

    /// Lot changes at the ends and in the middle, applied to a member's lots, leave them as a
    /// plain sorted list kept by search, insert and remove does: read in order, found by their
    /// place, at either end, stored and read back.
    #[test]
    fn lot_changes_keep_the_lots_in_consumption_order() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut ring = Lots::new();
        let mut most_runs = 1;
        let mut model: Vec<Lot> = Vec::new();
        let (mut front_hits, mut back_adds, mut middle) = (0, 0, 0);
        for step in 0..20_000u64 {
            let change = if model.is_empty() || rng.random_range(0..10) < 6 {
                // A new lot: most expire after every lot held (at the back), some earlier, some
                // never.
                let expires_at = match rng.random_range(0..10) {
                    0 => None,
                    1 | 2 => Some(Timestamp(rng.random_range(0..1_000_000))),
                    _ => Some(Timestamp(1_000_000 + step as i64)),
                };
                LotChange {
                    member: MemberId(1),
                    lot: LotId {
                        tx: TxId::new(step + 1, 0),
                        n: 0,
                    },
                    expires_at,
                    delta: Points(rng.random_range(1..100)),
                }
            } else {
                // A draw on a held lot: mostly the first, sometimes another; sometimes all of it.
                let i = if rng.random_range(0..4) == 0 {
                    rng.random_range(0..model.len())
                } else {
                    0
                };
                let l = model[i];
                let take = if rng.random_range(0..2) == 0 {
                    l.remaining.0
                } else {
                    rng.random_range(1..=l.remaining.0)
                };
                LotChange {
                    member: MemberId(1),
                    lot: l.id,
                    expires_at: l.expires_at,
                    delta: Points(-take),
                }
            };
            let key = (
                change.expires_at.is_none(),
                change.expires_at.unwrap_or_default(),
                change.lot,
            );
            match model.binary_search_by(|l| l.order().cmp(&key)) {
                Ok(i) => {
                    if i == 0 {
                        front_hits += 1;
                    } else {
                        middle += 1;
                    }
                    model[i].remaining.0 += change.delta.0;
                    if model[i].remaining.0 == 0 {
                        model.remove(i);
                    }
                }
                Err(at) => {
                    if at == model.len() {
                        back_adds += 1;
                    } else {
                        middle += 1;
                    }
                    model.insert(
                        at,
                        Lot {
                            id: change.lot,
                            expires_at: change.expires_at,
                            remaining: change.delta,
                        },
                    );
                }
            }
            ring.apply(&change);
            assert!(ring.iter().eq(model.iter()), "step {step}");
            assert_eq!(ring.len(), model.len());
            assert_eq!(ring.iter().len(), model.len());
            assert_eq!(ring.unordered().count(), model.len());
            assert_eq!(
                ring.total(),
                model.iter().map(|l| l.remaining.0).sum::<i64>()
            );
            assert_eq!(ring.front(), model.first());
            assert_eq!(ring.back(), model.last());
            assert!(ring.run_count() <= RUNS);
            most_runs = most_runs.max(ring.run_count());
            if step % 1_000 == 0 {
                for l in &model {
                    assert_eq!(ring.find(l.order()), Some(l));
                }
                let bytes = postcard::to_allocvec(&ring).expect("encodes");
                let as_one: VecDeque<Lot> = model.iter().copied().collect();
                assert_eq!(bytes, postcard::to_allocvec(&as_one).expect("encodes"));
                let read: Lots = postcard::from_bytes(&bytes).expect("decodes");
                assert_eq!(read, ring);
                assert_eq!(read.run_count(), 1);
            }
        }
        assert_eq!(most_runs, RUNS, "the lots were split as far as they may be");
        // Every path was taken many times.
        assert!(front_hits > 1_000 && back_adds > 1_000 && middle > 1_000);
        assert!(!model.is_empty());
    }

    fn earn(step: u64, expires_at: i64) -> LotChange {
        LotChange {
            member: MemberId(1),
            lot: LotId {
                tx: TxId::new(step + 1, 0),
                n: 0,
            },
            expires_at: Some(Timestamp(expires_at)),
            delta: Points(10),
        }
    }

    /// Earns of points that last a year and points that last two, in turn, with burns from the
    /// front: every lot goes at an end of a run, none moves the others, and the lots are read
    /// in consumption order. In one sorted ring each one-year lot went ahead of every two-year
    /// lot earned since.
    #[test]
    fn earns_of_two_lifetimes_each_go_at_the_end_of_a_run() {
        const YEAR: i64 = 365 * 86_400_000;
        let mut lots = Lots::new();
        let mut model: Vec<Lot> = Vec::new();
        for step in 0..5_000u64 {
            let now = step as i64 * 1_000;
            let c = earn(step, now + YEAR * (1 + (step % 2) as i64));
            assert_eq!(lots.apply(&c), Placed::End, "step {step}");
            model.push(Lot {
                id: c.lot,
                expires_at: c.expires_at,
                remaining: c.delta,
            });
            if step % 3 == 2 {
                // A burn of the first lot, whole.
                model.sort_by_key(Lot::order);
                let l = model.remove(0);
                let burn = LotChange {
                    member: MemberId(1),
                    lot: l.id,
                    expires_at: l.expires_at,
                    delta: Points(-l.remaining.0),
                };
                assert_eq!(lots.apply(&burn), Placed::End, "step {step}");
            }
        }
        model.sort_by_key(Lot::order);
        assert_eq!(lots.run_count(), 2);
        assert!(lots.iter().eq(model.iter()));
        assert_eq!(lots, model.iter().copied().collect::<Lots>());
    }

    /// Lots stored out of consumption order are refused when read, not searched wrongly.
    #[test]
    fn lots_out_of_order_are_refused_when_read() {
        let a = Lot {
            id: LotId {
                tx: TxId::new(1, 0),
                n: 0,
            },
            expires_at: None,
            remaining: Points(5),
        };
        let b = Lot {
            expires_at: Some(Timestamp(10)),
            ..a
        };
        let bytes = postcard::to_allocvec(&VecDeque::from([a, b])).expect("encodes");
        assert!(postcard::from_bytes::<Lots>(&bytes).is_err());
        let bytes = postcard::to_allocvec(&VecDeque::from([b, a])).expect("encodes");
        let read: Lots = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(read.front(), Some(&b));
    }
}
