//! The audience: every member's segment facts ([`Facts`]), kept in memory and brought up to
//! date from the journal (balances, tiers, standing, visits, spend, activity) and the profiles
//! (birth date, gender, city), and the segments evaluated on them.
//!
//! It follows the journal in commit order from a cursor, on either write path, every tenth of
//! a second (and before answering a segment query), so segments are as of the last transaction
//! folded: the answers say which. At start it takes the state it last saved (`G A`, at
//! shutdown and every [`SAVE_EVERY`] that folded [`SAVE_AFTER`] transactions or more) and folds
//! the journal from that state's cursor, so a restart does not fold the whole history again;
//! without a saved state that checks, it folds the journal from its start. The saved state
//! holds the facts the journal gives and none that a profile gives: the profiles are read
//! again at every start, so a member erased since is not brought back. When the programme's
//! time zone or currency changes, the audience begins counting again the same way, so no
//! day or spend is counted partly under each.

use super::error::{Kind, OpError};
use super::registry::SegmentRecord;
use super::Ops;
use crate::members::analytics::Analytics;
use crate::members::segments::{day_number, Compiled, Facts, Row, SegmentRules};
use crate::members::Profile;
use chrono::{NaiveDate, TimeZone};
use ledger::core::state::Standing;
use ledger::{MemberId, Timestamp, Transaction, TxKind};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How often the projection follows the journal. Each catch-up folds what was committed since
/// the last on one thread in one go: at 15,000 requests/s, every half second made a burst of
/// 7,500 transactions that held a core and lifted the request path's tail; a tenth of a second
/// folds the same work in bursts a fifth as long (`docs/benchmarks.md`).
const EVERY: Duration = Duration::from_millis(100);
/// Batches folded under one hold of the write lock.
const BATCHES_PER_HOLD: usize = 512;
/// How often, at most, the running audience saves its state.
const SAVE_EVERY: Duration = Duration::from_secs(600);
/// Transactions folded since the last save below which the running audience does not save.
const SAVE_AFTER: u64 = 100_000;
/// The saved state's format: a state saved in another is not read.
const SAVED_FORMAT: u32 = 1;

#[derive(Default)]
struct Cursor {
    after: Option<Vec<u8>>,
    transactions: u64,
    profiles: bool,
    /// The last profile change read (`G F`): changes made on other gateways are read again.
    profile_change: Vec<u8>,
    /// When the state was last saved or taken, and the transactions it held (`None`: none
    /// under the present terms since the audience began counting).
    saved: Option<(std::time::Instant, u64)>,
    /// Transactions the saved state read when the audience began counting held, if one was
    /// read.
    restored: Option<u64>,
    /// The time zone and currency the facts are counted under (since the start, or by the
    /// saved state taken): when the programme's change, the audience counts again, and until
    /// it has, its state is not saved.
    counted: Option<(String, Option<String>)>,
}

/// The saved state as read.
#[derive(serde::Deserialize)]
struct Saved {
    format: u32,
    tz: String,
    currency: Option<String>,
    after: Option<Vec<u8>>,
    transactions: u64,
    rows: Vec<Row>,
    genders: crate::members::segments::Interner,
    cities: crate::members::segments::Interner,
    expiring: HashMap<u64, std::collections::VecDeque<(i64, i64)>>,
    analytics: Analytics,
}

/// Rows encoded under one hold of the facts' read lock when the state is saved: a profile's
/// change (`set_profile`, which takes the write lock), and the readers queued behind it, wait
/// for one part of the encoding, not all of it.
const ROWS_PER_HOLD: usize = 65_536;

/// The bytes of members' lots encoded under one hold of the facts' read lock when the state
/// is saved (the rows, of a bounded size, go by [`ROWS_PER_HOLD`]).
const PART_BYTES: usize = 1 << 20;

/// The most a row takes encoded: fourteen fields, each a varint of at most 10 bytes or a byte.
const MAX_ROW_BYTES: usize = 10 * 14;

/// The saved state of the facts and aggregates, folded through `cursor` under `t`: the facts
/// the journal gives, without any a profile gives, in the field order [`Saved`] reads.
///
/// Encoded a part at a time: the rows [`ROWS_PER_HOLD`] under each hold of the facts' read
/// lock, then the members' lots by expiry as many at a time, then the aggregates (the held
/// ones less their profile cells, not a pass over the rows). Between parts a profile may
/// change, which the saved rows and aggregates leave out;
/// the journal's facts cannot, since the caller holds the cursor, under which alone the
/// journal is folded and the facts replaced. Rows a profile adds meanwhile, past those counted
/// at the start, hold no journal facts. Returns the bytes and the longest hold (from the lock
/// taken to its release).
fn encode_saved(
    t: &Terms,
    cursor: &Cursor,
    facts: &RwLock<Facts>,
    analytics: &RwLock<Analytics>,
    rows_per_hold: usize,
) -> (Vec<u8>, Duration) {
    let encodes = "the audience's state always encodes";
    let read = || facts.read().expect("audience facts");
    let head = (
        SAVED_FORMAT,
        t.tz.name(),
        &t.currency,
        &cursor.after,
        cursor.transactions,
    );
    let mut out = postcard::to_extend(&head, Vec::new()).expect(encodes);
    let mut longest = Duration::ZERO;
    let per = rows_per_hold.max(1);
    let n = read().rows.len();
    // A sequence is its length, then its elements.
    out = postcard::to_extend(&n, out).expect(encodes);
    for part in (0..n).step_by(per) {
        let end = n.min(part.saturating_add(per));
        // Grown here, not under the lock: a doubling copies all encoded so far.
        out.reserve((end - part) * MAX_ROW_BYTES);
        let f = read();
        let held = std::time::Instant::now();
        for i in part..end {
            let row = f.rows.get(i).copied().unwrap_or_default();
            out = postcard::to_extend(&row.without_profile(), out).expect(encodes);
        }
        drop(f);
        longest = longest.max(held.elapsed());
    }
    // The interners, then the members' lots by expiry: their ids taken under one hold (a map
    // is its length, then its entries, in any order), the entries encoded in parts.
    let f = read();
    let held = std::time::Instant::now();
    // Into a buffer of its own, so the rows' large one is not grown under the lock.
    let interners = postcard::to_allocvec(&(&f.genders, &f.cities)).expect(encodes);
    let ids: Vec<u64> = f.expiring.keys().copied().collect();
    drop(f);
    longest = longest.max(held.elapsed());
    out.extend_from_slice(&interners);
    out = postcard::to_extend(&ids.len(), out).expect(encodes);
    // A member may hold many lots: a part ends at its count of members or of bytes.
    let mut next = 0;
    while next < ids.len() {
        let end = ids.len().min(next.saturating_add(per));
        let mut entries = Vec::with_capacity(PART_BYTES);
        let none = std::collections::VecDeque::new();
        let f = read();
        let held = std::time::Instant::now();
        while next < end && entries.len() < PART_BYTES {
            let m = ids[next];
            let lots = f.expiring.get(&m).unwrap_or(&none);
            entries = postcard::to_extend(&(m, lots), entries).expect(encodes);
            next += 1;
        }
        drop(f);
        longest = longest.max(held.elapsed());
        out.extend_from_slice(&entries);
    }
    let a = analytics.read().expect("audience analytics");
    let held = std::time::Instant::now();
    let bare = a.without_profiles();
    drop(a);
    longest = longest.max(held.elapsed());
    out = postcard::to_extend(&bare, out).expect(encodes);
    (out, longest)
}

/// A segment compiled for a version and a day.
type CompiledSegment = (u32, NaiveDate, CompiledOn);

/// A segment compiled on the facts of one generation ([`Audience::replace`] begins the next).
type CompiledOn = (u64, Arc<Compiled>);

/// Members' facts and compiled segments.
#[derive(Default)]
pub struct Audience {
    facts: RwLock<Facts>,
    /// The dashboards' aggregates, folded with the facts.
    analytics: RwLock<Analytics>,
    /// Members by the key of their phone or email.
    contacts: RwLock<HashMap<[u8; 16], u64>>,
    /// Members by the key of their name.
    names: RwLock<HashMap<u64, Vec<u64>>>,
    cursor: Mutex<Cursor>,
    compiled: Mutex<HashMap<u32, CompiledSegment>>,
    /// Transactions folded, and those the last state saved or taken held, for `/metrics`
    /// (read without waiting for a catch-up or a save).
    folded: std::sync::atomic::AtomicU64,
    last_saved: std::sync::atomic::AtomicU64,
    /// Whether the audience has read the profiles once (before, no member is reachable).
    began: std::sync::atomic::AtomicBool,
    /// Facts put in place so far ([`Audience::replace`]): a segment is compiled on one
    /// generation's interned genders and cities, and evaluated only on the same. Changed and
    /// read under the facts' lock.
    generation: std::sync::atomic::AtomicU64,
    /// The segment definitions, as last read (campaign conditions look them up per earn).
    records: RwLock<HashMap<u32, SegmentRecord>>,
}

/// The programme's clock and currency, as the facts count days and spend.
struct Terms {
    tz: chrono_tz::Tz,
    currency: Option<String>,
}

impl Terms {
    /// The time zone's name and the currency, as the cursor records what it counted under.
    fn named(&self) -> (String, Option<String>) {
        (self.tz.name().to_string(), self.currency.clone())
    }
}

fn terms(ops: &Ops) -> Terms {
    let s = ops.registry.programme_settings();
    Terms {
        tz: s
            .as_ref()
            .and_then(|s| s.time_zone.parse().ok())
            .unwrap_or(chrono_tz::Tz::UTC),
        currency: s.and_then(|s| s.currency),
    }
}

/// The local day of `at` in `tz`.
fn day(tz: chrono_tz::Tz, at: Timestamp) -> i32 {
    chrono::DateTime::from_timestamp_millis(at.0)
        .map(|t| day_number(tz.from_utc_datetime(&t.naive_utc()).date_naive()))
        .unwrap_or(0)
}

/// Today in the programme's time zone.
pub fn today(ops: &Ops) -> NaiveDate {
    let tz = terms(ops).tz;
    chrono::DateTime::from_timestamp_millis(Timestamp::now().0)
        .map(|t| tz.from_utc_datetime(&t.naive_utc()).date_naive())
        .unwrap_or_default()
}

fn minor_units(currency: &str) -> i64 {
    match currency.parse::<ledger::Currency>() {
        Ok(c) => 10i64.pow(c.minor_units()),
        Err(_) => 100,
    }
}

/// The index key of a phone or email: its normal form (lower case, a phone's digits and `+`
/// only), hashed, so the index holds no contact in clear.
pub fn contact_key(contact: &str) -> [u8; 16] {
    use sha2::Digest;
    let c = contact.trim();
    let normal: String = if c.contains('@') {
        c.to_lowercase()
    } else {
        c.chars()
            .filter(|ch| ch.is_ascii_digit() || *ch == '+')
            .collect()
    };
    let h = sha2::Sha256::digest(normal.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&h[..16]);
    k
}

/// The index key of a name: its words in lower case, single-spaced, hashed.
pub fn name_key(name: &str) -> u64 {
    use sha2::Digest;
    let normal = name
        .split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ");
    let h = sha2::Sha256::digest(normal.as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

/// Sets a row's profile facts, and follows the change in the analytics.
fn put_profile(facts: &mut Facts, analytics: &mut Analytics, m: MemberId, p: Option<&Profile>) {
    let old = facts.row(m.0).copied().unwrap_or_default();
    set_profile_facts(facts, m, p);
    let new = *facts.row_mut(m.0);
    analytics.row_changed(&old, &new, facts.minor_per_unit);
}

/// The channels `p` may be messaged on ([`crate::members::segments::REACH_SMS`] and the
/// rest): consent given, and an address for it.
fn reach(p: &Profile) -> u8 {
    use crate::members::segments::{REACH_EMAIL, REACH_PUSH, REACH_SMS};
    use crate::members::Channel;
    let agreed = |c: Channel| p.consent.get(&c).is_some_and(|c| c.granted);
    let mut bits = 0;
    if agreed(Channel::Sms) && p.phone.is_some() {
        bits |= REACH_SMS;
    }
    if agreed(Channel::Email) && p.email.is_some() {
        bits |= REACH_EMAIL;
    }
    if agreed(Channel::Push) {
        bits |= REACH_PUSH;
    }
    bits
}

/// The bit of `channel` in a row's reach.
fn reach_bit(channel: crate::members::Channel) -> u8 {
    use crate::members::segments::{REACH_EMAIL, REACH_PUSH, REACH_SMS};
    match channel {
        crate::members::Channel::Sms => REACH_SMS,
        crate::members::Channel::Email => REACH_EMAIL,
        crate::members::Channel::Push => REACH_PUSH,
    }
}

/// Whether `p` may be messaged on `channel` (consent given and an address for it), read from
/// the profile itself rather than the audience's facts.
pub fn profile_reaches(p: &Profile, channel: crate::members::Channel) -> bool {
    reach(p) & reach_bit(channel) != 0
}

/// Sets a row's profile facts.
fn set_profile_facts(facts: &mut Facts, m: MemberId, p: Option<&Profile>) {
    let birth = p
        .and_then(|p| p.birth_date.as_deref())
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .map_or(i32::MIN, day_number);
    let gender = p
        .and_then(|p| p.gender.as_deref())
        .map_or(0, |g| facts.genders.intern(g));
    let city = p
        .and_then(|p| p.city.as_deref())
        .map_or(0, |c| facts.cities.intern(c));
    let reach = p.map_or(0, reach);
    let r = facts.row_mut(m.0);
    r.birth = birth;
    r.gender = gender;
    r.city = city;
    r.reach = reach;
}

/// The members a transaction's facts are about.
fn touched(tx: &Transaction) -> impl Iterator<Item = MemberId> + '_ {
    let named = match &tx.kind {
        TxKind::Enrolled { member }
        | TxKind::TierChanged { member, .. }
        | TxKind::StandingSet { member, .. } => Some(*member),
        TxKind::Merged(m) => Some(m.from),
        _ => None,
    };
    tx.member_balances
        .iter()
        .map(|a| a.member)
        .chain(named)
        .chain(tx.lots.iter().map(|c| c.member))
}

/// Folds one transaction into the facts and the analytics.
fn fold_all(facts: &mut Facts, analytics: &mut Analytics, t: &Terms, tx: &Transaction) {
    let mut before: Vec<(MemberId, Row)> = Vec::with_capacity(2);
    for m in touched(tx) {
        if !before.iter().any(|b| b.0 == m) {
            before.push((m, facts.row(m.0).copied().unwrap_or_default()));
        }
    }
    fold(facts, t, tx);
    let d = day(t.tz, tx.at);
    analytics.transactions += 1;
    // Points moved on members' balances, attributed to the partner that posted them.
    let partner = match &tx.kind {
        TxKind::Earn { partner, .. }
        | TxKind::Burn { partner, .. }
        | TxKind::Reversal { partner, .. } => Some(partner.0),
        TxKind::Redeemed(r) => Some(r.partner.0),
        _ => None,
    };
    let expiry = matches!(tx.kind, TxKind::Expire { .. });
    // Points moved between members are neither issued nor redeemed.
    let between = matches!(tx.kind, TxKind::Transfer { .. } | TxKind::Merged(_));
    for (m, old) in &before {
        let new = facts.row(m.0).copied().unwrap_or_default();
        let delta = new.balance - old.balance;
        if expiry {
            analytics.expired(d, -delta);
        } else if !between && delta != 0 {
            analytics.points(d, partner, delta.max(0), (-delta).max(0));
        }
        analytics.row_changed(old, &new, facts.minor_per_unit);
    }
    if let TxKind::Earn {
        partner,
        points,
        bonus,
        price_per_point,
        ..
    } = &tx.kind
    {
        let priced = tx
            .pricing
            .as_ref()
            .filter(|p| p.unit == price_per_point.currency.code());
        let minor = |x: Decimal| -> i64 {
            let per = 10i64.pow(price_per_point.currency.minor_units());
            (x * Decimal::from(per)).round().try_into().unwrap_or(0)
        };
        let sales_cost = priced.map(|p| {
            let pts = Decimal::from(points.0 + bonus.0);
            (minor(p.quantity), minor(pts * price_per_point.amount))
        });
        let programme_sales = tx
            .pricing
            .as_ref()
            .filter(|p| t.currency.as_deref() == Some(p.unit.as_str()))
            .map(|p| {
                (p.quantity * Decimal::from(facts.minor_per_unit))
                    .round()
                    .try_into()
                    .unwrap_or(0)
            });
        analytics.earn(d, partner.0, sales_cost, programme_sales);
    }
    for c in &tx.lots {
        if let Some(at) = c.expires_at {
            analytics.lot(at.0, c.delta.0);
        }
    }
}

/// Folds one transaction into the facts.
fn fold(facts: &mut Facts, t: &Terms, tx: &Transaction) {
    let d = day(t.tz, tx.at);
    for a in &tx.member_balances {
        facts.row_mut(a.member.0).balance = a.posted.0;
    }
    for c in &tx.lots {
        if let Some(at) = c.expires_at {
            facts.add_expiring(c.member.0, at.0, c.delta.0);
        }
    }
    let own = |facts: &mut Facts, m: MemberId| facts.row_mut(m.0).last_activity = d;
    match &tx.kind {
        TxKind::Enrolled { member } => {
            let r = facts.row_mut(member.0);
            r.enrolled = true;
            r.enrolled_day = d;
        }
        TxKind::Earn { member, tier, .. } => {
            let spend = tx.pricing.as_ref().and_then(|p| {
                (t.currency.as_deref() == Some(p.unit.as_str())).then_some(p.quantity)
            });
            let per = facts.minor_per_unit;
            let r = facts.row_mut(member.0);
            r.visits += 1;
            if r.first_visit == i32::MIN {
                r.first_visit = d;
            }
            r.last_visit = d;
            r.last_activity = d;
            if let Some(q) = spend {
                let minor: i64 = (q * Decimal::from(per)).round().try_into().unwrap_or(0);
                r.spend_minor = r.spend_minor.saturating_add(minor);
            }
            if let Some(c) = tier.as_ref().and_then(|t| t.1.as_ref()) {
                r.tier = c.to;
            }
        }
        TxKind::Burn { member, .. } | TxKind::Adjust { member, .. } => own(facts, *member),
        TxKind::Redeemed(r) => own(facts, r.member),
        TxKind::Transfer { from, to, .. } => {
            own(facts, *from);
            own(facts, *to);
        }
        TxKind::TierChanged { member, change } => facts.row_mut(member.0).tier = change.to,
        TxKind::Expire {
            member,
            tier: Some(c),
            ..
        } => facts.row_mut(member.0).tier = c.to,
        TxKind::StandingSet {
            member, standing, ..
        } => facts.row_mut(member.0).active = *standing == Standing::Active,
        TxKind::Merged(m) => {
            facts.row_mut(m.from.0).active = false;
            if let Some(tier) = &m.tier {
                facts.row_mut(m.into.0).tier = tier.level;
            }
        }
        _ => {}
    }
}

/// Folds up to `most` of the journal's batches in `snap` after `cursor`'s position into `facts`
/// and `analytics` under `t`, moving the cursor past them. Returns the batches folded.
fn fold_after(
    ops: &Ops,
    snap: &<ledger::store::Engine as ledger::store::Store>::Snapshot,
    cursor: &mut Cursor,
    facts: &mut Facts,
    analytics: &mut Analytics,
    t: &Terms,
    most: usize,
) -> Result<usize, OpError> {
    let (mut batches, mut n, mut last) = (0, 0u64, None);
    ops.ledger
        .for_each_batch_after(snap, cursor.after.as_deref(), &mut |pos, _, txs| {
            for tx in txs {
                fold_all(facts, analytics, t, tx);
            }
            n += txs.len() as u64;
            last = Some(pos.to_vec());
            batches += 1;
            Ok(batches < most)
        })?;
    cursor.transactions += n;
    if last.is_some() {
        cursor.after = last;
    }
    Ok(batches)
}

/// Whether a save is due: see [`Audience::save_if_due`].
fn save_due(cursor: &Cursor) -> bool {
    let since = cursor.saved.map_or(0, |(_, n)| n);
    cursor.profiles
        && cursor.transactions.saturating_sub(since) >= SAVE_AFTER
        && cursor
            .saved
            .is_none_or(|(at, _)| at.elapsed() >= SAVE_EVERY)
}

/// Calls `f` with every member whose profile changed after `after` (`G F`), and its profile
/// now (`None`: erased), moving `after` past each.
fn profile_changes(
    ops: &Ops,
    after: &mut Vec<u8>,
    f: &mut dyn FnMut(MemberId, Option<&Profile>),
) -> Result<(), OpError> {
    loop {
        let changes = ops
            .registry
            .profile_changes_after(after, 1_000)
            .map_err(super::partner::registry_error)?;
        for (k, m) in &changes {
            let p = ops
                .registry
                .profile(*m)
                .map_err(super::partner::registry_error)?;
            f(*m, p.as_ref());
            after.clone_from(k);
        }
        if changes.len() < 1_000 {
            return Ok(());
        }
    }
}

impl Audience {
    /// Brings the facts up to the journal's end: the profiles once, then every batch after the
    /// cursor. Blocking. Returns the transactions folded in all.
    pub fn catch_up(&self, ops: &Ops) -> Result<u64, OpError> {
        let mut cursor = self.cursor.lock().expect("audience cursor");
        let t = terms(ops);
        if !cursor.profiles {
            self.begin(ops, &t, &mut cursor, false)?;
        } else if cursor.counted.as_ref() != Some(&t.named()) {
            // Days and spend counted under the old terms would stay mixed with the new: count
            // everything again, as at a start, but aside: the facts held answer until then.
            tracing::info!("the programme's time zone or currency changed: the audience counts the journal again under the new terms");
            self.begin(ops, &t, &mut cursor, true)?;
        }
        profile_changes(ops, &mut cursor.profile_change, &mut |m, p| {
            self.set_profile(m, p)
        })?;
        self.reload_segments(ops)?;
        let snap = ops.ledger.read_snapshot()?;
        loop {
            let mut facts = self.facts.write().expect("audience facts");
            let mut analytics = self.analytics.write().expect("audience analytics");
            let batches = fold_after(
                ops,
                &snap,
                &mut cursor,
                &mut facts,
                &mut analytics,
                &t,
                BATCHES_PER_HOLD,
            )?;
            drop(analytics);
            drop(facts);
            self.folded.store(cursor.transactions, Relaxed);
            if batches < BATCHES_PER_HOLD {
                return Ok(cursor.transactions);
            }
        }
    }

    /// Begins counting under `t`: the saved state if one checks (else nothing), and every
    /// profile, built aside and put in place of the held facts whole, so no reader sees a member
    /// without the profile facts it had (the reach a message asks for). The journal after the
    /// cursor is folded from there. Blocking.
    ///
    /// With `journal_aside` (counting again after the terms changed), the journal as it stands
    /// is folded aside too, before the swap: until then the facts held, whole though counted
    /// under the old terms, answer an earn's segment condition, where a fold in place would
    /// show it members without the visits and spend not yet folded again. Both states are held
    /// meanwhile. At a start nothing whole is held, and the fold is made in place, so that the
    /// members folded so far are seen.
    fn begin(
        &self,
        ops: &Ops,
        t: &Terms,
        cursor: &mut Cursor,
        journal_aside: bool,
    ) -> Result<(), OpError> {
        *cursor = Cursor::default();
        let (mut facts, mut analytics) = self.restore(ops, t, cursor).unwrap_or_default();
        facts.minor_per_unit = t.currency.as_deref().map_or(100, minor_units);
        // The changes from here on are read again after the scan: none is missed.
        let profile_change = ops
            .registry
            .last_profile_change()
            .map_err(super::partner::registry_error)?
            .unwrap_or_default();
        ops.registry
            .for_each_profile(&mut |m, p| {
                self.index_contacts(m, Some(&p));
                put_profile(&mut facts, &mut analytics, m, Some(&p))
            })
            .map_err(super::partner::registry_error)?;
        if journal_aside {
            let snap = ops.ledger.read_snapshot()?;
            fold_after(
                ops,
                &snap,
                cursor,
                &mut facts,
                &mut analytics,
                t,
                usize::MAX,
            )?;
        }
        // A profile changed during the scan (or the fold aside) was written by its writer into
        // the facts being replaced: read the changes since the scan began again where no writer
        // can come between them and the swap.
        let mut profile_change = profile_change;
        self.replace(facts, analytics, |facts, analytics| {
            profile_changes(ops, &mut profile_change, &mut |m, p| {
                put_profile(facts, analytics, m, p)
            })
        })?;
        cursor.profile_change = profile_change;
        cursor.counted = Some(t.named());
        cursor.profiles = true;
        // Without a saved state under these terms, the first catch-up's fold is saved once it
        // ends, so that a crash does not make the next start fold the whole journal again.
        cursor.saved = cursor.restored.map(|n| (std::time::Instant::now(), n));
        self.folded.store(cursor.transactions, Relaxed);
        self.began.store(true, Relaxed);
        Ok(())
    }

    /// The saved state (its facts and aggregates, its cursor into `cursor`), if one is stored
    /// whole, in this format, and counted in the programme's time zone and currency as they are
    /// now; otherwise `None`, and the journal is folded from its start.
    fn restore(&self, ops: &Ops, t: &Terms, cursor: &mut Cursor) -> Option<(Facts, Analytics)> {
        let bytes = match ops.registry.load_audience() {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "the audience's saved state was not read; folding the journal from its start");
                return None;
            }
        };
        let saved: Saved = match postcard::from_bytes(&bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the audience's saved state did not decode; folding the journal from its start");
                return None;
            }
        };
        if saved.format != SAVED_FORMAT || saved.tz != t.tz.name() || saved.currency != t.currency {
            tracing::info!("the audience's saved state was counted under other terms; folding the journal from its start");
            return None;
        }
        cursor.after = saved.after;
        cursor.transactions = saved.transactions;
        cursor.restored = Some(saved.transactions);
        self.last_saved.store(saved.transactions, Relaxed);
        tracing::info!(
            transactions = saved.transactions,
            "the audience took its saved state; folding the journal after it"
        );
        let facts = Facts {
            rows: saved.rows,
            genders: saved.genders,
            cities: saved.cities,
            minor_per_unit: 0,
            expiring: saved.expiring,
        };
        Some((facts, saved.analytics))
    }

    /// Whether the audience has read every profile once since the start: until then no member
    /// is [`Audience::reachable`], and a message decided on that would be lost.
    pub fn began(&self) -> bool {
        self.began.load(Relaxed)
    }

    /// Runs `last` on `facts` and `analytics`, then puts them in place of those held, with no
    /// reader or writer of the held ones between the two (`last` takes no lock of the
    /// audience's). The compiled segments are dropped with them: they name genders and cities
    /// by the old facts' interned numbers. If `last` fails, nothing is replaced.
    fn replace<E>(
        &self,
        mut facts: Facts,
        mut analytics: Analytics,
        last: impl FnOnce(&mut Facts, &mut Analytics) -> Result<(), E>,
    ) -> Result<(), E> {
        // The cache's lock first, as `compiled` takes it before the facts'.
        let mut compiled = self.compiled.lock().expect("segment cache");
        let mut held = self.facts.write().expect("audience facts");
        let mut held_analytics = self.analytics.write().expect("audience analytics");
        last(&mut facts, &mut analytics)?;
        *held = facts;
        *held_analytics = analytics;
        self.generation.fetch_add(1, Relaxed);
        compiled.clear();
        Ok(())
    }

    /// The state as it would be saved now, if the audience has caught up once and every
    /// transaction it holds was counted under the programme's present time zone and currency.
    fn encode(&self, ops: &Ops, cursor: &Cursor) -> Option<(Vec<u8>, Duration)> {
        if !cursor.profiles {
            return None;
        }
        let t = terms(ops);
        if cursor.counted.as_ref() != Some(&t.named()) {
            tracing::info!("the programme's time zone or currency changed since the audience began counting: its state is not saved until it has counted again");
            return None;
        }
        Some(encode_saved(
            &t,
            cursor,
            &self.facts,
            &self.analytics,
            ROWS_PER_HOLD,
        ))
    }

    /// Saves the state (`G A`), so the next start folds the journal from here. Blocking.
    /// Returns the transactions the saved state holds (`None`: nothing was saved, because the
    /// audience had not caught up once, or the programme's time zone or currency changed since
    /// it began counting).
    pub fn save(&self, ops: &Ops) -> Result<Option<u64>, OpError> {
        let began = std::time::Instant::now();
        let mut cursor = self.cursor.lock().expect("audience cursor");
        let Some((bytes, longest_hold)) = self.encode(ops, &cursor) else {
            return Ok(None);
        };
        let n = cursor.transactions;
        cursor.saved = Some((std::time::Instant::now(), n));
        // Later catch-ups need not wait for the store's writes.
        drop(cursor);
        let encoded = began.elapsed();
        ops.registry
            .save_audience(&bytes)
            .map_err(super::partner::registry_error)?;
        tracing::info!(
            transactions = n,
            bytes = bytes.len(),
            encode_ms = encoded.as_millis() as u64,
            longest_hold_ms = longest_hold.as_millis() as u64,
            total_ms = began.elapsed().as_millis() as u64,
            "the audience saved its state"
        );
        self.last_saved.store(n, Relaxed);
        Ok(Some(n))
    }

    /// Saves the state if [`SAVE_AFTER`] transactions or more were folded since the last save
    /// and [`SAVE_EVERY`] has passed since, or if nothing was saved or taken under the present
    /// terms and the audience holds [`SAVE_AFTER`] transactions or more. Blocking.
    fn save_if_due(&self, ops: &Ops) -> Result<(), OpError> {
        let due = save_due(&self.cursor.lock().expect("audience cursor"));
        if due {
            self.save(ops)?;
        }
        Ok(())
    }

    /// Transactions the saved state read when the audience began counting held (`None`: none
    /// was read, and the journal was folded from its start).
    pub fn restored(&self) -> Option<u64> {
        self.cursor.lock().expect("audience cursor").restored
    }

    /// Whether the facts the journal gives, and the dashboards' aggregates less the profiles'
    /// part, equal a fold of the journal from its start through the audience's cursor: what
    /// differs, if anything. Blocking; holds off catch-ups while it folds.
    pub fn check_against_journal(&self, ops: &Ops) -> Result<Option<String>, OpError> {
        let cursor = self.cursor.lock().expect("audience cursor");
        let t = terms(ops);
        let mut facts = Facts::default();
        let mut analytics = Analytics::default();
        facts.minor_per_unit = t.currency.as_deref().map_or(100, minor_units);
        if let Some(end) = &cursor.after {
            let snap = ops.ledger.read_snapshot()?;
            fold_journal(
                &snap,
                Some(end),
                &mut facts,
                &mut analytics,
                t.tz,
                t.currency,
            )?;
        }
        let live = self.facts.read().expect("audience facts");
        let live_analytics = self.analytics.read().expect("audience analytics");
        let n = live.rows.len().max(facts.rows.len());
        let row = |rows: &[Row], i: usize| rows.get(i).copied().unwrap_or_default();
        if let Some(i) =
            (0..n).find(|&i| row(&live.rows, i).without_profile() != row(&facts.rows, i))
        {
            return Ok(Some(format!(
                "member {i}: {:?} held, {:?} folded",
                row(&live.rows, i).without_profile(),
                row(&facts.rows, i)
            )));
        }
        if live.expiring != facts.expiring {
            return Ok(Some("the lots by expiry differ".into()));
        }
        let live_bare = live_analytics.without_profiles();
        if live_bare != analytics {
            return Ok(Some(format!(
                "the aggregates differ: {live_bare:?} held, {analytics:?} folded"
            )));
        }
        Ok(None)
    }

    /// Reads the segment definitions again.
    fn reload_segments(&self, ops: &Ops) -> Result<(), OpError> {
        let all = ops
            .registry
            .segments()
            .map_err(super::partner::registry_error)?;
        *self.records.write().expect("segment records") =
            all.into_iter().map(|s| (s.id, s)).collect();
        Ok(())
    }

    /// Whether member `m` is in segment `id` on `today` (false for a segment not defined).
    pub fn in_segment(&self, id: u32, m: MemberId, today: NaiveDate) -> bool {
        // Read in place: an earn with a segment campaign asks this, and a copy of the
        // definition each time would be work on the request path for nothing.
        let records = self.records.read().expect("segment records");
        records.get(&id).is_some_and(|r| self.contains(r, m, today))
    }

    /// Transactions folded, and those the last state saved or taken at start held (0: none),
    /// read without waiting for a catch-up or a save.
    pub fn progress(&self) -> (u64, u64) {
        (self.folded.load(Relaxed), self.last_saved.load(Relaxed))
    }

    /// Transactions folded so far.
    pub fn transactions(&self) -> u64 {
        self.cursor.lock().expect("audience cursor").transactions
    }

    /// Takes member `m`'s profile facts from `p` (`None`: erased).
    pub fn set_profile(&self, m: MemberId, p: Option<&Profile>) {
        self.index_contacts(m, p);
        let mut facts = self.facts.write().expect("audience facts");
        let mut analytics = self.analytics.write().expect("audience analytics");
        put_profile(&mut facts, &mut analytics, m, p);
    }

    /// Indexes member `m`'s phone, email and name (as [`contact_key`]s). An entry is only
    /// added, never looked for to remove: a lookup checks the member's profile still has the
    /// contact ([`Audience::by_contact`]), so a changed phone's old entry finds no one.
    fn index_contacts(&self, m: MemberId, p: Option<&Profile>) {
        let Some(p) = p else { return };
        let mut idx = self.contacts.write().expect("contact index");
        for c in [p.phone.as_deref(), p.email.as_deref()]
            .into_iter()
            .flatten()
        {
            idx.insert(contact_key(c), m.0);
        }
        if let Some(n) = p.name.as_deref() {
            let mut names = self.names.write().expect("name index");
            let v = names.entry(name_key(n)).or_default();
            if !v.contains(&m.0) {
                v.push(m.0);
            }
        }
    }

    /// The member whose profile has this phone or email, if any (checked against the profile).
    pub fn by_contact(&self, ops: &Ops, contact: &str) -> Option<MemberId> {
        let key = contact_key(contact);
        let m = self
            .contacts
            .read()
            .expect("contact index")
            .get(&key)
            .copied()?;
        let p = ops.registry.profile(MemberId(m)).ok().flatten()?;
        let still = [p.phone.as_deref(), p.email.as_deref()]
            .into_iter()
            .flatten()
            .any(|c| contact_key(c) == key);
        still.then_some(MemberId(m))
    }

    /// Members whose name is `name` (without regard to case or spacing), at most `limit`,
    /// each checked against its profile.
    pub fn by_name(&self, ops: &Ops, name: &str, limit: usize) -> Vec<MemberId> {
        let key = name_key(name);
        let ids = self
            .names
            .read()
            .expect("name index")
            .get(&key)
            .cloned()
            .unwrap_or_default();
        ids.into_iter()
            .filter(|m| {
                ops.registry
                    .profile(MemberId(*m))
                    .ok()
                    .flatten()
                    .and_then(|p| p.name)
                    .is_some_and(|n| name_key(&n) == key)
            })
            .take(limit)
            .map(MemberId)
            .collect()
    }

    /// A read of the dashboards' aggregates and the interned texts they count by.
    pub fn with_analytics<R>(&self, f: impl FnOnce(&Analytics, &Facts) -> R) -> R {
        let facts = self.facts.read().expect("audience facts");
        let a = self.analytics.read().expect("audience analytics");
        f(&a, &facts)
    }

    /// Segment `rec` compiled for `today` (cached per version and day).
    fn compiled(&self, rec: &SegmentRecord, today: NaiveDate) -> CompiledOn {
        let mut cache = self.compiled.lock().expect("segment cache");
        if let Some((v, d, c)) = cache.get(&rec.id) {
            if *v == rec.version && *d == today {
                return c.clone();
            }
        }
        let c = self.compile(&rec.rules, today);
        cache.insert(rec.id, (rec.version, today, c.clone()));
        c
    }

    /// `rules` compiled on `today`. The texts they name are interned first, so a city no
    /// member has yet matches the members who later give it.
    /// Returns the facts' generation with it.
    fn compile(&self, rules: &SegmentRules, today: NaiveDate) -> CompiledOn {
        let mut facts = self.facts.write().expect("audience facts");
        for g in rules.genders.iter().flatten() {
            facts.genders.intern(g);
        }
        for c in rules.cities.iter().flatten() {
            facts.cities.intern(c);
        }
        (
            self.generation.load(Relaxed),
            Arc::new(Compiled::new(rules, &facts, today)),
        )
    }

    /// `f` on a segment `compile` gives and the facts of the generation it was compiled on.
    /// Facts replaced between compiling (under the facts' write lock) and reading number
    /// genders and cities anew, and clear the cache: the segment is compiled again.
    fn on_facts<R>(
        &self,
        compile: impl Fn() -> CompiledOn,
        f: impl FnOnce(&Compiled, &Facts) -> R,
    ) -> R {
        loop {
            let (generation, c) = compile();
            let facts = self.facts.read().expect("audience facts");
            if self.generation.load(Relaxed) == generation {
                return f(&c, &facts);
            }
        }
    }

    /// The members `rules` selects on `today`: at most `limit` ids, in id order, and how many
    /// in all.
    pub fn evaluate(
        &self,
        rules: &SegmentRules,
        today: NaiveDate,
        limit: usize,
    ) -> (Vec<u64>, usize) {
        self.on_facts(
            || self.compile(rules, today),
            |c, facts| c.members(facts, limit),
        )
    }

    /// The members `rules` selects on `today` whose ids are above `after`: at most `limit`, in
    /// id order, with no row below `after` read (see [`Compiled::members_after`]).
    pub fn evaluate_after(
        &self,
        rules: &SegmentRules,
        today: NaiveDate,
        after: u64,
        limit: usize,
    ) -> Vec<u64> {
        self.on_facts(
            || self.compile(rules, today),
            |c, facts| c.members_after(facts, after, limit),
        )
    }

    /// Whether member `m` is in segment `rec` on `today`.
    pub fn contains(&self, rec: &SegmentRecord, m: MemberId, today: NaiveDate) -> bool {
        self.on_facts(
            || self.compiled(rec, today),
            |c, facts| facts.row(m.0).is_some_and(|r| c.contains(r)),
        )
    }

    /// Runs `f` on the facts as they stand (the daily schedule reads every member's).
    pub fn with_facts<R>(&self, f: impl FnOnce(&Facts) -> R) -> R {
        f(&self.facts.read().expect("audience facts"))
    }

    /// Whether member `m` may be messaged on `channel` as far as the facts know (consent and an
    /// address; checked again when the message goes).
    pub fn reachable(&self, m: MemberId, channel: crate::members::Channel) -> bool {
        self.row(m)
            .is_some_and(|r| r.reach & reach_bit(channel) != 0)
    }

    /// Member `m`'s facts row, if any.
    pub fn row(&self, m: MemberId) -> Option<Row> {
        self.facts.read().expect("audience facts").row(m.0).copied()
    }
}

/// Folds the journal's batches in `snap`, from its start through the batch at `through` (all
/// of them: `None`), into `facts` and `analytics`, counting days in `tz` and spend in
/// `currency`, in one pass: the fold the audience's catch-up makes in holds, and what
/// [`Audience::check_against_journal`] compares with. Benchmarks call it directly. Returns the
/// transactions folded.
pub fn fold_journal<S: ledger::store::Snapshot + ?Sized>(
    snap: &S,
    through: Option<&[u8]>,
    facts: &mut Facts,
    analytics: &mut Analytics,
    tz: chrono_tz::Tz,
    currency: Option<String>,
) -> Result<u64, OpError> {
    facts.minor_per_unit = currency.as_deref().map_or(100, minor_units);
    let t = Terms { tz, currency };
    let mut n = 0u64;
    ledger::journal::for_each_batch_after(snap, None, &mut |pos, _, txs| {
        for tx in &txs {
            fold_all(facts, analytics, &t, tx);
        }
        n += txs.len() as u64;
        Ok(through != Some(pos))
    })?;
    Ok(n)
}

/// Follows the journal every [`EVERY`] while the gateway runs.
pub fn spawn(ops: std::sync::Weak<Ops>) {
    tokio::spawn(async move {
        loop {
            let Some(o) = ops.upgrade() else { return };
            let r = tokio::task::spawn_blocking(move || {
                o.audience.catch_up(&o)?;
                o.audience.save_if_due(&o)
            })
            .await;
            match r {
                Ok(Err(e)) => e.log_round("audience catch-up"),
                Err(e) => tracing::warn!(error = %e, "audience task failed"),
                Ok(Ok(_)) => {}
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}

/// A segment definition as an operator sends it.
#[derive(Debug, Clone)]
pub struct SegmentDraft {
    /// Name.
    pub name: String,
    /// Who is in it.
    pub rules: SegmentRules,
    /// Why.
    pub reason: String,
}

/// Checks and records a segment: new (`id` `None`) or a new version of `id`. Blocking.
pub fn save_segment(
    ops: &Ops,
    id: Option<u32>,
    d: SegmentDraft,
    author: &str,
) -> Result<SegmentRecord, OpError> {
    if d.name.trim().is_empty() || d.name.chars().count() > 100 {
        return Err(OpError::new(
            Kind::InvalidRule,
            "name must be 1 to 100 characters, not all spaces",
        ));
    }
    d.rules
        .validate()
        .map_err(|e| OpError::new(Kind::InvalidRule, e.to_string()))?;
    if (d.rules.spend_min.is_some() || d.rules.spend_max.is_some()) && terms(ops).currency.is_none()
    {
        return Err(OpError::new(
            Kind::InvalidRule,
            "spend: counted in the programme's currency; set it first (PUT /admin/v1/programme)",
        ));
    }
    if id == Some(0) {
        return Err(OpError::new(Kind::NotFound, "no such segment"));
    }
    let note = super::programme::change_note(author, &d.reason)?;
    let rec = SegmentRecord {
        id: id.unwrap_or(0),
        name: d.name,
        rules: d.rules,
        version: 0,
        author: note.author,
        reason: note.reason,
        updated_at_ms: Timestamp::now().0,
    };
    let saved = ops
        .registry
        .put_segment(rec)
        .map_err(super::partner::registry_error)?
        .ok_or_else(|| OpError::new(Kind::NotFound, "no such segment"))?;
    ops.audience.reload_segments(ops)?;
    Ok(saved)
}

/// What campaign conditions see of the earning member: its birth month and segments, from the
/// audience's facts.
pub struct Signals<'a> {
    ops: &'a Ops,
    member: MemberId,
    today: std::cell::OnceCell<NaiveDate>,
}

impl<'a> Signals<'a> {
    /// Member `m`'s signals.
    pub fn of(ops: &'a Ops, member: MemberId) -> Signals<'a> {
        Signals {
            ops,
            member,
            today: std::cell::OnceCell::new(),
        }
    }
}

impl crate::programme::rules::MemberSignals for Signals<'_> {
    fn birth_month(&self) -> Option<u32> {
        use chrono::Datelike;
        let r = self.ops.audience.row(self.member)?;
        (r.birth != i32::MIN).then(|| {
            (NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                + chrono::Duration::days(i64::from(r.birth)))
            .month()
        })
    }

    fn in_segment(&self, id: u32) -> bool {
        let today = *self.today.get_or_init(|| today(self.ops));
        self.ops.audience.in_segment(id, self.member, today)
    }
}

/// Segment `id`. Blocking.
pub fn segment(ops: &Ops, id: u32) -> Result<SegmentRecord, OpError> {
    ops.registry
        .segment(id)
        .map_err(super::partner::registry_error)?
        .ok_or_else(|| OpError::new(Kind::NotFound, "no such segment"))
}

/// Who is in a segment now.
#[derive(Debug, Clone)]
pub struct Membership {
    /// Members, in id order, at most the limit asked.
    pub members: Vec<u64>,
    /// How many in all.
    pub count: usize,
    /// Journal transactions the facts include.
    pub as_of_transactions: u64,
    /// The day ages and days since activity were counted on.
    pub today: NaiveDate,
}

/// The members `rules` selects, after bringing the facts up to date. Blocking.
pub fn members(ops: &Ops, rules: &SegmentRules, limit: usize) -> Result<Membership, OpError> {
    let as_of = ops.audience.catch_up(ops)?;
    let today = today(ops);
    let (members, count) = ops.audience.evaluate(rules, today, limit);
    Ok(Membership {
        members,
        count,
        as_of_transactions: as_of,
        today,
    })
}

/// The members `rules` selects whose ids are above `after`, at most `limit`, in id order, as of
/// the journal now: the next page of a segment read a page at a time. Blocking.
pub fn members_after(
    ops: &Ops,
    rules: &SegmentRules,
    after: u64,
    limit: usize,
) -> Result<Vec<u64>, OpError> {
    ops.audience.catch_up(ops)?;
    Ok(ops.audience.evaluate_after(rules, today(ops), after, limit))
}

/// The segments member `m` is in. Blocking.
pub fn segments_of(ops: &Ops, m: MemberId) -> Result<Vec<SegmentRecord>, OpError> {
    if ops.ledger.balance(m)?.is_none() {
        return Err(OpError::new(Kind::UnknownMember, "no such member"));
    }
    ops.audience.catch_up(ops)?;
    let today = today(ops);
    Ok(ops
        .registry
        .segments()
        .map_err(super::partner::registry_error)?
        .into_iter()
        .filter(|s| ops.audience.contains(s, m, today))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state folded without a saved one to start from is saved as soon as it holds
    /// [`SAVE_AFTER`] transactions; after a save or a state taken, only once [`SAVE_EVERY`]
    /// has passed and [`SAVE_AFTER`] more were folded.
    #[test]
    fn a_save_is_due_after_a_fold_from_the_start_and_then_every_so_often() {
        let now = std::time::Instant::now();
        let long_ago = now
            .checked_sub(SAVE_EVERY + Duration::from_secs(1))
            .expect("the clock runs longer than that");
        let cursor = |saved, transactions| Cursor {
            profiles: true,
            saved,
            transactions,
            ..Cursor::default()
        };
        assert!(save_due(&cursor(None, SAVE_AFTER)));
        assert!(!save_due(&cursor(None, SAVE_AFTER - 1)));
        assert!(
            !save_due(&Cursor {
                profiles: false,
                ..cursor(None, SAVE_AFTER)
            }),
            "not before the profiles are read"
        );
        assert!(!save_due(&cursor(Some((now, 5)), 5 + 3 * SAVE_AFTER)));
        assert!(save_due(&cursor(Some((long_ago, 5)), 5 + SAVE_AFTER)));
        assert!(!save_due(&cursor(Some((long_ago, 5)), 4 + SAVE_AFTER)));
    }

    /// A segment compiled before the facts are replaced (an earn's campaign condition asked
    /// while a start took its saved state, or after the terms changed) is compiled again for
    /// the new facts: their genders and cities are numbered differently.
    #[test]
    fn facts_replaced_drop_the_segments_compiled_on_the_old() {
        let audience = Audience::default();
        let rec = SegmentRecord {
            id: 4,
            name: "women".into(),
            rules: SegmentRules {
                genders: Some(vec!["female".into()]),
                ..SegmentRules::default()
            },
            version: 1,
            author: "ops".into(),
            reason: "test".into(),
            updated_at_ms: 0,
        };
        let today = NaiveDate::from_ymd_opt(2026, 12, 7).expect("a date");
        // Compiled on the empty facts: "female" is the first gender there.
        assert!(!audience.contains(&rec, MemberId(5), today));
        let mut facts = Facts::default();
        let male = facts.genders.intern("male");
        let female = facts.genders.intern("female");
        assert_ne!(female, 1, "numbered unlike the empty facts'");
        for (m, g) in [(5u64, female), (6, male)] {
            let r = facts.row_mut(m);
            r.enrolled = true;
            r.active = true;
            r.gender = g;
        }
        audience
            .replace(facts, Analytics::default(), |_, _| Ok::<_, ()>(()))
            .expect("replaced");
        assert!(audience.contains(&rec, MemberId(5), today));
        assert!(!audience.contains(&rec, MemberId(6), today));
        assert_eq!(audience.evaluate(&rec.rules, today, 10), (vec![5], 1));
        assert_eq!(audience.generation.load(Relaxed), 1, "one replacement");
    }

    /// Counting again after the terms changed folds the journal aside and puts the whole in
    /// place at once: the facts a reader can see are never the profiles alone, without the
    /// journal's facts (enrolment, visits, spend) not yet folded again.
    #[test]
    fn counting_again_puts_the_journals_facts_in_place_with_the_profiles() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ops = crate::ops::ops_on(dir.path());
        let began = Timestamp::now();
        let m = crate::ops::operator::enrol_member(&ops).expect("enrol");
        let n = crate::ops::operator::enrol_member(&ops).expect("enrol");
        ops.audience.catch_up(&ops).expect("catch-up");
        let held = |m: MemberId| ops.audience.row(m).unwrap_or_default();
        assert!(held(m).enrolled && held(n).enrolled, "counted under UTC");
        let generation = ops.audience.generation.load(Relaxed);
        let tehran = Terms {
            tz: chrono_tz::Asia::Tehran,
            currency: Some("EUR".into()),
        };
        let mut cursor = ops.audience.cursor.lock().expect("audience cursor");
        ops.audience
            .begin(&ops, &tehran, &mut cursor, true)
            .expect("counted again");
        assert_eq!(
            ops.audience.generation.load(Relaxed),
            generation + 1,
            "one swap"
        );
        let days = day(tehran.tz, began)..=day(tehran.tz, Timestamp::now());
        for member in [m, n] {
            let r = held(member);
            assert!(
                r.enrolled,
                "member {} enrolled in the facts swapped in",
                member.0
            );
            assert!(days.contains(&r.enrolled_day), "the day in Tehran");
        }
        assert_eq!(cursor.transactions, 2, "both enrolments folded aside");
        assert!(cursor.after.is_some(), "the cursor past them");
        assert_eq!(cursor.counted, Some(tehran.named()));
    }

    /// Facts replaced in the moment between compiling a segment and reading the facts (another
    /// thread's catch-up or count again, made to happen here by the compile step itself): the
    /// segment is compiled again on the new facts, never evaluated on facts that number genders
    /// otherwise.
    #[test]
    fn facts_replaced_between_compiling_and_reading_compile_the_segment_again() {
        let audience = Audience::default();
        let rules = SegmentRules {
            genders: Some(vec!["female".into()]),
            ..SegmentRules::default()
        };
        let today = NaiveDate::from_ymd_opt(2026, 12, 7).expect("a date");
        let mut facts = Facts::default();
        let male = facts.genders.intern("male");
        let female = facts.genders.intern("female");
        for (m, g) in [(5u64, female), (6, male)] {
            let r = facts.row_mut(m);
            r.enrolled = true;
            r.active = true;
            r.gender = g;
        }
        let replacement = std::cell::Cell::new(Some(facts));
        let compiles = std::cell::Cell::new(0);
        let (members, generation) = audience.on_facts(
            || {
                compiles.set(compiles.get() + 1);
                // Compiled on the facts held now, which number "female" 1.
                let c = audience.compile(&rules, today);
                if let Some(f) = replacement.take() {
                    audience
                        .replace(f, Analytics::default(), |_, _| Ok::<_, ()>(()))
                        .expect("replaced");
                }
                c
            },
            |c, facts| {
                let members = [5u64, 6]
                    .into_iter()
                    .filter(|m| facts.row(*m).is_some_and(|r| c.contains(r)))
                    .collect::<Vec<_>>();
                (members, facts.genders.get("female"))
            },
        );
        assert_eq!(members, vec![5], "the woman, by the new facts' numbering");
        assert_eq!(compiles.get(), 2, "compiled once more after the swap");
        assert_eq!(generation, Some(female));
        assert_eq!(audience.generation.load(Relaxed), 1, "one replacement");
    }

    /// The saved state keeps what the journal gave every member and nothing a profile gave:
    /// not in the rows, not in the aggregates. Read back, it is the state less the profiles.
    #[test]
    fn the_saved_state_holds_the_journals_facts_and_no_profiles() {
        let mut facts = Facts {
            minor_per_unit: 100,
            ..Facts::default()
        };
        let mut analytics = Analytics::default();
        let profile = Profile {
            birth_date: Some("1990-04-02".into()),
            gender: Some("female".into()),
            city: Some("Tabriz".into()),
            ..Profile::default()
        };
        for m in [3u64, 9] {
            let old = facts.row(m).copied().unwrap_or_default();
            let r = facts.row_mut(m);
            r.enrolled = true;
            r.active = true;
            r.balance = 100 * m as i64;
            r.visits = 2;
            r.first_visit = 20_000;
            r.last_visit = 20_010;
            r.spend_minor = 5_000;
            let new = *r;
            analytics.row_changed(&old, &new, 100);
            put_profile(&mut facts, &mut analytics, MemberId(m), Some(&profile));
        }
        facts.add_expiring(9, 1_800_000_000_000, 40);
        for m in 0..6 {
            facts.add_expiring(m, 1_700_000_000_000 + m as i64, 5 + m as i64);
        }
        assert_ne!(facts.rows[3].gender, 0, "the profile is in the row");
        let cursor = Cursor {
            after: Some(vec![1, 2, 3]),
            transactions: 77,
            profiles: true,
            ..Cursor::default()
        };
        let t = Terms {
            tz: chrono_tz::Tz::Asia__Tehran,
            currency: Some("GBP".into()),
        };
        let (facts, analytics) = (RwLock::new(facts), RwLock::new(analytics));
        // Ten rows, encoded four under each hold of the lock, or all under one: the same bytes.
        let (bytes, _) = encode_saved(&t, &cursor, &facts, &analytics, 4);
        let (whole, _) = encode_saved(&t, &cursor, &facts, &analytics, usize::MAX);
        assert_eq!(bytes, whole);
        let (facts, analytics) = (facts.into_inner().unwrap(), analytics.into_inner().unwrap());
        let saved: Saved = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(
            (saved.format, saved.tz.as_str(), saved.currency.as_deref()),
            (SAVED_FORMAT, "Asia/Tehran", Some("GBP"))
        );
        assert_eq!((saved.after, saved.transactions), (Some(vec![1, 2, 3]), 77));
        assert_eq!(saved.rows.len(), facts.rows.len());
        for (saved, held) in saved.rows.iter().zip(&facts.rows) {
            assert_eq!(*saved, held.without_profile());
            assert_eq!(
                (saved.birth, saved.gender, saved.city, saved.reach),
                (i32::MIN, 0, 0, 0)
            );
        }
        assert_eq!(saved.rows[9].balance, 900, "the journal's facts are kept");
        assert_eq!(saved.expiring, facts.expiring);
        assert_eq!(saved.analytics.members.members, 2);
        assert_eq!(
            saved.analytics.members.gender.keys().collect::<Vec<_>>(),
            vec![&0],
            "no gender counted"
        );
        assert_eq!(
            saved
                .analytics
                .members
                .birth_year
                .keys()
                .collect::<Vec<_>>(),
            vec![&i32::MIN],
            "no birth year counted"
        );
        assert_eq!(
            analytics.members.birth_year.get(&1990),
            Some(&2),
            "held, not saved"
        );

        // The profiles put back on the saved state give the state that was held.
        let mut back = Facts {
            rows: saved.rows,
            genders: saved.genders,
            cities: saved.cities,
            minor_per_unit: 100,
            expiring: saved.expiring,
        };
        let mut back_analytics = saved.analytics;
        for m in [3u64, 9] {
            put_profile(&mut back, &mut back_analytics, MemberId(m), Some(&profile));
        }
        assert_eq!(back.rows, facts.rows);
        assert_eq!(back_analytics, analytics);
    }
}
