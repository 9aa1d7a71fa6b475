"""Training steps on a CPU with glibc's default allocator and with `reuse_freed_memory` (the Trainer's `reuse_memory`).

Each (method, setting) runs in a fresh process, one thread: the method at its defaults builds its network for ACDC
(1 channel in, 4 classes, 2-D), takes one step to warm up, then `--steps` steps of the ACDC recipe's shape (batch 16
labeled slices, and 16 unlabeled for a semi-supervised method, at 128 x 128; random tensors, as only the shapes
matter here) with AdamW. Per step: the minor page faults, the CPU time in the process (user) and in the kernel on its
behalf (sys), and the wall time; then the process's peak resident set. Wall times depend on what else the machine
runs (user + sys less so); the faults and sys time do not.

    python benchmarks/cpu_memory.py [--methods unet mean_teacher vqseg arco] [--steps 3]
"""
import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import machine, write_section  # noqa: E402


def child(method: str, reuse: bool, steps: int) -> dict:
    "One (method, setting) in this process: the per-step figures as a dict."
    import torch

    from medseg_nb.core import get_method, load_methods
    from medseg_nb.train import reuse_freed_memory
    applied = reuse_freed_memory() if reuse else False
    torch.set_num_threads(1)
    load_methods()
    torch.manual_seed(0)
    m = get_method(method)
    m.setup(600)
    net = m.build_model(1, 4, 2)
    teacher = copy.deepcopy(net) if m.semi_supervised else None
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    lab = dict(image=torch.randn(16, 1, 128, 128), label=torch.randint(0, 4, (16, 128, 128)))
    unl = dict(image=torch.randn(16, 1, 128, 128)) if m.semi_supervised else None

    def step():
        loss = m.losses(net, lab, unl, teacher, step=300)['loss']
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return dict(method=method, reuse=reuse, applied=applied, steps=steps, wall=wall / steps,
                user=(r1.ru_utime - r0.ru_utime) / steps, sys=(r1.ru_stime - r0.ru_stime) / steps,
                faults=(r1.ru_minflt - r0.ru_minflt) / steps, peak_mb=r1.ru_maxrss / 1024)


def table(rows) -> str:
    out = []
    for r in rows:
        base = next((q for q in rows if q['method'] == r['method'] and not q['reuse']), None)
        cpu = r['user'] + r['sys']
        ratio = f"{(base['user'] + base['sys']) / cpu:.2f}x" if r['reuse'] and base else '–'
        out.append(f"| {r['method']} | {'reuse' if r['reuse'] else 'default'} | {r['faults'] / 1000:,.0f} k | "
                   f"{r['user']:.2f} | {r['sys']:.2f} | {cpu:.2f} | {ratio} | {r['wall']:.2f} | {r['peak_mb']:,.0f} |")
    return """## Training steps on a CPU: glibc's default allocator against `reuse_freed_memory` (`benchmarks/cpu_memory.py`)

Machine: {machine}. One thread; each method at its defaults, ACDC's shapes (batch 16 labeled + 16 unlabeled slices for a
semi-supervised method, 128 x 128, 4 classes), AdamW; {steps} steps after one to warm up, in a fresh process per
row. `reuse` is the Trainer's default on a CPU (`reuse_memory=True`: glibc keeps freed blocks for the next step instead
of mapping blocks over 32 MiB afresh, each page zero-filled by the kernel at first touch). Per step: minor page faults,
CPU seconds in the process (user) and in the kernel for it (sys), their sum and its ratio to the default's; wall
seconds (with whatever else ran on the machine); then the process's peak resident set.

| method | allocator | page faults | user s | sys s | CPU s | CPU default / reuse | wall s | peak MB |
|---|---|---|---|---|---|---|---|---|
{rows}""".format(machine=machine(), steps=rows[0]['steps'], rows='\n'.join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--methods', nargs='+', default=['unet', 'mean_teacher', 'vqseg', 'arco'])
    ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--child', nargs=2, metavar=('METHOD', 'REUSE'), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1] == '1', a.steps)))
        return
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for method in a.methods:
        for reuse in (False, True):
            cmd = [sys.executable, __file__, '--steps', str(a.steps), '--child', method, '1' if reuse else '0']
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if r.returncode:
                sys.exit(f'{method} (reuse={reuse}) failed:\n{r.stderr[-3000:]}')
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    write_section('cpu_memory', table(rows))
    print(table(rows))


if __name__ == '__main__':
    main()
