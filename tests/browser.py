"Shared helpers for the browser tests: Debian's Chromium, driven by Playwright, with the flags the project uses."
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']


def need_browser():
    "Skip, saying why, where no browser can be had (make test installs Debian's chromium)."
    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium at /usr/bin/chromium: `make browser` installs Debian's package (apt); this machine could not")
    pytest.importorskip('playwright', reason='playwright (Python) is not installed: pip install -e ".[dev]"')


@contextmanager
def chromium():
    "A fresh headless Chromium (its own user-data dir) as a Playwright browser context."
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p, tempfile.TemporaryDirectory() as user_data:
        ctx = p.chromium.launch_persistent_context(user_data, executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                   viewport={'width': 1280, 'height': 900})
        try:
            yield ctx
        finally:
            ctx.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
