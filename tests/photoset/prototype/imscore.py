"""Per-image image scores on a res.pkl from exp.py: top-2 % minus or over the map median, a robust z-score,
a high-pass of the map (hpS: minus its Gaussian of sigma S) before the top-k, one level alone (l8, l16), the
level maximum (lmax) or a weighted level mean (lwW: W on stride 8). Prints I-AUROC, escapes and false rejects at
mean + 4 std of the LOO scores, and per-kind AUROC. Usage: python3 imscore.py res.pkl base,submed,hp16,lw0.7"""
import numpy as np, pickle, sys
from scipy import ndimage
from score import *
res = pickle.load(open(sys.argv[1], 'rb'))
variants = sys.argv[2].split(',')
def topk(m,k=1000): return np.sort(m.ravel())[-k:].mean()
def build(lv, v):
    if 'l8' in v: lv=[lv[0]]
    if 'l16' in v: lv=[lv[1]]
    if 'lmax' in v:
        ups=[upsample(g) for g in lv]; m=np.maximum(*ups); return ndimage.gaussian_filter(m,4,mode='reflect',truncate=4.0)
    if 'lw' in v:
        w=float(v.split('lw')[1].split('+')[0]); ups=[upsample(g) for g in lv]; m=w*ups[0]+(1-w)*ups[1]; return ndimage.gaussian_filter(m,4,mode='reflect',truncate=4.0)
    return make_map(lv)
def imscore(m, v):
    parts=v.split('+')
    for p in parts:
        if p.startswith('hp'):
            s=float(p[2:]); m = m - ndimage.gaussian_filter(m, s, mode='reflect')
    if 'submed' in parts: return topk(m)-np.median(m)
    if 'divmed' in parts: return topk(m)/np.median(m)
    if 'z' in parts:
        med=np.median(m); mad=np.median(np.abs(m-med)); return (topk(m)-med)/mad
    if 'subp50w' in parts:
        return topk(m)-0.5*np.median(m)
    return topk(m)
for v in variants:
    iau=[];pau=[];esc=[];fr=[];kinds={}
    for cat,r in res.items():
        loo=np.array([imscore(build(x['lv'],v),v) for x in r['loo']])
        g=[];b=[];kd=[];pn=[];pp=[]
        for t in r['tests']:
            m=build(t['lv'],v); s=imscore(m,v)
            if t['kind']=='good': g.append(s)
            else: b.append(s); kd.append(t['kind'])
            if '--pix' in sys.argv:
                msk = t['mask'] if t['mask'] is not None else np.zeros_like(m, bool)
                pn.append(m[~msk][::7]); pp.append(m[msk])
        g=np.array(g);b=np.array(b);kd=np.array(kd)
        iau.append(auroc(g,b))
        if pn: pau.append(auroc(np.concatenate(pn),np.concatenate(pp)))
        th=loo.mean()+4*loo.std()
        esc.append((b<=th).mean()); fr.append((g>th).mean())
        for k in set(kd): kinds.setdefault(k,[]).append(auroc(g,b[kd==k]))
    print(f"{v:18} I {np.mean(iau):.3f} P {np.mean(pau) if pau else 0:.3f} esc {np.mean(esc):.3f} fr {np.mean(fr):.3f} | "+' '.join(f"{k[:5]}:{np.mean(x):.3f}" for k,x in sorted(kinds.items())), flush=True)
