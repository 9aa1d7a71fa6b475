"""GraphSeg against the U-Net under appearance shifts: train on one domain, test on shifted ones (three seeds).

DRIVE: train on the 16 training images, test the final model on the 4 validation images under each shift in
`medseg_nb.methods.graphseg.model.SHIFTS`. Phantoms: train on domain A (unchanged phantoms), test on 6 unseen
phantoms under three random domains B. Both methods get the same steps and batch (same data budget).

    python benchmarks/graphseg_shift.py [--drive-steps 600] [--phantom-steps 300] [--seeds 0 1 2]

Runs are appended to benchmarks/graphseg_shift.json as they finish (an interrupted run resumes where it stopped);
the summary goes to that file and to benchmarks/RESULTS.md.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import converged, grid_args, machine, run_grid, save_json, write_section  # noqa: E402

from medseg_nb.cli import train, model_from_checkpoint  # noqa: E402
from medseg_nb.core import data_root  # noqa: E402
from medseg_nb.data.datasets import get_dataset, DomainShifted  # noqa: E402
from medseg_nb.data.phantoms import random_domain  # noqa: E402
from medseg_nb.methods.graphseg.model import SHIFTS  # noqa: E402
from medseg_nb.train import evaluate_model, geometry  # noqa: E402

OUT = Path(__file__).with_name('graphseg_shift.json')
METHODS = ('unet', 'graphseg')
METRICS = ('dice', 'cldice', 'betti_error')


def shifted_sets(dataset: str, root):
    "name -> dataset to test on."
    if dataset == 'drive':
        va = get_dataset('drive', root, 'val')
        return {k: DomainShifted(va, d, seed=1) for k, d in SHIFTS.items()}
    te = get_dataset('phantom-vessels', None, 'test')
    return {'A (train domain)': te, **{f'B{k}': DomainShifted(te, random_domain(k, 1.5), seed=1) for k in (1, 2, 3)}}


def one_run(method, dataset, seed, steps, root, tmp):
    out = Path(tmp) / f'{dataset}_{method}_{seed}'
    t0 = time.time()
    s = train(method, 'drive' if dataset == 'drive' else 'phantom-vessels', out, root, steps=steps, seed=seed, progress=False,
              method_options=dict(progress=False) if method == 'graphseg' else None,
              train_options=dict(val_every=max(steps // 10, 1)))
    secs = time.time() - t0
    hist = json.loads((out / 'history.json').read_text())
    curve = [(r['step'], r['val_dice_mean']) for r in hist if 'val_dice_mean' in r]     # on the training domain
    _, model, st = model_from_checkpoint(out / 'last.pt')
    res = {}
    for name, ds in shifted_sets(dataset, root).items():
        mean, _ = evaluate_model(model, ds, metrics=METRICS, **geometry(st['config']))
        res[name] = dict(dice=mean['dice_mean'], cldice=mean['cldice_mean'],
                         betti=mean['betti_error_b0'] + mean['betti_error_b1'])
        print(f'  {dataset} {method} seed {seed} {name:<16} ' + ' '.join(f'{k} {v:.3f}' for k, v in res[name].items()), flush=True)
    return dict(method=method, dataset=dataset, seed=seed, steps=s['steps'], train_seconds=round(secs, 1), shifts=res,
                curve=curve, machine=machine())


def summarise(runs):
    rows = []
    for dataset in ('drive', 'phantom'):
        rr = [r for r in runs if r['dataset'] == dataset]
        if not rr: continue
        for shift in rr[0]['shifts']:
            row = dict(dataset=dataset, shift=shift)
            for m in METHODS:
                vals = [r['shifts'][shift] for r in rr if r['method'] == m]
                row[m] = {k: float(np.mean([v[k] for v in vals])) for k in ('dice', 'cldice', 'betti')}
                row[m].update({k + '_sd': float(np.std([v[k] for v in vals], ddof=1)) if len(vals) > 1 else 0.0
                               for k in ('dice', 'cldice', 'betti')})
                row[m]['n'] = len(vals)
            rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--drive-steps', type=int, default=600)
    ap.add_argument('--phantom-steps', type=int, default=300)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--datasets', nargs='+', default=['drive', 'phantom'])
    grid_args(ap, OUT)
    a = ap.parse_args()
    root = data_root()
    if 'drive' in a.datasets and root is None and not a.table_only:
        sys.exit('set MEDSEG_DATA to the folder holding DRIVE (see ../shared/data)')
    jobs = [(m, ds, seed) for ds in a.datasets for seed in a.seeds for m in METHODS]
    with tempfile.TemporaryDirectory() as tmp:
        run_job = lambda m, ds, seed: one_run(m, ds, seed, a.drive_steps if ds == 'drive' else a.phantom_steps, root, tmp)
        state = run_grid(a, jobs, lambda r: (r['method'], r['dataset'], r['seed']), run_job)
    state['summary'] = summarise(state['runs'])
    if a.merge: save_json(a.json, state)
    rows = state['summary']
    lines = ['| data | shift | U-Net Dice | GraphSeg Dice | U-Net clDice | GraphSeg clDice | U-Net Betti err. | GraphSeg Betti err. |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        u, g = r['unet'], r['graphseg']
        lines.append(f"| {r['dataset']} | {r['shift']} | {u['dice']:.3f} ± {u['dice_sd']:.3f} | {g['dice']:.3f} ± {g['dice_sd']:.3f} | "
                     f"{u['cldice']:.3f} ± {u['cldice_sd']:.3f} | {g['cldice']:.3f} ± {g['cldice_sd']:.3f} | "
                     f"{u['betti']:.1f} ± {u['betti_sd']:.1f} | {g['betti']:.1f} ± {g['betti_sd']:.1f} |")
    shifted = lambda ds, m: np.mean([r[m]['cldice'] for r in rows if r['dataset'] == ds and r['shift'] not in ('none', 'A (train domain)')])
    verdict = '\n'.join(f"- {ds}: mean clDice over the shifted domains, U-Net {shifted(ds, 'unet'):.3f}, GraphSeg {shifted(ds, 'graphseg'):.3f}"
                        for ds in ('drive', 'phantom') if any(r['dataset'] == ds for r in rows))
    secs = {(m, ds): np.mean([r['train_seconds'] for r in state['runs'] if r['method'] == m and r['dataset'] == ds] or [np.nan])
            for m in METHODS for ds in ('drive', 'phantom')}
    steps = {ds: sorted({r['steps'] for r in state['runs'] if r['dataset'] == ds}) for ds in ('drive', 'phantom')}
    tails = {ds: max((converged(r['curve']) for r in state['runs'] if r['dataset'] == ds and r['method'] == 'unet'
                      and r.get('curve')), default=np.nan) for ds in ('drive', 'phantom')}
    title = 'GraphSeg vs U-Net under appearance shifts' + ('' if a.section == 'graphseg_shift' else f', {a.section}')
    body = f"""## {title} (`benchmarks/graphseg_shift.py`)

Machine: {state['machine']}. Seeds {sorted({r['seed'] for r in state['runs']})}; mean ± standard deviation over seeds.
Same steps and batch for both methods (batch 8; DRIVE 96² patches, phantoms 64²). {'; '.join(
    f"{ds}: {', '.join(map(str, steps[ds]))} steps, mean seconds per run U-Net {secs[('unet', ds)]:.0f}, GraphSeg "
    f"{secs[('graphseg', ds)]:.0f} (with prior fitting; other work on the machine), the U-Net's validation Dice moved "
    f"{tails[ds]:.1f} points over the last fifth of training (converged: < 1)" for ds in ('drive', 'phantom') if steps[ds])}.
Final models (not best-on-validation: DRIVE's validation images are the test images here). Betti error = |Δβ0| + |Δβ1|.

{chr(10).join(lines)}

{verdict}"""
    write_section(a.section, body)
    print(body)


if __name__ == '__main__':
    main()
