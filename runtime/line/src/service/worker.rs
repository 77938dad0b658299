//! The inspection thread: it owns the frame source, the model and the calibration, (re)opens
//! whatever is missing, and grabs one frame per job. It hands each frame to the least busy of its
//! inspection lanes (`lanes.rs`: one on a triggered line, one per part in flight in
//! free-run); the collector (`keep.rs`) sends the verdicts back in the parts' order, and
//! only then draws the overlay for the archive and the display.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_ad_core::decision::Verdict;
use edge_ad_core::pipeline::Inspector;
use edge_ad_core::setup::{Ready, Station};
use edge_ad_core::source::{FrameSource, SourceHealth};
use edge_ad_plc::Fault;
use image::RgbImage;

use super::keep::{Collector, KeepRule};
use super::lanes::{self, Frame, Lane, LaneWork, Outcome};
use crate::archive::Archive;
use crate::config::BoxConfig;
use crate::plant::web::LiveView;

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
    /// The source had run out before this part was triggered (free-run with parts in flight):
    /// there was no part, and nothing is shown for it.
    pub no_frame: bool,
}

/// Why a part has no frame to score, as an error of the frame source (the part is NG).
pub(super) fn source_error(reason: &str) -> edge_ad_core::Error {
    edge_ad_core::Error::Source { name: "the frame source".into(), reason: reason.into() }
}

/// A scored part: the verdict is decided once, in the lane that scored it.
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
    /// Where verdicts go, in order, and parts are kept; the collector thread takes it.
    collector: Option<Collector>,
    /// Parts handed on so far: the next part's place in the order.
    parts: u64,
    /// The last frame of the source was handed on (a replayed folder ran out).
    source_ended: bool,
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
    /// The calibration's frame path and threshold. The lanes score with forks of it: whenever it
    /// is set, every lane has been handed one.
    ready: Option<Ready>,
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
        let ok_every = config.archive.as_ref().map_or(0, |a| a.ok_every);
        let collector = Collector { footer, archive, display, live, ok_every, ok_seen: 0 };
        Self {
            config,
            collector: Some(collector),
            parts: 0,
            source_ended: false,
            sensitivity,
            applied_sensitivity: 0,
            shots_writing: Arc::default(),
            last_shot: 0,
            station: None,
            loaded_bundle: None,
            rolled_back: false,
            source: None,
            ready: None,
        }
    }

    /// Serves jobs until the job channel closes; `wrap` tags reports for the main loop's channel.
    /// The lanes and the collector run on threads of their own within it; it returns when they
    /// have finished (the archive has written what was queued). A lane or the collector that
    /// ends early (a panic) ends it too, which the main loop takes as the worker's death.
    pub fn run<E: Send + 'static>(mut self, jobs: Receiver<Work>, events: Sender<E>, wrap: fn(Report) -> E) {
        let lanes = self.config.parts_in_flight();
        let Some(collector) = self.collector.take() else { return };
        let keep = collector.keep_rule();
        std::thread::scope(|scope| {
            let (to_collector, outcomes) = channel::<Outcome>();
            let told = events.clone();
            let collector = std::thread::Builder::new()
                .name("verdicts".into())
                .spawn_scoped(scope, move || collector.run(outcomes, told, wrap));
            let Ok(collector) = collector else {
                tracing::error!("cannot start the verdicts thread");
                return;
            };
            let mut started = Vec::with_capacity(lanes);
            for index in 0..lanes {
                match Lane::start(scope, index, to_collector.clone()) {
                    Ok(lane) => started.push(lane),
                    Err(e) => {
                        tracing::error!("cannot start inspection lane {index}: {e}");
                        return;
                    }
                }
            }
            self.serve(&started, &jobs, &events, wrap, &to_collector, &keep, &|| collector.is_finished());
            // Dropping the lanes' and our senders (on the way out) lets the lanes, then the
            // collector, finish.
        });
    }

    /// The job loop of [`Self::run`].
    #[allow(clippy::too_many_arguments)]
    fn serve<E: Send + 'static>(
        &mut self,
        lanes: &[Lane<'_>],
        jobs: &Receiver<Work>,
        events: &Sender<E>,
        wrap: fn(Report) -> E,
        to_collector: &Sender<Outcome>,
        keep: &KeepRule,
        collector_ended: &dyn Fn() -> bool,
    ) {
        let mut reported: Option<Option<(Fault, String)>> = None;
        let mut next_check = Instant::now();
        loop {
            if collector_ended() || lanes.iter().any(Lane::has_ended) {
                tracing::error!("an inspection thread ended unexpectedly");
                return;
            }
            if Instant::now() >= next_check {
                let status = self.establish(lanes);
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
                                    return;
                                }
                            }
                        }
                        Err(why) => {
                            if events.send(wrap(Report::Shot(Err(why)))).is_err() {
                                return;
                            }
                        }
                    }
                    continue;
                }
                Ok(Work::Load) => {
                    let loaded = self.load_taught(lanes);
                    if events.send(wrap(Report::Loaded(loaded))).is_err() {
                        return;
                    }
                    next_check = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if !self.hand_on(lanes, job, keep, to_collector) {
                return;
            }
            next_check = Instant::now();
        }
    }

    /// Opens what is missing; `None` when the box can inspect, else the fault and why.
    fn establish(&mut self, lanes: &[Lane<'_>]) -> Option<(Fault, String)> {
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
                    if let Err(e) = self.equip_lanes(lanes) {
                        self.ready = None;
                        return Some((Fault::Model, e));
                    }
                }
                Err(e) => return Some((Fault::Calibration, e.to_string())),
            }
        }
        if self.source.is_none() {
            match crate::sources::open_source(&self.config.source) {
                Ok(s) => {
                    self.source = Some(s);
                    self.source_ended = false;
                }
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
        let grabbed = source.next_frame();
        // A shot may take the last frame of a replayed folder: the parts after it have none.
        self.source_ended |= grabbed.is_none() || source.remaining() == Some(0);
        let frame = match grabbed {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the source has no more frames".into()),
        };
        self.last_shot = number;
        Ok((dir, name, frame.image))
    }

    /// The taught candidate, read and checked as a calibration is at start (signature, model,
    /// projector), then put in force on disk and here; on any error the one in force stays.
    fn load_taught(&mut self, lanes: &[Lane<'_>]) -> std::result::Result<f32, String> {
        let Some(station) = self.station.as_ref() else {
            return Err("the model is not loaded".into());
        };
        let in_force = self.config.model.calibration.clone();
        let ready = station.inspector(&crate::teach::candidate(&in_force)).map_err(|e| e.to_string())?;
        if !(ready.threshold.is_finite() && ready.threshold > 0.0) {
            return Err(format!("the new threshold {} is not a positive number", ready.threshold));
        }
        // Every lane's frame path first: a fork that fails leaves the old calibration in force.
        let forks = self.forks(&ready, lanes.len())?;
        crate::teach::promote(&in_force).map_err(|e| e.to_string())?;
        let threshold = ready.threshold;
        self.ready = Some(ready);
        // The operator's sensitivity (if any) is applied to the new threshold at the next part.
        self.applied_sensitivity = 0;
        // Parts already with a lane finish on the old calibration; the next ones use the new.
        self.hand_forks(lanes, forks)?;
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

    /// Gives every lane a fork of the frame path in force.
    fn equip_lanes(&self, lanes: &[Lane<'_>]) -> std::result::Result<(), String> {
        let Some(ready) = self.ready.as_ref() else { return Ok(()) };
        let forks = self.forks(ready, lanes.len())?;
        self.hand_forks(lanes, forks)
    }

    /// `count` forks of `ready`'s frame path, each searching with the threads a lane gets (all
    /// of `model.threads` with one lane; one each with several, unless set).
    fn forks(&self, ready: &Ready, count: usize) -> std::result::Result<Vec<Inspector>, String> {
        let threads = match (count, self.config.model.threads) {
            (0 | 1, _) => self.station.as_ref().map_or(1, |s| s.threads()),
            (_, Some(t)) => t,
            (_, None) => 1,
        };
        (0..count)
            .map(|_| ready.inspector.fork(threads).map_err(|e| format!("cannot make a frame path for a lane: {e}")))
            .collect()
    }

    /// Hands one fork to each lane: the parts it already has finish on the frame path before.
    /// (A lane that is gone ends the worker at the top of its loop, before the next part.)
    fn hand_forks(&self, lanes: &[Lane<'_>], forks: Vec<Inspector>) -> std::result::Result<(), String> {
        for (lane, fork) in lanes.iter().zip(forks) {
            if !lane.send(LaneWork::Use(Box::new(fork))) {
                return Err("an inspection lane is gone".into());
            }
        }
        Ok(())
    }

    /// Grabs the part's frame and hands it to the least busy lane; a part that cannot be
    /// grabbed goes to the collector as an error (NG), in its place. `false`: a lane or the
    /// collector is gone.
    fn hand_on(&mut self, lanes: &[Lane<'_>], job: Job, keep: &KeepRule, to_collector: &Sender<Outcome>) -> bool {
        let seq = self.parts;
        self.parts += 1;
        let failed = |job: &Job, e: edge_ad_core::Error, last: bool| Outcome {
            seq,
            done: Done {
                id: job.id,
                frame: String::new(),
                result: Err(e),
                latency_ms: job.triggered.elapsed().as_secs_f64() * 1e3,
                last,
                no_frame: false,
            },
            kept: None,
        };
        let free_run = matches!(self.config.trigger, crate::config::TriggerConfig::FreeRun { .. });
        if self.source_ended && free_run {
            // The box triggered itself after the last frame went: not a part. (A PLC's trigger
            // is a part: it gets NG below, as the source has no frame for it.)
            let mut outcome = failed(&job, source_error("exhausted"), true);
            outcome.done.no_frame = true;
            return to_collector.send(outcome).is_ok();
        }
        let (Some(source), Some(ready)) = (self.source.as_mut(), self.ready.as_mut()) else {
            return to_collector.send(failed(&job, source_error("the frame path is not ready"), false)).is_ok();
        };
        let grabbed = source.next_frame();
        // Whether that was the source's last frame, read or not (a replayed folder's last file
        // may fail to decode): the service ends after this part.
        let last = grabbed.is_none() || source.remaining() == Some(0);
        self.source_ended = last;
        let frame = match grabbed {
            Some(Ok(f)) => f,
            Some(Err(e)) => return to_collector.send(failed(&job, e, last)).is_ok(),
            None => return to_collector.send(failed(&job, source_error("exhausted"), true)).is_ok(),
        };
        // The operator changed the sensitivity: the threshold follows from the next part on.
        let asked = self.sensitivity.load(Ordering::Relaxed);
        if asked != self.applied_sensitivity && asked != 0 {
            ready.threshold =
                edge_ad_core::decision::with_sensitivity(&ready.calibration.threshold, f32::from_bits(asked)).value;
            self.applied_sensitivity = asked;
        }
        let keep = keep.now();
        let frame = Frame { seq, job, name: frame.name, image: frame.image, threshold: ready.threshold, last, keep };
        match lanes::least_busy(lanes) {
            Some(lane) => lane.send(LaneWork::Part(Box::new(frame))),
            None => false,
        }
    }
}
