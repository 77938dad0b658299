//! edge-ad-line: the inspection box on the line (`edge-ad serve`).
//!
//! [`config`] reads box.toml; [`sources`] opens the frame source it names; [`trigger`] turns
//! inputs into triggers; [`service`] runs the event loop around the PLC handshake
//! (edge-ad-plc) with a worker thread on the frame path (edge-ad-core) and typed
//! [`service::records`]; [`overlay`] draws what the operator sees, [`archive`] keeps NG parts,
//! [`counters`] counts, [`shots`] captures the operator's good shots for a calibration, and
//! [`slots`] installs models A/B with rollback. [`plant`] puts the box on the plant network:
//! Modbus TCP registers, MQTT results and the operator's web page, off the frame path;
//! [`teach`] makes a new calibration from shots taken from that page.
//! [`linux`] holds the devices: the V4L2 camera, the GPIO character device and the framebuffer.
//!
//! The service is generic over `embedded_hal` output pins, so it runs in-process in tests with
//! in-memory pins and a folder source. Nothing here depends on evaluation code.
#![deny(unsafe_code)]

pub mod archive;
pub mod config;
pub mod counters;
pub mod error;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod overlay;
pub mod plant;
pub mod service;
pub mod shots;
pub mod slots;
pub mod sources;
pub mod teach;
pub mod trigger;

pub use error::{Error, Result};
