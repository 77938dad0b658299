use edge_ad::backbone::FeatureMap;
use edge_ad_host::corpus::Sample;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1]).unwrap();
    let s: Vec<Sample> = postcard::from_bytes(&bytes[32..]).unwrap();
    let model = edge_ad::model::Model::embedded_default().unwrap();
    let proj = edge_ad::projector::Projector::open(Some(std::path::Path::new(&args[2])), &model, 224).unwrap();
    let shapes = edge_ad::backbone::expected_shapes(&model.manifest, 224);
    for (l, &(c, h, w)) in shapes.iter().enumerate() {
        let (mut raw, mut pj, mut lab) = (vec![], vec![], vec![]);
        for x in &s {
            let ls = &x.levels[l];
            if !ls.angle_labels.iter().any(|v| *v) && lab.len() > 200000 {
                continue;
            }
            let mut fm = FeatureMap::zeros(c, h, w);
            // view1 is H·W rows of C; FeatureMap is channels-last too? check
            fm.data.copy_from_slice(&ls.view1);
            let r: Vec<f32> = fm.data.chunks_exact(c).map(|z| z.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
            proj.project(l, &mut fm).unwrap();
            let p: Vec<f32> = fm.data.chunks_exact(c).map(|z| z.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
            for i in 0..h * w {
                if ls.angle_labels[i] || !ls.near_defect[i] {
                    raw.push(r[i]);
                    pj.push(p[i]);
                    lab.push(ls.angle_labels[i]);
                }
            }
        }
        println!(
            "level {l}: patch AUROC raw {:.4} projected {:.4} (n {}, anomalous {})",
            edge_ad::metrics::auroc(&raw, &lab).unwrap(),
            edge_ad::metrics::auroc(&pj, &lab).unwrap(),
            lab.len(),
            lab.iter().filter(|v| **v).count()
        );
    }
}
