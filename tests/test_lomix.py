import pytest
import torch
import torch.nn.functional as F

from medseg_nb.core import METHODS, SegOutput, get_method, load_methods
from medseg_nb.losses import DiceCELoss
from medseg_nb.methods.lomix import (LoMixLoss, LoMixMixer, LoMixNet, OPERATORS, lomix_weights, scale_maps, subsets)
from medseg_nb.nets.unet import UNet

load_methods()


def fake_output(C=3, B=2, H=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SegOutput(torch.randn(B, C, H, H, generator=g), [torch.randn(B, C, H // s, H // s, generator=g) for s in (8, 4, 2)])


def test_counts():
    assert len(subsets(4)) == 11 and len(set(subsets(4))) == 11
    m = LoMixMixer(2)
    assert m.theta.numel() == 48 and len(m.names()) == 48 and len(set(m.names())) == 48
    assert len(m([torch.randn(1, 2, 4, 4) for _ in range(4)])) == 48
    assert LoMixMixer(2, operators=('add',)).theta.numel() == 15


@pytest.mark.parametrize('weighting', ['raw', 'normalized', 'uncertainty'])
def test_gradients_reach_every_theta(weighting):
    mix = LoMixMixer(3)
    LoMixLoss(mix, weighting)(fake_output(), torch.randint(0, 3, (2, 16, 16)))['loss'].backward()
    assert (mix.theta.grad != 0).all()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mix.parameters())
    if weighting == 'raw': assert (mix.theta.grad > 0).all()         # the collapse: descent lowers every weight


def test_concat_convs_are_persistent():
    mix = LoMixMixer(3).train()
    maps = [torch.randn(1, 3, 8, 8) for _ in range(4)]
    i = mix.names().index('concat:134')
    assert torch.equal(mix(maps)[i], mix(maps)[i])                    # the released code drew a new conv each pass


def test_fixed_weightings_equal_explicit_sums():
    out, y = fake_output(), torch.randint(0, 3, (2, 16, 16))
    crit = DiceCELoss(0.7, 0.3)
    maps = [F.interpolate(a, size=(16, 16), mode='bilinear', align_corners=False) for a in out.aux] + [out.logits]
    deep = LoMixLoss(LoMixMixer(3, operators=()), 'fixed')(out, y)['loss']
    assert torch.allclose(deep, sum(crit(m, y) for m in maps) / 4, atol=1e-6)
    add = LoMixLoss(LoMixMixer(3, operators=('add',)), 'fixed')(out, y)['loss']
    terms = maps + [sum(maps[i] for i in S) for S in subsets(4)]
    assert torch.allclose(add, sum(crit(m, y) for m in terms) / 15, atol=1e-6)
    w = lomix_weights(torch.randn(48), 'normalized')
    assert torch.allclose(w.sum(), torch.tensor(1.0)) and (w > 0).all()


def test_inference_model_is_the_plain_network():
    torch.manual_seed(1)
    plain = UNet(3, 2, 2, width=8, depth=4)
    net = LoMixNet(UNet(3, 2, 2, width=8, depth=4), LoMixMixer(2))
    net.net.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(net.eval()(x).logits, plain.eval()(x).logits)
        assert 'lomix_maps' not in net(x).features
        assert len(net.train()(x).features['lomix_maps']) == 48
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(net.deployable()) == n(plain)
    UNet(3, 2, 2, width=8, depth=4).load_state_dict(net.deployable().state_dict(), strict=True)


def test_methods_and_errors():
    assert {'lomix', 'single', 'deep', 'additive'} <= set(METHODS)
    with pytest.raises(ValueError, match='depth >= 4'):
        get_method('lomix', depth=3).build_model(1, 2)
    with pytest.raises(ValueError, match='unknown weighting'):
        LoMixLoss(LoMixMixer(2), 'softmax')
    with pytest.raises(ValueError, match='expects 4 logit maps'):
        LoMixMixer(2)([torch.randn(1, 2, 4, 4)] * 3)
    with pytest.raises(ValueError, match='needs 4 logit maps'):
        scale_maps(SegOutput(torch.randn(1, 2, 8, 8), [torch.randn(1, 2, 4, 4)]))


def test_lomix_trains_and_resumes(tmp_path):
    from medseg_nb.data.datasets import get_dataset
    from medseg_nb.train import Trainer, load_checkpoint
    tr = get_dataset('phantom-vessels', None, 'train', n=3)
    cfg = dict(steps=3, batch_size=2, patch=(32, 32), progress=False, log_every=1, val_every=3)
    t = Trainer(get_method('lomix', width=4, depth=4), tr, None, tmp_path, cfg)
    t.fit()
    st = load_checkpoint(tmp_path / 'last.pt')
    assert any(k.startswith('mixer.theta') for k in st['model'])          # the weights travel with the checkpoint
    assert not torch.equal(st['model']['mixer.theta'], torch.zeros(48))
    assert 'w:weighted:1234' in t.history[-1]
