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
    "The issue's end-to-end check: `medseg-nb train --method gausam --dataset kvasir` on the CPU."
    import json, os, subprocess, sys
    r = subprocess.run([sys.executable, '-m', 'medseg_nb.cli', 'train', '--method', 'gausam', '--dataset', 'kvasir',
                        '--data-root', str(real_data), '--out', str(tmp_path), '--steps', '2', '--batch-size', '2', '--json'],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s['steps'] == 2 and s['method'] == 'gausam' and 0 <= s['val_dice_mean'] <= 1
    assert (tmp_path / 'best.pt').exists()
