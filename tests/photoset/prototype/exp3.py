"""Self-reference: each patch also compared with the frame's own patches away from it (texture self-similarity)."""
import numpy as np, pickle, sys
from score import *

data = pickle.load(open(sys.argv[1], 'rb'))
proj = Proj(sys.argv[2] if sys.argv[2] != 'none' else None)
variants = sys.argv[3].split(',')
K = 4


def self_ref(f, k, excl, bank=None, mode='min'):
    """Residual of each patch against the mean of its k nearest (cosine) own patches outside a
    (2·excl+1)² window, and optionally against the bank's 1-NN; the smaller residual wins."""
    c, h, w = f.shape
    x = flat(f)
    xn = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    sim = xn @ xn.T
    yy, xx = np.divmod(np.arange(h * w), w)
    near = (np.abs(yy[:, None] - yy[None]) <= excl) & (np.abs(xx[:, None] - xx[None]) <= excl)
    sim[near] = -np.inf
    idx = np.argpartition(-sim, k, axis=1)[:, :k]
    ref_self = x[idx].mean(1)
    r_self = x - ref_self
    if bank is None:
        r = r_self
    else:
        bn = bank / (np.linalg.norm(bank, axis=1, keepdims=True) + 1e-12)
        r_bank = x - bank[(xn @ bn.T).argmax(1)]
        if mode == 'min':
            pick = np.linalg.norm(r_self, axis=1) < np.linalg.norm(r_bank, axis=1)
            r = np.where(pick[:, None], r_self, r_bank)
        else:
            r = r_bank
    return r.T.reshape(c, h, w)


def levels(fs, banks, v):
    parts = dict(p.split('=') for p in v.split('+') if '=' in p)
    k = [int(q) for q in parts.get('k', '8/4').split('/')]
    e = [int(q) for q in parts.get('e', '2/1').split('/')]
    use_bank = 'nobank' not in v
    out = []
    for l, f in enumerate(fs):
        if 'base' in v:
            r = residual(f, banks[l])
        else:
            r = self_ref(f, k[l], e[l], banks[l] if use_bank else None)
        r = proj(l, r)
        n = np.linalg.norm(r, axis=0)
        out.append(np.sqrt(n + 1) - 1)
    return out


def run(v):
    iau, pau, esc, fr = [], [], [], []
    kinds_all = {}
    for cat, d in data.items():
        shots = d['shots'][:K]
        banks = banks_of(shots)
        loo_s = []
        for i in range(K):
            b = banks_of([s for j, s in enumerate(shots) if j != i])
            for f in [shots[i]['f']] + shots[i]['var']:
                loo_s.append(make_map(levels(f, b, v)).max())
        loo_s = np.array(loo_s)
        good, bad, kinds, pn, pp = [], [], [], [], []
        for t in d['tests']:
            m = make_map(levels(t['f'], banks, v))
            s = m.max()
            if t['kind'] == 'good':
                good.append(s)
            else:
                bad.append(s); kinds.append(t['kind'])
            msk = t['mask'] if t['mask'] is not None else np.zeros_like(m, bool)
            pn.append(m[~msk][::7]); pp.append(m[msk])
        good, bad, kinds = np.array(good), np.array(bad), np.array(kinds)
        iau.append(auroc(good, bad)); pau.append(auroc(np.concatenate(pn), np.concatenate(pp)))
        for kd in set(kinds):
            kinds_all.setdefault(kd, []).append(auroc(good, bad[kinds == kd]))
        t = loo_s.max()
        esc.append((bad <= t).mean()); fr.append((good > t).mean())
    print(f"{v:28} I {np.mean(iau):.3f} P {np.mean(pau):.3f} esc {np.mean(esc):.2f} fr {np.mean(fr):.2f} | " +
          ' '.join(f"{c[:5]}:{a:.2f}" for c, a in zip(data, iau)) + ' | ' +
          ' '.join(f"{k}:{np.mean(a):.2f}" for k, a in sorted(kinds_all.items())), flush=True)


for v in variants:
    run(v)
