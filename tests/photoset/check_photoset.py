#!/usr/bin/env python3
"""Checks a generated real-photograph set and the `edge-ad eval --json` figures on it (CI runs
this on a small set; the full evaluation is a documented command in the README).

    python3 tests/photoset/check_photoset.py DATASET EVAL_JSON_LINES
"""

import json
import os
import sys

import numpy as np
from PIL import Image

from make_photoset import DEFECTS, SIDE


def fail(msg):
    sys.exit(f"photoset check failed: {msg}")


def check_dataset(root):
    cats = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, "train", "good")))
    if not cats:
        fail(f"{root}: no category with train/good")
    for c in cats:
        d = os.path.join(root, c)
        shots = sorted(os.listdir(os.path.join(d, "train", "good")))
        good = [np.asarray(Image.open(os.path.join(d, "train", "good", f))) for f in shots]
        if any(g.shape != (SIDE, SIDE, 3) for g in good):
            fail(f"{c}: a shot is not {SIDE}×{SIDE} RGB")
        if len({g.tobytes() for g in good}) != len(good):
            fail(f"{c}: two shots are the same image")
        for kind in DEFECTS:
            folder = os.path.join(d, "test", kind)
            if not os.path.isdir(folder):
                fail(f"{c}: no test/{kind}")
            for f in sorted(os.listdir(folder)):
                stem = os.path.splitext(f)[0]
                part = np.asarray(Image.open(os.path.join(folder, f)))
                mask = np.asarray(Image.open(os.path.join(d, "ground_truth", kind, f"{stem}_mask.png")))
                if part.shape != (SIDE, SIDE, 3) or mask.shape != (SIDE, SIDE):
                    fail(f"{c}/{kind}/{f}: part {part.shape} or mask {mask.shape} is not {SIDE}×{SIDE}")
                area = int((mask > 127).sum())
                # A defect covers some pixels and never most of the part.
                if not 16 <= area <= SIDE * SIDE // 4:
                    fail(f"{c}/{kind}/{f}: mask covers {area} pixels")
    return cats


def check_eval(path, cats):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by_cat = {r["category"]: r for r in rows}
    for c in cats + ["mean"]:
        if c not in by_cat:
            fail(f"{path}: no figures for {c}")
        r = by_cat[c]
        for key in ("image_auroc", "pixel_auroc", "aupro", "escape_rate", "false_reject_rate"):
            v = r.get(key)
            if v is None or not 0.0 <= v <= 1.0:
                fail(f"{path}: {c} {key} = {v}")
        kinds = sorted(d["kind"] for d in r["defects"])
        if kinds != sorted(DEFECTS):
            fail(f"{path}: {c} reports defect kinds {kinds}")
    # Even a tiny set separates the painted defects from good parts better than chance.
    if by_cat["mean"]["pixel_auroc"] < 0.6:
        fail(f"mean pixel AUROC {by_cat['mean']['pixel_auroc']:.3f} is near chance")
    return by_cat["mean"]


if __name__ == "__main__":
    cats = check_dataset(sys.argv[1])
    mean = check_eval(sys.argv[2], cats)
    print(
        f"photoset: {len(cats)} categories; mean I-AUROC {mean['image_auroc']:.3f} P-AUROC {mean['pixel_auroc']:.3f}"
        f" AUPRO {mean['aupro']:.3f} escapes {mean['escape_rate']:.3f} false rejects {mean['false_reject_rate']:.3f}"
    )
