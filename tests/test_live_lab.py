"""The live tutorial: JupyterLab on loopback, one widget notebook opened in headless Chromium, Run All, a slider
moved, and the widget's output must change."""
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser import chromium, free_port, need_browser

NB = Path(__file__).parents[1] / 'nbs' / '70_vector_quantization.ipynb'


@pytest.fixture
def lab(tmp_path):
    need_browser()
    shutil.copy(NB, tmp_path / NB.name)
    port = free_port()
    env = dict(os.environ, MEDSEG_FAST='1', JUPYTER_RUNTIME_DIR=str(tmp_path / 'runtime'), JUPYTER_CONFIG_DIR=str(tmp_path / 'config'))
    env.pop('MPLBACKEND', None)           # a live kernel draws with the inline backend (CI and conftest set Agg)
    log = open(tmp_path / 'lab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyter', 'lab', '--no-browser', '--allow-root', '--ip', '127.0.0.1',
                             f'--port={port}', '--ServerApp.port_retries=0', '--IdentityProvider.token=', '--ServerApp.password=',
                             f'--ServerApp.root_dir={tmp_path}', '--LabApp.news_url=None'],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f'http://127.0.0.1:{port}'
    for _ in range(120):
        if proc.poll() is not None: pytest.fail(f'jupyter lab exited: {(tmp_path / "lab.log").read_text()[-2000:]}')
        try:
            urllib.request.urlopen(url + '/api/status', timeout=1); break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill(); pytest.fail('jupyter lab did not answer within 60 s')
    yield url
    proc.terminate()
    try: proc.wait(10)
    except subprocess.TimeoutExpired: proc.kill()
    log.close()


def test_run_all_and_move_a_slider(lab, tmp_path):
    with chromium() as ctx:
        page = ctx.new_page()
        page.goto(f'{lab}/lab/tree/{NB.name}')
        page.get_by_text('(ipykernel) | Idle').first.wait_for(timeout=90000)        # the kernel is connected and idle
        page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
        page.locator('li[data-command="runmenu:run-all"]').click()
        handle = page.locator('.widget-slider .noUi-handle').first
        handle.wait_for(timeout=180000)
        img = page.locator('.widget-output img').first
        try:
            img.wait_for(timeout=60000)
        except Exception:
            page.screenshot(path=str(tmp_path / 'lab_fail.png'))          # what the page showed, for the log
            print(page.evaluate("() => ({outs: document.querySelectorAll('.widget-output').length, imgs: document.querySelectorAll('.widget-output img').length, html: [...document.querySelectorAll('.widget-output')].map(e => e.innerHTML.slice(0, 300))})"))
            raise
        before = img.get_attribute('src')
        handle.scroll_into_view_if_needed()       # run-all leaves the view at the last cell: the slider may be off-screen
        box = handle.bounding_box()
        page.mouse.move(box['x'] + box['width'] / 2, box['y'] + box['height'] / 2); page.mouse.down()
        page.mouse.move(box['x'] - 60, box['y'] + box['height'] / 2, steps=8); page.mouse.up()
        page.wait_for_function("([sel, old]) => { const i = document.querySelector(sel); return i && i.getAttribute('src') !== old; }",
                               arg=['.widget-output img', before], timeout=60000)
        assert page.locator('.widget-output img').first.get_attribute('src') != before
