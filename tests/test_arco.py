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


def ring(shape=(48, 48), r0=8, r1=18):
    yy, xx = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) - (n - 1) / 2 for n in shape), indexing='ij')
    r = (yy ** 2 + xx ** 2).sqrt()
    return (r >= r0) & (r <= r1)


def crescent(shape=(48, 48)):
    yy, xx = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in shape), indexing='ij')
    return ((yy - 24) ** 2 + (xx - 22) ** 2 <= 18 ** 2) & ~((yy - 20) ** 2 + (xx - 30) ** 2 <= 15 ** 2)


def _z(fn, h, m, n, k=3000, seed=0, **kw):
    e = draws(fn, h, m, n, k, seed=seed, **kw)
    return float((e.mean() - h[m].double().mean()) / (e.std() / k ** 0.5))


def _monotone(shape):
    yy, xx = torch.meshgrid(*(torch.linspace(0, 1, n) for n in shape), indexing='ij')
    return torch.exp(3 * xx) * (1 + yy)


@pytest.mark.parametrize('name', ['ns', 'sg', 'sag'])
@pytest.mark.parametrize('shape_name', ['ring', 'crescent'])
def test_unbiased_on_non_convex_masks(name, shape_name):
    """z-test of the mean estimate over 1000 draws (|z| < 4: a false alarm once in 15,000 runs), strata of 2 x 2 blocks.
    A reflection about a stratum's bounding-box centre failed here (crescent: z = +12.6 over 1500 draws)."""
    m = ring() if shape_name == 'ring' else crescent()
    h = field(m.shape) if shape_name == 'ring' else _monotone(m.shape)
    kw = {} if name == 'ns' else dict(groups=4)
    assert abs(_z(SAMPLERS[name], h, m, 32, k=1000, **kw)) < 4


def test_antithetic_pairs_reduce_variance_on_a_crescent():
    m = crescent(); h = _monotone(m.shape)
    sg, sag = (draws(fn, h, m, 32, 600, seed=2, groups=4) for fn in (sample_sg, sample_sag))
    assert sag.var() < 0.9 * sg.var(), (float(sag.var()), float(sg.var()))


def test_unbiased_on_real_right_ventricles(real_data):
    from medseg_nb.data.datasets import ACDC
    ds = ACDC(real_data, 'train')
    masks = []
    for i in range(0, len(ds), 7):
        rv = ds[i]['label'] == 1
        if rv.sum() > 400: masks.append(rv)
        if len(masks) == 2: break
    assert len(masks) == 2
    for m in masks:
        h = field(m.shape)
        for name, fn in SAMPLERS.items():
            assert abs(_z(fn, h, m, 32, k=1000)) < 4, name


@pytest.mark.parametrize('n', [16, 20, 32, 33])
def test_equal_anchor_counts(n):
    m = crescent()
    counts = {name: len(fn(m, n, generator=torch.Generator().manual_seed(0))[0]) for name, fn in SAMPLERS.items()}
    assert set(counts.values()) == {n}, counts


def test_sag_pairs_mirror_the_stratum_list():
    "On a full grid with one stratum, a pair is positions a and N - 1 - a of the raster list."
    m = torch.ones(10, 10, dtype=torch.bool)
    idx, _ = sample_sag(m, 8, groups=1, generator=torch.Generator().manual_seed(3))
    assert (idx[0::2] + idx[1::2] == 99).all(), idx


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
        h = t.history[-1]
        assert np.isfinite(h['contrast']) and h['contrast'] > 0 and 0 <= h['confident'] <= 1
        assert h['loss'] == pytest.approx(h['sup'] + h['w_unsup'] * h['pseudo'] + m.cfg.w_contrast * h['contrast'], rel=1e-5)


def test_teacher_targets_labels_eligibility_and_confidence():
    "Ground truth on labeled images, the teacher's argmax on unlabeled ones; ignore label, FOV and confidence gate them."
    m = METHODS['arco'](width=4, depth=3, threshold=0.6)
    net = m.build_model(1, 3)
    m.num_classes = 3
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (2, 16, 16), generator=g)
    y[0, :2] = 255                                                        # not annotated
    fov = torch.ones(2, 16, 16, dtype=torch.bool)
    fov[1, :, :3] = False                                                 # outside the field of view
    lab = dict(image=torch.rand(2, 1, 16, 16, generator=g), label=y, fov=fov)
    unl = dict(image=torch.rand(3, 1, 16, 16, generator=g))
    t = m.teacher_targets(net, lab, unl)
    with torch.no_grad():
        out = net.net(torch.cat([lab['image'], unl['image']]))
    prob = out.logits.softmax(1)
    assert t['proj'].shape == (5, m.cfg.proj_dim, 16, 16) and not t['proj'].requires_grad
    assert torch.equal(t['labels'][:2], y.clamp(max=2)) and torch.equal(t['pseudo'], prob[2:].argmax(1))
    assert torch.equal(t['labels'][2:], t['pseudo'])
    assert torch.equal(t['keep'], prob[2:].max(1).values >= 0.6)
    assert torch.equal(t['valid'][:2], (y != 255) & fov) and torch.equal(t['valid'][2:], t['keep'])


@pytest.mark.parametrize('sampler', ['ns', 'sag'])
def test_contrast_matches_normalising_the_whole_maps(sampler):
    """`ARCO.contrast` normalises features only where it uses them; the textbook formulation normalises the whole
    student and teacher maps first. Same draws (same seed): same loss, same gradient, queue rows taken from the unit
    teacher features of their class."""
    import torch.nn.functional as F
    from medseg_nb.methods.arco.model import prototype_contrastive
    m = METHODS['arco'](sampler=sampler, anchors=8, groups=4)
    m.num_classes = K = 3
    g = torch.Generator().manual_seed(0)
    B, D, H = 3, 8, 12
    proj = (torch.randn(B, D, H, H, generator=g) * 3).requires_grad_()
    t_proj = torch.randn(B, D, H, H, generator=g) * 3
    labels = torch.randint(0, K, (B, H, H), generator=g)
    labels[2][labels[2] == 2] = 1                                   # a class absent from one image
    valid = torch.rand(B, H, H, generator=g) > 0.3
    q0 = F.normalize(torch.randn(10, D, generator=g), dim=1), torch.randint(0, K, (10,), generator=g)
    m.qfeat, m.qcls = q0[0].clone(), q0[1].clone()
    torch.manual_seed(5)
    loss = m.contrast(proj, t_proj, labels, valid)
    (grad,) = torch.autograd.grad(loss, proj)
    # the reference, from the same draws, in float64
    torch.manual_seed(5)
    _, draws = m.draw_anchors(labels, valid)
    feats, t_unit = F.normalize(proj.double(), dim=1), F.normalize(t_proj.double(), dim=1)
    onehot = F.one_hot(labels, K).permute(0, 3, 1, 2).double() * valid[:, None]
    protos = F.normalize(torch.einsum('bkhw,bdhw->kd', onehot, t_unit), dim=1)
    ref = sum(
        (w.double() * prototype_contrastive(feats[b].flatten(1)[:, i].T, torch.full((len(i),), c), protos, q0[0].double(), q0[1], m.cfg.tau)).sum()
        for b, c, i, w in draws
    ) / len(draws)
    (ref_grad,) = torch.autograd.grad(ref, proj)
    assert len(draws) == 8 and loss.item() > 0                     # 3 images x 3 classes, one class absent once
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad.double(), ref_grad.double(), rtol=1e-4, atol=1e-7)
    new = m.qfeat[: len(m.qfeat) - 10]                              # what this call enqueued, before the old queue
    assert torch.equal(m.qfeat[-10:], q0[0]) and len(new) == K * 16
    rows = t_unit.permute(0, 2, 3, 1).reshape(-1, D)                 # every unit teacher feature, with its class
    dist, idx = torch.cdist(new.double(), rows).min(1)
    assert float(dist.max()) < 1e-6
    assert torch.equal(labels.reshape(-1)[idx], m.qcls[: len(new)]) and bool(valid.reshape(-1)[idx].all())
