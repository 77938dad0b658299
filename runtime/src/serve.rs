//! `edge-ad serve`: the box on the line. It wires the stages around the PLC handshake:
//!
//! - the main thread owns the [`Handshake`] and the counters, and does nothing slow: it turns
//!   triggers into jobs, verdicts into lines, and writes one JSON record per event;
//! - a worker thread owns the frame source and the frame path: it grabs a frame per job,
//!   inspects it, sends the verdict back, and only then draws the overlay for the archive and
//!   the display; it also reports whether the box can inspect (camera present, calibration
//!   loaded) whenever that changes, and keeps retrying what is missing;
//! - trigger threads feed signals (see [`crate::trigger`]); the archive writes on its own.
//!
//! The lines are in the safe state until the worker says the box can inspect, and go back to it
//! on every fault, on SIGTERM/SIGINT, and on the way out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use image::RgbImage;

use crate::archive::{Archive, Entry};
use crate::config::{BoxConfig, SourceConfig, TriggerConfig};
use crate::counters::Counters;
use crate::decision::{decide, Verdict};
use crate::error::{Error, Result};
use crate::handshake::{Fault, Handshake, Hold, Notice, Shown, Timing, TriggerOutcome, VerdictOutcome};
use crate::model::Model;
use crate::overlay::{Caption, Framebuffer};
use crate::pipeline::Inspector;
use crate::preprocess::CropGeometry;
use crate::source::{FileSource, FrameSource, SourceHealth};
use crate::trigger::{self, Signal};

/// What the main loop hears.
enum Event {
    Line(Signal),
    Done(Done),
    /// Whether the box can inspect: `None` yes, else the fault and why.
    Status(Option<(Fault, String)>),
}

/// One part for the worker.
struct Job {
    id: u32,
    triggered: Instant,
}

/// One part inspected (or not).
struct Done {
    id: u32,
    frame: String,
    result: std::result::Result<(f32, f32), String>,
    latency_ms: f64,
    /// The source has no more frames (a replayed folder ran out): the service ends after this
    /// part. Carried here, not sent apart, so no trigger can slip in between.
    last: bool,
}

/// Opens the frame source a configuration names.
pub fn open_source(config: &SourceConfig) -> Result<Box<dyn FrameSource + Send>> {
    match config {
        SourceConfig::Camera(c) => Ok(Box::new(crate::camera::Camera::open(c)?)),
        SourceConfig::Folder { path, repeat } => {
            let files = crate::source::image_files(path)?;
            Ok(Box::new(FileSource::from_files(files).repeating(*repeat)))
        }
        SourceConfig::Files { paths, repeat } => {
            // A missing file is refused at start, not at its trigger.
            if let Some(p) = paths.iter().find(|p| !p.is_file()) {
                return Err(Error::bad_file(p, "source.paths names a file that does not exist"));
            }
            Ok(Box::new(FileSource::from_files(paths.clone()).repeating(*repeat)))
        }
    }
}

/// The handshake timing a configuration asks for (defaults when there is no PLC).
pub fn timing(config: &BoxConfig) -> Timing {
    let ms = |v: u64| v.saturating_mul(1000);
    match &config.plc {
        Some(p) => Timing {
            hold: if p.ack.is_some() {
                Hold::UntilAcknowledged
            } else {
                Hold::Pulse { ok: ms(p.ok_pulse_ms), ng: ms(p.ng_pulse_ms) }
            },
            fixed_offset: p.result_offset_ms.map(ms),
            deadline: ms(p.deadline_ms),
            missed_pulse: ms(p.missed_pulse_ms),
        },
        None => {
            Timing { hold: Hold::Pulse { ok: 0, ng: 0 }, fixed_offset: None, deadline: ms(10_000), missed_pulse: 0 }
        }
    }
}

fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// Runs the service until `stop` is set (or a stdin trigger closes). Errors that end it: a bad
/// configuration, output lines that cannot be requested or driven, records that cannot be written.
pub fn serve(config: &BoxConfig, config_path: &Path, stop: Arc<AtomicBool>) -> Result<()> {
    let outputs = match &config.plc {
        Some(p) => crate::gpio::open_outputs(p).map_err(|e| Error::bad_file(config_path, e))?,
        None => crate::handshake::Outputs::none(),
    };
    let mut hs = Handshake::new(outputs, timing(config));
    hs.start().map_err(|e| Error::Invalid(format!("plc: {e}")))?;
    let result = run(config, config_path, &mut hs, &stop);
    // Whatever ended the loop, the lines end safe.
    if let Err(e) = hs.shutdown() {
        tracing::error!("plc: cannot drive the safe state on the way out: {e}");
    }
    result
}

fn run(
    config: &BoxConfig,
    config_path: &Path,
    hs: &mut Handshake<crate::gpio::GpioPin>,
    stop: &AtomicBool,
) -> Result<()> {
    let (tx, rx) = channel::<Event>();
    let external_trigger =
        trigger::spawn(&config.trigger, tx.clone(), Event::Line).map_err(|e| Error::bad_file(config_path, e))?;
    if let (Some(plc), Some(ack)) = (&config.plc, config.plc.as_ref().and_then(|p| p.ack.as_ref())) {
        trigger::spawn_acknowledge(&plc.chip, ack, tx.clone(), Event::Line)
            .map_err(|e| Error::bad_file(config_path, e))?;
    }
    let free_run = match config.trigger {
        TriggerConfig::FreeRun { interval_ms } => Some(Duration::from_millis(interval_ms)),
        _ => None,
    };
    debug_assert!(free_run.is_some() != external_trigger);

    let now_unix = (unix_ms() / 1000) as u64;
    let counters_path = config.counters.path.clone();
    let mut counters = Counters::load_or_new(&counters_path, now_unix)?;
    let footer = Arc::new(Mutex::new(counters.short_line()));
    let archive = match &config.archive {
        Some(a) => Some(Archive::start(a)?),
        None => None,
    };
    let dropped = archive.as_ref().map(|a| (counters.archive_dropped, a.dropped_handle()));
    let display = config.display.as_deref().map(Framebuffer::open).transpose()?;
    let mut records = Records::open(config.records.path.as_deref())?;

    let (jobs_tx, jobs_rx) = channel::<Job>();
    let worker = {
        let config = config.clone();
        let footer = footer.clone();
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("inspect".into())
            .spawn(move || Worker::new(config, footer, archive, display).run(jobs_rx, tx))
            .map_err(|e| Error::Invalid(format!("cannot start the inspection thread: {e}")))?
    };
    drop(tx);

    let clock = Instant::now();
    let now = || clock.elapsed().as_micros() as u64;
    let pin = |e: crate::gpio::GpioError| Error::Invalid(format!("plc: {e}"));
    let mut worker_status: Option<(Fault, String)> = Some((Fault::Stopped, "starting".into()));
    let mut stalled: Option<u32> = None;
    let mut closing = false;
    let mut last_free_run: Option<Instant> = None;
    let mut last_saved = Instant::now();
    let mut dirty = false;
    records.write(serde_json::json!({"event": "start", "config": config_path.display().to_string()}))?;

    while !stop.load(Ordering::Relaxed) {
        let (notice, due) = hs.poll(now()).map_err(pin)?;
        match notice {
            Some(Notice::Late(id)) => {
                counters.late += 1;
                counters.ng += 1;
                dirty = true;
                records.write(serde_json::json!({"event": "late", "part": id, "verdict": "NG"}))?;
            }
            Some(Notice::Stalled(id)) => {
                counters.faults += 1;
                stalled = Some(id);
                dirty = true;
                records.write(serde_json::json!({"event": "fault", "fault": "stalled", "part": id}))?;
            }
            None => {}
        }
        if closing && (hs.is_ready() || hs.fault().is_some()) {
            break;
        }
        if dirty && last_saved.elapsed() >= Duration::from_secs(1) {
            save(&mut counters, &counters_path, &footer, &dropped);
            last_saved = Instant::now();
            dirty = false;
        }
        // Pending events first: a free-run trigger must not overtake a verdict or a close.
        let event = match rx.try_recv() {
            Ok(e) => e,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let mut wait = Duration::from_millis(100);
                if let Some(interval) = free_run {
                    if hs.is_ready() && !closing {
                        let since = last_free_run.map_or(interval, |t| t.elapsed());
                        if since >= interval {
                            last_free_run = Some(Instant::now());
                            on_trigger(hs, now(), &mut counters, &jobs_tx, &mut records)?;
                            dirty = true;
                            continue;
                        }
                        wait = wait.min(interval - since);
                    }
                }
                if let Some(d) = due {
                    wait = wait.min(Duration::from_micros(d.saturating_sub(now())));
                }
                match rx.recv_timeout(wait) {
                    Ok(e) => e,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        match event {
            Event::Line(Signal::Trigger) => {
                on_trigger(hs, now(), &mut counters, &jobs_tx, &mut records)?;
                dirty = true;
            }
            Event::Line(Signal::Acknowledge) => hs.acknowledge(now()).map_err(pin)?,
            Event::Line(Signal::Closed) => {
                tracing::info!("the trigger input closed; finishing the part in flight");
                closing = true;
            }
            Event::Status(status) => {
                match &status {
                    Some((fault, why)) => {
                        if hs.fault() != Some(*fault) {
                            counters.faults += u64::from(*fault != Fault::Stopped);
                            hs.set_fault(*fault).map_err(pin)?;
                            tracing::error!("safe state: {why}");
                            records.write(serde_json::json!({"event": "fault", "fault": format!("{fault:?}").to_lowercase(), "error": why}))?;
                        }
                    }
                    None => {
                        if stalled.is_none() && hs.fault().is_some() {
                            hs.clear_fault(now()).map_err(pin)?;
                            tracing::info!("ready");
                            records.write(serde_json::json!({"event": "ready"}))?;
                        }
                    }
                }
                worker_status = status;
                dirty = true;
            }
            Event::Done(done) => {
                if done.last {
                    tracing::info!("the frame source has run out; stopping after this part");
                    closing = true;
                }
                if stalled == Some(done.id) {
                    // The stalled part came back: the frame path moves again.
                    stalled = None;
                    if worker_status.is_none() {
                        hs.clear_fault(now()).map_err(pin)?;
                        records.write(serde_json::json!({"event": "ready"}))?;
                    }
                    continue;
                }
                on_done(hs, now(), done, &mut counters, &mut records)?;
                if let Ok(mut f) = footer.lock() {
                    *f = counters.short_line();
                }
                dirty = true;
            }
        }
    }
    drop(jobs_tx);
    records.write(serde_json::json!({"event": "stop"}))?;
    hs.shutdown().map_err(pin)?;
    save(&mut counters, &counters_path, &footer, &dropped);
    // The worker ends when the job channel closes, after its current part; the archive then
    // writes what is queued.
    let _ = worker.join();
    Ok(())
}

fn save(counters: &mut Counters, path: &Path, footer: &Mutex<String>, dropped: &Option<(u64, Arc<AtomicU64>)>) {
    if let Some((before, now)) = dropped {
        counters.archive_dropped = before + now.load(Ordering::Relaxed);
    }
    if let Err(e) = counters.save(path) {
        tracing::error!("counters: {e}");
    }
    if let Ok(mut f) = footer.lock() {
        *f = counters.short_line();
    }
}

fn on_trigger(
    hs: &mut Handshake<crate::gpio::GpioPin>,
    now: u64,
    counters: &mut Counters,
    jobs: &Sender<Job>,
    records: &mut Records,
) -> Result<()> {
    counters.triggers += 1;
    match hs.trigger(now).map_err(|e| Error::Invalid(format!("plc: {e}")))? {
        TriggerOutcome::Accepted(id) => {
            // A closed job channel means the worker died: the stall deadline turns that into a fault.
            let _ = jobs.send(Job { id, triggered: Instant::now() });
        }
        TriggerOutcome::Missed => {
            counters.missed += 1;
            let why = hs.fault().map(|f| format!("{f:?}").to_lowercase());
            records.write(serde_json::json!({"event": "missed", "fault": why}))?;
        }
    }
    Ok(())
}

fn on_done(
    hs: &mut Handshake<crate::gpio::GpioPin>,
    now: u64,
    done: Done,
    counters: &mut Counters,
    records: &mut Records,
) -> Result<()> {
    // A part that could not be inspected is NG, never skipped.
    let (verdict, score, threshold, error) = match &done.result {
        Ok((score, threshold)) => (decide(*score, *threshold), *score, *threshold, None),
        Err(e) => (Verdict::Ng, f32::NAN, f32::NAN, Some(e.clone())),
    };
    let shown = if verdict == Verdict::Ok { Shown::Ok } else { Shown::Ng };
    let outcome = hs.verdict(now, done.id, shown).map_err(|e| Error::Invalid(format!("plc: {e}")))?;
    if error.is_some() {
        counters.errors += 1;
    }
    let late = match outcome {
        VerdictOutcome::Shown | VerdictOutcome::Held => {
            match verdict {
                Verdict::Ok => counters.ok += 1,
                Verdict::Ng => counters.ng += 1,
            }
            counters.latency.add(done.latency_ms);
            false
        }
        VerdictOutcome::Late => true,
        VerdictOutcome::Stale => return Ok(()),
    };
    records.write(serde_json::json!({
        "event": "verdict", "part": done.id, "frame": done.frame,
        "verdict": if late { "NG" } else { verdict.as_str() }, "late": late,
        "score": finite(score), "threshold": finite(threshold), "latency_ms": done.latency_ms, "error": error,
    }))
}

fn finite(v: f32) -> Option<f32> {
    v.is_finite().then_some(v)
}

/// JSON Lines records, to a file (appended) or standard output.
struct Records {
    out: Box<dyn Write + Send>,
    path: Option<PathBuf>,
}

impl Records {
    fn open(path: Option<&Path>) -> Result<Self> {
        let out: Box<dyn Write + Send> = match path {
            Some(p) => {
                Box::new(std::fs::OpenOptions::new().create(true).append(true).open(p).map_err(|e| Error::io(p, e))?)
            }
            None => Box::new(std::io::stdout()),
        };
        Ok(Self { out, path: path.map(Path::to_path_buf) })
    }

    fn write(&mut self, mut record: serde_json::Value) -> Result<()> {
        record["time_unix_ms"] = serde_json::json!(unix_ms() as u64);
        let io = |e| Error::io(self.path.clone().unwrap_or_else(|| "standard output".into()), e);
        writeln!(self.out, "{record}").and_then(|_| self.out.flush()).map_err(io)
    }
}

/// The inspection thread's state: the source and frame path, (re)opened as needed.
struct Worker {
    config: BoxConfig,
    footer: Arc<Mutex<String>>,
    archive: Option<Archive>,
    display: Option<Framebuffer>,
    model: Option<Model>,
    bundle: Option<crate::bundle::Loaded>,
    source: Option<Box<dyn FrameSource + Send>>,
    inspector: Option<(Inspector, f32)>,
    ok_seen: u64,
}

impl Worker {
    fn new(
        config: BoxConfig,
        footer: Arc<Mutex<String>>,
        archive: Option<Archive>,
        display: Option<Framebuffer>,
    ) -> Self {
        Self { config, footer, archive, display, model: None, bundle: None, source: None, inspector: None, ok_seen: 0 }
    }

    fn run(mut self, jobs: Receiver<Job>, events: Sender<Event>) {
        let mut reported: Option<Option<(Fault, String)>> = None;
        let mut next_check = Instant::now();
        loop {
            if Instant::now() >= next_check {
                let status = self.establish();
                if reported.as_ref() != Some(&status) {
                    if events.send(Event::Status(status.clone())).is_err() {
                        return;
                    }
                    reported = Some(status);
                }
                next_check = Instant::now() + Duration::from_millis(200);
            }
            let job = match jobs.recv_timeout(Duration::from_millis(200)) {
                Ok(j) => j,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let (mut done, frame) = self.inspect(&job);
            done.last = self.source.as_ref().and_then(|s| s.remaining()) == Some(0);
            let kept = done.result.clone();
            let (id, name) = (done.id, done.frame.clone());
            if events.send(Event::Done(done)).is_err() {
                break;
            }
            // After the verdict is out: the overlay, the archive and the display.
            if let (Some((frame, geometry)), Ok((score, threshold))) = (frame, kept) {
                self.keep(id, &name, &frame, &geometry, score, threshold);
            }
            next_check = Instant::now();
        }
        if let Some(a) = self.archive.take() {
            a.finish();
        }
    }

    /// Opens what is missing; `None` when the box can inspect, else the fault and why.
    fn establish(&mut self) -> Option<(Fault, String)> {
        if self.model.is_none() {
            let model = &self.config.model;
            match crate::bundle::open_model(model.bundle.as_deref(), model.manifest.as_deref()) {
                Ok((m, b)) => {
                    self.model = Some(m);
                    self.bundle = b;
                }
                Err(e) => return Some((Fault::Model, e.to_string())),
            }
        }
        if self.inspector.is_none() {
            let model = self.model.as_ref()?;
            match load_inspector(&self.config, model, self.bundle.as_ref()) {
                Ok(i) => {
                    tracing::info!("calibration {} loaded", self.config.model.calibration.display());
                    self.inspector = Some(i);
                }
                Err(e) => return Some((Fault::Calibration, e.to_string())),
            }
        }
        if self.source.is_none() {
            match open_source(&self.config.source) {
                Ok(s) => self.source = Some(s),
                Err(e) => return Some((Fault::Camera, e.to_string())),
            }
        }
        match self.source.as_ref().map(|s| s.health()) {
            Some(SourceHealth::Lost(why)) => Some((Fault::Camera, why)),
            _ => None,
        }
    }

    fn inspect(&mut self, job: &Job) -> (Done, Option<(RgbImage, CropGeometry)>) {
        let mut done =
            Done { id: job.id, frame: String::new(), result: Err(String::new()), latency_ms: 0.0, last: false };
        let (Some(source), Some((inspector, threshold))) = (self.source.as_mut(), self.inspector.as_mut()) else {
            done.result = Err("the frame path is not ready".into());
            return (done, None);
        };
        let frame = match source.next_frame() {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                done.result = Err(e.to_string());
                return (done, None);
            }
            None => {
                done.result = Err("the frame source is exhausted".into());
                return (done, None);
            }
        };
        done.frame = frame.name.clone();
        let inspection = inspector.inspect(&frame.image);
        done.latency_ms = job.triggered.elapsed().as_secs_f64() * 1e3;
        match inspection {
            Ok(i) => {
                done.result = Ok((i.score, *threshold));
                (done, Some((frame.image, i.geometry)))
            }
            Err(e) => {
                done.result = Err(e.to_string());
                (done, None)
            }
        }
    }

    fn keep(&mut self, id: u32, name: &str, frame: &RgbImage, geometry: &CropGeometry, score: f32, threshold: f32) {
        let verdict = decide(score, threshold);
        let every = self.config.archive.as_ref().map_or(0, |a| a.ok_every);
        let sampled = verdict == Verdict::Ok && every > 0 && {
            self.ok_seen += 1;
            self.ok_seen % every == 0
        };
        let archived = self.archive.is_some() && (verdict == Verdict::Ng || sampled);
        if !archived && self.display.is_none() {
            return;
        }
        let Some((inspector, _)) = self.inspector.as_mut() else { return };
        let side = inspector.working_side();
        let map = crate::output::map_at_source(inspector.map(), side, geometry).ok();
        let footer = self.footer.lock().map(|f| f.clone()).unwrap_or_default();
        let caption = Caption { verdict: Some(verdict), score, threshold, footer: &footer };
        let overlay = crate::overlay::draw(frame, map.as_deref(), &caption);
        if let Some(d) = &self.display {
            if let Err(e) = d.show(&overlay) {
                tracing::warn!("display: {e}");
            }
        }
        if let (true, Some(archive)) = (archived, &self.archive) {
            let stamp = unix_ms();
            let stem = format!("{stamp:013}-{id:08}-{}", verdict.as_str());
            let sidecar = serde_json::json!({
                "part": id, "frame": name, "verdict": verdict.as_str(), "score": finite(score),
                "threshold": threshold, "time_unix_ms": stamp as u64,
            });
            if !archive.offer(Entry { stem, image: overlay, sidecar }) {
                tracing::warn!("archive: writer behind, part {id} not kept ({} dropped)", archive.dropped());
            }
        }
    }
}

/// The frame path from a configuration's calibration and projector (the bundle's, when the
/// configuration names a bundle), and its threshold.
pub fn load_inspector(
    config: &BoxConfig,
    model: &Model,
    bundle: Option<&crate::bundle::Loaded>,
) -> Result<(Inspector, f32)> {
    let path = &config.model.calibration;
    let calib = crate::calibrate::read_calibration(path)?;
    let projector = match bundle {
        Some(b) => b.projector(calib.working_side)?,
        None => crate::projector::Projector::open(config.model.projector.as_deref(), model, calib.working_side)?,
    };
    let threads = config.model.threads.unwrap_or_else(crate::calibrate::default_threads);
    let inspector =
        crate::calibrate::inspector(model, projector, &calib, threads).map_err(|e| Error::bad_file(path, e))?;
    let threshold = match config.model.sensitivity {
        Some(s) => crate::decision::with_sensitivity(&calib.threshold, s).value,
        None => calib.threshold.value,
    };
    Ok((inspector, threshold))
}

/// Captures `shots` frames from the configured source for a calibration, one per trigger (or per
/// line on standard input with `keys`), and saves each as PNG in `keep_dir`. `announce` is told
/// when the box waits for a shot and when it has one.
pub fn capture_shots(
    config: &BoxConfig,
    shots: usize,
    keys: bool,
    keep_dir: &Path,
    announce: &dyn Fn(&str),
) -> Result<Vec<(String, RgbImage)>> {
    std::fs::create_dir_all(keep_dir).map_err(|e| Error::io(keep_dir, e))?;
    let mut source = open_source(&config.source)?;
    let (tx, rx) = channel::<Signal>();
    let trigger = if keys { TriggerConfig::Stdin } else { config.trigger.clone() };
    let external = trigger::spawn(&trigger, tx, |s| s)?;
    let mut taken = Vec::new();
    for i in 1..=shots {
        if external {
            announce(&format!("shot {i}/{shots}: show a good part, then trigger"));
            loop {
                match rx.recv() {
                    Ok(Signal::Trigger) => break,
                    Ok(Signal::Acknowledge) => continue,
                    Ok(Signal::Closed) | Err(_) => {
                        return Err(Error::Invalid(format!(
                            "the trigger input closed after {} of {shots} shots",
                            i - 1
                        )))
                    }
                }
            }
        }
        let frame = source
            .next_frame()
            .unwrap_or_else(|| Err(Error::Invalid(format!("the source ran out after {} of {shots} shots", i - 1))))?;
        let name = format!("shot-{i:02}.png");
        let file = keep_dir.join(&name);
        crate::output::write_atomic(&file, &crate::overlay::png(&frame.image)?)?;
        announce(&format!("shot {i}/{shots}: {} → {}", frame.name, file.display()));
        taken.push((name, frame.image));
    }
    Ok(taken)
}
