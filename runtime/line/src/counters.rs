//! The box's counters (as Keyence and Cognex sensors keep them): triggers, OK, NG, missed, late,
//! errors, and the trigger-to-verdict latency (min, mean, p95, max). Persisted as JSON with atomic
//! writes so they survive restarts; `edge-ad status` prints them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use edge_ad_core::files::{caps, read_text_capped, write_atomic};

/// Latency histogram buckets: bucket i holds latencies up to `FIRST_MS × GROWTH^i`, so a
/// percentile is known within 5 %.
const FIRST_MS: f64 = 0.1;
const GROWTH: f64 = 1.05;
const BUCKETS: usize = 300; // up to ~225 s

/// Trigger-to-verdict latency statistics.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Verdicts timed.
    pub count: u64,
    /// Sum of latencies (ms), for the mean.
    pub sum_ms: f64,
    /// Shortest (ms).
    pub min_ms: Option<f64>,
    /// Longest (ms).
    pub max_ms: Option<f64>,
    /// Counts per log-spaced bucket (see the module constants).
    pub histogram: Vec<u64>,
}

impl Latency {
    /// Adds one latency.
    pub fn add(&mut self, ms: f64) {
        if !ms.is_finite() || ms < 0.0 {
            return;
        }
        self.count += 1;
        self.sum_ms += ms;
        self.min_ms = Some(self.min_ms.map_or(ms, |m| m.min(ms)));
        self.max_ms = Some(self.max_ms.map_or(ms, |m| m.max(ms)));
        if self.histogram.len() != BUCKETS {
            self.histogram.resize(BUCKETS, 0);
        }
        let i = if ms <= FIRST_MS { 0 } else { ((ms / FIRST_MS).ln() / GROWTH.ln()).ceil() as usize };
        self.histogram[i.min(BUCKETS - 1)] += 1;
    }

    /// The mean (ms).
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ms / self.count as f64)
    }

    /// The `q` quantile (0..1) as its bucket's upper bound, capped at the maximum seen.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.histogram.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.histogram.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = FIRST_MS * GROWTH.powi(i as i32);
                return Some(self.max_ms.map_or(upper, |m| upper.min(m)));
            }
        }
        self.max_ms
    }
}

/// Everything the box counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    /// Trigger edges (or free-run starts) seen, accepted or not.
    pub triggers: u64,
    /// OK verdicts shown.
    pub ok: u64,
    /// NG verdicts shown (late ones included).
    pub ng: u64,
    /// Triggers that came while not READY.
    pub missed: u64,
    /// Results not known by the fixed offset (shown as NG).
    pub late: u64,
    /// Parts that could not be inspected (frame or model errors).
    pub errors: u64,
    /// Times the lines went to the safe state for a fault.
    pub faults: u64,
    /// Archive frames dropped because the writer was behind or could not write them.
    pub archive_dropped: u64,
    /// Records that could not be written (a full disk); the verdicts were still shown.
    #[serde(default)]
    pub records_dropped: u64,
    /// MQTT messages dropped because the queue to the broker was full (or a message too large).
    #[serde(default)]
    pub mqtt_dropped: u64,
    /// Trigger-to-verdict latency.
    pub latency: Latency,
    /// When counting started (Unix seconds).
    pub since_unix: u64,
}

/// Whether nothing at all is at `path` (a dangling link or an unreadable entry is something).
fn absent(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// Adds one, stopping at `u64::MAX` rather than wrapping to 0.
pub fn bump(count: &mut u64) {
    *count = count.saturating_add(1);
}

impl Counters {
    /// Reads the counters at `path`. A missing file is a fresh start; an unreadable one is
    /// renamed `<path>.corrupt` (kept for inspection) and counting starts afresh, with a warning.
    pub fn load_or_new(path: &Path, now_unix: u64) -> Result<Self> {
        let fresh = Self { since_unix: now_unix, ..Self::default() };
        if absent(path) {
            return Ok(fresh);
        }
        // Anything but a readable counters file (not UTF-8, too large, not JSON, not a regular
        // file) is set aside: the box counts afresh rather than refusing to start.
        let parsed = read_text_capped(path, caps::SMALL)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Self>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(c) => Ok(c),
            Err(e) => {
                let mut kept = path.as_os_str().to_owned();
                kept.push(".corrupt");
                std::fs::rename(path, &kept).map_err(|e| Error::io(path, e))?;
                tracing::warn!("{}: unreadable counters ({e}); kept as {kept:?}, counting afresh", path.display());
                Ok(fresh)
            }
        }
    }

    /// Reads the counters at `path`; a missing or unreadable file is an error naming it.
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_text_capped(path, caps::SMALL)?;
        serde_json::from_str(&text).map_err(|e| Error::bad_file(path, format!("not a counters file: {e}")))
    }

    /// Reads the counters at `path`; `None` when there is no file there yet (the service has not
    /// run), an unreadable one is an error naming it.
    pub fn read_if_present(path: &Path) -> Result<Option<Self>> {
        if absent(path) {
            return Ok(None);
        }
        Self::read(path).map(Some)
    }

    /// Writes the counters to `path` atomically (creating its folder).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| Error::Encode { what: "counters", reason: e.to_string() })?;
        Ok(write_atomic(path, &text)?)
    }

    /// The counters as a summary object (latency statistics computed), for `status --json`.
    pub fn summary(&self) -> serde_json::Value {
        let l = &self.latency;
        serde_json::json!({
            "since_unix": self.since_unix,
            "triggers": self.triggers, "ok": self.ok, "ng": self.ng, "missed": self.missed,
            "late": self.late, "errors": self.errors, "faults": self.faults,
            "archive_dropped": self.archive_dropped, "records_dropped": self.records_dropped,
            "mqtt_dropped": self.mqtt_dropped,
            "latency_ms": {"count": l.count, "min": l.min_ms, "mean": l.mean_ms(), "p95": l.quantile_ms(0.95), "max": l.max_ms},
        })
    }

    /// One line for an overlay: `OK 12  NG 3  missed 0  late 0  err 0`.
    pub fn short_line(&self) -> String {
        format!("OK {}  NG {}  missed {}  late {}  err {}", self.ok, self.ng, self.missed, self.late, self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_statistics_follow_the_samples() {
        let mut l = Latency::default();
        assert_eq!((l.mean_ms(), l.quantile_ms(0.95)), (None, None));
        for i in 1..=100 {
            l.add(i as f64);
        }
        l.add(f64::NAN);
        assert_eq!(l.count, 100);
        assert_eq!((l.min_ms, l.max_ms), (Some(1.0), Some(100.0)));
        assert!((l.mean_ms().unwrap() - 50.5).abs() < 1e-9);
        let p95 = l.quantile_ms(0.95).unwrap();
        assert!((95.0..=95.0 * GROWTH).contains(&p95), "{p95}");
        assert_eq!(l.quantile_ms(1.0), Some(100.0), "capped at the maximum");
    }

    #[test]
    fn counters_survive_a_restart_and_a_corrupt_file_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/counters.json");
        let mut c = Counters::load_or_new(&path, 1000).unwrap();
        assert_eq!(c.since_unix, 1000);
        c.triggers = 5;
        c.ng = 2;
        c.latency.add(12.5);
        c.save(&path).unwrap();
        assert_eq!(Counters::load_or_new(&path, 2000).unwrap(), c);
        assert_eq!(Counters::read(&path).unwrap().summary()["latency_ms"]["max"], 12.5);
        std::fs::write(&path, "{ half a file").unwrap();
        let fresh = Counters::load_or_new(&path, 3000).unwrap();
        assert_eq!((fresh.triggers, fresh.since_unix), (0, 3000));
        assert!(dir.path().join("state/counters.json.corrupt").exists());
        // Not UTF-8 (a torn or foreign file): set aside the same way, never a refusal to start.
        std::fs::write(&path, [0x7b, 0xff, 0xfe, 0x7d]).unwrap();
        assert_eq!(Counters::load_or_new(&path, 4000).unwrap().since_unix, 4000);
        let mut at_max = Counters { ok: u64::MAX, ..Counters::default() };
        bump(&mut at_max.ok);
        assert_eq!(at_max.ok, u64::MAX, "counts stop at the top, never wrap to 0");
        let e = Counters::read(&dir.path().join("none.json")).unwrap_err().to_string();
        assert!(e.contains("none.json"), "{e}");
    }
}
