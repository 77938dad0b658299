"""Feature / residual transforms: pooling, level concat, whitening of residuals from the shots' LOO residuals."""
import numpy as np, pickle, sys
from scipy import ndimage
from score import *

data = pickle.load(open(sys.argv[1], 'rb'))
proj = Proj(sys.argv[2] if sys.argv[2] != 'none' else None)
variants = sys.argv[3].split(',')
K = 4


def pool(f, k):
    if k <= 1:
        return f
    return ndimage.uniform_filter(f, size=(1, k, k), mode='reflect')


def concat(fs):
    f8, f16 = fs
    c, h, w = f8.shape
    up = np.stack([upsample_to(ch, h) for ch in f16])
    return [np.concatenate([f8, up], 0)]


def upsample_to(g, side):
    hh, ww = g.shape
    ys = np.linspace(0, hh - 1, side); xs = np.linspace(0, ww - 1, side)
    yy, xx = np.meshgrid(ys, xs, indexing='ij')
    return ndimage.map_coordinates(g, [yy, xx], order=1)


def prep(fs, v):
    pk = 1
    for part in v.split('+'):
        if part.startswith('pool'):
            pk = int(part[4:])
    fs = [pool(f, pk) for f in fs]
    if 'cat' in v.split('+'):
        fs = concat(fs)
    return fs


def residuals(fs, banks):
    return [proj(l, residual(f, banks[l])) if len(fs) == 2 else residual(f, banks[l]) for l, f in enumerate(fs)]


def run(v):
    parts = v.split('+')
    iau, pau, esc, fr = [], [], [], []
    for cat, d in data.items():
        shots = d['shots'][:K]
        sf = [prep(s['f'], v) for s in shots]
        banks = [np.concatenate([flat(s[l]) for s in sf]) for l in range(len(sf[0]))]
        # LOO residuals (original shots + variations)
        loo_r = []
        for i in range(K):
            b = [np.concatenate([flat(s[l]) for j, s in enumerate(sf) if j != i]) for l in range(len(sf[0]))]
            for f in [shots[i]['f']] + shots[i]['var']:
                loo_r.append(residuals(prep(f, v), b))
        L = len(loo_r[0])
        W = [None] * L
        if 'wdiag' in parts or 'wfull' in parts:
            for l in range(L):
                R = np.concatenate([flat(r[l]) for r in loo_r])  # N, C
                if 'wdiag' in parts:
                    W[l] = ('d', 1.0 / (R.std(0) + 1e-3 * R.std()))
                else:
                    C = np.cov(R.T)
                    lam = 0.1
                    C = (1 - lam) * C + lam * np.trace(C) / C.shape[0] * np.eye(C.shape[0])
                    ev, U = np.linalg.eigh(C)
                    W[l] = ('f', U @ np.diag(ev ** -0.5) @ U.T)

        def score_levels(rs):
            out = []
            for l, r in enumerate(rs):
                x = flat(r)
                if W[l] is not None:
                    x = x * W[l][1] if W[l][0] == 'd' else x @ W[l][1]
                n = np.linalg.norm(x, axis=1)
                if 'lin' in parts:
                    a = n
                else:
                    a = np.sqrt(n + 1) - 1
                out.append(a.reshape(r.shape[1], r.shape[2]))
            return out

        tk = [int(p[3:]) for p in parts if p.startswith('top')]
        def imscore(m):
            if tk:
                return np.sort(m.ravel())[-tk[0]:].mean()
            return m.max()

        # normalise levels by LOO level median when levels differ in scale
        loo_lv = [score_levels(r) for r in loo_r]
        norm = None
        if 'lnorm' in parts:
            norm = [(0.0, np.median(np.concatenate([x[l].ravel() for x in loo_lv]))) for l in range(L)]
        loo_s = np.array([imscore(make_map(x, norm)) for x in loo_lv])
        good, bad, pn, pp = [], [], [], []
        for t in d['tests']:
            m = make_map(score_levels(residuals(prep(t['f'], v), banks)), norm)
            s = imscore(m)
            (good if t['kind'] == 'good' else bad).append(s)
            msk = t['mask'] if t['mask'] is not None else np.zeros_like(m, bool)
            pn.append(m[~msk][::7]); pp.append(m[msk])
        good, bad = np.array(good), np.array(bad)
        iau.append(auroc(good, bad)); pau.append(auroc(np.concatenate(pn), np.concatenate(pp)))
        t = loo_s.max()
        RULE.setdefault(v, []).append((good, bad, loo_s))
        esc.append((bad <= t).mean()); fr.append((good > t).mean())
    print(f"{v:28} I {np.mean(iau):.3f} P {np.mean(pau):.3f} esc {np.mean(esc):.2f} fr {np.mean(fr):.2f} | " +
          ' '.join(f"{c[:5]}:{a:.2f}" for c, a in zip(data, iau)), flush=True)


RULE = {}
for v in variants:
    run(v)
pickle.dump(RULE, open('rule_'+sys.argv[2].replace('/','_')+'.pkl','wb'))
