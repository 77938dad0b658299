//! Evaluation metrics: ROC AUC (ties counted half, as scikit-learn's roc_auc_score) and MVTec's
//! AUPRO (per-region overlap integrated over FPR up to 0.3, divided by 0.3). NaN scores count as
//! +∞ (the decision calls them NG).

fn key(s: f32) -> f32 {
    if s.is_nan() {
        f32::INFINITY
    } else {
        s
    }
}

/// A ROC curve and its area, from one sort of the scores.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Roc {
    /// Area under the curve (ties counted half); `None` when one class is absent.
    pub auc: Option<f64>,
    /// Points (FPR, TPR) from the strictest threshold down, starting at (0, 0) and ending at
    /// (1, 1); thinned as [`roc`] says. Empty when one class is absent.
    pub points: Vec<(f64, f64)>,
}

/// The ROC of `scores` (higher = more anomalous) against `labels` (true = anomalous). The area
/// is exact; the curve keeps one point per distinct score that lies at least `step` (in FPR or
/// TPR) from the last point kept, and always the last one, so a pixel ROC over millions of
/// scores can be drawn from a few hundred points (`step` 0 keeps every distinct score).
pub fn roc(scores: &[f32], labels: &[bool], step: f64) -> Roc {
    let pos = labels.iter().filter(|l| **l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return Roc::default();
    }
    // Sorting (score, label) pairs keeps the comparisons in cache, unlike sorting indices.
    let mut px: Vec<(f32, bool)> = scores.iter().map(|s| key(*s)).zip(labels.iter().copied()).collect();
    px.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let (pos, neg) = (pos as f64, neg as f64);
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp, mut area) = (0u64, 0u64, 0.0f64);
    let mut i = 0;
    while i < px.len() {
        let s = px[i].0;
        let (mut p, mut n) = (0u64, 0u64);
        while i < px.len() && px[i].0 == s {
            if px[i].1 {
                p += 1
            } else {
                n += 1
            }
            i += 1;
        }
        // The trapezoid under this step: a tie between p positives and n negatives counts half.
        area += n as f64 * (tp as f64 + 0.5 * p as f64);
        tp += p;
        fp += n;
        let point = (fp as f64 / neg, tp as f64 / pos);
        let last = points[points.len() - 1];
        if i == px.len() || (point.0 - last.0).max(point.1 - last.1) >= step {
            points.push(point);
        }
    }
    Roc { auc: Some(area / (pos * neg)), points }
}

/// Area under the ROC curve of `scores` (higher = more anomalous) against `labels`
/// (true = anomalous). `None` when one class is absent.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    roc(scores, labels, f64::INFINITY).auc
}

/// ROC points (FPR, TPR) from the strictest threshold down, one per distinct score, starting at
/// (0, 0) and ending at (1, 1). Empty when one class is absent.
pub fn roc_curve(scores: &[f32], labels: &[bool]) -> Vec<(f64, f64)> {
    roc(scores, labels, 0.0).points
}

/// `points` with every point dropped that lies less than `step` (in x or y) from the last point
/// kept; the first and last points stay. For drawing long curves.
pub fn thin(points: &[(f64, f64)], step: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (k, &p) in points.iter().enumerate() {
        let keep = match out.last() {
            None => true,
            Some(&(x, y)) => k + 1 == points.len() || (p.0 - x).abs().max((p.1 - y).abs()) >= step,
        };
        if keep {
            out.push(p);
        }
    }
    out
}

/// Labels the 8-connected regions of a binary mask (row-major, `width` wide); 0 = background,
/// regions numbered from 1. Returns the labels and the region count.
pub fn label_regions(mask: &[bool], width: usize) -> (Vec<u32>, u32) {
    let height = mask.len().checked_div(width).unwrap_or(0);
    let mut labels = vec![0u32; mask.len()];
    let mut count = 0;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        count += 1;
        labels[start] = count;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (y, x) = ((p / width) as i64, (p % width) as i64);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (ny, nx) = (y + dy, x + dx);
                    if ny < 0 || nx < 0 || ny >= height as i64 || nx >= width as i64 {
                        continue;
                    }
                    let q = ny as usize * width + nx as usize;
                    if mask[q] && labels[q] == 0 {
                        labels[q] = count;
                        stack.push(q);
                    }
                }
            }
        }
    }
    (labels, count)
}

/// The PRO curve of a set of maps and masks: points (FPR, PRO) from the strictest threshold down,
/// starting at (0, 0). PRO is the mean over every connected defect region of all images of the
/// fraction of the region above the threshold. `None` when there is no defect region or no
/// defect-free pixel.
pub fn pro_curve(maps: &[&[f32]], masks: &[&[bool]], width: usize) -> Option<Vec<(f64, f64)>> {
    let mut regions_total = 0u64;
    let mut region_of: Vec<Vec<u32>> = Vec::with_capacity(masks.len());
    let mut region_area: Vec<Vec<u64>> = Vec::with_capacity(masks.len());
    let mut neg_total = 0u64;
    for m in masks {
        let (labels, count) = label_regions(m, width);
        let mut area = vec![0u64; count as usize + 1];
        labels.iter().for_each(|l| area[*l as usize] += 1);
        neg_total += area[0];
        regions_total += count as u64;
        region_of.push(labels);
        region_area.push(area);
    }
    if regions_total == 0 || neg_total == 0 {
        return None;
    }
    // (score, fp increment, pro increment) per pixel; sorted by score, descending.
    let mut px: Vec<(f32, f64, f64)> = Vec::with_capacity(maps.iter().map(|m| m.len()).sum());
    for ((map, labels), area) in maps.iter().zip(&region_of).zip(&region_area) {
        for (s, l) in map.iter().zip(labels) {
            if *l == 0 {
                px.push((key(*s), 1.0 / neg_total as f64, 0.0));
            } else {
                px.push((key(*s), 0.0, 1.0 / (area[*l as usize] as f64 * regions_total as f64)));
            }
        }
    }
    px.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = vec![(0.0, 0.0)];
    let (mut fpr, mut pro) = (0.0f64, 0.0f64);
    for (k, p) in px.iter().enumerate() {
        fpr += p.1;
        pro += p.2;
        if k + 1 == px.len() || px[k + 1].0 != p.0 {
            out.push((fpr.min(1.0), pro.min(1.0)));
        }
    }
    Some(out)
}

/// Area under a curve of (x, y) points with increasing x, from 0 to `x_max` (trapezoids, the last
/// segment interpolated at `x_max`).
pub fn area_to(points: &[(f64, f64)], x_max: f64) -> f64 {
    let mut area = 0.0;
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x0 >= x_max {
            break;
        }
        if x1 <= x_max {
            area += (x1 - x0) * (y0 + y1) / 2.0;
        } else {
            let y = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0);
            area += (x_max - x0) * (y0 + y) / 2.0;
        }
    }
    area
}

/// MVTec's AUPRO: area under the PRO curve up to FPR 0.3, divided by 0.3 (so in [0, 1]).
pub fn aupro(maps: &[&[f32]], masks: &[&[bool]], width: usize) -> Option<f64> {
    pro_curve(maps, masks, width).map(|c| area_to(&c, 0.3) / 0.3)
}

/// Median and 95th percentile (nearest rank) of `values`; (NaN, NaN) when empty.
pub fn median_p95(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
    (median, rank(0.95))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_perfect_inverted_and_chance() {
        let l = [false, false, true, true];
        assert_eq!(auroc(&[0.1, 0.2, 0.3, 0.4], &l), Some(1.0));
        assert_eq!(auroc(&[0.4, 0.3, 0.2, 0.1], &l), Some(0.0));
        assert_eq!(auroc(&[0.5, 0.5, 0.5, 0.5], &l), Some(0.5));
    }

    #[test]
    fn auroc_counts_ties_half_like_sklearn() {
        // sklearn.metrics.roc_auc_score([0,0,1,1,1], [0.1,0.4,0.35,0.4,0.8]) = 0.75 (by hand:
        // pairs (neg, pos): 0.1<0.35 ✓, 0.1<0.4 ✓, 0.1<0.8 ✓, 0.4>0.35 ✗, 0.4=0.4 ½, 0.4<0.8 ✓ → 4.5/6).
        let a = auroc(&[0.1, 0.4, 0.35, 0.4, 0.8], &[false, false, true, true, true]).unwrap();
        assert!((a - 0.75).abs() < 1e-12, "{a}");
    }

    #[test]
    fn auroc_needs_both_classes_and_treats_nan_as_worst() {
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auroc(&[f32::NAN, 0.2], &[true, false]), Some(1.0));
        assert_eq!(auroc(&[0.1, f32::NAN], &[true, false]), Some(0.0));
    }

    #[test]
    fn roc_curve_steps_through_distinct_scores() {
        let c = roc_curve(&[0.1, 0.4, 0.35, 0.4, 0.8], &[false, false, true, true, true]);
        assert_eq!(c.first(), Some(&(0.0, 0.0)));
        assert_eq!(c.last(), Some(&(1.0, 1.0)));
        assert_eq!(c.len(), 5); // (0,0) + 4 distinct scores
                                // Its trapezoid area is the AUROC.
        assert!((area_to(&c, 1.0) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn the_thinned_roc_keeps_the_exact_area_and_its_ends() {
        // A pseudo-random score set with many ties: the area from one sort equals the pairwise
        // count, and thinning changes the points, never the area.
        let mut x = 12345u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let labels: Vec<bool> = (0..2000).map(|_| next() % 3 == 0).collect();
        let scores: Vec<f32> =
            labels.iter().map(|&l| (next() % 50) as f32 / 50.0 + if l { 0.3 } else { 0.0 }).collect();
        let (mut wins, mut pairs) = (0.0f64, 0.0f64);
        for (s, _) in scores.iter().zip(&labels).filter(|(_, l)| **l) {
            for n in scores.iter().zip(&labels).filter(|(_, l)| !**l).map(|(s, _)| s) {
                pairs += 1.0;
                wins += if s > n {
                    1.0
                } else if s == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let full = roc(&scores, &labels, 0.0);
        let coarse = roc(&scores, &labels, 0.1);
        assert!((full.auc.unwrap() - wins / pairs).abs() < 1e-12);
        assert_eq!(full.auc, coarse.auc);
        assert!(coarse.points.len() < full.points.len());
        assert_eq!(coarse.points.first(), Some(&(0.0, 0.0)));
        assert_eq!(coarse.points.last(), Some(&(1.0, 1.0)));
        let kept = thin(&full.points, 0.1);
        assert_eq!((kept.first(), kept.last()), (full.points.first(), full.points.last()));
        assert!(kept.windows(2).rev().skip(1).all(|w| (w[1].0 - w[0].0).max(w[1].1 - w[0].1) >= 0.1));
    }

    #[test]
    fn regions_are_eight_connected() {
        #[rustfmt::skip]
        let m = [
            true,  false, false, true,
            false, true,  false, true,
            false, false, false, false,
        ].map(|b| b);
        let (labels, n) = label_regions(&m, 4);
        assert_eq!(n, 2);
        assert_eq!(labels[0], labels[5]); // diagonal neighbours join
        assert_ne!(labels[0], labels[3]);
    }

    #[test]
    fn aupro_of_a_perfect_map_is_one_and_of_an_inverted_map_is_zero() {
        let mask: Vec<bool> = (0..100).map(|i| i % 10 < 3 && i / 10 < 3).collect();
        let good: Vec<f32> = mask.iter().map(|m| if *m { 1.0 } else { 0.0 }).collect();
        let bad: Vec<f32> = mask.iter().map(|m| if *m { 0.0 } else { 1.0 }).collect();
        assert!((aupro(&[&good], &[&mask], 10).unwrap() - 1.0).abs() < 1e-9);
        assert!(aupro(&[&bad], &[&mask], 10).unwrap().abs() < 1e-9);
    }

    #[test]
    fn aupro_weights_regions_equally_by_hand() {
        // One image, 2 regions: A (1 px, score 0.9) and B (3 px, scores 0.9, 0.1, 0.1); 6 normal px
        // at 0.5. Thresholds from the top: at 0.9 → FPR 0, PRO = (1 + 1/3)/2 = 2/3; at 0.5 → FPR 1,
        // PRO 2/3; at 0.1 → FPR 1, PRO 1. Area to 0.3: first point (0,0)→(0,2/3) adds nothing;
        // then (0, 2/3)→(1, 2/3) interpolated at 0.3 → 0.3·2/3. Divided by 0.3 → 2/3.
        let mask = [true, true, true, true, false, false, false, false, false, false];
        let scores = [0.9, 0.9, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
        // Regions in a 10-wide, 1-high image: A = px0..=3 is one region, so split by a gap:
        let mask2 = [true, false, true, true, true, false, false, false, false, false];
        let scores2 = [0.9, 0.5, 0.9, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5];
        let a = aupro(&[&scores2], &[&mask2], 10).unwrap();
        assert!((a - 2.0 / 3.0).abs() < 1e-9, "{a}");
        let one_region = aupro(&[&scores], &[&mask], 10).unwrap();
        assert!((one_region - 0.5).abs() < 1e-9, "{one_region}");
    }

    #[test]
    fn median_and_p95() {
        let v: Vec<f64> = (1..=100).map(|i| i as f64).collect();
        assert_eq!(median_p95(&v), (50.5, 95.0));
        assert_eq!(median_p95(&[3.0]), (3.0, 3.0));
    }
}
