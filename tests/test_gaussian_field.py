import math
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings, strategies as st

from medseg_nb.methods.gausam.gaussian_field import Gaussians, render, render_dense, init_gaussians


def _random(B, N, C, scale, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    t = lambda *s: torch.rand(*s, generator=g, dtype=dtype)
    return Gaussians(mu=1.2 * t(B, N, 2) - 0.1, log_s=torch.log(scale * (0.2 + t(B, N, 2))), theta=6 * t(B, N),
                     alpha=4 * t(B, N, C) - 2, bias=t(B, C))


@settings(max_examples=25, deadline=None)
@given(H=st.integers(1, 70), W=st.integers(1, 70), tile=st.integers(3, 40), N=st.integers(1, 60),
       scale=st.floats(0.005, 0.5), seed=st.integers(0, 99))
def test_tiled_equals_dense(H, W, tile, N, scale, seed):
    gs = _random(2, N, 2, scale, seed)
    assert torch.allclose(render(gs, H, W, tile=tile), render_dense(gs, H, W), atol=1e-5)


def test_gradients_match_with_checkpointing():
    a, b = _random(1, 30, 1, 0.1, 1, torch.float64), _random(1, 30, 1, 0.1, 1, torch.float64)
    for gs in (a, b):
        for v in (gs.mu, gs.log_s, gs.theta, gs.alpha, gs.bias):
            v.requires_grad_(True)
    render(a, 33, 21, tile=8, checkpointing=True).pow(2).sum().backward()
    render_dense(b, 33, 21).pow(2).sum().backward()
    for k in ('mu', 'log_s', 'theta', 'alpha', 'bias'):
        assert torch.allclose(getattr(a, k).grad, getattr(b, k).grad, atol=1e-10), k


def test_render_saves_no_subnormal_number_for_backward():
    """Far pixels (m^2 between ~175 and ~207 give exp(-m^2/2) below float32's smallest normal number) must not reach
    exp: subnormal results saved for backward are slow to multiply on the CPU, and exp's own slow path with them."""
    gs = _random(1, 64, 1, 0.02, seed=3)
    for v in (gs.mu, gs.log_s, gs.theta, gs.alpha): v.requires_grad_(True)
    tiny = torch.finfo(torch.float32).tiny
    subnormal = []

    def pack(saved):
        if saved.is_floating_point():
            size = saved.detach().abs()
            subnormal.append(int(((size > 0) & (size < tiny)).sum()))
        return saved

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda saved: saved):
        out = render_dense(gs, 96, 96)
    out.sum().backward()
    assert subnormal and sum(subnormal) == 0, f'{sum(subnormal)} subnormal numbers saved for backward'
    assert torch.isfinite(gs.mu.grad).all()


def test_prior_init_follows_prior():
    prior = torch.zeros(50, 40); prior[10:15, 30:35] = 1
    gs = init_gaussians(200, prior, seed=0)
    x, y = gs.mu[0, :, 0] * 40, gs.mu[0, :, 1] * 50
    assert ((x >= 30) & (x < 35) & (y >= 10) & (y < 15)).float().mean() > 0.99


def test_bad_shapes_and_size():
    gs = _random(1, 4, 1, 0.1, 0)
    with pytest.raises(ValueError, match='Gaussians.bias has shape'):
        Gaussians(gs.mu, gs.log_s, gs.theta, gs.alpha, torch.zeros(2, 1))
    with pytest.raises(ValueError, match='positive size'):
        render(gs, 0, 5)


PEAK = textwrap.dedent('''
    import resource, sys, torch
    from medseg_nb.methods.gausam.gaussian_field import render, init_gaussians
    torch.set_num_threads(1)
    size, n = int(sys.argv[1]), int(sys.argv[2])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gs = init_gaussians(n, seed=0)
    for v in (gs.mu, gs.log_s, gs.theta, gs.alpha, gs.bias): v.requires_grad_(True)
    render(gs, size, size).sigmoid().mean().backward()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
''')


def _peak_mb(size, n):
    r = subprocess.run([sys.executable, '-c', PEAK, str(size), str(n)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return float(r.stdout.strip().splitlines()[-1])


def test_tiled_memory_bounded():
    "4096 Gaussians at 1024 x 1024 with a backward pass: well under 2 GB, and far from the dense 16 GB."
    big = _peak_mb(1024, 4096)
    small = _peak_mb(256, 4096)
    assert big < 2048, big
    assert big < small + 400, (small, big)      # 16x the pixels: the extra memory is the image-sized tensors only
