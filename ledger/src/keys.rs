//! The one key encoding every engine shares. `docs/keyspace.md` describes it.
//!
//! Every key starts with a one-byte tag naming its family; integers are big-endian so byte order
//! is numeric order.
//!
//! ```
//! use ledger::keys;
//! use ledger::TxId;
//! let a = keys::reversed(TxId::new(1, 0));
//! let b = keys::reversed(TxId::new(2, 0));
//! assert!(a < b);
//! assert!(a.starts_with(&[keys::REVERSED]));
//! ```

use crate::core::model::{IdemKey, Scope};
use crate::core::programme::{CampaignId, CounterKey, GuardKey, GuardScope};
use crate::core::rewards::RewardId;
use crate::core::types::{AccountId, MemberId, PartnerId, TxId};

/// Journal blocks: `J ++ batch sequence (8 bytes) ++ block order (2 bytes)`.
pub const JOURNAL: u8 = b'J';
/// Member working state, one key per member (cluster path): `M ++ member`.
pub const MEMBER: u8 = b'M';
/// The further parts of a member record too large for one value (cluster path):
/// `N ++ member ++ part (2 bytes, from 1)`.
pub const MEMBER_PART: u8 = b'N';
/// Member working state in pages of [`MEMBERS_PER_PAGE`] ids (single committer):
/// `m ++ page`, page = member id / [`MEMBERS_PER_PAGE`].
pub const MEMBER_PAGE: u8 = b'm';
/// The members of a member page changed since the page was last written whole, as of a later
/// batch (single committer): `d ++ page`. A page's state is its whole copy with these over it.
pub const MEMBER_PAGE_CHANGES: u8 = b'd';

/// Member ids per member page.
pub const MEMBERS_PER_PAGE: u64 = 1024;
/// Balances of non-member accounts: `B ++ account`.
pub const BALANCE: u8 = b'B';
/// Balance history of non-member accounts: `b ++ account ++ seq`.
pub const BALANCE_HISTORY: u8 = b'b';
/// Contracts: `C ++ partner`.
pub const CONTRACT: u8 = b'C';
/// Open holds: `H ++ tx id`.
pub const HOLD: u8 = b'H';
/// Idempotency index, one key per command (cluster path): `I ++ scope ++ reference`.
pub const IDEMPOTENCY: u8 = b'I';
/// Idempotency index in chunks (single committer): `K ++ seq`.
pub const IDEM_CHUNK: u8 = b'K';
/// `l` hash: the single writer's idempotency records of keys older than the ones it keeps in
/// memory (`LedgerConfig::keys_in_memory`), by the low 64 bits of the xxh3-128 hash of the
/// key's encoding ([`disk_hash`]): the ids of the transactions of every key of that hash.
pub const IDEM_BY_HASH: u8 = b'l';
/// `L` hash: the same records as first written, until 2026-12 (the full 128-bit hash in the
/// key, each transaction with its command's digest). Read, never written: stores of that time
/// keep them.
pub const IDEM_ON_DISK_V1: u8 = b'L';
/// Amounts reversed per original: `R ++ tx id`.
pub const REVERSED: u8 = b'R';
/// Member statement lines, `S ++ member ++ tx id`, which the cluster path wrote until its
/// statements walked each member's chain as the single committer's do (ids are not in commit
/// order across processes). Neither written nor read now: stores of that time keep them.
pub const STATEMENT: u8 = b'S';
/// Projector metadata: `P ++ name`.
pub const META: u8 = b'P';
/// Cluster mode: commit order of journal batches, `O ++ shard ++ versionstamp ++ order`.
pub const ORDER: u8 = b'O';
/// Cluster mode: blind-added totals of non-member accounts, `A ++ account ++ asset`.
pub const TOTAL: u8 = b'A';
/// Cluster mode: open holds by timeout, `E ++ expiry ++ tx id`.
pub const HOLD_TIMEOUT: u8 = b'E';
/// Programme policies: `Y e` the expiry policy in force.
pub const POLICY: u8 = b'Y';
/// The transfer policy in force (`TransferPolicy`).
pub fn transfer_policy() -> Vec<u8> {
    vec![POLICY, b't']
}

/// Every version of a policy: `Y h tag tx`, tag `e`, `t` or `r` (`PolicyVersion`).
pub fn policy_version(tag: u8, tx: TxId) -> Vec<u8> {
    let mut k = vec![POLICY, b'h', tag];
    k.extend_from_slice(&tx.0.to_be_bytes());
    k
}

/// The prefix of the versions of the policy tagged `tag`.
pub fn policy_versions(tag: u8) -> Vec<u8> {
    vec![POLICY, b'h', tag]
}

/// Cluster mode: where the expiry index sweep after a policy change goes on (the next member
/// id, 8 bytes big-endian); absent when no sweep is due.
pub fn due_sweep() -> Vec<u8> {
    vec![POLICY, b's']
}

/// The tier policy in force (`TierPolicy`).
pub fn tier_policy() -> Vec<u8> {
    vec![POLICY, b'r']
}

/// Cluster mode: the lease of the process that posts the ledger's own commands (hold
/// timeouts, expiries, the expiry index sweep): owner token (8 bytes) and until (ms, 8 bytes),
/// big-endian.
pub fn system_lease() -> Vec<u8> {
    vec![META, b'L']
}

/// Cluster mode: members with points due to expire, `D ++ deadline ++ member`.
pub const EXPIRY_DUE: u8 = b'D';
/// Programme counters (campaign budgets, members' campaign caps, guard periods, first earns):
/// `Q ++ kind ++ fields`, see [`counter`].
pub const COUNTER: u8 = b'Q';

/// The partners gateway's registry: `G ++ kind ++ body`, one kind byte per record family
/// ([`gateway`]). Declared here so that every stored key prefix of every crate is in one place.
pub const GATEWAY: u8 = b'G';

/// The kinds of record the gateway keeps under [`GATEWAY`] (`docs/keyspace.md`).
pub mod gateway {
    /// Partners: `G p ++ partner (u32)`.
    pub const PARTNER: u8 = b'p';
    /// Partner API keys: `G k ++ key id`.
    pub const KEY: u8 = b'k';
    /// Rate tables: `G r ++ partner (u32) ++ version (u32)`.
    pub const RATE: u8 = b'r';
    /// Operator tokens: `G o ++ sha256(token)`.
    pub const OPERATOR: u8 = b'o';
    /// Member links: `G l ++ partner (u32) ++ reference`.
    pub const LINK: u8 = b'l';
    /// Reverse member links: `G L ++ partner (u32) ++ member (u64)`.
    pub const LINK_BACK: u8 = b'L';
    /// The next member id: `G n`.
    pub const NEXT_MEMBER: u8 = b'n';
    /// The next rate table version of a partner: `G v ++ partner (u32)`.
    pub const NEXT_RATE: u8 = b'v';
    /// One-time member link codes: `G c ++ sha256(code)`.
    pub const LINK_CODE: u8 = b'c';
    /// The nonce journal: `G N ++ gateway (u64) ++ sequence (u64)`, each value a batch of
    /// spent nonces (their 128-bit hashes) with the time it was written.
    pub const NONCE: u8 = b'N';
    /// Campaign versions: `G x ++ campaign (u32) ++ version (u32)`.
    pub const CAMPAIGN: u8 = b'x';
    /// The next campaign id: `G X`.
    pub const NEXT_CAMPAIGN: u8 = b'X';
    /// Points budget guard versions: `G g ++ scope (u32: 0 programme, else partner) ++ version
    /// (u32)`.
    pub const GUARD: u8 = b'g';
    /// Programme settings versions (time zone, currency): `G s ++ version (u32)`.
    pub const PROGRAMME: u8 = b's';
    /// Webhook subscriptions: `G w ++ id (u32)`.
    pub const WEBHOOK: u8 = b'w';
    /// A subscription's delivery cursor: `G u ++ id (u32)`.
    pub const WEBHOOK_CURSOR: u8 = b'u';
    /// A subscription's delivery log: `G y ++ id (u32) ++ sequence (u64)`.
    pub const WEBHOOK_LOG: u8 = b'y';
    /// The webhook dispatcher's lease (one gateway delivers at a time): `G D`.
    pub const DISPATCH_LEASE: u8 = b'D';
    /// Member profiles (personal data, outside the journal): `G f ++ member (u64)`.
    pub const PROFILE: u8 = b'f';
    /// Who read or changed a profile: `G a ++ member (u64) ++ time (ms, u64) ++ seq (u32) ++
    /// random (u32)`.
    pub const PROFILE_AUDIT: u8 = b'a';
    /// A member's data key, which its profile is sealed under (on FoundationDB; the embedded
    /// store keeps them in files beside it): `G K ++ member (u64)`.
    pub const MEMBER_KEY: u8 = b'K';
    /// A profile changed (so other gateways' audiences read it again): `G F ++ time (ms, u64)
    /// ++ seq (u32) ++ random (u32) ++ member (u64)`, empty.
    pub const PROFILE_CHANGE: u8 = b'F';
    /// The record of a member's erasure: `G E ++ member (u64)`.
    pub const ERASURE: u8 = b'E';
    /// Partner references a merge moved to a survivor that had its own at the partner:
    /// `G M ++ survivor (u64) ++ absorbed (u64)`.
    pub const MERGE: u8 = b'M';
    /// Segment definitions: `G S ++ id (u32)` (ids from `G X S`).
    pub const SEGMENT: u8 = b'S';
    /// The audience's saved state, a cache of what the journal and the profiles give: the
    /// head at `G A h`, its chunks at `G A c ++ generation (u64) ++ chunk (u32)`.
    pub const AUDIENCE: u8 = b'A';
    /// Notification settings: `G Q`.
    pub const NOTIFY_SETTINGS: u8 = b'Q';
    /// Message templates: `G t ++ event ++ 0 ++ channel (u8) ++ language`.
    pub const TEMPLATE: u8 = b't';
    /// Message providers: `G P ++ channel (u8)`.
    pub const PROVIDER: u8 = b'P';
    /// Messages waiting to go: `G J ++ due (ms, u64) ++ message id`.
    pub const MESSAGE_JOB: u8 = b'J';
    /// Messages sent, by member: `G Z ++ member (u64) ++ time (ms, u64) ++ seq (u32) ++ random
    /// (u32)`.
    pub const SENT_BY_MEMBER: u8 = b'Z';
    /// Messages sent, by time: `G W ++ time (ms, u64) ++ seq (u32) ++ random (u32)`.
    pub const SENT_BY_TIME: u8 = b'W';
    /// Broadcasts: `G B ++ id (u32)` (ids from `G X B`).
    pub const BROADCAST: u8 = b'B';
    /// The notifier's journal cursor: `G z`.
    pub const NOTIFY_CURSOR: u8 = b'z';
    /// The last local day the daily schedule finished: `G T`.
    pub const SCHEDULED_DAY: u8 = b'T';
    /// The console's and the portal's sessions (`G h s ++ SHA-256 of the session id`) and the
    /// portal's sign-in codes (`G h c ++ member (u64)`).
    pub const WEB: u8 = b'h';
    /// Engagement (rewards, vouchers, codes, referrals, draws, surveys, claims): `G e ++
    /// family (u8) ++ body`; the families and their bodies are listed in `docs/keyspace.md`
    /// and declared in [`engagement`].
    pub const ENGAGEMENT: u8 = b'e';

    /// The families under [`ENGAGEMENT`].
    pub mod engagement {
        /// Next ids: `n ++ family`.
        pub const NEXT_ID: u8 = b'n';
        /// Rewards: `r ++ id (u32)`.
        pub const REWARD: u8 = b'r';
        /// Vouchers: `v ++ code`.
        pub const VOUCHER: u8 = b'v';
        /// A voucher by the reference it was issued under: `k ++ reference` -> code.
        pub const VOUCHER_BY_REFERENCE: u8 = b'k';
        /// Issued vouchers by expiry: `x ++ expires (u64 ms) ++ code`.
        pub const VOUCHER_EXPIRY: u8 = b'x';
        /// A member's vouchers: `m ++ member (u64) ++ code`.
        pub const MEMBER_VOUCHER: u8 = b'm';
        /// Discount code sets: `s ++ id (u32)`.
        pub const CODE_SET: u8 = b's';
        /// Discount codes: `c ++ code` -> set and uses.
        pub const CODE: u8 = b'c';
        /// A member's uses of a code: `C ++ code ++ 0 ++ member (u64)`.
        pub const CODE_MEMBER: u8 = b'C';
        /// A code's use by the caller's reference: `U ++ scope ++ reference`.
        pub const CODE_USE: u8 = b'U';
        /// The referral policy: `P`.
        pub const REFERRAL_POLICY: u8 = b'P';
        /// A member's referral code: `R ++ member (u64)`.
        pub const REFERRAL_CODE: u8 = b'R';
        /// The member a referral code is: `Q ++ code`.
        pub const REFERRAL_OWNER: u8 = b'Q';
        /// Referrals by referee: `f ++ referee (u64)`.
        pub const REFERRAL: u8 = b'f';
        /// Referrals by referrer: `F ++ referrer (u64) ++ referee (u64)`, and the referrer's
        /// count at `F ++ referrer`.
        pub const REFERRAL_BY_REFERRER: u8 = b'F';
        /// Referrals waiting for the referee's qualifying earn: `p ++ referee (u64)`.
        pub const REFERRAL_PENDING: u8 = b'p';
        /// Draws: `d ++ id (u32)`.
        pub const DRAW: u8 = b'd';
        /// A draw's entries: `e ++ draw (u32) ++ member (u64)` -> entries (u64).
        pub const DRAW_ENTRY: u8 = b'e';
        /// Entries bought, by reference: `E ++ draw (u32) ++ reference`.
        pub const DRAW_PURCHASE: u8 = b'E';
        /// Surveys: `q ++ id (u32)`.
        pub const SURVEY: u8 = b'q';
        /// Survey responses: `a ++ survey (u32) ++ member (u64)`.
        pub const RESPONSE: u8 = b'a';
        /// Claims: `h ++ id (u64)`; the claims settings at `h`.
        pub const CLAIM: u8 = b'h';
        /// A member's claims: `H ++ member (u64) ++ claim (u64)`.
        pub const MEMBER_CLAIM: u8 = b'H';
        /// Claims against a partner: `i ++ partner (u32) ++ claim (u64)`.
        pub const PARTNER_CLAIM: u8 = b'i';
    }

    /// The key of a gateway record of `kind` with `body`.
    pub fn key(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(2 + body.len());
        k.push(super::GATEWAY);
        k.push(kind);
        k.extend_from_slice(body);
        k
    }
}

/// Decimal places of the fixed-point money totals under [`TOTAL`] (contract prices have at
/// most 10, points are whole).
pub const MONEY_SCALE: u32 = 10;

/// The prefix of journal keys.
pub fn journal_prefix() -> [u8; 1] {
    [JOURNAL]
}

/// The journal key of block `order` of batch `version`.
pub fn journal(version: u64, order: u16) -> Vec<u8> {
    let mut k = Vec::with_capacity(11);
    k.push(JOURNAL);
    k.extend_from_slice(&version.to_be_bytes());
    k.extend_from_slice(&order.to_be_bytes());
    k
}

/// The commit version and block order of a journal key.
pub fn parse_journal(key: &[u8]) -> Option<(u64, u16)> {
    if key.len() != 11 || key[0] != JOURNAL {
        return None;
    }
    let v = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let o = u16::from_be_bytes(key[9..11].try_into().ok()?);
    Some((v, o))
}

/// A member's working-state key.
pub fn member(m: MemberId) -> Vec<u8> {
    let mut k = vec![MEMBER];
    k.extend_from_slice(&m.0.to_be_bytes());
    k
}

/// Part `part` (from 1) of member `m`'s record.
pub fn member_part(m: MemberId, part: u16) -> Vec<u8> {
    let mut k = vec![MEMBER_PART];
    k.extend_from_slice(&m.0.to_be_bytes());
    k.extend_from_slice(&part.to_be_bytes());
    k
}

/// The member id in a member key.
pub fn parse_member(key: &[u8]) -> Option<MemberId> {
    (key.len() == 9 && key[0] == MEMBER)
        .then(|| MemberId(u64::from_be_bytes(key[1..9].try_into().expect("8 bytes"))))
}

/// The page holding member `m`'s state.
pub fn page_of(m: MemberId) -> u64 {
    m.0 / MEMBERS_PER_PAGE
}

/// A member page's key.
pub fn member_page(page: u64) -> Vec<u8> {
    page_key(MEMBER_PAGE, page)
}

/// The page number in a member page key.
pub fn parse_member_page(key: &[u8]) -> Option<u64> {
    parse_page_key(MEMBER_PAGE, key)
}

/// The key of a member page's changes since its last whole write.
pub fn member_page_changes(page: u64) -> Vec<u8> {
    page_key(MEMBER_PAGE_CHANGES, page)
}

/// The page number in a member page changes key.
pub fn parse_member_page_changes(key: &[u8]) -> Option<u64> {
    parse_page_key(MEMBER_PAGE_CHANGES, key)
}

fn page_key(tag: u8, page: u64) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&page.to_be_bytes());
    k
}

fn parse_page_key(tag: u8, key: &[u8]) -> Option<u64> {
    (key.len() == 9 && key[0] == tag)
        .then(|| u64::from_be_bytes(key[1..9].try_into().expect("8 bytes")))
}

/// Appends an account's encoding: a kind byte and its id.
pub fn push_account(k: &mut Vec<u8>, a: AccountId) {
    match a {
        AccountId::Member(m) => {
            k.push(1);
            k.extend_from_slice(&m.0.to_be_bytes());
        }
        AccountId::PartnerIssuance(p) => {
            k.push(2);
            k.extend_from_slice(&p.0.to_be_bytes());
        }
        AccountId::PartnerRedemption(p) => {
            k.push(3);
            k.extend_from_slice(&p.0.to_be_bytes());
        }
        AccountId::Promotions => k.push(4),
        AccountId::Breakage => k.push(5),
        AccountId::Adjustments => k.push(6),
        AccountId::Fees => k.push(8),
        AccountId::Float => k.push(7),
    }
}

/// Decodes an account encoded by [`push_account`]; returns it and the bytes it used.
pub fn parse_account(b: &[u8]) -> Option<(AccountId, usize)> {
    let u32_at = |b: &[u8]| {
        b.get(1..5)
            .map(|x| u32::from_be_bytes(x.try_into().expect("4 bytes")))
    };
    Some(match *b.first()? {
        1 => (
            AccountId::Member(MemberId(u64::from_be_bytes(b.get(1..9)?.try_into().ok()?))),
            9,
        ),
        2 => (AccountId::PartnerIssuance(PartnerId(u32_at(b)?)), 5),
        3 => (AccountId::PartnerRedemption(PartnerId(u32_at(b)?)), 5),
        4 => (AccountId::Promotions, 1),
        5 => (AccountId::Breakage, 1),
        6 => (AccountId::Adjustments, 1),
        8 => (AccountId::Fees, 1),
        7 => (AccountId::Float, 1),
        _ => return None,
    })
}

/// A non-member account's balance key.
pub fn balance(a: AccountId) -> Vec<u8> {
    let mut k = vec![BALANCE];
    push_account(&mut k, a);
    k
}

/// The prefix of a non-member account's balance history.
pub fn balance_history_prefix(a: AccountId) -> Vec<u8> {
    let mut k = vec![BALANCE_HISTORY];
    push_account(&mut k, a);
    k
}

/// The balance-history entry of account `a` as of commit `seq`.
pub fn balance_history(a: AccountId, seq: u64) -> Vec<u8> {
    let mut k = balance_history_prefix(a);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A contract's key.
pub fn contract(p: PartnerId) -> Vec<u8> {
    let mut k = vec![CONTRACT];
    k.extend_from_slice(&p.0.to_be_bytes());
    k
}

/// An open hold's key.
pub fn hold(id: TxId) -> Vec<u8> {
    let mut k = vec![HOLD];
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

/// An idempotency key's index key.
pub fn idempotency(key: &IdemKey) -> Vec<u8> {
    let (head, n) = idempotency_head(key);
    let mut k = Vec::with_capacity(n + key.reference.len());
    k.extend_from_slice(&head[..n]);
    k.extend_from_slice(key.reference.as_bytes());
    k
}

/// The part of a key's 128-bit hash ([`hash_key`]) its on-disk record is found by.
pub fn disk_hash(h: u128) -> u64 {
    h as u64
}

/// The on-disk idempotency record of keys whose [`disk_hash`] is `h` (nearly always one key).
pub fn idempotency_by_hash(h: u64) -> [u8; 9] {
    let mut k = [IDEM_BY_HASH; 9];
    k[1..].copy_from_slice(&h.to_be_bytes());
    k
}

/// The first form of on-disk idempotency record ([`IDEM_ON_DISK_V1`]) of keys of hash `h`.
pub fn idempotency_on_disk_v1(h: u128) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(IDEM_ON_DISK_V1);
    k.extend_from_slice(&h.to_be_bytes());
    k
}

/// A chunk of the idempotency index covering batches through `seq`.
pub fn idempotency_chunk(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(IDEM_CHUNK);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The first `n` bytes of [`idempotency`]'s encoding (prefix and scope); the reference follows.
pub fn idempotency_head(key: &IdemKey) -> ([u8; 6], usize) {
    let mut h = [IDEMPOTENCY, 0, 0, 0, 0, 0];
    let n = match key.scope {
        Scope::Partner(p) => {
            h[1] = 1;
            h[2..6].copy_from_slice(&p.0.to_be_bytes());
            6
        }
        Scope::Operator => {
            h[1] = 2;
            2
        }
        Scope::System => {
            h[1] = 3;
            2
        }
    };
    (h, n)
}

/// The reversed-so-far record of an original earn or burn.
pub fn reversed(id: TxId) -> Vec<u8> {
    let mut k = vec![REVERSED];
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

/// The projector's watermark: the last commit version whose effects are in the derived state.
pub fn projected_through() -> Vec<u8> {
    vec![META, b'w']
}

/// The member-page watermark: every member page covers every batch through this one (pages
/// written later cover more; each says how far).
pub fn members_through() -> Vec<u8> {
    vec![META, b'k']
}

/// How many members the single writer held as of the latest member pages written, a u64:
/// sizes the members' maps at open, which would otherwise grow by doubling, holding the table
/// before each doubling beside the one after it. A hint only: a store without it opens as before.
pub fn members_held() -> Vec<u8> {
    vec![META, b'n']
}

/// How many idempotency entries the single writer moved to disk (`l` and `L` records), a u64: sizes
/// the in-memory filter over them at open.
pub fn keys_on_disk() -> Vec<u8> {
    vec![META, b'd']
}

/// Which writer owns the store: `single` (one committer) or `cluster` (many processes).
pub fn writer_mode() -> Vec<u8> {
    vec![META, b'm']
}

/// Cluster mode: the next free block of batch sequence numbers (u64 BE).
pub fn id_blocks() -> Vec<u8> {
    vec![META, b'q']
}

/// Cluster mode: the prefix of journal shard `shard`'s commit-order entries; the versionstamp
/// and its order follow.
pub fn order_prefix(shard: u8) -> [u8; 2] {
    [ORDER, shard]
}

/// Cluster mode: the points total of non-member account `a` (i64 LE, blind-added).
pub fn total_points(a: AccountId) -> Vec<u8> {
    let mut k = total_prefix(a);
    k.push(0);
    k
}

/// Cluster mode: the money total of account `a` in `c` (i128 LE at [`MONEY_SCALE`]).
pub fn total_money(a: AccountId, c: crate::core::types::Currency) -> Vec<u8> {
    let mut k = total_prefix(a);
    k.push(1);
    k.extend_from_slice(c.code().as_bytes());
    k
}

/// Cluster mode: the prefix of every total of account `a`.
pub fn total_prefix(a: AccountId) -> Vec<u8> {
    let mut k = vec![TOTAL];
    push_account(&mut k, a);
    k
}

/// Cluster mode: the timeout index entry of hold `id`, expiring at `at`.
pub fn hold_timeout(at: crate::core::types::Timestamp, id: TxId) -> Vec<u8> {
    let mut k = vec![HOLD_TIMEOUT];
    k.extend_from_slice(&((at.0 as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

/// The hold id at the end of a [`hold_timeout`] key.
pub fn parse_hold_timeout(key: &[u8]) -> Option<TxId> {
    (key.len() == 17).then(|| TxId(u64::from_be_bytes(key[9..17].try_into().expect("8 bytes"))))
}

/// A key holding a u64 tx id at its end (holds, reversed records).
pub fn parse_tail_tx(key: &[u8]) -> Option<TxId> {
    (key.len() == 9).then(|| TxId(u64::from_be_bytes(key[1..9].try_into().expect("8 bytes"))))
}

/// A programme counter: `Q c campaign`, `Q g scope partner period`
/// (scope 0 programme, 1 partner), `Q e member partner`, `Q r reward`, `Q m member reward`.
pub fn counter(k: &CounterKey) -> Vec<u8> {
    let mut v = vec![COUNTER];
    match *k {
        CounterKey::Campaign(c) => {
            v.push(b'c');
            v.extend_from_slice(&c.0.to_be_bytes());
        }
        CounterKey::Guard(g) => {
            v.push(b'g');
            let (scope, p) = match g.scope {
                GuardScope::Programme => (0u8, 0u32),
                GuardScope::Partner(p) => (1, p.0),
            };
            v.push(scope);
            v.extend_from_slice(&p.to_be_bytes());
            v.extend_from_slice(&g.period.to_be_bytes());
        }
        CounterKey::Expiring(month) => {
            v.push(b'x');
            v.extend_from_slice(&month.to_be_bytes());
        }
        CounterKey::EarnedAt(m, p) => {
            v.push(b'e');
            v.extend_from_slice(&m.0.to_be_bytes());
            v.extend_from_slice(&p.0.to_be_bytes());
        }
        CounterKey::Reward(r) => {
            v.push(b'r');
            v.extend_from_slice(&r.0.to_be_bytes());
        }
        CounterKey::RewardMember(m, r) => {
            v.push(b'm');
            v.extend_from_slice(&m.0.to_be_bytes());
            v.extend_from_slice(&r.0.to_be_bytes());
        }
    }
    v
}

/// The counter a [`counter`] key names.
pub fn parse_counter(k: &[u8]) -> Option<CounterKey> {
    let u32_at = |i: usize| Some(u32::from_be_bytes(k.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_be_bytes(k.get(i..i + 8)?.try_into().ok()?));
    if k.first() != Some(&COUNTER) {
        return None;
    }
    let (key, len) = match k.get(1)? {
        b'c' => (CounterKey::Campaign(CampaignId(u32_at(2)?)), 6),
        b'g' => {
            let scope = match k.get(2)? {
                // The programme's scope writes partner 0: any other is not a key `counter`
                // makes (found by the `records` fuzz target).
                0 if u32_at(3)? == 0 => GuardScope::Programme,
                1 => GuardScope::Partner(PartnerId(u32_at(3)?)),
                _ => return None,
            };
            (
                CounterKey::Guard(GuardKey {
                    scope,
                    period: u32_at(7)?,
                }),
                11,
            )
        }
        b'x' => (CounterKey::Expiring(u32_at(2)?), 6),
        b'e' => (
            CounterKey::EarnedAt(MemberId(u64_at(2)?), PartnerId(u32_at(10)?)),
            14,
        ),
        b'r' => (CounterKey::Reward(RewardId(u32_at(2)?)), 6),
        b'm' => (
            CounterKey::RewardMember(MemberId(u64_at(2)?), RewardId(u32_at(10)?)),
            14,
        ),
        _ => return None,
    };
    (k.len() == len).then_some(key)
}

/// Cluster mode: points expiring in a UTC month, blind-added (i64 LE): `W ++ month`.
pub const EXPIRING_TOTAL: u8 = b'W';

/// Cluster mode: the blind-added points expiring in `month`.
pub fn expiring_total(month: u32) -> Vec<u8> {
    let mut k = vec![EXPIRING_TOTAL];
    k.extend_from_slice(&month.to_be_bytes());
    k
}

/// The expiry policy in force (`StoredPolicy`).
pub fn expiry_policy() -> Vec<u8> {
    vec![POLICY, b'e']
}

/// Cluster mode: member `m` has points due to expire at `at`.
pub fn expiry_due(at: crate::core::types::Timestamp, m: MemberId) -> Vec<u8> {
    let mut k = vec![EXPIRY_DUE];
    k.extend_from_slice(&((at.0 as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&m.0.to_be_bytes());
    k
}

/// The member at the end of an [`expiry_due`] key.
pub fn parse_expiry_due(key: &[u8]) -> Option<(crate::core::types::Timestamp, MemberId)> {
    (key.len() == 17 && key[0] == EXPIRY_DUE).then(|| {
        let t = u64::from_be_bytes(key[1..9].try_into().expect("8 bytes")) ^ (1 << 63);
        (
            crate::core::types::Timestamp(t as i64),
            MemberId(u64::from_be_bytes(key[9..17].try_into().expect("8 bytes"))),
        )
    })
}

/// The journal's hash chain: `T ++ position`, one record per journal batch in commit order
/// (position: the batch sequence, 8 bytes, on the single path; the commit-order versionstamp,
/// 12 bytes, on the cluster path). See [`crate::chain`].
pub const CHAIN: u8 = b'T';

/// The chain record of the batch at `position`.
pub fn chain(position: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + position.len());
    k.push(CHAIN);
    k.extend_from_slice(position);
    k
}

/// The chain's head on the cluster path: the last sealed batch's record and position (`P c`).
pub fn chain_head() -> Vec<u8> {
    vec![META, b'c']
}

/// The last closed accounting period (`Y p`): every command reads it, so none is dated inside
/// it.
pub fn closed_period() -> Vec<u8> {
    vec![POLICY, b'p']
}

/// Finance records: `F o ++ at (8 bytes) ++ n (4 bytes)` breakage overrides, each with its
/// author and reason, kept in the order they were made.
pub const FINANCE: u8 = b'F';

/// A breakage override made at `at` (ms), the `n`-th at that millisecond.
pub fn breakage_override(at: i64, n: u32) -> Vec<u8> {
    let mut k = vec![FINANCE, b'o'];
    k.extend_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The saved finance book in force: `F S` (generation, chunks, time zone, transactions folded).
pub fn book_saved() -> Vec<u8> {
    vec![FINANCE, b'S']
}

/// Chunk `n` of saved finance book `generation`: `F s ++ generation (u64) ++ n (u32)`.
pub fn book_chunk(generation: u64, n: u32) -> Vec<u8> {
    let mut k = vec![FINANCE, b's'];
    k.extend_from_slice(&generation.to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The prefix of saved finance book `generation`'s chunks.
pub fn book_chunks(generation: u64) -> Vec<u8> {
    let mut k = vec![FINANCE, b's'];
    k.extend_from_slice(&generation.to_be_bytes());
    k
}

/// The prefix of the breakage overrides.
pub fn breakage_overrides() -> Vec<u8> {
    vec![FINANCE, b'o']
}

/// The hash of a key's store encoding.
pub fn hash_encoded(encoded: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(encoded)
}

/// The hash of `key`'s store encoding, built on the stack: this runs for every command.
pub fn hash_key(key: &IdemKey) -> u128 {
    const LEN_MAX: usize = 6 + IdemKey::REFERENCE_LEN_MAX;
    let (head, n) = idempotency_head(key);
    let r = key.reference.as_bytes();
    if n + r.len() > LEN_MAX {
        return hash_encoded(&idempotency(key));
    }
    let mut buf = [0u8; LEN_MAX];
    buf[..n].copy_from_slice(&head[..n]);
    buf[n..n + r.len()].copy_from_slice(r);
    hash_encoded(&buf[..n + r.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_encoding_round_trips_and_sorts_members_by_id() {
        for a in [
            AccountId::Member(MemberId(u64::MAX)),
            AccountId::PartnerIssuance(PartnerId(9)),
            AccountId::PartnerRedemption(PartnerId(9)),
            AccountId::Promotions,
            AccountId::Breakage,
            AccountId::Adjustments,
            AccountId::Float,
        ] {
            let mut k = Vec::new();
            push_account(&mut k, a);
            assert_eq!(parse_account(&k), Some((a, k.len())));
        }
        assert!(member(MemberId(255)) < member(MemberId(256)));
    }

    #[test]
    fn counter_keys_round_trip() {
        for k in [
            CounterKey::Campaign(CampaignId(7)),
            CounterKey::Guard(GuardKey {
                scope: GuardScope::Programme,
                period: 10_671,
            }),
            CounterKey::Guard(GuardKey {
                scope: GuardScope::Partner(PartnerId(9)),
                period: 30_056,
            }),
            CounterKey::EarnedAt(MemberId(4), PartnerId(70)),
            CounterKey::Expiring(682),
            CounterKey::Reward(RewardId(9)),
            CounterKey::RewardMember(MemberId(4), RewardId(9)),
        ] {
            assert_eq!(parse_counter(&counter(&k)), Some(k));
        }
        assert_eq!(parse_counter(b"Qc12"), None);
        assert_eq!(parse_counter(b"Qz1234"), None);
    }

    /// Found by the `records` fuzz target: a programme-scope guard key naming a partner parsed
    /// to the programme's key, which encodes differently. Only keys `counter` makes parse.
    #[test]
    fn a_programme_guard_key_naming_a_partner_is_not_a_counter_key() {
        let crash = [81u8, 103, 0, 0, 0, 1, 255, 255, 212, 70, 0];
        assert_eq!(parse_counter(&crash), None);
    }

    #[test]
    fn journal_keys_sort_by_version_then_order() {
        assert!(journal(1, 65535) < journal(2, 0));
        assert_eq!(parse_journal(&journal(7, 3)), Some((7, 3)));
        assert_eq!(parse_journal(b"Jshort"), None);
    }

    #[test]
    fn hold_timeouts_sort_by_time_across_the_epoch() {
        use crate::core::types::Timestamp;
        let before = hold_timeout(Timestamp(-5), TxId(9));
        let after = hold_timeout(Timestamp(3), TxId(1));
        let later = hold_timeout(Timestamp(3), TxId(2));
        assert!(before < after && after < later);
        assert_eq!(parse_hold_timeout(&later), Some(TxId(2)));
    }

    #[test]
    fn idempotency_keys_of_different_scopes_never_collide() {
        let a = idempotency(&IdemKey::partner(PartnerId(1), "x"));
        let b = idempotency(&IdemKey::operator("x"));
        let c = idempotency(&IdemKey::partner(PartnerId(2), "x"));
        assert!(a != b && a != c && b != c);
    }
}
