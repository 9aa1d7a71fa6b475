"""The Triton selective scan against the sequential reference, values and gradients, run by Triton's interpreter on the
CPU (TRITON_INTERPRET=1 must be set before triton is imported, hence a fresh process)."""
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip('triton')

SCRIPT = textwrap.dedent('''
    import torch
    from medseg_nb.methods.mamba_home import triton_scan
    from medseg_nb.methods.mamba_home.selective_scan import selective_scan, selective_scan_ref
    torch.manual_seed(0)
    # The interpreter runs each program's ops in NumPy: its cost grows with programs x chunks x tile. One shape at the
    # kernel's own CHUNK and TILE; the edge cases at CHUNK 8 and TILE 128 (the same kernel, other constexprs), which
    # reach them at lengths of 1-37 (these 5 shapes: 10 s of CPU; the edge cases at the kernel's own sizes: 64 s).
    # (b, D, N, L): D past one channel block (BLOCK_D 4), N not a power of two, L not a multiple of the chunk
    # (5 chunks); L < chunk; three chunks; many states (chunks of 2 steps)
    default = (triton_scan.CHUNK, triton_scan.TILE)
    edges = [(2, 5, 3, 37), (1, 3, 2, 1), (1, 3, 16, 20), (1, 2, 64, 12)]
    for tiles, shapes in ((default, [(2, 5, 3, 37)]), ((8, 128), edges)):
        triton_scan.CHUNK, triton_scan.TILE = tiles
        for b, D, N, L in shapes:
            x = dict(u=torch.randn(b, D, L), delta=torch.randn(b, D, L) * 0.5, A=-torch.rand(D, N) * 2 - 0.1,
                     B=torch.randn(b, N, L), C=torch.randn(b, N, L), D=torch.randn(D), z=torch.randn(b, D, L),
                     delta_bias=torch.randn(D) * 0.1)
            w = torch.cos(torch.arange(L, dtype=torch.float64))
            grads = {}
            for backend, dtype in (('triton', torch.float32), ('ref', torch.float64)):
                t = {k: v.to(dtype).clone().requires_grad_() for k, v in x.items()}
                y, last = selective_scan(**t, delta_softplus=True, return_last_state=True, backend=backend)
                ((y * w.to(dtype)).sum() + (last ** 2).sum()).backward()
                grads[backend] = [y.detach().double(), last.detach().double()] + [t[k].grad.double() for k in x]
            for name, a, r in zip(['y', 'last'] + list(x), grads['triton'], grads['ref']):
                err = float((a - r).abs().max() / r.abs().max().clamp_min(1e-12))
                print(tiles, triton_scan._blocks(D, N, L), b, D, N, L, name, f'{err:.1e}')
                assert err < 1e-5, (tiles, b, D, N, L, name, err)
    print('OK')
''')


def test_triton_scan_matches_reference_values_and_gradients():
    env = dict(os.environ, TRITON_INTERPRET='1', OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, '-c', SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith('OK'), r.stdout[-3000:] + r.stderr[-3000:]


def test_triton_backend_refuses_cpu_tensors_without_the_interpreter():
    import torch
    from medseg_nb.methods.mamba_home.selective_scan import selective_scan
    if os.environ.get('TRITON_INTERPRET') == '1': pytest.skip('interpreter on: CPU tensors are allowed')
    x = dict(u=torch.randn(1, 2, 5), delta=torch.rand(1, 2, 5), A=-torch.rand(2, 3), B=torch.randn(1, 3, 5), C=torch.randn(1, 3, 5))
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET'):
        selective_scan(**x, backend='triton')


def test_scan_backend_chooses_what_auto_means_and_refuses_unknown_names():
    import torch
    from medseg_nb.methods.mamba_home.selective_scan import scan_backend, selective_scan, selective_scan_ref
    if os.environ.get('TRITON_INTERPRET') == '1': pytest.skip('interpreter on: CPU tensors are allowed')
    x = dict(u=torch.randn(1, 2, 5), delta=torch.rand(1, 2, 5), A=-torch.rand(2, 3), B=torch.randn(1, 3, 5), C=torch.randn(1, 3, 5))
    with scan_backend('triton'):       # 'auto' now means Triton: on CPU tensors, Triton's own refusal proves the routing
        with pytest.raises(RuntimeError, match='TRITON_INTERPRET'):
            selective_scan(**x)
        assert torch.equal(selective_scan(**x, backend='ref'), selective_scan_ref(**x))   # a named backend still wins
    assert torch.allclose(selective_scan(**x), selective_scan_ref(**x), atol=1e-5)      # and 'auto' is back after the block
    with pytest.raises(ValueError, match="unknown scan backend 'fast'; expected one of 'auto'"):
        with scan_backend('fast'):
            pass


def test_triton_tiles_stay_within_their_size_for_any_number_of_states():
    from medseg_nb.methods.mamba_home.triton_scan import CHUNK, TILE, _blocks
    import triton
    for D in (1, 3, 64, 130):
        for N in (1, 3, 16, 64, 128, 256):
            for L in (1, 37, 600, 32768):
                block_d, block_n, chunk = _blocks(D, N, L)
                assert block_n >= N and chunk <= min(CHUNK, triton.next_power_of_2(L)), (D, N, L, block_d, block_n, chunk)
                assert block_d <= triton.next_power_of_2(D) and block_d * block_n * chunk <= max(TILE, block_n), \
                    f'D={D} N={N} L={L}: {block_d} x {block_n} x {chunk} numbers per tensor, more than TILE = {TILE}'
