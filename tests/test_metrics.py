"Metrics against independent formulations and their documented edge cases."
import math
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from medseg_nb.metrics import (dice, iou, hd95, assd, cldice, betti_numbers, betti_error, object_f1, sensitivity,
                               specificity, evaluate, mean_of, confusion_matrix)

masks2d = arrays(np.bool_, st.tuples(st.integers(3, 14), st.integers(3, 14)))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_dice_iou_relation_and_symmetry(data):
    shape = data.draw(st.tuples(st.integers(2, 12), st.integers(2, 12)))
    p = data.draw(arrays(np.int64, shape, elements=st.integers(0, 3)))
    t = data.draw(arrays(np.int64, shape, elements=st.integers(0, 3)))
    d, j = dice(p, t, classes=[1, 2, 3]), iou(p, t, classes=[1, 2, 3])
    for c in (1, 2, 3):
        assert 0 <= d[c] <= 1 and math.isclose(d[c], 2 * j[c] / (1 + j[c]), abs_tol=1e-12)
        assert math.isclose(d[c], dice(t, p, classes=[c])[c])
        a, b = p == c, t == c                                   # set formulation
        ref = 1.0 if a.sum() + b.sum() == 0 else 2 * (a & b).sum() / (a.sum() + b.sum())
        assert math.isclose(d[c], ref, abs_tol=1e-12)


def test_confusion_matrix_on_torch_and_errors():
    p = torch.tensor([[0, 1], [2, 2]]); t = torch.tensor([[0, 1], [1, 2]])
    assert confusion_matrix(p, t, 3).tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    with pytest.raises(ValueError, match=r'label values must lie in 0..1'):
        confusion_matrix(p, t, 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=masks2d, b=masks2d)
def test_betti_against_gudhi(a, b):
    import gudhi
    for m in (a, b):
        cc = gudhi.CubicalComplex(top_dimensional_cells=np.where(m, 0.0, 1.0))
        cc.compute_persistence()
        assert betti_numbers(m) == tuple(cc.persistent_betti_numbers(0.0, 0.0))[:2]


def test_betti_3d_against_gudhi():
    import gudhi
    rng = np.random.default_rng(5)
    for _ in range(10):
        m = rng.random((7, 8, 6)) < rng.uniform(0.3, 0.7)
        cc = gudhi.CubicalComplex(top_dimensional_cells=np.where(m, 0.0, 1.0))
        cc.compute_persistence()
        assert betti_numbers(m) == tuple(cc.persistent_betti_numbers(0.0, 0.0))[:3]


def test_betti_error_shapes():
    a = np.zeros((10, 10), int); a[2:8, 2:8] = 1; a[4:6, 4:6] = 0
    assert betti_error(a, (a > 0) * 1 + 0)[1] == (0, 0)
    assert betti_error(np.zeros_like(a), a, classes=[1])[1] == (1, 1)


def _brute_surface_dists(a, b, spacing):
    def surf(m):
        pad = np.pad(m, 1)
        core = np.ones_like(m)
        for ax in range(m.ndim):
            for sh in (-1, 1):
                core &= np.roll(pad, sh, axis=ax)[tuple(slice(1, -1) for _ in range(m.ndim))]
        return m & ~core
    pa = torch.tensor(np.argwhere(surf(a)) * np.asarray(spacing), dtype=torch.float64)
    pb = torch.tensor(np.argwhere(surf(b)) * np.asarray(spacing), dtype=torch.float64)
    D = torch.cdist(pa, pb)
    return D.min(1).values.numpy(), D.min(0).values.numpy()


@pytest.mark.parametrize('seed', range(4))
def test_surface_distances_3d_brute_force(seed):
    rng = np.random.default_rng(seed)
    a = ndi.binary_dilation(rng.random((12, 14, 10)) > 0.99, iterations=2)
    b = ndi.binary_dilation(rng.random((12, 14, 10)) > 0.99, iterations=2)
    if not (a.any() and b.any()):
        pytest.skip('empty draw')
    sp = (2.0, 0.7, 1.1)
    d1, d2 = _brute_surface_dists(a, b, sp)
    assert math.isclose(hd95(a, b, spacing=sp)[1], max(np.percentile(d1, 95), np.percentile(d2, 95)), rel_tol=1e-9)
    assert math.isclose(assd(a, b, spacing=sp)[1], np.concatenate([d1, d2]).mean(), rel_tol=1e-9)


def test_empty_conventions():
    z = np.zeros((6, 6), int); o = z.copy(); o[2:4, 2:4] = 1
    assert dice(z, z, classes=[1]) == {1: 1.0} and iou(z, o)[1] == 0.0
    assert hd95(z, z, classes=[1]) == {1: 0.0} and hd95(z, o)[1] == math.inf and assd(o, z)[1] == math.inf
    assert cldice(z, z, classes=[1]) == {1: 1.0} and cldice(o, z)[1] == 0.0
    assert object_f1(z, z, classes=[1]) == {1: 1.0} and object_f1(z, o)[1] == 0.0
    assert math.isnan(sensitivity(o, z, classes=[1])[1]) and specificity(o, z, classes=[1])[1] == 32 / 36


def test_fov_restricts_everything():
    t = np.zeros((20, 20), int); t[5:10, 5:10] = 1
    p = t.copy(); p[15:18, 15:18] = 1
    fov = np.zeros((20, 20), bool); fov[:12, :12] = True
    r = evaluate(p, t, fov=fov, metrics=('dice', 'hd95', 'betti_error', 'object_f1'))
    assert r['dice_mean'] == 1.0 and r['hd95_mean'] == 0.0 and r['betti_error'][1] == (0, 0) and r['object_f1_mean'] == 1.0


def test_object_f1_instances():
    t = np.zeros((10, 20), int); t[2:8, 2:18] = 1
    inst = np.zeros_like(t); inst[2:8, 2:10] = 1; inst[2:8, 10:18] = 2          # two touching glands
    p = t.copy()                                                                 # predicted as one blob
    assert object_f1(p, t)[1] == 1.0                                             # without instances: one object
    assert math.isclose(object_f1(p, t, true_instances=inst)[1], 2 * 1 / 3)      # a merge: one hit, one miss


def test_evaluate_and_mean_of_and_errors():
    t = np.zeros((16, 16), int); t[4:12, 4:12] = 1; t[6:8, 6:8] = 2
    r = evaluate(t, t, metrics=('dice', 'betti_error', 'sensitivity'))
    assert r['dice'] == {1: 1.0, 2: 1.0} and r['betti_error_b0'] == 0.0
    m = mean_of([r, evaluate(np.zeros_like(t), t, metrics=('dice', 'betti_error', 'sensitivity'))])
    assert m['dice_mean'] == 0.5
    with pytest.raises(KeyError, match='unknown metric'):
        evaluate(t, t, metrics=('dise',))
    with pytest.raises(TypeError, match='integer label map'):
        dice(np.random.rand(4, 4), t[:4, :4])
    with pytest.raises(ValueError, match='expected one image'):
        dice(np.zeros((2, 2, 2, 2), int), np.zeros((2, 2, 2, 2), int))


def test_metrics_accept_tensors_and_cuda_free():
    t = torch.zeros(8, 8, dtype=torch.long); t[2:6, 2:6] = 1
    assert dice(t, t)[1] == 1.0 and hd95(t, t)[1] == 0.0
