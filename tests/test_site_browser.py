"""The rendered tutorials (`make site`) in headless Chromium: the index loads and links every page; every page loads
without console errors or failed requests; every image and plotly figure is drawn; saved widgets render; one
screenshot per method family is saved under site/screenshots/."""
import functools
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from browser import chromium, free_port, need_browser

SITE = Path(os.environ.get('MEDSEG_SITE', Path(__file__).parents[1] / 'site'))
PAGES = json.loads((SITE / 'pages.json').read_text()) if (SITE / 'pages.json').exists() else []
METHOD_PAGES = {'GauSAM': '12_gausam', 'GraphSeg': '21_graphseg', 'MATCH': '31_match', 'Mamba-HoME': '42_mamba_home',
                'LoMix': '50_lomix', 'NSDA': '60_nsda', 'VQ-Seg': '71_vqseg', 'ARCO': '81_arco'}

DRAWN = """() => {
  const imgs = [...document.images];
  const badImgs = imgs.filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)).map(i => (i.src || '').slice(0, 60));
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const badPlots = plots.filter(p => { const s = p.querySelector('svg.main-svg'); return !s || s.getBoundingClientRect().width < 10 || !(p.data || []).length || !p.querySelector('.trace, image'); }).length;
  const canvases = [...document.querySelectorAll('canvas')].filter(c => c.width === 0 || c.height === 0).length;
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  const widgets = document.querySelectorAll('.jupyter-widgets.widget-container, .jupyter-widgets.widget-inline-hbox, .jupyter-widgets.widget-slider, .widget-output').length;
  return {imgs: imgs.length, badImgs, plots: plots.length, badPlots, emptyCanvases: canvases, views, widgets};
}"""


@pytest.fixture(scope='module')
def server():
    if not PAGES: pytest.fail(f'no site at {SITE}: build it with `make site` (make test does)')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', free_port()), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()


@pytest.fixture(scope='module')
def browser():
    need_browser()
    with chromium() as ctx:
        yield ctx


def _open(ctx, url):
    page, errors = ctx.new_page(), []
    page.on('console', lambda m: errors.append(f'console: {m.text}') if m.type == 'error' else None)
    page.on('pageerror', lambda e: errors.append(f'page error: {e}'))
    page.on('requestfailed', lambda r: errors.append(f'request failed: {r.url}'))
    page.goto(url, wait_until='load')
    return page, errors


def test_index_links_every_page(server, browser):
    page, errors = _open(browser, server + '/index.html')
    links = page.eval_on_selector_all('#pages a', 'as => as.map(a => a.getAttribute("href"))')
    assert sorted(links) == sorted(p['file'] for p in PAGES) and len(links) >= 25
    assert not errors, errors
    page.close()


@pytest.mark.parametrize('name', [p['name'] for p in PAGES] or ['<no site>'])
def test_page_renders(server, browser, name):
    page, errors = _open(browser, f'{server}/{name}.html')
    views = page.evaluate("document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]').length")
    if views:      # the widget manager renders saved widgets after load
        page.wait_for_function(f"document.querySelectorAll('.widget-output, .widget-slider, .widget-dropdown, .widget-vbox').length > 0", timeout=30000)
    page.wait_for_timeout(300)
    r = page.evaluate(DRAWN)
    assert not r['badImgs'] and not r['badPlots'] and not r['emptyCanvases'], r
    assert not views or r['widgets'] > 0, r
    assert not errors, errors
    family = {v: k for k, v in METHOD_PAGES.items()}.get(name)
    if family:
        (SITE / 'screenshots').mkdir(exist_ok=True)
        page.screenshot(path=str(SITE / 'screenshots' / f'{name}.png'))
    page.close()


def test_every_method_has_a_page():
    assert set(METHOD_PAGES.values()) <= {p['name'] for p in PAGES}, 'a method family lacks its page in the site'


def test_pages_have_the_syllabus_and_no_directives():
    "Every page: the syllabus sidebar (README first, then number order), previous / next links, no `#|` directive in code."
    import re
    if not PAGES: pytest.fail(f'no site at {SITE}: build it with `make site` (make test does)')
    files = [p['file'] for p in PAGES]
    assert PAGES[0]['name'] == 'readme' and [p['name'] for p in PAGES[1:]] == sorted(p['name'] for p in PAGES[1:])
    for i, p in enumerate(PAGES):
        text = (SITE / p['file']).read_text()
        side = re.search(r'<nav class="medseg-side".*?</nav>', text, re.S)
        assert side and re.findall(r'href="([^"]+)"', side[0]) == ['index.html', *files], p['name']
        nxt = re.search(r'class="next"><a href="([^"]+)"', text)
        prev = re.search(r'class="prev">&larr; <a href="([^"]+)"', text)
        assert (nxt[1] if nxt else None) == (files[i + 1] if i + 1 < len(files) else None), p['name']
        assert (prev[1] if prev else None) == (files[i - 1] if i else None), p['name']
        assert not re.search(r'class="c1">#\|', text), f"{p['name']}: a directive is shown in a code cell"
