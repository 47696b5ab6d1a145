//! A partner's request as the gateway reads it: the signature headers and the canonical string,
//! and every JSON body of the partner and engagement APIs. Errors are fine; a panic is not. A
//! request signed with a secret verifies with that secret, and with no other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partners_gateway::api::parse_json;
use partners_gateway::api::partner::bodies::{
    BatchRequest, BurnRequest, EarnRequest, HoldRequest, QuoteRequest, ReversalRequest,
};
use partners_gateway::signing::{canonical_string, sign};

fuzz_target!(|data: &[u8]| {
    // method, path, query, timestamp, nonce, signature, body: fields split at 0xFF.
    let mut f = data.splitn(7, |b| *b == 0xFF);
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    let (method, path, query, ts, nonce, sig) = (
        text(f.next()),
        text(f.next()),
        text(f.next()),
        text(f.next()),
        text(f.next()),
        text(f.next()),
    );
    let body = f.next().unwrap_or_default();
    let canonical = canonical_string(&method, &path, Some(&query), &ts, &nonce, body);
    let signed = sign("secret-a", &canonical);
    assert_eq!(signed, sign("secret-a", &canonical));
    assert_ne!(signed, sign("secret-b", &canonical));
    let _ = partners_gateway::api::signature::bearer(Some(&sig));
    let _ = parse_json::<EarnRequest>(body);
    let _ = parse_json::<BurnRequest>(body);
    let _ = parse_json::<HoldRequest>(body);
    let _ = parse_json::<ReversalRequest>(body);
    let _ = parse_json::<QuoteRequest>(body);
    let _ = parse_json::<BatchRequest>(body);
    let _ = parse_json::<partners_gateway::engagement::model::RewardSpec>(body).map(|s| s.check());
    let _ = parse_json::<partners_gateway::engagement::model::DrawSpec>(body).map(|s| s.check());
    let _ = parse_json::<partners_gateway::engagement::model::SurveySpec>(body).map(|s| s.check());
    let _ = parse_json::<partners_gateway::engagement::claims::ClaimInput>(body)
        .map(|c| (c.check(), c.date()));
});
