//! Pretraining samples: residual features of parts with and without synthetic anomalies, built
//! with the box's own code (same preprocessing, same tract graph, same nearest-neighbour
//! residual). As ADPretrain does: per image, K normal references of the same class with K drawn
//! from {1, 4, 8} (`--bank-sizes`), two pixel-aligned photometric views sharing that bank, and
//! patch labels from the mask at each level's resolution.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use edge_ad_core::backbone::FeatureMap;
use edge_ad_core::source::load_image;

use crate::anomalies;
use crate::datasets::{Class, Item};
use edge_ad_core::pipeline::Extractor;
use edge_ad_core::residual::ReferenceBank;
use edge_ad_eval::synth;
use image::RgbImage;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// One level of one sample.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LevelSample {
    /// Residuals of view 1, H·W rows of C.
    pub view1: Vec<f32>,
    /// Residuals of view 2 (same bank, other photometric jitter).
    pub view2: Vec<f32>,
    /// Angle-loss labels: the cell holds more than 1/6 anomalous pixels (the official "> 32 of 196").
    pub angle_labels: Vec<bool>,
    /// Norm-loss labels: the cell's top-left pixel is anomalous (PyTorch `nearest`).
    pub norm_labels: Vec<bool>,
    /// The cell or one of its eight neighbours holds an anomalous pixel: a CNN's features there
    /// see the defect through their receptive field (see [`crate::train::LabelRule`]).
    pub near_defect: Vec<bool>,
}

/// One image's residual features, per level.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Sample {
    /// Per backbone level.
    pub levels: Vec<LevelSample>,
}

/// How a synthetic corpus is made.
#[derive(Clone, Copy, Debug)]
pub struct CorpusSpec<'a> {
    /// Good reference parts per texture.
    pub references: usize,
    /// Training images per texture (half get a synthetic defect).
    pub images: usize,
    /// Image side.
    pub side: u32,
    /// The bank sizes K a sample's references are drawn with (one picked at random per sample).
    pub bank_sizes: &'a [usize],
    /// Seed.
    pub seed: u64,
}

fn jitter(image: &RgbImage, rng: &mut StdRng) -> RgbImage {
    let gain = 0.85 + 0.3 * rng.random::<f32>();
    let contrast = 0.85 + 0.3 * rng.random::<f32>();
    let mut out = image.clone();
    out.pixels_mut().for_each(|p| {
        p.0.iter_mut().for_each(|v| {
            let x = ((*v as f32 / 255.0 - 0.5) * contrast + 0.5) * gain;
            *v = (x * 255.0).round().clamp(0.0, 255.0) as u8;
        })
    });
    out
}

/// Per-cell labels of a working-side mask for a level of `h`×`w` cells: the angle labels, the
/// norm labels and the near-defect flags of [`LevelSample`].
fn cell_labels(mask: &[bool], side: usize, h: usize, w: usize) -> (Vec<bool>, Vec<bool>, Vec<bool>) {
    let (ch, cw) = (side / h, side / w);
    let mut angle = vec![false; h * w];
    let mut norm = vec![false; h * w];
    let mut touched = vec![false; h * w];
    for cy in 0..h {
        for cx in 0..w {
            let mut count = 0;
            for y in cy * ch..(cy + 1) * ch {
                count += mask[y * side + cx * cw..y * side + (cx + 1) * cw].iter().filter(|m| **m).count();
            }
            angle[cy * w + cx] = count * 6 > ch * cw;
            norm[cy * w + cx] = mask[cy * ch * side + cx * cw];
            touched[cy * w + cx] = count > 0;
        }
    }
    let near = (0..h * w)
        .map(|i| {
            let (cy, cx) = (i / w, i % w);
            (cy.saturating_sub(1)..(cy + 2).min(h))
                .any(|y| (cx.saturating_sub(1)..(cx + 2).min(w)).any(|x| touched[y * w + x]))
        })
        .collect();
    (angle, norm, near)
}

/// The sample of one image with its working-side mask, against the references' features: two
/// photometric views sharing the bank, residuals per level, and the two labellings.
fn sample(
    extractor: &mut Extractor,
    image: &RgbImage,
    mask: &[bool],
    refs: &[&[FeatureMap]],
    threads: usize,
    rng: &mut StdRng,
) -> edge_ad_core::Result<Vec<LevelSample>> {
    let side = extractor.working_side() as usize;
    let (v1, v2) = (jitter(image, rng), jitter(image, rng));
    let (f1, f2) = (extractor.features(&v1)?, extractor.features(&v2)?);
    Ok((0..f1.len())
        .map(|l| {
            let bank = ReferenceBank::from_maps(refs.iter().map(|r| &r[l]));
            let (angle_labels, norm_labels, near_defect) = cell_labels(mask, side, f1[l].height, f1[l].width);
            LevelSample {
                view1: bank.residuals(&f1[l], threads).data,
                view2: bank.residuals(&f2[l], threads).data,
                angle_labels,
                norm_labels,
                near_defect,
            }
        })
        .collect())
}

/// The random stream of the `i`th texture or class under `seed`.
fn class_rng(seed: u64, i: usize) -> StdRng {
    StdRng::seed_from_u64(seed.wrapping_mul(7919).wrapping_add(i as u64))
}

/// Residual samples for `textures`, generated in memory. `progress` is called once per image.
pub fn synthetic_samples(
    extractor: &mut Extractor,
    textures: &[&str],
    spec: &CorpusSpec,
    threads: usize,
    progress: &dyn Fn(),
) -> edge_ad_core::Result<Vec<Sample>> {
    let side = extractor.working_side() as usize;
    let mut samples = Vec::new();
    for (t, texture) in textures.iter().enumerate() {
        let mut rng = class_rng(spec.seed, t);
        let refs: Vec<Vec<FeatureMap>> = (0..spec.references)
            .map(|_| {
                progress();
                extractor.features(&synth::good_part(texture, spec.side, &mut rng))
            })
            .collect::<edge_ad_core::Result<_>>()?;
        for i in 0..spec.images {
            progress();
            let mut image = synth::good_part(texture, spec.side, &mut rng);
            let mask = if i % 2 == 0 {
                let kind = synth::DEFECTS[rng.random_range(0..synth::DEFECTS.len())];
                let m = synth::paint_defect(&mut image, kind, &mut rng);
                extractor.preprocessor().mask(&m)?.into_iter().map(|v| v > 127).collect()
            } else {
                vec![false; side * side]
            };
            let k = spec.bank_sizes[rng.random_range(0..spec.bank_sizes.len())].min(spec.references);
            let chosen: Vec<usize> = (0..k).map(|_| rng.random_range(0..spec.references)).collect();
            let bank: Vec<&[FeatureMap]> = chosen.iter().map(|&j| refs[j].as_slice()).collect();
            let levels = sample(extractor, &image, &mask, &bank, threads, &mut rng)?;
            samples.push(Sample { levels });
        }
    }
    Ok(samples)
}

/// How samples are drawn from a dataset.
#[derive(Clone, Copy, Debug)]
pub struct DataSpec<'a> {
    /// At most this many images per class (evenly spaced through the class's list).
    pub per_class: usize,
    /// Train on the normal images only, half of them with a synthetic anomaly.
    pub synthetic: bool,
    /// The bank sizes K a sample's references are drawn with (one picked at random per sample).
    pub bank_sizes: &'a [usize],
    /// Seed.
    pub seed: u64,
}

/// A dataset image's mask at the working side (nonzero = anomalous, as Real-IAD is binarised); a
/// mask of another size than its image is an error naming it.
fn file_mask(extractor: &mut Extractor, mask: &Path, image: &RgbImage) -> anyhow::Result<Vec<bool>> {
    let m = image::open(mask).with_context(|| format!("{}: not a readable mask", mask.display()))?.to_luma8();
    if m.dimensions() != image.dimensions() {
        bail!("{}: mask is {:?} but its image is {:?}", mask.display(), m.dimensions(), image.dimensions());
    }
    Ok(extractor.preprocessor().mask(&m)?.into_iter().map(|v| v > 0).collect())
}

/// Residual samples of a dataset's classes (see [`crate::datasets`]). References are drawn with
/// replacement from the class's normal pool (of the same camera view when the image has one), K
/// from {1, 4, 8}; their features are computed once. `progress` is called once per image.
pub fn dataset_samples(
    extractor: &mut Extractor,
    classes: &[Class],
    spec: &DataSpec,
    threads: usize,
    progress: &dyn Fn(),
) -> anyhow::Result<Vec<Sample>> {
    let side = extractor.working_side() as usize;
    let mut samples = Vec::new();
    for (c, class) in classes.iter().enumerate() {
        let mut rng = class_rng(spec.seed, c);
        let all: Vec<Item> = if spec.synthetic {
            class.normal.iter().map(|(p, v)| Item { image: p.clone(), mask: None, view: *v }).collect()
        } else {
            class.items.clone()
        };
        let step = all.len().div_ceil(spec.per_class.max(1)).max(1);
        let mut pool_features: HashMap<usize, Vec<FeatureMap>> = HashMap::new();
        for (i, item) in all.iter().step_by(step).enumerate() {
            progress();
            let mut image = load_image(&item.image)?;
            let mask = if spec.synthetic && i % 2 == 0 {
                let kind = anomalies::KINDS[(i / 2) % anomalies::KINDS.len()];
                let texture = synth::TRAINING_TEXTURES[rng.random_range(0..synth::TRAINING_TEXTURES.len())];
                let foreign = synth::good_part(texture, 256, &mut rng);
                let m = anomalies::paint(&mut image, kind, &foreign, &mut rng);
                extractor.preprocessor().mask(&m)?.into_iter().map(|v| v > 127).collect()
            } else if let Some(m) = &item.mask {
                file_mask(extractor, m, &image)?
            } else {
                vec![false; side * side]
            };
            let same_view: Vec<usize> =
                (0..class.normal.len()).filter(|&j| item.view.is_none() || class.normal[j].1 == item.view).collect();
            let pool = if same_view.is_empty() { (0..class.normal.len()).collect() } else { same_view };
            let k = spec.bank_sizes[rng.random_range(0..spec.bank_sizes.len())];
            let chosen: Vec<usize> = (0..k).map(|_| pool[rng.random_range(0..pool.len())]).collect();
            for &j in &chosen {
                if let std::collections::hash_map::Entry::Vacant(e) = pool_features.entry(j) {
                    e.insert(extractor.features(&load_image(&class.normal[j].0)?)?);
                }
            }
            let bank: Vec<&[FeatureMap]> = chosen.iter().map(|j| pool_features[j].as_slice()).collect();
            samples.push(Sample { levels: sample(extractor, &image, &mask, &bank, threads, &mut rng)? });
        }
    }
    Ok(samples)
}

/// Reads samples cached at `path`, when the file is there and was written for `key`.
pub fn read_cache(path: &Path, key: &[u8; 32]) -> Option<Vec<Sample>> {
    let bytes = std::fs::read(path).ok()?;
    let (stored, rest) = bytes.split_at_checked(32)?;
    if stored != key {
        return None;
    }
    postcard::from_bytes(rest).ok()
}

/// Caches `samples` at `path` under `key` (atomic write).
pub fn write_cache(path: &Path, key: &[u8; 32], samples: &[Sample]) -> anyhow::Result<()> {
    let mut bytes = key.to_vec();
    bytes.extend(postcard::to_allocvec(samples).context("cannot encode the feature cache")?);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    edge_ad_core::files::write_atomic(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_labels_follow_the_two_official_rules() {
        // 8×8 mask, 2×2 cells of 4×4: cell (0,0) has 3 of 16 anomalous pixels (> 1/6 → angle),
        // but its top-left pixel is normal; cell (1,1) has only its top-left pixel anomalous.
        let side = 8;
        let mut mask = vec![false; 64];
        mask[8 + 1] = true;
        mask[8 + 2] = true;
        mask[16 + 1] = true;
        mask[4 * 8 + 4] = true;
        let (angle, norm, near) = cell_labels(&mask, side, 2, 2);
        assert_eq!(angle, vec![true, false, false, false]);
        assert_eq!(norm, vec![false, false, false, true]);
        assert_eq!(near, vec![true; 4]);
        // On 4×4 cells of 2×2 pixels, one anomalous pixel in cell (0,0) reaches its neighbours only.
        let mut mask = vec![false; 64];
        mask[0] = true;
        let (_, _, near) = cell_labels(&mask, side, 4, 4);
        let expected: Vec<bool> = (0..16).map(|i| i / 4 < 2 && i % 4 < 2).collect();
        assert_eq!(near, expected);
    }
}
