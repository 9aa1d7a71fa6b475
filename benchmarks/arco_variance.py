"""ARCO's variance claim, measured during training: the spread of the contrastive loss estimate under NS (uniform),
SG (stratified) and SAG (stratified antithetic) anchor sampling, at equal anchor counts, on the features of a network
as it trains.

    MEDSEG_DATA=../shared/data python benchmarks/arco_variance.py [--steps 300] [--every 50] [--draws 64] [--seeds 0 1 2]

ARCO (SG sampler, the method's defaults) trains on ACDC slices (the `acdc` recipe: 128 x 128, Dice + CE, flips, turns,
intensity jitter) with 3 labeled patients and batches of --batch labeled + --batch unlabeled slices. Every --every
steps the training pauses on one fixed probe batch: the student's and the teacher's projected features, the teacher's
pseudo-labels and the memory queue are frozen, and `ARCO.contrast` (the estimate the loss uses) is drawn --draws times
with each sampler. Its variance over draws is the estimator's variance at that point of training; the exact value
(every eligible pixel of every (image, class) group, weighted equally within its group) says whether each estimate is
centred. Runs are appended to benchmarks/arco_variance.json as they finish; the table goes to the `arco_variance`
section of RESULTS.md and the curves to benchmarks/arco_variance.png.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _results import (grid_args, interval, log_variance_ratio, machine, machines, mean_sd, paired, run_grid,  # noqa: E402
                      plot_file, write_section)

from medseg_nb.cli import DATASET_DEFAULTS  # noqa: E402
from medseg_nb.core import data_root, get_method, load_methods, unwrap  # noqa: E402
from medseg_nb.data.datasets import acdc_labeled_split, get_dataset  # noqa: E402
from medseg_nb.methods.arco.model import prototype_contrastive  # noqa: E402
from medseg_nb.train import Trainer  # noqa: E402

OUT = Path(__file__).with_name('arco_variance.json')
SAMPLERS = ('ns', 'sg', 'sag')
NAMES = {'ns': 'NS (uniform)', 'sg': 'SG (stratified)', 'sag': 'SAG (stratified antithetic)'}


def probe_inputs(trainer, method, probe):
    "What `ARCO.contrast` reads on the probe batch: student and teacher projections, labels, eligibility."
    lab, unl = probe
    with torch.no_grad():                                # train mode: the projection head runs (no perturbation here)
        proj = unwrap(trainer.model)(torch.cat([lab['image'], unl['image']])).features['proj']
    target = method.teacher_targets(trainer.teacher.model, lab, unl)
    return proj, target['proj'], target['labels'], target['valid']


def exact_value(method, proj, t_proj, labels, ok, chunk=8192) -> float:
    "The quantity every sampler estimates: the mean over (image, class) groups of the mean loss over the group's pixels."
    feats, t_feats = F.normalize(proj.float(), dim=1), F.normalize(t_proj.float(), dim=1)
    K = method.num_classes
    onehot = F.one_hot(labels, K).permute(0, 3, 1, 2).float() * ok[:, None].float()
    protos = F.normalize(torch.einsum('bkhw,bdhw->kd', onehot, t_feats), dim=1)
    group_means = []
    for b in range(labels.shape[0]):
        for c in range(K):
            where = torch.nonzero(((labels[b] == c) & ok[b]).flatten())[:, 0]
            if len(where) == 0:
                continue
            anchors = feats[b].flatten(1)[:, where].T
            losses = torch.cat([prototype_contrastive(a, torch.full((len(a),), c), protos, method.qfeat, method.qcls,
                                                      method.cfg.tau) for a in anchors.split(chunk)])
            group_means.append(losses.mean())
    return float(torch.stack(group_means).mean())


def measure(trainer, method, probe, draws: int, seed: int) -> dict:
    "The estimate drawn `draws` times per sampler on the probe batch, the queue and sampler restored after each draw."
    proj, t_proj, labels, ok = probe_inputs(trainer, method, probe)
    queue = (method.qfeat.clone(), method.qcls.clone())
    sampler = method.cfg.sampler
    cpu_state = torch.random.get_rng_state()
    row = dict(step=trainer.step, exact=exact_value(method, proj, t_proj, labels, ok))
    for s in SAMPLERS:
        method.cfg['sampler'] = s
        values = []
        for r in range(draws):
            torch.manual_seed(seed * 1_000_003 + r)
            values.append(float(method.contrast(proj, t_proj, labels, ok)))
            method.qfeat, method.qcls = queue[0].clone(), queue[1].clone()
        row[s] = dict(mean=float(np.mean(values)), var=float(np.var(values, ddof=1)))
    method.cfg['sampler'] = sampler
    torch.random.set_rng_state(cpu_state)        # the training run goes on as if nothing had been measured
    return row


def one_run(seed, a, root) -> dict:
    load_methods()
    method = get_method('arco', sampler='sg')
    tr = get_dataset('acdc', root, 'train')
    lab_idx, unl_idx = acdc_labeled_split(tr, a.patients)
    cfg = dict(DATASET_DEFAULTS['acdc'], steps=a.steps, seed=seed, batch_size=a.batch, progress=False, val_every=10**9)
    trainer = Trainer(method, tr, None, None, cfg, labeled_idx=lab_idx, unlabeled_idx=unl_idx)
    g = torch.Generator().manual_seed(10_000 + seed)   # the probe: fixed slices, resized as the trainer resizes them
    pick = lambda idx: [trainer.train_ds[int(idx[i])] for i in torch.randperm(len(idx), generator=g)[: a.batch]]
    stack = lambda items: {k: torch.stack([it[k] for it in items]) for k in ('image', 'label')}
    probe = (stack(pick(lab_idx)), stack(pick(unl_idx)))
    rows = []

    def callback(t):
        if t.step == 1 or t.step % a.every == 0:
            rows.append(measure(t, method, probe, a.draws, seed))
            ratio = {s: rows[-1][s]['var'] / rows[-1]['ns']['var'] for s in ('sg', 'sag')}
            print(f"  seed {seed} step {t.step}: exact {rows[-1]['exact']:.4f}, var NS {rows[-1]['ns']['var']:.2e}, "
                  f"SG/NS {ratio['sg']:.3f}, SAG/NS {ratio['sag']:.3f}", flush=True)

    t0 = time.time()
    trainer.fit(callback=callback)
    return dict(seed=seed, steps=a.steps, patients=a.patients, batch=a.batch, draws=a.draws,
                anchors=max(method.cfg.anchors, method.cfg.groups), groups=method.cfg.groups,
                seconds=round(time.time() - t0, 1), points=rows, machine=machine())


def plot(runs, path: Path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    colours = {'ns': 'tab:blue', 'sg': 'tab:orange', 'sag': 'tab:green'}
    for k, r in enumerate(runs):
        steps = [p['step'] for p in r['points']]
        for s in SAMPLERS:
            ax.plot(steps, [p[s]['var'] for p in r['points']], color=colours[s], alpha=0.8, label=NAMES[s] if k == 0 else None)
    ax.set_yscale('log')
    ax.set_xlabel('training step')
    ax.set_ylabel('variance of the contrastive estimate')
    ax.set_title('ARCO on ACDC: estimator variance per sampler (one line per seed)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(runs, a) -> str:
    lines = ['| sampler | variance / NS variance (geometric mean over the run) | log10 ratio | 95 % interval | '
             'bias / sd (largest) | seeds |', '|---|---|---|---|---|---|']
    for s in ('sg', 'sag'):
        lr = {r['seed']: log_variance_ratio(r['points'], s) for r in runs}
        d, ci, n = paired({k: 0.0 for k in lr}, lr)
        bias = max(abs(p[s]['mean'] - p['exact']) / np.sqrt(p[s]['var'] / r['draws']) for r in runs for p in r['points'])
        lines.append(f"| {NAMES[s]} | {10 ** d:.3f} ({mean_sd((10 ** v for v in lr.values()), '{:.3f}')}) | {d:+.3f} | "
                     f"{interval(ci)} | {bias:.1f} | {n} |")
    ns_bias = max(abs(p['ns']['mean'] - p['exact']) / np.sqrt(p['ns']['var'] / r['draws']) for r in runs for p in r['points'])
    r0 = runs[0]
    return f"""## ARCO: variance of the contrastive estimate per sampler, during training (`benchmarks/arco_variance.py`)

Machine: {machines(runs)}. ARCO (trained with SG, the method's defaults) on ACDC, {r0['patients']} labeled patients,
batches of {r0['batch']} labeled + {r0['batch']} unlabeled 128 x 128 slices, {r0['steps']} steps; every {a.every} steps
(and after step 1) the estimate `ARCO.contrast` is drawn {r0['draws']} times per sampler on one fixed probe batch, with
the features, pseudo-labels and memory queue frozen: {r0['anchors']} anchors per (image, class) group for every sampler,
{r0['groups']} strata for SG and SAG. The ratio is each sampler's variance over NS's at the same point, as a geometric
mean over the points after step 1 (the log10 ratio's 95 % t-interval is over seeds; below 0 = lower variance than
NS). "bias / sd" is the largest |mean of the draws - exact value| in standard errors over all points (NS: {ns_bias:.1f});
about 3 or less is what an unbiased estimator gives.

{chr(10).join(lines)}

![estimator variance during training]({plot_file(a.section).name})"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--every', type=int, default=50)
    ap.add_argument('--draws', type=int, default=64)
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--patients', type=int, default=3)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    grid_args(ap, OUT)
    a = ap.parse_args()
    root = data_root()
    if root is None and not a.table_only:
        sys.exit('set MEDSEG_DATA to the folder holding ACDC (see ../shared/data)')
    def run_job(seed, steps, patients):
        print(f'[arco_variance] seed {seed}, {steps} steps', flush=True)
        return one_run(seed, a, root)

    def report(state):
        plot(state['runs'], plot_file(a.section))
        write_section(a.section, table(state['runs'], a))

    jobs = [(s, a.steps, a.patients) for s in a.seeds]
    state = run_grid(a, jobs, lambda r: (r['seed'], r['steps'], r['patients']), run_job, report)
    if state['runs']:
        print(table(state['runs'], a))

if __name__ == '__main__':
    main()
