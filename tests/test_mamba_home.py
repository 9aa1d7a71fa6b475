import json
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings, strategies as st

from medseg_nb.core import METHODS, get_method, load_methods
from medseg_nb.methods.mamba_home.model import MambaHoMENet
from medseg_nb.methods.mamba_home.selective_scan import (Mamba, MambaLayer3D, scan_orders, selective_scan,
                                                         selective_scan_chunked, selective_scan_ref)
from medseg_nb.methods.mamba_home.soft_moe import HoME, SoftMoE

load_methods()


def inputs(b, d, n, L, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)
    return dict(u=r(b, d, L), delta=r(b, d, L), A=-torch.exp(r(d, n)), B=r(b, n, L), C=r(b, n, L), D=r(d), z=r(b, d, L),
                delta_bias=r(d))


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), d=st.integers(1, 6), n=st.integers(1, 8), L=st.integers(1, 90), chunk=st.sampled_from([None, 1, 3, 16, 64]),
       seed=st.integers(0, 1000), z=st.booleans())
def test_chunked_equals_sequential(b, d, n, L, chunk, seed, z):
    a = inputs(b, d, n, L, seed)
    if not z: a['z'] = None
    r, lr = selective_scan_ref(**a, delta_softplus=True, return_last_state=True)
    c, lc = selective_scan_chunked(**a, delta_softplus=True, return_last_state=True, chunk=chunk)
    assert torch.allclose(c, r, rtol=1e-9, atol=1e-9) and torch.allclose(lc, lr, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('shape', [(2, 4, 3, 50), (1, 16, 8, 257), (3, 2, 2, 7)])
def test_gradients_equal_float32(shape):
    a = inputs(*shape, seed=sum(shape), dtype=torch.float32)
    for v in a.values(): v.requires_grad_(True)
    r = selective_scan_ref(**a, delta_softplus=True)
    c = selective_scan_chunked(**a, delta_softplus=True)
    assert torch.allclose(c, r, rtol=1e-5, atol=1e-5 * r.abs().max().item())
    w = torch.randn_like(r)
    gr = torch.autograd.grad((r * w).sum(), list(a.values()))
    gc = torch.autograd.grad((c * w).sum(), list(a.values()))
    for k, x, y in zip(a, gr, gc):
        assert torch.allclose(y, x, rtol=1e-4, atol=1e-4 * x.abs().max().item()), k


def graph_nodes(out) -> dict:
    "How many nodes of each kind the autograd graph behind `out` holds."
    seen, stack, kinds = set(), [out.grad_fn], {}
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        kinds[type(node).__name__] = kinds.get(type(node).__name__, 0) + 1
        stack += [nxt for nxt, _ in node.next_functions]
    return kinds


def test_chunked_scan_indexes_no_step_whose_backward_writes_the_whole_tensor():
    """Each step's slice comes from one unbind: an index per step (x[t]) would add a SelectBackward per step, each
    writing a zero tensor of all T x K chunks in the backward pass (1.35-1.6x the time at L = 9216 on the CPU)."""
    a = inputs(2, 4, 3, 200, seed=0, dtype=torch.float32)
    for v in a.values(): v.requires_grad_(True)
    kinds = graph_nodes(selective_scan_chunked(**a, delta_softplus=True, chunk=10))
    assert kinds.get('SelectBackward0', 0) == 0, kinds
    assert kinds.get('UnbindBackward0', 0) >= 4, kinds  # the split is there, not some other per-step index


def test_scan_errors_and_dispatch():
    a = inputs(1, 2, 3, 5, 0, torch.float32)
    with pytest.raises(ValueError, match='b x d x L'):
        selective_scan(a['u'][0], a['delta'], a['A'], a['B'], a['C'])
    with pytest.raises(ValueError, match='A must be d x N'):
        selective_scan(a['u'], a['delta'], a['A'].T, a['B'], a['C'])
    with pytest.raises(ValueError, match='C must be b x N x L'):
        selective_scan(a['u'], a['delta'], a['A'], a['B'], a['C'][..., :3])
    with pytest.raises(ValueError, match='unknown scan backend'):
        selective_scan(**a, backend='cuda')
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='needs mamba_ssm'):
            selective_scan(**a, backend='kernel')
    assert torch.allclose(selective_scan(**a), selective_scan(**a, backend='ref'), atol=1e-5)


def test_mamba_block_is_causal_and_orders_are_permutations():
    blk = Mamba(8, d_state=4)
    h = torch.randn(1, 40, 8); h2 = h.clone(); h2[:, 25:] = torch.randn(1, 15, 8)
    assert torch.allclose(blk(h)[:, :25], blk(h2)[:, :25], atol=1e-6)
    for p in scan_orders((3, 4, 5), 6):
        assert sorted(p.tolist()) == list(range(60))
    with pytest.raises(ValueError, match='1 to 6'):
        scan_orders((2, 2, 2), 7)


def test_soft_moe_weights_sum_to_one():
    moe = SoftMoE(8, 3, 2)
    y, D, C = moe(torch.randn(2, 11, 8), return_weights=True)
    assert torch.allclose(D.sum(1), torch.ones(2, 6), atol=1e-6) and torch.allclose(C.sum(2), torch.ones(2, 11), atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(L=st.integers(1, 40), K=st.integers(1, 12), seed=st.integers(0, 100))
def test_home_invariants(L, K, seed):
    torch.manual_seed(seed)
    home = HoME(8, group=K, experts=2, slots=2, experts2=2, slots2=1)
    x = torch.randn(2, L, 8)
    y, w = home(x, return_weights=True)
    G = -(-L // K)
    assert torch.allclose(w['dispatch'].sum(2), torch.ones(2, G, 4), atol=1e-5)       # over real tokens
    assert torch.allclose(w['combine'].sum(-1), torch.ones(2, G, K), atol=1e-5)
    # permutation within each group
    perm = torch.cat([g * K + torch.randperm(min(K, L - g * K)) for g in range(G)])
    assert torch.allclose(home(x[:, perm]), y[:, perm], atol=1e-5)
    # garbage in the padding of the last group never reaches an output
    pad = G * K - L
    if pad:
        xg = torch.cat([x, 1e3 * torch.randn(2, pad, 8)], 1)
        mask = torch.cat([torch.ones(2, L, dtype=torch.bool), torch.zeros(2, pad, dtype=torch.bool)], 1)
        assert torch.allclose(home(xg, mask=mask)[:, :L], y, atol=1e-4)
    with pytest.raises(ValueError, match='no real token'):
        home(torch.randn(1, 2 * K, 8), mask=torch.cat([torch.ones(1, K, dtype=torch.bool), torch.zeros(1, K, dtype=torch.bool)], 1))


def test_network_shapes_and_method():
    net = MambaHoMENet(1, 3, 'small')
    o = net(torch.randn(1, 1, 9, 20, 24))                       # odd, thin sizes
    assert o.logits.shape == (1, 3, 9, 20, 24) and len(o.aux) == 3
    with pytest.raises(ValueError, match='unknown Mamba-HoME size'):
        MambaHoMENet(1, 3, 'huge')
    assert METHODS['mamba_home'].dims == (3,)
    with pytest.raises(ValueError, match='builds 3-D networks; got dim=2'):
        get_method('mamba_home').build_model(1, 2, 2)


def test_network_runs_under_bfloat16_autocast():
    """The forward under bf16 autocast, as a GPU trains it: finite logits in the autocast dtype, and a finite loss. The
    GPU check's dry run on a CPU trains 3-D networks in float32 (under bf16 autocast on a CPU it gave NaN gradients in
    some runs of one seed, most likely the CPU's bf16 kernels), so this is where the autocast path of the scan and the
    mixture of experts runs on a CPU."""
    torch.manual_seed(0)
    m = get_method('mamba_home')
    net = m.build_model(1, 3, 3)
    batch = dict(image=torch.rand(2, 1, 16, 16, 16), label=torch.randint(0, 3, (2, 16, 16, 16)))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        o = net(batch['image'])
        loss = m.losses(net, batch)['loss']
    assert o.logits.dtype == torch.bfloat16 and torch.isfinite(o.logits.float()).all()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def _cli(args, timeout=900):
    r = subprocess.run([sys.executable, '-m', 'medseg_nb.cli', 'train', '--method', 'mamba_home', *args, '--json'],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_cli_train_on_phantom_organs(tmp_path):
    s = _cli(['--dataset', 'phantom-organs3d', '--out', str(tmp_path), '--steps', '2', '--batch-size', '1', '--set', 'val_items=1'])
    assert s['steps'] == 2 and 0 <= s['val_dice_mean'] <= 1


def test_cli_train_on_acdc_volumes(real_data, tmp_path):
    s = _cli(['--dataset', 'acdc', '--data-root', str(real_data), '--out', str(tmp_path), '--steps', '1', '--batch-size', '1',
              '--set', 'val_items=1', '--set', 'val_patch=8,96,96'])
    assert s['steps'] == 1 and s['labeled_items'] == 140 and 0 <= s['val_dice_mean'] <= 1


def test_dynamic_slots_second_level_against_a_loop():
    "The released second level, written as loops over segments, experts and slots: one slot per token, output replaces input."
    import torch.nn.functional as F
    from medseg_nb.methods.mamba_home.soft_moe import DynamicSlotsMoE, rms_norm
    torch.manual_seed(0)
    E, n, d = 3, 7, 8
    m = DynamicSlotsMoE(d, experts=E)
    x = torch.randn(2, n, d)
    y = m(x)
    segs = -(-n // E)
    for b in range(2):
        xn = rms_norm(x[b]) * m.gamma
        means = torch.stack([xn[k * E:min((k + 1) * E, n)].mean(0) for k in range(segs)])      # segs x d
        slots = [[rms_norm(m.to_slots(means[k]).view(E, d)[e]) for k in range(segs)] for e in range(E)]
        logits = torch.stack([torch.stack([xn @ slots[e][k] for k in range(segs)], -1) for e in range(E)], 1)  # n x E x segs
        D, C = logits.softmax(0), logits.flatten(1).softmax(-1)
        outs = []
        for e in range(E):
            s_in = torch.einsum('nd,ns->sd', xn, D[:, e])
            a, g = (s_in @ m.experts.w1[e] + m.experts.b1[e]).chunk(2, -1)
            outs.append((a * F.gelu(g)) @ m.experts.w2[e] + m.experts.b2[e])
        ref = C @ torch.cat(outs)
        assert torch.allclose(y[b], ref, atol=1e-5)
    home = HoME(8, group=4, experts=2, slots=2, experts2=3)
    assert home.level2 == 'released' and not hasattr(home, 'experts2')
    with pytest.raises(ValueError, match="'released' or 'pooled'"):
        HoME(8, level2='flat')


@pytest.mark.parametrize('orders', [1, 2, 6])
def test_layer_scans_all_orders_in_one_batch_as_a_loop_over_orders_does(orders):
    """The layer runs Mamba once on the k orders stacked as k b sequences and maps each back by the inverse
    permutation; the per-order loop (one Mamba call per order, scattered back in place) must give the same, values and
    gradients, on a grid whose three sides differ (a wrong inverse or axis would mix them up)."""
    torch.manual_seed(0)
    layer = MambaLayer3D(8, orders).double()
    x = torch.randn(2, 8, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    seq = x.flatten(2).transpose(1, 2)
    loop = torch.zeros_like(seq)
    for p in scan_orders((3, 4, 5), orders):
        loop[:, p] += layer.mamba(seq[:, p])
    loop = loop / orders
    batched = layer.scan(seq, (3, 4, 5))
    assert torch.allclose(batched, loop, atol=1e-12), float((batched - loop).abs().max())
    w = torch.randn_like(loop)
    g_loop = torch.autograd.grad((loop * w).sum(), [x, *layer.parameters()])
    g_batched = torch.autograd.grad((batched * w).sum(), [x, *layer.parameters()])
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(g_batched, g_loop))
    assert layer.permutations((3, 4, 5), x.device)[0] is layer.permutations((3, 4, 5), x.device)[0]   # made once per grid


def test_network_compiles_to_the_eager_loss_and_gradients():
    """`torch.compile` (Trainer option `compile`) on the whole network: TorchDynamo and AOTAutograd capture forward and
    backward (backend aot_eager: no code generation, so this runs in seconds on a CPU), and the captured step gives
    eager's loss and gradients. It failed before the dt projection was written as one matmul into b x di x L: the
    traced backward viewed a transposed gradient (`view size is not compatible`)."""
    torch.manual_seed(0)
    net = MambaHoMENet(1, 3, 'small', dims=(8, 8, 16, 16), groups=(64, 32, 16, 8))
    x, target = torch.randn(2, 1, 8, 12, 12), torch.randint(0, 3, (2, 8, 12, 12))
    compiled = torch.compile(net, backend='aot_eager')
    runs = []
    for model in (net, compiled):
        net.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x).logits, target)
        loss.backward()
        # a parameter the loss does not reach (the deep-supervision heads: only `logits` is scored) has no gradient in
        # eager and a zero one from the captured graph, which returns every output
        runs.append((loss.detach(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]))
    (eager, eager_grads), (comp, comp_grads) = runs
    assert sum(bool(g.any()) for g in eager_grads) > 100
    assert torch.allclose(eager, comp, atol=1e-5), (eager, comp)
    # against the largest gradient: biases before an instance norm have gradients of 0 up to rounding (1e-9 here)
    scale = max(float(g.abs().max()) for g in eager_grads)
    worst = max(float((a - b).abs().max()) for a, b in zip(eager_grads, comp_grads)) / scale
    assert worst < 1e-4, worst


def test_network_is_captured_as_one_graph_with_no_device_read():
    """TorchDynamo captures the whole forward as one graph. Each HoME layer checked that every token group held a real
    token (`if not mask_grp.any(-1).all()`) even when no mask was given and none could be empty: a value read back
    from the device, a GPU sync per layer, and a graph break that split this network into 22 graphs (the tour's into
    24), whose shared functions then recompiled once per stage until TorchDynamo's limit (8) sent them back to eager
    (seen on an H200: 'hit config.recompile_limit (8), function scan'; compiling gained 1.2x)."""
    torch.manual_seed(0)
    net = MambaHoMENet(1, 3, 'small', dims=(8, 8, 16, 16), groups=(64, 32, 16, 8))
    torch._dynamo.reset()
    explained = torch._dynamo.explain(net)(torch.randn(2, 1, 8, 12, 12))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_home_refuses_a_mask_with_an_empty_group():
    "A given mask is still checked: a group with no real token has nothing to route (padding only at the end)."
    home = HoME(8, group=4)
    x, mask = torch.randn(1, 12, 8), torch.ones(1, 12, dtype=torch.bool)
    home(x, mask=mask)
    mask[0, 4:8] = False
    with pytest.raises(ValueError, match='a group of tokens has no real token'):
        home(x, mask=mask)
