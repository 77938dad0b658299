//! Round trips of every payload and every way a file can be wrong.

use edge_ad_calib::*;

fn name(s: &str) -> Name {
    Name::try_from(s).unwrap()
}

fn manifest() -> ModelManifest {
    let mut levels = heapless::Vec::new();
    levels.push(LevelSpec { output: name("feat_s8"), stride: 8, channels: 40 }).unwrap();
    levels.push(LevelSpec { output: name("feat_s16"), stride: 16, channels: 112 }).unwrap();
    ModelManifest {
        name: name("effnet_lite0_feat"),
        file: name("effnet_lite0_feat.onnx"),
        sha256: [7; 32],
        input_name: name("image"),
        input_side: 224,
        colour_order: ColourOrder::Rgb,
        normalisation: Normalisation::UnitRangeInGraph,
        levels,
        licence: name("Apache-2.0"),
    }
}

fn site() -> SiteCalibration {
    let level = |c: u32, h: u32| ReferenceLevel {
        output: name("feat"),
        channels: c,
        height: h,
        width: h,
        shots: 2,
        features: (0..(2 * h * h * c)).map(|i| i as f32 * 0.5).collect(),
    };
    SiteCalibration {
        model: ModelIdentity { backbone_sha256: [1; 32], projector_sha256: Some([2; 32]) },
        scorer: ScorerKind::FeatureNorm,
        image_score: ImageScore::TopMean { fraction: 0.02 },
        resize_side: 224,
        working_side: 224,
        shot_names: vec![name("a.png"), name("b.png")],
        levels: vec![level(4, 3), level(8, 2)],
        threshold: Threshold {
            value: 1.5,
            base: 1.5,
            spread: 4.0,
            margin: 0.1,
            sensitivity: 1.0,
            stats: ScoreStats { scores: vec![1.0, 1.2], min: 1.0, max: 1.2, mean: 1.1, std: 0.1 },
        },
        photometry: Photometry { mean_min: 90.0, mean_max: 110.0, std_min: 20.0, std_max: 30.0 },
        created_unix_s: 1_780_000_000,
    }
}

#[test]
fn manifest_round_trips() {
    let m = manifest();
    let bytes = encode(&m).unwrap();
    assert_eq!(&bytes[..4], b"EDAD");
    assert_eq!(decode::<ModelManifest>(&bytes).unwrap(), m);
    assert!(m.validate().is_ok());
}

#[test]
fn site_calibration_round_trips() {
    let s = site();
    let bytes = encode(&s).unwrap();
    let back: SiteCalibration = decode(&bytes).unwrap();
    assert_eq!(back, s);
    assert!(back.validate().is_ok());
}

#[test]
fn wrong_magic_is_refused() {
    let mut bytes = encode(&manifest()).unwrap();
    bytes[0] = b'X';
    assert!(matches!(decode::<ModelManifest>(&bytes), Err(FormatError::BadMagic { .. })));
}

#[test]
fn other_version_is_refused() {
    let mut bytes = encode(&manifest()).unwrap();
    bytes[4] = 2;
    assert_eq!(
        decode::<ModelManifest>(&bytes),
        Err(FormatError::UnsupportedVersion { found: 2, supported: FORMAT_VERSION })
    );
}

#[test]
fn an_older_site_calibration_is_refused_by_its_version() {
    // Version 1 had no image-score rule, version 2 no photometry; reading either as version 3
    // would misparse the fields after them, so the header's version refuses it first.
    assert_eq!(SiteCalibration::VERSION, 3);
    let mut bytes = encode(&site()).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 3);
    for older in [1, 2] {
        bytes[4] = older;
        assert_eq!(
            decode::<SiteCalibration>(&bytes),
            Err(FormatError::UnsupportedVersion { found: older as u16, supported: 3 })
        );
    }
    // The other kinds keep version 1.
    assert_eq!(u16::from_le_bytes([encode(&manifest()).unwrap()[4], 0]), FORMAT_VERSION);
}

#[test]
fn a_top_mean_share_outside_zero_to_one_fails_validation() {
    for fraction in [0.0, -0.1, 1.5, f32::NAN] {
        let mut s = site();
        s.image_score = ImageScore::TopMean { fraction };
        assert!(s.validate().is_err(), "{fraction}");
    }
    let mut s = site();
    s.image_score = ImageScore::Max;
    assert!(s.validate().is_ok());
}

#[test]
fn a_threshold_whose_value_is_not_its_base_over_sensitivity_fails_validation() {
    // The box divides `base` by its own sensitivity: an edited base must not slip through.
    let mut s = site();
    s.threshold.base = 1e30;
    assert!(s.validate().is_err());
    let mut s = site();
    s.threshold.sensitivity = 2.0;
    assert!(s.validate().is_err(), "value 1.5 is not 1.5 / 2");
    s.threshold.value = 0.75;
    assert!(s.validate().is_ok());
    s.threshold.spread = -1.0;
    assert!(s.validate().is_err());
}

#[test]
fn wrong_and_unknown_kind_are_refused() {
    let bytes = encode(&manifest()).unwrap();
    assert_eq!(
        decode::<SiteCalibration>(&bytes),
        Err(FormatError::WrongKind { expected: PayloadKind::SiteCalibration, found: PayloadKind::ModelManifest })
    );
    let mut bytes = bytes;
    bytes[6] = 99;
    assert_eq!(decode::<ModelManifest>(&bytes), Err(FormatError::UnknownKind { found: 99 }));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = encode(&site()).unwrap();
    for len in 0..bytes.len() {
        let err = decode::<SiteCalibration>(&bytes[..len]).unwrap_err();
        assert!(matches!(err, FormatError::Truncated { .. }), "len {len}: {err:?}");
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = encode(&site()).unwrap();
    bytes.push(0);
    assert!(matches!(decode::<SiteCalibration>(&bytes), Err(FormatError::TrailingBytes { .. })));
}

#[test]
fn length_field_lies_are_caught() {
    let mut bytes = encode(&site()).unwrap();
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    bytes[8..12].copy_from_slice(&(len - 1).to_le_bytes());
    assert!(matches!(decode::<SiteCalibration>(&bytes), Err(FormatError::TrailingBytes { .. })));
    bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode::<SiteCalibration>(&bytes), Err(FormatError::Truncated { .. })));
}

#[test]
fn every_flipped_payload_bit_is_caught_by_the_checksum() {
    let bytes = encode(&manifest()).unwrap();
    for i in HEADER_LEN..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            assert!(
                matches!(decode::<ModelManifest>(&b), Err(FormatError::ChecksumMismatch { .. })),
                "byte {i} bit {bit}"
            );
        }
    }
}

#[test]
fn every_flipped_header_bit_is_refused() {
    let bytes = encode(&manifest()).unwrap();
    for i in 0..HEADER_LEN {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            assert!(decode::<ModelManifest>(&b).is_err(), "header byte {i} bit {bit} was accepted");
        }
    }
}

#[test]
fn garbage_with_a_valid_checksum_is_a_payload_error() {
    // A header that matches its own payload, but the payload is not a calibration.
    let payload = [0xffu8; 40];
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&payload);
    let header = Header {
        version: SiteCalibration::VERSION,
        kind: PayloadKind::SiteCalibration as u8,
        payload_len: 40,
        crc32: crc,
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(&payload);
    assert_eq!(decode::<SiteCalibration>(&bytes), Err(FormatError::Payload));
}

#[test]
fn inconsistent_calibration_fails_validation() {
    let mut s = site();
    s.levels[1].features.pop();
    assert!(s.validate().is_err());
    let mut s = site();
    s.shot_names.pop();
    assert!(s.validate().is_err());
    let mut s = site();
    s.threshold.value = f32::NAN;
    assert!(s.validate().is_err());
    let mut m = manifest();
    m.input_side = 220;
    assert!(m.validate().is_err());
}

#[test]
fn errors_read_as_sentences() {
    let msg = FormatError::ChecksumMismatch { stored: 1, computed: 2 }.to_string();
    assert!(msg.contains("corrupt"), "{msg}");
    let msg = FormatError::WrongKind { expected: PayloadKind::SiteCalibration, found: PayloadKind::ModelManifest }
        .to_string();
    assert_eq!(msg, "holds a model manifest where a site calibration was expected");
}

fn model_calibration() -> ModelCalibration {
    let mut levels = heapless::Vec::new();
    for output in ["feat_s8", "feat_s16"] {
        let l = LevelRadius {
            output: name(output),
            r_max: 0.4,
            normal_mean: 0.1,
            normal_max: 0.3,
            anomalous_min: Some(1.2),
        };
        levels.push(l).unwrap();
    }
    let mut files = heapless::Vec::new();
    for f in ["effnet_lite0_feat.onnx", "feat_s8.onnx", "feat_s16.onnx"] {
        files.push(FileDigest { name: name(f), sha256: [9; 32] }).unwrap();
    }
    ModelCalibration {
        model: ModelIdentity { backbone_sha256: [7; 32], projector_sha256: Some([3; 32]) },
        loss: name("official"),
        levels,
        files,
        samples: 192,
        epochs: 10,
        seed: 42,
    }
}

fn bundle() -> Bundle {
    let file = |n: &str, b: &[u8]| BundleFile { name: name(n), sha256: [0; 32], bytes: b.to_vec() };
    Bundle {
        manifest: manifest(),
        calibration: Some(model_calibration()),
        files: vec![
            file("effnet_lite0_feat.onnx", b"backbone"),
            file("feat_s8.onnx", b"p8"),
            file("feat_s16.onnx", b"p16"),
        ],
    }
}

#[test]
fn model_calibration_and_bundle_round_trip_and_validate() {
    let c = model_calibration();
    c.validate().unwrap();
    assert_eq!(decode::<ModelCalibration>(&encode(&c).unwrap()).unwrap(), c);
    let b = bundle();
    b.validate().unwrap();
    let bytes = encode(&b).unwrap();
    assert_eq!(decode::<Bundle>(&bytes).unwrap(), b);
    assert!(matches!(decode::<ModelCalibration>(&bytes), Err(FormatError::WrongKind { .. })));
    assert_eq!(b.file("feat_s8.onnx").unwrap().bytes, b"p8");
}

#[test]
fn inconsistent_bundles_and_model_calibrations_fail_validation() {
    let mut c = model_calibration();
    c.levels[0].normal_max = f32::NAN;
    assert!(c.validate().is_err());
    let mut c = model_calibration();
    c.files[1].name = name("effnet_lite0_feat.onnx");
    assert!(c.validate().is_err());
    let mut b = bundle();
    b.files.remove(0);
    assert_eq!(b.validate(), Err("the backbone file the manifest names is missing"));
    let mut b = bundle();
    b.files.pop();
    assert_eq!(b.validate(), Err("the projector files do not match the manifest's levels"));
    let mut b = bundle();
    b.files.truncate(1);
    b.calibration = None;
    b.validate().expect("a bundle without a projector is fine");
    let mut b = bundle();
    b.calibration.as_mut().unwrap().levels.pop();
    assert!(b.validate().is_err());
}
