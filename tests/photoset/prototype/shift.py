"""Does a bank of the shots at sub-cell shifts (phase coverage) help? Scores the test parts against
the 4 shots as they are (`base`) and against the shots at every listed (dx, dy) pixel shift at the
working side (`aug`), with projector P (a folder or `none`); prints image and pixel AUROC.
    python3 shift.py VAL P "0,0;4,0;0,4;4,4"
"""
import os, sys, numpy as np
from score import Proj, SIDE, flat, level_scores, make_map
from direct import features, shots, parts, Figures

ROOT, PROJ = sys.argv[1], sys.argv[2]
SHIFTS = [tuple(map(int, s.split(','))) for s in sys.argv[3].split(';')]
proj = Proj(None if PROJ == 'none' else PROJ)
feats = features()


def shifted(a, dx, dy):
    p = np.pad(a, ((0, 0), (8, 8), (8, 8)), mode='reflect')
    return p[:, 8 + dy:8 + dy + SIDE, 8 + dx:8 + dx + SIDE]


res = {}
for cat in sorted(os.listdir(ROOT)):
    d = os.path.join(ROOT, cat)
    banks = {}
    for v in SHIFTS:
        fs = [feats(shifted(s, *v)) for s in shots(d)]
        banks[v] = [np.concatenate([flat(f[l]) for f in fs]) for l in range(2)]
    variants = {'base': [banks[SHIFTS[0]]], 'aug': [banks[v] for v in SHIFTS]}
    variants = {k: [np.concatenate([b[l] for b in bl]) for l in range(2)] for k, bl in variants.items()}
    figs = {k: Figures() for k in variants}
    for part, mask in parts(d):
        f = feats(part)
        for k, b in variants.items():
            figs[k].add(make_map(level_scores(f, b, proj)), mask)
    line = cat
    for k, fg in figs.items():
        ia, pa = fg.aurocs()
        res.setdefault(k, []).append((ia, pa))
        line += f"  {k}: {ia:.3f}/{pa:.3f}"
    print(line, flush=True)
for k, v in res.items():
    print(k, 'mean I %.4f P %.4f' % tuple(np.array(v).mean(0)))
