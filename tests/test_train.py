"Trainer: resume to the same weights, atomic checkpoints, budgets, DDP on two CPU processes, the command line."
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from medseg_nb.core import get_method, load_methods, METHODS
from medseg_nb.data.datasets import get_dataset
from medseg_nb.train import StopSignals, Terminated, Trainer, load_checkpoint, save_checkpoint, predict, sliding_window
from medseg_nb import cli

load_methods()
SMALL = dict(batch_size=2, patch=(32, 32), val_every=1000, progress=False)


def _trainer(out, method='unet', steps=12, **kw):
    tr = get_dataset('phantom-glands', split='train', n=4, size=48)
    m = get_method(method, width=4, depth=2)
    extra = {}
    if m.semi_supervised:
        extra = dict(labeled_idx=[0, 1], unlabeled_idx=[2, 3])
    return Trainer(m, tr, None, out, dict(SMALL, steps=steps, **kw), **extra)


# ARCO's memory queues and MATCH's teacher snapshots live in the method, not in the network: checkpoints left them
# out, so a resumed run started with empty queues and no snapshots and trained other weights than the run not stopped
@pytest.mark.parametrize('method', ['unet', 'mean_teacher', 'arco', 'match'])
def test_resume_gives_same_weights(tmp_path, method):
    a = _trainer(tmp_path / 'a', method)
    a.fit()
    b = _trainer(tmp_path / 'b', method)

    def stop(t):
        if t.step == 5:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        b.fit(callback=stop)
    assert load_checkpoint(tmp_path / 'b' / 'last.pt')['step'] == 5
    c = _trainer(tmp_path / 'b', method)
    c.fit(resume=tmp_path / 'b' / 'last.pt')
    for (n, p), q in zip(a.model.state_dict().items(), c.model.state_dict().values()):
        assert torch.equal(p, q), n
    if method == 'mean_teacher':
        for p, q in zip(a.teacher.model.parameters(), c.teacher.model.parameters()):
            assert torch.equal(p, q)


def _validating_trainer(out):
    "8 steps of a small U-Net, a row every step, a validation every 4 (the tests of stopped and resumed curves)."
    tr = get_dataset('phantom-glands', split='train', n=4, size=48)
    val = get_dataset('phantom-glands', split='val', n=1, size=48)
    return Trainer(get_method('unet', width=4, depth=2), tr, val, out, dict(SMALL, steps=8, val_every=4, log_every=1))


def test_a_run_killed_after_a_validation_resumes_with_that_validation_in_its_history(tmp_path):
    """The checkpoint written at a validation used to be saved before that validation's row was logged, so a run killed
    after it (a session's end, not Ctrl-C, which saves again) resumed with a history that lacked the row: its curve lost
    the point, and the clock of that stretch was lost with it. Now the row is logged first; the resumed run's history
    is the uninterrupted run's, step for step."""
    a = _validating_trainer(tmp_path / 'a')
    a.fit()
    b = _validating_trainer(tmp_path / 'b')

    def killed(t):
        if t.step == 6:
            raise RuntimeError('killed')        # not KeyboardInterrupt: nothing is saved on the way out
    with pytest.raises(RuntimeError, match='killed'):
        b.fit(callback=killed)
    st = load_checkpoint(tmp_path / 'b' / 'last.pt')
    assert st['step'] == 4 and [r['step'] for r in st['history'] if 'val_dice_mean' in r] == [4]
    c = _validating_trainer(tmp_path / 'b')
    c.fit(resume=tmp_path / 'b' / 'last.pt')
    assert [r['step'] for r in c.history] == [r['step'] for r in a.history] == list(range(1, 9))
    assert [r['val_dice_mean'] for r in c.history if 'val_dice_mean' in r] == pytest.approx(
        [r['val_dice_mean'] for r in a.history if 'val_dice_mean' in r])


@pytest.mark.parametrize('signalled_in', ['step', 'validation'])
def test_a_run_stopped_between_a_step_and_its_row_resumes_with_that_row_and_its_validation(tmp_path, signalled_in):
    """A stop signal is held while a step runs and raised when it ends, but the step's row (its loss terms, and the
    validation due at it) was written after that: a SIGTERM during a validation step, or during its validation, saved
    `last.pt` at the step without its row, and the resumed run went on to the next step, so the curve lost the point for
    good (a 3000-step ACDC run stopped at step 2400 had no validation there). Now the checkpoint keeps the step's loss
    terms and the resumed run writes the row, validating on the same weights, before it trains on: its history is the
    uninterrupted run's, step for step, losses and scores alike."""
    a = _validating_trainer(tmp_path / 'a')
    a.fit()
    b = _validating_trainer(tmp_path / 'b')
    if signalled_in == 'step':                   # mid-step 4: the step ends, then the signal is raised
        real_step = b.train_step

        def step(*args):
            if b.step == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return real_step(*args)
        b.train_step = step
    else:                                        # during step 4's validation, which is not held
        real_validate = b.validate

        def validate():
            if b.step == 4:
                os.kill(os.getpid(), signal.SIGTERM)
            return real_validate()
        b.validate = validate
    with pytest.raises(Terminated):
        b.fit()
    st = load_checkpoint(tmp_path / 'b' / 'last.pt')
    assert st['step'] == 4 and [r['step'] for r in st['history']] == [1, 2, 3]
    c = _validating_trainer(tmp_path / 'b')
    c.fit(resume=tmp_path / 'b' / 'last.pt')
    assert [r['step'] for r in c.history] == [r['step'] for r in a.history] == list(range(1, 9))
    for r, q in zip(a.history, c.history):
        assert set(r) == set(q)
        assert [r[k] for k in r if k not in ('seconds',)] == pytest.approx([q[k] for k in r if k not in ('seconds',)])
    assert [r['step'] for r in c.history if 'val_dice_mean' in r] == [4, 8]
    assert load_checkpoint(tmp_path / 'b' / 'last.pt')['pending'] is None


@pytest.mark.skipif(sys.platform != 'linux' or __import__('platform').libc_ver()[0] != 'glibc', reason='glibc only')
def test_reuse_freed_memory_keeps_large_blocks_for_the_next_allocation():
    """glibc maps every block over 32 MiB afresh and unmaps it when freed, so each such tensor of a training step was
    zero-filled by the kernel page by page again (a semi-supervised step on ACDC slices spent as long in the kernel as
    in PyTorch). The probe: three 40 MiB tensors alive at once, freed, and allocated again, twelve rounds. With glibc's
    defaults every round faults in all 3 x 10240 pages afresh (30723 measured in every round, every run); after
    `reuse_freed_memory` the heap keeps the freed blocks, and once it has settled (by the 3rd to 5th round in six runs
    beside two training processes) the rounds fault in none. The last four rounds are compared. (A probe of training
    steps, two convolutions on 4 x 16 x 256 x 256 maps, was too loose: glibc's dynamic threshold took 16 MiB blocks into
    the heap now and then with the defaults too, and the heap still grew by 4096 pages now and then after the call, so
    CI once measured 20416 pages against 8192.)"""
    code = (
        'import resource, sys, torch\n'
        'from medseg_nb.train import reuse_freed_memory\n'
        'assert reuse_freed_memory() if sys.argv[1] == "1" else True\n'
        'torch.set_num_threads(1)\n'
        'faults = []\n'
        'for _ in range(12):\n'
        '    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n'
        '    blocks = [torch.ones(10 * 2**20) for _ in range(3)]\n'         # 3 x 40 MiB, alive at once
        '    del blocks\n'
        '    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)\n'
        'print(*faults)\n')
    faults = {flag: [int(f) for f in subprocess.run([sys.executable, '-c', code, flag], capture_output=True, text=True,
                                                    check=True).stdout.split()] for flag in '01'}
    assert min(faults['0'][-4:]) > 25_000, faults    # mapped afresh in every round (3 x 10240 pages)
    assert max(faults['1'][-4:]) < 1_000, faults     # the freed blocks serve the next round (0 measured)


def test_the_trainer_reuses_freed_memory_on_a_cpu_unless_told_not_to(tmp_path, monkeypatch):
    import medseg_nb.train as train_mod
    calls = []
    monkeypatch.setattr(train_mod, 'reuse_freed_memory', lambda: calls.append(1) or True)
    _trainer(tmp_path / 'a', steps=1).fit()
    assert calls == [1]
    _trainer(tmp_path / 'b', steps=1, reuse_memory=False).fit()
    assert calls == [1]


def test_compile_trains_the_eager_weights_and_saves_the_model_s_own_names(tmp_path, monkeypatch):
    """`compile=<mode>` runs the training forward through `torch.compile` (here with backend aot_eager: TorchDynamo and
    AOTAutograd capture the step, no code is generated, so it takes seconds): the mean teacher trains the same weights
    as without it, and its checkpoints keep the model's own parameter names (no `_orig_mod.` prefix)."""
    import medseg_nb.train as train_mod
    modes = []
    monkeypatch.setattr(train_mod, 'compile_model',
                        lambda model, mode: modes.append(mode) or torch.compile(model, backend='aot_eager'))
    eager = _trainer(tmp_path / 'a', 'mean_teacher', steps=3)
    eager.fit()
    compiled = _trainer(tmp_path / 'b', 'mean_teacher', steps=3, compile='reduce-overhead')
    assert modes == ['reduce-overhead'] and compiled.ddp is not compiled.model
    compiled.fit()
    saved = load_checkpoint(tmp_path / 'b' / 'last.pt')['model']
    assert list(saved) == list(eager.model.state_dict())
    for (name, a), b in zip(eager.model.state_dict().items(), saved.values()):
        assert torch.allclose(a, b, atol=1e-5), name
    with pytest.raises(TypeError, match="training option 'compile' takes None or 'default'"):
        _trainer(tmp_path / 'c', steps=1, compile='fast')


def test_interrupted_checkpoint_write_keeps_last_good(tmp_path, monkeypatch):
    good = save_checkpoint(tmp_path / 'last.pt', dict(model={'w': torch.ones(3)}, step=1, config={}, method='unet'))
    before = good.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, 'replace', boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / 'last.pt', dict(model={'w': torch.zeros(3)}, step=2, config={}, method='unet'))
    assert good.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['last.pt']      # the temporary file was removed


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.pt not found'):
        load_checkpoint(tmp_path / 'nothere.pt')
    torch.save({'weights': torch.ones(1)}, tmp_path / 'foreign.pt')
    with pytest.raises(ValueError, match=r"foreign.pt lacks \['config', 'method', 'model', 'step'\]"):
        load_checkpoint(tmp_path / 'foreign.pt')


def test_resume_with_other_method_refused(tmp_path):
    a = _trainer(tmp_path / 'a', steps=2)
    a.fit()
    b = _trainer(tmp_path / 'b', 'mean_teacher', steps=4)
    with pytest.raises(ValueError, match="trained with method 'unet'"):
        b.fit(resume=tmp_path / 'a' / 'last.pt')


def test_time_budget_stops_and_saves(tmp_path):
    t = _trainer(tmp_path, steps=10 ** 6, max_minutes=0.02)
    s = t.fit()
    assert s['stopped'] == 'time' and 0 < s['steps'] < 10 ** 6
    assert load_checkpoint(tmp_path / 'last.pt')['step'] == s['steps']
    assert (tmp_path / 'log.csv').read_text().startswith('step,')


def test_unknown_training_option():
    with pytest.raises(TypeError, match=r"unknown training options \['stpes'\]"):
        _trainer(None, stpes=3)


def test_a_training_option_of_the_wrong_type_is_named():
    """The Trainer checks its options' values as methods do. `--set steps=1e3` used to fail at range() with Python's own
    message, `--set patch=64` with "object of type 'int' has no len()", and `--set amp=yes` to turn AMP on where a GPU
    is (a non-empty string is true)."""
    with pytest.raises(TypeError, match=r"training option 'steps' takes an int; got 1000.0 \(float\)"):
        _trainer(None, steps=1e3)
    with pytest.raises(TypeError, match="training option 'amp' takes a bool or 'auto'; got 'yes'"):
        _trainer(None, amp='yes')
    with pytest.raises(ValueError, match=r"patch \(64,\) has 1 axes but the data is 2-D"):
        _trainer(None, **cli._kv(['patch=64']))
    t = _trainer(None, **cli._kv(['lr=1', 'amp=false', 'metrics=dice', 'max_minutes=1', 'patch=32,32', 'device=cpu']))
    assert (t.cfg.lr, t.cfg.amp, t.cfg.metrics, t.cfg.max_minutes, t.cfg.patch) == (1.0, False, ('dice',), 1.0, (32, 32))
    assert isinstance(t.cfg.lr, float) and t.cfg.device == 'cpu'


def test_patch_and_size_are_whole_sizes_checked_before_training(tmp_path):
    """A zero or fractional patch, or a validation tile of the wrong shape, used to be taken: `patch=(64.5, 64)` trained
    on 64 x 64 crops without a word, `val_patch=(0, 64)` and `val_patch=(64,)` failed inside the first validation,
    `val_every` steps into training, with torch's or the sliding window's message, and `--patch 96,x` said only
    "invalid literal for int()"."""
    bad = (('patch', (64.5, 64)), ('patch', (0, 32)), ('val_patch', (0, 64)), ('val_patch', (64,)), ('size', (32, -1)))
    for key, value in bad:
        with pytest.raises(ValueError, match=rf"training option '{key}' takes 2 whole sizes >= 1 \(.*\); got"):
            _trainer(None, **{key: value})
    t = _trainer(None, patch=(32.0, 32), val_patch=(48, 48), size=(40.0, 40))
    assert (t.cfg.patch, t.cfg.val_patch, t.cfg.size) == ((32, 32), (48, 48), (40, 40))
    assert all(type(v) is int for v in t.cfg.patch + t.cfg.size)
    r = _cli('train', '--dataset', 'phantom-glands', '--out', str(tmp_path), '--steps', '1', '--patch', '96,x')
    assert r.returncode == 2, r.stderr
    assert "--patch takes whole sizes separated by commas (e.g. 96,96 or 32,64,64); got '96,x'" in r.stderr


def test_a_schedule_or_metric_the_trainer_does_not_know_is_refused_before_training():
    """`--set schedule=linear` used to be taken and refused at the first step's learning rate, and `--set
    metrics=dice,hdd95` at the first validation, `val_every` steps (minutes to hours on a CPU) into training. Both are
    refused when the Trainer is made, naming what it takes."""
    with pytest.raises(TypeError, match="training option 'schedule' takes 'poly' or 'cosine' or 'constant'; got 'linear'"):
        _trainer(None, schedule='linear')
    with pytest.raises(TypeError, match="training option 'optimizer' takes 'adamw' or 'sgd'; got 'adam'"):
        _trainer(None, optimizer='adam')
    with pytest.raises(ValueError, match=r"training option 'metrics' takes names from \[.*'hd95'.*\]; got \['hdd95'\]"):
        _trainer(None, **cli._kv(['metrics=dice,hdd95']))
    assert _trainer(None, **cli._kv(['metrics=dice,hd95', 'schedule=cosine'])).cfg.metrics == ('dice', 'hd95')


def test_a_training_option_out_of_its_range_is_refused_before_training():
    """`--val-every 0` used to train and stop at the first step with "ZeroDivisionError: integer modulo by zero",
    `--steps -5` to run and report a zero-step run, and `fg_prob=2` or `momentum=1.5` to be taken; each is refused when
    the Trainer is made, naming its interval (`TRAIN_RANGES`)."""
    for key, value, interval in [('val_every', 0, '[1, inf)'), ('steps', -5, '[0, inf)'), ('fg_prob', 2.0, '[0, 1]'),
                                 ('momentum', 1.5, '[0, 1)'), ('lr', 0.0, '(0, inf)'), ('log_every', 0, '[1, inf)')]:
        with pytest.raises(ValueError, match=re.escape(f"training option {key!r} takes a value in {interval}; got {value}")):
            _trainer(None, **{key: value})
    assert _trainer(None, steps=0, fg_prob=1.0, momentum=0.0).cfg.steps == 0  # the ends an interval includes


def test_a_semi_supervised_method_without_unlabeled_data_says_so():
    """A semi-supervised method given labeled indices that cover every item used to fail at its first step with
    "PatchDataset got an empty list of indices" (`--method mean_teacher --labeled 1.0`); one given no unlabeled data at
    all trained on its supervised terms only without a word. Now the first is refused, naming what to change, and the
    second warned."""
    tr = get_dataset('phantom-glands', split='train', n=4, size=48)
    with pytest.raises(ValueError, match=r"'mean_teacher' is semi-supervised but no training item is left unlabeled "
                                         r"\(4 of 4 labeled\); label fewer"):
        Trainer(get_method('mean_teacher', width=4, depth=2), tr, None, None, SMALL, labeled_idx=[0, 1, 2, 3],
                unlabeled_idx=[])
    with pytest.warns(UserWarning, match="'mean_teacher' is semi-supervised but got no unlabeled data"):
        Trainer(get_method('mean_teacher', width=4, depth=2), tr, None, None, SMALL)


def test_nan_loss_is_reported(tmp_path):
    t = _trainer(tmp_path, steps=3, lr=1e30, grad_clip=0)
    with pytest.raises(FloatingPointError, match='lower the learning rate'):
        t.fit()


@pytest.mark.parametrize('grad_clip, amp', [(12.0, False), (0, False), (12.0, True)])
def test_a_finite_loss_with_gradients_that_are_not_stops_before_the_weights_change(tmp_path, grad_clip, amp):
    """A finite loss can have gradients that are not (seen on this machine: Mamba-HoME's first steps under bfloat16
    autocast on a CPU, in a few runs of the same seed, data and weights). The optimiser wrote them into the weights, and
    the error came a step later as a NaN loss with "lower the learning rate", from a model already lost (clipping
    multiplied every gradient by NaN too). Now the step stops first and names the parameter; the weights are kept."""
    t = _trainer(tmp_path, steps=3, grad_clip=grad_clip, amp=amp)
    name, p = next(iter(t.model.named_parameters()))
    p.register_hook(lambda g: torch.full_like(g, float('nan')))
    before = {n: q.detach().clone() for n, q in t.model.named_parameters()}
    hint = 'autocast on a CPU can give such gradients: train with amp=False' if amp else 'lower the learning rate'
    with pytest.raises(FloatingPointError, match=rf'gradients are not finite at step 0 \(loss [0-9.]+\) in '
                                                 rf'{re.escape(name)}; the weights were not updated; .*{hint}'):
        t.fit()
    assert all(torch.equal(q, before[n]) for n, q in t.model.named_parameters())


def test_predict_volume_slice_by_slice():
    net = get_method('unet', width=4, depth=2).build_model(1, 3, 2).eval()
    vol = torch.rand(1, 5, 24, 20)
    y = predict(net, vol)
    assert y.shape == (3, 5, 24, 20)
    with torch.no_grad():
        ref = net(vol[:, 2][None]).logits[0]
    assert torch.allclose(y[:, 2], ref, atol=1e-5)


def test_sliding_window_3d_exact_for_pointwise():
    conv = torch.nn.Conv3d(2, 3, 1)
    x = torch.randn(1, 2, 17, 40, 33)
    assert torch.allclose(sliding_window(conv, x, (16, 16, 16), overlap=0.5, batch_size=3), conv(x), atol=1e-5)


def test_epoch_visits_every_item_once():
    "The Trainer's labeled stream: one epoch of 6 images in batches of 2 holds each image once, in shuffled order."
    t = _trainer(None, steps=1)
    t.train_ds = get_dataset('phantom-glands', split='train', n=6, size=48)
    stream = t._stream(t.train_ds, None, 2, 0)
    names = [n for _ in range(3) for n in next(stream)['name']]
    listed = [t.train_ds[i]['name'] for i in range(6)]
    assert sorted(names) == sorted(listed) and names != listed
    again = [n for _ in range(3) for n in next(stream)['name']]
    assert sorted(again) == sorted(names) and again != names          # epoch 1: a fresh order


def test_acdc_batches_span_patients(real_data):
    "Consecutive ACDC batches mix patients (the list is grouped by patient and frame)."
    from medseg_nb.data.datasets import ACDC
    tr = ACDC(real_data, 'train')
    t = Trainer(get_method('unet', width=4, depth=2), tr, None, None,
                dict(SMALL, patch=(64, 64), batch_size=8, steps=1))
    stream = t._stream(t.train_ds, None, 8, 0)
    patients = [{n.split('_')[0] for n in next(stream)['name']} for _ in range(4)]
    assert all(len(p) >= 4 for p in patients), patients


def test_acdc_volumes_train_a_3d_unet(real_data, tmp_path):
    "Dataset option dim=3 trains the U-Net on ACDC's frames as volumes, the geometry of Mamba-HoME, so the two can pair."
    s = cli.train('unet', 'acdc', tmp_path, real_data, steps=1, progress=False, method_options=dict(width=4, depth=2),
                  train_options=dict(batch_size=1, val_items=1), dataset_options=dict(dim=3))
    st = load_checkpoint(tmp_path / 'last.pt')
    assert s['labeled_items'] == 140 and st['data']['dim'] == 3 and tuple(st['config']['patch']) == (8, 96, 96)


def test_acdc_dim_a_method_cannot_train_is_refused(tmp_path):
    "A 2-D-only method asked for ACDC volumes, a 3-D-only one for slices: refused before any data is read."
    with pytest.raises(ValueError, match=r"'nsda' works in 2-D only; ACDC dim=3 \(volumes\)"):
        cli.train('nsda', 'acdc', tmp_path, '/nonexistent', steps=1, dataset_options=dict(dim=3))
    with pytest.raises(ValueError, match=r"'mamba_home' works in 3-D only; ACDC dim=2 \(slices\)"):
        cli.train('mamba_home', 'acdc', tmp_path, '/nonexistent', steps=1, dataset_options=dict(dim=2))
    with pytest.raises(ValueError, match='expected 2 .slices. or 3'):
        cli.train('unet', 'acdc', tmp_path, '/nonexistent', steps=1, dataset_options=dict(dim=4))


def test_size_is_one_geometry(tmp_path):
    "With `size`, training crops are whole resized images, inference resizes the same way and scores on the native grid."
    tr = get_dataset('phantom-glands', split='train', n=4, size=48)
    va = get_dataset('phantom-glands', split='val', n=2, size=56)
    t = Trainer(get_method('unet', width=4, depth=2), tr, va, tmp_path,
                dict(SMALL, size=(32, 32), patch=(32, 32), steps=2, val_every=2, metrics=('dice',)))
    b = next(t._stream(t.train_ds, None, 2, 0))
    assert b['image'].shape == (2, 3, 32, 32) and b['native'] == [(48, 48), (48, 48)]
    t.fit()
    st = load_checkpoint(tmp_path / 'last.pt')
    assert st['config']['size'] == [32, 32]
    r = cli.evaluate_checkpoint(tmp_path / 'last.pt', 'phantom-glands', split='val', metrics=('dice',), progress=False)
    assert r['items'] == 6 and 0 <= r['mean']['dice_mean'] <= 1
    y = predict(t.model, va[0]['image'], size=(32, 32))
    assert y.shape == (2, 56, 56)
    with pytest.raises(ValueError, match='at least as large as the patch'):
        Trainer(get_method('unet', width=4, depth=2), tr, None, None, dict(SMALL, size=(16, 16)))


def _cli(*args, env=None):
    return subprocess.run([sys.executable, '-m', 'medseg_nb.cli', *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_cli_errors(tmp_path, capsys, monkeypatch):
    "Bad input: exit status 2 and a line naming it; the first through a process of its own, the rest through `main`."
    r = _cli('eval', '--checkpoint', str(tmp_path / 'x.pt'), '--dataset', 'phantom-vessels', '--json')
    assert r.returncode == 2 and 'x.pt not found' in r.stderr and 'Traceback' not in r.stderr
    monkeypatch.setenv('MEDSEG_DATA', '')
    for args, says in ((['--dataset', 'drive', '--steps', '1'], 'MEDSEG_DATA is not set'),
                       (['--dataset', 'phantom-vessels', '--method', 'unett'], "unknown method 'unett'"),
                       (['--dataset', 'glas', '--labeled-patients', '3', '--data-root', str(tmp_path)], 'ACDC only')):
        assert cli.main(['train', '--out', str(tmp_path), *args]) == 2, args
        assert says in capsys.readouterr().err, args


def test_cli_train_eval_json(tmp_path):
    r = _cli('train', '--dataset', 'phantom-glands', '--out', str(tmp_path / 'run'), '--steps', '6', '--opt', 'width=4',
             '--opt', 'depth=2', '--patch', '32,32', '--batch-size', '2', '--val-every', '3', '--json')
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s['steps'] == 6 and s['method'] == 'unet' and 'val_dice_mean' in s
    assert {p.name for p in (tmp_path / 'run').iterdir()} >= {'best.pt', 'last.pt', 'log.csv'}
    r = _cli('eval', '--checkpoint', str(tmp_path / 'run' / 'best.pt'), '--dataset', 'phantom-glands', '--split', 'val',
             '--metrics', 'dice,hd95,betti_error', '--json')
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)
    assert e['items'] == 6 and set(e['per_class']) == {'dice', 'hd95', 'betti_error'} and 0 <= e['mean']['dice_mean'] <= 1


def test_sigterm_saves_last_pt_and_the_cli_says_how_to_resume(tmp_path):
    """SIGTERM (a scheduler's notice before it kills a job, `kill`, a session's end) ended the process at once: the
    steps since the last validation were lost, and before the first one there was no `last.pt` at all. Now the step
    under way ends, `last.pt` is saved at it, and the command line exits with 143 naming the checkpoint to resume."""
    out = tmp_path / 'run'
    proc = subprocess.Popen([sys.executable, '-m', 'medseg_nb.cli', 'train', '--dataset', 'phantom-glands', '--out',
                             str(out), '--steps', '100000', '--val-every', '100000', '--opt', 'width=4', '--opt',
                             'depth=2', '--patch', '32,32', '--batch-size', '2', '--no-progress'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})
    try:
        deadline = time.time() + 300
        while not (out / 'log.csv').exists():                             # the first row: step 10, no checkpoint yet
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else 'timeout'
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert f"terminated; resume with --resume {out / 'last.pt'}" in err
    st = load_checkpoint(out / 'last.pt')
    assert 10 <= st['step'] < 100000 and st['history'][-1]['step'] <= st['step']


def test_a_stop_signal_waits_for_the_step_under_way():
    "Inside `hold()` (a step: the update and its count) a signal waits for the end; between steps it is raised at once."
    stop = StopSignals()
    ended = False
    with pytest.raises(Terminated):
        with stop.hold():
            stop.handler(signal.SIGTERM, None)                             # arrives mid-step
            stop.handler(signal.SIGINT, None)                              # a second one changes nothing
            ended = True                                                   # the step goes on to its end
    assert ended and stop.pending is None
    with pytest.raises(KeyboardInterrupt) as e:
        stop.handler(signal.SIGINT, None)
    assert not isinstance(e.value, Terminated)


def test_ddp_two_processes_agree_with_one(tmp_path):
    """Two gloo ranks with batch 2 each end with the same weights as each other and as one process with batch 4.

    Both sides run with one thread (the same summation order inside each process) and SGD, whose update is
    linear in the gradient: the all-reduce's different summation order then moves weights by ~1e-7, not by a
    whole AdamW step (AdamW divides near-zero gradients by their own size). The tolerance is checked to be
    able to fail: one process with batch 2, what a rank that skipped the all-reduce would compute, is far off.
    """
    common = ['--method', 'unet', '--dataset', 'phantom-glands', '--steps', '4', '--opt', 'width=4', '--opt', 'depth=2',
              '--patch', '32,32', '--val-every', '1000', '--json', '--seed', '3', '--set', 'optimizer=sgd', '--lr', '0.05']
    one_thread = {'OMP_NUM_THREADS': '1'}
    # each rank runs the CLI's main, then says whether it left the process group open: a process that exits with it
    # open can abort in teardown (gloo: 'terminate called without an active exception', SIGABRT) after a good run
    rank_main = tmp_path / 'rank_main.py'
    rank_main.write_text('import sys\nimport torch.distributed as dist\nfrom medseg_nb.cli import main\n'
                         'rc = main(sys.argv[1:])\n'
                         "print('process group left open' if dist.is_initialized() else 'process group closed', file=sys.stderr)\n"
                         'sys.exit(rc)\n')
    def launch():
        proc = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                                 str(rank_main), 'train', '--out', str(tmp_path / 'ddp'), '--batch-size', '2', *common],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env={**os.environ, **one_thread})
        try:
            out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)          # the ranks too, not only the launcher
            pytest.fail('two-process DDP run did not finish in 300 s (a rank waiting at a barrier?)')
        return proc.returncode, out, err

    rc, out, err = launch()
    # gloo can still abort a rank in interpreter teardown after both ranks closed their group (seen once in 45
    # launches before `Trainer.close()` dropped the DDP wrapper first, none in 45 since): that signature alone, never
    # a failure during training, gets one more launch; a second abort fails the test
    if rc != 0 and err.count('process group closed') == 2 and 'terminate called without an active exception' in err:
        rc, out, err = launch()
    assert rc == 0, err[-3000:]
    assert err.count('process group closed') == 2, 'a rank left its process group open: ' + err[-3000:]
    s = json.loads([l for l in out.splitlines() if l.startswith('{')][-1])
    assert s['ranks_agree'] is True and s['steps'] == 4
    for name, batch in (('one', '4'), ('half', '2')):
        r = _cli('train', '--out', str(tmp_path / name), '--batch-size', batch, *common, env=one_thread)
        assert r.returncode == 0, r.stderr
    ddp, one, half = (load_checkpoint(tmp_path / n / 'last.pt')['model'] for n in ('ddp', 'one', 'half'))
    floats = [k for k in one if one[k].is_floating_point()]
    gap = lambda a, b: max(float((a[k] - b[k]).abs().max()) for k in floats)
    tol = 1e-5
    assert gap(ddp, one) < tol, f'DDP and one process differ by {gap(ddp, one):.2e}'
    assert gap(half, one) > 100 * tol, 'the check could not tell a rank that skips the all-reduce'
    assert load_checkpoint(tmp_path / 'one' / 'last.pt')['optimizer']['state'], 'the optimiser took steps'


def test_a_method_takes_only_options_that_change_what_it_trains():
    """A method takes the U-Net options (width, depth, norm, dropout) only where its network reads them: setting one
    changes the network built. Mamba-HoME used to take all four, VQ-Seg and GraphSeg dropout, and ignore them; the
    others refused below were taken and ignored too."""
    alt = dict(width=12, depth=5, norm='batch', dropout=0.3)
    checked = 0
    for name, cls in sorted(METHODS.items()):
        dim = cls.dims[0]
        base = get_method(name).build_model(1, 2, dim)
        for key, value in alt.items():
            if key in cls.defaults:
                net = get_method(name, **{key: value}).build_model(1, 2, dim)
                shapes = lambda m: [tuple(p.shape) for p in m.parameters()]
                assert repr(net) != repr(base) or shapes(net) != shapes(base), f"{name}: {key}={value} changes nothing"
                checked += 1
    assert checked >= 20  # the U-Net methods' options were all checked
    # and options that a method's losses or head never read: LoMix's family weighs its scale maps itself, and the
    # `sam` baseline has no Gaussians; the head is what tells `gausam` from `sam`, not an option of either
    refused = [('mamba_home', 'width'), ('vqseg', 'dropout'), ('graphseg', 'dropout'), ('sam', 'n_gaussians'),
               ('gausam', 'head'), ('sam', 'head')] + [(n, 'deep_supervision') for n in ('lomix', 'deep', 'additive')]
    for name, key in refused:
        with pytest.raises(TypeError, match=f"unknown options \\['{key}'\\]"):
            get_method(name, **{key: 'sam' if key == 'head' else 1})


def test_a_method_refuses_an_option_value_of_the_wrong_type():
    """Option values are checked by name when a method is made. `--opt eps=abc` used to be taken and fail mid-training
    with Python's own message, `freeze_encoder=no` to freeze the encoder (a non-empty string is true), and LoMix's
    `--opt operators=add` to become the string 'add', refused at build as operators ['a', 'd'], and a LoMix weighting
    it does not know to be refused at the first training step."""
    wrong = [('vqseg', 'eps', 'abc', "takes a number; got 'abc' \\(str\\)"),
             ('gausam', 'freeze_encoder', 'no', "takes a bool or 'auto'; got 'no'"),
             ('arco', 'anchors', 32.5, 'takes an int; got 32.5'),
             ('mamba_home', 'orders', '2', "takes an int or None; got '2'"),
             ('unet', 'dropout', True, 'takes a number; got True \\(bool\\)'),
             ('lomix', 'weighting', 'softmax', "takes 'raw' or 'normalized' or 'uncertainty' or 'fixed'; got 'softmax'")]
    for name, key, value, message in wrong:
        with pytest.raises(TypeError, match=f"option '{key}' of method '{name}' {message}"):
            get_method(name, **{key: value})
    opts = lambda *pairs: cli._kv(pairs)  # the command line's spellings, as `--opt` parses them
    assert get_method('lomix', **opts('operators=add')).cfg.operators == ('add',)
    assert get_method('lomix', **opts('operators=add,mul')).cfg.operators == ('add', 'mul')
    assert get_method('gausam', **opts('freeze_encoder=false')).cfg.freeze_encoder is False
    assert get_method('gausam', **opts('freeze_decoder=1')).cfg.freeze_decoder is True
    c = get_method('vqseg', **opts('consistency=0')).cfg.consistency
    assert c == 0 and isinstance(c, float)
    for name, cls in METHODS.items():  # every method takes its own defaults back unchanged
        assert dict(get_method(name, **cls.defaults).cfg) == cls.defaults, name


def test_every_string_option_names_its_values_and_refuses_others_when_the_method_is_made():
    """Every option whose default is a string takes one of a few names, and a name outside them is refused by
    `get_method`, naming the values. `arco --opt sampler=uniform`, `vqseg --opt perturb=noise`, `norm=layer` of the
    eleven methods built on the U-Net, Mamba-HoME's `size` and `mixer` and GauSAM's `kind` used to be taken and refused
    only when the network was built; MATCH's `backend=ripser` at its first topological step, a fifth into training."""
    checked = 0
    for name, cls in sorted(METHODS.items()):
        for key, default in cls.defaults.items():
            if isinstance(default, str):
                with pytest.raises(TypeError, match=f"option '{key}' of method '{name}' takes .*'{default}'.*; got 'x'"):
                    get_method(name, **{key: 'x'})
                checked += 1
    assert checked >= 25


def test_a_tuple_option_checks_each_element_when_the_method_is_made():
    """LoMix's `operators` (and the `deep` and `additive` baselines', which share its options) took any tuple when the
    method was made: `--opt operators=add,max` was refused only when the network was built, after the data had been
    read. Each element is now checked against `OPERATORS` by `get_method`, which names the element it refuses."""
    checked = 0
    for name, cls in sorted(METHODS.items()):
        for key, default in cls.defaults.items():
            if isinstance(default, tuple):
                with pytest.raises(TypeError, match=re.escape(f"option {key!r} of method {name!r} takes a tuple of ")
                                   + ".*" + re.escape("got ('add', 'max') ('max' not among them)")):
                    get_method(name, **{key: ('add', 'max')})
                checked += 1
    assert checked >= 3
    assert get_method('additive', operators=['mul']).cfg.operators == ('mul',)


def test_a_number_option_out_of_its_range_is_refused_when_the_method_is_made():
    """A method's number options used to be taken at any value: VQ-Seg's keep probability `eps=1.5`, ARCO's temperature
    `tau=0`, MATCH's `snapshot_every=0` (a modulo by zero a fifth into training), a negative loss weight or count. Each
    is refused when the method is made: every number option of every method lies in [0, inf), and those with a tighter
    bound (`option_ranges`) name it."""
    wrong = [('vqseg', 'eps', 1.5, '[0, 1]'), ('arco', 'tau', 0.0, '(0, inf)'), ('match', 'snapshot_every', 0, '[1, inf)'),
             ('unet', 'dropout', 1.0, '[0, 1)'), ('mamba_home', 'orders', 7, '[1, 6]'), ('gausam', 'box_prob', 2.0, '[0, 1]'),
             ('lomix', 'w_dice', -0.5, '[0, inf)')]
    for name, key, value, interval in wrong:
        with pytest.raises(ValueError, match=re.escape(f"option {key!r} of method {name!r} takes a value in {interval}")):
            get_method(name, **{key: value})
    refused = 0
    for name, cls in sorted(METHODS.items()):
        for key, default in cls.defaults.items():
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                with pytest.raises(ValueError, match=f"option '{key}' of method '{name}' takes a value in"):
                    get_method(name, **{key: -1})
                refused += 1
    assert refused >= 100


def test_every_method_refuses_a_dim_outside_its_dims():
    """`build_model` of a 2-D method asked for a 3-D network (or of a 3-D one for 2-D) says so: seven 2-D methods
    (arco, graphseg, lomix, deep, additive, single, vqseg) used to build a 3-D network nothing had checked."""
    refused = 0
    for name, cls in sorted(METHODS.items()):
        for dim in {2, 3} - set(cls.dims):
            with pytest.raises(ValueError, match=f"{name!r} builds .*-D networks; got dim={dim}"):
                get_method(name).build_model(1, 2, dim)
            refused += 1
        assert get_method(name).build_model(3, 2).dim in cls.dims  # the default dim is one the method supports
    assert refused >= 10


def test_vqseg_takes_no_input_noise_it_would_ignore():
    """The mean teacher's `noise` perturbs the student's unlabeled input; VQ-Seg's perturbation is the QPM, and its
    losses never read `noise` (the same loss at noise 0 and 0.5), so VQ-Seg refuses it by name. The mean teacher's loss
    does change with it (the check can tell)."""
    import copy

    def loss(name, **opts):
        m = get_method(name, width=4, depth=2, **opts)
        m.total_steps = 100
        torch.manual_seed(0)
        net = m.build_model(1, 2, 2)
        g = torch.Generator().manual_seed(1)
        lab = dict(image=torch.randn(2, 1, 32, 32, generator=g), label=torch.randint(0, 2, (2, 32, 32), generator=g))
        unl = dict(image=torch.randn(2, 1, 32, 32, generator=g))
        torch.manual_seed(2)
        return float(m.losses(net, lab, unl, copy.deepcopy(net), step=50)['loss'].detach())

    assert loss('mean_teacher', noise=0.0) != loss('mean_teacher', noise=0.5)
    with pytest.raises(TypeError, match="unknown options \\['noise'\\]"):
        get_method('vqseg', noise=0.5)


def test_a_checkpoint_with_a_withdrawn_option_still_loads(tmp_path):
    """`method_from_checkpoint` drops saved options the method no longer takes (they had no effect), with a warning,
    and keeps the others; an unknown method is still named."""
    st = dict(method='mamba_home', method_config=dict(width=16, dropout=0.0, mixer='mlp', size='small'))
    with pytest.warns(UserWarning, match=r"\['dropout', 'width'\] are no longer options of 'mamba_home'"):
        m = cli.method_from_checkpoint(st)
    assert m.cfg.mixer == 'mlp' and 'width' not in m.cfg
    with pytest.raises(KeyError, match="unknown method 'no_such'"):
        cli.method_from_checkpoint(dict(method='no_such', method_config={}))


def test_tour_covers_every_method(tmp_path):
    r = cli.tour(tmp_path, seconds=0.5, progress=False)
    assert [row['method'] for row in r['rows']] == sorted(METHODS, key=lambda n: (n != 'unet', n))
    assert Path(r['report']).exists() and 'mean_teacher' in Path(r['report']).read_text()
    table = cli.format_table(r['rows'])
    assert 'betti_error' in table and 'unet' in table


def test_val_overlap_sets_the_sliding_window_of_validation():
    """`val_overlap` reaches the sliding window wherever a training config is scored (`geometry`): 64 px tiled by 32 px
    is 2 x 2 tiles without overlap and 3 x 3 at half a tile. It used to be a config key that nothing read."""
    from medseg_nb.train import TRAIN_DEFAULTS, evaluate_model, geometry
    tiles = []

    class Count(torch.nn.Module):
        dim = 2

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            tiles.append(len(x))
            return torch.zeros(len(x), 2, *x.shape[2:]) + self.w

    ds = get_dataset('phantom-glands', split='val', n=1, size=64)
    for overlap, expected in ((0.0, 4), (0.5, 9)):
        tiles.clear()
        cfg = dict(TRAIN_DEFAULTS, patch=(32, 32), val_overlap=overlap)
        evaluate_model(Count(), ds, metrics=('dice',), **geometry(cfg))
        assert sum(tiles) == expected, (overlap, tiles)


def test_predict_command_applies_the_checkpoint_geometry(tmp_path):
    "A model trained at size 32 predicts a 48 x 40 image file at 48 x 40, through the same resize as in training."
    import numpy as np
    from PIL import Image
    tr = get_dataset('phantom-glands', split='train', n=4, size=48)
    t = Trainer(get_method('unet', width=4, depth=2), tr, None, tmp_path / 'run', dict(SMALL, size=(32, 32), patch=(32, 32), steps=2))
    t.fit()
    img = (np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / 'x.png')
    r = _cli('predict', '--checkpoint', str(tmp_path / 'run' / 'last.pt'), '--image', str(tmp_path / 'x.png'),
             '--out', str(tmp_path / 'y.png'), '--json')
    assert r.returncode == 0, r.stderr
    out = np.asarray(Image.open(tmp_path / 'y.png'))
    assert out.shape == (48, 40) and set(np.unique(out)) <= {0, 1}
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    ref = predict(t.model.eval(), x, size=(32, 32)).argmax(0).numpy()
    assert (out == ref).mean() > 0.999


def test_a_method_without_running_state_refuses_one_from_a_checkpoint():
    "A checkpoint that carries state for a method that keeps none was written by another method or version: say so."
    m = get_method('unet')
    assert m.state_dict() == {}
    m.load_state_dict({})
    with pytest.raises(ValueError, match=r"'unet' keeps no running state.*\['queue'\]"):
        m.load_state_dict({'queue': torch.zeros(2)})


def test_eval_refuses_data_with_other_classes_or_channels_than_the_checkpoint(tmp_path):
    """`evaluate_checkpoint` scored a checkpoint on whatever dataset it was given: a 2-class phantom model on a folder of
    3-class masks returned Dice for classes 1 and 2 as if they were comparable. Now data whose channels or classes
    differ from the training data's (as the Trainer read them) is refused, naming both; the same data still scores."""
    import numpy as np
    from PIL import Image
    cli.train('unet', 'phantom-glands', tmp_path / 'run', steps=1, method_options=dict(width=4, depth=2),
              train_options=dict(patch=(32, 32), batch_size=2), progress=False)
    ckpt = tmp_path / 'run' / 'last.pt'
    rng = np.random.default_rng(0)
    for sub in ('images', 'masks'):
        (tmp_path / 'folder' / sub).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / 'folder' / 'images' / f'{i}.png')
        Image.fromarray(np.repeat(np.array([0, 128, 255], np.uint8), 14)[:40][None].repeat(40, 0)).save(
            tmp_path / 'folder' / 'masks' / f'{i}.png')
    with pytest.raises(ValueError, match=r"trained on phantom-glands: 3 input channels, 2 classes; folder \(all\) has 3 "
                                         r"channels, 3 classes\. Evaluate it on data with the same channels and classes"):
        cli.evaluate_checkpoint(ckpt, 'folder', tmp_path / 'folder', split='all', metrics=('dice',), progress=False,
                                dataset_options=dict(values={0: 0, 128: 1, 255: 2}))
    with pytest.raises(ValueError, match=r"phantom-organs3d \(val\) has 1 channels, 5 classes"):
        cli.evaluate_checkpoint(ckpt, 'phantom-organs3d', split='val', metrics=('dice',), progress=False)
    r = cli.evaluate_checkpoint(ckpt, 'folder', tmp_path / 'folder', split='all', metrics=('dice',), progress=False,
                                dataset_options=dict(values={0: 0, 128: 1, 255: 1}))
    assert r['items'] == 2 and set(r['per_class']['dice']) == {'1'}


def test_tour_refuses_a_time_that_is_not_positive_before_training(tmp_path):
    """`medseg-nb tour --seconds 0` (or -1) started training the first method and then failed on the Trainer's
    `max_minutes`, a name and a unit (-0.0167 minutes) the user never typed. Now the tour says so before it trains."""
    for bad in (0, -1, float('nan')):
        with pytest.raises(ValueError, match='tour takes a positive number of seconds per method; got'):
            cli.tour(tmp_path / 'tour', seconds=bad, methods=['unet'], progress=False)
    assert not (tmp_path / 'tour').exists()
