import math
import numpy as np
import pytest
import torch

from medseg_nb.data.phantoms import fundus_phantom
from medseg_nb.methods.graphseg.vessel_graph import (mask_to_graph, render_graph, graph_stats, find_disc, atlas_transform,
                                                     warp_to_atlas, transform_graph, fov_circle)


def test_round_trip_median_within_5_percent():
    ch = []
    for seed in range(3, 9):
        a = mask_to_graph(fundus_phantom(160, seed=seed)['label'])
        b = mask_to_graph((render_graph(a) > 0.5).long())
        sa, sb = graph_stats(a), graph_stats(b)
        ch.append((abs(sb['nodes'] / sa['nodes'] - 1), abs(sb['total_length'] / sa['total_length'] - 1)))
    dn, dl = np.median(np.array(ch), axis=0)
    assert dn <= 0.05 and dl <= 0.05, ch


def test_y_junction_and_degrees():
    m = np.zeros((60, 60), int)
    m[30, 5:31] = 1                                       # stem
    for k in range(25):
        m[30 - k, 30 + k] = 1; m[30 + k, 30 + k] = 1      # two diagonal branches
    g = mask_to_graph(m)
    st = graph_stats(g)
    assert st['junctions'] == 1 and st['end_points'] == 3 and st['junction_degrees'] == {3: 1}
    assert abs(st['total_length'] - (25 + 2 * 24 * math.sqrt(2))) < 4


def test_empty_mask_and_bad_input():
    g = mask_to_graph(np.zeros((10, 10), int))
    assert len(g.nodes) == 0 and len(g.edges) == 0 and render_graph(g).sum() == 0
    with pytest.raises(ValueError, match='2-D mask'):
        mask_to_graph(np.zeros((2, 3, 4), int))
    with pytest.raises(ValueError, match='field-of-view mask is empty'):
        fov_circle(np.zeros((5, 5)))


def test_atlas_transform_maps_landmarks():
    s = fundus_phantom(128, seed=2)
    disc = s['disc'][:2]
    T = atlas_transform(s['fov'], disc, 100)
    c, r = fov_circle(s['fov'])
    p = lambda q: (T[:2, :2] @ q + T[:2, 2])
    assert torch.allclose(p(c), torch.tensor([50., 50.]), atol=1e-4)
    d = p(disc)
    assert abs(float(d[1]) - 50) < 1e-3 and float(d[0]) > 50          # disc on the horizontal axis, to the right
    w = warp_to_atlas(s['label'][None].float(), T, 100)
    assert w.shape == (1, 100, 100) and 0 < w.mean() < 0.3
    g = transform_graph(mask_to_graph(s['label']), T, 100)
    assert g.shape == (100, 100)
