import pickle, numpy as np, sys
R = pickle.load(open(sys.argv[1],'rb'))
for v, rows in R.items():
    print(v)
    def show(name, rule):
        e=np.mean([(b<=rule(l)).mean() for g,b,l in rows]); f=np.mean([(g>rule(l)).mean() for g,b,l in rows])
        print(f"   {name:22} esc {e:.3f} fr {f:.3f}")
    for q in (0.95,):
        e=np.mean([(b<=np.quantile(g,q)).mean() for g,b,l in rows]); print(f"   oracle q{q} esc {e:.3f} fr 0.05")
    for m in (0, .01, .02, .03, .05):
        show(f'max*(1+{m})', lambda l: l.max()*(1+m))
    for z in (2,3,4,5,6):
        show(f'mean+{z}sd', lambda l: l.mean()+z*l.std())
    for c in (0.25,0.5,1.0):
        show(f'max+{c}range', lambda l: l.max()+c*(l.max()-l.min()))
    for c in (0.5,1.0,2.0):
        show(f'max+{c}·orig-sd', lambda l: l.max()+c*l[::5].std())
