"""Mamba-HoME (small) against a 3-D U-Net of similar size: organ phantoms and ACDC volumes, same steps, CPU.

Each run is a separate process, so that its peak memory (max RSS) is its own. Dice per structure on the validation
volumes (phantoms: the 6-volume validation split; ACDC: the first --acdc-val validation volumes), parameters,
seconds per training step (batch 2; validation excluded), peak resident memory.

    python benchmarks/mamba_home.py [--steps 150] [--acdc-steps 150] [--acdc-val 5] [--unet-width 10]
"""
import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, save_json, write_section  # noqa: E402

OUT = Path(__file__).with_name('mamba_home.json')
STRUCT = {'phantom-organs3d': ('liver', 'kidney', 'spleen', 'vessel'), 'acdc': ('RV', 'myo', 'LV')}


def run(method, dataset, steps, n_val, width, q):
    import torch
    torch.set_num_threads(1)
    from medseg_nb.cli import per_class
    from medseg_nb.core import get_method, load_methods
    from medseg_nb.data.datasets import get_dataset
    from medseg_nb.train import Trainer, evaluate_model, geometry
    load_methods()
    opts = dict(width=width) if method == 'unet' else {}
    m = get_method(method, **opts)
    if dataset == 'acdc':
        tr, va = get_dataset('acdc', None, 'train', dim=3), get_dataset('acdc', None, 'val')
        cfg = dict(size=(128, 128), patch=(8, 96, 96), batch_size=2)     # the acdc-3d defaults of the command line
    else:
        tr, va = get_dataset(dataset, None, 'train'), get_dataset(dataset, None, 'val')
        cfg = dict(patch=(32, 32, 32), batch_size=2)
    t = Trainer(m, tr, None, None, dict(cfg, steps=steps, progress=False, val_every=10 ** 9, seed=0))
    t0 = time.time(); t.fit(); secs = time.time() - t0
    sub = torch.utils.data.Subset(va, range(min(n_val, len(va))))
    sub.num_classes = va.num_classes
    mean, reps = evaluate_model(t.model, sub, metrics=('dice',), **geometry(t.cfg))   # the training context
    q.put(dict(method=method, dataset=dataset, steps=steps, params=t.n_params(), s_per_step=secs / steps,
               dice=per_class(reps, 'dice'), dice_mean=mean['dice_mean'],
               peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=150)
    ap.add_argument('--acdc-steps', type=int, default=150)
    ap.add_argument('--acdc-val', type=int, default=5)
    ap.add_argument('--unet-width', type=int, default=10)
    ap.add_argument('--datasets', nargs='+', default=['phantom-organs3d', 'acdc'])
    a = ap.parse_args()
    if 'acdc' in a.datasets and not os.environ.get('MEDSEG_DATA'): sys.exit('set MEDSEG_DATA for ACDC')
    ctx = mp.get_context('spawn')
    res = []
    for ds in a.datasets:
        for method in ('mamba_home', 'unet'):
            q = ctx.Queue()
            p = ctx.Process(target=run, args=(method, ds, a.acdc_steps if ds == 'acdc' else a.steps, a.acdc_val if ds == 'acdc' else 6, a.unet_width, q))
            p.start(); r = q.get(); p.join()
            res.append(r); print(json.dumps(r), flush=True)
            save_json(OUT, dict(machine=machine(), runs=res))
    rows = []
    for r in res:
        names = STRUCT.get(r['dataset'], ())
        per = ', '.join(f"{names[int(k) - 1] if int(k) - 1 < len(names) else k} {v:.3f}" for k, v in r['dice'].items())
        label = 'Mamba-HoME small' if r['method'] == 'mamba_home' else f"3-D U-Net (width {a.unet_width})"
        rows.append(f"| {r['dataset']} | {label} | {r['params'] / 1e6:.2f} M | {r['steps']} | {r['s_per_step']:.2f} | {r['peak_mb']:.0f} | {r['dice_mean']:.3f} | {per} |")
    body = f"""## Mamba-HoME vs 3-D U-Net (`benchmarks/mamba_home.py`)

Machine: {machine()}; one thread per run, one seed (0). Same steps and batch (2 patches: phantoms 32³, ACDC 8x96x96);
Dice on the validation volumes (phantoms: 6; ACDC: the first {a.acdc_val} of 20) with sliding windows.

| data | model | parameters | steps | s / step | peak RSS (MB) | mean Dice | Dice per structure |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}"""
    write_section('mamba_home', body)
    print(body)


if __name__ == '__main__':
    main()
