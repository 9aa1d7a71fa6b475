"""One prepared check for a lent GPU: kernels against their CPU references, training steps under autocast.

    python benchmarks/gpu_check.py            # on a CUDA machine; on a CPU-only one it says so and checks nothing
    python benchmarks/gpu_check.py --dry-run-cpu   # exercise the script on a CPU, writing nothing

Writes its table to benchmarks/RESULTS.md (section gpu_check) with the card's name. Keep it short: a lent
machine has minutes, not hours.
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, write_section  # noqa: E402


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeat=5):
    fn(); _sync()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync()
    return (time.perf_counter() - t) / repeat


def main():
    dry = '--dry-run-cpu' in sys.argv          # exercise the script on a CPU (no results are written)
    if not torch.cuda.is_available() and not dry:
        print('no CUDA device: nothing to check here (run this on the lent GPU machine, or --dry-run-cpu)')
        return 0
    from medseg_nb.core import get_method, load_methods, seed_everything
    from medseg_nb.methods.gausam.contourlet import contourlet_decompose, contourlet_reconstruct
    from medseg_nb.methods.gausam.gaussian_field import init_gaussians, render, render_dense
    from medseg_nb.losses import DiceCELoss
    load_methods(); dev = torch.device('cpu' if dry else 'cuda')
    rows = []

    # kernels against their CPU references
    x = torch.rand(2, 3, 512, 512)
    c_cpu = contourlet_decompose(x, (2, 3)); c_gpu = contourlet_decompose(x.to(dev), (2, 3))
    err = max((a.cpu() - b).abs().max().item() for a, b in zip(c_gpu['bands'], c_cpu['bands']))
    pr = (contourlet_reconstruct(c_gpu) - x.to(dev)).abs().max().item()
    t = timed(lambda: contourlet_decompose(x.to(dev), (2, 3)))
    rows.append(('contourlet 2x3x512x512: GPU vs CPU max diff / PR error / ms', f'{err:.1e} / {pr:.1e} / {1e3 * t:.1f}'))
    gs = init_gaussians(1024, seed=0)
    gd = type(gs)(*(v.to(dev) for v in (gs.mu, gs.log_s, gs.theta, gs.alpha, gs.bias)))
    err = (render(gd, 256, 256).cpu() - render_dense(gs, 256, 256)).abs().max().item()
    t = timed(lambda: render(gd, 1024, 1024))
    rows.append(('Gaussian field 1024 prims: GPU tiled vs CPU dense max diff / ms at 1024^2', f'{err:.1e} / {1e3 * t:.1f}'))

    from medseg_nb.methods.mamba_home.selective_scan import selective_scan, selective_scan_chunked, selective_scan_ref
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    a = dict(u=r(2, 64, 4096), delta=r(2, 64, 4096) * 0.5, A=-torch.exp(r(64, 16) * 0.5), B=r(2, 16, 4096), C=r(2, 16, 4096), D=r(64))
    ref = selective_scan_chunked(**a, delta_softplus=True)                      # CPU, equal to the sequential reference in tests
    ad = {k: v.to(dev) for k, v in a.items()}
    err = (selective_scan_chunked(**ad, delta_softplus=True).cpu() - ref).abs().max().item()
    t = timed(lambda: selective_scan_chunked(**ad, delta_softplus=True))
    rows.append(('selective scan, chunked, 2x64x4096 N=16: GPU vs CPU max diff / ms', f'{err:.1e} / {1e3 * t:.1f}'))
    ts = timed(lambda: selective_scan_ref(**ad, delta_softplus=True), repeat=1)
    rows.append(('selective scan, sequential reference on the GPU, same input: ms', f'{1e3 * ts:.1f}'))
    try:
        out = selective_scan(**ad, delta_softplus=True, backend='kernel')
        tk = timed(lambda: selective_scan(**ad, delta_softplus=True, backend='kernel'))
        rows.append(('selective scan, mamba-ssm kernel vs chunked: max diff / ms', f'{(out.cpu() - ref).abs().max().item():.1e} / {1e3 * tk:.1f}'))
    except Exception as e:                     # not installed, or no CUDA: say so
        rows.append(('selective scan, mamba-ssm kernel', f'not run ({type(e).__name__}: {str(e)[:60]})'))
    from medseg_nb.methods.nsda import nsda
    f = torch.randn(2, 64, 256, 256)
    err = (nsda(f.to(dev), 33).cpu() - nsda(f, 33)).abs().max().item()
    t = timed(lambda: nsda(f.to(dev), 33))
    rows.append(('NSDA 2x64x256x256, window 33: GPU vs CPU max diff / ms', f'{err:.1e} / {1e3 * t:.1f}'))

    # training steps under autocast
    cases = [('unet', (8, 3, 128, 128), {}), ('gausam', (4, 3, 128, 128), dict(n_gaussians=64)), ('lomix', (8, 3, 128, 128), {}),
             ('nsda', (8, 3, 128, 128), {}), ('graphseg', (8, 3, 128, 128), {}), ('mamba_home', (2, 1, 32, 64, 64), {})]
    for name, shape, kw in cases:
        seed_everything(0)
        m = get_method(name, **kw); net = m.build_model(shape[1], 2, len(shape) - 2).to(dev)
        opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], 1e-3)
        xb = torch.rand(shape, device=dev); yb = (xb[:, 0] > 0.5).long()
        losses = []
        def step():
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                loss = m.losses(net, dict(image=xb, label=yb))['loss']
            opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
        t = timed(step, repeat=10)
        ok = all(map(lambda v: v == v and abs(v) < 1e6, losses)) and losses[-1] < losses[0]
        rows.append((f'{name} training step, batch {shape[0]} at {shape[-1]}px, bf16 autocast: ms / loss first->last',
                     f'{1e3 * t:.1f} / {losses[0]:.3f} -> {losses[-1]:.3f} ({"ok" if ok else "CHECK"})'))
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if not dry else float('nan')
    body = f"## GPU check (`benchmarks/gpu_check.py`)\n\nMachine: {machine()}; peak GPU memory {peak:.2f} GiB.\n\n| check | result |\n|---|---|\n" + \
        '\n'.join(f'| {a} | {b} |' for a, b in rows)
    if not dry:
        write_section('gpu_check', body)
    print(body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
