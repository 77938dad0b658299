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

/// The image files of `dir` (PNG, JPEG, BMP) in sorted file-name order. Other files are skipped;
/// a missing folder or one without images is an error naming it.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_file() && is_image_path(&path) {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::bad_file(dir, "holds no PNG, JPEG or BMP image"));
    }
    files.sort();
    Ok(files)
}

/// Decodes an image file to RGB 8-bit. Grey, 16-bit and alpha images are converted. An image
/// smaller than [`MIN_IMAGE_SIDE`] on either side is an error.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let decoded = reader.decode().map_err(|e| Error::bad_file(path, format!("not a readable image: {e}")))?;
    let rgb = decoded.into_rgb8();
    if rgb.width() < MIN_IMAGE_SIDE || rgb.height() < MIN_IMAGE_SIDE {
        return Err(Error::bad_file(
            path,
            format!("image is {}×{}, smaller than the {MIN_IMAGE_SIDE}-pixel minimum", rgb.width(), rgb.height()),
        ));
    }
    Ok(rgb)
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
