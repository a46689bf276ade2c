//! The Kafka records' Avro single-object decoder: never panics, and a record
//! it decodes encodes (current schema) and decodes back to the same record.
#![no_main]
#![allow(clippy::unwrap_used)]

use libfuzzer_sys::fuzz_target;
use seqline_kafka::avro::Codec;
use std::sync::OnceLock;

static CODEC: OnceLock<Codec> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let codec = CODEC.get_or_init(|| Codec::new().unwrap());
    if let Ok(record) = codec.decode(data) {
        let bytes = codec.encode(&record).unwrap();
        assert_eq!(codec.decode(&bytes), Ok(record));
    }
});
