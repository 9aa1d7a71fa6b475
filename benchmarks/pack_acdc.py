"""Carry ACDC to a lent GPU machine: pack it losslessly into one file under 64 MiB, unpack it there.

    python benchmarks/pack_acdc.py pack  $MEDSEG_DATA/ACDC .devdata/acdc.pkl.xz   # here (.devdata is git-ignored)
    python benchmarks/pack_acdc.py unpack .devdata/acdc.pkl.xz /tmp/data/ACDC      # there; then MEDSEG_DATA=/tmp/data

The slices hold few distinct intensities (SSL4MIS min-max scaled integers), so each float32 image is stored as its
table of distinct values plus uint16 indices: bit-exact, about half the size of the gzip'd HDF5. For the lent machine
only: the data are never committed or redistributed (their terms forbid it).
"""
import lzma
import os
import pickle
import sys
from pathlib import Path

import h5py
import numpy as np


def pack(src, dst):
    src = Path(src); recs = {}
    for f in sorted(src.glob('*/*.h5')):
        d = {}
        with h5py.File(f) as a:
            for k in a.keys():
                x = a[k][:]
                if x.dtype == np.float32:
                    u, idx = np.unique(x, return_inverse=True)
                    if len(u) >= 2 ** 16: raise ValueError(f'{f}:{k} has {len(u)} distinct values; at most 65535 fit uint16 indices')
                    d[k] = ('t', u, idx.reshape(x.shape).astype(np.uint16))
                else:
                    d[k] = ('r', x)
        recs[str(f.relative_to(src))] = d
    lists = {p.name: p.read_bytes() for p in src.glob('*.list')}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_bytes(lzma.compress(pickle.dumps((recs, lists)), preset=6))
    print(f'{len(recs)} files -> {dst} ({os.path.getsize(dst) / 2 ** 20:.1f} MiB)')


def unpack(src, dst):
    recs, lists = pickle.loads(lzma.decompress(Path(src).read_bytes()))   # our own file, made by pack() above
    dst = Path(dst)
    for rel, d in recs.items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(dst / rel, 'w') as b:
            for k, v in d.items():
                b.create_dataset(k, data=v[1][v[2]] if v[0] == 't' else v[1])
    for n, data in lists.items(): (dst / n).write_bytes(data)
    print(f'{len(recs)} files -> {dst}')


if __name__ == '__main__':
    if len(sys.argv) != 4 or sys.argv[1] not in ('pack', 'unpack'): sys.exit(__doc__)
    (pack if sys.argv[1] == 'pack' else unpack)(sys.argv[2], sys.argv[3])
