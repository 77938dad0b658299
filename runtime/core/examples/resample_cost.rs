//! What the frame resample costs against fast_image_resize, which the crate used before it
//! (`src/resample.rs` says why it changed): both on the same synthetic frames, interleaved, 200
//! times each, median milliseconds. The own side is the whole preprocess (resample and the CHW
//! layout); fast_image_resize's is its resize alone (the layout came on top).
//!
//!     cargo run --release -p edge-ad-core --example resample_cost

use edge_ad_core::model::Model;
use edge_ad_core::preprocess::Preprocessor;
use fast_image_resize::{images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use std::time::Instant;
fn main() {
    // A frame's shorter side resized to `resize`, the centre 224² kept.
    let model = Model::embedded_default().unwrap();
    for (w, h, resize) in [(256u32, 256u32, 224u32), (256, 256, 256), (640, 480, 224), (1920, 1080, 224)] {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 + y) as u8, (x ^ y) as u8, (x * y) as u8]));
        let mut pre = Preprocessor::new(&model.manifest, resize, 224).unwrap();
        let g = pre.geometry(w, h);
        let mut r = Resizer::new();
        let mut out = Image::new(224, 224, PixelType::U8x3);
        let opts = ResizeOptions::new()
            .crop(g.left, g.top, g.side, g.side)
            .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let t = Instant::now();
            pre.run(&img).unwrap();
            a.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            r.resize(&img, &mut out, &opts).unwrap();
            b.push(t.elapsed().as_secs_f64() * 1e3);
        }
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        println!("{w}×{h}, shorter side to {resize}, crop 224: preprocess (own resample and layout) {:.3} ms, fast_image_resize alone {:.3} ms", a[100], b[100]);
    }
}
