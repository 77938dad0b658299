"""Averages the per-level FeatureNorm grids of several projectors (an ensemble) before the map;
prints image and pixel AUROC for each `;`-separated set (projector folders joined by `+`).
    python3 ens.py VAL "P1;P2;P1+P2"
"""
import os, sys, numpy as np
from score import Proj, banks_of, level_scores, make_map
from direct import features, shots, parts, Figures

ROOT, SETS = sys.argv[1], sys.argv[2].split(';')
projs = {n: Proj(n) for s in SETS for n in s.split('+')}
feats = features()
res = {}
for cat in sorted(os.listdir(ROOT)):
    d = os.path.join(ROOT, cat)
    banks = banks_of([{'f': feats(s)} for s in shots(d)])
    figs = {k: Figures() for k in SETS}
    for part, mask in parts(d):
        f = feats(part)
        per = {n: level_scores(f, banks, pr) for n, pr in projs.items()}
        for k in SETS:
            names = k.split('+')
            figs[k].add(make_map([np.mean([per[n][l] for n in names], 0) for l in range(2)]), mask)
    for k, fg in figs.items():
        res.setdefault(k, []).append(fg.aurocs())
    print(cat, flush=True)
for k, v in res.items():
    print(k, 'mean I %.4f P %.4f' % tuple(np.array(v).mean(0)))
