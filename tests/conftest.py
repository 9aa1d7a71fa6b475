import os
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

os.environ.setdefault('MPLBACKEND', 'Agg')


@pytest.fixture
def real_data():
    "The real data folder, or skip when MEDSEG_DATA is unset."
    v = os.environ.get('MEDSEG_DATA')
    if not v or not Path(v).is_dir():
        pytest.skip('MEDSEG_DATA not set')
    return Path(v)


def save_png(path, arr, mode=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8), mode=mode).save(path)
    return path


@pytest.fixture
def fake_drive(tmp_path):
    "A DRIVE layout with two training images (21, 22), 16 x 20 pixels."
    base = tmp_path / 'DRIVE' / 'training'
    rng = np.random.default_rng(0)
    for n in (21, 22):
        save_png(base / 'images' / f'{n}_training.tif', rng.integers(0, 255, (16, 20, 3)))
        save_png(base / '1st_manual' / f'{n}_manual1.gif', (rng.random((16, 20)) > .8) * 255)
        save_png(base / 'mask' / f'{n}_training_mask.gif', np.full((16, 20), 255))
    return tmp_path


@pytest.fixture
def fake_folder(tmp_path):
    "An images/ + masks/ folder with three pairs."
    rng = np.random.default_rng(0)
    for k in range(1, 4):
        save_png(tmp_path / 'images' / f'train_{k}.png', rng.integers(0, 255, (12, 14, 3)))
        save_png(tmp_path / 'masks' / f'train_{k}.png', (rng.random((12, 14)) > .5) * 255)
    return tmp_path
