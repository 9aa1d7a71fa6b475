"""GauSAM's two claims, over seeds: the Gaussian-field head against SAM's own mask head (same tiny SAM, adapter, box
prompts, steps, batch and seed), at output resolutions 0.5x, 1x and 2x of the base size; and contour-guided against
uniform placement of the Gaussians, by their validation curves; and our ablation, contour placement on a lattice over
the box (`placement='contour_box'`), which starts no Gaussian outside the box.

    [MEDSEG_DATA=../shared/data] python benchmarks/gausam_heads.py [--steps 1000] [--seeds 0 1 2] [--datasets kvasir]

Each run trains one head with `medseg_nb.methods.gausam.model.train_head` (AdamW 1e-3, batch 4, Dice + CE, batches
drawn at random from the training set, images resized to --size), validates at 1x every --val-every steps, and scores
the final model at each output resolution against labels resampled from their original resolution. Runs are appended
to benchmarks/gausam_heads.json as they finish (an interrupted grid resumes where it stopped, and with `--work DIR` a run
cut short continues from its last checkpoint, saved every 100 steps and on Ctrl-C or SIGTERM); the table goes to the
`gausam_heads` section of RESULTS.md and the curves to benchmarks/gausam_heads.png.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import (converged, early, finite_mean, grid_args, interval, listed, machine, machines, mean_sd, paired,  # noqa: E402
                      plot_file, run_grid, work_args, work_dir, write_section)

from medseg_nb.core import data_root  # noqa: E402
from medseg_nb.data.phantoms import PhantomDataset  # noqa: E402
from medseg_nb.methods.gausam.model import train_head  # noqa: E402

OUT = Path(__file__).with_name('gausam_heads.json')
VARIANTS = {'sam': ('sam', 'contour'), 'gaussian': ('gaussian', 'contour'), 'uniform': ('gaussian', 'uniform'),
            'box': ('gaussian', 'contour_box')}
LABEL = {'sam': "SAM's mask head", 'gaussian': 'GauSAM, contour placement', 'uniform': 'GauSAM, uniform placement',
         'box': 'GauSAM, contour placement in the box (our ablation)'}
SCALES = (0.5, 1, 2)


def items(dataset: str, root):
    "(train, validation) lists of samples."
    if dataset == 'kvasir':
        from medseg_nb.data.datasets import KvasirSEG
        tr, va = KvasirSEG(root, 'train'), KvasirSEG(root, 'val')
        return [tr[i] for i in range(len(tr))], [va[i] for i in range(len(va))]
    tr, va = PhantomDataset('glands', n=48, size=128, seed=0), PhantomDataset('glands', n=8, size=256, seed=10_000)
    return [tr[i] for i in range(len(tr))], [va[i] for i in range(len(va))]


def plot(runs, path: Path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    sets = sorted({r['dataset'] for r in runs})
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 3.8), squeeze=False)
    colours = {'sam': 'tab:blue', 'gaussian': 'tab:orange', 'uniform': 'tab:green', 'box': 'tab:red'}
    for ax, ds in zip(axes[0], sets):
        for v in VARIANTS:
            for k, r in enumerate(q for q in runs if q['dataset'] == ds and q['variant'] == v):
                s, d = zip(*r['curve'])
                ax.plot(s, d, color=colours[v], alpha=0.8, label=LABEL[v] if k == 0 else None)
        ax.set_title(ds)
        ax.set_xlabel('step')
        ax.set_ylabel('validation Dice (1x)')
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(runs) -> str:
    parts = []
    for ds in sorted({r['dataset'] for r in runs}):
        rr = [r for r in runs if r['dataset'] == ds]
        lines = ['| head | ' + ' | '.join(f'Dice {s:g}x' for s in SCALES) + ' | HD95 1x | boundary F 1x | early Dice | tail '
                 '| s/run | seeds |', '|---' * (len(SCALES) + 7) + '|']
        for v in VARIANTS:
            vr = [r for r in rr if r['variant'] == v]
            if not vr:
                continue
            at = lambda r, s, k: next(x[k] for x in r['rows'] if x['scale'] == s)
            lines.append(f"| {LABEL[v]} | " + ' | '.join(mean_sd(at(r, s, 'dice') for r in vr) for s in SCALES)
                         + f" | {finite_mean(at(r, 1, 'hd95') for r in vr)} | {mean_sd(at(r, 1, 'boundary_f') for r in vr)}"
                         f" | {mean_sd(early(r['curve']) for r in vr)} | {max(converged(r['curve']) for r in vr):.1f}"
                         f" | {np.mean([r['seconds'] for r in vr]):.0f} | {len(vr)} |")
        comp = []
        by = lambda v, f: {r['seed']: f(r) for r in rr if r['variant'] == v}
        for s in SCALES:
            d, ci, n = paired(by('sam', lambda r: next(x['dice'] for x in r['rows'] if x['scale'] == s)),
                              by('gaussian', lambda r: next(x['dice'] for x in r['rows'] if x['scale'] == s)))
            comp.append(f"| Gaussian head - SAM head, Dice at {s:g}x | {d:+.3f} | "
                        f"{interval(ci)} | {n} |")
        d, ci, n = paired(by('uniform', lambda r: early(r['curve'])), by('gaussian', lambda r: early(r['curve'])))
        comp.append(f"| contour - uniform placement, early Dice | {d:+.3f} | {interval(ci)} | {n} |")
        for other, name in (('uniform', 'uniform placement'), ('gaussian', 'contour placement')):
            d, ci, n = paired(by(other, lambda r: early(r['curve'])), by('box', lambda r: early(r['curve'])))
            if n:
                comp.append(f"| contour in the box - {name}, early Dice | {d:+.3f} | {interval(ci)} | {n} |")
        parts.append(f"**{ds}** ({listed(r['steps'] for r in rr)} steps):\n\n" + '\n'.join(lines)
                     + '\n\nPaired by seed (95 % t-interval over seeds):\n\n| difference | mean | 95 % interval | seeds |\n'
                     '|---|---|---|---|\n' + '\n'.join(comp))
    return '\n\n'.join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=1000)
    ap.add_argument('--val-every', type=int, default=0, help='validate every this many steps (default: steps / 10)')
    ap.add_argument('--size', type=int, default=128)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--datasets', nargs='+', default=['kvasir'], choices=['kvasir', 'phantom'])
    ap.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument('--schedule', default='constant', choices=['constant', 'cosine'],
                    help="the learning rate: constant, or a cosine decay from 1e-3 to near 0 (the runs' own file)")
    grid_args(ap, OUT)
    work_args(ap)
    a = ap.parse_args()
    root = data_root()
    if 'kvasir' in a.datasets and root is None and not a.table_only:
        sys.exit('set MEDSEG_DATA to the folder holding Kvasir-SEG (see ../shared/data), or pass --datasets phantom')
    data = {}

    def run_job(v, ds, s, steps):
        if ds not in data:
            data[ds] = items(ds, root)
        head, placement = VARIANTS[v]
        print(f'[gausam_heads] {ds} {v} seed {s}, {steps} steps', flush=True)
        ckpt = Path(work) / f"{v}_{ds}_{s}_{steps}_{a.size}{'_' + a.schedule if a.schedule != 'constant' else ''}.pt"
        if ckpt.is_file():
            print(f'[gausam_heads] continuing from {ckpt}', flush=True)
        out = train_head(*data[ds], head=head, placement=placement, steps=steps, size=a.size, seed=s, scales=SCALES,
                         val_every=a.val_every or max(steps // 10, 1), progress=sys.stderr.isatty(), checkpoint=ckpt,
                         schedule=a.schedule)
        r = dict(variant=v, dataset=ds, seed=s, steps=steps, size=a.size, seconds=round(out['seconds'], 1),
                 rows=out['rows'], curve=out['curve'], machine=machine(), threads=torch.get_num_threads(),
                 **({'schedule': a.schedule} if a.schedule != 'constant' else {}),
                 **({'resumed_at': out['resumed_at']} if 'resumed_at' in out else {}))
        scores = ' '.join(f"{x['scale']:g}x {x['dice']:.3f}" for x in r['rows'])
        print(f"  Dice {scores}, {r['seconds']:.0f} s", flush=True)
        return r

    def report(state):
        plot(state['runs'], plot_file(a.section))
        write_section(a.section, body(state['runs'], a))

    jobs = [(v, ds, s, a.steps) for s in a.seeds for ds in a.datasets for v in a.variants]      # seed-major
    with work_dir(a) as work:
        state = run_grid(a, jobs, lambda r: (r['variant'], r['dataset'], r['seed'], r['steps']), run_job, report)
    if state['runs']:
        print(body(state['runs'], a))


def schedules(runs) -> str:
    "The learning-rate schedules of the runs, in words."
    names = {'constant': 'constant', 'cosine': 'cosine decay to near 0'}
    return ', '.join(names[k] for k in sorted({r.get('schedule', 'constant') for r in runs}))


def body(runs, a) -> str:
    return f"""## GauSAM: Gaussian-field head against SAM's mask head (`benchmarks/gausam_heads.py`)

Machine: {machines(runs)}. Tiny SAM (2 ViT blocks, 64 channels, 256 px input) trained from scratch (no official
weights offline), contour-prior adapter, box prompts from the masks; AdamW 1e-3 ({schedules(runs)}), batch 4,
Dice + CE, images resized to {a.size} px; the same seeds for every head. Final models, scored on the validation images at 0.5x, 1x and 2x the base
size against labels resampled (nearest) from their original resolution; HD95 in base pixels, boundary F at two base
pixels. "early Dice" is the mean validation Dice over the first half of training (how fast a curve rises); "tail" is
the largest change of validation Dice over the last fifth (Dice points; < 1 = converged by the experiments issue's
rule), the largest over seeds.

{table(runs)}

![validation curves]({plot_file(a.section).name})"""


if __name__ == '__main__':
    main()
