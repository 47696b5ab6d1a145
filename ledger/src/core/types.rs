//! The programme's vocabulary: points, money, identifiers and the chart of accounts.
//!
//! ```
//! use ledger::{AccountId, MemberId, PartnerId, Points};
//! let member = AccountId::Member(MemberId(7));
//! assert_eq!(member.to_string(), "member/7");
//! assert_eq!(AccountId::PartnerIssuance(PartnerId(2)).to_string(), "partner/2/issuance");
//! assert_eq!(Points(5).checked_add(Points(3)), Some(Points(8)));
//! ```

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A whole number of points, the programme's one currency. Points are never fractional.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Points(pub i64);

impl Points {
    /// Zero points.
    pub const ZERO: Points = Points(0);

    /// Adds, or `None` on overflow.
    pub fn checked_add(self, other: Points) -> Option<Points> {
        self.0.checked_add(other.0).map(Points)
    }

    /// Subtracts, or `None` on overflow.
    pub fn checked_sub(self, other: Points) -> Option<Points> {
        self.0.checked_sub(other.0).map(Points)
    }

    /// True when strictly positive.
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} pts", self.0)
    }
}

/// An ISO 4217 currency, stored as its three-letter code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The three-letter code, e.g. `"EUR"`.
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.0).expect("currency codes are validated ASCII")
    }

    /// The number of minor-unit digits the currency uses (2 for EUR, 0 for JPY).
    pub fn minor_units(&self) -> u32 {
        iso_currency::Currency::from_code(self.code())
            .and_then(|c| c.exponent())
            .map(u32::from)
            .unwrap_or(2)
    }
}

/// The error for a string that is not an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency {0:?}: expected an ISO 4217 code such as EUR")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let known =
            iso_currency::Currency::from_code(s).ok_or_else(|| UnknownCurrency(s.to_string()))?;
        let code = known.code().as_bytes();
        Ok(Currency([code[0], code[1], code[2]]))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount of money in one currency. Decimal, never floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount; may be negative on a ledger leg.
    #[serde(serialize_with = "decimal_text")]
    pub amount: Decimal,
    /// The currency of `amount`.
    pub currency: Currency,
}

/// Serializes `d` as the text `rust_decimal` writes for it (`-12.50`, `0.05`, `0`), byte for
/// byte, so that stored records and digests are unchanged: with the mantissa's digits from
/// `itoa` instead of one 96-bit division by ten per digit. Every money leg of every transaction
/// goes through here when journal blocks and records are encoded.
fn decimal_text<S: serde::Serializer>(d: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    let mut digits = itoa::Buffer::new();
    let mantissa = d.mantissa().unsigned_abs();
    // Amounts of money fit 64 bits; 128-bit division is the slow part of a wider one.
    let digits = match u64::try_from(mantissa) {
        Ok(0) => "",
        Ok(narrow) => digits.format(narrow),
        Err(_) => digits.format(mantissa),
    };
    let scale = d.scale() as usize;
    // Sign, "0." and up to 28 zeros, 29 digits, a point: well within 64 bytes.
    let mut text = [0u8; 64];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        text[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    if d.is_sign_negative() {
        put(b"-");
    }
    if digits.len() > scale {
        let whole = digits.len() - scale;
        put(&digits.as_bytes()[..whole]);
        if scale > 0 {
            put(b".");
            put(&digits.as_bytes()[whole..]);
        }
    } else if scale == 0 {
        put(b"0");
    } else {
        put(b"0.");
        for _ in digits.len()..scale {
            put(b"0");
        }
        put(digits.as_bytes());
    }
    if serializer.is_human_readable() {
        serializer.serialize_str(std::str::from_utf8(&text[..at]).expect("ASCII digits"))
    } else {
        // Postcard (every stored record and digest) writes a string and bytes alike, as a
        // length and the bytes: the ASCII need not be checked as UTF-8 again.
        serializer.serialize_bytes(&text[..at])
    }
}

impl Money {
    /// Builds a money amount.
    pub fn new(amount: Decimal, currency: Currency) -> Money {
        Money { amount, currency }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// A coalition member.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct MemberId(pub u64);

/// A partner merchant.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct PartnerId(pub u32);

/// A ledger transaction's id: the commit sequence of its batch and its slot in that batch.
///
/// Ids increase in commit order, so they double as the journal's order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct TxId(pub u64);

/// An optional transaction id in 8 bytes, where `Option<TxId>` takes 16: a member's latest
/// transaction, held for every enrolled member. Stored and compared as the `Option<TxId>` it
/// stands for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MaybeTx(Option<std::num::NonZeroU64>);

impl MaybeTx {
    /// No transaction.
    pub const NONE: MaybeTx = MaybeTx(None);

    /// Transaction `id`. Every id a batch can number fits (`TxId::new` keeps the sequence under
    /// 2^48, so an id never reaches `u64::MAX`).
    pub fn some(id: TxId) -> MaybeTx {
        MaybeTx(std::num::NonZeroU64::new(
            id.0.checked_add(1)
                .expect("a transaction id below u64::MAX"),
        ))
    }

    /// The transaction, if any.
    pub fn get(self) -> Option<TxId> {
        self.0.map(|v| TxId(v.get() - 1))
    }
}

impl From<Option<TxId>> for MaybeTx {
    fn from(id: Option<TxId>) -> MaybeTx {
        id.map_or(MaybeTx::NONE, MaybeTx::some)
    }
}

impl fmt::Debug for MaybeTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl Serialize for MaybeTx {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de> Deserialize<'de> for MaybeTx {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MaybeTx, D::Error> {
        let id = Option::<TxId>::deserialize(d)?;
        if id == Some(TxId(u64::MAX)) {
            return Err(serde::de::Error::custom("transaction id u64::MAX"));
        }
        Ok(MaybeTx::from(id))
    }
}

impl TxId {
    /// Bits of the id that hold the slot within the batch.
    pub const SLOT_BITS: u32 = 16;

    /// Builds the id of slot `slot` in the batch committed at `seq`.
    pub fn new(seq: u64, slot: u16) -> TxId {
        assert!(
            seq < 1 << (64 - Self::SLOT_BITS),
            "batch sequence {seq} overflows an id"
        );
        TxId((seq << Self::SLOT_BITS) | u64::from(slot))
    }

    /// The id of the transaction at index `index` of the batch committed at `seq`. Panics if
    /// the batch holds more transactions than an id's slot can number: the batch limits are
    /// set so that it never does (`BATCH_TXS_MAX`).
    pub fn in_batch(seq: u64, index: usize) -> TxId {
        let slot = u16::try_from(index).expect("a batch's transactions fit an id's slot");
        TxId::new(seq, slot)
    }

    /// The commit sequence number of the batch holding this transaction.
    pub fn seq(self) -> u64 {
        self.0 >> Self::SLOT_BITS
    }

    /// The slot of this transaction within its batch.
    pub fn slot(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.seq(), self.slot())
    }
}

/// Milliseconds since the Unix epoch, UTC. The committer stamps every batch with one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This time plus `ms` milliseconds.
    pub fn plus_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

/// An account in the programme's chart of accounts.
///
/// Balances are signed: a posting adds its amount to the account. Member accounts are positive
/// when the programme owes the member points; a partner's issuance account goes negative by the
/// points the partner has issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AccountId {
    /// `member/{id}`: points owed to the member.
    Member(MemberId),
    /// `partner/{id}/issuance`: points the partner has issued; its money leg is what the partner
    /// owes the programme for them.
    PartnerIssuance(PartnerId),
    /// `partner/{id}/redemption`: points redeemed at the partner; its money leg is what the
    /// programme owes the partner.
    PartnerRedemption(PartnerId),
    /// `programme/promotions`: operator-funded bonus points.
    Promotions,
    /// `programme/breakage`: expired points.
    Breakage,
    /// `programme/adjustments`: manual corrections.
    Adjustments,
    /// `programme/float`: the money counterpart of points outstanding (issuance money in,
    /// redemption money out).
    Float,
    /// `programme/fees`: transfer fees members paid in points.
    Fees,
}

impl AccountId {
    /// True for `member/{id}` accounts, the only ones guarded against going negative.
    pub fn is_member(&self) -> bool {
        matches!(self, AccountId::Member(_))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountId::Member(m) => write!(f, "member/{}", m.0),
            AccountId::PartnerIssuance(p) => write!(f, "partner/{}/issuance", p.0),
            AccountId::PartnerRedemption(p) => write!(f, "partner/{}/redemption", p.0),
            AccountId::Promotions => f.write_str("programme/promotions"),
            AccountId::Breakage => f.write_str("programme/breakage"),
            AccountId::Adjustments => f.write_str("programme/adjustments"),
            AccountId::Float => f.write_str("programme/float"),
            AccountId::Fees => f.write_str("programme/fees"),
        }
    }
}

/// The error for an account name outside the chart of accounts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown account {0:?}: expected member/ID, partner/ID/issuance, partner/ID/redemption or programme/NAME")]
pub struct UnknownAccount(pub String);

impl FromStr for AccountId {
    type Err = UnknownAccount;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnknownAccount(s.to_string());
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            ["member", id] => Ok(AccountId::Member(MemberId(id.parse().map_err(|_| bad())?))),
            ["partner", id, kind] => {
                let p = PartnerId(id.parse().map_err(|_| bad())?);
                match *kind {
                    "issuance" => Ok(AccountId::PartnerIssuance(p)),
                    "redemption" => Ok(AccountId::PartnerRedemption(p)),
                    _ => Err(bad()),
                }
            }
            ["programme", "promotions"] => Ok(AccountId::Promotions),
            ["programme", "breakage"] => Ok(AccountId::Breakage),
            ["programme", "adjustments"] => Ok(AccountId::Adjustments),
            ["programme", "fees"] => Ok(AccountId::Fees),
            ["programme", "float"] => Ok(AccountId::Float),
            _ => Err(bad()),
        }
    }
}

/// What a programme does when a reversal of an earn finds the points already spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ClawbackPolicy {
    /// Take the member below zero; later earnings repay the debt first.
    AllowNegative,
    /// Refuse the reversal; nothing changes.
    #[default]
    Reject,
}

/// A partner's commercial terms: what a point costs the partner when it issues one, and what the
/// programme reimburses when a member burns one there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    /// The partner.
    pub partner: PartnerId,
    /// The settlement currency.
    pub currency: Currency,
    /// Money the partner pays the programme per point issued.
    pub issuance_price_per_point: Decimal,
    /// Money the programme reimburses the partner per point redeemed.
    pub redemption_price_per_point: Decimal,
    /// Days a lot earned at this partner stays valid; `None` means it does not expire.
    pub points_validity_days: Option<u32>,
}

impl Contract {
    /// When points earned at `at` under this contract expire.
    pub fn lot_expiry(&self, at: Timestamp) -> Option<Timestamp> {
        self.points_validity_days
            .map(|d| at.plus_ms(i64::from(d) * 86_400_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Money as `rust_decimal` itself serializes it: what every stored record holds.
    #[derive(Serialize)]
    struct Reference {
        amount: Decimal,
        currency: Currency,
    }

    fn same_bytes_as_rust_decimal(d: Decimal) {
        let currency: Currency = "EUR".parse().expect("EUR");
        let ours = Money::new(d, currency);
        let theirs = Reference {
            amount: d,
            currency,
        };
        assert_eq!(
            postcard::to_allocvec(&ours).expect("encodes"),
            postcard::to_allocvec(&theirs).expect("encodes"),
            "postcard of {d:?}"
        );
        assert_eq!(
            serde_json::to_string(&ours).expect("encodes"),
            serde_json::to_string(&theirs).expect("encodes"),
            "JSON of {d:?}"
        );
        let back: Money =
            postcard::from_bytes(&postcard::to_allocvec(&ours).expect("encodes")).expect("decodes");
        assert_eq!(back.amount, d);
        assert_eq!(back.amount.scale(), d.scale(), "the scale survives: {d}");
    }

    #[test]
    fn money_text_is_rust_decimals_byte_for_byte_at_the_edges() {
        for text in [
            "0",
            "-0",
            "0.00",
            "-0.00",
            "1",
            "-1",
            "0.05",
            "-0.05",
            "0.25",
            "12.50",
            "-12.50",
            "100",
            "100.0",
            "1000000.000001",
        ] {
            same_bytes_as_rust_decimal(text.parse().expect(text));
        }
        for scale in 0..=28 {
            for negative in [false, true] {
                for (lo, mid, hi) in [(0, 0, 0), (1, 0, 0), (u32::MAX, u32::MAX, u32::MAX)] {
                    same_bytes_as_rust_decimal(Decimal::from_parts(lo, mid, hi, negative, scale));
                }
            }
        }
        same_bytes_as_rust_decimal(Decimal::MAX);
        same_bytes_as_rust_decimal(Decimal::MIN);
    }

    proptest::proptest! {
        #[test]
        fn money_text_is_rust_decimals_byte_for_byte(
            lo: u32, mid: u32, hi: u32, negative: bool, scale in 0u32..=28, narrow in 0u32..3,
        ) {
            // Most amounts are small: a third with one word, a third with two, a third with three.
            let (mid, hi) = match narrow { 0 => (0, 0), 1 => (mid, 0), _ => (mid, hi) };
            same_bytes_as_rust_decimal(Decimal::from_parts(lo, mid, hi, negative, scale));
        }
    }

    #[test]
    fn account_names_round_trip_through_display_and_parse() {
        let all = [
            AccountId::Member(MemberId(42)),
            AccountId::PartnerIssuance(PartnerId(3)),
            AccountId::PartnerRedemption(PartnerId(3)),
            AccountId::Promotions,
            AccountId::Breakage,
            AccountId::Adjustments,
            AccountId::Float,
            AccountId::Fees,
        ];
        for a in all {
            assert_eq!(a.to_string().parse::<AccountId>(), Ok(a));
        }
        assert!("partner/3/other".parse::<AccountId>().is_err());
        assert!("member/x".parse::<AccountId>().is_err());
    }

    #[test]
    fn currency_parses_only_iso_4217_codes() {
        let eur: Currency = "EUR".parse().expect("EUR is ISO 4217");
        assert_eq!(eur.code(), "EUR");
        assert_eq!(eur.minor_units(), 2);
        assert_eq!("JPY".parse::<Currency>().map(|c| c.minor_units()), Ok(0));
        assert!("XYZ".parse::<Currency>().is_err());
        assert!("eur1".parse::<Currency>().is_err());
    }

    #[test]
    fn tx_id_packs_seq_and_slot_in_commit_order() {
        let a = TxId::new(5, 65535);
        let b = TxId::new(6, 0);
        assert!(a < b);
        assert_eq!((a.seq(), a.slot()), (5, 65535));
        assert_eq!(b.to_string(), "6-0");
    }

    #[test]
    fn maybe_tx_takes_eight_bytes_and_is_stored_as_the_option_it_stands_for() {
        assert_eq!(std::mem::size_of::<MaybeTx>(), 8);
        for id in [
            None,
            Some(TxId(0)),
            Some(TxId::new(9, 4)),
            Some(TxId(u64::MAX - 1)),
        ] {
            let m = MaybeTx::from(id);
            assert_eq!(m.get(), id);
            let bytes = postcard::to_allocvec(&m).expect("encodes");
            assert_eq!(bytes, postcard::to_allocvec(&id).expect("encodes"));
            let back: MaybeTx = postcard::from_bytes(&bytes).expect("decodes");
            assert_eq!(back, m);
        }
        // The one id it cannot hold is refused when read, not wrapped to another.
        let max = postcard::to_allocvec(&Some(TxId(u64::MAX))).expect("encodes");
        assert!(postcard::from_bytes::<MaybeTx>(&max).is_err());
    }
}

/// Who changed a programme policy and why, journaled with the change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChangeNote {
    /// The operator.
    pub author: String,
    /// Why, in words an auditor can follow.
    pub reason: String,
}

impl ChangeNote {
    /// Longest author, in bytes.
    pub const AUTHOR_LEN_MAX: usize = 128;
    /// Longest reason, in bytes (500 characters of any script).
    pub const REASON_LEN_MAX: usize = 2_000;

    /// Whether both fit their limits.
    pub fn fits(&self) -> bool {
        self.author.len() <= Self::AUTHOR_LEN_MAX && self.reason.len() <= Self::REASON_LEN_MAX
    }
}
