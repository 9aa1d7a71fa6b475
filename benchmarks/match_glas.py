"""MATCH against the mean teacher at the same dropout on GlaS (10 % and 20 % of the training images labeled): the same
U-Net, steps, batch, unlabeled batch and seeds. The mean teacher at MATCH's dropout 0.2 is MATCH without its
topological term (the paper's ablation); `mt-d0`, the mean teacher without dropout, shows what dropout alone does.

    python benchmarks/match_glas.py [--steps 300] [--seeds 0 1 2] [--labeled 0.1 0.2] [--methods mt match mt-d0 match-w]
                                    [--dataset glas | phantom-glands] [--loss-scale 60]

Validation: GlaS's own split of the training release (every fifth image), scored during training every tenth of
the run (the curves) and on the final model: Dice, object F1 and Betti error (|Δβ0| + |Δβ1| of the gland class, per
image). Runs are appended to benchmarks/match_glas.json as they finish (an interrupted grid resumes; --shard, --merge
and --table-only as in every grid); jobs run labeled fraction by fraction and seed by seed, in the order of
--methods, so that a grid cut short keeps whole pairs. Curves: benchmarks/match_glas.png; table: the `match_glas`
section of RESULTS.md.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import (converged, grid_args, interval, machine, machines, mean_sd, paired, run_grid, save_json,  # noqa: E402
                      plot_file, write_section)

from medseg_nb.cli import DATASET_DEFAULTS, model_from_checkpoint, train  # noqa: E402
from medseg_nb.core import data_root  # noqa: E402
from medseg_nb.data.datasets import get_dataset  # noqa: E402
from medseg_nb.train import evaluate_model, geometry  # noqa: E402

OUT = Path(__file__).with_name('match_glas.json')
# label: (registered method, its options). MATCH's network has dropout 0.2 (notebook 41)
# `match-w`: the topological weight a tenth of the paper's, the first thing the loss-scale probe says to vary (at
# w_topo 0.05 the weighted term is as heavy as the supervised loss); not the paper's setting, named apart
VARIANTS = {'mt': ('mean_teacher', dict(dropout=0.2)), 'match': ('match', dict(dropout=0.2)),
            'mt-d0': ('mean_teacher', dict(dropout=0.0)), 'match-w': ('match', dict(dropout=0.2, w_topo=0.005))}
NAMES = {'mt': 'mean teacher, dropout 0.2 (MATCH without topology)', 'match': 'MATCH, dropout 0.2',
         'mt-d0': 'mean teacher, dropout 0', 'match-w': 'MATCH, dropout 0.2, w_topo 0.005 (a tenth)'}
BASELINE = 'mt'
# metric: (key in the run, higher is better, format)
METRICS = {'dice': ('Dice', True, '{:.3f}'), 'object_f1': ('object F1', True, '{:.3f}'),
           'betti': ('Betti error', False, '{:.2f}')}


def run_one(variant, dataset, labeled, seed, steps, root, tmp) -> dict:
    method, options = VARIANTS[variant]
    out = Path(tmp) / f'{dataset}_{variant}_{labeled}_{seed}'
    t0 = time.time()
    summary = train(method, dataset, out, root, steps=steps, labeled=labeled, seed=seed, progress=False,
                    method_options=options, train_options=dict(val_every=max(steps // 10, 1)))
    seconds = time.time() - t0
    hist = json.loads((out / 'history.json').read_text())
    curve = [(h['step'], h['val_dice_mean']) for h in hist if 'val_dice_mean' in h]
    _, model, state = model_from_checkpoint(out / 'last.pt')
    mean, _ = evaluate_model(model, get_dataset(dataset, root, 'val'), metrics=('dice', 'object_f1', 'betti_error'),
                             **geometry(state['config']))
    return dict(variant=variant, method=method, options=options, dataset=dataset, labeled=labeled, seed=seed,
                steps=steps, seconds=round(seconds, 1),
                seconds_per_step=round(summary['seconds'] / max(summary['steps'], 1), 4), dice=mean['dice_mean'],
                object_f1=mean['object_f1_mean'], betti=mean['betti_error_b0'] + mean['betti_error_b1'],
                curve=curve, machine=machine())


def loss_scale(dataset, labeled, seed, steps, root, tmp) -> dict:
    """How heavy each term of MATCH's loss is: a short MATCH run logged every step, the weighted terms averaged over
    the steps after its warm-up (`topo_start`), and the fraction of persistence features found reliable."""
    out = Path(tmp) / f'scale_{dataset}_{labeled}_{seed}'
    options = VARIANTS['match'][1]
    train('match', dataset, out, root, steps=steps, labeled=labeled, seed=seed, progress=False, method_options=options,
          train_options=dict(val_every=10 ** 9, log_every=1))
    # the steps after the warm-up are those that log the reliable fraction
    hist = [h for h in json.loads((out / 'history.json').read_text()) if 'reliable_frac' in h]
    if not hist:
        raise SystemExit(f'--loss-scale {steps}: no step after the warm-up (topo_start of the run); give more steps')
    start = min(h['step'] for h in hist)
    weighted = {k: float(np.mean([h['w_unsup'] * h[k] for h in hist])) for k in ('topo', 'consistency')}
    return dict(dataset=dataset, labeled=labeled, seed=seed, steps=steps, from_step=start,
                sup=float(np.mean([h['sup'] for h in hist])), **weighted,
                reliable=[min(h['reliable_frac'] for h in hist), max(h['reliable_frac'] for h in hist)])


def plot(runs, path: Path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fractions = sorted({r['labeled'] for r in runs})
    fig, axes = plt.subplots(1, len(fractions), figsize=(5 * len(fractions), 3.8), squeeze=False, sharey=True)
    colours = dict(zip(VARIANTS, ('tab:gray', 'tab:red', 'tab:blue', 'tab:orange')))
    for ax, fraction in zip(axes[0], fractions):
        for v in VARIANTS:
            rr = sorted((r for r in runs if r['variant'] == v and r['labeled'] == fraction), key=lambda r: r['seed'])
            for i, r in enumerate(rr):
                x, y = zip(*r['curve'])
                ax.plot(x, y, color=colours[v], alpha=0.8, label=NAMES[v] if i == 0 else None)
        ax.set_title(f'{dict(glas="GlaS").get(runs[0]["dataset"], runs[0]["dataset"])}, {fraction:.0%} labeled')
        ax.set_xlabel('step'); ax.grid(alpha=0.3)
    axes[0][0].set_ylabel('validation Dice'); axes[0][0].legend(fontsize=7, loc='lower right')
    fig.suptitle('MATCH and the mean teacher (one line per seed)', fontsize=10)
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)


def differences(runs, fraction, variant, baseline=BASELINE):
    "metric -> (variant - baseline mean, 95 % interval, seeds) at one labeled fraction, paired by seed."
    base = {r['seed']: r for r in runs if r['variant'] == baseline and r['labeled'] == fraction}
    other = {r['seed']: r for r in runs if r['variant'] == variant and r['labeled'] == fraction}
    return {m: paired({s: r[m] for s, r in base.items()}, {s: r[m] for s, r in other.items()}) for m in METRICS}


def table(runs, scales, png: str) -> str:
    rows, diffs = [], []
    for fraction in sorted({r['labeled'] for r in runs}):
        for v in VARIANTS:
            rr = [r for r in runs if r['variant'] == v and r['labeled'] == fraction]
            if not rr:
                continue
            tail = max(converged(r['curve']) for r in rr)
            rows.append(f"| {fraction:.0%} | {NAMES[v]} | " + ' | '.join(mean_sd((r[m] for r in rr), fmt)
                                                                       for m, (_, _, fmt) in METRICS.items())
                        + f" | {np.mean([r['seconds_per_step'] for r in rr]):.2f} | {tail:.1f} | {len(rr)} |")
            if v == BASELINE:
                continue
            for m, (d, ci, n) in differences(runs, fraction, v).items():
                if n:
                    diffs.append(f"| {fraction:.0%} | {NAMES[v]} | {METRICS[m][0]} | {d:+.3f} | "
                                 f"{interval(ci)} | {n} |")
    dataset = runs[0]['dataset']
    return f"""## MATCH against the mean teacher at the same dropout (`benchmarks/match_glas.py`)

Machine: {machines(runs)}.
The same U-Net (width 16, depth 4, dropout as named) and recipe for every row: {dict(glas='GlaS').get(dataset, dataset)},
{', '.join(map(str, sorted({r['steps'] for r in runs})))} steps, batch {DATASET_DEFAULTS[dataset]['batch_size']} labeled + \
{DATASET_DEFAULTS[dataset]['batch_size']} unlabeled tiles of {DATASET_DEFAULTS[dataset]['patch'][0]}², EMA teacher,
validated every tenth of training; final models scored on the validation images (GlaS: every fifth image of its
training release). Betti error = |Δβ0| + |Δβ1| of the gland class per image, averaged (lower is better). "tail": the
largest change of validation Dice over the last fifth of training, over seeds (Dice points; converged: < 1). s/step
includes validation and was taken with other runs sharing the two cores.

| labeled | method | Dice (± sd over seeds) | object F1 | Betti error | s/step | tail | seeds |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Each minus the mean teacher at dropout 0.2, paired by seed (95 % t-interval over seeds; Betti error: lower is better):

| labeled | method | metric | difference | 95 % interval | seeds |
|---|---|---|---|---|---|
{chr(10).join(diffs) or '| (no pair yet) | | | | | |'}
{scale_text(scales)}
![validation curves]({png})"""


def scale_text(scales) -> str:
    "The loss-scale probes (`--loss-scale`) as a table, or nothing."
    if not scales:
        return ''
    rows = '\n'.join(f"| {r['labeled']:.0%} | {r['seed']} | {r['steps']} (from step {r['from_step']}) | {r['sup']:.3f} | "
                     f"{r['topo']:.3f} | {r['consistency']:.4f} | {r['reliable'][0]:.0%}-{r['reliable'][1]:.0%} |"
                     for r in scales)
    return f"""
How heavy MATCH's topological term is (`--loss-scale`): a short MATCH run logged every step, each term of the loss as it
enters the total, averaged over the steps after the warm-up, and the fraction of persistence features found reliable:

| labeled | seed | steps | supervised | w(t) topological | w(t) consistency | reliable features |
|---|---|---|---|---|---|---|
{rows}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--labeled', type=float, nargs='+', default=[0.1, 0.2])
    ap.add_argument('--methods', nargs='+', default=['mt', 'match'], choices=list(VARIANTS))
    ap.add_argument('--dataset', default='glas', choices=['glas', 'phantom-glands'])
    ap.add_argument('--loss-scale', type=int, metavar='STEPS',
                    help="first probe how heavy MATCH's loss terms are in a STEPS-step run (seed and fraction: the first)")
    grid_args(ap, OUT)
    a = ap.parse_args()
    root = data_root()
    if a.dataset == 'glas' and root is None and not a.table_only:
        sys.exit('set MEDSEG_DATA to the folder holding GlaS (see ../shared/data)')
    tmp = tempfile.TemporaryDirectory()

    def run_job(variant, labeled, seed, steps):
        print(f'[match_glas] {variant}, {labeled:.0%} labeled, seed {seed}, {steps} steps', flush=True)
        return run_one(variant, a.dataset, labeled, seed, steps, root, tmp.name)

    scales = json.loads(a.json.read_text()).get('loss_scale', []) if a.json.exists() else []
    if a.loss_scale and not a.table_only:
        with tempfile.TemporaryDirectory() as probe_dir:
            scales = [r for r in scales if (r['labeled'], r['seed'], r['steps']) != (a.labeled[0], a.seeds[0], a.loss_scale)]
            scales.append(loss_scale(a.dataset, a.labeled[0], a.seeds[0], a.loss_scale, root, probe_dir))
        print(json.dumps(scales[-1]), flush=True)

    def report(state):
        state['loss_scale'] = scales
        plot(state['runs'], plot_file(a.section))
        write_section(a.section, table(state['runs'], scales, plot_file(a.section).name))

    jobs = [(v, f, s, a.steps) for f in a.labeled for s in a.seeds for v in a.methods]
    with tmp:
        state = run_grid(a, jobs, lambda r: (r['variant'], r['labeled'], r['seed'], r['steps']), run_job, report)
    if scales:
        state['loss_scale'] = scales
        save_json(a.json, state)
    if state['runs']:
        print(table(state['runs'], scales, plot_file(a.section).name))


if __name__ == '__main__':
    main()
