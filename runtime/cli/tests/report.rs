//! `edge-ad eval --report`: the report is written with every image it names, and it renders in
//! headless Chromium with every image loaded.
//!
//! The browser half needs `chromium` (Debian package) on the PATH. Without it the test says so
//! and checks the files only, unless `EDGE_AD_BROWSER_TEST=required` (CI sets it), which makes a
//! missing browser a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn edge_ad(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_edge-ad")).args(args).output().expect("edge-ad runs");
    assert!(out.status.success(), "edge-ad {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `src` attribute of every `<img>` in `html`.
fn image_sources(html: &str) -> Vec<String> {
    html.split("<img ")
        .skip(1)
        .map(|tag| {
            let start = tag.find("src=\"").expect("an img has a src") + 5;
            tag[start..start + tag[start..].find('"').expect("src is quoted")].to_string()
        })
        .collect()
}

fn browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Opens `page` in headless Chromium and returns "loaded/total" as the page's own images report
/// it once the load event has fired.
fn images_loaded_in_browser(chromium: &Path, report: &Path) -> String {
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    // A copy of the page with a probe: after `load`, count the images that decoded.
    let probe = "<script>window.addEventListener('load', () => { const i = [...document.images]; \
                 document.body.setAttribute('data-images', i.filter(x => x.complete && x.naturalWidth > 0).length \
                 + '/' + i.length); });</script>";
    let check = report.join("check.html");
    std::fs::write(&check, html.replace("</body>", &format!("{probe}</body>"))).unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", check.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let at = dom.find("data-images=\"").unwrap_or_else(|| {
        panic!("the page did not report its images; chromium said: {}", String::from_utf8_lossy(&out.stderr))
    }) + 13;
    dom[at..at + dom[at..].find('"').unwrap()].to_string()
}

#[test]
fn the_report_names_only_images_it_wrote_and_renders_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let report = dir.path().join("report");
    let data_s = data.to_str().unwrap();
    edge_ad(&["demo", "--keep", data_s, "--seed", "5", "--test-good", "4", "--per-defect", "2", "--workers", "2"]);
    // `--plots` is the older spelling of `--report`.
    edge_ad(&["eval", "--dataset", data_s, "--shots", "4", "--plots", report.to_str().unwrap()]);

    let html = std::fs::read_to_string(report.join("index.html")).expect("index.html is written");
    for section in ["weave", "grain", "mesh", "Figures", "Per defect kind", "Worst escapes", "Worst false rejects"] {
        assert!(html.contains(section), "the report lacks {section}");
    }
    let sources = image_sources(&html);
    // Four charts per category at least.
    assert!(sources.len() >= 12, "{} images", sources.len());
    for src in &sources {
        assert!(!src.contains(':') && !src.starts_with('/'), "{src} is not a path beside the report");
        let bytes = std::fs::read(report.join(src)).unwrap_or_else(|e| panic!("{src}: {e}"));
        if src.ends_with(".svg") {
            let svg = String::from_utf8(bytes).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{src} is not a whole SVG");
        } else {
            let image = image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert!(image.width() > 0 && image.width() <= 256, "{src}: {} px wide", image.width());
        }
    }
    // The strip plot shows the calibration's leave-one-out scores and the three thresholds.
    let scores = std::fs::read_to_string(report.join("img/c0-scores.svg")).unwrap();
    for label in ["calibration (LOO)", "good", "sensitivity 0.8", "sensitivity 1.25", "threshold"] {
        assert!(scores.contains(label), "the strip plot lacks {label}");
    }

    match browser() {
        Some(chromium) => {
            let loaded = images_loaded_in_browser(&chromium, &report);
            assert_eq!(loaded, format!("{n}/{n}", n = sources.len()), "images loaded in Chromium");
        }
        None if std::env::var("EDGE_AD_BROWSER_TEST").as_deref() == Ok("required") => {
            panic!("EDGE_AD_BROWSER_TEST=required but no chromium on the PATH")
        }
        None => eprintln!("no chromium on the PATH: the browser check is left out (apt-get install chromium)"),
    }
}
