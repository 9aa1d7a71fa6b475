"""U-Net on DRIVE from the command line, on a CPU time budget; validation Dice inside the field of view.

    MEDSEG_DATA=../shared/data python benchmarks/drive_unet.py [--minutes 10] [--steps 2400]

Trains on DRIVE training images 21-36, validates on 37-40 (as shared/data/README.md suggests), then
evaluates best.pt with `medseg-nb eval` at full resolution and writes the table to RESULTS.md.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, run_json as run, write_section  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--minutes', type=float, default=10)
    ap.add_argument('--steps', type=int, default=2400)
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    root = os.environ.get('MEDSEG_DATA')
    if not root:
        sys.exit('set MEDSEG_DATA to the data folder (DRIVE/training inside)')
    out = Path(a.out or tempfile.mkdtemp(prefix='drive_unet_'))
    train = ['medseg-nb', 'train', '--method', 'unet', '--dataset', 'drive', '--data-root', root, '--out', str(out),
             '--max-minutes', str(a.minutes), '--steps', str(a.steps), '--json']
    t = time.time()
    s = run(train)
    ev = ['medseg-nb', 'eval', '--checkpoint', str(out / 'best.pt'), '--dataset', 'drive', '--data-root', root,
          '--split', 'val', '--metrics', 'dice,cldice,betti_error,hd95', '--json']
    e = run(ev)
    m = e['mean']
    rows = '\n'.join(f"| {r['name']} | {r['dice_mean']:.4f} | {r['cldice_mean']:.4f} | {r['betti_error_b0']:.0f} | {r['hd95_mean']:.2f} |"
                     for r in e['per_item'])
    body = f"""## U-Net on DRIVE, CPU time budget (`benchmarks/drive_unet.py`)

Machine: {machine()}. Command (steps done: {s['steps']}, stopped by {s['stopped']}, {s['seconds']:.0f} s of training):

    {' '.join(train[:6])} --data-root DIR --out RUN --max-minutes {a.minutes:g} --steps {a.steps}
    medseg-nb eval --checkpoint RUN/best.pt --dataset drive --data-root DIR --split val --json

Validation = DRIVE training images 37-40, full resolution, inside the field of view (best.pt at step {e['step']}). Since
issue 18: shuffled epochs, and inference tiles of the training patch (96 px, the context the network trained on; before,
256 px tiles); DRIVE keeps its native pixels (one camera, one scale).

| image | Dice | clDice | abs. Betti-0 error | HD95 (px) |
|---|---|---|---|---|
{rows}
| **mean** | **{m['dice_mean']:.4f}** | **{m['cldice_mean']:.4f}** | {m['betti_error_b0']:.1f} | {m['hd95_mean']:.2f} |

Target of the foundation issue: validation Dice >= 0.80 in 10 CPU-minutes; literature U-Net on DRIVE's test set: about 0.81.
Wall time of the whole script: {time.time() - t:.0f} s."""
    write_section('drive_unet', body)
    print(body)


if __name__ == '__main__':
    main()
