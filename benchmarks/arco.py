"""ARCO (NS, SG, SAG anchors) against the mean teacher on ACDC slices with 1, 3 and 7 labeled patients, three seeds.

    python benchmarks/arco.py [--steps 150] [--seeds 0 1 2] [--patients 1 3 7]

Final models, the 20 validation volumes slice by slice: Dice per structure (the right ventricle is the tail class).
Runs are appended to benchmarks/arco.json as they finish.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import mean_sd, grid_args, grid_state, listed, machine, machines, save_json, shard, write_section  # noqa: E402

from medseg_nb.cli import model_from_checkpoint, per_class, train  # noqa: E402
from medseg_nb.core import data_root  # noqa: E402
from medseg_nb.data.datasets import get_dataset  # noqa: E402
from medseg_nb.train import evaluate_model, geometry  # noqa: E402

OUT = Path(__file__).with_name('arco.json')
RUNS = {'mean teacher': ('mean_teacher', {}), 'ARCO-NS': ('arco', dict(sampler='ns')), 'ARCO-SG': ('arco', dict(sampler='sg')),
        'ARCO-SAG': ('arco', dict(sampler='sag'))}
STRUCT = ('RV', 'myo', 'LV')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=150)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--patients', type=int, nargs='+', default=[1, 3, 7])
    grid_args(ap, OUT)
    a = ap.parse_args()
    root = data_root()
    if root is None: sys.exit('set MEDSEG_DATA (ACDC)')
    state = grid_state(a, lambda r: (r['label'], r['patients'], r['seed']))
    done = {(r['label'], r['patients'], r['seed']) for r in state['runs']}
    jobs = [(label, p, s) for s in a.seeds for p in a.patients for label in RUNS]      # seed-major: a cut-short grid keeps whole seeds
    with tempfile.TemporaryDirectory() as tmp:
        for label, p, s in ([] if a.table_only else shard(jobs, a.shard, done)):
            method, opts = RUNS[label]
            out = Path(tmp) / f'{method}_{opts.get("sampler", "")}_{p}_{s}'
            t0 = time.time()
            train(method, 'acdc', out, root, steps=a.steps, seed=s, labeled_patients=p, method_options=opts, progress=False,
                  train_options=dict(val_items=1))
            secs = time.time() - t0
            _, model, st = model_from_checkpoint(out / 'last.pt')
            mean, reps = evaluate_model(model, get_dataset('acdc', root, 'val'), metrics=('dice',), **geometry(st['config']))
            r = dict(label=label, patients=p, seed=s, steps=a.steps, seconds=round(secs, 1), dice=mean['dice_mean'], per_class=per_class(reps, 'dice'),
                     machine=machine())
            print(json.dumps(r), flush=True)
            state['runs'].append(r); state['machine'] = machine()
            save_json(a.json, state)
    if a.merge: save_json(a.json, state)                  # the merged shards, in one file
    rows = []
    for p in sorted({r['patients'] for r in state['runs']}):
        for label in RUNS:
            rr = [r for r in state['runs'] if r['label'] == label and r['patients'] == p]
            if not rr: continue
            per = {k: np.mean([r['per_class'][k] for r in rr]) for k in rr[0]['per_class']}
            rows.append(f"| {p} | {label} | {mean_sd(r['dice'] for r in rr)} | "
                        + ' | '.join(f'{per.get(str(k + 1), float("nan")):.3f}' for k in range(3)) + f' | {len(rr)} |')
    steps = listed(r.get('steps', a.steps) for r in state['runs'])
    body = f"""## ARCO on ACDC slices, {steps} steps (`benchmarks/arco.py`)

Machine: {machines(state['runs'])}. {steps} steps, batch 8 labeled + 8 unlabeled 128² slices, same seeds for every method;
final models on the 20 validation volumes.

| labeled patients | method | mean Dice (± sd) | RV | myo | LV | seeds |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}"""
    write_section(a.section, body)
    print(body)


if __name__ == '__main__':
    main()
