use std::collections::BTreeMap;
use std::time::Instant;
use tract_onnx::prelude::*;
fn main() -> TractResult<()> {
    let nchw = std::env::var_os("EDGE_AD_NCHW").is_some();
    let bytes = std::fs::read("models/effnet_lite0_feat.onnx")?;
    let mut g = tract_onnx::onnx().with_ignore_output_shapes(true).with_ignore_value_info(true)
        .model_for_read(&mut std::io::Cursor::new(&bytes[..]))?
        .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())?;
    g.select_outputs_by_name(["feat_s8", "feat_s16"])?;
    let mut t = g.into_typed()?.into_decluttered()?;
    if !nchw { tract_onnx::tract_core::transform::get_transform("conv_nhwc")?.unwrap().transform(&mut t)?; }
    let plan = t.into_optimized()?.into_runnable()?;
    let x = Tensor::zero::<f32>(&[1, 3, 224, 224])?;
    let mut state = TypedSimpleState::new(&plan)?;
    let mut per: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut per_node: Vec<(f64, String)> = vec![];
    let iters = 30;
    for it in 0..iters {
        state.run_plan_with_eval(tvec!(x.clone().into_tvalue()), |ctx, st, node, inputs| {
            let s = Instant::now();
            let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
            let e = s.elapsed().as_secs_f64() * 1e3;
            let name = node.op.name().to_string();
            let key = format!("{}", name);
            let ent = per.entry(key).or_insert((0.0, 0)); ent.0 += e; ent.1 += 1;
            if it == iters - 1 { per_node.push((e, format!("{} {} {:?}", node.name, node.op.name(), node.outputs[0].fact.shape))); }
            r
        })?;
    }
    let mut v: Vec<_> = per.into_iter().collect();
    v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    let total: f64 = v.iter().map(|x| x.1 .0).sum::<f64>() / iters as f64;
    println!("total {total:.2} ms/frame");
    for (k, (t, n)) in v.iter().take(15) { println!("{:>8.2} ms  {:>4}  {}", t / iters as f64, n / iters, k); }
    per_node.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (t, n) in per_node.iter().take(25) { println!("{t:>7.3} {n}"); }
    Ok(())
}
