"Bad input must raise an error that names the file and what was expected."
import json
import re
import h5py
import numpy as np
import pytest
import torch

from medseg_nb.data.datasets import (DRIVE, GlaS, KvasirSEG, ACDC, ImageMaskFolder, NiftiVolumes, PatchDataset,
                                     get_dataset, sample_patch, split_labeled, acdc_labeled_split, read_image)
from medseg_nb import cli
from medseg_nb.data.phantoms import PhantomDataset
from conftest import save_png


# --- DRIVE ---------------------------------------------------------------------------------------
def test_drive_loads(fake_drive):
    ds = DRIVE(fake_drive, split='all')
    assert len(ds) == 2
    s = ds[0]
    assert s['image'].shape == (3, 16, 20) and s['label'].dtype == torch.int64 and s['fov'].dtype == torch.bool


def test_drive_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'DRIVE.*training.*not found'):
        DRIVE(tmp_path, 'train')


def test_drive_missing_mask(fake_drive):
    gone = fake_drive / 'DRIVE' / 'training' / '1st_manual' / '22_manual1.gif'
    gone.unlink()
    with pytest.raises(FileNotFoundError, match='22_training.tif has no vessel annotation.*22_manual1.gif'):
        DRIVE(fake_drive, 'all')


def test_drive_missing_fov(fake_drive):
    (fake_drive / 'DRIVE' / 'training' / 'mask' / '21_training_mask.gif').unlink()
    with pytest.raises(FileNotFoundError, match='field-of-view mask.*21_training_mask.gif'):
        DRIVE(fake_drive, 'all')


def test_drive_size_mismatch(fake_drive):
    save_png(fake_drive / 'DRIVE' / 'training' / '1st_manual' / '21_manual1.gif', np.zeros((10, 20)))
    with pytest.raises(ValueError, match=r'size mismatch.*21_training.tif.*21_manual1.gif'):
        DRIVE(fake_drive, 'all')[0]


def test_drive_unexpected_label_values(fake_drive):
    save_png(fake_drive / 'DRIVE' / 'training' / '1st_manual' / '22_manual1.gif', np.full((16, 20), 7))
    with pytest.raises(ValueError, match=r'22_manual1.gif has unexpected values \[7\]; expected only \[0, 255\]'):
        DRIVE(fake_drive, 'all')[1]


def test_drive_corrupt_image(fake_drive):
    (fake_drive / 'DRIVE' / 'training' / 'images' / '21_training.tif').write_bytes(b'\x00garbage')
    with pytest.raises(ValueError, match='cannot read image .*21_training.tif: corrupt'):
        DRIVE(fake_drive, 'all')[0]


def test_drive_empty_split(fake_drive):
    with pytest.raises(ValueError, match='split is empty'):
        DRIVE(fake_drive, 'all', ids=[99])


def test_drive_test_split_layout(fake_drive):
    with pytest.raises(FileNotFoundError, match=r'DRIVE/test'):
        DRIVE(fake_drive, 'test')
    base = fake_drive / 'DRIVE' / 'test'
    save_png(base / 'images' / '01_test.tif', np.zeros((8, 8, 3)))
    save_png(base / '1st_manual' / '01_manual1.gif', np.zeros((8, 8)))
    save_png(base / 'mask' / '01_test_mask.gif', np.full((8, 8), 255))
    assert DRIVE(fake_drive, 'test').names() == ['01_test']


# --- folders, GlaS, Kvasir -----------------------------------------------------------------------
def test_folder_missing_mask(fake_folder):
    (fake_folder / 'masks' / 'train_2.png').unlink()
    with pytest.raises(FileNotFoundError, match=r'train_2.png has no mask'):
        ImageMaskFolder(fake_folder)


def test_folder_size_mismatch(fake_folder):
    save_png(fake_folder / 'masks' / 'train_3.png', np.zeros((5, 5)))
    with pytest.raises(ValueError, match=r'size mismatch.*train_3.png.*train_3.png'):
        ImageMaskFolder(fake_folder).check()


def test_folder_values_map(fake_folder):
    save_png(fake_folder / 'masks' / 'train_1.png', np.array([[0, 10], [20, 10]]).repeat(6, 0).repeat(7, 1))
    ds = ImageMaskFolder(fake_folder, values={0: 0, 10: 1, 20: 2, 255: 1})
    assert ds.num_classes == 3 and set(ds[0]['label'].unique().tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match=r'train_1.png has unexpected values \[10, 20\]'):
        ImageMaskFolder(fake_folder)[0]


def test_folder_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'nope')):
        ImageMaskFolder(tmp_path / 'nope')


def test_glas_layout(fake_folder, tmp_path):
    (tmp_path / 'GlaS').mkdir()
    (fake_folder / 'images').rename(tmp_path / 'GlaS' / 'images')
    with pytest.raises(FileNotFoundError, match=r'GlaS/train'):
        GlaS(tmp_path, 'train')


def test_kvasir_boxes_and_test_list(tmp_path):
    base = tmp_path / 'Kvasir-SEG'
    rng = np.random.default_rng(0)
    for n in ('a', 'b', 'c'):
        save_png(base / 'images' / f'{n}.png', rng.integers(0, 255, (10, 12, 3)))
        save_png(base / 'masks' / f'{n}.png', np.where(rng.random((10, 12)) > .5, 250, 3))  # JPEG-like values
    (base / 'bboxes.json').write_text(json.dumps({'a': {'bbox': [{'xmin': 1, 'ymin': 2, 'xmax': 5, 'ymax': 7}]}}))
    assert len(KvasirSEG(tmp_path, 'test')) == 3                  # no test.txt: every pair
    (base / 'test.txt').write_text('b\n')
    assert KvasirSEG(tmp_path, 'test').names() == ['b']
    tr = KvasirSEG(tmp_path, 'all')
    assert tr.names() == ['a', 'c'] and tr[0]['boxes'].tolist() == [[1, 2, 5, 7]]
    assert set(tr[0]['label'].unique().tolist()) <= {0, 1}
    (base / 'bboxes.json').write_text('{broken')
    with pytest.raises(ValueError, match='bboxes.json: not valid JSON'):
        KvasirSEG(tmp_path, 'test')


# --- ACDC ----------------------------------------------------------------------------------------
def _acdc(tmp_path, label=None, shape=(8, 8)):
    base = tmp_path / 'ACDC'
    (base / 'slices').mkdir(parents=True)
    (base / 'volumes').mkdir()
    names = []
    for p in ('patient001', 'patient002'):
        for z in (1, 2):
            n = f'{p}_frame01_slice_{z}'; names.append(n)
            with h5py.File(base / 'slices' / f'{n}.h5', 'w') as f:
                f['image'] = np.random.rand(*shape).astype(np.float32)
                f['label'] = (label if label is not None else np.random.randint(0, 4, shape)).astype(np.uint8)
    (base / 'train_slices.list').write_text('\n'.join(names) + '\n')
    return base


def test_acdc_slices_and_patient_split(tmp_path):
    _acdc(tmp_path)
    ds = ACDC(tmp_path, 'train')
    assert len(ds) == 4 and ds.patients() == ['patient001', 'patient002']
    assert ds[0]['image'].shape == (1, 8, 8)
    lab, unl = acdc_labeled_split(ds, 1)
    assert lab == [0, 1] and unl == [2, 3]


def test_acdc_bad_label_values(tmp_path):
    _acdc(tmp_path, label=np.full((8, 8), 9))
    with pytest.raises(ValueError, match=r'patient001_frame01_slice_1.h5 has unexpected values \[9\]'):
        ACDC(tmp_path, 'train')[0]


def test_acdc_missing_list_and_file(tmp_path):
    base = _acdc(tmp_path)
    with pytest.raises(FileNotFoundError, match='test.list not found'):
        ACDC(tmp_path, 'test')
    (base / 'slices' / 'patient002_frame01_slice_2.h5').unlink()
    with pytest.raises(FileNotFoundError, match='patient002_frame01_slice_2.h5 not found'):
        ACDC(tmp_path, 'train').check()


def test_acdc_corrupt_file(tmp_path):
    base = _acdc(tmp_path)
    (base / 'slices' / 'patient001_frame01_slice_2.h5').write_bytes(b'not hdf5')
    with pytest.raises(ValueError, match='patient001_frame01_slice_2.h5: corrupt'):
        ACDC(tmp_path, 'train')[1]


def test_acdc_empty_split(tmp_path):
    base = _acdc(tmp_path)
    (base / 'val.list').write_text('\n')
    with pytest.raises(ValueError, match='split is empty.*val.list'):
        ACDC(tmp_path, 'val')


# --- NIfTI ---------------------------------------------------------------------------------------
def test_nifti_roundtrip_and_errors(tmp_path):
    nib = pytest.importorskip('nibabel')
    img = np.random.rand(6, 7, 5).astype(np.float32)          # x, y, z
    lab = (img > .5).astype(np.uint8)
    aff = np.diag([0.8, 0.9, 2.5, 1])
    nib.save(nib.Nifti1Image(img, aff), tmp_path / 'ct.nii.gz')
    nib.save(nib.Nifti1Image(lab, aff), tmp_path / 'ct_lab.nii.gz')
    s = NiftiVolumes([tmp_path / 'ct.nii.gz'], [tmp_path / 'ct_lab.nii.gz'])[0]
    assert s['image'].shape == (1, 5, 7, 6) and np.allclose(s['spacing'], (2.5, 0.9, 0.8))
    assert torch.equal(s['label'], torch.from_numpy(lab.transpose(2, 1, 0).astype(np.int64)))
    nib.save(nib.Nifti1Image(lab[:5], aff), tmp_path / 'small.nii.gz')
    with pytest.raises(ValueError, match=r'size mismatch.*ct.nii.gz.*small.nii.gz'):
        NiftiVolumes([tmp_path / 'ct.nii.gz'], [tmp_path / 'small.nii.gz'])[0]
    with pytest.raises(FileNotFoundError, match='has no label.*missing.nii.gz'):
        NiftiVolumes([tmp_path / 'ct.nii.gz'], [tmp_path / 'missing.nii.gz'])
    (tmp_path / 'bad.nii.gz').write_bytes(b'nonsense')
    with pytest.raises(ValueError, match='bad.nii.gz: corrupt'):
        NiftiVolumes([tmp_path / 'bad.nii.gz'])[0]


# --- splits, patches, registry -------------------------------------------------------------------
@pytest.mark.parametrize('labeled,k', [(0.1, 3), (0.001, 1), (7, 7), (1.0, 30)])
def test_split_labeled(labeled, k):
    lab, unl = split_labeled(30, labeled, seed=3)
    assert len(lab) == k and sorted(lab + unl) == list(range(30))


@pytest.mark.parametrize('bad', [0, -1, 31, 2.5, 0.0, -0.5])  # a fraction 0.0 used to give one labeled item
def test_split_labeled_bad(bad):
    with pytest.raises(ValueError, match='between 1 and 30'):
        split_labeled(30, bad)


def test_patch_dataset_repeatable_and_epoch_dependent():
    pd = PatchDataset(PhantomDataset('vessels', n=2, size=64), (32, 32), length=4, seed=0)
    a = pd[1]['image'].clone()
    assert torch.equal(a, pd[1]['image'])
    pd.set_epoch(1)
    assert not torch.equal(a, pd[1]['image'])


def test_patch_fg_centre():
    s = dict(image=torch.zeros(1, 100, 100), label=torch.zeros(100, 100, dtype=torch.long))
    s['label'][90, 5] = 1
    for seed in range(5):
        p = sample_patch(s, (16, 16), torch.Generator().manual_seed(seed), fg_prob=1.0)
        assert p['label'].sum() == 1


def test_get_dataset_needs_root(monkeypatch):
    monkeypatch.delenv('MEDSEG_DATA', raising=False)
    with pytest.raises(FileNotFoundError, match='MEDSEG_DATA is not set'):
        get_dataset('drive')


def test_dataset_options_are_checked_by_name_and_type(fake_folder):
    """`--data-opt n=abc` on a phantom reached the phantom's own checks and failed with Python's "'<' not supported
    between instances of 'str' and 'int'", `size=big` likewise; a misspelt option got "make() got an unexpected keyword
    argument". `get_dataset` now checks each option against the dataset's own (its entry's signature) before reading
    anything, and names what it takes."""
    opts = lambda *pairs: cli._kv(pairs)  # the command line's spellings, as `--data-opt` parses them
    wrong = [('phantom-glands', 'n=abc', "option 'n' of dataset 'phantom-glands' takes an int or None; got 'abc'"),
             ('phantom-vessels', 'size=big', "option 'size' of dataset 'phantom-vessels' takes an int; got 'big'"),
             ('acdc', 'dim=4', "option 'dim' of dataset 'acdc' takes 2 or 3 or None; got 4"),
             ('folder', 'channels=rgb', "option 'channels' of dataset 'folder' takes 1 or 3; got 'rgb'"),
             ('glas', 'binarise=yes', "option 'binarise' of dataset 'glas' takes a bool; got 'yes'")]
    for name, pair, message in wrong:
        with pytest.raises(TypeError, match=re.escape(message)):
            get_dataset(name, fake_folder, 'train', **opts(pair))
    with pytest.raises(TypeError, match=re.escape("dataset 'folder' takes the options ['cache', 'channels', "
                                                  "'image_dir', 'mask_dir', 'threshold', 'values']; got ['chanels']")):
        get_dataset('folder', fake_folder, **opts('chanels=1'))
    assert len(get_dataset('phantom-glands', None, 'val', **opts('n=2', 'size=32'))) == 2
    assert get_dataset('folder', fake_folder, **opts('channels=3')).records  # an accepted option still reaches it


def test_dataset_number_options_are_checked_for_range(fake_folder):
    """A phantom's `size=8` was taken by `get_dataset` and refused only when the first item was drawn (inside the
    Trainer's loader), and `n=0` silently meant the default count (24 training items); a folder's `channels=2` read
    one or three channels by the image's own mode, not two, and `threshold=0` made every pixel foreground. Each is
    refused by `get_dataset`, naming the interval or the values."""
    wrong = [('phantom-vessels', dict(size=8), ValueError, "option 'size' of dataset 'phantom-vessels' takes a value in "
              "[32, inf); got 8"),
             ('phantom-glands', dict(n=0), ValueError, "option 'n' of dataset 'phantom-glands' takes a value in [1, inf); "
              "got 0"),
             ('phantom-organs3d', dict(size=12), ValueError, "takes a value in [16, inf); got 12"),
             ('folder', dict(channels=2), TypeError, "option 'channels' of dataset 'folder' takes 1 or 3; got 2"),
             ('folder', dict(threshold=0), ValueError, "option 'threshold' of dataset 'folder' takes a value in [1, inf)")]
    for name, kw, err, message in wrong:
        with pytest.raises(err, match=re.escape(message)):
            get_dataset(name, fake_folder, 'train', **kw)
    assert len(get_dataset('phantom-organs3d', None, 'val', n=1, size=16)) == 1  # the bounds themselves are taken
    assert get_dataset('folder', fake_folder, channels=1, threshold=1).records


def test_a_phantom_datasets_smallest_size_is_the_phantoms_own():
    """`get_dataset` refuses a phantom's size below the bound the phantom itself keeps (`PHANTOM_MIN_SIDE`), and takes
    that bound: one number, read by both, so that the two checks cannot drift apart."""
    from medseg_nb.data.phantoms import PHANTOM_MIN_SIDE, PHANTOMS
    assert set(PHANTOM_MIN_SIDE) == set(PHANTOMS)
    for kind, side in PHANTOM_MIN_SIDE.items():
        with pytest.raises(ValueError, match=f'>= {side}'):
            PHANTOMS[kind](side - 1)
        with pytest.raises(ValueError, match=re.escape(f'[{side}, inf); got {side - 1}')):
            get_dataset(f'phantom-{kind}', None, 'val', n=1, size=side - 1)
        assert get_dataset(f'phantom-{kind}', None, 'val', n=1, size=side)[0]['label'].shape[-1] == side


# --- real data -----------------------------------------------------------------------------------
def test_real_splits(real_data):
    assert len(DRIVE(real_data, 'train')) == 16 and len(DRIVE(real_data, 'val')) == 4
    g_tr, g_va = GlaS(real_data, 'train'), GlaS(real_data, 'val')
    assert len(g_tr) + len(g_va) == 85 and not set(g_tr.names()) & set(g_va.names())
    a = ACDC(real_data, 'val')
    assert len(a) == 20 and a[0]['image'].ndim == 4
    assert [len(acdc_labeled_split(ACDC(real_data, 'train'), n)[0]) for n in (1, 3, 7)] == [32, 68, 136]


def test_real_glas_check(real_data):
    GlaS(real_data, 'val').check()
    s = GlaS(real_data, 'val')[0]
    assert s['image'].shape[0] == 3 and set(s['label'].unique().tolist()) <= {0, 1}


def _nifti_folder(root, n=5, flip_last=True):
    "An MSD-style folder: n volumes 12 (x) x 16 (y) x 6 (z) at spacing 1 x 1 x 2 mm, a box of class 1 and one of 2."
    nib = pytest.importorskip('nibabel')
    (root / 'imagesTr').mkdir(parents=True); (root / 'labelsTr').mkdir()
    rng = np.random.default_rng(0)
    for k in range(n):
        lab = np.zeros((12, 16, 6), np.uint8); lab[2:6, 3:9, 1:4] = 1; lab[7:10, 10:14, 2:5] = 2
        img = (lab * 100 + rng.normal(0, 10, lab.shape)).astype(np.float32)
        aff = np.diag([1.0, 1.0, 2.0, 1.0])
        if flip_last and k == n - 1:              # stored mirrored along x, with the affine that says so
            img, lab = img[::-1].copy(), lab[::-1].copy()
            aff = np.diag([-1.0, 1.0, 2.0, 1.0]); aff[0, 3] = 11.0
        nib.save(nib.Nifti1Image(img, aff), root / 'imagesTr' / f'case_{k:03d}_0000.nii.gz')
        nib.save(nib.Nifti1Image(lab, aff), root / 'labelsTr' / f'case_{k:03d}.nii.gz')
    return root


def test_nifti_folder_canonical_resampled_and_split(tmp_path):
    root = _nifti_folder(tmp_path / 'ct')
    tr, va = get_dataset('nifti', root, 'train'), get_dataset('nifti', root, 'val')
    assert len(tr) == 4 and len(va) == 1 and tr.num_classes == 3
    a, b = tr[0], va[0]                                   # va[0] is the mirrored file
    assert a['image'].shape == (1, 6, 16, 12) and a['spacing'] == pytest.approx((2.0, 1.0, 1.0))
    assert torch.equal(a['label'], b['label'])            # canonical orientation: the same anatomy, the same array
    r = get_dataset('nifti', root, 'train', spacing=(1.0, 1.0, 1.0), window=(-50, 250))[0]
    assert r['image'].shape == (1, 12, 16, 12) and r['spacing'] == (1.0, 1.0, 1.0)
    assert set(r['label'].unique().tolist()) == {0, 1, 2} and 0 <= float(r['image'].min()) and float(r['image'].max()) <= 1
    assert (r['label'] == 1).sum() == 2 * (a['label'] == 1).sum()      # twice the slices, the same boxes
    with pytest.raises(ValueError, match='three positive numbers'):
        get_dataset('nifti', root, 'train', spacing=(1.0, 1.0))
    (root / 'dataset.json').write_text(json.dumps({'labels': {'0': 'background', '1': 'a', '2': 'b', '3': 'c'}}))
    assert get_dataset('nifti', root, 'train').num_classes == 4


def test_nifti_trains_and_evaluates_from_the_command_line(tmp_path):
    import subprocess, sys
    root = _nifti_folder(tmp_path / 'ct')
    run = lambda *a: subprocess.run([sys.executable, '-m', 'medseg_nb.cli', *a], capture_output=True, text=True, timeout=600)
    r = run('train', '--method', 'unet', '--dataset', 'nifti', '--data-root', str(root), '--out', str(tmp_path / 'run'),
            '--steps', '2', '--patch', '8,16,16', '--batch-size', '1', '--opt', 'width=4', '--opt', 'depth=2',
            '--data-opt', 'spacing=2,1,1', '--val-every', '2', '--json')
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s['steps'] == 2 and 'val_dice_mean' in s
    e = run('eval', '--checkpoint', str(tmp_path / 'run' / 'last.pt'), '--dataset', 'nifti', '--data-root', str(root),
            '--split', 'val', '--metrics', 'dice', '--json')
    assert e.returncode == 0, e.stderr[-2000:]
    assert json.loads(e.stdout.strip().splitlines()[-1])['items'] == 1


def test_nifti_classes_come_from_the_whole_folder(tmp_path):
    "A validation split whose one volume lacks class 2 still has the folder's three classes."
    nib = pytest.importorskip('nibabel')
    root = tmp_path / 'ct'; (root / 'imagesTr').mkdir(parents=True); (root / 'labelsTr').mkdir()
    for k in range(5):
        lab = np.zeros((8, 8, 4), np.uint8); lab[1:3, 1:3, 1:3] = 1
        if k < 4: lab[5:7, 5:7, 1:3] = 2
        nib.save(nib.Nifti1Image(lab.astype(np.float32), np.eye(4)), root / 'imagesTr' / f'c{k}_0000.nii.gz')
        nib.save(nib.Nifti1Image(lab, np.eye(4)), root / 'labelsTr' / f'c{k}.nii.gz')
    assert get_dataset('nifti', root, 'val').num_classes == get_dataset('nifti', root, 'train').num_classes == 3
