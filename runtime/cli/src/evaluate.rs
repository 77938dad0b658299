//! `edge-ad eval` and `edge-ad demo`: calibrate on K good parts of each category and score its
//! test set through the box's frame path; print the figures.

use std::path::Path;
use std::process::ExitCode;

use edge_ad_core::decision::Verdict;
use edge_ad_core::setup::Station;
use edge_ad_eval::eval::{self, CategoryReport};
use edge_ad_eval::{dataset, progress, report, synth};

use crate::args::{CalibArgs, DemoArgs, EvalArgs, ModelArgs, WorkersArg};
use crate::calibrate::{settings, sides};
use crate::Result;

fn fmt_opt(v: Option<f64>, pct: bool) -> String {
    match v {
        Some(x) if pct => format!("{:.1}%", 100.0 * x),
        Some(x) => format!("{x:.4}"),
        None => "-".into(),
    }
}

fn print_table(reports: &[CategoryReport]) {
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "category", "I-AUROC", "P-AUROC", "AUPRO", "threshold", "escape", "f-reject", "ms med", "ms p95", "frames/s"
    );
    for r in reports {
        println!(
            "{:<14} {:>8} {:>8} {:>8} {:>10.4} {:>8} {:>8} {:>9.1} {:>9.1} {:>9.1}",
            r.category,
            fmt_opt(r.image_auroc, false),
            fmt_opt(r.pixel_auroc, false),
            fmt_opt(r.aupro, false),
            r.threshold,
            fmt_opt(r.escape_rate, true),
            fmt_opt(r.false_reject_rate, true),
            r.latency_ms_median,
            r.latency_ms_p95,
            r.frames_per_s
        );
    }
    // Per defect kind, over the categories (the last report is the mean when there are several).
    if let Some(overall) = reports.last().filter(|r| !r.defects.is_empty()) {
        println!();
        println!("{:<14} {:>8} {:>8} {:>8}", "defect kind", "I-AUROC", "escape", "parts");
        for d in &overall.defects {
            println!(
                "{:<14} {:>8} {:>8} {:>8}",
                d.kind,
                fmt_opt(d.image_auroc, false),
                fmt_opt(d.escape_rate, true),
                d.images
            );
        }
    }
}

/// What one evaluation runs: the model, the flags that shape the calibration, the shots.
struct Plan<'a> {
    station: &'a Station,
    model: &'a ModelArgs,
    calib: &'a CalibArgs,
    shots: usize,
    workers: WorkersArg,
}

impl Plan<'_> {
    fn evaluate(
        &self,
        root: &Path,
        names: &[String],
        mut per_image: impl FnMut(&str, &eval::Scored<'_>),
    ) -> Result<Vec<(CategoryReport, eval::Details)>> {
        let (working_side, resize_side) = sides(self.station, self.calib);
        let (workers, search_threads) = self.workers.resolve(self.model, self.station);
        let plan = eval::Plan {
            model: self.station,
            projector: self.station.projector(working_side)?,
            settings: settings(self.calib, self.model, self.station),
            working_side,
            resize_side,
            shots: self.shots,
            workers,
            search_threads,
        };
        let mut reports = Vec::new();
        for name in names {
            let category = dataset::load_category(root, name)?;
            let bar = progress::bar((category.test.len() + 2 * self.shots) as u64, name);
            let (report, details) = eval::evaluate_category(
                &plan,
                &category,
                &|msg| {
                    bar.inc(1);
                    bar.set_message(msg.to_string());
                },
                &mut |s| bar.suspend(|| per_image(name, &s)),
            )?;
            bar.finish_and_clear();
            reports.push((report, details));
        }
        Ok(reports)
    }
}

/// `edge-ad eval`.
pub fn eval(model: &ModelArgs, a: EvalArgs) -> Result {
    let station = model.setup().open()?;
    let names = if a.categories.is_empty() { dataset::category_names(&a.dataset)? } else { a.categories.clone() };
    let plan = Plan { station: &station, model, calib: &a.calib, shots: a.shots.shots, workers: a.workers };
    let evaluated = plan.evaluate(&a.dataset, &names, |_, _| {})?;
    let mut reports: Vec<CategoryReport> = evaluated.iter().map(|(r, _)| r.clone()).collect();
    reports.push(eval::mean_report(&reports));
    if let Some(dir) = &a.report {
        let sections: Vec<report::Section<'_>> =
            evaluated.iter().map(|(report, details)| report::Section { report, details }).collect();
        let index = report::write(dir, &a.dataset.display().to_string(), &sections, &reports[reports.len() - 1])?;
        eprintln!("report: {}", index.display());
    }
    if a.json.json {
        for r in &reports {
            let line = serde_json::to_string(r)
                .map_err(|e| edge_ad_core::Error::Stage { stage: "report", reason: format!("JSON: {e}") })?;
            println!("{line}");
        }
    } else {
        print_table(&reports);
    }
    Ok(ExitCode::SUCCESS)
}

/// `edge-ad demo`.
pub fn demo(model: &ModelArgs, a: DemoArgs) -> Result {
    let station = model.setup().open()?;
    let (root, temporary) = match &a.keep {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("edge-ad-demo-{}", std::process::id())), true),
    };
    let spec =
        synth::SynthSpec { seed: a.seed, test_good: a.test_good, per_defect: a.per_defect, ..Default::default() };
    let textures = if a.training_textures { synth::TRAINING_TEXTURES } else { synth::TEXTURES };
    println!(
        "generating {} textures ({} good shots available, {} good and {} defective test parts each) in {}",
        textures.len(),
        spec.train_good,
        spec.test_good,
        spec.per_defect * synth::DEFECTS.len(),
        root.display()
    );
    synth::generate(&root, &textures, &spec)?;
    let names: Vec<String> = textures.iter().map(|s| s.to_string()).collect();
    println!("calibrating on the first {} good parts of each texture, then scoring every test part:", a.shots.shots);
    let plan = Plan { station: &station, model, calib: &a.calib, shots: a.shots.shots, workers: a.workers };
    let result = plan.evaluate(&root, &names, |cat, s| {
        let truth = s.item.defect.as_deref().unwrap_or("good");
        let file = s.item.path.file_name().unwrap_or_default().to_string_lossy();
        let wrong =
            matches!((truth, s.verdict), ("good", Verdict::Ng)) || (truth != "good" && s.verdict == Verdict::Ok);
        println!(
            "  {cat:<6} {truth:<8} {file}  score {:.4}  {}{}  {:.1} ms",
            s.score,
            s.verdict.as_str(),
            if wrong { " (wrong)" } else { "" },
            s.latency_ms
        );
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&root);
    }
    let mut reports: Vec<CategoryReport> = result?.into_iter().map(|(r, _)| r).collect();
    reports.push(eval::mean_report(&reports));
    println!();
    print_table(&reports);
    Ok(ExitCode::SUCCESS)
}
