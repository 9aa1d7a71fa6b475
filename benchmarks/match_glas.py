"""MATCH against the mean teacher on GlaS (10 % and 20 % labeled) and on phantom glands, three seeds.

Both methods get the same steps, batch and unlabeled batch. Validation: GlaS's own split of the training release
(every fifth image); phantom glands: the 6-phantom validation split. Metrics on the final model: Dice, object F1
and Betti error (|Δβ0| + |Δβ1| of the gland class).

    python benchmarks/match_glas.py [--steps 200] [--phantom-steps 200] [--seeds 0 1 2] [--labeled 0.1 0.2]

Runs are appended to benchmarks/match_glas.json as they finish (an interrupted run resumes where it stopped).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, save_json, write_section  # noqa: E402

from medseg_nb.cli import model_from_checkpoint, train  # noqa: E402
from medseg_nb.core import data_root  # noqa: E402
from medseg_nb.data.datasets import get_dataset  # noqa: E402
from medseg_nb.train import evaluate_model, geometry  # noqa: E402

OUT = Path(__file__).with_name('match_glas.json')
METHODS = ('mean_teacher', 'match')
KEYS = ('dice', 'object_f1', 'betti')




def one_run(method, dataset, labeled, seed, steps, root, tmp):
    out = Path(tmp) / f'{dataset}_{method}_{labeled}_{seed}'
    t0 = time.time()
    s = train(method, dataset, out, root, steps=steps, labeled=labeled, seed=seed, progress=False, train_options=dict(val_items=1))
    secs = time.time() - t0
    _, model, st = model_from_checkpoint(out / 'last.pt')
    mean, _ = evaluate_model(model, get_dataset(dataset, root, 'val'), metrics=('dice', 'object_f1', 'betti_error'), **geometry(st['config']))
    r = dict(dice=mean['dice_mean'], object_f1=mean['object_f1_mean'], betti=mean['betti_error_b0'] + mean['betti_error_b1'])
    print(f'{dataset} {labeled} {method} seed {seed}: ' + ' '.join(f'{k} {v:.3f}' for k, v in r.items()) + f' ({secs:.0f} s)', flush=True)
    return dict(method=method, dataset=dataset, labeled=labeled, seed=seed, steps=s['steps'], train_seconds=round(secs, 1), **r)


def summarise(runs):
    rows = []
    for dataset, labeled in sorted({(r['dataset'], r['labeled']) for r in runs}):
        row = dict(dataset=dataset, labeled=labeled)
        for m in METHODS:
            rr = [r for r in runs if (r['dataset'], r['labeled'], r['method']) == (dataset, labeled, m)]
            row[m] = {k: float(np.mean([r[k] for r in rr])) if rr else float('nan') for k in KEYS}
            row[m].update({k + '_sd': float(np.std([r[k] for r in rr])) if rr else float('nan') for k in KEYS})
            row[m]['n'] = len(rr); row[m]['seconds'] = float(np.mean([r['train_seconds'] for r in rr])) if rr else float('nan')
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=200)
    ap.add_argument('--phantom-steps', type=int, default=200)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--labeled', type=float, nargs='+', default=[0.1, 0.2])
    ap.add_argument('--datasets', nargs='+', default=['glas', 'phantom-glands'])
    a = ap.parse_args()
    root = data_root()
    if 'glas' in a.datasets and root is None: sys.exit('set MEDSEG_DATA to the folder holding GlaS (see ../shared/data)')
    state = json.loads(OUT.read_text()) if OUT.exists() else dict(runs=[])
    done = {(r['method'], r['dataset'], r['labeled'], r['seed']) for r in state['runs']}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in a.datasets:
            for labeled in a.labeled:
                for seed in a.seeds:
                    for m in METHODS:
                        if (m, dataset, labeled, seed) in done: continue
                        steps = a.steps if dataset == 'glas' else a.phantom_steps
                        state['runs'].append(one_run(m, dataset, labeled, seed, steps, root, tmp))
                        state['summary'] = summarise(state['runs']); state['machine'] = machine()
                        save_json(OUT, state)
    lines = ['| data | labeled | MT Dice | MATCH Dice | MT object F1 | MATCH object F1 | MT Betti err. | MATCH Betti err. | MT s | MATCH s |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in state['summary']:
        u, g = r['mean_teacher'], r['match']
        lines.append(f"| {r['dataset']} | {r['labeled']:g} | {u['dice']:.3f} ± {u['dice_sd']:.3f} | {g['dice']:.3f} ± {g['dice_sd']:.3f} | "
                     f"{u['object_f1']:.3f} ± {u['object_f1_sd']:.3f} | {g['object_f1']:.3f} ± {g['object_f1_sd']:.3f} | "
                     f"{u['betti']:.2f} ± {u['betti_sd']:.2f} | {g['betti']:.2f} ± {g['betti_sd']:.2f} | {u['seconds']:.0f} | {g['seconds']:.0f} |")
    body = f"""## MATCH vs mean teacher (`benchmarks/match_glas.py`)

Machine: {state['machine']}. Seeds {sorted({r['seed'] for r in state['runs']})}, mean ± standard deviation; same steps
(GlaS {a.steps}, phantoms {a.phantom_steps}), batch 8 labeled + 8 unlabeled 128² (phantoms 64²) tiles; final models
on the validation images. Betti error = |Δβ0| + |Δβ1| per image, averaged. Training seconds include validation.

{chr(10).join(lines)}"""
    write_section('match_glas', body)
    print(body)


if __name__ == '__main__':
    main()
