import math
import pytest
import torch
from hypothesis import given, settings, strategies as st

from medseg_nb.methods.gausam.contourlet import (contourlet_decompose, contourlet_reconstruct, dfb_windows, dfb_decompose,
                                                 dfb_reconstruct, contour_prior, grating, subband_energy)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(9, 70), w=st.integers(9, 70), lv=st.sampled_from([(1,), (2,), (3,), (2, 3), (0, 2)]))
def test_perfect_reconstruction_any_size(h, w, lv):
    x = torch.rand(1, 2, h, w)
    assert (contourlet_reconstruct(contourlet_decompose(x, lv)) - x).abs().max() < 1e-4


def test_real_images(real_data):
    from medseg_nb.data.datasets import DRIVE, GlaS
    for x in (DRIVE(real_data, 'val')[1]['image'], GlaS(real_data, 'val')[2]['image']):
        x = x[None]
        assert (contourlet_reconstruct(contourlet_decompose(x, (2, 3))) - x).abs().max() < 1e-4


def test_float64_and_gradcheck():
    x = torch.rand(1, 1, 12, 14, dtype=torch.float64, requires_grad=True)
    c = contourlet_decompose(x, (2,))
    assert c['bands'][0].dtype == torch.float64
    torch.autograd.gradcheck(lambda t: dfb_decompose(t, 2), (torch.rand(1, 1, 8, 10, dtype=torch.float64, requires_grad=True),))


def test_subbands_are_real_and_tight_frame():
    b = torch.randn(2, 1, 40, 36)
    sub = dfb_decompose(b, 3)
    # tight frame: the sub-bands' total energy equals the band's (Parseval with sum of squared windows = 1)
    assert math.isclose(sub.pow(2).sum().item(), b.pow(2).sum().item(), rel_tol=1e-4)
    assert torch.allclose(dfb_reconstruct(sub), b, atol=1e-5)


def test_selectivity_level4():
    N = 128
    for k in range(16):
        ang = math.pi / 4 + (k + 0.5) * math.pi / 16
        e = subband_energy(contourlet_decompose(grating(N, ang, 0.36 * N), (4,)), 0)
        assert e.argmax() == k and e[k] > 0.6


def test_prior_range_and_errors():
    p = contour_prior(torch.rand(2, 3, 40, 50))
    assert p.shape == (2, 1, 40, 50) and p.min() >= 0 and p.max() <= 1
    with pytest.raises(ValueError, match='too small'):
        contourlet_decompose(torch.rand(1, 1, 3, 3), (2, 3))
    with pytest.raises(ValueError, match='transition'):
        dfb_windows(8, 8, 2, transition=2)
