//! The inspection thread: it owns the frame source and the frame path, (re)opens whatever is
//! missing, grabs and inspects one frame per job, sends the verdict back, and only then draws
//! the overlay for the archive and the display.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_ad_core::decision::{decide, Verdict};
use edge_ad_core::preprocess::CropGeometry;
use edge_ad_core::setup::{Ready, Station};
use edge_ad_core::source::{FrameSource, SourceHealth};
use edge_ad_plc::Fault;
use image::RgbImage;

use crate::archive::{Archive, Entry};
use crate::config::BoxConfig;
use crate::overlay::Caption;
use crate::plant::web::{LiveFrame, LiveView};

/// Shows the overlay to the operator (a Linux framebuffer on a box).
pub trait Display: Send {
    /// Shows `image`; an error is logged, never fatal.
    fn show(&self, image: &RgbImage) -> crate::Result<()>;
}

#[cfg(target_os = "linux")]
impl Display for crate::linux::framebuffer::Framebuffer {
    fn show(&self, image: &RgbImage) -> crate::Result<()> {
        crate::linux::framebuffer::Framebuffer::show(self, image)
    }
}

/// One part for the worker.
pub(super) struct Job {
    pub id: u32,
    pub triggered: Instant,
}

/// What the worker is asked to do, in the order asked.
pub(super) enum Work {
    /// Inspect a part.
    Part(Job),
    /// Take a teach shot from the source (between parts).
    Shot,
    /// Load the taught candidate calibration, check it, and put it in force.
    Load,
}

/// One part inspected (or not).
pub(super) struct Done {
    pub id: u32,
    pub frame: String,
    /// The verdict, score and threshold, or why the part could not be scored (then NG).
    pub result: edge_ad_core::Result<Scored>,
    pub latency_ms: f64,
    /// The source has no more frames (a replayed folder ran out): the service ends after this
    /// part. Carried here, not sent apart, so no trigger can slip in between.
    pub last: bool,
}

/// A scored part: the verdict is decided once, here.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scored {
    pub verdict: Verdict,
    pub score: f32,
    pub threshold: f32,
}

/// What the worker tells the main loop.
pub(super) enum Report {
    Done(Done),
    /// Whether the box can inspect: `None` yes, else the fault and why.
    Status(Option<(Fault, String)>),
    /// A teach shot: its name, or why none was taken.
    Shot(std::result::Result<String, String>),
    /// The taught calibration: in force with this threshold, or why not (the old one stays).
    Loaded(std::result::Result<f32, String>),
}

/// The inspection thread's state: the source and frame path, (re)opened as needed.
pub(super) struct Worker {
    config: BoxConfig,
    footer: Arc<Mutex<String>>,
    archive: Option<Archive>,
    display: Option<Box<dyn Display>>,
    /// The web page's live view (drawn when the page asks for it, not here).
    live: Option<LiveView>,
    /// The operator's sensitivity (f32 bits; 0: the configuration's), set by the main loop.
    sensitivity: Arc<AtomicU32>,
    /// The sensitivity the threshold in force was made with (f32 bits; 0: the configuration's).
    applied_sensitivity: u32,
    /// Teach shots being written, and the number the last one got.
    shots_writing: Arc<std::sync::atomic::AtomicUsize>,
    last_shot: u32,
    station: Option<Station>,
    /// Where the loaded bundle resolved to (through the slot link), to notice an install.
    loaded_bundle: Option<std::path::PathBuf>,
    /// A broken new slot was rolled back once; never again in this run (no ping-pong).
    rolled_back: bool,
    source: Option<Box<dyn FrameSource + Send>>,
    ready: Option<Ready>,
    ok_seen: u64,
}

impl Worker {
    pub fn new(
        config: BoxConfig,
        footer: Arc<Mutex<String>>,
        archive: Option<Archive>,
        display: Option<Box<dyn Display>>,
        live: Option<LiveView>,
        sensitivity: Arc<AtomicU32>,
    ) -> Self {
        Self {
            config,
            footer,
            archive,
            display,
            live,
            sensitivity,
            applied_sensitivity: 0,
            shots_writing: Arc::default(),
            last_shot: 0,
            station: None,
            loaded_bundle: None,
            rolled_back: false,
            source: None,
            ready: None,
            ok_seen: 0,
        }
    }

    /// Serves jobs until the job channel closes; `wrap` tags reports for the main loop's channel.
    pub fn run<E: Send + 'static>(mut self, jobs: Receiver<Work>, events: Sender<E>, wrap: fn(Report) -> E) {
        let mut reported: Option<Option<(Fault, String)>> = None;
        let mut next_check = Instant::now();
        loop {
            if Instant::now() >= next_check {
                let status = self.establish();
                if reported.as_ref() != Some(&status) {
                    if events.send(wrap(Report::Status(status.clone()))).is_err() {
                        return;
                    }
                    reported = Some(status);
                }
                next_check = Instant::now() + Duration::from_millis(200);
            }
            let job = match jobs.recv_timeout(Duration::from_millis(200)) {
                Ok(Work::Part(j)) => j,
                Ok(Work::Shot) => {
                    match self.take_shot() {
                        // The PNG is written on a thread of its own: a large frame's encoding
                        // must not hold up the next part.
                        Ok((dir, name, image)) => {
                            let (told, writing) = (events.clone(), self.shots_writing.clone());
                            writing.fetch_add(1, Ordering::SeqCst);
                            let spawned = std::thread::Builder::new().name("teach-shot".into()).spawn(move || {
                                let written = crate::teach::write_shot(&dir, &name, &image).map(|()| name);
                                writing.fetch_sub(1, Ordering::SeqCst);
                                let _ = told.send(wrap(Report::Shot(written.map_err(|e| e.to_string()))));
                            });
                            if let Err(e) = spawned {
                                self.shots_writing.fetch_sub(1, Ordering::SeqCst);
                                let why = format!("cannot start a thread to write the shot: {e}");
                                if events.send(wrap(Report::Shot(Err(why)))).is_err() {
                                    break;
                                }
                            }
                        }
                        Err(why) => {
                            if events.send(wrap(Report::Shot(Err(why)))).is_err() {
                                break;
                            }
                        }
                    }
                    continue;
                }
                Ok(Work::Load) => {
                    if events.send(wrap(Report::Loaded(self.load_taught()))).is_err() {
                        break;
                    }
                    next_check = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let (mut done, frame) = self.inspect(&job);
            done.last = self.source.as_ref().and_then(|s| s.remaining()) == Some(0);
            let kept = done.result.as_ref().ok().copied();
            let (id, name) = (done.id, done.frame.clone());
            if events.send(wrap(Report::Done(done))).is_err() {
                break;
            }
            // After the verdict is out: the overlay, the archive and the display.
            if let (Some((frame, geometry)), Some(scored)) = (frame, kept) {
                self.keep(id, &name, &frame, &geometry, scored);
            }
            next_check = Instant::now();
        }
        if let Some(a) = self.archive.take() {
            a.finish();
        }
    }

    /// Opens what is missing; `None` when the box can inspect, else the fault and why.
    fn establish(&mut self) -> Option<(Fault, String)> {
        // An install switched the slot link: the new model (and a calibration for it) is loaded.
        let resolved = self.config.model.bundle.as_deref().and_then(|b| std::fs::canonicalize(b).ok());
        if self.station.is_some() && resolved != self.loaded_bundle {
            tracing::info!(
                "the model slot changed; loading {}",
                resolved.as_deref().unwrap_or(Path::new("-")).display()
            );
            self.station = None;
            self.ready = None;
        }
        if self.station.is_none() {
            // The box's trust (keys, its own key) first: a fault there is not the model's.
            let setup = match self.config.setup() {
                Ok(s) => s,
                Err(e) => return Some((Fault::Model, e.to_string())),
            };
            match setup.open() {
                Ok(s) => {
                    self.station = Some(s);
                    self.loaded_bundle = resolved;
                }
                Err(e) => {
                    // The bundle itself (signature, digests, graph) does not load.
                    let e = crate::Error::from(e);
                    self.roll_back_once(&e);
                    return Some((Fault::Model, e.to_string()));
                }
            }
        }
        if self.ready.is_none() {
            let station = self.station.as_ref()?;
            match station.inspector(&self.config.model.calibration) {
                Ok(r) => {
                    tracing::info!("calibration {} loaded", self.config.model.calibration.display());
                    self.ready = Some(r);
                    self.applied_sensitivity = 0;
                }
                Err(e) => return Some((Fault::Calibration, e.to_string())),
            }
        }
        if self.source.is_none() {
            match crate::sources::open_source(&self.config.source) {
                Ok(s) => self.source = Some(s),
                Err(e) => return Some((Fault::Camera, e.to_string())),
            }
        }
        match self.source.as_ref().map(|s| s.health()) {
            Some(SourceHealth::Lost(why)) => Some((Fault::Camera, why)),
            _ => None,
        }
    }

    /// A teach shot: the next frame from the source, with the folder and the name to write it
    /// as.
    fn take_shot(&mut self) -> std::result::Result<(std::path::PathBuf, String, RgbImage), String> {
        let dir = crate::teach::folder(&self.config.model.calibration);
        // Numbers go on past a shot still being written; otherwise they follow the folder.
        let after = if self.shots_writing.load(Ordering::SeqCst) > 0 { self.last_shot } else { 0 };
        let (name, number) = crate::teach::next_shot(&dir, after).map_err(|e| e.to_string())?;
        let Some(source) = self.source.as_mut() else {
            return Err("the camera is not open".into());
        };
        let frame = match source.next_frame() {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the source has no more frames".into()),
        };
        self.last_shot = number;
        Ok((dir, name, frame.image))
    }

    /// The taught candidate, read and checked as a calibration is at start (signature, model,
    /// projector), then put in force on disk and here; on any error the one in force stays.
    fn load_taught(&mut self) -> std::result::Result<f32, String> {
        let Some(station) = self.station.as_ref() else {
            return Err("the model is not loaded".into());
        };
        let in_force = &self.config.model.calibration;
        let ready = station.inspector(&crate::teach::candidate(in_force)).map_err(|e| e.to_string())?;
        if !(ready.threshold.is_finite() && ready.threshold > 0.0) {
            return Err(format!("the new threshold {} is not a positive number", ready.threshold));
        }
        crate::teach::promote(in_force).map_err(|e| e.to_string())?;
        let threshold = ready.threshold;
        self.ready = Some(ready);
        // The operator's sensitivity (if any) is applied to the new threshold at the next part.
        self.applied_sensitivity = 0;
        tracing::info!("taught calibration in force: {} (threshold {threshold})", in_force.display());
        Ok(threshold)
    }

    /// A model that does not load from a freshly installed slot: back to the previous slot, once.
    fn roll_back_once(&mut self, why: &crate::Error) {
        if self.rolled_back || self.config.model.bundle.is_none() {
            return;
        }
        let Ok(slots) = crate::slots::Slots::of(&self.config, Path::new("box.toml")) else { return };
        if slots.previous().is_none() {
            return;
        }
        self.rolled_back = true;
        match slots.rollback() {
            Ok(slot) => {
                tracing::error!("the model in the current slot does not load ({why}); rolled back to slot {slot}")
            }
            Err(e) => tracing::error!("the model does not load ({why}), and rolling back failed: {e}"),
        }
    }

    fn inspect(&mut self, job: &Job) -> (Done, Option<(RgbImage, CropGeometry)>) {
        let source_error =
            |reason: &str| edge_ad_core::Error::Source { name: "the frame source".into(), reason: reason.into() };
        let mut done = Done {
            id: job.id,
            frame: String::new(),
            result: Err(source_error("no frame taken")),
            latency_ms: 0.0,
            last: false,
        };
        let (Some(source), Some(ready)) = (self.source.as_mut(), self.ready.as_mut()) else {
            done.result = Err(source_error("the frame path is not ready"));
            return (done, None);
        };
        let frame = match source.next_frame() {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                done.result = Err(e);
                return (done, None);
            }
            None => {
                done.result = Err(source_error("exhausted"));
                return (done, None);
            }
        };
        done.frame = frame.name.clone();
        // The operator changed the sensitivity: the threshold follows from the next part on.
        let asked = self.sensitivity.load(Ordering::Relaxed);
        if asked != self.applied_sensitivity && asked != 0 {
            ready.threshold =
                edge_ad_core::decision::with_sensitivity(&ready.calibration.threshold, f32::from_bits(asked)).value;
            self.applied_sensitivity = asked;
        }
        let inspection = ready.inspector.inspect(&frame.image);
        done.latency_ms = job.triggered.elapsed().as_secs_f64() * 1e3;
        match inspection {
            Ok(i) => {
                let threshold = ready.threshold;
                done.result = Ok(Scored { verdict: decide(i.score, threshold), score: i.score, threshold });
                (done, Some((frame.image, i.geometry)))
            }
            Err(e) => {
                done.result = Err(e);
                (done, None)
            }
        }
    }

    fn keep(&mut self, id: u32, name: &str, frame: &RgbImage, geometry: &CropGeometry, scored: Scored) {
        let Scored { verdict, score, threshold } = scored;
        let every = self.config.archive.as_ref().map_or(0, |a| a.ok_every);
        let sampled = verdict == Verdict::Ok && every > 0 && {
            self.ok_seen += 1;
            self.ok_seen.is_multiple_of(every)
        };
        let archived = self.archive.is_some() && (verdict == Verdict::Ng || sampled);
        let live = self.live.as_ref().filter(|l| l.wants());
        if !archived && self.display.is_none() && live.is_none() {
            return;
        }
        let Some(ready) = self.ready.as_mut() else { return };
        let side = ready.inspector.working_side();
        let footer = self.footer.lock().map(|f| f.clone()).unwrap_or_default();
        if let Some(live) = live {
            // Copies only: the page's request draws it, off the frame path.
            let (map, geometry) = (ready.inspector.map().to_vec(), *geometry);
            let caption = (verdict, score, threshold, footer.clone());
            live.offer(LiveFrame { frame: frame.clone(), map, side, geometry, caption });
        }
        if !archived && self.display.is_none() {
            return;
        }
        let map = edge_ad_core::output::map_at_source(ready.inspector.map(), side, geometry).ok();
        let caption = Caption { verdict: Some(verdict), score, threshold, footer: &footer };
        let overlay = crate::overlay::draw(frame, map.as_deref(), &caption);
        if let Some(d) = &self.display {
            if let Err(e) = d.show(&overlay) {
                tracing::warn!("display: {e}");
            }
        }
        if let (true, Some(archive)) = (archived, &self.archive) {
            let stamp = super::unix_ms();
            let stem = format!("{stamp:013}-{id:08}-{}", verdict.as_str());
            let sidecar = crate::archive::Sidecar {
                part: id,
                frame: name.to_string(),
                verdict: verdict.as_str(),
                score: score.is_finite().then_some(score),
                threshold,
                time_unix_ms: stamp as u64,
            };
            if !archive.offer(Entry { stem, image: overlay, sidecar }) {
                tracing::warn!("archive: writer behind, part {id} not kept ({} dropped)", archive.dropped());
            }
        }
    }
}
