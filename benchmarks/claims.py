"""The claims table: which of each paper's claims this package reproduces, read off the benchmark grids' JSON files.

    python benchmarks/claims.py

Runs nothing: it reads the runs the grids have appended (benchmarks/*.json), pairs method and baseline by seed, and
writes the table to the `claims` section of RESULTS.md and to benchmarks/claims.json, from which README (through
nbs/index.ipynb) and the last cell of each method's notebook show their rows (`medseg_nb.viz.claims_table`).

A row's verdict comes from the paired difference (method - its own baseline, same seed, same budget) and its 95 %
t-interval over seeds: *reproduced* (the interval lies on the claimed side of 0), *same direction, not significant*,
*not reproduced* (the mean on the other side, the interval across 0), *contradicted* (the interval on the other side).
Fewer than 3 seeds give no verdict. A claim whose grid has not been re-run on the corrected training path (issue 18:
shuffled epochs, one geometry) says so; its old numbers are withdrawn. The sanity rows come first: no method row is
trusted unless they hold. A baseline counts as converged when its validation Dice moved by less than 1 point over the
last fifth of training, in every seed; where one moved, the notes of the ACDC rows say how: *past its peak* (it peaked earlier and
ended at least a point below: the network overfits its few labels, and a longer budget would lower it further),
*rising* (a longer budget may still help) or *up and down*.
"""
import functools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import (MIN_SEEDS, converged, difference, early, how_it_moved, label_growth,  # noqa: E402
                      log_variance_ratio, mean_sd, paired, save_json, verdict, write_section)

from medseg_nb.viz import GRID_BUDGETS as BUDGETS, claims_table, grid_command as command, grid_runs  # noqa: E402

HERE = Path(__file__).parent
OUT = HERE / 'claims.json'


@functools.lru_cache(maxsize=None)
def load(name):
    "A grid's runs, read once (several claims read the ACDC recipe's); [] when the grid has not run."
    return grid_runs(name, HERE)


# Each grid's budgets in order live in the library (`medseg_nb.viz.GRID_BUDGETS`, which the notebooks that draw the
# grids read too). While a budget's baseline still moves over its last fifth, its rows name the next budget's command
# (`longer`); a later budget has rows of its own, beside the shorter ones, once it has run.
NEXT = {file: nxt for order in BUDGETS.values() for (file, _), nxt in zip(order, order[1:])}
FIRST = {order[0][0] for order in BUDGETS.values()}


def longer(file: str, tail: float, setting=lambda run: True, options: str = '') -> str:
    """A note's pointer to the next budget's grid (`NEXT`: more steps, or a decaying learning rate) while the baseline
    still moves (`tail`, its largest change over the last fifth, >= 1 Dice point) and that grid has no run of this
    row's `setting` (a predicate on its runs; any run by default). `options` narrow the command to the row."""
    if tail < 1 or file not in NEXT or any(setting(r) for r in load(NEXT[file][0])):
        return ''
    line = command(NEXT[file][0], options)
    return f"; {'a decaying learning rate' if '--schedule' in line else 'a longer budget'}: `{line}`"


def seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def row(method, paper, claim, setting, result='', verdict_='not measured', note=''):
    return dict(method=method, paper=paper, claim=claim, setting=setting, result=result, verdict=verdict_, note=note)


# the recipe's longer budget, as options to its command (' --steps 1500 --json benchmarks/acdc_long.json ...')
ACDC_LONG = command('acdc_long').removeprefix(command('acdc_recipe'))


def acdc_grids() -> list:
    """The ACDC recipe's grids, each with the options that name it in a command: its own 600 steps (''), then the
    longer `acdc_long` budget, where the U-Net converges with 3 and with all 70 labeled patients."""
    return [(load('acdc_recipe'), ''), (load('acdc_long'), ACDC_LONG)]


def sanity_rows():
    runs = load('acdc_recipe')
    rows = []
    g = label_growth(runs)
    if g is not None:
        ps = g['patients']
        unet = {p: list(g['dice'][p].values()) for p in ps}
        name = lambda p: 'all 70' if p == 70 else str(p)
        tails = {p: max(converged(r['curve']) for r in runs if r['method'] == 'unet' and r['patients'] == p) for p in ps}
        still = [p for p in ps if tails[p] >= 1]
        moving = [name(p) for p in still]
        fell = ', '.join(str(s) for s in g['fell'])
        later, longer_note = longer_unet(load('acdc_long'), still, name)
        rows.append(row('sanity', '-', 'supervised U-Net: more labeled patients, higher Dice',
                        f"ACDC, {', '.join(name(p) for p in ps)} labeled patients, {runs[0]['steps']} steps, 128 px, CPU",
                        '; '.join(f"{'all' if p == 70 else p}: {mean_sd(unet[p])} ({seeds(len(unet[p]))})" for p in ps),
                        ('holds' if g['rising'] else 'fails') + (f' on the mean, not in seed {fell}' if fell else '') +
                        (f", baseline not converged at {', '.join(moving)} patients" if moving else '') + later,
                        'largest change over the last fifth of training, by labeled patients: '
                        + ', '.join(f'{name(p)}: {tails[p]:.2f}' for p in ps) + ' Dice points (converged: < 1)'
                        + longer_note))
    rows += [r for grid, _ in acdc_grids() for r in teacher_rows(grid)]
    return rows


def teacher_rows(runs) -> list:
    """The mean teacher against the U-Net, paired by seed, at each labeled-patient count where one grid (the recipe's
    600 steps, or the longer `acdc_long` budget) ran it; the verdict names whichever of the two had not converged (its
    validation Dice moved by 1 point or more over the last fifth), since a sanity row stands only on converged runs."""
    rows = []
    for p in sorted({r['patients'] for r in runs if r['method'] == 'mean_teacher'}):
        u = {r['seed']: r for r in runs if r['method'] == 'unet' and r['patients'] == p}
        t = {r['seed']: r for r in runs if r['method'] == 'mean_teacher' and r['patients'] == p}
        both = sorted(set(u) & set(t))
        if not both:
            continue
        d, ci, n = paired({s: u[s]['dice'] for s in both}, {s: t[s]['dice'] for s in both})
        tails = {who: max(converged(side[s]['curve']) for s in both) for who, side in (('U-Net', u), ('mean teacher', t))}
        moving = [who for who, tail in tails.items() if tail >= 1]
        res = f"mean teacher {mean_sd(t[s]['dice'] for s in both)}; minus U-Net {difference(d, ci)}"
        v = (f'too few seeds ({n} of {MIN_SEEDS})' if n < MIN_SEEDS else 'holds' if ci[0] > 0 else
             'holds on the mean, not significant' if d >= 0 else 'fails' if ci[1] < 0 else
             'fails on the mean, not significant')         # read both ways alike: a tie below is not a failure shown
        rows.append(row('sanity', '-', f'mean teacher >= supervised at {labeled(p)}',
                        f"ACDC, {labeled(p)}, {t[both[0]]['steps']} steps, equal steps", res,
                        v + (f"; not converged: {', '.join(moving)}" if moving else ''),
                        f"{n} paired seed{'s' if n != 1 else ''}; largest change over the last fifth: "
                        + ', '.join(f'{who} {tail:.2f}' for who, tail in tails.items()) + ' Dice points (converged: < 1)'
                        + moved_note({'U-Net': u, 'mean teacher': t}, both)))
    return rows


def moved_note(sides: dict, seeds: list) -> str:
    """'; U-Net: seed 2 past its peak (0.738 at step 1000, 0.680 at the end)' for each side ({name: {seed: run}})
    whose curve moved 1 Dice point or more over its last fifth in one of `seeds`: below an earlier peak (overfitting,
    which more steps do not cure), rising, or up and down."""
    parts = []
    for who, side in sides.items():
        text = how_it_moved({s: side[s]['curve'] for s in seeds})
        if text:
            parts.append(f'{who}: {text}')
    return ''.join(f'; {p}' for p in parts)


def longer_unet(long, moving: list, name) -> tuple[str, str]:
    """The sanity row's word on the U-Net at the longer budget (the `acdc_long` grid, where the LoMix rows at 70
    patients train): for the verdict, which of the counts still `moving` at the recipe's budget converged there (>= 3
    seeds): ' (converged at 1500 steps: all 70)'; for the note, each count that grid ran, its Dice over seeds and its
    tail. ('', '') before that grid has run."""
    by_count = {}
    for r in long:
        if r['method'] == 'unet':
            by_count.setdefault(r['patients'], []).append(r)
    if not by_count:
        return '', ''
    steps = long[0]['steps']
    tails = {p: max(converged(r['curve']) for r in rr) for p, rr in by_count.items()}
    done = [name(p) for p in moving if len(by_count.get(p, ())) >= MIN_SEEDS and tails[p] < 1]
    moved = {p: how_it_moved({r['seed']: r['curve'] for r in rr}) for p, rr in by_count.items()}
    parts = [f"{name(p)}: {mean_sd(r['dice'] for r in rr)} ({seeds(len(rr))}), largest change over the last fifth "
             f"{tails[p]:.2f} Dice points{' (converged)' if tails[p] < 1 else f': {moved[p]}' if moved[p] else ''}"
             for p, rr in sorted(by_count.items())]
    return (f" (converged at {steps} steps: {', '.join(done)})" if done else '',
            f"; at {steps} steps (the acdc_long grid) " + '; '.join(parts))


def graphseg_rows():
    runs = load('graphseg_shift')
    claim = 'under appearance shift, {} better than the same U-Net (no number in the abstract)'
    settings = {
        'phantom': 'phantom-vessels: train on domain A, test on 3 unseen random domains B; {steps} steps, batch 8, CPU',
        'drive': 'DRIVE: train on the 16 training images, test on the 4 validation images under the 5 SHIFTS of '
                 'notebook 21; {steps} steps, batch 8, 96 px patches, CPU',
    }
    out = []
    for dataset in ('phantom', 'drive'):
        rr = [r for r in runs if r['dataset'] == dataset]
        if not rr:
            out.append(row('graphseg', 'GraphSeg', claim.format('clDice and Betti error'),
                           settings[dataset].format(steps=600), note='grid not re-run since issue 18'))
            continue
        unshifted = ('A (train domain)', 'none')
        shifted = lambda r, k: float(np.mean([v[k] for name, v in r['shifts'].items() if name not in unshifted]))
        tail = max((converged(r['curve']) for r in rr if r['method'] == 'unet' and r.get('curve')), default=float('nan'))
        for key, name, higher in (('cldice', 'clDice', True), ('betti', 'Betti error', False)):
            u = {r['seed']: shifted(r, key) for r in rr if r['method'] == 'unet'}
            g = {r['seed']: shifted(r, key) for r in rr if r['method'] == 'graphseg'}
            d, ci, n = paired(u, g)
            fmt = '{:.3f}' if higher else '{:.1f}'
            sfmt = '{:+.3f}' if higher else '{:+.1f}'
            res = (f"U-Net {mean_sd(u.values(), fmt)}, GraphSeg {mean_sd(g.values(), fmt)}; difference {sfmt.format(d)}"
                   + (f" [{sfmt.format(ci[0])}, {sfmt.format(ci[1])}]" if ci else ''))
            out.append(row('graphseg', 'GraphSeg', claim.format(name), settings[dataset].format(steps=rr[0]['steps']), res,
                           verdict(d, ci, n, higher), f'U-Net tail change {tail:.1f} Dice points (training domain)'))
    return out


def nsda_rows():
    claim = 'U-Net + NSDA > U-Net at little extra cost per step (no number in the abstract)'
    out = []
    runs = load('nsda_drive')
    if runs:
        u = {r['seed']: r['dice'] for r in runs if r['method'] == 'unet'}
        a = {r['seed']: r['dice'] for r in runs if r['method'] == 'nsda'}
        d, ci, n = paired(u, a)
        cost = {m: np.mean([r['seconds_per_step'] for r in runs if r['method'] == m]) for m in ('unet', 'nsda')}
        tail = max((converged(r['curve']) for r in runs if r['method'] == 'unet' and r.get('curve')), default=float('nan'))
        res = (f"U-Net {mean_sd(u.values())}, U-Net + NSDA {mean_sd(a.values())}; difference {difference(d, ci)}"
               + f"; seconds per step (validation included) {cost['nsda'] / cost['unet']:.2f}x the U-Net's")
        out.append(row('nsda', 'NSDA', claim, f"DRIVE, 16 training images, {runs[0]['steps']} steps, batch 8, 96 px "
                       'patches, CPU', res, verdict(d, ci, n), f'U-Net tail change {tail:.1f} Dice points'))
    timing = ('cost per step: the DRIVE row (these runs shared the machine unequally, so their times are not '
              'compared)')
    for acdc, budget in acdc_grids():                # the recipe's 600 steps, then 1500 (where it has run)
        out += acdc_rows('nsda', 'NSDA', claim, 'nsda', 'unet', ('U-Net', 'U-Net + NSDA'), acdc, unlabeled=False,
                         budget=budget, extra=timing)
    if not out:
        return [row('nsda', 'NSDA', claim, 'ACDC and DRIVE', note='grid not re-run since issue 18')]
    if not any('ACDC' in r['setting'] for r in out):
        out[-1]['note'] += '; ACDC not re-run'
    return out


def gausam_rows():
    "GauSAM's rows at the grid's 1000 steps, and at the longer budget once that has run (its SAM head still moved)."
    return [r for file, _ in BUDGETS['gausam'] for r in gausam_file_rows(file)]


def gausam_file_rows(file):
    runs = [r for r in load(file) if r['dataset'] == 'kvasir']
    head_claim = "Gaussian-field head >= SAM's mask head at {}x output resolution (no number in the abstract)"
    place_claim = 'contour-guided placement converges faster than uniform placement'
    if not runs:
        return [] if file not in FIRST else [
            row('gausam', 'GauSAM', head_claim.format('1x and 2'), 'Kvasir-SEG', note=NOT_RUN),
            row('gausam', 'GauSAM', place_claim, 'Kvasir-SEG', note=NOT_RUN)]
    at = lambda r, s: next(x['dice'] for x in r['rows'] if x['scale'] == s)
    by = lambda v, f: {r['seed']: f(r) for r in runs if r['variant'] == v}
    cosine = ', learning rate decayed (cosine)' if runs[0].get('schedule') == 'cosine' else ''
    setting = (f"Kvasir-SEG, 160 training and 40 validation images at 128 px, tiny SAM from scratch, box prompts, "
               f"{runs[0]['steps']} steps{cosine}, batch 4, CPU")
    sam_tail = max((converged(r['curve']) for r in runs if r['variant'] == 'sam'), default=float('nan'))
    out = []
    for scale in (1, 2):
        sam, gau = by('sam', lambda r: at(r, scale)), by('gaussian', lambda r: at(r, scale))
        d, ci, n = paired(sam, gau)
        res = f"SAM head {mean_sd(sam.values())}, Gaussian head {mean_sd(gau.values())}; difference {difference(d, ci)}"
        v = verdict(d, ci, n, baseline_tail=sam_tail)
        out.append(row('gausam', 'GauSAM', head_claim.format(scale), setting, res, v,
                       f"SAM-head tail change {sam_tail:.1f} Dice points (converged: < 1); the Gaussian head's "
                       f"{max(converged(r['curve']) for r in runs if r['variant'] == 'gaussian'):.1f}"
                       + longer(file, sam_tail)))
    uni, con = by('uniform', lambda r: early(r['curve'])), by('gaussian', lambda r: early(r['curve']))
    if uni:
        d, ci, n = paired(uni, con)
        res = (f"mean validation Dice over the first half of training: uniform {mean_sd(uni.values())}, contour "
               f"{mean_sd(con.values())}; difference {difference(d, ci)}")
        final = {v: mean_sd(at(r, 1) for r in runs if r['variant'] == v) for v in ('uniform', 'gaussian')}
        out.append(row('gausam', 'GauSAM', place_claim, setting, res, verdict(d, ci, n),
                       'faster = higher Dice early (the area under the first half of the validation curve); final Dice '
                       f"at 1x: uniform {final['uniform']}, contour {final['gaussian']}"))
    else:
        out.append(row('gausam', 'GauSAM', place_claim, setting, note='uniform placement not run yet'))
    box = by('box', lambda r: early(r['curve']))
    if uni and box:       # our ablation: contour placement on a lattice over the box, no anchor starting outside it
        d, ci, n = paired(uni, box)
        res = (f"mean validation Dice over the first half of training: uniform {mean_sd(uni.values())}, contour in the "
               f"box {mean_sd(box.values())}; difference {difference(d, ci)}")
        final = mean_sd(at(r, 1) for r in runs if r['variant'] == 'box')
        d_con, ci_con, _ = paired(con, box)
        out.append(row('gausam', 'GauSAM', place_claim + ', with the contour anchors kept in the box (our ablation)',
                       setting, res, verdict(d, ci, n),
                       f"contour placement on a lattice over the box (`placement='contour_box'`) rather than over the "
                       f"image; final Dice at 1x {final}; minus contour placement over the image, early Dice "
                       f"{difference(d_con, ci_con)}"))
    return out


def arco_rows():
    runs = load('arco_variance')
    claim_var = '{} lowers the variance of the contrastive loss estimate (against NS, equal anchors)'
    claim_mt = 'ARCO beats the mean teacher at few labels'
    if not runs:
        return [row('arco', 'ARCO', claim_var.format('stratified sampling (SG, SAG)'), 'ACDC', note=NOT_RUN),
                *arco_mt_rows(claim_mt)]
    setting = (f"ACDC, {labeled(runs[0]['patients'])}, ARCO trained {runs[0]['steps']} steps (SG, batch "
               f"{runs[0]['batch']} + {runs[0]['batch']}); {runs[0]['draws']} draws per sampler on a fixed probe batch "
               'every 50 steps, CPU')
    out = []
    for s, name in (('sg', 'SG (stratified)'), ('sag', 'SAG (stratified antithetic)')):
        ratio = {r['seed']: log_variance_ratio(r['points'], s) for r in runs}
        d, ci, n = paired({k: 0.0 for k in ratio}, ratio)
        res = f"variance / NS variance {10 ** d:.3f} (geometric mean); log10 ratio {difference(d, ci)}"
        out.append(row('arco', 'ARCO', claim_var.format(name), setting, res, verdict(d, ci, n, higher_is_better=False),
                       'measured on the estimator, not on Dice'))
    return out + arco_mt_rows(claim_mt)


def arco_mt_rows(claim):
    "ARCO with each sampler against the mean teacher in the ACDC recipe (the same anchors for every sampler)."
    acdc = load('acdc_recipe')
    out = []
    samplers = [f'arco:sampler={s}' for s in ('ns', 'sg', 'sag')]
    for runs, budget in acdc_grids():
        for sampler in samplers:
            name = sampler.split('=')[1].upper()
            out += acdc_rows('arco', 'ARCO', f'{claim} ({name})', sampler, 'mean_teacher',
                             ('mean teacher', f'ARCO-{name}'), runs, budget=budget)
    # the issue asks for every sampler against the mean teacher at 1, 3 and 7 labeled patients (equal anchors)
    missing = missing_acdc(acdc, [(s, 'mean_teacher') for s in samplers], (1, 3, 7))
    if missing:
        what = '; '.join(f"{p} patient{'s' if p > 1 else ''}: "
                         + ', '.join(m.split('=')[1].upper() for m, _, q in missing if q == p)
                         for p in sorted({p for *_, p in missing}))
        out.append(row('arco', 'ARCO', f'{claim} (NS, SG, SAG)', 'ACDC, 1, 3 and 7 labeled patients',
                       note=f'{len(missing)} of {3 * len(samplers)} comparisons not measured yet ({what}; '
                            f'{pending_command(acdc, missing)})'))
    return out


def labeled(p: int) -> str:
    "'1 labeled patient', '3 labeled patients', 'all 70 labeled patients' (ACDC's whole training set)."
    return f"{'all 70' if p == 70 else p} labeled patient{'s' * (p != 1)}"


NOT_RUN = 'grid not re-run since issue 18 (its section of RESULTS.md is superseded)'
MATCH_CLAIM = 'lower Betti error, higher object F1 than the mean teacher at the same dropout (no number in the abstract)'


def match_rows():
    "MATCH against the mean teacher at its dropout (MATCH without the topological term), per labeled fraction."
    out = []
    for file, _ in BUDGETS['match']:
        out += match_file_rows(file)
    return out


def match_file_rows(file):
    "The rows of one budget's runs: the 300-step grid (the paper's two fractions pending until run) or the longer one."
    runs = load(file)
    out = []
    fractions = {r['labeled'] for r in runs} | ({0.1, 0.2} if file in FIRST else set())
    for fraction in sorted(fractions):                          # the paper's two fractions, and any other
        base = {r['seed']: r for r in runs if r['variant'] == 'mt' and r['labeled'] == fraction}
        match = {r['seed']: r for r in runs if r['variant'] == 'match' and r['labeled'] == fraction}
        both = sorted(set(base) & set(match))
        if not both:
            out.append(row('match', 'MATCH', MATCH_CLAIM, f'GlaS, {fraction:.0%} labeled',
                           note=f"not measured yet (`{command(file, f' --labeled {fraction:g}')}`)"))
            continue
        tail = max(converged(base[k]['curve']) for k in both)
        lighter = {r['seed']: r for r in runs if r['variant'] == 'match-w' and r['labeled'] == fraction}
        setting = (f"{dict(glas='GlaS').get(runs[0]['dataset'], runs[0]['dataset'])}, {fraction:.0%} labeled, {base[both[0]]['steps']} steps, batch 8 + 8 unlabeled "
                   '128 px tiles, dropout 0.2 in both, CPU')
        for metric, name, higher in (('betti', 'Betti error', False), ('object_f1', 'object F1', True)):
            d, ci, n = paired({k: base[k][metric] for k in both}, {k: match[k][metric] for k in both})
            dd, dci, _ = paired({k: base[k]['dice'] for k in both}, {k: match[k]['dice'] for k in both})
            fmt = '{:.2f}' if metric == 'betti' else '{:.3f}'
            res = (f"{name}: mean teacher {mean_sd((base[k][metric] for k in both), fmt)}, MATCH "
                   f"{mean_sd((match[k][metric] for k in both), fmt)}; difference {difference(d, ci)}")
            out.append(row('match', 'MATCH', f'{MATCH_CLAIM}: {name}', setting, res,
                           verdict(d, ci, n, higher_is_better=higher, baseline_tail=tail),
                           f'the baseline is MATCH without its topological term (the ablation); Dice difference '
                           + difference(dd, dci)
                           + f'; mean-teacher tail change {tail:.1f} Dice points' + lighter_note(base, lighter, metric)
                           + longer(file, tail, lambda r: r['labeled'] == fraction, f' --labeled {fraction:g}')))
    return out


def lighter_note(base, lighter, metric) -> str:
    "The same comparison with MATCH at a tenth of the topological weight (`match-w`, not the paper's setting), if run."
    both = sorted(set(base) & set(lighter))
    if not both:
        return ''
    d, ci, n = paired({k: base[k][metric] for k in both}, {k: lighter[k][metric] for k in both})
    return (f"; at a tenth of w_topo (0.005, not the paper's): {difference(d, ci)}"
            + f" ({seeds(n)})")


HOME_CLAIMS = (('unet', 'Mamba-HoME > a 3-D U-Net of equal parameter count (no number in the abstract)'),
               ('mlp', 'HoME on > off (a parameter-matched MLP in its place)'))


def mamba_home_rows():
    "Mamba-HoME against the 3-D U-Net and against itself with HoME off, paired by seed, on the phantoms and on ACDC."
    out = []
    # (data, patch, caveat) per grid; each longer ACDC budget (the U-Net had not converged at 400 steps, nor at 1000)
    # has rows of its own once it has run
    grids = dict(home=('3-D organ phantoms (48^3)', '32^3', "; phantoms, not the paper's CT and MRI volumes"),
                 home_acdc=('ACDC volumes', '8 x 96 x 96', ''))
    for name, (data, patch, caveat) in ((name, grids[grid]) for grid in grids for name, _ in BUDGETS[grid]):
        runs = load(name)
        if not runs and name not in FIRST:
            continue
        home = {r['seed']: r for r in runs if r['variant'] == 'home'}
        for base_variant, claim in HOME_CLAIMS:
            base = {r['seed']: r for r in runs if r['variant'] == base_variant}
            both = sorted(set(home) & set(base))
            if not both:
                out.append(row('mamba_home', 'Mamba-HoME', claim, data, note=f'not measured yet (`{command(name)}`)'))
                continue
            d, ci, n = paired({k: base[k]['dice'] for k in both}, {k: home[k]['dice'] for k in both})
            tail = max(converged(base[k]['curve']) for k in both)
            home_tail = max(converged(home[k]['curve']) for k in both)
            label = 'U-Net' if base_variant == 'unet' else 'HoME off'
            res = (f"{label} {mean_sd(base[k]['dice'] for k in both)} ({base[both[0]]['params'] / 1e6:.2f} M), "
                   f"Mamba-HoME {mean_sd(home[k]['dice'] for k in both)} ({home[both[0]]['params'] / 1e6:.2f} M); "
                   f"difference {difference(d, ci)}")
            out.append(row('mamba_home', 'Mamba-HoME', claim,
                           f"{data}, {base[both[0]]['steps']} steps, batch 2 patches of {patch}, deep supervision in "
                           'every network, CPU', res,
                           verdict(d, ci, n, baseline_tail=tail),
                           f'tail change: {label} {tail:.1f}, Mamba-HoME {home_tail:.1f} Dice points{caveat}'
                           + (f'; the other seeds: `{command(name)}`' if n < MIN_SEEDS else '') + longer(name, tail)))
    return out


def acdc_rows(key, paper, claim, method, base, names, acdc, unlabeled=True, budget='', reference=None, extra=''):
    """`method` against `base` in the ACDC recipe's runs (`acdc_recipe.py --methods ...`), one row per labeled-patient
    count both ran, paired by seed on mean Dice; `names` = (baseline, method) as the result names them; `budget`: the
    options of the grid that holds `acdc` when not the recipe's own (for the command of seeds not yet run).
    `reference`: a method of the same grid that stands for the baseline (LoMix's single-output loss against the U-Net's
    own): where `base` has not converged and every seed of the reference paired with it has, the note says so and how
    `base` compares with it. `extra`: a sentence every row's note carries (before the command for seeds not yet run)."""
    out = []
    for p in sorted({r['patients'] for r in acdc if r['method'] == method}):
        v = {r['seed']: r for r in acdc if r['patients'] == p and r['method'] == method}
        b = {r['seed']: r for r in acdc if r['patients'] == p and r['method'] == base}
        both = sorted(set(v) & set(b))
        if not both:
            continue
        d, ci, n = paired({k: b[k]['dice'] for k in both}, {k: v[k]['dice'] for k in both})
        tail, v_tail = (max(converged(runs[k]['curve']) for k in both) for runs in (b, v))
        res = (f"{names[0]} {mean_sd(b[k]['dice'] for k in both)}, {names[1]} {mean_sd(v[k]['dice'] for k in both)}; "
               f"difference {difference(d, ci)}")
        out.append(row(key, paper, claim, f"ACDC, {labeled(p)}, {v[both[0]]['steps']} "
                       f"steps, the acdc recipe (batch 16{' + 16 unlabeled' if unlabeled else ''}), CPU", res,
                       verdict(d, ci, n, baseline_tail=tail),
                       f'tail change: {names[0]} {tail:.1f}, {names[1]} {v_tail:.1f} Dice points'
                       + moved_note({names[0]: b}, both)
                       + (reference_note(acdc, reference, base, p, names[0]) if tail >= 1 else '')
                       + (f'; {extra}' if extra else '') + other_seeds({base: b, method: v}, p, budget)))
    return out


def reference_note(acdc, reference, base, patients, name) -> str:
    """A note on a baseline that has not converged: how it compares, paired by seed, with `reference` (a method of the
    same grid at the same labeled patients) when the reference converged in every seed paired with the baseline (at
    least `MIN_SEEDS`); '' otherwise."""
    if reference is None:
        return ''
    r = {x['seed']: x for x in acdc if x['method'] == reference and x['patients'] == patients}
    b = {x['seed']: x['dice'] for x in acdc if x['method'] == base and x['patients'] == patients}
    both = sorted(set(r) & set(b))
    tail = max((converged(r[k]['curve']) for k in both), default=float('inf'))
    if len(both) < MIN_SEEDS or tail >= 1:
        return ''
    d, ci, _ = paired({k: r[k]['dice'] for k in both}, {k: b[k] for k in both})
    return (f"; {REFERENCE_NAMES.get(reference, reference)} converged at this budget ({mean_sd(r[k]['dice'] for k in both)}"
            f", tail up to {tail:.2f}): {name} minus it {difference(d, ci)}")


REFERENCE_NAMES = {'unet': 'the U-Net with its own loss weights'}


def other_seeds(runs: dict, patients: int, budget='', seeds=(0, 1, 2)) -> str:
    """A note's command for the seeds a comparison still lacks (`runs`: method -> {seed: run}; `budget`: another
    budget's options, as in `pending_command`); '' when each of its methods ran every seed of `seeds`. The grid skips
    what has run, so one command completes both sides."""
    lacking = [m for m, by_seed in runs.items() if set(seeds) - set(by_seed)]
    if not lacking:
        return ''
    methods = ' '.join(m for m in lacking if m != 'unet') or 'unet'
    return f'; the other seeds: `acdc_recipe.py --methods {methods} --patients {patients} --compare {patients}{budget}`'


def missing_acdc(acdc, pairs, counts):
    """The ACDC recipe's comparisons not yet measured: each (method, baseline) of `pairs` at each labeled-patient count
    of `counts` that no seed ran both of; [(method, baseline, patients)]."""
    ran = lambda m, p: {r['seed'] for r in acdc if r['method'] == m and r['patients'] == p}
    return [(m, b, p) for p in counts for m, b in pairs if not ran(m, p) & ran(b, p)]


def pending_command(acdc, missing, budget='') -> str:
    """The `acdc_recipe.py` commands that run what `missing` lacks (methods `acdc` already holds at a count with every
    seed a verdict needs are left out; one with fewer stays, since a grid skips the runs it holds; counts that need the
    same methods share a command); `budget`: the options of another budget's grid."""
    todo = {}                                    # the methods to run -> the counts that need just them
    for p in sorted({p for *_, p in missing}):
        need = [m for bm in ((b, m) for m, b, q in missing if q == p) for m in bm]   # baselines first
        methods = tuple(m for m in dict.fromkeys(need)
                        if m != 'unet'
                        and len({r['seed'] for r in acdc if r['method'] == m and r['patients'] == p}) < MIN_SEEDS)
        todo.setdefault(methods, []).append(str(p))
    return ' and '.join(f"`acdc_recipe.py --methods {' '.join(m)} --patients {' '.join(ps)} --compare {' '.join(ps)}"
                        f"{budget}`" for m, ps in todo.items())


VQ_DROPOUT = 'mean_teacher:dropout=0.5'    # Dropout2d 0.5 at the bottleneck: where and as much as VQ-Seg's ablation


def vqseg_rows():
    "VQ-Seg against the U-Net and the mean teacher of the ACDC recipe, same seeds, steps and labeled patients."
    claim = 'VQ-Seg > {} (no number in the abstract)'
    acdc = load('acdc_recipe')
    out = []
    bases = (('unet', 'supervised U-Net'), ('mean_teacher', 'mean teacher (no dropout)'),
             (VQ_DROPOUT, 'mean teacher + dropout (0.5 at the bottleneck)'))
    for runs, budget in acdc_grids():
        for base, name in bases:
            out += acdc_rows('vqseg', 'VQ-Seg', claim.format(name), 'vqseg', base, (name.split(' (')[0], 'VQ-Seg'), runs,
                             budget=budget)
    # the baselines at 3 and 7 labeled patients, the dropout one among them, each pending until it has run
    missing = missing_acdc(acdc, [('vqseg', b) for b, _ in bases], (3, 7))
    if missing:
        lacking = [(b, name) for b, name in bases if any(c == b for _, c, _ in missing)]
        what = '; '.join(f"{name.split(' (')[0]} at {' and '.join(str(p) for _, c, p in missing if c == b)} patients"
                         for b, name in lacking)
        out.append(row('vqseg', 'VQ-Seg', claim.format(' and '.join(name for _, name in lacking)),
                       'ACDC, 3 and 7 labeled patients',
                       note=f'not measured yet: {what} ({pending_command(acdc, missing)})'))
    ablation = 'vqseg:perturb=dropout'
    # the ablations, in each grid that ran them (a longer budget's rows after the recipe's own)
    qpm = [r for runs, budget in acdc_grids()
           for r in acdc_rows('vqseg', 'VQ-Seg', 'QPM > dropout perturbation of the bottleneck', 'vqseg', ablation,
                              ('dropout', 'QPM'), [q for q in runs if q['method'] in ('vqseg', ablation)],
                              budget=budget)]
    pending = f'not measured yet (`acdc_recipe.py --methods {ablation} --patients 3 --compare 3`)'
    out += qpm or [row('vqseg', 'VQ-Seg', 'QPM > dropout perturbation of the bottleneck', 'ACDC, 3 labeled patients',
                       note=pending)]
    # the keep-probability ablation: the paper's best eps (0.7) against the re-implemented code's 0.9 (our default,
    # plain `vqseg`) and against 0.5
    best, keep = 'vqseg:eps=0.7', (('vqseg', 0.9), ('vqseg:eps=0.5', 0.5))
    for runs, budget in acdc_grids():
        for base, eps in keep:
            out += acdc_rows('vqseg', 'VQ-Seg', f"QPM keep probability: the paper's best, 0.7, > {eps}", best, base,
                             (f'keep {eps}', 'keep 0.7'), [r for r in runs if r['method'] in (best, base)],
                             budget=budget)
    missing = missing_acdc(acdc, [(best, b) for b, _ in keep], (3,))
    if missing:
        out.append(row('vqseg', 'VQ-Seg', "QPM keep probability: the paper's best, 0.7, > 0.9 (our default) and 0.5",
                       'ACDC, 3 labeled patients', note=f'not measured yet ({pending_command(acdc, missing)})'))
    return out


LOMIX_CLAIM = {'single': '+4.2 % Dice over single-output supervision (Synapse)',
               'deep': '+2.2 % Dice over deep supervision (Synapse)',
               'additive': '+1.5 % Dice over additive fusion (Synapse)'}


def lomix_rows():
    "LoMix (each weighting) against each of its baselines on DRIVE and in the ACDC recipe, paired by seed."
    runs = load('lomix_drive')
    out = []
    for base, claim in LOMIX_CLAIM.items():
        b = {r['seed']: r for r in runs if r['variant'] == base}
        for variant, name in (('lomix', 'normalised weights'), ('lomix-raw', "the paper's raw softplus weights")):
            v = {r['seed']: r for r in runs if r['variant'] == variant}
            both = sorted(set(b) & set(v))
            if not both:
                continue
            d, ci, n = paired({k: b[k]['dice'] for k in both}, {k: v[k]['dice'] for k in both})
            dc, _, _ = paired({k: b[k]['cldice'] for k in both}, {k: v[k]['cldice'] for k in both})
            tail = max(converged(b[k]['curve']) for k in both)
            res = (f"{base} {mean_sd(b[k]['dice'] for k in both)}, LoMix {mean_sd(v[k]['dice'] for k in both)}; "
                   f"difference {difference(d, ci)}; clDice {dc:+.3f}")
            out.append(row('lomix', 'LoMix', f'{claim}; LoMix with {name}',
                           f"DRIVE, 16 training images, {b[both[0]]['steps']} steps, batch 8, 96 px patches, CPU", res,
                           verdict(d, ci, n, baseline_tail=tail),
                           f'{base} tail change {tail:.1f} Dice points; size: {100 * d:+.1f} Dice points against the '
                           f"paper's {claim.split(' Dice')[0]} (another dataset)"))
    # at 3 patients the recipe's 600 steps; with all 70 the U-Net converges only by 1500 (the acdc_long section), so
    # the full-label comparisons belong there (600-step ones, where they ran, keep their own rows)
    acdc, long = load('acdc_recipe'), load('acdc_long')
    variants = (('lomix', 'normalised weights'), ('lomix:weighting=raw', "the paper's raw softplus weights"))
    for runs, budget in acdc_grids():
        for base, claim in LOMIX_CLAIM.items():
            for variant, name in variants:
                out += acdc_rows('lomix', 'LoMix', f'{claim}; LoMix with {name}', variant, base, (base, 'LoMix'), runs,
                                 unlabeled=False, budget=budget, reference='unet' if base == 'single' else None)
    # every comparison the experiments issue asks for: each weighting against each baseline, 3 and all 70 patients
    # (a pair is measured when one budget ran both: a 600-step baseline does not pair with a 1500-step LoMix)
    pairs = [(v, b) for b in LOMIX_CLAIM for v, _ in variants]
    in_long = missing_acdc(long, pairs, (3, 70))
    missing = [m for m in missing_acdc(acdc, pairs, (3, 70)) if m in in_long]
    if missing:
        total = 2 * len(pairs)
        at = {p: ', '.join(f"{'raw' if ':' in v else 'normalised'} vs {b}" for v, b, q in missing if q == p) for p in (3, 70)}
        todo = ('each weighting against each baseline, at 3 and all 70 patients' if len(missing) == total else
                '; '.join(f"{'all 70' if p == 70 else p} patients: {what}" for p, what in at.items() if what))
        commands = ' and '.join(filter(None, (
            pending_command(acdc, [m for m in missing if m[2] == 3]),
            pending_command(long, [m for m in missing if m[2] == 70], ACDC_LONG))))
        out.append(row('lomix', 'LoMix', 'Dice +4.2 % over single-output, +2.2 % over deep supervision, +1.5 % over '
                       'additive (Synapse); +9.23 % with 5 % labels', 'ACDC, all and 3 labeled patients',
                       note=f'{len(missing)} of {total} comparisons not measured yet ({todo}; {commands})'))
    return out


def main():
    rows = (sanity_rows() + gausam_rows() + graphseg_rows() + nsda_rows() + lomix_rows() + vqseg_rows() + arco_rows()
            + match_rows() + mamba_home_rows())
    save_json(OUT, dict(rows=rows, about=__doc__.split('\n\n')[2].replace('\n', ' ')))
    body = f"""## The claims table (`benchmarks/claims.py`)

{__doc__.split(chr(10) + chr(10), 2)[2].strip()}

{claims_table(path=OUT)}"""
    write_section('claims', body)
    print(body)


if __name__ == '__main__':
    main()
