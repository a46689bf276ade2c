//! The device-token parser. Two modes, chosen by the first byte:
//! - even: the rest is the token as a client sends it (almost always refused
//!   at the signature, which is the point: nothing before it may panic);
//! - odd: the rest is `header \n payload`, signed with the server's key, so
//!   the fuzzer reaches the claims checks behind the signature.
//!
//! Claims that verify must verify again after a serialize/sign round trip.
#![no_main]
#![allow(clippy::unwrap_used)]

use libfuzzer_sys::fuzz_target;
use seqline_core::token::TokenKey;

const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = TokenKey::new("fuzz-secret-0123456789");
    let verified = if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        key.verify(token, NOW)
    } else {
        let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        key.verify(&key.sign_parts(header, payload), NOW)
    };
    if let Ok(claims) = verified {
        let payload = serde_json::to_vec(&claims).unwrap();
        let token = key.sign_parts(br#"{"alg":"HS256","typ":"JWT"}"#, &payload);
        assert_eq!(key.verify(&token, NOW), Ok(claims));
    }
});
