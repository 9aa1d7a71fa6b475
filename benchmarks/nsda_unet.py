"""U-Net against U-Net + NSDA: ACDC slices (all labeled) and DRIVE, same steps, three seeds; validation Dice.

    python benchmarks/nsda_unet.py [--acdc-steps 100] [--drive-steps 150] [--seeds 0 1 2] [--datasets acdc drive]

Runs are appended to benchmarks/nsda_unet.json (or --json) as they finish, with each run's validation curve (for the
convergence rule of the claims table) and its seconds per step (NSDA's cost).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import converged, grid_args, machine, machines, mean_sd, run_grid, write_section  # noqa: E402

from medseg_nb.cli import model_from_checkpoint, per_class, train  # noqa: E402
from medseg_nb.core import data_root  # noqa: E402
from medseg_nb.data.datasets import get_dataset  # noqa: E402
from medseg_nb.train import evaluate_model, geometry  # noqa: E402

OUT = Path(__file__).with_name('nsda_unet.json')


def tail(runs) -> str:
    vals = [converged(r['curve']) for r in runs if r.get('curve')]
    return f'{max(vals):.1f}' if vals else '–'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--acdc-steps', type=int, default=100)
    ap.add_argument('--drive-steps', type=int, default=150)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--datasets', nargs='+', default=['acdc', 'drive'], choices=['acdc', 'drive'])
    grid_args(ap, OUT)
    a = ap.parse_args()
    root = data_root()
    if root is None and not a.table_only: sys.exit('set MEDSEG_DATA (ACDC and DRIVE)')
    tmp = tempfile.TemporaryDirectory()

    def run_job(m, ds, seed):
        out = Path(tmp.name) / f'{ds}_{m}_{seed}'
        steps = a.acdc_steps if ds == 'acdc' else a.drive_steps
        t0 = time.time()
        summ = train(m, ds, out, root, steps=steps, seed=seed, progress=False,
                     train_options=dict(val_items=1 if ds == 'acdc' else None, val_every=max(steps // 10, 1)))
        secs = time.time() - t0
        hist = json.loads((out / 'history.json').read_text())
        curve = [(h['step'], h['val_dice_mean']) for h in hist if 'val_dice_mean' in h]
        _, model, st = model_from_checkpoint(out / 'last.pt')
        metrics = ('dice', 'cldice') if ds == 'drive' else ('dice',)
        mean, reps = evaluate_model(model, get_dataset(ds, root, 'val'), metrics=metrics, **geometry(st['config']))
        r = dict(method=m, dataset=ds, seed=seed, steps=steps, seconds=round(secs, 1), dice=mean['dice_mean'],
                 cldice=mean.get('cldice_mean'), per_class=per_class(reps, 'dice'), curve=curve,
                 seconds_per_step=round(summ['seconds'] / max(summ['steps'], 1), 4), machine=machine())
        return r

    jobs = [(m, ds, seed) for ds in a.datasets for seed in a.seeds for m in ('unet', 'nsda')]
    with tmp:
        state = run_grid(a, jobs, lambda r: (r['method'], r['dataset'], r['seed']), run_job)
    if not state['runs']:
        sys.exit(f'no runs in {a.json} (say --json benchmarks/nsda_drive.json --datasets drive for the DRIVE grid)')
    rows = []
    for ds in a.datasets:
        for m in ('unet', 'nsda'):
            rr = [r for r in state['runs'] if r['dataset'] == ds and r['method'] == m]
            if not rr: continue
            per = {k: np.mean([r['per_class'][k] for r in rr]) for k in rr[0]['per_class']}
            rows.append(f"| {ds} | {'U-Net + NSDA' if m == 'nsda' else 'U-Net'} | {mean_sd([r['dice'] for r in rr])} | "
                        + ', '.join(f'{k}: {v:.3f}' for k, v in per.items()) + f" | {np.mean([r['seconds'] for r in rr]):.0f} | {tail(rr)} | {len(rr)} |")
    def steps(ds):  # the runs' own budget (a --table-only call need not repeat --drive-steps)
        return ', '.join(map(str, sorted({r['steps'] for r in state['runs'] if r['dataset'] == ds})))
    setting = {'acdc': f'ACDC: {steps("acdc")} steps, all labeled slices, 128² patches, 20 validation volumes slice by slice',
               'drive': f'DRIVE: {steps("drive")} steps, 96² patches, 4 validation images'}
    title = 'U-Net against U-Net + NSDA' + ('' if a.section == 'nsda_unet' else f', {a.section}')
    body = f"""## {title} (`benchmarks/nsda_unet.py`)

Machine: {machines(state['runs'])}. Same steps for both networks ({'; '.join(setting[ds] for ds in a.datasets)}), batch 8,
final models on the validation images.
"tail": the largest change of validation Dice over the last fifth of training, over seeds (Dice points; converged:
< 1). Training seconds include validation and were taken with other work on the machine.

| data | network | mean Dice (± sd over seeds) | Dice per class | training s | tail | seeds |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}"""
    write_section('nsda_unet', body)
    print(body)


if __name__ == '__main__':
    main()
