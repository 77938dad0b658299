"""The frame path a Python user would write with onnxruntime, timed beside `edge-ad run`.

Decode (PIL) -> resize the shorter side to 224 (bicubic) and centre-crop -> the same backbone ONNX
-> cosine 1-NN residuals against every patch of the K shots (numpy GEMM + argmax) -> the same
projector ONNX per level -> FeatureNorm -> bilinear (align corners) upsampling, level mean,
Gaussian sigma 4 (scipy, reflect) -> the mean of the map's highest 2 % -> verdict at the threshold.

A measuring tool for benches/vs_onnxruntime.sh, not part of the box. Prints one JSON object:
per-frame latencies (decoded image to verdict, as edge-ad's records time it), the wall time of the
loop (decode included), the median milliseconds of each stage, and the scores and verdicts, so the
caller can check that both pipelines computed the same thing.

Usage: ort_pipeline.py --model M.onnx --projector DIR|none --shots S1.png ... --images I1.png ...
       --threshold T [--threads N] [--repeat R]
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import onnxruntime as ort
from PIL import Image
from scipy.ndimage import gaussian_filter

SIDE = 224
LEVELS = ["feat_s8", "feat_s16"]


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def decode(path):
    return Image.open(path).convert("RGB")


def prep(im):
    w, h = im.size
    s = SIDE / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.BICUBIC)
    w, h = im.size
    left, top = (w - SIDE) // 2, (h - SIDE) // 2
    im = im.crop((left, top, left + SIDE, top + SIDE))
    return np.ascontiguousarray(np.asarray(im, np.float32).transpose(2, 0, 1)[None] / 255.0)


def upsample_matrix(n, side):
    """Rows of bilinear (align_corners=True) weights from n grid points to side pixels."""
    m = np.zeros((side, n), np.float32)
    for y in range(side):
        f = y * (n - 1) / (side - 1)
        y0 = min(int(np.floor(f)), n - 1)
        y1 = min(y0 + 1, n - 1)
        t = f - y0
        m[y, y0] += 1 - t
        m[y, y1] += t
    return m


class Pipeline:
    def __init__(self, model, projector, shots, threads):
        self.backbone = session(model, threads)
        self.projectors = None
        if projector != "none":
            self.projectors = [session(os.path.join(projector, f"{l}.onnx"), threads) for l in LEVELS]
        feats = [self.features(prep(decode(s))) for s in shots]
        # Per level: raw bank rows (patches x C) and their unit rows for the cosine search.
        self.raw = [np.concatenate([f[l] for f in feats]) for l in range(len(LEVELS))]
        self.unit = [r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12) for r in self.raw]
        self.up = {}

    def features(self, x):
        outs = self.backbone.run(LEVELS, {"image": x})
        # 1 x C x H x W -> (H*W) x C rows
        return [o[0].reshape(o.shape[1], -1).T.copy() for o in outs]

    def score(self, image):
        """The image score; the milliseconds of each stage go to self.stage_ms."""
        t = [time.perf_counter()]
        x = prep(image)
        t.append(time.perf_counter())
        feats = self.features(x)
        t.append(time.perf_counter())
        acc = np.zeros((SIDE, SIDE), np.float32)
        search = projector = 0.0
        grids = []
        for level, q in enumerate(feats):
            start = time.perf_counter()
            qu = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            nearest = np.argmax(qu @ self.unit[level].T, axis=1)
            r = q - self.raw[level][nearest]
            hw = int(round(np.sqrt(r.shape[0])))
            chw = r.T.reshape(1, r.shape[1], hw, hw).astype(np.float32)
            middle = time.perf_counter()
            if self.projectors is not None:
                chw = self.projectors[level].run(None, {"residual": chw})[0]
            search += middle - start
            projector += time.perf_counter() - middle
            grids.append((chw, hw))
        start = time.perf_counter()
        for chw, hw in grids:
            norm = np.sqrt((chw[0] ** 2).sum(axis=0))
            grid = np.sqrt(norm + 1) - 1
            m = self.up.setdefault(hw, upsample_matrix(hw, SIDE))
            acc += m @ grid @ m.T
        acc /= len(feats)
        smooth = gaussian_filter(acc, sigma=4.0, mode="reflect", truncate=4.0)
        flat = smooth.ravel()
        k = max(1, int(round(flat.size * 0.02)))
        score = float(np.partition(flat, flat.size - k)[flat.size - k:].mean())
        ms = lambda seconds: seconds * 1e3
        self.stage_ms = {"preprocess": ms(t[1] - t[0]), "backbone": ms(t[2] - t[1]), "search": ms(search),
                         "projector": ms(projector), "map and score": ms(time.perf_counter() - start)}
        return score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--projector", required=True)
    ap.add_argument("--shots", nargs="+", required=True)
    ap.add_argument("--images", nargs="+", required=True)
    ap.add_argument("--threshold", type=float, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    p = Pipeline(a.model, a.projector, a.shots, a.threads)
    p.score(decode(a.images[0]))  # warm-up, as edge-ad's plan is compiled before its first frame
    latencies, scores, verdicts, stages = [], [], [], []
    wall = time.perf_counter()
    for _ in range(a.repeat):
        for path in a.images:
            image = decode(path)
            start = time.perf_counter()
            s = p.score(image)
            verdicts.append("NG" if not s <= a.threshold else "OK")
            latencies.append((time.perf_counter() - start) * 1e3)
            scores.append(s)
            stages.append(p.stage_ms)
    wall = time.perf_counter() - wall
    stage_ms = {name: statistics.median(s[name] for s in stages) for name in stages[0]} if stages else {}
    print(json.dumps({"latency_ms": latencies, "wall_s": wall, "scores": scores[: len(a.images)],
                      "verdicts": verdicts[: len(a.images)], "threads": a.threads, "stage_ms": stage_ms}))


if __name__ == "__main__":
    main()
