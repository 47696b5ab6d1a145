//! When each member's next due work falls (its earliest lot expiry, inactivity deadline, tier
//! review or override end), in the order the writer posts it: soonest first, then by member.
//!
//! Nearly every transaction moves its member's deadline (an earn sets a new inactivity
//! deadline), so the index changes twice a transaction, but only the deadlines already due are
//! ever read, in order. Deadlines in the next two spans of [`SPAN_MS`] (the "near" ones) are
//! held in exact order; later ones only by span, each span's members in a hash map, where a
//! change costs a probe or two instead of a walk down a tree of every member. A span moves into
//! the ordered set before any of its deadlines can fall due: [`DueIndex::due`] moves them
//! first, so what it returns is exactly what one ordered set of every deadline would return.

use crate::core::state::Map;
use crate::core::types::{MemberId, Timestamp};
use std::collections::{BTreeMap, BTreeSet};

/// The width of a span, in milliseconds (about 70 minutes).
const SPAN_MS: i64 = 1 << 22;

/// The span a deadline falls in; deadlines before 1970 all fall in the first.
fn span(t: Timestamp) -> i64 {
    t.0.max(0) / SPAN_MS
}

/// Deadlines by member, soonest first when due. See the module's notes.
#[derive(Debug, Clone, Default)]
pub struct DueIndex {
    /// Every deadline in a span before `horizon`, in order.
    near: BTreeSet<(Timestamp, MemberId)>,
    /// Every later deadline, by span.
    far: BTreeMap<i64, Map<MemberId, Timestamp>>,
    /// The first span not in `near`.
    horizon: i64,
    /// Deadlines held.
    len: usize,
}

impl DueIndex {
    /// Adds member `m`'s deadline `t`.
    pub fn insert(&mut self, t: Timestamp, m: MemberId) {
        let added = if span(t) < self.horizon {
            self.near.insert((t, m))
        } else {
            let at = self.far.entry(span(t)).or_default();
            match at.insert(m, t) {
                None => true,
                // A member is held once for a deadline: the same pair again changes nothing,
                // and two deadlines of one member in one span are kept as one set would.
                Some(other) if other == t => false,
                Some(other) => {
                    // Not a state the ledger makes (a member has one deadline); kept exact all
                    // the same by holding the other in the ordered set.
                    at.insert(m, other);
                    self.near.insert((t, m))
                }
            }
        };
        self.len += usize::from(added);
    }

    /// Removes member `m`'s deadline `t`, if held.
    pub fn remove(&mut self, t: Timestamp, m: MemberId) {
        let mut removed = self.near.remove(&(t, m));
        if !removed && span(t) >= self.horizon {
            if let Some(at) = self.far.get_mut(&span(t)) {
                if at.get(&m) == Some(&t) {
                    at.remove(&m);
                    removed = true;
                    if at.is_empty() {
                        self.far.remove(&span(t));
                    }
                }
            }
        }
        self.len -= usize::from(removed);
    }

    /// The deadlines at or before `now`, soonest first (then by member), at most `limit`.
    pub fn due(&mut self, now: Timestamp, limit: usize) -> Vec<(Timestamp, MemberId)> {
        self.reach(span(now) + 2);
        self.near
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .copied()
            .collect()
    }

    /// Moves every span before `horizon` into the ordered set.
    fn reach(&mut self, horizon: i64) {
        if horizon <= self.horizon {
            return;
        }
        let later = self.far.split_off(&horizon);
        for (_, at) in std::mem::replace(&mut self.far, later) {
            self.near.extend(at.into_iter().map(|(m, t)| (t, m)));
        }
        self.horizon = horizon;
    }

    /// Deadlines held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no deadline is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every deadline held, in order.
    pub fn sorted(&self) -> Vec<(Timestamp, MemberId)> {
        let mut all: Vec<(Timestamp, MemberId)> = self.near.iter().copied().collect();
        all.extend(
            self.far
                .values()
                .flat_map(|at| at.iter().map(|(m, t)| (*t, *m))),
        );
        all.sort_unstable();
        all
    }
}

impl FromIterator<(Timestamp, MemberId)> for DueIndex {
    fn from_iter<I: IntoIterator<Item = (Timestamp, MemberId)>>(deadlines: I) -> DueIndex {
        let mut index = DueIndex::default();
        for (t, m) in deadlines {
            index.insert(t, m);
        }
        index
    }
}

/// Two indexes are equal when they hold the same deadlines, however they hold them.
impl PartialEq for DueIndex {
    fn eq(&self, other: &DueIndex) -> bool {
        self.len == other.len && self.sorted() == other.sorted()
    }
}

impl Eq for DueIndex {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Random inserts, removes and reads against one ordered set of every deadline: each read
    /// returns what the set returns, and the index holds what the set holds. Deadlines are
    /// drawn near the clock and far from it, some before 1970, many on a few shared instants
    /// (month ends), and the clock moves forward in steps of up to two spans.
    #[test]
    fn reads_as_one_ordered_set_of_every_deadline() {
        for seed in 0..40 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut index = DueIndex::default();
            let mut model: BTreeSet<(Timestamp, MemberId)> = BTreeSet::new();
            let mut now = Timestamp(rng.random_range(-SPAN_MS..50 * SPAN_MS));
            let mut reads_with_due = 0;
            for step in 0..3_000 {
                let m = MemberId(rng.random_range(1..200));
                let t = match rng.random_range(0..10) {
                    0 => Timestamp(now.0 - rng.random_range(0..3 * SPAN_MS)),
                    1..=3 => Timestamp(now.0 + rng.random_range(0..3 * SPAN_MS)),
                    4 => Timestamp(rng.random_range(-5 * SPAN_MS..0)),
                    5 | 6 => Timestamp(((now.0 / SPAN_MS) + rng.random_range(0..40)) * SPAN_MS),
                    _ => Timestamp(now.0 + rng.random_range(0..400 * SPAN_MS)),
                };
                match rng.random_range(0..10) {
                    0..=3 => {
                        index.insert(t, m);
                        model.insert((t, m));
                    }
                    4..=5 => {
                        index.remove(t, m);
                        model.remove(&(t, m));
                    }
                    6..=7 => {
                        // Remove one the set holds (a member's deadline moving on).
                        let held = model.iter().nth(rng.random_range(0..model.len().max(1)));
                        if let Some(&(t, m)) = held {
                            index.remove(t, m);
                            model.remove(&(t, m));
                        }
                    }
                    _ => {
                        now = Timestamp(now.0 + rng.random_range(0..2 * SPAN_MS));
                        let limit = rng.random_range(1..20);
                        let want: Vec<_> = model
                            .iter()
                            .take_while(|(t, _)| *t <= now)
                            .take(limit)
                            .copied()
                            .collect();
                        let got = index.due(now, limit);
                        assert_eq!(got, want, "seed {seed} step {step}");
                        reads_with_due += usize::from(!got.is_empty());
                    }
                }
                assert_eq!(index.len(), model.len(), "seed {seed} step {step}");
            }
            assert_eq!(
                index.sorted(),
                model.iter().copied().collect::<Vec<_>>(),
                "seed {seed}"
            );
            assert!(
                reads_with_due > 50,
                "seed {seed}: {reads_with_due} reads found work due"
            );
        }
    }

    #[test]
    fn indexes_holding_the_same_deadlines_are_equal_however_they_hold_them() {
        let deadlines = [
            (Timestamp(5), MemberId(1)),
            (Timestamp(100 * SPAN_MS), MemberId(2)),
            (Timestamp(100 * SPAN_MS + 1), MemberId(3)),
        ];
        let mut read: DueIndex = deadlines.into_iter().collect();
        assert!(read.due(Timestamp(100 * SPAN_MS), 10).len() == 2);
        let fresh: DueIndex = deadlines.into_iter().collect();
        assert_eq!(read, fresh);
        assert_eq!(read.len(), 3);
        read.remove(Timestamp(100 * SPAN_MS + 1), MemberId(3));
        assert_ne!(read, fresh);
        assert_eq!(read.len(), 2);
    }
}
