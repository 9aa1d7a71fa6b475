"""LoMix against its own baselines on DRIVE: single-output supervision (0.7 Dice + 0.3 CE on the final map), deep
supervision and additive fusion (equal weights), and LoMix (normalised or raw softplus weights); the same U-Net,
steps, patches and seeds. Validation Dice and clDice of the final models, and the validation curves.

    python benchmarks/lomix_drive.py [--steps 600] [--seeds 0 1 2] [--methods single lomix deep additive lomix-raw]

Runs are appended to benchmarks/lomix_drive.json as they finish (an interrupted grid resumes; --shard, --merge and
--table-only as in every grid). Jobs run seed by seed in the order of --methods, so that a grid cut short keeps whole
seeds of its first methods; the curves go to benchmarks/lomix_drive.png and the table to the `lomix_drive` section of
RESULTS.md.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import (converged, grid_args, interval, machine, machines, mean_sd, paired, plot_file, run_grid,  # noqa: E402
                      runs_report)

from medseg_nb.cli import DATASET_DEFAULTS, model_from_checkpoint, train  # noqa: E402
from medseg_nb.core import data_root  # noqa: E402
from medseg_nb.data.datasets import get_dataset  # noqa: E402
from medseg_nb.train import evaluate_model, geometry  # noqa: E402

OUT = Path(__file__).with_name('lomix_drive.json')
# label: (registered method, its options); LoMix's two weightings are labelled apart (notebook 50)
VARIANTS = {'single': ('single', {}), 'lomix': ('lomix', {}), 'deep': ('deep', {}), 'additive': ('additive', {}),
            'lomix-raw': ('lomix', dict(weighting='raw'))}
BASELINE = 'single'


def run_one(variant, seed, steps, root, tmp) -> dict:
    method, options = VARIANTS[variant]
    out = Path(tmp) / f'{variant}_{seed}'
    t0 = time.time()
    summary = train(method, 'drive', out, root, steps=steps, seed=seed, progress=False, method_options=options,
                    train_options=dict(val_every=max(steps // 10, 1)))
    seconds = time.time() - t0
    hist = json.loads((out / 'history.json').read_text())
    curve = [(h['step'], h['val_dice_mean']) for h in hist if 'val_dice_mean' in h]
    _, model, state = model_from_checkpoint(out / 'last.pt')
    mean, _ = evaluate_model(model, get_dataset('drive', root, 'val'), metrics=('dice', 'cldice'),
                             **geometry(state['config']))
    return dict(variant=variant, method=method, options=options, seed=seed, steps=steps, seconds=round(seconds, 1),
                seconds_per_step=round(summary['seconds'] / max(summary['steps'], 1), 4), dice=mean['dice_mean'],
                cldice=mean['cldice_mean'], curve=curve, machine=machine())


def plot(runs, path: Path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = dict(zip(VARIANTS, ('tab:gray', 'tab:red', 'tab:blue', 'tab:green', 'tab:purple')))
    for v in VARIANTS:
        for i, r in enumerate(sorted((r for r in runs if r['variant'] == v), key=lambda r: r['seed'])):
            x, y = zip(*r['curve'])
            ax.plot(x, y, color=colours[v], alpha=0.8, label=v if i == 0 else None)
    ax.set_xlabel('step'); ax.set_ylabel('validation Dice (4 DRIVE images)'); ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='lower right'); ax.set_title('LoMix and its baselines on DRIVE (one line per seed)')
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)


def table(runs, png: str) -> str:
    rows, diffs = [], []
    by_seed = {v: {r['seed']: r for r in runs if r['variant'] == v} for v in VARIANTS}

    def compare(label, base, other):
        "Table rows of `other` minus `base` (variants), paired by seed, on Dice and clDice."
        for metric in ('dice', 'cldice'):
            d, ci, n = paired(*({s: r[metric] for s, r in by_seed[v].items()} for v in (base, other)))
            if n:
                diffs.append(f"| {label} | {metric} | {d:+.3f} | {interval(ci)} | {n} |")

    for v in VARIANTS:
        rr = sorted(by_seed[v].values(), key=lambda r: r['seed'])
        if not rr:
            continue
        tail = max(converged(r['curve']) for r in rr)
        rows.append(f"| {v} | {mean_sd(r['dice'] for r in rr)} | {mean_sd(r['cldice'] for r in rr)} | "
                    f"{np.mean([r['seconds_per_step'] for r in rr]):.2f} | {tail:.1f} | {len(rr)} |")
        if v != BASELINE:
            compare(v, BASELINE, v)
    # the two weightings against each other: does learning raw (unnormalised) softplus weights matter?
    compare('lomix-raw - lomix', 'lomix', 'lomix-raw')
    steps = sorted({r['steps'] for r in runs})
    return f"""## LoMix and its baselines on DRIVE (`benchmarks/lomix_drive.py`)

Machine: {machines(runs)}. The same U-Net (width 16, depth 4) and recipe for every row: DRIVE's 16 training images,
{', '.join(map(str, steps))} steps, batch {DATASET_DEFAULTS['drive']['batch_size']} patches of 96², validated every tenth of
training on the 4 validation images; final models scored on those images (sliding windows, inside the field of view).
`single` is LoMix's single-output baseline (0.7 Dice + 0.3 CE on the final map), `deep` and `additive` its equal-weight
baselines, `lomix` the learned normalised softplus weights (this package's default), `lomix-raw` the paper's raw
softplus weights. "tail": the largest change of validation Dice over the last fifth of training, over seeds (Dice
points; converged: < 1). s/step includes validation and was taken with other runs sharing the two cores.

| supervision | Dice (± sd over seeds) | clDice | s/step | tail | seeds |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Each minus `single` (the last rows: raw minus normalised weights), paired by seed (95 % t-interval over seeds):

| supervision | metric | difference | 95 % interval | seeds |
|---|---|---|---|---|
{chr(10).join(diffs) or '| (no pair yet) | | | | |'}

![validation curves]({png})"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=600)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--methods', nargs='+', default=['single', 'lomix'], choices=list(VARIANTS))
    grid_args(ap, OUT)
    a = ap.parse_args()
    root = data_root()
    if root is None and not a.table_only:
        sys.exit('set MEDSEG_DATA to the folder holding DRIVE (see ../shared/data)')
    tmp = tempfile.TemporaryDirectory()

    def run_job(variant, seed, steps):
        print(f'[lomix_drive] {variant}, seed {seed}, {steps} steps', flush=True)
        return run_one(variant, seed, steps, root, tmp.name)

    jobs = [(v, s, a.steps) for s in a.seeds for v in a.methods]
    with tmp:
        state = run_grid(a, jobs, lambda r: (r['variant'], r['seed'], r['steps']), run_job, runs_report(a.section, plot, table))
    if state['runs']:
        print(table(state['runs'], plot_file(a.section).name))


if __name__ == '__main__':
    main()
