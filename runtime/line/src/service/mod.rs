//! `edge-ad serve`: the box on the line. It wires the stages around the PLC handshake:
//!
//! - the main thread owns the [`Handshake`] and the counters, and does nothing slow: it turns
//!   triggers into jobs, verdicts into lines, and writes one [`records::Event`] per event;
//! - a worker thread ([`worker`]) owns the frame source and the calibration: it grabs a frame per
//!   job and hands it to an inspection lane (`lanes.rs`: one on a triggered line, one per part in
//!   flight in free-run, `trigger.in_flight`); a collector thread (`keep.rs`) sends the verdicts
//!   back in the parts' order and only then draws the overlay for the archive and the display.
//!   The worker also reports whether the box can inspect (camera present, calibration loaded)
//!   whenever that changes, and keeps retrying what is missing;
//! - trigger threads feed signals (see [`crate::trigger`]); the archive writes on its own;
//! - the plant thread ([`crate::plant`], when `[modbus]` or `[mqtt]` is configured) mirrors the
//!   lines and results over Modbus TCP and publishes every record to MQTT; the main loop only
//!   writes its board and offers to its bounded queue, never waits on it.
//!
//! The lines are in the safe state until the worker says the box can inspect, and go back to it
//! on every fault, on SIGTERM/SIGINT, and on the way out. [`serve_on`] runs over any
//! `embedded_hal` output pins (tests use in-memory pins); [`serve`] opens the configured GPIO
//! lines on Linux.

mod keep;
mod lanes;
pub mod records;
pub mod worker;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edge_ad_core::decision::Verdict;
use edge_ad_plc::{Fault, Handshake, Hold, LineStates, Notice, Outputs, Shown, Timing, TriggerOutcome, VerdictOutcome};
use embedded_hal::digital::OutputPin;

use crate::archive::Archive;
use crate::config::{BoxConfig, TriggerConfig};
use crate::counters::{bump, Counters};
use crate::error::{Error, Result};
use crate::plant::{Change, Command, Counts, Plant, Recent, Teaching};
use crate::trigger::{self, Signal};
use records::{Event, Records};
use worker::{Display, Done, Job, Report, Work, Worker};

/// What the main loop hears.
enum Heard {
    Line(Signal),
    Worker(Report),
    Operator(Command),
    /// The teach thread made the candidate calibration (or says why not).
    Taught(std::result::Result<(), String>),
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
            gap: ms(p.result_gap_ms),
        },
        None => Timing {
            hold: Hold::Pulse { ok: 0, ng: 0 },
            fixed_offset: None,
            deadline: ms(10_000),
            missed_pulse: 0,
            gap: 0,
        },
    }
}

pub(crate) fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

fn fault_name(fault: Fault) -> String {
    format!("{fault:?}").to_lowercase()
}

/// Runs the service on the configured GPIO lines (and framebuffer) until `stop` is set (or a
/// stdin trigger closes). Errors that end it: a bad configuration, output lines that cannot be
/// requested or driven, records that cannot be written.
#[cfg(target_os = "linux")]
pub fn serve(config: &BoxConfig, config_path: &Path, stop: Arc<AtomicBool>) -> Result<()> {
    let outputs = match &config.plc {
        Some(p) => crate::linux::gpio::open_outputs(p).map_err(|e| Error::bad_file(config_path, e))?,
        None => Outputs::none(),
    };
    let display = match config.display.as_deref() {
        Some(d) => Some(Box::new(crate::linux::framebuffer::Framebuffer::open(d)?) as Box<dyn Display>),
        None => None,
    };
    serve_on(config, config_path, outputs, display, &stop)
}

/// Runs the service over `outputs` (any `embedded_hal` pins) and an optional `display` until
/// `stop` is set, the trigger input closes, or a replayed source runs out. The lines start and
/// end in the safe state.
pub fn serve_on<P>(
    config: &BoxConfig,
    config_path: &Path,
    outputs: Outputs<P>,
    display: Option<Box<dyn Display>>,
    stop: &AtomicBool,
) -> Result<()>
where
    P: OutputPin,
    P::Error: std::fmt::Display,
{
    // More than one part in flight only for a box that triggers itself (free-run).
    let mut hs = Handshake::new(outputs, timing(config)).with_depth(config.parts_in_flight());
    hs.start().map_err(Error::plc)?;
    let result = Service::start(config, config_path, display).and_then(|s| s.run(&mut hs, stop));
    // Whatever ended the loop, the lines end safe.
    if let Err(e) = hs.shutdown() {
        tracing::error!("plc: cannot drive the safe state on the way out: {e}");
    }
    result
}

/// The main loop's state: everything but the handshake.
struct Service {
    rx: std::sync::mpsc::Receiver<Heard>,
    jobs: Sender<Work>,
    worker: std::thread::JoinHandle<()>,
    free_run: Option<Duration>,
    counters: Counters,
    counters_path: std::path::PathBuf,
    footer: Arc<Mutex<String>>,
    dropped: Option<(u64, Arc<AtomicU64>)>,
    records: Records,
    /// What the worker last said: `None` the box can inspect.
    worker_status: Option<(Fault, String)>,
    /// The part whose deadline passed, until it comes back.
    stalled: Option<u32>,
    /// No more triggers: finish the part in flight, then stop.
    closing: bool,
    /// Counters changed since they were last saved.
    dirty: bool,
    /// Modbus and MQTT, when configured.
    plant: Option<Plant>,
    /// What the plant's board last got: the lines, the fault and the counts.
    mirrored: Option<(LineStates, Option<Fault>, Counts)>,
    /// MQTT drops counted before this run (from the counters file).
    mqtt_dropped_before: u64,
    /// The operator's sensitivity for the worker (f32 bits; 0: the configuration's).
    sensitivity: Arc<AtomicU32>,
    /// A teach from the page.
    teacher: Teacher,
}

/// What a teach from the page needs, and who asked for what is under way.
struct Teacher {
    /// For the model and the calibration's place.
    config: BoxConfig,
    /// The teach thread's way back to the main loop.
    events: Sender<Heard>,
    /// Who asked for the calibration in the making.
    applying: Option<String>,
    /// Who asked for the shots the worker has not yet taken, in order.
    shots: std::collections::VecDeque<String>,
}

impl Service {
    fn start(config: &BoxConfig, config_path: &Path, display: Option<Box<dyn Display>>) -> Result<Self> {
        let (tx, rx) = channel::<Heard>();
        let external_trigger =
            trigger::spawn(&config.trigger, tx.clone(), Heard::Line).map_err(|e| Error::bad_file(config_path, e))?;
        #[cfg(target_os = "linux")]
        if let (Some(plc), Some(ack)) = (&config.plc, config.plc.as_ref().and_then(|p| p.ack.as_ref())) {
            trigger::spawn_acknowledge(&plc.chip, ack, tx.clone(), Heard::Line)
                .map_err(|e| Error::bad_file(config_path, e))?;
        }
        let free_run = match config.trigger {
            TriggerConfig::FreeRun { interval_ms, .. } => Some(Duration::from_millis(interval_ms)),
            _ => None,
        };
        debug_assert!(free_run.is_some() != external_trigger);

        let now_unix = (unix_ms() / 1000) as u64;
        let counters_path = config.counters.path.clone();
        let counters = Counters::load_or_new(&counters_path, now_unix)?;
        let footer = Arc::new(Mutex::new(counters.short_line()));
        let archive = config.archive.as_ref().map(Archive::start).transpose()?;
        let dropped = archive.as_ref().map(|a| (counters.archive_dropped, a.dropped_handle()));
        let records = Records::open(config.records.path.as_deref())?;
        let plant = Plant::start(config, tx.clone(), Heard::Line, Heard::Operator)
            .map_err(|e| Error::bad_file(config_path, e))?;
        let live = plant.as_ref().and_then(Plant::live_view);
        let sensitivity = Arc::new(AtomicU32::new(0));

        let teacher = Teacher { config: config.clone(), events: tx.clone(), applying: None, shots: Default::default() };
        let (jobs, jobs_rx) = channel::<Work>();
        let worker = {
            let worker = Worker::new(config.clone(), footer.clone(), archive, display, live, sensitivity.clone());
            std::thread::Builder::new()
                .name("inspect".into())
                .spawn(move || worker.run(jobs_rx, tx, Heard::Worker))
                .map_err(|source| Error::Thread { name: "inspect".into(), source })?
        };
        let mqtt_dropped_before = counters.mqtt_dropped;
        let mut service = Self {
            rx,
            jobs,
            worker,
            free_run,
            counters,
            counters_path,
            footer,
            dropped,
            records,
            worker_status: Some((Fault::Stopped, "starting".into())),
            stalled: None,
            closing: false,
            dirty: false,
            plant,
            mirrored: None,
            mqtt_dropped_before,
            sensitivity,
            teacher,
        };
        service.record(Event::Start { config: config_path.display().to_string() });
        Ok(service)
    }

    fn run<P>(mut self, hs: &mut Handshake<P>, stop: &AtomicBool) -> Result<()>
    where
        P: OutputPin,
        P::Error: std::fmt::Display,
    {
        let clock = Instant::now();
        let now = || clock.elapsed().as_micros() as u64;
        let mut last_free_run: Option<Instant> = None;
        let mut last_saved = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            // The worker ends only when the job channel closes, below: finished before that, it died.
            if self.worker.is_finished() {
                return Err(self.worker_died(hs));
            }
            let (notice, due) = hs.poll(now()).map_err(Error::plc)?;
            self.on_notice(notice, hs.unshown());
            self.mirror(hs);
            if self.closing && (hs.is_ready() || hs.fault().is_some()) {
                break;
            }
            if self.dirty && last_saved.elapsed() >= Duration::from_secs(1) {
                self.save();
                last_saved = Instant::now();
            }
            // Pending events first: a free-run trigger must not overtake a verdict or a close.
            let heard = match self.rx.try_recv() {
                Ok(e) => e,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let mut wait = Duration::from_millis(100);
                    if let Some(interval) = self.free_run {
                        if hs.accepts() && !self.closing {
                            let since = last_free_run.map_or(interval, |t| t.elapsed());
                            if since >= interval {
                                last_free_run = Some(Instant::now());
                                self.on_trigger(hs, now())?;
                                continue;
                            }
                            wait = wait.min(interval - since);
                        }
                    }
                    if let Some(d) = due {
                        wait = wait.min(Duration::from_micros(d.saturating_sub(now())));
                    }
                    match self.rx.recv_timeout(wait) {
                        Ok(e) => e,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match heard {
                Heard::Line(Signal::Trigger) => self.on_trigger(hs, now())?,
                Heard::Line(Signal::Acknowledge) => hs.acknowledge(now()).map_err(Error::plc)?,
                Heard::Line(Signal::Closed) => {
                    tracing::info!("the trigger input closed; finishing the part in flight");
                    self.closing = true;
                }
                Heard::Worker(Report::Status(status)) => self.on_status(hs, now(), status)?,
                Heard::Worker(Report::Done(done)) => self.on_done(hs, now(), done)?,
                Heard::Operator(command) => self.on_command(hs, now(), command)?,
                Heard::Worker(Report::Shot(taken)) => self.on_teach(false, taken),
                Heard::Taught(Ok(())) => {
                    // The candidate is on disk: the worker loads and checks it between parts.
                    if self.jobs.send(Work::Load).is_err() {
                        self.on_teach(true, Err("the inspection thread is gone".into()));
                    }
                }
                Heard::Taught(Err(why)) => self.on_teach(true, Err(why)),
                Heard::Worker(Report::Loaded(loaded)) => {
                    self.on_teach(true, loaded.map(|t| format!("in force, threshold {t:.4}")))
                }
            }
        }
        if self.worker.is_finished() {
            return Err(self.worker_died(hs));
        }
        let shut = hs.shutdown();
        self.record(Event::Stop { unshown: hs.unshown().to_vec() });
        self.save();
        shut.map_err(Error::plc)?;
        if let Some(p) = self.plant.take() {
            p.update(|b| b.lines = hs.lines());
            // MQTT gets a moment to send what is queued; what never reaches the broker is
            // counted as dropped.
            let dropped = self.mqtt_dropped_before + p.stop();
            if dropped != self.counters.mqtt_dropped {
                self.mqtt_dropped_before = dropped;
                self.save();
            }
        }
        let Self { jobs, worker, .. } = self;
        drop(jobs);
        // The worker ends when the job channel closes, after its current part; the archive then
        // writes what is queued.
        let _ = worker.join();
        Ok(())
    }

    /// The inspection thread died (a panic): the safe state, a fault record, the counters saved,
    /// and an error, so that the service exits non-zero and its supervisor restarts it.
    fn worker_died<P>(&mut self, hs: &mut Handshake<P>) -> Error
    where
        P: OutputPin,
        P::Error: std::fmt::Display,
    {
        let why = "the inspection thread stopped unexpectedly";
        if let Err(e) = hs.set_fault(Fault::Model) {
            tracing::error!("plc: {e}");
        }
        bump(&mut self.counters.faults);
        tracing::error!("safe state: {why}");
        let unshown = hs.unshown().to_vec();
        self.record(Event::Fault { fault: fault_name(Fault::Model), part: None, error: Some(why.into()), unshown });
        self.save();
        Error::Thread { name: "inspect".into(), source: std::io::Error::other(why) }
    }

    /// Writes one record, and offers it to MQTT. A record that cannot be written (a full disk)
    /// is logged and counted, never the end of the service: the PLC's lines do not depend on it.
    fn record(&mut self, event: Event) {
        let written = event.encode().and_then(|line| {
            if let Some(p) = &self.plant {
                p.publish(event.topic(), line.clone(), false);
            }
            self.records.write_encoded(&line)
        });
        if let Err(e) = written {
            bump(&mut self.counters.records_dropped);
            self.dirty = true;
            tracing::error!("records: {e}");
        }
    }

    /// The counts the plant's board shows.
    fn counts(&self) -> Counts {
        let c = &self.counters;
        Counts {
            triggers: c.triggers,
            ok: c.ok,
            ng: c.ng,
            missed: c.missed,
            late: c.late,
            errors: c.errors,
            faults: c.faults,
            mqtt_dropped: self.mqtt_dropped_before + self.plant.as_ref().map_or(0, Plant::mqtt_dropped),
        }
    }

    /// Copies the lines, the fault and the counts to the plant's board when they changed.
    fn mirror<P: OutputPin>(&mut self, hs: &Handshake<P>) {
        let Some(plant) = &self.plant else { return };
        let now = (hs.lines(), hs.fault(), self.counts());
        if self.mirrored != Some(now) {
            plant.update(|b| (b.lines, b.fault, b.counts) = now);
            self.mirrored = Some(now);
        }
    }

    fn save(&mut self) {
        if let Some((before, now)) = &self.dropped {
            self.counters.archive_dropped = before + now.load(Ordering::Relaxed);
        }
        self.counters.mqtt_dropped = self.counts().mqtt_dropped;
        if let Err(e) = self.counters.save(&self.counters_path) {
            tracing::error!("counters: {e}");
        }
        if let Some(p) = &self.plant {
            let summary = self.counters.summary();
            // A retained snapshot: a dashboard that subscribes later sees the latest at once.
            if let Ok(snapshot) = serde_json::to_vec(&summary) {
                p.publish("counters", snapshot, true);
            }
            p.update(|b| b.counters = summary);
        }
        if let Ok(mut f) = self.footer.lock() {
            *f = self.counters.short_line();
        }
        self.dirty = false;
    }

    /// What the handshake's poll did; `unshown`: the verdicts its last fault dropped.
    fn on_notice(&mut self, notice: Option<Notice>, unshown: &[u32]) {
        match notice {
            Some(Notice::Late(id)) => {
                bump(&mut self.counters.late);
                bump(&mut self.counters.ng);
                self.dirty = true;
                self.record(Event::Late { part: id, verdict: Verdict::Ng.as_str() });
            }
            Some(Notice::Stalled(id)) => {
                bump(&mut self.counters.faults);
                self.stalled = Some(id);
                self.dirty = true;
                let unshown = unshown.to_vec();
                self.record(Event::Fault { fault: fault_name(Fault::Stalled), part: Some(id), error: None, unshown });
            }
            None => {}
        }
    }

    fn on_status<P>(&mut self, hs: &mut Handshake<P>, now: u64, status: Option<(Fault, String)>) -> Result<()>
    where
        P: OutputPin,
        P::Error: std::fmt::Display,
    {
        match &status {
            Some((fault, why)) => {
                let new_fault = hs.fault() != Some(*fault);
                if new_fault {
                    if *fault != Fault::Stopped {
                        bump(&mut self.counters.faults);
                    }
                    hs.set_fault(*fault).map_err(Error::plc)?;
                }
                // A new fault, or the same one for another reason (an unsigned calibration
                // replaced a missing one): the operator reads why in the records.
                if new_fault || self.worker_status.as_ref() != status.as_ref() {
                    tracing::error!("safe state: {why}");
                    if let Some(p) = &self.plant {
                        p.update(|b| b.fault_reason = Some(why.clone()));
                    }
                    let unshown = if new_fault { hs.unshown().to_vec() } else { Vec::new() };
                    let error = Some(why.clone());
                    self.record(Event::Fault { fault: fault_name(*fault), part: None, error, unshown });
                }
            }
            None => {
                if self.stalled.is_none() && hs.fault().is_some() {
                    hs.clear_fault(now).map_err(Error::plc)?;
                    tracing::info!("ready");
                    self.record(Event::Ready);
                }
            }
        }
        self.worker_status = status;
        self.dirty = true;
        Ok(())
    }

    /// A logged-in operator's command from the web page: applied, recorded with who asked.
    fn on_command<P>(&mut self, hs: &mut Handshake<P>, now: u64, command: Command) -> Result<()>
    where
        P: OutputPin,
        P::Error: std::fmt::Display,
    {
        let teach_folder = || crate::teach::folder(&self.teacher.config.model.calibration);
        let (by, what, value) = match command {
            Command::Sensitivity { value, by } => {
                self.sensitivity.store(value.to_bits(), Ordering::Relaxed);
                if let Some(p) = &self.plant {
                    p.update(|b| b.sensitivity = Some(value));
                }
                tracing::info!("{by} set the sensitivity to {value}");
                (by, "sensitivity", Some(value.to_string()))
            }
            Command::AcknowledgeFault { by } => {
                // A stalled part is the fault that latches: the operator says to go on. If the
                // frame path is still stuck, the next part stalls again.
                let fault = hs.fault().map(fault_name);
                if self.stalled.take().is_some() && self.worker_status.is_none() {
                    hs.clear_fault(now).map_err(Error::plc)?;
                    self.record(Event::Ready);
                }
                tracing::info!("{by} acknowledged the fault ({})", fault.as_deref().unwrap_or("none"));
                (by, "fault acknowledged", fault)
            }
            Command::TeachShot { by } => {
                // The worker takes it between parts and says how it went (`on_teach`).
                if self.jobs.send(Work::Shot).is_ok() {
                    self.teacher.shots.push_back(by.clone());
                }
                (by, "teach shot asked", None)
            }
            Command::TeachClear { by } => {
                let cleared = crate::teach::clear(&teach_folder()).map_err(|e| e.to_string());
                let message = match &cleared {
                    Ok(()) => "the shots are cleared".to_string(),
                    Err(why) => format!("cannot clear the shots: {why}"),
                };
                let shots = crate::teach::shot_names(&teach_folder());
                if let Some(p) = &self.plant {
                    p.update(|b| b.teach = Teaching { shots, busy: false, message: Some(message) });
                }
                (by, "teach shots cleared", cleared.err())
            }
            Command::TeachApply { by } if self.teacher.applying.is_none() => {
                let (config, events) = (self.teacher.config.clone(), self.teacher.events.clone());
                let shots = crate::teach::shot_names(&teach_folder()).len();
                // Compiling the model and running the shots takes seconds: on a thread of its
                // own, while the calibration in force goes on scoring.
                let spawned = std::thread::Builder::new().name("teach".into()).spawn(move || {
                    let made = crate::teach::make_candidate(&config).map(drop).map_err(|e| e.to_string());
                    let _ = events.send(Heard::Taught(made));
                });
                self.teacher.applying = Some(by.clone());
                match spawned {
                    Err(e) => self.on_teach(true, Err(format!("cannot start the teach thread: {e}"))),
                    Ok(_) => {
                        if let Some(p) = &self.plant {
                            p.update(|b| {
                                b.teach.busy = true;
                                b.teach.message = Some(format!("making a calibration from {shots} shots"));
                            });
                        }
                    }
                }
                (by, "teach apply asked", Some(format!("{shots} shots")))
            }
            Command::TeachApply { by } => (by, "teach apply refused", Some("a calibration is being made".into())),
        };
        if let Some(p) = &self.plant {
            p.update(|b| {
                let change =
                    Change { by: by.clone(), what: what.into(), value: value.clone(), time_unix_ms: unix_ms() as u64 };
                b.changes.push_front(change);
                b.changes.truncate(crate::plant::CHANGES);
            });
        }
        self.record(Event::Operator { by, what: what.into(), value });
        Ok(())
    }

    /// How a teach step ended (a shot, or with `applying` the new calibration): the page's teach
    /// state and a record, by whoever asked.
    fn on_teach(&mut self, applying: bool, outcome: std::result::Result<String, String>) {
        let what = if applying { "calibration applied" } else { "teach shot" };
        let by = if applying { self.teacher.applying.take() } else { self.teacher.shots.pop_front() };
        let by = by.unwrap_or_else(|| "operator".into());
        let folder = crate::teach::folder(&self.teacher.config.model.calibration);
        let message = match &outcome {
            Ok(v) => format!("{what}: {v}"),
            Err(why) => {
                tracing::warn!("{what}: {why}");
                format!("{what} failed: {why}")
            }
        };
        if let Some(p) = &self.plant {
            let shots = crate::teach::shot_names(&folder);
            p.update(|b| {
                b.teach.shots = shots;
                b.teach.message = Some(message.clone());
                if applying {
                    b.teach.busy = false;
                }
            });
        }
        let value = Some(match outcome {
            Ok(v) => v,
            Err(why) => format!("failed: {why}"),
        });
        self.record(Event::Operator { by, what: what.into(), value });
    }

    fn on_trigger<P>(&mut self, hs: &mut Handshake<P>, now: u64) -> Result<()>
    where
        P: OutputPin,
        P::Error: std::fmt::Display,
    {
        bump(&mut self.counters.triggers);
        self.dirty = true;
        match hs.trigger(now).map_err(Error::plc)? {
            TriggerOutcome::Accepted(id) => {
                // A closed job channel means the worker died: the stall deadline turns that into a fault.
                let _ = self.jobs.send(Work::Part(Job { id, triggered: Instant::now() }));
                Ok(())
            }
            TriggerOutcome::Missed => {
                bump(&mut self.counters.missed);
                self.record(Event::Missed { fault: hs.fault().map(fault_name) });
                Ok(())
            }
        }
    }

    fn on_done<P>(&mut self, hs: &mut Handshake<P>, now: u64, done: Done) -> Result<()>
    where
        P: OutputPin,
        P::Error: std::fmt::Display,
    {
        self.dirty = true;
        if done.last {
            tracing::info!("the frame source has run out; stopping after this part");
            self.closing = true;
        }
        if done.no_frame {
            // Triggered after the source's last frame (free-run, parts in flight): no part, so
            // not counted as a trigger either.
            self.counters.triggers = self.counters.triggers.saturating_sub(1);
        }
        if self.stalled == Some(done.id) {
            // The stalled part came back: the frame path moves again.
            self.stalled = None;
            if self.worker_status.is_none() {
                hs.clear_fault(now).map_err(Error::plc)?;
                self.record(Event::Ready);
            }
            return Ok(());
        }
        if done.no_frame {
            // Nothing to show (a fault may have dropped it already).
            hs.withdraw(now, done.id).map_err(Error::plc)?;
            return Ok(());
        }
        // A part that could not be inspected is NG, never skipped.
        let (verdict, score, threshold, error) = match &done.result {
            Ok(s) => (s.verdict, Some(s.score), Some(s.threshold), None),
            Err(e) => (Verdict::Ng, None, None, Some(e.to_string())),
        };
        let shown = if verdict == Verdict::Ok { Shown::Ok } else { Shown::Ng };
        let outcome = hs.verdict(now, done.id, shown).map_err(Error::plc)?;
        if error.is_some() {
            bump(&mut self.counters.errors);
        }
        let late = match outcome {
            VerdictOutcome::Shown | VerdictOutcome::Held | VerdictOutcome::Queued => {
                match verdict {
                    Verdict::Ok => bump(&mut self.counters.ok),
                    Verdict::Ng => bump(&mut self.counters.ng),
                }
                self.counters.latency.add(done.latency_ms);
                false
            }
            VerdictOutcome::Late => true,
            VerdictOutcome::Stale => return Ok(()),
        };
        if let Ok(mut f) = self.footer.lock() {
            *f = self.counters.short_line();
        }
        if let Some(p) = &self.plant {
            let shown = if late { Verdict::Ng } else { verdict };
            p.update(|b| {
                b.results = b.results.wrapping_add(1);
                b.part = done.id;
                b.verdict = Some(shown);
                b.score = score.unwrap_or(f32::NAN);
                b.threshold = threshold.unwrap_or(f32::NAN);
                b.recent.push_front(Recent {
                    part: done.id,
                    frame: done.frame.clone(),
                    verdict: shown.as_str(),
                    score: score.filter(|s| s.is_finite()),
                    error: error.clone(),
                    latency_ms: done.latency_ms,
                    time_unix_ms: unix_ms() as u64,
                });
                b.recent.truncate(crate::plant::RECENT);
            });
        }
        let finite = |v: Option<f32>| v.filter(|v| v.is_finite());
        self.record(Event::Verdict {
            part: done.id,
            frame: done.frame,
            verdict: if late { Verdict::Ng.as_str() } else { verdict.as_str() },
            late,
            score: finite(score),
            threshold: finite(threshold),
            latency_ms: done.latency_ms,
            error,
        });
        Ok(())
    }
}
