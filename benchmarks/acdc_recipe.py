"""The ACDC training recipe: learning curves of the U-Net with 1, 3, 7 and all 70 labeled patients, and the mean
teacher against the U-Net at 3 and 7 labeled patients, on this CPU, at equal step budgets.

    python benchmarks/acdc_recipe.py [--steps 500] [--seeds 0 1 2] [--table-only]

Every run uses the `acdc` defaults of `medseg_nb.cli.DATASET_DEFAULTS` (slices resized to 128 x 128 for training and
inference, batch 16, AdamW 1e-3 with poly decay, Dice + CE, flips, quarter turns, intensity jitter) and validates on
the 20 `val.list` volumes every `--val-every` steps, scored on each volume's native grid. Runs are appended to
benchmarks/acdc_recipe.json as they finish (an interrupted grid resumes where it stopped, and with `--work DIR` a run
cut short resumes from its last checkpoint, so that a run longer than a session spans two); the curves go to
benchmarks/acdc_recipe.png and the tables to the `acdc_recipe` section of RESULTS.md; a second budget names its own
section (`--steps 1500 --json benchmarks/acdc_long.json --section acdc_long`), whose plot is benchmarks/acdc_long.png.

The jobs run in this order, so that a grid cut short keeps what matters first: the U-Net's curves (seed 0), the mean
teacher at 3 and 7 patients (seed 0), then the other seeds of both. `--methods nsda --patients 7 --compare 7` adds
another method against the U-Net at the same budget (runs already in the JSON file are not repeated);
`--methods vqseg:perturb=dropout` trains a method with options, an ablation row of its own.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import (converged, grid_args, interval, label_growth, listed, machine, machine_use, machines, mean_sd,  # noqa: E402
                      paired, plot_file, resumed, run_grid, work_args, work_dir, write_section)

from medseg_nb.cli import DATASET_DEFAULTS, model_from_checkpoint, per_class, train  # noqa: E402
from medseg_nb.core import data_root  # noqa: E402
from medseg_nb.data.datasets import get_dataset  # noqa: E402
from medseg_nb.train import evaluate_model, geometry  # noqa: E402

OUT = Path(__file__).with_name('acdc_recipe.json')
ALL = 70                                   # "all labeled": every training patient
STRUCT = ('RV', 'myo', 'LV')


def jobs_in_order(seeds, patients, compare, methods=('mean_teacher',)):
    """(method, patients, seed) jobs: U-Net curves first, then each compared method against it, seed by seed; each job
    once (`--methods unet` adds nothing)."""
    first, rest = seeds[0], seeds[1:]
    jobs = [('unet', p, first) for p in patients]
    jobs += [(m, p, first) for m in methods for p in compare]
    for s in rest:
        jobs += [('unet', p, s) for p in compare] + [(m, p, s) for m in methods for p in compare]
    return list(dict.fromkeys(jobs))


def method_spec(spec: str) -> tuple[str, dict]:
    """'vqseg' -> ('vqseg', {}); 'vqseg:perturb=dropout,eps=0.5' -> ('vqseg', {'perturb': 'dropout', 'eps': 0.5}): a
    method with options (an ablation) is its own row, labelled by the whole spec."""
    name, _, opts = spec.partition(':')
    options = {}
    for item in filter(None, opts.split(',')):
        key, eq, value = item.partition('=')
        if not eq:
            raise SystemExit(f'method options are key=value pairs after a colon (say vqseg:perturb=dropout), got {spec!r}')
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return name, options


def run_one(method, patients, seed, steps, val_every, root, tmp) -> dict:
    """Train one run in its folder under `tmp` and score it; a run cut short there (`--work`) continues from its last
    checkpoint, its time the sum of the stretches (`resumed_at`: the step it last continued from)."""
    out = Path(tmp) / f"{method.replace(':', '_').replace(',', '_').replace('=', '-')}_{patients}_{seed}_{steps}"
    t0 = time.time()
    name, options = method_spec(method)
    resume, at, earlier = resumed(out, steps)         # earlier: the time of the stretches before this one
    if resume:
        print(f'[acdc_recipe] resumed from {resume} at step {at}', flush=True)
    with machine_use(out) as use:                     # the machine's load while it trained, kept beside its checkpoints
        s = train(name, 'acdc', out, root, steps=steps, seed=seed, progress=False, method_options=options,
                  resume=resume, labeled_patients=None if patients == ALL else patients,
                  train_options=dict(val_every=val_every))
    hist = json.loads((out / 'history.json').read_text())
    curve = [(r['step'], r['val_dice_mean']) for r in hist if 'val_dice_mean' in r]
    # semi-supervised methods with a confidence threshold log the share of unlabeled pixels the teacher passes
    confident = [(r['step'], round(r['confident'], 4)) for r in hist if 'confident' in r]
    secs = time.time() - t0 + earlier
    _, model, st = model_from_checkpoint(out / 'last.pt')           # the final model, per structure
    _, reps = evaluate_model(model, get_dataset('acdc', root, 'val'), metrics=('dice',), **geometry(st['config']))
    per = {name: per_class(reps, 'dice').get(str(k + 1)) for k, name in enumerate(STRUCT)}
    return dict(method=method, patients=patients, seed=seed, steps=s['steps'], seconds=round(secs, 1),
                steps_per_s=round(s['steps'] / max(s['seconds'] + earlier, 1e-9), 3), dice=s['val_dice_mean'],
                hd95=s.get('val_hd95_mean'), per_class=per, curve=curve, machine=machine(), **use,
                **(dict(confident=confident) if confident else {}), **(dict(resumed_at=at) if resume else {}))


def plot(runs, path: Path):
    """One panel per labeled-patient count, one colour per method (the U-Net in black), one line per seed: with a dozen
    methods in the grid, a single axis is unreadable."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    counts = sorted({r['patients'] for r in runs})
    methods = ['unet'] + sorted({r['method'] for r in runs} - {'unet'})
    colour = dict(unet='k') | {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods[1:])}
    # top row: the whole curves; bottom row: the last fifth, where the table's differences (a few Dice points) and
    # the tail rule are read, each on its own scale
    fig, axes = plt.subplots(2, len(counts), figsize=(3.6 * len(counts), 7.2), squeeze=False,
                             gridspec_kw=dict(height_ratios=(3, 2)))
    for ax, zoom, p in zip(axes[0], axes[1], counts):
        here = [r for r in runs if r['patients'] == p]
        for r in sorted(here, key=lambda r: (methods.index(r['method']), r['seed'])):
            x, y = zip(*r['curve'])
            first = r['seed'] == min(q['seed'] for q in here if q['method'] == r['method'])
            style = dict(color=colour[r['method']], lw=1.6 if r['method'] == 'unet' else 1.1, alpha=0.85)
            ax.plot(x, y, label=r['method'] if first else None, **style)
            last = max(x)
            zoom.plot(*zip(*[(s, d) for s, d in r['curve'] if s >= 0.8 * last]), **style)
        ax.set(xlabel='step', ylim=(0, 1),
               title=f"{'all 70' if p == ALL else p} labeled patient{'s' if p != 1 else ''}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc='lower right', ncol=2 if len({r['method'] for r in here}) > 4 else 1)
        zoom.set(xlabel='step', title='the last fifth')
        zoom.grid(alpha=0.3)
    axes[0][0].set_ylabel('validation mean Dice (20 volumes)')
    axes[1][0].set_ylabel('validation mean Dice')
    fig.suptitle('ACDC recipe: one line per run (seed),' + (' ' if len(counts) > 1 else '\n') + 'one colour per method',
                 fontsize=10)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def growth(runs) -> str:
    """The first sanity row read from the U-Net runs: does Dice grow with labeled patients, on the mean over seeds and
    in each seed that ran at every count?"""
    g = label_growth(runs)
    if g is None: return 'Sanity: U-Net Dice grows with the number of labeled patients: **not measured**'
    name = lambda p: 'all 70' if p == ALL else str(p)
    line = (f"Sanity: U-Net Dice grows with the number of labeled patients, on the mean over seeds: "
            f"**{'yes' if g['rising'] else 'no'}** ({', '.join(f'{name(p)}: {m:.3f}' for p, m in zip(g['patients'], g['means']))})")
    if g['seeds']:
        which = 'the one seed' if len(g['seeds']) == 1 else f"each of the {len(g['seeds'])} seeds"
        fell = ', '.join(str(s) for s in g['fell'])
        line += f"; in {which} that ran at every count: **{'no' if fell else 'yes'}**" + (f" (not in seed {fell})" if fell else '')
    return line + '.'


def spread(values) -> str:
    "A column's range over seeds: '1.9', '1.9-2.4', or '–' where no run recorded it."
    if not values: return '–'
    lo, hi = f'{min(values):.1f}', f'{max(values):.1f}'
    return lo if lo == hi else f'{lo}-{hi}'


def table(state, a) -> str:
    runs = state['runs']
    rows = []
    for p in sorted({r['patients'] for r in runs}):
        for m in ['unet'] + sorted({r['method'] for r in runs} - {'unet'}):
            rr = [r for r in runs if r['method'] == m and r['patients'] == p]
            if not rr: continue
            per = ' | '.join(f"{np.mean(v):.3f}" if (v := [r['per_class'][k] for r in rr if r['per_class'].get(k) is not None])
                             else '–' for k in STRUCT)
            conv = max(converged(r['curve']) for r in rr)
            loads = [r['load'] for r in rr if r.get('load') is not None]
            rows.append(f"| {p if p != ALL else 'all 70'} | {m} | {mean_sd(r['dice'] for r in rr)} | {per} | "
                        f"{np.mean([r['steps_per_s'] for r in rr]):.2f} | {spread(loads)} | "
                        f"{conv:.1f} | {len(rr)} |")
    comp = []
    for m in sorted({r['method'] for r in runs} - {'unet'}):
        for p in sorted({r['patients'] for r in runs if r['method'] == m}):
            u = {r['seed']: r['dice'] for r in runs if r['method'] == 'unet' and r['patients'] == p}
            t = {r['seed']: r['dice'] for r in runs if r['method'] == m and r['patients'] == p}
            d, ci, n = paired(u, t)
            comp.append(f"| {m} | {p} | {d:+.3f} | {interval(ci, 'n/a (one seed)')} | {n} |")
    sanity = growth(runs)
    steps = listed(r['steps'] for r in runs)
    budget = '' if a.section == OUT.stem else f', a second budget ({steps} steps, section `{a.section}`)'
    return f"""## The ACDC recipe{budget}: learning curves and the semi-supervised sanity rows (`benchmarks/acdc_recipe.py`)

Machine: {machines(runs)}. Every run: the `acdc` defaults (slices resized to 128 x 128 for training and inference,
batch 16, AdamW 1e-3, poly decay, Dice + CE, flips, quarter turns, intensity jitter; shuffled epochs), {steps} steps,
validated every {a.val_every} steps on the 20 `val.list` volumes, scored on each volume's native grid. The mean teacher,
VQ-Seg and ARCO draw a second batch of 16 unlabeled slices each step (about twice the cost per step); budgets are equal
in steps. The mean teacher here has no dropout (the U-Net's default); `mean_teacher:dropout=0.5` adds `Dropout2d` 0.5
at the bottleneck (VQ-Seg's dropout baseline). VQ-Seg perturbs with its QPM, its other defaults (keep probability 0.9;
`vqseg:eps=0.7` is the paper's best); `vqseg:consistency=0` is VQ-Seg without its pseudo-label term and
`vqseg:consistency=0.1` with it at the mean teacher's weight, a tenth of its own (diagnostics of ours, not the paper's
ablations).
`single` is the U-Net with LoMix's single-output loss (0.7 Dice + 0.3 CE, where the U-Net's is 0.5 + 0.5); `lomix`
weighs that loss over 4 scale maps and 44 fusions in training (normalised weights; `lomix:weighting=raw` the paper's raw
softplus weights) and is the same U-Net at inference; `deep` weighs it equally over the 4 scale maps, `additive` over
them and their 11 sums.
`arco:sampler=sg` is ARCO with its defaults: the EMA teacher's pseudo-labels where its confidence is >= 0.97, and a
prototype contrastive loss (weight 0.01) on 32 anchors per image and class drawn by stratified sampling (SG, 16 strata);
`arco:sampler=ns` draws them uniformly, `arco:sampler=sag` in antithetic pairs within the strata.
"tail" is the largest change of validation Dice over the last fifth of training (Dice points; < 1 = converged by the
experiments issue's rule), the largest over seeds. "load" is the machine's 1-minute load average over a run (processes
running or waiting for a core, the run included: on these two cores about 1 alone, 2 beside another run), its range over
seeds, recorded by the runs that started after ARCO with SAG's seeds 1 and 2 at 3 labeled patients ("–" for the runs
before). For those, in words: steps/s were taken with other runs (one thread each) sharing the two
cores, two for the U-Net and mean-teacher runs, up to nine for the NSDA runs, three (and test runs) for VQ-Seg at 3
patients and two at 7, two or three for single and LoMix, two for deep, additive and the raw weights, two for ARCO with
SG, two or three (beside short probes) for the mean teacher with dropout, VQ-Seg at keep 0.7 and VQ-Seg without its
pseudo-labels, two (and tests or CI) for VQ-Seg at keep 0.5, one (and CI) for VQ-Seg at weight 0.1 in seed 2 and two
(and tests and CI) in seeds 0 and 1, two (and tests and CI) for ARCO with NS in seeds 0 and 2, two for ARCO with NS in
seed 1 and with SAG (NS seed 1 and SAG seed 0 resumed at step 200 in a later session, their time the sum of both
stretches; their memory queues restarted empty there, as checkpoints did not yet keep a method's own state: 256 features
per class, refilled in about 16 steps), two (and tests and CI) for the mean teacher at 1 labeled patient in seed 2 and
for ARCO with SG at 1, two (and tests) for ARCO with NS and SAG at 1 in seeds 0 and 1, and in seed 2 (resumed at steps 202 and 177 in a later session, with the method's state kept in the checkpoint) two and a test run, two for ARCO with NS at 7 in seed 0 and for ARCO with SG at 7 in seed 0 up to step 100 (one, with two threads, after it). Every run before ARCO with NS trained with glibc's default allocator; those two switched to
`reuse_freed_memory` near step 120 and later runs use it throughout (section `cpu_memory`: ARCO's CPU time per step
1.66x lower; no number but time changes). steps/s say where, not how fast, and are not compared across methods (NSDA's
cost per step is measured in the `nsda_drive` and `nsda_blocks` sections). With all 70 patients at 1500 steps, LoMix seed 0 resumed at
step 890 in a later session, LoMix seed 2 and deep supervision seed 2 at steps 443 and 983 (beside CI for part of
it), their time the sum of both stretches. The U-Net at 1 labeled patient at 1500 steps: three or four runs (two of them
3-D Mamba-HoME runs) on the two cores; at 3 labeled patients, the U-Net in seeds 0 and 1: two runs (and, for a
few minutes, tests); the mean teacher in seeds 0 and 1: two runs (and tests and CI), resumed at steps 895 and 891
in a later session, their time the sum of both stretches; seed 2: the U-Net beside the mean teacher, then the mean
teacher beside VQ-Seg; VQ-Seg in seed 0: beside that mean teacher, then beside VQ-Seg in seed 1; seed 1: beside seed 0, resumed at step 834 in a
later session, its time the sum of both stretches; seed 2 beside the mean teacher with dropout in seed 0. The mean teacher with dropout: seed 0 beside VQ-Seg in seed 2, seeds 1
and 2 beside each other (seed 2 alone for its last 300 steps). ARCO with SG: seeds 0 and 1 beside each other (and, for a
few minutes, tests and CI), resumed at steps 500 and 326 in a later session, their time the sum of both stretches; seed 2
beside the U-Net at 7 labeled patients, whose seeds 0, 1 and 2 ran one after another (and, for a few minutes, tests).
ARCO with NS and with SAG, seed 0: beside each other, NS resumed at step 200 and SAG at step 5 in a later session (their
time the sum of both stretches). The mean teacher at 7 labeled patients: seeds 0 and 2 beside each other (and, for a few
minutes, tests and CI); seed 1, in a later session, beside ARCO with NS in seed 1 (85 minutes against 58-63 for seeds 0 and
2: both runs of that session were slower than their counterparts of earlier ones). ARCO with NS, seed 1: beside that
mean teacher, then beside CI for 17 minutes, then alone (143 minutes). ARCO with NS, seed 2, in a session as slow as the last:
beside U-Net + NSDA at 7 labeled patients, whose seeds ran one after another (and, for 20 minutes, CI); 135 minutes.
ARCO with SAG, seeds 1 and 2: beside each other (and, for 45 minutes, a 4-step test run at the lowest priority, which
had 2 % of a core); 108 and 104 minutes.
ARCO with SG at 1 labeled patient at 1500 steps, seeds 0-2: beside another run throughout (and, for a few minutes,
tests), resumed at steps 800, 100 and 1000 in a later session, their time the sum of both stretches; 110, 121 and 132
minutes.
ARCO with NS at 1 labeled patient at 1500 steps, seeds 0-2: beside another run throughout (seed 2 also beside tests and
CI), seeds 0 and 2 resumed at steps 300 and 600 in a later session; 120, 111 and 129 minutes.
ARCO with SAG at 1 labeled patient at 1500 steps, seed 0: beside another run throughout (and tests and CI), started
again from step 0 in a later session (its first 30 steps had no checkpoint); 107 minutes. Seed 1, in a later session on
a slower machine (one thread: 7 s a step beside another run, 5.9 alone, against 4.3 beside another run before), from
step 0 (the checkpoints of an earlier start did not reach that session): 86 steps with one thread (50 beside seed 2's
start, stopped then), the rest alone with two threads (OMP_NUM_THREADS=2, 4.1 s a step); 107 minutes.
Seed 2: 50 steps beside seed 1's start, stopped then; resumed at step 51 in the next session, alone with two threads
(3.7-4.5 s a step), stopped (SIGSTOP) for about 55 minutes of CI runs and timing measurements, which its time includes;
170 minutes.
ARCO with SAG at 7 labeled patients, seed 0: from step 0 alone with two threads (stopped by SIGSTOP during timing
runs, which its time includes), resumed at step 746 in the next session, two threads to step 1000, then one thread
beside seed 1 (and timing measurements and tests); 232 minutes, the sum of all stretches. It ran the contrastive term as
commit a3a3d12 computes it; the later ARCO runs compute it more cheaply with the same values (commit 5b310cb normalises
only the features it uses, 0a2be9c sums the prototypes with one product per image).
Seed 1: from step 0 with one thread, beside seed 0 and then ARCO with NS in seed 0 (5-6 s a step; stopped by SIGSTOP for
a 15-minute CI run, which its time includes), stopped by SIGTERM at step 664 and resumed at once, alone with two threads
(3.0 s a step); 118 minutes. Steps 0-664 ran commit 5b310cb's contrastive term, the rest 0a2be9c's.
ARCO with NS at 7 labeled patients, seed 0: from step 0 with one thread, beside ARCO with SAG in seeds 1 and 2 (stopped
by SIGSTOP while SAG's seed 1 ran alone, which its time includes); resumed at step 100 in the next session, one thread
beside SAG's seed 2 (5.2-6.3 s a step); 154 minutes, the sum of both stretches up to its checkpoint. It ran the cheaper
contrastive term throughout (5b310cb or later: the same values).
ARCO with SAG at 7 labeled patients, seed 2: from step 0 (an earlier start had no checkpoint), one thread beside ARCO
with NS in seed 0 (5.2-6.3 s a step), its last minutes alone; 145 minutes.
ARCO with NS at 7 labeled patients, seed 1: from step 0 (an earlier start had no checkpoint), one thread beside ARCO with
SG in seed 0 and a CI run, stopped by SIGTERM at step 142 and resumed at once, alone with two threads (3.8-4.0 s a
step); 122 minutes, the sum of both stretches.
ARCO with SG at 7 labeled patients, seed 0: from step 0 with one thread beside ARCO with NS in seed 1 and a CI run
(stopped by SIGSTOP while NS's seed 1 ran alone, which its time includes), resumed at step 100 in the next session,
alone with two threads (3.7-4.6 s a step, 4.1 on average); 124 minutes, the sum of both stretches up to its checkpoint.
ARCO with NS at 7 labeled patients, seed 2: from step 0 (an earlier start had no checkpoint), alone with two threads
(3.8-4.0 s a step; stopped by SIGSTOP for a 17-minute CI run, which its time includes), resumed at step 797 in the next
session, alone with two threads (3.5-3.6 s a step); 114 minutes, the sum of both stretches up to its checkpoint.
ARCO with SG at 7 labeled patients, seed 1: from step 0 alone with two threads (4.5 s a step over its first 100 steps,
partly beside tests; 3.3-3.9 over each 100 after them); 93 minutes.
ARCO with SG at 7 labeled patients, seed 2: from step 0 (an earlier start's checkpoint, at step 268, was lost with its
session's files), alone with two threads on a faster machine of the same kind (1.85-1.98 s a step over each 100 steps);
48 minutes.
VQ-Seg at keep probability 0.7 (`vqseg:eps=0.7`), 3 labeled patients, seed 0: from step 0 with one thread beside
VQ-Seg at keep 0.5 in seed 0 (stopped with it, its checkpoint kept for a later session) and tests (4.3-4.6 s a step),
stopped by SIGTERM at step 247 and resumed at once, alone with two threads (3.0-3.7 s a step beside tests to step 400;
stopped by SIGSTOP for a 10-minute CI run, which its time includes; then 1.7-2.0 s a step); 72 minutes, the sum of both
stretches.

| labeled patients | method | mean Dice (± sd over seeds) | RV | myo | LV | steps/s | load | tail | seeds |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Each method minus the U-Net (paired by seed, 95 % t-interval over seeds):

| method | labeled patients | difference in mean Dice | 95 % interval | seeds |
|---|---|---|---|---|
{chr(10).join(comp) or '| (not run yet) | | | | |'}

{sanity}

![validation curves]({plot_file(a.section).name})"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=DATASET_DEFAULTS['acdc']['steps'])
    ap.add_argument('--val-every', type=int, default=DATASET_DEFAULTS['acdc']['val_every'])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--patients', type=int, nargs='+', default=[ALL, 3, 1, 7], help=f'labeled patients ({ALL} = all)')
    ap.add_argument('--compare', type=int, nargs='+', default=[3, 7], help='patients at which methods meet the U-Net')
    ap.add_argument('--methods', nargs='*', default=['mean_teacher'],
                    help='methods compared with the U-Net at --compare patients (say --methods nsda --compare 7); '
                         'options after a colon make an ablation row (say vqseg:perturb=dropout); none: the U-Net alone '
                         '(say --seeds 1 2 --patients 1 70 --compare 1 70 --methods)')
    grid_args(ap, OUT)
    work_args(ap)
    a = ap.parse_args()
    root = data_root()
    if root is None and not a.table_only: sys.exit('set MEDSEG_DATA to the folder holding ACDC (see ../shared/data)')

    def run_job(method, p, s, steps):
        print(f'[acdc_recipe] {method}, {p} labeled patients, seed {s}, {steps} steps', flush=True)
        return run_one(method, p, s, steps, a.val_every, root, work)

    def report(state):
        plot([q for q in state['runs'] if q['steps'] == a.steps] or state['runs'], plot_file(a.section))
        write_section(a.section, table(state, a))

    jobs = [(m, p, s, a.steps) for m, p, s in jobs_in_order(a.seeds, a.patients, a.compare, a.methods)]
    with work_dir(a) as work:
        state = run_grid(a, jobs, lambda r: (r['method'], r['patients'], r['seed'], r['steps']), run_job, report)
    if state['runs']:
        print(table(state, a))

if __name__ == '__main__':
    main()
