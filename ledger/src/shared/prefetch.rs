//! Hints to the processor to bring memory into its caches ahead of use, where the program knows
//! what it will read next and the hardware cannot guess: the key index's slots (random), and a
//! batch's transactions on the syncer's and the projector's threads (written moments before on
//! the writer's core).

use crate::core::model::Transaction;
use crate::core::state::State;
use crate::core::types::MemberId;

/// Bytes in a cache line.
const LINE: usize = 64;

/// How many items ahead of the one in hand to ask for: handling one takes about a microsecond,
/// a miss to memory a fraction of one, so a few ahead hide it.
pub(crate) const AHEAD: usize = 4;

/// Asks for the cache line holding `addr`. A hint only: any address, valid or not, is harmless.
#[inline]
pub(crate) fn line(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing into the program and never faults, whatever the address
    // (Intel SDM, PREFETCHh: "does not generate exceptions"); no memory is dereferenced here.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Asks for the lines of the `len` bytes at `addr` (at most `max_lines` of them).
#[inline]
fn bytes(addr: usize, len: usize, max_lines: usize) {
    if len == 0 {
        return;
    }
    let first = addr & !(LINE - 1);
    let end = addr.saturating_add(len);
    for l in (first..end).step_by(LINE).take(max_lines) {
        line(l);
    }
}

/// Asks for the elements of `items` (their first few lines).
#[inline]
fn slice<T>(items: &[T]) {
    bytes(items.as_ptr() as usize, std::mem::size_of_val(items), 8);
}

/// Asks for a `ThinVec`'s header (its length) and its first elements. `as_ptr` is the
/// header's address plus the header's size, computed without reading the header for element
/// types no more aligned than the header's words (`thin_vec`'s `data_raw`), so asking costs no
/// wait for the header itself.
#[inline]
fn thin<T>(v: &thin_vec::ThinVec<T>) {
    const HEADER: usize = 2 * std::mem::size_of::<usize>();
    const { assert!(std::mem::align_of::<T>() <= std::mem::align_of::<usize>()) };
    bytes((v.as_ptr() as usize).wrapping_sub(HEADER), 2 * LINE, 2);
}

/// Before the `i`th of `txs` is read, on a thread other than the one that wrote them: asks for
/// the fields of the transaction `2 * AHEAD` on, and what the one `AHEAD` on points to (its
/// fields, asked for earlier, are here by then).
#[inline]
pub(crate) fn transactions(txs: &[std::sync::Arc<Transaction>], i: usize) {
    if let Some(tx) = txs.get(i + 2 * AHEAD) {
        bytes(
            std::sync::Arc::as_ptr(tx) as usize,
            std::mem::size_of::<Transaction>(),
            8,
        );
    }
    if let Some(tx) = txs.get(i + AHEAD) {
        bytes(
            tx.key.reference.as_ptr() as usize,
            tx.key.reference.len(),
            2,
        );
        slice(&tx.postings);
        slice(&tx.lots);
        slice(&tx.member_balances);
    }
}

/// Before the first of `txs` is dropped (the rest follow in order): asks for the transaction
/// `2 * AHEAD` on (its reference count and fields), and for the first line of each heap block
/// the one `AHEAD` on will free (freeing writes there), its fields being here by then. Only
/// what a transaction whose last reference is going would touch; a hint either way.
#[inline]
pub(crate) fn dropping(txs: &[std::sync::Arc<Transaction>]) {
    if let Some(tx) = txs.get(2 * AHEAD) {
        bytes(
            std::sync::Arc::as_ptr(tx) as usize,
            std::mem::size_of::<Transaction>(),
            9,
        );
    }
    if let Some(tx) = txs.get(AHEAD) {
        if tx.key.reference.capacity() != 0 {
            line(tx.key.reference.as_ptr() as usize);
        }
        if tx.postings.capacity() != 0 {
            line(tx.postings.as_ptr() as usize);
        }
        if let Some(p) = &tx.pricing {
            if p.unit.capacity() != 0 {
                line(p.unit.as_ptr() as usize);
            }
        }
        kind_parts(&tx.kind);
    }
}

/// Asks for the first line of each heap block of the kinds posted most (earns, reversals,
/// expiries); the rarer kinds' are left to the miss.
#[inline]
fn kind_parts(kind: &crate::core::model::TxKind) {
    use crate::core::model::TxKind;
    match kind {
        TxKind::Earn {
            awards,
            guard,
            tier,
            ..
        } => {
            if awards.capacity() != 0 {
                line(awards.as_ptr() as usize);
            }
            if let Some(g) = guard {
                line(&**g as *const _ as usize);
            }
            if let Some(t) = tier {
                line(&**t as *const _ as usize);
            }
        }
        TxKind::Reversal { awards, guard, .. } => {
            if awards.capacity() != 0 {
                line(awards.as_ptr() as usize);
            }
            if let Some(g) = guard {
                line(&**g as *const _ as usize);
            }
        }
        TxKind::Expire { tier: Some(t), .. } => line(&**t as *const _ as usize),
        _ => {}
    }
}

/// Where member `m`'s state lies (0: not enrolled), for [`member`] to ask for later. The writer
/// looks up a whole batch's members this way before deciding any: lookups in a row overlap
/// their misses, where one lookup before each command would wait for its own.
#[inline]
pub(crate) fn member_at(state: &State, m: Option<MemberId>) -> usize {
    m.and_then(|m| state.member(m))
        .map_or(0, |s| s as *const _ as usize)
}

/// Asks for the member state at `at` (from [`member_at`]; 0 asks for nothing). The writer calls
/// it `2 * AHEAD` commands before deciding the command that names the member. The address is a
/// hint only: should the map have moved its states since (an enrolment grew it), the lines
/// asked for are merely useless.
#[inline]
pub(crate) fn member(at: usize) {
    if at != 0 {
        bytes(
            at,
            std::mem::size_of::<crate::core::state::MemberState>(),
            2,
        );
    }
}

/// Asks for what member `m`'s state points to: the two ends of its ring of lots (a burn draws
/// on the front, an earn adds at the back), its campaigns' uses (an earn checks their caps) and
/// its rarer parts (its standing and tier). The writer calls it `AHEAD` commands before
/// deciding the command, once [`member`] has brought the state itself in.
#[inline]
pub(crate) fn member_parts(state: &State, m: Option<MemberId>) {
    if let Some(s) = m.and_then(|m| state.member(m)) {
        parts_of(s);
    }
}

/// [`member_parts`] of a state in hand (a walk over every member: the rebuild of the due
/// index at open).
#[inline]
pub(crate) fn parts_of(s: &crate::core::state::MemberState) {
    let (front, back) = s.lots.first_run_ends();
    if let Some(l) = front {
        line(l as *const _ as usize);
    }
    if let Some(l) = back {
        line(l as *const _ as usize);
    }
    if let Some(x) = &s.extras {
        line(&**x as *const _ as usize);
    }
    thin(s.campaigns.thin());
}

/// Asks for member `m`'s tier months (an earn sums its qualification window over them). The
/// writer calls it `AHEAD / 2` commands before deciding the command, once [`member_parts`] has
/// brought in the rarer parts that point to them.
#[inline]
pub(crate) fn member_months(state: &State, m: Option<MemberId>) {
    if let Some(x) = m
        .and_then(|m| state.member(m))
        .and_then(|s| s.extras.as_ref())
    {
        thin(&x.tier.months);
    }
}

/// Before the `i`th of a page's members is encoded, in three steps, each reading only what an
/// earlier step asked for: the state `3 * AHEAD` on (its first lines; looking it up brought in
/// the key's); what the one `2 * AHEAD` on points to (its ring of lots, its campaigns, its rarer
/// parts); and what those rarer parts of the one `AHEAD` on point to (its tier's months).
#[inline]
pub(crate) fn page_member(members: &[(MemberId, &crate::core::state::MemberState)], i: usize) {
    if let Some((_, s)) = members.get(i + 3 * AHEAD) {
        bytes(*s as *const _ as usize, std::mem::size_of_val(*s), 2);
    }
    if let Some((_, s)) = members.get(i + 2 * AHEAD) {
        for run in s.lots.slices() {
            slice(run);
        }
        thin(s.campaigns.thin());
        if let Some(x) = &s.extras {
            bytes(&**x as *const _ as usize, std::mem::size_of_val(&**x), 2);
        }
    }
    if let Some(x) = members.get(i + AHEAD).and_then(|(_, s)| s.extras.as_ref()) {
        thin(&x.tier.months);
    }
}
