//! The frame path wired from its stages: preprocess → backbone → residual → projector → scorer →
//! anomaly map → score. Buffers are sized once from the manifest and calibration.

use std::sync::Arc;
use std::time::Instant;

use edge_ad_calib::ImageScore;
use image::RgbImage;

use crate::anomaly_map::MapBuilder;
use crate::backbone::{Backbone, FeatureMap};
use crate::error::Result;
use crate::model::Model;
use crate::preprocess::{CropGeometry, Preprocessor};
use crate::projector::{Projector, ProjectorRun};
use crate::residual::{ReferenceBank, SearchScratch};
use crate::scorer::Scorer;

/// Preprocessing and backbone: image in, feature maps out.
pub struct Extractor {
    pre: Preprocessor,
    backbone: Backbone,
    level_names: Vec<String>,
}

impl Extractor {
    /// Compiles `model` for `working_side` inputs cropped from images resized to `resize_side`.
    pub fn new(model: &Model, resize_side: u32, working_side: u32) -> Result<Self> {
        let pre = Preprocessor::new(&model.manifest, resize_side, working_side)?;
        let backbone = Backbone::new(model, working_side)?;
        let level_names = model.manifest.levels.iter().map(|l| l.output.to_string()).collect();
        Ok(Self { pre, backbone, level_names })
    }

    /// Another worker's extractor: its own buffers and run state over the same compiled graph.
    pub fn fork(&self) -> Result<Self> {
        Ok(Self { pre: self.pre.fresh(), backbone: self.backbone.fork()?, level_names: self.level_names.clone() })
    }

    /// The backbone output name of each level.
    pub fn level_names(&self) -> &[String] {
        &self.level_names
    }

    /// The preprocessor (for masks and geometry).
    pub fn preprocessor(&mut self) -> &mut Preprocessor {
        &mut self.pre
    }

    /// Working side in pixels.
    pub fn working_side(&self) -> u32 {
        self.pre.working_side()
    }

    /// The backbone.
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// Feature maps of one image.
    pub fn features(&mut self, image: &RgbImage) -> Result<Vec<FeatureMap>> {
        let mut out = self.backbone.empty_maps();
        self.features_into(image, &mut out, &mut StageTimes::default())?;
        Ok(out)
    }

    /// Feature maps of one image into `out`, timing the two stages.
    pub fn features_into(
        &mut self,
        image: &RgbImage,
        out: &mut [FeatureMap],
        t: &mut StageTimes,
    ) -> Result<CropGeometry> {
        let start = Instant::now();
        let (chw, geometry) = self.pre.run(image)?;
        t.preprocess_ms = ms(start);
        let start = Instant::now();
        self.backbone.run_into(chw, out)?;
        t.backbone_ms = ms(start);
        Ok(geometry)
    }
}

/// Milliseconds spent in each stage of one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Resize, crop, layout.
    pub preprocess_ms: f64,
    /// Backbone graph.
    pub backbone_ms: f64,
    /// Nearest-neighbour search and subtraction.
    pub residual_ms: f64,
    /// Projector graphs.
    pub projector_ms: f64,
    /// Scorer, map and image score.
    pub score_ms: f64,
}

impl StageTimes {
    /// Whole frame.
    pub fn total_ms(&self) -> f64 {
        self.preprocess_ms + self.backbone_ms + self.residual_ms + self.projector_ms + self.score_ms
    }
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Feature maps in, image score and anomaly map out: residual, projector, scorer and map.
///
/// The banks, the projector's compiled graphs and the scorer are shared; [`FeatureScorer::fork`]
/// gives another worker its own buffers and run state over them.
pub struct FeatureScorer {
    banks: Arc<[ReferenceBank]>,
    projector: Arc<Projector>,
    projector_run: ProjectorRun,
    scorer: Arc<dyn Scorer>,
    maps: MapBuilder,
    residuals: Vec<FeatureMap>,
    scores: Vec<Vec<f32>>,
    search: Vec<SearchScratch>,
    threads: usize,
}

impl FeatureScorer {
    /// A scorer over one reference bank per level, for maps of `working_side` whose image score
    /// is `image_score`.
    pub fn new(
        banks: Vec<ReferenceBank>,
        projector: Arc<Projector>,
        scorer: Box<dyn Scorer>,
        shapes: &[(usize, usize, usize)],
        map: (usize, ImageScore),
        threads: usize,
    ) -> Result<Self> {
        Self::over(banks.into(), projector, scorer.into(), shapes, map, threads)
    }

    /// Another worker's scorer: the same banks, projector graphs and scorer, its own buffers.
    /// `threads` is its nearest-neighbour search's.
    pub fn fork(&self, threads: usize) -> Result<Self> {
        let shapes: Vec<_> = self.residuals.iter().map(|r| (r.channels, r.height, r.width)).collect();
        let map = (self.maps.side(), self.maps.rule());
        Self::over(self.banks.clone(), self.projector.clone(), self.scorer.clone(), &shapes, map, threads.max(1))
    }

    /// Buffers and run state of one worker over the shared banks, projector and scorer.
    fn over(
        banks: Arc<[ReferenceBank]>,
        projector: Arc<Projector>,
        scorer: Arc<dyn Scorer>,
        shapes: &[(usize, usize, usize)],
        (working_side, image_score): (usize, ImageScore),
        threads: usize,
    ) -> Result<Self> {
        Ok(Self {
            banks,
            projector_run: projector.run()?,
            projector,
            scorer,
            maps: MapBuilder::with_rule(working_side, image_score),
            residuals: shapes.iter().map(|&(c, h, w)| FeatureMap::zeros(c, h, w)).collect(),
            scores: shapes.iter().map(|&(_, h, w)| vec![0.0; h * w]).collect(),
            search: vec![SearchScratch::default(); shapes.len()],
            threads,
        })
    }

    /// The scorer in use.
    pub fn scorer(&self) -> &dyn Scorer {
        self.scorer.as_ref()
    }

    /// Projected residuals of `features` (one map per level) against the banks.
    pub fn projected_residuals(&mut self, features: &[FeatureMap]) -> Result<Vec<FeatureMap>> {
        self.project(features, &mut StageTimes::default())?;
        Ok(self.residuals.clone())
    }

    /// Residuals of `features` against the banks, then through the projector, into
    /// `self.residuals`; times both stages.
    fn project(&mut self, features: &[FeatureMap], t: &mut StageTimes) -> Result<()> {
        let start = Instant::now();
        for (l, f) in features.iter().enumerate() {
            self.banks[l].residuals_into(f, self.threads, &mut self.residuals[l], &mut self.search[l]);
        }
        t.residual_ms = ms(start);
        let start = Instant::now();
        for (l, r) in self.residuals.iter_mut().enumerate() {
            self.projector_run.project(l, r)?;
        }
        t.projector_ms = ms(start);
        Ok(())
    }

    /// Scores one image's feature maps; returns the image score. The map is in [`Self::map`].
    pub fn score(&mut self, features: &[FeatureMap], t: &mut StageTimes) -> Result<f32> {
        self.project(features, t)?;
        let start = Instant::now();
        for (l, r) in self.residuals.iter().enumerate() {
            self.scorer.level_scores(l, r, self.threads, &mut self.scores[l]);
        }
        let grids = self.residuals.iter().zip(&self.scores).map(|(r, s)| (s.as_slice(), r.height, r.width));
        let (_, score) = self.maps.build(grids);
        t.score_ms = ms(start);
        Ok(score)
    }

    /// The anomaly map of the last scored image (working side × working side, row-major).
    pub fn map(&mut self) -> &[f32] {
        self.maps.map()
    }
}

/// One inspected frame.
#[derive(Clone, Copy, Debug)]
pub struct Inspection {
    /// Image score (max of the anomaly map); NaN when the model produced garbage.
    pub score: f32,
    /// Where the working square lies in the frame.
    pub geometry: CropGeometry,
    /// Per-stage timings.
    pub times: StageTimes,
}

/// The whole frame path for one calibrated box.
pub struct Inspector {
    extractor: Extractor,
    scoring: FeatureScorer,
    features: Vec<FeatureMap>,
    photometry: Option<edge_ad_calib::Photometry>,
}

impl Inspector {
    /// Wires an extractor and a feature scorer.
    pub fn new(extractor: Extractor, scoring: FeatureScorer) -> Self {
        let features = extractor.backbone().empty_maps();
        Self { extractor, scoring, features, photometry: None }
    }

    /// Another worker's frame path: the same compiled graphs, banks, scorer, photometry and
    /// image-score rule, its own buffers and run state. `threads` is its nearest-neighbour
    /// search's (1 when several workers share the cores).
    pub fn fork(&self, threads: usize) -> Result<Self> {
        let extractor = self.extractor.fork()?;
        let features = extractor.backbone().empty_maps();
        Ok(Self { extractor, scoring: self.scoring.fork(threads)?, features, photometry: self.photometry })
    }

    /// This frame path and `count − 1` forks of it, every one searching with `threads` threads:
    /// the workers of [`crate::workers::in_order`].
    pub fn into_workers(mut self, count: usize, threads: usize) -> Result<Vec<Self>> {
        self.scoring.threads = threads.max(1);
        let mut all = Vec::with_capacity(count.max(1));
        for _ in 1..count.max(1) {
            all.push(self.fork(threads)?);
        }
        all.insert(0, self);
        Ok(all)
    }

    /// Refuses frames much brighter, darker, flatter or busier than the shots
    /// ([`crate::photometry`]) before scoring them.
    pub fn with_photometry(mut self, shots: edge_ad_calib::Photometry) -> Self {
        self.photometry = Some(shots);
        self
    }

    /// Scores one frame.
    pub fn inspect(&mut self, image: &RgbImage) -> Result<Inspection> {
        if let Some(shots) = &self.photometry {
            crate::photometry::check(shots, image)
                .map_err(|reason| crate::Error::Stage { stage: "photometry", reason })?;
        }
        let mut times = StageTimes::default();
        let geometry = self.extractor.features_into(image, &mut self.features, &mut times)?;
        let score = self.scoring.score(&self.features, &mut times)?;
        Ok(Inspection { score, geometry, times })
    }

    /// The anomaly map of the last frame at the working side.
    pub fn map(&mut self) -> &[f32] {
        self.scoring.map()
    }

    /// Working side of the maps.
    pub fn working_side(&self) -> u32 {
        self.extractor.working_side()
    }

    /// The extractor (for masks in evaluation).
    pub fn extractor(&mut self) -> &mut Extractor {
        &mut self.extractor
    }
}
