//! box.toml parsing and checking from arbitrary text: a configuration or an error naming the key,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = edge_ad_line::config::BoxConfig::parse(text);
    }
});
