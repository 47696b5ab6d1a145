//! Record codecs and key parsers: any bytes as a stored key or value of each kind. Errors and
//! `None` are fine; a panic is not. A key that parses is built again and must be the same bytes.
#![no_main]

use ledger::codec::{
    decode, decode_closed_period, encode_key_chunk, key_chunk_entries, MemberRecord,
};
use ledger::core::model::Transaction;
use ledger::core::state::MemberState;
use ledger::keys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode::<Transaction>("fuzz", data);
    let _ = decode::<MemberState>("fuzz", data);
    let _ = decode_closed_period(data);
    if let Ok(entries) = key_chunk_entries(data) {
        if entries.iter().all(|e| e.digest.is_none()) && !entries.is_empty() {
            let pairs: Vec<_> = entries.iter().map(|e| (e.hash, e.tx)).collect();
            assert_eq!(
                encode_key_chunk(&pairs),
                data,
                "a compact chunk round-trips"
            );
        }
    }
    let mut parts = data.split(|b| *b == 0xFE);
    let head = parts.next().unwrap_or_default();
    let rest: Vec<Vec<u8>> = parts.map(<[u8]>::to_vec).collect();
    let _ = MemberRecord::from_values(head, &rest);
    if let Some(c) = keys::parse_counter(data) {
        assert_eq!(keys::counter(&c), data, "a counter key round-trips");
    }
    let _ = keys::parse_journal(data);
    let _ = keys::parse_member(data);
    let _ = keys::parse_member_page(data);
    let _ = keys::parse_account(data);
    let _ = keys::parse_hold_timeout(data);
    let _ = keys::parse_tail_tx(data);
    let _ = keys::parse_expiry_due(data);
});
