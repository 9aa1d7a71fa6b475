"""VQ-Seg against supervised-only and the mean teacher with dropout on ACDC slices (3 and 7 labeled patients),
same steps and seeds; and an ablation of the QPM (keep probability eps) against dropout (rate) in the same network.

    python benchmarks/vqseg.py [--steps 150] [--seeds 0 1 2] [--patients 3 7] [--ablation-seed 0]

Final models, the 20 validation volumes slice by slice: Dice per structure; codebook perplexity at the end of
training. Runs are appended to benchmarks/vqseg.json as they finish.
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

OUT = Path(__file__).with_name('vqseg.json')
MAIN = {'supervised': ('unet', {}), 'mean teacher + dropout': ('mean_teacher', dict(dropout=0.5)), 'VQ-Seg (QPM)': ('vqseg', {})}
ABLATION = {f'QPM eps={e}': ('vqseg', dict(perturb='qpm', eps=e)) for e in (0.9, 0.7, 0.5)}
ABLATION.update({f'dropout {r}': ('vqseg', dict(perturb='dropout', rate=r)) for r in (0.1, 0.3, 0.5)})
STRUCT = ('RV', 'myo', 'LV')


def run(label, method, opts, patients, seed, steps, root, tmp):
    out = Path(tmp) / f'{label}_{patients}_{seed}'.replace(' ', '_')
    t0 = time.time()
    train(method, 'acdc', out, root, steps=steps, seed=seed, labeled_patients=patients, method_options=opts, progress=False,
          train_options=dict(val_items=1))
    secs = time.time() - t0
    hist = json.loads((out / 'history.json').read_text())
    perp = [r['perplexity'] for r in hist if 'perplexity' in r]
    _, model, st = model_from_checkpoint(out / 'last.pt')
    mean, reps = evaluate_model(model, get_dataset('acdc', root, 'val'), metrics=('dice',), **geometry(st['config']))
    r = dict(label=label, patients=patients, seed=seed, steps=steps, machine=machine(), seconds=round(secs, 1), dice=mean['dice_mean'], per_class=per_class(reps, 'dice'),
             perplexity=perp[-1] if perp else None, perplexity_curve=perp[:: max(1, len(perp) // 20)])
    print(json.dumps({k: v for k, v in r.items() if k != 'perplexity_curve'}), flush=True)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=150)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--patients', type=int, nargs='+', default=[3, 7])
    ap.add_argument('--ablation-seed', type=int, default=0)
    grid_args(ap, OUT)
    a = ap.parse_args()
    root = data_root()
    if root is None: sys.exit('set MEDSEG_DATA (ACDC)')
    state = grid_state(a, lambda r: (r['label'], r['patients'], r['seed']))
    done = {(r['label'], r['patients'], r['seed']) for r in state['runs']}
    main_jobs = [(l, *MAIN[l], p, s) for s in a.seeds for p in a.patients for l in MAIN]     # seed-major
    abl = [(l, *ABLATION[l], a.patients[0], a.ablation_seed) for l in ABLATION]
    k = 2 * len(a.patients) * len(MAIN)                     # the ablation after two whole seeds of the main grid
    jobs = main_jobs[:k] + abl + main_jobs[k:]
    with tempfile.TemporaryDirectory() as tmp:
        for label, method, opts, p, s in ([] if a.table_only else shard(jobs, a.shard, done, key=lambda j: (j[0], j[3], j[4]))):
            state['runs'].append(run(label, method, opts, p, s, a.steps, root, tmp)); state['machine'] = machine()
            save_json(a.json, state)
    if a.merge: save_json(a.json, state)                  # the merged shards, in one file
    rows = []
    for labels, title in ((MAIN, 'main'), (ABLATION, 'ablation')):
        for p in a.patients:
            for label in labels:
                rr = [r for r in state['runs'] if r['label'] == label and r['patients'] == p]
                if not rr: continue
                per = {k: np.mean([r['per_class'][k] for r in rr]) for k in rr[0]['per_class']}
                perp = [r['perplexity'] for r in rr if r['perplexity'] is not None]
                rows.append(f"| {title} | {p} | {label} | {mean_sd(r['dice'] for r in rr)} | "
                            + ', '.join(f'{STRUCT[int(k) - 1]} {v:.3f}' for k, v in per.items())
                            + f" | {f'{np.mean(perp):.1f}' if perp else '-'} | {len(rr)} |")
    body = f"""## VQ-Seg on ACDC slices (`benchmarks/vqseg.py`)

Machine: {machines(state['runs'])}. {listed(r.get('steps', a.steps) for r in state['runs'])} steps, batch 8 labeled + 8 unlabeled 128² slices, the same seeds for every
method; final models on the 20 validation volumes. Perplexity: the codebook's effective number of codes at the end.

| part | labeled patients | method | mean Dice (± sd) | Dice per structure | perplexity | seeds |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}"""
    write_section(a.section, body)
    print(body)


if __name__ == '__main__':
    main()
