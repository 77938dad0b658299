//! edge-ad-eval: measuring the frame path, never run on the line.
//!
//! [`dataset`] reads MVTec-layout datasets, [`eval`] calibrates on the first K good parts of a
//! category and scores its test set through the same frame path the box runs, [`metrics`]
//! computes AUROC, AUPRO and rates, [`synth`] generates textured parts with painted defects for
//! demos and tests, [`report`] writes the HTML evaluation report, and [`progress`] is the bar the
//! command line tools show.
#![deny(unsafe_code)]

pub mod dataset;
pub mod eval;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod synth;
