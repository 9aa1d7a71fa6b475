"""Mamba-HoME against a 3-D U-Net of (nearly) equal parameter count, and HoME on and off: the same steps, patches,
batch and seeds on the 3-D organ phantoms, or on ACDC's training frames as volumes (`--dataset acdc`, the `acdc-3d`
defaults: patches of 8 x 96 x 96 after resizing slices to 128 x 128, batch 2; every network, the U-Net too, trains on
volumes and is scored on the 20 validation volumes).

    python benchmarks/mamba_home.py [--steps 400] [--seeds 0 1 2] [--methods home mlp unet unet-ds0]
                                    [--dataset phantom-organs3d | acdc]

`home` is `mamba_home` (small); `mlp` the same network with a parameter-matched MLP in every HoME's place
(`mixer='mlp'`, notebook 42), the paper's "HoME off"; `unet` a 3-D U-Net of width 10 (within 6 % of their parameter
count) with the same loss: Dice + CE with deep supervision 0.5 (`unet-ds0`: without it). Each run is validated every
tenth of training (the curves) and its final model scored on the validation volumes with sliding windows: Dice per
structure. Runs are appended to benchmarks/mamba_home.json as they finish (an interrupted grid resumes; with --work
DIR a run cut short resumes from its last checkpoint; --shard, --merge and --table-only as in every grid). Curves:
benchmarks/mamba_home.png; table: the `mamba_home` section of RESULTS.md. ACDC runs go to their own file, plot and
section (mamba_home_acdc).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import (converged, grid_args, interval, machine, machines, mean_sd, paired, plot_file,  # noqa: E402
                      resumed, run_grid, runs_report, work_args, work_dir)

from medseg_nb.cli import DATASET_DEFAULTS, model_from_checkpoint, per_class, train  # noqa: E402
from medseg_nb.core import data_root  # noqa: E402
from medseg_nb.data.datasets import get_dataset  # noqa: E402
from medseg_nb.train import evaluate_model, geometry  # noqa: E402

OUT = Path(__file__).with_name('mamba_home.json')
ACDC_OUT = OUT.with_name('mamba_home_acdc.json')   # ACDC volumes: a file, plot and section of their own
UNET_WIDTH = 10
# label: (registered method, its options)
# the U-Net gets Mamba-HoME's deep supervision (0.5, weights halving with depth): the same loss for every network;
# `unet-ds0` (not run by default) is the U-Net without it
VARIANTS = {'home': ('mamba_home', {}), 'mlp': ('mamba_home', dict(mixer='mlp')),
            'unet': ('unet', dict(width=UNET_WIDTH, deep_supervision=0.5)),
            'unet-ds0': ('unet', dict(width=UNET_WIDTH, deep_supervision=0.0))}
NAMES = {'home': 'Mamba-HoME (small)', 'mlp': 'Mamba + MLP (HoME off)', 'unet': f'3-D U-Net (width {UNET_WIDTH})',
         'unet-ds0': f'3-D U-Net (width {UNET_WIDTH}), no deep supervision'}
DEFAULT = ('home', 'mlp', 'unet')
STRUCTURES = {'phantom-organs3d': ('liver', 'kidney', 'spleen', 'vessel'), 'acdc': ('RV', 'myo', 'LV')}
# each claim: (method, baseline)
PAIRS = (('home', 'unet'), ('home', 'mlp'))


def run_one(variant, dataset, seed, steps, root, tmp) -> dict:
    method, options = VARIANTS[variant]
    out = Path(tmp) / f'{dataset}_{variant}_{seed}_{steps}'
    t0 = time.time()
    resume, at, earlier = resumed(out, steps)  # a run cut short in a kept --work folder continues from there
    # on ACDC, dim=3 trains the U-Net on the frames as volumes, as Mamba-HoME (3-D only) trains anyway
    summary = train(method, dataset, out, root, steps=steps, seed=seed, progress=False, method_options=options,
                    resume=resume,
                    train_options=dict(val_every=max(steps // 10, 1), metrics=('dice',)),
                    dataset_options=dict(dim=3) if dataset == 'acdc' else None)
    seconds = time.time() - t0 + earlier
    hist = json.loads((out / 'history.json').read_text())
    curve = [(h['step'], h['val_dice_mean']) for h in hist if 'val_dice_mean' in h]
    _, model, state = model_from_checkpoint(out / 'last.pt')
    mean, reports = evaluate_model(model, get_dataset(dataset, root, 'val'), metrics=('dice',),
                                   **geometry(state['config']))
    return dict(variant=variant, method=method, options=options, dataset=dataset, seed=seed, steps=steps,
                params=sum(p.numel() for p in model.parameters()), seconds=round(seconds, 1),
                seconds_per_step=round((summary['seconds'] + earlier) / max(summary['steps'], 1), 4),
                dice=mean['dice_mean'],
                per_structure=per_class(reports, 'dice'), curve=curve, machine=machine(),
                **(dict(resumed_at=at) if resume else {}))


def plot(runs, path: Path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = dict(zip(VARIANTS, ('tab:red', 'tab:blue', 'tab:gray', 'tab:olive')))
    for v in VARIANTS:
        for i, r in enumerate(sorted((r for r in runs if r['variant'] == v), key=lambda r: r['seed'])):
            x, y = zip(*r['curve'])
            ax.plot(x, y, color=colours[v], alpha=0.8, label=NAMES[v] if i == 0 else None)
    ax.set_xlabel('step'); ax.set_ylabel('validation Dice'); ax.grid(alpha=0.3); ax.legend(fontsize=8, loc='lower right')
    ax.set_title(f'Mamba-HoME, HoME off and a 3-D U-Net on {runs[0]["dataset"]} (one line per seed)', fontsize=10)
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)


def table(runs, png: str) -> str:
    dataset = runs[0]['dataset']
    acdc = dataset.startswith('acdc')                 # ACDC trains here as volumes: the acdc-3d defaults
    names = STRUCTURES.get('acdc' if acdc else dataset, ())
    rows, diffs = [], []
    for v in VARIANTS:
        rr = [r for r in runs if r['variant'] == v]
        if not rr:
            continue
        per = ', '.join(f"{names[int(k) - 1] if int(k) - 1 < len(names) else k} "
                        f"{np.mean([r['per_structure'][k] for r in rr]):.3f}" for k in rr[0]['per_structure'])
        rows.append(f"| {NAMES[v]} | {rr[0]['params'] / 1e6:.2f} M | {mean_sd(r['dice'] for r in rr)} | {per} | "
                    f"{np.mean([r['seconds_per_step'] for r in rr]):.2f} | {max(converged(r['curve']) for r in rr):.1f} | "
                    f"{len(rr)} |")
    for method, base in PAIRS:
        a = {r['seed']: r['dice'] for r in runs if r['variant'] == base}
        b = {r['seed']: r['dice'] for r in runs if r['variant'] == method}
        d, ci, n = paired(a, b)
        if n:
            diffs.append(f"| {NAMES[method]} - {NAMES[base]} | {d:+.3f} | {interval(ci)} | {n} |")
    cfg = DATASET_DEFAULTS['acdc-3d' if acdc else dataset]
    where = ('ACDC training frames as volumes (slices resized to 128 x 128; scored on the 20 validation volumes)'
             if acdc else dataset)
    return f"""## Mamba-HoME against a 3-D U-Net, HoME on and off (`benchmarks/mamba_home.py`)

Machine: {machines(runs)}. The same recipe for every row: {where}, {', '.join(map(str, sorted({r['steps'] for r in runs})))}
steps, batch {cfg.get('batch_size')} patches of {'x'.join(map(str, cfg.get('patch', ())))}, Dice + CE with deep supervision
0.5 for every network (but `unet-ds0`), validated every tenth of training; final models scored on the validation volumes with sliding windows.
"HoME off" puts a parameter-matched MLP in every HoME's place (notebook 42). "tail": the largest change of validation
Dice over the last fifth of training, over seeds (Dice points; converged: < 1). s/step includes validation and was
taken with other runs sharing the two cores.

| network | parameters | mean Dice (± sd over seeds) | Dice per structure | s/step | tail | seeds |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Paired by seed (95 % t-interval over seeds):

| difference | mean Dice | 95 % interval | seeds |
|---|---|---|---|
{chr(10).join(diffs) or '| (no pair yet) | | | |'}

![validation curves]({png})"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=400)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--methods', nargs='+', default=list(DEFAULT), choices=list(VARIANTS))
    ap.add_argument('--dataset', default='phantom-organs3d', choices=['phantom-organs3d', 'acdc'])
    grid_args(ap, OUT)
    work_args(ap)
    a = ap.parse_args()
    if a.dataset == 'acdc':                # unless named, ACDC's runs get their own file and section
        a.json = ACDC_OUT if a.json == OUT else a.json
        a.section = ACDC_OUT.stem if a.section == OUT.stem else a.section
    other = {r['dataset'] for r in json.loads(a.json.read_text())['runs']} - {a.dataset} if a.json.exists() else set()
    if other:
        sys.exit(f'{a.json} holds runs on {sorted(other)}, not {a.dataset}: give --json and --section of their own')
    root = data_root()
    if a.dataset == 'acdc' and root is None and not a.table_only:
        sys.exit('set MEDSEG_DATA to the folder holding ACDC (see ../shared/data)')

    def run_job(variant, seed, steps):
        print(f'[mamba_home] {variant}, seed {seed}, {steps} steps', flush=True)
        return run_one(variant, a.dataset, seed, steps, root, work)

    jobs = [(v, s, a.steps) for s in a.seeds for v in a.methods]
    with work_dir(a) as work:
        state = run_grid(a, jobs, lambda r: (r['variant'], r['seed'], r['steps']), run_job, runs_report(a.section, plot, table))
    if state['runs']:
        print(table(state['runs'], plot_file(a.section).name))


if __name__ == '__main__':
    main()
