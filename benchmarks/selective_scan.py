"""The selective scan's implementations against each other: the sequential reference, the chunked scan and (on a GPU)
the Triton kernel of notebook 43, forward and forward+backward, at growing sequence lengths.

    python benchmarks/selective_scan.py                         # CPU: L = 1k .. 64k, one thread
    python benchmarks/selective_scan.py --device cuda --lengths 4096 32768 262144    # on a lent GPU

Each device writes its own section of RESULTS.md (selective_scan, selective_scan_gpu). Targets of the performance
issue: on the CPU the chunked scan at least 5x the sequential one at L = 4096; on a GPU the Triton kernel at least 20x
the chunked scan at L = 32768.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, write_section  # noqa: E402

from medseg_nb.methods.mamba_home.selective_scan import (_triton_scan, selective_scan_chunked, selective_scan_ref,  # noqa: E402
                                                         selective_scan_triton)

SCANS = dict(sequential=selective_scan_ref, chunked=selective_scan_chunked, triton=selective_scan_triton)


def inputs(L, device, d=64, n=16, grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g).to(device)
    a = dict(u=r(1, d, L), delta=r(1, d, L) * 0.5, A=-torch.exp(r(d, n) * 0.5), B=r(1, n, L), C=r(1, n, L), D=r(d))
    if grad:
        for v in a.values(): v.requires_grad_(True)
    return a


def timed(fn, device, repeats=3):
    "Milliseconds: on the CPU the best of `repeats`, on a GPU the median of `repeats` timed by CUDA events."
    fn()
    if device == 'cuda':
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(); fn(); end.record(); torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)
    best = float('inf')
    for _ in range(repeats):
        t = time.perf_counter(); fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def fwd(name, x):
    return lambda: SCANS[name](**x, delta_softplus=True)


def fwd_bwd(name, x):
    def run():
        for v in x.values(): v.grad = None
        SCANS[name](**x, delta_softplus=True).square().sum().backward()
    return run


def gradients(name, L, device):
    x = inputs(L, device, grad=True)
    fwd_bwd(name, x)()
    return [v.grad.detach().double() for v in x.values()]


def cell(ms, base=None):
    return '-' if ms is None else f'{ms:.1f}' + ('' if base is None else f' ({base / ms:.1f}x)')


def network_rows():
    """Mamba-HoME as it trains on ACDC patches (batch 2 of 8 x 96 x 96, the acdc-3d defaults) on the CPU: each Mamba
    layer's scan at the shape the network gives it, forward+backward, then the network's forward+backward, with the
    Trainer's allocator setting (`reuse_freed_memory`). Rows of the second table."""
    import medseg_nb.methods.mamba_home.selective_scan as scan_module
    from medseg_nb.methods.mamba_home.model import MambaHoMENet
    from medseg_nb.train import reuse_freed_memory
    reuse_freed_memory()
    torch.manual_seed(0)
    net = MambaHoMENet(1, 4, 'small', 'home')
    patch = torch.randn(2, 1, 8, 96, 96)
    shapes, chunked = [], scan_module.selective_scan_chunked

    def record(u, delta, A, *args, **kw):
        shapes.append((*u.shape, A.shape[1]))  # b x d x L, and N from A: d x N
        return chunked(u, delta, A, *args, **kw)

    scan_module.selective_scan_chunked = record
    try:
        with torch.no_grad():
            net(patch)
    finally:
        scan_module.selective_scan_chunked = chunked
    rows = []
    for b, d, L, n in shapes:
        x = inputs(L, 'cpu', d=d, n=n, grad=True)
        x = {k: (v.expand(b, *v.shape[1:]).detach().clone().requires_grad_(True) if v.ndim == 3 else v)
             for k, v in x.items()}
        ms = timed(lambda: (chunked(**x, delta_softplus=True).square().sum().backward()), 'cpu')
        rows.append(f'| scan b={b}, d={d}, N={n}, L={L} | {ms:.1f} |')
        print(rows[-1], flush=True)

    def step():
        net.zero_grad(set_to_none=True)
        out = net(patch)
        (out.logits.square().mean() + sum(a.square().mean() for a in out.aux)).backward()

    rows.append(f'| the network, forward+backward | {timed(step, "cpu"):.1f} |')
    print(rows[-1], flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    ap.add_argument('--lengths', type=int, nargs='+', default=None, help='default: 1k .. 64k (CPU), 4k 32k 256k (GPU)')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--sequential-up-to', type=int, default=None, help='longest L the sequential scan runs forward')
    ap.add_argument('--backward-up-to', type=int, default=None, help='longest L the sequential scan runs backward')
    ap.add_argument('--no-network', action='store_true', help="CPU: skip Mamba-HoME's scans and step at ACDC shapes")
    a = ap.parse_args()
    dev, gpu = a.device, a.device == 'cuda'
    if gpu and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device here')
    lengths = a.lengths or ([4096, 32768, 262144] if gpu else [1024, 4096, 16384, 65536])
    seq_fwd = a.sequential_up_to or (32768 if gpu else 65536)
    seq_bwd = a.backward_up_to or (4096 if gpu else 16384)
    torch.set_num_threads(a.threads)
    # the Triton kernel on a GPU, or on the CPU under its interpreter (TRITON_INTERPRET=1: slow, for checking the script)
    interp = os.environ.get('TRITON_INTERPRET') == '1'
    names = ['sequential', 'chunked'] + (['triton'] if (gpu or interp) and _triton_scan() is not None else [])
    rows = []
    for L in lengths:
        x, xg = inputs(L, dev), inputs(L, dev, grad=True)
        reps = 10 if gpu else (1 if L > 16384 else 3)
        f, fb = {}, {}
        for name in names:
            if name == 'sequential' and L > seq_fwd:
                f[name] = fb[name] = None
                continue
            f[name] = timed(fwd(name, x), dev, 1 if name == 'sequential' else reps)
            fb[name] = None if name == 'sequential' and L > seq_bwd else \
                timed(fwd_bwd(name, xg), dev, 1 if name == 'sequential' else reps)
        # the fastest against the one before it: Triton against chunked on a GPU, chunked against sequential on the CPU
        new, old = names[-1], names[-2]
        y = SCANS[new](**x, delta_softplus=True)
        err = float((y - SCANS[old](**x, delta_softplus=True)).abs().max() / y.abs().max())
        gerr = '-'
        if fb[old] is not None:
            ga, gb = gradients(new, L, dev), gradients(old, L, dev)
            gerr = f"{max(float((p - q).abs().max() / q.abs().max()) for p, q in zip(ga, gb)):.1e}"
        # in brackets: the speed-up over the implementation before it (sequential, chunked, Triton)
        speed = lambda t: [cell(t[n], t[names[i - 1]] if i else None) for i, n in enumerate(names)]
        rows.append(f"| {L} | " + ' | '.join(speed(f) + speed(fb)) +
                    f' | {err:.1e} | {gerr} |')
        print(rows[-1], flush=True)
    head = ' | '.join(f'{n} fwd (ms)' for n in names) + ' | ' + ' | '.join(f'{n} fwd+bwd (ms)' for n in names)
    what = f'{names[-1]} against {names[-2]}'
    timing = 'median of 10 runs timed by CUDA events (1 for the sequential scan)' if gpu else \
        f'CPU with {a.threads} thread(s); best of 3 (1 for the slowest)'
    target = ('Target: the Triton kernel at least 20x the chunked scan at L = 32768 (forward and forward+backward).'
              if gpu else 'Target: the chunked scan at least 5x the sequential one at L = 4096.')
    body = f"""## Selective scan on {'a GPU' if gpu else 'the CPU'} (`benchmarks/selective_scan.py{' --device cuda' if gpu else ''}`)

Machine: {machine()}; {timing}. One sequence, D = 64 channels, N = 16 states, softplus on delta;
forward+backward: the gradient of the squared output's sum with respect to all inputs. In brackets: the speed-up over
the column before (sequential, chunked, Triton); '-': not run (the sequential scan forward past L = {seq_fwd}, backward past {seq_bwd}). Last two
columns: {what}, largest difference over the largest value, of the output and of the five gradients.

| L | {head} | output difference | gradient difference |
|---|{'---|' * (2 * len(names) + 2)}
{chr(10).join(rows)}

{target}"""
    if not gpu and not a.no_network:
        body += f"""

Mamba-HoME at its ACDC training shapes (`acdc-3d`: batch 2 of 8 x 96 x 96 patches, size 'small', 2 scan orders, so
b = 4 sequences per scan), chunked scan, CPU with {a.threads} thread(s), best of 3, glibc's allocator set as the
Trainer sets it (`reuse_freed_memory`, after the table above ran):

| what | fwd+bwd (ms) |
|---|---|
{chr(10).join(network_rows())}"""
    if not interp:
        write_section('selective_scan_gpu' if gpu else 'selective_scan', body)
    print(body)


if __name__ == '__main__':
    main()
