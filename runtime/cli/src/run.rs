//! `edge-ad run`: score images with a site calibration, one record each.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use edge_ad_core::decision::decide;
use edge_ad_core::output::{self, JsonLines, Record, TextLines, VerdictSink};
use edge_ad_core::source::{self, FileSource, FrameSource};
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
    let mut ready = station.inspector(&a.calibration)?;
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
    let mut sink: Box<dyn VerdictSink> = if a.json.json {
        Box::new(JsonLines(std::io::stdout().lock()))
    } else {
        Box::new(TextLines(std::io::stdout().lock()))
    };
    // Records name each image by its path as given (`--source test/crack` → `test/crack/000.png`),
    // so images of the same name from several folders can be told apart.
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let mut frames = FileSource::from_files(files);
    let bar = progress::bar(frames.remaining().unwrap_or(0) as u64, "run");
    let mut failures = 0usize;
    // Map file names by stem; a stem seen before in this run (000.png from two folders) gets
    // `-2`, `-3`, ... so that no map overwrites another.
    let mut stems_seen = std::collections::HashMap::<String, usize>::new();
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
        let (score, geometry) = match ready.inspector.inspect(&frame.image) {
            Ok(i) => (i.score, Some(i.geometry)),
            Err(e) => {
                // Not scored (a refused frame, a model error): NG with its reason in the record.
                bar.suspend(|| eprintln!("edge-ad: error: {name}: {e}"));
                failures += 1;
                bar.suspend(|| sink.deliver(&Record::fault(name, threshold, e.to_string())))?;
                continue;
            }
        };
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        let verdict = decide(score, threshold);
        if let (Some(dir), Some(g)) = (&a.maps, geometry) {
            // A map that cannot be written (a full disk) is reported; the part still gets its
            // record and the run goes on.
            let side = ready.inspector.working_side();
            let stem = Path::new(&frame.name).file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let seen = stems_seen.entry(stem.clone()).or_insert(0);
            *seen += 1;
            let stem = if *seen == 1 { stem } else { format!("{stem}-{seen}") };
            let written = output::map_at_source(ready.inspector.map(), side, &g).and_then(|full| {
                output::write_npy(&dir.join(format!("{stem}.npy")), &full, g.src_height as usize, g.src_width as usize)
            });
            if let Err(e) = written {
                bar.suspend(|| eprintln!("edge-ad: error: map of {name}: {e}"));
                failures += 1;
            }
        }
        bar.suspend(|| sink.deliver(&Record::new(name, score, verdict, threshold, latency_ms)))?;
    }
    bar.finish_and_clear();
    if failures > 0 {
        eprintln!("edge-ad: {failures} image(s) could not be scored");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
