//! The embedded store's stored-message decoder: never panics, and a message
//! it decodes encodes and decodes back to itself.
#![no_main]
#![allow(clippy::unwrap_used)]

use libfuzzer_sys::fuzz_target;
use seqline_embedded::fuzzing::{decode_message, encode_message};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode_message(data) {
        let bytes = encode_message(message.clone()).unwrap();
        assert_eq!(decode_message(&bytes), Ok(message));
    }
});
