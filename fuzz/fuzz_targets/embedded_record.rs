//! The embedded log's stored-record decoder (format byte + postcard): never
//! panics, and a record it decodes encodes and decodes back to itself.
#![no_main]
#![allow(clippy::unwrap_used)]

use libfuzzer_sys::fuzz_target;
use seqline_embedded::fuzzing::{decode_record, encode_record};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = decode_record(data) {
        let bytes = encode_record(record.clone()).unwrap();
        assert_eq!(decode_record(&bytes), Ok(record));
    }
});
