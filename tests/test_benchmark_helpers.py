"The helpers the benchmark grids share (benchmarks/_results.py): the grid loop, sharding the runs not yet done, table cells."
import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / 'benchmarks'))
from _results import (difference, finite_mean, grid_args, interval, listed, machine_use, mean_sd, resumed, run_grid,  # noqa: E402
                      shard, train_seconds, work_args, work_dir)


def test_shards_split_the_grid_once_each_whenever_each_starts():
    jobs = [(m, s) for s in range(3) for m in 'abcd']
    done = {('a', 0), ('b', 0), ('c', 1), ('d', 2)}
    todo = [j for j in jobs if j not in done]
    parts = [shard(jobs, f'{i}/5', done) for i in range(5)]
    assert sorted(j for p in parts for j in p) == sorted(todo)              # all of them, none twice
    assert parts == [[j for j in jobs[i::5] if j not in done] for i in range(5)]   # each shard's own, less those done
    keyed = shard([(s, m) for m, s in jobs], '0/1', done, key=lambda j: (j[1], j[0]))
    assert sorted((m, s) for s, m in keyed) == sorted(todo)
    # shard 1 starting after shard 0 finished its first job (it reads shard 0's file through --merge) must not take
    # shard 0's remaining jobs: when the split followed what was left, both ran ('a', 1) and ('a', 2)
    jobs = [(m, s) for s in range(3) for m in 'ab']
    first = shard(jobs, '0/2')
    later = shard(jobs, '1/2', done={first[0]})
    assert first == [('a', 0), ('a', 1), ('a', 2)] and later == [('b', 0), ('b', 1), ('b', 2)]
    with pytest.raises(SystemExit, match='I/N'): shard(jobs, '5/5')


def test_table_cells():
    assert listed([300, 300, 1000]) == '300, 1000'
    assert mean_sd([0.25]) == '0.250'                                      # one seed: no spread shown
    assert mean_sd([0.2, 0.4]) == '0.300 ± 0.141'  # the sample sd (n - 1), as the t-intervals use; numpy's default is 0.100
    assert mean_sd([0.517, 0.355, 0.288]) == '0.387 ± 0.118'  # VQ-Seg's three seeds: the tables used to say ± 0.096
    assert finite_mean([90.0, 100.0, math.inf]) == '95.0 (1 of 3 ∞)'
    assert finite_mean([math.inf, math.inf]) == '∞'
    assert finite_mean([1.0, 3.0]) == '2.0'
    assert interval((-0.0012, 0.034)) == '[-0.001, +0.034]' and interval(None) == 'n/a'
    assert difference(0.0125, (0.003, 0.0214)) == '+0.013 [+0.003, +0.021]'
    assert difference(-0.5, None) == '-0.500'                             # one seed: no interval


def test_convergence_paired_difference_and_verdict():
    from _results import converged, paired, verdict
    assert converged([(100, 0.50), (800, 0.70), (900, 0.72), (1000, 0.71)]) == pytest.approx(2.0)   # last fifth: 800..1000
    assert math.isnan(converged([(500, 0.5), (1000, 0.6)]))                                           # one point in the tail
    d, ci, n = paired({0: 0.50, 1: 0.60, 2: 0.55}, {0: 0.52, 1: 0.63, 2: 0.56, 3: 0.9})              # seed 3 unpaired
    assert n == 3 and d == pytest.approx(0.02) and ci[0] < d < ci[1]
    assert ci[1] - ci[0] == pytest.approx(2 * 4.302653 * 0.01 / math.sqrt(3), rel=1e-5)           # t(0.975, 2), sd 0.01
    assert verdict(0.02, (0.01, 0.03), 3) == 'reproduced'
    assert verdict(0.02, (-0.01, 0.05), 3) == 'same direction, not significant'
    assert verdict(-0.02, (-0.05, 0.01), 3) == 'not reproduced'
    assert verdict(-0.02, (-0.03, -0.01), 3) == 'contradicted'
    assert verdict(-0.5, (-0.8, -0.2), 3, higher_is_better=False) == 'reproduced'                # Betti error: lower wins
    assert verdict(0.02, (0.01, 0.03), 2).startswith('too few seeds')
    assert verdict(0.02, (0.01, 0.03), 3, baseline_tail=0.7) == 'reproduced'
    assert verdict(-0.02, (-0.05, 0.01), 3, baseline_tail=1.4) == 'not reproduced, baseline not converged'


def test_a_curve_that_moved_is_read_as_past_its_peak_rising_or_up_and_down():
    "Overfitting (an earlier peak, ended below it) is told apart from a curve still rising and from noise."
    from _results import how_it_moved, tail_shape
    peaked = [(100, 0.40), (300, 0.47), (600, 0.40), (800, 0.345), (900, 0.33), (1000, 0.33)]
    assert tail_shape(peaked) == ('past its peak', 300, 0.47)
    recovering = [(100, 0.50), (300, 0.65), (800, 0.60), (900, 0.61), (1000, 0.62)]    # rises again, still 3 points below
    assert tail_shape(recovering)[0] == 'past its peak'
    rising = [(100, 0.5), (800, 0.70), (900, 0.72), (1000, 0.75)]
    assert tail_shape(rising) == ('rising', 1000, 0.75)
    assert tail_shape([(100, 0.5), (800, 0.70), (900, 0.73), (1000, 0.72)])[0] == 'up and down'   # ends below its best
    assert tail_shape([(100, 0.5), (800, 0.72), (900, 0.70), (1000, 0.715)])[0] == 'up and down'  # peak in the tail
    flat = [(100, 0.5), (800, 0.700), (1000, 0.705)]
    assert how_it_moved({0: flat, 2: peaked, 1: rising}) == ('seed 1 rising, seed 2 past its peak (0.470 at step 300, '
                                                            '0.330 at the end)')                  # flat: converged
    assert how_it_moved({0: flat}) == ''


def test_early_dice_and_variance_ratio():
    from _results import early, log_variance_ratio
    assert early([(100, 0.2), (200, 0.4), (300, 0.6), (400, 0.8)]) == pytest.approx(0.3)   # steps <= 200 of 400
    pts = [dict(step=1, ns=dict(var=1.0), sg=dict(var=1.0)),                              # step 1 left out
           dict(step=50, ns=dict(var=1.0), sg=dict(var=0.1)), dict(step=100, ns=dict(var=2.0), sg=dict(var=0.02))]
    assert log_variance_ratio(pts, 'sg') == pytest.approx(-1.5)                            # mean of -1 and -2
    assert log_variance_ratio(pts[:1], 'sg') == 0.0                                         # only step 1: it is used


def test_the_grid_loop_saves_every_run_resumes_shards_and_merges(tmp_path):
    "run_grid: each finished run is in the file before the next starts; a rerun skips them; shards split; merge joins."
    def args(*argv):
        ap = argparse.ArgumentParser()
        grid_args(ap, tmp_path / 'grid.json')
        return ap.parse_args([str(x) for x in argv])

    jobs = [(m, s) for s in range(2) for m in 'ab']
    key = lambda r: (r['method'], r['seed'])
    ran, saved, reports = [], [], []

    def run_job(m, s):
        if (m, s) == ('b', 1):
            raise RuntimeError('interrupted')                              # the grid stops in its last job
        ran.append((m, s))
        saved.append(len(json.loads((tmp_path / 'grid.json').read_text())['runs']) if (tmp_path / 'grid.json').exists() else 0)
        return dict(method=m, seed=s, dice=0.5)

    with pytest.raises(RuntimeError, match='interrupted'):
        run_grid(args(), jobs, key, run_job, reports.append)
    assert ran == [('a', 0), ('b', 0), ('a', 1)] and saved == [0, 1, 2]    # each run on disk before the next began
    assert len(json.loads((tmp_path / 'grid.json').read_text())['runs']) == 3 and len(reports) == 3

    ran.clear()
    state = run_grid(args(), jobs, key, lambda m, s: ran.append((m, s)) or dict(method=m, seed=s, dice=0.7))
    assert ran == [('b', 1)] and len(state['runs']) == 4                    # resumed: only the missing run

    ran.clear()
    shards = [args('--json', tmp_path / f'shard{i}.json', '--shard', f'{i}/2') for i in range(2)]
    more = [(m, 2) for m in 'ab']
    for a in shards:
        run_grid(a, more, key, lambda m, s: ran.append((m, s)) or dict(method=m, seed=s, dice=0.1))
    assert sorted(ran) == more                                             # each job in exactly one shard
    ran.clear()
    merged = run_grid(args('--table-only', '--merge', *[a.json for a in shards]), jobs + more, key,
                      lambda m, s: ran.append((m, s)), reports.append)
    assert ran == [] and len(merged['runs']) == 6 and len(reports) == 4    # --table-only runs nothing, reports once
    assert len(json.loads((tmp_path / 'grid.json').read_text())['runs']) == 6


def test_method_specs_name_an_ablation():
    from acdc_recipe import method_spec
    assert method_spec('vqseg') == ('vqseg', {})
    assert method_spec('vqseg:perturb=dropout,eps=0.5,rate=1') == ('vqseg', dict(perturb='dropout', eps=0.5, rate=1))
    with pytest.raises(SystemExit, match='key=value'):
        method_spec('vqseg:dropout')


def test_acdc_jobs_run_each_once_and_may_be_the_unet_alone():
    from acdc_recipe import jobs_in_order
    assert jobs_in_order([1, 2], [1, 70], [1, 70], []) == [('unet', 1, 1), ('unet', 70, 1), ('unet', 1, 2), ('unet', 70, 2)]
    assert jobs_in_order([0, 1], [3], [3], ['unet', 'lomix']) == [('unet', 3, 0), ('lomix', 3, 0), ('unet', 3, 1),
                                                                  ('lomix', 3, 1)]     # the old list ran unet twice


def test_the_labels_sanity_row_reads_the_mean_and_each_seed():
    "Means that rise can hide a seed in which Dice fell: the row names it; a seed missing a count is not judged."
    from acdc_recipe import ALL, growth
    run = lambda p, s, d: dict(method='unet', patients=p, seed=s, dice=d)
    runs = [run(1, 0, 0.3), run(3, 0, 0.6), run(ALL, 0, 0.8), run(1, 1, 0.5), run(3, 1, 0.45), run(ALL, 1, 0.82),
            run(3, 2, 0.1), dict(method='lomix', patients=1, seed=0, dice=0.9)]
    line = growth(runs)
    assert 'mean over seeds: **no** (1: 0.400, 3: 0.383, all 70: 0.810)' in line   # 0.383 < 0.400
    assert 'each of the 2 seeds that ran at every count: **no** (not in seed 1)' in line
    assert '**yes**' in growth(runs[:3]) and 'the one seed' in growth(runs[:3])
    assert 'not measured' in growth(runs[:1])


def test_claims_rows_of_match_and_mamba_home_pair_by_seed_and_read_betti_as_lower_is_better(monkeypatch):
    "MATCH's rows: a lower Betti error is the claimed side; Mamba-HoME's: one row per baseline, a missing one pending."
    import claims
    curve = [(100, 0.70), (240, 0.75), (300, 0.755)]
    match_runs = [dict(variant=v, labeled=0.1, seed=s, steps=300, dataset='glas', dice=0.8, curve=curve,
                       betti=(20.0 if v == 'mt' else 15.0) + s, object_f1=(0.40 if v == 'mt' else 0.38) + 0.01 * s * s)
                  for v in ('mt', 'match') for s in (0, 1, 2)]
    match_runs += [dict(r, variant='match-w', betti=r['betti'] - 1) for r in match_runs if r['variant'] == 'mt']
    home_runs = [dict(variant=v, seed=s, steps=400, dataset='phantom-organs3d', params=2_400_000, curve=curve,
                      dice=dict(home=0.60, unet=0.55)[v] + 0.01 * s - (0.005 * s * s if v == 'home' else 0))
                 for v in ('home', 'unet') for s in (0, 1, 2)]
    acdc_runs = [dict(r, dataset='acdc', curve=[(100, 0.3), (320, 0.4), (400, 0.45)])      # one pair, still rising
                 for r in home_runs if r['variant'] == 'unet' or r['seed'] < 1]
    files = dict(match_glas=match_runs, mamba_home=home_runs, mamba_home_acdc=acdc_runs, mamba_home_acdc_long=[],
                 mamba_home_acdc_3000=[], mamba_home_acdc_6000=[], match_glas_long=[], match_glas_1200=[],
                 mamba_home_long=[])
    monkeypatch.setattr(claims, 'load', lambda name: files[name])
    betti, f1, pending = claims.match_rows()
    assert pending['verdict'] == 'not measured' and '--labeled 0.2' in pending['note']           # the paper's 20 %
    assert betti['claim'].endswith('Betti error') and betti['verdict'] == 'reproduced'         # 5 lower in every seed
    assert f1['verdict'] == 'contradicted' and 'difference -0.020' in f1['result']              # 0.02 lower in every seed
    assert 'GlaS, 10% labeled, 300 steps' in betti['setting']
    assert "at a tenth of w_topo (0.005, not the paper's): -1.000" in betti['note']              # match-w: 1 lower
    assert 'a longer budget' not in betti['note']                          # the mean teacher moved 0.5 points: converged
    # a mean teacher still rising at 300 steps points at the 600-step grid; once that has run (here: 10 % labeled, the
    # mean teacher alone) its rows follow the 300-step ones, with their own steps, and no fraction it never ran
    for r in match_runs:
        r['curve'] = [(100, 0.60), (240, 0.70), (300, 0.75)]
    assert 'match_glas.py --labeled 0.1 --steps 600 --json benchmarks/match_glas_long.json' in claims.match_rows()[0]['note']
    files['match_glas_long'] = [dict(r, steps=600) for r in match_runs if r['variant'] == 'mt']
    *_, long = claims.match_rows()
    assert long['verdict'] == 'not measured' and '--labeled 0.1 --steps 600 --json benchmarks/match_glas_long' in long['note']
    assert 'a longer budget' not in claims.match_rows()[0]['note']
    files['match_glas_long'] += [dict(r, steps=600) for r in match_runs if r['variant'] == 'match']
    *_, long_betti, long_f1 = claims.match_rows()
    assert 'GlaS, 10% labeled, 600 steps' in long_betti['setting'] and long_f1['verdict'].startswith('contradicted')
    assert len(claims.match_rows()) == 5                                     # 10 % twice, 20 % pending once
    # the 600-step mean teacher, still rising (the curves above), names the third budget for its own fraction, until
    # that grid has run it
    assert ('a longer budget: `benchmarks/match_glas.py --labeled 0.1 --steps 1200 --json '
            'benchmarks/match_glas_1200.json --section match_glas_1200`') in long_f1['note']
    files['match_glas_1200'] = [dict(r, steps=1200, labeled=0.2) for r in files['match_glas_long']]
    assert 'a longer budget' in claims.match_rows()[3]['note']                # 1200 steps ran at 20 % only: still named
    files['match_glas_1200'] += [dict(r, steps=1200) for r in files['match_glas_long']]
    rows = claims.match_rows()
    assert len(rows) == 9 and 'a longer budget' not in rows[3]['note']
    assert rows[-1]['setting'].startswith('GlaS, 20% labeled, 1200')
    unet, mlp, acdc_unet, acdc_mlp = claims.mamba_home_rows()
    assert unet['verdict'] == 'reproduced' and 'difference +0.042' in unet['result']   # 0.05, 0.045, 0.03
    assert mlp['verdict'] == 'not measured' and 'mamba_home.py`' in mlp['note']
    assert acdc_unet['setting'].startswith('ACDC volumes, 400 steps, batch 2 patches of 8 x 96 x 96')
    assert acdc_unet['verdict'] == 'too few seeds (1 of 3)'
    assert '; the other seeds: `benchmarks/mamba_home.py --dataset acdc`' in acdc_unet['note']   # the grid resumes
    assert acdc_mlp['verdict'] == 'not measured' and 'mamba_home.py --dataset acdc' in acdc_mlp['note']
    # the 400-step ACDC U-Net moved 15 points over its last fifth: its row names the longer budget, which has no rows
    # of its own until it has run; once it has, they stand beside the 400-step ones with their own steps
    assert '--steps 1000 --json benchmarks/mamba_home_acdc_long.json' in acdc_unet['note']
    files['mamba_home_acdc_long'] = [dict(r, steps=1000, dice=r['dice'] - (0.1 if r['variant'] == 'home' else 0))
                                     for r in home_runs]
    *_, acdc_unet, _, long_unet, long_mlp = claims.mamba_home_rows()
    assert '--steps 1000' not in acdc_unet['note']
    assert long_unet['setting'].startswith('ACDC volumes, 1000 steps') and long_unet['verdict'] == 'contradicted'
    assert long_mlp['verdict'] == 'not measured' and '--steps 1000 --json' in long_mlp['note']   # HoME off: pending
    assert 'a longer budget' not in long_unet['note']                    # the 1000-step U-Net has converged here
    # a U-Net still moving at 1000 steps names the third budget, until that grid has run
    files['mamba_home_acdc_long'] = [dict(r, curve=acdc_runs[0]['curve']) for r in files['mamba_home_acdc_long']]
    long_unet = claims.mamba_home_rows()[4]
    assert 'a longer budget: `benchmarks/mamba_home.py --dataset acdc --steps 3000 --json' in long_unet['note']
    files['mamba_home_acdc_3000'] = [dict(r, steps=3000) for r in home_runs]
    rows = claims.mamba_home_rows()
    assert len(rows) == 8 and 'a longer budget' not in rows[4]['note']
    assert rows[6]['setting'].startswith('ACDC volumes, 3000 steps') and rows[6]['verdict'] == 'reproduced'
    # a U-Net still moving at 3000 steps names the fourth budget (6000 steps), until that grid has run
    assert 'a longer budget' not in rows[6]['note']
    files['mamba_home_acdc_3000'] = [dict(r, curve=acdc_runs[0]['curve']) for r in files['mamba_home_acdc_3000']]
    assert ('a longer budget: `benchmarks/mamba_home.py --dataset acdc --steps 6000 --json '
            'benchmarks/mamba_home_acdc_6000.json --section mamba_home_acdc_6000`') in claims.mamba_home_rows()[6]['note']
    files['mamba_home_acdc_3000'] = [dict(r, steps=3000) for r in home_runs]
    # the phantom grid has a longer budget of its own: named while its U-Net still moves, rows of its own once run
    assert 'a longer budget' not in rows[0]['note']                          # the 400-step phantom U-Net converged
    for r in home_runs:
        r['curve'] = acdc_runs[0]['curve']
    assert '--steps 1200 --json benchmarks/mamba_home_long.json' in claims.mamba_home_rows()[0]['note']
    files['mamba_home_long'] = [dict(r, steps=1200, curve=curve) for r in home_runs]
    rows = claims.mamba_home_rows()
    assert len(rows) == 10 and '--steps 1200' not in rows[0]['note']
    assert rows[2]['setting'].startswith('3-D organ phantoms (48^3), 1200 steps') and rows[2]['verdict'] == 'reproduced'


def test_claims_rows_of_gausam_pair_heads_by_seed_and_point_at_a_longer_budget(monkeypatch):
    "GauSAM: one row per output resolution and one for placement; a SAM head still moving names the longer grid."
    import claims
    rising, flat = [(100, 0.3), (800, 0.70), (1000, 0.75)], [(100, 0.6), (800, 0.74), (1000, 0.745)]
    dice = dict(sam=0.70, gaussian=0.72, uniform=0.78)
    fast = lambda s: [(100, 0.7 + 0.01 * s), (800, 0.75), (1000, 0.755)]       # uniform placement rises sooner
    runs = [dict(variant=v, dataset='kvasir', seed=s, steps=1000, curve=dict(sam=rising, uniform=fast(s)).get(v, flat),
                 rows=[dict(scale=1, dice=dice[v] + 0.01 * s), dict(scale=2, dice=dice[v] - 0.05 + 0.01 * s * s)])
            for v in dice for s in (0, 1, 2)]
    files = dict(gausam_heads=runs, gausam_heads_long=[])
    monkeypatch.setattr(claims, 'load', lambda name: files.get(name, []))
    at1, at2, placement = claims.gausam_rows()
    assert at1['verdict'] == 'reproduced, baseline not converged' and 'difference +0.020' in at1['result']
    assert at1['note'].startswith('SAM-head tail change 5.0 Dice points')
    assert 'a longer budget: `benchmarks/gausam_heads.py --steps 2000 --json benchmarks/gausam_heads_long.json' in at1['note']
    assert placement['verdict'] == 'contradicted' and 'uniform 0.710 ± 0.010, contour 0.600' in placement['result']
    files['gausam_heads_long'] = [dict(r, steps=2000, curve=flat) for r in runs]
    rows = claims.gausam_rows()
    assert len(rows) == 6 and 'a longer budget' not in rows[0]['note'] and 'a longer budget' not in rows[3]['note']
    assert '2000 steps' in rows[3]['setting'] and rows[3]['verdict'] == 'reproduced'            # converged: no caveat
    # a SAM head still moving at 2000 steps names the grid after it: the same budget, the learning rate decayed
    files['gausam_heads_cosine'] = []
    files['gausam_heads_long'] = [dict(r, curve=rising) if r['variant'] == 'sam' else r for r in files['gausam_heads_long']]
    assert ('a decaying learning rate: `benchmarks/gausam_heads.py --schedule cosine --steps 2000 --json '
            'benchmarks/gausam_heads_cosine.json') in claims.gausam_rows()[3]['note']
    files['gausam_heads_cosine'] = [dict(r, schedule='cosine', curve=flat) for r in files['gausam_heads_long']]
    rows = claims.gausam_rows()
    assert 'decaying' not in rows[3]['note'] and rows[6]['setting'].endswith('2000 steps, learning rate decayed (cosine), batch 4, CPU')
    files['gausam_heads_long'] = [dict(r, curve=flat) for r in files['gausam_heads_long']]
    del files['gausam_heads_cosine']
    # the ablation (contour anchors kept in the box) gets its own row against uniform placement, where it has run
    for r in files['gausam_heads_long']:
        r['curve'] = fast(r['seed']) if r['variant'] == 'uniform' else r['curve']
    files['gausam_heads_long'] += [dict(variant='box', dataset='kvasir', seed=s, steps=2000, curve=fast(s + 2),
                                        rows=[dict(scale=1, dice=0.79), dict(scale=2, dice=0.79)]) for s in (0, 1, 2)]
    rows = claims.gausam_rows()
    assert len(rows) == 7 and len(claims.gausam_file_rows('gausam_heads')) == 3
    assert rows[-1]['claim'].endswith('kept in the box (our ablation)') and rows[-1]['verdict'] == 'reproduced'
    assert 'uniform 0.710 ± 0.010, contour in the box 0.730 ± 0.010; difference +0.020 [+0.020, +0.020]' in rows[-1]['result']
    assert 'minus contour placement over the image, early Dice +0.130 [+0.105, +0.155]' in rows[-1]['note']


def test_a_baseline_still_moving_is_read_against_a_converged_reference_of_its_grid(monkeypatch):
    "LoMix's single-output baseline, not converged, is compared by seed with the grid's U-Net when that converged."
    import claims
    flat, rising = [(100, 0.5), (1200, 0.860), (1500, 0.862)], [(100, 0.5), (1200, 0.84), (1500, 0.86)]
    long = [dict(method=m, patients=70, seed=s, steps=1500, curve=c, dice=d + 0.01 * s)
            for m, d, c in (('single', 0.86, rising), ('unet', 0.85, flat), ('lomix', 0.88, flat)) for s in (0, 1, 2)]
    monkeypatch.setattr(claims, 'load', lambda name: dict(acdc_long=long).get(name, []))
    note = lambda: [r for r in claims.lomix_rows() if 'single' in r['claim'] and 'normalised' in r['claim']][0]['note']
    assert ('tail change: single 2.0, LoMix 0.2 Dice points; single: seed 0 rising, seed 1 rising, seed 2 rising; the '
            'U-Net with its own loss weights converged at this '
            'budget (0.860 ± 0.010, tail up to 0.20): single minus it +0.010 [+0.010, +0.010]') in note()
    long[3]['curve'] = rising                                                 # one seed of the U-Net still moving
    assert 'its own loss weights' not in note()
    long[3]['curve'] = flat
    for r in long[:3]:                                                        # the baseline converged: nothing to add
        r['curve'] = flat
    assert 'its own loss weights' not in note()
    assert claims.reference_note(long, 'unet', 'single', 70, 'single').startswith('; the U-Net')
    assert claims.reference_note(long[:5] + long[6:], 'unet', 'single', 70, 'single') == ''   # 2 seeds: too few
    assert claims.reference_note(long, None, 'single', 70, 'single') == ''


def test_a_pending_command_keeps_a_method_until_it_has_the_seeds_a_verdict_needs():
    """A comparison not yet measured names the methods to run: one that has run a seed at that count but not three
    stays in the command (the grid skips the seeds it holds), one with all three does not."""
    import claims
    acdc = [dict(method='single', patients=70, seed=0)] + [dict(method='deep', patients=70, seed=s) for s in range(3)]
    missing = [('lomix', 'single', 70), ('lomix', 'deep', 70)]
    assert claims.pending_command(acdc, missing) == '`acdc_recipe.py --methods single lomix --patients 70 --compare 70`'


def test_claims_rows_read_the_acdc_recipe_for_lomix_arco_and_vqseg(monkeypatch):
    "The ACDC rows pair a method with its own baseline per labeled-patient count; a method not yet run stays pending."
    import claims
    curve = [(100, 0.5), (480, 0.60), (600, 0.605)]
    gain = {'single': 0.0, 'mean_teacher': 0.0, 'lomix': 0.02, 'lomix:weighting=raw': -0.03, 'arco:sampler=sg': 0.01}
    acdc = [dict(method=m, patients=p, seed=s, steps=600, curve=curve,
                 dice=0.6 + g + 0.01 * s + 0.002 * s * s * (g != 0))
            for m, g in gain.items() for p in (3, 70) if not (m.startswith('arco') and p == 70) for s in (0, 1, 2)]
    monkeypatch.setattr(claims, 'load', lambda name: dict(acdc_recipe=acdc).get(name, []))
    lomix = [r for r in claims.lomix_rows() if r['setting'].startswith('ACDC')]
    # single is the only baseline run: two weightings x two patient counts; deep and additive stay pending, named
    assert len(lomix) == 5 and all('over single-output' in r['claim'] for r in lomix[:4])
    normalised_3, normalised_70, raw_3, raw_70, pending = lomix
    assert pending['verdict'] == 'not measured' and pending['note'].startswith('8 of 12 comparisons not measured')
    assert '3 patients: normalised vs deep, raw vs deep, normalised vs additive, raw vs additive' in pending['note']
    assert '`acdc_recipe.py --methods deep additive --patients 3 --compare 3`' in pending['note']   # LoMix ran at 3
    # all 70 patients: the U-Net converges only by 1500 steps, so the command asks for that budget's own section
    assert ('--patients 70 --compare 70 --steps 1500 --json benchmarks/acdc_long.json --section acdc_long`'
            in pending['note'])
    assert normalised_3['verdict'] == 'reproduced' and 'difference +0.023' in normalised_3['result']  # 0.02 + 0.002 s^2
    assert 'all 70 labeled patients' in normalised_70['setting'] and '+ 16 unlabeled' not in normalised_70['setting']
    assert raw_3['verdict'] == 'contradicted' and "raw softplus" in raw_3['claim']
    long = [dict(r, steps=1500, dice=r['dice'] + 0.05) for r in acdc if r['patients'] == 70 and r['method'] == 'lomix']
    long += [dict(r, method='deep', steps=1500) for r in acdc if r['patients'] == 70 and r['method'] == 'single']
    monkeypatch.setattr(claims, 'load', lambda name: dict(acdc_recipe=acdc, acdc_long=long).get(name, []))
    *_, deep_long, pending = [r for r in claims.lomix_rows() if r['setting'].startswith('ACDC')]
    assert deep_long['setting'].startswith('ACDC, all 70 labeled patients, 1500 steps') and 'deep' in deep_long['result']
    assert pending['note'].startswith('7 of 12') and 'normalised vs deep' not in pending['note'].split('all 70')[1]
    variance_pending, mt_sg, arco_pending = claims.arco_rows()
    assert variance_pending['verdict'] == 'not measured'
    assert mt_sg['claim'].endswith('(SG)') and mt_sg['verdict'] == 'reproduced' and '3 labeled' in mt_sg['setting']
    # every sampler at 1, 3 and 7 patients: what has not run is one row, with the commands (the mean teacher first
    # where it has not run either; counts that need the same runs share a command)
    assert arco_pending['verdict'] == 'not measured' and arco_pending['note'].startswith(
        '8 of 9 comparisons not measured yet (1 patient: NS, SG, SAG; 3 patients: NS, SAG; 7 patients: NS, SG, SAG;')
    assert ('`acdc_recipe.py --methods mean_teacher arco:sampler=ns arco:sampler=sg arco:sampler=sag --patients 1 7 '
            '--compare 1 7`' in arco_pending['note'])
    assert '`acdc_recipe.py --methods arco:sampler=ns arco:sampler=sag --patients 3 --compare 3`' in arco_pending['note']
    assert [r['verdict'] for r in claims.vqseg_rows()] == ['not measured'] * 3   # no vqseg run: all three pending
    # VQ-Seg at 3 patients only: its rows against the U-Net and the mean teacher; the baseline with dropout (the issue's)
    # and 7 patients stay pending; the keep-probability ablation has its paper's best (0.7) against 0.9, not yet 0.5
    acdc += [dict(r, method=m, dice=r['dice'] + g) for r in acdc if r['method'] == 'single' and r['patients'] == 3
             for m, g in (('unet', 0.0), ('vqseg', 0.05), ('vqseg:eps=0.7', 0.07))]
    unet, mt, pending, qpm, keep_09, keep_pending = claims.vqseg_rows()
    assert unet['verdict'] == 'reproduced' and mt['claim'].startswith('VQ-Seg > mean teacher (no dropout)')
    assert pending['claim'].startswith('VQ-Seg > supervised U-Net and mean teacher (no dropout) and mean teacher + dropout')
    assert ('not measured yet: supervised U-Net at 7 patients; mean teacher at 7 patients; mean teacher + dropout at 3 '
            'and 7 patients (`acdc_recipe.py --methods mean_teacher:dropout=0.5 --patients 3 --compare 3`') in pending['note']
    assert qpm['verdict'] == 'not measured'
    assert keep_09['claim'].endswith('0.7, > 0.9') and keep_09['verdict'] == 'reproduced'     # 0.02 higher in every seed
    assert keep_pending['note'] == 'not measured yet (`acdc_recipe.py --methods vqseg:eps=0.5 --patients 3 --compare 3`)'
    assert 'the other seeds' not in keep_09['note']                                  # all three seeds ran
    # one seed of the dropout baseline: its row says "too few seeds" and names the command that runs the other two
    acdc += [dict(r, method='mean_teacher:dropout=0.5') for r in acdc if r['method'] == 'unet' and r['seed'] == 0]
    dropout = claims.vqseg_rows()[2]
    assert dropout['claim'].startswith('VQ-Seg > mean teacher + dropout') and dropout['verdict'] == 'too few seeds (1 of 3)'
    assert dropout['note'].endswith(
        '; the other seeds: `acdc_recipe.py --methods mean_teacher:dropout=0.5 --patients 3 --compare 3`')
    # another budget's grid names its own file: LoMix at 70 patients and 1500 steps, one seed of deep supervision
    long = [dict(r, steps=1500) for r in acdc if r['patients'] == 70 and r['method'] == 'lomix']
    long += [dict(r, method='deep', steps=1500) for r in acdc if r['patients'] == 70 and r['method'] == 'single'][:1]
    monkeypatch.setattr(claims, 'load', lambda name: dict(acdc_recipe=acdc, acdc_long=long).get(name, []))
    deep_long = [r for r in claims.lomix_rows() if '1500 steps' in r['setting']][0]
    assert deep_long['note'].endswith('the other seeds: `acdc_recipe.py --methods deep --patients 70 --compare 70 '
                                      '--steps 1500 --json benchmarks/acdc_long.json --section acdc_long`')


def test_the_claims_sanity_row_names_the_counts_still_moving(monkeypatch):
    "The first sanity row holds on the means, and says at which labeled-patient counts the U-Net had not converged."
    import claims
    flat, rising = [(100, 0.5), (480, 0.600), (600, 0.605)], [(100, 0.5), (480, 0.70), (600, 0.75)]
    acdc = [dict(method='unet', patients=p, seed=s, steps=600, dice=d + 0.01 * s, curve=c)
            for p, d, c in ((1, 0.3, rising), (3, 0.6, flat), (70, 0.8, rising)) for s in (0, 1, 2)]
    monkeypatch.setattr(claims, 'load', lambda name: dict(acdc_recipe=acdc).get(name, []))
    labels = claims.sanity_rows()[0]
    assert labels['verdict'] == 'holds, baseline not converged at 1, all 70 patients'
    assert '1: 5.00, 3: 0.50, all 70: 5.00 Dice points' in labels['note']
    acdc[3]['dice'] = acdc[4]['dice'] = acdc[5]['dice'] = 0.2                # 3 patients below 1: the row fails
    assert claims.sanity_rows()[0]['verdict'].startswith('fails')
    acdc[3]['dice'] = acdc[5]['dice'] = 0.65; acdc[4]['dice'] = 0.9        # seed 1: 3 patients above 70: the mean still rises
    assert claims.sanity_rows()[0]['verdict'].startswith('holds on the mean, not in seed 1,')
    assert 'acdc_long' not in labels['note']                                  # no longer grid yet: no word on it
    long = [dict(method='unet', patients=70, seed=s, steps=1500, dice=0.86 + 0.01 * s, curve=c)
            for s, c in ((0, flat), (1, rising))] + [dict(method='lomix', patients=70, seed=0, steps=1500, dice=0.9,
                                                          curve=flat)]
    monkeypatch.setattr(claims, 'load', lambda name: dict(acdc_recipe=acdc, acdc_long=long).get(name, []))
    note = claims.sanity_rows()[0]['note']
    assert note.endswith('at 1500 steps (the acdc_long grid) all 70: 0.865 ± 0.007 (2 seeds), largest change over the '
                         'last fifth 5.00 Dice points: seed 1 rising')        # the moving seed decides; LoMix not read
    assert '(converged at' not in claims.sanity_rows()[0]['verdict']              # 2 seeds: too few to say converged
    long[1]['curve'] = flat
    assert claims.sanity_rows()[0]['note'].endswith('0.50 Dice points (converged)')
    # three converged seeds at 70 patients, and the 1-patient U-Net at the longer budget with one seed still moving
    long.append(dict(method='unet', patients=70, seed=2, steps=1500, dice=0.87, curve=flat))
    long += [dict(method='unet', patients=1, seed=s, steps=1500, dice=0.4, curve=rising if s == 2 else flat)
             for s in range(3)]
    row = claims.sanity_rows()[0]
    assert row['verdict'].endswith('baseline not converged at 1, all 70 patients (converged at 1500 steps: all 70)')
    assert ('(the acdc_long grid) 1: 0.400 ± 0.000 (3 seeds), largest change over the last fifth 5.00 Dice points: '
            'seed 2 rising; all 70: 0.867 ± 0.006 (3 seeds)') in row['note']
    long[-1]['curve'] = flat
    assert claims.sanity_rows()[0]['verdict'].endswith('(converged at 1500 steps: 1, all 70)')


def test_a_second_budget_draws_its_own_picture_and_shows_it(tmp_path, monkeypatch):
    "`--section` gives a budget its own table: its curves go to `<section>.png`, never over the first section's picture."
    import _results
    import mamba_home
    monkeypatch.setattr(_results, 'RESULTS', tmp_path / 'RESULTS.md')
    run = lambda v, s, steps, d: dict(variant=v, dataset='acdc', seed=s, steps=steps, params=2e6, seconds_per_step=1.0,
                                      dice=d, per_structure={'1': d}, curve=[(steps // 2, d - 0.1), (steps, d)], machine='m')
    first, second = [run('home', 0, 40, 0.5), run('unet', 0, 40, 0.4)], [run('home', 0, 80, 0.7), run('unet', 0, 80, 0.6)]
    _results.runs_report('mamba_home_acdc', mamba_home.plot, mamba_home.table)(dict(runs=first))
    picture = (tmp_path / 'mamba_home_acdc.png').read_bytes()
    _results.runs_report('mh_long', mamba_home.plot, mamba_home.table)(dict(runs=second))
    assert (tmp_path / 'mamba_home_acdc.png').read_bytes() == picture and (tmp_path / 'mh_long.png').exists()
    text = (tmp_path / 'RESULTS.md').read_text()
    assert text.index('(mamba_home_acdc.png)') < text.index('<!-- /mamba_home_acdc -->') < text.index('(mh_long.png)')
    assert 'ACDC training frames as volumes' in text and 'batch 2 patches of 8x96x96' in text   # not the 2-D recipe's


def test_every_grid_budget_runs_a_script_that_takes_its_flags_longer_each_time_into_files_of_its_own():
    """The budgets that claims.py, `recipe_curves` and notebooks 12, 31 and 42 read (`medseg_nb.viz.GRID_BUDGETS`): each
    command runs a script that exists and defines every flag given; each later budget has more steps than the one
    before and writes its own runs file and RESULTS.md section (or has as many steps with the learning rate decayed)."""
    import re
    from medseg_nb.cli import DATASET_DEFAULTS
    from medseg_nb.viz import GRID_BUDGETS, grid_command
    root = Path(__file__).parents[1]
    shared = (root / 'benchmarks' / '_results.py').read_text()           # --json, --section, --shard, --merge
    for grid, order in GRID_BUDGETS.items():
        steps, decayed = [], []
        for k, (file, _) in enumerate(order):
            script, *args = grid_command(file, ' --seeds 0').split()
            source = (root / script).read_text()
            for flag in (a for a in args if a.startswith('--')):
                assert f"'{flag}'" in source + shared, (file, flag)
            default = re.search(r"add_argument\('--steps', type=int, default=(\d+|DATASET_DEFAULTS\['([\w-]+)'\]\['steps'\])",
                                source)
            default = int(DATASET_DEFAULTS[default.group(2)]['steps'] if default.group(2) else default.group(1))
            steps.append(int(args[args.index('--steps') + 1]) if '--steps' in args else default)
            if k:
                assert args[-4:] == ['--json', f'benchmarks/{file}.json', '--section', file], file
            decayed.append('--schedule' in args)
        # more steps each time, or the same steps with the learning rate decayed where the one before kept it constant
        assert all(b > a or (b == a and d and not c) for a, b, c, d in zip(steps, steps[1:], decayed, decayed[1:])), \
            (grid, steps, decayed)


def test_a_run_cut_short_in_a_kept_work_folder_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """`--work DIR` keeps each run's folder, so that a grid rerun after a session ended mid-run (a 100-minute ACDC run on
    this CPU outlasts what is left of most sessions) continues it from its last checkpoint instead of from step 0; its
    time is the sum of the stretches, read from the history, whose clock restarts where the run resumed."""
    from medseg_nb.cli import train
    ap = argparse.ArgumentParser()
    grid_args(ap, tmp_path / 'grid.json')
    work_args(ap)
    with work_dir(ap.parse_args(['--work', str(tmp_path / 'work')])) as work:
        pass
    assert Path(work).is_dir()                                              # kept
    with work_dir(ap.parse_args([])) as gone:
        assert Path(gone).is_dir()
    assert not Path(gone).exists()                                          # the default: a temporary folder

    out = Path(work) / 'unet_2'
    assert resumed(out, 6)[0] is None                                     # nothing to resume
    # a clock that moves 1 s each time it is read: these steps take milliseconds, and rows written to 0.01 s tied, so
    # that the restart could not be seen (the test failed now and then on a busy machine); a row every step
    monkeypatch.setattr(time, 'time', itertools.count(1_000_000.0).__next__)
    opts = dict(method_options=dict(width=4, depth=2), progress=False, train_options=dict(
        val_every=2, log_every=1, batch_size=2, patch=(32, 32), val_items=1, metrics=('dice',)))
    train('unet', 'phantom-vessels', out, steps=4, **opts)                  # a run "cut short" at step 4 of 6
    assert resumed(out, 6)[0] == out / 'last.pt'
    with pytest.raises(ValueError, match='past this run.s 1 steps'):
        resumed(out, 1)                                                    # another budget's folder is refused
    s = train('unet', 'phantom-vessels', out, steps=6, resume=resumed(out, 6)[0], **opts)
    hist = json.loads((out / 'history.json').read_text())
    assert s['steps'] == 6 and [r['step'] for r in hist if 'val_dice_mean' in r] == [2, 4, 6]
    restarts = [i for i in range(1, len(hist)) if hist[i]['seconds'] < hist[i - 1]['seconds']]
    assert restarts and train_seconds(hist) > max(r['seconds'] for r in hist)


def test_train_seconds_adds_the_stretches_of_a_resumed_run():
    rows = [dict(step=1, seconds=1.0), dict(step=2, seconds=2.0), dict(step=2), dict(step=3, seconds=0.5),
            dict(step=4, seconds=1.5)]
    assert train_seconds(rows) == pytest.approx(3.5)                        # 2.0 before the restart, 1.5 after
    assert train_seconds(rows[:2]) == pytest.approx(2.0) and train_seconds([]) == 0.0


def test_a_run_records_the_load_it_had_and_a_resumed_stretch_adds_to_it(tmp_path, monkeypatch):
    """The ACDC table's "load" column: each run keeps the machine's load average and its CPU share in `usage.json`
    beside its checkpoints, written while it trains (a run cut short keeps them), and a resumed stretch adds to the
    stretches before it; the table shows the range over seeds, and "–" for runs from before it was recorded."""
    import itertools, os, types
    import _results
    # A clock of the test's own, so that what is asserted does not hang on how busy the machine is (a busy loop on a
    # loaded machine gets a small share of a core: that is what the CPU share measures, not a defect)
    clock = types.SimpleNamespace(wall=100.0, cpu=50.0)
    monkeypatch.setattr(_results, 'time', types.SimpleNamespace(monotonic=lambda: clock.wall,
                                                                 process_time=lambda: clock.cpu))
    loads = itertools.chain([1.0, 3.0], itertools.repeat(2.0))
    monkeypatch.setattr(os, 'getloadavg', lambda: (next(loads), 0.0, 0.0))
    usage = tmp_path / 'run' / 'usage.json'
    with machine_use(tmp_path / 'run', every=0.02) as use:
        clock.wall += 10.0; clock.cpu += 9.0                           # busy: 9 CPU seconds in 10 wall seconds
        deadline = time.monotonic() + 30
        while not (usage.is_file() and json.loads(usage.read_text())['wall'] > 9) and time.monotonic() < deadline:
            time.sleep(0.01)                                           # until a read made after the busy stretch
        kept = json.loads(usage.read_text())
    assert kept['samples'] >= 1 and kept['wall'] == pytest.approx(10.0)    # written while the block still ran
    first = json.loads(usage.read_text())
    assert first['samples'] >= 2 and use['load'] == pytest.approx(first['load_sum'] / first['samples'], abs=0.01)
    assert 1.0 <= use['load'] <= 3.0 and use['cpu_share'] == pytest.approx(0.9)
    with machine_use(tmp_path / 'run', every=1000.0) as again:            # the resumed stretch: one read, at its end
        clock.wall += 10.0; clock.cpu += 1.0                           # mostly waiting: 1 CPU second in 10
    second = json.loads(usage.read_text())
    assert second['samples'] == first['samples'] + 1
    assert second['wall'] == pytest.approx(20.0) and second['cpu'] == pytest.approx(10.0)   # the stretches add up
    assert again['cpu_share'] == pytest.approx(0.5) and again['load'] == pytest.approx(
        second['load_sum'] / second['samples'], abs=0.01)

    import acdc_recipe
    assert [acdc_recipe.spread(v) for v in ([], [1.96], [2.04, 1.96], [1.0, 2.44])] == ['–', '2.0', '2.0', '1.0-2.4']


def test_the_gpu_check_runs_on_a_cpu_before_a_device_minute_is_spent(monkeypatch, capsys):
    """`gpu_check.py --compile` and its profile run end to end on the CPU (a dry run writes nothing): a lent GPU has 15
    minutes, and a script that fails there spends them."""
    import gpu_check
    import torch
    monkeypatch.setattr(sys, 'argv', ['gpu_check.py', '--dry-run-cpu', '--compile', 'eager'])
    assert gpu_check.main() == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith('| mamba_home')]
    assert rows and 'finite' in rows[0] and 'failed' not in rows[0], rows
    row = gpu_check.launch_profile(torch.device('cpu'), None, steps=6)
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert 'failed' not in row and cells[1] == '0' and float(cells[3]) > 0, row   # no GPU kernels on a CPU; wall time


def test_the_mean_teacher_sanity_row_reads_each_budget_and_names_what_moved(monkeypatch):
    "One mean-teacher row per grid that ran it (600 and 1500 steps), paired by seed; a curve still moving is named."
    import claims
    flat, rising = [(100, 0.5), (480, 0.600), (600, 0.605)], [(100, 0.5), (480, 0.70), (600, 0.75)]
    acdc = [dict(method=m, patients=3, seed=s, steps=600, dice=d + 0.01 * s, curve=c)
            for m, d, c in (('unet', 0.60, flat), ('mean_teacher', 0.62, rising)) for s in (0, 1, 2)]
    long = [dict(r, steps=1500, curve=flat, dice=r['dice'] + (0.04 if r['method'] == 'unet' else 0.0)) for r in acdc]
    long = [r for r in long if not (r['method'] == 'mean_teacher' and r['seed'] == 2)]  # one seed still to run
    monkeypatch.setattr(claims, 'load', lambda name: dict(acdc_recipe=acdc, acdc_long=long).get(name, []))
    short, longer = [r for r in claims.sanity_rows() if r['claim'].startswith('mean teacher')]
    assert (short['setting'], longer['setting']) == ('ACDC, 3 labeled patients, 600 steps, equal steps',
                                                    'ACDC, 3 labeled patients, 1500 steps, equal steps')
    assert short['verdict'] == 'holds; not converged: mean teacher'          # +0.02 in every seed, but still rising
    assert short['note'] == ('3 paired seeds; largest change over the last fifth: U-Net 0.50, mean teacher 5.00 Dice '
                             'points (converged: < 1); mean teacher: seed 0 rising, seed 1 rising, seed 2 rising')
    assert longer['verdict'] == 'too few seeds (2 of 3)'                     # seed 2's U-Net has no partner yet
    assert longer['result'].startswith('mean teacher 0.625 ± 0.007; minus U-Net -0.020')
    long.append(dict(acdc[5], steps=1500, curve=flat))
    assert [r for r in claims.sanity_rows() if '1500' in r['setting']][0]['verdict'] == 'fails'   # lower in every seed
    long[3]['dice'] += 0.05                      # the teacher now leads in seed 0, trails in seeds 1 and 2: a tie below
    tie = [r for r in claims.sanity_rows() if '1500' in r['setting']][0]
    assert tie['result'] == 'mean teacher 0.647 ± 0.021; minus U-Net -0.003 [-0.075, +0.068]'
    assert tie['verdict'] == 'fails on the mean, not significant'
    acdc += [dict(r, patients=1) for r in acdc]                  # one labeled patient: the claim says so in the singular
    one = [r for r in claims.sanity_rows() if r['setting'].startswith('ACDC, 1 labeled patient,')]
    assert [r['claim'] for r in one] == ['mean teacher >= supervised at 1 labeled patient'], one


def test_semi_supervised_rows_read_the_longer_budget_too(monkeypatch):
    "VQ-Seg and ARCO meet the U-Net and the mean teacher in the 1500-step grid as well; one seed there is not a verdict."
    import claims
    flat = [(100, 0.5), (1200, 0.63), (1500, 0.635)]
    long = [dict(method=m, patients=3, seed=s, steps=1500, dice=0.63, curve=flat, per_class={})
            for m in ('unet', 'mean_teacher') for s in (0, 1, 2)]
    long += [dict(method='vqseg', patients=3, seed=0, steps=1500, dice=0.5, curve=flat, per_class={}),
             dict(method='arco:sampler=sg', patients=3, seed=0, steps=1500, dice=0.6, curve=flat, per_class={}),
             dict(method='vqseg:eps=0.7', patients=3, seed=0, steps=1500, dice=0.52, curve=flat, per_class={})]
    monkeypatch.setattr(claims, 'load', lambda name: dict(acdc_long=long).get(name, []))
    vq = [r for r in claims.vqseg_rows() if '1500 steps' in r['setting']]
    # the keep-probability ablation too (it read only the 600-step grid): 0.7 against 0.9, the one keep run there
    assert [r['claim'] for r in vq] == ['VQ-Seg > supervised U-Net (no number in the abstract)',
                                        'VQ-Seg > mean teacher (no dropout) (no number in the abstract)',
                                        "QPM keep probability: the paper's best, 0.7, > 0.9"]
    assert {r['verdict'] for r in vq} == {'too few seeds (1 of 3)'}
    assert vq[2]['result'] == 'keep 0.9 0.500, keep 0.7 0.520; difference +0.020'
    assert vq[0]['note'].endswith('the other seeds: `acdc_recipe.py --methods vqseg --patients 3 --compare 3 --steps 1500 '
                                  '--json benchmarks/acdc_long.json --section acdc_long`')
    arco = [r for r in claims.arco_rows() if '1500 steps' in r['setting']]
    assert [r['claim'] for r in arco] == ['ARCO beats the mean teacher at few labels (SG)']


def test_nsda_rows_read_each_acdc_budget_and_name_a_baseline_still_moving(monkeypatch):
    "NSDA meets the U-Net in the recipe's 600-step grid and in the 1500-step one; one seed there is not a verdict."
    import claims
    flat, moving = [(100, 0.5), (480, 0.680), (600, 0.684)], [(100, 0.5), (1200, 0.70), (1500, 0.74)]
    short = [dict(method=m, patients=7, seed=s, steps=600, dice=d + 0.01 * s, curve=flat)
             for m, d in (('unet', 0.68), ('nsda', 0.63)) for s in (0, 1, 2)]
    long = [dict(method='unet', patients=7, seed=s, steps=1500, dice=0.73, curve=moving) for s in (0, 1, 2)]
    long.append(dict(method='nsda', patients=7, seed=0, steps=1500, dice=0.75, curve=flat))
    monkeypatch.setattr(claims, 'load', lambda name: dict(acdc_recipe=short, acdc_long=long).get(name, []))
    rows = claims.nsda_rows()
    assert [r['setting'] for r in rows] == ['ACDC, 7 labeled patients, 600 steps, the acdc recipe (batch 16), CPU',
                                            'ACDC, 7 labeled patients, 1500 steps, the acdc recipe (batch 16), CPU']
    assert rows[0]['verdict'] == 'contradicted' and rows[0]['result'].endswith('difference -0.050 [-0.050, -0.050]')
    assert '`' not in rows[0]['note']                                       # every seed has run: no command
    assert rows[1]['verdict'] == 'too few seeds (1 of 3)'
    assert rows[1]['result'] == 'U-Net 0.730, U-Net + NSDA 0.750; difference +0.020'
    assert rows[1]['note'].startswith('tail change: U-Net 4.0, U-Net + NSDA 0.4 Dice points; U-Net: seed 0 rising; '
                                      'cost per step: the DRIVE')
    assert rows[1]['note'].endswith('the other seeds: `acdc_recipe.py --methods nsda --patients 7 --compare 7 --steps 1500 '
                                    '--json benchmarks/acdc_long.json --section acdc_long`')
    long += [dict(method='nsda', patients=7, seed=s, steps=1500, dice=0.75, curve=flat) for s in (1, 2)]
    assert claims.nsda_rows()[1]['verdict'] == 'reproduced, baseline not converged'
