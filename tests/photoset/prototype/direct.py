"""Helpers for the scripts that read a set's images: the box's preprocessing, onnxruntime
features, masks, the top-2 % image score and the parts of a category."""
import os, glob, numpy as np
from PIL import Image
import onnxruntime as ort
from score import SIDE

LITE0 = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../models/effnet_lite0_feat.onnx')


def features(model=LITE0, threads=1):
    """The feature function of an ONNX backbone: CHW image -> per-level C,H,W arrays."""
    so = ort.SessionOptions(); so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, so)
    return lambda a: [o[0] for o in sess.run(None, {'image': a[None]})]


def prep(im):
    """Resize the shorter side to SIDE (bicubic), centre crop, CHW in [0, 1]."""
    im = im.convert('RGB'); w, h = im.size; s = SIDE / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.BICUBIC); w, h = im.size
    l, t = (w - SIDE) // 2, (h - SIDE) // 2
    return np.asarray(im.crop((l, t, l + SIDE, t + SIDE)), np.float32).transpose(2, 0, 1) / 255.0


def mask_of(path):
    m = Image.open(path).convert('L'); w, h = m.size; s = SIDE / min(w, h)
    m = m.resize((round(w * s), round(h * s)), Image.NEAREST); w, h = m.size
    l, t = (w - SIDE) // 2, (h - SIDE) // 2
    return np.asarray(m.crop((l, t, l + SIDE, t + SIDE))) > 127


def topk(m, k=1000):
    """The image score: the mean of the map's k highest pixels (top 2 % at 224²)."""
    return np.sort(m.ravel())[-k:].mean()


def shots(d, k=4):
    """The first k good shots of category folder d, preprocessed."""
    return [prep(Image.open(p)) for p in sorted(glob.glob(os.path.join(d, 'train', 'good', '*.png')))[:k]]


def parts(d):
    """(preprocessed test part, its mask or None for a good part) for category folder d."""
    for kd in sorted(os.listdir(os.path.join(d, 'test'))):
        for p in sorted(glob.glob(os.path.join(d, 'test', kd, '*.png'))):
            stem = os.path.splitext(os.path.basename(p))[0]
            m = None if kd == 'good' else mask_of(os.path.join(d, 'ground_truth', kd, stem + '_mask.png'))
            yield prep(Image.open(p)), m


class Figures:
    """Image and pixel AUROC of one variant over one category (pixels subsampled 2×2)."""
    def __init__(self):
        self.good, self.bad, self.px, self.pm = [], [], [], []

    def add(self, mp, mask):
        (self.good if mask is None else self.bad).append(topk(mp))
        self.px.append(mp[::2, ::2].ravel())
        self.pm.append((np.zeros((SIDE, SIDE), bool) if mask is None else mask)[::2, ::2].ravel())

    def aurocs(self):
        from score import auroc
        px, pm = np.concatenate(self.px), np.concatenate(self.pm)
        return auroc(self.good, self.bad), auroc(px[~pm], px[pm])
