//! edge-ad-core: the frame path of an edge-ad inspection box, and nothing else.
//!
//! One module per stage: [`source`] → [`preprocess`] → [`backbone`] → [`residual`] →
//! [`projector`] → [`scorer`] → [`anomaly_map`] → [`decision`] → [`output`]. [`pipeline`] wires
//! the stages into an [`pipeline::Inspector`]; [`calibrate`] makes a site calibration from K good
//! parts and turns one back into an inspector; [`model`] and [`bundle`] load the backbone (the
//! embedded default, a manifest, or a host tool bundle) and [`setup`] is the one place where a
//! model choice (bundle or manifest, projector, sensitivity) becomes a [`setup::Station`].
//! [`conv_net`] is the backbone's own executor for graphs of the MobileNet / EfficientNet-Lite
//! family (tract runs the others), [`projector_net`] the projector's for the graphs the host
//! tool exports. [`precision`] says which float precision the backbone runs in on this board.
//! [`feature_map`] is the data the stages after the backbone pass on.
//! [`files`] holds the rules for reading (size caps) and writing (atomic, durable) files.
//! On x86-64, `depthwise_avx2` adds an AVX2 + FMA depthwise kernel to tract's registry.
//! [`workers`] runs frames on one worker per core and hands results on in order.
//! [`canvas`] lets embedded-graphics draw into an image (the overlay uses it) and blends the
//! anomaly heatmap over a frame (the overlay and the evaluation report use it).
//!
//! Nothing here knows about the line (PLC, camera, box.toml) or about evaluation.
#![deny(unsafe_code)]

pub mod anomaly_map;
pub mod backbone;
pub mod bundle;
pub mod calibrate;
pub mod canvas;
pub mod conv_net;
pub mod decision;
#[cfg(target_arch = "x86_64")]
pub mod depthwise_avx2;
pub mod error;
pub mod feature_map;
pub mod files;
mod matmul;
pub mod model;
mod onnx_read;
pub mod output;
pub mod photometry;
pub mod pipeline;
pub mod precision;
pub mod preprocess;
pub mod projector;
pub mod projector_net;
mod resample;
pub mod residual;
pub mod scorer;
pub mod setup;
pub mod source;
pub mod trust;
pub mod workers;

pub use edge_ad_calib as formats;
pub use error::{Error, Result};
