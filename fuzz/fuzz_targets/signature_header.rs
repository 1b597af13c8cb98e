//! `parse_signature` over arbitrary header bytes: never panics; accepts exactly 64 hex digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vobiz_webhooks::signature::parse_signature;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_signature(data);
    let well_formed = data.len() == 64 && data.iter().all(u8::is_ascii_hexdigit);
    assert_eq!(parsed.is_ok(), well_formed, "{data:?}");
    if let Ok(tag) = parsed {
        let hex: Vec<u8> = data.iter().map(u8::to_ascii_lowercase).collect();
        let mut expected = [0u8; 32];
        for (byte, pair) in expected.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            *byte = digit(pair[0]) << 4 | digit(pair[1]);
        }
        assert_eq!(tag, expected);
    }
});
