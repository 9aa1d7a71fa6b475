import pytest
import torch
from scipy.stats import binomtest, chisquare

from medseg_nb.core import METHODS, load_methods
from medseg_nb.methods.vqseg.model import VQSegNet, patch_infonce
from medseg_nb.methods.vqseg.vector_quantization import VectorQuantizer, qpm, transition_matrix

load_methods()
CODES = torch.tensor([[0., 0.], [1., 0.], [0., 2.], [2., 2.], [-1., -1.]])


def test_straight_through_and_values():
    vq = VectorQuantizer(8, 3).eval()
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    zq, info = vq(z)
    assert torch.allclose(zq, vq.codes[info['indices']].movedim(-1, 1), atol=1e-6)
    w = torch.randn_like(zq)
    (zq * w).sum().backward()
    assert torch.allclose(z.grad, w)


def test_learned_codes_get_codebook_gradients():
    vq = VectorQuantizer(8, 3, ema=False)
    zq, info = vq(torch.randn(2, 3, 4, 4))
    info['loss'].backward()
    assert vq.codes.grad is not None and vq.codes.grad.abs().sum() > 0


def test_dead_codes_restart():
    vq = VectorQuantizer(4, 2, restart_after=3).train()
    with torch.no_grad(): vq.codes[3] = torch.tensor([100., 100.]); vq.ema_sum[3] = vq.codes[3]
    for _ in range(3): vq(torch.randn(1, 2, 8, 8) * 0.1)
    assert vq.codes[3].abs().max() < 10                                   # moved to a token of the batch


@pytest.mark.parametrize('eps,T', [(0.0, 0.5), (0.7, 0.5), (0.3, 3.0)])
def test_qpm_transitions_match_the_formula(eps, T):
    P = transition_matrix(CODES, eps, T)
    assert torch.allclose(P.sum(1), torch.ones(5))
    idx = torch.randint(5, (30000,), generator=torch.Generator().manual_seed(0))
    new = qpm(idx, CODES, eps, T, generator=torch.Generator().manual_seed(1))
    for i in range(5):
        obs = torch.bincount(new[idx == i], minlength=5).double()
        exp_ = P[i].double() * obs.sum()
        assert (obs[exp_ == 0] == 0).all()                                 # impossible moves never happen (the own code when eps = 0)
        big = exp_ >= 5                                                    # chi-square cells; the rare ones pooled into one
        o = torch.cat([obs[big], obs[~big].sum()[None]]); e = torch.cat([exp_[big], exp_[~big].sum()[None]])
        o, e = (o, e) if e[-1] >= 5 else (o[:-1] + 0, e[:-1] * o[:-1].sum() / e[:-1].sum())
        assert chisquare(o.numpy(), (e * o.sum() / e.sum()).numpy()).pvalue > 1e-3
        k = int((new[idx == i] == i).sum()); n = int((idx == i).sum())
        assert binomtest(k, n, eps).pvalue > 1e-3


def test_qpm_errors():
    with pytest.raises(ValueError, match='keep probability'):
        transition_matrix(CODES, 1.5)
    with pytest.raises(ValueError, match='T must be > 0'):
        transition_matrix(CODES, 0.5, 0.0)
    with pytest.raises(ValueError, match='at least 2 codes'):
        transition_matrix(CODES[:1])


def test_perturbation_touches_only_marked_items():
    torch.manual_seed(0)
    for kind in ('qpm', 'dropout'):
        net = VQSegNet(1, 3, width=8, num_codes=16, code_dim=8, perturb=kind, eps=0.0, rate=0.9).eval()
        x = torch.rand(3, 1, 32, 32)
        with torch.no_grad():
            a, b = net(x), net(x, perturb=torch.tensor([False, False, True]))
        assert torch.allclose(a.logits[:2], b.logits[:2], atol=1e-6)
        assert not torch.allclose(a.logits[2], b.logits[2], atol=1e-4)


def test_infonce_and_method():
    f = torch.randn(2, 8, 5, 5)
    assert patch_infonce(f, f) < patch_infonce(f, torch.randn(2, 8, 5, 5))
    assert 'vqseg' in METHODS and METHODS['vqseg'].semi_supervised
    from medseg_nb.data.datasets import get_dataset, split_labeled
    from medseg_nb.train import Trainer
    tr = get_dataset('phantom-glands', None, 'train', n=4)
    lab, unl = split_labeled(len(tr), 0.5, 0)
    m = METHODS['vqseg'](width=4, depth=3, num_codes=16, code_dim=8)
    t = Trainer(m, tr, None, None, dict(steps=2, batch_size=2, patch=(32, 32), progress=False, log_every=1), labeled_idx=lab, unlabeled_idx=unl)
    t.fit()
    h, c = t.history[-1], m.cfg
    total = h['sup'] + h['w_unsup'] * h['pseudo'] + c.w_recon * h['recon'] + h['vq'] + c.w_align * h['align']
    assert h['loss'] == pytest.approx(total, rel=1e-5) and 0 <= h['confident'] <= 1 and h['align'] > 0


def test_transition_uses_squared_distance():
    "Codes on a line at 0, 1, 2, 3: from code 0 the moves go as exp(-1), exp(-4), exp(-9) (squared distances)."
    codes = torch.tensor([[0.], [1.], [2.], [3.]])
    P = transition_matrix(codes, eps=0.5, T=1.0)
    expected = 0.5 * torch.softmax(-torch.tensor([1., 4., 9.]), 0)
    assert torch.allclose(P[0, 1:], expected, atol=1e-6), P[0]


def test_move_distance_grows_with_temperature():
    book = torch.randn(128, 32, generator=torch.Generator().manual_seed(1)) * 1.5
    dist = torch.cdist(book, book)
    moves = [(transition_matrix(book, 0.0, T) * dist).sum(1).mean().item() for T in (0.5, 2, 8, 32, 128)]
    assert all(a < b for a, b in zip(moves, moves[1:])), moves
    nearest = dist.masked_fill(torch.eye(128, dtype=torch.bool), float('inf')).min(1).values.mean().item()
    assert moves[0] < 1.2 * nearest            # a cold QPM moves to the nearest codes


def test_reconstruction_reads_the_clean_codes():
    "Perturbing every token changes the segmentation pass but neither the reconstruction nor the aligned features."
    torch.manual_seed(0)
    net = VQSegNet(1, 3, width=8, num_codes=16, code_dim=8, eps=0.0).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        a, b = net(x), net(x, perturb=torch.ones(2, dtype=torch.bool))
    assert not torch.allclose(a.logits, b.logits, atol=1e-4)
    assert torch.allclose(a.features['recon'], b.features['recon'], atol=1e-6)
    assert torch.allclose(a.features['quantised'], b.features['quantised'], atol=1e-6)


def test_teacher_predicts_in_eval_mode():
    from medseg_nb.train import EMATeacher
    m = METHODS['vqseg'](width=4, depth=3, num_codes=16, code_dim=8)
    student = m.build_model(1, 2).train()
    teacher = EMATeacher(student).model
    seen = []
    teacher.register_forward_pre_hook(lambda mod, inp: seen.append(mod.training))
    before = {k: v.clone() for k, v in teacher.named_buffers()}
    batch = lambda: dict(image=torch.rand(2, 1, 32, 32), label=torch.randint(0, 2, (2, 32, 32)))
    m.setup(10)
    m.losses(student, batch(), dict(image=torch.rand(2, 1, 32, 32)), teacher, step=3)
    assert seen and not any(seen), 'the teacher ran in train mode'
    assert teacher.training, 'the teacher is put back in the mode it was in'
    assert all(torch.equal(before[k], v) for k, v in teacher.named_buffers()), "the teacher's codebook moved"
