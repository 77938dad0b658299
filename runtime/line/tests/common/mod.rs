//! What the service's tests share: output pins that log their levels, a textured part, and a
//! calibration of the embedded model on the box's own key.
#![allow(dead_code)] // each test file uses its own part of this

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_ad_core::calibrate::{self, CalibrationSettings};
use edge_ad_core::pipeline::Extractor;
use edge_ad_core::setup::ModelSetup;
use edge_ad_plc::{Line, Outputs, Polarity};
use embedded_hal::digital::{ErrorType, OutputPin};
use image::RgbImage;

/// Every level change of every line, in order: (line, on).
pub type Log = Arc<Mutex<Vec<(&'static str, bool)>>>;

/// An output pin that logs its levels (active high: high is on).
pub struct LoggedPin {
    name: &'static str,
    log: Log,
}

impl ErrorType for LoggedPin {
    type Error = Infallible;
}

impl OutputPin for LoggedPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.log.lock().unwrap().push((self.name, false));
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.log.lock().unwrap().push((self.name, true));
        Ok(())
    }
}

pub fn outputs(log: &Log) -> Outputs<LoggedPin> {
    let line = |name| Some(Line::new(LoggedPin { name, log: log.clone() }, Polarity::ActiveHigh));
    Outputs {
        ready: line("ready"),
        busy: line("busy"),
        result_valid: line("result_valid"),
        ok: line("ok"),
        ng: line("ng"),
        error: line("error"),
        missed: line("missed"),
    }
}

/// The level each line was last driven to.
pub fn levels(log: &Log) -> std::collections::BTreeMap<&'static str, bool> {
    log.lock().unwrap().iter().copied().collect()
}

/// How many times `line` went on.
pub fn pulses(log: &Log, line: &str) -> usize {
    log.lock().unwrap().iter().filter(|(n, on)| *n == line && *on).count()
}

pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A textured part (seeded value noise, smooth enough for the backbone to see texture).
pub fn part(seed: u32) -> RgbImage {
    let cell = |x: u32, y: u32| {
        let h = (x.wrapping_mul(73856093) ^ y.wrapping_mul(19349663) ^ seed.wrapping_mul(83492791))
            .wrapping_mul(2654435761);
        (h >> 24) as f32
    };
    RgbImage::from_fn(224, 224, |x, y| {
        let (cx, cy, fx, fy) = (x / 8, y / 8, (x % 8) as f32 / 8.0, (y % 8) as f32 / 8.0);
        let top = cell(cx, cy) * (1.0 - fx) + cell(cx + 1, cy) * fx;
        let bottom = cell(cx, cy + 1) * (1.0 - fx) + cell(cx + 1, cy + 1) * fx;
        let v = (0.5 * (top * (1.0 - fy) + bottom * fy) + 64.0) as u8;
        image::Rgb([v, v / 2 + 60, 255 - v])
    })
}

/// Calibrates the embedded model on `shots` and writes the calibration to `path`, signed with
/// the box key beside it (`box.key`, made if missing) unless `sign` is false.
pub fn calibrate_into(path: &Path, shots: &[(String, RgbImage)], sign: bool) {
    let station = ModelSetup { threads: Some(1), ..Default::default() }.open().unwrap();
    let side = station.manifest.input_side;
    let projector = station.projector(side).unwrap();
    let mut extractor = Extractor::new(&station, side, side).unwrap();
    let settings = CalibrationSettings { threads: 1, ..Default::default() };
    let identity = station.identity(&projector);
    let calib = calibrate::calibrate(&mut extractor, projector, identity, shots, &settings, 0, &|_| {}).unwrap();
    let bytes = edge_ad_core::formats::encode(&calib).unwrap();
    if sign {
        let key = edge_ad_core::trust::signing_key(&path.with_file_name("box.key")).unwrap();
        edge_ad_core::trust::sign_file(&key, edge_ad_core::trust::Signed::Calibration, path, &bytes).unwrap();
    }
    edge_ad_core::files::write_atomic(path, &bytes).unwrap();
}

/// What the browser tests need that is missing (Chromium, its WebDriver, Selenium), if anything.
pub fn browser_missing() -> Option<String> {
    let missing: Vec<&str> = [
        ("chromium", Path::new("/usr/bin/chromium").exists()),
        ("chromedriver", Path::new("/usr/bin/chromedriver").exists()),
        (
            "selenium",
            std::process::Command::new("python3")
                .args(["-c", "import selenium.webdriver"])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        ),
    ]
    .into_iter()
    .filter(|(_, there)| !there)
    .map(|(name, _)| name)
    .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// `tests/plant/browser.py` running headless Chromium through chromedriver; killed (the script,
/// the driver and the browser) when dropped or by [`Browser::kill`].
pub struct Browser {
    child: std::process::Child,
    profile: std::path::PathBuf,
    killed: bool,
}

impl Browser {
    /// Starts the script with `args` (its profile folder last, as the script takes it).
    pub fn start(args: &[&str], profile: &Path, stdout: std::process::Stdio) -> Self {
        use std::os::unix::process::CommandExt;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plant/browser.py");
        let child = std::process::Command::new("python3")
            .arg(script)
            .args(args)
            .arg(profile)
            .stdout(stdout)
            .process_group(0) // the driver and the browser join it: one kill ends all three
            .spawn()
            .expect("python3 runs the browser script");
        Self { child, profile: profile.to_path_buf(), killed: false }
    }

    /// The script's standard output, when it was piped.
    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Waits for the script to end by itself; whether it succeeded.
    pub fn wait(&mut self) -> bool {
        self.child.wait().is_ok_and(|s| s.success())
    }

    /// Kills the script, its driver and the browser at once (SIGKILL, no goodbye).
    pub fn kill(&mut self) {
        if std::mem::replace(&mut self.killed, true) {
            return;
        }
        let quiet = |cmd: &mut std::process::Command| {
            let _ = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status();
        };
        quiet(std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]));
        // Anything of this browser that left the group.
        quiet(std::process::Command::new("pkill").arg("-KILL").arg("-f").arg(&self.profile));
        let _ = self.child.wait();
    }

    /// Whether a process of this browser (by its profile folder) is still running.
    pub fn alive(&self) -> bool {
        std::process::Command::new("pgrep")
            .arg("-f")
            .arg(&self.profile)
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The service on a box.toml, in-process over logged pins, on a thread of its own.
pub struct Serving {
    /// The configuration it runs.
    pub config: edge_ad_line::config::BoxConfig,
    /// Its output lines' levels.
    pub log: Log,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<edge_ad_line::Result<()>>,
}

impl Serving {
    /// Loads `config_path` and starts the service on it.
    pub fn start(config_path: &Path) -> Self {
        let config = edge_ad_line::config::BoxConfig::load(config_path).unwrap();
        let log: Log = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (config, path, outputs, stop) =
                (config.clone(), config_path.to_path_buf(), outputs(&log), stop.clone());
            std::thread::spawn(move || edge_ad_line::service::serve_on(&config, &path, outputs, None, &stop))
        };
        Self { config, log, stop, thread }
    }

    /// Waits for the service to end by itself (a replayed folder ran out).
    pub fn join(self) -> edge_ad_line::Result<()> {
        let ended = self.thread.join().expect("the service thread does not panic");
        self.stop.store(true, Ordering::Relaxed);
        ended
    }

    /// Asks the service to stop and waits for it.
    pub fn stop(self) -> edge_ad_line::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }
}
