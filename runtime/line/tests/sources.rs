//! The contract every frame source the box can open without hardware keeps (the camera keeps it
//! against vivid in tests/hil/run.sh): frames in order, each big enough to inspect; an unreadable
//! file is an error naming it, never skipped, and the source goes on after it; `remaining` counts
//! down when known; an exhausted source stays exhausted; a repeating one starts over.

use std::path::Path;

use edge_ad_core::source::{FileSource, FrameSource, SourceHealth, MIN_IMAGE_SIDE};
use edge_ad_line::config::SourceConfig;
use edge_ad_line::sources::open_source;

/// Three files: two images and, between them, a file that is not one.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let a = dir.join("a.png");
    let b = dir.join("b.png");
    let c = dir.join("c.png");
    image::RgbImage::from_pixel(64, 48, image::Rgb([10, 20, 30])).save(&a).unwrap();
    std::fs::write(&b, b"not a png").unwrap();
    image::RgbImage::from_pixel(40, 40, image::Rgb([200, 100, 0])).save(&c).unwrap();
    vec![a, b, c]
}

/// Drains up to `n` frames: the file name of each, or `Err(message)`.
fn take(source: &mut dyn FrameSource, n: usize) -> Vec<Result<String, String>> {
    (0..n)
        .map_while(|_| source.next_frame())
        .map(|f| {
            f.map(|frame| {
                assert!(frame.image.width() >= MIN_IMAGE_SIDE && frame.image.height() >= MIN_IMAGE_SIDE);
                frame.name
            })
            .map_err(|e| e.to_string())
        })
        .collect()
}

fn check_once(mut source: Box<dyn FrameSource + Send>) {
    assert_eq!(source.health(), SourceHealth::Ok);
    assert_eq!(source.remaining(), Some(3));
    let first = take(source.as_mut(), 1);
    assert_eq!(first, vec![Ok("a.png".to_string())]);
    assert_eq!(source.remaining(), Some(2));
    let rest = take(source.as_mut(), 10);
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert!(rest[0].as_ref().is_err_and(|e| e.contains("b.png")), "the bad file is named: {rest:?}");
    assert_eq!(rest[1], Ok("c.png".to_string()), "and the source goes on after it");
    assert_eq!(source.remaining(), Some(0));
    assert!(source.next_frame().is_none() && source.next_frame().is_none(), "exhausted stays exhausted");
}

fn check_repeating(mut source: Box<dyn FrameSource + Send>) {
    assert_eq!(source.remaining(), None, "a replay has no end");
    let names = take(source.as_mut(), 7);
    let ok: Vec<_> = names.iter().filter_map(|n| n.as_ref().ok().cloned()).collect();
    assert_eq!(ok, ["a.png", "c.png", "a.png", "c.png", "a.png"]);
}

#[test]
fn every_source_keeps_the_frame_source_contract() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path());
    check_once(Box::new(FileSource::from_files(paths.clone())));
    check_once(open_source(&SourceConfig::Folder { path: dir.path().to_path_buf(), repeat: false }).unwrap());
    check_once(open_source(&SourceConfig::Files { paths: paths.clone(), repeat: false }).unwrap());
    check_repeating(Box::new(FileSource::from_files(paths.clone()).repeating(true)));
    check_repeating(open_source(&SourceConfig::Folder { path: dir.path().to_path_buf(), repeat: true }).unwrap());
    check_repeating(open_source(&SourceConfig::Files { paths, repeat: true }).unwrap());
}

#[test]
fn a_source_that_cannot_start_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.png");
    let e = open_source(&SourceConfig::Files { paths: vec![missing], repeat: false }).err().unwrap();
    assert!(e.to_string().contains("gone.png"), "{e}");
    let e = open_source(&SourceConfig::Folder { path: dir.path().join("nowhere"), repeat: false }).err().unwrap();
    assert!(e.to_string().contains("nowhere"), "{e}");
}
