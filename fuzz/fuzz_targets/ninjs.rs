//! ninjs (JSON) import: any bytes are refused with an error or read, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use newsstore::ninjs;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ninjs::parse(text);
});
