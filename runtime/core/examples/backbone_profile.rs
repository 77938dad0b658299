//! Where the backbone's time goes in tract: the default graph compiled as the box compiles it
//! (224², channel-last convolutions), run 30 times with a timer around every node; prints the
//! milliseconds per frame by operator kind and the slowest nodes.
//!
//!     cargo run --release -p edge-ad-core --example backbone_profile [nchw]
//!
//! `nchw` leaves the convolutions channel-first (the build before `conv_nhwc`), for comparison.
//! README, *Speed*, quotes its output for the portable and the x86-64-v3 build.

use std::collections::BTreeMap;
use std::time::Instant;

use tract_onnx::prelude::*;

const RUNS: usize = 30;

fn main() -> TractResult<()> {
    let channel_first = std::env::args().nth(1).is_some_and(|a| a == "nchw");
    let model = edge_ad_core::model::Model::embedded_default().map_err(|e| TractError::msg(e.to_string()))?;
    let outputs: Vec<&str> = model.manifest.levels.iter().map(|l| l.output.as_str()).collect();
    let mut graph = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .model_for_read(&mut std::io::Cursor::new(&model.onnx[..]))?
        .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())?;
    graph.select_outputs_by_name(outputs)?;
    let mut typed = graph.into_typed()?.into_decluttered()?;
    if !channel_first {
        if let Some(t) = tract_onnx::tract_core::transform::get_transform("conv_nhwc")? {
            t.transform(&mut typed)?;
        }
    }
    let plan = typed.into_optimized()?.into_runnable()?;
    let input = Tensor::zero::<f32>(&[1, 3, 224, 224])?;
    let mut state = TypedSimpleState::new(&plan)?;
    let mut by_kind: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut last_run: Vec<(f64, String)> = Vec::new();
    for run in 0..RUNS {
        state.run_plan_with_eval(tvec!(input.clone().into_tvalue()), |ctx, op_state, node, inputs| {
            let start = Instant::now();
            let result = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
            let ms = start.elapsed().as_secs_f64() * 1e3;
            let entry = by_kind.entry(node.op.name().to_string()).or_insert((0.0, 0));
            entry.0 += ms;
            entry.1 += 1;
            if run == RUNS - 1 {
                last_run.push((ms, format!("{} ({}) {:?}", node.name, node.op.name(), node.outputs[0].fact.shape)));
            }
            result
        })?;
    }
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    let total: f64 = kinds.iter().map(|k| k.1 .0).sum::<f64>() / RUNS as f64;
    println!("backbone {total:.2} ms per frame ({}), mean of {RUNS}", if channel_first { "NCHW" } else { "NHWC" });
    for (kind, (ms, n)) in kinds.iter().take(8) {
        println!("{:>8.2} ms  {:>3} nodes  {kind}", ms / RUNS as f64, n / RUNS);
    }
    last_run.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("slowest nodes of the last run:");
    for (ms, node) in last_run.iter().take(10) {
        println!("{ms:>8.3} ms  {node}");
    }
    Ok(())
}
