"""Weighted level means on a res.pkl (two or three levels): each variant is the weights, comma-separated,
with n to divide each level by its LOO median; SIDE as the features were made. Prints I-AUROC (P-AUROC with
--pix), escapes/false rejects at mean + 4 and + 3 std. Usage: python3 weights.py res_s4.pkl "0,1,1;1,1,1;0.5,1,1,n""""
import numpy as np, pickle, sys
from scipy import ndimage
from score import *
S=int(__import__('os').environ.get('SIDE',224))
res = pickle.load(open(sys.argv[1], 'rb'))
variants = sys.argv[2].split(';')
PIX='--pix' in sys.argv
def topk(m,k=None): k=k or int(round(0.02*m.size)); return np.sort(m.ravel())[-k:].mean()
def build(lv, w, norm):
    m=np.zeros((S,S))
    for l,(g,wl) in enumerate(zip(lv,w)):
        if wl==0: continue
        u=upsample(g)
        if norm is not None: u=u/norm[l]
        m+=wl*u
    return ndimage.gaussian_filter(m/sum(w),4*S/224,mode='reflect',truncate=4.0)
for v in variants:
    w=[float(x) for x in v.split(',')[:3]]; nm='n' in v
    iau=[];pau=[];aup=[];esc=[];fr=[];esc3=[];fr3=[];kinds={}
    for cat,r in res.items():
        norm=None
        if nm: norm=[np.median(np.concatenate([x['lv'][l].ravel() for x in r['loo']])) for l in range(len(r['loo'][0]['lv']))]
        loo=np.array([topk(build(x['lv'],w,norm)) for x in r['loo']])
        g=[];b=[];kd=[];pn=[];pp=[]
        for t in r['tests']:
            m=build(t['lv'],w,norm); s=topk(m)
            if t['kind']=='good': g.append(s)
            else: b.append(s); kd.append(t['kind'])
            if PIX:
                msk = t['mask'] if t['mask'] is not None else np.zeros_like(m, bool)
                pn.append(m[~msk][::7]); pp.append(m[msk])
        g=np.array(g);b=np.array(b);kd=np.array(kd)
        iau.append(auroc(g,b))
        if pn: pau.append(auroc(np.concatenate(pn),np.concatenate(pp)))
        th=loo.mean()+4*loo.std(); esc.append((b<=th).mean()); fr.append((g>th).mean())
        th=loo.mean()+3*loo.std(); esc3.append((b<=th).mean()); fr3.append((g>th).mean())
        for k in set(kd): kinds.setdefault(k,[]).append(auroc(g,b[kd==k]))
    print(f"{v:14} I {np.mean(iau):.3f} P {np.mean(pau) if pau else 0:.3f} s4: esc {np.mean(esc):.3f} fr {np.mean(fr):.3f} s3: esc {np.mean(esc3):.3f} fr {np.mean(fr3):.3f} | "+' '.join(f"{k[:5]}:{np.mean(x):.3f}" for k,x in sorted(kinds.items())), flush=True)
