import numpy as np, pickle, sys
from score import *
res = pickle.load(open(sys.argv[1],'rb'))
how = sys.argv[2]; k = int(how[3:]) if how.startswith('top') else 1
def topk(m, k): 
    return np.sort(m.ravel())[-k:].mean() if k>1 else m.max()
def blocks(m, n):
    s = m.shape[0]//n
    return [m[i*s:(i+1)*s, j*s:(j+1)*s] for i in range(n) for j in range(n)]
out = {}
for cat, r in res.items():
    loo_maps = [make_map(x['lv']) for x in r['loo']]
    loo = np.array([topk(m,k) for m in loo_maps])
    blk = {n: np.array([topk(b, max(1,k//(n*n))) for m in loo_maps for b in blocks(m,n)]) for n in (2,3,4)}
    g=[];b=[]
    for t in r['tests']:
        s=topk(make_map(t['lv']),k); (g if t['kind']=='good' else b).append(s)
    out[cat]=(np.array(g),np.array(b),loo,blk)
def gum(x):
    beta = x.std()*np.sqrt(6)/np.pi; mu = x.mean()-0.5772*beta; return mu,beta
def show(name, rule):
    e=np.mean([(b<=rule(l,bl)).mean() for g,b,l,bl in out.values()]); f=np.mean([(g>rule(l,bl)).mean() for g,b,l,bl in out.values()])
    print(f"   {name:28} esc {e:.3f} fr {f:.3f}")
print('oracle q.95 esc', np.mean([(b<=np.quantile(g,.95)).mean() for g,b,l,bl in out.values()]))
show('max', lambda l,bl: l.max())
for n in (2,3,4):
    for p in (0.05,0.02,0.01,0.005):
        def rule(l,bl,n=n,p=p):
            mu,beta=gum(bl[n]); q=(1-p)**(1/(n*n)); return mu-beta*np.log(-np.log(q))
        show(f'gumbel blocks{n} p{p}', rule)
for p in (0.05,0.02,0.01):
    def rule(l,bl,p=p):
        mu,beta=gum(l); return mu-beta*np.log(-np.log(1-p))
    show(f'gumbel image p{p}', rule)
