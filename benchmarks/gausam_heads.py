"""GauSAM's Gaussian head against SAM's own mask head: same tiny SAM, adapter, box prompts, steps and seed;
Dice, HD95 and boundary F-score at output resolutions 0.5x, 1x and 2x of the base size.

    [MEDSEG_DATA=../shared/data] python benchmarks/gausam_heads.py [--steps 300] [--size 128]
"""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, write_section  # noqa: E402
from medseg_nb.data.phantoms import PhantomDataset  # noqa: E402
from medseg_nb.methods.gausam.model import compare_heads  # noqa: E402


def table(rows):
    out = ['| head | output | Dice | HD95 (base px, median) | boundary F (2 base px) |', '|---|---|---|---|---|']
    for r in rows:
        out.append(f"| {'GauSAM (Gaussian field)' if r['head'] == 'gaussian' else 'SAM mask decoder'} | {r['scale']:g}x ({r['size']}x{r['size']}) "
                   f"| {r['dice']:.3f} | {r['hd95']:.2f} | {r['boundary_f']:.3f} |")
    return '\n'.join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--size', type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    sections = []
    t = time.time()
    tr = [PhantomDataset('glands', n=48, size=128, seed=0)[i] for i in range(48)]
    va = [PhantomDataset('glands', n=8, size=256, seed=10_000)[i] for i in range(8)]
    sections.append(('gland phantoms (48 train at 128 px, 8 validation at 256 px)', compare_heads(tr, va, a.steps, a.size, progress=True)))
    root = os.environ.get('MEDSEG_DATA')
    if root:
        from medseg_nb.data.datasets import KvasirSEG
        ktr, kva = KvasirSEG(root, 'train'), KvasirSEG(root, 'val')
        sections.append((f'Kvasir-SEG ({len(ktr)} train, {len(kva)} validation, box prompts from the masks)',
                         compare_heads([ktr[i] for i in range(len(ktr))], [kva[i] for i in range(len(kva))], a.steps, a.size, progress=True)))
    body = f"""## GauSAM: Gaussian-field head against SAM's mask head (`benchmarks/gausam_heads.py`)

Machine: {machine()}. Tiny SAM (2 ViT blocks, 64 channels, 256 px input) trained from scratch (no official weights
offline), contour-prior adapter, box prompts; {a.steps} AdamW steps of batch 4 for each head, seed 0; images resized
to {a.size} px; predictions at 0.5x/1x/2x scored against labels resampled from their original resolution.
Total time {time.time() - t:.0f} s.
""" + '\n'.join(f'\n{name}:\n\n{table(rows)}' for name, rows in sections)
    write_section('gausam_heads', body)
    print(body)


if __name__ == '__main__':
    main()
