"""Tiled against dense Gaussian-field rendering: peak memory and time of a forward + backward pass (CPU).

    python benchmarks/gaussian_render.py

Each measurement runs in a fresh process (peak resident memory above the process's baseline after import).
"""
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, write_section  # noqa: E402

CODE = textwrap.dedent('''
    import resource, sys, time, torch
    from medseg_nb.methods.gausam.gaussian_field import render, render_dense, init_gaussians
    torch.set_num_threads(1)
    mode, size, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    gs = init_gaussians(n, seed=0)
    for v in (gs.mu, gs.log_s, gs.theta, gs.alpha, gs.bias): v.requires_grad_(True)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    f = render(gs, size, size) if mode == 'tiled' else render_dense(gs, size, size)
    f.sigmoid().mean().backward()
    print(time.perf_counter() - t, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
''')


def measure(mode, size, n):
    r = subprocess.run([sys.executable, '-c', CODE, mode, str(size), str(n)], capture_output=True, text=True)
    if r.returncode:
        return None
    t, mb = map(float, r.stdout.split())
    return t, mb


def main():
    rows = []
    for size, n in [(256, 1024), (512, 4096), (1024, 4096)]:
        tiled = measure('tiled', size, n)
        dense = measure('dense', size, n) if size * size * n <= 512 * 512 * 1024 else None
        rows.append((size, n, tiled, dense))
        print(rows[-1], flush=True)
    fmt = lambda m: f'{m[0]:.2f} s, {m[1]:.0f} MB' if m else 'not run (would need > 4 GB)'
    body = f"""## Gaussian-field rendering, tiled against dense (`benchmarks/gaussian_render.py`)

Machine: {machine()}, one thread. Forward and backward of sigmoid(field).mean(); primitives with the default
start (sigma = 0.25 / sqrt(N) of the image); peak resident memory above the baseline, fresh process each.

| image | N | tiled (64 px tiles, checkpointed) | dense (every primitive at every pixel) |
|---|---|---|---|
""" + '\n'.join(f'| {s}x{s} | {n} | {fmt(t)} | {fmt(d)} |' for s, n, t, d in rows)
    write_section('gaussian_render', body)
    print(body)


if __name__ == '__main__':
    main()
