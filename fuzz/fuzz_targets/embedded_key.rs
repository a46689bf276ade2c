//! The embedded log's and store's key reader (length-prefixed strings,
//! big-endian integers). Input: a layout (`s`/`i`/`l` per part) up to the
//! first NUL, then the key. Never panics, and the parts read rebuild exactly
//! the bytes they were read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seqline_embedded::fuzzing::read_key;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (layout, key) = (&data[..split.min(16)], &data[split + 1..]);
    if let Ok(rebuilt) = read_key(key, layout) {
        assert!(key.starts_with(&rebuilt), "{layout:?}: {key:?} rebuilt as {rebuilt:?}");
    }
});
