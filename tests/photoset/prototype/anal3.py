import numpy as np, sys
import anal
from anal import run, rates
from score import auroc
for how in ['max','top250','top500','top1000','top2000','top4000']:
    for sigma in (4.0,):
        rows=run((sigma,how,None))
        e,f=rates(rows, lambda r: r['loo'].max())
        kinds={}
        for r in rows:
            for k in set(r['kinds']): kinds.setdefault(k,[]).append(auroc(r['good'], r['bad'][r['kinds']==k]))
        print(f"{how:8} s{sigma} I {np.mean([r['iauroc'] for r in rows]):.3f} esc {e:.2f} fr {f:.2f} | "+' '.join(f"{k}:{np.mean(v):.2f}" for k,v in sorted(kinds.items())), flush=True)
