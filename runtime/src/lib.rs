//! edge-ad: an inline anomaly-detection runtime for inspection boxes.
//!
//! The frame path, one module per stage:
//! [`source`] → [`preprocess`] → [`backbone`] → [`residual`] → [`projector`] → [`scorer`] →
//! [`anomaly_map`] → [`decision`] → [`output`]. [`pipeline`] wires the stages, [`calibrate`] makes
//! a site calibration from K good parts, [`eval`] measures the whole on MVTec-layout datasets
//! ([`dataset`], [`metrics`]), and [`synth`] generates such datasets for demos and tests.
//! [`bundle`] reads the host tool's flashing bundles.
//!
//! The box on the line (`edge-ad serve`): [`config`] reads box.toml, [`camera`] (V4L2) is a
//! frame source, [`trigger`] turns inputs into triggers, [`handshake`] is the PLC state machine
//! over [`gpio`] lines, [`overlay`] draws what the operator sees, [`archive`] keeps NG parts,
//! [`counters`] counts, and [`serve`] wires them.
#![deny(unsafe_code)]

pub mod anomaly_map;
pub mod archive;
pub mod backbone;
pub mod bundle;
pub mod calibrate;
#[cfg(target_os = "linux")]
pub mod camera;
pub mod config;
pub mod counters;
pub mod dataset;
pub mod decision;
pub mod error;
pub mod eval;
#[cfg(target_os = "linux")]
pub mod gpio;
pub mod handshake;
pub mod metrics;
pub mod model;
pub mod output;
pub mod overlay;
pub mod pipeline;
pub mod plots;
pub mod preprocess;
pub mod progress;
pub mod projector;
pub mod residual;
pub mod scorer;
#[cfg(target_os = "linux")]
pub mod serve;
pub mod source;
pub mod synth;
pub mod trigger;

pub use edge_ad_calib as formats;
pub use error::{Error, Result};
