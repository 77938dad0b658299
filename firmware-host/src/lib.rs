//! `edge-ad-host`: the companion host tool's library. It pretrains ADPretrain's feature projector,
//! exports it as ONNX for the boxes, and writes model manifests.
//!
//! This build has the projector ([`projector`]), its losses ([`losses`]), the ONNX export checked
//! against tract ([`onnx_export`]), and manifests ([`manifest`]). Dataset loaders, training, model
//! calibration and bundles are still to come (issue 3).

pub mod losses;
pub mod manifest;
pub mod onnx_export;
pub mod projector;
