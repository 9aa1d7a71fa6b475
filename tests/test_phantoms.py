import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from medseg_nb.data.phantoms import (fundus_phantom, gland_phantom, organ_phantom3d, apply_domain, random_domain,
                                     Domain, gaussian_blur, PhantomDataset)


@pytest.mark.parametrize('make,size', [(fundus_phantom, 96), (gland_phantom, 96), (organ_phantom3d, 24)])
def test_repeatable_and_domain_keeps_anatomy(make, size):
    a, b = make(size, seed=11), make(size, seed=11)
    assert torch.equal(a['image'], b['image']) and torch.equal(a['label'], b['label'])
    c = make(size, seed=11, domain=3)
    assert torch.equal(a['label'], c['label']) and not torch.equal(a['image'], c['image'])
    assert c['image'].min() >= 0 and c['image'].max() <= 1
    assert not torch.equal(make(size, seed=12)['label'], a['label'])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(1, 10_000), strength=st.floats(0.1, 3.0))
def test_domain_stays_in_range(seed, strength):
    x = torch.rand(3, 20, 24)
    y = apply_domain(x, random_domain(seed, strength), torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and torch.isfinite(y).all()


def test_domain_on_single_channel_and_volume():
    assert apply_domain(torch.rand(1, 16, 16), Domain(color=(1.2, .8, 1.1), blur=1.)).shape == (1, 16, 16)
    assert apply_domain(torch.rand(1, 8, 16, 16), 5).shape == (1, 8, 16, 16)
    with pytest.raises(TypeError, match='float image'):
        apply_domain(torch.zeros(3, 4, 4, dtype=torch.uint8), 2)


def test_domain_on_real_drive(real_data):
    from medseg_nb.data.datasets import DRIVE
    s = DRIVE(real_data, 'val')[0]
    y = apply_domain(s['image'], 2)
    assert y.shape == s['image'].shape and (y - s['image']).abs().mean() > 0.01


def test_blur_matches_scipy():
    from scipy.ndimage import gaussian_filter
    x = torch.rand(1, 1, 30, 31, dtype=torch.float64)
    ours = gaussian_blur(x, 2.0)[0, 0].numpy()
    ref = gaussian_filter(x[0, 0].numpy(), 2.0, mode="mirror", truncate=3.0)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_phantom_dataset_errors():
    with pytest.raises(ValueError, match='n >= 1'):
        PhantomDataset('vessels', n=0)
    with pytest.raises(IndexError, match='out of range'):
        PhantomDataset('glands', n=2, size=32)[5]
