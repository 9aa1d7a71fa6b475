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
from _results import machine, mean_sd, save_json, write_section  # noqa: E402

from medseg_nb.cli import model_from_checkpoint, train  # noqa: E402
from medseg_nb.core import data_root  # noqa: E402
from medseg_nb.data.datasets import get_dataset  # noqa: E402
from medseg_nb.train import evaluate_model, geometry  # noqa: E402

OUT = Path(__file__).with_name('match_glas.json')
# MATCH's network has dropout 0.2; the mean teacher at the same dropout is MATCH without the topological term (the
# ablation), and the mean teacher at dropout 0 shows what dropout alone does
RUNS = {'MT, dropout 0': ('mean_teacher', dict(dropout=0.0)),
        'MT, dropout 0.2 (MATCH without topology)': ('mean_teacher', dict(dropout=0.2)),
        'MATCH, dropout 0.2': ('match', dict(dropout=0.2))}
KEYS = ('dice', 'object_f1', 'betti')


def one_run(label, dataset, labeled, seed, steps, root, tmp):
    method, opts = RUNS[label]
    out = Path(tmp) / f'{dataset}_{method}_{opts["dropout"]}_{labeled}_{seed}'
    t0 = time.time()
    s = train(method, dataset, out, root, steps=steps, labeled=labeled, seed=seed, progress=False, method_options=opts,
              train_options=dict(val_items=1))
    secs = time.time() - t0
    _, model, st = model_from_checkpoint(out / 'last.pt')
    mean, _ = evaluate_model(model, get_dataset(dataset, root, 'val'), metrics=('dice', 'object_f1', 'betti_error'), **geometry(st['config']))
    r = dict(dice=mean['dice_mean'], object_f1=mean['object_f1_mean'], betti=mean['betti_error_b0'] + mean['betti_error_b1'])
    print(f'{dataset} {labeled} {label} seed {seed}: ' + ' '.join(f'{k} {v:.3f}' for k, v in r.items()) + f' ({secs:.0f} s)', flush=True)
    return dict(label=label, method=method, dataset=dataset, labeled=labeled, seed=seed, steps=s['steps'], train_seconds=round(secs, 1), **r)


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
    done = {(r.get('label'), r['dataset'], r['labeled'], r['seed']) for r in state['runs']}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in a.datasets:
            for labeled in a.labeled:
                for seed in a.seeds:
                    for label in RUNS:
                        if (label, dataset, labeled, seed) in done: continue
                        steps = a.steps if dataset == 'glas' else a.phantom_steps
                        state['runs'].append(one_run(label, dataset, labeled, seed, steps, root, tmp))
                        state['machine'] = machine()
                        save_json(OUT, state)
    lines = ['| data | labeled | method | Dice | object F1 | Betti error | train s | seeds |', '|---|---|---|---|---|---|---|---|']
    for dataset, labeled in sorted({(r['dataset'], r['labeled']) for r in state['runs']}):
        for label in RUNS:
            rr = [r for r in state['runs'] if (r['dataset'], r['labeled'], r.get('label')) == (dataset, labeled, label)]
            if not rr: continue
            lines.append(f"| {dataset} | {labeled:g} | {label} | {mean_sd(r['dice'] for r in rr)} | {mean_sd(r['object_f1'] for r in rr)} | "
                         f"{mean_sd((r['betti'] for r in rr), '{:.2f}')} | {np.mean([r['train_seconds'] for r in rr]):.0f} | {len(rr)} |")
    body = f"""## MATCH vs mean teacher at equal dropout (`benchmarks/match_glas.py`)

Machine: {state['machine']}. Seeds {sorted({r['seed'] for r in state['runs']})}, mean ± standard deviation; same steps
(GlaS {a.steps}, phantoms {a.phantom_steps}), batch 8 labeled + 8 unlabeled 128² (phantoms 64²) tiles; final models
on the validation images. Betti error = |Δβ0| + |Δβ1| per image, averaged. Training seconds include validation.

{chr(10).join(lines)}"""
    write_section('match_glas', body)
    print(body)


if __name__ == '__main__':
    main()
