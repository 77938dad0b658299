"""Per-level FeatureNorm grids for features with three levels (feats.py with lite0_s4.onnx): stride 4 raw,
strides 8 and 16 through the shipped projector; LOO scores as exp.py. Usage: python3 levels3.py val_s4.pkl res_s4.pkl"""
import numpy as np, pickle, sys, os
from score import *
data = pickle.load(open(sys.argv[1], 'rb'))
proj = Proj(os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../models/projector'))
def P(l, r):  # level 0 = s4 raw; 1,2 -> projector 0,1
    return r if l == 0 else proj(l-1, r)
def lvs(feats, banks):
    out=[]
    for l,f in enumerate(feats):
        r=P(l, residual(f, banks[l])); n=np.linalg.norm(r,axis=0); out.append(np.sqrt(n+1)-1)
    return out
K=4; res={}
for cat,d in data.items():
    shots=d['shots'][:K]; banks=banks_of(shots)
    tests=[{'kind':t['kind'],'mask':t['mask'],'lv':lvs(t['f'],banks)} for t in d['tests']]
    loo=[]
    for i in range(K):
        b=banks_of([s for j,s in enumerate(shots) if j!=i])
        for f in [shots[i]['f']]+shots[i]['var']: loo.append({'shot':i,'lv':lvs(f,b)})
    res[cat]={'tests':tests,'loo':loo}; print(cat,flush=True)
pickle.dump(res,open(sys.argv[2],'wb'))
