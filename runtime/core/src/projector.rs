//! The projector stage: per level, an ONNX graph run on the residual map ([1, C, H, W] in, same
//! shape out), or the identity before any pretraining. The graphs edge-ad-host exports run on the
//! crate's own executor ([`crate::projector_net`]); any other graph runs on tract.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use edge_ad_calib::ModelManifest;
use tract_onnx::prelude::*;

use crate::backbone::{FeatureMap, GraphRun};
use crate::error::{Error, Result};
use crate::projector_net::{ProjectorNet, ProjectorNetRun};

/// Projects residual maps level by level.
pub enum Projector {
    /// No projector: residuals pass unchanged (FeatureNorm is then the nearest-neighbour distance).
    Identity,
    /// One compiled graph per level, in manifest order.
    Onnx {
        /// Compiled graphs, in level order.
        levels: Vec<Level>,
        /// sha256 over the files' sha256s in level order.
        identity: [u8; 32],
        /// The folder they came from.
        dir: PathBuf,
    },
}

/// One level's compiled projector graph, for residual maps of one (C, H, W).
pub struct Level {
    engine: LevelEngine,
    shape: (usize, usize, usize),
}

/// What runs a level's graph.
enum LevelEngine {
    /// The crate's own executor ([`crate::projector_net`]).
    Own(Arc<ProjectorNet>),
    /// tract's compiled plan.
    Tract(Arc<TypedRunnableModel>),
}

/// Which executors a projector may run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engines {
    /// The own executor where it recognises the graph, tract elsewhere (the default).
    OwnFirst,
    /// tract for every graph (for comparisons).
    TractOnly,
}

/// The projector path that asks for the identity (raw residuals) instead of a folder.
pub const NONE: &str = "none";

impl Projector {
    /// The projector for `model`'s levels at `working_side`: the one in `dir`, the identity when
    /// `dir` is [`NONE`], and for `None` the default ([`Self::default_for`]).
    pub fn open(dir: Option<&Path>, model: &crate::model::Model, working_side: u32) -> Result<Arc<Self>> {
        let shapes = crate::backbone::expected_shapes(&model.manifest, working_side);
        Ok(Arc::new(match dir {
            Some(d) if d == Path::new(NONE) => Self::Identity,
            Some(d) => Self::from_dir(d, &model.manifest, &shapes)?,
            None => Self::default_for(model, working_side)?,
        }))
    }

    /// The embedded projector for `working_side` ([`crate::model::embedded_projector`]: the one
    /// pretrained at 224 or the accurate setting's, pretrained at 336, whichever side is nearer)
    /// when `model` is the default backbone they were pretrained for; the identity for any other
    /// backbone.
    pub fn default_for(model: &crate::model::Model, working_side: u32) -> Result<Self> {
        if !model.is_default_backbone() {
            return Ok(Self::Identity);
        }
        let shapes = crate::backbone::expected_shapes(&model.manifest, working_side);
        let (embedded, folder) = crate::model::embedded_projector(working_side);
        let origin = PathBuf::from(format!("embedded:{folder}"));
        let mut files = Vec::new();
        for (level, (name, bytes)) in model.manifest.levels.iter().zip(embedded) {
            if Self::file_name(level) != *name {
                return Err(Error::bad_file(&origin, format!("{name} does not belong to level {}", level.output)));
            }
            files.push((origin.join(name), bytes.to_vec()));
        }
        Self::from_bytes(&files, &shapes, &origin)
    }

    /// The projector file name of a level: `<level output name>.onnx`.
    pub fn file_name(level: &edge_ad_calib::LevelSpec) -> String {
        format!("{}.onnx", level.output)
    }

    /// The projector files of `dir`: [`Self::file_name`] for each level of the manifest.
    pub fn level_files(dir: &Path, manifest: &ModelManifest) -> Vec<PathBuf> {
        manifest.levels.iter().map(|l| dir.join(Self::file_name(l))).collect()
    }

    /// Loads and compiles the projector of every level from `dir` for the given level shapes; the
    /// first problem in level order (a missing file, a graph that does not fit) is the error.
    pub fn from_dir(dir: &Path, manifest: &ModelManifest, shapes: &[(usize, usize, usize)]) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::bad_file(dir, "is not a folder of projector files (<level>.onnx)"));
        }
        let mut levels = Vec::new();
        let mut all = Vec::new();
        for (path, &shape) in Self::level_files(dir, manifest).iter().zip(shapes) {
            let bytes = crate::files::read_capped(path, crate::files::caps::MODEL)?;
            levels.push(compile_level(path, &bytes, shape, Engines::OwnFirst)?);
            all.push(bytes);
        }
        let identity = crate::model::projector_digest(all.iter().map(|b| b.as_slice()));
        Ok(Self::Onnx { levels, identity, dir: dir.to_path_buf() })
    }

    /// Compiles one projector graph per level from `(name for messages, ONNX bytes)` in level
    /// order, for the given level shapes; `origin` names where they came from.
    pub fn from_bytes(files: &[(PathBuf, Vec<u8>)], shapes: &[(usize, usize, usize)], origin: &Path) -> Result<Self> {
        Self::from_bytes_on(files, shapes, origin, Engines::OwnFirst)
    }

    /// [`Self::from_bytes`] on the executors `engines` allows.
    pub fn from_bytes_on(
        files: &[(PathBuf, Vec<u8>)],
        shapes: &[(usize, usize, usize)],
        origin: &Path,
        engines: Engines,
    ) -> Result<Self> {
        if files.len() != shapes.len() {
            return Err(Error::bad_file(
                origin,
                format!("{} projector files for {} levels", files.len(), shapes.len()),
            ));
        }
        let levels = files
            .iter()
            .zip(shapes)
            .map(|((path, bytes), &shape)| compile_level(path, bytes, shape, engines))
            .collect::<Result<Vec<_>>>()?;
        let identity = crate::model::projector_digest(files.iter().map(|(_, b)| b.as_slice()));
        Ok(Self::Onnx { levels, identity, dir: origin.to_path_buf() })
    }

    /// What runs the graphs: `"identity"` (none), `"own"` ([`crate::projector_net`]) or
    /// `"tract"` for every level, `"own and tract"` when levels differ.
    pub fn engine(&self) -> &'static str {
        let Self::Onnx { levels, .. } = self else { return "identity" };
        let own = levels.iter().filter(|l| matches!(l.engine, LevelEngine::Own(_))).count();
        match own {
            0 => "tract",
            n if n == levels.len() => "own",
            _ => "own and tract",
        }
    }

    /// The digest of the projector files ([`crate::model::projector_digest`]; `None` for the
    /// identity projector).
    pub fn digest(&self) -> Option<[u8; 32]> {
        match self {
            Self::Identity => None,
            Self::Onnx { identity, .. } => Some(*identity),
        }
    }

    /// Projects one level's residual map in place (a one-off run; the frame path keeps a
    /// [`ProjectorRun`] instead, which allocates nothing per frame).
    pub fn project(&self, level: usize, map: &mut FeatureMap) -> Result<()> {
        self.run()?.project(level, map)
    }

    /// Run state for one worker over this projector's shared compiled graphs: the own
    /// executor's buffers, or a tract session and an input tensor, per level.
    pub fn run(&self) -> Result<ProjectorRun> {
        let Self::Onnx { levels, dir, .. } = self else {
            return Ok(ProjectorRun { levels: Vec::new(), name: String::new() });
        };
        let name = format!("projector {}", dir.display());
        let err = |e: String| Error::Model { model: name.clone(), reason: format!("cannot start a run: {e}") };
        let levels = levels
            .iter()
            .map(|level| {
                let (c, h, w) = level.shape;
                let engine = match &level.engine {
                    LevelEngine::Own(net) => {
                        LevelRunEngine::Own(ProjectorNetRun::new(net.clone(), h * w).map_err(err)?)
                    }
                    LevelEngine::Tract(plan) => {
                        LevelRunEngine::Tract(GraphRun::new(plan, &[1, c, h, w]).map_err(|e| err(format!("{e:#}")))?)
                    }
                };
                Ok(LevelRun { engine, shape: level.shape })
            })
            .collect::<Result<_>>()?;
        Ok(ProjectorRun { levels, name })
    }
}

/// One worker's run state of a [`Projector`] (see [`Projector::run`]).
pub struct ProjectorRun {
    /// Empty for the identity.
    levels: Vec<LevelRun>,
    name: String,
}

struct LevelRun {
    engine: LevelRunEngine,
    shape: (usize, usize, usize),
}

enum LevelRunEngine {
    Own(ProjectorNetRun),
    Tract(GraphRun),
}

impl ProjectorRun {
    /// Projects one level's residual map in place; the identity leaves it as it is.
    pub fn project(&mut self, level: usize, map: &mut FeatureMap) -> Result<()> {
        if self.levels.is_empty() {
            return Ok(());
        }
        let name = &self.name;
        let err = |reason: String| Error::Model { model: name.clone(), reason };
        let run = self.levels.get_mut(level).ok_or_else(|| err(format!("no projector for level {level}")))?;
        let (c, h, w) = run.shape;
        if (map.channels, map.height, map.width) != (c, h, w) {
            return Err(err(format!(
                "level {level} takes [1, {c}, {h}, {w}], the residual map is [1, {}, {}, {}]",
                map.channels, map.height, map.width
            )));
        }
        let graph = match &mut run.engine {
            LevelRunEngine::Own(own) => return own.run(map).map_err(|e| err(format!("level {level}: {e}"))),
            LevelRunEngine::Tract(graph) => graph,
        };
        let out = graph.run(|input| map.write_chw(input)).map_err(|e| err(format!("level {level}: {e:#}")))?;
        let first = out.first().ok_or_else(|| err(format!("level {level} gave no output")))?;
        let view = first.to_plain_array_view::<f32>().map_err(|e| err(format!("level {level}: {e:#}")))?;
        if view.shape() != [1, c, h, w] {
            return Err(err(format!("level {level} gave shape {:?}, expected [1, {c}, {h}, {w}]", view.shape())));
        }
        match view.as_slice() {
            Some(flat) => map.fill_from_chw(flat),
            None => map.fill_from_chw(&view.iter().copied().collect::<Vec<_>>()),
        }
        Ok(())
    }
}

/// One level's projector for [1, C, H, W]: the own executor when `engines` allows it and it
/// recognises the graph, else tract's compiled graph; `path` names it in errors and the log.
fn compile_level(path: &Path, bytes: &[u8], shape: (usize, usize, usize), engines: Engines) -> Result<Level> {
    let (c, h, w) = shape;
    if engines == Engines::OwnFirst {
        match ProjectorNet::compile(bytes, c) {
            Ok(net) => {
                tracing::info!("{}: the own executor runs the projector", path.display());
                return Ok(Level { engine: LevelEngine::Own(Arc::new(net)), shape });
            }
            Err(why) => tracing::info!("{}: tract runs the projector ({why})", path.display()),
        }
    }
    let plan = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .and_then(|g| g.with_input_fact(0, f32::fact([1, c, h, w]).into()))
        .and_then(|g| g.into_optimized())
        .and_then(|g| g.into_runnable())
        .map_err(|e| Error::bad_file(path, format!("not a projector for [1, {c}, {h}, {w}]: {e:#}")))?;
    Ok(Level { engine: LevelEngine::Tract(plan), shape })
}
