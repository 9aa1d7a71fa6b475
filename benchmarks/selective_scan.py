"""Chunked selective scan against the sequential reference, L = 1k .. 64k (CPU; GPU too when one is at hand, with the
Triton kernel of notebook 43 beside them).

    python benchmarks/selective_scan.py [--lengths 1024 4096 16384 65536] [--threads 1]

Target of the Mamba-HoME issue: the chunked scan at least 5x faster than the sequential one at L = 4k on the CPU.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, write_section  # noqa: E402

from medseg_nb.methods.mamba_home.selective_scan import (_triton_scan, selective_scan_chunked, selective_scan_ref,  # noqa: E402
                                                         selective_scan_triton)


def inputs(L, device, d=64, n=16, grad=False):
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g).to(device)
    a = dict(u=r(1, d, L), delta=r(1, d, L) * 0.5, A=-torch.exp(r(d, n) * 0.5), B=r(1, n, L), C=r(1, n, L), D=r(d))
    if grad:
        for v in a.values(): v.requires_grad_(True)
    return a


def timed(fn, device, repeats=3):
    fn()
    if device == 'cuda': torch.cuda.synchronize()
    best = float('inf')
    for _ in range(repeats):
        t = time.perf_counter(); fn()
        if device == 'cuda': torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lengths', type=int, nargs='+', default=[1024, 4096, 16384, 65536])
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--backward-up-to', type=int, default=16384)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for device in ['cpu'] + (['cuda'] if torch.cuda.is_available() else []):
        for L in a.lengths:
            x = inputs(L, device)
            ref = timed(lambda: selective_scan_ref(**x, delta_softplus=True), device, 1 if L > 16384 else 3)
            ch = timed(lambda: selective_scan_chunked(**x, delta_softplus=True), device)
            err = float((selective_scan_chunked(**x, delta_softplus=True) - selective_scan_ref(**x, delta_softplus=True)).abs().max())
            fb = ''
            if L <= a.backward_up_to:
                xg = inputs(L, device, grad=True)
                fr = timed(lambda: selective_scan_ref(**xg, delta_softplus=True).square().sum().backward(), device, 1)
                fc = timed(lambda: selective_scan_chunked(**xg, delta_softplus=True).square().sum().backward(), device, 1)
                fb = f'{fr:.0f} | {fc:.0f} | {fr / fc:.1f}x'
            else:
                fb = '- | - | -'
            tri = '- | - | -'
            if device == 'cuda' and _triton_scan() is not None:
                tt = timed(lambda: selective_scan_triton(**x, delta_softplus=True), device)
                terr = float((selective_scan_triton(**x, delta_softplus=True) - selective_scan_chunked(**x, delta_softplus=True)).abs().max())
                xg = inputs(L, device, grad=True)
                ttb = timed(lambda: selective_scan_triton(**xg, delta_softplus=True).square().sum().backward(), device)
                tri = f'{tt:.1f} ({ch / tt:.0f}x chunked) | {ttb:.1f} | {terr:.1e}'
            rows.append(f'| {device} | {L} | {ref:.1f} | {ch:.1f} | {ref / ch:.1f}x | {fb} | {err:.1e} | {tri} |')
            print(rows[-1], flush=True)
    body = f"""## Selective scan: chunked against sequential (`benchmarks/selective_scan.py`)

Machine: {machine()}; CPU with {a.threads} thread(s). One sequence, D = 64 channels, N = 16 states, softplus on delta;
best of 3 (1 for the slowest). Forward+backward: gradient of the squared output's sum.

| device | L | sequential fwd (ms) | chunked fwd (ms) | speed-up | sequential fwd+bwd (ms) | chunked fwd+bwd (ms) | speed-up | max abs. difference | Triton fwd (ms) | Triton fwd+bwd (ms) | Triton vs chunked, max abs. difference |
|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Targets: at least 5x at L = 4096 on the CPU; on a GPU the Triton kernel at least 20x the chunked scan at L = 32768."""
    write_section('selective_scan', body)
    print(body)


if __name__ == '__main__':
    main()
