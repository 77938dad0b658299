//! A generator of small textured-part datasets with painted defects, in the MVTec AD layout, so
//! the demo and the tests need no download. Each category is a procedural texture (woven, grainy,
//! perforated) with per-part variation; defects are scratches, stains and holes with exact masks.

use std::path::Path;

use image::{GrayImage, Luma, Rgb, RgbImage};
use rand::{rngs::StdRng, Rng, SeedableRng};

use edge_ad_core::{Error, Result};

/// The evaluation textures (the demo's categories), one per category.
pub const TEXTURES: [&str; 3] = ["weave", "grain", "mesh"];
/// Textures kept for pretraining corpora, disjoint from [`TEXTURES`] so a projector is never
/// trained on the parts it is evaluated on.
pub const TRAINING_TEXTURES: [&str; 3] = ["knit", "speckle", "brushed"];
/// The defect kinds painted on test parts.
pub const DEFECTS: [&str; 3] = ["scratch", "stain", "hole"];

/// Sizes of a generated dataset.
#[derive(Clone, Copy, Debug)]
pub struct SynthSpec {
    /// Image side in pixels.
    pub side: u32,
    /// `train/good` images per category.
    pub train_good: usize,
    /// `test/good` images per category.
    pub test_good: usize,
    /// Test images per defect kind per category.
    pub per_defect: usize,
    /// Random seed (same seed, same files).
    pub seed: u64,
}

impl Default for SynthSpec {
    fn default() -> Self {
        Self { side: 256, train_good: 8, test_good: 12, per_defect: 4, seed: 7 }
    }
}

/// Smooth value noise in [0, 1]: a random lattice every `cell` pixels, bilinearly interpolated.
struct ValueNoise {
    grid: Vec<f32>,
    n: usize,
    cell: f32,
}

impl ValueNoise {
    fn new(rng: &mut StdRng, side: u32, cell: f32) -> Self {
        let n = (side as f32 / cell).ceil() as usize + 2;
        Self { grid: (0..n * n).map(|_| rng.random::<f32>()).collect(), n, cell }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        let (gx, gy) = (x / self.cell, y / self.cell);
        let (x0, y0) = (gx.floor() as usize, gy.floor() as usize);
        let (tx, ty) = (gx - x0 as f32, gy - y0 as f32);
        let (tx, ty) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
        let g = |i: usize, j: usize| self.grid[(j.min(self.n - 1)) * self.n + i.min(self.n - 1)];
        let top = g(x0, y0) * (1.0 - tx) + g(x0 + 1, y0) * tx;
        let bottom = g(x0, y0 + 1) * (1.0 - tx) + g(x0 + 1, y0 + 1) * tx;
        top * (1.0 - ty) + bottom * ty
    }
}

/// One good part of `texture` (per-part phase, lighting and noise vary).
pub fn good_part(texture: &str, side: u32, rng: &mut StdRng) -> RgbImage {
    let fine = ValueNoise::new(rng, side, 3.0);
    let coarse = ValueNoise::new(rng, side, 48.0);
    let phase: f32 = rng.random::<f32>() * 12.0;
    let light: f32 = 0.95 + 0.1 * rng.random::<f32>();
    let tau = std::f32::consts::TAU;
    RgbImage::from_fn(side, side, |x, y| {
        let (fx, fy) = (x as f32 + phase, y as f32 + phase * 0.7);
        let n = fine.at(x as f32, y as f32);
        let shade = 0.85 + 0.3 * coarse.at(x as f32, y as f32);
        let (base, tint) = match texture {
            "weave" => {
                let warp = (tau * fx / 12.0).sin();
                let weft = (tau * fy / 12.0).sin();
                let over = if ((fx / 12.0).floor() + (fy / 12.0).floor()) as i64 % 2 == 0 { warp } else { weft };
                (0.5 + 0.25 * over + 0.12 * (n - 0.5), [0.85, 0.75, 0.6])
            }
            "grain" => {
                let rings = (tau * (fy / 9.0 + 2.5 * coarse.at(fx * 0.5, y as f32))).sin();
                (0.55 + 0.18 * rings + 0.15 * (n - 0.5), [0.75, 0.55, 0.35])
            }
            "knit" => {
                let stitch = (tau * (fx + fy) / 10.0).sin() * (tau * (fx - fy) / 10.0).sin();
                (0.5 + 0.25 * stitch + 0.1 * (n - 0.5), [0.55, 0.65, 0.85])
            }
            "speckle" => {
                let dots = if fine.at(fx * 1.7, fy * 1.7) > 0.72 { 0.3 } else { 0.0 };
                (0.45 + dots + 0.12 * (n - 0.5), [0.8, 0.8, 0.78])
            }
            "brushed" => {
                let streak = coarse.at(x as f32 * 0.05, fy * 6.0) - 0.5;
                (0.6 + 0.35 * streak + 0.06 * (n - 0.5), [0.78, 0.78, 0.8])
            }
            _ => {
                let (cx, cy) = ((fx % 16.0) - 8.0, (fy % 16.0) - 8.0);
                let hole = if cx * cx + cy * cy < 16.0 { -0.35 } else { 0.0 };
                (0.65 + hole + 0.1 * (n - 0.5), [0.7, 0.72, 0.75])
            }
        };
        let v = (base * shade * light).clamp(0.0, 1.0);
        Rgb(tint.map(|t| (255.0 * (v * t + 0.1 * v)).clamp(0.0, 255.0) as u8))
    })
}

/// Paints a defect of `kind` on `image` and returns its mask (255 = defect). Its strength (how far
/// it departs from the texture) is drawn between faint and strong.
pub fn paint_defect(image: &mut RgbImage, kind: &str, rng: &mut StdRng) -> GrayImage {
    let side = image.width() as f32;
    let strength: f32 = 0.35 + 0.65 * rng.random::<f32>();
    let blend =
        |p: [u8; 3], target: [f32; 3], a: f32| [0, 1, 2].map(|c| (p[c] as f32 * (1.0 - a) + target[c] * a) as u8);
    let mut mask = GrayImage::new(image.width(), image.height());
    let cx = side * (0.25 + 0.5 * rng.random::<f32>());
    let cy = side * (0.25 + 0.5 * rng.random::<f32>());
    let mut paint = |x: i32, y: i32, target: [f32; 3], a: f32| {
        if x >= 0 && y >= 0 && (x as u32) < image.width() && (y as u32) < image.height() {
            let p = image.get_pixel_mut(x as u32, y as u32);
            p.0 = blend(p.0, target, a);
            mask.put_pixel(x as u32, y as u32, Luma([255]));
        }
    };
    match kind {
        "scratch" => {
            let angle: f32 = rng.random::<f32>() * std::f32::consts::PI;
            let len = side * (0.2 + 0.15 * rng.random::<f32>());
            let target = if rng.random::<bool>() { [235.0, 235.0, 230.0] } else { [20.0, 18.0, 15.0] };
            let half_width: i32 = rng.random_range(0..=1);
            let (dx, dy) = (angle.cos(), angle.sin());
            let steps = (len * 2.0) as i32;
            for s in -steps / 2..steps / 2 {
                let t = s as f32 * 0.5;
                for w in -half_width..=half_width {
                    let x = cx + t * dx - w as f32 * dy;
                    let y = cy + t * dy + w as f32 * dx;
                    paint(x.floor() as i32, y.floor() as i32, target, strength);
                }
            }
        }
        "stain" => {
            let (rx, ry) = (side * (0.04 + 0.04 * rng.random::<f32>()), side * (0.03 + 0.04 * rng.random::<f32>()));
            let colour =
                [rng.random_range(20..90u8), rng.random_range(60..140u8), rng.random_range(20..90u8)].map(f32::from);
            for y in (cy - ry) as i32..=(cy + ry) as i32 {
                for x in (cx - rx) as i32..=(cx + rx) as i32 {
                    let d = ((x as f32 - cx) / rx).powi(2) + ((y as f32 - cy) / ry).powi(2);
                    if d <= 1.0 {
                        paint(x, y, colour, strength * (0.55 + 0.3 * (1.0 - d)));
                    }
                }
            }
        }
        _ => {
            let r = side * (0.015 + 0.02 * rng.random::<f32>());
            for y in (cy - r) as i32..=(cy + r) as i32 {
                for x in (cx - r) as i32..=(cx + r) as i32 {
                    if ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt() <= r {
                        paint(x, y, [12.0, 10.0, 8.0], 0.3 + 0.7 * strength);
                    }
                }
            }
        }
    }
    mask
}

fn save_rgb(img: &RgbImage, path: &Path) -> Result<()> {
    img.save(path).map_err(|e| Error::bad_file(path, format!("cannot write image: {e}")))
}

/// Writes a dataset of the given textures under `root` in the MVTec AD layout.
pub fn generate(root: &Path, textures: &[&str], spec: &SynthSpec) -> Result<()> {
    for (t, texture) in textures.iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(spec.seed.wrapping_mul(1000).wrapping_add(t as u64));
        let dir = root.join(texture);
        let mkdir = |p: &Path| std::fs::create_dir_all(p).map_err(|e| Error::io(p, e));
        let (train, test_good) = (dir.join("train/good"), dir.join("test/good"));
        mkdir(&train)?;
        mkdir(&test_good)?;
        for i in 0..spec.train_good {
            save_rgb(&good_part(texture, spec.side, &mut rng), &train.join(format!("{i:03}.png")))?;
        }
        for i in 0..spec.test_good {
            save_rgb(&good_part(texture, spec.side, &mut rng), &test_good.join(format!("{i:03}.png")))?;
        }
        for defect in DEFECTS {
            let (imgs, masks) = (dir.join("test").join(defect), dir.join("ground_truth").join(defect));
            mkdir(&imgs)?;
            mkdir(&masks)?;
            for i in 0..spec.per_defect {
                let mut img = good_part(texture, spec.side, &mut rng);
                let mask = paint_defect(&mut img, defect, &mut rng);
                save_rgb(&img, &imgs.join(format!("{i:03}.png")))?;
                let path = masks.join(format!("{i:03}_mask.png"));
                mask.save(&path).map_err(|e| Error::bad_file(&path, format!("cannot write mask: {e}")))?;
            }
        }
    }
    Ok(())
}
