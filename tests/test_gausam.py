import pytest
import torch

from medseg_nb.core import get_method, load_methods, METHODS
from medseg_nb.methods.gausam.model import GauSAM, boxes_from_labels, build_sam, load_sam_weights

load_methods()


def test_registered():
    assert {'gausam', 'sam'} <= set(METHODS)


def test_boxes_from_labels_jitter_stays_in_image():
    y = torch.zeros(3, 40, 50, dtype=torch.long); y[0, 10:20, 5:15] = 1; y[1, 0:40, 49] = 2
    b = boxes_from_labels(y)
    assert b.tolist() == [[5, 10, 15, 20], [49, 0, 50, 40], [0, 0, 50, 40]]
    j = boxes_from_labels(y, jitter=0.5, generator=torch.Generator().manual_seed(0))
    assert (j[:, 0] >= 0).all() and (j[:, 2] <= 50).all() and (j[:, 3] <= 40).all()


def test_sam_checkpoint_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ('ran',))
    torch.save({'x': Evil()}, tmp_path / 'evil.pth')
    with pytest.raises(ValueError, match='weights_only=True'):
        load_sam_weights(build_sam('tiny'), tmp_path / 'evil.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth not found'):
        build_sam('tiny', checkpoint=tmp_path / 'nope.pth')


def test_frozen_encoder_with_checkpoint(tmp_path):
    torch.save(build_sam('tiny').state_dict(), tmp_path / 's.pth')
    net = GauSAM(2, checkpoint=str(tmp_path / 's.pth'))
    assert not any(p.requires_grad for p in net.sam.image_encoder.parameters())
    assert all(p.requires_grad for p in GauSAM(2).sam.image_encoder.parameters())       # random encoder: trained


def test_any_resolution_and_grayscale():
    net = GauSAM(3, n_gaussians=16).eval()
    with torch.no_grad():
        o = net(torch.rand(1, 1, 40, 56), out_size=(123, 77))
    assert o.logits.shape == (1, 3, 123, 77)
    with pytest.raises(ValueError, match='boxes must be B x 4'):
        net(torch.rand(2, 3, 32, 32), boxes=torch.zeros(1, 4))
    with pytest.raises(ValueError, match='grid of at least'):
        GauSAM(2, n_gaussians=1000)


def test_gausam_trains_with_trainer(tmp_path):
    from medseg_nb.data.datasets import get_dataset
    from medseg_nb.train import Trainer
    tr = get_dataset('phantom-glands', split='train', n=4, size=64)
    t = Trainer(get_method('gausam', n_gaussians=16), tr, None, tmp_path,
                dict(steps=3, batch_size=2, patch=(48, 48), val_every=1000, progress=False))
    s = t.fit()
    assert s['steps'] == 3 and (tmp_path / 'last.pt').exists()


def test_cli_train_gausam_on_kvasir(real_data, tmp_path):
    "The issue's end-to-end check: `medseg-nb train --method gausam --dataset kvasir` on the CPU (validated on 4 images)."
    import json, os, subprocess, sys
    r = subprocess.run([sys.executable, '-m', 'medseg_nb.cli', 'train', '--method', 'gausam', '--dataset', 'kvasir',
                        '--data-root', str(real_data), '--out', str(tmp_path), '--steps', '2', '--batch-size', '2',
                        '--set', 'val_items=4', '--json'],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s['steps'] == 2 and s['method'] == 'gausam' and 0 <= s['val_dice_mean'] <= 1
    assert (tmp_path / 'best.pt').exists()


def _batch(n=2, size=64):
    from medseg_nb.data.phantoms import gland_phantom
    b = [gland_phantom(size, seed=i) for i in range(n)]
    return dict(image=torch.stack([x['image'] for x in b]), label=torch.stack([x['label'] for x in b]))


@pytest.mark.parametrize('name', ['gausam', 'sam'])
def test_every_trainable_parameter_reaches_the_loss(name):
    "Parameters marked trainable but never used by the head (hypernetworks, IoU head, mask down-scaling) are frozen."
    torch.manual_seed(0)
    m = get_method(name, box_prob=1.0)
    net = m.build_model(3, 2)
    m.losses(net, _batch())['loss'].backward()
    unused = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, unused[:8]


def test_vit_b_counts_what_learns():
    vb = GauSAM(2, 'vit_b', n_gaussians=64, freeze_encoder=True, freeze_decoder=True)
    assert 0.25e6 < vb.trainable_parameters() < 0.4e6


def test_sam_head_maps_tokens_as_sam_does():
    "head='sam': background logit 0, class k's logit = mask token k-1 (SAM's foreground mask)."
    torch.manual_seed(0)
    net = GauSAM(3, 'tiny', head='sam').eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = net(x)
    assert out.logits.shape == (1, 3, 64, 64)
    assert torch.equal(out.logits[:, 0], torch.zeros_like(out.logits[:, 0]))
    masks = out.features['sam_masks']                       # tokens 0 and 1, over SAM's frame
    assert masks.shape[1] == 2
    up = net.sam.postprocess_masks(masks, input_size=(256, 256), original_size=(64, 64))     # SAM's own mapping back
    assert torch.allclose(out.logits[:, 1:], up, atol=1e-4)
    with pytest.raises(ValueError, match='foreground classes 1-4'):
        GauSAM(6, 'tiny', head='sam')


def test_encoder_sees_longest_side_resize_and_padding():
    "A non-square image reaches SAM's encoder as SAM's own ResizeLongestSide + preprocess would give it."
    from segment_anything.utils.transforms import ResizeLongestSide
    from medseg_nb.methods.gausam.model import encode_image
    torch.manual_seed(0)
    sam = build_sam('tiny').eval()
    img = torch.rand(1, 3, 60, 150)
    with torch.no_grad():
        hw = ResizeLongestSide.get_preprocess_shape(60, 150, 256)
        ref = sam.image_encoder(sam.preprocess(torch.nn.functional.interpolate(
            img * 255, hw, mode='bilinear', align_corners=False, antialias=True)))
        assert torch.allclose(encode_image(sam, img), ref, atol=1e-4)


def test_gaussian_scales_are_bounded():
    torch.manual_seed(0)
    net = GauSAM(2, 'tiny', n_gaussians=16).eval()
    with torch.no_grad():
        net.mlp[-1].bias[2:4] = 1e4                             # an exploding scale output
        big = net(torch.rand(1, 3, 64, 64)).features['gaussians'].log_s
        net.mlp[-1].bias[2:4] = -1e4
        small = net(torch.rand(1, 3, 64, 64)).features['gaussians'].log_s
    base = torch.log(torch.tensor(0.5 / 4.0))
    assert (big <= base + 2.5 + 1e-4).all() and (small >= base - 2.5 - 1e-4).all()


def test_a_head_run_stopped_by_sigterm_resumes_to_the_result_of_a_run_never_stopped(tmp_path, monkeypatch):
    """`train_head` (the GauSAM grid's runs, up to an hour each on a CPU) lost a run cut short by a session's end: it
    kept nothing until it returned. With `checkpoint=` a SIGTERM arriving mid-step lets the step end, saves it, and
    raises; the rerun continues from there to the same curve, scores and weights as a run never stopped."""
    import os
    import signal

    from medseg_nb.data.phantoms import PhantomDataset
    from medseg_nb.methods.gausam import model
    from medseg_nb.train import Terminated

    glands = PhantomDataset('glands', n=6, size=64, seed=0)
    items = [glands[i] for i in range(4)], [glands[4], glands[5]]
    opts = dict(steps=6, size=64, val_every=2, scales=(1,), n_gaussians=16, save_every=100)
    whole = model.train_head(*items, **opts, checkpoint=tmp_path / 'whole.pt')
    real, calls = model.score_head, []

    def signalled(*a, **k):                 # the second validation (step 4) brings SIGTERM, as a session's end would
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(model, 'score_head', signalled)
    with pytest.raises(Terminated):
        model.train_head(*items, **opts, checkpoint=tmp_path / 'cut.pt')
    cut = torch.load(tmp_path / 'cut.pt', weights_only=True)
    assert cut['step'] == 4 and [s for s, _ in cut['curve']] == [2, 4]     # the step under way ended and was kept
    monkeypatch.setattr(model, 'score_head', real)
    resumed = model.train_head(*items, **opts, checkpoint=tmp_path / 'cut.pt')
    assert resumed['resumed_at'] == 4
    assert resumed['curve'] == whole['curve'] and resumed['rows'] == whole['rows']
    a, b = (torch.load(tmp_path / f, weights_only=True)['model'] for f in ('whole.pt', 'cut.pt'))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match='holds another run'):
        model.train_head(*items, **opts | dict(steps=8), checkpoint=tmp_path / 'cut.pt')
