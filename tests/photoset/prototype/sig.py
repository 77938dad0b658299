import numpy as np, pickle, sys
from score import *
res = pickle.load(open(sys.argv[1],'rb'))
for sigma in (2.0, 4.0, 6.0, 8.0):
  for k in (1, 1000):
    iau=[]
    for cat,r in res.items():
        g=[];b=[]
        for t in r['tests']:
            m=make_map(t['lv'],None,sigma); s=np.sort(m.ravel())[-k:].mean()
            (g if t['kind']=='good' else b).append(s)
        iau.append(auroc(g,b))
    print(sigma, k, f"{np.mean(iau):.3f}", flush=True)
