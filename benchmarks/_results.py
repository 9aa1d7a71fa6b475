"Shared helper: replace one script's section of benchmarks/RESULTS.md (between its markers), keeping the rest."
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from medseg_nb.viz import paired  # noqa: F401  the claims table's interval, the one notebooks print under their plots

RESULTS = Path(__file__).with_name('RESULTS.md')
HEADER = '# Benchmark results\n\nEach section is written by the script it names; absolute times only say where, ratios measured in one run are what count.\n'


def machine() -> str:
    "A one-line description of this machine."
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {dev}, torch {torch.__version__}"


def write_section(name: str, body: str):
    "Put `body` under the heading of section `name`, replacing an older one; written atomically."
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    block = f'<!-- {name} -->\n{body.strip()}\n<!-- /{name} -->'
    pat = re.compile(rf'<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->', re.S)
    text = pat.sub(lambda _: block, text) if pat.search(text) else text.rstrip() + '\n\n' + block + '\n'
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, RESULTS)


def save_json(path, obj):
    "Write `obj` as JSON to `path` atomically (a temporary file, then a rename): an interrupted run keeps the last good file."
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def run_json(cmd: list[str]) -> dict:
    "Run a `medseg-nb ... --json` command; return the JSON object it printed last (exit on failure)."
    print('$', ' '.join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f'failed ({r.returncode}):\n{r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- grids of runs that can be split over several processes (one GPU, many small runs) -------------------------------
def grid_args(ap, default_json: Path):
    "Add --json, --shard I/N, --merge, --table-only and --section to a benchmark's argument parser."
    ap.add_argument('--json', type=Path, default=default_json, help='where finished runs are appended (resumable)')
    ap.add_argument('--shard', default='0/1', metavar='I/N', help='run only jobs I, I+N, I+2N, ... of the grid, less those done (several processes at once)')
    ap.add_argument('--merge', type=Path, nargs='*', default=[], help="other shards' JSON files to read before writing the table")
    ap.add_argument('--table-only', action='store_true', help='run nothing; write the table from the JSON files')
    ap.add_argument('--section', default=default_json.stem,
                    help='the RESULTS.md section of the table: a second budget gets its own, with its own --json (say --steps 1000 '
                         '--json benchmarks/lomix_long.json --section lomix_long)')


def work_args(ap):
    """Add --work to a grid whose runs resume from their checkpoints (`resumed`: acdc_recipe.py and mamba_home.py;
    gausam_heads.py through `train_head(checkpoint=)`), whose runs last up to an hour or more on a CPU: a grid that
    would ignore it does not take it."""
    ap.add_argument('--work', type=Path, default=None,
                    help="each run's folder (checkpoints, history) goes here and is kept: a run cut short (a session's end, "
                         "Ctrl-C) resumes from its last checkpoint when the grid is rerun; default: a temporary folder")


def work_dir(a):
    """The folder the grid's runs are written to, as a context manager that gives its name: `a.work` (kept, so that
    `resumed` finds a run cut short there), else a temporary folder, gone when the grid ends."""
    if a.work is None:
        return tempfile.TemporaryDirectory()
    a.work.mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(str(a.work))


def resumed(out: Path, steps: int):
    """(checkpoint, the step it holds, the training seconds before it) for a run of `steps` steps in `out`, or (None, 0,
    0.0) where it has none: the Trainer writes `last.pt` at each validation and on Ctrl-C, and a grid's run continues
    from it and adds its earlier time (`train_seconds`). A checkpoint past `steps` belongs to another budget: refused,
    not trained on."""
    from medseg_nb.train import load_checkpoint
    path = Path(out) / 'last.pt'
    if not path.is_file():
        return None, 0, 0.0
    st = load_checkpoint(path)
    done = int(st['step'])
    if done > steps:
        raise ValueError(f'{path} is at step {done}, past this run\'s {steps} steps: another budget\'s run; '
                         'give another --work folder or remove it')
    return path, done, train_seconds(st['history'])


@contextlib.contextmanager
def machine_use(folder, every: float = 30.0):
    """How much of the machine a run had, kept beside its checkpoints: while the block runs, a thread reads every
    `every` seconds the 1-minute load average (processes running or waiting for a core, this one included) and the
    process's CPU time, and writes their totals to `folder/usage.json` (atomically), so that a run cut short keeps what
    it measured and its resumed stretch adds to it. Gives a dict that holds, once the block ends, `load` (the mean load
    average; on 2 cores, 2 means the run had a neighbour) and `cpu_share` (CPU seconds per wall second: below 1, the run
    waited for a core). Where the system has no load average (Windows), `load` is None."""
    path = Path(folder) / 'usage.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    before = json.loads(path.read_text()) if path.is_file() else dict(wall=0.0, cpu=0.0, load_sum=0.0, samples=0)
    total, t0, c0 = dict(before), time.monotonic(), time.process_time()
    stop = threading.Event()

    def sample():
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = None
        total.update(wall=before['wall'] + time.monotonic() - t0, cpu=before['cpu'] + time.process_time() - c0)
        if load is not None:
            total.update(load_sum=total['load_sum'] + load, samples=total['samples'] + 1)
        save_json(path, total)

    def loop():
        while not stop.wait(every):
            sample()

    reader = threading.Thread(target=loop, daemon=True)
    reader.start()
    out = {}
    try:
        yield out
    finally:
        stop.set()
        reader.join()
        sample()
        out.update(load=round(total['load_sum'] / total['samples'], 2) if total['samples'] else None,
                   cpu_share=round(total['cpu'] / max(total['wall'], 1e-9), 2))


def train_seconds(history) -> float:
    """Training time of a run from its history, whether resumed or not: each row's `seconds` counts from the start of
    its own `fit`, so the clock restarts where a run resumed; the sum of each stretch's last value. (A resumed run's
    steps after its last checkpoint were trained again and are counted once.)"""
    total, last = 0.0, 0.0
    for row in history:
        sec = row.get('seconds')
        if sec is None:
            continue
        if sec < last:
            total += last
        last = sec
    return total + last


def listed(values) -> str:
    "Sorted distinct values as text: '300' or '150, 300'."
    return ', '.join(str(v) for v in sorted(set(values)))


def mean_sd(values, fmt='{:.3f}') -> str:
    """'mean ± sd' over seeds, or the one value alone (a standard deviation of one run says nothing). The sample standard
    deviation (n - 1 in the denominator, as the t-intervals use): over three seeds numpy's default (n) reads 18 % low."""
    v = np.asarray(list(values), float)
    return fmt.format(v.mean()) + (f' ± {fmt.format(v.std(ddof=1))}' if v.size > 1 else '')


def finite_mean(values, fmt='{:.1f}') -> str:
    "The mean of the finite values, and how many were infinite (HD95 of a run where a structure was missed in some volume)."
    v = np.asarray(list(values), float)
    ok = np.isfinite(v)
    text = fmt.format(v[ok].mean()) if ok.any() else '∞'
    return text + (f' ({(~ok).sum()} of {v.size} ∞)' if 0 < (~ok).sum() < v.size else '')


def grid_state(a, key) -> dict:
    "The runs of `a.json` plus those of `a.merge` (first seen wins, by `key(run)`)."
    state = json.loads(a.json.read_text()) if a.json.exists() else dict(runs=[])
    seen = {key(r) for r in state['runs']}
    for p in a.merge:
        if not Path(p).exists(): print('no such shard file, skipped:', p); continue
        other = json.loads(Path(p).read_text())
        for r in other['runs']:
            r.setdefault('machine', other.get('machine'))
            if key(r) not in seen: state['runs'].append(r); seen.add(key(r))
    return state


def shard(jobs: list, spec: str, done=frozenset(), key=None) -> list:
    """For --shard 'i/n': jobs i, i+n, ... of the whole grid, less those whose `key(job)` (the job itself by default) is
    in `done`. A job belongs to one shard whatever has finished when each shard starts, so shards started at different
    times (one after another's first runs) never run the same job; a resumed grid's shards may then be uneven."""
    try:
        i, n = map(int, spec.split('/'))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        raise SystemExit(f'--shard expects I/N with 0 <= I < N (say 0/4), got {spec!r}')
    return [j for j in jobs[i::n] if (key(j) if key else j) not in done]


def run_grid(a, jobs: list, run_key, run_job, report=None, job_key=None) -> dict:
    """The loop every grid shares. Read the state (`a.json` plus the `a.merge` shards, runs keyed by `run_key(run)`),
    run this shard's jobs not yet done (`job_key(job)`, the job itself by default, compared with the runs' keys), and
    after each run append it, print it (but its curves), save the file at once (an interrupted grid resumes after the
    last finished run) and call `report(state)` (the grid's plot and its section of RESULTS.md). With --table-only
    nothing runs; `report` runs once more at the end, with the merged shards saved first. Returns the state."""
    state = grid_state(a, run_key)
    done = {run_key(r) for r in state['runs']}
    for job in ([] if a.table_only else shard(jobs, a.shard, done, key=job_key)):
        state['runs'].append(run_job(*job))
        print(json.dumps({k: v for k, v in state['runs'][-1].items() if k not in ('curve', 'points')}), flush=True)
        state['machine'] = machine()
        save_json(a.json, state)
        if report:
            report(state)
    if a.merge:
        save_json(a.json, state)
    if report and state['runs']:
        report(state)
    return state


def plot_file(section: str) -> Path:
    """The curves of RESULTS.md's section `section`: each section its own picture, so that a second budget
    (`--section`) does not draw over the first one's."""
    return RESULTS.with_name(f'{section}.png')


def runs_report(section: str, plot, table):
    """A grid's `report` when its plot and its table read the runs alone: draw the plot into the section's picture,
    then write the section, which shows that picture."""
    def report(state):
        plot(state['runs'], plot_file(section))
        write_section(section, table(state['runs'], plot_file(section).name))
    return report


def machines(runs) -> str:
    "The machines the runs were measured on, one line."
    return '; '.join(sorted({r.get('machine') or 'unrecorded' for r in runs})) or machine()


# --- what the claims table reads off a grid ----------------------------------------------------------------------------
def converged(curve) -> float:
    "Change of validation Dice over the last fifth of training (points of Dice x 100)."
    steps = np.array([c[0] for c in curve], float)
    dice = np.array([c[1] for c in curve], float)
    tail = dice[steps >= 0.8 * steps.max()]
    return float(100 * (tail.max() - tail.min())) if len(tail) > 1 else float('nan')


def tail_shape(curve, margin: float = 1.0) -> tuple[str, int, float]:
    """How a validation curve moved over its last fifth, as (shape, peak step, peak Dice): 'past its peak' when it
    peaked before its last fifth and ended `margin` Dice points or more below that peak (the network overfits its
    labels: more steps would not bring it back); 'rising' when its last fifth slopes up and ends on its highest value
    (more steps might still help); 'up and down' otherwise (validation noise)."""
    steps = np.array([c[0] for c in curve], float)
    dice = np.array([c[1] for c in curve], float)
    last = steps >= 0.8 * steps.max()
    peak = int(np.argmax(dice))
    slope = np.polyfit(steps[last], dice[last], 1)[0] if last.sum() > 1 else 0.0
    if not last[peak] and 100 * (dice[peak] - dice[-1]) >= margin:
        shape = 'past its peak'
    elif slope > 0 and dice[-1] >= dice[last].max():
        shape = 'rising'
    else:
        shape = 'up and down'
    return shape, int(steps[peak]), float(dice[peak])


def how_it_moved(curves: dict) -> str:
    """For a note: how the curves ({seed: curve}) that moved 1 Dice point or more over their last fifth moved, e.g.
    'seed 2 past its peak (0.738 at step 1000, 0.680 at the end)'; '' when none moved."""
    parts = []
    for seed, curve in sorted(curves.items()):
        if converged(curve) < 1:
            continue
        shape, at, best = tail_shape(curve)
        parts.append(f'seed {seed} {shape}' + (f' ({best:.3f} at step {at}, {curve[-1][1]:.3f} at the end)'
                                                if shape == 'past its peak' else ''))
    return ', '.join(parts)


def label_growth(runs, method='unet'):
    """Does `method`'s Dice grow with the number of labeled patients? Read on the mean over seeds and in each seed that
    ran at every count (rising means can hide a seed in which Dice fell). None below two counts; else a dict: `patients`
    (sorted), `dice` ({patients: {seed: Dice}}), `means`, `rising` (the means rise strictly), `seeds` (those at every
    count), `fell` (those among them in which Dice did not rise)."""
    by = {}
    for r in runs:
        if r['method'] == method: by.setdefault(r['patients'], {})[r['seed']] = r['dice']
    if len(by) < 2: return None
    ps = sorted(by)
    up = lambda v: all(x < y for x, y in zip(v, v[1:]))
    means = [float(np.mean(list(by[p].values()))) for p in ps]
    seeds = sorted(set.intersection(*(set(by[p]) for p in ps)))
    return dict(patients=ps, dice=by, means=means, rising=up(means), seeds=seeds,
                fell=[s for s in seeds if not up([by[p][s] for p in ps])])


def interval(ci, missing: str = 'n/a') -> str:
    "A 95 % interval from `paired` as '[+lo, +hi]', or `missing` where there is none (fewer than two seeds)."
    return f'[{ci[0]:+.3f}, {ci[1]:+.3f}]' if ci else missing


def difference(diff: float, ci) -> str:
    "A paired difference and its interval, '+0.012 [+0.003, +0.021]'; the difference alone under two seeds."
    return f'{diff:+.3f}' + (f' {interval(ci)}' if ci else '')


MIN_SEEDS = 3   # the seeds a verdict needs: fewer give 'too few seeds'


def verdict(diff: float, ci, n: int, higher_is_better: bool = True, min_seeds: int = MIN_SEEDS,
            baseline_tail=None) -> str:
    """The claims table's verdict on a paired method - baseline difference and its 95 % interval over seeds; given the
    baseline's `baseline_tail` (`converged` of its curve, Dice points), a baseline that moved >= 1 point is named."""
    if n < min_seeds or ci is None: return f'too few seeds ({n} of {min_seeds})'
    sign = 1 if higher_is_better else -1
    d, (lo, hi) = sign * diff, sorted((sign * ci[0], sign * ci[1]))
    text = ('reproduced' if lo > 0 else 'contradicted' if hi < 0 else
            'same direction, not significant' if d > 0 else 'not reproduced')
    return text + ('' if baseline_tail is None or baseline_tail < 1 else ', baseline not converged')


def early(curve, frac: float = 0.5) -> float:
    "Mean validation Dice over the first `frac` of training: how fast a curve rises (higher = faster)."
    last = max(step for step, _ in curve)
    return float(np.mean([dice for step, dice in curve if step <= frac * last]))


def log_variance_ratio(points, sampler: str, reference: str = 'ns') -> float:
    """log10 of a sampler's estimator variance over the reference's, averaged over the measurement points after the
    first step (`arco_variance.py`'s runs)."""
    pts = [p for p in points if p['step'] > 1] or points
    return float(np.mean([np.log10(p[sampler]['var'] / p[reference]['var']) for p in pts]))
