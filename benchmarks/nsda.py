"""NSDA against a non-local self-attention block and an SE/CBAM-style block on the same feature maps (CPU).

Parameters, FLOPs (counted analytically: multiply-adds x 2, elementwise operations x 1), time (median of 3, one
thread) and peak extra memory (max RSS of a forked child, above its size at the fork), for 64-256 channels and
32x32-256x256 maps; then NSDA's time against the window size. The non-local block's attention matrix is (HW)^2:
at 256x256 it would need 17 GB per channel group, so it is not run there.

    python benchmarks/nsda.py [--channels 64 128 256] [--sizes 32 64 128 256]
"""
import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, write_section  # noqa: E402

from medseg_nb.methods.nsda import NSDA, default_window  # noqa: E402


class NonLocal(nn.Module):
    "Embedded-Gaussian non-local block (Wang et al., CVPR 2018), inner width C/2."
    def __init__(self, c):
        super().__init__(); i = c // 2
        self.theta, self.phi, self.g, self.out = nn.Conv2d(c, i, 1), nn.Conv2d(c, i, 1), nn.Conv2d(c, i, 1), nn.Conv2d(i, c, 1)
    def forward(self, x):
        B, C, H, W = x.shape
        q, k, v = self.theta(x).flatten(2), self.phi(x).flatten(2), self.g(x).flatten(2)
        att = torch.softmax(q.transpose(1, 2) @ k, -1)                       # B x HW x HW
        return x + self.out((v @ att.transpose(1, 2)).view(B, -1, H, W))


class CBAM(nn.Module):
    "SE-style channel attention (reduction 16, avg and max pooled) then a 7x7 spatial attention (Woo et al., ECCV 2018)."
    def __init__(self, c, r=16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(c, c // r, 1), nn.ReLU(), nn.Conv2d(c // r, c, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)
    def forward(self, x):
        ca = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))
        x = x * ca
        sa = torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
        return x * sa


def flops(name, C, H, W, window=None):
    n = H * W
    if name == 'NSDA': return 30 * C * n                              # two integral images of two maps, ~30 elementwise ops per element
    if name == 'non-local':
        i = C // 2
        return 2 * (3 * C * i * n + i * C * n) + 2 * 2 * n * n * i + 5 * n * n
    r = C // 16
    return 2 * 2 * (2 * C * r) + 4 * C * n + 2 * 2 * 49 * n + 4 * n


def child(name, C, H, q):
    torch.set_num_threads(1)
    blk = {'NSDA': NSDA, 'non-local': NonLocal, 'CBAM': CBAM}[name](C) if name != 'NSDA' else NSDA()
    x = torch.randn(1, C, H, H)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        blk(x)
        ts = []
        for _ in range(3):
            t = time.perf_counter(); blk(x); ts.append(time.perf_counter() - t)
    q.put(dict(ms=statistics.median(ts) * 1000, mb=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024,
               params=sum(p.numel() for p in blk.parameters())))


def measure(name, C, H):
    ctx = mp.get_context('fork'); q = ctx.Queue()
    p = ctx.Process(target=child, args=(name, C, H, q)); p.start(); r = q.get(); p.join()
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--channels', type=int, nargs='+', default=[64, 128, 256])
    ap.add_argument('--sizes', type=int, nargs='+', default=[32, 64, 128, 256])
    a = ap.parse_args()
    rows = []
    for C in a.channels:
        for H in a.sizes:
            for name in ('NSDA', 'CBAM', 'non-local'):
                if name == 'non-local' and H > 128:
                    rows.append(f'| {C} | {H} | {name} | {C // 2 * C * 4 + C:,} | {flops(name, C, H, H) / 1e9:.1f} | not run: (HW)² attention = {(H * H) ** 2 * 4 / 2 ** 30:.0f} GiB | |'); continue
                r = measure(name, C, H)
                rows.append(f"| {C} | {H} | {name} | {r['params']:,} | {flops(name, C, H, H) / 1e9:.3f} | {r['ms']:.1f} | {r['mb']:.0f} |")
                print(rows[-1], flush=True)
    wrows = []
    torch.set_num_threads(1)
    x = torch.randn(1, 64, 128, 128)
    for w in (3, 9, 17, 33, 65, 127):
        from medseg_nb.methods.nsda import nsda
        nsda(x, w); ts = []
        for _ in range(3):
            t = time.perf_counter(); nsda(x, w); ts.append(time.perf_counter() - t)
        pool = lambda: F.avg_pool2d(x, w, 1, w // 2, count_include_pad=False)
        pool(); tp = []
        for _ in range(3):
            t = time.perf_counter(); pool(); tp.append(time.perf_counter() - t)
        wrows.append(f'| {w} | {statistics.median(ts) * 1000:.1f} | {statistics.median(tp) * 1000:.1f} |')
        print(wrows[-1], flush=True)
    body = f"""## NSDA against non-local and CBAM blocks (`benchmarks/nsda.py`)

Machine: {machine()}; one thread, forward only (no gradient), batch 1; median of 3. FLOPs counted analytically
(GFLOP); memory = peak extra resident memory of the forward pass (MB). NSDA's window: {default_window(32)}, {default_window(64)},
{default_window(128)}, {default_window(256)} for 32, 64, 128, 256.

| channels | size | block | parameters | GFLOP | ms | peak MB |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

NSDA's time against its window (64 x 128 x 128 features), and one window average by `avg_pool2d` (the released way):

| window | NSDA, prefix sums (ms) | one avg_pool2d (ms) |
|---|---|---|
{chr(10).join(wrows)}"""
    write_section('nsda_blocks', body)
    print(body)


if __name__ == '__main__':
    main()
