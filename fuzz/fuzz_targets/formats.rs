//! Every format the box reads, from arbitrary bytes: decoding and validating never panics, and a
//! file that decodes re-encodes to bytes that decode to the same value.
#![no_main]

use edge_ad_calib::{decode, encode, Bundle, ModelCalibration, ModelManifest, SiteCalibration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = decode::<SiteCalibration>(data) {
        let _ = c.validate();
        let again = encode(&c).expect("a decoded calibration encodes");
        assert_eq!(decode::<SiteCalibration>(&again).ok().as_ref(), Some(&c));
    }
    if let Ok(m) = decode::<ModelManifest>(data) {
        let _ = m.validate();
    }
    if let Ok(b) = decode::<Bundle>(data) {
        let _ = b.validate();
    }
    if let Ok(c) = decode::<ModelCalibration>(data) {
        let _ = c.validate();
    }
});
