//! A draw's winners, reproducible by anyone from the published entry list and the revealed
//! seed.
//!
//! Before the draw closes the operator publishes `commitment = hex(SHA-256(seed))`; after it
//! closes, the entry list (`member_id,entries`, one row per member) and then the seed. The
//! winners follow from these alone:
//!
//! 1. Order the entries by member id; `T` is the sum of their entries.
//! 2. For prize `k` (0, 1, ...), for attempt `a` (0, 1, ...): `h = SHA-256(seed ‖ "prize" ‖
//!    k ‖ a)` with `k` and `a` as 4-byte big-endian numbers; `x` is `h`'s first 8 bytes, big
//!    endian. If `x` falls in the last partial block of `2^64` modulo `T`, try the next attempt
//!    (so every entry is equally likely); else entry number `x mod T` (counting from 0 through
//!    the ordered rows) wins.
//! 3. The winning member's entries leave the list (one prize per member) and `T` shrinks; the
//!    next prize is drawn the same way, until the prizes or the entries run out.
//!
//! `partners-gateway draw-verify` runs exactly this over the published files.

use sha2::{Digest, Sha256};
use std::io::Read;

/// A member's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The member (the ledger's pseudonymous id).
    pub member: u64,
    /// Its entries.
    pub entries: u64,
}

/// `hex(SHA-256(seed))`, the commitment an operator publishes before the draw closes.
pub fn commitment(seed: &[u8]) -> String {
    hex::encode(Sha256::digest(seed))
}

/// The entries of a list add up past what a draw counts in (`u64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyEntries;

/// The winners of `prizes` prizes, in prize order (see the module's description).
pub fn winners(entries: &[Entry], seed: &[u8], prizes: usize) -> Result<Vec<u64>, TooManyEntries> {
    let mut left: Vec<Entry> = entries.iter().copied().filter(|e| e.entries > 0).collect();
    left.sort();
    let mut out = Vec::with_capacity(prizes.min(left.len()));
    for k in 0..prizes.min(u32::MAX as usize) as u32 {
        let total = left
            .iter()
            .try_fold(0u64, |t, e| t.checked_add(e.entries))
            .ok_or(TooManyEntries)?;
        if total == 0 {
            break;
        }
        let x = pick(seed, k, total);
        let mut acc = 0u64;
        let i = left
            .iter()
            .position(|e| {
                acc += e.entries;
                x < acc
            })
            .expect("x < total lands on an entry");
        out.push(left.remove(i).member);
    }
    Ok(out)
}

/// A uniform number below `total` for prize `k`, by rejection sampling over SHA-256 outputs.
fn pick(seed: &[u8], k: u32, total: u64) -> u64 {
    // The largest multiple of `total` that fits: values at or above it would favour low numbers.
    let zone = u64::MAX - (u64::MAX % total);
    for a in 0u32.. {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(b"prize");
        h.update(k.to_be_bytes());
        h.update(a.to_be_bytes());
        let d = h.finalize();
        let x = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        if x < zone {
            return x % total;
        }
    }
    unreachable!("an attempt below the zone comes within 2^32 tries")
}

/// Writes the entry list as published: `member_id,entries`, ordered by member id.
pub fn write_entries(entries: &[Entry]) -> String {
    let mut sorted = entries.to_vec();
    sorted.sort();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["member_id", "entries"])
        .expect("writing to memory");
    for e in &sorted {
        w.write_record([e.member.to_string(), e.entries.to_string()])
            .expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("ASCII")
}

/// Reads a published entry list.
pub fn read_entries(r: impl Read) -> Result<Vec<Entry>, String> {
    let mut rd = csv::Reader::from_reader(r);
    let mut out = Vec::new();
    for (i, row) in rd.records().enumerate() {
        let row = row.map_err(|e| format!("row {}: {e}", i + 2))?;
        let field = |n: usize| -> Result<u64, String> {
            row.get(n)
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("row {}: column {} is not a whole number", i + 2, n + 1))
        };
        out.push(Entry {
            member: field(0)?,
            entries: field(1)?,
        });
    }
    Ok(out)
}

/// A seed as the operator reveals it: hex of 16 to 64 bytes.
pub fn parse_seed(hex_seed: &str) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(hex_seed.trim()).map_err(|_| "the seed is hex".to_string())?;
    if !(16..=64).contains(&bytes.len()) {
        return Err("the seed is 16 to 64 bytes (32 to 128 hex digits)".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Vec<Entry> {
        (1..=50)
            .map(|m| Entry {
                member: m,
                entries: m % 7,
            })
            .collect()
    }

    #[test]
    fn the_same_seed_and_entries_give_the_same_winners_in_any_row_order() {
        let seed = [7u8; 32];
        let a = winners(&list(), &seed, 5).unwrap();
        let mut reversed = list();
        reversed.reverse();
        assert_eq!(a, winners(&reversed, &seed, 5).unwrap());
        assert_eq!(a.len(), 5);
        let mut unique = a.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 5, "one prize per member: {a:?}");
        assert!(
            a.iter().all(|m| m % 7 != 0),
            "members with no entries never win"
        );
        assert_ne!(
            a,
            winners(&list(), &[8u8; 32], 5).unwrap(),
            "another seed, other winners"
        );
    }

    #[test]
    fn the_entry_list_round_trips_through_its_published_form() {
        let text = write_entries(&list());
        assert!(text.starts_with("member_id,entries\n1,1\n"));
        assert_eq!(read_entries(text.as_bytes()).unwrap(), list());
        assert!(read_entries("member_id,entries\nx,1\n".as_bytes()).is_err());
    }

    #[test]
    fn more_entries_win_more_often() {
        // Member 1 holds 9 entries of 10: over 400 seeds it should win the one prize about 360
        // times; far below 300 would mean the draw ignores the weights.
        let entries = [
            Entry {
                member: 1,
                entries: 9,
            },
            Entry {
                member: 2,
                entries: 1,
            },
        ];
        let wins = (0u32..400)
            .filter(|s| winners(&entries, &s.to_be_bytes(), 1) == Ok(vec![1]))
            .count();
        assert!((300..=395).contains(&wins), "member 1 won {wins} of 400");
    }

    #[test]
    fn entries_past_what_a_draw_counts_are_refused_not_wrapped() {
        let huge = [
            Entry {
                member: 1,
                entries: u64::MAX,
            },
            Entry {
                member: 2,
                entries: 1,
            },
        ];
        assert_eq!(winners(&huge, b"seed", 1), Err(TooManyEntries));
    }

    #[test]
    fn a_commitment_is_the_sha256_of_the_seed() {
        assert_eq!(
            commitment(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(parse_seed("00").is_err());
        assert_eq!(parse_seed(&"ab".repeat(16)).unwrap().len(), 16);
    }
}
