"Shared helper: replace one script's section of benchmarks/RESULTS.md (between its markers), keeping the rest."
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name('RESULTS.md')
HEADER = '# Benchmark results\n\nEach section is written by the script it names; absolute times only say where, ratios measured in one run are what count.\n'


def machine() -> str:
    "A one-line description of this machine."
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {dev}, torch {torch.__version__}"


def write_section(name: str, body: str):
    "Put `body` under the heading of section `name`, replacing an older one; written atomically."
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    block = f'<!-- {name} -->\n{body.strip()}\n<!-- /{name} -->'
    pat = re.compile(rf'<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->', re.S)
    text = pat.sub(lambda _: block, text) if pat.search(text) else text.rstrip() + '\n\n' + block + '\n'
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, RESULTS)


def save_json(path, obj):
    "Write `obj` as JSON to `path` atomically (a temporary file, then a rename): an interrupted run keeps the last good file."
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def run_json(cmd: list[str]) -> dict:
    "Run a `medseg-nb ... --json` command; return the JSON object it printed last (exit on failure)."
    print('$', ' '.join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f'failed ({r.returncode}):\n{r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])
