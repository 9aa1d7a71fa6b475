"""Contourlet decomposition (ours, torch) against pywt.wavedec2 (bior4.4, separable wavelets) on the same input.

    python benchmarks/contourlet.py [--sizes 256,512,1024] [--repeat 5]

Not the same transform: the contourlet adds 2^l directions per level (redundant); this measures what a user
pays for directionality, on the CPU (and on the GPU when one is present).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pywt
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, write_section  # noqa: E402
from medseg_nb.methods.gausam.contourlet import contourlet_decompose, contourlet_reconstruct  # noqa: E402


def best_of(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', default='256,512,1024')
    ap.add_argument('--repeat', type=int, default=5)
    a = ap.parse_args()
    rows = []
    for n in (int(s) for s in a.sizes.split(',')):
        x = np.random.default_rng(0).random((n, n)).astype(np.float32)
        t_pywt = best_of(lambda: pywt.wavedec2(x, 'bior4.4', level=2, mode='symmetric'), a.repeat)
        xt = torch.from_numpy(x)[None, None]
        t_ours = best_of(lambda: contourlet_decompose(xt, (2, 3)), a.repeat)
        c = contourlet_decompose(xt, (2, 3))
        err = (contourlet_reconstruct(c) - xt).abs().max().item()
        row = dict(size=n, pywt_ms=1e3 * t_pywt, ours_cpu_ms=1e3 * t_ours, ratio_cpu=t_ours / t_pywt, err=err)
        if torch.cuda.is_available():
            xg = xt.cuda()
            def run():
                contourlet_decompose(xg, (2, 3)); torch.cuda.synchronize()
            row['ours_gpu_ms'] = 1e3 * best_of(run, a.repeat)
        rows.append(row)
        print(row, flush=True)
    gpu = 'ours GPU (ms) |' if torch.cuda.is_available() else ''
    lines = [f"| {r['size']}x{r['size']} | {r['pywt_ms']:.1f} | {r['ours_cpu_ms']:.1f} | {r['ratio_cpu']:.1f}x |"
             + (f" {r['ours_gpu_ms']:.2f} |" if 'ours_gpu_ms' in r else '') + f" {r['err']:.1e} |" for r in rows]
    body = f"""## Contourlet decomposition against `pywt.wavedec2` (`benchmarks/contourlet.py`)

Machine: {machine()}. One single-channel image, float32; ours: `contourlet_decompose(x, levels=(2, 3))` (2 pyramid
levels, 4 and 8 directions, non-subsampled DFB); pywt: `wavedec2(x, 'bior4.4', level=2)` (3 orientations per level,
decimated). Best of {a.repeat} runs. Ratio = ours / pywt on the CPU (above 1: ours is slower).

| size | pywt (ms) | ours CPU (ms) | ratio |{gpu} max reconstruction error |
|---|---|---|---|{'---|' if gpu else ''}---|
""" + '\n'.join(lines)
    write_section('contourlet', body)
    print(body)


if __name__ == '__main__':
    main()
