//! `edge-ad-host`: the companion host tool's library. It pretrains ADPretrain's feature projector,
//! exports it as ONNX for the boxes, and writes model manifests.
//!
//! This build has the projector ([`projector`]), its losses ([`losses`]), a generated pretraining
//! corpus with residual features made by the box's own code ([`corpus`]), training ([`train`]),
//! the ONNX export checked against tract ([`onnx_export`]), and manifests ([`manifest`]). Dataset
//! loaders for public layouts, feature caching, checkpoints, model calibration and bundles are
//! still to come (issue 3).

pub mod corpus;
pub mod losses;
pub mod manifest;
pub mod onnx_export;
pub mod projector;
pub mod train;
