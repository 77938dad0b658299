//! Preprocessing: resize the shorter side, centre-crop to the working side, and lay out CHW f32
//! as the manifest asks. Frames are resampled by the crate's `resample` module (its filters
//! kept between frames); masks, off the frame path, with fast_image_resize (nearest neighbour).

use edge_ad_calib::{ColourOrder, ModelManifest, Normalisation};
use fast_image_resize::{images::Image, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbImage};

use crate::error::{Error, Result};
use crate::resample::{Crop, Resampler};

/// Largest working side accepted (buffers are sized from it before anything runs).
pub const MAX_WORKING_SIDE: u32 = 4096;

/// Where the working square lies in the source image, in source pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropGeometry {
    /// Source image width.
    pub src_width: u32,
    /// Source image height.
    pub src_height: u32,
    /// Left edge of the crop in source pixels.
    pub left: f64,
    /// Top edge of the crop in source pixels.
    pub top: f64,
    /// Side of the crop in source pixels (the crop is square).
    pub side: f64,
}

impl CropGeometry {
    /// The square of a `width`×`height` image that becomes the working square when its shorter
    /// side is resized to `resize_side` and the centre `working_side` pixels are kept.
    pub fn new(width: u32, height: u32, resize_side: u32, working_side: u32) -> Self {
        let scale = resize_side as f64 / width.min(height) as f64;
        let side = working_side as f64 / scale;
        Self {
            src_width: width,
            src_height: height,
            left: (width as f64 - side) / 2.0,
            top: (height as f64 - side) / 2.0,
            side,
        }
    }
}

/// Turns RGB frames into the backbone's input tensor.
pub struct Preprocessor {
    resize_side: u32,
    working_side: u32,
    colour: ColourOrder,
    normalisation: Normalisation,
    /// The masks' resizer.
    resizer: Resizer,
    resampler: Resampler,
    /// The resampled frame, working side² RGB.
    resized: Vec<u8>,
    /// Per channel (R, G, B), the normalised value of each 8-bit level.
    levels: [[f32; 256]; 3],
    chw: Vec<f32>,
}

impl Preprocessor {
    /// A preprocessor for `manifest` that resizes the shorter side to `resize_side` and crops
    /// `working_side` (a multiple of every level's stride).
    pub fn new(manifest: &ModelManifest, resize_side: u32, working_side: u32) -> Result<Self> {
        if working_side > MAX_WORKING_SIDE {
            return Err(Error::Setting(format!(
                "working side {working_side} is larger than the {MAX_WORKING_SIDE}-pixel maximum"
            )));
        }
        if working_side == 0 || resize_side < working_side {
            return Err(Error::Setting(format!(
                "resize side {resize_side} must be at least the working side {working_side} (> 0)"
            )));
        }
        // The resized frame is allocated before the crop: its side is bounded like an image's.
        if resize_side > crate::source::MAX_IMAGE_SIDE {
            return Err(Error::Setting(format!(
                "resize side {resize_side} is larger than the {}-pixel maximum",
                crate::source::MAX_IMAGE_SIDE
            )));
        }
        if let Some(l) = manifest.levels.iter().find(|l| !working_side.is_multiple_of(l.stride)) {
            return Err(Error::Setting(format!(
                "working side {working_side} is not a multiple of level {}'s stride {}",
                l.output, l.stride
            )));
        }
        Ok(Self::with_buffers(resize_side, working_side, manifest.colour_order, manifest.normalisation))
    }

    /// A preprocessor like this one with buffers of its own (for another worker).
    pub fn fresh(&self) -> Self {
        Self::with_buffers(self.resize_side, self.working_side, self.colour, self.normalisation)
    }

    /// A preprocessor for checked sides, its buffers sized for them.
    fn with_buffers(resize_side: u32, working_side: u32, colour: ColourOrder, normalisation: Normalisation) -> Self {
        let n = working_side as usize * working_side as usize;
        Self {
            resize_side,
            working_side,
            colour,
            normalisation,
            resizer: Resizer::new(),
            resampler: Resampler::new(working_side as usize),
            resized: vec![0; 3 * n],
            levels: normalised_levels(normalisation),
            chw: vec![0.0; 3 * n],
        }
    }

    /// Working side in pixels.
    pub fn working_side(&self) -> u32 {
        self.working_side
    }

    /// Shorter side after resizing, before the crop.
    pub fn resize_side(&self) -> u32 {
        self.resize_side
    }

    /// The crop of an image of this size.
    pub fn geometry(&self, width: u32, height: u32) -> CropGeometry {
        CropGeometry::new(width, height, self.resize_side, self.working_side)
    }

    /// Resizes and crops `image` (bicubic, antialiased like PIL) and returns the CHW tensor data.
    pub fn run(&mut self, image: &RgbImage) -> Result<(&[f32], CropGeometry)> {
        let geometry = self.geometry(image.width(), image.height());
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::Stage { stage: "preprocess", reason: "the frame is empty".into() });
        }
        let crop = Crop { left: geometry.left, top: geometry.top, side: geometry.side };
        self.resampler.run(image, crop, &mut self.resized);
        let n = self.working_side as usize * self.working_side as usize;
        let (r, rest) = self.chw.split_at_mut(n);
        let (g, b) = rest.split_at_mut(n);
        let (first, third) = match self.colour {
            ColourOrder::Rgb => (r, b),
            ColourOrder::Bgr => (b, r),
        };
        for (i, px) in self.resized.chunks_exact(3).enumerate() {
            first[i] = self.levels[0][px[0] as usize];
            g[i] = self.levels[1][px[1] as usize];
            third[i] = self.levels[2][px[2] as usize];
        }
        Ok((&self.chw, geometry))
    }

    /// Applies the same crop to a mask (nearest neighbour) so masks line up with anomaly maps.
    pub fn mask(&mut self, mask: &GrayImage) -> Result<Vec<u8>> {
        let geometry = self.geometry(mask.width(), mask.height());
        let mut out = Image::new(self.working_side, self.working_side, PixelType::U8);
        let options = crop_options(&geometry).resize_alg(ResizeAlg::Nearest);
        self.resizer
            .resize(mask, &mut out, &options)
            .map_err(|e| Error::Stage { stage: "preprocess", reason: format!("mask resize failed: {e}") })?;
        Ok(out.into_vec())
    }
}

/// Per channel (R, G, B), what each 8-bit level becomes: `(level / 255 − mean) / std`.
fn normalised_levels(normalisation: Normalisation) -> [[f32; 256]; 3] {
    let (mean, std) = match normalisation {
        Normalisation::UnitRangeInGraph => ([0.0; 3], [1.0; 3]),
        Normalisation::MeanStd { mean, std } => (mean, std),
    };
    std::array::from_fn(|c| std::array::from_fn(|level| (level as f32 / 255.0 - mean[c]) / std[c]))
}

fn crop_options(g: &CropGeometry) -> ResizeOptions {
    ResizeOptions::new().crop(g.left, g.top, g.side, g.side)
}
