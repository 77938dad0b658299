//! What each precision costs the backbone on this CPU: the default graph as the box compiles it in
//! f32 and in f16, and optionally a static int8 QDQ export of the same graph, each run 30 times
//! at 224² on one thread; prints the median milliseconds per frame.
//!
//!     cargo run --release -p edge-ad-core --example precision_cost [INT8_QDQ.onnx]
//!
//! f16 is a speed figure only on an Arm core with FP16 arithmetic; elsewhere tract emulates it.
//! The int8 file (shared/models/effnet_lite0_feat_int8_qdq_mixed.onnx) is compiled by the box's
//! own `Backbone::new` (fixed input, channel-last convolutions). README, *Precision per board*,
//! quotes it.

use std::time::Instant;

use edge_ad_core::backbone::Backbone;
use edge_ad_core::model::Model;
use edge_ad_core::precision::{cpu_has_f16_arithmetic, Precision};
use tract_onnx::prelude::{TractError, TractResult};

const RUNS: usize = 30;
const SIDE: usize = 224;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed(mut frame: impl FnMut() -> TractResult<()>) -> TractResult<f64> {
    frame()?; // warm-up
    let mut ms = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        frame()?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(ms))
}

fn main() -> TractResult<()> {
    let err = |e: edge_ad_core::Error| TractError::msg(e.to_string());
    let input: Vec<f32> = (0..3 * SIDE * SIDE).map(|i| ((i * 31) % 255) as f32 / 255.0 - 0.5).collect();
    println!(
        "backbone at {SIDE}², one thread, median of {RUNS} (this CPU {} f16 arithmetic)",
        if cpu_has_f16_arithmetic() { "has" } else { "has no" }
    );
    for precision in [Precision::F32, Precision::F16] {
        let mut model = Model::embedded_default().map_err(err)?;
        model.precision = precision;
        let mut backbone = Backbone::new(&model, SIDE as u32).map_err(err)?;
        let mut out = backbone.empty_maps();
        let ms = timed(|| backbone.run_into(&input, &mut out).map_err(err))?;
        println!("{precision:>5}  {ms:>8.2} ms");
    }
    if let Some(path) = std::env::args().nth(1) {
        // The same graph exported with int8 QDQ, compiled by the box's own Backbone::new.
        let onnx = std::fs::read(&path).map_err(|e| TractError::msg(format!("{path}: {e}")))?;
        let model = Model { onnx: onnx.into(), origin: path.clone(), ..Model::embedded_default().map_err(err)? };
        let mut backbone = Backbone::new(&model, SIDE as u32).map_err(err)?;
        let mut out = backbone.empty_maps();
        let ms = timed(|| backbone.run_into(&input, &mut out).map_err(err))?;
        println!(" int8  {ms:>8.2} ms  ({path}, QDQ)");
    }
    Ok(())
}
