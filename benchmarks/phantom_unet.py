"""U-Net on fundus-vessel phantoms within one CPU-minute: validation and test Dice.

    python benchmarks/phantom_unet.py [--minutes 1] [--steps 400]
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, run_json as run, write_section  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--minutes', type=float, default=1.0)
    ap.add_argument('--steps', type=int, default=400)
    ap.add_argument('--dataset', default='phantom-vessels')
    a = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix='phantom_unet_'))
    train = ['medseg-nb', 'train', '--method', 'unet', '--dataset', a.dataset, '--out', str(out),
             '--max-minutes', str(a.minutes), '--steps', str(a.steps), '--json']
    s = run(train)
    e = run(['medseg-nb', 'eval', '--checkpoint', str(out / 'best.pt'), '--dataset', a.dataset, '--split', 'test',
             '--metrics', 'dice,cldice,betti_error,hd95', '--json'])
    m = e['mean']
    body = f"""## U-Net on {a.dataset}, one CPU-minute (`benchmarks/phantom_unet.py`)

Machine: {machine()}.

    {' '.join(train[:6])} --out RUN --max-minutes {a.minutes:g} --steps {a.steps}

| steps | training s (incl. validation) | val Dice | test Dice (6 unseen phantoms) | test clDice | test abs. Betti-0 error | test HD95 (px) |
|---|---|---|---|---|---|---|
| {s['steps']} | {s['seconds']:.0f} | {s['val_dice_mean']:.4f} | {m['dice_mean']:.4f} | {m['cldice_mean']:.4f} | {m['betti_error_b0']:.2f} | {m['hd95_mean']:.2f} |

Target of the foundation issue: Dice >= 0.9 in under a minute of CPU."""
    write_section(f'phantom_unet_{a.dataset}', body)
    print(body)


if __name__ == '__main__':
    main()
