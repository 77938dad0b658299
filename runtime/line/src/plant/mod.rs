//! The box on the plant network: a Modbus TCP server ([`modbus`]) that mirrors the PLC lines,
//! the last result and the counters and takes triggers, and MQTT results ([`mqtt`]) to a broker.
//!
//! Both run on one small tokio runtime on their own thread (`plant`). The service's main loop
//! only writes the [`Board`] under a short lock and offers messages to a bounded queue, so the
//! PLC lines never wait on the network: a dead broker or a stuck Modbus client changes nothing
//! on them.

pub mod modbus;
pub mod mqtt;

use std::sync::{Arc, Mutex};

use edge_ad_core::decision::Verdict;
use edge_ad_plc::{Fault, LineStates};
use tokio::sync::Notify;

use crate::config::BoxConfig;
use crate::error::{Error, Result};
use crate::trigger::Signal;

/// Sends a signal to the service's main loop; `false` when it is gone.
pub type Signaller = Arc<dyn Fn(Signal) -> bool + Send + Sync>;

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
}

/// The running plant-network side: the Modbus server and the MQTT client, as configured.
pub struct Plant {
    board: Arc<Mutex<Board>>,
    outbox: Option<(Arc<mqtt::Outbox>, mqtt::Topics)>,
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Plant {
    /// Starts what `config` asks for (`[modbus]`, `[mqtt]`); `None` when it asks for neither.
    /// Signals from the Modbus coils go to `tx`, tagged with `wrap`. The Modbus port is bound
    /// here, so a port in use is an error at start.
    pub fn start<E: std::marker::Send + 'static>(
        config: &BoxConfig,
        tx: std::sync::mpsc::Sender<E>,
        wrap: fn(Signal) -> E,
    ) -> Result<Option<Self>> {
        if config.modbus.is_none() && config.mqtt.is_none() {
            return Ok(None);
        }
        let board = Arc::new(Mutex::new(Board { score: f32::NAN, threshold: f32::NAN, ..Board::default() }));
        let stop = Arc::new(Notify::new());
        let listener = match &config.modbus {
            Some(m) => {
                let l = std::net::TcpListener::bind(m.listen)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|e| Error::Plant(format!("modbus.listen {}: {e}", m.listen)))?;
                tracing::info!("modbus: listening on {}", m.listen);
                Some(l)
            }
            None => None,
        };
        let registers = modbus::Registers {
            board: board.clone(),
            send: Arc::new(move |s| tx.send(wrap(s)).is_ok()),
            triggers: matches!(config.trigger, crate::config::TriggerConfig::Modbus),
        };
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
                        () = mqtt => {}
                    }
                })
            })
            .map_err(|source| Error::Thread { name: "plant".into(), source })?;
        Ok(Some(Self { board, outbox, stop, thread: Some(thread) }))
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
