import numpy as np, pickle, sys, os
from scipy import ndimage
import onnxruntime as ort

SIDE = int(os.environ.get("SIDE", 224))


def auroc(neg, pos):
    neg = np.asarray(neg, np.float64); pos = np.asarray(pos, np.float64)
    allv = np.concatenate([neg, pos])
    order = allv.argsort(kind='mergesort')
    ranks = np.empty(len(allv)); ranks[order] = np.arange(1, len(allv) + 1)
    # average ties
    _, inv, cnt = np.unique(allv, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, ranks); ranks = (sums / cnt)[inv]
    rp = ranks[len(neg):].sum()
    return (rp - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


class Proj:
    def __init__(self, d):
        self.s = None
        if d:
            self.s = [ort.InferenceSession(os.path.join(d, f'feat_s{k}.onnx')) for k in (8, 16)]

    def __call__(self, l, r):
        if self.s is None:
            return r
        return self.s[l].run(None, {'residual': r[None].astype(np.float32)})[0][0]


def flat(f):  # C,H,W -> HW,C
    c, h, w = f.shape
    return f.reshape(c, -1).T


def residual(f, bank):
    x = flat(f)
    xn = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    bn = bank / (np.linalg.norm(bank, axis=1, keepdims=True) + 1e-12)
    idx = (xn @ bn.T).argmax(1)
    r = x - bank[idx]
    c, h, w = f.shape
    return r.T.reshape(c, h, w)


def upsample(g, side=SIDE):
    h, w = g.shape
    ys = np.linspace(0, h - 1, side); xs = np.linspace(0, w - 1, side)
    yy, xx = np.meshgrid(ys, xs, indexing='ij')
    return ndimage.map_coordinates(g, [yy, xx], order=1)


def level_scores(feats, banks, proj):
    out = []
    for l, f in enumerate(feats):
        r = proj(l, residual(f, banks[l]))
        n = np.linalg.norm(r, axis=0)
        out.append(np.sqrt(n + 1) - 1)
    return out


def make_map(levels, norm=None, sigma=4.0):
    m = np.zeros((SIDE, SIDE))
    for l, g in enumerate(levels):
        u = upsample(g)
        if norm is not None:
            u = (u - norm[l][0]) / norm[l][1]
        m += u
    m /= len(levels)
    if sigma > 0:
        m = ndimage.gaussian_filter(m, sigma, mode='reflect', truncate=4.0)
    return m


def banks_of(shots):
    return [np.concatenate([flat(s['f'][l]) for s in shots]) for l in range(len(shots[0]['f']))]
