//! The default backbone on its two engines, interleaved on one thread: the crate's own executor
//! (`conv_net`, what `Backbone::new` picks for it) and tract (`Backbone::on_tract`), at each
//! working side given. Prints the median milliseconds of each and their ratio, and how far apart
//! the two engines' features are (largest difference against the largest value).
//!
//!     cargo run --release -p edge-ad-core --example backbone_engines -- [SIDE ...] [--runs N]
//!
//! README, *Speed*, quotes it.

use std::time::Instant;

use edge_ad_core::backbone::Backbone;
use edge_ad_core::model::Model;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sides = Vec::new();
    let mut runs = 100;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().ok_or("--runs N")?.parse()?;
        } else {
            sides.push(a.parse::<u32>()?);
        }
    }
    if sides.is_empty() {
        sides.push(224);
    }
    let model = Model::embedded_default()?;
    println!("| side | own ms | tract ms | own / tract | largest difference / largest value |");
    println!("|---:|---:|---:|---:|---:|");
    for side in sides {
        let mut own = Backbone::new(&model, side)?;
        let mut tract = Backbone::on_tract(&model, side)?;
        if own.engine() != "own" {
            return Err("the own executor declined the default graph".into());
        }
        let n = 3 * (side * side) as usize;
        // A smooth image with detail at every scale (values in [0, 1]).
        let image: Vec<f32> = (0..n)
            .map(|i| 0.5 + 0.25 * ((i % 97) as f32 * 0.37).sin() + 0.2 * ((i / 211) as f32 * 0.11).cos())
            .collect();
        let (mut a, mut b) = (own.empty_maps(), tract.empty_maps());
        own.run_into(&image, &mut a)?;
        tract.run_into(&image, &mut b)?;
        let mut worst: f32 = 0.0;
        let mut largest: f32 = 0.0;
        for (x, y) in a.iter().zip(&b) {
            for (p, q) in x.data.iter().zip(&y.data) {
                worst = worst.max((p - q).abs());
                largest = largest.max(q.abs());
            }
        }
        let (mut t_own, mut t_tract) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            own.run_into(&image, &mut a)?;
            t_own.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            tract.run_into(&image, &mut b)?;
            t_tract.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (o, t) = (median(t_own), median(t_tract));
        println!("| {side} | {o:.2} | {t:.2} | {:.2} | {:.1e} |", o / t, worst / largest);
    }
    Ok(())
}
