"""Extract and cache backbone features for a dataset (prototype of the box's frame path)."""
import os, sys, glob, pickle
import numpy as np
from PIL import Image
from direct import LITE0, features, prep, mask_of

ROOT = sys.argv[1]
OUT = sys.argv[2]
MODEL = sys.argv[3] if len(sys.argv) > 3 else LITE0
_features = features(MODEL, threads=2)


def feats(im):
    return _features(prep(im))


def variations(im):
    a = np.asarray(im.convert('RGB'), np.float32)
    g = lambda f: Image.fromarray(np.minimum(np.round(a * f), 255).astype(np.uint8))
    w, h = im.size
    cw, ch = int(w * 0.96), int(h * 0.96)
    return [g(0.92), g(1.08), im.crop((0, 0, cw, ch)), im.crop((w - cw, h - ch, w, h))]


data = {}
for cat in sorted(os.listdir(ROOT)):
    d = os.path.join(ROOT, cat)
    if not os.path.isdir(os.path.join(d, 'train', 'good')):
        continue
    shots = sorted(glob.glob(os.path.join(d, 'train', 'good', '*.png')))
    sh = []
    for p in shots:
        im = Image.open(p)
        sh.append({'f': feats(im), 'var': [feats(v) for v in variations(im)], 'name': p})
    tests = []
    for kd in sorted(os.listdir(os.path.join(d, 'test'))):
        for p in sorted(glob.glob(os.path.join(d, 'test', kd, '*.png'))):
            stem = os.path.splitext(os.path.basename(p))[0]
            m = None if kd == 'good' else mask_of(os.path.join(d, 'ground_truth', kd, stem + '_mask.png'))
            tests.append({'kind': kd, 'f': feats(Image.open(p)), 'mask': m, 'name': p})
    data[cat] = {'shots': sh, 'tests': tests}
    print(cat, len(sh), len(tests), flush=True)
pickle.dump(data, open(OUT, 'wb'))
