import numpy as np
import pytest
import torch

from medseg_nb.core import METHODS, load_methods
from medseg_nb.methods.arco.stratified_sampling import SAMPLERS, allocate, sample_ns, sample_sag, sample_sg, strata

load_methods()


def draws(fn, h, mask, n, k, seed=0, **kw):
    g = torch.Generator().manual_seed(seed); flat = h.reshape(-1).double()
    return torch.stack([(lambda i, w: (w.double() * flat[i]).sum())(*fn(mask, n, generator=g, **kw)) for _ in range(k)])


def field(shape):
    grids = torch.meshgrid(*(torch.linspace(0, 1, s) for s in shape), indexing='ij')
    return sum(torch.sin((i + 2) * g) for i, g in enumerate(grids)) + grids[0] ** 2


@pytest.mark.parametrize('name', ['ns', 'sg', 'sag'])
def test_unbiased_on_full_grid(name):
    h, m = field((24, 24)), torch.ones(24, 24, dtype=torch.bool)
    e = draws(SAMPLERS[name], h, m, 32, 1500)
    assert abs(e.mean() - h.double().mean()) < 4 * e.std() / 1500 ** 0.5


def test_sg_unbiased_on_irregular_mask():
    h = field((30, 26)); m = torch.zeros(30, 26, dtype=torch.bool); m[3:20, 2:9] = True; m[10:28, 12:25] = True
    e = draws(sample_sg, h, m, 40, 1500)
    assert abs(e.mean() - h[m].double().mean()) < 4 * e.std() / 1500 ** 0.5


def test_variance_ordering_and_theorem():
    h, m = field((32, 32)), torch.ones(32, 32, dtype=torch.bool)
    ns, sg, sag = (draws(f, h, m, 32, 2000, seed=1) for f in (sample_ns, sample_sg, sample_sag))
    sid = strata(m, 16)
    mu = torch.stack([h[sid == k].double().mean() for k in range(16)])
    predicted = h.double().var(unbiased=False) / 32 - ((mu - h.double().mean()) ** 2).mean() / 32
    assert sg.var() < ns.var() and sag.var() <= 2 * sg.var()
    assert abs(sg.var() - predicted) < 0.2 * predicted


def test_every_stratum_sampled_2d_and_3d():
    for shape in ((40, 50), (6, 20, 20)):
        m = torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.7
        sid = strata(m, 16)
        for fn in (sample_sg, sample_sag):
            idx, w = fn(m, 24, generator=torch.Generator().manual_seed(1))
            assert set(sid.reshape(-1)[idx].tolist()) == set(range(int(sid.max()) + 1))
            assert torch.isclose(w.sum(), torch.tensor(1.0), atol=1e-5) and m.reshape(-1)[idx].all()


def test_tail_class_represented():
    "Anchors are drawn per class, so a class of a few pixels gets all n; SG spreads them over every stratum it crosses."
    thin = torch.zeros(64, 64, dtype=torch.bool)
    for c in range(4, 60): thin[30 + int(8 * np.sin(c / 9)): 33 + int(8 * np.sin(c / 9)), c] = True
    sid = strata(thin, 16); M = int(sid.max()) + 1
    cover = lambda fn: np.mean([len(set(sid.reshape(-1)[fn(thin, 16, generator=torch.Generator().manual_seed(s))[0]].tolist())) / M for s in range(100)])
    assert cover(sample_sg) == 1.0 and cover(sample_ns) < 1.0
    tiny = torch.zeros(32, 32, dtype=torch.bool); tiny[5, 7] = True
    idx, w = sample_sg(tiny, 16)
    assert (idx == 5 * 32 + 7).all() and torch.isclose(w.sum(), torch.tensor(1.0))


def test_flat_strata_are_bands_and_errors():
    m = torch.ones(8, 8, dtype=torch.bool)
    f = strata(m, 4, 'flat')
    assert all(len(f[2 * k:2 * k + 2].unique()) == 1 for k in range(4))
    with pytest.raises(ValueError, match='cannot cover'):
        allocate(torch.tensor([5, 5, 5]), 2)
    with pytest.raises(ValueError, match='no eligible'):
        sample_sg(torch.zeros(4, 4, dtype=torch.bool), 4)
    with pytest.raises(TypeError, match='bool mask'):
        strata(torch.ones(4, 4), 4)
    with pytest.raises(ValueError, match="'blocks' or 'flat'"):
        strata(m, 4, 'rings')


def test_arco_method_trains():
    from medseg_nb.data.datasets import get_dataset, split_labeled
    from medseg_nb.train import Trainer
    assert 'arco' in METHODS
    tr = get_dataset('phantom-glands', None, 'train', n=4)
    lab, unl = split_labeled(len(tr), 0.5, 0)
    for s in ('ns', 'sag'):
        m = METHODS['arco'](width=4, depth=3, sampler=s, threshold=0.5)
        t = Trainer(m, tr, None, None, dict(steps=2, batch_size=2, patch=(32, 32), progress=False, log_every=1), labeled_idx=lab, unlabeled_idx=unl)
        t.fit()
        assert np.isfinite(t.history[-1]['contrast']) and t.history[-1]['contrast'] > 0
