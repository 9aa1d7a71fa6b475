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
trusted unless they hold.
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import converged, mean_sd, paired, save_json, verdict, write_section  # noqa: E402

from medseg_nb.viz import claims_table  # noqa: E402

HERE = Path(__file__).parent
OUT = HERE / 'claims.json'


def load(name):
    p = HERE / f'{name}.json'
    return json.loads(p.read_text())['runs'] if p.exists() else []


def seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def row(method, paper, claim, setting, result='', verdict_='not measured', note=''):
    return dict(method=method, paper=paper, claim=claim, setting=setting, result=result, verdict=verdict_, note=note)


def sanity_rows():
    runs = load('acdc_recipe')
    rows = []
    unet = {}
    for r in runs:
        if r['method'] == 'unet': unet.setdefault(r['patients'], []).append(r['dice'])
    if unet:
        ps = sorted(unet)
        means = [np.mean(unet[p]) for p in ps]
        holds = all(a < b for a, b in zip(means, means[1:]))
        tail = max(converged(r['curve']) for r in runs if r['method'] == 'unet')
        rows.append(row('sanity', '-', 'supervised U-Net: more labeled patients, higher Dice',
                        f"ACDC, {', '.join('all 70' if p == 70 else str(p) for p in ps)} labeled patients, "
                        f"{runs[0]['steps']} steps, 128 px, CPU",
                        '; '.join(f"{'all' if p == 70 else p}: {mean_sd(unet[p])} ({seeds(len(unet[p]))})" for p in ps),
                        ('holds' if holds else 'fails') + ('' if tail < 1 else ', baseline not converged'),
                        f'largest change over the last fifth of training {tail:.1f} Dice points (converged: < 1)'))
    for p in sorted({r['patients'] for r in runs if r['method'] == 'mean_teacher'}):
        u = {r['seed']: r['dice'] for r in runs if r['method'] == 'unet' and r['patients'] == p}
        t = {r['seed']: r['dice'] for r in runs if r['method'] == 'mean_teacher' and r['patients'] == p}
        d, ci, n = paired(u, t)
        tails = [converged(r['curve']) for r in runs if r['method'] == 'mean_teacher' and r['patients'] == p]
        mt = mean_sd(t[s] for s in sorted(set(u) & set(t)))
        res = f"mean teacher {mt}; minus U-Net {d:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else '')
        v = (f'too few seeds ({n} of 3)' if n < 3 else 'holds' if ci[0] > 0 else
             'holds on the mean, not significant' if d >= 0 else 'fails')
        rows.append(row('sanity', '-', f'mean teacher >= supervised at {p} labeled patients',
                        f"ACDC, {p} labeled patients, {runs[0]['steps']} steps, equal steps", res, v,
                        f'{n} paired seeds; mean-teacher tail change up to {max(tails):.1f} Dice points'))
    return rows


def graphseg_rows():
    runs = [r for r in load('graphseg_shift') if r['dataset'] == 'phantom']
    if not runs:
        return [row('graphseg', 'GraphSeg', 'under appearance shift, clDice and Betti error better than the same U-Net',
                    'phantom domains and DRIVE shifts', note='grid not re-run since issue 18')]
    shifted = lambda r, k: float(np.mean([v[k] for name, v in r['shifts'].items() if not name.startswith('A')]))
    out = []
    for key, name, higher in (('cldice', 'clDice', True), ('betti', 'Betti error', False)):
        u = {r['seed']: shifted(r, key) for r in runs if r['method'] == 'unet'}
        g = {r['seed']: shifted(r, key) for r in runs if r['method'] == 'graphseg'}
        d, ci, n = paired(u, g)
        tail = max((converged(r['curve']) for r in runs if r['method'] == 'unet' and r.get('curve')), default=float('nan'))
        fmt = '{:.3f}' if higher else '{:.1f}'
        sfmt = '{:+.3f}' if higher else '{:+.1f}'
        res = (f"U-Net {mean_sd(u.values(), fmt)}, GraphSeg {mean_sd(g.values(), fmt)}; difference {sfmt.format(d)}"
               + (f" [{sfmt.format(ci[0])}, {sfmt.format(ci[1])}]" if ci else ''))
        out.append(row('graphseg', 'GraphSeg', f'under appearance shift, {name} better than the same U-Net '
                       '(no number in the abstract)',
                       f"phantom-vessels: train on domain A, test on 3 unseen random domains B; {runs[0]['steps']} steps, "
                       'batch 8, CPU', res, verdict(d, ci, n, higher), f'U-Net tail change {tail:.1f} Dice points (domain A)'))
    out.append(row('graphseg', 'GraphSeg', 'the same on DRIVE under the SHIFTS of the notebook', 'DRIVE, 600 steps',
                   note='grid not re-run since issue 18'))
    return out


def nsda_rows():
    runs = load('nsda_drive')
    claim = 'U-Net + NSDA > U-Net at little extra cost per step (no number in the abstract)'
    if not runs:
        return [row('nsda', 'NSDA', claim, 'ACDC and DRIVE', note='grid not re-run since issue 18')]
    u = {r['seed']: r['dice'] for r in runs if r['method'] == 'unet'}
    a = {r['seed']: r['dice'] for r in runs if r['method'] == 'nsda'}
    d, ci, n = paired(u, a)
    cost = {m: np.mean([r['seconds_per_step'] for r in runs if r['method'] == m]) for m in ('unet', 'nsda')}
    tail = max((converged(r['curve']) for r in runs if r['method'] == 'unet' and r.get('curve')), default=float('nan'))
    res = (f"U-Net {mean_sd(u.values())}, U-Net + NSDA {mean_sd(a.values())}; difference {d:+.3f}"
           + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else '')
           + f"; seconds per step (validation included) {cost['nsda'] / cost['unet']:.2f}x the U-Net's")
    return [row('nsda', 'NSDA', claim, f"DRIVE, 16 training images, {runs[0]['steps']} steps, batch 8, 96 px patches, CPU",
                res, verdict(d, ci, n), f'U-Net tail change {tail:.1f} Dice points; ACDC not re-run')]


NOT_RUN = 'grid not re-run since issue 18 (its section of RESULTS.md is superseded)'
PENDING = [
    row('gausam', 'GauSAM', "Gaussian-field head >= SAM's mask head, at 1x and 2x output resolution (no number in the "
        'abstract)', 'Kvasir-SEG', note=NOT_RUN),
    row('gausam', 'GauSAM', 'contour-guided placement converges faster than uniform placement', 'Kvasir-SEG', note=NOT_RUN),
    row('match', 'MATCH', 'lower Betti error, higher object F1 than the mean teacher at the same dropout (no number in the '
        'abstract)', 'GlaS, 10 % and 20 % labels', note=NOT_RUN),
    row('mamba_home', 'Mamba-HoME', 'better than a 3-D U-Net of equal parameter count; HoME on > off',
        'ACDC volumes', note=NOT_RUN),
    row('lomix', 'LoMix', 'Dice +4.2 % over single-output, +2.2 % over deep supervision, +1.5 % over additive (Synapse); '
        '+9.23 % with 5 % labels', 'ACDC, all and 3 labeled patients', note=NOT_RUN),
    row('vqseg', 'VQ-Seg', 'QPM > dropout perturbation; > supervised and mean teacher (no number in the abstract)',
        'ACDC, 3 and 7 labeled patients', note=NOT_RUN),
    row('arco', 'ARCO', 'stratified sampling (SG, SAG) lowers the variance of the contrastive loss and beats the mean '
        'teacher at few labels', 'ACDC, 1, 3 and 7 labeled patients', note=NOT_RUN),
]


def main():
    rows = sanity_rows() + graphseg_rows() + nsda_rows() + PENDING
    save_json(OUT, dict(rows=rows, about=__doc__.split('\n\n')[2].replace('\n', ' ')))
    body = f"""## The claims table (`benchmarks/claims.py`)

{__doc__.split(chr(10) + chr(10), 2)[2].strip()}

{claims_table(path=OUT)}"""
    write_section('claims', body)
    print(body)


if __name__ == '__main__':
    main()
