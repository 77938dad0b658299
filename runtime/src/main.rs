//! `edge-ad`: the inspection box's command line. Each verb wires library stages; nothing here
//! computes on images itself.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};
use edge_ad::calibrate::{self, CalibrationSettings};
use edge_ad::config::BoxConfig;
use edge_ad::decision::{self, decide, Verdict};
use edge_ad::eval::{self, CategoryReport};
use edge_ad::formats::{ImageScore, ScorerKind};
use edge_ad::model::Model;
use edge_ad::output::{self, JsonLines, Record, TextLines, VerdictSink};
use edge_ad::projector::Projector;
use edge_ad::source::{self, FileSource, FrameSource};
use edge_ad::{dataset, progress, synth, Error, Result};

/// Inline anomaly detection: calibrate from a few good parts, then OK/NG every part.
#[derive(Parser)]
#[command(name = "edge-ad", version, about, propagate_version = true)]
struct Cli {
    /// Backbone manifest (postcard, see models/); default: the embedded EfficientNet-Lite0.
    #[arg(long, global = true, value_name = "MANIFEST")]
    model: Option<PathBuf>,
    /// A bundle from `edge-ad-host bundle`: backbone, projector and model calibration in one
    /// file (instead of --model and --projector).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "model")]
    bundle: Option<PathBuf>,
    /// Threads for the nearest-neighbour search (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a site calibration from the first K good images of a folder (sorted by file name).
    Calibrate(CalibrateArgs),
    /// Score images with a calibration: one record per image (file, score, verdict, threshold, latency).
    Run(RunArgs),
    /// Evaluate on an MVTec AD layout: calibrate on the first K train/good images, score the test set.
    Eval(EvalArgs),
    /// Generate a small dataset of textured parts with painted defects, calibrate on 4 good ones,
    /// score the rest and print verdicts and metrics.
    Demo(DemoArgs),
    /// Run the box on the line as box.toml says: camera, triggers, PLC lines, archive, counters.
    Serve(ServeArgs),
    /// Print the box's counters (triggers, OK, NG, missed, late, errors, latency).
    Status(StatusArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// The box's configuration (TOML).
    #[arg(long)]
    config: PathBuf,
}

#[derive(Args)]
struct StatusArgs {
    /// The box's configuration (TOML); the counters file it names is read.
    #[arg(long)]
    config: PathBuf,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum ScorerArg {
    Featurenorm,
    Patchcore,
    Padim,
}

impl From<ScorerArg> for ScorerKind {
    fn from(s: ScorerArg) -> Self {
        match s {
            ScorerArg::Featurenorm => ScorerKind::FeatureNorm,
            ScorerArg::Patchcore => ScorerKind::PatchCore,
            ScorerArg::Padim => ScorerKind::Padim,
        }
    }
}

/// Options shared by the verbs that build a frame path.
#[derive(Args, Clone)]
struct PathArgs {
    /// Projector folder (`<level>.onnx` per backbone level), or `none` for the identity (raw
    /// residuals). Default: the bundle's projector with --bundle; the embedded default projector
    /// with the default backbone; else the identity.
    #[arg(long, value_name = "PATH|none")]
    projector: Option<String>,
}

/// Options shared by the verbs that calibrate.
#[derive(Args, Clone)]
struct CalibArgs {
    /// Scorer to calibrate and score with.
    #[arg(long, value_enum, default_value = "featurenorm")]
    scorer: ScorerArg,
    /// Standard deviations of the leave-one-out good scores that the threshold stands above
    /// their mean (never below the largest of them).
    #[arg(long, default_value_t = decision::DEFAULT_SPREAD)]
    spread: f32,
    /// Relative margin on top of the spread rule.
    #[arg(long, default_value_t = decision::DEFAULT_MARGIN)]
    margin: f32,
    /// Sensitivity: the threshold is divided by it (above 1 flags more parts, below 1 fewer).
    #[arg(long, default_value_t = 1.0)]
    sensitivity: f32,
    /// Score only the shots themselves for the threshold (no gain/shift variations).
    #[arg(long)]
    no_augment: bool,
    /// How the anomaly map becomes the image score: `max`, or `top:F`, the mean of the map's
    /// highest share F (0 < F ≤ 1) of pixels.
    #[arg(long, default_value = "top:0.02", value_parser = parse_image_score)]
    image_score: ImageScore,
    /// Working side in pixels (default: the model's input side).
    #[arg(long)]
    side: Option<u32>,
    /// Shorter image side after resizing, before the centre crop (default: the working side).
    #[arg(long)]
    resize: Option<u32>,
}

#[derive(Args)]
struct CalibrateArgs {
    /// Number of good shots K (the first K images of --source in file-name order, or K frames
    /// from the configured camera).
    #[arg(long)]
    shots: usize,
    /// Folder of good parts.
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    source: Option<PathBuf>,
    /// The box's configuration: capture the shots from its source, one per trigger, and write
    /// the calibration it names (the operator's set-up step).
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --config: take each shot on Enter (a line on standard input) instead of a trigger.
    #[arg(long, requires = "config")]
    keys: bool,
    /// Calibration file to write (default with --config: the configuration's model.calibration).
    #[arg(long, required_unless_present = "config")]
    out: Option<PathBuf>,
    #[command(flatten)]
    path: PathArgs,
    #[command(flatten)]
    calib: CalibArgs,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RunArgs {
    /// Site calibration file (from `edge-ad calibrate`).
    #[arg(long)]
    calibration: PathBuf,
    /// Folder of images (sorted by file name) or a single image; repeatable.
    #[arg(long, required = true)]
    source: Vec<PathBuf>,
    /// JSON Lines on stdout.
    #[arg(long)]
    json: bool,
    /// Write each anomaly map as <image stem>.npy (float32, 2-D, the image's resolution) here.
    #[arg(long, value_name = "DIR")]
    maps: Option<PathBuf>,
    /// Scorer; must be the one the calibration was made for (default: the calibration's).
    #[arg(long, value_enum)]
    scorer: Option<ScorerArg>,
    #[command(flatten)]
    path: PathArgs,
    /// Override the calibration's sensitivity.
    #[arg(long)]
    sensitivity: Option<f32>,
}

#[derive(Args)]
struct EvalArgs {
    /// Dataset root in the MVTec AD layout (or one category folder).
    #[arg(long)]
    dataset: PathBuf,
    /// Categories to evaluate (default: all).
    #[arg(long = "category", value_name = "NAME")]
    categories: Vec<String>,
    /// Shots K: the first K of train/good in file-name order.
    #[arg(long)]
    shots: usize,
    /// One JSON object per category, then one with "category": "mean".
    #[arg(long)]
    json: bool,
    /// Write ROC and PRO curves as PNG plots here.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    #[command(flatten)]
    path: PathArgs,
    #[command(flatten)]
    calib: CalibArgs,
}

#[derive(Args)]
struct DemoArgs {
    /// Folder for the generated dataset (default: a temporary folder, removed afterwards).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the generated dataset.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Good test parts per texture.
    #[arg(long, default_value_t = 12)]
    test_good: usize,
    /// Defective test parts per defect kind and texture.
    #[arg(long, default_value_t = 4)]
    per_defect: usize,
    /// Shots K.
    #[arg(long, default_value_t = 4)]
    shots: usize,
    /// Generate the pretraining corpus's textures (knit, speckle, brushed) instead of the
    /// evaluation ones (weave, grain, mesh): a validation set for choosing settings such as the
    /// margin without looking at the evaluation parts.
    #[arg(long)]
    training_textures: bool,
    #[command(flatten)]
    path: PathArgs,
    #[command(flatten)]
    calib: CalibArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .init();
    let threads = cli.threads.unwrap_or_else(calibrate::default_threads).max(1);
    let mut cli = cli;
    // serve and status read their model from box.toml (or need none): nothing to load here.
    let needs_model = !matches!(cli.command, Command::Serve(_) | Command::Status(_));
    let loaded = box_config_model(&mut cli).and_then(|_| {
        if !needs_model {
            return Ok(None);
        }
        let (model, bundle) = edge_ad::bundle::open_model(cli.bundle.as_deref(), cli.model.as_deref())?;
        Ok(Some(BoxModel { model, bundle }))
    });
    let result = loaded.and_then(|model| match (cli.command, model) {
        (Command::Serve(a), _) => cmd_serve(a),
        (Command::Status(a), _) => cmd_status(a),
        (Command::Calibrate(a), Some(model)) => cmd_calibrate(&model, threads, a),
        (Command::Run(a), Some(model)) => cmd_run(&model, threads, a),
        (Command::Eval(a), Some(model)) => cmd_eval(&model, threads, a),
        (Command::Demo(a), Some(model)) => cmd_demo(&model, threads, a),
        (_, None) => Err(Error::Invalid("no model loaded".into())),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edge-ad: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `calibrate --config` calibrates for the model the configuration runs (its bundle, manifest
/// and projector), unless the command line names one.
fn box_config_model(cli: &mut Cli) -> Result<()> {
    let Command::Calibrate(a) = &mut cli.command else { return Ok(()) };
    let Some(path) = &a.config else { return Ok(()) };
    if cli.model.is_some() || cli.bundle.is_some() || a.path.projector.is_some() {
        return Ok(());
    }
    let config = BoxConfig::load(path)?;
    cli.model = config.model.manifest;
    cli.bundle = config.model.bundle;
    a.path.projector = config.model.projector.map(|p| p.display().to_string());
    Ok(())
}

/// The backbone, and the bundle it came from when `--bundle` was given.
struct BoxModel {
    model: Model,
    bundle: Option<edge_ad::bundle::Loaded>,
}

impl std::ops::Deref for BoxModel {
    type Target = Model;
    fn deref(&self) -> &Model {
        &self.model
    }
}

fn load_projector(model: &BoxModel, arg: &PathArgs, working_side: u32) -> Result<Arc<Projector>> {
    match (arg.projector.as_deref(), &model.bundle) {
        (Some(edge_ad::projector::NONE), _) => Ok(Arc::new(Projector::Identity)),
        (Some(_), Some(_)) => Err(Error::Invalid("--projector with --bundle: the bundle carries the projector".into())),
        (None, Some(b)) => b.projector(working_side),
        (dir, None) => Projector::open(dir.map(Path::new), model, working_side),
    }
}

/// The `--image-score` spelling of a rule.
fn image_score_name(rule: ImageScore) -> String {
    match rule {
        ImageScore::Max => "max".into(),
        ImageScore::TopMean { fraction } => format!("top:{fraction}"),
    }
}

/// `max` or `top:F` (0 < F ≤ 1), as `--image-score` takes it.
fn parse_image_score(s: &str) -> std::result::Result<ImageScore, String> {
    if s == "max" {
        return Ok(ImageScore::Max);
    }
    let fraction = s
        .strip_prefix("top:")
        .and_then(|f| f.parse::<f32>().ok())
        .ok_or_else(|| format!("{s:?}: expected `max` or `top:F` with a share F, e.g. top:0.02"))?;
    let rule = ImageScore::TopMean { fraction };
    if !rule.is_valid() {
        return Err(format!("{s:?}: the share must be above 0 and at most 1"));
    }
    Ok(rule)
}

fn settings(c: &CalibArgs, threads: usize) -> CalibrationSettings {
    CalibrationSettings {
        scorer: c.scorer.into(),
        image_score: c.image_score,
        spread: c.spread,
        margin: c.margin,
        sensitivity: c.sensitivity,
        augment: !c.no_augment,
        threads,
    }
}

fn sides(model: &BoxModel, c: &CalibArgs) -> (u32, u32) {
    let side = c.side.unwrap_or(model.manifest.input_side);
    (side, c.resize.unwrap_or(side))
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The shots from a folder (the first K by file name) or from the configured camera, and the
/// calibration file to write.
fn gather_shots(a: &CalibrateArgs) -> Result<(Vec<(String, image::RgbImage)>, PathBuf)> {
    if let Some(config_path) = &a.config {
        let config = BoxConfig::load(config_path)?;
        let out = a.out.clone().unwrap_or_else(|| config.model.calibration.clone());
        let mut keep = out.as_os_str().to_owned();
        keep.push(".shots");
        #[cfg(target_os = "linux")]
        return Ok((
            edge_ad::serve::capture_shots(&config, a.shots, a.keys, Path::new(&keep), &|m| eprintln!("{m}"))?,
            out,
        ));
        #[cfg(not(target_os = "linux"))]
        return Err(Error::Invalid(format!("{}: capturing shots needs Linux", config_path.display())));
    }
    let (Some(dir), Some(out)) = (&a.source, &a.out) else {
        return Err(Error::Invalid("calibrate needs --source and --out, or --config".into()));
    };
    let files = source::image_files(dir)?;
    if a.shots > files.len() {
        return Err(Error::bad_file(
            dir,
            format!("{} shots asked but the folder holds {} images", a.shots, files.len()),
        ));
    }
    Ok((source::load_named(&files[..a.shots])?, out.clone()))
}

fn cmd_calibrate(model: &BoxModel, threads: usize, a: CalibrateArgs) -> Result<ExitCode> {
    if a.shots < 2 {
        return Err(Error::Invalid(format!(
            "--shots must be at least 2 (each shot is scored against the others), got {}",
            a.shots
        )));
    }
    let (side, resize) = sides(model, &a.calib);
    let projector = load_projector(model, &a.path, side)?;
    let mut extractor = edge_ad::pipeline::Extractor::new(model, resize, side)?;
    let (shots, out) = gather_shots(&a)?;
    let started = Instant::now();
    let bar = progress::bar(2 * a.shots as u64, "calibrate");
    let calib = calibrate::calibrate(
        &mut extractor,
        projector.clone(),
        calibrate::identity(model, &projector),
        &shots,
        &settings(&a.calib, threads),
        now_unix(),
        &|msg| {
            bar.inc(1);
            bar.set_message(msg.to_string());
        },
    )?;
    bar.finish_and_clear();
    let bytes = edge_ad::formats::encode(&calib).map_err(|e| Error::bad_file(&out, e))?;
    output::write_atomic(&out, &bytes)?;
    let t = &calib.threshold;
    if a.json {
        let summary = serde_json::json!({
            "calibration": out.display().to_string(),
            "shots": calib.shot_names.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            "scorer": calib.scorer.name(),
            "threshold": t.value,
            "image_score": image_score_name(calib.image_score),
            "spread": t.spread,
            "margin": t.margin,
            "good_scores": {"min": t.stats.min, "max": t.stats.max, "mean": t.stats.mean, "std": t.stats.std, "count": t.stats.scores.len()},
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{summary}");
    } else {
        println!(
            "calibrated {} on {} shots in {:.2} s: threshold {:.4} ({} good scores {:.4}..{:.4}, spread {}, margin {}, sensitivity {})",
            out.display(),
            a.shots,
            started.elapsed().as_secs_f64(),
            t.value,
            t.stats.scores.len(),
            t.stats.min,
            t.stats.max,
            t.spread,
            t.margin,
            t.sensitivity
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(model: &BoxModel, threads: usize, a: RunArgs) -> Result<ExitCode> {
    let calib = calibrate::read_calibration(&a.calibration)?;
    if let Some(s) = a.scorer {
        let asked: ScorerKind = s.into();
        if asked != calib.scorer {
            return Err(Error::bad_file(
                &a.calibration,
                format!(
                    "was calibrated for scorer {}, not {}; calibrate again with --scorer {}",
                    calib.scorer.name(),
                    asked.name(),
                    asked.name()
                ),
            ));
        }
    }
    let mut files = Vec::new();
    for s in &a.source {
        if s.is_dir() {
            files.extend(source::image_files(s)?);
        } else if s.is_file() {
            files.push(s.clone());
        } else {
            return Err(Error::bad_file(s, "no such file or folder"));
        }
    }
    if let Some(dir) = &a.maps {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let projector = load_projector(model, &a.path, calib.working_side)?;
    let mut inspector =
        calibrate::inspector(model, projector, &calib, threads).map_err(|e| Error::bad_file(&a.calibration, e))?;
    let threshold = match a.sensitivity {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err(Error::Invalid(format!("--sensitivity must be positive, got {s}")))
        }
        Some(s) => decision::with_sensitivity(&calib.threshold, s).value,
        None => calib.threshold.value,
    };
    let mut sink: Box<dyn VerdictSink> = if a.json {
        Box::new(JsonLines(std::io::stdout().lock()))
    } else {
        Box::new(TextLines(std::io::stdout().lock()))
    };
    let names: Vec<String> = files.iter().map(|p| source::file_name(p)).collect();
    let mut frames = FileSource::from_files(files);
    let bar = progress::bar(frames.remaining().unwrap_or(0) as u64, "run");
    let mut failures = 0usize;
    let mut names = names.into_iter();
    while let Some(frame) = frames.next_frame() {
        bar.inc(1);
        let name = names.next().unwrap_or_default();
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                // A frame that cannot be read is an NG record with its reason, never skipped.
                bar.suspend(|| eprintln!("edge-ad: error: {e}"));
                failures += 1;
                bar.suspend(|| sink.deliver(&Record::fault(name, threshold, e.to_string())))?;
                continue;
            }
        };
        let start = Instant::now();
        let (score, geometry) = match inspector.inspect(&frame.image) {
            Ok(i) => (i.score, Some(i.geometry)),
            Err(e) => {
                bar.suspend(|| eprintln!("edge-ad: error: {}: {e}", frame.name));
                failures += 1;
                (f32::NAN, None)
            }
        };
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        let verdict = decide(score, threshold);
        if let (Some(dir), Some(g)) = (&a.maps, geometry) {
            let side = inspector.working_side();
            let full = output::map_at_source(inspector.map(), side, &g)?;
            let stem = Path::new(&frame.name).file_stem().unwrap_or_default().to_string_lossy().into_owned();
            output::write_npy(&dir.join(format!("{stem}.npy")), &full, g.src_height as usize, g.src_width as usize)?;
        }
        bar.suspend(|| sink.deliver(&Record::new(frame.name, score, verdict, threshold, latency_ms)))?;
    }
    bar.finish_and_clear();
    if failures > 0 {
        eprintln!("edge-ad: {failures} image(s) could not be scored");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_opt(v: Option<f64>, pct: bool) -> String {
    match v {
        Some(x) if pct => format!("{:.1}%", 100.0 * x),
        Some(x) => format!("{x:.4}"),
        None => "-".into(),
    }
}

fn print_table(reports: &[CategoryReport]) {
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8} {:>9} {:>9}",
        "category", "I-AUROC", "P-AUROC", "AUPRO", "threshold", "escape", "f-reject", "ms med", "ms p95"
    );
    for r in reports {
        println!(
            "{:<14} {:>8} {:>8} {:>8} {:>10.4} {:>8} {:>8} {:>9.1} {:>9.1}",
            r.category,
            fmt_opt(r.image_auroc, false),
            fmt_opt(r.pixel_auroc, false),
            fmt_opt(r.aupro, false),
            r.threshold,
            fmt_opt(r.escape_rate, true),
            fmt_opt(r.false_reject_rate, true),
            r.latency_ms_median,
            r.latency_ms_p95
        );
    }
    // Per defect kind, over the categories (the last report is the mean when there are several).
    if let Some(overall) = reports.last().filter(|r| !r.defects.is_empty()) {
        println!();
        println!("{:<14} {:>8} {:>8} {:>8}", "defect kind", "I-AUROC", "escape", "parts");
        for d in &overall.defects {
            println!(
                "{:<14} {:>8} {:>8} {:>8}",
                d.kind,
                fmt_opt(d.image_auroc, false),
                fmt_opt(d.escape_rate, true),
                d.images
            );
        }
    }
}

fn evaluate(
    model: &BoxModel,
    threads: usize,
    root: &Path,
    names: &[String],
    shots: usize,
    path: &PathArgs,
    calib: &CalibArgs,
    plots: Option<&Path>,
    mut per_image: impl FnMut(&str, &eval::Scored<'_>),
) -> Result<Vec<CategoryReport>> {
    let (side, resize) = sides(model, calib);
    let projector = load_projector(model, path, side)?;
    let settings = settings(calib, threads);
    let mut reports = Vec::new();
    for name in names {
        let category = dataset::load_category(root, name)?;
        let bar = progress::bar((category.test.len() + 2 * shots) as u64, name);
        let (report, curves) = eval::evaluate_category(
            model,
            projector.clone(),
            &category,
            shots,
            &settings,
            side,
            resize,
            &|msg| {
                bar.inc(1);
                bar.set_message(msg.to_string());
            },
            &mut |s| bar.suspend(|| per_image(name, &s)),
        )?;
        bar.finish_and_clear();
        if let Some(dir) = plots {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            edge_ad::plots::write_curves(dir, &report, &curves)?;
        }
        reports.push(report);
    }
    Ok(reports)
}

fn cmd_eval(model: &BoxModel, threads: usize, a: EvalArgs) -> Result<ExitCode> {
    let names = if a.categories.is_empty() { dataset::category_names(&a.dataset)? } else { a.categories.clone() };
    let mut reports =
        evaluate(model, threads, &a.dataset, &names, a.shots, &a.path, &a.calib, a.plots.as_deref(), |_, _| {})?;
    reports.push(eval::mean_report(&reports));
    if a.json {
        for r in &reports {
            println!("{}", serde_json::to_string(r).map_err(|e| Error::Invalid(format!("JSON: {e}")))?);
        }
    } else {
        print_table(&reports);
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_demo(model: &BoxModel, threads: usize, a: DemoArgs) -> Result<ExitCode> {
    let (root, temporary) = match &a.out {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("edge-ad-demo-{}", std::process::id())), true),
    };
    let spec =
        synth::SynthSpec { seed: a.seed, test_good: a.test_good, per_defect: a.per_defect, ..Default::default() };
    let textures = if a.training_textures { synth::TRAINING_TEXTURES } else { synth::TEXTURES };
    println!(
        "generating {} textures ({} good shots available, {} good and {} defective test parts each) in {}",
        textures.len(),
        spec.train_good,
        spec.test_good,
        spec.per_defect * synth::DEFECTS.len(),
        root.display()
    );
    synth::generate(&root, &textures, &spec)?;
    let names: Vec<String> = textures.iter().map(|s| s.to_string()).collect();
    println!("calibrating on the first {} good parts of each texture, then scoring every test part:", a.shots);
    let result = evaluate(model, threads, &root, &names, a.shots, &a.path, &a.calib, None, |cat, s| {
        let truth = s.item.defect.as_deref().unwrap_or("good");
        let file = s.item.path.file_name().unwrap_or_default().to_string_lossy();
        let wrong =
            matches!((truth, s.verdict), ("good", Verdict::Ng)) || (truth != "good" && s.verdict == Verdict::Ok);
        println!(
            "  {cat:<6} {truth:<8} {file}  score {:.4}  {}{}  {:.1} ms",
            s.score,
            s.verdict.as_str(),
            if wrong { " (wrong)" } else { "" },
            s.latency_ms
        );
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&root);
    }
    let mut reports = result?;
    reports.push(eval::mean_report(&reports));
    println!();
    print_table(&reports);
    Ok(ExitCode::SUCCESS)
}

#[cfg(target_os = "linux")]
fn cmd_serve(a: ServeArgs) -> Result<ExitCode> {
    use std::sync::atomic::AtomicBool;
    let config = BoxConfig::load(&a.config)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| Error::Invalid(format!("cannot handle signal {signal}: {e}")))?;
    }
    edge_ad::serve::serve(&config, &a.config, stop)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(target_os = "linux"))]
fn cmd_serve(a: ServeArgs) -> Result<ExitCode> {
    Err(Error::Invalid(format!("{}: serve needs Linux (V4L2 and the GPIO character device)", a.config.display())))
}

fn cmd_status(a: StatusArgs) -> Result<ExitCode> {
    let config = BoxConfig::load(&a.config)?;
    let counters = edge_ad::counters::Counters::read(&config.counters.path)?;
    let s = counters.summary();
    if a.json {
        println!("{s}");
        return Ok(ExitCode::SUCCESS);
    }
    let ms = |k: &str| s["latency_ms"][k].as_f64().map_or("-".to_string(), |v| format!("{v:.1}"));
    println!("counters since {} (Unix seconds), {}", counters.since_unix, config.counters.path.display());
    println!(
        "triggers {}  OK {}  NG {}  missed {}  late {}  errors {}  faults {}  archive dropped {}",
        counters.triggers,
        counters.ok,
        counters.ng,
        counters.missed,
        counters.late,
        counters.errors,
        counters.faults,
        counters.archive_dropped
    );
    println!("latency ms: min {}  mean {}  p95 {}  max {}", ms("min"), ms("mean"), ms("p95"), ms("max"));
    Ok(ExitCode::SUCCESS)
}
