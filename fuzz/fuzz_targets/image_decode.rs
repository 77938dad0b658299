//! The image decode path the box runs on every frame file: arbitrary bytes give an image within
//! the size limits or an error, never a panic or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = edge_ad_core::source::decode_image(data) {
        let max = edge_ad_core::source::MAX_IMAGE_SIDE;
        assert!(img.width() <= max && img.height() <= max);
    }
});
