//! The projector: burn's forward pass against tract on the exported ONNX (the box's path), the
//! losses on hand-computed cases, and a few optimiser steps that lower the loss.

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use edge_ad_core::backbone::FeatureMap;
use edge_ad_core::model::Model;
use edge_ad_core::projector::Projector;
use edge_ad_host::losses::{angle_loss, norm_loss, LossVariant};
use edge_ad_host::onnx_export::export_level;
use edge_ad_host::projector::{LevelProjector, ProjectorSize};

fn tokens(map: &FeatureMap, device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(map.data.clone(), [1, map.patches(), map.channels]), device)
}

fn values(t: Tensor<3>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn wavy(c: usize, h: usize, w: usize, seed: usize) -> FeatureMap {
    let mut m = FeatureMap::zeros(c, h, w);
    m.data.iter_mut().enumerate().for_each(|(i, v)| *v = (((i * 31 + seed * 7) % 97) as f32 / 48.5 - 1.0) * 0.8);
    m
}

#[test]
fn exported_projector_run_by_the_box_equals_burns_forward() {
    let device = Device::flex();
    let model = Model::embedded_default().unwrap();
    let side = 64;
    let shapes = edge_ad_core::backbone::expected_shapes(&model.manifest, side);
    let dir = tempfile::tempdir().unwrap();
    let mut projectors = Vec::new();
    for (level, &(c, _, _)) in model.manifest.levels.iter().zip(&shapes) {
        let size = if c == 40 { ProjectorSize { keys: 96, ..ProjectorSize::paper(c) } } else { ProjectorSize::edge(c) };
        size.validate().unwrap();
        // A scale other than 1 checks that the export multiplies the input first.
        let p = LevelProjector::new(size, 0.25 + l_scale(c), &device);
        std::fs::write(dir.path().join(format!("{}.onnx", level.output)), export_level(&p)).unwrap();
        projectors.push(p);
    }
    let box_projector = Projector::from_dir(dir.path(), &model.manifest, &shapes).unwrap();
    for (l, &(c, h, w)) in shapes.iter().enumerate() {
        let input = wavy(c, h, w, l);
        let expected = values(projectors[l].forward(tokens(&input, &device)));
        let mut got = input.clone();
        box_projector.project(l, &mut got).unwrap();
        let worst = got.data.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-4, "level {l}: max abs diff {worst}");
        assert!(got.data.iter().zip(&input.data).any(|(a, b)| (a - b).abs() > 1e-3), "not the identity");
    }
}

fn l_scale(c: usize) -> f32 {
    c as f32 / 80.0
}

#[test]
fn a_projector_starting_as_identity_only_scales_its_input() {
    let device = Device::flex();
    let p = LevelProjector::new(ProjectorSize::edge(40), 0.05, &device).starting_as_identity();
    let input = wavy(40, 4, 3, 0);
    let got = values(p.forward(tokens(&input, &device)));
    let worst = got.iter().zip(&input.data).map(|(g, x)| (g - 0.05 * x).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-6, "max abs diff {worst}");
}

#[test]
fn input_scale_puts_the_median_normal_norm_at_one() {
    let mut norms = vec![40.0, 10.0, 20.0, f32::NAN, 30.0];
    // total order puts NaN last: the median of the five is 30.
    assert!((edge_ad_host::projector::input_scale(&mut norms) - 1.0 / 30.0).abs() < 1e-7);
    assert_eq!(edge_ad_host::projector::input_scale(&mut []), 1.0);
    assert_eq!(edge_ad_host::projector::input_scale(&mut [0.0, 0.0]), 1.0);
}

#[test]
fn sizes() {
    assert_eq!(
        ProjectorSize::paper(1024),
        ProjectorSize { channels: 1024, keys: 2048, hidden: 4096, heads: 16, se: 256 }
    );
    let e = ProjectorSize::edge(40);
    assert_eq!((e.heads, e.hidden, e.keys), (4, 80, 64));
    assert_eq!(ProjectorSize::paper(40).heads, 10);
    assert!(ProjectorSize { heads: 3, ..e }.validate().is_err());
}

fn t2(rows: &[[f32; 2]], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(rows.concat(), [rows.len(), 2]), device)
}

fn scalar(t: Tensor<1>) -> f32 {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()[0]
}

#[test]
fn angle_loss_by_hand() {
    let d = Device::flex();
    // A normal patch along x, an anomalous one along y, identical views, centre 0. Every anchor:
    // positive 1/τ, negatives the two opposite-label rows at similarity 0 → log 2.
    let e = t2(&[[2.0, 0.0], [0.0, 3.0]], &d);
    let c = Tensor::<1>::zeros([2], &d);
    let l = scalar(angle_loss(e.clone(), e.clone(), &[false, true], c.clone(), LossVariant::Official).unwrap());
    let expected = -1.0 / 0.15 + 2.0f32.ln();
    assert!((l - expected).abs() < 1e-4, "{l} vs {expected}");
    assert!(angle_loss(e.clone(), e, &[true, true], c, LossVariant::Official).is_none());
}

#[test]
fn norm_loss_by_hand() {
    let d = Device::flex();
    // One normal patch, ‖x‖ = 3: a = √4 − 1 = 1 > r_max = 0.4 → sp(0.6)·e^0.6.
    let (l, s) = norm_loss(t2(&[[3.0, 0.0]], &d), &[false], LossVariant::Official);
    let t = 0.6f32;
    let expected = (1.0 + t.exp()).ln() * t.exp();
    assert!((scalar(l) - expected).abs() < 1e-4);
    assert_eq!(s.r_max, 0.4);
    // An anomalous patch at 0 pulls r_max to 0; it must pass 0 + 0.75; the normal one at 0 sits
    // on the (empty) shell and costs nothing.
    let (l, s) = norm_loss(t2(&[[0.0, 0.0], [0.0, 0.0]], &d), &[false, true], LossVariant::Official);
    let expected = (1.0 + 0.75f32.exp()).ln() * 0.75f32.exp();
    assert!((scalar(l) - expected).abs() < 1e-4, "{}", expected);
    assert_eq!(s.r_max, 0.0);
    // Paper variant: a = √(‖x‖²+1) − 1 = √10 − 1 for ‖x‖ = 3, against the fixed r = 0.4.
    let (l, _) = norm_loss(t2(&[[3.0, 0.0]], &d), &[false], LossVariant::Paper);
    let t = 10f32.sqrt() - 1.0 - 0.4;
    assert!((scalar(l) - (1.0 + t.exp()).ln() * t.exp()).abs() < 1e-3);
}

#[test]
fn a_few_adam_steps_lower_both_losses() {
    let device = Device::flex().autodiff();
    let mut p = LevelProjector::new(ProjectorSize::edge(8), 1.0, &device);
    let mut opt = AdamConfig::new().init();
    let (b, l, c) = (2, 16, 8);
    let data: Vec<f32> = (0..b * l * c).map(|i| ((i * 37 % 23) as f32 / 11.5 - 1.0) * 0.5).collect();
    let labels: Vec<bool> = (0..b * l).map(|i| i % 16 < 3).collect();
    let x = Tensor::<3>::from_data(TensorData::new(data, [b, l, c]), &device);
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..30 {
        let e = p.forward(x.clone()).reshape([b * l, c]);
        let center = Tensor::<1>::zeros([c], &device);
        let angle = angle_loss(e.clone(), e.clone(), &labels, center, LossVariant::Official).unwrap();
        let (norm, _) = norm_loss(e, &labels, LossVariant::Official);
        let loss = angle + norm;
        last = scalar(loss.clone().detach());
        first.get_or_insert(last);
        let grads = GradientsParams::from_grads(loss.backward(), &p);
        p = opt.step(1e-2, p, grads);
    }
    assert!(last < first.unwrap() - 0.1, "loss {} → {last}", first.unwrap());
}
