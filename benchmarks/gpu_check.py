"""One prepared check for a lent GPU: kernels against their CPU references, training steps under autocast.

    python benchmarks/gpu_check.py            # on a CUDA machine; on a CPU-only one it says so and checks nothing
    python benchmarks/gpu_check.py --dry-run-cpu   # exercise the script on a CPU, writing nothing (3-D patches 16^3)
    python benchmarks/gpu_check.py --compile [eager default reduce-overhead] [--profile]
        # only Mamba-HoME's training step: eager, then the Trainer's `compile` modes (section gpu_compile), the Triton
        # kernel against its float64 reference first; --profile: kernels per eager step and the GPU's busy time

Writes its table to benchmarks/RESULTS.md (section gpu_check) with the card's name. Keep it short: a lent
machine has minutes, not hours. On the device, end it with `timeout -k 10 SECONDS` and copy RESULTS.md out after it: the
Trainer takes SIGTERM as "stop after this step", which a step still compiling never reaches, so a plain `timeout` left
the first call of 2026-12-04 running into the tool's own limit, which killed the copy too (its rows survived in the log).
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


def triton_against_reference(dev):
    """The Triton kernel's output, last state and all gradients against the sequential reference in float64 on fresh
    random inputs: ragged shapes (channels past a block, states not a power of two, lengths past a chunk) and a long one."""
    from medseg_nb.methods.mamba_home.selective_scan import selective_scan
    worst = 0.0
    for b, D, N, L in [(2, 5, 3, 37), (1, 20, 16, 70), (2, 64, 16, 1000), (1, 130, 16, 4100)]:
        x = dict(u=torch.randn(b, D, L), delta=torch.randn(b, D, L) * 0.5, A=-torch.rand(D, N) * 2 - 0.1,
                 B=torch.randn(b, N, L), C=torch.randn(b, N, L), D=torch.randn(D), z=torch.randn(b, D, L),
                 delta_bias=torch.randn(D) * 0.1)
        w = torch.cos(torch.arange(L, dtype=torch.float64, device=dev))
        got = {}
        for backend, dtype in (('triton', torch.float32), ('ref', torch.float64)):
            t = {k: v.to(dev, dtype).requires_grad_() for k, v in x.items()}
            y, last = selective_scan(**t, delta_softplus=True, return_last_state=True, backend=backend)
            ((y * w.to(dtype)).sum() + (last ** 2).sum()).backward()
            got[backend] = [y.detach().double(), last.detach().double()] + [t[k].grad.double() for k in x]
        for a, r in zip(got['triton'], got['ref']):
            e = float((a - r).abs().max() / r.abs().max().clamp_min(1e-12))
            worst = max(worst, e if e == e else float('inf'))
    return f'{worst:.1e} ({"OK" if worst < 1e-4 else "CHECK"})'


# A dry run's 3-D patch: under bf16 autocast on one CPU thread Mamba-HoME's 32^3 step took 15 s (fp32: 1.2 s), 16^3 1.5 s
DRY_PATCH_3D = (16, 16, 16)
# A dry run trains 3-D networks in float32: under bf16 autocast on a CPU, Mamba-HoME's first steps gave NaN gradients
# in some runs of the same seed, data and weights, with the same finite loss, and never in float32 (2026-12-08, one
# process per batch of 6-16 runs: 1-4 runs in five of six batches under bf16, none of 46 under float32; the dry run's
# test failed on it): most likely the CPU's bf16 kernels, not the GPU's. test_mamba_home.py runs its forward under bf16.


def tour_setup(name, steps, dev, **options):
    """A method's tour plan, training set, Trainer config (bf16 autocast, no validation) and labeled/unlabeled split; on a
    CPU (a dry run) 3-D patches are DRY_PATCH_3D, trained in float32."""
    from medseg_nb.cli import DATASET_DEFAULTS, _tour_plan
    from medseg_nb.core import get_method
    from medseg_nb.data.datasets import get_dataset, split_labeled
    plan = _tour_plan(get_method(name))
    tr = get_dataset(plan['dataset'], None, 'train')
    lab, unl = split_labeled(len(tr), plan['labeled'], 0) if plan['labeled'] else (None, None)
    cfg = dict(DATASET_DEFAULTS.get(plan['dataset'], {}), steps=steps, val_every=10 ** 9, log_every=1, progress=False,
               amp=True, device=str(dev), **options, **plan.get('train_options', {}))
    if dev.type == 'cpu' and len(cfg.get('patch', ())) == 3:
        cfg['patch'], cfg['amp'] = DRY_PATCH_3D, False
    return plan, tr, cfg, lab, unl


def train_row(name, scan, mode, steps, dev):
    """One method trained `steps` steps through the Trainer under bf16 autocast on its tour phantoms (`scan`: Mamba-HoME's
    scan backend; `mode`: the Trainer's `compile`): a table row of steps/s over the steps after the first two, images/s,
    peak memory, the first step's seconds (compiling, where compiled) and the losses."""
    from medseg_nb.core import get_method
    from medseg_nb.methods.mamba_home.selective_scan import scan_backend
    from medseg_nb.train import Trainer
    plan, tr, cfg, lab, unl = tour_setup(name, steps, dev, compile=mode)
    if dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    label = name + (f' ({scan} scan)' if scan else '') + (f', compile={mode}' if mode else '')
    stamps = []
    try:
        t = Trainer(get_method(name), tr, None, None, cfg, labeled_idx=lab, unlabeled_idx=unl)
        start = time.perf_counter()
        with scan_backend(scan or 'auto'):
            t.fit(callback=lambda _: (_sync(), stamps.append(time.perf_counter())))
        gaps = [b - a for a, b in zip(stamps[2:], stamps[3:])]         # the first steps warm up (allocator, cudnn)
        sps = 1 / (sum(gaps) / len(gaps))
        per_step = cfg.get('batch_size', 8) + (cfg.get('unlabeled_batch_size') or cfg.get('batch_size', 8) if t.semi else 0)
        losses = [r['loss'] for r in t.history if 'loss' in r]
        ok = all(v == v and abs(v) < 1e6 for v in losses)
        mem = torch.cuda.max_memory_allocated() / 2 ** 30 if dev.type == 'cuda' else float('nan')
        row = (f"| {label} | {plan['dataset']} | {sps:.1f} | {sps * per_step:.0f} | {mem:.2f} | {stamps[0] - start:.1f} | "
               f"{losses[0]:.3f} -> {losses[-1]:.3f} ({'finite' if ok else 'CHECK'}) |")
    except Exception as e:                 # one method's failure must not hide the others' numbers
        row = f'| {label} | {plan["dataset"]} | failed: {type(e).__name__}: {str(e)[:80]} | | | | |'
    print(row, flush=True)
    return row


TRAIN_HEAD = '| method | data | steps/s | images/s | peak GiB | first step (s) | loss first -> last |\n|---|---|---|---|---|---|---|\n'


def launch_profile(dev, scan, steps=8):
    """Mamba-HoME's eager training step under torch.profiler (3 steps after 5 of warm-up): kernels launched per step,
    the GPU's busy milliseconds per step (the kernels' summed device time) and the wall milliseconds per step, so that
    a step bound by launching kernels from Python shows as wall >> GPU."""
    from torch.profiler import ProfilerActivity, profile, schedule
    from medseg_nb.core import get_method
    from medseg_nb.methods.mamba_home.selective_scan import scan_backend
    from medseg_nb.train import Trainer
    _, tr, cfg, _, _ = tour_setup('mamba_home', steps, dev)
    active = 3
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    stamps = []
    try:
        t = Trainer(get_method('mamba_home'), tr, None, None, cfg)
        with scan_backend(scan or 'auto'), profile(activities=acts, schedule=schedule(wait=steps - active - 2, warmup=2, active=active)) as prof:
            t.fit(callback=lambda _: (_sync(), stamps.append(time.perf_counter()), prof.step()))
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA  # the GPU's own events,
                   and not getattr(e, 'is_user_annotation', False) and not e.name.startswith('ProfilerStep')]  # not spans
        gpu_ms = sum(getattr(e, 'device_time', 0.0) for e in kernels) / 1e3 / active
        wall_ms = 1e3 * (stamps[-1] - stamps[-1 - active]) / active
        row = (f"| mamba_home ({scan or 'auto'} scan), eager, profiled | {len(kernels) / active:.0f} | {gpu_ms:.1f} | "
               f"{wall_ms:.1f} |")
    except Exception as e:
        row = f"| mamba_home ({scan or 'auto'} scan), eager, profiled | failed: {type(e).__name__}: {str(e)[:80]} | | |"
    print(row, flush=True)
    return row


def compiled_steps(dev, dry, modes):
    """Mamba-HoME's step eager and under the Trainer's `compile` modes (Triton scan where there is one): its step was
    bound by launching ~3000 small kernels from Python (section selective_scan_gpu). The Triton kernel is first checked
    against the float64 sequential reference (values and gradients, its default tile); the section is rewritten after
    every row, so that a call cut short keeps the rows it finished."""
    from medseg_nb.methods.mamba_home.selective_scan import _triton_scan
    scan = 'triton' if _triton_scan() and not dry else None
    steps = 4 if dry else 40
    modes = [None] if dry else [None if m == 'eager' else m for m in modes]  # on a CPU, compiling would take minutes
    head = (f"## Mamba-HoME's training step compiled (`benchmarks/gpu_check.py --compile`)\n\nMachine: {machine()}.\n\n")
    checks, rows, prof = [], [], []

    def body():
        text = head
        if checks:
            text += '| check | result |\n|---|---|\n' + '\n'.join(checks) + '\n\n'
        text += (f"The tour's phantom volumes (32^3, batch 2), bf16 autocast, {steps} steps through the Trainer; steps/s "
                 "over the steps after the first two; the first step includes compiling.\n\n" + TRAIN_HEAD + '\n'.join(rows))
        if prof:
            text += ('\n\nThe eager step under torch.profiler (3 steps after 5 of warm-up): kernels per step, the GPU busy '
                     '(kernels\' summed time) and the wall time per step.\n\n| run | kernels per step | GPU ms per step | '
                     'wall ms per step |\n|---|---|---|---|\n' + '\n'.join(prof))
        return text

    def save():
        if not dry: write_section('gpu_compile', body())

    if scan:
        checks.append('| Triton kernel (default tile) against the float64 sequential reference: largest relative '
                      f'difference of output, last state and all gradients over 4 shapes | {triton_against_reference(dev)} |')
        print(checks[-1], flush=True); save()
    for mode in modes:
        rows.append(train_row('mamba_home', scan, mode, steps, dev)); save()
        if mode is None and dev.type == 'cuda' and '--profile' in sys.argv:
            prof.append(launch_profile(dev, scan)); save()
    print(body())
    return 0


def main():
    dry = '--dry-run-cpu' in sys.argv          # exercise the script on a CPU (no results are written)
    if not torch.cuda.is_available() and not dry:
        print('no CUDA device: nothing to check here (run this on the lent GPU machine, or --dry-run-cpu)')
        return 0
    from medseg_nb.core import load_methods
    from medseg_nb.methods.gausam.contourlet import contourlet_decompose, contourlet_reconstruct
    from medseg_nb.methods.gausam.gaussian_field import init_gaussians, render, render_dense
    load_methods(); dev = torch.device('cpu' if dry else 'cuda')
    rows = []
    if '--compile' in sys.argv:
        at = sys.argv.index('--compile') + 1
        modes = [m for m in sys.argv[at:] if not m.startswith('--')] or ['eager', 'default', 'reduce-overhead']
        return compiled_steps(dev, dry, modes)

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
    from medseg_nb.methods.mamba_home.selective_scan import _triton_scan, selective_scan_triton
    if _triton_scan() is not None and not dry:          # the Triton kernel runs on CUDA tensors only
        out = selective_scan_triton(**ad, delta_softplus=True)
        tt = timed(lambda: selective_scan_triton(**ad, delta_softplus=True))
        rows.append(('selective scan, Triton kernel vs chunked: max diff / ms', f'{(out.cpu() - ref).abs().max().item():.1e} / {1e3 * tt:.1f}'))
        rows.append(('selective scan, Triton kernel vs float64 sequential reference: largest relative difference of '
                     'output and gradients over 4 shapes', triton_against_reference(dev)))
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

    # training steps under autocast: every registered method, through the Trainer, on its tour phantoms
    from medseg_nb.core import METHODS
    steps = 4 if dry else 30
    runs = [(n, None, None) for n in sorted(METHODS, key=lambda n: (n != 'unet', n))]
    at = runs.index(('mamba_home', None, None))              # Mamba-HoME with each scan: the Triton kernel and the chunked
    if _triton_scan() and not dry:
        runs[at:at + 1] = [('mamba_home', 'triton', None), ('mamba_home', 'chunked', None)]
    train_rows = [train_row(name, scan, mode, steps, dev) for name, scan, mode in runs]
    body = f"## GPU check (`benchmarks/gpu_check.py`)\n\nMachine: {machine()}.\n\n| check | result |\n|---|---|\n" + \
        '\n'.join(f'| {a} | {b} |' for a, b in rows) + \
        f'\n\nTraining steps through the Trainer under bf16 autocast ({steps} steps per method, the tour\'s phantoms and batch sizes; ' \
        'speed over the steps after the first two; peak memory per method):\n\n' + \
        TRAIN_HEAD + '\n'.join(train_rows)
    if not dry:
        write_section('gpu_check', body)
    print(body)
    return 0


if __name__ == '__main__':
    sys.exit(main())
