"""Persistence + matching for a pair of 256 x 256 probability maps: gudhi against cripser (CPU).

    python benchmarks/match_speed.py [--size 256] [--repeats 20]

Target of the MATCH issue: under 50 ms per pair on the CPU.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, write_section  # noqa: E402

from medseg_nb.data.phantoms import gaussian_blur, gland_phantom  # noqa: E402
from medseg_nb.methods.match.model import features, reliable_features  # noqa: E402
from medseg_nb.methods.match.persistence import persistence  # noqa: E402


def maps(size, seed):
    g = gland_phantom(size, seed=seed)
    base = gaussian_blur(g['label'][None, None].float(), 2.0)[0, 0]
    noise = lambda s: gaussian_blur(torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(s)), 2.5)[0, 0]
    return [(0.8 * base + 0.3 * noise(s)).clamp(0, 1) for s in (seed, seed + 1)]


def timed(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--repeats', type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(1)
    pair = maps(a.size, 0)
    rows = []
    for backend in ('gudhi', 'cripser'):
        try:
            persistence(pair[0], backend)
        except ImportError:
            rows.append(f'| {backend} | not installed | | | |'); continue
        t_pers = timed(lambda: [persistence(m, backend) for m in pair], a.repeats)
        t_feat = timed(lambda: [features(m, backend=backend) for m in pair], a.repeats)
        t_all = timed(lambda: reliable_features([features(m, backend=backend) for m in pair]), a.repeats)
        nf = [len(features(m, backend=backend)[0]) for m in pair]
        rows.append(f'| {backend} | {t_pers:.1f} | {t_feat:.1f} | {t_all:.1f} | {nf} |')
    body = f"""## MATCH: persistence + matching for a pair of {a.size}x{a.size} maps (`benchmarks/match_speed.py`)

Machine: {machine()}; one thread; median of {a.repeats}. Two soft gland maps (phantom glands blurred, plus smooth noise).

| backend | persistence of both maps (ms) | + valid features and component masks (ms) | + pair scores, matching, reliability (ms) | valid features per map |
|---|---|---|---|---|
{chr(10).join(rows)}

Target: under 50 ms for the whole pipeline (last timing column)."""
    write_section('match_speed', body)
    print(body)


if __name__ == '__main__':
    main()
