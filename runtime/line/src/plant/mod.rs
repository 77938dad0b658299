//! The box on the plant network: a Modbus TCP server ([`modbus`]) that mirrors the PLC lines,
//! the last result and the counters and takes triggers, MQTT results ([`mqtt`]) to a broker, and
//! the operator's web page ([`web`]).
//!
//! All run on one small tokio runtime on their own thread (`plant`). The service's main loop
//! only writes the [`Board`] under a short lock and offers messages to a bounded queue, so the
//! PLC lines never wait on the network: a dead broker or a stuck Modbus client changes nothing
//! on them.

pub mod modbus;
pub mod mqtt;
pub mod web;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use edge_ad_core::decision::Verdict;
use edge_ad_plc::{Fault, LineStates};
use tokio::sync::Notify;

use crate::config::BoxConfig;
use crate::error::{Error, Result};
use crate::trigger::Signal;

/// Sends a signal to the service's main loop; `false` when it is gone.
pub type Signaller = Arc<dyn Fn(Signal) -> bool + Send + Sync>;

/// What a logged-in operator asks of the box (from the web page).
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Use this sensitivity from the next part on.
    Sensitivity {
        /// The sensitivity (in `edge_ad_core::decision::SENSITIVITY_RANGE`).
        value: f32,
        /// Who asked.
        by: String,
    },
    /// Acknowledge a latched fault (a stalled part): READY again if nothing else holds it off.
    AcknowledgeFault {
        /// Who asked.
        by: String,
    },
    /// Take a teach shot from the source (the next frame, between parts).
    TeachShot {
        /// Who asked.
        by: String,
    },
    /// Forget the teach shots taken so far.
    TeachClear {
        /// Who asked.
        by: String,
    },
    /// Make a calibration from the teach shots and put it in force once it is loaded and checked.
    TeachApply {
        /// Who asked.
        by: String,
    },
}

/// Where a teach from the page stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Teaching {
    /// The shots taken so far, in order (previews at `/teach/{name}`).
    pub shots: Vec<String>,
    /// A calibration is being made or loaded: no other teach action until it ends.
    pub busy: bool,
    /// What the last teach action came to.
    pub message: Option<String>,
}

/// Sends a command to the service's main loop; `false` when it is gone.
pub type Commander = Arc<dyn Fn(Command) -> bool + Send + Sync>;

/// Verdicts the board keeps for the page.
pub const RECENT: usize = 20;
/// Operator changes the board keeps for the page.
pub const CHANGES: usize = 10;

/// One recent verdict, as the page lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recent {
    /// The part (handshake id).
    pub part: u32,
    /// The frame's name.
    pub frame: String,
    /// `OK` or `NG`.
    pub verdict: &'static str,
    /// The score (`None`: not scored).
    pub score: Option<f32>,
    /// Why it could not be scored.
    pub error: Option<String>,
    /// Trigger to verdict.
    pub latency_ms: f64,
    /// When.
    pub time_unix_ms: u64,
}

/// One operator change, as the page lists it (the records have them all).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// Who.
    pub by: String,
    /// What (`sensitivity`, `fault acknowledged`).
    pub what: String,
    /// The new value, if any.
    pub value: Option<String>,
    /// When.
    pub time_unix_ms: u64,
}

/// The box's counts, as the Modbus registers show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Triggers seen.
    pub triggers: u64,
    /// OK verdicts shown.
    pub ok: u64,
    /// NG verdicts shown.
    pub ng: u64,
    /// Triggers missed.
    pub missed: u64,
    /// Late results.
    pub late: u64,
    /// Parts that could not be inspected.
    pub errors: u64,
    /// Faults.
    pub faults: u64,
    /// MQTT messages dropped.
    pub mqtt_dropped: u64,
}

/// What the plant network sees of the box: written by the main loop, read by the Modbus server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Board {
    /// The PLC lines as the handshake has them.
    pub lines: LineStates,
    /// The latched fault.
    pub fault: Option<Fault>,
    /// Verdicts decided since the service started (a new result changes it).
    pub results: u32,
    /// The last verdict's part (handshake id).
    pub part: u32,
    /// The last verdict (`None` before the first).
    pub verdict: Option<Verdict>,
    /// The last part's score (NaN when it could not be scored).
    pub score: f32,
    /// The threshold it was held against (NaN when unknown).
    pub threshold: f32,
    /// The counters.
    pub counts: Counts,
    /// Why the fault (the latest fault record's reason).
    pub fault_reason: Option<String>,
    /// The operator's sensitivity, when one was set from the page.
    pub sensitivity: Option<f32>,
    /// The last [`RECENT`] verdicts, newest first.
    pub recent: VecDeque<Recent>,
    /// The counters as `status --json` prints them (updated when they are saved).
    pub counters: serde_json::Value,
    /// The model in use.
    pub model: String,
    /// The site calibration's file.
    pub calibration: String,
    /// The last [`CHANGES`] operator changes, newest first.
    pub changes: VecDeque<Change>,
    /// The page's teach.
    pub teach: Teaching,
}

/// The running plant-network side: the Modbus server and the MQTT client, as configured.
pub struct Plant {
    board: Arc<Mutex<Board>>,
    live: Option<web::LiveView>,
    outbox: Option<(Arc<mqtt::Outbox>, mqtt::Topics)>,
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Plant {
    /// Starts what `config` asks for (`[modbus]`, `[mqtt]`, `[web]`); `None` when it asks for
    /// none. Signals from the Modbus coils go to `tx`, tagged with `wrap`, and the page's
    /// commands tagged with `wrap_command`. The ports are bound here, so a port in use is an
    /// error at start.
    pub fn start<E: std::marker::Send + 'static>(
        config: &BoxConfig,
        tx: std::sync::mpsc::Sender<E>,
        wrap: fn(Signal) -> E,
        wrap_command: fn(Command) -> E,
    ) -> Result<Option<Self>> {
        if config.modbus.is_none() && config.mqtt.is_none() && config.web.is_none() {
            return Ok(None);
        }
        let m = &config.model;
        let model = match (&m.bundle, &m.manifest) {
            (Some(b), _) => format!("bundle {}", b.display()),
            (None, Some(manifest)) => format!("manifest {}", manifest.display()),
            (None, None) => "the embedded EfficientNet-Lite0".into(),
        };
        let board = Arc::new(Mutex::new(Board {
            score: f32::NAN,
            threshold: f32::NAN,
            model,
            calibration: m.calibration.display().to_string(),
            sensitivity: m.sensitivity,
            teach: Teaching {
                shots: crate::teach::shot_names(&crate::teach::folder(&m.calibration)),
                ..Teaching::default()
            },
            ..Board::default()
        }));
        let stop = Arc::new(Notify::new());
        let bind = |what: &str, address: std::net::SocketAddr| {
            let l = std::net::TcpListener::bind(address)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| Error::Plant(format!("{what}.listen {address}: {e}")))?;
            tracing::info!("{what}: listening on {address}");
            Ok::<_, Error>(l)
        };
        let web_listener = config.web.as_ref().map(|w| bind("web", w.listen)).transpose()?;
        let live = config.web.as_ref().map(|_| web::LiveView::default());
        let commands = tx.clone();
        let web = config.web.as_ref().zip(live.clone()).map(|(w, live)| {
            let command: Commander = Arc::new(move |c| commands.send(wrap_command(c)).is_ok());
            let archive = config.archive.as_ref().map(|a| a.dir.clone());
            web::Web::new(w, board.clone(), live, command, archive, crate::teach::folder(&m.calibration))
        });
        let registers = modbus::Registers {
            board: board.clone(),
            send: Arc::new(move |s| tx.send(wrap(s)).is_ok()),
            triggers: matches!(config.trigger, crate::config::TriggerConfig::Modbus),
        };
        let listener = config.modbus.as_ref().map(|m| bind("modbus", m.listen)).transpose()?;
        let outbox = config.mqtt.as_ref().map(|m| (Arc::new(mqtt::Outbox::new(m.queue)), mqtt::Topics::of(m)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Thread { name: "plant".into(), source })?;
        let mqtt_task = config.mqtt.clone().zip(outbox.clone());
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("plant".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let modbus = async {
                        match listener.map(tokio::net::TcpListener::from_std) {
                            Some(Ok(l)) => modbus::serve(l, registers).await,
                            Some(Err(e)) => tracing::error!("modbus: {e}"),
                            None => {}
                        }
                        std::future::pending::<()>().await
                    };
                    let page = async {
                        match (web_listener.map(tokio::net::TcpListener::from_std), web) {
                            (Some(Ok(l)), Some(web)) => web::serve(l, web).await,
                            (Some(Err(e)), _) => tracing::error!("web: {e}"),
                            _ => {}
                        }
                        std::future::pending::<()>().await
                    };
                    let mqtt = async {
                        match mqtt_task {
                            Some((config, (outbox, topics))) => {
                                mqtt::run(config, topics, outbox, stopping).await;
                            }
                            None => stopping.notified().await,
                        }
                    };
                    // The MQTT side ends on the stop (after its flush); the server goes with it.
                    tokio::select! {
                        () = modbus => {}
                        () = page => {}
                        () = mqtt => {}
                    }
                })
            })
            .map_err(|source| Error::Thread { name: "plant".into(), source })?;
        Ok(Some(Self { board, live, outbox, stop, thread: Some(thread) }))
    }

    /// Changes the board under its lock (the Modbus server reads it between requests).
    pub fn update(&self, change: impl FnOnce(&mut Board)) {
        if let Ok(mut b) = self.board.lock() {
            change(&mut b);
        }
    }

    /// Offers `payload` for `<prefix>/<leaf>` to the MQTT queue (when MQTT is configured);
    /// never waits: a full queue drops and counts it.
    pub fn publish(&self, leaf: &str, payload: Vec<u8>, retain: bool) {
        if let Some((outbox, topics)) = &self.outbox {
            outbox.offer(mqtt::Message { topic: topics.topic(leaf), payload, retain });
        }
    }

    /// The page's live view, for the worker to keep frames in (with `[web]`).
    pub fn live_view(&self) -> Option<web::LiveView> {
        self.live.clone()
    }

    /// MQTT messages dropped since start.
    pub fn mqtt_dropped(&self) -> u64 {
        self.outbox.as_ref().map_or(0, |(o, _)| o.dropped())
    }

    /// Stops: MQTT gets a moment to send what is queued and says `offline`. Returns the MQTT
    /// messages dropped since start, those that never reached the broker included.
    pub fn stop(mut self) -> u64 {
        self.finish();
        self.mqtt_dropped()
    }

    fn finish(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Plant {
    fn drop(&mut self) {
        self.finish();
    }
}
