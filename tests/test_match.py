import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from medseg_nb.core import METHODS, load_methods
from medseg_nb.data.phantoms import gaussian_blur, gland_phantom
from medseg_nb.methods.match.model import features, match_loss, match_pairs, reliable_features
from medseg_nb.methods.match.persistence import batch_persistence, persistence
from medseg_nb.metrics import betti_numbers

load_methods()


def smooth_map(seed, H, W, sigma):
    x = torch.rand(1, 1, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    m = gaussian_blur(x, sigma)[0, 0]
    return (m - m.min()) / (m.max() - m.min())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), H=st.integers(3, 40), W=st.integers(3, 40), sigma=st.floats(0.5, 3.0),
       t=st.floats(0.05, 0.95))
def test_betti_from_diagram_equals_labelling(seed, H, W, sigma, t):
    p = smooth_map(seed, H, W, sigma)
    assert persistence(p).betti(t) == betti_numbers((p >= t).numpy())


def test_flat_indices_are_row_major_on_non_square_maps():
    p = torch.zeros(5, 9, dtype=torch.float64); p[3, 7] = 1.0; p[1, 2] = 0.5
    d = persistence(p)
    ess = d.select(d.essential)
    assert ess.rc(ess.birth_idx).tolist() == [[3, 7]]
    fin = d.select(~d.essential & (d.dim == 0))
    assert fin.rc(fin.birth_idx).tolist() == [[1, 2]] and fin.birth.tolist() == [0.5] and fin.death.tolist() == [0.0]


def test_real_glas_masks(real_data):
    from medseg_nb.data.datasets import GlaS
    gl = GlaS(real_data, 'train')
    for i in range(0, len(gl), 7):
        y = gl[i]['label'].float()
        assert persistence(y).betti(0.5) == betti_numbers(y.numpy() > 0.5), gl[i]['name']


def test_cripser_equals_gudhi():
    pytest.importorskip('cripser')
    for seed in range(5):
        p = smooth_map(seed, 37, 53, 1.5)
        a, b = persistence(p, 'gudhi'), persistence(p, 'cripser')
        key = lambda d: sorted(zip(d.dim.tolist(), d.birth.tolist(), d.death.tolist(), d.essential.tolist()))
        assert key(a) == key(b)
        assert torch.equal(a.birth, p.reshape(-1)[a.birth_idx]) and torch.equal(b.death, p.reshape(-1)[b.death_idx])


def test_bad_input():
    with pytest.raises(ValueError, match='H x W'):
        persistence(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match='NaN'):
        persistence(torch.tensor([[0.1, float('nan')], [0.2, 0.3]]))
    with pytest.raises(ValueError, match='unknown persistence backend'):
        persistence(torch.rand(4, 4), 'ripser')
    with pytest.raises(ValueError, match='B x H x W'):
        batch_persistence(torch.rand(4, 4))
    assert len(batch_persistence(torch.rand(3, 8, 8))) == 3


def test_gradients_only_at_critical_pixels():
    p = smooth_map(3, 24, 24, 1.5).float().requires_grad_(True)
    d = persistence(p)
    (d.birth.sum() - d.death.sum()).backward()
    nz = set(torch.nonzero(p.grad.reshape(-1))[:, 0].tolist())
    assert nz <= set(d.birth_idx.tolist()) | set(d.death_idx.tolist()) and nz


def _bump(cy, cx, r, n=64):
    yy, xx = torch.meshgrid(torch.arange(float(n)), torch.arange(float(n)), indexing='ij')
    return torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r ** 2))


def test_loss_raises_trusted_gland_and_removes_spurious_blob():
    gland, blob = 0.65 * _bump(20, 20, 6), 0.3 * _bump(45, 45, 3)
    first = (0.05 + gland + blob).requires_grad_(True)
    loss, stats = match_loss([first, 0.05 + gland * 1.02, 0.05 + gland * 0.97])
    loss.backward()
    assert (stats['features'], stats['reliable']) == (2, 1)
    assert first.grad[20, 20] < 0 < first.grad[45, 45]           # descent raises the gland, lowers the blob


def test_noise_is_pushed_to_the_diagonal():
    "A bump of persistence 0.02 (under min_persistence 0.03) is noise: it takes no part in matching, but is lowered."
    gland, noise = 0.65 * _bump(20, 20, 6), 0.02 * _bump(45, 45, 2)
    first = (0.05 + gland + noise).requires_grad_(True)
    loss, stats = match_loss([first, 0.05 + gland, 0.05 + gland * 0.98])
    loss.backward()
    assert (stats['features'], stats['reliable']) == (1, 1) and stats['noise'] >= 1
    assert first.grad[45, 45] > 0                                 # descent lowers the noise peak
    _, quiet = match_loss([first.detach().requires_grad_(True), 0.05 + gland], push_noise=False)
    assert quiet['noise'] >= 1


def test_every_map_with_gradients_is_penalised():
    gland, blob = 0.65 * _bump(20, 20, 6), 0.3 * _bump(45, 45, 3)
    maps = [(0.05 + gland + blob).requires_grad_(True), (0.05 + gland + blob * 0.9).requires_grad_(True), 0.05 + gland]
    loss, _ = match_loss(maps, grad_maps=2)
    loss.backward()
    assert maps[1].grad is not None and maps[1].grad[45, 45] > 0 and maps[1].grad[20, 20] < 0
    with pytest.raises(ValueError, match='grad_maps'):
        match_loss(maps, grad_maps=4)


def test_reliability_needs_every_pass():
    a = 0.05 + 0.7 * _bump(20, 20, 5) + 0.6 * _bump(44, 40, 5)
    b = 0.05 + 0.7 * _bump(21, 20, 5)                               # the second gland is missing here
    feats = [features(m) for m in (a, a.clone(), b)]
    rel = reliable_features(feats)
    da = feats[0][0]
    peak = {tuple(rc) for rc in da.rc(da.birth_idx[rel[0]]).tolist()}
    assert peak == {(20, 20)}
    assert all(r.all() for r in reliable_features([features(m) for m in (a, a.clone(), a.clone())]))


def test_match_pairs_thresholds():
    assert match_pairs(torch.tensor([[0.09]])) == [(0, 0)]          # below one-to-one, caught by the many pass
    assert match_pairs(torch.tensor([[0.01]])) == []
    # the many-to-many pass joins two leftovers only: a leftover never joins a feature the assignment matched
    assert match_pairs(torch.tensor([[0.9, 0.05], [0.3, 0.0]])) == [(0, 0)]
    assert match_pairs(torch.tensor([[0.9, 0.0, 0.0], [0.0, 0.05, 0.03]])) == [(0, 0), (1, 1), (1, 2)]
    S = torch.tensor([[0.8, 0.0, 0.04], [0.0, 0.7, 0.0], [0.03, 0.0, 0.0]])
    assert match_pairs(S) == [(0, 0), (1, 1)]                       # row 2 and column 2 are leftovers, but not paired


def test_fragment_does_not_make_a_gland_unreliable():
    "Saturated gland maps with a little jitter: every gland stays reliable across three predictions."
    glands = [(14, 14), (14, 46), (46, 14), (46, 46), (30, 30), (30, 54)]
    base = sum(_bump(cy, cx, 3.5) for cy, cx in glands).clamp(max=1.0)
    maps = [(0.02 + 0.96 * base + 1e-3 * torch.rand(64, 64, generator=torch.Generator().manual_seed(s))).clamp(0, 1)
            for s in range(3)]
    rel = reliable_features([features(m) for m in maps])
    assert all(int(r.sum()) >= 6 for r in rel), [int(r.sum()) for r in rel]


def test_no_snapshot_and_no_topology_before_warm_up():
    "An untrained teacher's snapshot would flatten real glands: snapshots and the topological term wait for `topo_start`."
    m = METHODS['match'](width=4, depth=2, snapshot_every=5, passes=1, topo_start=0.2)
    m.setup(100)
    net = m.build_model(3, 2); teacher = m.build_model(3, 2)
    lab = dict(image=torch.rand(2, 3, 32, 32), label=torch.randint(0, 2, (2, 32, 32)))
    parts = m.losses(net, lab, dict(image=torch.rand(2, 3, 32, 32)), teacher, step=0)
    assert len(m.snaps) == 0 and float(parts['topo'].detach()) == 0.0
    parts = m.losses(net, lab, dict(image=torch.rand(2, 3, 32, 32)), teacher, step=20)
    assert len(m.snaps) == 1 and 'reliable_frac' in parts


def test_match_method_trains(tmp_path):
    from medseg_nb.data.datasets import get_dataset, split_labeled
    from medseg_nb.train import Trainer
    assert 'match' in METHODS
    m = METHODS['match'](width=8, depth=2, snapshot_every=1, snapshots=2, passes=1, topo_start=0.0)
    tr = get_dataset('phantom-glands', None, 'train', n=6)
    lab, unl = split_labeled(len(tr), 0.5, 0)
    t = Trainer(m, tr, None, tmp_path, dict(steps=3, batch_size=2, patch=(48, 48), progress=False, log_every=1),
                labeled_idx=lab, unlabeled_idx=unl)
    t.fit()
    assert len(m.snaps) == 2 and np.isfinite(t.history[-1]['topo']) and 0 <= t.history[-1]['reliable_frac'] <= 1
