//! Evaluation on an MVTec-layout category: calibrate on the first K `train/good` images (nothing
//! else reaches the bank or the threshold), score every test image through the same frame path the
//! box runs, and report image/pixel AUROC, AUPRO@0.3, escape and false-reject rates at the
//! calibrated threshold, and latency. Pixel metrics are at the working resolution (the crop).

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::dataset::Category;
use crate::metrics;
use edge_ad_calib::Threshold;
use edge_ad_core::calibrate::{self, CalibrationSettings};
use edge_ad_core::decision::{decide, Verdict};
use edge_ad_core::model::Model;
use edge_ad_core::pipeline::{Extractor, Inspector};
use edge_ad_core::projector::Projector;
use edge_ad_core::source::load_image;
use edge_ad_core::{Error, Result};

/// One category's figures (the JSON object `eval --json` prints). Rates and AUCs are fractions.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CategoryReport {
    /// Category name, or `mean`.
    pub category: String,
    /// Image-level ROC AUC; `null` when the test set lacks good or defective images.
    pub image_auroc: Option<f64>,
    /// Pixel-level ROC AUC over every test pixel.
    pub pixel_auroc: Option<f64>,
    /// MVTec AUPRO integrated to FPR 0.3, divided by 0.3.
    pub aupro: Option<f64>,
    /// The threshold calibrated from the K shots.
    pub threshold: f64,
    /// Defective images called OK, over defective images.
    pub escape_rate: Option<f64>,
    /// Good images called NG, over good images.
    pub false_reject_rate: Option<f64>,
    /// Median frame-path latency (ms).
    pub latency_ms_median: f64,
    /// 95th-percentile frame-path latency (ms).
    pub latency_ms_p95: f64,
    /// Test images scored per second (decode, mask and frame path, on every worker).
    pub frames_per_s: f64,
    /// Good test images.
    pub good_images: usize,
    /// Defective test images.
    pub defect_images: usize,
    /// Shots calibrated on.
    pub shots: usize,
    /// Scorer used.
    pub scorer: String,
    /// Seconds the calibration took (bank + threshold).
    pub calibration_s: f64,
    /// Per defect kind (the `test/<defect>` folders), in name order.
    pub defects: Vec<DefectReport>,
}

/// One defect kind's figures within a category (or their mean over categories).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DefectReport {
    /// The defect folder's name.
    pub kind: String,
    /// Image ROC AUC of this kind's parts against the category's good parts.
    pub image_auroc: Option<f64>,
    /// This kind's parts called OK, over this kind's parts.
    pub escape_rate: Option<f64>,
    /// Parts of this kind.
    pub images: usize,
}

/// How many of the worst escapes, and of the worst false rejects, a category's details keep.
pub const WORST_PARTS: usize = 8;

/// What the evaluation report shows of a category beside its figures: curves, the calibration,
/// every part's score, and the parts the threshold got most wrong with their maps.
#[derive(Clone, Debug)]
pub struct Details {
    /// Image-level ROC (FPR, TPR), every distinct score.
    pub image_roc: Vec<(f64, f64)>,
    /// Pixel-level ROC over every test pixel, thinned to steps of 0.002.
    pub pixel_roc: Vec<(f64, f64)>,
    /// Pixel (FPR, TPR) at the calibrated threshold: a map pixel above it counts as flagged.
    pub pixel_operating_point: Option<(f64, f64)>,
    /// PRO curve (FPR, PRO) up to FPR 0.3, thinned to steps of 0.001.
    pub pro: Vec<(f64, f64)>,
    /// The calibrated threshold, with the good leave-one-out scores it was made from.
    pub threshold: Threshold,
    /// Every test part with its score and verdict, in test order.
    pub parts: Vec<PartResult>,
    /// The worst escapes (lowest-scoring defects called OK, up to [`WORST_PARTS`]), then the
    /// worst false rejects (highest-scoring good parts called NG, as many).
    pub worst: Vec<WorstPart>,
    /// Working side of the maps.
    pub working_side: u32,
    /// Shorter side after resizing, before the crop (to lay a map back over its image).
    pub resize_side: u32,
}

/// One test part's result.
#[derive(Clone, Debug)]
pub struct PartResult {
    /// The test item (image, defect kind, mask).
    pub item: crate::dataset::TestItem,
    /// Its image score.
    pub score: f32,
    /// Its verdict at the calibrated threshold.
    pub verdict: Verdict,
}

/// A part the threshold got wrong, with its anomaly map.
#[derive(Clone, Debug)]
pub struct WorstPart {
    /// Index into [`Details::parts`].
    pub part: usize,
    /// Its anomaly map at the working side (row-major).
    pub map: Vec<f32>,
}

/// One scored test image, for callers that print per-image lines.
pub struct Scored<'a> {
    /// The test item.
    pub item: &'a crate::dataset::TestItem,
    /// Its score.
    pub score: f32,
    /// Its verdict at the calibrated threshold.
    pub verdict: Verdict,
    /// Frame-path latency in ms.
    pub latency_ms: f64,
}

/// What every category of one evaluation shares: the model, the projector, the calibration
/// settings, the sides and K.
pub struct Plan<'a> {
    /// The backbone.
    pub model: &'a Model,
    /// The projector, compiled for `working_side`.
    pub projector: Arc<Projector>,
    /// How each category's calibration is made.
    pub settings: CalibrationSettings,
    /// Working side (the crop the model sees).
    pub working_side: u32,
    /// Shorter side after resizing, before the crop.
    pub resize_side: u32,
    /// Shots K: the first K of train/good.
    pub shots: usize,
    /// Test images scored at once, one per worker thread ([`edge_ad_core::workers`]).
    pub workers: usize,
    /// Threads of each worker's nearest-neighbour search (the calibration uses
    /// `settings.threads`).
    pub search_threads: usize,
}

/// Evaluates one category as `plan` says.
pub fn evaluate_category(
    plan: &Plan<'_>,
    category: &Category,
    progress: &dyn Fn(&str),
    on_scored: &mut dyn FnMut(Scored<'_>),
) -> Result<(CategoryReport, Details)> {
    let Plan { model, ref projector, ref settings, working_side, resize_side, shots, workers, search_threads } = *plan;
    let projector = projector.clone();
    if shots > category.train_good.len() {
        return Err(Error::Setting(format!(
            "category {}: {} shots asked but train/good holds {} images",
            category.name,
            shots,
            category.train_good.len()
        )));
    }
    let started = Instant::now();
    let mut extractor = Extractor::new(model, resize_side, working_side)?;
    let shot_images = edge_ad_core::source::load_named(&category.train_good[..shots])?;
    let calib = calibrate::calibrate(
        &mut extractor,
        projector.clone(),
        calibrate::identity(model, &projector),
        &shot_images,
        settings,
        0,
        progress,
    )?;
    let inspector = calibrate::inspector(model, projector, &calib, settings.threads)?;
    let mut inspectors = inspector.into_workers(workers, search_threads)?;
    let calibration_s = started.elapsed().as_secs_f64();
    let threshold = calib.threshold.value;
    let side = working_side as usize;

    let n = category.test.len();
    let mut scores = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut verdicts = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    // Maps and masks of all test images, one after another (side² values each).
    let mut maps: Vec<f32> = Vec::with_capacity(n * side * side);
    let mut masks: Vec<bool> = Vec::with_capacity(n * side * side);
    let scoring_started = Instant::now();
    edge_ad_core::workers::in_order(
        &mut inspectors,
        category.test.iter(),
        |inspector, item| score_item(inspector, item, side),
        |scored| {
            let (item, s) = scored?;
            progress(&item.path.display().to_string());
            let verdict = decide(s.score, threshold);
            on_scored(Scored { item, score: s.score, verdict, latency_ms: s.latency_ms });
            scores.push(s.score);
            verdicts.push(verdict);
            labels.push(item.defect.is_some());
            latencies.push(s.latency_ms);
            maps.extend_from_slice(&s.map);
            masks.extend(s.mask);
            Ok(())
        },
    )?;
    let scoring_s = scoring_started.elapsed().as_secs_f64();

    let parts: Vec<PartResult> = category
        .test
        .iter()
        .zip(&scores)
        .zip(&verdicts)
        .map(|((item, &score), &verdict)| PartResult { item: item.clone(), score, verdict })
        .collect();
    let (escape_rate, false_reject_rate) = rates_at(&parts, threshold);
    let defects = defect_reports(category, &scores, &verdicts);
    let map_refs: Vec<&[f32]> = maps.chunks_exact(side * side).collect();
    let mask_refs: Vec<&[bool]> = masks.chunks_exact(side * side).collect();
    let pro = metrics::pro_curve(&map_refs, &mask_refs, side);
    let pixel_roc = metrics::roc(&maps, &masks, 0.002);
    let image_roc = metrics::roc(&scores, &labels, 0.0);
    let (median, p95) = metrics::median_p95(&latencies);
    let report = CategoryReport {
        category: category.name.clone(),
        image_auroc: image_roc.auc,
        pixel_auroc: pixel_roc.auc,
        aupro: pro.as_ref().map(|c| metrics::area_to(c, 0.3) / 0.3),
        threshold: threshold as f64,
        escape_rate,
        false_reject_rate,
        latency_ms_median: median,
        latency_ms_p95: p95,
        frames_per_s: if scoring_s > 0.0 { n as f64 / scoring_s } else { f64::NAN },
        good_images: labels.iter().filter(|l| !**l).count(),
        defect_images: labels.iter().filter(|l| **l).count(),
        shots,
        scorer: settings.scorer.name().to_string(),
        calibration_s,
        defects,
    };
    let worst = worst_parts(&parts, &map_refs);
    let pro_to_03: Vec<(f64, f64)> = pro.unwrap_or_default().into_iter().take_while(|p| p.0 <= 0.3).collect();
    let details = Details {
        image_roc: image_roc.points,
        pixel_roc: pixel_roc.points,
        pixel_operating_point: pixel_rates(&maps, &masks, threshold),
        pro: metrics::thin(&pro_to_03, 0.001),
        threshold: calib.threshold.clone(),
        parts,
        worst,
        working_side,
        resize_side,
    };
    Ok((report, details))
}

/// Escape rate (defective parts called OK) and false-reject rate (good parts called NG) of
/// `parts` at `threshold`; `None` for a class without parts. The report uses it for other
/// sensitivities' thresholds.
pub fn rates_at(parts: &[PartResult], threshold: f32) -> (Option<f64>, Option<f64>) {
    let rate = |defective: bool, wrong: Verdict| {
        let of: Vec<&PartResult> = parts.iter().filter(|p| p.item.defect.is_some() == defective).collect();
        let bad = of.iter().filter(|p| decide(p.score, threshold) == wrong).count();
        (!of.is_empty()).then(|| bad as f64 / of.len() as f64)
    };
    (rate(true, Verdict::Ok), rate(false, Verdict::Ng))
}

/// Pixel (FPR, TPR) when every map pixel above `threshold` counts as flagged; `None` without
/// defect or defect-free pixels.
fn pixel_rates(maps: &[f32], masks: &[bool], threshold: f32) -> Option<(f64, f64)> {
    let (mut fp, mut neg, mut tp, mut pos) = (0u64, 0u64, 0u64, 0u64);
    for (&v, &m) in maps.iter().zip(masks) {
        let flagged = decide(v, threshold) == Verdict::Ng;
        if m {
            pos += 1;
            tp += u64::from(flagged);
        } else {
            neg += 1;
            fp += u64::from(flagged);
        }
    }
    (pos > 0 && neg > 0).then(|| (fp as f64 / neg as f64, tp as f64 / pos as f64))
}

/// The worst escapes (defects called OK, lowest score first) and the worst false rejects (good
/// parts called NG, highest score first), up to [`WORST_PARTS`] each, with copies of their maps.
fn worst_parts(parts: &[PartResult], maps: &[&[f32]]) -> Vec<WorstPart> {
    let mut escapes: Vec<usize> =
        (0..parts.len()).filter(|&i| parts[i].item.defect.is_some() && parts[i].verdict == Verdict::Ok).collect();
    escapes.sort_by(|&a, &b| parts[a].score.total_cmp(&parts[b].score));
    let mut rejects: Vec<usize> =
        (0..parts.len()).filter(|&i| parts[i].item.defect.is_none() && parts[i].verdict == Verdict::Ng).collect();
    rejects.sort_by(|&a, &b| parts[b].score.total_cmp(&parts[a].score));
    escapes
        .into_iter()
        .take(WORST_PARTS)
        .chain(rejects.into_iter().take(WORST_PARTS))
        .map(|part| WorstPart { part, map: maps[part].to_vec() })
        .collect()
}

/// What a worker makes of one test image.
struct ItemScore {
    score: f32,
    latency_ms: f64,
    /// The anomaly map at the working side.
    map: Vec<f32>,
    /// The ground truth cropped like the map (all false for a good part).
    mask: Vec<bool>,
}

/// Loads one test image and its mask and scores it on `inspector`.
fn score_item<'a>(
    inspector: &mut Inspector,
    item: &'a crate::dataset::TestItem,
    side: usize,
) -> Result<(&'a crate::dataset::TestItem, ItemScore)> {
    let image = load_image(&item.path)?;
    let mask = match &item.mask {
        None => vec![false; side * side],
        Some(path) => {
            let m = crate::dataset::read_mask(path)?;
            if m.dimensions() != image.dimensions() {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "mask is {}×{} but its image {} is {}×{}",
                        m.width(),
                        m.height(),
                        item.path.display(),
                        image.width(),
                        image.height()
                    ),
                ));
            }
            inspector.extractor().preprocessor().mask(&m)?.into_iter().map(|v| v > 127).collect()
        }
    };
    let start = Instant::now();
    let inspection = inspector.inspect(&image)?;
    let latency_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok((item, ItemScore { score: inspection.score, latency_ms, map: inspector.map().to_vec(), mask }))
}

/// Per defect kind: its parts against the good ones (AUROC) and its escape rate.
fn defect_reports(category: &Category, scores: &[f32], verdicts: &[Verdict]) -> Vec<DefectReport> {
    let mut kinds: Vec<&str> = category.test.iter().filter_map(|t| t.defect.as_deref()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
        .into_iter()
        .map(|kind| {
            let (mut s, mut labels, mut escapes, mut images) = (Vec::new(), Vec::new(), 0, 0);
            for ((item, &score), &verdict) in category.test.iter().zip(scores).zip(verdicts) {
                match item.defect.as_deref() {
                    None => {
                        s.push(score);
                        labels.push(false);
                    }
                    Some(k) if k == kind => {
                        s.push(score);
                        labels.push(true);
                        images += 1;
                        escapes += usize::from(verdict == Verdict::Ok);
                    }
                    Some(_) => {}
                }
            }
            DefectReport {
                kind: kind.to_string(),
                image_auroc: metrics::auroc(&s, &labels),
                escape_rate: (images > 0).then(|| escapes as f64 / images as f64),
                images,
            }
        })
        .collect()
}

/// Per defect kind, the mean over the categories that have it (image counts summed).
fn mean_defects(reports: &[CategoryReport]) -> Vec<DefectReport> {
    let mut kinds: Vec<&str> = reports.iter().flat_map(|r| r.defects.iter().map(|d| d.kind.as_str())).collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
        .into_iter()
        .map(|kind| {
            let of_kind: Vec<&DefectReport> =
                reports.iter().flat_map(|r| r.defects.iter().filter(|d| d.kind == kind)).collect();
            DefectReport {
                kind: kind.to_string(),
                image_auroc: mean_of(&of_kind, |d| d.image_auroc),
                escape_rate: mean_of(&of_kind, |d| d.escape_rate),
                images: of_kind.iter().map(|d| d.images).sum(),
            }
        })
        .collect()
}

/// The mean of the figures `f` gives for `items`, leaving out those it has none for; `None` when
/// none has one.
fn mean_of<T>(items: &[T], f: impl Fn(&T) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = items.iter().filter_map(f).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The mean over categories of every figure (a figure missing in a category is left out of its
/// mean); the image counts are summed.
pub fn mean_report(reports: &[CategoryReport]) -> CategoryReport {
    let mean = |f: &dyn Fn(&CategoryReport) -> Option<f64>| mean_of(reports, f);
    CategoryReport {
        category: "mean".into(),
        image_auroc: mean(&|r| r.image_auroc),
        pixel_auroc: mean(&|r| r.pixel_auroc),
        aupro: mean(&|r| r.aupro),
        threshold: mean(&|r| Some(r.threshold)).unwrap_or(f64::NAN),
        escape_rate: mean(&|r| r.escape_rate),
        false_reject_rate: mean(&|r| r.false_reject_rate),
        latency_ms_median: mean(&|r| Some(r.latency_ms_median)).unwrap_or(f64::NAN),
        latency_ms_p95: mean(&|r| Some(r.latency_ms_p95)).unwrap_or(f64::NAN),
        frames_per_s: mean(&|r| Some(r.frames_per_s)).unwrap_or(f64::NAN),
        good_images: reports.iter().map(|r| r.good_images).sum(),
        defect_images: reports.iter().map(|r| r.defect_images).sum(),
        shots: reports.first().map_or(0, |r| r.shots),
        scorer: reports.first().map_or(String::new(), |r| r.scorer.clone()),
        calibration_s: mean(&|r| Some(r.calibration_s)).unwrap_or(f64::NAN),
        defects: mean_defects(reports),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::TestItem;

    fn part(defect: Option<&str>, score: f32, threshold: f32) -> PartResult {
        PartResult {
            item: TestItem { path: format!("{score}.png").into(), defect: defect.map(String::from), mask: None },
            score,
            verdict: decide(score, threshold),
        }
    }

    #[test]
    fn the_worst_parts_are_the_clearest_misses_first() {
        let t = 1.0;
        let mut parts = vec![part(None, 0.5, t), part(None, 1.5, t), part(None, 1.2, t), part(None, f32::NAN, t)];
        parts.extend([0.9, 0.3, 1.4, 0.6].map(|s| part(Some("scratch"), s, t)));
        // More escapes than are kept: only the lowest-scoring ones.
        parts.extend((0..WORST_PARTS).map(|k| part(Some("crack"), 0.95 + k as f32 * 0.001, t)));
        let maps: Vec<Vec<f32>> = (0..parts.len()).map(|i| vec![i as f32; 4]).collect();
        let map_refs: Vec<&[f32]> = maps.iter().map(|m| m.as_slice()).collect();
        let worst = worst_parts(&parts, &map_refs);
        let scores: Vec<f32> = worst.iter().map(|w| parts[w.part].score).collect();
        // Escapes lowest first (8 of 11), then false rejects highest first, a NaN score (NG) leading.
        assert_eq!(&scores[..4], &[0.3, 0.6, 0.9, 0.95]);
        assert_eq!(worst.iter().filter(|w| parts[w.part].item.defect.is_some()).count(), WORST_PARTS);
        assert!(scores[WORST_PARTS].is_nan());
        assert_eq!(&scores[WORST_PARTS + 1..], &[1.5, 1.2]);
        // Each keeps its own map.
        assert!(worst.iter().all(|w| w.map == maps[w.part]));
    }

    #[test]
    fn pixel_rates_count_pixels_above_the_threshold() {
        let maps = [0.2, 1.2, 0.8, 2.0, 0.1, f32::NAN];
        let masks = [false, false, true, true, false, true];
        // Good pixels 0.2, 1.2, 0.1: one of 3 above; defect pixels 0.8, 2.0, NaN: 2 of 3 (NaN is flagged).
        let (fpr, tpr) = pixel_rates(&maps, &masks, 1.0).unwrap();
        assert!((fpr - 1.0 / 3.0).abs() < 1e-12 && (tpr - 2.0 / 3.0).abs() < 1e-12, "{fpr} {tpr}");
        assert_eq!(pixel_rates(&maps, &[false; 6], 1.0), None);
    }
}
