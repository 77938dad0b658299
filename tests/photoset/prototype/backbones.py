"""Raw residuals (no projector) of several backbones side by side: image AUROC with the maximum and
the top-2 % mean, pixel AUROC.
    python3 backbones.py VAL ../../../models/effnet_lite0_feat.onnx mnv2_feat.onnx
"""
import os, sys, numpy as np
from score import Proj, banks_of, level_scores, make_map, auroc
import direct
ROOT = sys.argv[1]; MODELS = sys.argv[2:]
res = {}
for mp in MODELS:
    feats = direct.features(mp)
    for cat in sorted(os.listdir(ROOT)):
        d = os.path.join(ROOT, cat)
        banks = banks_of([{'f': feats(x)} for x in direct.shots(d)])
        g = {'max': [], 'top': []}; b = {'max': [], 'top': []}; px = []; pm = []
        for part, mask in direct.parts(d):
            m = make_map(level_scores(feats(part), banks, Proj(None)))
            for k, v in (('max', m.max()), ('top', direct.topk(m))):
                (g if mask is None else b)[k].append(v)
            px.append(m[::2, ::2].ravel()); pm.append((np.zeros(m.shape, bool) if mask is None else mask)[::2, ::2].ravel())
        px = np.concatenate(px); pm = np.concatenate(pm)
        res.setdefault(mp, []).append((auroc(g['max'], b['max']), auroc(g['top'], b['top']), auroc(px[~pm], px[pm])))
    print(os.path.basename(mp), 'I max %.4f  I top2%% %.4f  P %.4f' % tuple(np.array(res[mp]).mean(0)), flush=True)
