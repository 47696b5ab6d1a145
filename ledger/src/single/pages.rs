//! Member pages: the single path stores member states in pages of
//! [`MEMBERS_PER_PAGE`](crate::keys::MEMBERS_PER_PAGE) ids, each written late (see the
//! projector), so that many changes to a page's members cost one write of one key. A page due
//! while fewer than half its members changed since its last whole write is written as those
//! members only, beside the whole copy ([`keys::member_page_changes`]): over a coalition larger
//! than its traffic touches between two writes, the work then follows the members that changed,
//! not every member.

use crate::core::state::{Map, State};
use crate::core::types::MemberId;
use crate::keys;
use crate::shared::queue::{PageCopy, PageForm};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// The enrolled members of each member page, by id, so a page is copied from the writer's state
/// without probing every id it could hold.
#[derive(Default)]
pub(crate) struct PageMembers(Map<u64, Vec<MemberId>>);

impl PageMembers {
    /// The pages of every member in `s`.
    pub fn of(s: &State) -> PageMembers {
        let mut pages = PageMembers::default();
        for m in s.members.keys() {
            pages.0.entry(keys::page_of(*m)).or_default().push(*m);
        }
        for members in pages.0.values_mut() {
            members.sort_unstable();
        }
        pages
    }

    /// Adds a newly enrolled member.
    pub fn add(&mut self, m: MemberId) {
        let members = self.0.entry(keys::page_of(m)).or_default();
        if let Err(at) = members.binary_search(&m) {
            members.insert(at, m);
        }
    }

    /// Page `page`'s members, by id.
    pub(super) fn members(&self, page: u64) -> &[MemberId] {
        self.0.get(&page).map_or(&[], Vec::as_slice)
    }

    /// Page `page`'s members as `state` has them after batch `through`, encoded for the
    /// projector to write as `form`: all of them, or only those in `only`, the members changed
    /// since the page's last whole write. The states are looked up first, all together (the
    /// lookups do not wait on one another), then encoded one by one, each asked for a few
    /// members ahead: a page's states lie scattered over a map far larger than the caches.
    pub(super) fn copy(
        &self,
        page: u64,
        state: &State,
        through: u64,
        (form, only): (PageForm, Option<&Changed>),
    ) -> PageCopy {
        let members: Vec<_> = self
            .members(page)
            .iter()
            .filter(|m| only.is_none_or(|changed| changed.has(**m)))
            .map(|m| {
                let s = state.members.get(m).expect("a page's members are enrolled");
                (*m, s)
            })
            .collect();
        PageCopy {
            page,
            encoded: crate::codec::encode_member_page(through, &members, |i| {
                crate::shared::prefetch::page_member(&members, i)
            }),
            form,
            members: members.len() as u64,
        }
    }
}

/// Words of a page's changed-member bits.
const CHANGED_WORDS: usize = (keys::MEMBERS_PER_PAGE / 64) as usize;

/// The members of one page changed since its last whole write, a bit each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Changed {
    bits: [u64; CHANGED_WORDS],
    /// Whether a record of these changes is stored beside the page.
    stored: bool,
}

impl Changed {
    fn set(&mut self, m: MemberId) {
        let i = m.0 % keys::MEMBERS_PER_PAGE;
        self.bits[(i / 64) as usize] |= 1 << (i % 64);
    }

    /// Whether member `m` (of this page) changed.
    pub fn has(&self, m: MemberId) -> bool {
        let i = m.0 % keys::MEMBERS_PER_PAGE;
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Member pages whose stored copy is behind the writer's state.
///
/// A page changed after `at` decided transactions is written once `delay` plus a per-page
/// offset in `[0, delay)` more have been decided. Writing every page exactly `delay` after
/// its change would write in bursts: traffic spread over many members dirties nearly every page
/// within a few batches, and they would all come due together, again and again. The offsets
/// (the page number times the golden ratio, modulo 1) spread them evenly instead.
pub(crate) struct DirtyPages {
    delay: u64,
    /// Page to its oldest unwritten change and its members changed since its whole copy: one
    /// lookup a member a transaction.
    pages: Map<u64, PageChanges>,
    /// Pages with an unwritten change.
    waiting: usize,
    /// The same changes in order of change, for the watermark. An entry is stale once its page
    /// was written (the page may have changed again since, with a newer entry further back).
    order: VecDeque<(u64, u64, u64)>,
    /// The same changes by when they are due: (due, page, batch, decided before).
    due: BinaryHeap<Reverse<(u64, u64, u64, u64)>>,
    /// Transactions decided so far by this process.
    decided: u64,
}

/// What [`DirtyPages`] keeps of one page.
#[derive(Default)]
struct PageChanges {
    /// (batch, transactions decided before it) of its oldest unwritten change, if any.
    since: Option<(u64, u64)>,
    /// Its members changed since its last whole write.
    changed: Changed,
}

impl DirtyPages {
    /// Pages written `delay` (plus their offset) transactions after they change.
    pub fn new(delay: u64) -> DirtyPages {
        DirtyPages {
            delay,
            pages: Map::default(),
            waiting: 0,
            order: VecDeque::new(),
            due: BinaryHeap::new(),
            decided: 0,
        }
    }

    /// Page `page`'s offset: in `[0, delay)`, spread evenly over consecutive pages.
    pub(super) fn offset(&self, page: u64) -> u64 {
        let fraction = page.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        ((u128::from(fraction) * u128::from(self.delay)) >> 32) as u64
    }

    /// Notes that member `m`, and so its page, changed in batch `seq`.
    pub fn touch(&mut self, m: MemberId, seq: u64) {
        let page = keys::page_of(m);
        let entry = self.pages.entry(page).or_default();
        entry.changed.set(m);
        if entry.since.is_none() {
            let at = self.decided;
            entry.since = Some((seq, at));
            self.waiting += 1;
            self.order.push_back((page, seq, at));
            let due = at + self.delay + self.offset(page);
            self.due.push(Reverse((due, page, seq, at)));
        }
    }

    /// Notes the members of page `page` that its stored record of changes holds: they changed
    /// since its stored whole copy, and the next record of changes must hold them again.
    pub fn stored_changes(&mut self, page: u64, members: impl IntoIterator<Item = MemberId>) {
        let changed = &mut self.pages.entry(page).or_default().changed;
        changed.stored = true;
        for m in members {
            changed.set(m);
        }
    }

    /// How page `page`, of `members` enrolled members, is written now: as its changed members
    /// (given) while there are some and fewer than half of them, else whole (and its changes
    /// are forgotten).
    pub(super) fn form(&mut self, page: u64, members: usize) -> (PageForm, Option<&Changed>) {
        let Some(entry) = self.pages.get_mut(&page) else {
            return (
                PageForm::Whole {
                    clear_changes: false,
                },
                None,
            );
        };
        let changed = &mut entry.changed;
        let count = changed.count();
        if count == 0 || count * 2 >= members {
            let clear_changes = changed.stored;
            *changed = Changed::default();
            return (PageForm::Whole { clear_changes }, None);
        }
        changed.stored = true;
        (PageForm::Changes, Some(changed))
    }

    /// Counts `n` more transactions decided.
    pub fn advance(&mut self, n: u64) {
        self.decided += n;
    }

    /// Takes the pages due now (with `all`, every changed page).
    pub(super) fn take_due(&mut self, all: bool) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&Reverse((when, page, seq, at))) = self.due.peek() {
            let live = self.since(page) == Some((seq, at));
            if live && !all && when > self.decided {
                break;
            }
            self.due.pop();
            if live {
                if let Some(entry) = self.pages.get_mut(&page) {
                    entry.since = None;
                }
                self.waiting -= 1;
                due.push(page);
            }
        }
        due
    }

    /// The batch through which every member page is current once the pages taken so far are
    /// written, given that `last` is the latest batch decided.
    pub(super) fn through(&mut self, last: u64) -> u64 {
        while let Some(&(page, seq, at)) = self.order.front() {
            if self.since(page) == Some((seq, at)) {
                return seq - 1;
            }
            self.order.pop_front();
        }
        last
    }

    /// Pages waiting to be written.
    pub fn len(&self) -> usize {
        self.waiting
    }

    /// Page `page`'s oldest unwritten change, if any.
    fn since(&self, page: u64) -> Option<(u64, u64)> {
        self.pages.get(&page).and_then(|p| p.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages all changed at once are written at an even pace, each between one and two delays
    /// later, and the watermark says how far every stored page is current.
    #[test]
    fn page_writes_are_spread_and_each_page_is_written_within_twice_the_delay() {
        let delay = 1_000u64;
        let mut dirty = DirtyPages::new(delay);
        let pages = 100u64;
        for p in 0..pages {
            dirty.touch(MemberId(p * keys::MEMBERS_PER_PAGE), 1);
        }
        dirty.advance(10);
        let mut written_at: Map<u64, u64> = Map::default();
        let mut most_in_one_flush = 0;
        for flush in 1..=(3 * delay / 10) {
            let due = dirty.take_due(false);
            most_in_one_flush = most_in_one_flush.max(due.len());
            for p in due {
                assert!(written_at.insert(p, flush * 10).is_none(), "page {p} twice");
            }
            if dirty.len() > 0 {
                assert_eq!(
                    dirty.through(flush + 1),
                    0,
                    "a page still covers batch 0 only"
                );
            }
            dirty.advance(10);
        }
        assert_eq!(written_at.len() as u64, pages, "every page written");
        assert!(
            written_at
                .values()
                .all(|&at| (delay..=2 * delay).contains(&at)),
            "each page between one and two delays: {:?}..{:?}",
            written_at.values().min(),
            written_at.values().max()
        );
        assert!(
            most_in_one_flush <= 2,
            "no burst: {most_in_one_flush} pages in one flush of 10 transactions"
        );
        let first_half = written_at
            .values()
            .filter(|&&at| at < delay + delay / 2)
            .count();
        assert!(
            (40..=60).contains(&first_half),
            "{first_half} of 100 pages in the first half of the window: an even pace"
        );
        assert_eq!(dirty.through(7), 7, "nothing waits: every page is current");
    }

    /// A page due while fewer than half its members changed since its last whole write is
    /// written as those members, every one of them again each time, with the members a stored
    /// record holds; once half have changed it is written whole, and its changes start afresh.
    #[test]
    fn a_page_is_written_as_its_changed_members_until_half_of_them_changed() {
        let mut dirty = DirtyPages::new(0);
        let changed = |dirty: &mut DirtyPages| {
            let (form, only) = dirty.form(0, 10);
            let members: Vec<u64> = (0..10)
                .filter(|m| only.is_some_and(|c| c.has(MemberId(*m))))
                .collect();
            (form, members)
        };
        assert_eq!(
            changed(&mut dirty),
            (
                PageForm::Whole {
                    clear_changes: false
                },
                vec![]
            ),
            "a page with no change noted is written whole"
        );
        dirty.touch(MemberId(3), 1);
        assert_eq!(changed(&mut dirty), (PageForm::Changes, vec![3]));
        dirty.touch(MemberId(7), 2);
        assert_eq!(
            changed(&mut dirty),
            (PageForm::Changes, vec![3, 7]),
            "the changes since the whole copy, not since the last record"
        );

        // After a restart, the stored record's members count as changed.
        let mut reopened = DirtyPages::new(0);
        reopened.stored_changes(0, [MemberId(3), MemberId(7)]);
        reopened.touch(MemberId(1), 3);
        assert_eq!(changed(&mut reopened), (PageForm::Changes, vec![1, 3, 7]));
        reopened.touch(MemberId(2), 4);
        reopened.touch(MemberId(5_000), 4);
        assert_eq!(
            changed(&mut reopened),
            (PageForm::Changes, vec![1, 2, 3, 7]),
            "four of ten changed, and a member of another page"
        );
        reopened.touch(MemberId(4), 5);
        assert_eq!(
            changed(&mut reopened),
            (
                PageForm::Whole {
                    clear_changes: true
                },
                vec![]
            ),
            "five of ten changed: whole, and the stored record cleared"
        );
        assert_eq!(
            changed(&mut reopened).0,
            PageForm::Whole {
                clear_changes: false
            },
            "nothing changed since the whole copy"
        );
        reopened.touch(MemberId(2), 6);
        assert_eq!(changed(&mut reopened), (PageForm::Changes, vec![2]));
        assert_eq!(
            reopened.form(keys::page_of(MemberId(5_000)), 1).0,
            PageForm::Whole {
                clear_changes: false
            },
            "a page of one member changed is written whole"
        );
    }

    #[test]
    fn a_zero_delay_or_a_shutdown_takes_every_changed_page_at_once() {
        let mut dirty = DirtyPages::new(0);
        dirty.touch(MemberId(5), 3);
        dirty.touch(MemberId(6), 3);
        dirty.touch(MemberId(5_000), 4);
        let mut due = dirty.take_due(false);
        due.sort_unstable();
        assert_eq!(due, vec![0, 4]);
        assert_eq!(dirty.len(), 0);
        assert_eq!(dirty.through(4), 4);

        let mut dirty = DirtyPages::new(1_000_000);
        dirty.touch(MemberId(5), 3);
        dirty.touch(MemberId(5_000), 4);
        assert!(dirty.take_due(false).is_empty(), "not due yet");
        assert_eq!(dirty.through(4), 2);
        let mut due = dirty.take_due(true);
        due.sort_unstable();
        assert_eq!(due, vec![0, 4]);
        assert_eq!(dirty.through(4), 4);
    }
}
