//! edge-ad-core's search module and the feature map it works on, compiled from their own files
//! without the rest of the crate (tract above all). The search module's unit tests check the
//! kernel the target dispatches to (NEON on aarch64) against the portable one.
#![deny(unsafe_code)]

#[path = "../../../../runtime/core/src/feature_map.rs"]
pub mod feature_map;
#[path = "../../../../runtime/core/src/residual.rs"]
pub mod residual;
