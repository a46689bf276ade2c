//! The WebSocket text-frame parser: never panics, and a frame it accepts
//! serializes back to JSON that parses to the same frame.
#![no_main]
#![allow(clippy::unwrap_used)]

use libfuzzer_sys::fuzz_target;
use seqline_gateway::parse_client_frame;

fuzz_target!(|data: &[u8]| {
    // The WebSocket layer refuses text frames that are not UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = parse_client_frame(text) {
        let again = serde_json::to_string(&frame).unwrap();
        assert_eq!(parse_client_frame(&again), Ok(frame), "{again}");
    }
});
