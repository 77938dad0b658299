//! The service's records: one JSON object per event (`{"event": ..., "time_unix_ms": ...}`), one
//! line each, to a file (appended) or standard output.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// One event of the service, as its record says it.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// The service started with this configuration.
    Start {
        /// The configuration file.
        config: String,
    },
    /// The box can inspect: READY may come on.
    Ready,
    /// A fault: the lines are in the safe state.
    Fault {
        /// Which fault (`camera`, `model`, `calibration`, `stalled`, ...).
        fault: String,
        /// The stalled part, for `stalled`.
        #[serde(skip_serializing_if = "Option::is_none")]
        part: Option<u32>,
        /// Why, for faults the frame path reports.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Parts whose verdicts were recorded but never reached the lines (queued behind another
        /// result, or held for the fixed offset): the fault dropped them, so the PLC saw no
        /// result for them. Left out when there are none.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        unshown: Vec<u32>,
    },
    /// A trigger came while the box was not READY.
    Missed {
        /// The fault latched at the time, if any.
        fault: Option<String>,
    },
    /// A part's verdict did not come by the fixed offset: NG was shown.
    Late {
        /// The part.
        part: u32,
        /// Always `NG`.
        verdict: &'static str,
    },
    /// A part's verdict.
    Verdict {
        /// The part (handshake id).
        part: u32,
        /// The frame's name.
        frame: String,
        /// `OK` or `NG` (a late or failed part is NG).
        verdict: &'static str,
        /// The verdict came after the fixed offset.
        late: bool,
        /// The image score (`null` when the part could not be scored).
        score: Option<f32>,
        /// The threshold it was held against.
        threshold: Option<f32>,
        /// Trigger to verdict.
        latency_ms: f64,
        /// Why the part could not be scored.
        error: Option<String>,
    },
    /// A logged-in operator changed the box from the web page.
    Operator {
        /// Who.
        by: String,
        /// What (`sensitivity`, `fault acknowledged`).
        what: String,
        /// The new value, if any.
        value: Option<String>,
    },
    /// The service stopped.
    Stop {
        /// As for `fault`: verdicts recorded that the stop kept off the lines (none when the
        /// service ends by itself). Left out when there are none.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        unshown: Vec<u32>,
    },
}

impl Event {
    /// The MQTT topic leaf this event goes to: `verdict`, `fault`, or `event` for the rest.
    pub fn topic(&self) -> &'static str {
        match self {
            Self::Verdict { .. } => "verdict",
            Self::Fault { .. } => "fault",
            _ => "event",
        }
    }

    /// The record as one JSON object (no newline), stamped with the time: what the records
    /// file and MQTT both carry.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let line = Line { event: self, time_unix_ms: super::unix_ms() as u64 };
        serde_json::to_vec(&line).map_err(|e| Error::Encode { what: "record", reason: e.to_string() })
    }
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    event: &'a Event,
    time_unix_ms: u64,
}

/// Where records go: a JSON Lines file (appended) or standard output.
pub struct Records {
    out: Out,
}

enum Out {
    File(std::fs::File, PathBuf),
    Stdout,
}

impl Records {
    /// Appends to `path`, or writes to standard output for `None`.
    pub fn open(path: Option<&Path>) -> Result<Self> {
        let out = match path {
            Some(p) => Out::File(
                std::fs::OpenOptions::new().create(true).append(true).open(p).map_err(|e| Error::io(p, e))?,
                p.to_path_buf(),
            ),
            None => Out::Stdout,
        };
        Ok(Self { out })
    }

    /// Writes one record, stamped with the time, as one line in one `write`. In a file the line
    /// is complete or absent: a write that fails part-way (a full disk) is cut back off.
    pub fn write(&mut self, event: Event) -> Result<()> {
        self.write_encoded(&event.encode()?)
    }

    /// Writes one record already [`Event::encode`]d, as [`Self::write`] does.
    pub fn write_encoded(&mut self, encoded: &[u8]) -> Result<()> {
        let mut text = Vec::with_capacity(encoded.len() + 1);
        text.extend_from_slice(encoded);
        text.push(b'\n');
        match &mut self.out {
            Out::File(f, path) => {
                let before = f.metadata().map(|m| m.len()).map_err(|e| Error::io(&*path, e))?;
                f.write_all(&text).map_err(|e| {
                    let _ = f.set_len(before);
                    Error::io(&*path, e)
                })
            }
            Out::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&text).and_then(|_| out.flush()).map_err(|e| Error::io("standard output", e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_the_shape_the_service_always_wrote() {
        let json = |e: Event| serde_json::to_value(Line { event: &e, time_unix_ms: 5 }).unwrap();
        assert_eq!(json(Event::Ready), serde_json::json!({"event": "ready", "time_unix_ms": 5}));
        assert_eq!(
            json(Event::Fault { fault: "stalled".into(), part: Some(3), error: None, unshown: vec![] }),
            serde_json::json!({"event": "fault", "fault": "stalled", "part": 3, "time_unix_ms": 5})
        );
        assert_eq!(
            json(Event::Fault { fault: "camera".into(), part: None, error: None, unshown: vec![4, 5] }),
            serde_json::json!({"event": "fault", "fault": "camera", "unshown": [4, 5], "time_unix_ms": 5})
        );
        assert_eq!(json(Event::Stop { unshown: vec![] }), serde_json::json!({"event": "stop", "time_unix_ms": 5}));
        assert_eq!(
            json(Event::Missed { fault: None }),
            serde_json::json!({"event": "missed", "fault": null, "time_unix_ms": 5})
        );
        let v = json(Event::Verdict {
            part: 1,
            frame: "a.png".into(),
            verdict: "NG",
            late: false,
            score: None,
            threshold: Some(1.0),
            latency_ms: 2.0,
            error: Some("bad".into()),
        });
        assert_eq!(v["event"], "verdict");
        assert_eq!(v["score"], serde_json::Value::Null);
        assert_eq!(v["error"], "bad");
    }
}
