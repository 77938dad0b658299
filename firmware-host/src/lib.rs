//! `edge-ad-host`: the companion host tool's library. It pretrains ADPretrain's feature projector,
//! exports it as ONNX for the boxes, and writes model manifests.
//!
//! This build has dataset layouts ([`datasets`]) and synthetic anomalies for good-only data
//! ([`anomalies`]), pretraining samples with residual features made by the box's own code, from
//! a generated corpus or a dataset, cached on disk ([`corpus`]), the projector ([`projector`]),
//! its losses ([`losses`]), training ([`train`]), the ONNX export checked against tract
//! ([`onnx_export`]), manifests ([`manifest`]), and the model calibration and flashing bundles
//! ([`bundle`]). Training checkpoints and resume live in [`train`]; [`device`] picks the CPU or
//! a CUDA GPU.

pub mod anomalies;
pub mod bundle;
pub mod corpus;
pub mod datasets;
pub mod device;
pub mod losses;
pub mod manifest;
pub mod onnx_export;
pub mod projector;
pub mod train;
