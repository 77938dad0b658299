import numpy as np, pickle, sys, itertools
from score import *

data = pickle.load(open(sys.argv[1], 'rb'))
proj = Proj(sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != 'none' else None)
K = 4
res = {}
for cat, d in data.items():
    shots = d['shots'][:K]
    banks = banks_of(shots)
    tests = []
    for t in d['tests']:
        tests.append({'kind': t['kind'], 'mask': t['mask'], 'lv': level_scores(t['f'], banks, proj)})
    loo = []  # per shot: list of level grids for original + variations
    loo2 = []
    for i in range(K):
        others = [s for j, s in enumerate(shots) if j != i]
        b = banks_of(others)
        for f in [shots[i]['f']] + shots[i]['var']:
            loo.append({'shot': i, 'lv': level_scores(f, b, proj)})
        # K-2 banks, for the bank-size trend
        for j in range(K):
            if j == i:
                continue
            b2 = banks_of([s for q, s in enumerate(shots) if q not in (i, j)])
            loo2.append({'shot': i, 'lv': level_scores(shots[i]['f'], b2, proj)})
    res[cat] = {'tests': tests, 'loo': loo, 'loo2': loo2}
    print(cat, flush=True)
pickle.dump(res, open(sys.argv[3], 'wb'))
