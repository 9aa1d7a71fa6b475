import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='the write is cut short by RLIMIT_FSIZE (Linux)')
def test_a_site_write_cut_short_keeps_the_page_it_was_replacing(tmp_path):
    """`add_navigation` rewrote every page in place, and `build_site` wrote index.html and pages.json in place: a build
    stopped during a write (Ctrl-C, a full disk) left a page cut short, or a pages.json that the next `--only` build
    could not read. Here a file-size limit (RLIMIT_FSIZE, as a full disk would) cuts the write short: the page must
    stay the old one, whole, and no temporary file may be left beside it."""
    page = '<html><body class="x"><p>' + 'x' * 1000 + '</p></body></html>'
    (tmp_path / 'a.html').write_text(page)
    code = (
        'import resource, signal\n'
        'from medseg_nb.site import add_navigation\n'
        'signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n'
        'resource.setrlimit(resource.RLIMIT_FSIZE, (512, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n'
        f"add_navigation({str(tmp_path)!r}, [dict(name='a', file='a.html', title='A')])\n"
    )
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and 'File too large' in r.stderr, r.stderr[-2000:]
    assert (tmp_path / 'a.html').read_text() == page
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.html']
    # without the limit the same call adds the navigation
    r = subprocess.run([sys.executable, '-c', code.replace('resource.setrlimit', 'print')], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'medseg-side' in (tmp_path / 'a.html').read_text()
