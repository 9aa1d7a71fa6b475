import torch
import torch.nn.functional as F
import pytest
from hypothesis import given, settings, strategies as st

from medseg_nb.core import METHODS, load_methods
from medseg_nb.methods.nsda import NSDA, box_count, box_sum, default_window, nsda, nsda_unet
from medseg_nb.nets.unet import UNet

load_methods()


def loop_reference(x, w, unbiased):
    "Direct loops over pixels and window offsets, statistics over valid pixels only."
    B, C, H, W = x.shape; r = w // 2
    def win(i, j): return [(p, q) for p in range(max(0, i - r), min(H, i + r + 1)) for q in range(max(0, j - r), min(W, j + r + 1))]
    mu = torch.stack([torch.stack([sum(x[..., p, q] for p, q in win(i, j)) / len(win(i, j)) for j in range(W)], -1) for i in range(H)], -2)
    d2 = (x - mu) ** 2
    out = torch.empty_like(x)
    for i in range(H):
        for j in range(W):
            ps = win(i, j); n = len(ps)
            s2 = sum(d2[..., p, q] for p, q in ps) / n * (n / max(n - 1, 1) if unbiased else 1.0)
            out[..., i, j] = x[..., i, j] * (2 - torch.exp(-d2[..., i, j] / (2 * s2 + 1e-6)))
    return out


@settings(max_examples=12, deadline=None)
@given(H=st.integers(1, 9), W=st.integers(1, 9), w=st.sampled_from([1, 3, 5, 11]), unbiased=st.booleans(), seed=st.integers(0, 99))
def test_matches_loop_everywhere(H, W, w, unbiased, seed):
    x = torch.randn(1, 2, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert torch.allclose(nsda(x, w, unbiased), loop_reference(x, w, unbiased), atol=1e-5)


def test_box_sum_against_pooling_and_counts():
    x = torch.randn(2, 3, 20, 17)
    for w in (1, 3, 9, 41):
        ones = torch.ones(1, 1, 20, 17)
        ref = F.avg_pool2d(F.pad(x, (w // 2,) * 4), w, 1) * w * w
        assert torch.allclose(box_sum(x, w), ref, atol=1e-4)
        assert torch.allclose(box_count(20, 17, w), F.avg_pool2d(F.pad(ones, (w // 2,) * 4), w, 1)[0, 0] * w * w)


def test_float32_integral_images_stay_accurate_on_large_maps():
    x = 100 + torch.randn(1, 1, 512, 512)
    ref = F.avg_pool2d(x.double(), 9, 1, 4, count_include_pad=False) * box_count(512, 512, 9, dtype=torch.float64)
    assert torch.allclose(box_sum(x, 9).double(), ref, rtol=1e-5)


def test_no_parameters_gradient_and_dtype():
    assert sum(p.numel() for p in NSDA().parameters()) == 0
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    out, a = nsda(x, return_attention=True)
    out.sum().backward()
    assert torch.allclose(x.grad, 1 + a) and not a.requires_grad
    assert nsda(torch.randn(1, 1, 8, 8, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match='odd'):
        nsda(torch.randn(1, 1, 8, 8), 2)
    with pytest.raises(ValueError, match='B x C x H x W'):
        nsda(torch.randn(8, 8))


def test_default_window_is_odd():
    for h in range(1, 300):
        w = default_window(h)
        assert w % 2 == 1 and w >= h // 8 + 1


def test_unet_with_nsda():
    a, b = UNet(1, 3, 2, width=8), nsda_unet(1, 3, width=8)
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    assert sum(isinstance(m, NSDA) for m in b.modules()) == 9          # 4 encoder blocks + bottleneck + 4 decoder blocks
    assert b(torch.randn(1, 1, 32, 32)).logits.shape == (1, 3, 32, 32)
    assert 'nsda' in METHODS


def test_inference_keeps_the_training_window(tmp_path):
    "A U-Net + NSDA trained on 64 px inputs uses its 64 px windows on 128 px inputs, also after a checkpoint round trip."
    net = nsda_unet(1, 2, width=4, depth=2).train()
    net(torch.randn(2, 1, 64, 64))
    blocks = [m for m in net.modules() if isinstance(m, NSDA)]
    trained = [int(b.trained_window) for b in blocks]
    assert trained[0] == default_window(64) and trained[1] == default_window(32)
    seen = []
    for b in blocks:
        b.register_forward_hook(lambda mod, inp, out: seen.append(mod.current_window(inp[0])))
    net.eval()
    with torch.no_grad():
        net(torch.randn(1, 1, 128, 128))
    assert seen == trained
    torch.save(net.state_dict(), tmp_path / 'w.pt')
    again = nsda_unet(1, 2, width=4, depth=2)
    again.load_state_dict(torch.load(tmp_path / 'w.pt', weights_only=True))
    assert [int(b.trained_window) for b in again.modules() if isinstance(b, NSDA)] == trained
