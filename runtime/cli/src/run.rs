//! `edge-ad run`: score images with a site calibration, one record each.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use edge_ad_core::decision::decide;
use edge_ad_core::output::{self, JsonLines, Record, TextLines, VerdictSink};
use edge_ad_core::pipeline::Inspector;
use edge_ad_core::source;
use edge_ad_eval::progress;

use crate::args::{ModelArgs, RunArgs};
use crate::{Error, Result};

/// The image files the sources name: a folder's images in file-name order, a file as given.
pub fn image_files(sources: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for s in sources {
        if s.is_dir() {
            files.extend(source::image_files(s)?);
        } else if s.is_file() {
            files.push(s.clone());
        } else {
            let e = std::fs::metadata(s).err().unwrap_or_else(|| std::io::Error::other("neither a file nor a folder"));
            return Err(edge_ad_core::Error::io(s, e).into());
        }
    }
    Ok(files)
}

/// `edge-ad run`.
pub fn run(model: &ModelArgs, a: RunArgs) -> Result {
    if a.source.sources.is_empty() {
        return Err(Error::Usage("run needs at least one --source".into()));
    }
    let station = model.setup().open()?;
    let files = image_files(&a.source.sources)?;
    if let Some(dir) = &a.maps {
        std::fs::create_dir_all(dir).map_err(|e| edge_ad_core::Error::io(dir, e))?;
    }
    let ready = station.inspector(&a.calibration)?;
    let made_for = ready.calibration.scorer;
    if let Some(asked) = a.scorer.scorer.filter(|&s| s != made_for) {
        return Err(edge_ad_core::Error::bad_file(
            &a.calibration,
            format!(
                "was calibrated for scorer {}, not {}; calibrate again with --scorer {}",
                made_for.name(),
                asked.name(),
                asked.name()
            ),
        )
        .into());
    }
    let threshold = ready.threshold;
    let (workers, threads) = a.workers.resolve(model, &station);
    let mut inspectors = ready.inspector.into_workers(workers, threads)?;
    let mut sink: Box<dyn VerdictSink> = if a.json.json {
        Box::new(JsonLines(std::io::stdout().lock()))
    } else {
        Box::new(TextLines(std::io::stdout().lock()))
    };
    let jobs = jobs(files, a.maps.as_deref());
    let bar = progress::bar(jobs.len() as u64, "run");
    let mut failures = 0usize;
    let (count, started) = (jobs.len(), Instant::now());
    edge_ad_core::workers::in_order(&mut inspectors, jobs.into_iter(), score_file, |outcome| {
        bar.inc(1);
        let record = match outcome {
            Outcome::Scored { name, score, latency_ms, map_error } => {
                if let Some(e) = map_error {
                    // A map that cannot be written (a full disk) is reported; the part still gets
                    // its record and the run goes on.
                    bar.suspend(|| eprintln!("edge-ad: error: map of {name}: {e}"));
                    failures += 1;
                }
                Record::new(name, score, decide(score, threshold), threshold, latency_ms)
            }
            Outcome::Failed { name, error } => {
                // A frame that cannot be read or scored (a refused frame, a model error) is an NG
                // record with its reason, never skipped.
                bar.suspend(|| eprintln!("edge-ad: error: {error}"));
                failures += 1;
                Record::fault(name, threshold, error)
            }
        };
        bar.suspend(|| sink.deliver(&record))
    })?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        "{count} images in {seconds:.3} s: {:.1} frames/s on {workers} worker(s), decode to record",
        count as f64 / seconds.max(1e-9)
    );
    if failures > 0 {
        eprintln!("edge-ad: {failures} image(s) could not be scored");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// One image to score, named as its record will name it.
struct Job {
    path: PathBuf,
    /// The path as given (`--source test/crack` → `test/crack/000.png`), so that images of the
    /// same name from several folders can be told apart.
    name: String,
    /// Where its map goes, with `--maps`.
    map_file: Option<PathBuf>,
}

/// The jobs for `files` in order. Maps are named by stem; a stem seen before in this run
/// (000.png from two folders) gets `-2`, `-3`, ... so that no map overwrites another.
fn jobs(files: Vec<PathBuf>, maps: Option<&Path>) -> Vec<Job> {
    let mut stems_seen = std::collections::HashMap::<String, usize>::new();
    files
        .into_iter()
        .map(|path| {
            let map_file = maps.map(|dir| {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                let seen = stems_seen.entry(stem.clone()).or_insert(0);
                *seen += 1;
                let stem = if *seen == 1 { stem } else { format!("{stem}-{seen}") };
                dir.join(format!("{stem}.npy"))
            });
            Job { name: path.display().to_string(), path, map_file }
        })
        .collect()
}

/// What a worker made of one job.
enum Outcome {
    Scored { name: String, score: f32, latency_ms: f64, map_error: Option<String> },
    Failed { name: String, error: String },
}

/// Decodes and scores one image on `inspector`, and writes its map when asked.
fn score_file(inspector: &mut Inspector, job: Job) -> Outcome {
    let Job { path, name, map_file } = job;
    let image = match source::load_image(&path) {
        Ok(image) => image,
        Err(e) => return Outcome::Failed { name, error: e.to_string() },
    };
    let start = Instant::now();
    let inspection = match inspector.inspect(&image) {
        Ok(i) => i,
        Err(e) => return Outcome::Failed { error: format!("{name}: {e}"), name },
    };
    let latency_ms = start.elapsed().as_secs_f64() * 1e3;
    let map_error = map_file.and_then(|file| {
        let g = inspection.geometry;
        let side = inspector.working_side();
        output::map_at_source(inspector.map(), side, &g)
            .and_then(|full| output::write_npy(&file, &full, g.src_height as usize, g.src_width as usize))
            .err()
            .map(|e| e.to_string())
    });
    Outcome::Scored { name, score: inspection.score, latency_ms, map_error }
}
