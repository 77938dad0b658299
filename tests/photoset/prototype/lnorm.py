import numpy as np, pickle, sys
from score import *
res = pickle.load(open(sys.argv[1],'rb'))
radius = [(0.0,0.740),(0.0,0.632)]          # model.calib: normal a mean per level
radius2 = [(0.740, 2.428-0.740),(0.632, 2.361-0.632)]  # (mean, max-mean): shell width
for name, norm in [('none',None),('/normal mean',radius),('(a-mean)/(max-mean)',radius2),('loo median','loo')]:
    iau=[]; pau=[]
    for cat,r in res.items():
        nm = norm
        if norm=='loo':
            nm=[(0.0,np.median(np.concatenate([x['lv'][l].ravel() for x in r['loo']]))) for l in range(2)]
        g=[];b=[]
        for t in r['tests']:
            m=make_map(t['lv'],nm,4.0); s=np.sort(m.ravel())[-1000:].mean()
            (g if t['kind']=='good' else b).append(s)
        iau.append(auroc(g,b))
    print(f"{name:24} I {np.mean(iau):.3f}", flush=True)
