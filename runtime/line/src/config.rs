//! The box's configuration: one TOML file (`box.toml`) for the source, the trigger, the PLC lines
//! and their timing, the sinks, and the model and calibration paths. Every bad value is an error
//! that names the file and the key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use edge_ad_core::precision::PrecisionChoice;
use edge_ad_core::setup::{ModelSetup, SetupProblem};
use edge_ad_core::trust::{self, Trust};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxConfig {
    /// Model, projector, calibration.
    pub model: ModelConfig,
    /// Where frames come from.
    pub source: SourceConfig,
    /// What starts an inspection.
    #[serde(default)]
    pub trigger: TriggerConfig,
    /// The PLC's lines; absent on a box without a PLC (records only).
    pub plc: Option<PlcConfig>,
    /// NG (and sampled OK) frames kept on disk.
    pub archive: Option<ArchiveConfig>,
    /// Where the counters persist.
    #[serde(default)]
    pub counters: CountersConfig,
    /// Where verdict records go.
    #[serde(default)]
    pub records: RecordsConfig,
    /// A Linux framebuffer to show the overlay on (e.g. "/dev/fb0").
    pub display: Option<PathBuf>,
    /// Whose signatures the box trusts.
    #[serde(default)]
    pub trust: TrustConfig,
    /// A Modbus TCP server mirroring the lines, the last result and the counters.
    pub modbus: Option<ModbusConfig>,
    /// Results published to an MQTT broker.
    pub mqtt: Option<MqttConfig>,
    /// The operator's web page.
    pub web: Option<WebConfig>,
}

/// The operator's web page (README, *The operator's web page*).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port to listen on.
    pub listen: std::net::SocketAddr,
    /// Who may change the box: user name → Argon2id hash (`edge-ad hash-password`). None: the
    /// page only shows.
    #[serde(default)]
    pub users: std::collections::BTreeMap<String, String>,
    /// A session ends after this long without use.
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u64,
}

fn default_session_minutes() -> u64 {
    30
}

/// The Modbus TCP server (register map: README, *Modbus TCP*).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusConfig {
    /// Address and port to listen on (Modbus's own port is 502, which needs privileges).
    pub listen: std::net::SocketAddr,
}

/// Publishing results to an MQTT broker.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// The broker's host name or address.
    pub host: String,
    /// The broker's port.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// The MQTT client id; absent: `edge-ad-<host name>`.
    pub client_id: Option<String>,
    /// Topics go under this; absent: `edge-ad/<host name>`.
    pub prefix: Option<String>,
    /// Messages waiting for the broker; more are dropped (and counted), never waited for.
    #[serde(default = "default_mqtt_queue")]
    pub queue: usize,
    /// Keep-alive interval; a broker silent for 1.5 times this is taken as gone.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
}

fn default_mqtt_port() -> u16 {
    1883
}
fn default_mqtt_queue() -> usize {
    1000
}
fn default_keep_alive() -> u64 {
    5
}

/// Signatures: bundles signed by a trusted host key, site calibrations by the box's own key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// A `.pub` file or a folder of them: the host keys whose bundles the box runs.
    pub keys: Option<PathBuf>,
    /// The box's own signing key (made at the first calibration or start, mode 0600): it signs
    /// the site calibrations `calibrate --config` writes and checks them at start.
    #[serde(default = "default_box_key")]
    pub box_key: PathBuf,
    /// Development only: run unsigned bundles, manifests, projector folders and calibrations.
    #[serde(default)]
    pub allow_unsigned: bool,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self { keys: None, box_key: default_box_key(), allow_unsigned: false }
    }
}

fn default_box_key() -> PathBuf {
    PathBuf::from("/var/lib/edge-ad/box.key")
}

/// Model, projector and calibration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Backbone manifest; absent: the embedded EfficientNet-Lite0.
    pub manifest: Option<PathBuf>,
    /// Projector folder, or `none` for the identity (raw residuals); absent: the embedded default
    /// projector with the default backbone, else the identity.
    pub projector: Option<PathBuf>,
    /// A bundle from `edge-ad-host bundle` (backbone, projector, model calibration), instead of
    /// `manifest` and `projector`.
    pub bundle: Option<PathBuf>,
    /// The site calibration (written by `edge-ad calibrate`).
    pub calibration: PathBuf,
    /// Overrides the calibration's sensitivity.
    pub sensitivity: Option<f32>,
    /// Threads for the nearest-neighbour search (default: all cores).
    pub threads: Option<usize>,
    /// The backbone's float precision: `"auto"` (the default: f16 where the CPU has
    /// half-precision arithmetic), `"f32"` or `"f16"`.
    #[serde(default, deserialize_with = "precision_choice")]
    pub precision: PrecisionChoice,
}

fn precision_choice<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<PrecisionChoice, D::Error> {
    let spelled = String::deserialize(d)?;
    spelled.parse().map_err(|why: String| serde::de::Error::custom(format!("model.{why}")))
}

/// Where frames come from.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A V4L2 camera.
    Camera(CameraConfig),
    /// The images of a folder in file-name order, one per trigger (for dry runs and replays).
    Folder {
        /// The folder.
        path: PathBuf,
        /// Start again at the first image after the last.
        #[serde(default)]
        repeat: bool,
    },
    /// The given image files, in the given order, one per trigger.
    Files {
        /// The files.
        paths: Vec<PathBuf>,
        /// Start again at the first file after the last.
        #[serde(default)]
        repeat: bool,
    },
}

/// A V4L2 capture device.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// The device node.
    pub device: PathBuf,
    /// Asked width; the driver may adjust it (the negotiated size is logged).
    #[serde(default = "default_width")]
    pub width: u32,
    /// Asked height.
    #[serde(default = "default_height")]
    pub height: u32,
    /// Pixel format.
    #[serde(default)]
    pub format: PixelFormat,
    /// No frame for this long: the camera is lost (a fault).
    #[serde(default = "default_frame_timeout")]
    pub frame_timeout_ms: u64,
    /// Wait between attempts to reopen a lost camera.
    #[serde(default = "default_reconnect")]
    pub reconnect_ms: u64,
}

/// A camera pixel format the box decodes.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum PixelFormat {
    /// Packed 4:2:2 YUV.
    #[default]
    Yuyv,
    /// Motion JPEG: one JPEG per frame.
    Mjpg,
}

fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_frame_timeout() -> u64 {
    2000
}
fn default_reconnect() -> u64 {
    1000
}

/// What starts an inspection.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TriggerConfig {
    /// One inspection after another, at most one per interval.
    FreeRun {
        /// Least time between two triggers.
        #[serde(default)]
        interval_ms: u64,
        /// Parts inspected at once, 1 to 8 (default: one per core, at most 8): the next part
        /// starts while the ones before it are scored; verdicts still go out in order, one at a
        /// time. 1 with `plc.result_offset_ms`, which needs one part in flight.
        in_flight: Option<usize>,
    },
    /// An edge on a GPIO input line.
    Gpio {
        /// The GPIO character device.
        chip: PathBuf,
        /// The line.
        line: LineId,
        /// Which edge triggers.
        #[serde(default)]
        edge: Edge,
        /// Kernel debounce period (0: none).
        #[serde(default)]
        debounce_ms: u64,
    },
    /// A line on standard input.
    Stdin,
    /// A line on a local (Unix) socket: `trigger` (or an empty line) triggers, `ack` acknowledges.
    Socket {
        /// The socket path.
        path: PathBuf,
    },
    /// A write of 1 to the trigger coil of the Modbus server (`[modbus]`).
    Modbus,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self::FreeRun { interval_ms: 0, in_flight: None }
    }
}

/// A GPIO line: its offset on the chip or its name.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(untagged)]
pub enum LineId {
    /// The line's offset.
    Offset(u32),
    /// The line's name (as `gpioinfo` shows it).
    Name(String),
}

impl std::fmt::Display for LineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Offset(o) => write!(f, "{o}"),
            Self::Name(n) => write!(f, "\"{n}\""),
        }
    }
}

/// A trigger edge.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Edge {
    /// Low to high (after polarity).
    #[default]
    Rising,
    /// High to low.
    Falling,
}

/// An output or input line with its polarity.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// The line.
    pub line: LineId,
    /// Which level is on.
    #[serde(default)]
    pub active: Level,
}

/// Which electrical level means on.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// High is on.
    #[default]
    High,
    /// Low is on.
    Low,
}

/// The PLC's lines and their timing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlcConfig {
    /// The GPIO character device of the output lines.
    pub chip: PathBuf,
    /// Can accept a trigger.
    pub ready: Option<LineConfig>,
    /// A part is in flight.
    pub busy: Option<LineConfig>,
    /// Strobe: OK/NG valid.
    pub result_valid: Option<LineConfig>,
    /// Good part.
    pub ok: Option<LineConfig>,
    /// Defective part, late result.
    pub ng: Option<LineConfig>,
    /// Fault.
    pub error: Option<LineConfig>,
    /// Pulsed on a missed trigger.
    pub missed: Option<LineConfig>,
    /// Input: the PLC acknowledges a result (then results are held until acknowledged).
    pub ack: Option<LineConfig>,
    /// OK pulse width.
    #[serde(default = "default_pulse")]
    pub ok_pulse_ms: u64,
    /// NG pulse width.
    #[serde(default = "default_pulse")]
    pub ng_pulse_ms: u64,
    /// MISSED pulse width.
    #[serde(default = "default_pulse")]
    pub missed_pulse_ms: u64,
    /// Show every result at trigger + this (late ⇒ NG); absent: as soon as known.
    pub result_offset_ms: Option<u64>,
    /// A part in flight longer than this is a stall (a fault).
    #[serde(default = "default_deadline")]
    pub deadline_ms: u64,
    /// With parts in flight (free-run): the result lines stay off this long between two results,
    /// so the PLC sees RESULT-VALID fall between them (longer than two of its scans).
    #[serde(default = "default_gap")]
    pub result_gap_ms: u64,
}

fn default_pulse() -> u64 {
    20
}
fn default_deadline() -> u64 {
    2000
}
fn default_gap() -> u64 {
    10
}

/// NG (and sampled OK) frames on disk.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// The folder.
    pub dir: PathBuf,
    /// Disk budget in MiB; the oldest files go first.
    #[serde(default = "default_budget")]
    pub budget_mib: u64,
    /// Keep one OK frame in this many (0: none).
    #[serde(default)]
    pub ok_every: u64,
    /// Frames waiting to be written; more are dropped (and counted), never waited for.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_budget() -> u64 {
    512
}
fn default_queue() -> usize {
    8
}

/// Where the counters persist.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountersConfig {
    /// The counters file (JSON).
    #[serde(default = "default_counters")]
    pub path: PathBuf,
}

impl Default for CountersConfig {
    fn default() -> Self {
        Self { path: default_counters() }
    }
}

fn default_counters() -> PathBuf {
    PathBuf::from("/var/lib/edge-ad/counters.json")
}

/// Where verdict records go.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsConfig {
    /// A JSON Lines file to append to; absent: standard output.
    pub path: Option<PathBuf>,
}

impl BoxConfig {
    /// Parts in flight at once: `trigger.in_flight` in free-run (by default one per core, at
    /// most [`edge_ad_plc::MAX_DEPTH`], and 1 with a fixed result offset); 1 for a triggered line,
    /// whose rule is one part per READY.
    pub fn parts_in_flight(&self) -> usize {
        match self.trigger {
            TriggerConfig::FreeRun { in_flight, .. } => {
                let fixed_offset = self.plc.as_ref().is_some_and(|p| p.result_offset_ms.is_some());
                match in_flight {
                    // Checked at load; clamped for a configuration made in code.
                    Some(n) => n.clamp(1, edge_ad_plc::MAX_DEPTH),
                    None if fixed_offset => 1,
                    None => edge_ad_core::workers::default_workers().min(edge_ad_plc::MAX_DEPTH),
                }
            }
            _ => 1,
        }
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = edge_ad_core::files::read_text_capped(path, edge_ad_core::files::caps::SMALL)?;
        Self::parse(&text).map_err(|reason| Error::bad_file(path, reason))
    }

    /// Parses and checks a configuration's text; the error names the key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let unchecked = ModelSetup {
            bundle_trust: Trust { keys: Vec::new(), allow_unsigned: self.trust.allow_unsigned },
            ..self.model.setup()
        };
        match unchecked.problem() {
            Some(SetupProblem::Sensitivity(s)) => {
                let range = edge_ad_core::decision::SENSITIVITY_RANGE;
                return Err(format!("model.sensitivity must be in {}..={}, got {s}", range.start(), range.end()));
            }
            Some(SetupProblem::BundleWithParts) => {
                return Err(
                    "model.bundle carries the backbone and projector: leave out model.manifest and model.projector (or set it to \"none\")"
                        .into(),
                )
            }
            Some(SetupProblem::Threads) => return Err("model.threads must be at least 1".into()),
            Some(SetupProblem::Unsigned) => {
                return Err("model.manifest and model.projector folders are unsigned: run a signed model.bundle, \
                     or set trust.allow_unsigned = true (development only)"
                    .into())
            }
            None => {}
        }
        if let SourceConfig::Files { paths, .. } = &self.source {
            if paths.is_empty() {
                return Err("source.paths is empty".into());
            }
        }
        if let SourceConfig::Camera(c) = &self.source {
            if !(32..=8192).contains(&c.width) || !(32..=8192).contains(&c.height) {
                return Err(format!("source.width and source.height must be 32..8192, got {}×{}", c.width, c.height));
            }
            if c.frame_timeout_ms == 0 {
                return Err("source.frame_timeout_ms must be above 0".into());
            }
        }
        if let Some(p) = &self.plc {
            for (key, v) in [
                ("ok_pulse_ms", p.ok_pulse_ms),
                ("ng_pulse_ms", p.ng_pulse_ms),
                ("missed_pulse_ms", p.missed_pulse_ms),
                ("deadline_ms", p.deadline_ms),
                ("result_gap_ms", p.result_gap_ms),
            ] {
                if v == 0 {
                    return Err(format!("plc.{key} must be above 0"));
                }
            }
            if let Some(offset) = p.result_offset_ms {
                if offset == 0 || offset >= p.deadline_ms {
                    return Err(format!(
                        "plc.result_offset_ms must be above 0 and below plc.deadline_ms ({}), got {offset}",
                        p.deadline_ms
                    ));
                }
            }
            if p.ok.is_none() && p.ng.is_none() {
                return Err("plc: neither plc.ok nor plc.ng is wired; the PLC would never see a verdict".into());
            }
            let mut seen = HashSet::new();
            for (key, line) in p.lines() {
                if !seen.insert(&line.line) {
                    return Err(format!("plc.{key}: line {} is used twice", line.line));
                }
            }
            if let TriggerConfig::Gpio { chip, line, .. } = &self.trigger {
                if chip == &p.chip && seen.contains(line) {
                    return Err(format!("trigger.line {line} is also a plc line on {}", chip.display()));
                }
            }
        }
        if let Some(a) = &self.archive {
            if a.budget_mib == 0 || a.queue == 0 {
                return Err("archive.budget_mib and archive.queue must be above 0".into());
            }
        }
        if let TriggerConfig::FreeRun { in_flight: Some(n), .. } = self.trigger {
            if !(1..=edge_ad_plc::MAX_DEPTH).contains(&n) {
                return Err(format!("trigger.in_flight must be 1..={}, got {n}", edge_ad_plc::MAX_DEPTH));
            }
            if n > 1 && self.plc.as_ref().is_some_and(|p| p.result_offset_ms.is_some()) {
                return Err(format!(
                    "trigger.in_flight = {n} cannot go with plc.result_offset_ms, which shows each result at a \
                     fixed time after its trigger: one part in flight (or no offset)"
                ));
            }
        }
        if matches!(self.trigger, TriggerConfig::Modbus) && self.modbus.is_none() {
            return Err("trigger.kind = \"modbus\" needs a [modbus] section".into());
        }
        if let Some(w) = &self.web {
            if !(1..=24 * 60).contains(&w.session_minutes) {
                return Err(format!("web.session_minutes must be 1..=1440, got {}", w.session_minutes));
            }
            for (user, hash) in &w.users {
                if user.is_empty()
                    || user.len() > 32
                    || !user.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(format!("web.users: a user name is 1 to 32 letters, digits, - or _, got {user:?}"));
                }
                if !crate::plant::web::is_argon2id(hash) {
                    return Err(format!(
                        "web.users.{user}: not an Argon2id hash (make one with `edge-ad hash-password`)"
                    ));
                }
            }
        }
        if let Some(m) = &self.mqtt {
            if m.host.trim().is_empty() {
                return Err("mqtt.host is empty".into());
            }
            if !(1..=100_000).contains(&m.queue) {
                return Err(format!("mqtt.queue must be 1..=100000, got {}", m.queue));
            }
            if !(1..=3600).contains(&m.keep_alive_s) {
                return Err(format!("mqtt.keep_alive_s must be 1..=3600, got {}", m.keep_alive_s));
            }
            if let Some(p) = &m.prefix {
                // Wildcards and empty levels would make topics a subscriber cannot tell apart.
                if p.is_empty() || p.contains(['#', '+', '\0']) || p.starts_with('/') || p.ends_with('/') {
                    return Err(format!(
                        "mqtt.prefix must be a topic without wildcards (+, #) or a leading or trailing /, got {p:?}"
                    ));
                }
            }
            if m.client_id.as_deref().is_some_and(|c| c.is_empty() || c.len() > 64) {
                return Err("mqtt.client_id must be 1 to 64 characters".into());
            }
        }
        Ok(())
    }
}

impl ModelConfig {
    /// The model this section names, checking no signature (see [`BoxConfig::setup`] for the
    /// box's own trust).
    pub fn setup(&self) -> ModelSetup {
        ModelSetup::spelled(
            self.bundle.as_deref(),
            self.manifest.as_deref(),
            self.projector.as_deref(),
            self.sensitivity,
            self.threads,
        )
        .with_precision(self.precision)
    }
}

impl BoxConfig {
    /// The model setup the box runs, with its trust: bundles need a signature by a key in
    /// `trust.keys`, site calibrations one by the box's own key (made here if missing), unless
    /// `trust.allow_unsigned`.
    pub fn setup(&self) -> Result<ModelSetup> {
        let keys = match &self.trust.keys {
            Some(k) => trust::read_public_keys(k)?,
            None => Vec::new(),
        };
        let box_key = self.box_signing_key()?.verifying_key();
        let allow_unsigned = self.trust.allow_unsigned;
        Ok(ModelSetup {
            bundle_trust: Trust { keys, allow_unsigned },
            calibration_trust: Trust { keys: vec![box_key], allow_unsigned },
            ..self.model.setup()
        })
    }

    /// The box's own signing key, made at `trust.box_key` if there is none yet.
    pub fn box_signing_key(&self) -> Result<edge_ad_core::trust::SigningKey> {
        Ok(trust::signing_key(&self.trust.box_key)?)
    }
}

impl PlcConfig {
    /// Every wired line with its key, outputs first, then the acknowledge input.
    pub fn lines(&self) -> Vec<(&'static str, &LineConfig)> {
        [
            ("ready", &self.ready),
            ("busy", &self.busy),
            ("result_valid", &self.result_valid),
            ("ok", &self.ok),
            ("ng", &self.ng),
            ("error", &self.error),
            ("missed", &self.missed),
            ("ack", &self.ack),
        ]
        .into_iter()
        .filter_map(|(k, l)| l.as_ref().map(|l| (k, l)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[model]
calibration = "/var/lib/edge-ad/site.calib"
sensitivity = 1.2

[source]
kind = "camera"
device = "/dev/video0"
format = "MJPG"

[trigger]
kind = "gpio"
chip = "/dev/gpiochip0"
line = "TRIGGER_IN"

[plc]
chip = "/dev/gpiochip0"
ready = { line = 0 }
busy = { line = 1 }
ok = { line = 3 }
ng = { line = 4, active = "low" }
error = { line = 5 }
ng_pulse_ms = 30
result_offset_ms = 60

[archive]
dir = "/var/lib/edge-ad/archive"
ok_every = 100

[modbus]
listen = "0.0.0.0:5020"

[mqtt]
host = "broker.plant.local"
prefix = "plant/line3/box1"

[web]
listen = "0.0.0.0:8080"
users = { ann = "$argon2id$v=19$m=19456,t=2,p=1$w0CfHh3g4P4x2q9B+C41jQ$uuG++bUrIO1u1c9nV+wLCJJMNdSixvg+rGEZaG92ucY" }
session_minutes = 45
"#;

    #[test]
    fn a_full_configuration_reads_with_defaults_filled_in() {
        let c = BoxConfig::parse(FULL).unwrap();
        let SourceConfig::Camera(cam) = &c.source else { panic!("camera") };
        assert_eq!((cam.width, cam.height, cam.format), (640, 480, PixelFormat::Mjpg));
        let TriggerConfig::Gpio { line, edge, .. } = &c.trigger else { panic!("gpio") };
        assert_eq!((line, *edge), (&LineId::Name("TRIGGER_IN".into()), Edge::Rising));
        let plc = c.plc.as_ref().unwrap();
        assert_eq!((plc.ok_pulse_ms, plc.ng_pulse_ms, plc.result_offset_ms), (20, 30, Some(60)));
        assert_eq!(plc.result_gap_ms, 10, "the default gap between pipelined results");
        assert_eq!(plc.ng.as_ref().unwrap().active, Level::Low);
        assert_eq!(plc.lines().len(), 5);
        assert_eq!(c.archive.unwrap().budget_mib, 512);
        assert_eq!(c.counters.path, PathBuf::from("/var/lib/edge-ad/counters.json"));
        assert_eq!(c.model.precision, PrecisionChoice::Auto);
        assert_eq!(c.modbus.as_ref().unwrap().listen.port(), 5020);
        let mqtt = c.mqtt.as_ref().unwrap();
        assert_eq!((mqtt.port, mqtt.queue, mqtt.keep_alive_s, mqtt.client_id.as_deref()), (1883, 1000, 5, None));
        let web = c.web.as_ref().unwrap();
        assert_eq!((web.listen.port(), web.session_minutes, web.users.len()), (8080, 45, 1));
        let f32 = BoxConfig::parse(&FULL.replace("sensitivity = 1.2", "precision = \"f32\"")).unwrap();
        assert_eq!(f32.model.setup().precision, PrecisionChoice::F32);
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases = [
            ("sensitivity = 1.2", "sensitivity = -1", "model.sensitivity"),
            ("sensitivity = 1.2", "precision = \"half\"", "model.precision must be auto, f32 or f16"),
            ("format = \"MJPG\"", "format = \"H264\"", "H264"),
            ("ng_pulse_ms = 30", "ng_pulse_ms = 0", "plc.ng_pulse_ms"),
            ("ng_pulse_ms = 30", "ng_pulse_ms = 30\nresult_gap_ms = 0", "plc.result_gap_ms must be above 0"),
            ("result_offset_ms = 60", "result_offset_ms = 5000", "plc.result_offset_ms"),
            ("busy = { line = 1 }", "busy = { line = 3 }", "plc.ok: line 3 is used twice"),
            ("line = \"TRIGGER_IN\"", "line = 4", "trigger.line 4"),
            ("ok_every = 100", "ok_every = 100\nbudget = 3", "unknown field `budget`"),
            ("kind = \"camera\"", "kind = \"webcam\"", "webcam"),
            ("ng = { line = 4, active = \"low\" }", "ng = { line = 4, active = \"lo\" }", "lo"),
            ("ok = { line = 3 }\nng = { line = 4, active = \"low\" }", "", "neither plc.ok nor plc.ng"),
            ("listen = \"0.0.0.0:5020\"", "listen = \"0.0.0.0\"", "invalid socket address"),
            ("[modbus]\nlisten = \"0.0.0.0:5020\"", "", "trigger.kind = \"modbus\" needs a [modbus] section"),
            ("prefix = \"plant/line3/box1\"", "prefix = \"plant/#\"", "mqtt.prefix must be a topic"),
            ("prefix = \"plant/line3/box1\"", "queue = 0", "mqtt.queue must be 1..=100000"),
            ("prefix = \"plant/line3/box1\"", "keep_alive_s = 0", "mqtt.keep_alive_s"),
            ("host = \"broker.plant.local\"", "host = \" \"", "mqtt.host is empty"),
            ("host = \"broker.plant.local\"", "host = \"b\"\nport = 70000", "70000"),
            ("session_minutes = 45", "session_minutes = 0", "web.session_minutes must be 1..=1440"),
            ("listen = \"0.0.0.0:8080\"", "listen = \"box:8080\"", "invalid socket address"),
            ("users = { ann = ", "users = { \"ann smith\" = ", "a user name is 1 to 32"),
            ("$argon2id$v=19$m=19456", "$argon2i$v=19$m=19456", "web.users.ann: not an Argon2id hash"),
            ("$argon2id$v=19$m=19456,t=2,p=1$w0Cf", "plain password", "web.users.ann: not an Argon2id hash"),
            ("session_minutes = 45", "session_minutes = 45\nport = 80", "unknown field `port`"),
        ];
        for (from, to, needle) in cases {
            assert!(FULL.contains(from), "{from}");
            let mut text = FULL.replace(from, to);
            if needle.contains("needs a [modbus]") {
                text = text
                    .replace("kind = \"gpio\"\nchip = \"/dev/gpiochip0\"\nline = \"TRIGGER_IN\"", "kind = \"modbus\"");
            }
            let err = BoxConfig::parse(&text).unwrap_err();
            assert!(err.contains(needle), "{to:?}: {err}");
        }
        let free_run = |extra: &str| {
            FULL.replace(
                "kind = \"gpio\"\nchip = \"/dev/gpiochip0\"\nline = \"TRIGGER_IN\"",
                &format!("kind = \"free-run\"\n{extra}"),
            )
        };
        for (extra, needle) in [
            ("in_flight = 0", "trigger.in_flight must be 1..=8, got 0"),
            ("in_flight = 9", "trigger.in_flight must be 1..=8, got 9"),
            ("in_flight = 2", "trigger.in_flight = 2 cannot go with plc.result_offset_ms"),
        ] {
            let err = BoxConfig::parse(&free_run(extra)).unwrap_err();
            assert!(err.contains(needle), "{extra}: {err}");
        }
        let err = BoxConfig::parse("[source]\nkind = \"folder\"\npath = \"x\"").unwrap_err();
        assert!(err.contains("model"), "{err}");
    }

    #[test]
    fn parts_in_flight_follow_the_trigger_and_the_result_offset() {
        let free_run = |extra: &str, plc: bool| {
            let text = FULL.replace(
                "kind = \"gpio\"\nchip = \"/dev/gpiochip0\"\nline = \"TRIGGER_IN\"",
                &format!("kind = \"free-run\"\n{extra}"),
            );
            let text = if plc { text } else { text.replace("result_offset_ms = 60", "") };
            BoxConfig::parse(&text).unwrap().parts_in_flight()
        };
        assert_eq!(BoxConfig::parse(FULL).unwrap().parts_in_flight(), 1, "a triggered line: one part");
        assert_eq!(free_run("in_flight = 3", false), 3);
        assert_eq!(free_run("in_flight = 1", true), 1);
        assert_eq!(free_run("", true), 1, "a fixed offset: one part in flight by default");
        let cores = edge_ad_core::workers::default_workers().min(edge_ad_plc::MAX_DEPTH);
        assert_eq!(free_run("", false), cores, "free-run: one per core by default");
    }

    #[test]
    fn the_shipped_example_reads() {
        let c = BoxConfig::parse(include_str!("../../deploy/box.toml")).unwrap();
        assert!(matches!(c.source, SourceConfig::Camera(_)));
        assert_eq!(c.plc.unwrap().lines().len(), 7);
    }

    #[test]
    fn a_missing_file_names_the_file() {
        let e = BoxConfig::load(Path::new("/nonexistent/box.toml")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/box.toml"), "{e}");
    }
}
