//! The PLC's lines on the Linux GPIO character device (gpiocdev), kept thin: output lines as
//! `embedded_hal` pins for the [`handshake`](edge_ad_plc), and input lines whose edges are
//! read with a timeout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gpiocdev::line::{EdgeDetection, EdgeKind, Offset, Value};
use gpiocdev::Request;

use crate::config::{Edge, Level, LineId, PlcConfig};
use crate::error::{Error, Result};
use edge_ad_plc::{Line, Outputs, Polarity};

/// A GPIO failure, with the chip and line it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{}: line {offset}: {source}", chip.display())]
pub struct GpioError {
    chip: PathBuf,
    offset: Offset,
    source: gpiocdev::Error,
}

impl embedded_hal::digital::Error for GpioError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

/// One requested output line, as an `embedded_hal` pin (high = the line's physical high).
pub struct GpioPin {
    request: Arc<Request>,
    chip: PathBuf,
    offset: Offset,
}

impl embedded_hal::digital::ErrorType for GpioPin {
    type Error = GpioError;
}

impl embedded_hal::digital::OutputPin for GpioPin {
    fn set_low(&mut self) -> Result<(), GpioError> {
        self.set(Value::Inactive)
    }

    fn set_high(&mut self) -> Result<(), GpioError> {
        self.set(Value::Active)
    }
}

impl GpioPin {
    fn set(&self, value: Value) -> Result<(), GpioError> {
        self.request.set_value(self.offset, value).map_err(|source| GpioError {
            chip: self.chip.clone(),
            offset: self.offset,
            source,
        })
    }
}

/// The offset of `line` on `chip` (a name is looked up on that chip).
pub fn resolve(chip: &Path, line: &LineId) -> Result<Offset> {
    let fail = |reason: String| Error::Gpio { chip: chip.to_path_buf(), reason };
    let open = || gpiocdev::chip::Chip::from_path(chip).map_err(|e| fail(e.to_string()));
    match line {
        LineId::Offset(o) => {
            let info = open()?.line_info(*o);
            info.map(|_| *o).map_err(|e| fail(format!("line {o}: {e}")))
        }
        LineId::Name(n) => {
            open()?.find_line_info(n).map(|i| i.offset).ok_or_else(|| fail(format!("no line named \"{n}\"")))
        }
    }
}

/// Requests every wired output line of `plc` on its chip, all off (the safe level for each
/// line's polarity except ERROR, which the handshake's start drives on at once).
pub fn open_outputs(plc: &PlcConfig) -> Result<Outputs<GpioPin>> {
    let keys = ["ready", "busy", "result_valid", "ok", "ng", "error", "missed"];
    let wired: Vec<_> = plc.lines().into_iter().filter(|(k, _)| keys.contains(k)).collect();
    let mut outputs = Outputs::none();
    if wired.is_empty() {
        return Ok(outputs);
    }
    let mut builder = Request::builder();
    builder.on_chip(&plc.chip).with_consumer("edge-ad");
    let mut resolved = Vec::new();
    for (key, line) in &wired {
        let offset = resolve(&plc.chip, &line.line).map_err(|e| match e {
            Error::Gpio { chip, reason } => Error::Gpio { chip, reason: format!("plc.{key}: {reason}") },
            e => e,
        })?;
        let off = if line.active == Level::High { Value::Inactive } else { Value::Active };
        builder.with_line(offset).as_output(off);
        resolved.push((*key, offset, polarity(line.active)));
    }
    let request = Arc::new(builder.request().map_err(|e| Error::Gpio {
        chip: plc.chip.clone(),
        reason: format!("cannot request the plc output lines: {e}"),
    })?);
    for (key, offset, polarity) in resolved {
        let pin = GpioPin { request: request.clone(), chip: plc.chip.clone(), offset };
        let line = Some(Line::new(pin, polarity));
        match key {
            "ready" => outputs.ready = line,
            "busy" => outputs.busy = line,
            "result_valid" => outputs.result_valid = line,
            "ok" => outputs.ok = line,
            "ng" => outputs.ng = line,
            "error" => outputs.error = line,
            _ => outputs.missed = line,
        }
    }
    Ok(outputs)
}

fn polarity(level: Level) -> Polarity {
    match level {
        Level::High => Polarity::ActiveHigh,
        Level::Low => Polarity::ActiveLow,
    }
}

/// An input line whose edges of one kind are waited for.
pub struct EdgeInput {
    request: Request,
    chip: PathBuf,
    offset: Offset,
    wanted: EdgeKind,
}

impl EdgeInput {
    /// Requests `line` on `chip` as an input reporting `edge` edges (electrical levels), with a
    /// kernel debounce period when above zero.
    pub fn open(chip: &Path, line: &LineId, edge: Edge, debounce: Duration) -> Result<Self> {
        let offset = resolve(chip, line)?;
        let mut builder = Request::builder();
        builder.on_chip(chip).with_consumer("edge-ad").with_line(offset).as_input();
        let (detect, wanted) = match edge {
            Edge::Rising => (EdgeDetection::RisingEdge, EdgeKind::Rising),
            Edge::Falling => (EdgeDetection::FallingEdge, EdgeKind::Falling),
        };
        builder.with_edge_detection(detect);
        if !debounce.is_zero() {
            builder.with_debounce_period(debounce);
        }
        let request = builder.request().map_err(|e| Error::Gpio {
            chip: chip.to_path_buf(),
            reason: format!("cannot request input line {offset}: {e}"),
        })?;
        Ok(Self { request, chip: chip.to_path_buf(), offset, wanted })
    }

    /// The edge for an input that is on at `active`: its turning on.
    pub fn on_edge(active: Level) -> Edge {
        match active {
            Level::High => Edge::Rising,
            Level::Low => Edge::Falling,
        }
    }

    /// Waits up to `timeout` for the wanted edge: `Ok(true)` when one came.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        let err =
            |e: gpiocdev::Error| Error::Gpio { chip: self.chip.clone(), reason: format!("line {}: {e}", self.offset) };
        if !self.request.wait_edge_event(timeout).map_err(err)? {
            return Ok(false);
        }
        let event = self.request.read_edge_event().map_err(err)?;
        Ok(event.kind == self.wanted)
    }
}
