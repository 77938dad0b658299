//! Frame sources: where images come from (a folder or a list of files here; the box's camera in
//! edge-ad-line), behind one trait so the frame path does not care.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::{Error, Result};

/// Smallest image side accepted: below this there is nothing to inspect.
pub const MIN_IMAGE_SIDE: u32 = 32;

/// One image to inspect.
pub struct Frame {
    /// A name for records (the file name for files).
    pub name: String,
    /// The file it came from, when it came from a file.
    pub path: Option<PathBuf>,
    /// The pixels, RGB 8-bit (grey images are expanded).
    pub image: RgbImage,
}

/// Whether a source can give frames right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceHealth {
    /// Frames can be asked for.
    Ok,
    /// The source is gone (a camera unplugged or silent), with the reason.
    Lost(String),
}

/// Something that yields frames one after another: files, a folder, a camera.
pub trait FrameSource {
    /// The next frame; `None` when the source is exhausted.
    fn next_frame(&mut self) -> Option<Result<Frame>>;
    /// How many frames remain, when known (for progress bars).
    fn remaining(&self) -> Option<usize>;
    /// Whether frames can be asked for now (files always can; a camera may be lost).
    fn health(&self) -> SourceHealth {
        SourceHealth::Ok
    }
}

/// Whether `path` has an image extension this runtime decodes (PNG, JPEG, BMP).
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg" | "bmp"))
        .unwrap_or(false)
}

/// The entries of `dir` named like images (PNG, JPEG, BMP), in sorted file-name order. Other
/// names are skipped. Every entry so named is listed, whatever it is (a folder, a FIFO, a broken
/// link): reading it is then an error naming it, so no part goes without a verdict. A missing
/// folder or one without images is an error naming it.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if is_image_path(&path) {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::bad_file(dir, "holds no PNG, JPEG or BMP image"));
    }
    files.sort();
    Ok(files)
}

/// Largest image side decoded. The header is checked before any pixel is decoded, so a small
/// file that claims a huge image (a 470 kB PNG of 22000² pixels) costs nothing.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Largest single allocation while decoding (an 8192² RGB image at 16 bits is 403 MB).
const MAX_DECODE_BYTES: u64 = 512 << 20;

/// Whether JPEG bytes end with the end-of-image marker (FF D9), allowing for up to 1 KiB of
/// padding or trailer after it. Decoders fill a cut-off JPEG with grey and report success; a part
/// whose defect was in the missing rows would then pass. FF D9 cannot occur inside entropy-coded
/// data (a stuffed FF is followed by 00), so a file cut anywhere before its end lacks it.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Decodes image bytes (PNG, JPEG, BMP) to RGB 8-bit. Grey, 16-bit and alpha images are
/// converted. Refused: a truncated JPEG, an image larger than [`MAX_IMAGE_SIDE`] (from its header,
/// before decoding), or smaller than [`MIN_IMAGE_SIDE`] on either side.
pub fn decode_image(bytes: &[u8]) -> std::result::Result<RgbImage, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("not a readable image: {e}"))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err("truncated JPEG (no end-of-image marker): not decoded, a cut-off image could hide a defect".into());
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => {
            format!("larger than the {MAX_IMAGE_SIDE}-pixel maximum side (or too large to decode)")
        }
        e => format!("not a readable image: {e}"),
    })?;
    let rgb = decoded.into_rgb8();
    if rgb.width() < MIN_IMAGE_SIDE || rgb.height() < MIN_IMAGE_SIDE {
        return Err(format!(
            "image is {}×{}, smaller than the {MIN_IMAGE_SIDE}-pixel minimum",
            rgb.width(),
            rgb.height()
        ));
    }
    Ok(rgb)
}

/// Reads (a regular file, size-capped) and decodes an image file; see [`decode_image`].
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let bytes = crate::files::read_capped(path, crate::files::caps::IMAGE)?;
    decode_image(&bytes).map_err(|why| Error::bad_file(path, why))
}

/// Loads each file as (file name, image), in order; the first unreadable one is the error.
pub fn load_named(paths: &[PathBuf]) -> Result<Vec<(String, RgbImage)>> {
    paths.iter().map(|p| Ok((file_name(p), load_image(p)?))).collect()
}

/// The file name of `path` as a string (lossy), for records and calibrations.
pub fn file_name(path: &Path) -> String {
    path.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

/// Frames from a fixed list of files, in list order (optionally starting over at the end).
pub struct FileSource {
    files: std::vec::IntoIter<PathBuf>,
    all: Vec<PathBuf>,
    repeat: bool,
}

impl FileSource {
    /// Every image of a folder, in sorted file-name order.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Ok(Self::from_files(image_files(dir)?))
    }

    /// The given files, in the given order.
    pub fn from_files(files: Vec<PathBuf>) -> Self {
        Self { files: files.clone().into_iter(), all: files, repeat: false }
    }

    /// Starts over at the first file after the last when `repeat` (a replay for dry runs).
    pub fn repeating(mut self, repeat: bool) -> Self {
        self.repeat = repeat;
        self
    }
}

impl FrameSource for FileSource {
    fn next_frame(&mut self) -> Option<Result<Frame>> {
        if self.repeat && self.files.len() == 0 {
            self.files = self.all.clone().into_iter();
        }
        let path = self.files.next()?;
        let name = file_name(&path);
        Some(load_image(&path).map(|image| Frame { name, path: Some(path), image }))
    }

    fn remaining(&self) -> Option<usize> {
        (!self.repeat).then_some(self.files.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn textured(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 + y * 3) as u8, (x ^ y) as u8, (x * y) as u8]))
    }

    #[test]
    fn a_cut_off_image_is_refused_whatever_its_format() {
        let dir = tempfile::tempdir().unwrap();
        let img = textured(256, 256);
        for ext in ["jpg", "png", "bmp"] {
            let full = dir.path().join(format!("full.{ext}"));
            img.save(&full).unwrap();
            let bytes = std::fs::read(&full).unwrap();
            assert!(load_image(&full).is_ok(), "{ext} intact");
            for keep in [0.25, 0.5, 0.75, 0.9, 0.995] {
                let cut = dir.path().join(format!("cut.{ext}"));
                std::fs::write(&cut, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
                let e = load_image(&cut).expect_err(&format!("{ext} cut to {keep} must not decode"));
                assert!(e.to_string().contains("cut."), "{e}");
            }
        }
        assert!(!jpeg_is_complete(&[0xFF, 0xD8, 0xFF, 0xDA, 0x12]) && jpeg_is_complete(&[0xFF, 0xD9, 0, 0]));
    }

    #[test]
    fn an_image_larger_than_the_maximum_side_is_refused_from_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let wide = dir.path().join("wide.png");
        // 9000 × 40 grey: a small file, over the maximum side.
        image::GrayImage::new(MAX_IMAGE_SIDE + 808, 40).save(&wide).unwrap();
        let e = load_image(&wide).unwrap_err().to_string();
        assert!(e.contains("wide.png") && e.contains("maximum side"), "{e}");
    }

    #[test]
    fn every_entry_named_like_an_image_is_listed_and_fails_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        textured(64, 64).save(d.join("a.png")).unwrap();
        std::fs::create_dir(d.join("b.png")).unwrap();
        std::os::unix::fs::symlink(d.join("nowhere.png"), d.join("c.png")).unwrap();
        std::os::unix::fs::symlink(d.join("d.png"), d.join("d.png")).unwrap();
        let fifo = std::process::Command::new("mkfifo").arg(d.join("e.png")).status().is_ok_and(|s| s.success());
        let files = image_files(d).unwrap();
        let names: Vec<String> = files.iter().map(|p| file_name(p)).collect();
        let mut want = vec!["a.png", "b.png", "c.png", "d.png"];
        if fifo {
            want.push("e.png");
        }
        assert_eq!(names, want);
        assert!(load_image(&files[0]).is_ok());
        // Each fails at once (a FIFO is never opened, so nothing blocks), naming itself.
        for f in &files[1..] {
            let e = load_image(f).unwrap_err().to_string();
            assert!(e.contains(&file_name(f)), "{e}");
        }
    }

    #[test]
    fn png_jpeg_bmp_grey_and_16_bit_all_load_as_rgb() {
        let dir = std::env::temp_dir().join(format!("edge-ad-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rgb = RgbImage::from_fn(40, 36, |x, y| image::Rgb([x as u8 * 6, y as u8 * 7, 128]));
        rgb.save(dir.join("a.png")).unwrap();
        rgb.save(dir.join("b.JPG")).unwrap();
        rgb.save(dir.join("c.bmp")).unwrap();
        image::GrayImage::from_pixel(40, 36, image::Luma([90])).save(dir.join("d.png")).unwrap();
        image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(40, 36, image::Luma([65535u16]))
            .save(dir.join("e.png"))
            .unwrap();
        std::fs::write(dir.join("notes.txt"), "not an image, skipped").unwrap();
        let files = image_files(&dir).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["a.png", "b.JPG", "c.bmp", "d.png", "e.png"]);
        let loaded: Vec<RgbImage> = files.iter().map(|p| load_image(p).unwrap()).collect();
        assert!(loaded.iter().all(|i| i.dimensions() == (40, 36)));
        assert_eq!(loaded[0], rgb);
        assert_eq!(loaded[2], rgb, "BMP is lossless");
        let jpeg_err: i32 =
            loaded[1].pixels().zip(rgb.pixels()).map(|(a, b)| (a[0] as i32 - b[0] as i32).abs()).max().unwrap();
        assert!(jpeg_err < 40, "JPEG decodes close to the original ({jpeg_err})");
        assert_eq!(loaded[3].get_pixel(5, 5).0, [90, 90, 90]);
        assert_eq!(loaded[4].get_pixel(5, 5).0, [255, 255, 255]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
