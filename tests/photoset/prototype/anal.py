import numpy as np, pickle, sys
from score import *

res = pickle.load(open(sys.argv[1], 'rb'))
PIX = '--pix' in sys.argv


def image_score(m, how):
    if how == 'max':
        return m.max()
    if how.startswith('top'):
        k = int(how[3:])
        return np.sort(m.ravel())[-k:].mean()


def run(variant):
    sigma, how, normmode = variant
    rows = []
    for cat, r in res.items():
        # per-level normalisation from LOO patch scores
        norm = None
        if normmode:
            norm = []
            for l in range(2):
                v = np.concatenate([x['lv'][l].ravel() for x in r['loo']])
                if normmode == 'meanstd':
                    norm.append((v.mean(), v.std()))
                elif normmode == 'med':
                    norm.append((0.0, np.median(v)))
                elif normmode == 'p99':
                    norm.append((0.0, np.quantile(v, 0.99)))
        def sc(x):
            m = make_map(x['lv'], norm, sigma)
            return m
        loo_maps = [sc(x) for x in r['loo']]
        loo_s = np.array([image_score(m, how) for m in loo_maps])
        loo2_s = np.array([image_score(sc(x), how) for x in r['loo2']])
        good, bad, kinds = [], [], []
        pix_n, pix_p = [], []
        for t in r['tests']:
            m = sc(t)
            s = image_score(m, how)
            if t['kind'] == 'good':
                good.append(s)
            else:
                bad.append(s); kinds.append(t['kind'])
            if PIX:
                msk = t['mask'] if t['mask'] is not None else np.zeros_like(m, bool)
                pix_n.append(m[~msk][::7]); pix_p.append(m[msk])
        good, bad = np.array(good), np.array(bad)
        row = {'cat': cat, 'iauroc': auroc(good, bad), 'good': good, 'bad': bad, 'kinds': np.array(kinds),
               'loo': loo_s, 'loo2': loo2_s}
        if PIX:
            row['pauroc'] = auroc(np.concatenate(pix_n), np.concatenate(pix_p))
        rows.append(row)
    return rows


def rates(rows, rule):
    esc, fr = [], []
    for row in rows:
        t = rule(row)
        esc.append((row['bad'] <= t).mean()); fr.append((row['good'] > t).mean())
    return np.mean(esc), np.mean(fr)


RULES = {
    'max': lambda r: r['loo'].max(),
    'max*1.1': lambda r: r['loo'].max() * 1.1,
    'orig-max': lambda r: r['loo'][::5].max(),
    'mean+3sd': lambda r: r['loo'].mean() + 3 * r['loo'].std(),
    # bank-size trend: how much a score falls from K-2 to K-1 references, applied once more
    'trend': lambda r: r['loo'].max() * (np.median(r['loo'][::5]) / np.median(r['loo2'])),
    'trend-orig': lambda r: r['loo'][::5].max() * (np.median(r['loo'][::5]) / np.median(r['loo2'])),
}

if __name__ == '__main__':
    variants = [(4.0, 'max', None), (4.0, 'max', 'meanstd'), (4.0, 'max', 'med'), (4.0, 'max', 'p99'),
                (2.0, 'max', None), (8.0, 'max', None), (4.0, 'top100', None), (4.0, 'top500', None),
                (8.0, 'max', 'meanstd'), (4.0, 'top100', 'meanstd')]
    for v in variants:
        rows = run(v)
        line = f"{str(v):32} I-AUROC {np.mean([r['iauroc'] for r in rows]):.3f}"
        if PIX:
            line += f" P-AUROC {np.mean([r['pauroc'] for r in rows]):.3f}"
        for name, rule in RULES.items():
            e, f = rates(rows, rule)
            line += f" | {name} esc {e:.2f} fr {f:.2f}"
        print(line, flush=True)
        if v == variants[0] or '--cats' in sys.argv:
            for r in rows:
                kinds = {k: auroc(r['good'], r['bad'][r['kinds'] == k]) for k in sorted(set(r['kinds']))}
                print('   ', r['cat'], f"{r['iauroc']:.3f}", ' '.join(f"{k}:{a:.2f}" for k, a in kinds.items()),
                      f"good max {r['good'].max():.3f} med {np.median(r['good']):.3f} loo max {r['loo'].max():.3f} med {np.median(r['loo']):.3f} loo2 med {np.median(r['loo2']):.3f} bad med {np.median(r['bad']):.3f}")
